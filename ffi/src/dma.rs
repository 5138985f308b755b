//! DMA translation: `viommu_translate`, `viommu_translate_uncached`, `viommu_replay`.

use std::ffi::c_void;

use viommu::dma::enumerate::DeviceAddressSpace;
use viommu::{Access, DmaError, DmaFault, DmaRequest, Mapping, SourceId, Translation};

use crate::boundary::{boundary, try_out, try_out_opt, try_ref};
use crate::status::{viommu_status, Result};
use crate::unit::viommu_unit;

/// Access bit: read.
pub const VIOMMU_ACCESS_READ: u8 = 1;
/// Access bit: write.
pub const VIOMMU_ACCESS_WRITE: u8 = 2;
/// Access bits: read and write (an atomic needs both).
pub const VIOMMU_ACCESS_READ_WRITE: u8 = 3;

/// A DMA request as it arrives at the remapping hardware.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct viommu_dma_request {
    /// Requester id: bus in bits 15:8, device in 7:3, function in 2:0.
    pub source_id: u16,
    /// What the request does: `VIOMMU_ACCESS_READ`, `_WRITE` or `_READ_WRITE` (anything
    /// else is `VIOMMU_STATUS_INVALID_ARGUMENT`).
    pub access: u8,
    /// Whether the request carries a PASID (legacy mode: always an Unsupported Request).
    pub has_pasid: bool,
    /// The PASID, when `has_pasid`.
    pub pasid: u32,
    /// Input (I/O virtual) address.
    pub address: u64,
}

impl viommu_dma_request {
    fn to_engine(self) -> Result<DmaRequest> {
        if !(1..=3).contains(&self.access) {
            return Err(viommu_status::InvalidArgument);
        }
        Ok(DmaRequest {
            source_id: SourceId(self.source_id),
            pasid: self.has_pasid.then_some(self.pasid),
            address: self.address,
            access: Access::from_bits(self.access),
        })
    }
}

/// A translated page: every address in `[input_base, input_base + (1 << size_shift))`
/// maps to the same offset from `output_base`. A VMM may cache it whole until a map
/// notification or invalidation notice covers it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct viommu_mapping {
    /// Input address of the first byte of the page.
    pub input_base: u64,
    /// Output (guest-physical) address of the first byte of the page.
    pub output_base: u64,
    /// log2 of the page size: 12, 21 or 30.
    pub size_shift: u8,
    /// `VIOMMU_ACCESS_*` bits the page allows (the request's are always among them).
    pub permissions: u8,
    /// Whether `domain_id` is meaningful (false when DMA remapping is off).
    pub has_domain: bool,
    /// The device's domain.
    pub domain_id: u16,
}

impl From<&Mapping> for viommu_mapping {
    fn from(m: &Mapping) -> Self {
        Self {
            input_base: m.input_base,
            output_base: m.output_base,
            size_shift: m.size_shift,
            permissions: m.permissions.bits(),
            has_domain: m.domain_id.is_some(),
            domain_id: m.domain_id.unwrap_or(0),
        }
    }
}

/// A remapping fault.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct viommu_fault {
    /// Faulting input address.
    pub address: u64,
    /// Requester.
    pub source_id: u16,
    /// The spec's fault reason code (e.g. 0x05 write not permitted; VT-d Appendix A).
    pub reason: u8,
    /// Whether it went into a fault recording register (false when FPD suppressed it,
    /// the registers overflowed, or the call does not record faults).
    pub recorded: bool,
}

impl From<&DmaFault> for viommu_fault {
    fn from(f: &DmaFault) -> Self {
        Self {
            address: f.address,
            source_id: f.source_id.0,
            reason: f.reason.0,
            recorded: f.recorded,
        }
    }
}

/// What a translation produced.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum viommu_translation_kind {
    /// Nothing: the call failed (see its status; for FAULT, `fault`).
    None = 0,
    /// A memory access through `mapping`.
    Mapped = 1,
    /// A write to the interrupt range: an interrupt request. Route the write's address
    /// and data through `viommu_remap_interrupt` with the same source id.
    Interrupt = 2,
}

/// The result of `viommu_translate`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct viommu_translation {
    /// What the request turned into.
    pub kind: viommu_translation_kind,
    /// The page, when `kind` is MAPPED.
    pub mapping: viommu_mapping,
    /// The fault, when the status is `VIOMMU_STATUS_FAULT`.
    pub fault: viommu_fault,
}

impl viommu_translation {
    const NONE: Self = Self {
        kind: viommu_translation_kind::None,
        mapping: viommu_mapping {
            input_base: 0,
            output_base: 0,
            size_shift: 0,
            permissions: 0,
            has_domain: false,
            domain_id: 0,
        },
        fault: viommu_fault {
            address: 0,
            source_id: 0,
            reason: 0,
            recorded: false,
        },
    };

    /// Fill in the result's fields in place (this is already NONE).
    fn set_result(&mut self, result: &core::result::Result<Translation, DmaError>) {
        match result {
            Ok(Translation::Mapped(m)) => {
                self.kind = viommu_translation_kind::Mapped;
                self.mapping.input_base = m.input_base;
                self.mapping.output_base = m.output_base;
                self.mapping.size_shift = m.size_shift;
                self.mapping.permissions = m.permissions.bits();
                self.mapping.has_domain = m.domain_id.is_some();
                self.mapping.domain_id = m.domain_id.unwrap_or(0);
            }
            Ok(Translation::Interrupt) => self.kind = viommu_translation_kind::Interrupt,
            Err(DmaError::Fault(f)) => self.fault = f.into(),
            Err(DmaError::UnsupportedRequest) => {}
        }
    }
}

/// The translate functions share everything but the engine call.
fn translate_with(
    unit: *const viommu_unit,
    request: *const viommu_dma_request,
    out: *mut viommu_translation,
    translate: impl FnOnce(
        &crate::host::CUnit,
        &DmaRequest,
    ) -> core::result::Result<Translation, DmaError>,
) -> viommu_status {
    boundary(|| {
        let out = try_out!(out).init(viommu_translation::NONE);
        let unit = &try_ref!(unit).unit;
        let request = try_ref!(request).to_engine()?;
        let result = translate(unit, &request);
        out.set_result(&result);
        result.map(|_| ()).map_err(viommu_status::from)
    })
}

/// Translate a DMA request: the call a VMM makes for every device DMA (or on a miss in
/// its own cache of `viommu_mapping`s).
///
/// `VIOMMU_STATUS_OK` with `out->kind` MAPPED (access the output address) or INTERRUPT;
/// `VIOMMU_STATUS_FAULT` with `out->fault` (the fault was recorded in the fault registers
/// and the fault event raised, as the spec says: complete the DMA with an error);
/// `VIOMMU_STATUS_UNSUPPORTED_REQUEST`. `out` is written whenever it is a valid pointer.
///
/// Thread-safe, and lock-free on a cache hit: call it from every device thread at once.
#[no_mangle]
pub extern "C" fn viommu_translate(
    unit: *const viommu_unit,
    request: *const viommu_dma_request,
    out: *mut viommu_translation,
) -> viommu_status {
    translate_with(unit, request, out, |unit, request| unit.translate(request))
}

/// Translate without the caches and without recording faults: every table is read as it
/// is now (a fault is returned with `recorded` false and no fault event). For debugging
/// and for looking without side effects.
///
/// Thread-safe.
#[no_mangle]
pub extern "C" fn viommu_translate_uncached(
    unit: *const viommu_unit,
    request: *const viommu_dma_request,
    out: *mut viommu_translation,
) -> viommu_status {
    translate_with(unit, request, out, |unit, request| {
        unit.translate_uncached(request)
    })
}

/// Where the unit's translation generation lives, for a VMM that caches translations in
/// front of `viommu_translate` (a per-thread cache in the VMM costs less than any call).
///
/// `*out` receives the address of a 64-bit counter, valid until `viommu_unit_free`, that
/// moves after every change that can alter a successful translation (context-cache and
/// IOTLB invalidations of any granularity, SRTP, TE, `viommu_reset`, `viommu_restore`)
/// and before the guest sees that change complete. Read it with an atomic acquire load
/// (`__atomic_load_n(counter, __ATOMIC_ACQUIRE)`) and never write it. To cache: read the
/// counter *before* calling `viommu_translate`, keep a MAPPED result with that value, and
/// use it only while the counter still reads the same and only for the access its
/// `permissions` allow; anything else goes to `viommu_translate`, which records faults.
/// docs/ffi.md shows the pattern.
#[no_mangle]
pub extern "C" fn viommu_translation_generation(
    unit: *const viommu_unit,
    out: *mut *const u64,
) -> viommu_status {
    boundary(|| {
        let mut out = try_out!(out);
        let unit = &try_ref!(unit).unit;
        out.write(unit.translation_generation_counter().as_ptr().cast_const());
        Ok(())
    })
}

/// How requests without PASID from `source_id` are handled now, as `viommu_translate` sees
/// it (from the context cache, filled on a miss; nothing is recorded).
///
/// UNTRANSLATED and PASS_THROUGH mean that every request below 2^`guest_address_width`
/// and outside the interrupt range (0xFEE0_0000..=0xFEEF_FFFF) maps to itself with read
/// and write permission: the VMM may send the device's DMA straight to guest memory, not
/// calling `viommu_translate`, until the next CONTEXT_GLOBAL, CONTEXT_DOMAIN or
/// CONTEXT_DEVICE invalidation notice (SRTP and TE changes raise CONTEXT_GLOBAL),
/// `viommu_reset` or `viommu_restore`, and must then ask again. Ask after the call that
/// raised the notice has returned, not from the `invalidated` callback. docs/ffi.md shows
/// the pattern.
///
/// Thread-safe.
#[no_mangle]
pub extern "C" fn viommu_device_address_space(
    unit: *const viommu_unit,
    source_id: u16,
    out: *mut viommu_address_space,
) -> viommu_status {
    boundary(|| {
        let mut out = try_out!(out);
        out.write(viommu_address_space::NONE);
        let unit = &try_ref!(unit).unit;
        out.write(viommu_address_space::from_engine(
            unit.device_address_space(SourceId(source_id)),
        ));
        Ok(())
    })
}

/// How a device's requests are handled, as `viommu_replay` or
/// `viommu_device_address_space` found it.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum viommu_address_space_kind {
    /// Nothing known (the call failed before looking).
    None = 0,
    /// DMA remapping is off: every address maps to itself.
    Untranslated = 1,
    /// A pass-through context: every address maps to itself, in `domain_id`.
    PassThrough = 2,
    /// Second-level tables of `domain_id`: the pages reported are all there is.
    Translated = 3,
    /// The device's context is unusable (`fault_reason` says why): nothing is mapped.
    Blocked = 4,
}

/// A device's address space, as `viommu_replay` or `viommu_device_address_space` found it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct viommu_address_space {
    /// How the device's requests are handled.
    pub kind: viommu_address_space_kind,
    /// Whether `domain_id` is meaningful.
    pub has_domain: bool,
    /// The device's domain (PASS_THROUGH, TRANSLATED).
    pub domain_id: u16,
    /// The fault a request would get (BLOCKED).
    pub fault_reason: u8,
}

impl viommu_address_space {
    const NONE: Self = Self {
        kind: viommu_address_space_kind::None,
        has_domain: false,
        domain_id: 0,
        fault_reason: 0,
    };

    fn from_engine(space: DeviceAddressSpace) -> Self {
        use viommu_address_space_kind as K;
        match space {
            DeviceAddressSpace::Untranslated => Self {
                kind: K::Untranslated,
                ..Self::NONE
            },
            DeviceAddressSpace::PassThrough { domain_id } => Self {
                kind: K::PassThrough,
                has_domain: true,
                domain_id,
                ..Self::NONE
            },
            DeviceAddressSpace::Translated { domain_id } => Self {
                kind: K::Translated,
                has_domain: true,
                domain_id,
                ..Self::NONE
            },
            DeviceAddressSpace::Blocked(reason) => Self {
                kind: K::Blocked,
                fault_reason: reason.0,
                ..Self::NONE
            },
        }
    }
}

/// Receive one mapping from `viommu_replay`; `mapping` is valid only during the call.
pub type viommu_mapping_fn =
    Option<unsafe extern "C" fn(opaque: *mut c_void, mapping: *const viommu_mapping)>;

/// Report every page mapped now for `source_id` that intersects `[first, last]`, in
/// address order, to `callback` (with `opaque`): what a late attacher (a VFIO container
/// set up after the guest mapped) needs. Tables are read as they are now; no cache is
/// used and no fault recorded.
///
/// At most `budget` pages are reported; `VIOMMU_STATUS_BUDGET_EXHAUSTED` says the range
/// maps more (continue from the end of the last page reported). If `space` is not NULL
/// it receives how the device's requests are handled: for UNTRANSLATED and PASS_THROUGH
/// nothing is reported, since every address maps to itself.
///
/// Thread-safe; the callback may call back into the unit.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn viommu_replay(
    unit: *const viommu_unit,
    source_id: u16,
    first: u64,
    last: u64,
    budget: u64,
    callback: viommu_mapping_fn,
    opaque: *mut c_void,
    space: *mut viommu_address_space,
) -> viommu_status {
    boundary(|| {
        let mut space = try_out_opt!(space);
        if let Some(space) = space.as_mut() {
            space.write(viommu_address_space::NONE);
        }
        let unit = &try_ref!(unit).unit;
        let callback = callback.ok_or(viommu_status::NullPointer)?;
        let sid = SourceId(source_id);
        let result = unit.for_each_mapping(sid, first, last, budget, |m| {
            let mapping = viommu_mapping::from(m);
            // SAFETY: the caller's non-NULL callback and `opaque`, called with a pointer
            // valid for the call, as `viommu_mapping_fn` documents.
            unsafe { callback(opaque, &mapping) };
        });
        // A walk that ran out of budget does not say what it walked: an empty range
        // resolves the context again without visiting a page.
        let found = match result {
            Ok(found) => found,
            Err(_) => unit
                .for_each_mapping(sid, 1, 0, 0, |_| {})
                .unwrap_or(DeviceAddressSpace::Blocked(viommu::FaultReason(0))),
        };
        if let Some(space) = space.as_mut() {
            space.write(viommu_address_space::from_engine(found));
        }
        result
            .map(|_| ())
            .map_err(|_| viommu_status::BudgetExhausted)
    })
}
