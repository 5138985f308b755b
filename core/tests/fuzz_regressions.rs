//! Regression tests for what the fuzzers in `fuzz/` found. Each test replays the minimized
//! crashing input (kept under `fuzz/regressions/<target>/`) with the same logic the target
//! runs, written out as plain operations. See docs/reliability.md.

use viommu::spec::registers::offset;
use viommu::testing::{
    perm, remappable_msi, ContextSpec, GuestDriver, GuestTables, IrteSpec, TestMemory,
};
use viommu::{
    Config, DmaError, DmaRequest, FaultReason, Interrupt, InterruptRequest, NoHost, SourceId,
    Translation, Unit,
};

use viommu::state::crc32;

/// fuzz/regressions/irq/eime-without-ecap-eim: with ECAP.EIM clear, a guest that sets
/// IRTA.EIME anyway got x2APIC-mode remapping (a 32-bit destination where only xAPIC ids
/// exist). EIME is RsvdZ when ECAP.EIM is clear (VT-d §11.4.29): it must read 0 and the
/// unit stays in xAPIC mode, decoding the destination from DST bits 15:8.
#[test]
fn irq_eime_is_reserved_without_ecap_eim() {
    let config = Config {
        extended_interrupt_mode: false,
        ..Config::default()
    };
    let mem = TestMemory::new(2 << 20);
    let unit = Box::new(Unit::new(config, &mem, NoHost).unwrap());
    let irt = 0x10_0000;
    let nic = SourceId(0x18);
    let mut d = GuestDriver::new(&unit, &mem);
    d.set_irte(
        irt,
        0,
        &IrteSpec {
            vector: 0x30,
            destination: 0x100,
            sid: nic.0,
            svt: 1,
            ..IrteSpec::default()
        },
    );
    d.enable_queued_invalidation();
    d.enable_interrupt_remapping(irt, 0xF, true);
    assert_eq!(
        d.read64(offset::IRTA) & (1 << 11),
        0,
        "EIME reads 0 without ECAP.EIM"
    );
    let (address, data) = remappable_msi(0, None);
    let request = InterruptRequest {
        source_id: nic,
        address,
        data,
    };
    match unit.remap_interrupt(&request) {
        Ok(Interrupt::Remapped(r)) => {
            assert_eq!(r.destination, 0x01, "xAPIC id from DST bits 15:8");
        }
        other => panic!("expected a remapped interrupt, got {other:?}"),
    }
    assert_eq!(
        unit.remap_interrupt(&request),
        unit.remap_interrupt_uncached(&request)
    );
}

/// The same fact for save/restore: a blob claiming EIME (in IRTA or in the latched IR
/// state) for a unit without ECAP.EIM is rejected, CRC fixed up or not, and changes nothing.
#[test]
fn irq_restore_rejects_eime_without_ecap_eim() {
    let config = Config {
        extended_interrupt_mode: false,
        ..Config::default()
    };
    let mem = TestMemory::new(1 << 20);
    let unit = Box::new(Unit::new(config, &mem, NoHost).unwrap());
    unit.mmio_write(offset::IRTA, 8, 0x4_0000 | 7);
    unit.mmio_write(offset::GCMD, 4, 1 << 24);
    let mut blob = vec![0u8; unit.saved_size()];
    unit.save(&mut blob).unwrap();
    // Header 16, CAP/ECAP 16, then GSTS..IQERCD: IRTA is at byte 128 and the latched IR
    // state at byte 160.
    assert_eq!(
        u64::from_le_bytes(blob[128..136].try_into().unwrap()),
        0x4_0000 | 7
    );
    for at in [128 + 1, 160 + 1] {
        let mut bad = blob.clone();
        bad[at] |= 0x08; // bit 11
        let body = bad.len() - 4;
        let crc = crc32(&bad[..body]);
        bad[body..].copy_from_slice(&crc.to_le_bytes());
        let before: Vec<u64> = (0..0x300)
            .step_by(4)
            .map(|o| unit.mmio_read(o, 4))
            .collect();
        assert!(unit.restore(&bad).is_err(), "EIME at byte {at} accepted");
        let after: Vec<u64> = (0..0x300)
            .step_by(4)
            .map(|o| unit.mmio_read(o, 4))
            .collect();
        assert_eq!(before, after);
    }
    assert_eq!(unit.restore(&blob), Ok(()));
}

/// fuzz/regressions/translate/first-level-key-alias: the first-level cache keyed a request
/// by `(address >> 12) << 17 | sid`, which drops address bits 63:59. After a device's
/// page 0 was cached, a request at 0x1800_0000_0000_0000 hit that entry and was
/// translated as page 0 instead of faulting with 4h (address beyond MGAW, VT-d §7.1.3):
/// the cached path disagreed with `translate_uncached`. Both for a pass-through context
/// (the minimized input: TT=2, FPD set) and a translated one.
#[test]
fn first_level_cache_never_aliases_addresses_above_bit_58() {
    for pass_through in [true, false] {
        let mem = TestMemory::new(4 << 20);
        let unit = Box::new(Unit::new(Config::default(), &mem, NoHost).unwrap());
        let nic = SourceId(0x18);
        let mut tables = GuestTables::new(&mem);
        let table = tables.new_domain_table();
        tables.map(table, 4, 0, 0x20_0000, 12, perm::RW);
        let mut spec = if pass_through {
            ContextSpec::pass_through(1)
        } else {
            ContextSpec::translated(1, table)
        };
        spec.fpd = true;
        tables.set_context(nic.0, spec);
        GuestDriver::new(&unit, &mem).boot(tables.root_table);
        assert!(matches!(
            unit.translate(&DmaRequest::read(nic, 0)),
            Ok(Translation::Mapped(_))
        ));
        for high in [1u64 << 59, 0x1800_0000_0000_0000, 1 << 63] {
            let request = DmaRequest::read(nic, high);
            let result = unit.translate(&request);
            assert!(
                matches!(result, Err(DmaError::Fault(f)) if f.reason == FaultReason::ADDRESS_BEYOND_MGAW),
                "{high:#x} (pass-through {pass_through}): {result:?}"
            );
            assert_eq!(
                unit.translate_uncached(&request).map_err(|e| match e {
                    DmaError::Fault(f) => f.reason,
                    DmaError::UnsupportedRequest => FaultReason(0),
                }),
                Err(FaultReason::ADDRESS_BEYOND_MGAW)
            );
        }
    }
}

/// fuzz/regressions/restore/fsts-fri-beyond-records: a blob whose FSTS.FRI names fault
/// record 17 of 8 was accepted, so the guest would read an FRI pointing at no register.
/// FRI only ever names an existing record (§11.4.9.1): such a blob is invalid.
#[test]
fn restore_rejects_fsts_fri_beyond_the_records() {
    use viommu::testing::TestMemory;
    let memory = TestMemory::new(1 << 20);
    let unit = Unit::new(Config::default(), &memory, NoHost).unwrap();
    let mut blob = vec![0u8; unit.saved_size()];
    unit.save(&mut blob).unwrap();
    let body = blob.len() - 4;
    let fsts_at = 16 + 8 + 8 + 4 + 8 + 8; // header, CAP, ECAP, GSTS, RTADDR, CCMD
    let restore_with = |fsts: u32| {
        let mut bad = blob.clone();
        bad[fsts_at..fsts_at + 4].copy_from_slice(&fsts.to_le_bytes());
        let crc = crc32(&bad[..body]);
        bad[body..].copy_from_slice(&crc.to_le_bytes());
        unit.restore(&bad)
    };
    assert_eq!(
        restore_with(17 << 8),
        Err(viommu::RestoreError::InvalidField("FSTS"))
    );
    assert_eq!(
        restore_with(1 << 1),
        Err(viommu::RestoreError::InvalidField("FSTS")),
        "PPF is derived"
    );
    assert_eq!(
        restore_with(1 << 20),
        Err(viommu::RestoreError::InvalidField("FSTS")),
        "reserved bits"
    );
    assert_eq!(
        restore_with((7 << 8) | 0x11),
        Ok(()),
        "FRI 7 with PFO and IQE is a real state"
    );
    assert_eq!(unit.mmio_read(0x34, 4), (7 << 8) | 0x11);
}
