//! The platform around the remapping unit, as the guest's firmware describes it.
//!
//! - [`topology`]: the embedder's PCI topology and the requester id ([`DmaAlias`]) each
//!   device's DMA reaches the unit with — which devices share one context entry, and
//!   which bypass the IOMMU.
//! - [`dmar`]: the DMAR ACPI table (VT-d ch. 8) that tells the guest where the unit is
//!   and which devices it covers, written into a caller-provided buffer.
//! - [`check`](mod@check): a pre-boot check of a configuration and topology for known
//!   hazards.
//!
//! No heap: topologies and warnings have const-generic capacities, tables go into caller
//! buffers.

pub mod check;
pub mod dmar;
pub mod topology;

pub use check::{check, GuestFacts, Warning, Warnings};
pub use dmar::{build_dmar, DmarConfig, DmarError, DmarWriter};
pub use topology::{DmaAlias, Node, NodeId, PciAddress, Topology, TopologyError};
