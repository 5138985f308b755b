//! The second-level page walk (§3.7, §9.8), and enumeration of the mappings in a range.
//!
//! Pure functions of guest memory, the table root and the input address: no lock, no
//! cache. A walk's result is the whole leaf page with the permissions of every level
//! ANDed, so the caller can cache the page and check any later request against it. What
//! an entry means at a level — not present, a table, a page, or reserved — is decided in
//! one place, [`classify`], for both.

use crate::config::Config;
use crate::dma::context::below_haw;
use crate::memory::GuestMemory;
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

/// What a second-level entry is at its level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Entry {
    NotPresent,
    Table(u64),
    Page(u64),
    Reserved,
}

/// log2 of the bytes one entry at `level` spans.
fn level_shift(level: u8) -> u32 {
    PAGE_SHIFT + 9 * (u32::from(level) - 1)
}

/// Decide what `entry` is at `level`: PS is meaningful at levels 2 and 3 when the matching
/// SLLPS bit is set, ignored at level 1 and reserved elsewhere; address bits at or above
/// HAW are reserved, and so are a large page's address bits below its size.
fn classify(config: &Config, entry: SecondLevelEntry, level: u8) -> Entry {
    if !entry.is_present() {
        return Entry::NotPresent;
    }
    let target = entry.addr() << PAGE_SHIFT;
    if target >> config.host_address_width != 0 {
        return Entry::Reserved;
    }
    if level > 1 && entry.ps() {
        let allowed = level <= 3 && config.large_page_levels() & (1 << (level - 2)) != 0;
        if !allowed || target & ((1u64 << level_shift(level)) - 1) != 0 {
            return Entry::Reserved;
        }
        return Entry::Page(target);
    }
    if level == 1 {
        Entry::Page(target)
    } else {
        Entry::Table(target)
    }
}

/// Read the entry at `index` of `table`; `None` when the read fails or is out of reach.
fn read_entry(
    mem: &impl GuestMemory,
    config: &Config,
    table: u64,
    index: u64,
) -> Option<SecondLevelEntry> {
    let address = table + index * SecondLevelEntry::SIZE;
    if !below_haw(config, address) {
        return None;
    }
    mem.read_u64(address)
        .ok()
        .map(|bits| SecondLevelEntry::from_bits(bits.into()))
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
    walk_from(
        mem,
        config,
        WalkStart::root(table, levels),
        address,
        &mut None,
    )
}

/// Where a walk starts: a table at a level, with the permissions ANDed over the levels
/// above it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WalkStart {
    pub(crate) table: u64,
    pub(crate) level: u8,
    pub(crate) read: bool,
    pub(crate) write: bool,
}

impl WalkStart {
    /// The context's table at the top level: nothing above it.
    pub(crate) fn root(table: u64, levels: u8) -> Self {
        Self {
            table,
            level: levels,
            read: true,
            write: true,
        }
    }
}

/// Walk from `start` for `address`. When the walk goes through a level-2 entry that
/// points to a table (an SL-PDE), that level-1 table and the permissions above it are
/// stored in `leaf_table`: what the SL-PDE cache holds.
pub(crate) fn walk_from(
    mem: &impl GuestMemory,
    config: &Config,
    start: WalkStart,
    address: u64,
    leaf_table: &mut Option<WalkStart>,
) -> Result<Leaf, WalkError> {
    let mut table = start.table;
    let (mut read, mut write) = (start.read, start.write);
    // At most `start.level` (≤ 6) iterations: a guest cannot make it loop longer.
    for level in (1..=start.level).rev() {
        let shift = level_shift(level);
        let entry = read_entry(mem, config, table, (address >> shift) & 0x1FF)
            .ok_or(WalkError::Fault(FaultReason::PAGING_ENTRY_ACCESS_ERROR))?;
        read &= entry.r();
        write &= entry.w();
        match classify(config, entry, level) {
            Entry::NotPresent => return Err(WalkError::NotPresent),
            Entry::Reserved => return Err(WalkError::Fault(FaultReason::PAGING_ENTRY_RESERVED)),
            Entry::Table(next) => {
                if level == 2 {
                    *leaf_table = Some(WalkStart {
                        table: next,
                        level: 1,
                        read,
                        write,
                    });
                }
                table = next;
            }
            Entry::Page(output_base) => {
                return Ok(Leaf {
                    input_base: address & !((1u64 << shift) - 1),
                    output_base,
                    size_shift: shift as u8,
                    read,
                    write,
                })
            }
        }
    }
    // `levels` was zero: no table to walk.
    Err(WalkError::Fault(FaultReason::CONTEXT_ENTRY_INVALID))
}

/// The enumeration stopped because it visited its budget of pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BudgetExhausted;

/// Visit every page mapped by the `levels`-level table at `table` that intersects the
/// input range `first..=last`, in address order, reading the tables as they are now.
///
/// Entries that are not present, reserved, or cannot be read map nothing. At most
/// `*budget` pages are visited (it is decremented); a guest can build tables that map the
/// same page table at every slot, so an enumeration must always be bounded.
#[allow(clippy::too_many_arguments)]
pub fn for_each_leaf(
    mem: &impl GuestMemory,
    config: &Config,
    table: u64,
    levels: u8,
    first: u64,
    last: u64,
    budget: &mut u64,
    visit: &mut impl FnMut(&Leaf),
) -> Result<(), BudgetExhausted> {
    if levels == 0 || first > last {
        return Ok(());
    }
    let top_shift = level_shift(levels) + 9;
    let last = if top_shift >= 64 {
        last
    } else {
        last.min((1u64 << top_shift) - 1)
    };
    if first > last {
        return Ok(());
    }
    enumerate(
        mem,
        config,
        table,
        levels,
        0,
        first,
        last,
        (true, true),
        budget,
        visit,
    )
}

#[allow(clippy::too_many_arguments)]
fn enumerate(
    mem: &impl GuestMemory,
    config: &Config,
    table: u64,
    level: u8,
    base: u64,
    first: u64,
    last: u64,
    (read, write): (bool, bool),
    budget: &mut u64,
    visit: &mut impl FnMut(&Leaf),
) -> Result<(), BudgetExhausted> {
    let shift = level_shift(level);
    let first_index = first.saturating_sub(base) >> shift;
    let last_index = ((last - base) >> shift).min(511);
    // Recursion depth is at most `levels` (≤ 6).
    for index in first_index..=last_index {
        let Some(entry) = read_entry(mem, config, table, index) else {
            continue;
        };
        let input_base = base + (index << shift);
        let perms = (read && entry.r(), write && entry.w());
        match classify(config, entry, level) {
            Entry::NotPresent | Entry::Reserved => {}
            Entry::Page(output_base) => {
                if *budget == 0 {
                    return Err(BudgetExhausted);
                }
                *budget -= 1;
                visit(&Leaf {
                    input_base,
                    output_base,
                    size_shift: shift as u8,
                    read: perms.0,
                    write: perms.1,
                });
            }
            Entry::Table(next) => {
                let span_last = input_base + ((1u64 << shift) - 1);
                enumerate(
                    mem,
                    config,
                    next,
                    level - 1,
                    input_base,
                    first.max(input_base),
                    last.min(span_last),
                    perms,
                    budget,
                    visit,
                )?;
            }
        }
    }
    Ok(())
}
