//! Legacy-mode device context resolution: root table → context entry → what the device's
//! requests go through (§3.4.2, §9.1, §9.3).
//!
//! A pure function of guest memory and the latched root-table address; it takes no lock
//! and caches nothing (the caller caches its result), so it doubles as the uncached
//! reference for tests.

use crate::config::Config;
use crate::dma::request::SourceId;
use crate::memory::{read_copy, GuestMemory};
use crate::spec::fault::FaultReason;
use crate::spec::root_context::{AddressWidth, ContextEntry, RootEntry, TranslationType};
use crate::spec::PAGE_SHIFT;

/// How a device's untranslated requests are handled, as a valid context entry says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceContext {
    /// Through second-level tables.
    Translated {
        /// Domain id.
        domain_id: u16,
        /// Guest-physical address of the top-level table.
        table: u64,
        /// Number of levels (3, 4 or 5).
        levels: u8,
        /// Fault processing disable.
        fpd: bool,
    },
    /// Pass-through: output address = input address.
    PassThrough {
        /// Domain id.
        domain_id: u16,
        /// Fault processing disable.
        fpd: bool,
    },
}

impl DeviceContext {
    /// The domain id.
    pub fn domain_id(&self) -> u16 {
        match *self {
            Self::Translated { domain_id, .. } | Self::PassThrough { domain_id, .. } => domain_id,
        }
    }
    /// Whether qualified faults are suppressed.
    pub fn fpd(&self) -> bool {
        match *self {
            Self::Translated { fpd, .. } | Self::PassThrough { fpd, .. } => fpd,
        }
    }
}

/// A context resolution failure: the reason, and the FPD bit when a context entry could
/// be read to find it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContextFault {
    /// The spec's fault reason.
    pub reason: FaultReason,
    /// FPD of the context entry (false when none was read).
    pub fpd: bool,
}

impl ContextFault {
    const fn new(reason: FaultReason, fpd: bool) -> Self {
        Self { reason, fpd }
    }
}

/// Whether `gpa` is addressable under the host address width.
pub(crate) fn below_haw(config: &Config, gpa: u64) -> bool {
    gpa >> config.host_address_width == 0
}

/// Find the context of `source_id` through the root table at `root_table`.
pub fn resolve_context(
    mem: &impl GuestMemory,
    config: &Config,
    root_table: u64,
    source_id: SourceId,
) -> Result<DeviceContext, ContextFault> {
    let root_addr = root_table + u64::from(source_id.bus()) * RootEntry::SIZE;
    if !below_haw(config, root_addr) {
        return Err(ContextFault::new(
            FaultReason::ROOT_TABLE_ACCESS_ERROR,
            false,
        ));
    }
    let root: RootEntry = read_copy(mem, root_addr)
        .map_err(|_| ContextFault::new(FaultReason::ROOT_TABLE_ACCESS_ERROR, false))?;
    if !root.low.present() {
        return Err(ContextFault::new(
            FaultReason::ROOT_ENTRY_NOT_PRESENT,
            false,
        ));
    }
    if root.has_reserved_bits() {
        return Err(ContextFault::new(FaultReason::ROOT_ENTRY_RESERVED, false));
    }

    let context_addr =
        (root.low.ctp() << PAGE_SHIFT) + u64::from(source_id.devfn()) * ContextEntry::SIZE;
    if !below_haw(config, context_addr) {
        return Err(ContextFault::new(
            FaultReason::CONTEXT_TABLE_ACCESS_ERROR,
            false,
        ));
    }
    let ce: ContextEntry = read_copy(mem, context_addr)
        .map_err(|_| ContextFault::new(FaultReason::CONTEXT_TABLE_ACCESS_ERROR, false))?;
    let fpd = ce.low.fpd();
    if !ce.low.present() {
        return Err(ContextFault::new(
            FaultReason::CONTEXT_ENTRY_NOT_PRESENT,
            fpd,
        ));
    }
    if ce.has_reserved_bits() || u32::from(ce.high.did()) >= config.domain_count() {
        return Err(ContextFault::new(FaultReason::CONTEXT_ENTRY_RESERVED, fpd));
    }
    let domain_id = ce.high.did();
    let invalid = ContextFault::new(FaultReason::CONTEXT_ENTRY_INVALID, fpd);
    match ce.translation_type() {
        TranslationType::PASS_THROUGH if config.pass_through => {
            Ok(DeviceContext::PassThrough { domain_id, fpd })
        }
        TranslationType::UNTRANSLATED => translated(config, &ce, fpd).ok_or(invalid),
        TranslationType::ALL if config.device_tlb => translated(config, &ce, fpd).ok_or(invalid),
        _ => Err(invalid),
    }
}

fn translated(config: &Config, ce: &ContextEntry, fpd: bool) -> Option<DeviceContext> {
    let aw: AddressWidth = ce.address_width();
    if !config.supports_address_width(aw) {
        return None;
    }
    Some(DeviceContext::Translated {
        domain_id: ce.high.did(),
        table: ce.low.slptptr() << PAGE_SHIFT,
        levels: aw.levels()?,
        fpd,
    })
}
