//! Legacy-mode root and context entries (§9.1, §9.3).

use super::LeU64;
use bitfield_struct::bitfield;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Root entry, low qword (§9.1). The high qword is reserved in legacy mode.
#[bitfield(u64, repr = LeU64, from = LeU64::new, into = LeU64::get)]
#[derive(PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct RootEntryLow {
    /// P: present.
    pub present: bool,
    /// Reserved, must be zero.
    #[bits(11)]
    pub reserved: u16,
    /// CTP: page-frame number of the context table for this bus.
    #[bits(52)]
    pub ctp: u64,
}

/// A 128-bit root entry as it lies in guest memory: one per bus, 256 per root table.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct RootEntry {
    /// Present bit, reserved bits and the context-table pointer.
    pub low: RootEntryLow,
    /// Reserved in legacy mode, must be zero.
    pub high: LeU64,
}

impl RootEntry {
    /// Size of one root entry in bytes.
    pub const SIZE: u64 = 16;

    /// Whether a reserved field is non-zero (a fault only when the entry is present).
    pub fn has_reserved_bits(&self) -> bool {
        self.low.reserved() != 0 || self.high.get() != 0
    }
}

/// The TT (translation type) field of a legacy context entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TranslationType(pub u8);

impl TranslationType {
    /// Untranslated requests are translated through the second-level tables; translated
    /// and translation requests are blocked (device-TLB disabled).
    pub const UNTRANSLATED: Self = Self(0);
    /// All requests are translated through the second-level tables (device-TLB enabled;
    /// needs ECAP.DT).
    pub const ALL: Self = Self(1);
    /// Untranslated requests pass through unmodified (needs ECAP.PT).
    pub const PASS_THROUGH: Self = Self(2);
    /// Reserved encoding.
    pub const RESERVED: Self = Self(3);
}

/// The AW (address width) field of a context entry: the adjusted guest address width, and
/// so the number of second-level levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AddressWidth(pub u8);

impl AddressWidth {
    /// 30-bit AGAW, 2-level table (not supported by this engine).
    pub const AGAW_30: Self = Self(0);
    /// 39-bit AGAW, 3-level table.
    pub const AGAW_39: Self = Self(1);
    /// 48-bit AGAW, 4-level table.
    pub const AGAW_48: Self = Self(2);
    /// 57-bit AGAW, 5-level table.
    pub const AGAW_57: Self = Self(3);

    /// Number of second-level paging levels for this width (2..=6 for encodings 0..=4;
    /// encodings above 4 have none).
    pub const fn levels(self) -> Option<u8> {
        if self.0 <= 4 {
            Some(self.0 + 2)
        } else {
            None
        }
    }

    /// The address width in bits (30 + 9 per encoding step).
    pub const fn bits(self) -> Option<u8> {
        match self.levels() {
            Some(l) => Some(12 + 9 * l),
            None => None,
        }
    }

    /// The bit this width has in CAP.SAGAW.
    pub const fn sagaw_bit(self) -> u8 {
        if self.0 < 5 {
            1 << self.0
        } else {
            0
        }
    }
}

/// Context entry, low qword (§9.3).
#[bitfield(u64, repr = LeU64, from = LeU64::new, into = LeU64::get)]
#[derive(PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct ContextEntryLow {
    /// P: present.
    pub present: bool,
    /// FPD: fault processing disable — qualified faults of requests using this entry are
    /// not recorded. Evaluated even when P is clear.
    pub fpd: bool,
    /// TT: translation type, see [`TranslationType`].
    #[bits(2)]
    pub tt: u8,
    /// Reserved, must be zero.
    #[bits(8)]
    pub reserved: u8,
    /// SLPTPTR: page-frame number of the second-level page-table root.
    #[bits(52)]
    pub slptptr: u64,
}

/// Context entry, high qword (§9.3).
#[bitfield(u64, repr = LeU64, from = LeU64::new, into = LeU64::get)]
#[derive(PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct ContextEntryHigh {
    /// AW: address width, see [`AddressWidth`].
    #[bits(3)]
    pub aw: u8,
    /// Ignored by hardware (available to software).
    #[bits(4)]
    pub ignored: u8,
    /// Reserved, must be zero.
    #[bits(1)]
    pub reserved_7: u8,
    /// DID: domain identifier.
    pub did: u16,
    /// Reserved, must be zero.
    #[bits(40)]
    pub reserved_63_24: u64,
}

/// A 128-bit legacy context entry: one per device function, 256 per context table.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct ContextEntry {
    /// Present, FPD, TT and the second-level table pointer.
    pub low: ContextEntryLow,
    /// Address width and domain id.
    pub high: ContextEntryHigh,
}

impl ContextEntry {
    /// Size of one context entry in bytes.
    pub const SIZE: u64 = 16;

    /// Whether a reserved field is non-zero.
    pub fn has_reserved_bits(&self) -> bool {
        self.low.reserved() != 0 || self.high.reserved_7() != 0 || self.high.reserved_63_24() != 0
    }

    /// The translation type.
    pub fn translation_type(&self) -> TranslationType {
        TranslationType(self.low.tt())
    }

    /// The address width.
    pub fn address_width(&self) -> AddressWidth {
        AddressWidth(self.high.aw())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::FromBytes;

    #[test]
    fn context_entry_decodes_from_little_endian_bytes() {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&(0x1234_5000u64 | 0b1011).to_le_bytes());
        bytes[8..].copy_from_slice(&((42u64 << 8) | 2).to_le_bytes());
        let ce = ContextEntry::read_from_bytes(&bytes).unwrap();
        assert!(ce.low.present());
        assert!(ce.low.fpd());
        assert_eq!(ce.translation_type(), TranslationType::PASS_THROUGH);
        assert_eq!(ce.low.slptptr(), 0x12345);
        assert_eq!(ce.high.did(), 42);
        assert_eq!(ce.address_width(), AddressWidth::AGAW_48);
        assert!(!ce.has_reserved_bits());
    }

    #[test]
    fn address_width_encodings() {
        assert_eq!(AddressWidth::AGAW_39.levels(), Some(3));
        assert_eq!(AddressWidth::AGAW_48.bits(), Some(48));
        assert_eq!(AddressWidth::AGAW_57.bits(), Some(57));
        assert_eq!(AddressWidth(7).levels(), None);
        assert_eq!(AddressWidth::AGAW_48.sagaw_bit(), 0b100);
    }

    #[test]
    fn root_entry_reserved_bits() {
        let mut bytes = [0u8; 16];
        bytes[0] = 1;
        assert!(!RootEntry::read_from_bytes(&bytes)
            .unwrap()
            .has_reserved_bits());
        bytes[1] = 0x02; // bit 9
        assert!(RootEntry::read_from_bytes(&bytes)
            .unwrap()
            .has_reserved_bits());
        bytes[1] = 0;
        bytes[15] = 0x80;
        assert!(RootEntry::read_from_bytes(&bytes)
            .unwrap()
            .has_reserved_bits());
    }
}
