//! Target `ffi` (feature `ffi`): arbitrary call sequences through the C ABI of
//! `viommu-ffi`, with NULL, misaligned and valid pointers, versioned structs whose
//! `struct_size` and trailing bytes are arbitrary, bad register sizes, short buffers and
//! garbage blobs. Guest memory is a `TestMemory` behind the C callbacks; a twin
//! `viommu::Unit` over the same memory gets every call that succeeded.
//!
//! Invariants: no export ever returns `VIOMMU_STATUS_PANIC`, and every status is one of
//! the defined ones; a NULL pointer argument gives `NULL_POINTER`, a misaligned one
//! `INVALID_ARGUMENT`; successful register reads, translations and remaps agree with the
//! twin unit driven through the Rust API, and restore accepts exactly the blobs the twin
//! accepts. Pointers are never garbage addresses: the C contract (pointers NULL or valid
//! for the call) is kept, everything else is fuzzed.

use std::ffi::{c_int, c_void};
use std::mem::MaybeUninit;

use arbitrary::Arbitrary;
use viommu::testing::TestMemory;
use viommu::{
    Access, DmaError, DmaRequest, GuestMemory, Interrupt, InterruptError, InterruptRequest, NoHost,
    SourceId, Translation, Unit,
};
use viommu_ffi::config::viommu_config;
use viommu_ffi::dma::{
    viommu_address_space, viommu_address_space_kind, viommu_device_address_space,
    viommu_dma_request, viommu_translation, viommu_translation_kind,
};
use viommu_ffi::host::viommu_host_ops;
use viommu_ffi::irq::{
    viommu_interrupt, viommu_interrupt_kind, viommu_interrupt_request, viommu_post_outcome,
    viommu_posted_interrupt,
};
use viommu_ffi::status::viommu_status;
use viommu_ffi::unit::viommu_unit;

use crate::common::{ConfigBits, MemWrite};
use crate::mmio::Offset;

/// Guest memory size for this target.
pub const MEMORY: usize = 2 << 20;

/// How a pointer argument is passed.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ptr {
    /// A valid, aligned pointer.
    Valid,
    /// NULL.
    Null,
    /// Valid memory, one byte off alignment.
    Misaligned,
}

/// One C call.
#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// `viommu_mmio_read`.
    MmioRead {
        /// NULL unit instead of the live one.
        null_unit: bool,
        /// Offset.
        offset: Offset,
        /// Size (any u32).
        size: u32,
        /// The out pointer.
        out: Ptr,
    },
    /// `viommu_mmio_write`.
    MmioWrite {
        /// NULL unit.
        null_unit: bool,
        /// Offset.
        offset: Offset,
        /// Size (any u32).
        size: u32,
        /// Value.
        value: u64,
    },
    /// `viommu_reset`.
    Reset {
        /// NULL unit.
        null_unit: bool,
    },
    /// `viommu_saved_size` then `viommu_save` into a buffer of `len` bytes.
    Save {
        /// NULL unit.
        null_unit: bool,
        /// Buffer length.
        len: u16,
        /// The buffer pointer.
        buf: Ptr,
        /// The written pointer.
        written: Ptr,
    },
    /// `viommu_restore` of the last saved blob, changed.
    Restore {
        /// NULL unit.
        null_unit: bool,
        /// (position, XOR) changes.
        flips: Vec<(u16, u8)>,
        /// Drop this many bytes from the end.
        cut: u8,
        /// NULL buffer.
        null_buf: bool,
    },
    /// `viommu_translate` or `viommu_translate_uncached`.
    Translate {
        /// Uncached.
        uncached: bool,
        /// NULL unit.
        null_unit: bool,
        /// Request pointer.
        request: Ptr,
        /// Out pointer.
        out: Ptr,
        /// Source id.
        sid: u16,
        /// Access bits (any byte: out of range must be rejected).
        access: u8,
        /// PASID flag.
        has_pasid: bool,
        /// PASID.
        pasid: u32,
        /// Address.
        address: u64,
    },
    /// `viommu_remap_interrupt`.
    Remap {
        /// NULL unit.
        null_unit: bool,
        /// Request pointer.
        request: Ptr,
        /// Out pointer.
        out: Ptr,
        /// Source id.
        sid: u16,
        /// Address (0xFEEx_xxxx | low bits, or any).
        address: u64,
        /// Data.
        data: u32,
    },
    /// `viommu_post_interrupt`.
    Post {
        /// NULL unit.
        null_unit: bool,
        /// Posted pointer.
        posted: Ptr,
        /// Out pointer.
        out: Ptr,
        /// Descriptor address.
        descriptor: u32,
        /// Vector.
        vector: u8,
        /// Urgent.
        urgent: bool,
    },
    /// `viommu_status_str` of any value.
    StatusStr(u32),
    /// Guest memory changes.
    Poke(MemWrite),
    /// `viommu_device_address_space`.
    DeviceAddressSpace {
        /// NULL unit.
        null_unit: bool,
        /// Out pointer.
        out: Ptr,
        /// Source id.
        sid: u16,
    },
}

/// The input of the `ffi` target.
#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// Configuration.
    pub config: ConfigBits,
    /// `struct_size` of the config: 0 → exact, else this value (≤ 256 bytes of valid memory).
    pub config_size: u8,
    /// Trailing bytes after the config struct (must be zero to be accepted).
    pub config_tail: u8,
    /// `struct_size` of the host ops: 0 → exact, else this value.
    pub ops_size: u8,
    /// Which host callbacks are NULL (bit 0 read, 1 write, 2 cmpxchg).
    pub null_callbacks: u8,
    /// Initial guest memory.
    pub memory: Vec<MemWrite>,
    /// The calls.
    pub calls: Vec<Call>,
}

unsafe extern "C" fn dma_read(
    opaque: *mut c_void,
    gpa: u64,
    buf: *mut c_void,
    len: usize,
) -> c_int {
    // SAFETY: `opaque` is the `TestMemory` `run` passed, alive for the unit's lifetime;
    // the unit passes a buffer valid for `len` bytes.
    let (mem, buf) = unsafe {
        (
            &*(opaque as *const TestMemory),
            std::slice::from_raw_parts_mut(buf.cast::<u8>(), len),
        )
    };
    c_int::from(mem.read(gpa, buf).is_err())
}

unsafe extern "C" fn dma_write(
    opaque: *mut c_void,
    gpa: u64,
    buf: *const c_void,
    len: usize,
) -> c_int {
    // SAFETY: as in `dma_read`.
    let (mem, buf) = unsafe {
        (
            &*(opaque as *const TestMemory),
            std::slice::from_raw_parts(buf.cast::<u8>(), len),
        )
    };
    c_int::from(mem.write(gpa, buf).is_err())
}

unsafe extern "C" fn dma_cmpxchg64(
    opaque: *mut c_void,
    gpa: u64,
    expected: u64,
    desired: u64,
    actual: *mut u64,
) -> c_int {
    // SAFETY: as in `dma_read`; `actual` is valid for a write.
    let mem = unsafe { &*(opaque as *const TestMemory) };
    match mem.compare_exchange_u64(gpa, expected, desired) {
        Ok(Ok(v)) | Ok(Err(v)) => {
            // SAFETY: see above.
            unsafe { actual.write(v) };
            0
        }
        Err(_) => 1,
    }
}

/// Storage for one pointer argument, 16-byte aligned so that `Misaligned` stays inside it.
#[repr(C, align(16))]
struct Slot<T> {
    value: MaybeUninit<T>,
    pad: [u8; 16],
}

impl<T> Slot<T> {
    fn new(value: Option<T>) -> Self {
        Self {
            value: value.map_or(MaybeUninit::uninit(), MaybeUninit::new),
            pad: [0; 16],
        }
    }
    fn ptr(&mut self, how: Ptr) -> *mut T {
        match how {
            Ptr::Valid => self.value.as_mut_ptr(),
            Ptr::Null => std::ptr::null_mut(),
            Ptr::Misaligned => self.value.as_mut_ptr().cast::<u8>().wrapping_add(1).cast(),
        }
    }
}

fn known(status: viommu_status) -> viommu_status {
    let code = status as u32;
    assert!(code <= 17, "unknown status {code}");
    status
}

/// The status a call with these pointers must return if any is NULL or misaligned (NULL
/// checked first, in argument order, as far as the contract says; here: any of them).
fn check_pointers(status: viommu_status, ptrs: &[Ptr], what: &str) -> bool {
    if ptrs.contains(&Ptr::Null) {
        assert!(
            matches!(
                status,
                viommu_status::NullPointer | viommu_status::InvalidArgument
            ),
            "{what} with a NULL pointer returned {status:?}"
        );
        return false;
    }
    if ptrs.contains(&Ptr::Misaligned) {
        assert_eq!(
            status,
            viommu_status::InvalidArgument,
            "{what} with a misaligned pointer"
        );
        return false;
    }
    true
}

fn unit_ptr(unit: *mut viommu_unit, null: bool) -> *const viommu_unit {
    if null {
        std::ptr::null()
    } else {
        unit
    }
}

/// Run one input.
pub fn run(input: &Input) {
    let config = input.config.config();
    let memory = Box::new(TestMemory::new(MEMORY));
    for w in &input.memory {
        let _ = memory.write(
            (u64::from(w.addr) % MEMORY as u64) & !7,
            &w.value.to_le_bytes(),
        );
    }
    let opaque = (&*memory as *const TestMemory).cast_mut().cast::<c_void>();

    // The config, in 256 bytes of valid memory so any struct_size up to 256 is in bounds.
    let mut c = MaybeUninit::<viommu_config>::uninit();
    assert_eq!(
        viommu_ffi::config::viommu_config_default(c.as_mut_ptr()),
        viommu_status::Ok
    );
    // SAFETY: viommu_config_default wrote it.
    let mut c = unsafe { c.assume_init() };
    c.guest_address_width = config.guest_address_width;
    c.host_address_width = config.host_address_width;
    c.domain_id_bits = config.domain_id_bits;
    c.max_address_mask = config.max_address_mask;
    c.fault_records = config.fault_records;
    c.caching_mode = config.caching_mode;
    c.large_pages_2m = config.large_pages_2m;
    c.large_pages_1g = config.large_pages_1g;
    c.required_write_buffer_flush = config.required_write_buffer_flush;
    c.page_selective_invalidation = config.page_selective_invalidation;
    c.coherent = config.coherent;
    c.queued_invalidation = config.queued_invalidation;
    c.device_tlb = config.device_tlb;
    c.interrupt_remapping = config.interrupt_remapping;
    c.extended_interrupt_mode = config.extended_interrupt_mode;
    c.posted_interrupts = config.posted_interrupts;
    c.pass_through = config.pass_through;
    let exact = std::mem::size_of::<viommu_config>();
    let mut config_buf = [0u64; 32];
    assert!(exact <= 256);
    // SAFETY: the buffer is 256 bytes, aligned for u64 (as viommu_config, which has a usize
    // first), and viommu_config is plain data.
    unsafe {
        std::ptr::copy_nonoverlapping(
            (&c as *const viommu_config).cast::<u8>(),
            config_buf.as_mut_ptr().cast::<u8>(),
            exact,
        );
    }
    let config_size = if input.config_size == 0 {
        exact
    } else {
        usize::from(input.config_size)
    };
    config_buf[0] = config_size as u64;
    if config_size > exact && input.config_tail != 0 {
        let bytes = config_buf.as_mut_ptr().cast::<u8>();
        // SAFETY: exact < config_size ≤ 255 < 256.
        unsafe { bytes.add(config_size - 1).write(input.config_tail) };
    }
    let ops = viommu_host_ops {
        struct_size: if input.ops_size == 0 {
            std::mem::size_of::<viommu_host_ops>()
        } else {
            usize::from(input.ops_size).min(std::mem::size_of::<viommu_host_ops>())
        },
        dma_read: (input.null_callbacks & 1 == 0).then_some(dma_read as _),
        dma_write: (input.null_callbacks & 2 == 0).then_some(dma_write as _),
        dma_cmpxchg64: (input.null_callbacks & 4 == 0).then_some(dma_cmpxchg64 as _),
        msi_raise: None,
        invalidated: None,
        log: None,
    };
    let mut unit: *mut viommu_unit = std::ptr::null_mut();
    let status = known(viommu_ffi::unit::viommu_unit_new(
        config_buf.as_ptr().cast::<viommu_config>(),
        &ops,
        opaque,
        &mut unit,
    ));
    assert_ne!(status, viommu_status::Panic);
    if status != viommu_status::Ok {
        assert!(unit.is_null(), "a failed viommu_unit_new left a unit");
        return;
    }
    assert!(!unit.is_null());
    let twin = Box::new(Unit::new(config, &*memory, NoHost).expect("valid config"));
    let mut last_blob: Vec<u8> = Vec::new();
    // Callbacks missing: the twin can't model a unit without memory; compare only when
    // every memory callback is there.
    // A shorter struct_size leaves later config fields at their defaults: the twin's
    // configuration is then not the C unit's.
    let compare = input.null_callbacks & 3 == 0 && config_size >= exact;

    for call in &input.calls {
        match call {
            Call::MmioRead {
                null_unit,
                offset,
                size,
                out,
            } => {
                let mut slot = Slot::new(Some(0u64));
                let status = known(viommu_ffi::unit::viommu_mmio_read(
                    unit_ptr(unit, *null_unit),
                    offset.get(),
                    *size,
                    slot.ptr(*out),
                ));
                if *null_unit {
                    assert_ne!(status, viommu_status::Ok);
                } else if check_pointers(status, &[*out], "viommu_mmio_read")
                    && status == viommu_status::Ok
                    && compare
                {
                    // SAFETY: Valid pointer, written by the call.
                    let value = unsafe { slot.value.assume_init() };
                    assert_eq!(
                        value,
                        twin.mmio_read(offset.get(), *size as u8),
                        "mmio_read"
                    );
                }
            }
            Call::MmioWrite {
                null_unit,
                offset,
                size,
                value,
            } => {
                let status = known(viommu_ffi::unit::viommu_mmio_write(
                    unit_ptr(unit, *null_unit),
                    offset.get(),
                    *size,
                    *value,
                ));
                if status == viommu_status::Ok {
                    assert!(!null_unit);
                    twin.mmio_write(offset.get(), *size as u8, *value);
                }
            }
            Call::Reset { null_unit } => {
                let status = known(viommu_ffi::unit::viommu_reset(unit_ptr(unit, *null_unit)));
                if status == viommu_status::Ok {
                    twin.reset();
                }
            }
            Call::Save {
                null_unit,
                len,
                buf,
                written,
            } => {
                let mut size = 0usize;
                let s = known(viommu_ffi::unit::viommu_saved_size(
                    unit_ptr(unit, *null_unit),
                    &mut size,
                ));
                if s == viommu_status::Ok && compare {
                    assert_eq!(size, twin.saved_size());
                }
                let mut storage = vec![0u64; usize::from(*len) / 8 + 2];
                let base = storage.as_mut_ptr().cast::<u8>();
                let buf_ptr = match buf {
                    Ptr::Valid => base,
                    Ptr::Null => std::ptr::null_mut(),
                    Ptr::Misaligned => base.wrapping_add(1),
                };
                let mut w = Slot::new(Some(0usize));
                let status = known(viommu_ffi::unit::viommu_save(
                    unit_ptr(unit, *null_unit),
                    buf_ptr,
                    usize::from(*len),
                    w.ptr(*written),
                ));
                if status == viommu_status::Ok {
                    // SAFETY: written by the call through a valid pointer.
                    let n = unsafe { w.value.assume_init() };
                    assert!(n <= usize::from(*len), "save wrote past the buffer");
                    // SAFETY: the call wrote n ≤ len bytes at buf_ptr, inside storage.
                    last_blob = unsafe { std::slice::from_raw_parts(buf_ptr, n) }.to_vec();
                    if compare {
                        let mut mine = vec![0u8; twin.saved_size()];
                        twin.save(&mut mine).unwrap();
                        assert_eq!(mine, last_blob, "the C unit saved a different blob");
                    }
                }
            }
            Call::Restore {
                null_unit,
                flips,
                cut,
                null_buf,
            } => {
                let mut blob = last_blob.clone();
                for &(at, x) in flips {
                    if !blob.is_empty() {
                        let i = usize::from(at) % blob.len();
                        blob[i] ^= x;
                    }
                }
                blob.truncate(blob.len().saturating_sub(usize::from(*cut)));
                let ptr = if *null_buf {
                    std::ptr::null()
                } else {
                    blob.as_ptr()
                };
                let status = known(viommu_ffi::unit::viommu_restore(
                    unit_ptr(unit, *null_unit),
                    ptr,
                    blob.len(),
                ));
                if !null_unit && !null_buf && compare {
                    let twin_result = twin.restore(&blob);
                    assert_eq!(
                        status == viommu_status::Ok,
                        twin_result.is_ok(),
                        "restore: C {status:?}, Rust {twin_result:?}"
                    );
                }
            }
            Call::Translate {
                uncached,
                null_unit,
                request,
                out,
                sid,
                access,
                has_pasid,
                pasid,
                address,
            } => {
                let req = viommu_dma_request {
                    source_id: *sid,
                    access: *access,
                    has_pasid: *has_pasid,
                    pasid: *pasid,
                    address: *address,
                };
                let mut rs = Slot::new(Some(req));
                let mut os = Slot::<viommu_translation>::new(None);
                let f = if *uncached {
                    viommu_ffi::dma::viommu_translate_uncached
                } else {
                    viommu_ffi::dma::viommu_translate
                };
                let status = known(f(
                    unit_ptr(unit, *null_unit),
                    rs.ptr(*request),
                    os.ptr(*out),
                ));
                if *null_unit
                    || !check_pointers(status, &[*request, *out], "viommu_translate")
                    || status == viommu_status::InvalidArgument
                {
                    continue;
                }
                // SAFETY: a valid out pointer is written by every call that got this far.
                let t = unsafe { os.value.assume_init() };
                let r = DmaRequest {
                    source_id: SourceId(*sid),
                    pasid: has_pasid.then_some(*pasid),
                    address: *address,
                    access: Access::from_bits(*access),
                };
                let expected = if *uncached {
                    twin.translate_uncached(&r)
                } else {
                    twin.translate(&r)
                };
                if !compare {
                    continue;
                }
                match expected {
                    Ok(Translation::Mapped(m)) => {
                        assert_eq!(status, viommu_status::Ok);
                        assert_eq!(t.kind, viommu_translation_kind::Mapped);
                        assert_eq!(t.mapping.input_base, m.input_base);
                        assert_eq!(t.mapping.output_base, m.output_base);
                        assert_eq!(t.mapping.size_shift, m.size_shift);
                        assert_eq!(t.mapping.permissions, m.permissions.bits());
                    }
                    Ok(Translation::Interrupt) => {
                        assert_eq!(status, viommu_status::Ok);
                        assert_eq!(t.kind, viommu_translation_kind::Interrupt);
                    }
                    Err(DmaError::Fault(f)) => {
                        assert_eq!(status, viommu_status::Fault);
                        assert_eq!(t.fault.reason, f.reason.0);
                    }
                    Err(DmaError::UnsupportedRequest) => {
                        assert_eq!(status, viommu_status::UnsupportedRequest);
                    }
                }
            }
            Call::DeviceAddressSpace {
                null_unit,
                out,
                sid,
            } => {
                let mut os = Slot::<viommu_address_space>::new(None);
                let status = known(viommu_device_address_space(
                    unit_ptr(unit, *null_unit),
                    *sid,
                    os.ptr(*out),
                ));
                if *null_unit {
                    if *out == Ptr::Valid {
                        assert_eq!(status, viommu_status::NullPointer, "NULL unit");
                    }
                    continue;
                }
                if !check_pointers(status, &[*out], "viommu_device_address_space") {
                    continue;
                }
                assert_eq!(status, viommu_status::Ok);
                // SAFETY: a valid out pointer is written by a call that returned OK.
                let got = unsafe { os.value.assume_init() };
                let expected = twin.device_address_space(SourceId(*sid));
                if !compare {
                    continue;
                }
                use viommu::dma::enumerate::DeviceAddressSpace as D;
                use viommu_address_space_kind as K;
                match expected {
                    D::Untranslated => assert_eq!(got.kind, K::Untranslated),
                    D::PassThrough { domain_id } => {
                        assert_eq!((got.kind, got.domain_id), (K::PassThrough, domain_id));
                    }
                    D::Translated { domain_id } => {
                        assert_eq!((got.kind, got.domain_id), (K::Translated, domain_id));
                    }
                    D::Blocked(reason) => {
                        assert_eq!((got.kind, got.fault_reason), (K::Blocked, reason.0));
                    }
                }
            }
            Call::Remap {
                null_unit,
                request,
                out,
                sid,
                address,
                data,
            } => {
                let req = viommu_interrupt_request {
                    address: *address,
                    data: *data,
                    source_id: *sid,
                };
                let mut rs = Slot::new(Some(req));
                let mut os = Slot::<viommu_interrupt>::new(None);
                let status = known(viommu_ffi::irq::viommu_remap_interrupt(
                    unit_ptr(unit, *null_unit),
                    rs.ptr(*request),
                    os.ptr(*out),
                ));
                if *null_unit
                    || !check_pointers(status, &[*request, *out], "viommu_remap")
                    || status == viommu_status::InvalidArgument
                {
                    continue;
                }
                // SAFETY: written by the call (valid out pointer).
                let i = unsafe { os.value.assume_init() };
                let expected = twin.remap_interrupt(&InterruptRequest {
                    source_id: SourceId(*sid),
                    address: *address,
                    data: *data,
                });
                if !compare {
                    continue;
                }
                match expected {
                    Ok(Interrupt::PassThrough(_)) => {
                        assert_eq!(i.kind, viommu_interrupt_kind::PassThrough)
                    }
                    Ok(Interrupt::Remapped(r)) => {
                        assert_eq!(i.kind, viommu_interrupt_kind::Remapped);
                        assert_eq!(i.remapped.destination, r.destination);
                        assert_eq!(i.remapped.vector, r.vector);
                    }
                    Ok(Interrupt::Posted(p)) => {
                        assert_eq!(i.kind, viommu_interrupt_kind::Posted);
                        assert_eq!(i.posted.vector, p.vector);
                    }
                    Err(InterruptError::Fault(f)) => {
                        assert_eq!(status, viommu_status::Fault);
                        assert_eq!(i.fault.reason, f.reason.0);
                    }
                    Err(InterruptError::NotAnInterrupt) => {
                        assert_eq!(status, viommu_status::NotAnInterrupt);
                    }
                }
            }
            Call::Post {
                null_unit,
                posted,
                out,
                descriptor,
                vector,
                urgent,
            } => {
                let p = viommu_posted_interrupt {
                    descriptor_address: u64::from(*descriptor),
                    index: 0,
                    vector: *vector,
                    urgent: *urgent,
                };
                let mut ps = Slot::new(Some(p));
                let mut os = Slot::<viommu_post_outcome>::new(None);
                let status = known(viommu_ffi::irq::viommu_post_interrupt(
                    unit_ptr(unit, *null_unit),
                    ps.ptr(*posted),
                    os.ptr(*out),
                ));
                if !*null_unit {
                    check_pointers(status, &[*posted, *out], "viommu_post_interrupt");
                }
            }
            Call::StatusStr(code) => {
                let s = viommu_ffi::status::viommu_status_str(*code);
                assert!(!s.is_null(), "viommu_status_str returned NULL");
            }
            Call::Poke(w) => {
                let _ = memory.write(
                    (u64::from(w.addr) % MEMORY as u64) & !7,
                    &w.value.to_le_bytes(),
                );
            }
        }
    }
    viommu_ffi::unit::viommu_unit_free(unit);
    viommu_ffi::unit::viommu_unit_free(std::ptr::null_mut());
}
