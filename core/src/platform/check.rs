//! A configuration check run before the guest boots: known ways a valid [`Config`] and
//! [`Topology`] still make a guest lose something, as [`Warning`] values.
//!
//! The check only reports; it changes nothing. Errors (a [`Config`] that cannot exist)
//! are [`ConfigError`]s, as from [`Config::validate`].

use heapless::Vec;

use crate::config::{Config, ConfigError};

use super::topology::{Node, NodeId, PciAddress, Topology};

/// The most vCPUs (APIC ids 0..=254) xAPIC destinations can address: the 8-bit id 0xFF
/// is the broadcast id.
pub const XAPIC_MAX_VCPUS: u32 = 255;

/// Facts about the guest the check uses besides the unit's configuration and topology.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuestFacts {
    /// Number of vCPUs, when known.
    pub vcpus: Option<u32>,
}

/// A function named by a warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AffectedDevice {
    /// The node.
    pub node: NodeId,
    /// Where it is.
    pub address: PciAddress,
}

/// A way out of a warned-about situation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Remedy {
    /// Turn `bypass_iommu` off for the listed host bridges.
    StopBypassing,
    /// Turn interrupt remapping off (then x2APIC is limited to what the guest can do
    /// without it).
    DisableInterruptRemapping,
    /// Put the devices behind a host bridge the IOMMU covers.
    MoveBehindRemappedHostBridge,
    /// Turn extended interrupt mode (EIM) on.
    EnableExtendedInterruptMode,
    /// Turn interrupt remapping on, with extended interrupt mode.
    EnableInterruptRemappingWithEim,
    /// Give the guest at most [`XAPIC_MAX_VCPUS`] vCPUs.
    ReduceVcpus,
}

impl core::fmt::Display for Remedy {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::StopBypassing => "turn bypass_iommu off for those host bridges",
            Self::DisableInterruptRemapping => "turn interrupt remapping off",
            Self::MoveBehindRemappedHostBridge => {
                "put the devices behind a host bridge the IOMMU covers"
            }
            Self::EnableExtendedInterruptMode => "turn extended interrupt mode (EIM) on",
            Self::EnableInterruptRemappingWithEim => {
                "turn interrupt remapping on with extended interrupt mode (EIM)"
            }
            Self::ReduceVcpus => "give the guest at most 255 vCPUs",
        })
    }
}

/// Why a guest with more than 255 vCPUs cannot address them all in interrupts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum X2apicBlocker {
    /// Interrupt remapping is off: remappable MSIs and IOAPIC entries cannot carry
    /// 32-bit x2APIC destinations (unless the hypervisor offers another way, such as
    /// KVM's extended destination id).
    NoInterruptRemapping,
    /// Interrupt remapping is on without EIM: IRTE destinations are 8-bit xAPIC ids, and
    /// Linux will not enable x2APIC mode over such a unit.
    NoExtendedInterruptMode,
}

/// A known hazard in a configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Warning<const N: usize> {
    /// Interrupt remapping is on while some devices sit outside every DRHD scope (their
    /// host bridges bypass the IOMMU). Their MSIs cannot be remapped, and Linux then does
    /// not give them MSI/MSI-X: they fall back to legacy INTx through the IOAPIC (or
    /// have no interrupt at all).
    BypassedDevicesLoseMsi {
        /// The host bridges that bypass the IOMMU.
        host_bridges: Vec<NodeId, N>,
        /// The functions below them.
        devices: Vec<AffectedDevice, N>,
    },
    /// Every host bridge bypasses the IOMMU: the unit has no PCI device in its scope
    /// (Linux ignores such a unit for DMA remapping).
    NoRemappedDevices,
    /// More than [`XAPIC_MAX_VCPUS`] vCPUs need x2APIC destinations, which this unit
    /// cannot deliver.
    TooManyVcpusForXapic {
        /// The guest's vCPUs.
        vcpus: u32,
        /// What is missing.
        blocker: X2apicBlocker,
    },
}

impl<const N: usize> Warning<N> {
    /// The ways out.
    pub fn remedies(&self) -> &'static [Remedy] {
        match self {
            Self::BypassedDevicesLoseMsi { .. } => &[
                Remedy::StopBypassing,
                Remedy::DisableInterruptRemapping,
                Remedy::MoveBehindRemappedHostBridge,
            ],
            Self::NoRemappedDevices => &[Remedy::StopBypassing],
            Self::TooManyVcpusForXapic {
                blocker: X2apicBlocker::NoInterruptRemapping,
                ..
            } => &[Remedy::EnableInterruptRemappingWithEim, Remedy::ReduceVcpus],
            Self::TooManyVcpusForXapic {
                blocker: X2apicBlocker::NoExtendedInterruptMode,
                ..
            } => &[Remedy::EnableExtendedInterruptMode, Remedy::ReduceVcpus],
        }
    }
}

impl<const N: usize> core::fmt::Display for Warning<N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::BypassedDevicesLoseMsi { devices, .. } => {
                f.write_str(
                    "interrupt remapping is on but these devices bypass the IOMMU, so their \
                     MSI/MSI-X cannot be remapped and Linux falls back to legacy INTx for them:",
                )?;
                for d in devices {
                    write!(f, " {}", d.address)?;
                }
            }
            Self::NoRemappedDevices => f.write_str(
                "every host bridge bypasses the IOMMU: the remapping unit covers no PCI device",
            )?,
            Self::TooManyVcpusForXapic { vcpus, blocker } => {
                write!(f, "{vcpus} vCPUs need x2APIC interrupt destinations, but ")?;
                f.write_str(match blocker {
                    X2apicBlocker::NoInterruptRemapping => "interrupt remapping is off",
                    X2apicBlocker::NoExtendedInterruptMode => {
                        "interrupt remapping is on without extended interrupt mode"
                    }
                })?;
            }
        }
        f.write_str("; ways out:")?;
        for (i, remedy) in self.remedies().iter().enumerate() {
            write!(f, "{} {remedy}", if i == 0 { "" } else { ";" })?;
        }
        Ok(())
    }
}

/// Most warnings one check reports (each kind at most once).
pub const MAX_WARNINGS: usize = 3;

/// What [`check`] found.
pub type Warnings<const N: usize> = Vec<Warning<N>, MAX_WARNINGS>;

/// Check `config` and `topology` (and what is known of the guest) for known hazards.
pub fn check<const N: usize>(
    config: &Config,
    topology: &Topology<N>,
    guest: &GuestFacts,
) -> Result<Warnings<N>, ConfigError> {
    config.validate()?;
    let mut warnings = Warnings::new();
    let mut bypassing: Vec<NodeId, N> = Vec::new();
    let mut host_bridges = 0usize;
    for (id, node) in topology.nodes() {
        if let Node::HostBridge(h) = node {
            host_bridges += 1;
            if h.bypass_iommu {
                // At most N nodes, so at most N host bridges.
                let _ = bypassing.push(id);
            }
        }
    }
    if config.interrupt_remapping && !bypassing.is_empty() {
        let mut devices: Vec<AffectedDevice, N> = Vec::new();
        for (id, node) in topology.nodes() {
            if matches!(node, Node::HostBridge(_)) || topology.is_bypassed(id) != Ok(true) {
                continue;
            }
            if let Ok(address) = topology.address(id) {
                let _ = devices.push(AffectedDevice { node: id, address });
            }
        }
        if !devices.is_empty() {
            let _ = warnings.push(Warning::BypassedDevicesLoseMsi {
                host_bridges: bypassing.clone(),
                devices,
            });
        }
    }
    if host_bridges > 0 && bypassing.len() == host_bridges {
        let _ = warnings.push(Warning::NoRemappedDevices);
    }
    if let Some(vcpus) = guest.vcpus.filter(|&v| v > XAPIC_MAX_VCPUS) {
        let blocker = if !config.interrupt_remapping {
            Some(X2apicBlocker::NoInterruptRemapping)
        } else if !config.extended_interrupt_mode {
            Some(X2apicBlocker::NoExtendedInterruptMode)
        } else {
            None
        };
        if let Some(blocker) = blocker {
            let _ = warnings.push(Warning::TooManyVcpusForXapic { vcpus, blocker });
        }
    }
    Ok(warnings)
}
