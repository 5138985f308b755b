//! Target `translate`: arbitrary root, context and second-level tables, built with a small
//! DSL (the layout of `viommu::testing::GuestTables`, but fallible so garbage pointers in
//! fuzzed tables never crash the harness) plus raw entry writes; a Linux-like boot
//! (root table, queued or register-based global invalidations, translation on); then
//! arbitrary requests, table changes and invalidations.
//!
//! Invariants: every result satisfies [`crate::common::check_dma`] (page size 4K/2M/1G,
//! bases aligned, address inside the page, page inside 2^MGAW, permissions include the
//! request's access, fault reasons among the legacy codes); the same request twice in a
//! row gives the same outcome; and whenever no invalidation is pending — right after a
//! global context + IOTLB invalidation, SRTP or a TE change, with no table change since —
//! `translate` and `translate_uncached` agree exactly.

use std::collections::BTreeMap;

use arbitrary::Arbitrary;
use viommu::spec::registers::offset;
use viommu::testing::{context_descriptor, iotlb_descriptor, GuestDriver, TABLES_BASE};
use viommu::{Access, Config, DmaRequest, GuestMemory, NoHost, SourceId, Unit};

use crate::common::{check_dma, dma_outcome, Addr, ConfigBits, MemWrite, WatchedMemory};

/// Guest memory size for this target: tables from 1 MiB up.
pub const MEMORY: usize = 4 << 20;
/// Top-level tables allocated for domains before anything else.
pub const DOMAIN_TABLES: usize = 4;

/// A change to the tables.
#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
pub enum TableOp {
    /// Program a context entry (creating its context table) like `GuestTables::set_context`.
    Context {
        /// Source id.
        sid: u16,
        /// Domain id.
        domain: u16,
        /// AW field (modulo 8).
        aw: u8,
        /// TT field (modulo 4).
        tt: u8,
        /// FPD.
        fpd: bool,
        /// Which domain table (modulo [`DOMAIN_TABLES`]).
        table: u8,
    },
    /// Make a context entry not present.
    ClearContext {
        /// Source id.
        sid: u16,
        /// FPD.
        fpd: bool,
    },
    /// Map a page like `GuestTables::map`.
    Map {
        /// Which domain table.
        table: u8,
        /// Levels: 3 + (n % 3).
        levels: u8,
        /// Input address.
        iova: Addr,
        /// Output address (aligned down to the page size).
        gpa: u64,
        /// Page size: 4K, 2M, 1G by n % 3.
        size: u8,
        /// R/W bits (modulo 4).
        perms: u8,
    },
    /// Write a raw second-level entry at the place of `iova` at `level`.
    Entry {
        /// Which domain table.
        table: u8,
        /// Levels: 3 + (n % 3).
        levels: u8,
        /// Input address.
        iova: Addr,
        /// Level: 1 + (n % levels).
        level: u8,
        /// The raw entry.
        value: u64,
    },
    /// Write a raw root entry.
    Root {
        /// Bus.
        bus: u8,
        /// Low qword.
        low: u64,
        /// High qword.
        high: u64,
    },
    /// Write a raw context entry.
    RawContext {
        /// Source id.
        sid: u16,
        /// Low qword.
        low: u64,
        /// High qword.
        high: u64,
    },
    /// Any qword of guest memory.
    Poke(MemWrite),
}

/// What happens after boot.
#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// A DMA request.
    Request {
        /// Requester.
        sid: u16,
        /// Address.
        address: Addr,
        /// Access bits (modulo 4).
        access: u8,
        /// PASID.
        pasid: Option<u32>,
    },
    /// The guest changes its tables (an invalidation is now pending).
    Table(TableOp),
    /// Global context-cache and IOTLB invalidation.
    InvalidateGlobal,
    /// Domain-selective IOTLB invalidation.
    InvalidateDomain {
        /// Domain id.
        domain: u16,
    },
    /// Page-selective IOTLB invalidation.
    InvalidatePages {
        /// Domain id.
        domain: u16,
        /// Address.
        address: Addr,
        /// Address mask.
        am: u8,
    },
    /// Device-selective context-cache invalidation.
    InvalidateDevice {
        /// Domain id.
        domain: u16,
        /// Source id.
        sid: u16,
        /// Function mask.
        fm: u8,
    },
    /// Toggle GCMD.TE.
    ToggleTranslation,
    /// Set the root table pointer again (SRTP).
    SetRootTable,
}

/// The input of the `translate` target.
#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// Configuration.
    pub config: ConfigBits,
    /// Tables before boot.
    pub setup: Vec<TableOp>,
    /// After boot.
    pub ops: Vec<Op>,
}

/// Builds tables with the layout of `GuestTables`, failing instead of panicking.
pub struct Builder<'m> {
    memory: &'m WatchedMemory,
    next_page: u64,
    /// Root table.
    pub root: u64,
    /// Top-level second-level tables of the domains.
    pub tables: [u64; DOMAIN_TABLES],
    /// The translated (TT 0) context entries programmed: source id -> (domain id, AW,
    /// table index).
    translated: BTreeMap<u16, (u16, u8, usize)>,
}

impl<'m> Builder<'m> {
    /// Allocate the root table and the domain tables from [`TABLES_BASE`].
    pub fn new(memory: &'m WatchedMemory) -> Self {
        let mut b = Self {
            memory,
            next_page: TABLES_BASE,
            root: 0,
            tables: [0; DOMAIN_TABLES],
            translated: BTreeMap::new(),
        };
        b.root = b.alloc().expect("root table fits");
        for i in 0..DOMAIN_TABLES {
            b.tables[i] = b.alloc().expect("domain table fits");
        }
        b
    }

    fn alloc(&mut self) -> Option<u64> {
        let page = self.next_page;
        if page + 4096 > self.memory.inner.size() {
            return None;
        }
        self.next_page += 4096;
        GuestMemory::write(&self.memory.inner, page, &[0u8; 4096]).ok()?;
        Some(page)
    }

    fn context_entry(&mut self, sid: u16) -> Option<u64> {
        let root_entry = self.root + u64::from(sid >> 8) * 16;
        let low = self.memory.peek(root_entry)?;
        let table = if low & 1 == 0 {
            let table = self.alloc()?;
            self.memory.poke(root_entry, table | 1);
            table
        } else {
            low & !0xFFF
        };
        Some(table + u64::from(sid & 0xFF) * 16)
    }

    fn entry_address(&mut self, table: u64, levels: u8, iova: u64, level: u8) -> Option<u64> {
        let mut table = table;
        for l in (level + 1..=levels).rev() {
            let shift = 12 + 9 * (u32::from(l) - 1);
            let entry = table + ((iova >> shift) & 0x1FF) * 8;
            let value = self.memory.peek(entry)?;
            table = if value & 3 == 0 {
                let next = self.alloc()?;
                self.memory.poke(entry, next | 3);
                next
            } else {
                value & 0x000F_FFFF_FFFF_F000
            };
        }
        let shift = 12 + 9 * (u32::from(level) - 1);
        Some(table + ((iova >> shift) & 0x1FF) * 8)
    }

    /// Whether every domain id is used with one set of tables: the spec makes software
    /// responsible for that (the caches are tagged by domain id), so when two contexts
    /// share a domain id but not their tables and AW, which translation a device gets
    /// depends on which device filled the IOTLB first, and cached and uncached results
    /// may rightly differ.
    pub fn domains_consistent(&self) -> bool {
        let mut seen: BTreeMap<u16, (u8, usize)> = BTreeMap::new();
        self.translated
            .values()
            .all(|&(domain, aw, table)| *seen.entry(domain).or_insert((aw, table)) == (aw, table))
    }

    /// Carry out a table operation; one that would leave memory is skipped.
    pub fn apply(&mut self, op: &TableOp) {
        let _ = self.try_apply(op);
    }

    fn try_apply(&mut self, op: &TableOp) -> Option<()> {
        match *op {
            TableOp::Context {
                sid,
                domain,
                aw,
                tt,
                fpd,
                table,
            } => {
                let entry = self.context_entry(sid)?;
                let index = usize::from(table) % DOMAIN_TABLES;
                if tt % 4 == 0 {
                    self.translated.insert(sid, (domain, aw % 8, index));
                } else {
                    self.translated.remove(&sid);
                }
                let table = self.tables[index];
                let low = 1 | (u64::from(fpd) << 1) | (u64::from(tt % 4) << 2) | table;
                let high = u64::from(aw % 8) | (u64::from(domain) << 8);
                self.memory.poke(entry + 8, high);
                self.memory.poke(entry, low);
            }
            TableOp::ClearContext { sid, fpd } => {
                let entry = self.context_entry(sid)?;
                self.translated.remove(&sid);
                self.memory.poke(entry, u64::from(fpd) << 1);
                self.memory.poke(entry + 8, 0);
            }
            TableOp::Map {
                table,
                levels,
                iova,
                gpa,
                size,
                perms,
            } => {
                let levels = 3 + levels % 3;
                let level = size % 3 + 1;
                let table = self.tables[usize::from(table) % DOMAIN_TABLES];
                let entry = self.entry_address(table, levels, iova.get(), level)?;
                let size_shift = 12 + 9 * u32::from(level - 1);
                let gpa = gpa & 0x000F_FFFF_FFFF_F000 & !((1u64 << size_shift) - 1);
                let ps = if level > 1 { 1 << 7 } else { 0 };
                self.memory.poke(entry, gpa | u64::from(perms % 4) | ps);
            }
            TableOp::Entry {
                table,
                levels,
                iova,
                level,
                value,
            } => {
                let levels = 3 + levels % 3;
                let level = 1 + level % levels;
                let table = self.tables[usize::from(table) % DOMAIN_TABLES];
                let entry = self.entry_address(table, levels, iova.get(), level)?;
                self.memory.poke(entry, value);
            }
            TableOp::Root { bus, low, high } => {
                let entry = self.root + u64::from(bus) * 16;
                self.memory.poke(entry + 8, high);
                self.memory.poke(entry, low);
            }
            TableOp::RawContext { sid, low, high } => {
                let entry = self.context_entry(sid)?;
                self.memory.poke(entry + 8, high);
                self.memory.poke(entry, low);
            }
            TableOp::Poke(w) => self.memory.apply(&[w]),
        }
        Some(())
    }
}

/// Global context-cache and IOTLB invalidation, queued when QI is on, else by register.
fn invalidate_global(d: &mut GuestDriver<'_, &WatchedMemory, NoHost>, config: &Config) {
    if config.queued_invalidation {
        assert_eq!(
            d.invalidate_context_global(),
            Ok(()),
            "queued context invalidation"
        );
        assert_eq!(
            d.invalidate_iotlb_global(),
            Ok(()),
            "queued IOTLB invalidation"
        );
    } else {
        assert_eq!(d.register_invalidate_context(1, 0, 0, 0), 1, "CAIG global");
        assert_eq!(
            d.register_invalidate_iotlb(1, 0, 0, 0, false),
            1,
            "IAIG global"
        );
    }
}

/// Run one input.
pub fn run(input: &Input) {
    let config = input.config.config();
    let memory = WatchedMemory::new(MEMORY);
    let mut builder = Builder::new(&memory);
    for op in &input.setup {
        builder.apply(op);
    }
    let unit = Box::new(Unit::new(config, &memory, NoHost).expect("valid config"));
    let mut d = GuestDriver::new(&unit, &memory.inner);
    d.set_root_table(builder.root);
    if config.queued_invalidation {
        d.enable_queued_invalidation();
    }
    invalidate_global(&mut d, &config);
    d.enable_translation();
    // Whether translate must agree with translate_uncached: no table change since the
    // last global invalidation.
    let mut clean = true;
    for op in &input.ops {
        match op {
            Op::Request {
                sid,
                address,
                access,
                pasid,
            } => {
                let request = DmaRequest {
                    source_id: SourceId(*sid),
                    pasid: *pasid,
                    address: address.get(),
                    access: Access::from_bits(*access),
                };
                let result = unit.translate(&request);
                check_dma(&config, &request, &result);
                if crate::common::tracing() {
                    eprintln!("{request:?} -> {result:?} (clean: {clean})");
                }
                let again = unit.translate(&request);
                assert_eq!(
                    dma_outcome(&result),
                    dma_outcome(&again),
                    "the same request twice in a row: {request:?}"
                );
                let reference = unit.translate_uncached(&request);
                check_dma(&config, &request, &reference);
                if clean && builder.domains_consistent() {
                    assert_eq!(
                        dma_outcome(&result),
                        dma_outcome(&reference),
                        "cached and uncached translation differ with no invalidation pending: {request:?}"
                    );
                }
            }
            Op::Table(t) => {
                builder.apply(t);
                clean = false;
            }
            Op::InvalidateGlobal => {
                invalidate_global(&mut d, &config);
                clean = true;
            }
            Op::InvalidateDomain { domain } => {
                if config.queued_invalidation {
                    assert_eq!(
                        d.submit_sync(&[iotlb_descriptor(2, *domain, 0, 0, false)]),
                        Ok(())
                    );
                } else {
                    d.register_invalidate_iotlb(2, *domain, 0, 0, false);
                }
            }
            Op::InvalidatePages {
                domain,
                address,
                am,
            } => {
                let am = am % 64;
                if config.queued_invalidation {
                    assert_eq!(
                        d.submit_sync(&[iotlb_descriptor(3, *domain, address.get(), am, false)]),
                        Ok(())
                    );
                } else {
                    d.register_invalidate_iotlb(3, *domain, address.get(), am, false);
                }
            }
            Op::InvalidateDevice { domain, sid, fm } => {
                if config.queued_invalidation {
                    assert_eq!(
                        d.submit_sync(&[context_descriptor(3, *domain, *sid, fm % 4)]),
                        Ok(())
                    );
                } else {
                    d.register_invalidate_context(3, *domain, *sid, fm % 4);
                }
            }
            Op::ToggleTranslation => {
                let on = !d.gcmd.te();
                d.gcmd.set_te(on);
                d.write32(offset::GCMD, d.gcmd.into_bits());
                assert_eq!(d.gsts().te(), on, "TES follows TE");
                clean = true;
            }
            Op::SetRootTable => {
                d.set_root_table(builder.root);
                clean = true;
            }
        }
    }
    // Whatever happened, a global invalidation brings the caches back in line — as far
    // as the spec asks: contexts that share a domain id but not its tables may still share
    // IOTLB entries afterwards (finding 5 in docs/reliability.md).
    invalidate_global(&mut d, &config);
    if !builder.domains_consistent() {
        return;
    }
    for op in &input.ops {
        if let Op::Request {
            sid,
            address,
            access,
            pasid,
        } = op
        {
            let request = DmaRequest {
                source_id: SourceId(*sid),
                pasid: *pasid,
                address: address.get(),
                access: Access::from_bits(*access),
            };
            assert_eq!(
                dma_outcome(&unit.translate(&request)),
                dma_outcome(&unit.translate_uncached(&request)),
                "after the final global invalidation: {request:?}"
            );
        }
    }
}
