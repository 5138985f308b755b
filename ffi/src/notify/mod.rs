//! Map notifiers: per-device shadows of the guest's mappings, kept in step with the
//! guest's invalidations, for VMMs that mirror them (VFIO maps pages in the host IOMMU,
//! vhost caches translations).
//!
//! The engine reports every invalidation to `Host::invalidated` after releasing its lock.
//! For each registered device the invalidation covers, the notifier re-walks only the
//! invalidated range (the whole address space for context and global invalidations) with
//! `Unit::for_each_mapping` and compares with its shadow:
//!
//! - with CAP.CM (caching mode) the guest invalidates after every change, additions
//!   included, so the shadow is a mirror: removed pages are reported as UNMAP, changed
//!   ones as UNMAP then MAP, added ones as MAP — all UNMAPs of one re-walk before its MAPs;
//! - without CM a guest may make a page present without invalidating, so no mirror can be
//!   kept: each covering invalidation is reported as one UNMAP of the whole invalidated
//!   range (the caller drops what it cached there and translates again on demand). That
//!   covers every removal and every loss of permission, which the guest must invalidate
//!   in either mode; MAP is never reported.
//!
//! In both modes a device whose every address maps to itself (translation off, or a
//! pass-through context) is reported as IDENTITY_BEGIN, and IDENTITY_END when that ends.
//!
//! Notices for one unit are delivered under one lock, so they are never reordered, and
//! the callback may use the unit's lock-free functions but not change notifier state
//! (see `check_not_notifying`).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ffi::c_void;
use std::sync::{Mutex, MutexGuard, PoisonError};

use viommu::dma::enumerate::DeviceAddressSpace;
use viommu::{Access, InvalidationEvent, Mapping, SourceId};

use crate::boundary::{boundary, try_out, try_ref};
use crate::host::{viommu_log_level, CUnit};
use crate::status::{viommu_status, Result};
use crate::unit::viommu_unit;

/// Receive one map notification. Called on the thread that performed the invalidation
/// (inside `viommu_mmio_write`, `viommu_restore` or `viommu_reset`) or inside
/// `viommu_notifier_register`; `event` is valid only during the call.
///
/// The callback may call `viommu_translate`, `viommu_translate_uncached`,
/// `viommu_remap_interrupt`, `viommu_post_interrupt`, `viommu_mmio_read`,
/// `viommu_replay` and `viommu_save` on the unit; `viommu_mmio_write`, `viommu_restore`,
/// `viommu_reset` and `viommu_notifier_register`/`_unregister` on the same unit return
/// `VIOMMU_STATUS_REENTERED`, and `viommu_unit_free` must not be called.
pub type viommu_map_notify_fn =
    Option<unsafe extern "C" fn(opaque: *mut c_void, event: *const viommu_map_event)>;

/// What a map notification says.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum viommu_map_event_kind {
    /// `[iova, iova + size)` now maps to `output` with `permissions` (caching mode only).
    Map = 1,
    /// `[iova, iova + size)` no longer maps as reported before: drop it. With caching
    /// mode, exactly a page reported by an earlier MAP (`output` and `permissions` as
    /// reported then); without it, an invalidated range (`output` and `permissions` 0).
    Unmap = 2,
    /// From now on every address of the device maps to itself, read and write (DMA
    /// remapping off, or a pass-through context). Everything mapped before was unmapped
    /// first.
    IdentityBegin = 3,
    /// The identity mapping is over; with caching mode, MAPs for what the tables map
    /// follow.
    IdentityEnd = 4,
}

/// One map notification.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct viommu_map_event {
    /// What happened.
    pub kind: viommu_map_event_kind,
    /// The device the notifier was registered for.
    pub source_id: u16,
    /// The device's domain, when it has one (`has_domain`).
    pub domain_id: u16,
    /// Whether `domain_id` is meaningful.
    pub has_domain: bool,
    /// `VIOMMU_ACCESS_*` bits the mapping grants (MAP, and UNMAP with caching mode).
    pub permissions: u8,
    /// First input (I/O virtual) address.
    pub iova: u64,
    /// Bytes: the page size for MAP and caching-mode UNMAP; the range otherwise.
    pub size: u64,
    /// Output (guest-physical) address of `iova` (MAP, and UNMAP with caching mode).
    pub output: u64,
}

thread_local! {
    /// The units (by address) whose map notifications this thread is delivering.
    static NOTIFYING: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

fn unit_key(unit: &CUnit) -> usize {
    unit as *const CUnit as usize
}

/// `VIOMMU_STATUS_REENTERED` if this thread is inside a map-notification callback of
/// `unit`: the notifier lock is held there, and the call would change what is reported.
pub(crate) fn check_not_notifying(unit: &CUnit) -> Result<()> {
    let key = unit_key(unit);
    if NOTIFYING.with(|n| n.borrow().contains(&key)) {
        Err(viommu_status::Reentered)
    } else {
        Ok(())
    }
}

/// Marks this thread as delivering notifications of a unit while it lives.
struct Delivering;

impl Delivering {
    fn enter(unit: &CUnit) -> Self {
        NOTIFYING.with(|n| n.borrow_mut().push(unit_key(unit)));
        Self
    }
}

impl Drop for Delivering {
    fn drop(&mut self) {
        NOTIFYING.with(|n| {
            n.borrow_mut().pop();
        });
    }
}

/// Largest page a shadow holds (1 GiB): bounds the search for pages that straddle a range.
const MAX_PAGE_SIZE: u64 = 1 << 30;

/// Widening a re-walk to pages that straddle its edges converges in this many rounds
/// (each round can only grow to the next larger page size).
const WIDEN_ROUNDS: usize = 4;

/// The default page budget of a re-walk.
const DEFAULT_BUDGET: u64 = 1 << 20;

/// A shadowed page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Page {
    output_base: u64,
    size_shift: u8,
    permissions: Access,
}

impl Page {
    fn last(&self, base: u64) -> u64 {
        base.saturating_add((1u64 << self.size_shift) - 1)
    }
}

/// What the notifier last told its callback about the device.
enum View {
    /// Nothing yet (registration syncs at once).
    Unknown,
    /// Every address maps to itself.
    Identity { domain: Option<u16> },
    /// Mapped through tables (or blocked: no domain, nothing mapped); with caching mode,
    /// the pages reported.
    Mapped {
        domain: Option<u16>,
        pages: BTreeMap<u64, Page>,
    },
}

impl View {
    fn domain(&self) -> Option<u16> {
        match self {
            Self::Unknown => None,
            Self::Identity { domain } | Self::Mapped { domain, .. } => *domain,
        }
    }
}

/// How a device's requests are handled now, from its context alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Probe {
    identity: bool,
    domain: Option<u16>,
}

fn probe(unit: &CUnit, source_id: SourceId) -> Probe {
    // An empty range resolves the context without visiting a page.
    match unit.for_each_mapping(source_id, 1, 0, 0, |_| {}) {
        Ok(DeviceAddressSpace::Untranslated) => Probe {
            identity: true,
            domain: None,
        },
        Ok(DeviceAddressSpace::PassThrough { domain_id }) => Probe {
            identity: true,
            domain: Some(domain_id),
        },
        Ok(DeviceAddressSpace::Translated { domain_id }) => Probe {
            identity: false,
            domain: Some(domain_id),
        },
        Ok(DeviceAddressSpace::Blocked(_)) | Err(_) => Probe {
            identity: false,
            domain: None,
        },
    }
}

/// What a re-walk covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    Full,
    Range(u64, u64),
}

impl Scope {
    fn bounds(self) -> (u64, u64) {
        match self {
            Self::Full => (0, u64::MAX),
            Self::Range(first, last) => (first, last),
        }
    }
}

struct Notifier {
    id: u64,
    source_id: SourceId,
    budget: u64,
    notify: unsafe extern "C" fn(opaque: *mut c_void, event: *const viommu_map_event),
    opaque: *mut c_void,
    view: View,
}

// SAFETY: `viommu_notifier_register` documents that the callback may be called, with its
// `opaque`, from any thread; the rest is plain data.
unsafe impl Send for Notifier {}

/// Notices for one notifier, and anything worth logging.
#[derive(Default)]
struct Report {
    events: Vec<viommu_map_event>,
    warnings: Vec<String>,
}

impl Notifier {
    fn event(&self, kind: viommu_map_event_kind, domain: Option<u16>) -> viommu_map_event {
        viommu_map_event {
            kind,
            source_id: self.source_id.0,
            domain_id: domain.unwrap_or(0),
            has_domain: domain.is_some(),
            permissions: 0,
            iova: 0,
            size: 0,
            output: 0,
        }
    }

    fn page_event(
        &self,
        kind: viommu_map_event_kind,
        domain: Option<u16>,
        base: u64,
        page: &Page,
    ) -> viommu_map_event {
        viommu_map_event {
            iova: base,
            size: 1 << page.size_shift,
            output: page.output_base,
            permissions: page.permissions.bits(),
            ..self.event(kind, domain)
        }
    }

    /// One UNMAP of `[first, last]` clipped to the guest address width.
    fn range_unmap(&self, unit: &CUnit, domain: Option<u16>, scope: Scope, report: &mut Report) {
        let (first, last) = scope.bounds();
        let top = (1u64 << unit.config().guest_address_width) - 1;
        let last = last.min(top);
        if first > last {
            return;
        }
        report.events.push(viommu_map_event {
            iova: first,
            size: last - first + 1,
            ..self.event(viommu_map_event_kind::Unmap, domain)
        });
    }

    /// Bring the view up to date with the tables over `scope`, reporting the difference.
    fn sync(&mut self, unit: &CUnit, scope: Scope, now: Probe, report: &mut Report) {
        use viommu_map_event_kind as K;
        let caching_mode = unit.config().caching_mode;
        let old = std::mem::replace(&mut self.view, View::Unknown);
        self.view = match (old, now.identity) {
            (View::Identity { .. }, true) => View::Identity { domain: now.domain },
            (old, true) => {
                if let View::Mapped { domain, pages } = old {
                    if caching_mode {
                        for (base, page) in &pages {
                            report
                                .events
                                .push(self.page_event(K::Unmap, domain, *base, page));
                        }
                    } else {
                        self.range_unmap(unit, domain, Scope::Full, report);
                    }
                }
                report.events.push(self.event(K::IdentityBegin, now.domain));
                View::Identity { domain: now.domain }
            }
            (old @ (View::Identity { .. } | View::Unknown), false) => {
                if let View::Identity { domain } = old {
                    report.events.push(self.event(K::IdentityEnd, domain));
                }
                let mut pages = BTreeMap::new();
                if caching_mode {
                    self.diff(unit, now.domain, &mut pages, Scope::Full, report);
                }
                View::Mapped {
                    domain: now.domain,
                    pages,
                }
            }
            (View::Mapped { domain, mut pages }, false) => {
                // A device that changed domains may have changed tables: all of it.
                let scope = if domain == now.domain {
                    scope
                } else {
                    Scope::Full
                };
                if caching_mode {
                    self.diff(unit, now.domain, &mut pages, scope, report);
                } else if domain.is_some() || now.domain.is_some() {
                    self.range_unmap(unit, domain.or(now.domain), scope, report);
                }
                View::Mapped {
                    domain: now.domain,
                    pages,
                }
            }
        };
    }

    /// Caching mode: re-walk `scope`, update `pages`, report UNMAPs then MAPs.
    fn diff(
        &self,
        unit: &CUnit,
        domain: Option<u16>,
        pages: &mut BTreeMap<u64, Page>,
        scope: Scope,
        report: &mut Report,
    ) {
        use viommu_map_event_kind as K;
        let (mut first, mut last) = scope.bounds();
        let mut found: BTreeMap<u64, Page> = BTreeMap::new();
        let mut exhausted = false;
        for _ in 0..WIDEN_ROUNDS {
            // Pages that straddle the range are replaced whole, so re-walk all of them.
            (first, last) = extent(pages, first, last);
            found.clear();
            exhausted = unit
                .for_each_mapping(self.source_id, first, last, self.budget, |m: &Mapping| {
                    found.insert(
                        m.input_base,
                        Page {
                            output_base: m.output_base,
                            size_shift: m.size_shift,
                            permissions: m.permissions,
                        },
                    );
                })
                .is_err();
            let walked = found.iter().fold((first, last), |(f, l), (base, page)| {
                (f.min(*base), l.max(page.last(*base)))
            });
            if walked == (first, last) {
                break;
            }
            (first, last) = walked;
        }
        if exhausted {
            report.warnings.push(format!(
                "map notifier for {:#06x}: the re-walk of {first:#x}..={last:#x} exceeded its \
                 budget of {} pages; pages past the last one visited are reported unmapped",
                self.source_id.0, self.budget
            ));
        }
        let (first, last) = found.iter().fold((first, last), |(f, l), (base, page)| {
            (f.min(*base), l.max(page.last(*base)))
        });
        let lower = first.saturating_sub(MAX_PAGE_SIZE - 1);
        let stale: Vec<u64> = pages
            .range(lower..=last)
            .filter(|(base, page)| page.last(**base) >= first)
            .map(|(base, _)| *base)
            .collect();
        let mut removed = BTreeMap::new();
        for base in stale {
            if let Some(page) = pages.remove(&base) {
                removed.insert(base, page);
            }
        }
        for (base, page) in &removed {
            if found.get(base) != Some(page) {
                report
                    .events
                    .push(self.page_event(K::Unmap, domain, *base, page));
            }
        }
        for (base, page) in &found {
            if removed.get(base) != Some(page) {
                report
                    .events
                    .push(self.page_event(K::Map, domain, *base, page));
            }
        }
        pages.extend(found);
    }

    fn deliver(&self, unit: &CUnit, events: &[viommu_map_event]) {
        let _delivering = Delivering::enter(unit);
        for event in events {
            // SAFETY: the callback and `opaque` given to `viommu_notifier_register`,
            // called with a pointer valid for the call, as `viommu_map_notify_fn`
            // documents.
            unsafe { (self.notify)(self.opaque, event) };
        }
    }
}

/// `[first, last]` grown to cover every shadowed page it touches.
fn extent(pages: &BTreeMap<u64, Page>, first: u64, last: u64) -> (u64, u64) {
    let lower = first.saturating_sub(MAX_PAGE_SIZE - 1);
    pages
        .range(lower..=last)
        .filter(|(base, page)| page.last(**base) >= first)
        .fold((first, last), |(f, l), (base, page)| {
            (f.min(*base), l.max(page.last(*base)))
        })
}

/// Whether `candidate` is among the source ids an FM-masked context invalidation names.
fn source_matches(named: u16, function_mask: u8, candidate: u16) -> bool {
    let ignored = ((1u16 << function_mask.min(3)) - 1) << (3 - function_mask.min(3));
    named & !ignored == candidate & !ignored
}

#[derive(Default)]
struct Registry {
    next_id: u64,
    list: Vec<Notifier>,
}

/// A unit's map notifiers.
#[derive(Default)]
pub(crate) struct Notifiers {
    registry: Mutex<Registry>,
}

impl Notifiers {
    fn lock(&self) -> MutexGuard<'_, Registry> {
        // A panic while it was held left nothing half-done that matters: every notifier's
        // view is replaced whole.
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Run `scope_of` on every notifier and sync those it gives a scope, delivering each
    /// one's notices before the next is synced.
    fn sync_where(&self, unit: &CUnit, scope_of: impl Fn(&Notifier, Probe) -> Option<Scope>) {
        let mut warnings = Vec::new();
        {
            let mut registry = self.lock();
            for notifier in registry.list.iter_mut() {
                let now = probe(unit, notifier.source_id);
                let Some(scope) = scope_of(notifier, now) else {
                    continue;
                };
                let mut report = Report::default();
                notifier.sync(unit, scope, now, &mut report);
                notifier.deliver(unit, &report.events);
                warnings.append(&mut report.warnings);
            }
        }
        for warning in warnings {
            unit.host().callbacks.log(viommu_log_level::Warn, &warning);
        }
    }

    /// An invalidation the guest performed: sync the notifiers it covers.
    pub(crate) fn invalidated(&self, unit: &CUnit, event: InvalidationEvent) {
        let in_domain = |n: &Notifier, now: Probe, domain_id: u16| {
            n.view.domain() == Some(domain_id) || now.domain == Some(domain_id)
        };
        match event {
            InvalidationEvent::ContextGlobal | InvalidationEvent::IotlbGlobal => {
                self.sync_where(unit, |_, _| Some(Scope::Full));
            }
            InvalidationEvent::ContextDomain { domain_id }
            | InvalidationEvent::IotlbDomain { domain_id } => {
                self.sync_where(unit, |n, now| {
                    in_domain(n, now, domain_id).then_some(Scope::Full)
                });
            }
            InvalidationEvent::ContextDevice {
                source_id,
                function_mask,
                ..
            } => self.sync_where(unit, |n, _| {
                source_matches(source_id, function_mask, n.source_id.0).then_some(Scope::Full)
            }),
            InvalidationEvent::IotlbPages {
                domain_id,
                address,
                address_mask,
                ..
            } => {
                let scope = 4096u64
                    .checked_shl(u32::from(address_mask))
                    .filter(|_| address_mask < 52)
                    .map_or(Scope::Full, |size| {
                        let first = address & !(size - 1);
                        Scope::Range(first, first.saturating_add(size - 1))
                    });
                self.sync_where(unit, |n, now| in_domain(n, now, domain_id).then_some(scope));
            }
            InvalidationEvent::DeviceTlb { .. }
            | InvalidationEvent::InterruptEntriesGlobal
            | InvalidationEvent::InterruptEntries { .. } => {}
        }
    }

    /// The unit's state was replaced (restore, reset): sync every notifier whole.
    pub(crate) fn resync_all(&self, unit: &CUnit) {
        self.sync_where(unit, |_, _| Some(Scope::Full));
    }

    fn register(
        &self,
        unit: &CUnit,
        source_id: SourceId,
        budget: u64,
        notify: unsafe extern "C" fn(opaque: *mut c_void, event: *const viommu_map_event),
        opaque: *mut c_void,
    ) -> u64 {
        let mut report = Report::default();
        let id = {
            let mut registry = self.lock();
            registry.next_id += 1;
            let mut notifier = Notifier {
                id: registry.next_id,
                source_id,
                budget: if budget == 0 { DEFAULT_BUDGET } else { budget },
                notify,
                opaque,
                view: View::Unknown,
            };
            let now = probe(unit, source_id);
            notifier.sync(unit, Scope::Full, now, &mut report);
            notifier.deliver(unit, &report.events);
            let id = notifier.id;
            registry.list.push(notifier);
            id
        };
        for warning in report.warnings {
            unit.host().callbacks.log(viommu_log_level::Warn, &warning);
        }
        id
    }

    fn unregister(&self, id: u64) -> bool {
        let mut registry = self.lock();
        let before = registry.list.len();
        registry.list.retain(|n| n.id != id);
        registry.list.len() != before
    }
}

/// Register a map notifier for the device `source_id` and report its current mappings.
///
/// Before returning, the notifier reports what the device maps now: IDENTITY_BEGIN if
/// every address maps to itself, else (with caching mode) a MAP for every mapped page.
/// From then on, every invalidation the guest performs that covers the device (its
/// domain, its source id, or everything) is reported as the changes it made: see
/// `viommu_map_event_kind` and docs/ffi.md for the contract, which differs with and
/// without caching mode (`viommu_config.caching_mode`). Notices are delivered on the
/// thread that made the invalidating register write, before `viommu_mmio_write` returns.
///
/// `budget` bounds the pages one re-walk may visit (0: 2^20), since a guest can build
/// tables that map far more; a re-walk that exceeds it reports pages past the last one it
/// visited as unmapped and logs a warning. Several notifiers may watch one device; each
/// keeps its own shadow. `*id` receives the id to unregister with.
///
/// Thread-safe; not from inside a map-notification callback of the same unit
/// (`VIOMMU_STATUS_REENTERED`). `notify` and `opaque` must be callable from any thread.
#[no_mangle]
pub extern "C" fn viommu_notifier_register(
    unit: *const viommu_unit,
    source_id: u16,
    budget: u64,
    notify: viommu_map_notify_fn,
    opaque: *mut c_void,
    id: *mut u64,
) -> viommu_status {
    boundary(|| {
        let mut id = try_out!(id);
        id.write(0);
        let unit = &try_ref!(unit).unit;
        let notify = notify.ok_or(viommu_status::NullPointer)?;
        check_not_notifying(unit)?;
        let registered =
            unit.host()
                .notifiers
                .register(unit, SourceId(source_id), budget, notify, opaque);
        id.write(registered);
        Ok(())
    })
}

/// Stop a notifier. Nothing is reported (the caller tears down its mirror itself).
///
/// Returns `VIOMMU_STATUS_INVALID_ARGUMENT` for an id that is not registered. Thread-safe;
/// not from inside a map-notification callback of the same unit
/// (`VIOMMU_STATUS_REENTERED`). After it returns, the callback is not called again.
#[no_mangle]
pub extern "C" fn viommu_notifier_unregister(unit: *const viommu_unit, id: u64) -> viommu_status {
    boundary(|| {
        let unit = &try_ref!(unit).unit;
        check_not_notifying(unit)?;
        if unit.host().notifiers.unregister(id) {
            Ok(())
        } else {
            Err(viommu_status::InvalidArgument)
        }
    })
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn function_masks_ignore_the_named_bits() {
        let sid = 0x0108; // 01:01.0
        assert!(source_matches(sid, 0, 0x0108));
        assert!(!source_matches(sid, 0, 0x010C));
        assert!(source_matches(sid, 1, 0x010C));
        assert!(!source_matches(sid, 1, 0x010A));
        assert!(source_matches(sid, 2, 0x010E));
        assert!(!source_matches(sid, 2, 0x010F));
        assert!(source_matches(sid, 3, 0x010F));
        assert!(!source_matches(sid, 3, 0x0110));
    }

    #[test]
    fn extent_covers_straddling_pages() {
        let mut pages = BTreeMap::new();
        let big = Page {
            output_base: 0,
            size_shift: 21,
            permissions: Access::READ,
        };
        pages.insert(0x20_0000, big);
        assert_eq!(extent(&pages, 0x20_1000, 0x20_1FFF), (0x20_0000, 0x3F_FFFF));
        assert_eq!(extent(&pages, 0x40_0000, 0x40_0FFF), (0x40_0000, 0x40_0FFF));
    }
}
