//! Harnesses for the viommu fuzz targets.
//!
//! Every target in `fuzz_targets/` is one line: it hands the decoded input to `run` in one
//! of the modules here. Keeping the logic in a library lets the seed writer
//! (`src/bin/seeds.rs`) build inputs from the same types, and lets a crash be replayed
//! with `cargo fuzz run <target> <file>` or read with `cargo fuzz fmt <target> <file>`.
//!
//! Each harness drives only the public API of `viommu::Unit` and checks invariants after
//! every step (see docs/reliability.md); a violated invariant panics, which libFuzzer
//! reports as a crash.
//!
//! Inputs are decoded with `arbitrary`'s derive. Its encoding is simple and stable
//! (little-endian integers, one "continue" byte per `Vec` element, `bool` = low bit,
//! enum variant = `(u32 * variants) >> 32`), which [`encode`] mirrors so the seed writer
//! can produce inputs; the seed writer checks every seed decodes back to what it meant.

pub mod common;
pub mod encode;
#[cfg(feature = "ffi")]
pub mod ffi;
pub mod irq;
pub mod mmio;
pub mod queue;
pub mod restore;
pub mod translate;
