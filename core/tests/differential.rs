//! Differential test: the cached translate path against the uncached reference walk.
//!
//! Random page tables and random operation sequences — translate, change tables, change
//! context entries, invalidate — with a seeded generator. After every invalidation the
//! spec requires for a change, `translate` (context cache + IOTLB) must give exactly what
//! `translate_uncached` (tables read as they are now) gives, fault reasons included.
//!
//! `VIOMMU_DIFF_OPS` sets the operations per seed (default 20 000), `VIOMMU_DIFF_SEEDS`
//! the number of seeds (default 12).

use viommu::spec::registers::{offset, ContextCommand, InvalidateAddress, IotlbInvalidate};
use viommu::spec::root_context::{AddressWidth, TranslationType};
use viommu::testing::{
    context_descriptor, iotlb_descriptor, perm, ContextSpec, GuestDriver, GuestTables, TestMemory,
};
use viommu::{Access, Config, DmaError, DmaRequest, NoHost, SourceId, Unit};

/// xorshift64*: small, seeded, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

const DEVICES: [SourceId; 8] = [
    SourceId::new(0, 1, 0),
    SourceId::new(0, 1, 1),
    SourceId::new(0, 2, 0),
    SourceId::new(1, 0, 0),
    SourceId::new(1, 0, 1),
    SourceId::new(2, 3, 0),
    SourceId::new(2, 3, 7),
    SourceId::new(5, 0, 0),
];
const DOMAINS: usize = 4;
const SMALL_PAGES: u64 = 128;
const LARGE_BASE: u64 = 0x4000_0000;
const LARGE_PAGES: u64 = 8;
const HUGE_BASE: u64 = 0x1_0000_0000;
const HUGE_PAGES: u64 = 4;

struct Domain {
    id: u16,
    table: u64,
    levels: u8,
}

/// A leaf value: usually a valid mapping, sometimes not present or with reserved bits.
fn leaf_value(rng: &mut Rng, size_shift: u8) -> u64 {
    let output = (rng.below(1 << 28) << 12) & !((1u64 << size_shift) - 1);
    let perms = rng.below(4);
    let ps = if size_shift > 12 { 1 << 7 } else { 0 };
    let mut value = output | perms | ps;
    if rng.chance(4) {
        value |= 1 << 50; // above the 48-bit host address width: reserved
    }
    if rng.chance(3) && size_shift > 12 {
        value |= 1 << 12; // misaligned large page: reserved
    }
    value
}

fn random_address(rng: &mut Rng) -> u64 {
    match rng.below(10) {
        0..=4 => rng.below(SMALL_PAGES) << 12 | rng.below(4096),
        5..=6 => LARGE_BASE + rng.below(LARGE_PAGES << 21),
        7..=8 => HUGE_BASE + rng.below(HUGE_PAGES << 30),
        _ => rng.next() & ((1 << 49) - 1),
    }
}

fn random_request(rng: &mut Rng) -> DmaRequest {
    let access = [Access::READ, Access::WRITE, Access::READ_WRITE][rng.below(3) as usize];
    DmaRequest {
        source_id: DEVICES[rng.below(DEVICES.len() as u64) as usize],
        pasid: None,
        address: random_address(rng),
        access,
    }
}

fn same_outcome(
    a: &Result<viommu::Translation, DmaError>,
    b: &Result<viommu::Translation, DmaError>,
) -> bool {
    match (a, b) {
        (Err(DmaError::Fault(x)), Err(DmaError::Fault(y))) => x.reason == y.reason,
        _ => a == b,
    }
}

struct Harness<'m> {
    unit: &'m Unit<&'m TestMemory, NoHost>,
    tables: GuestTables<'m>,
    driver: GuestDriver<'m, &'m TestMemory, NoHost>,
    domains: Vec<Domain>,
    rng: Rng,
    compared: u64,
    /// Cached translates that read no guest memory (cache hits).
    hits: u64,
    /// The last operations, printed when a comparison fails.
    log: std::collections::VecDeque<String>,
}

impl Harness<'_> {
    fn note(&mut self, what: String) {
        if self.log.len() == 40 {
            self.log.pop_front();
        }
        self.log.push_back(what);
    }

    fn context_for(&mut self, device: SourceId) {
        let pick = self.rng.below(10);
        if pick < 7 {
            let d = &self.domains[self.rng.below(DOMAINS as u64) as usize];
            let aw = if d.levels == 3 {
                AddressWidth::AGAW_39
            } else {
                AddressWidth::AGAW_48
            };
            let spec = ContextSpec {
                address_width: aw,
                fpd: self.rng.chance(20),
                ..ContextSpec::translated(d.id, d.table)
            };
            self.tables.set_context(device.0, spec);
        } else if pick == 7 {
            self.tables
                .set_context(device.0, ContextSpec::pass_through(9));
        } else if pick == 8 {
            self.tables.clear_context(device.0, self.rng.chance(50));
        } else {
            let spec = ContextSpec {
                translation_type: TranslationType(3),
                ..ContextSpec::pass_through(9)
            };
            self.tables.set_context(device.0, spec);
        }
    }

    /// One domain, at random: (its table, levels, id).
    fn random_domain(&mut self) -> (u64, u8, u16) {
        let d = &self.domains[self.rng.below(DOMAINS as u64) as usize];
        (d.table, d.levels, d.id)
    }

    /// Change one leaf of one domain; returns (domain id, an address inside the change).
    fn change_table(&mut self) -> (u16, u64) {
        let (table, levels, id) = self.random_domain();
        let (address, level, shift) = match self.rng.below(3) {
            0 => (self.rng.below(SMALL_PAGES) << 12, 1, 12),
            1 => (LARGE_BASE + (self.rng.below(LARGE_PAGES) << 21), 2, 21),
            _ => (HUGE_BASE + (self.rng.below(HUGE_PAGES) << 30), 3, 30),
        };
        let value = if self.rng.chance(15) {
            0
        } else {
            leaf_value(&mut self.rng, shift)
        };
        self.tables.set_entry(table, levels, address, level, value);
        self.note(format!(
            "domain {id}: level {level} entry for {address:#x} = {value:#x}"
        ));
        (id, address + (self.rng.below(1 << shift) & !0xFFF))
    }

    /// Give the small pages' 2 MiB region of one domain a new level-1 table: a copy of
    /// the old one with the leaves of one aligned block of 2^am pages changed. A change to
    /// a level-2 entry, which the SL-PDE cache holds; only the block translates
    /// differently, so a page-selective invalidation of the block (IH clear) is all the
    /// spec asks. Returns (domain id, block address, am).
    fn swap_leaf_table(&mut self) -> (u16, u64, u8) {
        let (table, levels, id) = self.random_domain();
        let old_table = self.tables.entry_address(table, levels, 0, 1);
        let new_table = self.tables.alloc_page();
        for index in 0..512 {
            let value = self.tables.memory().peek_u64(old_table + index * 8);
            self.tables.memory().write_u64(new_table + index * 8, value);
        }
        let am = self.rng.below(4) as u8;
        let block = self.rng.below(SMALL_PAGES >> am) << am;
        for page in block..block + (1 << am) {
            let value = if self.rng.chance(15) {
                0
            } else {
                leaf_value(&mut self.rng, 12)
            };
            self.tables.memory().write_u64(new_table + page * 8, value);
        }
        self.tables
            .set_entry(table, levels, 0, 2, new_table | perm::RW);
        self.note(format!(
            "domain {id}: level 2 entry for 0x0 = new leaf table {new_table:#x}, \
             pages {block:#x}..+{} changed",
            1 << am
        ));
        (id, block << 12, am)
    }

    /// One IOTLB invalidation that covers a change at `address` in domain `id`: at least
    /// 2^`min_am` pages when page-selective, and IH (leaf entries only) only when
    /// `leaf_change`, as the spec asks of software.
    fn invalidate_iotlb(&mut self, id: u16, address: u64, min_am: u8, leaf_change: bool) {
        let queued = self.rng.chance(50);
        let (granularity, am) = match self.rng.below(6) {
            0 => (1, 0),
            1 => (2, 0),
            _ => (3, (self.rng.below(4) as u8).max(min_am)),
        };
        let ih = leaf_change && self.rng.chance(30);
        let base = address & !((1u64 << (12 + am)) - 1);
        self.note(format!(
            "IOTLB invalidation g={granularity} did={id} addr={base:#x} am={am} queued={queued}"
        ));
        if queued {
            self.driver
                .submit_sync(&[iotlb_descriptor(granularity, id, base, am, ih)])
                .unwrap();
        } else {
            let iva = InvalidateAddress::new()
                .with_addr(base >> 12)
                .with_am(am)
                .with_ih(ih);
            self.driver.write64(offset::IVA, iva.into_bits());
            let cmd = IotlbInvalidate::new()
                .with_ivt(true)
                .with_iirg(granularity)
                .with_did(id);
            self.driver.write64(offset::IOTLB, cmd.into_bits());
            assert_eq!(
                IotlbInvalidate::from_bits(self.driver.read64(offset::IOTLB)).iaig(),
                granularity
            );
        }
    }

    fn invalidate_context(&mut self, device: SourceId, old_domain: u16) {
        let (granularity, did, fm) = match self.rng.below(3) {
            0 => (1, 0, 0),
            1 => (2, old_domain, 0),
            _ => (3, old_domain, self.rng.below(4) as u8),
        };
        self.note(format!(
            "context of {:#x} changed; invalidation g={granularity} did={did} fm={fm}",
            device.0
        ));
        if self.rng.chance(50) {
            self.driver
                .submit_sync(&[context_descriptor(granularity, did, device.0, fm)])
                .unwrap();
        } else {
            let cmd = ContextCommand::new()
                .with_icc(true)
                .with_cirg(granularity)
                .with_did(did)
                .with_sid(device.0)
                .with_fm(fm);
            self.driver.write64(offset::CCMD, cmd.into_bits());
        }
    }

    fn compare(&mut self, count: usize) {
        for _ in 0..count {
            let req = random_request(&mut self.rng);
            let reads = self.tables.memory().reads();
            let cached = self.unit.translate(&req);
            if self.tables.memory().reads() == reads {
                self.hits += 1;
            }
            let reference = self.unit.translate_uncached(&req);
            if !same_outcome(&cached, &reference) {
                for line in &self.log {
                    eprintln!("  {line}");
                }
                panic!("{req:?}: cached {cached:?} != reference {reference:?}");
            }
            if self.rng.chance(10) {
                self.note(format!("translate {req:?} -> {cached:?}"));
            }
            self.compared += 1;
        }
    }

    fn domain_of(&self, device: SourceId) -> u16 {
        let mut probe = GuestTables::new_at(self.tables.memory(), self.tables.root_table);
        let entry = probe.context_entry_address(device.0);
        ((self.tables.memory().peek_u64(entry + 8) >> 8) & 0xFFFF) as u16
    }
}

fn run(seed: u64, ops: u64) -> (u64, u64) {
    let mem = TestMemory::new(64 << 20);
    let unit = Unit::new(Config::default(), &mem, NoHost).unwrap();
    let mut tables = GuestTables::new(&mem);
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let domains: Vec<Domain> = (0..DOMAINS)
        .map(|i| Domain {
            id: 1 + i as u16,
            table: tables.new_domain_table(),
            levels: if rng.chance(30) { 3 } else { 4 },
        })
        .collect();
    let mut h = Harness {
        unit: &unit,
        tables,
        driver: GuestDriver::new(&unit, &mem),
        domains,
        rng,
        compared: 0,
        hits: 0,
        log: Default::default(),
    };
    for device in DEVICES {
        h.context_for(device);
    }
    for _ in 0..200 {
        let (id, address) = h.change_table();
        let _ = (id, address);
    }
    let root = h.tables.root_table;
    h.driver.boot(root);
    h.compare(50);
    for _ in 0..ops {
        match h.rng.below(100) {
            0..=59 => h.compare(1),
            60..=89 => {
                // Mostly a leaf; one change in six a whole level-1 table.
                let (id, address, min_am, leaf_change) = if h.rng.chance(17) {
                    let (id, block, am) = h.swap_leaf_table();
                    (id, block, am, false)
                } else {
                    let (id, address) = h.change_table();
                    (id, address, 0, true)
                };
                // Before the invalidation the cache may still hold the old mapping: look
                // (filling the cache) without comparing.
                for _ in 0..2 {
                    let req = random_request(&mut h.rng);
                    let _ = h.unit.translate(&req);
                }
                h.invalidate_iotlb(id, address, min_am, leaf_change);
                h.compare(4);
            }
            90..=98 => {
                let device = DEVICES[h.rng.below(DEVICES.len() as u64) as usize];
                let old = h.domain_of(device);
                h.context_for(device);
                h.invalidate_context(device, old);
                h.compare(4);
            }
            _ => {
                // TE off and on again: nothing cached may survive.
                h.driver.gcmd.set_te(false);
                h.driver.write32(offset::GCMD, h.driver.gcmd.into_bits());
                h.compare(2);
                h.driver.enable_translation();
                h.compare(4);
            }
        }
    }
    (h.compared, h.hits)
}

#[test]
fn cached_translate_matches_the_uncached_reference_walk() {
    let ops: u64 = std::env::var("VIOMMU_DIFF_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let seeds: u64 = std::env::var("VIOMMU_DIFF_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let (mut compared, mut hits) = (0, 0);
    for seed in 1..=seeds {
        let (c, h) = run(seed, ops);
        compared += c;
        hits += h;
    }
    assert!(compared > seeds * ops, "compared {compared}");
    // The comparison means something only if the caches were in use.
    assert!(
        hits * 10 > compared,
        "only {hits} of {compared} cached translates hit"
    );
}

/// Interrupt remapping: random IRTEs (remapped and posted, any SVT/SQ, sometimes not
/// present or reserved), random requests; after each IEC invalidation the spec requires,
/// `remap_interrupt` (IEC) must equal `remap_interrupt_uncached`.
#[test]
fn irq_cached_remap_matches_the_uncached_reference() {
    use viommu::testing::{iec_descriptor, remappable_msi, IrteSpec};
    use viommu::{InterruptError, InterruptRequest};

    const IRT: u64 = 0x40_0000;
    const ENTRIES: u64 = 64;
    let ops: u64 = std::env::var("VIOMMU_DIFF_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    for seed in 1..=4u64 {
        let mem = TestMemory::new(16 << 20);
        let config = Config {
            posted_interrupts: true,
            ..Config::default()
        };
        let unit = Unit::new(config, &mem, NoHost).unwrap();
        let mut rng = Rng(seed.wrapping_mul(0xD1B5_4A32_D192_ED03) | 1);
        let mut driver = GuestDriver::new(&unit, &mem);
        driver.enable_queued_invalidation();
        let random_irte = |rng: &mut Rng| -> [u64; 2] {
            let spec = IrteSpec {
                vector: rng.below(256) as u8,
                destination: rng.next() as u32,
                logical: rng.chance(50),
                level: rng.chance(50),
                redirection_hint: rng.chance(50),
                delivery_mode: rng.below(8) as u8,
                fpd: rng.chance(20),
                sid: DEVICES[rng.below(DEVICES.len() as u64) as usize].0 | rng.below(2) as u16,
                sq: rng.below(4) as u8,
                svt: rng.below(4) as u8,
                posted: rng
                    .chance(20)
                    .then(|| (rng.below(1 << 20) << 6, rng.chance(50))),
            };
            let mut words = spec.encode();
            if rng.chance(10) {
                words[0] &= !1;
            }
            if rng.chance(5) {
                words[1] |= 1 << (20 + rng.below(12)); // IRTE bits 95:84: reserved
            }
            words
        };
        for index in 0..ENTRIES {
            let words = random_irte(&mut rng);
            mem.write_u64(IRT + index * 16, words[0]);
            mem.write_u64(IRT + index * 16 + 8, words[1]);
        }
        driver.enable_interrupt_remapping(IRT, 5, rng.chance(50));
        let (mut compared, mut hits) = (0u64, 0u64);
        for _ in 0..ops {
            if rng.chance(20) {
                let index = rng.below(ENTRIES);
                let words = random_irte(&mut rng);
                mem.write_u64(IRT + index * 16, words[0]);
                mem.write_u64(IRT + index * 16 + 8, words[1]);
                let descriptor = match rng.below(3) {
                    0 => iec_descriptor(None),
                    1 => iec_descriptor(Some((index as u16, 0))),
                    _ => {
                        let mask = rng.below(4) as u8;
                        iec_descriptor(Some(((index as u16) & !((1 << mask) - 1), mask)))
                    }
                };
                driver.submit_sync(&[descriptor]).unwrap();
            }
            let handle = rng.below(ENTRIES + 8) as u16;
            let (address, mut data) =
                remappable_msi(handle, rng.chance(20).then(|| rng.below(4) as u16));
            if rng.chance(3) {
                data |= 1 << 20;
            }
            let address = if rng.chance(5) {
                0xFEE0_0000 | (rng.below(1 << 20) & !0x10)
            } else {
                address
            };
            let request = InterruptRequest {
                source_id: DEVICES[rng.below(DEVICES.len() as u64) as usize],
                address,
                data,
            };
            let reads = mem.reads();
            let cached = unit.remap_interrupt(&request);
            if mem.reads() == reads {
                hits += 1;
            }
            let reference = unit.remap_interrupt_uncached(&request);
            let same = match (&cached, &reference) {
                (Err(InterruptError::Fault(a)), Err(InterruptError::Fault(b))) => {
                    a.reason == b.reason && a.index == b.index
                }
                _ => cached == reference,
            };
            assert!(
                same,
                "seed {seed}: {request:?}: cached {cached:?} != reference {reference:?}"
            );
            compared += 1;
        }
        assert!(
            hits * 10 > compared,
            "seed {seed}: only {hits} of {compared} remaps hit the IEC"
        );
    }
}
