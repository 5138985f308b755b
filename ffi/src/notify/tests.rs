//! Map notifier scenarios through the exported functions, with the engine's test fixtures
//! playing the guest (its memory behind C-ABI callbacks, its tables, its driver).

use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::Mutex;

use viommu::testing::{perm, ContextSpec, GuestDriver, GuestTables, TestMemory};
use viommu::GuestMemory;

use super::*;
use crate::boundary::Versioned;
use crate::config::viommu_config;
use crate::dma::{viommu_dma_request, viommu_translate, viommu_translation, VIOMMU_ACCESS_READ};
use crate::host::viommu_host_ops;
use crate::unit::{viommu_reset, viommu_unit_free, viommu_unit_new};

const SID: u16 = 0x18;
const DOMAIN: u16 = 1;
const LEVELS: u8 = 4;

struct Guest {
    memory: TestMemory,
    logs: Mutex<Vec<String>>,
}

/// # Safety
/// `opaque` is the harness's `Guest`.
unsafe fn guest<'a>(opaque: *mut c_void) -> &'a Guest {
    // SAFETY: the harness passes its boxed `Guest`, which outlives the unit.
    unsafe { &*opaque.cast::<Guest>() }
}

unsafe extern "C" fn dma_read(
    opaque: *mut c_void,
    gpa: u64,
    buf: *mut c_void,
    len: usize,
) -> c_int {
    // SAFETY: the engine passes a buffer valid for writes of `len` bytes.
    let buf = unsafe { std::slice::from_raw_parts_mut(buf.cast::<u8>(), len) };
    // SAFETY: `opaque` is the harness's `Guest`.
    let guest = unsafe { guest(opaque) };
    guest.memory.read(gpa, buf).map_or(-1, |()| 0)
}

unsafe extern "C" fn dma_write(
    opaque: *mut c_void,
    gpa: u64,
    buf: *const c_void,
    len: usize,
) -> c_int {
    // SAFETY: the engine passes a buffer valid for reads of `len` bytes.
    let data = unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), len) };
    // SAFETY: `opaque` is the harness's `Guest`.
    let guest = unsafe { guest(opaque) };
    guest.memory.write(gpa, data).map_or(-1, |()| 0)
}

unsafe extern "C" fn log(opaque: *mut c_void, _level: viommu_log_level, message: *const c_char) {
    // SAFETY: the library passes a NUL-terminated string valid for the call.
    let message = unsafe { CStr::from_ptr(message) }
        .to_string_lossy()
        .into_owned();
    // SAFETY: `opaque` is the harness's `Guest`.
    let guest = unsafe { guest(opaque) };
    guest.logs.lock().unwrap().push(message);
}

unsafe extern "C" fn record(opaque: *mut c_void, event: *const viommu_map_event) {
    // SAFETY: the harness registers its boxed event list, which outlives the notifier.
    let events = unsafe { &*opaque.cast::<Mutex<Vec<viommu_map_event>>>() };
    // SAFETY: the library passes an event valid for the call.
    let event = unsafe { *event };
    events.lock().unwrap().push(event);
}

/// A unit whose guest memory is a `TestMemory`, and one event list for its notifiers.
struct Harness {
    guest: Box<Guest>,
    events: Box<Mutex<Vec<viommu_map_event>>>,
    unit: *mut viommu_unit,
}

impl Harness {
    fn new(caching_mode: bool) -> Self {
        let guest = Box::new(Guest {
            memory: TestMemory::new(8 << 20),
            logs: Mutex::new(Vec::new()),
        });
        let mut config = viommu_config::defaults();
        config.caching_mode = caching_mode;
        let ops = viommu_host_ops {
            dma_read: Some(dma_read),
            dma_write: Some(dma_write),
            log: Some(log),
            ..viommu_host_ops::defaults()
        };
        let mut unit = std::ptr::null_mut();
        let opaque = &*guest as *const Guest as *mut c_void;
        assert_eq!(
            viommu_unit_new(&config, &ops, opaque, &mut unit),
            viommu_status::Ok
        );
        Self {
            guest,
            events: Box::new(Mutex::new(Vec::new())),
            unit,
        }
    }

    fn engine(&self) -> &CUnit {
        // SAFETY: `unit` came from `viommu_unit_new` and is freed only on drop.
        unsafe { &(*self.unit).unit }
    }

    fn memory(&self) -> &TestMemory {
        &self.guest.memory
    }

    fn register(&self, budget: u64) -> u64 {
        let mut id = 0;
        let opaque = &*self.events as *const Mutex<Vec<viommu_map_event>> as *mut c_void;
        let status =
            viommu_notifier_register(self.unit, SID, budget, Some(record), opaque, &mut id);
        assert_eq!(status, viommu_status::Ok);
        id
    }

    /// The events since the last call, as (kind, iova, size, output, permissions).
    fn take(&self) -> Vec<(viommu_map_event_kind, u64, u64, u64, u8)> {
        std::mem::take(&mut *self.events.lock().unwrap())
            .into_iter()
            .map(|e| (e.kind, e.iova, e.size, e.output, e.permissions))
            .collect()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        viommu_unit_free(self.unit);
    }
}

use viommu_map_event_kind::{IdentityBegin, Map, Unmap};

#[test]
fn without_caching_mode_each_covering_invalidation_is_one_range_unmap() {
    let h = Harness::new(false);
    let mut tables = GuestTables::new(h.memory());
    let table = tables.new_domain_table();
    tables.set_context(SID, ContextSpec::translated(DOMAIN, table));
    tables.map(table, LEVELS, 0x1000, 0x20_0000, 12, perm::RW);
    let mut driver = GuestDriver::new(h.engine(), h.memory());
    driver.boot(tables.root_table);

    h.register(0);
    assert_eq!(h.take(), [], "no MAP without caching mode");

    tables.map(table, LEVELS, 0x5000, 0x30_0000, 12, perm::RW);
    driver.invalidate_iotlb_pages(DOMAIN, 0x5000, 0).unwrap();
    assert_eq!(h.take(), [(Unmap, 0x5000, 0x1000, 0, 0)]);

    driver.invalidate_iotlb_domain(DOMAIN).unwrap();
    assert_eq!(h.take(), [(Unmap, 0, 1 << 48, 0, 0)]);

    driver.invalidate_iotlb_domain(DOMAIN + 1).unwrap();
    assert_eq!(h.take(), [], "another domain");
}

#[test]
fn reset_unmaps_everything_and_begins_identity() {
    let h = Harness::new(true);
    let mut tables = GuestTables::new(h.memory());
    let table = tables.new_domain_table();
    tables.set_context(SID, ContextSpec::translated(DOMAIN, table));
    tables.map(table, LEVELS, 0x1000, 0x20_0000, 12, perm::RW);
    tables.map(table, LEVELS, 0x2000, 0x21_0000, 12, perm::R);
    GuestDriver::new(h.engine(), h.memory()).boot(tables.root_table);

    h.register(0);
    assert_eq!(
        h.take(),
        [
            (Map, 0x1000, 0x1000, 0x20_0000, 3),
            (Map, 0x2000, 0x1000, 0x21_0000, 1)
        ]
    );
    assert_eq!(viommu_reset(h.unit), viommu_status::Ok);
    assert_eq!(
        h.take(),
        [
            (Unmap, 0x1000, 0x1000, 0x20_0000, 3),
            (Unmap, 0x2000, 0x1000, 0x21_0000, 1),
            (IdentityBegin, 0, 0, 0, 0)
        ]
    );
}

#[test]
fn a_large_page_split_under_a_narrow_invalidation_is_rewalked_whole() {
    let h = Harness::new(true);
    let mut tables = GuestTables::new(h.memory());
    let table = tables.new_domain_table();
    tables.set_context(SID, ContextSpec::translated(DOMAIN, table));
    tables.map(table, LEVELS, 0x20_0000, 0x40_0000, 21, perm::RW);
    let mut driver = GuestDriver::new(h.engine(), h.memory());
    driver.boot(tables.root_table);
    h.register(0);
    assert_eq!(h.take(), [(Map, 0x20_0000, 0x20_0000, 0x40_0000, 3)]);

    tables.unmap(table, LEVELS, 0x20_0000, 21);
    tables.map(table, LEVELS, 0x20_0000, 0x60_0000, 12, perm::RW);
    tables.map(table, LEVELS, 0x3F_F000, 0x70_0000, 12, perm::R);
    driver.invalidate_iotlb_pages(DOMAIN, 0x20_1000, 0).unwrap();
    assert_eq!(
        h.take(),
        [
            (Unmap, 0x20_0000, 0x20_0000, 0x40_0000, 3),
            (Map, 0x20_0000, 0x1000, 0x60_0000, 3),
            (Map, 0x3F_F000, 0x1000, 0x70_0000, 1)
        ]
    );
}

#[test]
fn a_budget_bounds_every_rewalk_and_is_logged() {
    let h = Harness::new(true);
    let mut tables = GuestTables::new(h.memory());
    let table = tables.new_domain_table();
    tables.set_context(SID, ContextSpec::translated(DOMAIN, table));
    for page in 1..=3u64 {
        tables.map(
            table,
            LEVELS,
            page << 12,
            0x20_0000 + (page << 12),
            12,
            perm::RW,
        );
    }
    let mut driver = GuestDriver::new(h.engine(), h.memory());
    driver.boot(tables.root_table);

    h.register(2);
    assert_eq!(h.take().len(), 2);
    assert_eq!(h.guest.logs.lock().unwrap().len(), 1);
    assert!(h.guest.logs.lock().unwrap()[0].contains("budget"));

    // The guest removes a page the notifier saw: still reported, within the budget.
    tables.unmap(table, LEVELS, 0x1000, 12);
    driver.invalidate_iotlb_domain(DOMAIN).unwrap();
    assert_eq!(
        h.take(),
        [
            (Unmap, 0x1000, 0x1000, 0x20_1000, 3),
            (Map, 0x3000, 0x1000, 0x20_3000, 3)
        ]
    );
}

/// A notifier whose callback tries everything it must not do.
struct Meddler {
    unit: *const viommu_unit,
    statuses: Mutex<Vec<viommu_status>>,
}

unsafe extern "C" fn meddle(opaque: *mut c_void, _event: *const viommu_map_event) {
    // SAFETY: the test registers a `Meddler` that outlives the notifier.
    let meddler = unsafe { &*opaque.cast::<Meddler>() };
    let mut id = 0;
    let statuses = [
        viommu_notifier_register(meddler.unit, SID, 0, Some(record), opaque, &mut id),
        viommu_notifier_unregister(meddler.unit, 1),
        viommu_reset(meddler.unit),
        crate::unit::viommu_mmio_write(meddler.unit, 0x18, 4, 0),
    ];
    // Refused: the unit stays usable.
    viommu_unit_free(meddler.unit as *mut viommu_unit);
    let request = viommu_dma_request {
        source_id: SID,
        access: VIOMMU_ACCESS_READ,
        has_pasid: false,
        pasid: 0,
        address: 0x1000,
    };
    let mut out = std::mem::MaybeUninit::<viommu_translation>::uninit();
    let translated = viommu_translate(meddler.unit, &request, out.as_mut_ptr());
    let mut recorded = meddler.statuses.lock().unwrap();
    recorded.extend(statuses);
    recorded.push(translated);
}

#[test]
fn a_callback_cannot_change_what_is_being_reported() {
    let h = Harness::new(true);
    let mut tables = GuestTables::new(h.memory());
    let table = tables.new_domain_table();
    tables.set_context(SID, ContextSpec::translated(DOMAIN, table));
    tables.map(table, LEVELS, 0x1000, 0x20_0000, 12, perm::RW);
    GuestDriver::new(h.engine(), h.memory()).boot(tables.root_table);

    let meddler = Meddler {
        unit: h.unit,
        statuses: Mutex::new(Vec::new()),
    };
    let mut id = 0;
    let opaque = &meddler as *const Meddler as *mut c_void;
    assert_eq!(
        viommu_notifier_register(h.unit, SID, 0, Some(meddle), opaque, &mut id),
        viommu_status::Ok
    );
    use viommu_status::{Ok as Done, Reentered};
    assert_eq!(
        *meddler.statuses.lock().unwrap(),
        [Reentered, Reentered, Reentered, Reentered, Done]
    );
    assert!(h.guest.logs.lock().unwrap()[0].contains("refused"));
    assert_eq!(viommu_notifier_unregister(h.unit, id), viommu_status::Ok);
}
