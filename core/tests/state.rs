//! Save and restore: a restored unit behaves exactly like the original, and bad blobs are
//! rejected without changing anything.

use viommu::spec::registers::offset;
use viommu::testing::{
    perm, remappable_msi, wait_descriptor, ContextSpec, GuestDriver, GuestTables, IrteSpec,
    RecordingHost, TestMemory, QUEUE_BASE,
};
use viommu::{Config, DmaRequest, InterruptRequest, RestoreError, SourceId, Unit};

const NIC: SourceId = SourceId::new(0, 3, 0);
const DISK: SourceId = SourceId::new(0, 4, 0);
const IRT: u64 = 0x40_0000;

type TestUnit<'a> = Unit<&'a TestMemory, &'a RecordingHost>;

/// Put a unit in an interesting state: translation and IR on, faults pending with the
/// event masked, an IQE with the queue stopped, ICS.IWC set.
fn busy_unit<'a>(mem: &'a TestMemory, host: &'a RecordingHost) -> TestUnit<'a> {
    let unit = Unit::new(Config::default(), mem, host).unwrap();
    let mut tables = GuestTables::new(mem);
    let table = tables.new_domain_table();
    for page in 0..16u64 {
        tables.map(
            table,
            4,
            page << 12,
            0x80_0000 + (page << 12),
            12,
            if page % 2 == 0 { perm::RW } else { perm::R },
        );
    }
    tables.set_context(NIC.0, ContextSpec::translated(1, table));
    let mut d = GuestDriver::new(&unit, mem);
    d.write32(offset::FEDATA, 0x55);
    d.write32(offset::FEADDR, 0xFEE0_1000);
    d.write32(offset::IEDATA, 0x66);
    d.write32(offset::IEADDR, 0xFEE0_2000);
    d.boot(tables.root_table);
    d.set_irte(
        IRT,
        5,
        &IrteSpec {
            vector: 0x31,
            sid: NIC.0,
            svt: 1,
            ..IrteSpec::default()
        },
    );
    d.enable_interrupt_remapping(IRT, 7, true);
    for page in 0..4u64 {
        let _ = unit.translate(&DmaRequest::write(NIC, page << 12));
    }
    let _ = unit.translate(&DmaRequest::read(DISK, 0));
    d.submit(&[wait_descriptor(false, true, false, 0, 0)]);
    d.submit(&[[0x0F, 0]]); // invalid type: IQE, queue stopped
    unit
}

fn observe(unit: &TestUnit<'_>, host: &RecordingHost, mem: &TestMemory) -> Vec<String> {
    let mut seen = Vec::new();
    // The same operations, in the same order.
    for offset in (0..0x2A0u64).step_by(4) {
        seen.push(format!(
            "reg {offset:#x} = {:#x}",
            unit.mmio_read(offset, 4)
        ));
    }
    for page in 0..18u64 {
        seen.push(format!(
            "{:?}",
            unit.translate(&DmaRequest::write(NIC, page << 12 | 8))
        ));
        seen.push(format!(
            "{:?}",
            unit.translate(&DmaRequest::read(NIC, page << 12))
        ));
    }
    let (address, data) = remappable_msi(5, None);
    seen.push(format!(
        "{:?}",
        unit.remap_interrupt(&InterruptRequest {
            source_id: NIC,
            address,
            data
        })
    ));
    // Fix the bad descriptor and clear IQE: processing resumes where it stopped.
    let head = unit.mmio_read(offset::IQH, 8);
    mem.write_u64(
        QUEUE_BASE + head,
        wait_descriptor(true, true, false, 0x1234, 0x7_F100)[0],
    );
    mem.write_u64(QUEUE_BASE + head + 8, 0x7_F100);
    unit.mmio_write(offset::FSTS, 4, 1 << 4);
    seen.push(format!("status {:#x}", mem.peek_u32(0x7_F100)));
    unit.mmio_write(offset::ICS, 4, 1);
    unit.mmio_write(offset::IECTL, 4, 0);
    unit.mmio_write(offset::FECTL, 4, 0);
    for offset in (0..0x2A0u64).step_by(8) {
        seen.push(format!(
            "reg64 {offset:#x} = {:#x}",
            unit.mmio_read(offset, 8)
        ));
    }
    seen.push(format!("msis {:?}", host.take_msis()));
    seen.push(format!("events {:?}", host.take_events()));
    seen
}

#[test]
fn a_restored_unit_behaves_like_the_original() {
    let mem_a = TestMemory::new(16 << 20);
    let host_a = RecordingHost::new();
    let a = busy_unit(&mem_a, &host_a);
    let mut blob = vec![0u8; a.saved_size()];
    assert_eq!(a.save(&mut blob), Ok(blob.len()));

    let mem_b = mem_a.snapshot();
    let host_b = RecordingHost::new();
    let b = Unit::new(Config::default(), &mem_b, &host_b).unwrap();
    b.restore(&blob).unwrap();
    host_a.take_msis();
    host_a.take_events();

    let seen_a = observe(&a, &host_a, &mem_a);
    let seen_b = observe(&b, &host_b, &mem_b);
    assert_eq!(seen_a, seen_b);
    // The observation covered the interesting state.
    assert!(seen_a.iter().any(|s| s.contains("WRITE_NOT_PERMITTED")));
    assert!(
        seen_a.iter().any(|s| s == "status 0x1234"),
        "the stopped queue resumed after restore"
    );
    assert!(seen_a
        .iter()
        .any(|s| s.starts_with("msis [") && s.len() > 8));

    // Saving the restored unit gives the same blob as saving the original.
    let mut blob_a = vec![0u8; a.saved_size()];
    let mut blob_b = vec![0u8; b.saved_size()];
    a.save(&mut blob_a).unwrap();
    b.save(&mut blob_b).unwrap();
    assert_eq!(blob_a, blob_b);
}

#[test]
fn bad_blobs_are_rejected_and_change_nothing() {
    let mem = TestMemory::new(16 << 20);
    let host = RecordingHost::new();
    let unit = busy_unit(&mem, &host);
    let mut blob = vec![0u8; unit.saved_size()];
    unit.save(&mut blob).unwrap();
    assert!(matches!(
        unit.save(&mut [0u8; 16]),
        Err(viommu::SaveError::BufferTooSmall { .. })
    ));

    let target = Unit::new(Config::default(), &mem, &host).unwrap();
    let before: Vec<u64> = (0..0x2A0)
        .step_by(8)
        .map(|o| target.mmio_read(o, 8))
        .collect();
    let unchanged = |t: &TestUnit<'_>| {
        (0..0x2A0)
            .step_by(8)
            .map(|o| t.mmio_read(o, 8))
            .collect::<Vec<_>>()
            == before
    };

    for len in [0, 7, 8, 16, 40, blob.len() - 1] {
        assert!(target.restore(&blob[..len]).is_err(), "truncated to {len}");
    }
    assert_eq!(
        target.restore(&blob[..blob.len() - 1]),
        Err(RestoreError::Truncated)
    );
    let mut future = blob.clone();
    future[8] = 2;
    assert_eq!(
        target.restore(&future),
        Err(RestoreError::UnsupportedVersion(2))
    );
    let mut magic = blob.clone();
    magic[0] = b'X';
    assert_eq!(target.restore(&magic), Err(RestoreError::BadMagic));
    // Every single-bit flip past the header is caught.
    for byte in 16..blob.len() {
        let mut corrupted = blob.clone();
        corrupted[byte] ^= 1 << (byte % 8);
        assert!(target.restore(&corrupted).is_err(), "flip at byte {byte}");
    }
    let other = Unit::new(
        Config {
            caching_mode: true,
            ..Config::default()
        },
        &mem,
        &host,
    )
    .unwrap();
    assert_eq!(other.restore(&blob), Err(RestoreError::ConfigMismatch));
    assert!(unchanged(&target));
    target.restore(&blob).unwrap();
    assert!(!unchanged(&target));
}
