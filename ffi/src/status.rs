//! `viommu_status`: what every function returns, with stable numbers, and the mapping from
//! the engine's error types.

use std::ffi::c_char;

use viommu::{ConfigError, DmaError, InterruptError, MemoryError, RestoreError, SaveError};

/// The result of a call. The numbers are stable: new statuses get new numbers, existing
/// ones never change meaning. `viommu_status_str` names each.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum viommu_status {
    /// Success.
    Ok = 0,
    /// A required pointer argument was NULL.
    NullPointer = 1,
    /// An argument is out of range: an access that is not 1 (read), 2 (write) or 3
    /// (both), an MMIO size other than 4 or 8 or an offset outside the register window, a
    /// misaligned pointer, an unknown notifier id, a `struct_size` too small.
    InvalidArgument = 2,
    /// The `viommu_config` describes hardware that cannot exist (the log callback, if
    /// any, says why).
    InvalidConfig = 3,
    /// The buffer is too small; the size needed was written where the function says.
    BufferTooSmall = 4,
    /// The request was blocked with a remapping fault; the fault is in the out struct.
    Fault = 5,
    /// The DMA request is not one the unit accepts at all (a read of the interrupt
    /// range, a request with PASID in legacy mode): complete it as Unsupported Request.
    UnsupportedRequest = 6,
    /// The address is not in the interrupt range (0xFEEx_xxxx): not an interrupt request.
    NotAnInterrupt = 7,
    /// Restore: the blob is shorter than it says, or than the smallest blob.
    RestoreTruncated = 8,
    /// Restore: not a viommu state blob.
    RestoreBadMagic = 9,
    /// Restore: written by a newer format version.
    RestoreUnsupportedVersion = 10,
    /// Restore: the length field does not match the blob.
    RestoreBadLength = 11,
    /// Restore: the checksum does not match (the blob was corrupted).
    RestoreBadChecksum = 12,
    /// Restore: saved by a unit configured differently.
    RestoreConfigMismatch = 13,
    /// Restore: a field holds a value no unit of this configuration can be in.
    RestoreInvalidField = 14,
    /// The page budget ran out before every mapping was reported.
    BudgetExhausted = 15,
    /// A guest memory access through the host callbacks failed.
    MemoryError = 16,
    /// Called from inside a map-notification callback, where this function is not
    /// allowed (it would change the notifier state being reported).
    Reentered = 17,
    /// The library hit an internal error (a Rust panic) and refused the call. Never
    /// expected; please report it.
    Panic = 255,
}

/// The result type of every export's body.
pub(crate) type Result<T> = core::result::Result<T, viommu_status>;

impl viommu_status {
    /// A static NUL-terminated name.
    pub(crate) fn name(self) -> &'static std::ffi::CStr {
        match self {
            Self::Ok => c"VIOMMU_STATUS_OK",
            Self::NullPointer => c"VIOMMU_STATUS_NULL_POINTER",
            Self::InvalidArgument => c"VIOMMU_STATUS_INVALID_ARGUMENT",
            Self::InvalidConfig => c"VIOMMU_STATUS_INVALID_CONFIG",
            Self::BufferTooSmall => c"VIOMMU_STATUS_BUFFER_TOO_SMALL",
            Self::Fault => c"VIOMMU_STATUS_FAULT",
            Self::UnsupportedRequest => c"VIOMMU_STATUS_UNSUPPORTED_REQUEST",
            Self::NotAnInterrupt => c"VIOMMU_STATUS_NOT_AN_INTERRUPT",
            Self::RestoreTruncated => c"VIOMMU_STATUS_RESTORE_TRUNCATED",
            Self::RestoreBadMagic => c"VIOMMU_STATUS_RESTORE_BAD_MAGIC",
            Self::RestoreUnsupportedVersion => c"VIOMMU_STATUS_RESTORE_UNSUPPORTED_VERSION",
            Self::RestoreBadLength => c"VIOMMU_STATUS_RESTORE_BAD_LENGTH",
            Self::RestoreBadChecksum => c"VIOMMU_STATUS_RESTORE_BAD_CHECKSUM",
            Self::RestoreConfigMismatch => c"VIOMMU_STATUS_RESTORE_CONFIG_MISMATCH",
            Self::RestoreInvalidField => c"VIOMMU_STATUS_RESTORE_INVALID_FIELD",
            Self::BudgetExhausted => c"VIOMMU_STATUS_BUDGET_EXHAUSTED",
            Self::MemoryError => c"VIOMMU_STATUS_MEMORY_ERROR",
            Self::Reentered => c"VIOMMU_STATUS_REENTERED",
            Self::Panic => c"VIOMMU_STATUS_PANIC",
        }
    }

    /// Every status.
    pub(crate) const ALL: [Self; 19] = [
        Self::Ok,
        Self::NullPointer,
        Self::InvalidArgument,
        Self::InvalidConfig,
        Self::BufferTooSmall,
        Self::Fault,
        Self::UnsupportedRequest,
        Self::NotAnInterrupt,
        Self::RestoreTruncated,
        Self::RestoreBadMagic,
        Self::RestoreUnsupportedVersion,
        Self::RestoreBadLength,
        Self::RestoreBadChecksum,
        Self::RestoreConfigMismatch,
        Self::RestoreInvalidField,
        Self::BudgetExhausted,
        Self::MemoryError,
        Self::Reentered,
        Self::Panic,
    ];
}

impl From<ConfigError> for viommu_status {
    fn from(_: ConfigError) -> Self {
        Self::InvalidConfig
    }
}

impl From<RestoreError> for viommu_status {
    fn from(e: RestoreError) -> Self {
        match e {
            RestoreError::Truncated => Self::RestoreTruncated,
            RestoreError::BadMagic => Self::RestoreBadMagic,
            RestoreError::UnsupportedVersion(_) => Self::RestoreUnsupportedVersion,
            RestoreError::BadLength => Self::RestoreBadLength,
            RestoreError::BadChecksum => Self::RestoreBadChecksum,
            RestoreError::ConfigMismatch => Self::RestoreConfigMismatch,
            RestoreError::InvalidField(_) => Self::RestoreInvalidField,
        }
    }
}

impl From<SaveError> for viommu_status {
    fn from(e: SaveError) -> Self {
        match e {
            SaveError::BufferTooSmall { .. } => Self::BufferTooSmall,
        }
    }
}

impl From<MemoryError> for viommu_status {
    fn from(_: MemoryError) -> Self {
        Self::MemoryError
    }
}

impl From<DmaError> for viommu_status {
    fn from(e: DmaError) -> Self {
        match e {
            DmaError::Fault(_) => Self::Fault,
            DmaError::UnsupportedRequest => Self::UnsupportedRequest,
        }
    }
}

impl From<InterruptError> for viommu_status {
    fn from(e: InterruptError) -> Self {
        match e {
            InterruptError::Fault(_) => Self::Fault,
            InterruptError::NotAnInterrupt => Self::NotAnInterrupt,
        }
    }
}

/// The name of a status, e.g. `"VIOMMU_STATUS_FAULT"`, as a static NUL-terminated string
/// (never NULL, never to be freed). An unknown value gives `"VIOMMU_STATUS_UNKNOWN"`.
///
/// Thread-safe.
#[no_mangle]
pub extern "C" fn viommu_status_str(status: u32) -> *const c_char {
    crate::boundary::boundary(|| {
        viommu_status::from_u32(status)
            .map_or(c"VIOMMU_STATUS_UNKNOWN", viommu_status::name)
            .as_ptr()
    })
}

impl viommu_status {
    /// The status with this number, if there is one.
    pub(crate) fn from_u32(value: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|s| *s as u32 == value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_stable() {
        assert_eq!(viommu_status::Ok as u32, 0);
        assert_eq!(viommu_status::Fault as u32, 5);
        assert_eq!(viommu_status::RestoreInvalidField as u32, 14);
        assert_eq!(viommu_status::Reentered as u32, 17);
        assert_eq!(viommu_status::Panic as u32, 255);
    }

    #[test]
    fn every_status_round_trips_and_has_a_name() {
        for s in viommu_status::ALL {
            assert_eq!(viommu_status::from_u32(s as u32), Some(s));
            let name = s.name().to_str().unwrap();
            assert!(name.starts_with("VIOMMU_STATUS_"), "{name}");
        }
        assert_eq!(viommu_status::from_u32(1000), None);
    }
}
