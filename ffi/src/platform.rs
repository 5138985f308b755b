//! The VMM's PCI topology, before the guest boots: `viommu_dma_alias` (the requester id a
//! device's DMA reaches the unit with) and `viommu_check_topology` (known hazards of a
//! configuration and topology).
//!
//! The topology is an array of `viommu_pci_node`, each naming its parent by index; it is
//! checked whole by the engine's `platform::topology` on every call (nothing is kept).

use std::ffi::{c_char, c_void, CString};

use viommu::platform::check::{check, GuestFacts, Warning};
use viommu::platform::topology::{DmaAlias, Node, NodeId, Topology};
use viommu::Config;

use crate::boundary::{boundary, try_out, try_ref, try_versioned};
use crate::config::viommu_config;
use crate::status::{viommu_status, Result};

/// The most nodes a topology passed to `viommu_dma_alias` or `viommu_check_topology` may
/// have.
pub const VIOMMU_MAX_PCI_NODES: usize = 256;

/// `viommu_pci_node.kind`: a host bridge (a root: a root complex or an expander bridge);
/// uses `segment`, `first_bus`, `last_bus`, `bypass_iommu`.
pub const VIOMMU_PCI_NODE_HOST_BRIDGE: u32 = 1;
/// A PCI Express root port: forwards requester ids unchanged.
pub const VIOMMU_PCI_NODE_ROOT_PORT: u32 = 2;
/// A PCI Express switch port (upstream or downstream): forwards requester ids unchanged.
pub const VIOMMU_PCI_NODE_SWITCH_PORT: u32 = 3;
/// A PCI Express to PCI bridge: requests from its conventional secondary bus take the id
/// (secondary bus, 00.0).
pub const VIOMMU_PCI_NODE_PCIE_TO_PCI_BRIDGE: u32 = 4;
/// A conventional PCI-to-PCI bridge: requests from below it carry the bridge's own id.
pub const VIOMMU_PCI_NODE_PCI_TO_PCI_BRIDGE: u32 = 5;
/// A PCI Express endpoint function.
pub const VIOMMU_PCI_NODE_PCIE_ENDPOINT: u32 = 6;
/// A conventional PCI endpoint function.
pub const VIOMMU_PCI_NODE_PCI_ENDPOINT: u32 = 7;

/// One node of a PCI topology. Which fields are used depends on `kind`; the others are
/// ignored.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct viommu_pci_node {
    /// One of the `VIOMMU_PCI_NODE_*` kinds (anything else is INVALID_ARGUMENT).
    pub kind: u32,
    /// Bridges and endpoints: the index, in the same array, of the host bridge or bridge
    /// whose bus the node sits on. Ignored for host bridges.
    pub parent: u32,
    /// Host bridges: PCI segment group.
    pub segment: u16,
    /// Host bridges: the root bus (devices directly below the host bridge are on it).
    pub first_bus: u8,
    /// Host bridges: the last bus number the hierarchy may use.
    pub last_bus: u8,
    /// Host bridges: DMA from below is not remapped (QEMU's `bypass_iommu`).
    pub bypass_iommu: bool,
    /// Bridges and endpoints: device number on the parent's bus, 0..=31.
    pub device: u8,
    /// Bridges and endpoints: function number, 0..=7.
    pub function: u8,
    /// Bridges: the bus number of the secondary side.
    pub secondary_bus: u8,
}

/// The requester id a device's DMA carries when it reaches the remapping hardware.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct viommu_dma_alias_info {
    /// The device's host bridge bypasses the IOMMU: its DMA addresses are guest-physical
    /// and `viommu_translate` is not called for it (`segment` and `source_id` are 0).
    pub bypass: bool,
    /// PCI segment group of the requester id.
    pub segment: u16,
    /// The requester id (bus in 15:8, device/function in 7:0) to translate with.
    pub source_id: u16,
}

impl viommu_dma_alias_info {
    const NONE: Self = Self {
        bypass: false,
        segment: 0,
        source_id: 0,
    };
}

/// `viommu_check_topology` warning kind: interrupt remapping is on while some devices sit
/// behind host bridges that bypass the IOMMU; their MSI/MSI-X cannot be remapped.
pub const VIOMMU_WARNING_BYPASSED_DEVICES_LOSE_MSI: u32 = 1;
/// Every host bridge bypasses the IOMMU: the unit covers no PCI device.
pub const VIOMMU_WARNING_NO_REMAPPED_DEVICES: u32 = 2;
/// More than 255 vCPUs need x2APIC destinations, which the configuration cannot deliver.
pub const VIOMMU_WARNING_TOO_MANY_VCPUS_FOR_XAPIC: u32 = 3;

/// Receive one warning from `viommu_check_topology`: `kind` is a `VIOMMU_WARNING_*`
/// value, `message` a NUL-terminated English explanation with the ways out, valid only
/// during the call.
pub type viommu_warning_fn =
    Option<unsafe extern "C" fn(opaque: *mut c_void, kind: u32, message: *const c_char)>;

/// The node C described, checked field by field.
fn node_from_c(node: &viommu_pci_node) -> Result<Node> {
    let parent = NodeId(u16::try_from(node.parent).map_err(|_| viommu_status::InvalidArgument)?);
    let (device, function, bus) = (node.device, node.function, node.secondary_bus);
    Ok(match node.kind {
        VIOMMU_PCI_NODE_HOST_BRIDGE if node.bypass_iommu => {
            Node::bypassed_host_bridge(node.segment, node.first_bus, node.last_bus)
        }
        VIOMMU_PCI_NODE_HOST_BRIDGE => {
            Node::host_bridge(node.segment, node.first_bus, node.last_bus)
        }
        VIOMMU_PCI_NODE_ROOT_PORT => Node::root_port(parent, device, function, bus),
        VIOMMU_PCI_NODE_SWITCH_PORT => Node::switch_port(parent, device, function, bus),
        VIOMMU_PCI_NODE_PCIE_TO_PCI_BRIDGE => {
            Node::pcie_to_pci_bridge(parent, device, function, bus)
        }
        VIOMMU_PCI_NODE_PCI_TO_PCI_BRIDGE => Node::pci_bridge(parent, device, function, bus),
        VIOMMU_PCI_NODE_PCIE_ENDPOINT => Node::pcie_endpoint(parent, device, function),
        VIOMMU_PCI_NODE_PCI_ENDPOINT => Node::pci_endpoint(parent, device, function),
        _ => return Err(viommu_status::InvalidArgument),
    })
}

/// The topology of the `count` nodes at `nodes` (an export's own arguments), checked.
fn topology_from_c(
    nodes: *const viommu_pci_node,
    count: usize,
) -> Result<Topology<VIOMMU_MAX_PCI_NODES>> {
    // NULL is refused even for an empty topology; the count is checked before any read.
    let _: &viommu_pci_node = try_ref!(nodes);
    if count > VIOMMU_MAX_PCI_NODES {
        return Err(viommu_status::InvalidArgument);
    }
    let mut converted = [Node::host_bridge(0, 0, 0); VIOMMU_MAX_PCI_NODES];
    for (i, slot) in converted.iter_mut().enumerate().take(count) {
        // `nodes` points to `count` nodes (the export's contract), so element `i` is in
        // the caller's array.
        let node: &viommu_pci_node = try_ref!(nodes.wrapping_add(i));
        *slot = node_from_c(node)?;
    }
    Topology::from_nodes(&converted[..count]).map_err(|_| viommu_status::InvalidArgument)
}

/// Compute the requester id the DMA of node `node` (an index into `nodes`, which holds
/// `count` nodes, at most `VIOMMU_MAX_PCI_NODES`) reaches the unit with, into `*out`:
/// itself for a PCI Express device behind root and switch ports, (secondary bus, 00.0) of
/// the topmost PCIe-to-PCI bridge above a conventional device, the topmost conventional
/// PCI-to-PCI bridge's own id below one, and `bypass` under a host bridge with
/// `bypass_iommu`. Devices with one alias share one context entry (one address space).
///
/// `VIOMMU_STATUS_INVALID_ARGUMENT` for an unknown kind, a topology that cannot exist
/// (unknown or endpoint parent, cycle, device above 31 or function above 7, bus numbers
/// out of range or claimed twice, two functions at one address), too many nodes, or a
/// `node` that is out of range or a host bridge. `*out` is zeroed on failure.
///
/// Thread-safe; needs no unit.
#[no_mangle]
pub extern "C" fn viommu_dma_alias(
    nodes: *const viommu_pci_node,
    count: usize,
    node: u32,
    out: *mut viommu_dma_alias_info,
) -> viommu_status {
    boundary(|| {
        let mut out = try_out!(out);
        out.write(viommu_dma_alias_info::NONE);
        let topology = topology_from_c(nodes, count)?;
        let id = NodeId(u16::try_from(node).map_err(|_| viommu_status::InvalidArgument)?);
        let alias = topology
            .dma_alias(id)
            .map_err(|_| viommu_status::InvalidArgument)?;
        out.write(match alias {
            DmaAlias::Remapped(address) => viommu_dma_alias_info {
                bypass: false,
                segment: address.segment,
                source_id: address.source_id.0,
            },
            DmaAlias::Bypass => viommu_dma_alias_info {
                bypass: true,
                ..viommu_dma_alias_info::NONE
            },
        });
        Ok(())
    })
}

/// Check a unit's `config` with the PCI topology `nodes` (`count` of them, as for
/// `viommu_dma_alias`) and the guest's `vcpus` (0 when not known) for known ways the guest
/// would lose something, before it boots: `callback` is called with `opaque` once per
/// warning found (each kind at most once), and `*warnings` gets their number. Only
/// reports; an empty report (0) is the good outcome.
///
/// `VIOMMU_STATUS_INVALID_CONFIG` if `config` cannot exist (as for `viommu_unit_new`),
/// `VIOMMU_STATUS_INVALID_ARGUMENT` for a topology `viommu_dma_alias` refuses;
/// `VIOMMU_STATUS_NULL_POINTER` for a NULL `config`, `nodes`, `callback` or `warnings`.
/// `*warnings` is 0 on failure, and the callback is not called.
///
/// Thread-safe; needs no unit. The callback must not unwind.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn viommu_check_topology(
    config: *const viommu_config,
    nodes: *const viommu_pci_node,
    count: usize,
    vcpus: u32,
    callback: viommu_warning_fn,
    opaque: *mut c_void,
    warnings: *mut usize,
) -> viommu_status {
    boundary(|| {
        let mut warnings = try_out!(warnings);
        warnings.write(0);
        let config: viommu_config = try_versioned!(config);
        let config = Config::from(&config);
        let callback = callback.ok_or(viommu_status::NullPointer)?;
        let topology = topology_from_c(nodes, count)?;
        let guest = GuestFacts {
            vcpus: (vcpus != 0).then_some(vcpus),
        };
        let found = check(&config, &topology, &guest).map_err(viommu_status::from)?;
        // Every message is built before the first call, so a failure leaves no partial
        // report.
        let mut messages = Vec::with_capacity(found.len());
        for warning in &found {
            let kind = match warning {
                Warning::BypassedDevicesLoseMsi { .. } => VIOMMU_WARNING_BYPASSED_DEVICES_LOSE_MSI,
                Warning::NoRemappedDevices => VIOMMU_WARNING_NO_REMAPPED_DEVICES,
                Warning::TooManyVcpusForXapic { .. } => VIOMMU_WARNING_TOO_MANY_VCPUS_FOR_XAPIC,
            };
            // Display text has no NUL; should it ever, the message is cut there.
            let text = warning.to_string();
            let text = text.split('\0').next().unwrap_or_default();
            let message = CString::new(text).map_err(|_| viommu_status::InvalidArgument)?;
            messages.push((kind, message));
        }
        for (kind, message) in &messages {
            // SAFETY: the caller's non-NULL callback and `opaque`, called with a
            // NUL-terminated string valid for the call, as `viommu_warning_fn` documents.
            unsafe { callback(opaque, *kind, message.as_ptr()) };
        }
        warnings.write(messages.len());
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use std::ffi::CStr;

    use super::*;
    use crate::config::viommu_config_default;

    const ZERO: viommu_pci_node = viommu_pci_node {
        kind: 0,
        parent: 0,
        segment: 0,
        first_bus: 0,
        last_bus: 0,
        bypass_iommu: false,
        device: 0,
        function: 0,
        secondary_bus: 0,
    };

    fn host(segment: u16, first: u8, last: u8, bypass: bool) -> viommu_pci_node {
        viommu_pci_node {
            kind: VIOMMU_PCI_NODE_HOST_BRIDGE,
            segment,
            first_bus: first,
            last_bus: last,
            bypass_iommu: bypass,
            ..ZERO
        }
    }

    fn at(kind: u32, parent: u32, device: u8, function: u8, bus: u8) -> viommu_pci_node {
        viommu_pci_node {
            kind,
            parent,
            device,
            function,
            secondary_bus: bus,
            ..ZERO
        }
    }

    fn alias(
        nodes: &[viommu_pci_node],
        node: u32,
    ) -> core::result::Result<viommu_dma_alias_info, viommu_status> {
        let mut out = viommu_dma_alias_info {
            bypass: true,
            segment: 9,
            source_id: 9,
        };
        match viommu_dma_alias(nodes.as_ptr(), nodes.len(), node, &mut out) {
            viommu_status::Ok => Ok(out),
            status => {
                assert_eq!(out, viommu_dma_alias_info::NONE);
                Err(status)
            }
        }
    }

    fn remapped(
        segment: u16,
        source_id: u16,
    ) -> core::result::Result<viommu_dma_alias_info, viommu_status> {
        Ok(viommu_dma_alias_info {
            bypass: false,
            segment,
            source_id,
        })
    }

    #[test]
    fn aliases() {
        let nodes = [
            host(0, 0, 0x7f, false),
            at(VIOMMU_PCI_NODE_ROOT_PORT, 0, 1, 0, 1),
            at(VIOMMU_PCI_NODE_PCIE_TO_PCI_BRIDGE, 1, 0, 0, 2),
            at(VIOMMU_PCI_NODE_PCI_ENDPOINT, 2, 3, 0, 0),
            at(VIOMMU_PCI_NODE_PCI_ENDPOINT, 2, 3, 1, 0),
            at(VIOMMU_PCI_NODE_PCIE_ENDPOINT, 0, 4, 0, 0),
            host(1, 0, 0xff, true),
            at(VIOMMU_PCI_NODE_PCIE_ENDPOINT, 6, 2, 0, 0),
        ];
        assert_eq!(alias(&nodes, 3), remapped(0, 0x0200));
        assert_eq!(alias(&nodes, 4), remapped(0, 0x0200));
        assert_eq!(alias(&nodes, 5), remapped(0, 0x0020));
        assert_eq!(
            alias(&nodes, 7),
            Ok(viommu_dma_alias_info {
                bypass: true,
                segment: 0,
                source_id: 0
            })
        );
        assert_eq!(alias(&nodes, 0), Err(viommu_status::InvalidArgument));
        assert_eq!(alias(&nodes, 8), Err(viommu_status::InvalidArgument));
        assert_eq!(alias(&nodes, 1 << 20), Err(viommu_status::InvalidArgument));
        let mut bad = nodes;
        bad[3].kind = 99;
        assert_eq!(alias(&bad, 5), Err(viommu_status::InvalidArgument));
        bad = nodes;
        bad[3].parent = 5; // an endpoint
        assert_eq!(alias(&bad, 5), Err(viommu_status::InvalidArgument));
        bad = nodes;
        bad[5].device = 32;
        assert_eq!(alias(&bad, 3), Err(viommu_status::InvalidArgument));
        let many = [host(0, 0, 0xff, false); VIOMMU_MAX_PCI_NODES + 1];
        assert_eq!(alias(&many, 0), Err(viommu_status::InvalidArgument));
        let mut out = viommu_dma_alias_info::NONE;
        assert_eq!(
            viommu_dma_alias(std::ptr::null(), 0, 0, &mut out),
            viommu_status::NullPointer
        );
        assert_eq!(
            viommu_dma_alias(nodes.as_ptr(), nodes.len(), 3, std::ptr::null_mut()),
            viommu_status::NullPointer
        );
    }

    struct Seen(Vec<(u32, String)>);

    unsafe extern "C" fn record(opaque: *mut c_void, kind: u32, message: *const c_char) {
        // SAFETY: the tests pass a `Seen`, not otherwise accessed during the call.
        let seen = unsafe { &mut *opaque.cast::<Seen>() };
        // SAFETY: the library passes a NUL-terminated string valid for the call.
        let message = unsafe { CStr::from_ptr(message) };
        seen.0.push((kind, message.to_str().unwrap().to_owned()));
    }

    fn check_with(
        config: &viommu_config,
        nodes: &[viommu_pci_node],
        vcpus: u32,
    ) -> (viommu_status, usize, Vec<(u32, String)>) {
        let mut seen = Seen(Vec::new());
        let mut count = 99usize;
        let status = viommu_check_topology(
            config,
            nodes.as_ptr(),
            nodes.len(),
            vcpus,
            Some(record),
            (&mut seen as *mut Seen).cast(),
            &mut count,
        );
        (status, count, seen.0)
    }

    fn default_config() -> viommu_config {
        let mut config = std::mem::MaybeUninit::<viommu_config>::zeroed();
        assert_eq!(
            viommu_config_default(config.as_mut_ptr()),
            viommu_status::Ok
        );
        // SAFETY: viommu_config_default initialised it.
        unsafe { config.assume_init() }
    }

    #[test]
    fn checks() {
        let config = default_config();
        assert!(config.interrupt_remapping);
        let clean = [
            host(0, 0, 0xff, false),
            at(VIOMMU_PCI_NODE_PCIE_ENDPOINT, 0, 2, 0, 0),
        ];
        assert_eq!(
            check_with(&config, &clean, 4),
            (viommu_status::Ok, 0, vec![])
        );
        let bypassed = [
            host(0, 0, 0x7f, false),
            host(0, 0x80, 0xff, true),
            at(VIOMMU_PCI_NODE_PCIE_ENDPOINT, 1, 2, 0, 0),
        ];
        let (status, count, seen) = check_with(&config, &bypassed, 4);
        assert_eq!((status, count, seen.len()), (viommu_status::Ok, 1, 1));
        assert_eq!(seen[0].0, VIOMMU_WARNING_BYPASSED_DEVICES_LOSE_MSI);
        assert!(seen[0].1.contains("MSI"), "{}", seen[0].1);
        assert!(seen[0].1.contains("0000:80:02.0"), "{}", seen[0].1);
        let mut no_eim = config;
        no_eim.extended_interrupt_mode = false;
        let (status, count, seen) = check_with(&no_eim, &bypassed[1..2], 300);
        assert_eq!((status, count), (viommu_status::Ok, 2));
        assert_eq!(
            seen.iter().map(|(kind, _)| *kind).collect::<Vec<_>>(),
            [
                VIOMMU_WARNING_NO_REMAPPED_DEVICES,
                VIOMMU_WARNING_TOO_MANY_VCPUS_FOR_XAPIC
            ]
        );
        let mut bad = config;
        bad.guest_address_width = 40;
        assert_eq!(
            check_with(&bad, &clean, 0),
            (viommu_status::InvalidConfig, 0, vec![])
        );
        let mut bad = clean;
        bad[1].kind = 0;
        assert_eq!(
            check_with(&config, &bad, 0),
            (viommu_status::InvalidArgument, 0, vec![])
        );
        let mut count = 0usize;
        assert_eq!(
            viommu_check_topology(
                &config,
                clean.as_ptr(),
                clean.len(),
                0,
                None,
                std::ptr::null_mut(),
                &mut count
            ),
            viommu_status::NullPointer
        );
    }
}
