//! Scenario tests: every legacy fault reason, provoked through tables the way a buggy guest
//! would program them, and read back through the fault recording registers and FSTS the way
//! Linux's `dmar_fault` does; FPD; the fault event; overflow.

use viommu::spec::registers::{offset, EventControl};
use viommu::spec::root_context::{AddressWidth, TranslationType};
use viommu::testing::{
    expect_fault, expect_mapping, perm, ContextSpec, GuestDriver, GuestTables, RecordingHost,
    TestMemory,
};
use viommu::{Access, Config, DmaRequest, FaultReason, MsiMessage, SourceId, Unit};

const MEM: usize = 64 << 20;
const DEV: SourceId = SourceId::new(0, 3, 0);
const IOVA: u64 = 0x1000;
const PAGE: u64 = 0x20_0000;
/// Outside the 64 MiB of guest memory but below the 48-bit host address width.
const OUTSIDE: u64 = 0x1_0000_0000;
const PS: u64 = 1 << 7;

/// The faults FPD suppresses (§7.1.3: the "qualified" ones, Appendix A).
const QUALIFIED: [FaultReason; 8] = [
    FaultReason::CONTEXT_ENTRY_NOT_PRESENT,
    FaultReason::CONTEXT_ENTRY_INVALID,
    FaultReason::ADDRESS_BEYOND_MGAW,
    FaultReason::WRITE_NOT_PERMITTED,
    FaultReason::READ_NOT_PERMITTED,
    FaultReason::PAGING_ENTRY_ACCESS_ERROR,
    FaultReason::CONTEXT_ENTRY_RESERVED,
    FaultReason::PAGING_ENTRY_RESERVED,
];

/// What a case's set-up produced: the request to make, and the RTADDR value to boot with
/// (None: the tables' root table).
struct Setup {
    request: DmaRequest,
    rtaddr: Option<u64>,
}

impl Setup {
    fn new(request: DmaRequest) -> Self {
        Self {
            request,
            rtaddr: None,
        }
    }
    fn rtaddr(request: DmaRequest, rtaddr: u64) -> Self {
        Self {
            request,
            rtaddr: Some(rtaddr),
        }
    }
}

type SetupFn = fn(&mut GuestTables<'_>, bool) -> Setup;

struct Case {
    name: &'static str,
    config: Config,
    reason: FaultReason,
    setup: SetupFn,
}

fn case(name: &'static str, reason: FaultReason, setup: SetupFn) -> Case {
    Case {
        name,
        config: Config::default(),
        reason,
        setup,
    }
}

fn case_with(name: &'static str, config: Config, reason: FaultReason, setup: SetupFn) -> Case {
    Case {
        name,
        config,
        reason,
        setup,
    }
}

/// DEV in domain 1, 4-level table mapping IOVA → PAGE with `perms`; returns the table.
fn mapped_device(t: &mut GuestTables<'_>, fpd: bool, perms: u64) -> u64 {
    let table = t.new_domain_table();
    t.map(table, 4, IOVA, PAGE, 12, perms);
    t.set_context(
        DEV.0,
        ContextSpec {
            fpd,
            ..ContextSpec::translated(1, table)
        },
    );
    table
}

/// DEV with a context programmed as `spec` says (FPD from `fpd`), over a mapped table.
fn device_with(t: &mut GuestTables<'_>, fpd: bool, spec: fn(u64) -> ContextSpec) -> u64 {
    let table = t.new_domain_table();
    t.map(table, 4, IOVA, PAGE, 12, perm::RW);
    t.set_context(DEV.0, ContextSpec { fpd, ..spec(table) });
    table
}

fn read() -> DmaRequest {
    DmaRequest::read(DEV, IOVA + 0x123)
}

fn write() -> DmaRequest {
    DmaRequest::write(DEV, IOVA + 0x123)
}

/// OR `bits` into the qword at `address`.
fn set_bits(t: &GuestTables<'_>, address: u64, bits: u64) {
    let m = t.memory();
    m.write_u64(address, m.peek_u64(address) | bits);
}

fn cases() -> Vec<Case> {
    let mut cases = vec![
        // 1h: the bus's root entry is not present (its context table would have FPD).
        case(
            "root entry not present",
            FaultReason::ROOT_ENTRY_NOT_PRESENT,
            |t, fpd| {
                mapped_device(t, fpd, perm::RW);
                let root = t.root_table + u64::from(DEV.bus()) * 16;
                let low = t.memory().peek_u64(root);
                t.memory().write_u64(root, low & !1);
                Setup::new(read())
            },
        ),
        case(
            "root entry not present on another bus",
            FaultReason::ROOT_ENTRY_NOT_PRESENT,
            |t, fpd| {
                mapped_device(t, fpd, perm::RW);
                Setup::new(DmaRequest::write(SourceId::new(7, 1, 2), IOVA))
            },
        ),
        // 2h.
        case(
            "context entry not present",
            FaultReason::CONTEXT_ENTRY_NOT_PRESENT,
            |t, fpd| {
                mapped_device(t, false, perm::RW);
                t.clear_context(DEV.0, fpd);
                Setup::new(read())
            },
        ),
        // 3h.
        case(
            "context TT reserved (3)",
            FaultReason::CONTEXT_ENTRY_INVALID,
            |t, fpd| {
                device_with(t, fpd, |table| ContextSpec {
                    translation_type: TranslationType::RESERVED,
                    ..ContextSpec::translated(1, table)
                });
                Setup::new(read())
            },
        ),
        case(
            "context TT 1 without device-TLB support",
            FaultReason::CONTEXT_ENTRY_INVALID,
            |t, fpd| {
                device_with(t, fpd, |table| ContextSpec {
                    translation_type: TranslationType::ALL,
                    ..ContextSpec::translated(1, table)
                });
                Setup::new(read())
            },
        ),
        case_with(
            "context TT 2 without pass-through support",
            Config {
                pass_through: false,
                ..Config::default()
            },
            FaultReason::CONTEXT_ENTRY_INVALID,
            |t, fpd| {
                device_with(t, fpd, |_| ContextSpec::pass_through(1));
                Setup::new(write())
            },
        ),
        case(
            "context AW 57 on a 48-bit unit",
            FaultReason::CONTEXT_ENTRY_INVALID,
            |t, fpd| {
                device_with(t, fpd, |table| ContextSpec {
                    address_width: AddressWidth::AGAW_57,
                    ..ContextSpec::translated(1, table)
                });
                Setup::new(read())
            },
        ),
        case(
            "context AW 0 (30-bit)",
            FaultReason::CONTEXT_ENTRY_INVALID,
            |t, fpd| {
                device_with(t, fpd, |table| ContextSpec {
                    address_width: AddressWidth::AGAW_30,
                    ..ContextSpec::translated(1, table)
                });
                Setup::new(read())
            },
        ),
        case(
            "context AW 5 (reserved)",
            FaultReason::CONTEXT_ENTRY_INVALID,
            |t, fpd| {
                device_with(t, fpd, |table| ContextSpec {
                    address_width: AddressWidth(5),
                    ..ContextSpec::translated(1, table)
                });
                Setup::new(read())
            },
        ),
        case(
            "context AW 7 (reserved)",
            FaultReason::CONTEXT_ENTRY_INVALID,
            |t, fpd| {
                device_with(t, fpd, |table| ContextSpec {
                    address_width: AddressWidth(7),
                    ..ContextSpec::translated(1, table)
                });
                Setup::new(write())
            },
        ),
        case_with(
            "context AW 48 on a 39-bit unit",
            Config {
                guest_address_width: 39,
                ..Config::default()
            },
            FaultReason::CONTEXT_ENTRY_INVALID,
            |t, fpd| {
                device_with(t, fpd, |table| ContextSpec::translated(1, table));
                Setup::new(read())
            },
        ),
        // 4h.
        case(
            "address at 2^39 in a 3-level context",
            FaultReason::ADDRESS_BEYOND_MGAW,
            |t, fpd| {
                device_with(t, fpd, |table| ContextSpec {
                    address_width: AddressWidth::AGAW_39,
                    ..ContextSpec::translated(1, table)
                });
                Setup::new(DmaRequest::read(DEV, (1 << 39) | IOVA))
            },
        ),
        case(
            "address at 2^48 in a 4-level context",
            FaultReason::ADDRESS_BEYOND_MGAW,
            |t, fpd| {
                mapped_device(t, fpd, perm::RW);
                Setup::new(DmaRequest::write(DEV, (1 << 48) | IOVA))
            },
        ),
        case(
            "address far above MGAW",
            FaultReason::ADDRESS_BEYOND_MGAW,
            |t, fpd| {
                mapped_device(t, fpd, perm::RW);
                Setup::new(DmaRequest::read(DEV, u64::MAX - 0xFFF))
            },
        ),
        case_with(
            "address at 2^57 in a 5-level context",
            Config {
                guest_address_width: 57,
                ..Config::default()
            },
            FaultReason::ADDRESS_BEYOND_MGAW,
            |t, fpd| {
                let table = t.new_domain_table();
                t.map(table, 5, IOVA, PAGE, 12, perm::RW);
                t.set_context(
                    DEV.0,
                    ContextSpec {
                        fpd,
                        address_width: AddressWidth::AGAW_57,
                        ..ContextSpec::translated(1, table)
                    },
                );
                Setup::new(DmaRequest::read(DEV, 1 << 57))
            },
        ),
        case(
            "pass-through address at 2^48",
            FaultReason::ADDRESS_BEYOND_MGAW,
            |t, fpd| {
                device_with(t, fpd, |_| ContextSpec::pass_through(1));
                Setup::new(DmaRequest::read(DEV, 1 << 48))
            },
        ),
        // 5h and 6h.
        case(
            "write to a read-only page",
            FaultReason::WRITE_NOT_PERMITTED,
            |t, fpd| {
                mapped_device(t, fpd, perm::R);
                Setup::new(write())
            },
        ),
        case(
            "read of a write-only page",
            FaultReason::READ_NOT_PERMITTED,
            |t, fpd| {
                mapped_device(t, fpd, perm::W);
                Setup::new(read())
            },
        ),
        case(
            "read-write request to a read-only page",
            FaultReason::WRITE_NOT_PERMITTED,
            |t, fpd| {
                mapped_device(t, fpd, perm::R);
                Setup::new(DmaRequest {
                    access: Access::READ_WRITE,
                    ..read()
                })
            },
        ),
        case(
            "write through a read-only PDE above a read-write PTE",
            FaultReason::WRITE_NOT_PERMITTED,
            |t, fpd| {
                let table = mapped_device(t, fpd, perm::RW);
                let pde = t.entry_address(table, 4, IOVA, 2);
                let value = t.memory().peek_u64(pde);
                t.memory().write_u64(pde, value & !perm::W);
                Setup::new(write())
            },
        ),
        case(
            "read through a write-only PML4E above a read-write PTE",
            FaultReason::READ_NOT_PERMITTED,
            |t, fpd| {
                let table = mapped_device(t, fpd, perm::RW);
                let pml4e = t.entry_address(table, 4, IOVA, 4);
                let value = t.memory().peek_u64(pml4e);
                t.memory().write_u64(pml4e, value & !perm::R);
                Setup::new(read())
            },
        ),
        // 7h.
        case(
            "second-level table outside memory",
            FaultReason::PAGING_ENTRY_ACCESS_ERROR,
            |t, fpd| {
                device_with(t, fpd, |_| ContextSpec::translated(1, OUTSIDE));
                Setup::new(read())
            },
        ),
        case(
            "second-level table at 2^HAW",
            FaultReason::PAGING_ENTRY_ACCESS_ERROR,
            |t, fpd| {
                device_with(t, fpd, |_| ContextSpec::translated(1, 1 << 48));
                Setup::new(write())
            },
        ),
        case(
            "page table below a PDE outside memory",
            FaultReason::PAGING_ENTRY_ACCESS_ERROR,
            |t, fpd| {
                let table = mapped_device(t, fpd, perm::RW);
                t.set_entry(table, 4, IOVA, 2, OUTSIDE | perm::RW);
                Setup::new(read())
            },
        ),
        // 8h.
        case(
            "root table outside memory",
            FaultReason::ROOT_TABLE_ACCESS_ERROR,
            |t, fpd| {
                mapped_device(t, fpd, perm::RW);
                Setup::rtaddr(read(), OUTSIDE)
            },
        ),
        case(
            "root table at 2^HAW",
            FaultReason::ROOT_TABLE_ACCESS_ERROR,
            |t, fpd| {
                mapped_device(t, fpd, perm::RW);
                Setup::rtaddr(write(), 1 << 48)
            },
        ),
        // 9h.
        case(
            "context table outside memory",
            FaultReason::CONTEXT_TABLE_ACCESS_ERROR,
            |t, fpd| {
                mapped_device(t, fpd, perm::RW);
                t.memory().write_u64(t.root_table, OUTSIDE | 1);
                Setup::new(read())
            },
        ),
        case(
            "context table above HAW",
            FaultReason::CONTEXT_TABLE_ACCESS_ERROR,
            |t, fpd| {
                mapped_device(t, fpd, perm::RW);
                t.memory().write_u64(t.root_table, (1 << 50) | 1);
                Setup::new(read())
            },
        ),
        // Ah.
        case(
            "root entry reserved low bit",
            FaultReason::ROOT_ENTRY_RESERVED,
            |t, fpd| {
                mapped_device(t, fpd, perm::RW);
                set_bits(t, t.root_table, 1 << 3);
                Setup::new(read())
            },
        ),
        case(
            "root entry reserved high qword",
            FaultReason::ROOT_ENTRY_RESERVED,
            |t, fpd| {
                mapped_device(t, fpd, perm::RW);
                set_bits(t, t.root_table + 8, 1 << 63);
                Setup::new(write())
            },
        ),
        // Bh.
        case(
            "context entry reserved low bits 11:4",
            FaultReason::CONTEXT_ENTRY_RESERVED,
            |t, fpd| {
                mapped_device(t, fpd, perm::RW);
                let ce = t.context_entry_address(DEV.0);
                set_bits(t, ce, 1 << 4);
                Setup::new(read())
            },
        ),
        case(
            "context entry reserved bit 7 of the high qword",
            FaultReason::CONTEXT_ENTRY_RESERVED,
            |t, fpd| {
                mapped_device(t, fpd, perm::RW);
                let ce = t.context_entry_address(DEV.0);
                set_bits(t, ce + 8, 1 << 7);
                Setup::new(read())
            },
        ),
        case(
            "context entry reserved bits 63:24",
            FaultReason::CONTEXT_ENTRY_RESERVED,
            |t, fpd| {
                mapped_device(t, fpd, perm::RW);
                let ce = t.context_entry_address(DEV.0);
                set_bits(t, ce + 8, 1 << 40);
                Setup::new(write())
            },
        ),
        case_with(
            "domain id beyond CAP.ND",
            Config {
                domain_id_bits: 8,
                ..Config::default()
            },
            FaultReason::CONTEXT_ENTRY_RESERVED,
            |t, fpd| {
                device_with(t, fpd, |table| ContextSpec::translated(256, table));
                Setup::new(read())
            },
        ),
        // Ch.
        case(
            "PS in a PML4E",
            FaultReason::PAGING_ENTRY_RESERVED,
            |t, fpd| {
                let table = mapped_device(t, fpd, perm::RW);
                let pml4e = t.entry_address(table, 4, IOVA, 4);
                set_bits(t, pml4e, PS);
                Setup::new(read())
            },
        ),
        case_with(
            "PS in a PML5E",
            Config {
                guest_address_width: 57,
                ..Config::default()
            },
            FaultReason::PAGING_ENTRY_RESERVED,
            |t, fpd| {
                let table = t.new_domain_table();
                t.map(table, 5, IOVA, PAGE, 12, perm::RW);
                t.set_context(
                    DEV.0,
                    ContextSpec {
                        fpd,
                        address_width: AddressWidth::AGAW_57,
                        ..ContextSpec::translated(1, table)
                    },
                );
                let pml5e = t.entry_address(table, 5, IOVA, 5);
                set_bits(t, pml5e, PS);
                Setup::new(read())
            },
        ),
        case_with(
            "1 GiB page without 1 GiB support",
            Config {
                large_pages_1g: false,
                ..Config::default()
            },
            FaultReason::PAGING_ENTRY_RESERVED,
            |t, fpd| {
                let table = mapped_device(t, fpd, perm::RW);
                t.map(table, 4, 1 << 30, 1 << 30, 30, perm::RW);
                Setup::new(DmaRequest::read(DEV, (1 << 30) + 0x5000))
            },
        ),
        case_with(
            "2 MiB page without 2 MiB support",
            Config {
                large_pages_2m: false,
                ..Config::default()
            },
            FaultReason::PAGING_ENTRY_RESERVED,
            |t, fpd| {
                let table = mapped_device(t, fpd, perm::RW);
                t.map(table, 4, 0x40_0000, 0x40_0000, 21, perm::RW);
                Setup::new(DmaRequest::write(DEV, 0x40_1000))
            },
        ),
        case(
            "2 MiB page with a misaligned address",
            FaultReason::PAGING_ENTRY_RESERVED,
            |t, fpd| {
                let table = mapped_device(t, fpd, perm::RW);
                t.set_entry(table, 4, 0x40_0000, 2, 0x20_1000 | PS | perm::RW);
                Setup::new(DmaRequest::read(DEV, 0x40_3000))
            },
        ),
        case(
            "1 GiB page with a misaligned address",
            FaultReason::PAGING_ENTRY_RESERVED,
            |t, fpd| {
                let table = mapped_device(t, fpd, perm::RW);
                t.set_entry(table, 4, 1 << 30, 3, (1 << 30) | 0x20_0000 | PS | perm::RW);
                Setup::new(DmaRequest::read(DEV, (1 << 30) + 0x3000))
            },
        ),
        case(
            "PTE address above HAW",
            FaultReason::PAGING_ENTRY_RESERVED,
            |t, fpd| {
                let table = mapped_device(t, fpd, perm::RW);
                t.set_entry(table, 4, IOVA, 1, (1 << 50) | perm::RW);
                Setup::new(read())
            },
        ),
        case_with(
            "PDE address above a 39-bit HAW",
            Config {
                host_address_width: 39,
                ..Config::default()
            },
            FaultReason::PAGING_ENTRY_RESERVED,
            |t, fpd| {
                let table = mapped_device(t, fpd, perm::RW);
                t.set_entry(table, 4, IOVA, 2, (1 << 40) | perm::RW);
                Setup::new(write())
            },
        ),
        // 30h.
        case(
            "RTADDR TTM 1 (scalable mode, unsupported)",
            FaultReason::ROOT_TABLE_MODE_INVALID,
            |t, fpd| {
                mapped_device(t, fpd, perm::RW);
                Setup::rtaddr(read(), t.root_table | (1 << 10))
            },
        ),
        case(
            "RTADDR TTM 2 (reserved)",
            FaultReason::ROOT_TABLE_MODE_INVALID,
            |t, fpd| {
                mapped_device(t, fpd, perm::RW);
                Setup::rtaddr(write(), t.root_table | (2 << 10))
            },
        ),
        case(
            "RTADDR TTM 3 (abort DMA, unsupported)",
            FaultReason::ROOT_TABLE_MODE_INVALID,
            |t, fpd| {
                mapped_device(t, fpd, perm::RW);
                Setup::rtaddr(read(), t.root_table | (3 << 10))
            },
        ),
    ];
    // An entry that is not present at each level: read and write faults.
    let not_present: [(SetupFn, SetupFn); 4] = [
        (
            |t, f| not_present_at(t, f, 4, false),
            |t, f| not_present_at(t, f, 4, true),
        ),
        (
            |t, f| not_present_at(t, f, 3, false),
            |t, f| not_present_at(t, f, 3, true),
        ),
        (
            |t, f| not_present_at(t, f, 2, false),
            |t, f| not_present_at(t, f, 2, true),
        ),
        (
            |t, f| not_present_at(t, f, 1, false),
            |t, f| not_present_at(t, f, 1, true),
        ),
    ];
    for (read_case, write_case) in not_present {
        cases.push(case(
            "read through a not-present entry",
            FaultReason::READ_NOT_PERMITTED,
            read_case,
        ));
        cases.push(case(
            "write through a not-present entry",
            FaultReason::WRITE_NOT_PERMITTED,
            write_case,
        ));
    }
    cases
}

fn not_present_at(t: &mut GuestTables<'_>, fpd: bool, level: u8, is_write: bool) -> Setup {
    let table = mapped_device(t, fpd, perm::RW);
    // Not present is R = W = 0; the other bits are the guest's business.
    let entry = t.entry_address(table, 4, IOVA, level);
    let value = t.memory().peek_u64(entry);
    t.memory().write_u64(entry, value & !perm::RW);
    Setup::new(if is_write { write() } else { read() })
}

#[test]
fn every_fault_reason_is_returned_and_recorded() {
    for c in cases() {
        let mem = TestMemory::new(MEM);
        let host = RecordingHost::new();
        let unit = Unit::new(c.config, &mem, &host).unwrap();
        let mut tables = GuestTables::new(&mem);
        let setup = (c.setup)(&mut tables, false);
        let mut driver = GuestDriver::new(&unit, &mem);
        driver.boot(setup.rtaddr.unwrap_or(tables.root_table));
        host.take_msis();

        let req = setup.request;
        let fault = expect_fault(&unit, req);
        assert_eq!(fault.reason, c.reason, "{}", c.name);
        assert_eq!(
            (fault.source_id, fault.address),
            (req.source_id, req.address)
        );
        assert!(fault.recorded, "{}", c.name);

        let fsts = driver.fsts();
        assert!(fsts.ppf(), "{}: PPF", c.name);
        assert_eq!(fsts.fri(), 0, "{}: FRI", c.name);
        assert!(!fsts.pfo());
        let (low, high) = driver.fault_record(0);
        assert_eq!(low.into_bits(), req.address & !0xFFF, "{}: FI", c.name);
        assert_eq!(high.sid(), req.source_id.0, "{}: SID", c.name);
        assert_eq!(high.fr(), c.reason.0, "{}: FR", c.name);
        assert_eq!(high.t1(), !req.access.write(), "{}: T1 (1 = read)", c.name);
        assert!(high.f(), "{}: F", c.name);
        assert!(!high.pp() && !high.t2());
        let (_, next) = driver.fault_record(1);
        assert!(!next.f(), "{}: only one record", c.name);
        // FECTL.IM is set from reset: the event is held pending.
        let fectl = EventControl::from_bits(driver.read32(offset::FECTL));
        assert!(fectl.ip() && fectl.im(), "{}: IP held while masked", c.name);
        assert!(host.take_msis().is_empty(), "{}", c.name);

        // The same request again: the same fault, recorded in the next register.
        let again = expect_fault(&unit, req);
        assert_eq!(again.reason, c.reason, "{} (again)", c.name);
        assert!(again.recorded);
        let (_, second) = driver.fault_record(1);
        assert!(second.f() && second.fr() == c.reason.0, "{}", c.name);
        assert_eq!(
            driver.fsts().fri(),
            0,
            "FRI stays on the first pending record"
        );
    }
}

#[test]
fn fault_processing_disable_suppresses_only_qualified_faults() {
    for c in cases() {
        let mem = TestMemory::new(MEM);
        let host = RecordingHost::new();
        let unit = Unit::new(c.config, &mem, &host).unwrap();
        let mut tables = GuestTables::new(&mem);
        let setup = (c.setup)(&mut tables, true);
        let mut driver = GuestDriver::new(&unit, &mem);
        driver.boot(setup.rtaddr.unwrap_or(tables.root_table));
        driver.write32(offset::FECTL, 0);
        host.take_msis();

        let fault = expect_fault(&unit, setup.request);
        assert_eq!(fault.reason, c.reason, "{}", c.name);
        let suppressed = QUALIFIED.contains(&c.reason);
        assert_eq!(fault.recorded, !suppressed, "{}", c.name);
        let (_, high) = driver.fault_record(0);
        assert_eq!(high.f(), !suppressed, "{}", c.name);
        assert_eq!(driver.fsts().ppf(), !suppressed, "{}", c.name);
        assert_eq!(
            host.take_msis().len(),
            usize::from(!suppressed),
            "{}",
            c.name
        );
    }
}

/// Guest tables with DEV mapping IOVA → PAGE read-only; returns them and DEV's table.
fn device_tables(mem: &TestMemory) -> (GuestTables<'_>, u64) {
    let mut tables = GuestTables::new(mem);
    let table = mapped_device(&mut tables, false, perm::R);
    (tables, table)
}

const FE_ADDRESS: u64 = 0x0000_0001_FEE0_1000;
const FE_DATA: u32 = 0x4041;

fn program_fault_event(driver: &GuestDriver<'_, &TestMemory, &RecordingHost>, masked: bool) {
    driver.write32(offset::FEDATA, FE_DATA);
    driver.write32(offset::FEADDR, FE_ADDRESS as u32);
    driver.write32(offset::FEUADDR, (FE_ADDRESS >> 32) as u32);
    driver.write32(offset::FECTL, if masked { 1 << 31 } else { 0 });
}

fn fectl(driver: &GuestDriver<'_, &TestMemory, &RecordingHost>) -> EventControl {
    EventControl::from_bits(driver.read32(offset::FECTL))
}

const FE_MSI: MsiMessage = MsiMessage {
    address: FE_ADDRESS,
    data: FE_DATA,
};

#[test]
fn unmasked_fault_event_is_sent_at_once_and_not_again_while_pending() {
    let mem = TestMemory::new(MEM);
    let host = RecordingHost::new();
    let unit = Unit::new(Config::default(), &mem, &host).unwrap();
    let (tables, _) = device_tables(&mem);
    let mut driver = GuestDriver::new(&unit, &mem);
    driver.boot(tables.root_table);
    program_fault_event(&driver, false);
    assert!(host.take_msis().is_empty());

    expect_fault(&unit, write());
    assert_eq!(host.take_msis(), [FE_MSI]);
    assert!(!fectl(&driver).ip(), "IP clear once the message is sent");

    // PPF still set: the second fault is recorded but no new event is raised.
    let second = expect_fault(&unit, DmaRequest::read(SourceId::new(1, 0, 0), 0x5000));
    assert!(second.recorded);
    assert!(host.take_msis().is_empty());
    assert!(driver.fault_record(1).1.f());

    // Linux's dmar_fault: clear each record from FRI on, then PFO and the rest of FSTS.
    driver.clear_fault_record(0);
    assert!(driver.fsts().ppf(), "record 1 still pending");
    assert_eq!(driver.fsts().fri(), 1, "FRI moves to the pending record");
    driver.clear_fault_record(1);
    assert!(!driver.fsts().ppf());
    assert!(!driver.fault_record(0).1.f() && !driver.fault_record(1).1.f());
    // Other fields of a cleared record are unchanged (only F is writable).
    assert_eq!(
        driver.fault_record(0).1.fr(),
        FaultReason::WRITE_NOT_PERMITTED.0
    );

    // Nothing pending: the next fault raises a new event.
    expect_fault(&unit, write());
    assert_eq!(host.take_msis(), [FE_MSI]);
    assert_eq!(driver.fsts().fri(), 2);
}

#[test]
fn masked_fault_event_is_held_and_sent_on_unmask() {
    let mem = TestMemory::new(MEM);
    let host = RecordingHost::new();
    let unit = Unit::new(Config::default(), &mem, &host).unwrap();
    let (tables, _) = device_tables(&mem);
    let mut driver = GuestDriver::new(&unit, &mem);
    driver.boot(tables.root_table);
    program_fault_event(&driver, true);

    expect_fault(&unit, write());
    assert!(host.take_msis().is_empty(), "masked: nothing sent");
    assert!(fectl(&driver).ip() && fectl(&driver).im());
    expect_fault(&unit, write());
    assert!(host.take_msis().is_empty());

    driver.write32(offset::FECTL, 0);
    assert_eq!(
        host.take_msis(),
        [FE_MSI],
        "unmasking sends the held event once"
    );
    assert!(!fectl(&driver).ip());
    driver.write32(offset::FECTL, 0);
    assert!(host.take_msis().is_empty());
}

#[test]
fn clearing_the_conditions_while_masked_clears_ip() {
    let mem = TestMemory::new(MEM);
    let host = RecordingHost::new();
    let unit = Unit::new(Config::default(), &mem, &host).unwrap();
    let (tables, _) = device_tables(&mem);
    let mut driver = GuestDriver::new(&unit, &mem);
    driver.boot(tables.root_table);
    program_fault_event(&driver, true);

    expect_fault(&unit, write());
    assert!(fectl(&driver).ip());
    driver.clear_fault_record(0);
    assert!(!fectl(&driver).ip(), "no condition left: IP clears");
    driver.write32(offset::FECTL, 0);
    assert!(host.take_msis().is_empty(), "nothing to send on unmask");
}

#[test]
fn fault_records_overflow_and_recording_resumes_once_software_clears_them() {
    let mem = TestMemory::new(MEM);
    let host = RecordingHost::new();
    let config = Config {
        fault_records: 2,
        ..Config::default()
    };
    let unit = Unit::new(config, &mem, &host).unwrap();
    let (tables, _) = device_tables(&mem);
    let mut driver = GuestDriver::new(&unit, &mem);
    driver.boot(tables.root_table);
    program_fault_event(&driver, false);

    let first = DmaRequest::write(DEV, 0x1000);
    let second = DmaRequest::read(SourceId::new(1, 0, 0), 0x7000);
    let third = DmaRequest::read(SourceId::new(2, 0, 0), 0x9000);
    assert!(expect_fault(&unit, first).recorded);
    assert!(expect_fault(&unit, second).recorded);
    assert_eq!(host.take_msis(), [FE_MSI], "one event for the first fault");
    let overflow = expect_fault(&unit, third);
    assert_eq!(overflow.reason, FaultReason::ROOT_ENTRY_NOT_PRESENT);
    assert!(!overflow.recorded, "no free record");
    assert!(host.take_msis().is_empty());
    let fsts = driver.fsts();
    assert!(fsts.pfo() && fsts.ppf(), "{fsts:?}");
    assert_eq!(fsts.fri(), 0);

    // Records 0 and 1 are intact.
    let (low0, high0) = driver.fault_record(0);
    assert_eq!((low0.into_bits(), high0.sid()), (0x1000, DEV.0));
    assert_eq!(high0.fr(), FaultReason::WRITE_NOT_PERMITTED.0);
    assert!(!high0.t1());
    let (low1, high1) = driver.fault_record(1);
    assert_eq!((low1.into_bits(), high1.sid()), (0x7000, 0x100));
    assert_eq!(high1.fr(), FaultReason::ROOT_ENTRY_NOT_PRESENT.0);
    assert!(high1.t1());
    // There is no third register to read.
    assert_eq!(driver.read64(offset::FRCD + 32 + 8), 0);

    // Software clears the records and PFO (RW1C), as dmar_fault does.
    driver.clear_fault_record(0);
    driver.clear_fault_record(1);
    assert!(driver.fsts().pfo(), "PFO is cleared only by writing it");
    driver.write32(offset::FSTS, 1);
    let fsts = driver.fsts();
    assert!(!fsts.pfo() && !fsts.ppf(), "{fsts:?}");
    assert!(!fectl(&driver).ip());

    let fourth = expect_fault(&unit, third);
    assert!(fourth.recorded, "recording resumes");
    assert_eq!(host.take_msis(), [FE_MSI]);
    let fsts = driver.fsts();
    assert!(fsts.ppf());
    let index = usize::from(fsts.fri());
    let (low, high) = driver.fault_record(index);
    assert_eq!((low.into_bits(), high.sid()), (0x9000, 0x200));
    assert!(high.f());
}

#[test]
fn overflow_raises_the_event_when_nothing_else_was_pending() {
    let mem = TestMemory::new(MEM);
    let host = RecordingHost::new();
    let config = Config {
        fault_records: 1,
        ..Config::default()
    };
    let unit = Unit::new(config, &mem, &host).unwrap();
    let (tables, _) = device_tables(&mem);
    let mut driver = GuestDriver::new(&unit, &mem);
    driver.boot(tables.root_table);
    program_fault_event(&driver, true);
    assert!(expect_fault(&unit, write()).recorded);
    assert!(!expect_fault(&unit, write()).recorded);
    assert!(driver.fsts().pfo());
    // Clearing the record leaves PFO: IP stays until it is cleared too.
    driver.clear_fault_record(0);
    assert!(fectl(&driver).ip(), "PFO still pending");
    driver.write32(offset::FSTS, 1);
    assert!(!fectl(&driver).ip());
    assert!(host.take_msis().is_empty());
}

#[test]
fn a_permission_fault_on_an_iotlb_hit_is_recorded() {
    let mem = TestMemory::new(MEM);
    let host = RecordingHost::new();
    let unit = Unit::new(Config::default(), &mem, &host).unwrap();
    let (mut tables, table) = device_tables(&mem);
    let mut driver = GuestDriver::new(&unit, &mem);
    driver.boot(tables.root_table);
    let m = expect_mapping(&unit, read());
    assert_eq!(m.permissions, Access::READ);
    assert_eq!(m.translate(IOVA + 0x123), PAGE + 0x123);
    // Make the PTE writable without invalidating: the cached read-only entry still rules,
    // so the write is refused from the IOTLB — and recorded like any other fault.
    tables.map(table, 4, IOVA, PAGE, 12, perm::RW);
    let fault = expect_fault(&unit, write());
    assert_eq!(fault.reason, FaultReason::WRITE_NOT_PERMITTED);
    assert!(fault.recorded);
    let (low, high) = driver.fault_record(0);
    assert_eq!(low.into_bits(), IOVA);
    assert_eq!(high.fr(), FaultReason::WRITE_NOT_PERMITTED.0);
    assert!(!high.t1() && high.f());
    // Once the guest invalidates the page, the write goes through.
    driver.invalidate_iotlb_pages(1, IOVA, 0).unwrap();
    assert_eq!(
        expect_mapping(&unit, write()).permissions,
        Access::READ_WRITE
    );
}
