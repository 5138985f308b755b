//! The edge between C and Rust: the one panic boundary every export runs its body in, and
//! the one family of conversions from raw pointers to references that every export uses.
//!
//! No export catches panics or checks a pointer for NULL by hand: a body runs inside
//! [`boundary`], and turns each pointer argument into a reference with [`try_ref!`],
//! [`try_out!`], [`try_out_opt!`], [`try_slice!`], [`try_slice_mut!`] or
//! [`try_versioned!`] (a struct that grows by `struct_size`), which return
//! `VIOMMU_STATUS_NULL_POINTER` for NULL and `VIOMMU_STATUS_INVALID_ARGUMENT` for a
//! misaligned pointer through `?`.

use std::ffi::c_char;
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::NonNull;

use crate::status::{viommu_status, Result};

/// What an export returns, and what it returns when its body panicked.
pub(crate) trait FfiReturn {
    /// What the body produces.
    type Body;
    /// The export's return value for a body that finished.
    fn finished(body: Self::Body) -> Self;
    /// The export's return value for a body that panicked.
    fn panicked() -> Self;
}

impl FfiReturn for viommu_status {
    type Body = Result<()>;
    fn finished(body: Result<()>) -> Self {
        match body {
            Ok(()) => viommu_status::Ok,
            Err(status) => status,
        }
    }
    fn panicked() -> Self {
        viommu_status::Panic
    }
}

impl FfiReturn for () {
    type Body = ();
    fn finished(_: ()) -> Self {}
    fn panicked() -> Self {}
}

impl FfiReturn for *const c_char {
    type Body = *const c_char;
    fn finished(body: *const c_char) -> Self {
        body
    }
    fn panicked() -> Self {
        c"".as_ptr()
    }
}

/// Run an export's body, turning a panic into the export's panic value (for statuses,
/// `VIOMMU_STATUS_PANIC`) so that no unwind ever crosses into C.
pub(crate) fn boundary<R: FfiReturn>(body: impl FnOnce() -> R::Body) -> R {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(value) => R::finished(value),
        Err(_) => R::panicked(),
    }
}

/// A C out-pointer checked to be non-NULL and aligned: written whole, never read, so the
/// memory behind it may be uninitialized.
pub(crate) struct Out<'a, T> {
    ptr: NonNull<T>,
    _lifetime: PhantomData<&'a mut T>,
}

impl<'a, T> Out<'a, T> {
    /// Store `value` (the previous contents are overwritten without being dropped).
    pub(crate) fn write(&mut self, value: T) {
        // SAFETY: `ptr` is non-NULL and aligned (checked by `out`), and valid for writes
        // of a `T` for the call (the caller of `out` promised it).
        unsafe { self.ptr.as_ptr().write(value) }
    }

    /// Store `value` and hand out the now-initialized target, so that a hot path can
    /// fill in fields in place (narrow stores the C caller's field reads forward from)
    /// instead of building a copy and storing it whole.
    pub(crate) fn init(self, value: T) -> &'a mut T {
        // SAFETY: `ptr` is non-NULL, aligned and valid for writes of a `T` for `'a`
        // (checked by `out`, promised by its caller).
        unsafe { self.ptr.as_ptr().write(value) };
        // SAFETY: the write above initialized the `T`, which stays valid for `'a`, and
        // `self` is consumed, so this reference is the only access to it.
        unsafe { &mut *self.ptr.as_ptr() }
    }
}

/// `ptr` as a shared reference.
///
/// # Safety
/// `ptr` is NULL, misaligned, or valid for reads of a `T` that stays unchanged for `'a`.
pub(crate) unsafe fn reference<'a, T>(ptr: *const T) -> Result<&'a T> {
    if ptr.is_null() {
        return Err(viommu_status::NullPointer);
    }
    if !ptr.is_aligned() {
        return Err(viommu_status::InvalidArgument);
    }
    // SAFETY: non-NULL and aligned (checked above), and valid for `'a` (the caller).
    Ok(unsafe { &*ptr })
}

/// `ptr` as an out-pointer.
///
/// # Safety
/// `ptr` is NULL, misaligned, or valid for writes of a `T` for `'a`.
pub(crate) unsafe fn out<'a, T>(ptr: *mut T) -> Result<Out<'a, T>> {
    let ptr = NonNull::new(ptr).ok_or(viommu_status::NullPointer)?;
    if !ptr.as_ptr().is_aligned() {
        return Err(viommu_status::InvalidArgument);
    }
    Ok(Out {
        ptr,
        _lifetime: PhantomData,
    })
}

/// `len` bytes at `ptr` as a slice.
///
/// # Safety
/// `ptr` is NULL or valid for reads of `len` bytes that stay unchanged for `'a`.
pub(crate) unsafe fn slice<'a>(ptr: *const u8, len: usize) -> Result<&'a [u8]> {
    if ptr.is_null() {
        return Err(viommu_status::NullPointer);
    }
    if isize::try_from(len).is_err() {
        return Err(viommu_status::InvalidArgument);
    }
    // SAFETY: non-NULL, bytes need no alignment, len fits isize (checked above), and the
    // memory is valid for `'a` (the caller).
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// `len` bytes at `ptr` as a mutable slice, zeroed first (so the caller's buffer may be
/// uninitialized).
///
/// # Safety
/// `ptr` is NULL or valid for writes of `len` bytes, not accessed otherwise, for `'a`.
pub(crate) unsafe fn slice_mut<'a>(ptr: *mut u8, len: usize) -> Result<&'a mut [u8]> {
    if ptr.is_null() {
        return Err(viommu_status::NullPointer);
    }
    if isize::try_from(len).is_err() {
        return Err(viommu_status::InvalidArgument);
    }
    // SAFETY: non-NULL and valid for writes of `len` bytes (the caller).
    unsafe { ptr.write_bytes(0, len) };
    // SAFETY: as above, and now initialized; nothing else accesses it for `'a` (the
    // caller).
    Ok(unsafe { std::slice::from_raw_parts_mut(ptr, len) })
}

/// A `#[repr(C)]` struct that can grow: its first field is `size_t struct_size`, which C
/// sets to `sizeof` the struct as it was compiled. New fields are only ever appended, and
/// each new field's all-zero value means "as before".
///
/// # Safety
/// Implementors are `#[repr(C)]`, their first field is `struct_size: usize`, and every
/// field is valid for any value C can store in the field's declared C type.
pub(crate) unsafe trait Versioned: Copy {
    /// The size of the first released layout: the smallest `struct_size` accepted.
    const MIN_SIZE: usize;
    /// The value whose fields stand in for those the caller's layout lacks.
    fn defaults() -> Self;
    /// Record the layout now held.
    fn set_struct_size(&mut self, size: usize);
}

/// Largest `struct_size` believed: anything larger is garbage, not a future layout.
const MAX_STRUCT_SIZE: usize = 4096;

/// Read a versioned struct by value, whatever layout the caller compiled against: the
/// fields it has are copied, the fields it lacks take [`Versioned::defaults`], and fields
/// this library does not know must be zero (else INVALID_ARGUMENT).
///
/// # Safety
/// `ptr` is NULL, misaligned, or points to a struct whose first field is a `size_t`
/// holding a size the memory is valid for reads of.
pub(crate) unsafe fn versioned<T: Versioned>(ptr: *const T) -> Result<T> {
    if ptr.is_null() {
        return Err(viommu_status::NullPointer);
    }
    if !ptr.is_aligned() {
        return Err(viommu_status::InvalidArgument);
    }
    // SAFETY: non-NULL and aligned; the first field is the size (`Versioned`) and the
    // memory holds at least that field (the caller).
    let size = unsafe { ptr.cast::<usize>().read() };
    if !(T::MIN_SIZE..=MAX_STRUCT_SIZE).contains(&size) {
        return Err(viommu_status::InvalidArgument);
    }
    let bytes = ptr.cast::<u8>();
    let ours = std::mem::size_of::<T>();
    for i in ours..size {
        // SAFETY: `i < size`, and the memory is valid for reads of `size` bytes (caller).
        if unsafe { bytes.wrapping_add(i).read() } != 0 {
            return Err(viommu_status::InvalidArgument);
        }
    }
    let mut value = T::defaults();
    // SAFETY: both regions are valid for `min(size, ours)` bytes (the caller for the
    // source, `value` for the destination) and do not overlap; every field the copy
    // reaches is valid for what C stored in it (`Versioned`).
    unsafe {
        std::ptr::copy_nonoverlapping(bytes, (&mut value as *mut T).cast::<u8>(), size.min(ours));
    }
    value.set_struct_size(ours);
    Ok(value)
}

/// A pointer argument as `&T`: `?` returns NULL_POINTER or INVALID_ARGUMENT (misaligned).
macro_rules! try_ref {
    ($ptr:expr) => {
        // SAFETY: every export documents that its pointer arguments are NULL or valid for
        // the call; this macro is only applied to an export's own arguments.
        unsafe { $crate::boundary::reference($ptr) }?
    };
}

/// An out-pointer argument as [`Out`](crate::boundary::Out).
macro_rules! try_out {
    ($ptr:expr) => {
        // SAFETY: every export documents that its out-pointers are NULL or valid for
        // writes for the call; this macro is only applied to an export's own arguments.
        unsafe { $crate::boundary::out($ptr) }?
    };
}

/// An optional out-pointer argument: NULL gives `None`.
macro_rules! try_out_opt {
    ($ptr:expr) => {{
        let ptr = $ptr;
        if ptr.is_null() {
            None
        } else {
            Some(try_out!(ptr))
        }
    }};
}

/// A buffer argument (pointer and length) as `&[u8]`.
macro_rules! try_slice {
    ($ptr:expr, $len:expr) => {
        // SAFETY: every export documents that its buffer arguments are NULL or valid for
        // reads of their length for the call; only applied to an export's own arguments.
        unsafe { $crate::boundary::slice($ptr, $len) }?
    };
}

/// An output buffer argument (pointer and length) as `&mut [u8]`, zeroed.
macro_rules! try_slice_mut {
    ($ptr:expr, $len:expr) => {
        // SAFETY: every export documents that its output buffers are NULL or valid for
        // writes of their length for the call; only applied to an export's own arguments.
        unsafe { $crate::boundary::slice_mut($ptr, $len) }?
    };
}

/// A versioned struct argument (see [`Versioned`](crate::boundary::Versioned)) by value.
macro_rules! try_versioned {
    ($ptr:expr) => {
        // SAFETY: every export taking a versioned struct documents that it is NULL or
        // points to the struct with `struct_size` set; only applied to its own arguments.
        unsafe { $crate::boundary::versioned($ptr) }?
    };
}

pub(crate) use {try_out, try_out_opt, try_ref, try_slice, try_slice_mut, try_versioned};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_the_panic_status() {
        let status: viommu_status = boundary(|| panic!("boom"));
        assert_eq!(status, viommu_status::Panic);
        let status: viommu_status = boundary(|| Err(viommu_status::Fault));
        assert_eq!(status, viommu_status::Fault);
        let status: viommu_status = boundary(|| Ok(()));
        assert_eq!(status, viommu_status::Ok);
    }

    fn read(ptr: *const u64) -> viommu_status {
        boundary(|| {
            let value: &u64 = try_ref!(ptr);
            assert_eq!(*value, 7);
            Ok(())
        })
    }

    #[test]
    fn pointers_are_checked() {
        assert_eq!(read(std::ptr::null()), viommu_status::NullPointer);
        let values = [7u64, 7];
        assert_eq!(read(&values[0]), viommu_status::Ok);
        let misaligned = (values.as_ptr() as *const u8).wrapping_add(1) as *const u64;
        assert_eq!(read(misaligned), viommu_status::InvalidArgument);
    }
}
