//! Scenario tests: every invalidation granularity takes effect, through the register-based
//! interface and the invalidation queue, programmed the way Linux's intel-iommu does it; the
//! invalidation wait descriptor; invalidation queue errors and recovery; garbage queues.
//!
//! Each cache test remaps a page (or a context) in the guest's tables *without*
//! invalidating first and checks that translate still returns the old, cached result: that
//! is what proves the invalidation, not a re-walk, is what makes the new one visible.

use viommu::spec::registers::{offset, EventControl, InvalidationQueueErrorRecord, QueueErrorInfo};
use viommu::testing::{
    context_descriptor, device_tlb_descriptor, expect_mapping, iec_descriptor, iotlb_descriptor,
    perm, wait_descriptor, ContextSpec, DriverError, GuestDriver, GuestTables, RecordingHost,
    TestMemory, XorShift, QUEUE_BASE,
};
use viommu::{Config, DmaRequest, GuestMemory, InvalidationEvent, MsiMessage, SourceId, Unit};

const MEM: usize = 64 << 20;
const DEV_A: SourceId = SourceId::new(0, 3, 0);
const DEV_B: SourceId = SourceId::new(1, 0, 0);
const DOM_A: u16 = 1;
const DOM_B: u16 = 2;
const OLD: u64 = 0x100_0000;
const NEW: u64 = 0x200_0000;
const B_OFFSET: u64 = 0x10_0000;
/// A status dword of our own, away from the driver's.
const STATUS: u64 = 0x7_E000;
/// Outside the 64 MiB of guest memory.
const OUTSIDE: u64 = 0x1_0000_0000;

type TestUnit<'a> = Unit<&'a TestMemory, &'a RecordingHost>;
type Driver<'a> = GuestDriver<'a, &'a TestMemory, &'a RecordingHost>;

/// Which invalidation interface the guest uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Via {
    Registers,
    Queue,
}

const BOTH: [Via; 2] = [Via::Registers, Via::Queue];

fn invalidate_iotlb(
    driver: &mut Driver<'_>,
    via: Via,
    g: u8,
    did: u16,
    addr: u64,
    am: u8,
    ih: bool,
) {
    match via {
        Via::Registers => {
            let done = driver.register_invalidate_iotlb(g, did, addr, am, ih);
            assert_eq!(done, g, "IAIG");
        }
        Via::Queue => driver
            .submit_sync(&[iotlb_descriptor(g, did, addr, am, ih)])
            .expect("queued IOTLB invalidation"),
    }
}

fn invalidate_context(driver: &mut Driver<'_>, via: Via, g: u8, did: u16, sid: u16, fm: u8) {
    match via {
        Via::Registers => {
            let done = driver.register_invalidate_context(g, did, sid, fm);
            assert_eq!(done, g, "CAIG");
        }
        Via::Queue => driver
            .submit_sync(&[context_descriptor(g, did, sid, fm)])
            .expect("queued context invalidation"),
    }
}

/// Where `iova` goes for `dev` (read).
fn target(unit: &TestUnit<'_>, dev: SourceId, iova: u64) -> u64 {
    expect_mapping(unit, DmaRequest::read(dev, iova)).translate(iova)
}

/// Two devices in two domains, each mapping `pages` (4 KiB IOVAs) to OLD + iova (DEV_B:
/// + B_OFFSET). Returns the tables and the two domain tables.
fn two_domains<'m>(mem: &'m TestMemory, pages: &[u64]) -> (GuestTables<'m>, u64, u64) {
    let mut tables = GuestTables::new(mem);
    let a = tables.new_domain_table();
    let b = tables.new_domain_table();
    for &iova in pages {
        tables.map(a, 4, iova, OLD + iova, 12, perm::RW);
        tables.map(b, 4, iova, OLD + B_OFFSET + iova, 12, perm::RW);
    }
    tables.set_context(DEV_A.0, ContextSpec::translated(DOM_A, a));
    tables.set_context(DEV_B.0, ContextSpec::translated(DOM_B, b));
    (tables, a, b)
}

/// Remap `pages` of both domains to NEW (+ B_OFFSET for B), without invalidating.
fn remap(tables: &mut GuestTables<'_>, a: u64, b: u64, pages: &[u64]) {
    for &iova in pages {
        tables.map(a, 4, iova, NEW + iova, 12, perm::RW);
        tables.map(b, 4, iova, NEW + B_OFFSET + iova, 12, perm::RW);
    }
}

/// Assert each page of A (and of B) translates to the old or the new mapping.
fn expect_targets(unit: &TestUnit<'_>, pages: &[(u64, bool, bool)]) {
    for &(iova, a_new, b_new) in pages {
        let a = if a_new { NEW } else { OLD } + iova;
        let b = if b_new { NEW } else { OLD } + B_OFFSET + iova;
        assert_eq!(target(unit, DEV_A, iova + 0x10), a + 0x10, "A at {iova:#x}");
        assert_eq!(target(unit, DEV_B, iova + 0x10), b + 0x10, "B at {iova:#x}");
    }
}

/// Boot, translate every page (filling the caches), remap, check the cache still answers.
fn cached_then_remapped<'m>(
    unit: &'m TestUnit<'m>,
    mem: &'m TestMemory,
    host: &RecordingHost,
    pages: &[u64],
) -> Driver<'m> {
    let (mut tables, a, b) = two_domains(mem, pages);
    let mut driver = GuestDriver::new(unit, mem);
    driver.boot(tables.root_table);
    let old: Vec<_> = pages.iter().map(|&p| (p, false, false)).collect();
    expect_targets(unit, &old);
    remap(&mut tables, a, b, pages);
    expect_targets(unit, &old);
    host.take_events();
    host.take_msis();
    driver
}

#[test]
fn global_iotlb_invalidation() {
    for via in BOTH {
        let mem = TestMemory::new(MEM);
        let host = RecordingHost::new();
        let unit = Unit::new(Config::default(), &mem, &host).unwrap();
        let pages = [0x1000, 0x7000_0000];
        let mut driver = cached_then_remapped(&unit, &mem, &host, &pages);
        invalidate_iotlb(&mut driver, via, 1, 0, 0, 0, false);
        assert_eq!(
            host.take_events(),
            [InvalidationEvent::IotlbGlobal],
            "{via:?}"
        );
        expect_targets(&unit, &[(0x1000, true, true), (0x7000_0000, true, true)]);
    }
}

#[test]
fn domain_iotlb_invalidation_leaves_other_domains_cached() {
    for via in BOTH {
        let mem = TestMemory::new(MEM);
        let host = RecordingHost::new();
        let unit = Unit::new(Config::default(), &mem, &host).unwrap();
        let pages = [0x1000, 0x3000_0000];
        let mut driver = cached_then_remapped(&unit, &mem, &host, &pages);
        invalidate_iotlb(&mut driver, via, 2, DOM_A, 0, 0, false);
        assert_eq!(
            host.take_events(),
            [InvalidationEvent::IotlbDomain { domain_id: DOM_A }],
            "{via:?}"
        );
        expect_targets(&unit, &[(0x1000, true, false), (0x3000_0000, true, false)]);
        invalidate_iotlb(&mut driver, via, 2, DOM_B, 0, 0, false);
        expect_targets(&unit, &[(0x1000, true, true), (0x3000_0000, true, true)]);
    }
}

#[test]
fn page_selective_iotlb_invalidation_of_one_page() {
    for via in BOTH {
        for ih in [false, true] {
            let mem = TestMemory::new(MEM);
            let host = RecordingHost::new();
            let unit = Unit::new(Config::default(), &mem, &host).unwrap();
            let pages = [0x1000, 0x2000, 0x40_1000];
            let mut driver = cached_then_remapped(&unit, &mem, &host, &pages);
            invalidate_iotlb(&mut driver, via, 3, DOM_A, 0x2000, 0, ih);
            assert_eq!(
                host.take_events(),
                [InvalidationEvent::IotlbPages {
                    domain_id: DOM_A,
                    address: 0x2000,
                    address_mask: 0,
                    leaf_only: ih,
                }],
                "{via:?}"
            );
            // The named page of the named domain is refetched (IH only spares non-leaf
            // caches); this engine invalidates precisely, so the rest stays cached.
            expect_targets(
                &unit,
                &[
                    (0x2000, true, false),
                    (0x1000, false, false),
                    (0x40_1000, false, false),
                ],
            );
        }
    }
}

#[test]
fn page_selective_iotlb_invalidation_with_an_address_mask() {
    for via in BOTH {
        let mem = TestMemory::new(MEM);
        let host = RecordingHost::new();
        let unit = Unit::new(Config::default(), &mem, &host).unwrap();
        // AM 3: the 8 pages 0x10000..0x18000.
        let pages: Vec<u64> = (0x0F..=0x18).map(|p| p << 12).collect();
        let mut driver = cached_then_remapped(&unit, &mem, &host, &pages);
        invalidate_iotlb(&mut driver, via, 3, DOM_A, 0x1_0000, 3, false);
        assert_eq!(
            host.take_events(),
            [InvalidationEvent::IotlbPages {
                domain_id: DOM_A,
                address: 0x1_0000,
                address_mask: 3,
                leaf_only: false,
            }]
        );
        let expected: Vec<_> = pages
            .iter()
            .map(|&p| (p, (0x1_0000..0x1_8000).contains(&p), false))
            .collect();
        expect_targets(&unit, &expected);
    }
}

#[test]
fn page_selective_invalidation_inside_a_superpage_drops_the_superpage() {
    for via in BOTH {
        for (size_shift, base) in [(21u8, 0x40_0000u64), (30, 0x4000_0000)] {
            let mem = TestMemory::new(MEM);
            let host = RecordingHost::new();
            let unit = Unit::new(Config::default(), &mem, &host).unwrap();
            let mut tables = GuestTables::new(&mem);
            let table = tables.new_domain_table();
            tables.map(table, 4, base, 0, size_shift, perm::RW);
            tables.set_context(DEV_A.0, ContextSpec::translated(DOM_A, table));
            let mut driver = GuestDriver::new(&unit, &mem);
            driver.boot(tables.root_table);
            let m = expect_mapping(&unit, DmaRequest::write(DEV_A, base + 0x5123));
            assert_eq!(
                (m.size_shift, m.translate(base + 0x5123)),
                (size_shift, 0x5123)
            );
            // Remap the superpage; an address near its end is still cached.
            let new_target = 1u64 << size_shift;
            tables.map(table, 4, base, new_target, size_shift, perm::RW);
            let far = base + (1 << size_shift) - 0x1000;
            assert_eq!(target(&unit, DEV_A, far), far - base);
            // Invalidate one 4 KiB page inside it (not its first page).
            invalidate_iotlb(&mut driver, via, 3, DOM_A, base + 0x3_3000, 0, false);
            assert_eq!(
                target(&unit, DEV_A, far),
                new_target + (far - base),
                "{via:?}"
            );
            assert_eq!(target(&unit, DEV_A, base + 0x10), new_target + 0x10);
        }
    }
}

#[test]
fn page_selective_invalidation_of_a_large_range_covers_it() {
    // AM 7 (512 KiB): more pages than worth probing one by one; the engine falls back to
    // the whole domain, which must still cover the range and spare the other domain.
    for via in BOTH {
        let mem = TestMemory::new(MEM);
        let host = RecordingHost::new();
        let unit = Unit::new(Config::default(), &mem, &host).unwrap();
        let pages = [0x8_0000, 0xF_F000, 0x80_0000];
        let mut driver = cached_then_remapped(&unit, &mem, &host, &pages);
        invalidate_iotlb(&mut driver, via, 3, DOM_A, 0x8_0000, 7, false);
        assert_eq!(
            host.take_events(),
            [InvalidationEvent::IotlbPages {
                domain_id: DOM_A,
                address: 0x8_0000,
                address_mask: 7,
                leaf_only: false,
            }]
        );
        expect_targets(&unit, &[(0x8_0000, true, false), (0xF_F000, true, false)]);
    }
}

#[test]
fn queued_page_invalidation_above_mamv_is_done_for_the_domain() {
    let mem = TestMemory::new(MEM);
    let host = RecordingHost::new();
    let config = Config::default();
    let unit = Unit::new(config, &mem, &host).unwrap();
    let pages = [0x1000, 0x4000_0000];
    let mut driver = cached_then_remapped(&unit, &mem, &host, &pages);
    driver
        .submit_sync(&[iotlb_descriptor(
            3,
            DOM_A,
            0,
            config.max_address_mask + 1,
            false,
        )])
        .unwrap();
    assert_eq!(
        host.take_events(),
        [InvalidationEvent::IotlbDomain { domain_id: DOM_A }]
    );
    expect_targets(&unit, &[(0x1000, true, false), (0x4000_0000, true, false)]);
}

#[test]
fn queued_page_invalidation_without_psi_is_done_for_the_domain() {
    let mem = TestMemory::new(MEM);
    let host = RecordingHost::new();
    let config = Config {
        page_selective_invalidation: false,
        ..Config::default()
    };
    let unit = Unit::new(config, &mem, &host).unwrap();
    let pages = [0x1000, 0x2000];
    let mut driver = cached_then_remapped(&unit, &mem, &host, &pages);
    driver.invalidate_iotlb_pages(DOM_A, 0x1000, 0).unwrap();
    assert_eq!(
        host.take_events(),
        [InvalidationEvent::IotlbDomain { domain_id: DOM_A }]
    );
    expect_targets(&unit, &[(0x1000, true, false), (0x2000, true, false)]);
}

/// Devices 0:3.0-7 and 0:4.0 in domain 1, all mapping 0x1000 → OLD; a second table maps
/// 0x1000 → NEW for domain 3. Returns the tables and the second table.
fn functions<'m>(mem: &'m TestMemory) -> (GuestTables<'m>, u64, Vec<SourceId>) {
    let mut tables = GuestTables::new(mem);
    let old = tables.new_domain_table();
    let new = tables.new_domain_table();
    tables.map(old, 4, 0x1000, OLD, 12, perm::RW);
    tables.map(new, 4, 0x1000, NEW, 12, perm::RW);
    let mut devices: Vec<SourceId> = (0..8).map(|f| SourceId::new(0, 3, f)).collect();
    devices.push(SourceId::new(0, 4, 0));
    devices.push(DEV_B);
    for d in &devices {
        tables.set_context(d.0, ContextSpec::translated(1, old));
    }
    (tables, new, devices)
}

/// Boot, cache every device's context, then move every device to domain 3 (table `new`)
/// in the tables only.
fn contexts_cached_then_moved<'m>(
    unit: &'m TestUnit<'m>,
    mem: &'m TestMemory,
    host: &RecordingHost,
) -> (Driver<'m>, Vec<SourceId>) {
    let (mut tables, new, devices) = functions(mem);
    let mut driver = GuestDriver::new(unit, mem);
    driver.boot(tables.root_table);
    for &d in &devices {
        assert_eq!(target(unit, d, 0x1000), OLD);
    }
    for &d in &devices {
        tables.set_context(d.0, ContextSpec::translated(3, new));
    }
    for &d in &devices {
        assert_eq!(target(unit, d, 0x1000), OLD, "context cached for {d:?}");
    }
    host.take_events();
    (driver, devices)
}

fn moved(unit: &TestUnit<'_>, d: SourceId) -> bool {
    let m = expect_mapping(unit, DmaRequest::read(d, 0x1000));
    match m.domain_id {
        Some(3) => {
            assert_eq!(m.output_base, NEW);
            true
        }
        Some(1) => {
            assert_eq!(m.output_base, OLD);
            false
        }
        other => panic!("{d:?} in domain {other:?}"),
    }
}

#[test]
fn global_context_invalidation() {
    for via in BOTH {
        let mem = TestMemory::new(MEM);
        let host = RecordingHost::new();
        let unit = Unit::new(Config::default(), &mem, &host).unwrap();
        let (mut driver, devices) = contexts_cached_then_moved(&unit, &mem, &host);
        invalidate_context(&mut driver, via, 1, 0, 0, 0);
        assert_eq!(host.take_events(), [InvalidationEvent::ContextGlobal]);
        for d in devices {
            assert!(moved(&unit, d), "{d:?} via {via:?}");
        }
    }
}

#[test]
fn domain_context_invalidation() {
    for via in BOTH {
        let mem = TestMemory::new(MEM);
        let host = RecordingHost::new();
        let unit = Unit::new(Config::default(), &mem, &host).unwrap();
        let (mut driver, devices) = contexts_cached_then_moved(&unit, &mem, &host);
        invalidate_context(&mut driver, via, 2, 1, 0, 0);
        assert_eq!(
            host.take_events(),
            [InvalidationEvent::ContextDomain { domain_id: 1 }]
        );
        // Every device of domain 1 sees its new context.
        for d in devices {
            assert!(moved(&unit, d), "{d:?} via {via:?}");
        }
    }
}

#[test]
fn device_context_invalidation_with_each_function_mask() {
    // FM (§6.5.1.1, CCMD): 0 masks nothing, 1 masks SID bit 2, 2 bits 2:1, 3 bits 2:0.
    let cases: [(u8, u8, &[u8]); 6] = [
        (0, 5, &[5]),
        (1, 1, &[1, 5]),
        (1, 6, &[2, 6]),
        (2, 1, &[1, 3, 5, 7]),
        (2, 4, &[0, 2, 4, 6]),
        (3, 6, &[0, 1, 2, 3, 4, 5, 6, 7]),
    ];
    for via in BOTH {
        for (fm, function, expected) in cases {
            let mem = TestMemory::new(MEM);
            let host = RecordingHost::new();
            let unit = Unit::new(Config::default(), &mem, &host).unwrap();
            let (mut driver, devices) = contexts_cached_then_moved(&unit, &mem, &host);
            let sid = SourceId::new(0, 3, function);
            invalidate_context(&mut driver, via, 3, 1, sid.0, fm);
            assert_eq!(
                host.take_events(),
                [InvalidationEvent::ContextDevice {
                    domain_id: 1,
                    source_id: sid.0,
                    function_mask: fm,
                }]
            );
            for d in devices {
                let named =
                    d.bus() == 0 && d.devfn() >> 3 == 3 && expected.contains(&(d.0 as u8 & 7));
                // The named functions must see the new context; this engine invalidates
                // precisely, so the others (and other devices) still use the cached one.
                assert_eq!(
                    moved(&unit, d),
                    named,
                    "{d:?}, FM {fm}, function {function}, {via:?}"
                );
            }
        }
    }
}

#[test]
fn interrupt_entry_and_device_tlb_invalidations_are_reported() {
    let mem = TestMemory::new(MEM);
    let host = RecordingHost::new();
    let config = Config {
        device_tlb: true,
        ..Config::default()
    };
    let unit = Unit::new(config, &mem, &host).unwrap();
    let mut driver = GuestDriver::new(&unit, &mem);
    driver.enable_queued_invalidation();
    host.take_events();
    driver
        .submit_sync(&[
            iec_descriptor(None),
            iec_descriptor(Some((0x1234, 4))),
            device_tlb_descriptor(0x0118, 0x0110, 0x5000, false),
            // S with ADDR bits 13:12 set and 14 clear: 32 KiB at 0x8000.
            device_tlb_descriptor(0x0119, 0x0110, 0xB000, true),
        ])
        .unwrap();
    assert_eq!(
        host.take_events(),
        [
            InvalidationEvent::InterruptEntriesGlobal,
            InvalidationEvent::InterruptEntries {
                index: 0x1230,
                index_mask: 4,
            },
            InvalidationEvent::DeviceTlb {
                source_id: 0x0118,
                pf_source_id: 0x0110,
                address: 0x5000,
                size: 0x1000,
            },
            InvalidationEvent::DeviceTlb {
                source_id: 0x0119,
                pf_source_id: 0x0110,
                address: 0x8000,
                size: 0x8000,
            },
        ]
    );
}

const IE_ADDRESS: u64 = 0x0000_0002_FEE0_2000;
const IE_DATA: u32 = 0x4142;
const IE_MSI: MsiMessage = MsiMessage {
    address: IE_ADDRESS,
    data: IE_DATA,
};
const FE_MSI: MsiMessage = MsiMessage {
    address: 0xFEE0_1000,
    data: 0x4041,
};

fn program_events(driver: &Driver<'_>, ie_masked: bool) {
    driver.write32(offset::IEDATA, IE_DATA);
    driver.write32(offset::IEADDR, IE_ADDRESS as u32);
    driver.write32(offset::IEUADDR, (IE_ADDRESS >> 32) as u32);
    driver.write32(offset::IECTL, if ie_masked { 1 << 31 } else { 0 });
    driver.write32(offset::FEDATA, FE_MSI.data);
    driver.write32(offset::FEADDR, FE_MSI.address as u32);
    driver.write32(offset::FEUADDR, 0);
    driver.write32(offset::FECTL, 0);
}

fn iectl(driver: &Driver<'_>) -> EventControl {
    EventControl::from_bits(driver.read32(offset::IECTL))
}

fn iwc(driver: &Driver<'_>) -> bool {
    driver.read32(offset::ICS) & 1 != 0
}

#[test]
fn invalidation_wait_every_combination_of_sw_if_fn() {
    for masked in [false, true] {
        for bits in 0..8u8 {
            let (sw, interrupt, fence) = (bits & 1 != 0, bits & 2 != 0, bits & 4 != 0);
            let mem = TestMemory::new(MEM);
            let host = RecordingHost::new();
            let unit = Unit::new(Config::default(), &mem, &host).unwrap();
            let mut driver = GuestDriver::new(&unit, &mem);
            driver.enable_queued_invalidation();
            program_events(&driver, masked);
            mem.write_u64(STATUS, u64::MAX);
            let tail = driver.tail();
            driver.submit(&[wait_descriptor(sw, interrupt, fence, 0x600D, STATUS)]);
            let what = format!("SW {sw} IF {interrupt} FN {fence} masked {masked}");
            assert_eq!(driver.read64(offset::IQH), tail + 16, "{what}: consumed");
            assert_eq!(
                mem.peek_u32(STATUS),
                if sw { 0x600D } else { u32::MAX },
                "{what}: status"
            );
            assert_eq!(
                mem.peek_u32(STATUS + 4),
                u32::MAX,
                "{what}: one dword written"
            );
            assert_eq!(iwc(&driver), interrupt, "{what}: ICS.IWC");
            assert_eq!(iectl(&driver).ip(), interrupt && masked, "{what}: IP");
            let sent = interrupt && !masked;
            assert_eq!(
                host.take_msis(),
                if sent { vec![IE_MSI] } else { vec![] },
                "{what}"
            );
            if interrupt && masked {
                driver.write32(offset::IECTL, 0);
                assert_eq!(host.take_msis(), [IE_MSI], "{what}: sent on unmask");
                assert!(!iectl(&driver).ip());
            }
            assert!(!driver.fsts().iqe(), "{what}");
        }
    }
}

#[test]
fn invalidation_completion_event_fires_once_per_iwc() {
    let mem = TestMemory::new(MEM);
    let host = RecordingHost::new();
    let unit = Unit::new(Config::default(), &mem, &host).unwrap();
    let mut driver = GuestDriver::new(&unit, &mem);
    driver.enable_queued_invalidation();
    program_events(&driver, false);
    let wait_if = wait_descriptor(false, true, false, 0, 0);
    driver.submit(&[wait_if]);
    assert_eq!(host.take_msis(), [IE_MSI]);
    // IWC still set: a second IF wait raises no new event.
    driver.submit(&[wait_if, wait_if]);
    assert!(host.take_msis().is_empty());
    assert!(iwc(&driver));
    // Writing 0 leaves it; writing 1 clears it (RW1C).
    driver.write32(offset::ICS, 0);
    assert!(iwc(&driver));
    driver.write32(offset::ICS, 1);
    assert!(!iwc(&driver));
    driver.submit(&[wait_if]);
    assert_eq!(host.take_msis(), [IE_MSI], "a new IWC, a new event");

    // Masked: held in IP; clearing IWC clears IP, so unmasking sends nothing.
    driver.write32(offset::ICS, 1);
    driver.write32(offset::IECTL, 1 << 31);
    driver.submit(&[wait_if]);
    assert!(iectl(&driver).ip());
    assert!(host.take_msis().is_empty());
    driver.write32(offset::ICS, 1);
    assert!(!iectl(&driver).ip(), "IP clears with IWC");
    driver.write32(offset::IECTL, 0);
    assert!(host.take_msis().is_empty());
}

struct BadDescriptor {
    name: &'static str,
    config: Config,
    descriptor: [u64; 2],
    info: QueueErrorInfo,
}

fn bad(name: &'static str, descriptor: [u64; 2], info: QueueErrorInfo) -> BadDescriptor {
    BadDescriptor {
        name,
        config: Config::default(),
        descriptor,
        info,
    }
}

fn bad_descriptors() -> Vec<BadDescriptor> {
    let iotlb = iotlb_descriptor(2, 1, 0, 0, false);
    let wait = wait_descriptor(true, false, false, 1, STATUS + 8);
    let context = context_descriptor(1, 0, 0, 0);
    vec![
        bad("type 0", [0, 0], QueueErrorInfo::INVALID_TYPE),
        bad("type 9", [9, 0], QueueErrorInfo::INVALID_TYPE),
        bad("type 0xF", [0xF, 0], QueueErrorInfo::INVALID_TYPE),
        bad(
            "type 0x15 (high type bits)",
            [0x5 | (1 << 9), STATUS],
            QueueErrorInfo::INVALID_TYPE,
        ),
        bad(
            "type 6 (PASID-based IOTLB) in legacy mode",
            [0x6 | (1 << 4), 0],
            QueueErrorInfo::INVALID_TYPE,
        ),
        bad(
            "type 7 (PASID cache)",
            [0x7, 0],
            QueueErrorInfo::INVALID_TYPE,
        ),
        bad(
            "device-TLB descriptor without device-TLB support",
            device_tlb_descriptor(0x18, 0x18, 0x1000, false),
            QueueErrorInfo::INVALID_TYPE,
        ),
        BadDescriptor {
            name: "IEC descriptor without interrupt remapping",
            config: Config {
                interrupt_remapping: false,
                extended_interrupt_mode: false,
                ..Config::default()
            },
            descriptor: iec_descriptor(None),
            info: QueueErrorInfo::INVALID_TYPE,
        },
        bad(
            "IOTLB descriptor with reserved qword-0 bit 40",
            [iotlb[0] | (1 << 40), iotlb[1]],
            QueueErrorInfo::RESERVED_FIELD,
        ),
        bad(
            "IOTLB descriptor with reserved IVA bits 11:7",
            [iotlb[0], iotlb[1] | (1 << 8)],
            QueueErrorInfo::RESERVED_FIELD,
        ),
        bad(
            "IOTLB descriptor with granularity 0",
            iotlb_descriptor(0, 1, 0, 0, false),
            QueueErrorInfo::RESERVED_FIELD,
        ),
        bad(
            "context descriptor with a non-zero qword 1",
            [context[0], 1],
            QueueErrorInfo::RESERVED_FIELD,
        ),
        bad(
            "context descriptor with granularity 0",
            context_descriptor(0, 0, 0, 0),
            QueueErrorInfo::RESERVED_FIELD,
        ),
        bad(
            "wait descriptor with status address bits 1:0",
            [wait[0], wait[1] | 2],
            QueueErrorInfo::RESERVED_FIELD,
        ),
        bad(
            "wait descriptor with reserved qword-0 bit 8",
            [wait[0] | (1 << 8), wait[1]],
            QueueErrorInfo::RESERVED_FIELD,
        ),
        bad(
            "wait descriptor writing status outside memory",
            wait_descriptor(true, false, false, 1, OUTSIDE),
            QueueErrorInfo::STATUS_WRITE_ERROR,
        ),
    ]
}

/// A queue stopped on a bad descriptor, as Linux's `qi_check_fault` sees it.
#[test]
fn a_bad_descriptor_stops_the_queue_and_fixing_it_resumes() {
    for case in bad_descriptors() {
        let name = case.name;
        let mem = TestMemory::new(MEM);
        let host = RecordingHost::new();
        let unit = Unit::new(case.config, &mem, &host).unwrap();
        let mut driver = GuestDriver::new(&unit, &mem);
        driver.enable_queued_invalidation();
        program_events(&driver, false);
        host.take_events();
        mem.write_u64(STATUS, 0);

        let before = driver.tail();
        let bad_at = before + 16;
        let result = driver.submit_sync(&[
            iotlb_descriptor(1, 0, 0, 0, false),
            case.descriptor,
            wait_descriptor(true, false, false, 0xD0E, STATUS),
        ]);
        assert_eq!(result, Err(DriverError::QueueError), "{name}");
        let fsts = driver.fsts();
        assert!(fsts.iqe(), "{name}: FSTS.IQE");
        let iqercd = InvalidationQueueErrorRecord::from_bits(driver.read64(offset::IQERCD));
        assert_eq!(iqercd.iqei(), case.info.0, "{name}: IQERCD.IQEI");
        assert_eq!(
            driver.read64(offset::IQH),
            bad_at,
            "{name}: IQH on the bad descriptor"
        );
        assert_eq!(
            host.take_events(),
            [InvalidationEvent::IotlbGlobal],
            "{name}: the descriptor before it ran, none after"
        );
        assert_eq!(
            mem.peek_u32(STATUS),
            0,
            "{name}: the later wait did not run"
        );
        assert_eq!(host.take_msis(), [FE_MSI], "{name}: fault event");
        // Writing the tail again does not restart a stopped queue.
        driver.write64(offset::IQT, driver.read64(offset::IQT));
        assert_eq!(driver.read64(offset::IQH), bad_at, "{name}");

        // qi_check_fault: overwrite the bad descriptor with a harmless wait, clear IQE.
        mem.write_u64(
            QUEUE_BASE + bad_at,
            wait_descriptor(false, false, false, 0, 0)[0],
        );
        mem.write_u64(QUEUE_BASE + bad_at + 8, 0);
        driver.write32(offset::FSTS, 1 << 4);
        assert!(!driver.fsts().iqe(), "{name}");
        assert_eq!(mem.peek_u32(STATUS), 0xD0E, "{name}: the later wait ran");
        assert_eq!(
            driver.read64(offset::IQH),
            driver.tail(),
            "{name}: queue drained"
        );
        assert!(host.take_msis().is_empty(), "{name}");
        // The queue keeps working.
        driver.invalidate_iotlb_global().expect(name);
    }
}

#[test]
fn a_queue_error_event_is_held_while_masked_and_raised_anew_after_a_restart() {
    let mem = TestMemory::new(MEM);
    let host = RecordingHost::new();
    let unit = Unit::new(Config::default(), &mem, &host).unwrap();
    let mut driver = GuestDriver::new(&unit, &mem);
    driver.enable_queued_invalidation();
    program_events(&driver, false);
    driver.write32(offset::FECTL, 1 << 31);
    driver.submit(&[[0, 0]]);
    assert!(driver.fsts().iqe());
    assert!(EventControl::from_bits(driver.read32(offset::FECTL)).ip());
    assert!(host.take_msis().is_empty(), "masked");
    driver.write32(offset::FECTL, 0);
    assert_eq!(host.take_msis(), [FE_MSI]);
    // Clearing IQE with the descriptor still bad stops the queue again: IQE was clear in
    // between, so it is a new condition and a new event.
    driver.write32(offset::FSTS, 1 << 4);
    assert!(driver.fsts().iqe());
    assert_eq!(host.take_msis(), [FE_MSI]);
}

#[test]
fn a_queue_error_while_a_fault_is_pending_raises_no_second_event() {
    let mem = TestMemory::new(MEM);
    let host = RecordingHost::new();
    let unit = Unit::new(Config::default(), &mem, &host).unwrap();
    let tables = GuestTables::new(&mem);
    let mut driver = GuestDriver::new(&unit, &mem);
    driver.boot(tables.root_table);
    program_events(&driver, false);
    // No root entry for the device: a recorded fault, PPF set, one event.
    assert!(unit.translate(&DmaRequest::read(DEV_A, 0x1000)).is_err());
    assert!(driver.fsts().ppf());
    assert_eq!(host.take_msis(), [FE_MSI]);
    driver.submit(&[[0, 0]]);
    assert!(driver.fsts().iqe());
    assert!(host.take_msis().is_empty(), "PPF was already pending");
}

#[test]
fn wide_descriptors_are_a_queue_error() {
    let mem = TestMemory::new(MEM);
    let host = RecordingHost::new();
    let unit = Unit::new(Config::default(), &mem, &host).unwrap();
    let driver = GuestDriver::new(&unit, &mem);
    program_events(&driver, false);
    // Linux's dmar_enable_qi in scalable mode: IQA with DW (bit 11) for 256-bit descriptors.
    driver.write64(offset::IQT, 0);
    driver.write64(offset::IQA, QUEUE_BASE | (1 << 11));
    driver.write32(offset::GCMD, 1 << 26);
    mem.write_u64(STATUS, 0);
    let wait = wait_descriptor(true, false, false, 7, STATUS);
    mem.write_u64(QUEUE_BASE, wait[0]);
    mem.write_u64(QUEUE_BASE + 8, wait[1]);
    driver.write64(offset::IQT, 32);
    assert!(driver.fsts().iqe());
    let iqercd = InvalidationQueueErrorRecord::from_bits(driver.read64(offset::IQERCD));
    assert_eq!(iqercd.iqei(), QueueErrorInfo::INVALID_WIDTH.0);
    assert_eq!(driver.read64(offset::IQH), 0);
    assert_eq!(mem.peek_u32(STATUS), 0, "nothing executed");
    assert_eq!(host.take_msis(), [FE_MSI]);
}

fn enable_raw_queue(driver: &Driver<'_>, iqa: u64) {
    driver.write64(offset::IQT, 0);
    driver.write64(offset::IQA, iqa);
    driver.write32(offset::GCMD, 1 << 26);
    assert!(driver.gsts().qie());
}

#[test]
fn a_queue_outside_memory_is_a_fetch_error() {
    for iqa in [OUTSIDE, 1 << 48, 0xFFFF_FFFF_FFFF_F000 | 7] {
        let mem = TestMemory::new(MEM);
        let host = RecordingHost::new();
        let unit = Unit::new(Config::default(), &mem, &host).unwrap();
        let driver = GuestDriver::new(&unit, &mem);
        program_events(&driver, false);
        enable_raw_queue(&driver, iqa);
        driver.write64(offset::IQT, 0x40);
        assert!(driver.fsts().iqe(), "IQA {iqa:#x}");
        let iqercd = InvalidationQueueErrorRecord::from_bits(driver.read64(offset::IQERCD));
        assert_eq!(iqercd.iqei(), QueueErrorInfo::FETCH_ERROR.0);
        assert_eq!(driver.read64(offset::IQH), 0);
        assert_eq!(host.take_msis(), [FE_MSI]);
    }
}

#[test]
fn moving_a_running_queue_to_the_top_of_the_address_space_does_not_panic() {
    let mem = TestMemory::new(MEM);
    let host = RecordingHost::new();
    let unit = Unit::new(Config::default(), &mem, &host).unwrap();
    let mut driver = GuestDriver::new(&unit, &mem);
    driver.enable_queued_invalidation_sized(3);
    // Advance the head well into the queue.
    let iec = iec_descriptor(None);
    driver.submit(&vec![iec; 0x300]);
    assert_eq!(driver.read64(offset::IQH), 0x3000);
    // A guest that moves IQA under a running queue (undefined, but must not panic).
    driver.write64(offset::IQA, 0xFFFF_FFFF_FFFF_F000 | 7);
    driver.write64(offset::IQT, 0x3010);
    assert!(driver.fsts().iqe());
    let iqercd = InvalidationQueueErrorRecord::from_bits(driver.read64(offset::IQERCD));
    assert_eq!(iqercd.iqei(), QueueErrorInfo::FETCH_ERROR.0);
}

#[test]
fn a_tail_beyond_the_queue_is_a_queue_error() {
    let mem = TestMemory::new(MEM);
    let host = RecordingHost::new();
    let unit = Unit::new(Config::default(), &mem, &host).unwrap();
    let mut driver = GuestDriver::new(&unit, &mem);
    driver.enable_queued_invalidation();
    driver.write64(offset::IQT, 0x1000); // one past a 4 KiB queue
    assert!(driver.fsts().iqe());
    assert_eq!(driver.read64(offset::IQH), 0);
}

#[test]
fn disabling_the_queue_resets_the_head_even_after_an_error() {
    let mem = TestMemory::new(MEM);
    let host = RecordingHost::new();
    let unit = Unit::new(Config::default(), &mem, &host).unwrap();
    let mut driver = GuestDriver::new(&unit, &mem);
    driver.enable_queued_invalidation();
    driver.invalidate_iotlb_global().unwrap();
    assert_eq!(driver.submit_sync(&[[0, 0]]), Err(DriverError::QueueError));
    assert_eq!(driver.read64(offset::IQH), 32);
    driver.gcmd.set_qie(false);
    driver.write32(offset::GCMD, driver.gcmd.into_bits());
    assert_eq!(driver.read64(offset::IQH), 0);
    // Linux clears IQE, then re-enables with the tail at 0.
    driver.write32(offset::FSTS, 1 << 4);
    driver.enable_queued_invalidation();
    driver.invalidate_context_global().unwrap();
    assert_eq!(driver.read64(offset::IQH), 32);
}

#[test]
fn a_long_queue_delivers_every_notification() {
    let mem = TestMemory::new(MEM);
    let host = RecordingHost::new();
    let unit = Unit::new(Config::default(), &mem, &host).unwrap();
    let mut driver = GuestDriver::new(&unit, &mem);
    driver.enable_queued_invalidation_sized(1);
    program_events(&driver, false);
    host.take_events();
    let descriptors: Vec<[u64; 2]> = (0..255u64)
        .map(|i| iotlb_descriptor(3, (i % 7) as u16, i << 12, 0, i % 2 == 0))
        .collect();
    let mut all = descriptors.clone();
    all.push(wait_descriptor(true, true, true, 0xF1F0, STATUS));
    driver.submit(&all);
    let expected: Vec<_> = (0..255u64)
        .map(|i| InvalidationEvent::IotlbPages {
            domain_id: (i % 7) as u16,
            address: i << 12,
            address_mask: 0,
            leaf_only: i % 2 == 0,
        })
        .collect();
    assert_eq!(host.take_events(), expected);
    assert_eq!(host.take_msis(), [IE_MSI]);
    assert_eq!(mem.peek_u32(STATUS), 0xF1F0);
    assert_eq!(driver.read64(offset::IQH), 256 * 16);
    // And once more, wrapping around the end of the 8 KiB queue.
    driver.write32(offset::ICS, 1);
    driver.submit(&all);
    assert_eq!(host.take_events().len(), 255);
    assert_eq!(host.take_msis(), [IE_MSI]);
    assert_eq!(driver.read64(offset::IQH), 0);
}

/// Random fields in a descriptor of a random legacy type, reserved fields mostly clear.
fn plausible_descriptor(rng: &mut XorShift) -> [u64; 2] {
    match rng.below(6) {
        0 => [(rng.next_u64() & 0x0003_FFFF_FFFF_0030) | 1, 0],
        1 => [
            (rng.next_u64() & 0x0000_0000_FFFF_00F0) | 2,
            rng.next_u64() & !0xF80,
        ],
        2 => [
            (rng.next_u64() & 0xFFF0_FFFF_001F_F000) | 3,
            rng.next_u64() & !0xFFE,
        ],
        3 => [(rng.next_u64() & 0x0000_FFFF_F800_0010) | 4, 0],
        4 => [
            (rng.next_u64() & 0xFFFF_FFFF_0000_00F0) | 5,
            rng.below(MEM as u64 + 0x1000) & !3,
        ],
        _ => [rng.next_u64(), rng.next_u64()],
    }
}

#[test]
fn garbage_queues_always_terminate() {
    let mut rng = XorShift::new(0xDEAD_BEEF_1234_5678);
    let mut executed = 0;
    for config in [
        Config::default(),
        Config {
            device_tlb: true,
            max_address_mask: 63,
            ..Config::default()
        },
        Config {
            interrupt_remapping: false,
            extended_interrupt_mode: false,
            page_selective_invalidation: false,
            ..Config::default()
        },
    ] {
        let mem = TestMemory::new(MEM);
        let host = RecordingHost::new();
        let unit = Unit::new(config, &mem, &host).unwrap();
        let driver = GuestDriver::new(&unit, &mem);
        program_events(&driver, false);
        for round in 0..40 {
            let qs = rng.below(8);
            let mut queue = vec![0u8; 4096 << qs];
            rng.fill(&mut queue);
            // Steer half the descriptors towards valid types with their reserved fields
            // clear, so that the executors run too, not only the error paths.
            for d in queue.chunks_mut(16) {
                if rng.below(2) == 0 {
                    let [qw0, qw1] = plausible_descriptor(&mut rng);
                    d[..8].copy_from_slice(&qw0.to_le_bytes());
                    d[8..].copy_from_slice(&qw1.to_le_bytes());
                }
            }
            let base = QUEUE_BASE;
            mem.write(base, &queue).unwrap();
            enable_raw_queue(&driver, base | qs);
            for _ in 0..50 {
                let tail = if rng.below(4) == 0 {
                    rng.next_u64()
                } else {
                    rng.below(4096 << qs) & !0xF
                };
                driver.write64(offset::IQT, tail);
                if driver.fsts().iqe() {
                    // Sometimes fix the descriptor at the head (with more garbage), then
                    // clear IQE: processing resumes there (and may stop again).
                    if rng.below(2) == 0 {
                        let head = driver.read64(offset::IQH);
                        let [qw0, qw1] = plausible_descriptor(&mut rng);
                        mem.write_u64(base + head, qw0);
                        mem.write_u64(base + head + 8, qw1);
                    }
                    driver.write32(offset::FSTS, 1 << 4);
                }
                driver.write32(offset::ICS, 1);
            }
            // Disable and re-enable now and then (IQH back to 0).
            if round % 3 == 0 {
                driver.write32(offset::GCMD, 0);
                assert_eq!(driver.read64(offset::IQH), 0);
                driver.write32(offset::FSTS, u32::MAX);
            }
            executed += host.take_events().len();
            host.take_msis();
        }
    }
    assert!(
        executed > 100,
        "the garbage ran some descriptors too ({executed})"
    );
}

/// `Unit::translation_generation`, the contract an embedder's own translation cache relies
/// on: it moves on every invalidation of translations (context or IOTLB, any granularity,
/// registers or queue), on SRTP, TE, reset and restore — and on nothing a device does.
#[test]
fn the_translation_generation_moves_on_every_change_and_only_then() {
    for via in BOTH {
        let mem = TestMemory::new(MEM);
        let host = RecordingHost::new();
        let unit = Unit::new(Config::default(), &mem, &host).unwrap();
        let (tables, _, _) = two_domains(&mem, &[0x1000]);
        let mut driver = GuestDriver::new(&unit, &mem);
        driver.boot(tables.root_table);
        let mut last = unit.translation_generation();
        let mut moved = |unit: &TestUnit<'_>, what: &str| {
            let now = unit.translation_generation();
            assert_ne!(now, last, "{via:?}: {what} moves the generation");
            last = now;
        };

        // Hits, misses and faults of devices leave it alone.
        let before = unit.translation_generation();
        for _ in 0..2 {
            let _ = unit.translate(&DmaRequest::read(DEV_A, 0x1000));
            let _ = unit.translate(&DmaRequest::write(DEV_B, 0x5000));
        }
        assert_eq!(
            unit.translation_generation(),
            before,
            "{via:?}: translations"
        );

        for (g, did, addr) in [(1, 0, 0), (2, DOM_A, 0), (3, DOM_A, 0x1000)] {
            invalidate_iotlb(&mut driver, via, g, did, addr, 0, false);
            moved(&unit, &format!("IOTLB invalidation, granularity {g}"));
        }
        for (g, did, sid) in [(1, 0, 0), (2, DOM_A, 0), (3, DOM_A, DEV_A.0)] {
            invalidate_context(&mut driver, via, g, did, sid, 0);
            moved(&unit, &format!("context invalidation, granularity {g}"));
        }
        driver.set_root_table(tables.root_table);
        moved(&unit, "SRTP");
        driver.gcmd.set_te(false);
        driver.write32(offset::GCMD, driver.gcmd.into_bits());
        moved(&unit, "TE off");
        driver.enable_translation();
        moved(&unit, "TE on");
        let mut blob = vec![0; unit.saved_size()];
        unit.save(&mut blob).unwrap();
        unit.reset();
        moved(&unit, "reset");
        unit.restore(&blob).unwrap();
        moved(&unit, "restore");
    }
}

/// The SL-PDE cache (cached level-2 entries, so a miss near an earlier one reads one
/// entry): a page-selective invalidation of any page of a 2 MiB region drops the region's
/// cached level-2 entry whatever IH says, and so does a domain-selective one, so a new
/// level-1 table the guest put in is used at once.
#[test]
fn invalidating_a_page_drops_its_regions_cached_level_2_entry() {
    const A: u64 = 0x20_1000;
    const B: u64 = 0x20_5000;
    const C: u64 = 0x20_2000;
    for via in BOTH {
        for (granularity, ih) in [(3, false), (3, true), (2, false)] {
            let mem = TestMemory::new(MEM);
            let host = RecordingHost::new();
            let unit = Unit::new(Config::default(), &mem, &host).unwrap();
            let mut tables = GuestTables::new(&mem);
            let table = tables.new_domain_table();
            tables.map(table, 4, A, OLD, 12, perm::RW);
            tables.map(table, 4, B, OLD + 0x5000, 12, perm::RW);
            tables.map(table, 4, C, OLD + 0x2000, 12, perm::RW);
            tables.set_context(DEV_A.0, ContextSpec::translated(DOM_A, table));
            let mut driver = GuestDriver::new(&unit, &mem);
            driver.boot(tables.root_table);
            // The second walk through the region (C's) caches its level-2 entry; B has
            // not been translated.
            assert_eq!(target(&unit, DEV_A, A), OLD);
            assert_eq!(target(&unit, DEV_A, C), OLD + 0x2000);
            // The guest gives the region a new level-1 table in which B maps elsewhere.
            let new_leaf_table = tables.alloc_page();
            mem.write_u64(new_leaf_table + ((B >> 12) & 0x1FF) * 8, NEW | perm::RW);
            tables.set_entry(table, 4, A, 2, new_leaf_table | perm::RW);
            invalidate_iotlb(&mut driver, via, granularity, DOM_A, B, 0, ih);
            assert_eq!(
                target(&unit, DEV_A, B),
                NEW,
                "{via:?}, granularity {granularity}, IH {ih}"
            );
        }
    }
}
