//! Scenario tests: MMIO register semantics, through `Unit` as a guest driver sees them.

use viommu::spec::registers::{offset, ContextCommand, GlobalCommand, InvalidateAddress};
use viommu::testing::{GuestDriver, GuestTables, RecordingHost, TestMemory, XorShift};
use viommu::{Config, DmaRequest, SourceId, Unit};

const MEM: usize = 16 << 20;

type TestUnit<'a> = Unit<&'a TestMemory, &'a RecordingHost>;

fn read(unit: &TestUnit<'_>, off: u64, size: u8) -> u64 {
    unit.mmio_read(off, size)
}

/// What every naturally aligned 4- and 8-byte read returns at reset: only VER, CAP,
/// ECAP and the two interrupt masks are non-zero.
fn reset_value(config: &Config, off: u64, size: u8) -> u64 {
    let cap = config.capability().into_bits();
    let ecap = config.extended_capability().into_bits();
    let im = 1u64 << 31;
    match (off, size) {
        (0x000, 4) | (0x000, 8) => 0x10,
        (0x008, 8) => cap,
        (0x008, 4) => cap & 0xFFFF_FFFF,
        (0x00C, 4) => cap >> 32,
        (0x010, 8) => ecap,
        (0x010, 4) => ecap & 0xFFFF_FFFF,
        (0x014, 4) => ecap >> 32,
        // FECTL alone and FECTL+FEDATA; IECTL alone and IECTL+IEDATA.
        (0x038, 4) | (0x038, 8) | (0x0A0, 4) | (0x0A0, 8) => im,
        _ => 0,
    }
}

#[test]
fn reset_values_of_every_register_and_every_access() {
    for config in [
        Config::default(),
        Config {
            guest_address_width: 39,
            fault_records: 1,
            domain_id_bits: 8,
            interrupt_remapping: false,
            extended_interrupt_mode: false,
            large_pages_1g: false,
            ..Config::default()
        },
    ] {
        let mem = TestMemory::new(MEM);
        let host = RecordingHost::new();
        let unit = Unit::new(config, &mem, &host).unwrap();
        assert_eq!(read(&unit, offset::VER, 4), 0x10);
        assert_eq!(read(&unit, offset::CAP, 8), config.capability().into_bits());
        assert_eq!(
            read(&unit, offset::ECAP, 8),
            config.extended_capability().into_bits()
        );
        assert_eq!(read(&unit, offset::GSTS, 4), 0);
        assert_eq!(
            read(&unit, offset::FECTL, 4),
            1 << 31,
            "FECTL.IM set at reset"
        );
        assert_eq!(
            read(&unit, offset::IECTL, 4),
            1 << 31,
            "IECTL.IM set at reset"
        );
        for off in 0..0x1100u64 {
            for size in 0..=16u8 {
                let expected = reset_value(&config, off, size);
                let valid = (size == 4 && off % 4 == 0) || (size == 8 && off % 8 == 0);
                assert_eq!(
                    read(&unit, off, size),
                    if valid { expected } else { 0 },
                    "read of {size} bytes at {off:#x}"
                );
            }
        }
        assert!(host.take_msis().is_empty());
        assert!(host.take_events().is_empty());
    }
}

#[test]
fn capability_fields_follow_the_config() {
    let config = Config {
        guest_address_width: 57,
        domain_id_bits: 8,
        fault_records: 3,
        page_selective_invalidation: false,
        max_address_mask: 9,
        large_pages_1g: false,
        caching_mode: true,
        device_tlb: true,
        pass_through: false,
        ..Config::default()
    };
    let mem = TestMemory::new(MEM);
    let host = RecordingHost::new();
    let unit = Unit::new(config, &mem, &host).unwrap();
    let cap = read(&unit, offset::CAP, 8);
    let ecap = read(&unit, offset::ECAP, 8);
    assert_eq!(cap & 7, 2, "ND: 2^(4+2*2) = 256 domains");
    assert_ne!(cap & (1 << 7), 0, "CM");
    assert_eq!((cap >> 8) & 0x1F, 0b1110, "SAGAW: 39, 48 and 57 bits");
    assert_eq!((cap >> 16) & 0x3F, 56, "MGAW");
    assert_eq!(((cap >> 24) & 0x3FF) * 16, offset::FRCD, "FRO");
    assert_eq!((cap >> 34) & 0xF, 1, "SLLPS: 2 MiB only");
    assert_eq!(cap & (1 << 39), 0, "PSI clear");
    assert_eq!((cap >> 40) & 0xFF, 2, "NFR = records - 1");
    assert_eq!((cap >> 48) & 0x3F, 9, "MAMV");
    assert_eq!(((ecap >> 8) & 0x3FF) * 16, offset::IVA, "IRO");
    assert_eq!(ecap & 0b100, 0b100, "DT");
    assert_eq!(ecap & (1 << 6), 0, "PT clear");
    assert_eq!(ecap & 0b1010, 0b1010, "QI and IR");
}

/// (offset, size, value written, value read back).
const READBACK: &[(u64, u8, u64, u64)] = &[
    (offset::RTADDR, 8, u64::MAX, !0x3FF),
    (
        offset::RTADDR,
        8,
        0x1234_5678_9000 | 0xC00 | 0x3FF,
        0x1234_5678_9C00,
    ),
    (offset::RTADDR, 4, 0xFFFF_FFFF, 0xFFFF_FC00),
    (offset::RTADDR + 4, 4, 0xABCD, 0xABCD),
    (offset::FECTL, 4, 0, 0),
    (offset::FECTL, 4, 0x7FFF_FFFF, 0),
    (offset::FECTL, 4, 1 << 31, 1 << 31),
    (offset::FEDATA, 4, 0xFFFF_FFFF, 0xFFFF_FFFF),
    (offset::FEADDR, 4, 0xFFFF_FFFF, 0xFFFF_FFFC),
    (offset::FEADDR, 4, 0xFEE0_1003, 0xFEE0_1000),
    (offset::FEUADDR, 4, 0x8765_4321, 0x8765_4321),
    (offset::IQT, 8, u64::MAX, 0x7_FFF0),
    (offset::IQT, 4, 0x1234_5678, 0x4_5670),
    (offset::IQT + 4, 4, 0xFFFF_FFFF, 0),
    (offset::IQA, 8, u64::MAX, !0x7F8),
    (offset::IQA, 8, 0x8_0000 | 0x7F8 | 3, 0x8_0003),
    (offset::IECTL, 4, 0, 0),
    (offset::IECTL, 4, 0x4000_0000, 0),
    (offset::IEDATA, 4, 0xFFFF_FFFF, 0xFFFF_FFFF),
    (offset::IEADDR, 4, 0xFFFF_FFFF, 0xFFFF_FFFC),
    (offset::IEUADDR, 4, 0xFFFF_FFFF, 0xFFFF_FFFF),
    (offset::IRTA, 8, u64::MAX, !0x7F0),
    (
        offset::IRTA,
        8,
        0x20_0000 | (1 << 11) | 0x7F0 | 0xF,
        0x20_080F,
    ),
    (offset::IVA, 8, u64::MAX, !0xF80),
    (offset::IVA, 8, 0x4000 | (1 << 6) | 5, 0x4045),
    (offset::PMEN, 4, 0x7FFF_FFFF, 0),
    (offset::PLMBASE, 4, 0xFFFF_FFFF, 0),
    (offset::PLMLIMIT, 4, 0xFFFF_FFFF, 0),
    (offset::PHMBASE, 8, u64::MAX, 0),
    (offset::PHMLIMIT, 8, u64::MAX, 0),
    (offset::AFLOG, 8, u64::MAX, 0),
];

#[test]
fn every_writable_register_reads_back_its_writable_bits() {
    for &(off, size, value, expected) in READBACK {
        let mem = TestMemory::new(MEM);
        let host = RecordingHost::new();
        let unit = Unit::new(Config::default(), &mem, &host).unwrap();
        unit.mmio_write(off, size, value);
        assert_eq!(
            read(&unit, off, size),
            expected,
            "{size}-byte write of {value:#x} at {off:#x}"
        );
        // The same register read the other way: as dwords, or as part of its qword.
        if size == 8 {
            assert_eq!(read(&unit, off, 4), expected & 0xFFFF_FFFF);
            assert_eq!(read(&unit, off + 4, 4), expected >> 32);
        }
    }
}

#[test]
fn a_64_bit_register_written_as_two_dwords_equals_one_qword_write() {
    let mem = TestMemory::new(MEM);
    let host = RecordingHost::new();
    let unit = Unit::new(Config::default(), &mem, &host).unwrap();
    for (off, value) in [
        (offset::RTADDR, 0x0000_0012_3456_7000u64),
        (offset::IQA, 0x0000_0001_0008_0002),
        (offset::IRTA, 0x0000_0003_0040_0807),
        (offset::IVA, 0x0000_0007_0000_3045),
    ] {
        unit.mmio_write(off, 4, value & 0xFFFF_FFFF);
        unit.mmio_write(off + 4, 4, value >> 32);
        assert_eq!(read(&unit, off, 8), value, "at {off:#x}");
        unit.mmio_write(off, 8, 0);
        assert_eq!(read(&unit, off, 8), 0);
        unit.mmio_write(off, 8, value);
        assert_eq!(read(&unit, off, 8), value);
    }
}

#[test]
fn an_8_byte_access_spans_a_pair_of_4_byte_registers() {
    let mem = TestMemory::new(MEM);
    let host = RecordingHost::new();
    let unit = Unit::new(Config::default(), &mem, &host).unwrap();
    // FECTL (IM clear) + FEDATA.
    unit.mmio_write(offset::FECTL, 8, 0x0000_4321_0000_0000);
    assert_eq!(read(&unit, offset::FECTL, 4), 0, "IM cleared");
    assert_eq!(read(&unit, offset::FEDATA, 4), 0x4321);
    assert_eq!(read(&unit, offset::FECTL, 8), 0x0000_4321_0000_0000);
    // FEADDR + FEUADDR: FEADDR bits 1:0 read 0.
    unit.mmio_write(offset::FEADDR, 8, u64::MAX);
    assert_eq!(read(&unit, offset::FEADDR, 4), 0xFFFF_FFFC);
    assert_eq!(read(&unit, offset::FEUADDR, 4), 0xFFFF_FFFF);
    assert_eq!(read(&unit, offset::FEADDR, 8), 0xFFFF_FFFF_FFFF_FFFC);
    // IECTL + IEDATA, IEADDR + IEUADDR.
    unit.mmio_write(offset::IECTL, 8, 0x0000_00AB_8000_0000);
    assert_eq!(read(&unit, offset::IECTL, 4), 1 << 31);
    assert_eq!(read(&unit, offset::IEDATA, 4), 0xAB);
    unit.mmio_write(offset::IEADDR, 8, 0x0000_0001_FEE0_0003);
    assert_eq!(read(&unit, offset::IEADDR, 4), 0xFEE0_0000);
    assert_eq!(read(&unit, offset::IEUADDR, 4), 1);
    // GCMD + GSTS: the command acts, the status half is read-only.
    unit.mmio_write(offset::GCMD, 8, (u64::from(u32::MAX) << 32) | (1 << 31));
    assert_eq!(read(&unit, offset::GSTS, 4), 1 << 31, "TES, nothing else");
    assert_eq!(read(&unit, offset::GCMD, 8), (1u64 << 31) << 32);
    // FEUADDR's neighbour pair read as one qword after 4-byte writes.
    unit.mmio_write(offset::FEDATA, 4, 0x55);
    assert_eq!(read(&unit, offset::FECTL, 8), 0x55 << 32);
}

#[test]
fn read_only_registers_ignore_writes() {
    let mem = TestMemory::new(MEM);
    let host = RecordingHost::new();
    let config = Config::default();
    let unit = Unit::new(config, &mem, &host).unwrap();
    let mut driver = GuestDriver::new(&unit, &mem);
    driver.enable_queued_invalidation();
    driver
        .invalidate_iotlb_global()
        .expect("global invalidation");
    let iqh = read(&unit, offset::IQH, 8);
    assert_eq!(iqh, 32, "two descriptors consumed");
    let gsts = read(&unit, offset::GSTS, 4);
    for value in [0, u64::MAX, 0x5555_5555_5555_5555] {
        for size in [4u8, 8] {
            for off in [
                offset::VER,
                offset::CAP,
                offset::CAP + 4,
                offset::ECAP,
                offset::ECAP + 4,
                offset::GSTS,
                offset::IQH,
                offset::IQH + 4,
                offset::IQERCD,
                offset::IQERCD + 4,
            ] {
                if off % u64::from(size) == 0 {
                    unit.mmio_write(off, size, value);
                }
            }
        }
    }
    assert_eq!(read(&unit, offset::VER, 4), 0x10);
    assert_eq!(read(&unit, offset::CAP, 8), config.capability().into_bits());
    assert_eq!(
        read(&unit, offset::ECAP, 8),
        config.extended_capability().into_bits()
    );
    assert_eq!(read(&unit, offset::GSTS, 4), gsts);
    assert_eq!(read(&unit, offset::IQH, 8), iqh);
    assert_eq!(read(&unit, offset::IQERCD, 8), 0);
}

#[test]
fn fault_records_are_read_only_but_for_f() {
    let mem = TestMemory::new(MEM);
    let host = RecordingHost::new();
    let unit = Unit::new(Config::default(), &mem, &host).unwrap();
    let tables = GuestTables::new(&mem);
    let mut driver = GuestDriver::new(&unit, &mem);
    driver.boot(tables.root_table);
    // No root entry for bus 2: a recorded fault.
    let req = DmaRequest::write(SourceId::new(2, 1, 0), 0xABC_D123);
    assert!(unit.translate(&req).is_err());
    let record = |i: u64| {
        (
            read(&unit, offset::FRCD + 16 * i, 8),
            read(&unit, offset::FRCD + 16 * i + 8, 8),
        )
    };
    let (low, high) = record(0);
    assert_eq!(low, 0xABC_D000);
    assert_eq!(
        high,
        (1 << 63) | (1 << 32) | 0x0208,
        "F, FR 1, T1 0 (write), SID"
    );
    // Anything but a 1 in F is ignored, through every access width.
    for value in [0u64, !(1u64 << 63), 0x1234_5678_9ABC_DEF0] {
        for (off, size) in [(0u64, 8u8), (0, 4), (4, 4), (8, 4)] {
            unit.mmio_write(offset::FRCD + off, size, value);
        }
        unit.mmio_write(offset::FRCD + 8, 8, value & !(1 << 63));
        unit.mmio_write(offset::FRCD + 12, 4, value & 0x7FFF_FFFF);
        assert_eq!(record(0), (low, high), "after writing {value:#x}");
    }
    // Writing 1 to F (bit 127) clears F alone; the rest of the record stays.
    unit.mmio_write(offset::FRCD + 8, 8, u64::MAX);
    assert_eq!(record(0), (low, high & !(1 << 63)));
    assert_eq!(read(&unit, offset::FSTS, 4) & 0b10, 0, "PPF clear");
    // Unused records read 0 and stay 0.
    unit.mmio_write(offset::FRCD + 16 + 8, 8, u64::MAX);
    assert_eq!(record(1), (0, 0));
}

#[test]
fn gcmd_persistent_bits_set_status_and_one_shot_bits_do_not_stick() {
    let mem = TestMemory::new(MEM);
    let host = RecordingHost::new();
    let unit = Unit::new(Config::default(), &mem, &host).unwrap();
    let gsts = || GlobalCommand::from_bits(read(&unit, offset::GSTS, 4) as u32);
    let gcmd = |g: GlobalCommand| unit.mmio_write(offset::GCMD, 4, u64::from(g.into_bits()));

    let persistent = GlobalCommand::new()
        .with_te(true)
        .with_qie(true)
        .with_ire(true)
        .with_cfi(true);
    gcmd(persistent);
    let s = gsts();
    assert!(s.te() && s.qie() && s.ire() && s.cfi(), "{s:?}");
    assert!(!s.srtp() && !s.sirtp() && !s.wbf());
    assert_eq!(read(&unit, offset::GCMD, 4), 0, "GCMD reads 0");

    // One-shot commands, written as Linux does (persistent bits | command).
    gcmd(persistent.with_srtp(true));
    assert!(gsts().srtp(), "RTPS");
    gcmd(persistent.with_sirtp(true));
    assert!(gsts().sirtp(), "IRTPS");
    gcmd(persistent.with_wbf(true));
    assert!(
        !gsts().wbf(),
        "WBFS never reads set: the flush is already done"
    );
    let s = gsts();
    assert!(
        s.te() && s.qie() && s.ire() && s.cfi(),
        "persistent bits kept"
    );

    // Clearing each persistent bit clears its status, leaving the others.
    gcmd(persistent.with_te(false));
    let s = gsts();
    assert!(!s.te() && s.qie() && s.ire() && s.cfi());
    gcmd(GlobalCommand::new().with_qie(true));
    let s = gsts();
    assert!(!s.te() && s.qie() && !s.ire() && !s.cfi());
    gcmd(GlobalCommand::new());
    assert!(!gsts().qie());
    assert!(!gsts().te());
}

#[test]
fn gcmd_interrupt_remapping_bits_need_the_capability() {
    let mem = TestMemory::new(MEM);
    let host = RecordingHost::new();
    let config = Config {
        interrupt_remapping: false,
        extended_interrupt_mode: false,
        ..Config::default()
    };
    let unit = Unit::new(config, &mem, &host).unwrap();
    let all = GlobalCommand::new()
        .with_ire(true)
        .with_sirtp(true)
        .with_cfi(true);
    unit.mmio_write(offset::GCMD, 4, u64::from(all.into_bits()));
    assert_eq!(read(&unit, offset::GSTS, 4), 0);
}

#[test]
fn disabling_queued_invalidation_resets_the_head() {
    let mem = TestMemory::new(MEM);
    let host = RecordingHost::new();
    let unit = Unit::new(Config::default(), &mem, &host).unwrap();
    let mut driver = GuestDriver::new(&unit, &mem);
    driver.enable_queued_invalidation();
    driver.invalidate_context_global().unwrap();
    driver.invalidate_iotlb_global().unwrap();
    assert_eq!(read(&unit, offset::IQH, 8), 64);
    assert_eq!(read(&unit, offset::IQT, 8), 64);
    driver.gcmd.set_qie(false);
    unit.mmio_write(offset::GCMD, 4, u64::from(driver.gcmd.into_bits()));
    assert!(!driver.gsts().qie());
    assert_eq!(
        read(&unit, offset::IQH, 8),
        0,
        "IQH reset when QIE is cleared"
    );
    // Linux re-enables with the tail at 0 and goes on working.
    driver.enable_queued_invalidation();
    assert_eq!(read(&unit, offset::IQH, 8), 0);
    driver.invalidate_iotlb_global().unwrap();
    assert_eq!(read(&unit, offset::IQH, 8), 32);
}

#[test]
fn register_based_context_invalidation_reports_the_granularity_done() {
    let mem = TestMemory::new(MEM);
    let host = RecordingHost::new();
    let unit = Unit::new(Config::default(), &mem, &host).unwrap();
    host.take_events();
    for cirg in 0..4u8 {
        let cmd = ContextCommand::new()
            .with_icc(true)
            .with_cirg(cirg)
            .with_did(9)
            .with_sid(0x0118)
            .with_fm(3);
        unit.mmio_write(offset::CCMD, 8, cmd.into_bits());
        let back = ContextCommand::from_bits(read(&unit, offset::CCMD, 8));
        assert!(!back.icc(), "ICC cleared when done (CIRG {cirg})");
        assert_eq!(back.caig(), cirg, "CAIG = CIRG; 0 for the reserved request");
        let events = host.take_events();
        assert_eq!(events.len(), usize::from(cirg != 0), "{events:?}");
    }
    // The same request as two dwords (the high one carries ICC).
    let cmd = ContextCommand::new()
        .with_icc(true)
        .with_cirg(2)
        .with_did(4);
    unit.mmio_write(offset::CCMD, 4, cmd.into_bits() & 0xFFFF_FFFF);
    assert!(
        host.take_events().is_empty(),
        "nothing before the high dword"
    );
    unit.mmio_write(offset::CCMD + 4, 4, cmd.into_bits() >> 32);
    assert_eq!(
        host.take_events(),
        [viommu::InvalidationEvent::ContextDomain { domain_id: 4 }]
    );
    let back = ContextCommand::from_bits(read(&unit, offset::CCMD, 8));
    assert!(!back.icc());
    assert_eq!(back.caig(), 2);
}

#[test]
fn register_based_iotlb_invalidation_reports_the_granularity_done() {
    let mem = TestMemory::new(MEM);
    let host = RecordingHost::new();
    let config = Config::default();
    let unit = Unit::new(config, &mem, &host).unwrap();
    let driver = GuestDriver::new(&unit, &mem);
    let page = |am: u8| {
        InvalidateAddress::new()
            .with_addr(0x40_0000 >> 12)
            .with_am(am)
            .into_bits()
    };
    for (iirg, iva, iaig) in [
        (1u8, 0, 1u8),
        (2, 0, 2),
        (3, page(0), 3),
        (3, page(4), 3),
        (3, page(config.max_address_mask), 3),
        (3, page(config.max_address_mask + 1), 0),
        (3, page(63), 0),
        (0, 0, 0),
    ] {
        let iva = InvalidateAddress::from_bits(iva);
        let done = driver.register_invalidate_iotlb(iirg, 5, iva.addr() << 12, iva.am(), false);
        assert_eq!(done, iaig, "IIRG {iirg}, IVA {iva:?}");
        let events = host.take_events();
        assert_eq!(events.len(), usize::from(iaig != 0), "{events:?}");
    }
    // IVA keeps what was written.
    driver.register_invalidate_iotlb(3, 5, 0x40_0000, 2, true);
    assert_eq!(read(&unit, offset::IVA, 8), 0x40_0000 | (1 << 6) | 2);
}

#[test]
fn without_page_selective_invalidation_a_page_request_is_done_as_domain() {
    let mem = TestMemory::new(MEM);
    let host = RecordingHost::new();
    let config = Config {
        page_selective_invalidation: false,
        ..Config::default()
    };
    let unit = Unit::new(config, &mem, &host).unwrap();
    let driver = GuestDriver::new(&unit, &mem);
    let done = driver.register_invalidate_iotlb(3, 7, 0x123_4000, 0, false);
    assert_eq!(done, 2, "performed as domain-selective");
    assert_eq!(
        host.take_events(),
        [viommu::InvalidationEvent::IotlbDomain { domain_id: 7 }]
    );
}

fn sweep_offsets() -> impl Iterator<Item = u64> {
    (0..0x1100u64).chain([
        u64::MAX,
        u64::MAX - 3,
        u64::MAX - 7,
        !7u64,
        !3u64,
        1 << 63,
        (1 << 63) + offset::CAP,
        0x1000 + offset::GCMD,
        0xFFFF_FFFF_0000_0000 | offset::IQT,
    ])
}

#[test]
fn reads_of_bad_sizes_or_alignments_return_zero_everywhere() {
    let mem = TestMemory::new(MEM);
    let host = RecordingHost::new();
    let unit = Unit::new(Config::default(), &mem, &host).unwrap();
    // Make many registers non-zero first.
    let mut driver = GuestDriver::new(&unit, &mem);
    driver.enable_queued_invalidation();
    for (off, value) in [
        (offset::RTADDR, u64::MAX),
        (offset::FEDATA, u64::MAX),
        (offset::FEADDR, u64::MAX),
        (offset::IRTA, u64::MAX),
        (offset::IVA, u64::MAX),
    ] {
        unit.mmio_write(off, 8 - 4 * u8::from(off % 8 != 0), value);
    }
    for off in sweep_offsets() {
        for size in 0..=16u8 {
            let valid = (size == 4 && off % 4 == 0) || (size == 8 && off % 8 == 0);
            if !valid {
                assert_eq!(read(&unit, off, size), 0, "{size} bytes at {off:#x}");
            }
        }
    }
    // Beyond the register window and far away, even aligned reads see nothing.
    for off in [0x1000u64, 0x10F8, !7u64, 1 << 63] {
        assert_eq!(read(&unit, off, 8), 0, "at {off:#x}");
    }
}

#[test]
fn random_writes_at_every_offset_never_panic_and_never_change_identity_registers() {
    let mut rng = XorShift::new(0x5EED_0001);
    for config in [
        Config::default(),
        Config {
            fault_records: 256,
            max_address_mask: 63,
            device_tlb: true,
            ..Config::default()
        },
    ] {
        let mem = TestMemory::new(MEM);
        let host = RecordingHost::new();
        let unit = Unit::new(config, &mem, &host).unwrap();
        let cap = config.capability().into_bits();
        let ecap = config.extended_capability().into_bits();
        for round in 0..3 {
            for off in sweep_offsets() {
                for size in 0..=16u8 {
                    let value = match round {
                        0 => rng.next_u64(),
                        1 => u64::MAX,
                        _ => rng.next_u64() & 0x0000_00FF_FFFF_F0FF,
                    };
                    unit.mmio_write(off, size, value);
                }
            }
            assert_eq!(read(&unit, offset::VER, 4), 0x10);
            assert_eq!(read(&unit, offset::CAP, 8), cap);
            assert_eq!(read(&unit, offset::ECAP, 8), ecap);
            // The unit still answers DMA without panicking, whatever state it is in.
            let _ = unit.translate(&DmaRequest::read(SourceId(0x10), 0x1000));
        }
        host.take_msis();
        host.take_events();
    }
}
