//! `viommu_config`: the C mirror of [`viommu::Config`], versioned by `struct_size`.

use viommu::Config;

use crate::boundary::{boundary, try_out, Versioned};
use crate::status::viommu_status;

/// What a remapping unit advertises and supports: the C mirror of the engine's `Config`.
///
/// Get one from `viommu_config_default`, change the fields you need, and pass it to
/// `viommu_unit_new`.
///
/// Versioning: `struct_size` is `sizeof(viommu_config)` as the caller was compiled
/// (`viommu_config_default` sets it). New fields are only ever appended, with "as before"
/// as their zero value: a library newer than the caller's header gives fields the caller
/// lacks their defaults; an older library rejects a struct whose fields it does not know
/// unless they are zero (`VIOMMU_STATUS_INVALID_ARGUMENT`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct viommu_config {
    /// `sizeof(viommu_config)`: set by `viommu_config_default`; keep it.
    pub struct_size: usize,
    /// Maximum guest address width (MGAW): 39, 48 or 57. SAGAW advertises every supported
    /// width up to it (3-, 4- and 5-level tables).
    pub guest_address_width: u8,
    /// Host address width (HAW), 32..=52: table and page addresses at or above 2^HAW are
    /// errors.
    pub host_address_width: u8,
    /// Width of domain ids (CAP.ND): 4, 6, ..., 16.
    pub domain_id_bits: u8,
    /// CAP.MAMV: largest address mask of a page-selective invalidation, 0..=63.
    pub max_address_mask: u8,
    /// Number of fault recording registers (CAP.NFR + 1), 1..=256.
    pub fault_records: u16,
    /// CAP.CM: caching mode. Needed for MAP notifications (see
    /// `viommu_notifier_register`): the guest then invalidates after adding mappings too.
    pub caching_mode: bool,
    /// CAP.RWBF: software must flush the write buffer.
    pub required_write_buffer_flush: bool,
    /// CAP.SLLPS bit 0: 2 MiB second-level pages.
    pub large_pages_2m: bool,
    /// CAP.SLLPS bit 1: 1 GiB second-level pages.
    pub large_pages_1g: bool,
    /// CAP.PSI: page-selective IOTLB invalidation.
    pub page_selective_invalidation: bool,
    /// ECAP.C: page-walk coherency.
    pub coherent: bool,
    /// ECAP.QI: queued invalidation.
    pub queued_invalidation: bool,
    /// ECAP.DT: device-TLB (ATS) support.
    pub device_tlb: bool,
    /// ECAP.IR: interrupt remapping (needs queued invalidation).
    pub interrupt_remapping: bool,
    /// ECAP.EIM: extended interrupt mode, x2APIC (needs interrupt remapping).
    pub extended_interrupt_mode: bool,
    /// CAP.PI: posted interrupts (needs interrupt remapping).
    pub posted_interrupts: bool,
    /// ECAP.PT: pass-through context entries.
    pub pass_through: bool,
}

impl From<&Config> for viommu_config {
    fn from(c: &Config) -> Self {
        Self {
            struct_size: std::mem::size_of::<Self>(),
            guest_address_width: c.guest_address_width,
            host_address_width: c.host_address_width,
            domain_id_bits: c.domain_id_bits,
            max_address_mask: c.max_address_mask,
            fault_records: c.fault_records,
            caching_mode: c.caching_mode,
            required_write_buffer_flush: c.required_write_buffer_flush,
            large_pages_2m: c.large_pages_2m,
            large_pages_1g: c.large_pages_1g,
            page_selective_invalidation: c.page_selective_invalidation,
            coherent: c.coherent,
            queued_invalidation: c.queued_invalidation,
            device_tlb: c.device_tlb,
            interrupt_remapping: c.interrupt_remapping,
            extended_interrupt_mode: c.extended_interrupt_mode,
            posted_interrupts: c.posted_interrupts,
            pass_through: c.pass_through,
        }
    }
}

impl From<&viommu_config> for Config {
    fn from(c: &viommu_config) -> Self {
        Config {
            guest_address_width: c.guest_address_width,
            host_address_width: c.host_address_width,
            domain_id_bits: c.domain_id_bits,
            fault_records: c.fault_records,
            caching_mode: c.caching_mode,
            required_write_buffer_flush: c.required_write_buffer_flush,
            large_pages_2m: c.large_pages_2m,
            large_pages_1g: c.large_pages_1g,
            page_selective_invalidation: c.page_selective_invalidation,
            max_address_mask: c.max_address_mask,
            coherent: c.coherent,
            queued_invalidation: c.queued_invalidation,
            device_tlb: c.device_tlb,
            interrupt_remapping: c.interrupt_remapping,
            extended_interrupt_mode: c.extended_interrupt_mode,
            posted_interrupts: c.posted_interrupts,
            pass_through: c.pass_through,
        }
    }
}

// SAFETY: `#[repr(C)]`, `struct_size: usize` first, and every field is an integer or a
// `bool` (which C's `bool` only ever holds as 0 or 1).
unsafe impl Versioned for viommu_config {
    const MIN_SIZE: usize = std::mem::size_of::<Self>();
    fn defaults() -> Self {
        Self::from(&Config::default())
    }
    fn set_struct_size(&mut self, size: usize) {
        self.struct_size = size;
    }
}

/// Fill `*out` with the default configuration (what Linux's intel-iommu driver expects
/// of a modern legacy-mode unit: 48-bit widths, 16-bit domain ids, 8 fault records, QI,
/// IR with x2APIC, pass-through, 2 MiB and 1 GiB pages, caching mode off) and set
/// `struct_size`.
///
/// Returns `VIOMMU_STATUS_NULL_POINTER` if `out` is NULL. Thread-safe.
#[no_mangle]
pub extern "C" fn viommu_config_default(out: *mut viommu_config) -> viommu_status {
    boundary(|| {
        try_out!(out).write(viommu_config::defaults());
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_the_engine_config() {
        let c = Config {
            caching_mode: true,
            fault_records: 3,
            ..Config::default()
        };
        assert_eq!(Config::from(&viommu_config::from(&c)), c);
    }

    #[test]
    fn an_older_layout_gets_defaults_and_a_newer_one_must_be_zero_beyond() {
        let mut bigger = [0u64; 8];
        let size = std::mem::size_of::<viommu_config>();
        let mut config = viommu_config::defaults();
        config.caching_mode = true;
        config.struct_size = 64;
        // SAFETY: `bigger` is larger than the struct and u64-aligned.
        unsafe { (bigger.as_mut_ptr() as *mut viommu_config).write(config) };
        let read = |buf: &[u64; 8]| -> viommu_status {
            boundary(|| {
                let c: viommu_config =
                    crate::boundary::try_versioned!(buf.as_ptr() as *const viommu_config);
                assert!(c.caching_mode);
                assert_eq!(c.struct_size, size);
                Ok(())
            })
        };
        assert_eq!(read(&bigger), viommu_status::Ok);
        bigger[7] = 1;
        assert_eq!(read(&bigger), viommu_status::InvalidArgument);
        bigger[7] = 0;
        bigger[0] = 4;
        assert_eq!(read(&bigger), viommu_status::InvalidArgument);
    }
}
