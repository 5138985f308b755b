//! What a device's tables map now: enumeration for caching-mode notifications and replay.
//!
//! A VMM that mirrors the guest's mappings (VFIO, vhost) re-reads the range an
//! invalidation names and compares; one that attaches late replays everything. Both read
//! the tables as they are now, uncached, and both are bounded by a page budget.

use crate::dma::context::DeviceContext;
use crate::dma::request::{Access, Mapping, SourceId};
use crate::dma::translate::Caching;
use crate::dma::walk::{for_each_leaf, BudgetExhausted};
use crate::host::Host;
use crate::memory::GuestMemory;
use crate::spec::fault::FaultReason;
use crate::unit::Unit;

/// How a device's requests without PASID are handled now, before any page is looked up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceAddressSpace {
    /// DMA remapping is off: every address maps to itself.
    Untranslated,
    /// A pass-through context: every address maps to itself, in this domain.
    PassThrough {
        /// Domain id.
        domain_id: u16,
    },
    /// Second-level tables of this domain: the pages visited are all there is.
    Translated {
        /// Domain id.
        domain_id: u16,
    },
    /// The device's context is unusable (not present, invalid): nothing is mapped.
    Blocked(FaultReason),
}

impl<M: GuestMemory, H: Host> Unit<M, H> {
    /// Visit every page mapped for `source_id` that intersects `first..=last`, in address
    /// order, reading the tables as they are now (no caches, no faults recorded).
    ///
    /// At most `budget` pages are visited; `Err(BudgetExhausted)` says the range maps more.
    /// For untranslated and pass-through devices nothing is visited: the returned address
    /// space says every address maps to itself.
    pub fn for_each_mapping(
        &self,
        source_id: SourceId,
        first: u64,
        last: u64,
        budget: u64,
        mut visit: impl FnMut(&Mapping),
    ) -> Result<DeviceAddressSpace, BudgetExhausted> {
        let context = match self.device_gate(source_id, Caching::Bypass) {
            Ok(context) => context,
            Err(space) => return Ok(space),
        };
        match context {
            DeviceContext::PassThrough { domain_id, .. } => {
                Ok(DeviceAddressSpace::PassThrough { domain_id })
            }
            DeviceContext::Translated {
                domain_id,
                table,
                levels,
                ..
            } => {
                let width =
                    u32::from(self.config.guest_address_width).min(12 + 9 * u32::from(levels));
                let last = last.min((1u64 << width) - 1);
                let mut budget = budget;
                for_each_leaf(
                    &self.memory,
                    &self.config,
                    table,
                    levels,
                    first,
                    last,
                    &mut budget,
                    &mut |leaf| {
                        visit(&Mapping {
                            input_base: leaf.input_base,
                            output_base: leaf.output_base,
                            size_shift: leaf.size_shift,
                            permissions: Access::from_rw(leaf.read, leaf.write),
                            domain_id: Some(domain_id),
                        });
                    },
                )?;
                Ok(DeviceAddressSpace::Translated { domain_id })
            }
        }
    }
}
