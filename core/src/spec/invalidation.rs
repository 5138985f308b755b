//! Invalidation descriptors of the invalidation queue (§6.5.2).
//!
//! A descriptor is fetched from guest memory as two (128-bit mode) or four (256-bit mode)
//! little-endian qwords; its type is an open newtype and each type's reserved fields are
//! listed as masks, so validation is one comparison per qword.

use super::registers::InvalidateAddress;
use bitfield_struct::bitfield;

/// The type of an invalidation descriptor: bits 3:0 with bits 11:9 as type[6:4].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DescriptorType(pub u8);

impl DescriptorType {
    /// Context-cache invalidate descriptor.
    pub const CONTEXT_CACHE: Self = Self(0x1);
    /// IOTLB invalidate descriptor.
    pub const IOTLB: Self = Self(0x2);
    /// Device-TLB invalidate descriptor.
    pub const DEVICE_TLB: Self = Self(0x3);
    /// Interrupt entry cache invalidate descriptor.
    pub const INTERRUPT_ENTRY_CACHE: Self = Self(0x4);
    /// Invalidation wait descriptor.
    pub const INVALIDATION_WAIT: Self = Self(0x5);
    /// PASID-based IOTLB invalidate descriptor (scalable mode).
    pub const PASID_IOTLB: Self = Self(0x6);
    /// PASID-cache invalidate descriptor (scalable mode).
    pub const PASID_CACHE: Self = Self(0x7);
    /// PASID-based device-TLB invalidate descriptor (scalable mode).
    pub const PASID_DEVICE_TLB: Self = Self(0x8);

    /// The type encoded in a descriptor's first qword.
    pub const fn of(qw0: u64) -> Self {
        let low = (qw0 & 0xF) as u8;
        let high = ((qw0 >> 9) & 0x7) as u8;
        Self(low | (high << 4))
    }
}

/// A descriptor as fetched: qwords 2 and 3 are zero for 128-bit descriptors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InvalidationDescriptor {
    /// The descriptor's qwords, in order.
    pub qw: [u64; 4],
}

impl InvalidationDescriptor {
    /// The descriptor type.
    pub const fn descriptor_type(&self) -> DescriptorType {
        DescriptorType::of(self.qw[0])
    }

    /// Whether any reserved bit of a legacy-type descriptor (types 1..=5) is set.
    /// Unknown types have no defined layout and are reported by the caller as invalid.
    pub const fn has_reserved_bits(&self) -> bool {
        let (r0, r1) = match self.descriptor_type() {
            DescriptorType::CONTEXT_CACHE => (0xFFFC_0000_0000_F1C0, u64::MAX),
            DescriptorType::IOTLB => (0xFFFF_FFFF_0000_F100, 0x0000_0000_0000_0F80),
            DescriptorType::DEVICE_TLB => (0x000F_0000_FFE0_01F0, 0x0000_0000_0000_0FFE),
            DescriptorType::INTERRUPT_ENTRY_CACHE => (0xFFFF_0000_07FF_F1E0, u64::MAX),
            DescriptorType::INVALIDATION_WAIT => (0x0000_0000_FFFF_F100, 0x3),
            _ => (0, 0),
        };
        self.qw[0] & r0 != 0 || self.qw[1] & r1 != 0 || self.qw[2] != 0 || self.qw[3] != 0
    }
}

/// Context-cache invalidate descriptor, qword 0 (§6.5.2.1).
#[bitfield(u64)]
#[derive(PartialEq, Eq)]
pub struct ContextCacheInvalidate {
    #[bits(4)]
    __: u8,
    /// G: granularity, see [`super::registers::ContextGranularity`].
    #[bits(2)]
    pub g: u8,
    #[bits(10)]
    __: u16,
    /// DID: domain id.
    pub did: u16,
    /// SID: source id.
    pub sid: u16,
    /// FM: function mask.
    #[bits(2)]
    pub fm: u8,
    #[bits(14)]
    __: u16,
}

/// IOTLB invalidate descriptor, qword 0 (§6.5.2.2); qword 1 is an [`InvalidateAddress`].
#[bitfield(u64)]
#[derive(PartialEq, Eq)]
pub struct IotlbInvalidateDescriptor {
    #[bits(4)]
    __: u8,
    /// G: granularity, see [`super::registers::IotlbGranularity`].
    #[bits(2)]
    pub g: u8,
    /// DW: drain writes.
    pub dw: bool,
    /// DR: drain reads.
    pub dr: bool,
    #[bits(8)]
    __: u8,
    /// DID: domain id.
    pub did: u16,
    #[bits(32)]
    __: u32,
}

/// The address qword of an IOTLB invalidate descriptor.
pub type IotlbInvalidateAddress = InvalidateAddress;

/// Device-TLB invalidate descriptor, qword 0 (§6.5.2.5).
#[bitfield(u64)]
#[derive(PartialEq, Eq)]
pub struct DeviceTlbInvalidate {
    #[bits(12)]
    __: u16,
    /// PFSID[3:0]: physical-function source id, low bits.
    #[bits(4)]
    pub pfsid_low: u8,
    /// MIP: max invalidations pending.
    #[bits(5)]
    pub mip: u8,
    #[bits(11)]
    __: u16,
    /// SID: source id of the device whose TLB is invalidated.
    pub sid: u16,
    #[bits(4)]
    __: u8,
    /// PFSID[15:4]: physical-function source id, high bits.
    #[bits(12)]
    pub pfsid_high: u16,
}

/// Device-TLB invalidate descriptor, qword 1 (§6.5.2.5).
#[bitfield(u64)]
#[derive(PartialEq, Eq)]
pub struct DeviceTlbInvalidateAddress {
    /// S: size — when set, the lowest clear bit of ADDR (from bit 12) encodes the range.
    pub s: bool,
    #[bits(11)]
    __: u16,
    /// ADDR: page-frame number.
    #[bits(52)]
    pub addr: u64,
}

/// Interrupt entry cache invalidate descriptor, qword 0 (§6.5.2.7).
#[bitfield(u64)]
#[derive(PartialEq, Eq)]
pub struct InterruptEntryCacheInvalidate {
    #[bits(4)]
    __: u8,
    /// G: 0 = global, 1 = index-selective.
    pub g: bool,
    #[bits(22)]
    __: u32,
    /// IM: index mask, 2^IM entries starting at IIDX.
    #[bits(5)]
    pub im: u8,
    /// IIDX: interrupt index.
    pub iidx: u16,
    #[bits(16)]
    __: u16,
}

/// Invalidation wait descriptor, qword 0 (§6.5.2.8); qword 1 is the 4-byte-aligned status
/// address.
#[bitfield(u64)]
#[derive(PartialEq, Eq)]
pub struct InvalidationWait {
    #[bits(4)]
    __: u8,
    /// IF: interrupt flag — set ICS.IWC and raise the invalidation completion event.
    pub interrupt_flag: bool,
    /// SW: status write — write STATUS DATA to the status address.
    pub status_write: bool,
    /// FN: fence — later descriptors wait for earlier ones to complete.
    pub fence: bool,
    /// PD: page-request drain.
    pub pd: bool,
    #[bits(24)]
    __: u32,
    /// STATUS DATA.
    pub status_data: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_includes_the_high_bits() {
        assert_eq!(DescriptorType::of(0x5), DescriptorType::INVALIDATION_WAIT);
        assert_eq!(DescriptorType::of(0x200 | 0x1), DescriptorType(0x11));
    }

    #[test]
    fn reserved_masks_leave_every_defined_field_free() {
        let cc = InvalidationDescriptor {
            qw: [
                ContextCacheInvalidate::new()
                    .with_g(3)
                    .with_did(0xFFFF)
                    .with_sid(0xFFFF)
                    .with_fm(3)
                    .into_bits()
                    | 1,
                0,
                0,
                0,
            ],
        };
        assert!(!cc.has_reserved_bits());
        let wait = InvalidationDescriptor {
            qw: [
                InvalidationWait::new()
                    .with_interrupt_flag(true)
                    .with_status_write(true)
                    .with_fence(true)
                    .with_pd(true)
                    .with_status_data(u32::MAX)
                    .into_bits()
                    | 5,
                !3,
                0,
                0,
            ],
        };
        assert!(!wait.has_reserved_bits());
        let iotlb = InvalidationDescriptor {
            qw: [
                IotlbInvalidateDescriptor::new()
                    .with_g(3)
                    .with_dw(true)
                    .with_dr(true)
                    .with_did(0xFFFF)
                    .into_bits()
                    | 2,
                !0xF80,
                0,
                0,
            ],
        };
        assert!(!iotlb.has_reserved_bits());
        let mut bad = iotlb;
        bad.qw[0] |= 1 << 40;
        assert!(bad.has_reserved_bits());
        let mut wide = iotlb;
        wide.qw[3] = 1;
        assert!(wide.has_reserved_bits());
    }
}
