//! viommu: an Intel VT-d remapping-hardware emulation engine.
#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod cache;
pub mod spec;
