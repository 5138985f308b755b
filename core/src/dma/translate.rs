//! The translate path: the only code every DMA runs.
//!
//! On a hit it reads one atomic word of unit state, probes the context cache and the
//! IOTLB, and returns — no lock, no allocation, no guest memory read. On a miss it
//! resolves the context and walks the tables (pure functions), and caches the result
//! unless an invalidation raced the walk.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::cache::{Published, Snapshot};
use crate::dma::context::{resolve_context, ContextFault, DeviceContext};
use crate::dma::enumerate::DeviceAddressSpace;
use crate::dma::request::{Access, DmaError, DmaFault, DmaRequest, Mapping, SourceId, Translation};
use crate::dma::walk::{walk_from, WalkError, WalkStart};
use crate::fault::FaultInfo;
use crate::host::Host;
use crate::memory::GuestMemory;
use crate::spec::fault::FaultReason;
use crate::spec::registers::TranslationTableMode;
use crate::spec::INTERRUPT_RANGE;
use crate::unit::{Unit, DMA_STATE_TES, ENTRY_WORDS, FIRST_LEVEL_SLOTS, IOTLB_SLOTS, WALK_HINTS};

/// How many times a translation whose walk raced an invalidation is tried before its
/// result is returned as it is.
const WALK_ATTEMPTS: usize = 3;

/// An IOTLB entry published by a walk, awaiting confirmation.
type IotlbFill<'a> = Published<'a, ENTRY_WORDS, IOTLB_SLOTS>;

/// A first-level cache entry published after a translation, awaiting confirmation.
type FirstLevelFill<'a> = Published<'a, ENTRY_WORDS, FIRST_LEVEL_SLOTS>;

/// Page sizes probed in the IOTLB, most common first.
const PAGE_SHIFTS: [u8; 3] = [12, 21, 30];

/// Context-cache entries are all tagged with this domain: a domain-selective context
/// invalidation flushes the (small, rarely invalidated) context cache whole.
pub(crate) const CONTEXT_CACHE_DOMAIN: u16 = 0;

const KEY_TAG: u64 = 1 << 20;

/// First-level cache entries are all tagged with this domain; any invalidation flushes it.
pub(crate) const FIRST_LEVEL_DOMAIN: u16 = 0;

/// The bit of `Unit::iotlb_large_sizes` for a large page size (0 for 4 KiB).
pub(crate) fn large_size_bit(size_shift: u8) -> u8 {
    match size_shift {
        21 => 1,
        30 => 2,
        _ => 0,
    }
}

/// The first-level cache key: source id, a tag bit, and the 4 KiB page number.
fn first_level_key(source_id: SourceId, address: u64) -> u64 {
    ((address >> 12) << 17) | (1 << 16) | u64::from(source_id.0)
}

/// Addresses whose page number fits the first-level key whole (bits 58:12). Above, the
/// key would drop address bits and alias a low page (an address beyond MGAW would hit
/// page 0's entry instead of faulting), so such requests bypass the first-level cache;
/// they all fault (no MGAW reaches 2^59) or, with translation off, are not cached.
const FIRST_LEVEL_ADDRESS_LIMIT: u64 = 1 << (64 - 17 + 12);

/// The IOTLB key qword: domain, page size and a tag so that an all-zero slot never matches.
pub(crate) fn iotlb_key(domain_id: u16, size_shift: u8) -> u64 {
    u64::from(domain_id) | (u64::from(size_shift) << 24) | KEY_TAG
}

/// The span of an SL-PDE-cache entry: one level-2 entry maps 2 MiB.
pub(crate) const PDE_SPAN_SHIFT: u8 = 21;

/// The key qword of an SL-PDE-cache entry, kept in the IOTLB beside the leaves: like a
/// 2 MiB leaf's (same hash, so one page-selective removal finds both) with a marker bit
/// that no page size has.
pub(crate) fn pde_key(domain_id: u16) -> u64 {
    iotlb_key(domain_id, PDE_SPAN_SHIFT) | (1 << 32)
}

pub(crate) fn iotlb_hash(domain_id: u16, input_base: u64, size_shift: u8) -> u64 {
    (input_base >> size_shift) ^ (u64::from(domain_id) << 40) ^ u64::from(size_shift)
}

pub(crate) fn context_key(source_id: u16) -> u64 {
    u64::from(source_id) | KEY_TAG
}

fn encode_context(ctx: &DeviceContext) -> [u64; ENTRY_WORDS] {
    match *ctx {
        DeviceContext::Translated {
            domain_id,
            table,
            levels,
            fpd,
        } => [
            0,
            u64::from(domain_id) | (u64::from(levels) << 16) | (u64::from(fpd) << 24),
            table,
            0,
        ],
        DeviceContext::PassThrough { domain_id, fpd } => [
            0,
            u64::from(domain_id) | (u64::from(fpd) << 24) | (1 << 25),
            0,
            0,
        ],
    }
}

fn decode_context(words: &[u64; ENTRY_WORDS]) -> DeviceContext {
    let domain_id = (words[1] & 0xFFFF) as u16;
    let fpd = words[1] & (1 << 24) != 0;
    if words[1] & (1 << 25) != 0 {
        DeviceContext::PassThrough { domain_id, fpd }
    } else {
        DeviceContext::Translated {
            domain_id,
            table: words[2],
            levels: ((words[1] >> 16) & 0xFF) as u8,
            fpd,
        }
    }
}

/// An identity mapping for untranslated traffic: 2 MiB pages, except 4 KiB around the
/// interrupt range so a cached page never swallows it.
fn identity_mapping(address: u64, domain_id: Option<u16>) -> Mapping {
    let large_base = address & !((1 << 21) - 1);
    let size_shift = if large_base == INTERRUPT_RANGE.start() & !((1 << 21) - 1) {
        12
    } else {
        21
    };
    Mapping {
        input_base: address & !((1u64 << size_shift) - 1),
        output_base: address & !((1u64 << size_shift) - 1),
        size_shift,
        permissions: Access::READ_WRITE,
        domain_id,
    }
}

/// A mapping whose page overlaps the interrupt range is narrowed to the 4 KiB page asked
/// for, so a VMM caching it never routes an interrupt write to memory.
fn clip_around_interrupt_range(mut mapping: Mapping, address: u64) -> Mapping {
    let end = mapping.input_base.saturating_add(mapping.size() - 1);
    if mapping.size_shift > 12
        && mapping.input_base <= *INTERRUPT_RANGE.end()
        && end >= *INTERRUPT_RANGE.start()
    {
        let page = address & !0xFFF;
        mapping.output_base += page - mapping.input_base;
        mapping.input_base = page;
        mapping.size_shift = 12;
    }
    mapping
}

fn permission_fault(needed: Access, granted: Access) -> Option<FaultReason> {
    if needed.write() && !granted.write() {
        Some(FaultReason::WRITE_NOT_PERMITTED)
    } else if needed.read() && !granted.read() {
        Some(FaultReason::READ_NOT_PERMITTED)
    } else {
        None
    }
}

fn not_present_reason(access: Access) -> FaultReason {
    if access.write() {
        FaultReason::WRITE_NOT_PERMITTED
    } else {
        FaultReason::READ_NOT_PERMITTED
    }
}

/// Why the translate logic stopped, before the fault is reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Blocked {
    /// A remapping fault, with the FPD that applies to it.
    Fault(FaultReason, bool),
    /// Completed as Unsupported Request; never recorded.
    Unsupported,
}

impl From<ContextFault> for Blocked {
    fn from(f: ContextFault) -> Self {
        Self::Fault(f.reason, f.fpd)
    }
}

/// Whether the translate logic may use and fill the caches.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Caching {
    Use,
    Bypass,
}

impl<M: GuestMemory, H: Host> Unit<M, H> {
    /// Translate a DMA request.
    ///
    /// Callable from any thread at once. A fault is recorded in the fault registers (and
    /// the fault event raised) as the spec says, and also returned.
    ///
    /// Inlined into the caller: the hit path is a handful of instructions, and returning
    /// its result through memory would cost more than it.
    #[inline]
    pub fn translate(&self, request: &DmaRequest) -> Result<Translation, DmaError> {
        if let Some(mapping) = self.first_level_hit(request) {
            return Ok(Translation::Mapped(mapping));
        }
        self.translate_miss(request)
    }

    /// Everything but a first-level hit: kept out of line so the hit path stays small
    /// (no spills, no frame).
    ///
    /// A walk fills the IOTLB and the first-level cache, and one fence confirms both
    /// fills ([`Published::confirm_with`]). A walk that raced an invalidation is redone, a
    /// bounded number of times, so that the result reflects the tables as the
    /// invalidation left them; a refused first-level fill only costs a later miss (the
    /// mapping itself came from the validated path).
    #[inline(never)]
    fn translate_miss(&self, request: &DmaRequest) -> Result<Translation, DmaError> {
        let mut attempts = 1;
        let result = loop {
            let snap = self.first_level.snapshot(FIRST_LEVEL_DOMAIN);
            let mut iotlb_fill = None;
            let result = self.translate_with(request, Caching::Use, &mut iotlb_fill);
            let first_level_fill = match &result {
                Ok(Translation::Mapped(mapping)) => self.first_level_fill(snap, request, mapping),
                _ => None,
            };
            let walk_current = match (iotlb_fill, first_level_fill) {
                (Some(iotlb), Some(first_level)) => iotlb.confirm_with(first_level).0,
                (Some(iotlb), None) => iotlb.confirm(),
                (None, first_level) => {
                    // No walk filled the IOTLB (a hit, pass-through, or no mapping).
                    let _ = first_level.map(Published::confirm);
                    true
                }
            };
            if walk_current || attempts >= WALK_ATTEMPTS {
                break result;
            }
            attempts += 1;
        };
        result.map_err(|blocked| match blocked {
            Blocked::Fault(reason, fpd) => self.fault(request, reason, fpd),
            Blocked::Unsupported => DmaError::UnsupportedRequest,
        })
    }

    /// The hit path: one probe of the first-level cache by (source id, 4 KiB page).
    /// Entries exist only for translated pages outside the interrupt range, and every
    /// invalidation of any kind (and TE/SRTP) flushes the cache, so a hit needs no other
    /// state. A permission mismatch is left to the full path, which reports the fault.
    #[inline]
    fn first_level_hit(&self, request: &DmaRequest) -> Option<Mapping> {
        if request.pasid.is_some() || request.address >= FIRST_LEVEL_ADDRESS_LIMIT {
            return None;
        }
        let key = first_level_key(request.source_id, request.address);
        let w = self
            .first_level
            .lookup(FIRST_LEVEL_DOMAIN, key, |w| w[0] == key)?;
        let permissions = Access::from_bits((w[1] & 3) as u8);
        if !permissions.allows(request.access) {
            return None;
        }
        Some(Mapping {
            input_base: w[2] & !0xFFF,
            output_base: w[1] & !0xFFF,
            size_shift: (w[2] & 0x3F) as u8,
            permissions,
            domain_id: Some((w[3] & 0xFFFF) as u16),
        })
    }

    /// Publish `mapping` in the first-level cache, for the caller to confirm.
    fn first_level_fill(
        &self,
        snap: Snapshot,
        request: &DmaRequest,
        mapping: &Mapping,
    ) -> Option<FirstLevelFill<'_>> {
        let domain_id = mapping.domain_id?;
        if request.pasid.is_some()
            || INTERRUPT_RANGE.contains(&request.address)
            || request.address >= FIRST_LEVEL_ADDRESS_LIMIT
        {
            return None;
        }
        let key = first_level_key(request.source_id, request.address);
        let words = [
            key,
            mapping.output_base | u64::from(mapping.permissions.bits()),
            mapping.input_base | u64::from(mapping.size_shift),
            u64::from(domain_id),
        ];
        Some(self.first_level.publish(snap, key, words, |w| w[0] == key))
    }

    /// Translate without the caches and without recording faults: every table is read
    /// from guest memory as it is now. The reference the cached path is tested against;
    /// also useful to a VMM that wants to look without side effects.
    pub fn translate_uncached(&self, request: &DmaRequest) -> Result<Translation, DmaError> {
        self.translate_with(request, Caching::Bypass, &mut None)
            .map_err(|blocked| match blocked {
                Blocked::Fault(reason, _) => DmaError::Fault(DmaFault {
                    reason,
                    source_id: request.source_id,
                    address: request.address,
                    recorded: false,
                }),
                Blocked::Unsupported => DmaError::UnsupportedRequest,
            })
    }

    /// How requests without PASID from `source_id` are handled now, as [`translate`]
    /// sees it: from the context cache (filling it on a miss), so a context entry the guest
    /// changed without invalidating it still counts as it was cached.
    ///
    /// [`DeviceAddressSpace::Untranslated`] and [`DeviceAddressSpace::PassThrough`] mean
    /// that every request below 2^MGAW (the configured guest address width) and outside
    /// the interrupt range maps to itself with read and write permission. A VMM may then
    /// send the device's DMA straight to guest memory, without calling `translate`, until
    /// the next [`InvalidationEvent::ContextGlobal`], [`InvalidationEvent::ContextDomain`]
    /// or [`InvalidationEvent::ContextDevice`] event (SRTP and TE changes raise the first),
    /// [`reset`](Unit::reset) or [`restore`](Unit::restore); it must then ask again.
    /// Nothing is recorded: a context fault is returned as
    /// [`DeviceAddressSpace::Blocked`], and is recorded when a request meets it.
    ///
    /// [`translate`]: Unit::translate
    /// [`InvalidationEvent::ContextGlobal`]: crate::InvalidationEvent::ContextGlobal
    /// [`InvalidationEvent::ContextDomain`]: crate::InvalidationEvent::ContextDomain
    /// [`InvalidationEvent::ContextDevice`]: crate::InvalidationEvent::ContextDevice
    pub fn device_address_space(&self, source_id: SourceId) -> DeviceAddressSpace {
        match self.device_gate(source_id, Caching::Use) {
            Ok(DeviceContext::PassThrough { domain_id, .. }) => {
                DeviceAddressSpace::PassThrough { domain_id }
            }
            Ok(DeviceContext::Translated { domain_id, .. }) => {
                DeviceAddressSpace::Translated { domain_id }
            }
            Err(space) => space,
        }
    }

    /// What decides requests without PASID from `source_id` before any page is looked up:
    /// the device's context when translation is on (legacy mode) and the context resolves,
    /// otherwise the address space that answers every such request (untranslated, or
    /// blocked and why). Records nothing.
    pub(crate) fn device_gate(
        &self,
        source_id: SourceId,
        caching: Caching,
    ) -> Result<DeviceContext, DeviceAddressSpace> {
        let state = self.dma_state.load(Ordering::Acquire);
        if state & DMA_STATE_TES == 0 {
            return Err(DeviceAddressSpace::Untranslated);
        }
        if TranslationTableMode(((state >> 10) & 3) as u8) != TranslationTableMode::LEGACY {
            return Err(DeviceAddressSpace::Blocked(
                FaultReason::ROOT_TABLE_MODE_INVALID,
            ));
        }
        let root_table = state & !0xFFF;
        match caching {
            Caching::Use => self.device_context(root_table, source_id),
            Caching::Bypass => resolve_context(&self.memory, &self.config, root_table, source_id),
        }
        .map_err(|fault| DeviceAddressSpace::Blocked(fault.reason))
    }

    /// The translate logic. With [`Caching::Use`], a walk leaves its IOTLB fill in
    /// `iotlb_fill` for the caller to confirm.
    fn translate_with<'s>(
        &'s self,
        request: &DmaRequest,
        caching: Caching,
        iotlb_fill: &mut Option<IotlbFill<'s>>,
    ) -> Result<Translation, Blocked> {
        if INTERRUPT_RANGE.contains(&request.address) {
            // Writes here are interrupt requests; reads are unsupported requests (§3.14).
            return if request.access == Access::WRITE {
                Ok(Translation::Interrupt)
            } else {
                Err(Blocked::Unsupported)
            };
        }
        if request.pasid.is_some() {
            // Legacy mode has no PASID support (ECAP.PASID clear).
            return Err(Blocked::Unsupported);
        }
        let state = self.dma_state.load(Ordering::Acquire);
        if state & DMA_STATE_TES == 0 {
            return Ok(Translation::Mapped(identity_mapping(request.address, None)));
        }
        if TranslationTableMode(((state >> 10) & 3) as u8) != TranslationTableMode::LEGACY {
            return Err(Blocked::Fault(FaultReason::ROOT_TABLE_MODE_INVALID, false));
        }
        let root_table = state & !0xFFF;
        let context = match caching {
            Caching::Use => self.device_context(root_table, request.source_id)?,
            Caching::Bypass => {
                resolve_context(&self.memory, &self.config, root_table, request.source_id)?
            }
        };
        let mapping = match context {
            DeviceContext::PassThrough { domain_id, fpd } => {
                if request.address >> self.config.guest_address_width != 0 {
                    return Err(Blocked::Fault(FaultReason::ADDRESS_BEYOND_MGAW, fpd));
                }
                identity_mapping(request.address, Some(domain_id))
            }
            DeviceContext::Translated {
                domain_id,
                table,
                levels,
                fpd,
            } => {
                let width =
                    u32::from(self.config.guest_address_width).min(12 + 9 * u32::from(levels));
                if request.address.checked_shr(width).unwrap_or(0) != 0 {
                    return Err(Blocked::Fault(FaultReason::ADDRESS_BEYOND_MGAW, fpd));
                }
                let cached = match caching {
                    Caching::Use => self.iotlb_lookup(domain_id, request.address),
                    Caching::Bypass => None,
                };
                let mapping = match cached {
                    Some(mapping) => mapping,
                    None => self
                        .walk(
                            request.address,
                            domain_id,
                            table,
                            levels,
                            caching,
                            iotlb_fill,
                        )
                        .map_err(|e| match e {
                            WalkError::NotPresent => {
                                Blocked::Fault(not_present_reason(request.access), fpd)
                            }
                            WalkError::Fault(reason) => Blocked::Fault(reason, fpd),
                        })?,
                };
                if let Some(reason) = permission_fault(request.access, mapping.permissions) {
                    return Err(Blocked::Fault(reason, fpd));
                }
                clip_around_interrupt_range(mapping, request.address)
            }
        };
        Ok(Translation::Mapped(mapping))
    }

    /// The device's context, from the context cache or the tables.
    fn device_context(
        &self,
        root_table: u64,
        source_id: SourceId,
    ) -> Result<DeviceContext, ContextFault> {
        let key = context_key(source_id.0);
        let hash = u64::from(source_id.0);
        if let Some(words) = self
            .context_cache
            .lookup(CONTEXT_CACHE_DOMAIN, hash, |w| w[0] == key)
        {
            return Ok(decode_context(&words));
        }
        let mut attempts = 0;
        loop {
            let snap = self.context_cache.snapshot(CONTEXT_CACHE_DOMAIN);
            let result = resolve_context(&self.memory, &self.config, root_table, source_id);
            let Ok(context) = result else { return result };
            let mut words = encode_context(&context);
            words[0] = key;
            attempts += 1;
            // A resolution that raced an invalidation is not cached and is redone.
            if self
                .context_cache
                .insert(snap, hash, words, |w| w[0] == key)
                || attempts >= WALK_ATTEMPTS
            {
                return result;
            }
        }
    }

    fn iotlb_lookup(&self, domain_id: u16, address: u64) -> Option<Mapping> {
        let sizes = self.iotlb_large_sizes.load(Ordering::Relaxed);
        for size_shift in PAGE_SHIFTS {
            // Sizes never cached are not probed: skipping a probe can only cause a miss.
            if size_shift != 12 && sizes & large_size_bit(size_shift) == 0 {
                continue;
            }
            let input_base = address & !((1u64 << size_shift) - 1);
            let key = iotlb_key(domain_id, size_shift);
            let hash = iotlb_hash(domain_id, input_base, size_shift);
            if let Some(w) = self
                .iotlb
                .lookup(domain_id, hash, |w| w[0] == key && w[1] == input_base)
            {
                return Some(Mapping {
                    input_base,
                    output_base: w[2] & !0xFFF,
                    size_shift,
                    permissions: Access::from_bits((w[2] & 3) as u8),
                    domain_id: Some(domain_id),
                });
            }
        }
        None
    }

    /// Walk the tables; with caching, publish the leaf in the IOTLB and leave the
    /// publication in `fill` for the caller to confirm (and re-walk if it raced an
    /// invalidation).
    ///
    /// With caching the walk also uses the SL-PDE cache (§6.2.4's paging-structure
    /// caches, for the level-2 entries): entries in the IOTLB, keyed by domain and 2 MiB
    /// region, holding the level-1 table and the permissions above it, so a miss next to
    /// an earlier one reads one entry instead of four. They are removed by every IOTLB
    /// invalidation that covers their region, whatever IH says.
    fn walk<'s>(
        &'s self,
        address: u64,
        domain_id: u16,
        table: u64,
        levels: u8,
        caching: Caching,
        fill: &mut Option<IotlbFill<'s>>,
    ) -> Result<Mapping, WalkError> {
        let snap = self.iotlb.snapshot(domain_id);
        let base = address & !((1u64 << PDE_SPAN_SHIFT) - 1);
        // The SL-PDE cache is probed and filled only for a region walked just before
        // (its hint slot names it): a stream of misses over distinct regions pays one
        // hint load and store, not a probe and a fill per miss.
        let (hint, region_tag) = self.walk_hint(domain_id, base);
        let walked_before = hint.load(Ordering::Relaxed) == region_tag;
        let cached_pde = match caching {
            Caching::Use if walked_before => self.pde_lookup(domain_id, base),
            _ => None,
        };
        let start = cached_pde.unwrap_or(WalkStart::root(table, levels));
        let mut leaf_table = None;
        let leaf = walk_from(&self.memory, &self.config, start, address, &mut leaf_table)?;
        if caching == Caching::Use {
            if !walked_before {
                hint.store(region_tag, Ordering::Relaxed);
            } else if let Some(found) = leaf_table {
                // Rare (once per 2 MiB region): its own fence is fine. If it raced an
                // invalidation, so did the leaf below, whose confirmation redoes the walk.
                let key = pde_key(domain_id);
                let perms = Access::from_rw(found.read, found.write);
                let words = [key, base, found.table | u64::from(perms.bits()), 0];
                let hash = iotlb_hash(domain_id, base, PDE_SPAN_SHIFT);
                let _ = self
                    .iotlb
                    .insert(snap, hash, words, |w| w[0] == key && w[1] == base);
            }
            let key = iotlb_key(domain_id, leaf.size_shift);
            let hash = iotlb_hash(domain_id, leaf.input_base, leaf.size_shift);
            let perms = Access::from_rw(leaf.read, leaf.write);
            let words = [
                key,
                leaf.input_base,
                leaf.output_base | u64::from(perms.bits()),
                0,
            ];
            let base = leaf.input_base;
            let size_bit = large_size_bit(leaf.size_shift);
            if size_bit != 0 && self.iotlb_large_sizes.load(Ordering::Relaxed) & size_bit == 0 {
                self.iotlb_large_sizes.fetch_or(size_bit, Ordering::Relaxed);
            }
            *fill = Some(
                self.iotlb
                    .publish(snap, hash, words, |w| w[0] == key && w[1] == base),
            );
        }
        Ok(Mapping {
            input_base: leaf.input_base,
            output_base: leaf.output_base,
            size_shift: leaf.size_shift,
            permissions: Access::from_rw(leaf.read, leaf.write),
            domain_id: Some(domain_id),
        })
    }

    /// The hint slot of a 2 MiB region of a domain, and the tag that names the region in
    /// it. Read and written Relaxed: a stale or lost hint only changes what is probed and
    /// cached, never what a translation returns.
    fn walk_hint(&self, domain_id: u16, region_base: u64) -> (&AtomicU64, u64) {
        let region = region_base >> PDE_SPAN_SHIFT;
        let slot = (region ^ u64::from(domain_id)) as usize % WALK_HINTS;
        (
            &self.walk_hints[slot],
            (region << 16) | u64::from(domain_id),
        )
    }

    /// The SL-PDE-cache entry for the 2 MiB region at `base` in `domain_id`: where to
    /// start the walk.
    fn pde_lookup(&self, domain_id: u16, base: u64) -> Option<WalkStart> {
        let key = pde_key(domain_id);
        let hash = iotlb_hash(domain_id, base, PDE_SPAN_SHIFT);
        let w = self
            .iotlb
            .lookup(domain_id, hash, |w| w[0] == key && w[1] == base)?;
        let perms = Access::from_bits((w[2] & 3) as u8);
        Some(WalkStart {
            table: w[2] & !0xFFF,
            level: 1,
            read: perms.read(),
            write: perms.write(),
        })
    }

    /// Report a fault: record it unless FPD suppresses it, raise the fault event.
    fn fault(&self, request: &DmaRequest, reason: FaultReason, fpd: bool) -> DmaError {
        let mut recorded = false;
        if !(fpd && reason.is_qualified()) {
            let info = FaultInfo {
                source_id: request.source_id.0,
                reason,
                address: request.address,
                is_read: !request.access.write(),
                pasid: request.pasid,
            };
            recorded = self.report_fault(&info);
        }
        DmaError::Fault(DmaFault {
            reason,
            source_id: request.source_id,
            address: request.address,
            recorded,
        })
    }
}
