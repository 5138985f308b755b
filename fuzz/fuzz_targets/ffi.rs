#![no_main]
//! See `viommu_fuzz::ffi` for what this target drives and the invariants it checks.
//! Built with `--features ffi`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: viommu_fuzz::ffi::Input| viommu_fuzz::ffi::run(&input));
