//! The embedder's guest memory, as the remapping hardware sees it.
//!
//! Root, context and page tables, invalidation descriptors and status writes all go through
//! [`GuestMemory`]. The engine never assumes the tables live in host memory, and every
//! access is fallible: a failed read becomes the fault or error status the spec names.

use zerocopy::{FromBytes, IntoBytes};

/// A guest-physical access failed (no memory there, or the embedder refused it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryError;

impl core::fmt::Display for MemoryError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("guest memory access failed")
    }
}

#[cfg(feature = "std")]
impl std::error::Error for MemoryError {}

/// Guest-physical memory as the remapping hardware reaches it (DMA to its own tables).
///
/// Implementations must be callable from any thread at once (translation walks tables
/// without a lock) and must not call back into the unit.
pub trait GuestMemory: Sync {
    /// Read `buf.len()` bytes at guest-physical address `gpa`.
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemoryError>;
    /// Write `data` at guest-physical address `gpa`.
    fn write(&self, gpa: u64, data: &[u8]) -> Result<(), MemoryError>;

    /// Replace the little-endian qword at `gpa` with `new` if it holds `current`:
    /// `Ok(Ok(current))` when replaced, `Ok(Err(actual))` when it held `actual`.
    ///
    /// Used for updates the guest may race (posting interrupts). The default reads then
    /// writes, which is atomic only if the guest is not running meanwhile; embedders whose
    /// vCPUs run concurrently should implement it with a real compare-exchange.
    fn compare_exchange_u64(
        &self,
        gpa: u64,
        current: u64,
        new: u64,
    ) -> Result<Result<u64, u64>, MemoryError> {
        compare_exchange_by_read_write(self, gpa, current, new)
    }
}

/// [`GuestMemory::compare_exchange_u64`] done as a read, a compare and a write — the
/// trait's default, for implementations that fall back to it in some cases (atomic only
/// while the guest is not running).
pub fn compare_exchange_by_read_write<M: GuestMemory + ?Sized>(
    mem: &M,
    gpa: u64,
    current: u64,
    new: u64,
) -> Result<Result<u64, u64>, MemoryError> {
    let mut bytes = [0u8; 8];
    mem.read(gpa, &mut bytes)?;
    let actual = u64::from_le_bytes(bytes);
    if actual != current {
        return Ok(Err(actual));
    }
    mem.write(gpa, &new.to_le_bytes())?;
    Ok(Ok(actual))
}

impl<T: GuestMemory + ?Sized> GuestMemory for &T {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        (**self).read(gpa, buf)
    }
    fn write(&self, gpa: u64, data: &[u8]) -> Result<(), MemoryError> {
        (**self).write(gpa, data)
    }
    fn compare_exchange_u64(
        &self,
        gpa: u64,
        current: u64,
        new: u64,
    ) -> Result<Result<u64, u64>, MemoryError> {
        (**self).compare_exchange_u64(gpa, current, new)
    }
}

/// Read a guest structure by copy: the guest may change it underneath us, so we work on a
/// snapshot and validate that.
pub(crate) fn read_copy<T: FromBytes + IntoBytes>(
    mem: &impl GuestMemory,
    gpa: u64,
) -> Result<T, MemoryError> {
    let mut value = T::new_zeroed();
    mem.read(gpa, value.as_mut_bytes())?;
    Ok(value)
}
