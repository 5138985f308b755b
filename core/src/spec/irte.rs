//! Interrupt remapping formats: the interrupt remapping table entry (§9.10, §9.11) and
//! the remappable-format interrupt request (§5.1.2).

use super::LeU64;
use bitfield_struct::bitfield;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// IRTE low qword in remapped format (IM = 0).
#[bitfield(u64, repr = LeU64, from = LeU64::new, into = LeU64::get)]
#[derive(PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct IrteLow {
    /// P: present.
    pub present: bool,
    /// FPD: fault processing disable for requests using this entry.
    pub fpd: bool,
    /// DM: destination mode, 0 physical, 1 logical.
    pub dm: bool,
    /// RH: redirection hint (lowest-priority style delivery among the destinations).
    pub rh: bool,
    /// TM: trigger mode, 0 edge, 1 level.
    pub tm: bool,
    /// DLM: delivery mode, see [`DeliveryMode`].
    #[bits(3)]
    pub dlm: u8,
    /// Available to software.
    #[bits(4)]
    pub avail: u8,
    /// Reserved (bits 14:12).
    #[bits(3)]
    pub reserved_14_12: u8,
    /// IM: IRTE mode, 0 remapped, 1 posted.
    pub im: bool,
    /// V: vector.
    pub vector: u8,
    /// Reserved (bits 31:24).
    pub reserved_31_24: u8,
    /// DST: destination id. xAPIC mode: the 8-bit APIC id in bits 15:8, the rest reserved;
    /// x2APIC mode: the 32-bit APIC id.
    pub dst: u32,
}

/// IRTE low qword in posted format (IM = 1).
#[bitfield(u64, repr = LeU64, from = LeU64::new, into = LeU64::get)]
#[derive(PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct PostedIrteLow {
    /// P: present.
    pub present: bool,
    /// FPD: fault processing disable.
    pub fpd: bool,
    /// Reserved (bits 7:2).
    #[bits(6)]
    pub reserved_7_2: u8,
    /// Available to software.
    #[bits(4)]
    pub avail: u8,
    /// Reserved (bits 13:12).
    #[bits(2)]
    pub reserved_13_12: u8,
    /// URG: urgent — notify even when the descriptor's SN is set.
    pub urgent: bool,
    /// IM: IRTE mode (1).
    pub im: bool,
    /// VV: the virtual vector to post.
    pub vector: u8,
    /// Reserved (bits 37:24).
    #[bits(14)]
    pub reserved_37_24: u16,
    /// PDA[31:6]: posted-interrupt descriptor address, low bits.
    #[bits(26)]
    pub pda_low: u32,
}

/// IRTE high qword (both formats).
#[bitfield(u64, repr = LeU64, from = LeU64::new, into = LeU64::get)]
#[derive(PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct IrteHigh {
    /// SID: source id to verify against.
    pub sid: u16,
    /// SQ: source-id qualifier, see [`SourceValidation`].
    #[bits(2)]
    pub sq: u8,
    /// SVT: source validation type, see [`SourceValidation`].
    #[bits(2)]
    pub svt: u8,
    /// Reserved (bits 95:84).
    #[bits(12)]
    pub reserved_95_84: u16,
    /// Remapped format: reserved. Posted format: PDA[63:32].
    pub pda_high: u32,
}

/// A 128-bit interrupt remapping table entry as it lies in guest memory.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct Irte {
    /// Low qword (read it as [`IrteLow`] or, when `im` is set, as [`PostedIrteLow`]).
    pub low: IrteLow,
    /// High qword.
    pub high: IrteHigh,
}

impl Irte {
    /// Size of one entry in bytes.
    pub const SIZE: u64 = 16;

    /// The low qword in posted format.
    pub fn posted(&self) -> PostedIrteLow {
        PostedIrteLow::from_bits(self.low.into_bits())
    }

    /// The posted-interrupt descriptor address (64-byte aligned).
    pub fn posted_descriptor_address(&self) -> u64 {
        (u64::from(self.high.pda_high()) << 32) | (u64::from(self.posted().pda_low()) << 6)
    }

    /// Whether a reserved field is set, for an entry in remapped format. In xAPIC mode
    /// (`x2apic` false) only DST[15:8] may be set.
    pub fn remapped_has_reserved_bits(&self, x2apic: bool) -> bool {
        let low = self.low;
        let dst_reserved = !x2apic && low.dst() & !0xFF00 != 0;
        low.reserved_14_12() != 0
            || low.reserved_31_24() != 0
            || dst_reserved
            || self.high.reserved_95_84() != 0
            || self.high.pda_high() != 0
    }

    /// Whether a reserved field is set, for an entry in posted format.
    pub fn posted_has_reserved_bits(&self) -> bool {
        let p = self.posted();
        p.reserved_7_2() != 0
            || p.reserved_13_12() != 0
            || p.reserved_37_24() != 0
            || self.high.reserved_95_84() != 0
    }
}

/// The DLM field: how the interrupt is delivered (the MSI data delivery-mode encoding).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DeliveryMode(pub u8);

impl DeliveryMode {
    /// Fixed.
    pub const FIXED: Self = Self(0);
    /// Lowest priority.
    pub const LOWEST_PRIORITY: Self = Self(1);
    /// SMI.
    pub const SMI: Self = Self(2);
    /// NMI.
    pub const NMI: Self = Self(4);
    /// INIT.
    pub const INIT: Self = Self(5);
    /// ExtINT.
    pub const EXTINT: Self = Self(7);
}

/// SVT and SQ: how the requester id is checked against an IRTE (§9.10).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SourceValidation(pub u8);

impl SourceValidation {
    /// SVT 0: no check.
    pub const NONE: Self = Self(0);
    /// SVT 1: the requester id must equal SID, ignoring the SID bits SQ names.
    pub const REQUESTER_ID: Self = Self(1);
    /// SVT 2: the requester's bus must lie in SID[15:8]..=SID[7:0].
    pub const BUS_RANGE: Self = Self(2);
    /// SVT 3: reserved.
    pub const RESERVED: Self = Self(3);

    /// For SVT 1: the requester-id bits compared, given SQ (0: all; 1: not bit 2;
    /// 2: not bits 2:1; 3: not bits 2:0).
    pub const fn sq_mask(sq: u8) -> u16 {
        match sq & 3 {
            0 => 0xFFFF,
            1 => 0xFFFB,
            2 => 0xFFF9,
            _ => 0xFFF8,
        }
    }
}

/// The address of a remappable-format interrupt request (§5.1.2.2): bits 31:20 are 0xFEE.
#[bitfield(u32)]
#[derive(PartialEq, Eq)]
pub struct RemappableAddress {
    /// Ignored.
    #[bits(2)]
    pub ignored: u8,
    /// HANDLE[15].
    pub handle_15: bool,
    /// SHV: subhandle valid (the data's low 16 bits are added to the handle).
    pub shv: bool,
    /// Interrupt format: 1 remappable, 0 compatibility.
    pub remappable: bool,
    /// HANDLE[14:0].
    #[bits(15)]
    pub handle_low: u16,
    /// 0xFEE.
    #[bits(12)]
    pub fee: u16,
}

impl RemappableAddress {
    /// The 16-bit handle.
    pub fn handle(&self) -> u16 {
        self.handle_low() | (u16::from(self.handle_15()) << 15)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::{FromBytes, FromZeros};

    #[test]
    fn irte_fields_sit_where_the_spec_puts_them() {
        assert_eq!(IrteLow::VECTOR_OFFSET, 16);
        assert_eq!(IrteLow::DST_OFFSET, 32);
        assert_eq!(IrteLow::IM_OFFSET, 15);
        assert_eq!(IrteLow::DLM_OFFSET, 5);
        assert_eq!(PostedIrteLow::URGENT_OFFSET, 14);
        assert_eq!(PostedIrteLow::PDA_LOW_OFFSET, 38);
        assert_eq!(IrteHigh::SQ_OFFSET, 16);
        assert_eq!(IrteHigh::SVT_OFFSET, 18);
        assert_eq!(RemappableAddress::HANDLE_LOW_OFFSET, 5);
    }

    #[test]
    fn posted_descriptor_address_combines_both_halves() {
        let mut bytes = [0u8; 16];
        let low = PostedIrteLow::new()
            .with_present(true)
            .with_im(true)
            .with_pda_low(0x12_3456);
        bytes[..8].copy_from_slice(&low.into_bits().get().to_le_bytes());
        bytes[8..].copy_from_slice(&(0xABCDu64 << 32).to_le_bytes());
        let irte = Irte::read_from_bytes(&bytes).unwrap();
        assert_eq!(
            irte.posted_descriptor_address(),
            (0xABCD << 32) | (0x12_3456 << 6)
        );
        assert!(!irte.posted_has_reserved_bits());
        assert!(irte.remapped_has_reserved_bits(true));
    }

    #[test]
    fn xapic_destination_only_in_bits_15_8() {
        let mut irte = Irte::new_zeroed();
        irte.low = IrteLow::new().with_present(true).with_dst(0x0000_2A00);
        assert!(!irte.remapped_has_reserved_bits(false));
        irte.low = irte.low.with_dst(0x0000_002A);
        assert!(irte.remapped_has_reserved_bits(false));
        assert!(!irte.remapped_has_reserved_bits(true));
    }

    #[test]
    fn sq_masks() {
        assert_eq!(SourceValidation::sq_mask(0), 0xFFFF);
        assert_eq!(SourceValidation::sq_mask(3) & 0b111, 0);
    }
}
