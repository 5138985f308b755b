//! Scenario tests: DMA translation, programmed the way a guest driver does it.

use viommu::spec::registers::offset;
use viommu::spec::root_context::{AddressWidth, TranslationType};
use viommu::testing::{perm, ContextSpec, GuestDriver, GuestTables, RecordingHost, TestMemory};
use viommu::{
    Access, Config, DmaError, DmaRequest, FaultReason, Mapping, SourceId, Translation, Unit,
};

const MEM: usize = 64 << 20;
const DEV_A: SourceId = SourceId::new(0, 3, 0);
const DEV_B: SourceId = SourceId::new(1, 0, 0);

fn mapped(unit: &Unit<&TestMemory, &RecordingHost>, req: DmaRequest) -> Mapping {
    match unit.translate(&req) {
        Ok(Translation::Mapped(m)) => m,
        other => panic!("expected a mapping for {req:?}, got {other:?}"),
    }
}

fn fault_of(unit: &Unit<&TestMemory, &RecordingHost>, req: DmaRequest) -> FaultReason {
    match unit.translate(&req) {
        Err(DmaError::Fault(f)) => f.reason,
        other => panic!("expected a fault for {req:?}, got {other:?}"),
    }
}

#[test]
fn translation_disabled_passes_addresses_through() {
    let mem = TestMemory::new(MEM);
    let host = RecordingHost::new();
    let unit = Unit::new(Config::default(), &mem, &host).unwrap();
    let m = mapped(&unit, DmaRequest::write(DEV_A, 0x1234_5678));
    assert_eq!(m.translate(0x1234_5678), 0x1234_5678);
    assert_eq!(m.permissions, Access::READ_WRITE);
    assert_eq!(m.domain_id, None);
}

/// Tables for DEV_A (page 0x1000 -> 0x20_0000, RW) in `domain_a` and DEV_B (page 0x1000
/// -> 0x30_0000, read-only) in `domain_b`, each with its own second-level table; returns
/// the root table.
fn two_devices_two_tables(mem: &TestMemory, domain_a: u16, domain_b: u16) -> u64 {
    let mut tables = GuestTables::new(mem);
    let table_a = tables.new_domain_table();
    let table_b = tables.new_domain_table();
    tables.map(table_a, 4, 0x1000, 0x20_0000, 12, perm::RW);
    tables.map(table_b, 4, 0x1000, 0x30_0000, 12, perm::R);
    tables.set_context(DEV_A.0, ContextSpec::translated(domain_a, table_a));
    tables.set_context(DEV_B.0, ContextSpec::translated(domain_b, table_b));
    tables.root_table
}

#[test]
fn two_devices_in_two_domains_translate_through_their_own_tables() {
    let mem = TestMemory::new(MEM);
    let host = RecordingHost::new();
    let unit = Unit::new(Config::default(), &mem, &host).unwrap();
    let mut driver = GuestDriver::new(&unit, &mem);
    driver.boot(two_devices_two_tables(&mem, 1, 2));

    let a = mapped(&unit, DmaRequest::write(DEV_A, 0x1234));
    assert_eq!(a.translate(0x1234), 0x20_0234);
    assert_eq!(
        (a.input_base, a.size_shift, a.domain_id),
        (0x1000, 12, Some(1))
    );
    let b = mapped(&unit, DmaRequest::read(DEV_B, 0x1FFF));
    assert_eq!(b.translate(0x1FFF), 0x30_0FFF);
    assert_eq!(b.permissions, Access::READ);
    // Read-only in domain 2: a write faults, on the cached entry too.
    assert_eq!(
        fault_of(&unit, DmaRequest::write(DEV_B, 0x1000)),
        FaultReason::WRITE_NOT_PERMITTED
    );
}

/// The IOTLB is tagged by domain id, as the spec lets hardware do: software must give
/// contexts that share a domain id the same tables. A guest that does not gets, for the
/// second device, the translation the first one cached — from its own memory, and until
/// it invalidates the domain. (Fuzzer finding 4 was the harness expecting otherwise.)
#[test]
fn contexts_sharing_a_domain_id_share_its_iotlb_entries() {
    let mem = TestMemory::new(MEM);
    let host = RecordingHost::new();
    let unit = Unit::new(Config::default(), &mem, &host).unwrap();
    let mut driver = GuestDriver::new(&unit, &mem);
    driver.boot(two_devices_two_tables(&mem, 1, 1));

    assert_eq!(
        mapped(&unit, DmaRequest::read(DEV_A, 0x1000)).translate(0x1008),
        0x20_0008
    );
    // DEV_B's own tables say 0x30_0000, read-only; domain 1's cached entry wins.
    let b = mapped(&unit, DmaRequest::read(DEV_B, 0x1008));
    assert_eq!(
        (b.translate(0x1008), b.permissions),
        (0x20_0008, Access::READ_WRITE)
    );
    match unit.translate_uncached(&DmaRequest::read(DEV_B, 0x1008)) {
        Ok(Translation::Mapped(m)) => assert_eq!(m.translate(0x1008), 0x30_0008),
        other => panic!("uncached walk of DEV_B's tables: {other:?}"),
    }
    // After a domain-selective IOTLB invalidation, whoever walks first fills it again.
    assert_eq!(driver.register_invalidate_iotlb(2, 1, 0, 0, false), 2);
    assert_eq!(
        mapped(&unit, DmaRequest::read(DEV_B, 0x1008)).translate(0x1008),
        0x30_0008
    );
}

/// A unit booted with `config`, its tables, a driver, and a host — built per test.
struct Rig {
    mem: &'static TestMemory,
    host: &'static RecordingHost,
}

impl Rig {
    fn new() -> Self {
        Self {
            mem: Box::leak(Box::new(TestMemory::new(MEM))),
            host: Box::leak(Box::new(RecordingHost::new())),
        }
    }
}

#[test]
fn three_four_and_five_level_tables() {
    for (mgaw, aw, levels) in [
        (39, AddressWidth::AGAW_39, 3u8),
        (48, AddressWidth::AGAW_39, 3),
        (48, AddressWidth::AGAW_48, 4),
        (57, AddressWidth::AGAW_57, 5),
        (57, AddressWidth::AGAW_48, 4),
    ] {
        let rig = Rig::new();
        let config = Config {
            guest_address_width: mgaw,
            ..Config::default()
        };
        let unit = Unit::new(config, rig.mem, rig.host).unwrap();
        let mut tables = GuestTables::new(rig.mem);
        let table = tables.new_domain_table();
        // The highest page the width allows, and a low one.
        let top = (1u64 << (12 + 9 * u32::from(levels))) - 0x1000;
        tables.map(table, levels, top, 0x40_0000, 12, perm::RW);
        tables.map(table, levels, 0x5000, 0x41_0000, 12, perm::RW);
        tables.set_context(
            DEV_A.0,
            ContextSpec {
                address_width: aw,
                ..ContextSpec::translated(9, table)
            },
        );
        GuestDriver::new(&unit, rig.mem).boot(tables.root_table);
        let m = mapped(&unit, DmaRequest::read(DEV_A, top + 0x10));
        assert_eq!(
            m.translate(top + 0x10),
            0x40_0010,
            "mgaw {mgaw} levels {levels}"
        );
        assert_eq!(
            mapped(&unit, DmaRequest::read(DEV_A, 0x5008)).translate(0x5008),
            0x41_0008
        );
        // One page past the width is beyond the address width.
        assert_eq!(
            fault_of(&unit, DmaRequest::read(DEV_A, top + 0x1000)),
            FaultReason::ADDRESS_BEYOND_MGAW,
            "mgaw {mgaw} levels {levels}"
        );
    }
}

#[test]
fn superpages_hit_for_every_address_inside_them() {
    let rig = Rig::new();
    let unit = Unit::new(Config::default(), rig.mem, rig.host).unwrap();
    let mut tables = GuestTables::new(rig.mem);
    let table = tables.new_domain_table();
    tables.map(table, 4, 0x4000_0000, 0x8000_0000, 30, perm::RW);
    tables.map(table, 4, 0x20_0000, 0x60_0000, 21, perm::R);
    tables.set_context(DEV_A.0, ContextSpec::translated(3, table));
    GuestDriver::new(&unit, rig.mem).boot(tables.root_table);

    let gib = mapped(&unit, DmaRequest::write(DEV_A, 0x4000_1234));
    assert_eq!(
        (gib.input_base, gib.output_base, gib.size_shift),
        (0x4000_0000, 0x8000_0000, 30)
    );
    let mib = mapped(&unit, DmaRequest::read(DEV_A, 0x2F_FFFF));
    assert_eq!(
        (mib.input_base, mib.output_base, mib.size_shift),
        (0x20_0000, 0x60_0000, 21)
    );

    // Every other address inside the pages comes from the cache: no guest memory read.
    let reads = rig.mem.reads();
    for offset in [0u64, 0x1000, 0x12_3456, 0x3FFF_FFFF] {
        let m = mapped(&unit, DmaRequest::read(DEV_A, 0x4000_0000 + offset));
        assert_eq!(m.translate(0x4000_0000 + offset), 0x8000_0000 + offset);
    }
    for offset in [0u64, 0x8_0000, 0x1F_FFFF] {
        assert_eq!(
            mapped(&unit, DmaRequest::read(DEV_A, 0x20_0000 + offset))
                .translate(0x20_0000 + offset),
            0x60_0000 + offset
        );
    }
    assert_eq!(rig.mem.reads(), reads, "IOTLB hits read no guest memory");
}

#[test]
fn large_pages_are_reserved_when_not_advertised() {
    let rig = Rig::new();
    let config = Config {
        large_pages_2m: false,
        large_pages_1g: false,
        ..Config::default()
    };
    let unit = Unit::new(config, rig.mem, rig.host).unwrap();
    let mut tables = GuestTables::new(rig.mem);
    let table = tables.new_domain_table();
    tables.map(table, 4, 0x20_0000, 0x60_0000, 21, perm::RW);
    tables.set_context(DEV_A.0, ContextSpec::translated(3, table));
    GuestDriver::new(&unit, rig.mem).boot(tables.root_table);
    assert_eq!(
        fault_of(&unit, DmaRequest::read(DEV_A, 0x20_0000)),
        FaultReason::PAGING_ENTRY_RESERVED
    );
}

#[test]
fn pass_through_context_maps_identity_and_names_the_domain() {
    let rig = Rig::new();
    let unit = Unit::new(Config::default(), rig.mem, rig.host).unwrap();
    let mut tables = GuestTables::new(rig.mem);
    tables.set_context(DEV_A.0, ContextSpec::pass_through(7));
    GuestDriver::new(&unit, rig.mem).boot(tables.root_table);
    let m = mapped(&unit, DmaRequest::write(DEV_A, 0x1234_5678));
    assert_eq!(m.translate(0x1234_5678), 0x1234_5678);
    assert_eq!(m.domain_id, Some(7));
    assert_eq!(m.permissions, Access::READ_WRITE);
}

#[test]
fn interrupt_range_writes_are_interrupts_and_reads_are_unsupported() {
    let rig = Rig::new();
    let unit = Unit::new(Config::default(), rig.mem, rig.host).unwrap();
    for enabled in [false, true] {
        if enabled {
            let mut tables = GuestTables::new(rig.mem);
            let table = tables.new_domain_table();
            tables.set_context(DEV_A.0, ContextSpec::translated(1, table));
            GuestDriver::new(&unit, rig.mem).boot(tables.root_table);
        }
        for addr in [0xFEE0_0000u64, 0xFEE0_1004, 0xFEEF_FFFC] {
            assert_eq!(
                unit.translate(&DmaRequest::write(DEV_A, addr)),
                Ok(Translation::Interrupt)
            );
            assert_eq!(
                unit.translate(&DmaRequest::read(DEV_A, addr)),
                Err(DmaError::UnsupportedRequest)
            );
        }
    }
    // No fault was recorded for any of them.
    assert_eq!(unit.mmio_read(offset::FSTS, 4) & 0b11, 0);
}

#[test]
fn a_large_page_over_the_interrupt_range_is_returned_as_4k_pages() {
    let rig = Rig::new();
    let unit = Unit::new(Config::default(), rig.mem, rig.host).unwrap();
    let mut tables = GuestTables::new(rig.mem);
    let table = tables.new_domain_table();
    tables.map(table, 4, 0xC000_0000, 0x1_0000_0000, 30, perm::RW);
    tables.set_context(DEV_A.0, ContextSpec::translated(1, table));
    GuestDriver::new(&unit, rig.mem).boot(tables.root_table);
    let m = mapped(&unit, DmaRequest::read(DEV_A, 0xFED0_0123));
    assert_eq!((m.input_base, m.size_shift), (0xFED0_0000, 12));
    assert_eq!(m.translate(0xFED0_0123), 0x1_3ED0_0123);
    let far = mapped(&unit, DmaRequest::read(DEV_A, 0xC000_0000));
    assert_eq!(
        far.size_shift, 12,
        "any page of the large page containing the range is clipped"
    );
    // Untranslated pass-through also never hands out a page covering the range.
    unit.reset();
    let m = mapped(&unit, DmaRequest::read(DEV_A, 0xFEF0_0000));
    assert_eq!(m.size_shift, 12);
    assert_eq!(
        mapped(&unit, DmaRequest::read(DEV_A, 0x4000_0000)).size_shift,
        21
    );
}

#[test]
fn requests_with_pasid_are_unsupported_in_legacy_mode() {
    let rig = Rig::new();
    let unit = Unit::new(Config::default(), rig.mem, rig.host).unwrap();
    let req = DmaRequest {
        pasid: Some(1),
        ..DmaRequest::read(DEV_A, 0x1000)
    };
    assert_eq!(unit.translate(&req), Err(DmaError::UnsupportedRequest));
}

#[test]
fn disabling_translation_returns_to_pass_through_and_notifies_the_host() {
    let rig = Rig::new();
    let unit = Unit::new(Config::default(), rig.mem, rig.host).unwrap();
    let mut tables = GuestTables::new(rig.mem);
    let table = tables.new_domain_table();
    tables.map(table, 4, 0x1000, 0x9000, 12, perm::RW);
    tables.set_context(DEV_A.0, ContextSpec::translated(1, table));
    let mut driver = GuestDriver::new(&unit, rig.mem);
    driver.boot(tables.root_table);
    assert_eq!(
        mapped(&unit, DmaRequest::read(DEV_A, 0x1000)).output_base,
        0x9000
    );
    rig.host.take_events();
    driver.gcmd.set_te(false);
    driver.write32(offset::GCMD, driver.gcmd.into_bits());
    assert!(!driver.gsts().te());
    assert_eq!(
        mapped(&unit, DmaRequest::read(DEV_A, 0x1000)).translate(0x1000),
        0x1000
    );
    assert!(rig
        .host
        .take_events()
        .contains(&viommu::InvalidationEvent::IotlbGlobal));
}

/// `device_address_space` answers from the context cache, as translate does: a context
/// the guest changes without invalidating keeps its cached kind, an invalidation (or TE)
/// brings the new one, and nothing is recorded for a device without a context.
#[test]
fn a_devices_address_space_follows_its_cached_context() {
    use viommu::dma::enumerate::DeviceAddressSpace;
    let rig = Rig::new();
    let unit = Unit::new(Config::default(), rig.mem, rig.host).unwrap();
    let mut tables = GuestTables::new(rig.mem);
    let table = tables.new_domain_table();
    tables.map(table, 4, 0x1000, 0x9000, 12, perm::RW);
    tables.set_context(DEV_A.0, ContextSpec::translated(4, table));
    tables.set_context(DEV_B.0, ContextSpec::pass_through(5));
    let nobody = SourceId::new(9, 0, 0);
    // Translation off: every device's DMA maps to itself.
    for d in [DEV_A, DEV_B, nobody] {
        assert_eq!(
            unit.device_address_space(d),
            DeviceAddressSpace::Untranslated
        );
    }
    let mut driver = GuestDriver::new(&unit, rig.mem);
    driver.boot(tables.root_table);
    let both = || {
        (
            unit.device_address_space(DEV_A),
            unit.device_address_space(DEV_B),
        )
    };
    let (translated, pass_through) = (
        DeviceAddressSpace::Translated { domain_id: 4 },
        DeviceAddressSpace::PassThrough { domain_id: 5 },
    );
    assert_eq!(both(), (translated, pass_through));
    assert_eq!(
        unit.device_address_space(nobody),
        DeviceAddressSpace::Blocked(FaultReason::ROOT_ENTRY_NOT_PRESENT)
    );
    assert_eq!(driver.read32(offset::FSTS), 0, "asking records no fault");
    // What it says is what translate does.
    let b = mapped(&unit, DmaRequest::write(DEV_B, 0x7654_3000));
    assert_eq!(
        (b.translate(0x7654_3210), b.permissions),
        (0x7654_3210, Access::READ_WRITE)
    );
    assert_eq!(
        mapped(&unit, DmaRequest::read(DEV_A, 0x1000)).output_base,
        0x9000
    );

    // Swap the two devices' contexts in the tables only: the cached kinds stay ...
    tables.set_context(DEV_A.0, ContextSpec::pass_through(4));
    tables.set_context(DEV_B.0, ContextSpec::translated(5, table));
    assert_eq!(both(), (translated, pass_through));
    // ... until the context cache is invalidated.
    driver.invalidate_context_global().unwrap();
    driver.invalidate_iotlb_global().unwrap();
    assert_eq!(
        both(),
        (
            DeviceAddressSpace::PassThrough { domain_id: 4 },
            DeviceAddressSpace::Translated { domain_id: 5 }
        )
    );
    assert_eq!(
        mapped(&unit, DmaRequest::read(DEV_B, 0x1000)).output_base,
        0x9000
    );
    // Translation off again: untranslated, whatever the contexts say.
    driver.gcmd.set_te(false);
    driver.write32(offset::GCMD, driver.gcmd.into_bits());
    assert_eq!(
        unit.device_address_space(DEV_B),
        DeviceAddressSpace::Untranslated
    );
}

#[test]
fn device_tlb_contexts_translate_only_when_advertised() {
    for device_tlb in [false, true] {
        let rig = Rig::new();
        let config = Config {
            device_tlb,
            ..Config::default()
        };
        let unit = Unit::new(config, rig.mem, rig.host).unwrap();
        let mut tables = GuestTables::new(rig.mem);
        let table = tables.new_domain_table();
        tables.map(table, 4, 0x1000, 0x9000, 12, perm::RW);
        tables.set_context(
            DEV_A.0,
            ContextSpec {
                translation_type: TranslationType::ALL,
                ..ContextSpec::translated(1, table)
            },
        );
        GuestDriver::new(&unit, rig.mem).boot(tables.root_table);
        let result = unit.translate(&DmaRequest::read(DEV_A, 0x1000));
        if device_tlb {
            assert!(matches!(result, Ok(Translation::Mapped(m)) if m.output_base == 0x9000));
        } else {
            assert!(
                matches!(result, Err(DmaError::Fault(f)) if f.reason == FaultReason::CONTEXT_ENTRY_INVALID)
            );
        }
    }
}

#[test]
fn translate_is_callable_from_many_threads_at_once() {
    let rig = Rig::new();
    let unit = Unit::new(Config::default(), rig.mem, rig.host).unwrap();
    let mut tables = GuestTables::new(rig.mem);
    let table = tables.new_domain_table();
    for page in 0..256u64 {
        tables.map(
            table,
            4,
            page << 12,
            0x100_0000 + (page << 12),
            12,
            perm::RW,
        );
    }
    tables.set_context(DEV_A.0, ContextSpec::translated(1, table));
    GuestDriver::new(&unit, rig.mem).boot(tables.root_table);
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let unit = &unit;
            s.spawn(move || {
                for i in 0..20_000u64 {
                    let page = (i * 7 + t) % 256;
                    let m = mapped(unit, DmaRequest::read(DEV_A, page << 12 | 0x10));
                    assert_eq!(
                        m.translate(page << 12 | 0x10),
                        0x100_0000 + (page << 12) + 0x10
                    );
                }
            });
        }
    });
}

#[test]
fn enumerating_a_range_visits_exactly_the_mapped_pages() {
    use viommu::dma::enumerate::DeviceAddressSpace;
    let rig = Rig::new();
    let unit = Unit::new(Config::default(), rig.mem, rig.host).unwrap();
    let mut tables = GuestTables::new(rig.mem);
    let table = tables.new_domain_table();
    tables.map(table, 4, 0x3000, 0x9000, 12, perm::R);
    tables.map(table, 4, 0x5000, 0xA000, 12, perm::RW);
    tables.map(table, 4, 0x20_0000, 0x40_0000, 21, perm::W);
    tables.map(table, 4, 0x8000_0000, 0x1_0000_0000, 30, perm::RW);
    tables.set_context(DEV_A.0, ContextSpec::translated(4, table));
    tables.set_context(DEV_B.0, ContextSpec::pass_through(5));
    // Before translation is on, everything is untranslated.
    assert_eq!(
        unit.for_each_mapping(DEV_A, 0, u64::MAX, 100, |_| {}),
        Ok(DeviceAddressSpace::Untranslated)
    );
    GuestDriver::new(&unit, rig.mem).boot(tables.root_table);

    let mut seen = Vec::new();
    let space = unit
        .for_each_mapping(DEV_A, 0x4000, 0x20_0FFF, 100, |m| seen.push(*m))
        .unwrap();
    assert_eq!(space, DeviceAddressSpace::Translated { domain_id: 4 });
    let got: Vec<_> = seen
        .iter()
        .map(|m| (m.input_base, m.output_base, m.size_shift, m.permissions))
        .collect();
    assert_eq!(
        got,
        vec![
            (0x5000, 0xA000, 12, Access::READ_WRITE),
            (0x20_0000, 0x40_0000, 21, Access::WRITE)
        ]
    );

    seen.clear();
    unit.for_each_mapping(DEV_A, 0, u64::MAX, 100, |m| seen.push(*m))
        .unwrap();
    assert_eq!(seen.len(), 4);
    assert_eq!(seen[3].size_shift, 30);
    // Every enumerated page translates the same way.
    for m in &seen {
        let access = if m.permissions.read() {
            Access::READ
        } else {
            Access::WRITE
        };
        let req = DmaRequest {
            access,
            ..DmaRequest::read(DEV_A, m.input_base)
        };
        assert_eq!(mapped(&unit, req).output_base, m.output_base);
    }
    // A budget bounds the walk.
    let mut count = 0;
    assert_eq!(
        unit.for_each_mapping(DEV_A, 0, u64::MAX, 2, |_| count += 1),
        Err(viommu::dma::walk::BudgetExhausted)
    );
    assert_eq!(count, 2);
    assert_eq!(
        unit.for_each_mapping(DEV_B, 0, u64::MAX, 100, |_| {}),
        Ok(DeviceAddressSpace::PassThrough { domain_id: 5 })
    );
    assert_eq!(
        unit.for_each_mapping(SourceId::new(9, 0, 0), 0, u64::MAX, 100, |_| {}),
        Ok(DeviceAddressSpace::Blocked(
            FaultReason::ROOT_ENTRY_NOT_PRESENT
        ))
    );
}

#[test]
fn enumerating_a_table_that_maps_itself_everywhere_is_bounded() {
    let rig = Rig::new();
    let unit = Unit::new(Config::default(), rig.mem, rig.host).unwrap();
    let mut tables = GuestTables::new(rig.mem);
    let table = tables.new_domain_table();
    // Every entry of every level points back at the same table: 512^4 leaves.
    for i in 0..512u64 {
        rig.mem.write_u64(table + i * 8, table | perm::RW);
    }
    tables.set_context(DEV_A.0, ContextSpec::translated(1, table));
    GuestDriver::new(&unit, rig.mem).boot(tables.root_table);
    let mut count = 0u64;
    let result = unit.for_each_mapping(DEV_A, 0, u64::MAX, 10_000, |_| count += 1);
    assert!(result.is_err());
    assert_eq!(count, 10_000);
}
