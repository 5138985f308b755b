//! Atomics used by the cache: `core`'s normally, loom's when model checking.
//!
//! Everything in [`super`] goes through this shim so that `--cfg loom` swaps in
//! loom's instrumented types without touching the algorithm. `Ordering` is the
//! same type in both worlds.

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{fence, AtomicU32, AtomicU64};
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, AtomicU64};

pub(crate) use core::sync::atomic::Ordering;
