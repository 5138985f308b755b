//! `viommu_unit`: creating and freeing a unit, its register window, save/restore, reset.

use std::ffi::c_void;
use std::sync::Arc;

use viommu::spec::registers::REGISTER_WINDOW_SIZE;
use viommu::{Config, ConfigError, Unit};

use crate::boundary::{boundary, try_out, try_ref, try_slice, try_slice_mut, try_versioned};
use crate::config::viommu_config;
use crate::host::{viommu_host_ops, viommu_log_level, CHost, CMemory, CUnit, Callbacks};
use crate::notify::check_not_notifying;
use crate::status::{viommu_status, Result};

/// One VT-d remapping hardware unit (a DRHD). Opaque: create with `viommu_unit_new`, free
/// with `viommu_unit_free`.
pub struct viommu_unit {
    pub(crate) unit: Arc<CUnit>,
}

/// Create a unit in its reset state.
///
/// `config` and `ops` are copied (they need not outlive the call); `opaque` is passed to
/// every callback in `ops`. On success `*out` is the new unit; on any error it is NULL.
/// Returns `VIOMMU_STATUS_INVALID_CONFIG` for a configuration that cannot exist (the log
/// callback, if any, says why) and `VIOMMU_STATUS_INVALID_ARGUMENT` for a `struct_size`
/// this library does not accept.
///
/// Thread-safe. The callbacks and `opaque` must be usable from any thread at once for
/// the life of the unit.
#[no_mangle]
pub extern "C" fn viommu_unit_new(
    config: *const viommu_config,
    ops: *const viommu_host_ops,
    opaque: *mut c_void,
    out: *mut *mut viommu_unit,
) -> viommu_status {
    boundary(|| {
        let mut out = try_out!(out);
        out.write(std::ptr::null_mut());
        let config: viommu_config = try_versioned!(config);
        let ops: viommu_host_ops = try_versioned!(ops);
        let callbacks = Callbacks::new(ops, opaque);
        let unit = build(Config::from(&config), callbacks).map_err(|e| {
            callbacks.log(viommu_log_level::Error, &format!("viommu_unit_new: {e}"));
            viommu_status::from(e)
        })?;
        unit.host().attach(&unit);
        out.write(Box::into_raw(Box::new(viommu_unit { unit })));
        Ok(())
    })
}

/// Build a unit on the heap.
///
/// A unit is large (its caches are inline arrays, about 0.5 MiB) and the engine builds it
/// by value, so building it takes several times that in stack in a debug build: more than
/// the caller's thread may have (a VMM coroutine stack is often 1 MiB). It is built on a
/// short-lived thread with room to spare, or here if no thread can be started.
fn build(config: Config, callbacks: Callbacks) -> core::result::Result<Arc<CUnit>, ConfigError> {
    let make = move || Unit::new(config, CMemory(callbacks), CHost::new(callbacks)).map(Arc::new);
    let stack = 8 * std::mem::size_of::<CUnit>() + (1 << 20);
    match std::thread::Builder::new()
        .name("viommu-unit-new".into())
        .stack_size(stack)
        .spawn(make)
    {
        Ok(builder) => builder
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
        Err(_) => make(),
    }
}

/// Free a unit. NULL is allowed and does nothing.
///
/// Must not race any other call on the unit, and must not be called from one of its
/// callbacks (from a map-notification callback it is refused: the unit is kept and an
/// error logged).
#[no_mangle]
pub extern "C" fn viommu_unit_free(unit: *mut viommu_unit) {
    boundary(|| {
        if unit.is_null() {
            return;
        }
        // SAFETY: `unit` is non-NULL, and came from `viommu_unit_new` and was not freed
        // before (the function's contract); nothing else uses it during this call.
        let inner = unsafe { &(*unit).unit };
        if check_not_notifying(inner).is_err() {
            inner.host().callbacks.log(
                viommu_log_level::Error,
                "viommu_unit_free called from a map-notification callback: refused",
            );
            return;
        }
        // SAFETY: as above: a live pointer from `Box::into_raw` in `viommu_unit_new`,
        // released exactly once here.
        drop(unsafe { Box::from_raw(unit) });
    })
}

/// Check an MMIO access: 4 or 8 bytes inside the register window.
fn register_access(offset: u64, size: u32) -> Result<u8> {
    let size = match size {
        4 => 4u8,
        8 => 8u8,
        _ => return Err(viommu_status::InvalidArgument),
    };
    match offset.checked_add(u64::from(size)) {
        Some(end) if end <= REGISTER_WINDOW_SIZE => Ok(size),
        _ => Err(viommu_status::InvalidArgument),
    }
}

/// Read `size` bytes (4 or 8) at `offset` in the unit's register window
/// (`VIOMMU_MMIO_SIZE` bytes) into `*value`, as a guest read of the MMIO region does.
/// A misaligned access reads 0, as the hardware's undefined behaviour is modelled.
///
/// Returns `VIOMMU_STATUS_INVALID_ARGUMENT` for another size or an access that leaves
/// the window. Thread-safe: register accesses serialize on the unit's internal lock.
#[no_mangle]
pub extern "C" fn viommu_mmio_read(
    unit: *const viommu_unit,
    offset: u64,
    size: u32,
    value: *mut u64,
) -> viommu_status {
    boundary(|| {
        let mut value = try_out!(value);
        value.write(0);
        let unit = &try_ref!(unit).unit;
        let size = register_access(offset, size)?;
        value.write(unit.mmio_read(offset, size));
        Ok(())
    })
}

/// Write the low `size` bytes (4 or 8) of `value` at `offset` in the register window, as
/// a guest write does. Everything the write causes happens before it returns: commands
/// (SRTP, TE, IRE, ...), the invalidation queue up to the new tail, status writes through
/// `dma_write`, and then, with the lock released, `msi_raise`, `invalidated` and map
/// notifications. A misaligned write is dropped.
///
/// Returns `VIOMMU_STATUS_INVALID_ARGUMENT` for another size or an access that leaves
/// the window. Thread-safe: register accesses serialize on the unit's internal lock. Not
/// from a map-notification callback of the same unit (`VIOMMU_STATUS_REENTERED`).
#[no_mangle]
pub extern "C" fn viommu_mmio_write(
    unit: *const viommu_unit,
    offset: u64,
    size: u32,
    value: u64,
) -> viommu_status {
    boundary(|| {
        let unit = &try_ref!(unit).unit;
        let size = register_access(offset, size)?;
        check_not_notifying(unit)?;
        unit.mmio_write(offset, size, value);
        Ok(())
    })
}

/// Return the unit to its reset state (a platform reset): registers at their reset
/// values, translation and interrupt remapping off, caches empty. Map notifiers are
/// synced (devices become IDENTITY).
///
/// Thread-safe; not from a map-notification callback of the same unit
/// (`VIOMMU_STATUS_REENTERED`).
#[no_mangle]
pub extern "C" fn viommu_reset(unit: *const viommu_unit) -> viommu_status {
    boundary(|| {
        let unit = &try_ref!(unit).unit;
        check_not_notifying(unit)?;
        unit.reset();
        unit.host().notifiers.resync_all(unit);
        Ok(())
    })
}

/// Store in `*size` the number of bytes `viommu_save` writes for this unit (it depends on
/// the configuration only).
///
/// Thread-safe.
#[no_mangle]
pub extern "C" fn viommu_saved_size(unit: *const viommu_unit, size: *mut usize) -> viommu_status {
    boundary(|| {
        let mut size = try_out!(size);
        size.write(0);
        size.write(try_ref!(unit).unit.saved_size());
        Ok(())
    })
}

/// Save the unit's architectural state (registers, fault records, latched table
/// pointers; not caches) into `buf` for migration or a snapshot. `*written` receives the
/// bytes written.
///
/// If `len` is smaller than `viommu_saved_size`, returns `VIOMMU_STATUS_BUFFER_TOO_SMALL`
/// with the size needed in `*written` (so `viommu_save(unit, NULL, 0, &needed)` asks for
/// it). The blob is versioned and checksummed; only a unit with the same configuration
/// restores it.
///
/// Thread-safe (takes the register lock for a consistent snapshot). Save with the guest's
/// vCPUs and devices stopped, as for any device state.
#[no_mangle]
pub extern "C" fn viommu_save(
    unit: *const viommu_unit,
    buf: *mut u8,
    len: usize,
    written: *mut usize,
) -> viommu_status {
    boundary(|| {
        let mut written = try_out!(written);
        written.write(0);
        let unit = &try_ref!(unit).unit;
        let needed = unit.saved_size();
        if len < needed {
            written.write(needed);
            return Err(viommu_status::BufferTooSmall);
        }
        let buf = try_slice_mut!(buf, needed);
        written.write(unit.save(buf)?);
        Ok(())
    })
}

/// Replace the unit's architectural state with a blob from `viommu_save`. The blob is
/// validated whole first; on any error nothing changes and the status says why
/// (`VIOMMU_STATUS_RESTORE_*`). Caches start empty; map notifiers are synced whole.
///
/// Thread-safe; not from a map-notification callback of the same unit
/// (`VIOMMU_STATUS_REENTERED`). Restore before the guest runs.
#[no_mangle]
pub extern "C" fn viommu_restore(
    unit: *const viommu_unit,
    buf: *const u8,
    len: usize,
) -> viommu_status {
    boundary(|| {
        let unit = &try_ref!(unit).unit;
        let blob = try_slice!(buf, len);
        check_not_notifying(unit)?;
        unit.restore(blob)?;
        unit.host().notifiers.resync_all(unit);
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_accesses_are_checked() {
        assert_eq!(register_access(0x18, 4), Ok(4));
        assert_eq!(register_access(0xFF8, 8), Ok(8));
        assert_eq!(
            register_access(0xFFC, 8),
            Err(viommu_status::InvalidArgument)
        );
        assert_eq!(
            register_access(0x18, 2),
            Err(viommu_status::InvalidArgument)
        );
        assert_eq!(
            register_access(u64::MAX, 4),
            Err(viommu_status::InvalidArgument)
        );
    }
}
