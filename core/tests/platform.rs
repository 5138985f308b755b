//! Platform description: requester-id aliasing over a PCI topology, the DMAR table built
//! from it (parsed back here), and the pre-boot configuration check.

use viommu::platform::check::{GuestFacts, Remedy, Warning, X2apicBlocker};
use viommu::platform::dmar::{
    self, AcpiTableIds, AtsReport, DeviceScope, DmarFlags, Drhd, PathEntry, PlatformDevice,
    ReservedRegion, Rmrr, ScopeType, StructureType,
};
use viommu::platform::topology::{BridgeKind, EndpointKind};
use viommu::platform::{
    build_dmar, check, DmaAlias, DmarConfig, DmarError, DmarWriter, Node, NodeId, PciAddress,
    Topology, TopologyError,
};
use viommu::testing::{expect_fault, expect_mapping, perm, ContextSpec, GuestDriver, GuestTables};
use viommu::testing::{RecordingHost, TestMemory};
use viommu::{Config, DmaRequest, FaultReason, SourceId, Unit};

// ---------------------------------------------------------------------------------------
// A topology with every kind of node.

const HOST: NodeId = NodeId(0);
const ROOT_PORT: NodeId = NodeId(1);
const NVME: NodeId = NodeId(2);
const PCIE_PCI: NodeId = NodeId(3);
const LEGACY_F0: NodeId = NodeId(4);
const LEGACY_F1: NodeId = NodeId(5);
const PCI_BRIDGE: NodeId = NodeId(6);
const BEHIND_PCI_BRIDGE: NodeId = NodeId(7);
const ROOT_PORT_2: NodeId = NodeId(8);
const NESTED_PCIE_PCI: NodeId = NodeId(9);
const NESTED_PCI_BRIDGE: NodeId = NodeId(10);
const NESTED_DEVICE: NodeId = NodeId(11);
const PXB: NodeId = NodeId(12);
const PXB_NIC: NodeId = NodeId(13);
const PXB_ROOT_PORT: NodeId = NodeId(14);
const PXB_DISK: NodeId = NodeId(15);

/// The remapped part: host bridge 0 with buses 0..=0x7F.
fn remapped_nodes() -> [Node; 12] {
    [
        Node::host_bridge(0, 0x00, 0x7F),
        Node::root_port(HOST, 2, 0, 1),
        Node::pcie_endpoint(ROOT_PORT, 0, 0),
        Node::pcie_to_pci_bridge(HOST, 3, 0, 2),
        Node::pci_endpoint(PCIE_PCI, 1, 0),
        Node::pci_endpoint(PCIE_PCI, 1, 1),
        Node::pci_bridge(HOST, 4, 0, 3),
        Node::pci_endpoint(PCI_BRIDGE, 5, 0),
        Node::root_port(HOST, 5, 0, 4),
        Node::pcie_to_pci_bridge(ROOT_PORT_2, 0, 0, 5),
        Node::pci_bridge(NESTED_PCIE_PCI, 2, 0, 6),
        Node::pci_endpoint(NESTED_PCI_BRIDGE, 7, 0),
    ]
}

/// Plus a `pxb` host bridge with buses 0x80..=0xFF that bypasses the IOMMU.
fn full_nodes(bypass: bool) -> Vec<Node> {
    let mut nodes = remapped_nodes().to_vec();
    nodes.push(if bypass {
        Node::bypassed_host_bridge(0, 0x80, 0xFF)
    } else {
        Node::host_bridge(0, 0x80, 0xFF)
    });
    nodes.push(Node::pcie_endpoint(PXB, 1, 0));
    nodes.push(Node::root_port(PXB, 2, 0, 0x81));
    nodes.push(Node::pcie_endpoint(PXB_ROOT_PORT, 0, 0));
    nodes
}

fn topology(bypass: bool) -> Topology<32> {
    Topology::from_nodes(&full_nodes(bypass)).expect("valid topology")
}

fn remapped(bus: u8, device: u8, function: u8) -> DmaAlias {
    DmaAlias::Remapped(PciAddress {
        segment: 0,
        source_id: SourceId::new(bus, device, function),
    })
}

fn group(t: &Topology<32>, node: NodeId) -> Vec<NodeId> {
    t.devices_sharing_address_space(node).unwrap().collect()
}

// ---------------------------------------------------------------------------------------
// Aliasing.

#[test]
fn pcie_endpoints_alias_to_themselves() {
    let t = topology(true);
    assert_eq!(t.dma_alias(NVME), Ok(remapped(1, 0, 0)));
    assert_eq!(t.address(NVME).unwrap().source_id, SourceId::new(1, 0, 0));
    // Root ports are requesters too (hotplug and AER MSIs), with their own id.
    assert_eq!(t.dma_alias(ROOT_PORT), Ok(remapped(0, 2, 0)));
    assert_eq!(group(&t, NVME), [NVME]);
}

#[test]
fn functions_behind_a_pcie_to_pci_bridge_share_secondary_bus_device_0() {
    let t = topology(true);
    assert_eq!(
        t.address(LEGACY_F0).unwrap().source_id,
        SourceId::new(2, 1, 0)
    );
    assert_eq!(
        t.address(LEGACY_F1).unwrap().source_id,
        SourceId::new(2, 1, 1)
    );
    // Both take the bridge's (secondary bus, 00.0), not their own ids or the bridge's.
    assert_eq!(t.dma_alias(LEGACY_F0), Ok(remapped(2, 0, 0)));
    assert_eq!(t.dma_alias(LEGACY_F1), Ok(remapped(2, 0, 0)));
    assert_eq!(t.dma_alias(PCIE_PCI), Ok(remapped(0, 3, 0)));
    // So they share one context entry; the bridge itself is not in their group.
    assert_eq!(group(&t, LEGACY_F0), [LEGACY_F0, LEGACY_F1]);
    assert_eq!(group(&t, LEGACY_F1), [LEGACY_F0, LEGACY_F1]);
}

#[test]
fn a_device_behind_a_conventional_bridge_aliases_to_the_bridge() {
    let t = topology(true);
    assert_eq!(
        t.address(BEHIND_PCI_BRIDGE).unwrap().source_id,
        SourceId::new(3, 5, 0)
    );
    assert_eq!(t.dma_alias(BEHIND_PCI_BRIDGE), Ok(remapped(0, 4, 0)));
    // The bridge's own requests and the device's cannot be told apart.
    assert_eq!(
        group(&t, BEHIND_PCI_BRIDGE),
        [PCI_BRIDGE, BEHIND_PCI_BRIDGE]
    );
}

#[test]
fn nested_bridges_the_topmost_pcie_to_pci_bridge_wins() {
    let t = topology(true);
    // root port 00:05.0 → PCIe-to-PCI 04:00.0 (secondary 5) → PCI bridge 05:02.0
    // (secondary 6) → device 06:07.0.
    assert_eq!(
        t.address(NESTED_DEVICE).unwrap().source_id,
        SourceId::new(6, 7, 0)
    );
    assert_eq!(t.dma_alias(NESTED_DEVICE), Ok(remapped(5, 0, 0)));
    assert_eq!(t.dma_alias(NESTED_PCI_BRIDGE), Ok(remapped(5, 0, 0)));
    assert_eq!(group(&t, NESTED_DEVICE), [NESTED_PCI_BRIDGE, NESTED_DEVICE]);
}

#[test]
fn nested_conventional_bridges_the_topmost_wins() {
    let t: Topology<8> = Topology::from_nodes(&[
        Node::host_bridge(0, 0, 0xFF),
        Node::pci_bridge(NodeId(0), 0x1E, 0, 1),
        Node::pci_bridge(NodeId(1), 3, 0, 2),
        Node::pci_endpoint(NodeId(2), 4, 2),
        // A PCIe-to-PCI bridge below a conventional bridge: the conventional one is on top.
        Node::pcie_to_pci_bridge(NodeId(1), 6, 0, 3),
        Node::pci_endpoint(NodeId(4), 0, 0),
    ])
    .unwrap();
    assert_eq!(t.dma_alias(NodeId(3)), Ok(remapped(0, 0x1E, 0)));
    assert_eq!(t.dma_alias(NodeId(5)), Ok(remapped(0, 0x1E, 0)));
    assert_eq!(
        t.devices_sharing_address_space(NodeId(3))
            .unwrap()
            .collect::<Vec<_>>(),
        [NodeId(1), NodeId(2), NodeId(3), NodeId(4), NodeId(5)]
    );
}

#[test]
fn devices_on_a_bypassed_host_bridge_get_bypass() {
    let t = topology(true);
    for node in [PXB_NIC, PXB_ROOT_PORT, PXB_DISK] {
        assert_eq!(t.dma_alias(node), Ok(DmaAlias::Bypass), "{node:?}");
        assert!(t.is_bypassed(node).unwrap());
        assert_eq!(t.dma_alias(node).unwrap().source_id(), None);
    }
    assert!(!t.is_bypassed(NVME).unwrap());
    assert_eq!(
        t.address(PXB_DISK).unwrap().source_id,
        SourceId::new(0x81, 0, 0)
    );
    // Not bypassed: the same devices are remapped with their own ids.
    let t = topology(false);
    assert_eq!(t.dma_alias(PXB_DISK), Ok(remapped(0x81, 0, 0)));
}

#[test]
fn kinds_paths_children_and_host_bridges() {
    let t = topology(true);
    assert!(matches!(
        t.node(NESTED_PCIE_PCI),
        Some(Node::Bridge(b)) if b.kind == BridgeKind::PcieToPci
    ));
    assert!(matches!(
        t.node(LEGACY_F0),
        Some(Node::Endpoint(e)) if e.kind == EndpointKind::Conventional
    ));
    assert_eq!(t.host_bridge_of(NESTED_DEVICE), Ok(HOST));
    assert_eq!(t.host_bridge_of(PXB_DISK), Ok(PXB));
    assert_eq!(
        t.children(HOST).collect::<Vec<_>>(),
        [ROOT_PORT, PCIE_PCI, PCI_BRIDGE, ROOT_PORT_2]
    );
    let path = t.path(NESTED_DEVICE).unwrap();
    assert_eq!((path.segment, path.start_bus), (0, 0));
    let pairs: Vec<(u8, u8)> = path
        .entries
        .iter()
        .map(|e| (e.device, e.function))
        .collect();
    assert_eq!(pairs, [(5, 0), (0, 0), (2, 0), (7, 0)]);
    let path = t.path(PXB_DISK).unwrap();
    assert_eq!(path.start_bus, 0x80);
    assert_eq!(path.entries.len(), 2);
    // A host bridge is not a function.
    assert_eq!(t.dma_alias(HOST), Err(TopologyError::NotAFunction(HOST)));
    assert_eq!(t.path(PXB), Err(TopologyError::NotAFunction(PXB)));
    assert_eq!(
        t.dma_alias(NodeId(99)),
        Err(TopologyError::UnknownNode(NodeId(99)))
    );
}

// ---------------------------------------------------------------------------------------
// Validation.

#[test]
fn cycles_are_errors_not_hangs() {
    let nodes = [
        Node::host_bridge(0, 0, 0xFF),
        Node::pci_bridge(NodeId(2), 1, 0, 1),
        Node::pci_bridge(NodeId(1), 2, 0, 2),
        Node::pci_endpoint(NodeId(2), 0, 0),
    ];
    assert!(matches!(
        Topology::<8>::from_nodes(&nodes),
        Err(TopologyError::Cycle { .. })
    ));
    // A node that is its own parent.
    let nodes = [
        Node::host_bridge(0, 0, 0xFF),
        Node::pci_bridge(NodeId(1), 1, 0, 1),
    ];
    assert_eq!(
        Topology::<8>::from_nodes(&nodes).unwrap_err(),
        TopologyError::Cycle { node: NodeId(1) }
    );
    // push cannot make one: the parent must already be there.
    let mut t: Topology<8> = Topology::new();
    t.push(Node::host_bridge(0, 0, 0xFF)).unwrap();
    assert_eq!(
        t.push(Node::pci_bridge(NodeId(1), 1, 0, 1)),
        Err(TopologyError::Cycle { node: NodeId(1) })
    );
    assert_eq!(t.len(), 1, "a rejected push leaves the topology unchanged");
}

#[test]
fn unknown_parents_are_errors() {
    let nodes = [
        Node::host_bridge(0, 0, 0xFF),
        Node::pcie_endpoint(NodeId(7), 1, 0),
    ];
    assert_eq!(
        Topology::<8>::from_nodes(&nodes).unwrap_err(),
        TopologyError::UnknownParent {
            node: NodeId(1),
            parent: NodeId(7)
        }
    );
    let nodes = [
        Node::host_bridge(0, 0, 0xFF),
        Node::pcie_endpoint(NodeId(0), 1, 0),
        Node::pcie_endpoint(NodeId(1), 0, 0),
    ];
    assert_eq!(
        Topology::<8>::from_nodes(&nodes).unwrap_err(),
        TopologyError::ParentNotABridge {
            node: NodeId(2),
            parent: NodeId(1)
        }
    );
}

#[test]
fn capacity_is_an_error() {
    let nodes = remapped_nodes();
    assert_eq!(
        Topology::<4>::from_nodes(&nodes).unwrap_err(),
        TopologyError::CapacityExceeded { capacity: 4 }
    );
    let mut t: Topology<2> = Topology::new();
    t.push(Node::host_bridge(0, 0, 0xFF)).unwrap();
    t.push(Node::pcie_endpoint(HOST, 0, 0)).unwrap();
    assert_eq!(
        t.push(Node::pcie_endpoint(HOST, 1, 0)),
        Err(TopologyError::CapacityExceeded { capacity: 2 })
    );
    assert_eq!(t.len(), 2);
}

#[test]
fn buses_and_addresses_are_checked() {
    let host = Node::host_bridge(0, 0x10, 0x1F);
    let cases: [(&[Node], TopologyError); 7] = [
        (
            &[host, Node::root_port(HOST, 1, 0, 0x20)],
            TopologyError::BusOutOfRange {
                node: NodeId(1),
                bus: 0x20,
            },
        ),
        (
            &[host, Node::root_port(HOST, 1, 0, 0x10)],
            TopologyError::BusOutOfRange {
                node: NodeId(1),
                bus: 0x10,
            },
        ),
        (
            &[
                host,
                Node::root_port(HOST, 1, 0, 0x11),
                Node::root_port(HOST, 2, 0, 0x11),
            ],
            TopologyError::DuplicateBus {
                node: NodeId(1),
                other: NodeId(2),
                bus: 0x11,
            },
        ),
        (
            &[
                host,
                Node::pcie_endpoint(HOST, 1, 0),
                Node::pci_endpoint(HOST, 1, 0),
            ],
            TopologyError::DuplicateFunction {
                node: NodeId(1),
                other: NodeId(2),
            },
        ),
        (
            &[host, Node::pcie_endpoint(HOST, 32, 0)],
            TopologyError::DeviceFunction { node: NodeId(1) },
        ),
        (
            &[Node::host_bridge(0, 0x20, 0x1F)],
            TopologyError::HostBridgeBuses { node: NodeId(0) },
        ),
        (
            &[host, Node::host_bridge(0, 0x1F, 0x30)],
            TopologyError::OverlappingHostBridges {
                node: NodeId(0),
                other: NodeId(1),
            },
        ),
    ];
    for (nodes, error) in cases {
        assert_eq!(Topology::<8>::from_nodes(nodes).unwrap_err(), error);
    }
    // Other segments may reuse bus numbers.
    Topology::<8>::from_nodes(&[host, Node::host_bridge(1, 0x10, 0x1F)]).unwrap();
}

// ---------------------------------------------------------------------------------------
// Translation through the alias.

const MEM: usize = 32 << 20;

#[test]
fn both_functions_translate_through_the_alias_context_entry() {
    let t = topology(true);
    let mem = TestMemory::new(MEM);
    let host = RecordingHost::new();
    let unit = Unit::new(Config::default(), &mem, &host).unwrap();
    let mut tables = GuestTables::new(&mem);
    let table = tables.new_domain_table();
    tables.map(table, 4, 0x7000, 0x40_0000, 12, perm::RW);
    // The guest programs the context entry of the alias, as Linux does for every DMA
    // alias of a device (pci_for_each_dma_alias).
    let alias = t.dma_alias(LEGACY_F0).unwrap().source_id().unwrap();
    tables.set_context(alias.0, ContextSpec::translated(5, table));
    GuestDriver::new(&unit, &mem).boot(tables.root_table);

    // The VMM translates each function's DMA with its alias.
    let mut mappings = Vec::new();
    for function in [LEGACY_F0, LEGACY_F1] {
        let sid = t.dma_alias(function).unwrap().source_id().unwrap();
        let m = expect_mapping(&unit, DmaRequest::write(sid, 0x7123));
        assert_eq!(m.translate(0x7123), 0x40_0123);
        assert_eq!(m.domain_id, Some(5));
        mappings.push(m);
    }
    assert_eq!(mappings[0], mappings[1]);

    // The functions' own ids have no context entry: translating with them would fault.
    let own = t.address(LEGACY_F1).unwrap().source_id;
    assert_eq!(
        expect_fault(&unit, DmaRequest::write(own, 0x7123)).reason,
        FaultReason::CONTEXT_ENTRY_NOT_PRESENT
    );
}

#[test]
fn bypassed_devices_are_not_translated_by_the_unit() {
    let t = topology(true);
    let mem = TestMemory::new(MEM);
    let host = RecordingHost::new();
    let unit = Unit::new(Config::default(), &mem, &host).unwrap();
    let mut tables = GuestTables::new(&mem);
    let table = tables.new_domain_table();
    tables.set_context(
        t.address(NVME).unwrap().source_id.0,
        ContextSpec::translated(1, table),
    );
    GuestDriver::new(&unit, &mem).boot(tables.root_table);

    // The VMM does not call translate for a Bypass device: its DMA address is the
    // guest-physical address (1:1).
    let dma = |node: NodeId, address: u64| -> Option<u64> {
        match t.dma_alias(node).unwrap() {
            DmaAlias::Bypass => Some(address),
            DmaAlias::Remapped(a) => unit
                .translate(&DmaRequest::read(a.source_id, address))
                .ok()
                .and_then(|tr| match tr {
                    viommu::Translation::Mapped(m) => Some(m.translate(address)),
                    viommu::Translation::Interrupt => None,
                }),
        }
    };
    assert_eq!(dma(PXB_DISK, 0x1234_5678), Some(0x1234_5678));
    assert_eq!(dma(PXB_NIC, 0xABC0), Some(0xABC0));
    // Remapped device with nothing mapped: blocked.
    assert_eq!(dma(NVME, 0x1234_5678), None);
    // The guest never programs bypassed devices (they are in no DRHD scope), so asking
    // the unit would fault: that is why the VMM must not.
    let own = t.address(PXB_DISK).unwrap().source_id;
    assert_eq!(
        expect_fault(&unit, DmaRequest::read(own, 0x1234_5678)).reason,
        FaultReason::ROOT_ENTRY_NOT_PRESENT
    );
}

// ---------------------------------------------------------------------------------------
// The DMAR table, parsed back.

#[derive(Debug, PartialEq, Eq)]
struct Scope {
    kind: u8,
    length: u8,
    enumeration_id: u8,
    start_bus: u8,
    path: Vec<(u8, u8)>,
}

#[derive(Debug)]
struct Structure {
    kind: u16,
    length: u16,
    /// The bytes after type and length, before the scopes.
    fixed: Vec<u8>,
    scopes: Vec<Scope>,
}

#[derive(Debug)]
struct Table {
    length: u32,
    revision: u8,
    oem_id: [u8; 6],
    oem_table_id: [u8; 8],
    oem_revision: u32,
    creator_id: [u8; 4],
    creator_revision: u32,
    haw_minus_1: u8,
    flags: u8,
    structures: Vec<Structure>,
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes(b[o..o + 2].try_into().unwrap())
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

/// A DMAR parser written from the spec's layout, independently of the writer.
fn parse(bytes: &[u8]) -> Table {
    assert_eq!(&bytes[0..4], b"DMAR");
    let length = u32_at(bytes, 4);
    assert_eq!(length as usize, bytes.len());
    let sum = bytes.iter().fold(0u8, |s, b| s.wrapping_add(*b));
    assert_eq!(sum, 0, "checksum: all bytes sum to 0 mod 256");
    assert_eq!(&bytes[38..48], &[0; 10], "reserved");
    let mut structures = Vec::new();
    let mut o = 48;
    while o < bytes.len() {
        let kind = u16_at(bytes, o);
        let slen = u16_at(bytes, o + 2);
        let end = o + usize::from(slen);
        assert!(end <= bytes.len(), "structure inside the table");
        let fixed_len = match kind {
            0 => 16,
            1 => 24,
            2 | 5 => 8,
            other => panic!("unexpected structure type {other}"),
        };
        let fixed = bytes[o + 4..o + fixed_len].to_vec();
        let mut scopes = Vec::new();
        let mut s = o + fixed_len;
        while s < end {
            let kind = bytes[s];
            let length = bytes[s + 1];
            assert_eq!(&bytes[s + 2..s + 4], &[0, 0], "scope reserved bytes");
            assert!(length >= 8 && length % 2 == 0);
            let path = bytes[s + 6..s + usize::from(length)]
                .chunks(2)
                .map(|p| (p[0], p[1]))
                .collect();
            scopes.push(Scope {
                kind,
                length,
                enumeration_id: bytes[s + 4],
                start_bus: bytes[s + 5],
                path,
            });
            s += usize::from(length);
        }
        assert_eq!(s, end, "scopes fill the structure exactly");
        structures.push(Structure {
            kind,
            length: slen,
            fixed,
            scopes,
        });
        o = end;
    }
    Table {
        length,
        revision: bytes[8],
        oem_id: bytes[10..16].try_into().unwrap(),
        oem_table_id: bytes[16..24].try_into().unwrap(),
        oem_revision: u32_at(bytes, 24),
        creator_id: bytes[28..32].try_into().unwrap(),
        creator_revision: u32_at(bytes, 32),
        haw_minus_1: bytes[36],
        flags: bytes[37],
        structures,
    }
}

const REGISTER_BASE: u64 = 0xFED9_0000;
const IOAPIC: PlatformDevice = PlatformDevice {
    id: 0,
    source_id: SourceId::new(0xFF, 0, 0),
};
const HPET: PlatformDevice = PlatformDevice {
    id: 0,
    source_id: SourceId::new(0xFF, 0x1F, 7),
};

fn scope(kind: u8, enumeration_id: u8, start_bus: u8, path: &[(u8, u8)]) -> Scope {
    Scope {
        kind,
        length: 6 + 2 * path.len() as u8,
        enumeration_id,
        start_bus,
        path: path.to_vec(),
    }
}

fn build(t: &Topology<32>, config: &DmarConfig<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; 4096];
    let len = build_dmar(&mut buf, t, config).expect("table fits");
    buf.truncate(len);
    buf
}

#[test]
fn dmar_with_nothing_bypassed_includes_all_pci() {
    let t = topology(false);
    let config = Config {
        device_tlb: true,
        ..Config::default()
    };
    let ioapics = [IOAPIC];
    let hpets = [HPET];
    let rmrr_devices = [NESTED_DEVICE, ROOT_PORT];
    let regions = [ReservedRegion {
        base: 0x000E_0000,
        limit: 0x000F_FFFF,
        devices: &rmrr_devices,
    }];
    let satc = [NVME];
    let dmar_config = DmarConfig {
        ioapics: &ioapics,
        hpets: &hpets,
        reserved_regions: &regions,
        satc_devices: &satc,
        satc_atc_required: true,
        ..DmarConfig::new(&config, REGISTER_BASE)
    };
    let bytes = build(&t, &dmar_config);
    let table = parse(&bytes);
    assert_eq!(table.length as usize, bytes.len());
    assert_eq!(table.revision, 1);
    let ids = AcpiTableIds::default();
    assert_eq!(
        (table.oem_id, table.oem_table_id, table.oem_revision),
        (ids.oem_id, ids.oem_table_id, ids.oem_revision)
    );
    assert_eq!(
        (table.creator_id, table.creator_revision),
        (ids.creator_id, ids.creator_revision)
    );
    assert_eq!(table.haw_minus_1, 47);
    assert_eq!(
        table.flags, 0b001,
        "INTR_REMAP; EIM is on so no x2APIC opt-out"
    );
    let kinds: Vec<u16> = table.structures.iter().map(|s| s.kind).collect();
    assert_eq!(kinds, [0, 1, 2, 5], "DRHD, RMRR, ATSR, SATC in type order");

    let drhd = &table.structures[0];
    assert_eq!(drhd.fixed[0], 1, "INCLUDE_PCI_ALL");
    assert_eq!(drhd.fixed[1], 0, "register set: 2^0 pages");
    assert_eq!(u16_at(&drhd.fixed, 2), 0, "segment");
    assert_eq!(u64_at(&drhd.fixed, 4), REGISTER_BASE);
    assert_eq!(
        drhd.scopes,
        [
            scope(3, 0, 0xFF, &[(0, 0)]),
            scope(4, 0, 0xFF, &[(0x1F, 7)])
        ],
        "only the IOAPIC and HPET are listed"
    );
    assert_eq!(drhd.length, 16 + 8 + 8);

    let rmrr = &table.structures[1];
    assert_eq!(&rmrr.fixed[0..2], &[0, 0], "reserved");
    assert_eq!(u16_at(&rmrr.fixed, 2), 0);
    assert_eq!(u64_at(&rmrr.fixed, 4), 0xE_0000);
    assert_eq!(u64_at(&rmrr.fixed, 12), 0xF_FFFF);
    assert_eq!(
        rmrr.scopes,
        [
            // root port 00:05.0 → PCIe-to-PCI (0.0) → PCI bridge (2.0) → device (7.0)
            scope(1, 0, 0, &[(5, 0), (0, 0), (2, 0), (7, 0)]),
            scope(2, 0, 0, &[(2, 0)]),
        ]
    );
    assert_eq!(rmrr.length, 24 + 14 + 8);

    let atsr = &table.structures[2];
    assert_eq!(atsr.fixed, [1, 0, 0, 0], "ALL_PORTS, segment 0");
    assert!(atsr.scopes.is_empty());
    assert_eq!(atsr.length, 8);

    let satc = &table.structures[3];
    assert_eq!(satc.fixed, [1, 0, 0, 0], "ATC_REQUIRED, segment 0");
    assert_eq!(satc.scopes, [scope(1, 0, 0, &[(2, 0), (0, 0)])]);
    assert_eq!(satc.length, 8 + 10);
}

#[test]
fn dmar_with_a_bypassed_host_bridge_lists_remapped_devices_explicitly() {
    let t = topology(true);
    let ioapics = [IOAPIC];
    let dmar_config = DmarConfig {
        ioapics: &ioapics,
        ..DmarConfig::new(&Config::default(), REGISTER_BASE)
    };
    let bytes = build(&t, &dmar_config);
    let table = parse(&bytes);
    assert_eq!(table.structures.len(), 1);
    let drhd = &table.structures[0];
    assert_eq!(drhd.kind, 0);
    assert_eq!(
        drhd.fixed[0], 0,
        "INCLUDE_PCI_ALL would cover the bypassed devices"
    );
    assert_eq!(
        drhd.scopes,
        [
            // Bridges below the remapped host bridge, each covering its sub-hierarchy.
            scope(2, 0, 0, &[(2, 0)]),
            scope(2, 0, 0, &[(3, 0)]),
            scope(2, 0, 0, &[(4, 0)]),
            scope(2, 0, 0, &[(5, 0)]),
            scope(3, 0, 0xFF, &[(0, 0)]),
        ]
    );
    // Nothing on buses 0x80..: the pxb's devices are in no DRHD scope.
    assert!(drhd.scopes.iter().all(|s| s.start_bus != 0x80));
    assert_eq!(usize::from(drhd.length), 16 + 4 * 8 + 8);

    // An endpoint directly on the root bus is listed as a PCI endpoint.
    let mut nodes = full_nodes(true);
    nodes.push(Node::pcie_endpoint(HOST, 0x1F, 3));
    let t: Topology<32> = Topology::from_nodes(&nodes).unwrap();
    let table = parse(&build(&t, &dmar_config));
    assert!(table.structures[0]
        .scopes
        .contains(&scope(1, 0, 0, &[(0x1F, 3)])));
}

#[test]
fn dmar_flags_and_ids_follow_the_configuration() {
    let t = topology(false);
    let config = Config {
        extended_interrupt_mode: false,
        host_address_width: 39,
        ..Config::default()
    };
    let dmar_config = DmarConfig {
        ids: AcpiTableIds {
            oem_id: *b"BOCHS ",
            oem_table_id: *b"BXPC    ",
            oem_revision: 7,
            creator_id: *b"BXPC",
            creator_revision: 9,
        },
        flags: DmarFlags {
            dma_control_platform_opt_in: true,
            ..DmarConfig::new(&config, REGISTER_BASE).flags
        },
        register_set_size: 1,
        ..DmarConfig::new(&config, REGISTER_BASE)
    };
    let table = parse(&build(&t, &dmar_config));
    assert_eq!(table.haw_minus_1, 38);
    assert_eq!(
        table.flags, 0b111,
        "INTR_REMAP | X2APIC_OPT_OUT | DMA_CTRL_PLATFORM_OPT_IN"
    );
    assert_eq!(&table.oem_id, b"BOCHS ");
    assert_eq!(&table.oem_table_id, b"BXPC    ");
    assert_eq!((table.oem_revision, table.creator_revision), (7, 9));
    assert_eq!(table.structures[0].fixed[1], 1, "register set of 2 pages");

    let config = Config {
        interrupt_remapping: false,
        extended_interrupt_mode: false,
        ..Config::default()
    };
    let table = parse(&build(&t, &DmarConfig::new(&config, REGISTER_BASE)));
    assert_eq!(table.flags, 0);
}

#[test]
fn dmar_into_a_short_buffer_reports_the_length_needed() {
    let t = topology(true);
    let ioapics = [IOAPIC];
    let dmar_config = DmarConfig {
        ioapics: &ioapics,
        ..DmarConfig::new(&Config::default(), REGISTER_BASE)
    };
    let full = build(&t, &dmar_config);
    for size in [0, 10, 48, full.len() - 1] {
        let mut buf = vec![0u8; size];
        assert_eq!(
            build_dmar(&mut buf, &t, &dmar_config),
            Err(DmarError::BufferTooSmall {
                needed: full.len(),
                available: size
            })
        );
    }
    let mut exact = vec![0u8; full.len()];
    assert_eq!(build_dmar(&mut exact, &t, &dmar_config), Ok(full.len()));
    assert_eq!(exact, full);
}

#[test]
fn dmar_writer_rejects_what_the_spec_forbids() {
    let mut buf = [0u8; 512];
    let ids = AcpiTableIds::default();
    let flags = DmarFlags::default();
    assert_eq!(
        DmarWriter::new(&mut buf, &ids, 0, flags).unwrap_err(),
        DmarError::HostAddressWidth(0)
    );
    let drhd = Drhd {
        include_pci_all: true,
        register_set_size: 0,
        segment: 0,
        register_base: REGISTER_BASE,
    };
    let path = [PathEntry {
        device: 1,
        function: 0,
    }];
    let endpoint = DeviceScope::endpoint(0, &path);

    let mut w = DmarWriter::new(&mut buf, &ids, 48, flags).unwrap();
    assert_eq!(w.scope(&endpoint), Err(DmarError::NoStructure));
    assert_eq!(
        w.begin_drhd(&Drhd {
            register_base: REGISTER_BASE + 0x10,
            ..drhd
        }),
        Err(DmarError::RegisterBaseMisaligned(REGISTER_BASE + 0x10))
    );
    assert_eq!(
        w.begin_drhd(&Drhd {
            register_set_size: 16,
            ..drhd
        }),
        Err(DmarError::RegisterSetSize(16))
    );
    w.begin_drhd(&drhd).unwrap();
    assert_eq!(
        w.scope(&endpoint),
        Err(DmarError::ScopeNotAllowed {
            structure: StructureType::DRHD,
            scope: ScopeType::PCI_ENDPOINT
        }),
        "INCLUDE_PCI_ALL lists no PCI devices"
    );
    assert_eq!(
        w.scope(&DeviceScope {
            scope_type: ScopeType::IOAPIC,
            enumeration_id: 2,
            start_bus: 0xF0,
            path: &[],
        }),
        Err(DmarError::EmptyPath)
    );
    assert_eq!(
        w.scope(&DeviceScope {
            scope_type: ScopeType::IOAPIC,
            enumeration_id: 2,
            start_bus: 0xF0,
            path: &[PathEntry {
                device: 32,
                function: 0
            }],
        }),
        Err(DmarError::PathEntry(PathEntry {
            device: 32,
            function: 0
        }))
    );
    for (base, limit) in [(0x1000, 0x1FFE), (0x1001, 0x1FFF), (0x2000, 0xFFF)] {
        assert_eq!(
            w.begin_rmrr(&Rmrr {
                segment: 0,
                base,
                limit
            }),
            Err(DmarError::RmrrRange { base, limit })
        );
    }
    w.begin_rmrr(&Rmrr {
        segment: 0,
        base: 0x1000,
        limit: 0x1FFF,
    })
    .unwrap();
    assert_eq!(
        w.platform_scope(ScopeType::IOAPIC, &IOAPIC),
        Err(DmarError::ScopeNotAllowed {
            structure: StructureType::RMRR,
            scope: ScopeType::IOAPIC
        })
    );
    w.scope(&endpoint).unwrap();
    assert_eq!(
        w.begin_drhd(&drhd),
        Err(DmarError::OutOfOrder {
            previous: StructureType::RMRR,
            next: StructureType::DRHD
        })
    );
    w.begin_atsr(&dmar::Atsr {
        all_ports: false,
        segment: 0,
    })
    .unwrap();
    assert!(matches!(
        w.scope(&endpoint),
        Err(DmarError::ScopeNotAllowed { .. })
    ));
    w.scope(&DeviceScope::sub_hierarchy(0, &path)).unwrap();
    let len = w.finish().unwrap();
    // The errors left nothing behind: header, DRHD, RMRR with one scope, ATSR with one.
    assert_eq!(len, 48 + 16 + (24 + 8) + (8 + 8));
    let table = parse(&buf[..len]);
    assert_eq!(table.structures[0].scopes, []);
    assert_eq!(table.structures[1].scopes, [scope(1, 0, 0, &[(1, 0)])]);
    assert_eq!(table.structures[2].scopes, [scope(2, 0, 0, &[(1, 0)])]);
}

#[test]
fn dmar_from_topology_errors() {
    let config = DmarConfig::new(&Config::default(), REGISTER_BASE);
    let mut buf = [0u8; 1024];
    // A remapped host bridge in a segment the unit does not cover.
    let t: Topology<4> =
        Topology::from_nodes(&[Node::host_bridge(0, 0, 0x7F), Node::host_bridge(1, 0, 0x7F)])
            .unwrap();
    assert_eq!(
        build_dmar(&mut buf, &t, &config),
        Err(DmarError::UncoveredSegment(1))
    );
    // ... is fine when it bypasses.
    let t: Topology<4> = Topology::from_nodes(&[
        Node::host_bridge(0, 0, 0x7F),
        Node::bypassed_host_bridge(1, 0, 0x7F),
    ])
    .unwrap();
    build_dmar(&mut buf, &t, &config).unwrap();

    let t = topology(true);
    let devices = [PXB_DISK];
    let regions = [ReservedRegion {
        base: 0,
        limit: 0xFFF,
        devices: &devices,
    }];
    let rmrr_config = DmarConfig {
        reserved_regions: &regions,
        ..config
    };
    assert_eq!(
        build_dmar(&mut buf, &t, &rmrr_config),
        Err(DmarError::DeviceBypassed(PXB_DISK))
    );
    let ports = [PCIE_PCI];
    let ats_config = DmarConfig {
        ats: Some(AtsReport::RootPorts(&ports)),
        ..config
    };
    assert_eq!(
        build_dmar(&mut buf, &t, &ats_config),
        Err(DmarError::WrongDeviceKind(PCIE_PCI))
    );
    let ports = [ROOT_PORT, ROOT_PORT_2];
    let ats_config = DmarConfig {
        ats: Some(AtsReport::RootPorts(&ports)),
        ..config
    };
    let len = build_dmar(&mut buf, &t, &ats_config).unwrap();
    let table = parse(&buf[..len]);
    assert_eq!(table.structures[1].kind, 2);
    assert_eq!(table.structures[1].fixed, [0, 0, 0, 0]);
    assert_eq!(
        table.structures[1].scopes,
        [scope(2, 0, 0, &[(2, 0)]), scope(2, 0, 0, &[(5, 0)])]
    );
}

// ---------------------------------------------------------------------------------------
// The configuration check.

#[test]
fn interrupt_remapping_with_bypassed_devices_is_reported() {
    let t = topology(true);
    let warnings = check(&Config::default(), &t, &GuestFacts::default()).unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let Warning::BypassedDevicesLoseMsi {
        host_bridges,
        devices,
    } = &warnings[0]
    else {
        panic!("unexpected {:?}", warnings[0]);
    };
    assert_eq!(host_bridges.as_slice(), [PXB]);
    let nodes: Vec<NodeId> = devices.iter().map(|d| d.node).collect();
    assert_eq!(nodes, [PXB_NIC, PXB_ROOT_PORT, PXB_DISK]);
    assert_eq!(devices[0].address.source_id, SourceId::new(0x80, 1, 0));
    assert_eq!(
        warnings[0].remedies(),
        [
            Remedy::StopBypassing,
            Remedy::DisableInterruptRemapping,
            Remedy::MoveBehindRemappedHostBridge
        ]
    );
    let text = warnings[0].to_string();
    for needle in [
        "0000:80:01.0",
        "0000:81:00.0",
        "MSI",
        "INTx",
        "bypass_iommu off",
        "interrupt remapping off",
    ] {
        assert!(text.contains(needle), "{needle:?} in {text}");
    }
}

#[test]
fn no_hazard_without_interrupt_remapping_or_without_bypass() {
    let no_ir = Config {
        interrupt_remapping: false,
        extended_interrupt_mode: false,
        ..Config::default()
    };
    assert!(check(&no_ir, &topology(true), &GuestFacts::default())
        .unwrap()
        .is_empty());
    assert!(
        check(&Config::default(), &topology(false), &GuestFacts::default())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn every_host_bridge_bypassing_is_reported() {
    let t: Topology<4> = Topology::from_nodes(&[
        Node::bypassed_host_bridge(0, 0, 0xFF),
        Node::pcie_endpoint(NodeId(0), 1, 0),
    ])
    .unwrap();
    let no_ir = Config {
        interrupt_remapping: false,
        extended_interrupt_mode: false,
        ..Config::default()
    };
    let warnings = check(&no_ir, &t, &GuestFacts::default()).unwrap();
    assert_eq!(warnings.as_slice(), [Warning::NoRemappedDevices]);
    let warnings = check(&Config::default(), &t, &GuestFacts::default()).unwrap();
    assert!(matches!(
        warnings[0],
        Warning::BypassedDevicesLoseMsi { .. }
    ));
    assert_eq!(warnings[1], Warning::NoRemappedDevices);
}

#[test]
fn many_vcpus_need_interrupt_remapping_with_eim() {
    let t = topology(false);
    let many = GuestFacts { vcpus: Some(300) };
    let no_ir = Config {
        interrupt_remapping: false,
        extended_interrupt_mode: false,
        ..Config::default()
    };
    let no_eim = Config {
        extended_interrupt_mode: false,
        ..Config::default()
    };
    assert_eq!(
        check(&no_ir, &t, &many).unwrap().as_slice(),
        [Warning::TooManyVcpusForXapic {
            vcpus: 300,
            blocker: X2apicBlocker::NoInterruptRemapping
        }]
    );
    let warnings = check(&no_eim, &t, &many).unwrap();
    assert_eq!(
        warnings.as_slice(),
        [Warning::TooManyVcpusForXapic {
            vcpus: 300,
            blocker: X2apicBlocker::NoExtendedInterruptMode
        }]
    );
    assert_eq!(
        warnings[0].remedies(),
        [Remedy::EnableExtendedInterruptMode, Remedy::ReduceVcpus]
    );
    assert!(warnings[0].to_string().contains("300 vCPUs"));
    assert!(check(&Config::default(), &t, &many).unwrap().is_empty());
    assert!(check(&no_eim, &t, &GuestFacts { vcpus: Some(255) })
        .unwrap()
        .is_empty());
}

#[test]
fn an_impossible_configuration_is_an_error() {
    let bad = Config {
        guest_address_width: 40,
        ..Config::default()
    };
    assert!(check(&bad, &topology(false), &GuestFacts::default()).is_err());
}
