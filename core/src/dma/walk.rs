//! The second-level page walk (§3.7, §9.8).
//!
//! A pure function of guest memory, the table root and the input address: no lock, no
//! cache. Its result is the whole leaf page with the permissions of every level ANDed,
//! so the caller can cache the page and check any later request against it.

use crate::config::Config;
use crate::dma::context::below_haw;
use crate::memory::{read_copy, GuestMemory};
use crate::spec::fault::FaultReason;
use crate::spec::pte::SecondLevelEntry;
use crate::spec::PAGE_SHIFT;

/// A leaf found by a walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leaf {
    /// Input address of the page's first byte.
    pub input_base: u64,
    /// Output address of the page's first byte.
    pub output_base: u64,
    /// log2 of the page size (12, 21, 30).
    pub size_shift: u8,
    /// Read permitted at every level.
    pub read: bool,
    /// Write permitted at every level.
    pub write: bool,
}

/// Why a walk stopped short of a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalkError {
    /// A fault with this reason, whatever the request's access.
    Fault(FaultReason),
    /// An entry on the path is not present (R and W clear): the request faults with
    /// read- or write-not-permitted, depending on its access.
    NotPresent,
}

/// Walk `levels` levels of second-level tables rooted at `table` for `address`.
///
/// `address` must already be checked against the address width; bits above the
/// walked width are ignored.
pub fn walk_second_level(
    mem: &impl GuestMemory,
    config: &Config,
    table: u64,
    levels: u8,
    address: u64,
) -> Result<Leaf, WalkError> {
    let large_pages = config.large_page_levels();
    let haw_mask = (1u64 << config.host_address_width) - 1;
    let mut table = table;
    let mut read = true;
    let mut write = true;
    // The loop runs at most `levels` (≤ 6) times: a guest cannot make it loop longer.
    for level in (1..=levels).rev() {
        let shift = u32::from(PAGE_SHIFT) + 9 * (u32::from(level) - 1);
        let index = (address >> shift) & 0x1FF;
        let entry_addr = table + index * SecondLevelEntry::SIZE;
        if !below_haw(config, entry_addr) {
            return Err(WalkError::Fault(FaultReason::PAGING_ENTRY_ACCESS_ERROR));
        }
        let entry: SecondLevelEntry = read_copy(mem, entry_addr)
            .map_err(|_| WalkError::Fault(FaultReason::PAGING_ENTRY_ACCESS_ERROR))?;
        if !entry.is_present() {
            return Err(WalkError::NotPresent);
        }
        let target = entry.addr() << PAGE_SHIFT;
        if target & !haw_mask != 0 {
            return Err(WalkError::Fault(FaultReason::PAGING_ENTRY_RESERVED));
        }
        read &= entry.r();
        write &= entry.w();
        // PS is meaningful at levels 2 and 3 when the matching SLLPS bit is set; at level 1
        // it is ignored, everywhere else it is reserved.
        let is_leaf = level == 1 || entry.ps();
        if entry.ps() && level > 1 && (level > 3 || large_pages & (1 << (level - 2)) == 0) {
            return Err(WalkError::Fault(FaultReason::PAGING_ENTRY_RESERVED));
        }
        if is_leaf {
            let page_mask = (1u64 << shift) - 1;
            if target & page_mask != 0 {
                // A large page's address bits below its size are reserved.
                return Err(WalkError::Fault(FaultReason::PAGING_ENTRY_RESERVED));
            }
            return Ok(Leaf {
                input_base: address & !page_mask,
                output_base: target,
                size_shift: shift as u8,
                read,
                write,
            });
        }
        table = target;
    }
    // `levels` was zero: no table to walk.
    Err(WalkError::Fault(FaultReason::CONTEXT_ENTRY_INVALID))
}
