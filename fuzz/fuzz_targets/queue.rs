#![no_main]
//! See `viommu_fuzz::queue` for what this target drives and the invariants it checks.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: viommu_fuzz::queue::Input| viommu_fuzz::queue::run(&input));
