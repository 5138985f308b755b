//! Unit configuration, and the CAP/ECAP values derived from it.
//!
//! Configuration is data: every advertised capability comes from a [`Config`], validated
//! once by [`Config::validate`]. The default is what Linux's intel-iommu driver expects
//! of a modern legacy-mode unit (see docs/configuration.md for the bits).

use crate::spec::registers::{offset, Capability, ExtendedCapability, Version};
use crate::spec::root_context::AddressWidth;

/// Why a [`Config`] was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// `guest_address_width` is not 39, 48 or 57.
    GuestAddressWidth(u8),
    /// `host_address_width` is outside 32..=52.
    HostAddressWidth(u8),
    /// `domain_id_bits` is not one of 4, 6, 8, 10, 12, 14, 16.
    DomainIdBits(u8),
    /// `fault_records` is outside 1..=256.
    FaultRecords(u16),
    /// Interrupt remapping needs queued invalidation (the IEC is only invalidated by QI).
    InterruptRemappingWithoutQueuedInvalidation,
    /// Extended interrupt mode needs interrupt remapping.
    ExtendedInterruptModeWithoutInterruptRemapping,
    /// Posted interrupts need interrupt remapping.
    PostedInterruptsWithoutInterruptRemapping,
    /// The maximum address mask value is above 63.
    MaxAddressMask(u8),
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::GuestAddressWidth(w) => write!(f, "guest address width {w} is not 39, 48 or 57"),
            Self::HostAddressWidth(w) => write!(f, "host address width {w} is not in 32..=52"),
            Self::DomainIdBits(b) => write!(f, "domain id width {b} is not 4, 6, ..., 16"),
            Self::FaultRecords(n) => write!(f, "{n} fault records is not in 1..=256"),
            Self::InterruptRemappingWithoutQueuedInvalidation => {
                f.write_str("interrupt remapping needs queued invalidation")
            }
            Self::ExtendedInterruptModeWithoutInterruptRemapping => {
                f.write_str("extended interrupt mode needs interrupt remapping")
            }
            Self::PostedInterruptsWithoutInterruptRemapping => {
                f.write_str("posted interrupts need interrupt remapping")
            }
            Self::MaxAddressMask(m) => write!(f, "maximum address mask {m} is above 63"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ConfigError {}

/// What one remapping hardware unit advertises and supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Maximum guest address width (MGAW): 39, 48 or 57. SAGAW advertises every
    /// supported width up to it (3-, 4- and 5-level tables).
    pub guest_address_width: u8,
    /// Host address width (HAW): table and page addresses at or above 2^HAW are errors.
    pub host_address_width: u8,
    /// Width of domain ids (CAP.ND): 4, 6, ..., 16.
    pub domain_id_bits: u8,
    /// Number of fault recording registers (CAP.NFR + 1), 1..=256.
    pub fault_records: u16,
    /// CAP.CM: caching mode (software invalidates after adding mappings too).
    pub caching_mode: bool,
    /// CAP.RWBF: software must flush the write buffer.
    pub required_write_buffer_flush: bool,
    /// CAP.SLLPS bit 0: 2 MiB second-level pages.
    pub large_pages_2m: bool,
    /// CAP.SLLPS bit 1: 1 GiB second-level pages.
    pub large_pages_1g: bool,
    /// CAP.PSI: page-selective IOTLB invalidation.
    pub page_selective_invalidation: bool,
    /// CAP.MAMV: largest address mask of a page-selective invalidation.
    pub max_address_mask: u8,
    /// ECAP.C: page-walk coherency (the tables are read from coherent memory).
    pub coherent: bool,
    /// ECAP.QI: queued invalidation.
    pub queued_invalidation: bool,
    /// ECAP.DT: device-TLB (ATS) support.
    pub device_tlb: bool,
    /// ECAP.IR: interrupt remapping.
    pub interrupt_remapping: bool,
    /// ECAP.EIM: extended interrupt mode (x2APIC).
    pub extended_interrupt_mode: bool,
    /// CAP.PI: posted interrupts.
    pub posted_interrupts: bool,
    /// ECAP.PT: pass-through context entries.
    pub pass_through: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            guest_address_width: 48,
            host_address_width: 48,
            domain_id_bits: 16,
            fault_records: 8,
            caching_mode: false,
            required_write_buffer_flush: false,
            large_pages_2m: true,
            large_pages_1g: true,
            page_selective_invalidation: true,
            max_address_mask: 18,
            coherent: true,
            queued_invalidation: true,
            device_tlb: false,
            interrupt_remapping: true,
            extended_interrupt_mode: true,
            posted_interrupts: false,
            pass_through: true,
        }
    }
}

/// ECAP.MHMV advertised when interrupt remapping is on: index masks up to 2^15 entries.
const MAX_HANDLE_MASK: u8 = 0xF;

impl Config {
    /// Check that the configuration describes hardware that can exist.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !matches!(self.guest_address_width, 39 | 48 | 57) {
            return Err(ConfigError::GuestAddressWidth(self.guest_address_width));
        }
        if !(32..=52).contains(&self.host_address_width) {
            return Err(ConfigError::HostAddressWidth(self.host_address_width));
        }
        if !(4..=16).contains(&self.domain_id_bits) || self.domain_id_bits % 2 != 0 {
            return Err(ConfigError::DomainIdBits(self.domain_id_bits));
        }
        if !(1..=256).contains(&self.fault_records) {
            return Err(ConfigError::FaultRecords(self.fault_records));
        }
        if self.interrupt_remapping && !self.queued_invalidation {
            return Err(ConfigError::InterruptRemappingWithoutQueuedInvalidation);
        }
        if self.extended_interrupt_mode && !self.interrupt_remapping {
            return Err(ConfigError::ExtendedInterruptModeWithoutInterruptRemapping);
        }
        if self.posted_interrupts && !self.interrupt_remapping {
            return Err(ConfigError::PostedInterruptsWithoutInterruptRemapping);
        }
        if self.max_address_mask > 63 {
            return Err(ConfigError::MaxAddressMask(self.max_address_mask));
        }
        Ok(())
    }

    /// VER: architecture version 1.0 (legacy mode).
    pub fn version(&self) -> Version {
        Version::new().with_max(1).with_min(0)
    }

    /// CAP.SAGAW: every supported width up to the guest address width.
    pub fn sagaw(&self) -> u8 {
        let mut sagaw = AddressWidth::AGAW_39.sagaw_bit();
        if self.guest_address_width >= 48 {
            sagaw |= AddressWidth::AGAW_48.sagaw_bit();
        }
        if self.guest_address_width >= 57 {
            sagaw |= AddressWidth::AGAW_57.sagaw_bit();
        }
        sagaw
    }

    /// The capability register this configuration advertises.
    pub fn capability(&self) -> Capability {
        let nfr = u8::try_from(self.fault_records.saturating_sub(1)).unwrap_or(u8::MAX);
        let sllps = u8::from(self.large_pages_2m) | (u8::from(self.large_pages_1g) << 1);
        Capability::new()
            .with_nd(self.domain_id_bits.saturating_sub(4) / 2)
            .with_rwbf(self.required_write_buffer_flush)
            .with_cm(self.caching_mode)
            .with_sagaw(self.sagaw())
            .with_mgaw(self.guest_address_width - 1)
            .with_zlr(true)
            .with_fro((offset::FRCD >> 4) as u16)
            .with_sllps(sllps)
            .with_psi(self.page_selective_invalidation)
            .with_nfr(nfr)
            .with_mamv(self.max_address_mask)
            .with_dwd(true)
            .with_drd(true)
            .with_pi(self.posted_interrupts)
    }

    /// The extended capability register this configuration advertises.
    pub fn extended_capability(&self) -> ExtendedCapability {
        ExtendedCapability::new()
            .with_c(self.coherent)
            .with_qi(self.queued_invalidation)
            .with_dt(self.device_tlb)
            .with_ir(self.interrupt_remapping)
            .with_eim(self.extended_interrupt_mode)
            .with_pt(self.pass_through)
            .with_iro((offset::IVA >> 4) as u16)
            .with_mhmv(if self.interrupt_remapping {
                MAX_HANDLE_MASK
            } else {
                0
            })
    }

    /// Number of domain ids: ids at or above it are reserved.
    pub fn domain_count(&self) -> u32 {
        1u32 << self.domain_id_bits.min(16)
    }

    /// Whether a context entry's AW field names a width this unit supports.
    pub fn supports_address_width(&self, aw: AddressWidth) -> bool {
        aw.sagaw_bit() & self.sagaw() != 0
    }

    /// Second-level levels at which a large page may be mapped (bit n set: level n+2).
    pub fn large_page_levels(&self) -> u8 {
        u8::from(self.large_pages_2m) | (u8::from(self.large_pages_1g) << 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_advertises_what_linux_needs() {
        let c = Config::default();
        c.validate().unwrap();
        let cap = c.capability();
        let ecap = c.extended_capability();
        assert_eq!(cap.mgaw(), 47);
        assert_eq!(cap.sagaw(), 0b0110);
        assert_eq!(cap.nd(), 6);
        assert_eq!(cap.nfr(), 7);
        assert_eq!(u64::from(cap.fro()) * 16, offset::FRCD);
        assert_eq!(u64::from(ecap.iro()) * 16, offset::IVA);
        assert!(ecap.qi() && ecap.ir() && ecap.eim() && ecap.pt());
        assert_eq!(cap.sllps(), 0b11);
    }

    #[test]
    fn sagaw_follows_the_guest_address_width() {
        for (mgaw, sagaw) in [(39, 0b0010), (48, 0b0110), (57, 0b1110)] {
            let c = Config {
                guest_address_width: mgaw,
                ..Config::default()
            };
            c.validate().unwrap();
            assert_eq!(c.capability().sagaw(), sagaw);
            assert_eq!(c.capability().mgaw(), mgaw - 1);
        }
    }

    #[test]
    fn impossible_configurations_are_rejected() {
        let bad = [
            Config {
                guest_address_width: 40,
                ..Config::default()
            },
            Config {
                host_address_width: 60,
                ..Config::default()
            },
            Config {
                domain_id_bits: 7,
                ..Config::default()
            },
            Config {
                fault_records: 0,
                ..Config::default()
            },
            Config {
                fault_records: 257,
                ..Config::default()
            },
            Config {
                queued_invalidation: false,
                ..Config::default()
            },
            Config {
                interrupt_remapping: false,
                queued_invalidation: true,
                ..Config::default()
            },
            Config {
                max_address_mask: 64,
                ..Config::default()
            },
        ];
        for c in bad {
            assert!(c.validate().is_err(), "{c:?}");
        }
    }
}
