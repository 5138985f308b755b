//! Target `mmio`: register reads and writes of any size at any offset, interleaved with
//! translations, interrupt remaps and guest memory changes, against a 2 MiB guest memory
//! whose initial content the input gives.
//!
//! Invariants, after every operation: VER, CAP and ECAP read their configured values (as
//! dwords and as a qword); a read of a size other than 4 or 8, or misaligned, reads 0;
//! reads have no side effects (a second read agrees); FSTS.FRI names an existing fault
//! record; IQH and IQT stay inside the queue-offset field; the unit writes guest memory
//! only with 4-byte dword-aligned status writes; every translation and remap result
//! satisfies the invariants in [`crate::common`].

use arbitrary::Arbitrary;
use viommu::spec::registers::offset;
use viommu::{Access, Config, DmaRequest, InterruptRequest, NoHost, SourceId, Unit};

use crate::common::{check_dma, check_irq, Addr, ConfigBits, MemWrite, WatchedMemory};

/// Guest memory size for this target.
pub const MEMORY: usize = 2 << 20;

/// Registers a structure-aware write picks from (dword offsets).
pub const REGISTERS: [u64; 36] = [
    offset::GCMD,
    offset::GSTS,
    offset::RTADDR,
    offset::RTADDR + 4,
    offset::CCMD,
    offset::CCMD + 4,
    offset::FSTS,
    offset::FECTL,
    offset::FEDATA,
    offset::FEADDR,
    offset::FEUADDR,
    offset::PMEN,
    offset::IQH,
    offset::IQT,
    offset::IQT + 4,
    offset::IQA,
    offset::IQA + 4,
    offset::ICS,
    offset::IECTL,
    offset::IEDATA,
    offset::IEADDR,
    offset::IEUADDR,
    offset::IQERCD,
    offset::IRTA,
    offset::IRTA + 4,
    offset::IVA,
    offset::IVA + 4,
    offset::IOTLB,
    offset::IOTLB + 4,
    offset::FRCD + 12,
    offset::FRCD + 16 + 12,
    offset::FRCD + 8,
    offset::VER,
    offset::CAP,
    offset::ECAP,
    offset::ECAP + 4,
];

/// A register offset: biased toward the defined registers, or anything.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offset {
    /// `n % 0x300`.
    Low(u16),
    /// Any 64-bit offset.
    Any(u64),
}

impl Offset {
    /// The offset.
    pub fn get(self) -> u64 {
        match self {
            Self::Low(n) => u64::from(n) % 0x300,
            Self::Any(n) => n,
        }
    }
}

/// One guest or device action.
#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
pub enum MmioOp {
    /// `mmio_read(offset, size % 17)`.
    Read {
        /// Offset.
        offset: Offset,
        /// Size (taken modulo 17: 0..=16).
        size: u8,
    },
    /// `mmio_write(offset, size % 17, value)`.
    Write {
        /// Offset.
        offset: Offset,
        /// Size (taken modulo 17: 0..=16).
        size: u8,
        /// Value.
        value: u64,
    },
    /// A dword write to a defined register.
    Reg32 {
        /// Index into [`REGISTERS`] (modulo its length).
        reg: u8,
        /// Value.
        value: u32,
    },
    /// A qword write to a defined register's qword.
    Reg64 {
        /// Index into [`REGISTERS`] (modulo its length; the qword containing it).
        reg: u8,
        /// Value.
        value: u64,
    },
    /// The guest changes memory.
    Poke(MemWrite),
    /// A DMA request.
    Translate {
        /// Requester.
        sid: u16,
        /// Address.
        address: Addr,
        /// Access bits (modulo 4).
        access: u8,
        /// PASID.
        pasid: Option<u32>,
    },
    /// An interrupt request.
    Remap {
        /// Requester.
        sid: u16,
        /// Low 20 bits of a 0xFEEx_xxxx address, or (`raw`) a whole address.
        address: u32,
        /// Use `address` as the whole (32-bit) address.
        raw: bool,
        /// Data.
        data: u32,
    },
    /// Platform reset.
    Reset,
}

/// The input of the `mmio` target.
#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// Configuration.
    pub config: ConfigBits,
    /// Initial guest memory content.
    pub memory: Vec<MemWrite>,
    /// What happens.
    pub ops: Vec<MmioOp>,
}

/// The unit type the MMIO harnesses drive.
pub type FuzzUnit<'m> = Unit<&'m WatchedMemory, NoHost>;

/// Check the registers whose value is fixed by the configuration, and register-file
/// consistency.
pub fn check_registers(unit: &FuzzUnit<'_>, config: &Config) {
    let cap = config.capability().into_bits();
    let ecap = config.extended_capability().into_bits();
    let ver = u64::from(config.version().into_bits());
    assert_eq!(unit.mmio_read(offset::VER, 4), ver, "VER");
    assert_eq!(unit.mmio_read(offset::CAP, 8), cap, "CAP");
    assert_eq!(unit.mmio_read(offset::CAP, 4), cap & 0xFFFF_FFFF, "CAP low");
    assert_eq!(unit.mmio_read(offset::CAP + 4, 4), cap >> 32, "CAP high");
    assert_eq!(unit.mmio_read(offset::ECAP, 8), ecap, "ECAP");
    assert_eq!(unit.mmio_read(offset::ECAP + 4, 4), ecap >> 32, "ECAP high");
    let fsts = unit.mmio_read(offset::FSTS, 4);
    let fri = (fsts >> 8) & 0xFF;
    assert!(
        fri < u64::from(config.fault_records),
        "FSTS.FRI {fri} with {} records",
        config.fault_records
    );
    assert_eq!(unit.mmio_read(offset::IQH, 8) & !0x7_FFF0, 0, "IQH");
    assert_eq!(unit.mmio_read(offset::IQT, 8) & !0x7_FFF0, 0, "IQT");
}

/// Check the unit's guest memory writes: only dword status writes.
pub fn check_unit_writes(memory: &WatchedMemory) {
    for (addr, data) in memory.take_writes() {
        assert_eq!(
            data.len(),
            4,
            "unit wrote {} bytes at {addr:#x}",
            data.len()
        );
        assert_eq!(addr % 4, 0, "unaligned status write at {addr:#x}");
    }
}

/// Carry out one operation and check what it returned.
pub fn apply(unit: &FuzzUnit<'_>, memory: &WatchedMemory, config: &Config, op: &MmioOp) {
    match *op {
        MmioOp::Read { offset, size } => {
            let (offset, size) = (offset.get(), size % 17);
            let value = unit.mmio_read(offset, size);
            let valid = matches!(size, 4 | 8) && offset % u64::from(size) == 0;
            if !valid {
                assert_eq!(
                    value, 0,
                    "read of size {size} at {offset:#x} returned {value:#x}"
                );
            }
            if size == 4 {
                assert_eq!(value >> 32, 0, "dword read wider than 32 bits");
            }
            assert_eq!(
                unit.mmio_read(offset, size),
                value,
                "read at {offset:#x} not pure"
            );
        }
        MmioOp::Write {
            offset,
            size,
            value,
        } => unit.mmio_write(offset.get(), size % 17, value),
        MmioOp::Reg32 { reg, value } => {
            let offset = REGISTERS[usize::from(reg) % REGISTERS.len()];
            unit.mmio_write(offset, 4, u64::from(value));
        }
        MmioOp::Reg64 { reg, value } => {
            let offset = REGISTERS[usize::from(reg) % REGISTERS.len()] & !7;
            unit.mmio_write(offset, 8, value);
        }
        MmioOp::Poke(w) => memory.apply(&[w]),
        MmioOp::Translate {
            sid,
            address,
            access,
            pasid,
        } => {
            let request = DmaRequest {
                source_id: SourceId(sid),
                pasid,
                address: address.get(),
                access: Access::from_bits(access),
            };
            let result = unit.translate(&request);
            check_dma(config, &request, &result);
            if crate::common::tracing() {
                eprintln!("{request:?} -> {result:?}");
            }
            let reference = unit.translate_uncached(&request);
            check_dma(config, &request, &reference);
        }
        MmioOp::Remap {
            sid,
            address,
            raw,
            data,
        } => {
            let address = if raw {
                u64::from(address)
            } else {
                0xFEE0_0000 | u64::from(address & 0xF_FFFF)
            };
            let request = InterruptRequest {
                source_id: SourceId(sid),
                address,
                data,
            };
            let result = unit.remap_interrupt(&request);
            check_irq(config, &request, None, &result);
            if crate::common::tracing() {
                eprintln!("{request:?} -> {result:?}");
            }
            let reference = unit.remap_interrupt_uncached(&request);
            check_irq(config, &request, None, &reference);
        }
        MmioOp::Reset => unit.reset(),
    }
}

/// Run one input.
pub fn run(input: &Input) {
    let config = input.config.config();
    let memory = WatchedMemory::new(MEMORY);
    memory.apply(&input.memory);
    let unit = Box::new(Unit::new(config, &memory, NoHost).expect("valid config"));
    check_registers(&unit, &config);
    for op in &input.ops {
        apply(&unit, &memory, &config, op);
        check_registers(&unit, &config);
        check_unit_writes(&memory);
    }
}
