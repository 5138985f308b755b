//! Interrupt remapping: `viommu_remap_interrupt`, `viommu_post_interrupt`.

use viommu::{
    Interrupt, InterruptError, InterruptRequest, PostOutcome, PostedInterrupt, RemappedInterrupt,
    SourceId,
};

use crate::boundary::{boundary, try_out, try_ref};
use crate::status::viommu_status;
use crate::unit::viommu_unit;

/// An interrupt request: a DMA write of `data` to `address` in the interrupt range (an
/// MSI, or an IOAPIC entry presented as the MSI it encodes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct viommu_interrupt_request {
    /// Message address (0xFEEx_xxxx; upper 32 bits 0).
    pub address: u64,
    /// Message data.
    pub data: u32,
    /// Requester id.
    pub source_id: u16,
}

/// An interrupt after remapping, as a local APIC model takes it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct viommu_remapped_interrupt {
    /// Destination APIC id: 8-bit in xAPIC mode, 32-bit in x2APIC mode (IRTA.EIME).
    pub destination: u32,
    /// The IRTE that produced it.
    pub index: u16,
    /// Vector.
    pub vector: u8,
    /// Delivery mode (0 fixed, 1 lowest priority, 2 SMI, 4 NMI, 5 INIT, 7 ExtINT).
    pub delivery_mode: u8,
    /// Logical (true) or physical destination mode.
    pub logical_destination: bool,
    /// Level (true) or edge triggered.
    pub level_triggered: bool,
    /// Redirection hint.
    pub redirection_hint: bool,
}

/// A posted interrupt: pass it to `viommu_post_interrupt`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct viommu_posted_interrupt {
    /// Guest-physical address of the 64-byte posted-interrupt descriptor.
    pub descriptor_address: u64,
    /// The IRTE that produced it.
    pub index: u16,
    /// The virtual vector to post.
    pub vector: u8,
    /// Notify even if the descriptor suppresses notifications (SN).
    pub urgent: bool,
}

/// An interrupt-remapping fault.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct viommu_interrupt_fault {
    /// Requester.
    pub source_id: u16,
    /// The interrupt index, when `has_index`.
    pub index: u16,
    /// Whether the request had an index.
    pub has_index: bool,
    /// The spec's fault reason code (0x20..=0x27).
    pub reason: u8,
    /// Whether it went into a fault recording register.
    pub recorded: bool,
}

/// What an interrupt request turned into.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum viommu_interrupt_kind {
    /// Nothing: the call failed (see its status; for FAULT, `fault`).
    None = 0,
    /// Not remapped (remapping off, or a compatibility-format request that GSTS.CFIS lets
    /// through): deliver `msi_address`/`msi_data`, the message as it was.
    PassThrough = 1,
    /// Remapped through an IRTE: `remapped`, and the same as a compatibility-format MSI in
    /// `msi_address`/`msi_data` (destination bits 31:8 in address bits 63:40, the x2APIC
    /// extended destination KVM's MSI routing takes).
    Remapped = 2,
    /// Posted through an IRTE in posted format: pass `posted` to `viommu_post_interrupt`.
    Posted = 3,
}

/// The result of `viommu_remap_interrupt`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct viommu_interrupt {
    /// What the request turned into.
    pub kind: viommu_interrupt_kind,
    /// The message to deliver (PASSTHROUGH, REMAPPED).
    pub msi_data: u32,
    /// The message address (PASSTHROUGH, REMAPPED).
    pub msi_address: u64,
    /// REMAPPED.
    pub remapped: viommu_remapped_interrupt,
    /// POSTED.
    pub posted: viommu_posted_interrupt,
    /// When the status is `VIOMMU_STATUS_FAULT`.
    pub fault: viommu_interrupt_fault,
}

impl viommu_interrupt {
    const NONE: Self = Self {
        kind: viommu_interrupt_kind::None,
        msi_data: 0,
        msi_address: 0,
        remapped: viommu_remapped_interrupt {
            destination: 0,
            index: 0,
            vector: 0,
            delivery_mode: 0,
            logical_destination: false,
            level_triggered: false,
            redirection_hint: false,
        },
        posted: viommu_posted_interrupt {
            descriptor_address: 0,
            index: 0,
            vector: 0,
            urgent: false,
        },
        fault: viommu_interrupt_fault {
            source_id: 0,
            index: 0,
            has_index: false,
            reason: 0,
            recorded: false,
        },
    };

    fn from_result(result: &core::result::Result<Interrupt, InterruptError>) -> Self {
        match result {
            Ok(Interrupt::PassThrough(msi)) => Self {
                kind: viommu_interrupt_kind::PassThrough,
                msi_address: msi.address,
                msi_data: msi.data,
                ..Self::NONE
            },
            Ok(Interrupt::Remapped(r)) => {
                let msi = r.to_msi();
                Self {
                    kind: viommu_interrupt_kind::Remapped,
                    msi_address: msi.address,
                    msi_data: msi.data,
                    remapped: remapped(r),
                    ..Self::NONE
                }
            }
            Ok(Interrupt::Posted(p)) => Self {
                kind: viommu_interrupt_kind::Posted,
                posted: viommu_posted_interrupt {
                    descriptor_address: p.descriptor_address,
                    index: p.index,
                    vector: p.vector,
                    urgent: p.urgent,
                },
                ..Self::NONE
            },
            Err(InterruptError::Fault(f)) => Self {
                fault: viommu_interrupt_fault {
                    source_id: f.source_id.0,
                    index: f.index.unwrap_or(0),
                    has_index: f.index.is_some(),
                    reason: f.reason.0,
                    recorded: f.recorded,
                },
                ..Self::NONE
            },
            Err(InterruptError::NotAnInterrupt) => Self::NONE,
        }
    }
}

fn remapped(r: &RemappedInterrupt) -> viommu_remapped_interrupt {
    viommu_remapped_interrupt {
        destination: r.destination,
        index: r.index,
        vector: r.vector,
        delivery_mode: r.delivery_mode.0,
        logical_destination: r.logical_destination,
        level_triggered: r.level_triggered,
        redirection_hint: r.redirection_hint,
    }
}

/// Remap an interrupt request (a translated DMA write of kind INTERRUPT, or an MSI the
/// VMM's device model sends).
///
/// `VIOMMU_STATUS_OK` with `out->kind` PASSTHROUGH, REMAPPED or POSTED;
/// `VIOMMU_STATUS_FAULT` with `out->fault` (recorded and the fault event raised as the
/// spec says: drop the interrupt); `VIOMMU_STATUS_NOT_AN_INTERRUPT` if the address is not
/// in the interrupt range. `out` is written whenever it is a valid pointer. A VMM that
/// caches the result (a KVM MSI route) drops it on INTERRUPT_ENTRIES* invalidations.
///
/// Thread-safe, and lock-free on an interrupt entry cache hit.
#[no_mangle]
pub extern "C" fn viommu_remap_interrupt(
    unit: *const viommu_unit,
    request: *const viommu_interrupt_request,
    out: *mut viommu_interrupt,
) -> viommu_status {
    boundary(|| {
        let mut out = try_out!(out);
        out.write(viommu_interrupt::NONE);
        let unit = &try_ref!(unit).unit;
        let request = try_ref!(request);
        let result = unit.remap_interrupt(&InterruptRequest {
            source_id: SourceId(request.source_id),
            address: request.address,
            data: request.data,
        });
        out.write(viommu_interrupt::from_result(&result));
        result.map(|_| ()).map_err(viommu_status::from)
    })
}

/// What posting asks the VMM to do next.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum viommu_post_kind {
    /// Nothing: the call failed.
    None = 0,
    /// The vector is pending in the descriptor; no notification is needed.
    Pending = 1,
    /// Send the notification event: `vector` to APIC id `destination`.
    Notify = 2,
}

/// The result of `viommu_post_interrupt`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct viommu_post_outcome {
    /// What to do next.
    pub kind: viommu_post_kind,
    /// Notification destination APIC id (NOTIFY).
    pub destination: u32,
    /// Notification vector (NOTIFY).
    pub vector: u8,
}

/// Post an interrupt into its posted-interrupt descriptor (VT-d §9.12): set the vector's
/// bit in PIR and, unless a notification is outstanding or suppressed, set ON and ask for
/// the notification event. Updates go through `dma_cmpxchg64` (or read then write).
///
/// Returns `VIOMMU_STATUS_MEMORY_ERROR` if the descriptor could not be updated. Thread-safe.
#[no_mangle]
pub extern "C" fn viommu_post_interrupt(
    unit: *const viommu_unit,
    posted: *const viommu_posted_interrupt,
    out: *mut viommu_post_outcome,
) -> viommu_status {
    boundary(|| {
        let mut out = try_out!(out);
        out.write(viommu_post_outcome {
            kind: viommu_post_kind::None,
            destination: 0,
            vector: 0,
        });
        let unit = &try_ref!(unit).unit;
        let posted = try_ref!(posted);
        let outcome = unit.post_interrupt(&PostedInterrupt {
            descriptor_address: posted.descriptor_address,
            vector: posted.vector,
            urgent: posted.urgent,
            index: posted.index,
        })?;
        out.write(match outcome {
            PostOutcome::Pending => viommu_post_outcome {
                kind: viommu_post_kind::Pending,
                destination: 0,
                vector: 0,
            },
            PostOutcome::Notify {
                vector,
                destination,
            } => viommu_post_outcome {
                kind: viommu_post_kind::Notify,
                destination,
                vector,
            },
        });
        Ok(())
    })
}
