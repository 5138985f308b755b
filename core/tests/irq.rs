//! Interrupt remapping scenarios, programmed the way Linux's intel-iommu IR code does
//! (x2APIC mode with EIM, and xAPIC mode). Every test name contains `irq`.

use viommu::spec::registers::{offset, FaultRecordHigh};
use viommu::testing::{
    iec_descriptor, remappable_msi, GuestDriver, GuestTables, IrteSpec, RecordingHost, TestMemory,
};
use viommu::{
    Config, DmaRequest, FaultReason, Interrupt, InterruptError, InterruptRequest,
    InvalidationEvent, PostOutcome, SourceId, Translation, Unit,
};

const NIC: SourceId = SourceId::new(0, 3, 0);
const DISK: SourceId = SourceId::new(0, 4, 0);
const GPU: SourceId = SourceId::new(2, 0, 0);
const IOAPIC: SourceId = SourceId::new(0, 0x1F, 0);
const IRT: u64 = 0x40_0000;

struct Rig {
    mem: &'static TestMemory,
    host: &'static RecordingHost,
    unit: &'static Unit<&'static TestMemory, &'static RecordingHost>,
}

impl Rig {
    fn new(config: Config) -> Self {
        let mem: &'static TestMemory = Box::leak(Box::new(TestMemory::new(16 << 20)));
        let host: &'static RecordingHost = Box::leak(Box::new(RecordingHost::new()));
        let unit = Box::leak(Box::new(Unit::new(config, mem, host).unwrap()));
        Self { mem, host, unit }
    }
    fn driver(&self) -> GuestDriver<'static, &'static TestMemory, &'static RecordingHost> {
        let mut d = GuestDriver::new(self.unit, self.mem);
        d.enable_queued_invalidation();
        d
    }
    fn remap(
        &self,
        source_id: SourceId,
        (address, data): (u64, u32),
    ) -> Result<Interrupt, InterruptError> {
        self.unit.remap_interrupt(&InterruptRequest {
            source_id,
            address,
            data,
        })
    }
    fn fault(&self, source_id: SourceId, msi: (u64, u32)) -> (FaultReason, bool) {
        match self.remap(source_id, msi) {
            Err(InterruptError::Fault(f)) => (f.reason, f.recorded),
            other => panic!("expected an interrupt remapping fault, got {other:?}"),
        }
    }
}

fn remapped(result: Result<Interrupt, InterruptError>) -> viommu::RemappedInterrupt {
    match result {
        Ok(Interrupt::Remapped(r)) => r,
        other => panic!("expected a remapped interrupt, got {other:?}"),
    }
}

fn verified(sid: SourceId) -> IrteSpec {
    IrteSpec {
        sid: sid.0,
        svt: 1,
        ..IrteSpec::default()
    }
}

#[test]
fn irq_x2apic_mode_remaps_msis_of_several_devices() {
    let rig = Rig::new(Config::default());
    let mut d = rig.driver();
    d.set_irte(
        IRT,
        0,
        &IrteSpec {
            vector: 0x30,
            destination: 0x1_0002,
            ..verified(NIC)
        },
    );
    d.set_irte(
        IRT,
        1,
        &IrteSpec {
            vector: 0x31,
            destination: 7,
            logical: true,
            redirection_hint: true,
            delivery_mode: 1,
            ..verified(DISK)
        },
    );
    d.set_irte(
        IRT,
        700,
        &IrteSpec {
            vector: 0xEF,
            destination: 0xFFFF_FFFF,
            ..verified(GPU)
        },
    );
    d.enable_interrupt_remapping(IRT, 15, true);

    let nic = remapped(rig.remap(NIC, remappable_msi(0, None)));
    assert_eq!(
        (nic.vector, nic.destination, nic.index),
        (0x30, 0x1_0002, 0)
    );
    assert!(!nic.logical_destination && !nic.level_triggered);
    let disk = remapped(rig.remap(DISK, remappable_msi(1, None)));
    assert_eq!((disk.vector, disk.destination), (0x31, 7));
    assert!(disk.logical_destination && disk.redirection_hint);
    assert_eq!(
        disk.delivery_mode,
        viommu::spec::irte::DeliveryMode::LOWEST_PRIORITY
    );
    // Handle plus subhandle (multi-vector MSI) indexes the table.
    let gpu = remapped(rig.remap(GPU, remappable_msi(600, Some(100))));
    assert_eq!(
        (gpu.vector, gpu.destination, gpu.index),
        (0xEF, 0xFFFF_FFFF, 700)
    );
    // The compatibility MSI a VMM hands to KVM: destination split over both address halves.
    let msi = nic.to_msi();
    assert_eq!(msi.address, 0x0001_0000_FEE0_2000);
    assert_eq!(msi.data, 0x4030);
}

#[test]
fn irq_xapic_mode_takes_the_destination_from_bits_15_8() {
    let rig = Rig::new(Config {
        extended_interrupt_mode: false,
        ..Config::default()
    });
    let mut d = rig.driver();
    d.set_irte(
        IRT,
        3,
        &IrteSpec {
            vector: 0x41,
            destination: 0x0500,
            level: true,
            ..verified(NIC)
        },
    );
    d.set_irte(
        IRT,
        4,
        &IrteSpec {
            vector: 0x42,
            destination: 0x0005,
            ..verified(NIC)
        },
    );
    d.enable_interrupt_remapping(IRT, 7, false);
    let r = remapped(rig.remap(NIC, remappable_msi(3, None)));
    assert_eq!((r.vector, r.destination), (0x41, 5));
    assert!(r.level_triggered);
    assert_eq!(r.to_msi().address, 0xFEE0_5000);
    assert_eq!(r.to_msi().data, 0xC041);
    // In xAPIC mode DST bits other than 15:8 are reserved.
    assert_eq!(
        rig.fault(NIC, remappable_msi(4, None)),
        (FaultReason::IRTE_RESERVED, true)
    );
}

#[test]
fn irq_ioapic_pin_in_remappable_format() {
    let rig = Rig::new(Config::default());
    let mut d = rig.driver();
    // Linux programs IOAPIC entries with SVT 1 and the IOAPIC's source id.
    d.set_irte(
        IRT,
        24,
        &IrteSpec {
            vector: 0x22,
            destination: 0,
            level: true,
            ..verified(IOAPIC)
        },
    );
    d.enable_interrupt_remapping(IRT, 15, true);
    let r = remapped(rig.remap(IOAPIC, remappable_msi(24, None)));
    assert_eq!((r.vector, r.level_triggered, r.index), (0x22, true, 24));
    // Another requester may not use the IOAPIC's entry.
    assert_eq!(
        rig.fault(NIC, remappable_msi(24, None)).0,
        FaultReason::IR_SOURCE_ID_INVALID
    );
}

#[test]
fn irq_every_fault_reason_is_recorded_with_the_index() {
    let rig = Rig::new(Config::default());
    let mut d = rig.driver();
    d.write32(offset::FECTL, 0);
    d.set_irte(
        IRT,
        1,
        &IrteSpec {
            vector: 0x30,
            ..verified(NIC)
        },
    );
    let mut reserved = IrteSpec {
        vector: 0x31,
        ..verified(NIC)
    }
    .encode();
    reserved[0] |= 1 << 13;
    rig.mem.write_u64(IRT + 2 * 16, reserved[0]);
    rig.mem.write_u64(IRT + 2 * 16 + 8, reserved[1]);
    d.set_irte(
        IRT,
        3,
        &IrteSpec {
            vector: 0x32,
            delivery_mode: 3,
            ..verified(NIC)
        },
    );
    d.set_irte(
        IRT,
        4,
        &IrteSpec {
            vector: 0x33,
            svt: 3,
            ..IrteSpec::default()
        },
    );
    d.set_irte(
        IRT,
        5,
        &IrteSpec {
            vector: 0x34,
            posted: Some((0x10_0000, false)),
            ..IrteSpec::default()
        },
    );
    d.enable_interrupt_remapping(IRT, 3, true); // 16 entries

    let (addr, _) = remappable_msi(1, None);
    let cases: [((u64, u32), FaultReason, Option<u16>); 8] = [
        ((addr, 0x1_0000), FaultReason::IR_REQUEST_RESERVED, Some(1)),
        (
            remappable_msi(16, None),
            FaultReason::IR_INDEX_BEYOND_TABLE,
            Some(16),
        ),
        (
            remappable_msi(0, None),
            FaultReason::IRTE_NOT_PRESENT,
            Some(0),
        ),
        (remappable_msi(2, None), FaultReason::IRTE_RESERVED, Some(2)),
        (remappable_msi(3, None), FaultReason::IRTE_RESERVED, Some(3)),
        (remappable_msi(4, None), FaultReason::IRTE_RESERVED, Some(4)),
        (remappable_msi(5, None), FaultReason::IRTE_RESERVED, Some(5)), // posted without CAP.PI
        (
            (0xFEE0_1000, 0x30),
            FaultReason::IR_COMPATIBILITY_BLOCKED,
            None,
        ),
    ];
    for (i, (msi, reason, index)) in cases.into_iter().enumerate() {
        match rig.remap(DISK, msi) {
            Err(InterruptError::Fault(f)) => {
                assert_eq!(
                    (f.reason, f.index, f.recorded),
                    (reason, index, true),
                    "case {i}"
                );
            }
            other => panic!("case {i}: {other:?}"),
        }
        let record = i as u64 % 8;
        let high = FaultRecordHigh::from_bits(d.read64(offset::FRCD + 16 * record + 8));
        assert_eq!(
            (high.fr(), high.sid(), high.f()),
            (reason.0, DISK.0, true),
            "case {i}"
        );
        assert_eq!(
            d.read64(offset::FRCD + 16 * record) >> 48,
            u64::from(index.unwrap_or(0)),
            "case {i}"
        );
        d.write32(offset::FRCD + 16 * record + 12, 1 << 31);
    }
    assert_eq!(
        rig.fault(DISK, remappable_msi(1, None)).0,
        FaultReason::IR_SOURCE_ID_INVALID
    );
    // A table outside guest memory.
    d.write64(offset::IRTA, (64 << 20) | 3);
    d.write32(offset::GCMD, d.gcmd.with_sirtp(true).into_bits());
    assert_eq!(
        rig.fault(NIC, remappable_msi(1, None)).0,
        FaultReason::IRTE_ACCESS_ERROR
    );
    // And one above the host address width.
    d.write64(offset::IRTA, (1 << 50) | 3);
    d.write32(offset::GCMD, d.gcmd.with_sirtp(true).into_bits());
    assert_eq!(
        rig.fault(NIC, remappable_msi(1, None)).0,
        FaultReason::IRTE_ACCESS_ERROR
    );
    assert!(!rig.host.take_msis().is_empty(), "the fault event fired");
}

#[test]
fn irq_fpd_suppresses_qualified_faults_only() {
    let rig = Rig::new(Config::default());
    let mut d = rig.driver();
    let mut not_present = IrteSpec {
        fpd: true,
        ..IrteSpec::default()
    }
    .encode();
    not_present[0] &= !1;
    rig.mem.write_u64(IRT, not_present[0]);
    d.set_irte(
        IRT,
        1,
        &IrteSpec {
            fpd: true,
            ..verified(NIC)
        },
    );
    d.enable_interrupt_remapping(IRT, 3, true);
    assert_eq!(
        rig.fault(NIC, remappable_msi(0, None)),
        (FaultReason::IRTE_NOT_PRESENT, false)
    );
    assert_eq!(
        rig.fault(DISK, remappable_msi(1, None)),
        (FaultReason::IR_SOURCE_ID_INVALID, false)
    );
    assert_eq!(
        rig.fault(NIC, remappable_msi(99, None)),
        (FaultReason::IR_INDEX_BEYOND_TABLE, true)
    );
    assert_eq!(
        rig.fault(NIC, (0xFEE0_0000, 0)),
        (FaultReason::IR_COMPATIBILITY_BLOCKED, true)
    );
}

#[test]
fn irq_source_validation_with_every_sq_and_the_bus_range() {
    let rig = Rig::new(Config::default());
    let mut d = rig.driver();
    let base = SourceId::new(4, 2, 0);
    for sq in 0..4u8 {
        d.set_irte(
            IRT,
            u16::from(sq),
            &IrteSpec {
                vector: 0x50,
                sid: base.0,
                svt: 1,
                sq,
                ..IrteSpec::default()
            },
        );
    }
    // SVT 2: buses 3..=6 (start in SID[15:8], end in SID[7:0]).
    d.set_irte(
        IRT,
        8,
        &IrteSpec {
            vector: 0x51,
            sid: 0x0306,
            svt: 2,
            ..IrteSpec::default()
        },
    );
    d.enable_interrupt_remapping(IRT, 3, true);
    for sq in 0..4u8 {
        for function in 0..8u8 {
            let requester = SourceId::new(4, 2, function);
            let ignored = [0u8, 0b100, 0b110, 0b111][sq as usize];
            let ok = function & !ignored == 0;
            let result = rig.remap(requester, remappable_msi(u16::from(sq), None));
            assert_eq!(
                result.is_ok(),
                ok,
                "sq {sq} function {function}: {result:?}"
            );
        }
        assert!(rig
            .remap(SourceId::new(4, 3, 0), remappable_msi(u16::from(sq), None))
            .is_err());
    }
    for (bus, ok) in [(2u8, false), (3, true), (5, true), (6, true), (7, false)] {
        let result = rig.remap(SourceId::new(bus, 1, 0), remappable_msi(8, None));
        assert_eq!(result.is_ok(), ok, "bus {bus}: {result:?}");
    }
}

#[test]
fn irq_compatibility_format_follows_cfi_and_is_blocked_in_x2apic_mode() {
    for eime in [false, true] {
        let rig = Rig::new(Config::default());
        let mut d = rig.driver();
        d.enable_interrupt_remapping(IRT, 3, eime);
        let compat = (0xFEE0_1000u64, 0x4031u32);
        assert_eq!(
            rig.fault(NIC, compat).0,
            FaultReason::IR_COMPATIBILITY_BLOCKED
        );
        d.set_compatibility_format(true);
        assert!(d.gsts().cfi());
        let result = rig.remap(NIC, compat);
        if eime {
            assert!(
                matches!(result, Err(InterruptError::Fault(f)) if f.reason == FaultReason::IR_COMPATIBILITY_BLOCKED)
            );
        } else {
            assert_eq!(
                result,
                Ok(Interrupt::PassThrough(viommu::MsiMessage {
                    address: 0xFEE0_1000,
                    data: 0x4031
                }))
            );
        }
    }
}

#[test]
fn irq_remapping_off_passes_interrupts_through_and_works_without_dma_remapping() {
    let rig = Rig::new(Config::default());
    let msi = remappable_msi(0, None);
    assert_eq!(
        rig.remap(NIC, msi),
        Ok(Interrupt::PassThrough(viommu::MsiMessage {
            address: msi.0,
            data: msi.1
        }))
    );
    assert_eq!(
        rig.remap(NIC, (0x1000, 0)),
        Err(InterruptError::NotAnInterrupt)
    );
    let mut d = rig.driver();
    d.set_irte(
        IRT,
        0,
        &IrteSpec {
            vector: 0x60,
            ..verified(NIC)
        },
    );
    d.enable_interrupt_remapping(IRT, 3, true);
    assert!(!d.gsts().te(), "DMA remapping stays off");
    assert_eq!(remapped(rig.remap(NIC, msi)).vector, 0x60);
}

#[test]
fn irq_dma_writes_to_the_interrupt_range_are_routed_to_remapping() {
    let rig = Rig::new(Config::default());
    let mut d = rig.driver();
    let tables = GuestTables::new(rig.mem);
    d.set_irte(
        IRT,
        9,
        &IrteSpec {
            vector: 0x70,
            destination: 3,
            ..verified(NIC)
        },
    );
    d.set_root_table(tables.root_table);
    d.enable_translation();
    d.enable_interrupt_remapping(IRT, 3, true);
    let (address, data) = remappable_msi(9, None);
    assert_eq!(
        rig.unit.translate(&DmaRequest::write(NIC, address)),
        Ok(Translation::Interrupt)
    );
    let r = remapped(rig.remap(NIC, (address, data)));
    assert_eq!((r.vector, r.destination), (0x70, 3));
}

#[test]
fn irq_posted_interrupts_set_pir_and_notify_once() {
    let rig = Rig::new(Config {
        posted_interrupts: true,
        ..Config::default()
    });
    let mut d = rig.driver();
    let pid = 0x20_0040u64;
    d.set_irte(
        IRT,
        2,
        &IrteSpec {
            vector: 0x99,
            posted: Some((pid, false)),
            ..verified(GPU)
        },
    );
    d.set_irte(
        IRT,
        3,
        &IrteSpec {
            vector: 0x45,
            posted: Some((pid, true)),
            ..verified(GPU)
        },
    );
    d.enable_interrupt_remapping(IRT, 3, true);
    // NV = 0xF2, NDST = 5 (x2APIC).
    rig.mem.write_u64(pid + 32, (5u64 << 32) | (0xF2 << 16));
    let posted = match rig.remap(GPU, remappable_msi(2, None)) {
        Ok(Interrupt::Posted(p)) => p,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        (posted.descriptor_address, posted.vector, posted.urgent),
        (pid, 0x99, false)
    );
    assert_eq!(
        rig.unit.post_interrupt(&posted),
        Ok(PostOutcome::Notify {
            vector: 0xF2,
            destination: 5
        })
    );
    assert_eq!(rig.mem.peek_u64(pid + 16), 1 << (0x99 - 128), "PIR bit set");
    assert_eq!(rig.mem.peek_u64(pid + 32) & 1, 1, "ON set");
    // ON already set: pending, no second notification.
    assert_eq!(rig.unit.post_interrupt(&posted), Ok(PostOutcome::Pending));
    // Suppressed (SN) and not urgent: pending; urgent: notify.
    rig.mem.write_u64(pid + 32, (5u64 << 32) | (0xF2 << 16) | 2);
    assert_eq!(rig.unit.post_interrupt(&posted), Ok(PostOutcome::Pending));
    let urgent = match rig.remap(GPU, remappable_msi(3, None)) {
        Ok(Interrupt::Posted(p)) => p,
        other => panic!("{other:?}"),
    };
    assert!(urgent.urgent);
    assert_eq!(
        rig.unit.post_interrupt(&urgent),
        Ok(PostOutcome::Notify {
            vector: 0xF2,
            destination: 5
        })
    );
    assert_eq!(
        rig.mem.peek_u64(pid + 8) & (1 << (0x45 - 64)),
        1 << (0x45 - 64)
    );
}

#[test]
fn irq_iec_invalidation_takes_effect_and_notifies_the_host() {
    let rig = Rig::new(Config::default());
    let mut d = rig.driver();
    for i in 0..8 {
        d.set_irte(
            IRT,
            i,
            &IrteSpec {
                vector: 0x30 + i as u8,
                ..verified(NIC)
            },
        );
    }
    d.enable_interrupt_remapping(IRT, 3, true);
    for i in 0..8 {
        assert_eq!(
            remapped(rig.remap(NIC, remappable_msi(i, None))).vector,
            0x30 + i as u8
        );
    }
    let reads = rig.mem.reads();
    assert_eq!(
        remapped(rig.remap(NIC, remappable_msi(5, None))).vector,
        0x35
    );
    assert_eq!(rig.mem.reads(), reads, "an IEC hit reads no guest memory");
    for i in 0..8 {
        d.set_irte(
            IRT,
            i,
            &IrteSpec {
                vector: 0x80 + i as u8,
                ..verified(NIC)
            },
        );
    }
    // Cached until invalidated.
    assert_eq!(
        remapped(rig.remap(NIC, remappable_msi(5, None))).vector,
        0x35
    );
    rig.host.take_events();
    // Index-selective: entries 4..=5 (IM = 1).
    d.submit_sync(&[iec_descriptor(Some((4, 1)))]).unwrap();
    assert!(rig
        .host
        .take_events()
        .contains(&InvalidationEvent::InterruptEntries {
            index: 4,
            index_mask: 1
        }));
    assert_eq!(
        remapped(rig.remap(NIC, remappable_msi(4, None))).vector,
        0x84
    );
    assert_eq!(
        remapped(rig.remap(NIC, remappable_msi(5, None))).vector,
        0x85
    );
    assert_eq!(
        remapped(rig.remap(NIC, remappable_msi(6, None))).vector,
        0x36
    );
    // Global.
    d.submit_sync(&[iec_descriptor(None)]).unwrap();
    assert!(rig
        .host
        .take_events()
        .contains(&InvalidationEvent::InterruptEntriesGlobal));
    assert_eq!(
        remapped(rig.remap(NIC, remappable_msi(6, None))).vector,
        0x86
    );
    assert_eq!(
        remapped(rig.remap(NIC, remappable_msi(7, None))).vector,
        0x87
    );
    // SIRTP flushes too.
    d.set_irte(
        IRT,
        7,
        &IrteSpec {
            vector: 0xA7,
            ..verified(NIC)
        },
    );
    assert_eq!(
        remapped(rig.remap(NIC, remappable_msi(7, None))).vector,
        0x87
    );
    d.write32(offset::GCMD, d.gcmd.with_sirtp(true).into_bits());
    assert_eq!(
        remapped(rig.remap(NIC, remappable_msi(7, None))).vector,
        0xA7
    );
}
