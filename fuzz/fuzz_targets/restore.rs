#![no_main]
//! See `viommu_fuzz::restore` for what this target drives and the invariants it checks.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: viommu_fuzz::restore::Input| viommu_fuzz::restore::run(&input));
