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

    /// Read the little-endian qword at `gpa` (always 8-byte aligned when the engine calls
    /// it). Paging entries are read this way, one per level of every walk.
    ///
    /// Remapping hardware reads a paging entry with one 64-bit access, so a guest that
    /// rewrites an entry while a device uses it sees the old or the new entry, never a
    /// mix. The default reads 8 bytes with [`read`](Self::read); embedders whose vCPUs run
    /// concurrently with translation should implement it as one atomic 64-bit load, which
    /// is also the fastest way to feed a walk.
    fn read_u64(&self, gpa: u64) -> Result<u64, MemoryError> {
        let mut bytes = [0u8; 8];
        self.read(gpa, &mut bytes)?;
        Ok(u64::from_le_bytes(bytes))
    }

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
    let actual = mem.read_u64(gpa)?;
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
    fn read_u64(&self, gpa: u64) -> Result<u64, MemoryError> {
        (**self).read_u64(gpa)
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

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use crate::testing::TestMemory;

    /// Guest memory with only the required methods: `read_u64` is the trait's default.
    struct BytesOnly<'a>(&'a TestMemory);

    impl GuestMemory for BytesOnly<'_> {
        fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
            self.0.read(gpa, buf)
        }
        fn write(&self, gpa: u64, data: &[u8]) -> Result<(), MemoryError> {
            self.0.write(gpa, data)
        }
    }

    #[test]
    fn read_u64_is_the_little_endian_qword_everywhere_and_fails_outside() {
        let mem = TestMemory::new(64);
        mem.write(0, &(0u8..64).collect::<Vec<_>>()).unwrap();
        let bytes_only = BytesOnly(&mem);
        for gpa in [0, 8, 3, 56] {
            let want = u64::from_le_bytes(core::array::from_fn(|i| gpa as u8 + i as u8));
            assert_eq!(
                GuestMemory::read_u64(&mem, gpa),
                Ok(want),
                "TestMemory at {gpa}"
            );
            assert_eq!(bytes_only.read_u64(gpa), Ok(want), "default at {gpa}");
        }
        for gpa in [57, 64, u64::MAX - 3] {
            assert_eq!(
                GuestMemory::read_u64(&mem, gpa),
                Err(MemoryError),
                "TestMemory at {gpa}"
            );
            assert_eq!(
                bytes_only.read_u64(gpa),
                Err(MemoryError),
                "default at {gpa}"
            );
        }
    }
}
