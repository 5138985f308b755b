//! The viommu demo: program a unit the way Linux's intel-iommu driver does at boot, put
//! three devices in two domains and a pass-through, and show translations, a fault
//! record, the fault event, and an invalidation taking effect.
//!
//! Run with `cargo run --example demo`.

use viommu::spec::registers::{offset, FaultRecordHigh, FaultStatus};
use viommu::testing::{perm, ContextSpec, GuestDriver, GuestTables, RecordingHost, TestMemory};
use viommu::{Config, DmaError, DmaRequest, SourceId, Translation, Unit};

fn show(unit: &Unit<&TestMemory, &RecordingHost>, what: &str, request: DmaRequest) {
    let access = format!("{:?}", request.access).to_lowercase();
    let who = format!(
        "{:02x}:{:02x}.{}",
        request.source_id.bus(),
        request.source_id.devfn() >> 3,
        request.source_id.devfn() & 7
    );
    match unit.translate(&request) {
        Ok(Translation::Mapped(m)) => println!(
            "  {who} {access:<5} {:#014x} -> {:#014x}   ({} KiB page, {:?}, domain {:?})  {what}",
            request.address,
            m.translate(request.address),
            m.size() >> 10,
            m.permissions,
            m.domain_id
        ),
        Ok(Translation::Interrupt) => println!(
            "  {who} {access:<5} {:#014x} -> interrupt request  {what}",
            request.address
        ),
        Err(DmaError::Fault(f)) => println!(
            "  {who} {access:<5} {:#014x} -> FAULT {:?}{}  {what}",
            request.address,
            f.reason,
            if f.recorded { " (recorded)" } else { "" }
        ),
        Err(e) => println!(
            "  {who} {access:<5} {:#014x} -> {e}  {what}",
            request.address
        ),
    }
}

fn main() {
    let memory = TestMemory::new(64 << 20);
    let host = RecordingHost::new();
    let config = Config::default();
    let unit = Unit::new(config, &memory, &host).expect("default configuration is valid");
    println!(
        "viommu demo: one VT-d unit, {} MiB of guest memory",
        memory.size() >> 20
    );
    println!(
        "  VER {:#x}  CAP {:#018x}  ECAP {:#018x}",
        unit.mmio_read(offset::VER, 4),
        unit.mmio_read(offset::CAP, 8),
        unit.mmio_read(offset::ECAP, 8)
    );

    // The guest builds its tables: a NIC and a disk in domain 1, a GPU in domain 2, and
    // an audio device passed through.
    let nic = SourceId::new(0, 3, 0);
    let disk = SourceId::new(0, 4, 0);
    let gpu = SourceId::new(1, 0, 0);
    let audio = SourceId::new(0, 0x1b, 0);
    let mut tables = GuestTables::new(&memory);
    let dom1 = tables.new_domain_table();
    let dom2 = tables.new_domain_table();
    tables.map(dom1, 4, 0x1000, 0x20_0000, 12, perm::RW);
    tables.map(dom1, 4, 0x2000, 0x20_1000, 12, perm::R);
    tables.map(dom2, 4, 0x4000_0000, 0x1_0000_0000, 21, perm::RW);
    tables.set_context(nic.0, ContextSpec::translated(1, dom1));
    tables.set_context(disk.0, ContextSpec::translated(1, dom1));
    tables.set_context(gpu.0, ContextSpec::translated(2, dom2));
    tables.set_context(audio.0, ContextSpec::pass_through(3));

    // Boot as Linux does: root table, queued invalidation, global invalidations, TE.
    let mut driver = GuestDriver::new(&unit, &memory);
    driver.write32(offset::FEDATA, 0x4021);
    driver.write32(offset::FEADDR, 0xFEE0_0000);
    driver.write32(offset::FECTL, 0);
    driver.boot(tables.root_table);
    println!(
        "\nguest enabled DMA remapping: GSTS {:#010x}",
        driver.read32(offset::GSTS)
    );

    println!("\ntranslations:");
    show(&unit, "NIC, domain 1", DmaRequest::write(nic, 0x1234));
    show(
        &unit,
        "disk shares domain 1",
        DmaRequest::read(disk, 0x2010),
    );
    show(
        &unit,
        "GPU, 2 MiB page in domain 2",
        DmaRequest::write(gpu, 0x4012_3456),
    );
    show(
        &unit,
        "audio, pass-through",
        DmaRequest::read(audio, 0x7654_3210),
    );
    show(&unit, "an MSI write", DmaRequest::write(nic, 0xFEE0_1000));

    println!("\na bad DMA:");
    show(
        &unit,
        "disk writes a read-only page",
        DmaRequest::write(disk, 0x2000),
    );
    let fsts = FaultStatus::from_bits(driver.read32(offset::FSTS));
    let record =
        FaultRecordHigh::from_bits(driver.read64(offset::FRCD + 16 * u64::from(fsts.fri()) + 8));
    println!(
        "  FSTS {:#x}: PPF={} FRI={}; record: SID {:#06x} FR {:#x} {} at {:#x}",
        fsts.into_bits(),
        u8::from(fsts.ppf()),
        fsts.fri(),
        record.sid(),
        record.fr(),
        if record.t1() { "read" } else { "write" },
        driver.read64(offset::FRCD + 16 * u64::from(fsts.fri()))
    );
    for msi in host.take_msis() {
        println!(
            "  fault event MSI: address {:#x} data {:#x}",
            msi.address, msi.data
        );
    }

    println!("\nthe guest remaps NIC page 0x1000 to 0x30_0000:");
    tables.map(dom1, 4, 0x1000, 0x30_0000, 12, perm::RW);
    show(
        &unit,
        "before invalidation: the IOTLB still holds the old page",
        DmaRequest::write(nic, 0x1234),
    );
    driver
        .invalidate_iotlb_pages(1, 0x1000, 0)
        .expect("page-selective invalidation");
    show(
        &unit,
        "after page-selective invalidation",
        DmaRequest::write(nic, 0x1234),
    );
    for event in host.take_events().iter().rev().take(1) {
        println!("  the VMM was told: {event:?}");
    }
}
