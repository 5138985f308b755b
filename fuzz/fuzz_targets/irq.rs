#![no_main]
//! See `viommu_fuzz::irq` for what this target drives and the invariants it checks.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: viommu_fuzz::irq::Input| viommu_fuzz::irq::run(&input));
