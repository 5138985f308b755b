//! Benchmark support for viommu: shared fixtures for `benches/translate.rs`.
//!
//! Everything here is set-up, run before timing starts:
//!
//! - [`Fixture`]: a unit booted the way Linux boots it, with one device whose domain maps
//!   a run of 4 KiB pages through a 4-level table, and one prepared request per page.
//! - [`fill_seq_cache`]: fills a bare [`SeqCache`] with entries of one domain.

#![deny(missing_docs)]

use viommu::cache::SeqCache;
use viommu::dma::walk::{walk_second_level, Leaf};
use viommu::testing::{
    perm, remappable_msi, ContextSpec, GuestDriver, GuestTables, IrteSpec, TestMemory,
};
use viommu::{
    Config, DmaRequest, Interrupt, InterruptRequest, NoHost, SourceId, Translation, Unit,
};

/// Guest memory given to every fixture: room for the boot-time queue and status page
/// below 1 MiB and for the tables of 64 Ki mapped pages (about 0.5 MiB) above it.
pub const MEMORY_BYTES: usize = 4 << 20;

/// The device whose requests are translated.
pub const DEVICE: SourceId = SourceId::new(0, 3, 0);

/// The device's domain.
pub const DOMAIN: u16 = 1;

/// Levels of the device's second-level table (AGAW 48).
pub const LEVELS: u8 = 4;

/// First mapped I/O virtual address (4 GiB: away from the interrupt range, and using
/// a non-zero index at level 3 so the walk does not stay in entry 0 everywhere).
pub const IOVA_BASE: u64 = 0x1_0000_0000;

/// Guest-physical address the first mapped page points at. Targets need not exist in
/// guest memory: translation never touches them.
pub const GPA_BASE: u64 = 0x80_0000_0000;

/// Page size of every mapping (4 KiB).
pub const PAGE: u64 = 4096;

/// The stride of the 4-level-walk miss workloads: each page in a 2 MiB region of its own
/// (so under a level-1 table of its own, and no walk can start lower), and one page
/// further along in each, so the level-1 entries read sit at different offsets of their
/// tables rather than all in the same few CPU cache sets.
pub const SPREAD_STRIDE: u64 = (2 << 20) + PAGE;

/// A unit booted like Linux, with `pages` consecutive 4 KiB pages mapped for [`DEVICE`].
pub struct Fixture {
    /// The unit under test (it owns the guest memory).
    pub unit: Unit<TestMemory, NoHost>,
    /// Root of the device's second-level table.
    pub table: u64,
    /// One read request per mapped page, in address order.
    pub requests: Vec<DmaRequest>,
}

impl Fixture {
    /// Build the tables for `pages` pages, program the context entry and boot the unit
    /// through MMIO (root table, queued invalidation, global invalidations, TE).
    ///
    /// Nothing is cached yet: call [`warm`](Self::warm) for an IOTLB-hit workload.
    pub fn new(pages: usize) -> Self {
        Self::with_stride(pages, PAGE)
    }

    /// As [`new`](Self::new), with the mapped IOVAs `stride` bytes apart (a multiple of
    /// 4 KiB). With a stride of 2 MiB or more every page has a level-1 table of its own,
    /// so no walk can start below the top level (no SL-PDE-cache hit).
    pub fn with_stride(pages: usize, stride: u64) -> Self {
        // Room for a level-1 table per page when the stride puts each in its own region.
        let tables_bytes = if stride >= 2 << 20 { pages * 4096 } else { 0 };
        let memory = TestMemory::new(MEMORY_BYTES + tables_bytes);
        let unit =
            Unit::new(Config::default(), memory, NoHost).expect("default configuration is valid");
        let (root_table, table) = {
            let mut tables = GuestTables::new(unit.memory());
            let table = tables.new_domain_table();
            for i in 0..pages as u64 {
                tables.map(
                    table,
                    LEVELS,
                    IOVA_BASE + i * stride,
                    GPA_BASE + i * PAGE,
                    12,
                    perm::RW,
                );
            }
            tables.set_context(DEVICE.0, ContextSpec::translated(DOMAIN, table));
            (tables.root_table, table)
        };
        GuestDriver::new(&unit, unit.memory()).boot(root_table);
        let requests = (0..pages as u64)
            // An offset inside the page, so the result is checked on the full address.
            .map(|i| DmaRequest::read(DEVICE, IOVA_BASE + i * stride + 0x10))
            .collect();
        let fixture = Self {
            unit,
            table,
            requests,
        };
        fixture.check_all();
        fixture
    }

    /// Translate every request once (filling the context cache and, if the pages fit,
    /// the IOTLB), checking each result.
    pub fn warm(&self) {
        for _ in 0..2 {
            self.check_all();
        }
    }

    /// Translate every request and panic unless each maps where the tables say.
    fn check_all(&self) {
        for (i, request) in self.requests.iter().enumerate() {
            match self.unit.translate(request) {
                Ok(Translation::Mapped(m)) => assert_eq!(
                    m.translate(request.address),
                    GPA_BASE + i as u64 * PAGE + 0x10,
                    "page {i} maps to its frame"
                ),
                other => panic!("page {i} did not translate: {other:?}"),
            }
        }
    }

    /// The pure 4-level second-level walk for `address`, straight on the guest tables
    /// (no context lookup, no IOTLB).
    #[inline]
    pub fn walk(&self, address: u64) -> Leaf {
        walk_second_level(
            self.unit.memory(),
            self.unit.config(),
            self.table,
            LEVELS,
            address,
        )
        .expect("mapped page walks")
    }
}

/// A unit with interrupt remapping on (x2APIC mode, QI on, DMA remapping off): 64 IRTEs
/// for [`DEVICE`] with source-id verification, and one remappable-format MSI per entry,
/// each already remapped once (the interrupt entry cache is warm).
pub struct IrqFixture {
    /// The unit under test.
    pub unit: Unit<TestMemory, NoHost>,
    /// One MSI per IRTE, in index order.
    pub requests: Vec<InterruptRequest>,
}

impl IrqFixture {
    /// Where the interrupt remapping table lives in guest memory.
    pub const IRT: u64 = 0x40_0000;

    /// Program the table and IR as Linux does in x2APIC mode, and warm the caches.
    pub fn new() -> Self {
        let unit =
            Unit::new(Config::default(), TestMemory::new(8 << 20), NoHost).expect("valid config");
        let mut driver = GuestDriver::new(&unit, unit.memory());
        driver.enable_queued_invalidation();
        for index in 0..64u16 {
            let irte = IrteSpec {
                vector: 0x30 + index as u8,
                destination: u32::from(index),
                sid: DEVICE.0,
                svt: 1,
                ..IrteSpec::default()
            };
            driver.set_irte(Self::IRT, index, &irte);
        }
        driver.enable_interrupt_remapping(Self::IRT, 7, true);
        let requests: Vec<InterruptRequest> = (0..64u16)
            .map(|index| {
                let (address, data) = remappable_msi(index, None);
                InterruptRequest {
                    source_id: DEVICE,
                    address,
                    data,
                }
            })
            .collect();
        for request in &requests {
            assert!(matches!(
                unit.remap_interrupt(request),
                Ok(Interrupt::Remapped(_))
            ));
        }
        Self { unit, requests }
    }
}

impl Default for IrqFixture {
    fn default() -> Self {
        Self::new()
    }
}

/// Key stored in word 0 of a [`fill_seq_cache`] entry for index `i`. Never zero, so an
/// empty slot cannot match.
#[inline]
pub fn seq_cache_key(i: u64) -> u64 {
    i | (1 << 40)
}

/// Hash used for entry `i` (consecutive, like the page numbers the IOTLB hashes).
#[inline]
pub fn seq_cache_hash(i: u64) -> u64 {
    i
}

/// Insert entries `0..n` of `domain` into `cache` and return how many are live
/// afterwards (fewer than `n` when sets overflow and evict).
///
/// Entry `i` has words `[seq_cache_key(i), i, 0, 0]` and hash `seq_cache_hash(i)`.
pub fn fill_seq_cache<const N: usize>(cache: &SeqCache<4, N>, domain: u16, n: usize) -> usize {
    for i in 0..n as u64 {
        let key = seq_cache_key(i);
        let snap = cache.snapshot(domain);
        let inserted = cache.insert(snap, seq_cache_hash(i), [key, i, 0, 0], |w| w[0] == key);
        assert!(inserted, "no invalidation races the fill");
    }
    cache.count_valid()
}
