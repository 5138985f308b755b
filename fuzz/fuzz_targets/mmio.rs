#![no_main]
//! See `viommu_fuzz::mmio` for what this target drives and the invariants it checks.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: viommu_fuzz::mmio::Input| viommu_fuzz::mmio::run(&input));
