//! The DMAR ACPI table for a VMM's firmware: `viommu_build_dmar`.
//!
//! Built by the engine's `platform::dmar` builder for one unit covering every PCI device
//! of segment 0 (INCLUDE_PCI_ALL) plus one I/O APIC, the shape QEMU's q35 machine has.

use viommu::platform::dmar::{build_dmar, AcpiTableIds, DmarConfig, PlatformDevice};
use viommu::platform::topology::{Node, Topology};
use viommu::{Config, SourceId};

use crate::boundary::{boundary, try_out, try_ref, try_slice_mut, try_versioned};
use crate::config::viommu_config;
use crate::status::viommu_status;

/// What the DMAR table says besides the unit's configuration.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct viommu_dmar_options {
    /// Guest-physical address of the unit's register window (4 KiB aligned).
    pub register_base: u64,
    /// The I/O APIC's ACPI id (enumeration id of its device scope).
    pub ioapic_id: u8,
    /// The I/O APIC's requester id (bus in 15:8, device/function in 7:0).
    pub ioapic_source_id: u16,
    /// ACPI OEM ID (space- or zero-padded).
    pub oem_id: [u8; 6],
    /// ACPI OEM table ID (space- or zero-padded).
    pub oem_table_id: [u8; 8],
}

/// Write the DMAR ACPI table for a unit configured by `config` into `buf` (`len` bytes),
/// header and checksum included; `*written` gets its length. When `len` is too small the
/// status is `VIOMMU_STATUS_BUFFER_TOO_SMALL` and `*written` is the length needed.
///
/// Thread-safe; needs no unit.
#[no_mangle]
pub extern "C" fn viommu_build_dmar(
    config: *const viommu_config,
    options: *const viommu_dmar_options,
    buf: *mut u8,
    len: usize,
    written: *mut usize,
) -> viommu_status {
    boundary(|| {
        let mut written = try_out!(written);
        written.write(0);
        let config: viommu_config = try_versioned!(config);
        let config = Config::from(&config);
        config.validate().map_err(viommu_status::from)?;
        let options = *try_ref!(options);
        let topology = Topology::<1>::from_nodes(&[Node::host_bridge(0, 0, 255)])
            .map_err(|_| viommu_status::InvalidArgument)?;
        let ioapics = [PlatformDevice {
            id: options.ioapic_id,
            source_id: SourceId(options.ioapic_source_id),
        }];
        let mut dmar = DmarConfig::new(&config, options.register_base);
        dmar.ids = AcpiTableIds {
            oem_id: options.oem_id,
            oem_table_id: options.oem_table_id,
            ..AcpiTableIds::default()
        };
        dmar.ioapics = &ioapics;
        // The table is small: build it into a local buffer first to learn its size.
        let mut table = [0u8; 512];
        let needed =
            build_dmar(&mut table, &topology, &dmar).map_err(|_| viommu_status::InvalidArgument)?;
        if len < needed {
            written.write(needed);
            return Err(viommu_status::BufferTooSmall);
        }
        let out = try_slice_mut!(buf, needed);
        out.copy_from_slice(table.get(..needed).ok_or(viommu_status::InvalidArgument)?);
        written.write(needed);
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::viommu_config_default;

    #[test]
    fn builds_a_checksummed_table_with_the_ioapic_scope() {
        let mut config = std::mem::MaybeUninit::<viommu_config>::zeroed();
        assert_eq!(
            viommu_config_default(config.as_mut_ptr()),
            viommu_status::Ok
        );
        // SAFETY: viommu_config_default initialised it.
        let config = unsafe { config.assume_init() };
        let options = viommu_dmar_options {
            register_base: 0xFED9_0000,
            ioapic_id: 0,
            ioapic_source_id: 0xFF00,
            oem_id: *b"BOCHS ",
            oem_table_id: *b"BXPC    ",
        };
        let mut buf = [0u8; 256];
        let mut written = 0usize;
        assert_eq!(
            viommu_build_dmar(&config, &options, buf.as_mut_ptr(), 8, &mut written),
            viommu_status::BufferTooSmall
        );
        let needed = written;
        assert_eq!(
            viommu_build_dmar(&config, &options, buf.as_mut_ptr(), buf.len(), &mut written),
            viommu_status::Ok
        );
        assert_eq!(written, needed);
        let table = &buf[..written];
        assert_eq!(&table[..4], b"DMAR");
        assert_eq!(
            u32::from_le_bytes(table[4..8].try_into().unwrap()) as usize,
            written
        );
        assert_eq!(table.iter().fold(0u8, |a, b| a.wrapping_add(*b)), 0);
        assert_eq!(&table[10..16], b"BOCHS ");
        assert_eq!(table[37] & 1, 1, "INTR_REMAP");
        // DRHD with INCLUDE_PCI_ALL at the register base, then an IOAPIC scope ff:00.0.
        assert_eq!(u16::from_le_bytes([table[48], table[49]]), 0);
        assert_eq!(table[52] & 1, 1);
        assert_eq!(
            u64::from_le_bytes(table[56..64].try_into().unwrap()),
            0xFED9_0000
        );
        assert_eq!(
            (table[64], table[68], table[69], table[70], table[71]),
            (3, 0, 0xFF, 0, 0)
        );
        assert_eq!(
            viommu_build_dmar(
                &config,
                std::ptr::null(),
                buf.as_mut_ptr(),
                buf.len(),
                &mut written
            ),
            viommu_status::NullPointer
        );
    }
}
