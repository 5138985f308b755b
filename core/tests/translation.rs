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

#[test]
fn two_devices_in_two_domains_translate_through_their_own_tables() {
    let mem = TestMemory::new(MEM);
    let host = RecordingHost::new();
    let unit = Unit::new(Config::default(), &mem, &host).unwrap();
    let mut tables = GuestTables::new(&mem);
    let table_a = tables.new_domain_table();
    let table_b = tables.new_domain_table();
    tables.map(table_a, 4, 0x1000, 0x20_0000, 12, perm::RW);
    tables.map(table_b, 4, 0x1000, 0x30_0000, 12, perm::R);
    tables.set_context(DEV_A.0, ContextSpec::translated(1, table_a));
    tables.set_context(DEV_B.0, ContextSpec::translated(2, table_b));
    let mut driver = GuestDriver::new(&unit, &mem);
    driver.boot(tables.root_table);

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
