//! Cache invalidation: the register-based interface (CCMD, IOTLB/IVA, §6.5.1) and queued
//! invalidation (§6.5.2, in [`queue`]).
//!
//! Both interfaces end in the same few operations on the caches, so there is one
//! implementation of each granularity here. Every invalidation is also reported to the
//! [`Host`](crate::Host) so a VMM can drop what it derived from the unit's translations.

pub(crate) mod queue;

use crate::dma::translate::{context_key, iotlb_hash, iotlb_key, pde_key, PDE_SPAN_SHIFT};
use crate::host::{Host, InvalidationEvent};
use crate::memory::GuestMemory;
use crate::spec::registers::{
    ContextCommand, ContextGranularity, InvalidateAddress, IotlbGranularity, IotlbInvalidate,
};
use crate::unit::{Outbox, Unit};

/// Page-selective invalidations of more than 2^this pages flush the whole domain: probing
/// each page would cost more than refilling the cache.
const PAGE_PROBE_LIMIT_SHIFT: u8 = 6;

/// Page sizes an IOTLB entry can have.
const PAGE_SHIFTS: [u8; 3] = [12, 21, 30];

impl<M: GuestMemory, H: Host> Unit<M, H> {
    /// Invalidate context-cache entries; returns the granularity actually performed.
    pub(crate) fn invalidate_context(
        &self,
        granularity: ContextGranularity,
        domain_id: u16,
        source_id: u16,
        function_mask: u8,
        out: &mut Outbox,
    ) -> ContextGranularity {
        match granularity {
            ContextGranularity::GLOBAL => {
                self.context_cache.invalidate_all();
                out.event(InvalidationEvent::ContextGlobal);
            }
            ContextGranularity::DOMAIN => {
                // The context cache is keyed by source id, not domain: flush it whole.
                self.context_cache.invalidate_all();
                out.event(InvalidationEvent::ContextDomain { domain_id });
            }
            ContextGranularity::DEVICE => {
                // FM names the phantom-function bits of SID to ignore (§11.4.7 CCMD,
                // §6.5.2.1): 0 none, 1 bit 2, 2 bits 2:1, 3 bits 2:0.
                let ignored: u16 = match function_mask & 3 {
                    0 => 0b000,
                    1 => 0b100,
                    2 => 0b110,
                    _ => 0b111,
                };
                let first = source_id & !ignored;
                for sid in (first..=first | ignored).filter(|sid| sid & !ignored == first) {
                    let key = context_key(sid);
                    self.context_cache
                        .invalidate_where(u64::from(sid), |w| w[0] == key);
                }
                out.event(InvalidationEvent::ContextDevice {
                    domain_id,
                    source_id,
                    function_mask: function_mask.min(3),
                });
            }
            _ => return ContextGranularity::NONE,
        }
        // The first-level cache is keyed by source id and page: flush it whole, after the
        // caches beneath it, so nothing can refill it from them with stale data.
        self.first_level.invalidate_all();
        granularity
    }

    /// Invalidate IOTLB entries; returns the granularity actually performed.
    pub(crate) fn invalidate_iotlb(
        &self,
        granularity: IotlbGranularity,
        domain_id: u16,
        address: InvalidateAddress,
        out: &mut Outbox,
    ) -> IotlbGranularity {
        match granularity {
            IotlbGranularity::GLOBAL => {
                self.iotlb.invalidate_all();
                out.event(InvalidationEvent::IotlbGlobal);
            }
            IotlbGranularity::DOMAIN => {
                self.iotlb.invalidate_domain(domain_id);
                out.event(InvalidationEvent::IotlbDomain { domain_id });
            }
            IotlbGranularity::PAGE => {
                let am = address.am();
                // 2^AM pages from ADDR, aligned to their size; AM ≥ 52 spans every address.
                let span = 1u64
                    .checked_shl(12 + u32::from(am))
                    .map_or(u64::MAX, |size| size - 1);
                let start = (address.addr() << 12) & !span;
                self.invalidate_iotlb_pages(domain_id, start, am);
                out.event(InvalidationEvent::IotlbPages {
                    domain_id,
                    address: start,
                    address_mask: am,
                    leaf_only: address.ih(),
                });
            }
            _ => return IotlbGranularity::NONE,
        }
        self.first_level.invalidate_all();
        granularity
    }

    /// Remove the entries of `domain_id` that map any of the 2^`am` pages at `start`,
    /// including large pages that contain them.
    fn invalidate_iotlb_pages(&self, domain_id: u16, start: u64, am: u8) {
        if am > PAGE_PROBE_LIMIT_SHIFT {
            self.iotlb.invalidate_domain(domain_id);
            return;
        }
        let last = start + ((1u64 << (12 + u32::from(am))) - 1);
        // One epoch bump and fence for every set probed below.
        let removal = self.iotlb.begin_removal();
        for size_shift in PAGE_SHIFTS {
            let key = iotlb_key(domain_id, size_shift);
            // SL-PDE-cache entries share the 2 MiB leaves' hash: removed with them, for
            // every region the range touches, whatever IH says (removing more than the
            // spec requires is always allowed).
            let pde = if size_shift == PDE_SPAN_SHIFT {
                pde_key(domain_id)
            } else {
                key
            };
            let mut base = start & !((1u64 << size_shift) - 1);
            // At most 2^PAGE_PROBE_LIMIT_SHIFT iterations for 4 KiB pages, one otherwise.
            while base <= last {
                let hash = iotlb_hash(domain_id, base, size_shift);
                let page = base;
                removal.remove_where(hash, |w| (w[0] == key || w[0] == pde) && w[1] == page);
                let Some(next) = base.checked_add(1u64 << size_shift) else {
                    break;
                };
                base = next;
            }
        }
    }

    /// CCMD with ICC set.
    pub(crate) fn register_context_invalidation(
        &self,
        ccmd: ContextCommand,
        out: &mut Outbox,
    ) -> ContextGranularity {
        self.invalidate_context(
            ContextGranularity(ccmd.cirg()),
            ccmd.did(),
            ccmd.sid(),
            ccmd.fm(),
            out,
        )
    }

    /// IOTLB register with IVT set.
    pub(crate) fn register_iotlb_invalidation(
        &self,
        cmd: IotlbInvalidate,
        address: InvalidateAddress,
        out: &mut Outbox,
    ) -> IotlbGranularity {
        let mut granularity = IotlbGranularity(cmd.iirg());
        if granularity == IotlbGranularity::PAGE {
            if !self.config.page_selective_invalidation {
                // Without PSI, hardware performs a domain-selective invalidation instead.
                granularity = IotlbGranularity::DOMAIN;
            } else if address.am() > self.config.max_address_mask {
                return IotlbGranularity::NONE;
            }
        }
        self.invalidate_iotlb(granularity, cmd.did(), address, out)
    }

    /// Interrupt entry cache invalidation: global, or 2^`index_mask` entries at `index`.
    pub(crate) fn invalidate_interrupt_entries(&self, index: Option<(u16, u8)>, out: &mut Outbox) {
        self.flush_interrupt_entries(index);
        out.event(match index {
            None => InvalidationEvent::InterruptEntriesGlobal,
            Some((index, index_mask)) => InvalidationEvent::InterruptEntries { index, index_mask },
        });
    }
}
