//! What a DMA request is and what translating it yields.

use crate::spec::fault::FaultReason;

/// A PCI requester id as the remapping hardware sees it: bus in 15:8, device in 7:3,
/// function in 2:0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceId(pub u16);

impl SourceId {
    /// Build from bus, device (0..=31) and function (0..=7); extra bits are masked off.
    pub const fn new(bus: u8, device: u8, function: u8) -> Self {
        Self(((bus as u16) << 8) | (((device & 0x1F) as u16) << 3) | ((function & 0x7) as u16))
    }
    /// The bus number: the root-table index.
    pub const fn bus(self) -> u8 {
        (self.0 >> 8) as u8
    }
    /// Device and function: the context-table index.
    pub const fn devfn(self) -> u8 {
        (self.0 & 0xFF) as u8
    }
}

/// Access permissions: what a request needs, or what a mapping grants.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Access(u8);

impl Access {
    /// No access.
    pub const NONE: Self = Self(0);
    /// Read.
    pub const READ: Self = Self(1);
    /// Write.
    pub const WRITE: Self = Self(2);
    /// Read and write.
    pub const READ_WRITE: Self = Self(3);

    /// Build from read and write flags.
    pub const fn from_rw(read: bool, write: bool) -> Self {
        Self((read as u8) | ((write as u8) << 1))
    }
    /// Whether reading is included.
    pub const fn read(self) -> bool {
        self.0 & 1 != 0
    }
    /// Whether writing is included.
    pub const fn write(self) -> bool {
        self.0 & 2 != 0
    }
    /// Whether every access in `needed` is included in `self`.
    pub const fn allows(self, needed: Access) -> bool {
        needed.0 & !self.0 == 0
    }
    /// The raw bits (bit 0 read, bit 1 write).
    pub const fn bits(self) -> u8 {
        self.0
    }
    /// From raw bits; bits other than 0 and 1 are dropped.
    pub const fn from_bits(bits: u8) -> Self {
        Self(bits & 3)
    }
}

impl core::fmt::Debug for Access {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self.0 {
            0 => "NONE",
            1 => "READ",
            2 => "WRITE",
            _ => "READ_WRITE",
        })
    }
}

/// A DMA request as it arrives at the remapping hardware.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DmaRequest {
    /// Requester id.
    pub source_id: SourceId,
    /// PASID of a request-with-PASID (scalable mode only).
    pub pasid: Option<u32>,
    /// Input (I/O virtual) address.
    pub address: u64,
    /// What the request does. A request that both reads and writes (an atomic) needs both.
    pub access: Access,
}

impl DmaRequest {
    /// A read of `address` by `source_id`.
    pub const fn read(source_id: SourceId, address: u64) -> Self {
        Self {
            source_id,
            pasid: None,
            address,
            access: Access::READ,
        }
    }
    /// A write of `address` by `source_id`.
    pub const fn write(source_id: SourceId, address: u64) -> Self {
        Self {
            source_id,
            pasid: None,
            address,
            access: Access::WRITE,
        }
    }
}

/// A translated page: every address in `[input_base, input_base + size)` maps to the same
/// offset from `output_base`, with `permissions`. A VMM may cache it whole until the unit
/// reports an invalidation that covers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// Input address of the first byte of the page.
    pub input_base: u64,
    /// Output (guest-physical) address of the first byte of the page.
    pub output_base: u64,
    /// log2 of the page size: 12, 21 or 30.
    pub size_shift: u8,
    /// What the mapping allows (the request's access is always among it).
    pub permissions: Access,
    /// The domain the device belongs to, when translation went through a context entry.
    pub domain_id: Option<u16>,
}

impl Mapping {
    /// Size of the page in bytes.
    pub const fn size(&self) -> u64 {
        1 << self.size_shift
    }
    /// Translate an address inside the page.
    pub const fn translate(&self, address: u64) -> u64 {
        self.output_base + (address & (self.size() - 1))
    }
}

/// What a DMA request turns into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Translation {
    /// A memory access through this mapping.
    Mapped(Mapping),
    /// A write to the interrupt address range: an interrupt request. The VMM routes the
    /// write (address and data) through interrupt remapping with the same source id.
    Interrupt,
}

/// A fault the remapping hardware raised for a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DmaFault {
    /// The spec's reason.
    pub reason: FaultReason,
    /// Requester.
    pub source_id: SourceId,
    /// Faulting input address.
    pub address: u64,
    /// Whether it went into a fault recording register (false when FPD suppressed it, or
    /// the registers overflowed).
    pub recorded: bool,
}

/// Why a DMA request was not translated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DmaError {
    /// Blocked with a remapping fault.
    Fault(DmaFault),
    /// Not a request this unit accepts at all (a read of the interrupt address range, a
    /// request with PASID in legacy mode): completed as Unsupported Request, no fault.
    UnsupportedRequest,
}

impl core::fmt::Display for DmaError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Fault(fault) => write!(
                f,
                "DMA fault {:?} for {:#06x} at {:#x}",
                fault.reason, fault.source_id.0, fault.address
            ),
            Self::UnsupportedRequest => f.write_str("unsupported request"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for DmaError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_id_fields() {
        let sid = SourceId::new(0x12, 3, 5);
        assert_eq!(sid.0, 0x121D);
        assert_eq!(sid.bus(), 0x12);
        assert_eq!(sid.devfn(), 0x1D);
    }

    #[test]
    fn access_allows() {
        assert!(Access::READ_WRITE.allows(Access::WRITE));
        assert!(!Access::READ.allows(Access::WRITE));
        assert!(!Access::READ.allows(Access::READ_WRITE));
        assert!(Access::NONE.allows(Access::NONE));
    }

    #[test]
    fn mapping_translates_inside_the_page() {
        let m = Mapping {
            input_base: 0x20_0000,
            output_base: 0x4000_0000,
            size_shift: 21,
            permissions: Access::READ,
            domain_id: Some(1),
        };
        assert_eq!(m.translate(0x21_2345), 0x4001_2345);
        assert_eq!(m.size(), 0x20_0000);
    }
}
