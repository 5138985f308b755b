//! Guest-visible formats of the VT-d architecture, one module per spec chapter.
//!
//! Everything the guest can write — registers, root and context entries, second-level
//! page-table entries, invalidation descriptors, fault records — is typed here with
//! `bitfield-struct`, and nowhere else. Structures that live in guest memory are read *by
//! copy* (the guest may change them underneath us) as little-endian words, so their layout
//! does not depend on the host.
//!
//! Fields whose values the guest chooses freely but which the spec gives meanings to (a
//! translation type, a descriptor type, a granularity) are open newtypes with named
//! constants: every bit pattern is representable and an unknown value is a fault or an error
//! status, never undefined behaviour or a panic.
//!
//! Section numbers refer to the Intel Virtualization Technology for Directed I/O
//! Architecture Specification (rev. 4.x).

pub mod fault;
pub mod invalidation;
pub mod irte;
pub mod pte;
pub mod registers;
pub mod root_context;

/// Size of a VT-d page (the unit of every table and of the smallest mapping).
pub const PAGE_SIZE: u64 = 4096;
/// log2 of [`PAGE_SIZE`].
pub const PAGE_SHIFT: u32 = 12;

/// A 64-bit little-endian word as it lies in guest memory.
pub type LeU64 = zerocopy::little_endian::U64;

/// The interrupt address range: DMA writes here are interrupt requests (§3.14, §5.1).
pub const INTERRUPT_RANGE: core::ops::RangeInclusive<u64> = 0xFEE0_0000..=0xFEEF_FFFF;
