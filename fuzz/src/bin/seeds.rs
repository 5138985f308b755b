//! Writes the seed corpora in `fuzz/seeds/<target>/`: inputs derived from the scenario
//! tests' set-ups (a Linux-like boot over MMIO, valid tables, valid descriptors, valid
//! IRTEs, a unit worth saving). Every seed is decoded back and compared with the value
//! it was written from, then run through its harness, so a seed is never useless and
//! never crashes.
//!
//! Run from `fuzz/`: `cargo run --release --features seeds --bin seeds` (then `cargo fuzz run`
//! after it: the seeds are plain files).

use std::fmt::Debug;
use std::path::Path;

use arbitrary::{Arbitrary, Unstructured};
use viommu::spec::registers::offset;
use viommu::testing::{
    context_descriptor, iotlb_descriptor, perm, remappable_msi, wait_descriptor, ContextSpec,
    GuestTables, IrteSpec, TestMemory, QUEUE_BASE, WAIT_STATUS,
};
use viommu::{GuestMemory, SourceId};
use viommu_fuzz::common::{Addr, ConfigBits, MemWrite};
use viommu_fuzz::encode::{to_bytes, Encode};
use viommu_fuzz::mmio::{MmioOp, Offset, REGISTERS};
use viommu_fuzz::queue::{Desc, QOp, QueueShape};
use viommu_fuzz::translate::{Op, TableOp};
use viommu_fuzz::{irq, mmio, queue, restore, translate};

const NIC: SourceId = SourceId::new(0, 3, 0);
const DISK: SourceId = SourceId::new(0, 4, 0);
const GPU: SourceId = SourceId::new(2, 0, 0);

fn write_seed<T>(dir: &Path, name: &str, value: &T, run: fn(&T))
where
    T: Encode + for<'a> Arbitrary<'a> + PartialEq + Debug,
{
    let bytes = to_bytes(value);
    let decoded = T::arbitrary_take_rest(Unstructured::new(&bytes)).expect("seed decodes");
    assert_eq!(
        &decoded, value,
        "seed {name} does not decode to what it was written from"
    );
    run(&decoded);
    std::fs::create_dir_all(dir).expect("create seed directory");
    std::fs::write(dir.join(name), &bytes).expect("write seed");
    println!("{:>6} bytes  {}", bytes.len(), dir.join(name).display());
}

fn reg(offset: u64) -> u8 {
    REGISTERS
        .iter()
        .position(|&r| r == offset)
        .expect("a register of REGISTERS") as u8
}

/// Every non-zero qword of `memory` below `size`, as input memory writes.
fn dump(memory: &TestMemory, size: u64) -> Vec<MemWrite> {
    let mut writes = Vec::new();
    for addr in (0..size).step_by(8) {
        let mut b = [0u8; 8];
        if memory.read(addr, &mut b).is_ok() && b != [0; 8] {
            writes.push(MemWrite {
                addr: addr as u32,
                value: u64::from_le_bytes(b),
            });
        }
    }
    writes
}

/// Tables like the translation tests': NIC in domain 1 (4 KiB pages, a 2 MiB page), DISK
/// in domain 2 read-only, GPU pass-through; and the boot's queue descriptors.
fn booted_memory() -> Vec<MemWrite> {
    let mem = TestMemory::new(mmio::MEMORY);
    let mut tables = GuestTables::new(&mem);
    let nic = tables.new_domain_table();
    for page in 0..4u64 {
        tables.map(nic, 4, page << 12, 0x8_0000 + (page << 12), 12, perm::RW);
    }
    tables.map(nic, 4, 0x20_0000, 0x20_0000, 21, perm::R);
    tables.set_context(NIC.0, ContextSpec::translated(1, nic));
    let disk = tables.new_domain_table();
    tables.map(disk, 4, 0x1000, 0x3000, 12, perm::R);
    tables.set_context(DISK.0, ContextSpec::translated(2, disk));
    tables.set_context(GPU.0, ContextSpec::pass_through(3));
    let descriptors = [
        context_descriptor(1, 0, 0, 0),
        iotlb_descriptor(1, 0, 0, 0, false),
        wait_descriptor(true, false, true, 1, WAIT_STATUS),
        iotlb_descriptor(3, 1, 0x1000, 0, false),
        wait_descriptor(true, true, true, 2, WAIT_STATUS),
    ];
    for (i, d) in descriptors.iter().enumerate() {
        mem.write_u64(QUEUE_BASE + 16 * i as u64, d[0]);
        mem.write_u64(QUEUE_BASE + 16 * i as u64 + 8, d[1]);
    }
    // An IRTE at 0x40000 for the remap ops (index 5, vector 0x31, NIC only).
    let irte = IrteSpec {
        vector: 0x31,
        sid: NIC.0,
        svt: 1,
        ..IrteSpec::default()
    }
    .encode();
    mem.write_u64(0x4_0000 + 5 * 16, irte[0]);
    mem.write_u64(0x4_0000 + 5 * 16 + 8, irte[1]);
    let _ = tables.root_table;
    dump(&mem, mmio::MEMORY as u64)
}

fn translate_op(sid: SourceId, address: u64, access: u8) -> MmioOp {
    MmioOp::Translate {
        sid: sid.0,
        address: Addr::Low(address as u32),
        access,
        pasid: None,
    }
}

/// Linux's boot over raw MMIO: root table, queue, global invalidations, translation on.
fn boot_ops() -> Vec<MmioOp> {
    let root = viommu::testing::TABLES_BASE;
    vec![
        MmioOp::Reg32 {
            reg: reg(offset::FEDATA),
            value: 0x55,
        },
        MmioOp::Reg32 {
            reg: reg(offset::FEADDR),
            value: 0xFEE0_1000,
        },
        MmioOp::Reg64 {
            reg: reg(offset::RTADDR),
            value: root,
        },
        MmioOp::Reg32 {
            reg: reg(offset::GCMD),
            value: 1 << 30,
        },
        MmioOp::Reg64 {
            reg: reg(offset::IQT),
            value: 0,
        },
        MmioOp::Reg64 {
            reg: reg(offset::IQA),
            value: QUEUE_BASE,
        },
        MmioOp::Reg32 {
            reg: reg(offset::GCMD),
            value: 1 << 26,
        },
        MmioOp::Reg64 {
            reg: reg(offset::IQT),
            value: 3 * 16,
        },
        MmioOp::Reg32 {
            reg: reg(offset::GCMD),
            value: (1 << 31) | (1 << 26),
        },
        translate_op(NIC, 0x1008, 3),
        translate_op(NIC, 0x20_1000, 1),
        translate_op(NIC, 0x20_1000, 2),
        translate_op(DISK, 0x1000, 1),
        translate_op(GPU, 0x1234_5000, 3),
        translate_op(SourceId::new(7, 0, 0), 0, 1),
        MmioOp::Read {
            offset: Offset::Low(offset::FSTS as u16),
            size: 4,
        },
        MmioOp::Read {
            offset: Offset::Low(offset::FRCD as u16),
            size: 8,
        },
        MmioOp::Read {
            offset: Offset::Low((offset::FRCD + 8) as u16),
            size: 8,
        },
        MmioOp::Reg32 {
            reg: reg(offset::FRCD + 12),
            value: 1 << 31,
        },
        MmioOp::Reg64 {
            reg: reg(offset::IQT),
            value: 5 * 16,
        },
        MmioOp::Read {
            offset: Offset::Low(offset::ICS as u16),
            size: 4,
        },
    ]
}

fn ir_ops() -> Vec<MmioOp> {
    vec![
        MmioOp::Reg64 {
            reg: reg(offset::IRTA),
            value: 0x4_0000 | 7,
        },
        MmioOp::Reg32 {
            reg: reg(offset::GCMD),
            value: (1 << 31) | (1 << 26) | (1 << 24),
        },
        MmioOp::Reg32 {
            reg: reg(offset::GCMD),
            value: (1 << 31) | (1 << 26) | (1 << 25),
        },
        MmioOp::Remap {
            sid: NIC.0,
            address: remappable_msi(5, None).0 as u32 & 0xF_FFFF,
            raw: false,
            data: 0,
        },
        MmioOp::Remap {
            sid: DISK.0,
            address: remappable_msi(5, None).0 as u32 & 0xF_FFFF,
            raw: false,
            data: 0,
        },
        MmioOp::Remap {
            sid: NIC.0,
            address: 0x1000,
            raw: false,
            data: 0x41,
        },
    ]
}

fn mmio_seeds(dir: &Path) {
    let memory = booted_memory();
    let boot = mmio::Input {
        config: ConfigBits::default(),
        memory: memory.clone(),
        ops: boot_ops(),
    };
    write_seed(dir, "linux-boot", &boot, mmio::run);
    let mut ops = boot_ops();
    ops.extend(ir_ops());
    let ir = mmio::Input {
        config: ConfigBits::default(),
        memory: memory.clone(),
        ops,
    };
    write_seed(dir, "linux-boot-ir", &ir, mmio::run);
    let odd = mmio::Input {
        config: ConfigBits {
            bits: 1 | (1 << 16) | (1 << 17),
            fault_records: 2,
        },
        memory,
        ops: vec![
            MmioOp::Read {
                offset: Offset::Low(8),
                size: 2,
            },
            MmioOp::Read {
                offset: Offset::Any(u64::MAX - 3),
                size: 4,
            },
            MmioOp::Write {
                offset: Offset::Low(offset::CAP as u16),
                size: 8,
                value: 0,
            },
            MmioOp::Write {
                offset: Offset::Low(offset::RTADDR as u16 + 2),
                size: 4,
                value: u64::MAX,
            },
            MmioOp::Reg32 {
                reg: reg(offset::GCMD),
                value: u32::MAX,
            },
            MmioOp::Reset,
        ],
    };
    write_seed(dir, "odd-accesses", &odd, mmio::run);
}

fn request(sid: SourceId, address: u64, access: u8) -> Op {
    Op::Request {
        sid: sid.0,
        address: Addr::Low(address as u32),
        access,
        pasid: None,
    }
}

fn map(table: u8, iova: u64, gpa: u64, size: u8, perms: u8) -> TableOp {
    TableOp::Map {
        table,
        levels: 1, // 3 + 1 = 4 levels
        iova: Addr::Low(iova as u32),
        gpa,
        size,
        perms,
    }
}

fn translate_seeds(dir: &Path) {
    let mut setup = vec![
        TableOp::Context {
            sid: NIC.0,
            domain: 1,
            aw: 2,
            tt: 0,
            fpd: false,
            table: 0,
        },
        TableOp::Context {
            sid: DISK.0,
            domain: 2,
            aw: 2,
            tt: 0,
            fpd: true,
            table: 1,
        },
        TableOp::Context {
            sid: GPU.0,
            domain: 3,
            aw: 2,
            tt: 2,
            fpd: false,
            table: 2,
        },
    ];
    for page in 0..4u64 {
        setup.push(map(0, page << 12, 0x20_0000 + (page << 12), 0, 3));
    }
    setup.push(map(0, 0x40_0000, 0x60_0000, 1, 1));
    setup.push(map(0, 0x4000_0000, 0x8000_0000, 2, 3));
    setup.push(map(1, 0x1000, 0x3000, 0, 1));
    let ops = vec![
        request(NIC, 0x1008, 2),
        request(NIC, 0x40_1000, 1),
        request(NIC, 0x40_1000, 2),
        request(NIC, 0x4123_4000, 3),
        request(NIC, 0x10_0000, 1),
        request(DISK, 0x1000, 1),
        request(DISK, 0x1000, 2),
        request(GPU, 0x1234_5678, 3),
        request(SourceId::new(9, 0, 0), 0, 1),
        request(NIC, 0xFEE0_0000, 2),
        Op::Request {
            sid: NIC.0,
            address: Addr::Any(1 << 50),
            access: 1,
            pasid: None,
        },
        Op::Request {
            sid: NIC.0,
            address: Addr::Low(0x1000),
            access: 1,
            pasid: Some(1),
        },
        Op::Table(map(0, 0x1000, 0x30_0000, 0, 1)),
        request(NIC, 0x1000, 1),
        Op::InvalidatePages {
            domain: 1,
            address: Addr::Low(0x1000),
            am: 0,
        },
        request(NIC, 0x1000, 1),
        Op::Table(TableOp::ClearContext {
            sid: DISK.0,
            fpd: false,
        }),
        Op::InvalidateDevice {
            domain: 2,
            sid: DISK.0,
            fm: 0,
        },
        request(DISK, 0x1000, 1),
        Op::Table(map(0, 0x2000, 0, 0, 0)),
        Op::InvalidateDomain { domain: 1 },
        request(NIC, 0x2000, 1),
        Op::InvalidateGlobal,
        request(NIC, 0x3000, 3),
        Op::ToggleTranslation,
        request(NIC, 0x3000, 3),
        Op::ToggleTranslation,
        Op::SetRootTable,
        request(NIC, 0x3000, 3),
    ];
    let basic = translate::Input {
        config: ConfigBits::default(),
        setup: setup.clone(),
        ops,
    };
    write_seed(dir, "linux-domains", &basic, translate::run);

    // 3-level tables (AW 39), reserved bits, a bad root entry, register-based invalidation.
    let odd = translate::Input {
        config: ConfigBits {
            bits: 1 | (1 << 21),
            fault_records: 1,
        },
        setup: vec![
            TableOp::Context {
                sid: NIC.0,
                domain: 1,
                aw: 1,
                tt: 0,
                fpd: false,
                table: 0,
            },
            TableOp::Map {
                table: 0,
                levels: 0,
                iova: Addr::Low(0x5000),
                gpa: 0x9000,
                size: 0,
                perms: 3,
            },
            TableOp::Entry {
                table: 0,
                levels: 0,
                iova: Addr::Low(0x6000),
                level: 0,
                value: 0x9000 | 3 | (1 << 62),
            },
            TableOp::Root {
                bus: 4,
                low: 0x1234_5001,
                high: 1,
            },
            TableOp::RawContext {
                sid: GPU.0,
                low: 0x1000 | 1 | (3 << 2),
                high: 2 | (5 << 8),
            },
        ],
        ops: vec![
            request(NIC, 0x5000, 3),
            request(NIC, 0x6000, 1),
            request(SourceId::new(4, 0, 0), 0x1000, 1),
            request(GPU, 0x1000, 1),
            Op::InvalidateGlobal,
            request(NIC, 0x5000, 3),
        ],
    };
    write_seed(dir, "three-level-and-garbage", &odd, translate::run);
}

fn queue_seeds(dir: &Path) {
    let shape = QueueShape {
        base: 0x80,
        qs: 0,
        dw: false,
    };
    let valid = vec![
        Desc::Context {
            g: 1,
            did: 0,
            sid: 0,
            fm: 0,
        },
        Desc::Iotlb {
            g: 1,
            did: 0,
            address: 0,
            am: 0,
            ih: false,
        },
        Desc::Iotlb {
            g: 3,
            did: 1,
            address: 0x20_0000,
            am: 9,
            ih: true,
        },
        Desc::Context {
            g: 3,
            did: 1,
            sid: NIC.0,
            fm: 3,
        },
        Desc::Iec {
            selective: false,
            index: 0,
            im: 0,
        },
        Desc::Iec {
            selective: true,
            index: 16,
            im: 4,
        },
        Desc::Wait {
            status_write: true,
            interrupt: true,
            fence: true,
            data: 7,
            address: WAIT_STATUS as u32,
        },
    ];
    let linux = queue::Input {
        config: ConfigBits::default(),
        shape,
        memory: vec![],
        descriptors: valid.clone(),
        ops: vec![
            QOp::Enable(true),
            QOp::Tail(valid.len() as u16),
            QOp::Put {
                at: 7,
                descriptors: vec![
                    Desc::Raw(0xF, 0),
                    Desc::Wait {
                        status_write: true,
                        interrupt: false,
                        fence: false,
                        data: 8,
                        address: WAIT_STATUS as u32,
                    },
                ],
            },
            QOp::Tail(9),
            QOp::Put {
                at: 7,
                descriptors: vec![Desc::Context {
                    g: 1,
                    did: 0,
                    sid: 0,
                    fm: 0,
                }],
            },
            QOp::ClearIqe,
            QOp::ClearIwc,
            QOp::Iectl(0),
        ],
    };
    write_seed(dir, "linux-sync", &linux, queue::run);

    let wrap = queue::Input {
        config: ConfigBits {
            bits: 1 << 16,
            fault_records: 0,
        },
        shape: QueueShape {
            base: 0x80,
            qs: 1,
            dw: false,
        },
        memory: vec![],
        descriptors: vec![],
        ops: vec![
            QOp::Enable(true),
            QOp::Put {
                at: 510,
                descriptors: vec![
                    Desc::DeviceTlb {
                        sid: NIC.0,
                        pfsid: NIC.0,
                        address: 0x7000,
                        s: true,
                    },
                    Desc::Iotlb {
                        g: 2,
                        did: 5,
                        address: 0,
                        am: 0,
                        ih: false,
                    },
                    Desc::Wait {
                        status_write: true,
                        interrupt: false,
                        fence: true,
                        data: 9,
                        address: WAIT_STATUS as u32,
                    },
                ],
            },
            QOp::Tail(510),
            QOp::Tail(1),
            QOp::Shape(QueueShape {
                base: 0x100,
                qs: 0,
                dw: true,
            }),
            QOp::Enable(false),
            QOp::Enable(true),
            QOp::Tail(2),
            QOp::TailRaw(0x7_FFF0),
        ],
    };
    write_seed(dir, "wrap-devtlb-dw", &wrap, queue::run);
}

fn irte(index: u16, vector: u8, destination: u32, sid: u16, svt: u8) -> irq::IrteOp {
    irq::IrteOp::Spec {
        index,
        vector,
        destination,
        logical: false,
        level: false,
        redirection_hint: false,
        delivery_mode: 0,
        fpd: false,
        sid,
        sq: 0,
        svt,
        posted: None,
    }
}

fn remap(sid: SourceId, handle: u16, data: u32) -> irq::IrqOp {
    irq::IrqOp::Remap {
        sid: sid.0,
        msi: irq::Msi::Remappable { handle, shv: false },
        data,
    }
}

fn irq_seeds(dir: &Path) {
    let x2apic = irq::Input {
        config: ConfigBits::default(),
        size: 7,
        eime: true,
        cfi: false,
        entries: vec![
            irte(0, 0x30, 0x1_0002, NIC.0, 1),
            irte(1, 0x31, 3, DISK.0, 1),
            irte(2, 0x32, 4, 0x0002, 2),
            irq::IrteOp::Raw {
                index: 3,
                low: 1 | (1 << 12),
                high: 0,
            },
        ],
        ops: vec![
            remap(NIC, 0, 0),
            remap(DISK, 1, 0),
            remap(NIC, 1, 0),
            remap(GPU, 2, 0),
            remap(NIC, 3, 0),
            remap(NIC, 4, 0),
            remap(NIC, 300, 0),
            irq::IrqOp::Remap {
                sid: NIC.0,
                msi: irq::Msi::Remappable {
                    handle: 0,
                    shv: true,
                },
                data: 1,
            },
            irq::IrqOp::Remap {
                sid: NIC.0,
                msi: irq::Msi::Compatibility(0x1000),
                data: 0x41,
            },
            irq::IrqOp::Irte(irte(0, 0x40, 7, NIC.0, 1)),
            irq::IrqOp::SelectiveIec { index: 0, im: 0 },
            remap(NIC, 0, 0),
            irq::IrqOp::ToggleRemapping,
            remap(NIC, 0, 0),
            irq::IrqOp::ToggleRemapping,
            irq::IrqOp::GlobalIec,
            irq::IrqOp::SetTable,
            remap(NIC, 0, 0),
        ],
    };
    write_seed(dir, "x2apic", &x2apic, irq::run);

    let xapic = irq::Input {
        config: ConfigBits {
            bits: 1 << 17,
            fault_records: 0,
        },
        size: 3,
        eime: false,
        cfi: true,
        entries: vec![
            irte(0, 0x30, 0x0100, NIC.0, 1),
            irq::IrteOp::Spec {
                index: 1,
                vector: 0x55,
                destination: 0,
                logical: false,
                level: false,
                redirection_hint: false,
                delivery_mode: 0,
                fpd: false,
                sid: DISK.0,
                sq: 0,
                svt: 1,
                posted: Some((0x2_0000, true)),
            },
        ],
        ops: vec![
            remap(NIC, 0, 0),
            remap(DISK, 1, 0),
            remap(DISK, 1, 0),
            irq::IrqOp::Remap {
                sid: NIC.0,
                msi: irq::Msi::Compatibility(0x1000),
                data: 0x41,
            },
            irq::IrqOp::Compatibility(false),
            irq::IrqOp::Remap {
                sid: NIC.0,
                msi: irq::Msi::Compatibility(0x1000),
                data: 0x41,
            },
            irq::IrqOp::Remap {
                sid: NIC.0,
                msi: irq::Msi::Any(0x1000),
                data: 0,
            },
        ],
    };
    write_seed(dir, "xapic-posted-compat", &xapic, irq::run);
}

fn restore_seeds(dir: &Path) {
    let mut ops = boot_ops();
    ops.extend(ir_ops());
    let memory = booted_memory();
    let same = restore::Input {
        config: ConfigBits::default(),
        memory: memory.clone(),
        blob: restore::Blob::Mutated {
            flips: vec![],
            truncate: None,
            extend: vec![],
            fix_length: false,
            fix_crc: false,
        },
        ops: ops.clone(),
    };
    write_seed(dir, "busy-unit", &same, restore::run);
    let field = restore::Input {
        config: ConfigBits::default(),
        memory: memory.clone(),
        blob: restore::Blob::Mutated {
            flips: vec![(40, 0x80), (100, 1)],
            truncate: None,
            extend: vec![],
            fix_length: false,
            fix_crc: true,
        },
        ops: ops.clone(),
    };
    write_seed(dir, "invalid-field-valid-crc", &field, restore::run);
    let short = restore::Input {
        config: ConfigBits {
            bits: 0,
            fault_records: 255,
        },
        memory,
        blob: restore::Blob::Mutated {
            flips: vec![],
            truncate: Some(200),
            extend: vec![1, 2, 3],
            fix_length: true,
            fix_crc: true,
        },
        ops,
    };
    write_seed(dir, "resized", &short, restore::run);
    let raw = restore::Input {
        config: ConfigBits::default(),
        memory: vec![],
        blob: restore::Blob::Raw(b"VIOMMU\0\x01\x01\0\0\0\x20\0\0\0garbage".to_vec()),
        ops: vec![],
    };
    write_seed(dir, "raw-header", &raw, restore::run);
}

/// The `ffi` target (with `--features seeds,ffi`): the Linux boot through the C ABI, then
/// translations, a save and restores, with a few NULL and misaligned pointers.
#[cfg(feature = "ffi")]
fn ffi_seeds(dir: &Path) {
    use viommu_fuzz::ffi::{self, Call, Ptr};
    let mut calls = Vec::new();
    for op in boot_ops().into_iter().chain(ir_ops()) {
        match op {
            MmioOp::Reg32 { reg, value } => calls.push(Call::MmioWrite {
                null_unit: false,
                offset: Offset::Low(REGISTERS[usize::from(reg)] as u16),
                size: 4,
                value: u64::from(value),
            }),
            MmioOp::Reg64 { reg, value } => calls.push(Call::MmioWrite {
                null_unit: false,
                offset: Offset::Low((REGISTERS[usize::from(reg)] & !7) as u16),
                size: 8,
                value,
            }),
            MmioOp::Read { offset, size } => calls.push(Call::MmioRead {
                null_unit: false,
                offset,
                size: u32::from(size),
                out: Ptr::Valid,
            }),
            MmioOp::Translate {
                sid,
                address,
                access,
                pasid,
            } => calls.extend([
                Call::DeviceAddressSpace {
                    null_unit: false,
                    out: Ptr::Valid,
                    sid,
                },
                Call::Translate {
                    uncached: false,
                    null_unit: false,
                    request: Ptr::Valid,
                    out: Ptr::Valid,
                    sid,
                    access,
                    has_pasid: pasid.is_some(),
                    pasid: pasid.unwrap_or(0),
                    address: address.get(),
                },
            ]),
            MmioOp::Remap {
                sid, address, data, ..
            } => calls.push(Call::Remap {
                null_unit: false,
                request: Ptr::Valid,
                out: Ptr::Valid,
                sid,
                address: 0xFEE0_0000 | u64::from(address & 0xF_FFFF),
                data,
            }),
            _ => {}
        }
    }
    calls.extend([
        Call::Save {
            null_unit: false,
            len: 2048,
            buf: Ptr::Valid,
            written: Ptr::Valid,
        },
        Call::Restore {
            null_unit: false,
            flips: vec![],
            cut: 0,
            null_buf: false,
        },
        Call::Restore {
            null_unit: false,
            flips: vec![(30, 1)],
            cut: 0,
            null_buf: false,
        },
        Call::Translate {
            uncached: true,
            null_unit: false,
            request: Ptr::Misaligned,
            out: Ptr::Valid,
            sid: NIC.0,
            access: 1,
            has_pasid: false,
            pasid: 0,
            address: 0x1000,
        },
        Call::MmioRead {
            null_unit: true,
            offset: Offset::Low(0),
            size: 4,
            out: Ptr::Null,
        },
        Call::Post {
            null_unit: false,
            posted: Ptr::Valid,
            out: Ptr::Valid,
            descriptor: 0x2_0000,
            vector: 0x41,
            urgent: false,
        },
        Call::StatusStr(255),
        Call::Reset { null_unit: false },
    ]);
    let input = ffi::Input {
        config: ConfigBits::default(),
        config_size: 0,
        config_tail: 0,
        ops_size: 0,
        null_callbacks: 0,
        memory: booted_memory()
            .into_iter()
            .filter(|w| u64::from(w.addr) < ffi::MEMORY as u64)
            .collect(),
        calls,
    };
    write_seed(dir, "linux-boot-c-abi", &input, ffi::run);
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    mmio_seeds(&root.join("mmio"));
    translate_seeds(&root.join("translate"));
    queue_seeds(&root.join("queue"));
    irq_seeds(&root.join("irq"));
    restore_seeds(&root.join("restore"));
    #[cfg(feature = "ffi")]
    ffi_seeds(&root.join("ffi"));
    println!("seeds written under {}", root.display());
}
