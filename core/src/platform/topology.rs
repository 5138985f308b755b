//! The embedder's PCI topology, and the requester id each device's DMA reaches the
//! remapping hardware with.
//!
//! A [`Topology`] is a fixed-capacity tree (no heap): host bridges at the roots, PCI
//! bridges (root ports, switch ports, PCIe-to-PCI bridges, conventional PCI-to-PCI
//! bridges) inside, endpoints at the leaves. Nodes name their parent by [`NodeId`] (their
//! index), so a tree can be written down as a slice; [`Topology::from_nodes`] and
//! [`Topology::push`] check it and a `Topology` is always valid afterwards. Walking up
//! from a node is bounded by the node count whatever the input was.
//!
//! From the tree it computes each device's [`DmaAlias`], the requester id its DMA carries
//! when it reaches the remapping hardware (PCI Express to PCI/PCI-X Bridge spec §2.3;
//! Linux's `pci_for_each_dma_alias` and QEMU's `pci_req_id_cache_get` follow the same
//! rules):
//!
//! - PCIe root ports and switch ports forward requests unchanged: a device behind only
//!   those is its own requester id.
//! - A PCIe-to-PCI bridge takes ownership of the requests it forwards upstream from its
//!   conventional PCI secondary side: they carry (secondary bus, device 0, function 0).
//! - A conventional PCI-to-PCI bridge has no requester ids on its secondary side: what
//!   the root complex sees is the bridge's own id.
//! - Walking up from the device, every such bridge overrides what is below it, so the
//!   topmost aliasing bridge decides.
//! - Devices under a host bridge with `bypass_iommu` (QEMU's `pxb` property) are not in
//!   any remapping unit's scope: [`DmaAlias::Bypass`], their DMA is guest-physical.
//!
//! Devices with one alias are indistinguishable to the remapping hardware: they share one
//! context entry, so one domain and one address space
//! ([`Topology::devices_sharing_address_space`]).

use heapless::Vec;

use crate::dma::request::SourceId;

/// A node of a [`Topology`]: its index, in the order nodes were given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u16);

impl NodeId {
    /// The index as a `usize`.
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

/// The kinds of PCI-to-PCI bridge, which differ in what they do to requester ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BridgeKind {
    /// A PCI Express root port: forwards requester ids unchanged.
    RootPort,
    /// An upstream or downstream port of a PCI Express switch: forwards requester ids
    /// unchanged.
    SwitchPort,
    /// A PCI Express to PCI bridge (QEMU's `pcie-pci-bridge`): requests forwarded from
    /// its conventional secondary bus take the id (secondary bus, 00.0).
    PcieToPci,
    /// A conventional PCI-to-PCI bridge (QEMU's `pci-bridge`): requests from below it
    /// carry the bridge's own id.
    PciToPci,
}

/// Whether an endpoint is a PCI Express or a conventional PCI function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EndpointKind {
    /// A PCI Express function.
    Express,
    /// A conventional PCI function.
    Conventional,
}

/// A host bridge: the root of a PCI hierarchy (a root complex, or one of QEMU's `pxb`
/// expander bridges).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostBridge {
    /// PCI segment group.
    pub segment: u16,
    /// The root bus: devices directly below the host bridge are on it.
    pub first_bus: u8,
    /// The last bus number the hierarchy may use (secondary buses of bridges below it
    /// are in `first_bus + 1..=last_bus`).
    pub last_bus: u8,
    /// DMA from below this host bridge is not remapped (QEMU's `bypass_iommu`): it is
    /// outside every remapping unit's scope.
    pub bypass_iommu: bool,
}

/// A PCI-to-PCI bridge function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bridge {
    /// What the bridge does to requester ids.
    pub kind: BridgeKind,
    /// The host bridge or bridge whose bus the bridge sits on.
    pub parent: NodeId,
    /// Device number on the parent's bus, 0..=31.
    pub device: u8,
    /// Function number, 0..=7.
    pub function: u8,
    /// The bus number of the bridge's secondary side.
    pub secondary_bus: u8,
}

/// An endpoint function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// PCI Express or conventional PCI.
    pub kind: EndpointKind,
    /// The host bridge or bridge whose bus the endpoint sits on.
    pub parent: NodeId,
    /// Device number on the parent's bus, 0..=31.
    pub device: u8,
    /// Function number, 0..=7.
    pub function: u8,
}

/// One node of the topology.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Node {
    /// A host bridge (a root).
    HostBridge(HostBridge),
    /// A bridge.
    Bridge(Bridge),
    /// An endpoint.
    Endpoint(Endpoint),
}

impl Node {
    /// A host bridge of `segment` owning buses `first_bus..=last_bus`, remapped.
    pub const fn host_bridge(segment: u16, first_bus: u8, last_bus: u8) -> Self {
        Self::HostBridge(HostBridge {
            segment,
            first_bus,
            last_bus,
            bypass_iommu: false,
        })
    }
    /// A host bridge of `segment` owning buses `first_bus..=last_bus` whose devices
    /// bypass the IOMMU.
    pub const fn bypassed_host_bridge(segment: u16, first_bus: u8, last_bus: u8) -> Self {
        Self::HostBridge(HostBridge {
            segment,
            first_bus,
            last_bus,
            bypass_iommu: true,
        })
    }
    /// A bridge of `kind` at `device.function` on `parent`'s bus.
    pub const fn bridge(
        kind: BridgeKind,
        parent: NodeId,
        device: u8,
        function: u8,
        secondary_bus: u8,
    ) -> Self {
        Self::Bridge(Bridge {
            kind,
            parent,
            device,
            function,
            secondary_bus,
        })
    }
    /// A PCI Express root port.
    pub const fn root_port(parent: NodeId, device: u8, function: u8, secondary_bus: u8) -> Self {
        Self::bridge(
            BridgeKind::RootPort,
            parent,
            device,
            function,
            secondary_bus,
        )
    }
    /// A PCI Express switch port (upstream or downstream).
    pub const fn switch_port(parent: NodeId, device: u8, function: u8, secondary_bus: u8) -> Self {
        Self::bridge(
            BridgeKind::SwitchPort,
            parent,
            device,
            function,
            secondary_bus,
        )
    }
    /// A PCI Express to PCI bridge.
    pub const fn pcie_to_pci_bridge(
        parent: NodeId,
        device: u8,
        function: u8,
        secondary_bus: u8,
    ) -> Self {
        Self::bridge(
            BridgeKind::PcieToPci,
            parent,
            device,
            function,
            secondary_bus,
        )
    }
    /// A conventional PCI-to-PCI bridge.
    pub const fn pci_bridge(parent: NodeId, device: u8, function: u8, secondary_bus: u8) -> Self {
        Self::bridge(
            BridgeKind::PciToPci,
            parent,
            device,
            function,
            secondary_bus,
        )
    }
    /// A PCI Express endpoint function.
    pub const fn pcie_endpoint(parent: NodeId, device: u8, function: u8) -> Self {
        Self::Endpoint(Endpoint {
            kind: EndpointKind::Express,
            parent,
            device,
            function,
        })
    }
    /// A conventional PCI endpoint function.
    pub const fn pci_endpoint(parent: NodeId, device: u8, function: u8) -> Self {
        Self::Endpoint(Endpoint {
            kind: EndpointKind::Conventional,
            parent,
            device,
            function,
        })
    }

    /// The parent (`None` for a host bridge).
    pub const fn parent(&self) -> Option<NodeId> {
        match self {
            Self::HostBridge(_) => None,
            Self::Bridge(b) => Some(b.parent),
            Self::Endpoint(e) => Some(e.parent),
        }
    }

    /// Device and function (`None` for a host bridge).
    pub const fn device_function(&self) -> Option<(u8, u8)> {
        match self {
            Self::HostBridge(_) => None,
            Self::Bridge(b) => Some((b.device, b.function)),
            Self::Endpoint(e) => Some((e.device, e.function)),
        }
    }

    /// Whether the node is a bridge (not a host bridge).
    pub const fn is_bridge(&self) -> bool {
        matches!(self, Self::Bridge(_))
    }
}

/// Why a topology was rejected, or a query about it failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TopologyError {
    /// More nodes than the topology's capacity (or than [`NodeId`] can number).
    CapacityExceeded {
        /// The capacity.
        capacity: usize,
    },
    /// A node's parent is not a node of the topology.
    UnknownParent {
        /// The node.
        node: NodeId,
        /// Its parent.
        parent: NodeId,
    },
    /// A node's parent is an endpoint.
    ParentNotABridge {
        /// The node.
        node: NodeId,
        /// Its parent.
        parent: NodeId,
    },
    /// Walking up from the node never reaches a host bridge.
    Cycle {
        /// The node.
        node: NodeId,
    },
    /// Device above 31 or function above 7.
    DeviceFunction {
        /// The node.
        node: NodeId,
    },
    /// A host bridge's first bus is above its last bus.
    HostBridgeBuses {
        /// The host bridge.
        node: NodeId,
    },
    /// Two host bridges of one segment own overlapping bus ranges.
    OverlappingHostBridges {
        /// The host bridge checked.
        node: NodeId,
        /// The one it overlaps.
        other: NodeId,
    },
    /// A bridge's secondary bus is not above its own bus and inside its host bridge's
    /// bus range.
    BusOutOfRange {
        /// The bridge.
        node: NodeId,
        /// Its secondary bus.
        bus: u8,
    },
    /// Two bridges (or a bridge and a host bridge's root bus) claim one bus number.
    DuplicateBus {
        /// The node checked.
        node: NodeId,
        /// The node already owning the bus.
        other: NodeId,
        /// The bus.
        bus: u8,
    },
    /// Two functions have the same segment, bus, device and function.
    DuplicateFunction {
        /// The node checked.
        node: NodeId,
        /// The node already there.
        other: NodeId,
    },
    /// A query named a node the topology does not have.
    UnknownNode(NodeId),
    /// A query that needs a PCI function named a host bridge.
    NotAFunction(NodeId),
    /// The path from the host bridge to the node is longer than [`MAX_PATH_ENTRIES`].
    PathTooLong(NodeId),
}

impl core::fmt::Display for TopologyError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::CapacityExceeded { capacity } => {
                write!(f, "topology capacity of {capacity} nodes exceeded")
            }
            Self::UnknownParent { node, parent } => {
                write!(f, "node {} names unknown parent {}", node.0, parent.0)
            }
            Self::ParentNotABridge { node, parent } => {
                write!(f, "parent {} of node {} is an endpoint", parent.0, node.0)
            }
            Self::Cycle { node } => write!(f, "node {} is on a parent cycle", node.0),
            Self::DeviceFunction { node } => {
                write!(f, "node {}: device above 31 or function above 7", node.0)
            }
            Self::HostBridgeBuses { node } => {
                write!(f, "host bridge {}: first bus above last bus", node.0)
            }
            Self::OverlappingHostBridges { node, other } => write!(
                f,
                "host bridges {} and {} own overlapping buses",
                node.0, other.0
            ),
            Self::BusOutOfRange { node, bus } => write!(
                f,
                "bridge {}: secondary bus {bus:#04x} outside its host bridge's range",
                node.0
            ),
            Self::DuplicateBus { node, other, bus } => write!(
                f,
                "nodes {} and {} both claim bus {bus:#04x}",
                node.0, other.0
            ),
            Self::DuplicateFunction { node, other } => {
                write!(f, "nodes {} and {} have one address", node.0, other.0)
            }
            Self::UnknownNode(node) => write!(f, "no node {}", node.0),
            Self::NotAFunction(node) => write!(f, "node {} is a host bridge", node.0),
            Self::PathTooLong(node) => write!(f, "node {} is nested too deep", node.0),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for TopologyError {}

/// Where a PCI function is: its segment and its own requester id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PciAddress {
    /// PCI segment group.
    pub segment: u16,
    /// Bus, device and function.
    pub source_id: SourceId,
}

impl core::fmt::Display for PciAddress {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let devfn = self.source_id.devfn();
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{}",
            self.segment,
            self.source_id.bus(),
            devfn >> 3,
            devfn & 7
        )
    }
}

/// The requester id a device's DMA carries when it reaches the remapping hardware.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DmaAlias {
    /// Remapped: the unit looks the context entry up with this id (call
    /// `Unit::translate` with it).
    Remapped(PciAddress),
    /// The device's host bridge bypasses the IOMMU: its DMA addresses are guest-physical
    /// (1:1). The VMM does not call `Unit::translate` for it; no context entry applies.
    Bypass,
}

impl DmaAlias {
    /// The requester id, when remapped.
    pub const fn source_id(self) -> Option<SourceId> {
        match self {
            Self::Remapped(address) => Some(address.source_id),
            Self::Bypass => None,
        }
    }
}

/// One (device, function) step of a path from a root bus down to a device (the DMAR
/// device-scope path, VT-d §8.3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PathEntry {
    /// Device number, 0..=31.
    pub device: u8,
    /// Function number, 0..=7.
    pub function: u8,
}

impl PathEntry {
    /// The device and function of `source_id`.
    pub const fn of(source_id: SourceId) -> Self {
        Self {
            device: source_id.devfn() >> 3,
            function: source_id.devfn() & 7,
        }
    }
}

/// Longest path a DMAR device scope can hold: its length is a byte, 6 + 2 per entry.
pub const MAX_PATH_ENTRIES: usize = (255 - 6) / 2;

/// How to reach a function from its host bridge's root bus: the start bus and the
/// (device, function) of every bridge on the way, then of the function itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DevicePath {
    /// PCI segment group.
    pub segment: u16,
    /// The host bridge's root bus.
    pub start_bus: u8,
    /// From the bridge on the root bus down to the function.
    pub entries: Vec<PathEntry, MAX_PATH_ENTRIES>,
}

/// A node, found: its host bridge and own address.
#[derive(Clone, Copy, Debug)]
struct Located {
    host: NodeId,
    bridge: HostBridge,
    address: PciAddress,
}

/// A PCI topology of at most `N` nodes.
#[derive(Clone, Debug)]
pub struct Topology<const N: usize> {
    nodes: Vec<Node, N>,
}

impl<const N: usize> Default for Topology<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Topology<N> {
    /// The most nodes a topology can hold: `N`, and no more than [`NodeId`] can number.
    pub const CAPACITY: usize = if N < u16::MAX as usize + 1 {
        N
    } else {
        u16::MAX as usize + 1
    };

    /// An empty topology.
    pub const fn new() -> Self {
        Self { nodes: Vec::new() }
    }

    /// A topology of `nodes`, node `i` having id `NodeId(i)`. Parents may come after
    /// their children in the slice. Checks every node (O(n²) in the node count).
    pub fn from_nodes(nodes: &[Node]) -> Result<Self, TopologyError> {
        let mut topology = Self::new();
        for node in nodes {
            topology.push_unchecked(*node)?;
        }
        for index in 0..topology.nodes.len() {
            topology.check(index)?;
        }
        Ok(topology)
    }

    /// Add `node` (its parent must already be there) and return its id; on error the
    /// topology is unchanged.
    pub fn push(&mut self, node: Node) -> Result<NodeId, TopologyError> {
        let id = self.push_unchecked(node)?;
        if let Err(e) = self.check(id.index()) {
            self.nodes.pop();
            return Err(e);
        }
        Ok(id)
    }

    fn push_unchecked(&mut self, node: Node) -> Result<NodeId, TopologyError> {
        let capacity = Self::CAPACITY;
        let index = self.nodes.len();
        if index >= capacity {
            return Err(TopologyError::CapacityExceeded { capacity });
        }
        let id =
            NodeId(u16::try_from(index).map_err(|_| TopologyError::CapacityExceeded { capacity })?);
        self.nodes
            .push(node)
            .map_err(|_| TopologyError::CapacityExceeded { capacity })?;
        Ok(id)
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The node `id`.
    pub fn node(&self, id: NodeId) -> Option<&Node> {
        self.nodes.get(id.index())
    }

    /// Every node with its id.
    pub fn nodes(&self) -> impl Iterator<Item = (NodeId, &Node)> + '_ {
        // The capacity keeps every index inside u16.
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, node)| (NodeId(i as u16), node))
    }

    /// The nodes whose parent is `id`.
    pub fn children(&self, id: NodeId) -> impl Iterator<Item = NodeId> + '_ {
        self.nodes()
            .filter(move |(_, node)| node.parent() == Some(id))
            .map(|(child, _)| child)
    }

    /// The host bridge above `id` (itself for a host bridge).
    pub fn host_bridge_of(&self, id: NodeId) -> Result<NodeId, TopologyError> {
        match self.node(id) {
            None => Err(TopologyError::UnknownNode(id)),
            Some(Node::HostBridge(_)) => Ok(id),
            Some(_) => Ok(self.locate(id.index())?.host),
        }
    }

    /// Whether `id` is under a host bridge that bypasses the IOMMU (or is one).
    pub fn is_bypassed(&self, id: NodeId) -> Result<bool, TopologyError> {
        match self.node(self.host_bridge_of(id)?) {
            Some(Node::HostBridge(h)) => Ok(h.bypass_iommu),
            _ => Err(TopologyError::UnknownNode(id)),
        }
    }

    /// The segment and own requester id of the function `id`.
    pub fn address(&self, id: NodeId) -> Result<PciAddress, TopologyError> {
        self.node(id).ok_or(TopologyError::UnknownNode(id))?;
        Ok(self.locate(id.index())?.address)
    }

    /// The requester id DMA from the function `id` carries at the remapping hardware.
    pub fn dma_alias(&self, id: NodeId) -> Result<DmaAlias, TopologyError> {
        self.node(id).ok_or(TopologyError::UnknownNode(id))?;
        let located = self.locate(id.index())?;
        if located.bridge.bypass_iommu {
            return Ok(DmaAlias::Bypass);
        }
        let mut alias = located.address.source_id;
        let mut current = id.index();
        for _ in 0..self.nodes.len() {
            let Some(parent) = self.nodes[current].parent() else {
                break;
            };
            match self.nodes.get(parent.index()) {
                Some(Node::Bridge(b)) => {
                    match b.kind {
                        BridgeKind::PcieToPci => alias = SourceId::new(b.secondary_bus, 0, 0),
                        BridgeKind::PciToPci => {
                            alias = self.locate(parent.index())?.address.source_id
                        }
                        BridgeKind::RootPort | BridgeKind::SwitchPort => {}
                    }
                    current = parent.index();
                }
                _ => break,
            }
        }
        Ok(DmaAlias::Remapped(PciAddress {
            segment: located.address.segment,
            source_id: alias,
        }))
    }

    /// The functions (bridges included) whose DMA carries the same alias as `id`'s, `id`
    /// among them, in node order. The remapping hardware cannot tell them apart: they
    /// share one context entry, so one domain and one address space. For a bypassed
    /// device these are all bypassed devices: they share the guest-physical space.
    pub fn devices_sharing_address_space(
        &self,
        id: NodeId,
    ) -> Result<SharingAddressSpace<'_, N>, TopologyError> {
        let alias = self.dma_alias(id)?;
        Ok(SharingAddressSpace {
            topology: self,
            alias,
            next: 0,
        })
    }

    /// The path from `id`'s host bridge's root bus down to the function `id`.
    pub fn path(&self, id: NodeId) -> Result<DevicePath, TopologyError> {
        self.node(id).ok_or(TopologyError::UnknownNode(id))?;
        let located = self.locate(id.index())?;
        let mut entries: Vec<PathEntry, MAX_PATH_ENTRIES> = Vec::new();
        let mut current = id.index();
        for _ in 0..self.nodes.len() {
            let node = &self.nodes[current];
            let (Some((device, function)), Some(parent)) = (node.device_function(), node.parent())
            else {
                break;
            };
            entries
                .push(PathEntry { device, function })
                .map_err(|_| TopologyError::PathTooLong(id))?;
            current = parent.index();
        }
        entries.reverse();
        Ok(DevicePath {
            segment: located.bridge.segment,
            start_bus: located.bridge.first_bus,
            entries,
        })
    }

    /// Walk up from `index` to its host bridge; the node's segment and address.
    fn locate(&self, index: usize) -> Result<Located, TopologyError> {
        let node = self.nodes[index];
        let id = NodeId(index as u16);
        let Some((device, function)) = node.device_function() else {
            return Err(TopologyError::NotAFunction(id));
        };
        let bus = self.secondary_bus(id, node.parent())?;
        let mut current = index;
        for _ in 0..=self.nodes.len() {
            let Some(parent) = self.nodes[current].parent() else {
                return Err(TopologyError::NotAFunction(id));
            };
            match self.nodes.get(parent.index()) {
                None => {
                    return Err(TopologyError::UnknownParent {
                        node: NodeId(current as u16),
                        parent,
                    })
                }
                Some(Node::Endpoint(_)) => {
                    return Err(TopologyError::ParentNotABridge {
                        node: NodeId(current as u16),
                        parent,
                    })
                }
                Some(Node::HostBridge(bridge)) => {
                    return Ok(Located {
                        host: parent,
                        bridge: *bridge,
                        address: PciAddress {
                            segment: bridge.segment,
                            source_id: SourceId::new(bus, device, function),
                        },
                    })
                }
                Some(Node::Bridge(_)) => current = parent.index(),
            }
        }
        Err(TopologyError::Cycle { node: id })
    }

    /// The bus below `parent` (where a child of it sits).
    fn secondary_bus(&self, node: NodeId, parent: Option<NodeId>) -> Result<u8, TopologyError> {
        let Some(parent) = parent else {
            return Err(TopologyError::NotAFunction(node));
        };
        match self.nodes.get(parent.index()) {
            None => Err(TopologyError::UnknownParent { node, parent }),
            Some(Node::HostBridge(h)) => Ok(h.first_bus),
            Some(Node::Bridge(b)) => Ok(b.secondary_bus),
            Some(Node::Endpoint(_)) => Err(TopologyError::ParentNotABridge { node, parent }),
        }
    }

    /// Check node `index` against the rest.
    fn check(&self, index: usize) -> Result<(), TopologyError> {
        let id = NodeId(index as u16);
        match self.nodes[index] {
            Node::HostBridge(h) => {
                if h.first_bus > h.last_bus {
                    return Err(TopologyError::HostBridgeBuses { node: id });
                }
                for (other, node) in self.nodes() {
                    if let Node::HostBridge(o) = node {
                        if other != id
                            && o.segment == h.segment
                            && o.first_bus <= h.last_bus
                            && h.first_bus <= o.last_bus
                        {
                            return Err(TopologyError::OverlappingHostBridges { node: id, other });
                        }
                    }
                }
                Ok(())
            }
            node => {
                let Some((device, function)) = node.device_function() else {
                    return Ok(());
                };
                if device > 31 || function > 7 {
                    return Err(TopologyError::DeviceFunction { node: id });
                }
                let here = self.locate(index)?;
                if let Node::Bridge(b) = node {
                    let bus = b.secondary_bus;
                    if bus <= here.address.source_id.bus() || bus > here.bridge.last_bus {
                        return Err(TopologyError::BusOutOfRange { node: id, bus });
                    }
                    self.check_bus_unique(id, here.bridge.segment, bus)?;
                }
                for (other, _) in self
                    .nodes()
                    .filter(|(other, n)| *other != id && !matches!(n, Node::HostBridge(_)))
                {
                    // Nodes that do not locate are reported when they are checked.
                    if let Ok(there) = self.locate(other.index()) {
                        if there.address == here.address {
                            return Err(TopologyError::DuplicateFunction { node: id, other });
                        }
                    }
                }
                Ok(())
            }
        }
    }

    fn check_bus_unique(&self, id: NodeId, segment: u16, bus: u8) -> Result<(), TopologyError> {
        for (other, node) in self.nodes() {
            if other == id {
                continue;
            }
            let clash = match node {
                Node::HostBridge(h) => h.segment == segment && h.first_bus == bus,
                Node::Bridge(b) => {
                    b.secondary_bus == bus
                        && self
                            .locate(other.index())
                            .is_ok_and(|there| there.bridge.segment == segment)
                }
                Node::Endpoint(_) => false,
            };
            if clash {
                return Err(TopologyError::DuplicateBus {
                    node: id,
                    other,
                    bus,
                });
            }
        }
        Ok(())
    }
}

/// The functions sharing one alias: see [`Topology::devices_sharing_address_space`].
#[derive(Clone, Debug)]
pub struct SharingAddressSpace<'t, const N: usize> {
    topology: &'t Topology<N>,
    alias: DmaAlias,
    next: usize,
}

impl<const N: usize> Iterator for SharingAddressSpace<'_, N> {
    type Item = NodeId;

    fn next(&mut self) -> Option<NodeId> {
        while self.next < self.topology.nodes.len() {
            let id = NodeId(self.next as u16);
            self.next += 1;
            if self.topology.dma_alias(id) == Ok(self.alias) {
                return Some(id);
            }
        }
        None
    }
}
