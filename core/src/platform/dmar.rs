//! The DMAR ACPI table (DMA Remapping Reporting, VT-d spec ch. 8 "BIOS Considerations"),
//! written into a caller-provided buffer.
//!
//! Two levels:
//!
//! - [`DmarWriter`] streams a table: the header, then remapping structures (DRHD, RMRR,
//!   ATSR, SATC) each followed by its device scopes. It checks what the spec requires of
//!   each field and the order of structures, and counts bytes past the end of a short
//!   buffer, so [`DmarWriter::finish`] reports the length a table needs.
//! - [`build_dmar`] writes the table of one remapping unit over a [`Topology`]: a DRHD
//!   with INCLUDE_PCI_ALL when no host bridge bypasses the IOMMU, otherwise a DRHD that
//!   lists the remapped hierarchies explicitly; IOAPIC and HPET scopes; RMRRs, an ATSR
//!   and a SATC as configured.
//!
//! Layout (all little-endian): a 36-byte ACPI header ("DMAR", length, revision 1,
//! checksum, OEM ID, OEM table ID, OEM revision, creator ID, creator revision), then host
//! address width − 1 (byte 36), flags (byte 37) and 10 reserved bytes: 48 bytes. Every
//! remapping structure starts with its type and length (two u16). A device scope is type,
//! length (6 + 2 per path entry), 2 reserved bytes, enumeration id, start bus, then the
//! path as (device, function) byte pairs.

use crate::config::Config;
use crate::dma::request::SourceId;

use super::topology::{DevicePath, Node, NodeId, Topology, TopologyError};
pub use super::topology::{PathEntry, MAX_PATH_ENTRIES};

/// The table signature.
pub const SIGNATURE: [u8; 4] = *b"DMAR";
/// The table revision written.
pub const REVISION: u8 = 1;
/// Length of the standard ACPI table header.
pub const ACPI_HEADER_LEN: usize = 36;
/// Length of the DMAR header: the ACPI header, HAW, flags and 10 reserved bytes.
pub const HEADER_LEN: usize = 48;
/// Offset of the host address width byte (HAW − 1).
pub const HAW_OFFSET: usize = 36;
/// Offset of the flags byte.
pub const FLAGS_OFFSET: usize = 37;
/// Length of a DRHD before its device scopes.
pub const DRHD_LEN: usize = 16;
/// Length of an RMRR before its device scopes.
pub const RMRR_LEN: usize = 24;
/// Length of an ATSR before its device scopes.
pub const ATSR_LEN: usize = 8;
/// Length of a SATC before its device scopes.
pub const SATC_LEN: usize = 8;
/// Length of a device scope before its path.
pub const SCOPE_HEADER_LEN: usize = 6;

/// DRHD flag bit 0: the unit covers every PCI device of its segment not listed by
/// another DRHD.
pub const DRHD_INCLUDE_PCI_ALL: u8 = 1;
/// ATSR flag bit 0: every root port of the segment supports ATS.
pub const ATSR_ALL_PORTS: u8 = 1;
/// SATC flag bit 0: the listed devices' ATC must be enabled for correct operation.
pub const SATC_ATC_REQUIRED: u8 = 1;

/// The type of a remapping structure (an open newtype: every value is representable).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StructureType(pub u16);

impl StructureType {
    /// DMA Remapping Hardware Unit Definition.
    pub const DRHD: Self = Self(0);
    /// Reserved Memory Region Reporting.
    pub const RMRR: Self = Self(1);
    /// Root Port ATS Capability Reporting.
    pub const ATSR: Self = Self(2);
    /// Remapping Hardware Static Affinity.
    pub const RHSA: Self = Self(3);
    /// ACPI Name-space Device Declaration.
    pub const ANDD: Self = Self(4);
    /// SoC Integrated Address Translation Cache.
    pub const SATC: Self = Self(5);
}

/// The type of a device scope entry (an open newtype).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ScopeType(pub u8);

impl ScopeType {
    /// A PCI endpoint device.
    pub const PCI_ENDPOINT: Self = Self(1);
    /// A PCI-PCI bridge and every device below it (PCI sub-hierarchy).
    pub const PCI_SUB_HIERARCHY: Self = Self(2);
    /// An I/O APIC (enumeration id: its I/O APIC id).
    pub const IOAPIC: Self = Self(3);
    /// An MSI-capable HPET (enumeration id: its HPET number).
    pub const HPET: Self = Self(4);
    /// An ACPI name-space device (enumeration id: its ANDD device number).
    pub const ACPI_NAMESPACE_DEVICE: Self = Self(5);
}

/// The DMAR header flags (byte 37).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DmarFlags {
    /// Bit 0, INTR_REMAP: the platform supports interrupt remapping.
    pub interrupt_remapping: bool,
    /// Bit 1, X2APIC_OPT_OUT: the firmware asks the OS not to enable x2APIC mode.
    pub x2apic_opt_out: bool,
    /// Bit 2, DMA_CTRL_PLATFORM_OPT_IN: the platform opts in to DMA protection at boot
    /// handoff.
    pub dma_control_platform_opt_in: bool,
}

impl DmarFlags {
    /// The flags byte.
    pub const fn bits(self) -> u8 {
        (self.interrupt_remapping as u8)
            | ((self.x2apic_opt_out as u8) << 1)
            | ((self.dma_control_platform_opt_in as u8) << 2)
    }
}

/// The identification fields of the ACPI header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AcpiTableIds {
    /// OEM ID.
    pub oem_id: [u8; 6],
    /// OEM table ID.
    pub oem_table_id: [u8; 8],
    /// OEM revision.
    pub oem_revision: u32,
    /// Creator ID (the ASL compiler's vendor id, for a generated table the VMM's).
    pub creator_id: [u8; 4],
    /// Creator revision.
    pub creator_revision: u32,
}

impl Default for AcpiTableIds {
    fn default() -> Self {
        Self {
            oem_id: *b"VIOMMU",
            oem_table_id: *b"VIOMMU  ",
            oem_revision: 1,
            creator_id: *b"VIOM",
            creator_revision: 1,
        }
    }
}

/// A DRHD (type 0): one remapping hardware unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Drhd {
    /// INCLUDE_PCI_ALL: the unit covers every PCI device of `segment` not under another
    /// DRHD; its scopes may then only be IOAPICs, HPETs and ACPI name-space devices.
    pub include_pci_all: bool,
    /// Size (bits 3:0): the register set is 2^size 4 KiB pages.
    pub register_set_size: u8,
    /// PCI segment.
    pub segment: u16,
    /// Base address of the register set (4 KiB aligned).
    pub register_base: u64,
}

/// An RMRR (type 1): memory the listed devices may DMA to before and while the OS
/// sets up remapping (to be identity-mapped for them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rmrr {
    /// PCI segment of the devices.
    pub segment: u16,
    /// First byte (4 KiB aligned).
    pub base: u64,
    /// Last byte (inclusive; `limit + 1` 4 KiB aligned).
    pub limit: u64,
}

/// An ATSR (type 2): root ports that support ATS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Atsr {
    /// ALL_PORTS: every root port of `segment` (then no scopes).
    pub all_ports: bool,
    /// PCI segment.
    pub segment: u16,
}

/// A SATC (type 5): SoC-integrated devices with an address translation cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Satc {
    /// ATC_REQUIRED: the devices' ATC must be enabled for them to work correctly.
    pub atc_required: bool,
    /// PCI segment.
    pub segment: u16,
}

/// A device scope entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceScope<'p> {
    /// What kind of device.
    pub scope_type: ScopeType,
    /// IOAPIC id, HPET number or ANDD device number (0 for PCI devices).
    pub enumeration_id: u8,
    /// The bus the path starts on.
    pub start_bus: u8,
    /// (device, function) from the start bus down to the device; at least one entry.
    pub path: &'p [PathEntry],
}

impl<'p> DeviceScope<'p> {
    /// A PCI endpoint at `path` from `start_bus`.
    pub const fn endpoint(start_bus: u8, path: &'p [PathEntry]) -> Self {
        Self {
            scope_type: ScopeType::PCI_ENDPOINT,
            enumeration_id: 0,
            start_bus,
            path,
        }
    }
    /// A bridge at `path` from `start_bus`, and everything below it.
    pub const fn sub_hierarchy(start_bus: u8, path: &'p [PathEntry]) -> Self {
        Self {
            scope_type: ScopeType::PCI_SUB_HIERARCHY,
            enumeration_id: 0,
            start_bus,
            path,
        }
    }
    /// Length of the entry: 6 + 2 per path entry.
    pub const fn len(&self) -> usize {
        SCOPE_HEADER_LEN + 2 * self.path.len()
    }
    /// Whether the path is empty (a malformed entry).
    pub const fn is_empty(&self) -> bool {
        self.path.is_empty()
    }
}

/// An I/O APIC or HPET: the id the OS knows it by, and the requester id its interrupt
/// requests carry (what interrupt remapping checks the IRTE's SID against).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlatformDevice {
    /// IOAPIC id or HPET number (the scope's enumeration id).
    pub id: u8,
    /// Its requester id: start bus and a one-entry path.
    pub source_id: SourceId,
}

/// Why a table could not be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DmarError {
    /// The buffer is too small; `needed` bytes make the whole table.
    BufferTooSmall {
        /// Bytes the table needs.
        needed: usize,
        /// Bytes the buffer has.
        available: usize,
    },
    /// Host address width outside 1..=64.
    HostAddressWidth(u8),
    /// A structure of `next` type after one of a higher type: structures must come in
    /// type order (DRHDs, then RMRRs, then ATSRs, ..., then SATCs).
    OutOfOrder {
        /// The type written before.
        previous: StructureType,
        /// The type that came after it.
        next: StructureType,
    },
    /// The DRHD register base is not 4 KiB aligned.
    RegisterBaseMisaligned(u64),
    /// The DRHD size field is above 15.
    RegisterSetSize(u8),
    /// An RMRR's base is not 4 KiB aligned, its limit + 1 is not, or limit < base.
    RmrrRange {
        /// Base.
        base: u64,
        /// Limit.
        limit: u64,
    },
    /// A device scope with no structure open.
    NoStructure,
    /// A device scope of a type the open structure may not hold.
    ScopeNotAllowed {
        /// The open structure.
        structure: StructureType,
        /// The scope's type.
        scope: ScopeType,
    },
    /// A device scope with an empty path.
    EmptyPath,
    /// A device scope with more than [`MAX_PATH_ENTRIES`] path entries.
    PathTooLong(usize),
    /// A path entry with device above 31 or function above 7.
    PathEntry(PathEntry),
    /// A structure longer than its u16 length field can say.
    StructureTooLong,
    /// A table longer than its u32 length field can say.
    TableTooLong,
    /// The topology has a host bridge (not bypassing the IOMMU) in a segment the unit
    /// does not cover: the table cannot describe it.
    UncoveredSegment(u16),
    /// A device named in an RMRR, ATSR or SATC bypasses the IOMMU.
    DeviceBypassed(NodeId),
    /// An ATSR names a node that is not a root port, or a SATC one that is not an
    /// endpoint.
    WrongDeviceKind(NodeId),
    /// A query about the topology failed.
    Topology(TopologyError),
}

impl From<TopologyError> for DmarError {
    fn from(e: TopologyError) -> Self {
        Self::Topology(e)
    }
}

impl core::fmt::Display for DmarError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::BufferTooSmall { needed, available } => {
                write!(f, "DMAR table needs {needed} bytes, buffer has {available}")
            }
            Self::HostAddressWidth(w) => write!(f, "host address width {w} is not in 1..=64"),
            Self::OutOfOrder { previous, next } => write!(
                f,
                "remapping structure type {} after type {}",
                next.0, previous.0
            ),
            Self::RegisterBaseMisaligned(b) => {
                write!(f, "DRHD register base {b:#x} is not 4 KiB aligned")
            }
            Self::RegisterSetSize(s) => write!(f, "DRHD size {s} is above 15"),
            Self::RmrrRange { base, limit } => {
                write!(
                    f,
                    "RMRR {base:#x}..={limit:#x} is not a 4 KiB-aligned range"
                )
            }
            Self::NoStructure => f.write_str("device scope outside a remapping structure"),
            Self::ScopeNotAllowed { structure, scope } => write!(
                f,
                "device scope type {} not allowed in structure type {}",
                scope.0, structure.0
            ),
            Self::EmptyPath => f.write_str("device scope with an empty path"),
            Self::PathTooLong(n) => write!(f, "device scope path of {n} entries is too long"),
            Self::PathEntry(e) => write!(
                f,
                "path entry {:#x}.{:#x} is not a device and function",
                e.device, e.function
            ),
            Self::StructureTooLong => f.write_str("remapping structure longer than 64 KiB"),
            Self::TableTooLong => f.write_str("DMAR table longer than 4 GiB"),
            Self::UncoveredSegment(s) => {
                write!(
                    f,
                    "segment {s:#06x} is remapped but the unit does not cover it"
                )
            }
            Self::DeviceBypassed(n) => write!(f, "node {} bypasses the IOMMU", n.0),
            Self::WrongDeviceKind(n) => write!(f, "node {} is the wrong kind of device", n.0),
            Self::Topology(e) => write!(f, "topology: {e}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for DmarError {}

/// Streams a DMAR table into a buffer.
///
/// Bytes past the end of the buffer are counted, not written: [`finish`](Self::finish)
/// then reports [`DmarError::BufferTooSmall`] with the length needed. Any other error is
/// returned by the call that caused it and leaves what was written so far unchanged.
#[derive(Debug)]
pub struct DmarWriter<'b> {
    buf: &'b mut [u8],
    len: usize,
    /// The open structure: its offset and type.
    open: Option<(usize, StructureType, bool)>,
    last: Option<StructureType>,
}

impl<'b> DmarWriter<'b> {
    /// Start a table: the header with `ids`, `host_address_width` (HAW; written as
    /// HAW − 1) and `flags`.
    pub fn new(
        buf: &'b mut [u8],
        ids: &AcpiTableIds,
        host_address_width: u8,
        flags: DmarFlags,
    ) -> Result<Self, DmarError> {
        if !(1..=64).contains(&host_address_width) {
            return Err(DmarError::HostAddressWidth(host_address_width));
        }
        let mut w = Self {
            buf,
            len: 0,
            open: None,
            last: None,
        };
        w.put(&SIGNATURE);
        w.put(&[0; 4]); // Length, at finish.
        w.put(&[REVISION, 0]); // Checksum, at finish.
        w.put(&ids.oem_id);
        w.put(&ids.oem_table_id);
        w.put(&ids.oem_revision.to_le_bytes());
        w.put(&ids.creator_id);
        w.put(&ids.creator_revision.to_le_bytes());
        w.put(&[host_address_width - 1, flags.bits()]);
        w.put(&[0; 10]);
        Ok(w)
    }

    /// Bytes produced so far (more than the buffer when it is too small).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was produced (never: the header is written by `new`).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn put(&mut self, bytes: &[u8]) {
        let end = self.len.saturating_add(bytes.len());
        if let Some(dst) = self.buf.get_mut(self.len..end) {
            dst.copy_from_slice(bytes);
        }
        self.len = end;
    }

    fn patch(&mut self, offset: usize, bytes: &[u8]) {
        if let Some(dst) = self.buf.get_mut(offset..offset.saturating_add(bytes.len())) {
            dst.copy_from_slice(bytes);
        }
    }

    fn close(&mut self) -> Result<(), DmarError> {
        if let Some((start, _, _)) = self.open.take() {
            let length =
                u16::try_from(self.len - start).map_err(|_| DmarError::StructureTooLong)?;
            self.patch(start + 2, &length.to_le_bytes());
        }
        Ok(())
    }

    fn begin(&mut self, kind: StructureType, include_all: bool) -> Result<(), DmarError> {
        if let Some(previous) = self.last {
            if kind < previous {
                return Err(DmarError::OutOfOrder {
                    previous,
                    next: kind,
                });
            }
        }
        self.close()?;
        self.last = Some(kind);
        self.open = Some((self.len, kind, include_all));
        self.put(&kind.0.to_le_bytes());
        self.put(&[0; 2]); // Length, when closed.
        Ok(())
    }

    /// Start a DRHD; its device scopes follow.
    pub fn begin_drhd(&mut self, drhd: &Drhd) -> Result<(), DmarError> {
        if drhd.register_base & 0xFFF != 0 {
            return Err(DmarError::RegisterBaseMisaligned(drhd.register_base));
        }
        if drhd.register_set_size > 15 {
            return Err(DmarError::RegisterSetSize(drhd.register_set_size));
        }
        self.begin(StructureType::DRHD, drhd.include_pci_all)?;
        let flags = if drhd.include_pci_all {
            DRHD_INCLUDE_PCI_ALL
        } else {
            0
        };
        self.put(&[flags, drhd.register_set_size]);
        self.put(&drhd.segment.to_le_bytes());
        self.put(&drhd.register_base.to_le_bytes());
        Ok(())
    }

    /// Start an RMRR; its device scopes (PCI endpoints and sub-hierarchies) follow.
    pub fn begin_rmrr(&mut self, rmrr: &Rmrr) -> Result<(), DmarError> {
        let aligned_end = rmrr
            .limit
            .checked_add(1)
            .is_some_and(|end| end & 0xFFF == 0);
        if rmrr.base & 0xFFF != 0 || !aligned_end || rmrr.limit < rmrr.base {
            return Err(DmarError::RmrrRange {
                base: rmrr.base,
                limit: rmrr.limit,
            });
        }
        self.begin(StructureType::RMRR, false)?;
        self.put(&[0; 2]);
        self.put(&rmrr.segment.to_le_bytes());
        self.put(&rmrr.base.to_le_bytes());
        self.put(&rmrr.limit.to_le_bytes());
        Ok(())
    }

    /// Start an ATSR; its device scopes (root ports, as sub-hierarchies) follow unless
    /// ALL_PORTS is set.
    pub fn begin_atsr(&mut self, atsr: &Atsr) -> Result<(), DmarError> {
        self.begin(StructureType::ATSR, atsr.all_ports)?;
        self.put(&[if atsr.all_ports { ATSR_ALL_PORTS } else { 0 }, 0]);
        self.put(&atsr.segment.to_le_bytes());
        Ok(())
    }

    /// Start a SATC; its device scopes (PCI endpoints) follow.
    pub fn begin_satc(&mut self, satc: &Satc) -> Result<(), DmarError> {
        self.begin(StructureType::SATC, false)?;
        self.put(&[
            if satc.atc_required {
                SATC_ATC_REQUIRED
            } else {
                0
            },
            0,
        ]);
        self.put(&satc.segment.to_le_bytes());
        Ok(())
    }

    /// Add a device scope to the open structure.
    pub fn scope(&mut self, scope: &DeviceScope<'_>) -> Result<(), DmarError> {
        let Some((start, structure, flag)) = self.open else {
            return Err(DmarError::NoStructure);
        };
        let pci = matches!(
            scope.scope_type,
            ScopeType::PCI_ENDPOINT | ScopeType::PCI_SUB_HIERARCHY
        );
        let allowed = match structure {
            // With INCLUDE_PCI_ALL only non-PCI devices are listed.
            StructureType::DRHD => (1..=5).contains(&scope.scope_type.0) && !(flag && pci),
            StructureType::RMRR => pci,
            // ALL_PORTS: no scopes; otherwise root ports.
            StructureType::ATSR => !flag && scope.scope_type == ScopeType::PCI_SUB_HIERARCHY,
            StructureType::SATC => scope.scope_type == ScopeType::PCI_ENDPOINT,
            _ => false,
        };
        if !allowed {
            return Err(DmarError::ScopeNotAllowed {
                structure,
                scope: scope.scope_type,
            });
        }
        if scope.path.is_empty() {
            return Err(DmarError::EmptyPath);
        }
        if scope.path.len() > MAX_PATH_ENTRIES {
            return Err(DmarError::PathTooLong(scope.path.len()));
        }
        if let Some(bad) = scope.path.iter().find(|e| e.device > 31 || e.function > 7) {
            return Err(DmarError::PathEntry(*bad));
        }
        if self.len - start + scope.len() > usize::from(u16::MAX) {
            return Err(DmarError::StructureTooLong);
        }
        // MAX_PATH_ENTRIES keeps the length in a byte.
        self.put(&[scope.scope_type.0, scope.len() as u8, 0, 0]);
        self.put(&[scope.enumeration_id, scope.start_bus]);
        for e in scope.path {
            self.put(&[e.device, e.function]);
        }
        Ok(())
    }

    /// Add a one-entry scope of `scope_type` for `device` (an IOAPIC or HPET).
    pub fn platform_scope(
        &mut self,
        scope_type: ScopeType,
        device: &PlatformDevice,
    ) -> Result<(), DmarError> {
        let path = [PathEntry::of(device.source_id)];
        self.scope(&DeviceScope {
            scope_type,
            enumeration_id: device.id,
            start_bus: device.source_id.bus(),
            path: &path,
        })
    }

    /// Add the scope for a function of `topology`: a PCI endpoint for an endpoint, a
    /// sub-hierarchy for a bridge, with the path from its host bridge's root bus.
    pub fn topology_scope<const N: usize>(
        &mut self,
        topology: &Topology<N>,
        node: NodeId,
    ) -> Result<(), DmarError> {
        let DevicePath {
            start_bus, entries, ..
        } = topology.path(node)?;
        let scope = match topology.node(node) {
            Some(Node::Bridge(_)) => DeviceScope::sub_hierarchy(start_bus, &entries),
            _ => DeviceScope::endpoint(start_bus, &entries),
        };
        self.scope(&scope)
    }

    /// Close the table: write its length and checksum; the table's length, or
    /// [`DmarError::BufferTooSmall`].
    pub fn finish(mut self) -> Result<usize, DmarError> {
        self.close()?;
        let length = u32::try_from(self.len).map_err(|_| DmarError::TableTooLong)?;
        if self.len > self.buf.len() {
            return Err(DmarError::BufferTooSmall {
                needed: self.len,
                available: self.buf.len(),
            });
        }
        self.patch(4, &length.to_le_bytes());
        let table = &mut self.buf[..self.len];
        table[9] = 0;
        let sum = table.iter().fold(0u8, |sum, b| sum.wrapping_add(*b));
        table[9] = sum.wrapping_neg();
        Ok(self.len)
    }
}

/// Root ports that support ATS, for the ATSR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AtsReport<'a> {
    /// ALL_PORTS: every root port of the segment.
    AllPorts,
    /// These root ports.
    RootPorts(&'a [NodeId]),
}

/// Memory some devices need identity-mapped (an RMRR).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReservedRegion<'a> {
    /// First byte (4 KiB aligned).
    pub base: u64,
    /// Last byte, inclusive.
    pub limit: u64,
    /// The devices (endpoints or bridges) that use it.
    pub devices: &'a [NodeId],
}

/// What [`build_dmar`] puts in the table besides the topology.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DmarConfig<'a> {
    /// ACPI header identification.
    pub ids: AcpiTableIds,
    /// Host address width (HAW).
    pub host_address_width: u8,
    /// Header flags.
    pub flags: DmarFlags,
    /// The segment the unit covers.
    pub segment: u16,
    /// The unit's register base address.
    pub register_base: u64,
    /// The DRHD size field: the register set is 2^size 4 KiB pages.
    pub register_set_size: u8,
    /// I/O APICs under the unit (interrupt remapping needs every I/O APIC listed).
    pub ioapics: &'a [PlatformDevice],
    /// MSI-capable HPETs under the unit.
    pub hpets: &'a [PlatformDevice],
    /// RMRRs.
    pub reserved_regions: &'a [ReservedRegion<'a>],
    /// The ATSR, if any.
    pub ats: Option<AtsReport<'a>>,
    /// SATC devices (endpoints) and its ATC_REQUIRED flag; no SATC when empty.
    pub satc_devices: &'a [NodeId],
    /// The SATC's ATC_REQUIRED flag.
    pub satc_atc_required: bool,
}

impl<'a> DmarConfig<'a> {
    /// The table for a unit configured by `config` with registers at `register_base`,
    /// segment 0: HAW from `config`, INTR_REMAP when interrupt remapping is on,
    /// X2APIC_OPT_OUT when it is on without extended interrupt mode (the unit cannot
    /// remap to 32-bit x2APIC destinations), an ATSR with ALL_PORTS when device-TLBs are
    /// supported (as QEMU does). One register page; no IOAPIC, HPET, RMRR or SATC.
    pub fn new(config: &Config, register_base: u64) -> Self {
        Self {
            ids: AcpiTableIds::default(),
            host_address_width: config.host_address_width,
            flags: DmarFlags {
                interrupt_remapping: config.interrupt_remapping,
                x2apic_opt_out: config.interrupt_remapping && !config.extended_interrupt_mode,
                dma_control_platform_opt_in: false,
            },
            segment: 0,
            register_base,
            register_set_size: 0,
            ioapics: &[],
            hpets: &[],
            reserved_regions: &[],
            ats: if config.device_tlb {
                Some(AtsReport::AllPorts)
            } else {
                None
            },
            satc_devices: &[],
            satc_atc_required: false,
        }
    }
}

/// Write the DMAR table of one remapping unit covering `topology` into `buf`; its length.
///
/// When no host bridge of the unit's segment bypasses the IOMMU the DRHD sets
/// INCLUDE_PCI_ALL and lists only the IOAPICs and HPETs. Otherwise it cannot (that would
/// cover the bypassed devices too) and lists every function directly below a remapped
/// host bridge: endpoints as PCI endpoints, bridges as PCI sub-hierarchies (covering all
/// below them), then the IOAPICs and HPETs. Functions hot-added later directly on such a
/// root bus are not covered by that table.
pub fn build_dmar<const N: usize>(
    buf: &mut [u8],
    topology: &Topology<N>,
    config: &DmarConfig<'_>,
) -> Result<usize, DmarError> {
    let segment = config.segment;
    let mut any_bypassed = false;
    for (_, node) in topology.nodes() {
        if let Node::HostBridge(h) = node {
            if h.segment == segment {
                any_bypassed |= h.bypass_iommu;
            } else if !h.bypass_iommu {
                return Err(DmarError::UncoveredSegment(h.segment));
            }
        }
    }
    let mut w = DmarWriter::new(buf, &config.ids, config.host_address_width, config.flags)?;
    w.begin_drhd(&Drhd {
        include_pci_all: !any_bypassed,
        register_set_size: config.register_set_size,
        segment,
        register_base: config.register_base,
    })?;
    if any_bypassed {
        for (host, node) in topology.nodes() {
            let Node::HostBridge(h) = node else { continue };
            if h.segment != segment || h.bypass_iommu {
                continue;
            }
            for child in topology.children(host) {
                w.topology_scope(topology, child)?;
            }
        }
    }
    for ioapic in config.ioapics {
        w.platform_scope(ScopeType::IOAPIC, ioapic)?;
    }
    for hpet in config.hpets {
        w.platform_scope(ScopeType::HPET, hpet)?;
    }
    let remapped = |node: NodeId| -> Result<(), DmarError> {
        if topology.is_bypassed(node)? {
            return Err(DmarError::DeviceBypassed(node));
        }
        Ok(())
    };
    for region in config.reserved_regions {
        w.begin_rmrr(&Rmrr {
            segment,
            base: region.base,
            limit: region.limit,
        })?;
        for &device in region.devices {
            remapped(device)?;
            w.topology_scope(topology, device)?;
        }
    }
    match config.ats {
        None => {}
        Some(AtsReport::AllPorts) => w.begin_atsr(&Atsr {
            all_ports: true,
            segment,
        })?,
        Some(AtsReport::RootPorts(ports)) => {
            w.begin_atsr(&Atsr {
                all_ports: false,
                segment,
            })?;
            for &port in ports {
                remapped(port)?;
                if !matches!(
                    topology.node(port),
                    Some(Node::Bridge(b)) if b.kind == super::topology::BridgeKind::RootPort
                ) {
                    return Err(DmarError::WrongDeviceKind(port));
                }
                w.topology_scope(topology, port)?;
            }
        }
    }
    if !config.satc_devices.is_empty() {
        w.begin_satc(&Satc {
            atc_required: config.satc_atc_required,
            segment,
        })?;
        for &device in config.satc_devices {
            remapped(device)?;
            if !matches!(topology.node(device), Some(Node::Endpoint(_))) {
                return Err(DmarError::WrongDeviceKind(device));
            }
            w.topology_scope(topology, device)?;
        }
    }
    w.finish()
}
