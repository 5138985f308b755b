//! The remapping hardware's register set (§11.4): offsets and bit layouts.
//!
//! Offsets of registers whose place is advertised (IVA/IOTLB through ECAP.IRO, the fault
//! recording registers through CAP.FRO) are chosen by the engine and exposed as constants.

use bitfield_struct::bitfield;

/// Size of the register window the unit decodes (one 4 KiB page).
pub const REGISTER_WINDOW_SIZE: u64 = 0x1000;

/// Register offsets within the window (§11.4, Table "Address Mapping for Remapping Hardware
/// Registers").
pub mod offset {
    /// Version register (32-bit).
    pub const VER: u64 = 0x000;
    /// Capability register (64-bit).
    pub const CAP: u64 = 0x008;
    /// Extended capability register (64-bit).
    pub const ECAP: u64 = 0x010;
    /// Global command register (32-bit).
    pub const GCMD: u64 = 0x018;
    /// Global status register (32-bit).
    pub const GSTS: u64 = 0x01C;
    /// Root table address register (64-bit).
    pub const RTADDR: u64 = 0x020;
    /// Context command register (64-bit).
    pub const CCMD: u64 = 0x028;
    /// Fault status register (32-bit).
    pub const FSTS: u64 = 0x034;
    /// Fault event control register (32-bit).
    pub const FECTL: u64 = 0x038;
    /// Fault event data register (32-bit).
    pub const FEDATA: u64 = 0x03C;
    /// Fault event address register (32-bit).
    pub const FEADDR: u64 = 0x040;
    /// Fault event upper address register (32-bit).
    pub const FEUADDR: u64 = 0x044;
    /// Advanced fault log register (64-bit; advanced fault logging is not supported).
    pub const AFLOG: u64 = 0x058;
    /// Protected memory enable register (32-bit).
    pub const PMEN: u64 = 0x064;
    /// Protected low-memory base register (32-bit).
    pub const PLMBASE: u64 = 0x068;
    /// Protected low-memory limit register (32-bit).
    pub const PLMLIMIT: u64 = 0x06C;
    /// Protected high-memory base register (64-bit).
    pub const PHMBASE: u64 = 0x070;
    /// Protected high-memory limit register (64-bit).
    pub const PHMLIMIT: u64 = 0x078;
    /// Invalidation queue head register (64-bit).
    pub const IQH: u64 = 0x080;
    /// Invalidation queue tail register (64-bit).
    pub const IQT: u64 = 0x088;
    /// Invalidation queue address register (64-bit).
    pub const IQA: u64 = 0x090;
    /// Invalidation completion status register (32-bit).
    pub const ICS: u64 = 0x09C;
    /// Invalidation event control register (32-bit).
    pub const IECTL: u64 = 0x0A0;
    /// Invalidation event data register (32-bit).
    pub const IEDATA: u64 = 0x0A4;
    /// Invalidation event address register (32-bit).
    pub const IEADDR: u64 = 0x0A8;
    /// Invalidation event upper address register (32-bit).
    pub const IEUADDR: u64 = 0x0AC;
    /// Invalidation queue error record register (64-bit).
    pub const IQERCD: u64 = 0x0B0;
    /// Interrupt remapping table address register (64-bit).
    pub const IRTA: u64 = 0x0B8;
    /// Invalidate address register (64-bit), at ECAP.IRO × 16.
    pub const IVA: u64 = 0x200;
    /// IOTLB invalidate register (64-bit), at IVA + 8.
    pub const IOTLB: u64 = 0x208;
    /// First fault recording register (128-bit each), at CAP.FRO × 16.
    pub const FRCD: u64 = 0x220;
}

/// Maximum number of fault recording registers (CAP.NFR is an 8-bit count minus one).
pub const MAX_FAULT_RECORDS: usize = 256;

/// VER: architecture version (§11.4.1).
#[bitfield(u32)]
#[derive(PartialEq, Eq)]
pub struct Version {
    /// Minor version number.
    #[bits(4)]
    pub min: u8,
    /// Major version number.
    #[bits(4)]
    pub max: u8,
    #[bits(24)]
    __: u32,
}

/// CAP: capability register (§11.4.2).
#[bitfield(u64)]
#[derive(PartialEq, Eq)]
pub struct Capability {
    /// Number of domains supported: 2^(4 + 2·ND) domain ids.
    #[bits(3)]
    pub nd: u8,
    /// Advanced fault logging.
    pub afl: bool,
    /// Required write-buffer flushing.
    pub rwbf: bool,
    /// Protected low-memory region.
    pub plmr: bool,
    /// Protected high-memory region.
    pub phmr: bool,
    /// Caching mode: not-present and erroneous entries may be cached; software invalidates
    /// after adding mappings too.
    pub cm: bool,
    /// Supported adjusted guest address widths (bit 1: 39-bit, bit 2: 48-bit, bit 3: 57-bit).
    #[bits(5)]
    pub sagaw: u8,
    #[bits(3)]
    __: u8,
    /// Maximum guest address width, minus one.
    #[bits(6)]
    pub mgaw: u8,
    /// Zero-length read.
    pub zlr: bool,
    #[bits(1)]
    __: u8,
    /// Fault-recording register offset, in 16-byte units.
    #[bits(10)]
    pub fro: u16,
    /// Second-level large page support (bit 0: 2 MiB, bit 1: 1 GiB).
    #[bits(4)]
    pub sllps: u8,
    #[bits(1)]
    __: u8,
    /// Page-selective invalidation.
    pub psi: bool,
    /// Number of fault-recording registers, minus one.
    #[bits(8)]
    pub nfr: u8,
    /// Maximum address mask value for page-selective invalidation.
    #[bits(6)]
    pub mamv: u8,
    /// Write draining.
    pub dwd: bool,
    /// Read draining.
    pub drd: bool,
    /// First-level 1 GiB page support.
    pub fl1gp: bool,
    #[bits(2)]
    __: u8,
    /// Posted interrupts.
    pub pi: bool,
    /// First-level 5-level paging.
    pub fl5lp: bool,
    #[bits(1)]
    __: u8,
    /// Enhanced set interrupt remap table pointer support.
    pub esirtps: bool,
    /// Enhanced set root table pointer support.
    pub esrtps: bool,
}

/// ECAP: extended capability register (§11.4.3).
#[bitfield(u64)]
#[derive(PartialEq, Eq)]
pub struct ExtendedCapability {
    /// Page-walk coherency.
    pub c: bool,
    /// Queued invalidation.
    pub qi: bool,
    /// Device-TLB.
    pub dt: bool,
    /// Interrupt remapping.
    pub ir: bool,
    /// Extended interrupt mode (x2APIC, 32-bit destination ids).
    pub eim: bool,
    #[bits(1)]
    __: u8,
    /// Pass-through (context TT = 2).
    pub pt: bool,
    /// Snoop control.
    pub sc: bool,
    /// IOTLB register offset (the IVA register), in 16-byte units.
    #[bits(10)]
    pub iro: u16,
    #[bits(2)]
    __: u8,
    /// Maximum handle mask value for index-selective IEC invalidation.
    #[bits(4)]
    pub mhmv: u8,
    #[bits(1)]
    __: u8,
    /// Memory type support.
    pub mts: bool,
    /// Nested translation.
    pub nest: bool,
    #[bits(2)]
    __: u8,
    /// Page requests.
    pub prs: bool,
    /// Execute requests.
    pub ers: bool,
    /// Supervisor requests.
    pub srs: bool,
    #[bits(1)]
    __: u8,
    /// No write flag.
    pub nwfs: bool,
    /// Extended accessed flag.
    pub eafs: bool,
    /// PASID size supported, minus one.
    #[bits(5)]
    pub pss: u8,
    /// PASID support.
    pub pasid: bool,
    /// Device-TLB invalidation throttling.
    pub dit: bool,
    /// Page-request drain.
    pub pds: bool,
    /// Scalable-mode translation.
    pub smts: bool,
    /// Virtual command.
    pub vcs: bool,
    /// Second-level accessed/dirty.
    pub slads: bool,
    /// Second-level translation.
    pub slts: bool,
    /// First-level translation.
    pub flts: bool,
    /// Scalable-mode page-walk coherency.
    pub smpwcs: bool,
    /// RID-PASID.
    pub rps: bool,
    #[bits(14)]
    __: u16,
}

/// GCMD and GSTS share one layout: a command bit and its status bit sit at the same place
/// (§11.4.4, §11.4.5). Names here are the command names; the status names are noted.
#[bitfield(u32)]
#[derive(PartialEq, Eq)]
pub struct GlobalCommand {
    #[bits(23)]
    __: u32,
    /// CFI: compatibility-format interrupts allowed (status: CFIS).
    pub cfi: bool,
    /// SIRTP: set interrupt remap table pointer, one-shot (status: IRTPS).
    pub sirtp: bool,
    /// IRE: interrupt remapping enable (status: IRES).
    pub ire: bool,
    /// QIE: queued invalidation enable (status: QIES).
    pub qie: bool,
    /// WBF: write buffer flush, one-shot (status: WBFS).
    pub wbf: bool,
    /// EAFL: enable advanced fault logging (status: AFLS).
    pub eafl: bool,
    /// SFL: set fault log, one-shot (status: FLS).
    pub sfl: bool,
    /// SRTP: set root table pointer, one-shot (status: RTPS).
    pub srtp: bool,
    /// TE: translation enable (status: TES).
    pub te: bool,
}

/// The translation table mode field of RTADDR (§11.4.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TranslationTableMode(pub u8);

impl TranslationTableMode {
    /// Legacy mode: root and context entries of §9.1 and §9.3.
    pub const LEGACY: Self = Self(0);
    /// Scalable mode: scalable-mode root, context and PASID entries.
    pub const SCALABLE: Self = Self(1);
    /// Reserved encoding.
    pub const RESERVED: Self = Self(2);
    /// Abort-DMA mode: every DMA request is blocked.
    pub const ABORT_DMA: Self = Self(3);
}

/// RTADDR: root table address register (§11.4.6).
#[bitfield(u64)]
#[derive(PartialEq, Eq)]
pub struct RootTableAddress {
    #[bits(10)]
    __: u16,
    /// TTM: translation table mode.
    #[bits(2)]
    pub ttm: u8,
    /// RTA: 4 KiB-aligned root table address.
    #[bits(52)]
    pub rta: u64,
}

/// Invalidation granularity of a context-cache request (CIRG/CAIG, descriptor G).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ContextGranularity(pub u8);

impl ContextGranularity {
    /// Reserved request; as an actual granularity, "request not performed".
    pub const NONE: Self = Self(0);
    /// Every context-cache entry.
    pub const GLOBAL: Self = Self(1);
    /// Entries of one domain.
    pub const DOMAIN: Self = Self(2);
    /// Entries of one device (source id with function mask) in one domain.
    pub const DEVICE: Self = Self(3);
}

/// CCMD: context command register (§11.4.7).
#[bitfield(u64)]
#[derive(PartialEq, Eq)]
pub struct ContextCommand {
    /// DID: domain id for domain- and device-selective requests.
    pub did: u16,
    /// SID: source id for device-selective requests.
    pub sid: u16,
    /// FM: function mask — SID bits to ignore: 0 none, 1 bit 2, 2 bits 2:1, 3 bits 2:0.
    #[bits(2)]
    pub fm: u8,
    #[bits(25)]
    __: u32,
    /// CAIG: actual invalidation granularity (written by hardware).
    #[bits(2)]
    pub caig: u8,
    /// CIRG: requested invalidation granularity.
    #[bits(2)]
    pub cirg: u8,
    /// ICC: invalidate context cache; hardware clears it when done.
    pub icc: bool,
}

/// Invalidation granularity of an IOTLB request (IIRG/IAIG, descriptor G).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IotlbGranularity(pub u8);

impl IotlbGranularity {
    /// Reserved request; as an actual granularity, "request not performed".
    pub const NONE: Self = Self(0);
    /// Every IOTLB entry.
    pub const GLOBAL: Self = Self(1);
    /// Entries of one domain.
    pub const DOMAIN: Self = Self(2);
    /// Entries of the pages of one domain named by address and mask.
    pub const PAGE: Self = Self(3);
}

/// IOTLB: IOTLB invalidate register (§11.4.8.1).
#[bitfield(u64)]
#[derive(PartialEq, Eq)]
pub struct IotlbInvalidate {
    #[bits(32)]
    __: u32,
    /// DID: domain id for domain- and page-selective requests.
    pub did: u16,
    /// DW: drain writes.
    pub dw: bool,
    /// DR: drain reads.
    pub dr: bool,
    #[bits(7)]
    __: u8,
    /// IAIG: actual invalidation granularity (written by hardware).
    #[bits(2)]
    pub iaig: u8,
    #[bits(1)]
    __: u8,
    /// IIRG: requested invalidation granularity.
    #[bits(2)]
    pub iirg: u8,
    #[bits(1)]
    __: u8,
    /// IVT: invalidate IOTLB; hardware clears it when done.
    pub ivt: bool,
}

/// IVA: invalidate address register (§11.4.8.2); also the second qword of an IOTLB
/// invalidate descriptor.
#[bitfield(u64)]
#[derive(PartialEq, Eq)]
pub struct InvalidateAddress {
    /// AM: address mask, 2^AM pages starting at ADDR (which is aligned to them).
    #[bits(6)]
    pub am: u8,
    /// IH: invalidation hint, leaf entries only (the paging-structure caches may be kept).
    pub ih: bool,
    #[bits(5)]
    __: u8,
    /// ADDR: page-frame number of the first page.
    #[bits(52)]
    pub addr: u64,
}

/// FSTS: fault status register (§11.4.9.1).
#[bitfield(u32)]
#[derive(PartialEq, Eq)]
pub struct FaultStatus {
    /// PFO: primary fault overflow (RW1C).
    pub pfo: bool,
    /// PPF: primary pending fault (RO, set while any fault record has F set).
    pub ppf: bool,
    /// AFO: advanced fault overflow (RW1C).
    pub afo: bool,
    /// APF: advanced pending fault (RW1C).
    pub apf: bool,
    /// IQE: invalidation queue error (RW1C).
    pub iqe: bool,
    /// ICE: invalidation completion error (RW1C).
    pub ice: bool,
    /// ITE: invalidation time-out error (RW1C).
    pub ite: bool,
    #[bits(1)]
    __: u8,
    /// FRI: fault record index, valid while PPF is set (RO).
    pub fri: u8,
    #[bits(16)]
    __: u16,
}

impl FaultStatus {
    /// The bits software clears by writing 1.
    pub const RW1C_MASK: u32 = 0x7D;
}

/// FECTL and IECTL: event control registers (§11.4.9.2, §11.4.10.2).
#[bitfield(u32)]
#[derive(PartialEq, Eq)]
pub struct EventControl {
    #[bits(30)]
    __: u32,
    /// IP: interrupt pending (RO).
    pub ip: bool,
    /// IM: interrupt mask (set at reset).
    pub im: bool,
}

/// Low qword of a fault recording register (§11.4.14).
#[bitfield(u64)]
#[derive(PartialEq, Eq)]
pub struct FaultRecordLow {
    #[bits(12)]
    __: u16,
    /// FI: fault information — the page address of the faulting request (or the
    /// interrupt index, for interrupt-remapping faults, in bits 63:48).
    #[bits(52)]
    pub fi: u64,
}

/// High qword of a fault recording register (§11.4.14).
#[bitfield(u64)]
#[derive(PartialEq, Eq)]
pub struct FaultRecordHigh {
    /// SID: source id of the faulting request.
    pub sid: u16,
    #[bits(12)]
    __: u16,
    /// T2: type bit 2 (page request, always 0 here).
    pub t2: bool,
    /// PRIV: privilege-mode requested.
    pub privilege: bool,
    /// EXE: execute permission requested.
    pub exe: bool,
    /// PP: PASID present.
    pub pp: bool,
    /// FR: fault reason.
    pub fr: u8,
    /// PV: PASID value.
    #[bits(20)]
    pub pv: u32,
    /// AT: address type.
    #[bits(2)]
    pub at: u8,
    /// T1: type bit 1 — 0 for a write request, 1 for a read request.
    pub t1: bool,
    /// F: fault; set by hardware when recorded, cleared by software writing 1 (RW1C).
    pub f: bool,
}

/// IQA: invalidation queue address register (§11.4.10.3).
#[bitfield(u64)]
#[derive(PartialEq, Eq)]
pub struct InvalidationQueueAddress {
    /// QS: queue size, 2^QS 4 KiB pages.
    #[bits(3)]
    pub qs: u8,
    #[bits(8)]
    __: u8,
    /// DW: descriptor width, 0 = 128-bit, 1 = 256-bit (needs ECAP.SMTS).
    pub dw: bool,
    /// IQA: 4 KiB-aligned queue base.
    #[bits(52)]
    pub iqa: u64,
}

/// ICS: invalidation completion status register (§11.4.10.4).
#[bitfield(u32)]
#[derive(PartialEq, Eq)]
pub struct InvalidationCompletionStatus {
    /// IWC: invalidation wait descriptor complete (RW1C).
    pub iwc: bool,
    #[bits(31)]
    __: u32,
}

/// The IQEI field of IQERCD: why the invalidation queue stopped (§11.4.10.9).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct QueueErrorInfo(pub u8);

impl QueueErrorInfo {
    /// No further information.
    pub const UNSPECIFIED: Self = Self(0);
    /// IQT not 256-bit aligned while IQA.DW = 1.
    pub const TAIL_MISALIGNED: Self = Self(1);
    /// Fetching a descriptor from the queue failed.
    pub const FETCH_ERROR: Self = Self(2);
    /// Descriptor type invalid (unknown or not allowed in this mode).
    pub const INVALID_TYPE: Self = Self(3);
    /// Reserved field set or an invalid field value in a descriptor.
    pub const RESERVED_FIELD: Self = Self(4);
    /// Descriptor width not allowed (IQA.DW = 1 without scalable-mode support).
    pub const INVALID_WIDTH: Self = Self(5);
    /// An invalidation-wait descriptor's status write failed.
    pub const STATUS_WRITE_ERROR: Self = Self(6);
}

/// IQERCD: invalidation queue error record register (§11.4.10.9).
#[bitfield(u64)]
#[derive(PartialEq, Eq)]
pub struct InvalidationQueueErrorRecord {
    /// IQEI: invalidation queue error information.
    #[bits(4)]
    pub iqei: u8,
    #[bits(28)]
    __: u32,
    /// ICESID: source id of an invalidation completion error.
    pub icesid: u16,
    /// ITESID: source id of an invalidation time-out error.
    pub itesid: u16,
}

/// IRTA: interrupt remapping table address register (§11.4.11).
#[bitfield(u64)]
#[derive(PartialEq, Eq)]
pub struct InterruptRemapTableAddress {
    /// S: the table holds 2^(S+1) entries.
    #[bits(4)]
    pub s: u8,
    #[bits(7)]
    __: u8,
    /// EIME: extended interrupt mode enable (x2APIC destination ids).
    pub eime: bool,
    /// IRTA: 4 KiB-aligned table base.
    #[bits(52)]
    pub irta: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_positions_match_the_spec() {
        assert_eq!(Capability::SAGAW_OFFSET, 8);
        assert_eq!(Capability::MGAW_OFFSET, 16);
        assert_eq!(Capability::FRO_OFFSET, 24);
        assert_eq!(Capability::SLLPS_OFFSET, 34);
        assert_eq!(Capability::PSI_OFFSET, 39);
        assert_eq!(Capability::NFR_OFFSET, 40);
        assert_eq!(Capability::MAMV_OFFSET, 48);
        assert_eq!(Capability::PI_OFFSET, 59);
        assert_eq!(ExtendedCapability::PT_OFFSET, 6);
        assert_eq!(ExtendedCapability::IRO_OFFSET, 8);
        assert_eq!(ExtendedCapability::MHMV_OFFSET, 20);
        assert_eq!(ExtendedCapability::PASID_OFFSET, 40);
        assert_eq!(ExtendedCapability::SMTS_OFFSET, 43);
        assert_eq!(GlobalCommand::TE_OFFSET, 31);
        assert_eq!(GlobalCommand::SRTP_OFFSET, 30);
        assert_eq!(GlobalCommand::QIE_OFFSET, 26);
        assert_eq!(GlobalCommand::IRE_OFFSET, 25);
        assert_eq!(GlobalCommand::SIRTP_OFFSET, 24);
        assert_eq!(GlobalCommand::CFI_OFFSET, 23);
        assert_eq!(RootTableAddress::TTM_OFFSET, 10);
        assert_eq!(ContextCommand::FM_OFFSET, 32);
        assert_eq!(ContextCommand::CAIG_OFFSET, 59);
        assert_eq!(ContextCommand::CIRG_OFFSET, 61);
        assert_eq!(IotlbInvalidate::DID_OFFSET, 32);
        assert_eq!(IotlbInvalidate::IAIG_OFFSET, 57);
        assert_eq!(IotlbInvalidate::IIRG_OFFSET, 60);
        assert_eq!(IotlbInvalidate::IVT_OFFSET, 63);
        assert_eq!(FaultStatus::FRI_OFFSET, 8);
        assert_eq!(FaultRecordHigh::FR_OFFSET, 32);
        assert_eq!(FaultRecordHigh::T1_OFFSET, 62);
        assert_eq!(InvalidationQueueAddress::DW_OFFSET, 11);
        assert_eq!(InvalidationQueueErrorRecord::ICESID_OFFSET, 32);
        assert_eq!(InterruptRemapTableAddress::EIME_OFFSET, 11);
        assert_eq!(offset::IVA >> 4, 0x20);
        assert_eq!(offset::FRCD >> 4, 0x22);
    }
}
