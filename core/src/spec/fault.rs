//! Fault reasons (§7.1.3, Appendix A "Non-Recoverable Fault Reason Encodings").

/// The fault reason (FR) field of a fault record: an 8-bit code the guest reads back.
///
/// An open newtype: the engine only produces the named values, but a restored or
/// fuzzed record may hold any byte.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FaultReason(pub u8);

impl FaultReason {
    /// 1h: the Present field of the root entry used for the request is clear.
    pub const ROOT_ENTRY_NOT_PRESENT: Self = Self(0x01);
    /// 2h: the Present field of the context entry used for the request is clear.
    pub const CONTEXT_ENTRY_NOT_PRESENT: Self = Self(0x02);
    /// 3h: invalid programming of a context entry (unsupported AW, reserved TT, ...).
    pub const CONTEXT_ENTRY_INVALID: Self = Self(0x03);
    /// 4h: the input address is above (2^X - 1), X the smaller of MGAW and the context's AGAW.
    pub const ADDRESS_BEYOND_MGAW: Self = Self(0x04);
    /// 5h: a write (or atomic) request to a page without write permission.
    pub const WRITE_NOT_PERMITTED: Self = Self(0x05);
    /// 6h: a read request to a page without read permission.
    pub const READ_NOT_PERMITTED: Self = Self(0x06);
    /// 7h: accessing a second-level paging entry failed (address above HAW or a failed read).
    pub const PAGING_ENTRY_ACCESS_ERROR: Self = Self(0x07);
    /// 8h: accessing the root table failed (address above HAW or a failed read).
    pub const ROOT_TABLE_ACCESS_ERROR: Self = Self(0x08);
    /// 9h: accessing a context table failed (address above HAW or a failed read).
    pub const CONTEXT_TABLE_ACCESS_ERROR: Self = Self(0x09);
    /// Ah: non-zero reserved field in a present root entry.
    pub const ROOT_ENTRY_RESERVED: Self = Self(0x0A);
    /// Bh: non-zero reserved field in a present context entry.
    pub const CONTEXT_ENTRY_RESERVED: Self = Self(0x0B);
    /// Ch: non-zero reserved field in a second-level paging entry with R or W set.
    pub const PAGING_ENTRY_RESERVED: Self = Self(0x0C);
    /// Dh: the context entry's TT field does not allow this request type.
    pub const TRANSLATION_TYPE_BLOCKED: Self = Self(0x0D);
    /// 30h: the root table address register's translation table mode is not one this unit
    /// supports (reserved, or scalable mode without ECAP.SMTS).
    pub const ROOT_TABLE_MODE_INVALID: Self = Self(0x30);

    /// 20h: reserved bits set in a remappable interrupt request.
    pub const IR_REQUEST_RESERVED: Self = Self(0x20);
    /// 21h: the interrupt index is beyond the interrupt remapping table size.
    pub const IR_INDEX_BEYOND_TABLE: Self = Self(0x21);
    /// 22h: the Present field of the IRTE is clear.
    pub const IRTE_NOT_PRESENT: Self = Self(0x22);
    /// 23h: reading the IRTE failed (address above HAW or a failed read).
    pub const IRTE_ACCESS_ERROR: Self = Self(0x23);
    /// 24h: non-zero reserved field in a present IRTE.
    pub const IRTE_RESERVED: Self = Self(0x24);
    /// 25h: a compatibility-format interrupt was blocked (GSTS.CFIS clear or EIME set).
    pub const IR_COMPATIBILITY_BLOCKED: Self = Self(0x25);
    /// 26h: source-id verification of the IRTE failed.
    pub const IR_SOURCE_ID_INVALID: Self = Self(0x26);
    /// 27h: reading the posted-interrupt descriptor failed.
    pub const IR_POSTED_DESCRIPTOR_ACCESS_ERROR: Self = Self(0x27);

    /// Whether fault processing disable (FPD) can suppress this fault (§7.1.3 "qualified").
    ///
    /// Faults found before the entry holding FPD could be read are not qualified: root
    /// faults and table access errors for DMA; malformed requests, indices beyond the
    /// table, IRTE access errors and blocked compatibility-format interrupts for
    /// interrupt remapping.
    pub const fn is_qualified(self) -> bool {
        !matches!(
            self.0,
            0x01 | 0x08 | 0x09 | 0x0A | 0x30 | 0x20 | 0x21 | 0x23 | 0x25
        )
    }

    /// Whether this is an interrupt-remapping fault (20h..=2Fh).
    pub const fn is_interrupt_remapping(self) -> bool {
        self.0 >= 0x20 && self.0 <= 0x2F
    }
}

impl core::fmt::Debug for FaultReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let name = match *self {
            Self::ROOT_ENTRY_NOT_PRESENT => "ROOT_ENTRY_NOT_PRESENT",
            Self::CONTEXT_ENTRY_NOT_PRESENT => "CONTEXT_ENTRY_NOT_PRESENT",
            Self::CONTEXT_ENTRY_INVALID => "CONTEXT_ENTRY_INVALID",
            Self::ADDRESS_BEYOND_MGAW => "ADDRESS_BEYOND_MGAW",
            Self::WRITE_NOT_PERMITTED => "WRITE_NOT_PERMITTED",
            Self::READ_NOT_PERMITTED => "READ_NOT_PERMITTED",
            Self::PAGING_ENTRY_ACCESS_ERROR => "PAGING_ENTRY_ACCESS_ERROR",
            Self::ROOT_TABLE_ACCESS_ERROR => "ROOT_TABLE_ACCESS_ERROR",
            Self::CONTEXT_TABLE_ACCESS_ERROR => "CONTEXT_TABLE_ACCESS_ERROR",
            Self::ROOT_ENTRY_RESERVED => "ROOT_ENTRY_RESERVED",
            Self::CONTEXT_ENTRY_RESERVED => "CONTEXT_ENTRY_RESERVED",
            Self::PAGING_ENTRY_RESERVED => "PAGING_ENTRY_RESERVED",
            Self::TRANSLATION_TYPE_BLOCKED => "TRANSLATION_TYPE_BLOCKED",
            Self::ROOT_TABLE_MODE_INVALID => "ROOT_TABLE_MODE_INVALID",
            Self::IR_REQUEST_RESERVED => "IR_REQUEST_RESERVED",
            Self::IR_INDEX_BEYOND_TABLE => "IR_INDEX_BEYOND_TABLE",
            Self::IRTE_NOT_PRESENT => "IRTE_NOT_PRESENT",
            Self::IRTE_ACCESS_ERROR => "IRTE_ACCESS_ERROR",
            Self::IRTE_RESERVED => "IRTE_RESERVED",
            Self::IR_COMPATIBILITY_BLOCKED => "IR_COMPATIBILITY_BLOCKED",
            Self::IR_SOURCE_ID_INVALID => "IR_SOURCE_ID_INVALID",
            Self::IR_POSTED_DESCRIPTOR_ACCESS_ERROR => "IR_POSTED_DESCRIPTOR_ACCESS_ERROR",
            _ => return write!(f, "FaultReason({:#04x})", self.0),
        };
        write!(f, "{name}({:#04x})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::FaultReason;

    #[test]
    fn root_and_table_access_faults_are_not_qualified() {
        for fr in [
            FaultReason::ROOT_ENTRY_NOT_PRESENT,
            FaultReason::ROOT_TABLE_ACCESS_ERROR,
            FaultReason::CONTEXT_TABLE_ACCESS_ERROR,
            FaultReason::ROOT_ENTRY_RESERVED,
        ] {
            assert!(!fr.is_qualified(), "{fr:?}");
        }
        for fr in [
            FaultReason::CONTEXT_ENTRY_NOT_PRESENT,
            FaultReason::CONTEXT_ENTRY_INVALID,
            FaultReason::ADDRESS_BEYOND_MGAW,
            FaultReason::WRITE_NOT_PERMITTED,
            FaultReason::READ_NOT_PERMITTED,
            FaultReason::PAGING_ENTRY_ACCESS_ERROR,
            FaultReason::CONTEXT_ENTRY_RESERVED,
            FaultReason::PAGING_ENTRY_RESERVED,
            FaultReason::TRANSLATION_TYPE_BLOCKED,
        ] {
            assert!(fr.is_qualified(), "{fr:?}");
        }
    }

    #[test]
    fn debug_names_known_reasons_and_shows_unknown_ones() {
        assert_eq!(
            format!("{:?}", FaultReason::WRITE_NOT_PERMITTED),
            "WRITE_NOT_PERMITTED(0x05)"
        );
        assert_eq!(format!("{:?}", FaultReason(0xEE)), "FaultReason(0xee)");
    }
}
