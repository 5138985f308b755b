//! `viommu_host_ops`: the embedder's callbacks, and the engine's `GuestMemory` and `Host`
//! built on them.

use std::ffi::{c_char, c_int, c_void, CString};
use std::sync::{Arc, OnceLock, Weak};

use viommu::{GuestMemory, Host, InvalidationEvent, MemoryError, MsiMessage, Unit};

use crate::boundary::Versioned;
use crate::notify::Notifiers;

/// Read `len` bytes of guest-physical memory at `gpa` into `buf`; return 0 on success,
/// anything else if the access failed (no memory there). Called from any thread, and with
/// the unit's register lock held: it must not call back into the unit.
pub type viommu_dma_read_fn = Option<
    unsafe extern "C" fn(opaque: *mut c_void, gpa: u64, buf: *mut c_void, len: usize) -> c_int,
>;

/// Write `len` bytes from `buf` to guest-physical memory at `gpa`; return 0 on success.
/// Same rules as `viommu_dma_read_fn`.
pub type viommu_dma_write_fn = Option<
    unsafe extern "C" fn(opaque: *mut c_void, gpa: u64, buf: *const c_void, len: usize) -> c_int,
>;

/// Atomically replace the little-endian 64-bit word at guest-physical `gpa` with
/// `desired` if it holds `expected`, and store the value it held in `*actual` (equal to
/// `expected` exactly when it was replaced); return 0 if the access worked. Used to post
/// interrupts while vCPUs run; when NULL, a read then a write is used instead.
pub type viommu_dma_cmpxchg64_fn = Option<
    unsafe extern "C" fn(
        opaque: *mut c_void,
        gpa: u64,
        expected: u64,
        desired: u64,
        actual: *mut u64,
    ) -> c_int,
>;

/// Deliver an interrupt message the unit generated (the fault event, the invalidation
/// completion event): a DMA write of `data` (32 bits) to `address`. Called from any
/// thread, never with the unit's lock held.
pub type viommu_msi_raise_fn =
    Option<unsafe extern "C" fn(opaque: *mut c_void, address: u64, data: u32)>;

/// Hear of an invalidation the guest performed. Called from the thread that made the
/// register write, after the unit's lock was released; may call back into the unit.
pub type viommu_invalidated_fn =
    Option<unsafe extern "C" fn(opaque: *mut c_void, event: *const viommu_invalidation)>;

/// Receive a diagnostic message (NUL-terminated, valid only during the call).
pub type viommu_log_fn = Option<
    unsafe extern "C" fn(opaque: *mut c_void, level: viommu_log_level, message: *const c_char),
>;

/// How serious a log message is.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum viommu_log_level {
    /// The call failed, or the library had to drop something.
    Error = 1,
    /// Something the embedder should know: a budget ran out, a guest did something odd.
    Warn = 2,
    /// Informational.
    Info = 3,
    /// Debugging detail.
    Debug = 4,
}

/// The embedder's side of a unit: how it reaches guest memory, where its interrupts go,
/// who hears of invalidations. Every callback gets the `opaque` pointer given to
/// `viommu_unit_new`.
///
/// A NULL callback makes its operation fail gracefully: with `dma_read` NULL every table
/// read fails (translations fault), with `dma_write` NULL status writes fail (the queue
/// reports an error), `msi_raise`, `invalidated` and `log` NULL drop what they would be
/// given, and `dma_cmpxchg64` NULL falls back to `dma_read` then `dma_write`.
///
/// Callbacks may be called from any thread at once (translation runs on the caller's
/// thread), so they and `opaque` must be thread-safe. They must not unwind (no C++
/// exceptions through them). Versioned like `viommu_config`: set `struct_size` to
/// `sizeof(viommu_host_ops)`; the unit copies the struct, so it need not outlive the
/// call to `viommu_unit_new`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct viommu_host_ops {
    /// `sizeof(viommu_host_ops)`.
    pub struct_size: usize,
    /// Guest memory reads (tables, descriptors).
    pub dma_read: viommu_dma_read_fn,
    /// Guest memory writes (invalidation wait status, posted-interrupt descriptors).
    pub dma_write: viommu_dma_write_fn,
    /// Optional atomic compare-exchange of a guest qword.
    pub dma_cmpxchg64: viommu_dma_cmpxchg64_fn,
    /// Interrupt messages from the unit.
    pub msi_raise: viommu_msi_raise_fn,
    /// Invalidation notices.
    pub invalidated: viommu_invalidated_fn,
    /// Optional diagnostics.
    pub log: viommu_log_fn,
}

// SAFETY: `#[repr(C)]`, `struct_size: usize` first, and every other field a nullable
// function pointer, for which every value C can store (a function or NULL) is valid.
unsafe impl Versioned for viommu_host_ops {
    const MIN_SIZE: usize = std::mem::size_of::<Self>();
    fn defaults() -> Self {
        Self {
            struct_size: std::mem::size_of::<Self>(),
            dma_read: None,
            dma_write: None,
            dma_cmpxchg64: None,
            msi_raise: None,
            invalidated: None,
            log: None,
        }
    }
    fn set_struct_size(&mut self, size: usize) {
        self.struct_size = size;
    }
}

/// What an invalidation notice is about.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum viommu_invalidation_kind {
    /// Every context-cache entry: every device's translation may have changed.
    ContextGlobal = 1,
    /// Context entries of `domain_id`.
    ContextDomain = 2,
    /// Context entries of `source_id` with the function bits `function_mask` names
    /// ignored, in `domain_id`.
    ContextDevice = 3,
    /// Every IOTLB entry.
    IotlbGlobal = 4,
    /// IOTLB entries of `domain_id`.
    IotlbDomain = 5,
    /// IOTLB entries of `domain_id` for `2^address_mask` 4 KiB pages at `address`
    /// (`size` bytes); `leaf_only` is the invalidation hint.
    IotlbPages = 6,
    /// A device-TLB invalidation for `source_id` (physical function `pf_source_id`) of
    /// `size` bytes at `address`, for the VMM to forward to an ATS-capable device.
    DeviceTlb = 7,
    /// Every interrupt entry cache entry (drop cached interrupt routes).
    InterruptEntriesGlobal = 8,
    /// `2^index_mask` interrupt entries starting at `index`.
    InterruptEntries = 9,
}

/// An invalidation the guest performed, as told to `viommu_invalidated_fn`. Fields that
/// `kind` does not name are zero.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct viommu_invalidation {
    /// What was invalidated.
    pub kind: viommu_invalidation_kind,
    /// Domain id.
    pub domain_id: u16,
    /// Source id (bus:device.function).
    pub source_id: u16,
    /// Physical-function source id (DEVICE_TLB).
    pub pf_source_id: u16,
    /// FM: which source-id function bits are ignored — 0 none, 1 bit 2, 2 bits 2:1, 3
    /// bits 2:0 (CONTEXT_DEVICE).
    pub function_mask: u8,
    /// The range is `2^address_mask` 4 KiB pages (IOTLB_PAGES).
    pub address_mask: u8,
    /// Only leaf entries changed (IOTLB_PAGES).
    pub leaf_only: bool,
    /// The range is `2^index_mask` interrupt entries (INTERRUPT_ENTRIES).
    pub index_mask: u8,
    /// First interrupt index (INTERRUPT_ENTRIES).
    pub index: u16,
    /// First byte of the range (IOTLB_PAGES, DEVICE_TLB).
    pub address: u64,
    /// Bytes in the range (IOTLB_PAGES, DEVICE_TLB); 0 if it does not fit in 64 bits.
    pub size: u64,
}

impl From<InvalidationEvent> for viommu_invalidation {
    fn from(event: InvalidationEvent) -> Self {
        let none = Self {
            kind: viommu_invalidation_kind::ContextGlobal,
            domain_id: 0,
            source_id: 0,
            pf_source_id: 0,
            function_mask: 0,
            address_mask: 0,
            leaf_only: false,
            index_mask: 0,
            index: 0,
            address: 0,
            size: 0,
        };
        use viommu_invalidation_kind as K;
        match event {
            InvalidationEvent::ContextGlobal => none,
            InvalidationEvent::ContextDomain { domain_id } => Self {
                kind: K::ContextDomain,
                domain_id,
                ..none
            },
            InvalidationEvent::ContextDevice {
                domain_id,
                source_id,
                function_mask,
            } => Self {
                kind: K::ContextDevice,
                domain_id,
                source_id,
                function_mask,
                ..none
            },
            InvalidationEvent::IotlbGlobal => Self {
                kind: K::IotlbGlobal,
                ..none
            },
            InvalidationEvent::IotlbDomain { domain_id } => Self {
                kind: K::IotlbDomain,
                domain_id,
                ..none
            },
            InvalidationEvent::IotlbPages {
                domain_id,
                address,
                address_mask,
                leaf_only,
            } => Self {
                kind: K::IotlbPages,
                domain_id,
                address,
                address_mask,
                leaf_only,
                size: 4096u64
                    .checked_shl(u32::from(address_mask))
                    .filter(|_| address_mask < 52)
                    .unwrap_or(0),
                ..none
            },
            InvalidationEvent::DeviceTlb {
                source_id,
                pf_source_id,
                address,
                size,
            } => Self {
                kind: K::DeviceTlb,
                source_id,
                pf_source_id,
                address,
                size,
                ..none
            },
            InvalidationEvent::InterruptEntriesGlobal => Self {
                kind: K::InterruptEntriesGlobal,
                ..none
            },
            InvalidationEvent::InterruptEntries { index, index_mask } => Self {
                kind: K::InterruptEntries,
                index,
                index_mask,
                ..none
            },
        }
    }
}

/// The callbacks and their `opaque`, as given to `viommu_unit_new`.
#[derive(Clone, Copy)]
pub(crate) struct Callbacks {
    ops: viommu_host_ops,
    opaque: *mut c_void,
}

// SAFETY: `viommu_unit_new` documents that the callbacks may be called, with `opaque`,
// from any thread at once; the struct holds nothing else.
unsafe impl Send for Callbacks {}
// SAFETY: as for `Send`.
unsafe impl Sync for Callbacks {}

impl Callbacks {
    pub(crate) fn new(ops: viommu_host_ops, opaque: *mut c_void) -> Self {
        Self { ops, opaque }
    }

    /// Pass a message to the log callback, if there is one.
    pub(crate) fn log(&self, level: viommu_log_level, message: &str) {
        let Some(log) = self.ops.log else { return };
        let message = CString::new(message.replace('\0', " ")).unwrap_or_default();
        // SAFETY: a non-NULL callback from `viommu_host_ops`, called with the embedder's
        // `opaque` and a NUL-terminated string valid for the call, as it documents.
        unsafe { log(self.opaque, level, message.as_ptr()) };
    }
}

/// Guest memory through `dma_read`, `dma_write` and `dma_cmpxchg64`.
pub(crate) struct CMemory(pub(crate) Callbacks);

impl GuestMemory for CMemory {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        let read = self.0.ops.dma_read.ok_or(MemoryError)?;
        // SAFETY: a non-NULL callback from `viommu_host_ops`, called with the embedder's
        // `opaque` and a buffer valid for writes of `len` bytes, as it documents.
        let rc = unsafe { read(self.0.opaque, gpa, buf.as_mut_ptr().cast(), buf.len()) };
        if rc == 0 {
            Ok(())
        } else {
            Err(MemoryError)
        }
    }

    fn write(&self, gpa: u64, data: &[u8]) -> Result<(), MemoryError> {
        let write = self.0.ops.dma_write.ok_or(MemoryError)?;
        // SAFETY: a non-NULL callback from `viommu_host_ops`, called with the embedder's
        // `opaque` and a buffer valid for reads of `len` bytes, as it documents.
        let rc = unsafe { write(self.0.opaque, gpa, data.as_ptr().cast(), data.len()) };
        if rc == 0 {
            Ok(())
        } else {
            Err(MemoryError)
        }
    }

    fn compare_exchange_u64(
        &self,
        gpa: u64,
        current: u64,
        new: u64,
    ) -> Result<Result<u64, u64>, MemoryError> {
        let Some(cmpxchg) = self.0.ops.dma_cmpxchg64 else {
            return viommu::memory::compare_exchange_by_read_write(self, gpa, current, new);
        };
        let mut actual = 0u64;
        // SAFETY: a non-NULL callback from `viommu_host_ops`, called with the embedder's
        // `opaque` and a pointer to a u64 valid for writes, as it documents.
        let rc = unsafe { cmpxchg(self.0.opaque, gpa, current, new, &mut actual) };
        match rc {
            0 if actual == current => Ok(Ok(actual)),
            0 => Ok(Err(actual)),
            _ => Err(MemoryError),
        }
    }
}

/// The unit type behind a `viommu_unit`.
pub(crate) type CUnit = Unit<CMemory, CHost>;

/// Interrupts and invalidation notices to the callbacks; invalidations also drive the
/// map notifiers.
pub(crate) struct CHost {
    pub(crate) callbacks: Callbacks,
    pub(crate) notifiers: Notifiers,
    /// The unit that owns this host, for the notifiers to re-walk tables through.
    unit: OnceLock<Weak<CUnit>>,
}

impl CHost {
    pub(crate) fn new(callbacks: Callbacks) -> Self {
        Self {
            callbacks,
            notifiers: Notifiers::default(),
            unit: OnceLock::new(),
        }
    }

    /// Tell the host which unit owns it (once, right after the unit is built).
    pub(crate) fn attach(&self, unit: &Arc<CUnit>) {
        let _ = self.unit.set(Arc::downgrade(unit));
    }
}

impl Host for CHost {
    fn raise_msi(&self, msi: MsiMessage) {
        let Some(raise) = self.callbacks.ops.msi_raise else {
            return;
        };
        // SAFETY: a non-NULL callback from `viommu_host_ops`, called with the embedder's
        // `opaque`, as it documents.
        unsafe { raise(self.callbacks.opaque, msi.address, msi.data) };
    }

    fn invalidated(&self, event: InvalidationEvent) {
        if let Some(invalidated) = self.callbacks.ops.invalidated {
            let notice = viommu_invalidation::from(event);
            // SAFETY: a non-NULL callback from `viommu_host_ops`, called with the
            // embedder's `opaque` and a pointer valid for the call, as it documents.
            unsafe { invalidated(self.callbacks.opaque, &notice) };
        }
        // The engine delivers notices after releasing its lock, so walking the tables
        // through the unit from here is allowed.
        if let Some(unit) = self.unit.get().and_then(Weak::upgrade) {
            self.notifiers.invalidated(&unit, event);
        }
    }
}
