#![no_main]
//! See `viommu_fuzz::translate` for what this target drives and the invariants it checks.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: viommu_fuzz::translate::Input| viommu_fuzz::translate::run(&input));
