//! The inverse of `arbitrary`'s decoding for the input types, so seeds can be written as
//! values. `arbitrary` 1.x decodes little-endian integers, `bool` as the low bit of a
//! byte, `Option` as a `bool` then the value, each `Vec` element after a "continue"
//! byte with the low bit set (a clear one, or the end of the data, ends it), and an enum
//! variant from a `u32` as `(u32 * variants) >> 32`. The seed writer decodes every seed
//! it encodes and checks it gets the same value back, so a change in that encoding is
//! caught there rather than silently producing useless seeds.

use crate::common::{Addr, ConfigBits, MemWrite};
use crate::{irq, mmio, queue, restore, translate};

/// Append the bytes `arbitrary` decodes as `self`.
pub trait Encode {
    /// Append the encoding of `self` to `out`.
    fn encode(&self, out: &mut Vec<u8>);
}

/// Encode a whole input.
pub fn to_bytes<T: Encode>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    value.encode(&mut out);
    out
}

/// The `u32` that selects variant `index` of `count`.
pub fn variant(out: &mut Vec<u8>, index: u32, count: u32) {
    let v = ((u64::from(index) << 32).div_ceil(u64::from(count))) as u32;
    assert_eq!((u64::from(v) * u64::from(count)) >> 32, u64::from(index));
    out.extend_from_slice(&v.to_le_bytes());
}

macro_rules! ints {
    ($($t:ty),*) => {$(
        impl Encode for $t {
            fn encode(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
    )*};
}
ints!(u8, u16, u32, u64);

impl Encode for bool {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
}

impl<T: Encode> Encode for Option<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        self.is_some().encode(out);
        if let Some(v) = self {
            v.encode(out);
        }
    }
}

impl<T: Encode> Encode for Vec<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        for v in self {
            out.push(1);
            v.encode(out);
        }
        out.push(0);
    }
}

impl<A: Encode, B: Encode> Encode for (A, B) {
    fn encode(&self, out: &mut Vec<u8>) {
        self.0.encode(out);
        self.1.encode(out);
    }
}

macro_rules! fields {
    ($out:ident; $($f:expr),*) => {{ $( $f.encode($out); )* }};
}

impl Encode for ConfigBits {
    fn encode(&self, out: &mut Vec<u8>) {
        fields!(out; self.bits, self.fault_records);
    }
}

impl Encode for MemWrite {
    fn encode(&self, out: &mut Vec<u8>) {
        fields!(out; self.addr, self.value);
    }
}

impl Encode for Addr {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Addr::Low(a) => {
                variant(out, 0, 2);
                a.encode(out);
            }
            Addr::Any(a) => {
                variant(out, 1, 2);
                a.encode(out);
            }
        }
    }
}

impl Encode for mmio::Offset {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            mmio::Offset::Low(a) => {
                variant(out, 0, 2);
                a.encode(out);
            }
            mmio::Offset::Any(a) => {
                variant(out, 1, 2);
                a.encode(out);
            }
        }
    }
}

impl Encode for mmio::MmioOp {
    fn encode(&self, out: &mut Vec<u8>) {
        use mmio::MmioOp::*;
        const N: u32 = 8;
        match self {
            Read { offset, size } => {
                variant(out, 0, N);
                fields!(out; offset, size);
            }
            Write {
                offset,
                size,
                value,
            } => {
                variant(out, 1, N);
                fields!(out; offset, size, value);
            }
            Reg32 { reg, value } => {
                variant(out, 2, N);
                fields!(out; reg, value);
            }
            Reg64 { reg, value } => {
                variant(out, 3, N);
                fields!(out; reg, value);
            }
            Poke(w) => {
                variant(out, 4, N);
                w.encode(out);
            }
            Translate {
                sid,
                address,
                access,
                pasid,
            } => {
                variant(out, 5, N);
                fields!(out; sid, address, access, pasid);
            }
            Remap {
                sid,
                address,
                raw,
                data,
            } => {
                variant(out, 6, N);
                fields!(out; sid, address, raw, data);
            }
            Reset => variant(out, 7, N),
        }
    }
}

impl Encode for mmio::Input {
    fn encode(&self, out: &mut Vec<u8>) {
        fields!(out; self.config, self.memory, self.ops);
    }
}

impl Encode for translate::TableOp {
    fn encode(&self, out: &mut Vec<u8>) {
        use translate::TableOp::*;
        const N: u32 = 7;
        match self {
            Context {
                sid,
                domain,
                aw,
                tt,
                fpd,
                table,
            } => {
                variant(out, 0, N);
                fields!(out; sid, domain, aw, tt, fpd, table);
            }
            ClearContext { sid, fpd } => {
                variant(out, 1, N);
                fields!(out; sid, fpd);
            }
            Map {
                table,
                levels,
                iova,
                gpa,
                size,
                perms,
            } => {
                variant(out, 2, N);
                fields!(out; table, levels, iova, gpa, size, perms);
            }
            Entry {
                table,
                levels,
                iova,
                level,
                value,
            } => {
                variant(out, 3, N);
                fields!(out; table, levels, iova, level, value);
            }
            Root { bus, low, high } => {
                variant(out, 4, N);
                fields!(out; bus, low, high);
            }
            RawContext { sid, low, high } => {
                variant(out, 5, N);
                fields!(out; sid, low, high);
            }
            Poke(w) => {
                variant(out, 6, N);
                w.encode(out);
            }
        }
    }
}

impl Encode for translate::Op {
    fn encode(&self, out: &mut Vec<u8>) {
        use translate::Op::*;
        const N: u32 = 8;
        match self {
            Request {
                sid,
                address,
                access,
                pasid,
            } => {
                variant(out, 0, N);
                fields!(out; sid, address, access, pasid);
            }
            Table(t) => {
                variant(out, 1, N);
                t.encode(out);
            }
            InvalidateGlobal => variant(out, 2, N),
            InvalidateDomain { domain } => {
                variant(out, 3, N);
                domain.encode(out);
            }
            InvalidatePages {
                domain,
                address,
                am,
            } => {
                variant(out, 4, N);
                fields!(out; domain, address, am);
            }
            InvalidateDevice { domain, sid, fm } => {
                variant(out, 5, N);
                fields!(out; domain, sid, fm);
            }
            ToggleTranslation => variant(out, 6, N),
            SetRootTable => variant(out, 7, N),
        }
    }
}

impl Encode for translate::Input {
    fn encode(&self, out: &mut Vec<u8>) {
        fields!(out; self.config, self.setup, self.ops);
    }
}

impl Encode for queue::Desc {
    fn encode(&self, out: &mut Vec<u8>) {
        use queue::Desc::*;
        const N: u32 = 6;
        match self {
            Raw(a, b) => {
                variant(out, 0, N);
                fields!(out; a, b);
            }
            Wait {
                status_write,
                interrupt,
                fence,
                data,
                address,
            } => {
                variant(out, 1, N);
                fields!(out; status_write, interrupt, fence, data, address);
            }
            Context { g, did, sid, fm } => {
                variant(out, 2, N);
                fields!(out; g, did, sid, fm);
            }
            Iotlb {
                g,
                did,
                address,
                am,
                ih,
            } => {
                variant(out, 3, N);
                fields!(out; g, did, address, am, ih);
            }
            Iec {
                selective,
                index,
                im,
            } => {
                variant(out, 4, N);
                fields!(out; selective, index, im);
            }
            DeviceTlb {
                sid,
                pfsid,
                address,
                s,
            } => {
                variant(out, 5, N);
                fields!(out; sid, pfsid, address, s);
            }
        }
    }
}

impl Encode for queue::QueueShape {
    fn encode(&self, out: &mut Vec<u8>) {
        fields!(out; self.base, self.qs, self.dw);
    }
}

impl Encode for queue::QOp {
    fn encode(&self, out: &mut Vec<u8>) {
        use queue::QOp::*;
        const N: u32 = 10;
        match self {
            Tail(n) => {
                variant(out, 0, N);
                n.encode(out);
            }
            TailRaw(v) => {
                variant(out, 1, N);
                v.encode(out);
            }
            Put { at, descriptors } => {
                variant(out, 2, N);
                fields!(out; at, descriptors);
            }
            Enable(on) => {
                variant(out, 3, N);
                on.encode(out);
            }
            Shape(s) => {
                variant(out, 4, N);
                s.encode(out);
            }
            ClearIqe => variant(out, 5, N),
            Fsts(v) => {
                variant(out, 6, N);
                v.encode(out);
            }
            ClearIwc => variant(out, 7, N),
            Iectl(v) => {
                variant(out, 8, N);
                v.encode(out);
            }
            Poke(w) => {
                variant(out, 9, N);
                w.encode(out);
            }
        }
    }
}

impl Encode for queue::Input {
    fn encode(&self, out: &mut Vec<u8>) {
        fields!(out; self.config, self.shape, self.memory, self.descriptors, self.ops);
    }
}

impl Encode for irq::IrteOp {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            irq::IrteOp::Spec {
                index,
                vector,
                destination,
                logical,
                level,
                redirection_hint,
                delivery_mode,
                fpd,
                sid,
                sq,
                svt,
                posted,
            } => {
                variant(out, 0, 2);
                fields!(out; index, vector, destination, logical, level, redirection_hint,
                    delivery_mode, fpd, sid, sq, svt, posted);
            }
            irq::IrteOp::Raw { index, low, high } => {
                variant(out, 1, 2);
                fields!(out; index, low, high);
            }
        }
    }
}

impl Encode for irq::Msi {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            irq::Msi::Remappable { handle, shv } => {
                variant(out, 0, 3);
                fields!(out; handle, shv);
            }
            irq::Msi::Compatibility(low) => {
                variant(out, 1, 3);
                low.encode(out);
            }
            irq::Msi::Any(a) => {
                variant(out, 2, 3);
                a.encode(out);
            }
        }
    }
}

impl Encode for irq::IrqOp {
    fn encode(&self, out: &mut Vec<u8>) {
        use irq::IrqOp::*;
        const N: u32 = 8;
        match self {
            Remap { sid, msi, data } => {
                variant(out, 0, N);
                fields!(out; sid, msi, data);
            }
            Irte(e) => {
                variant(out, 1, N);
                Encode::encode(e, out);
            }
            GlobalIec => variant(out, 2, N),
            SelectiveIec { index, im } => {
                variant(out, 3, N);
                fields!(out; index, im);
            }
            Compatibility(on) => {
                variant(out, 4, N);
                on.encode(out);
            }
            ToggleRemapping => variant(out, 5, N),
            SetTable => variant(out, 6, N),
            Poke(w) => {
                variant(out, 7, N);
                w.encode(out);
            }
        }
    }
}

impl Encode for irq::Input {
    fn encode(&self, out: &mut Vec<u8>) {
        fields!(out; self.config, self.size, self.eime, self.cfi, self.entries, self.ops);
    }
}

impl Encode for restore::Blob {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            restore::Blob::Mutated {
                flips,
                truncate,
                extend,
                fix_length,
                fix_crc,
            } => {
                variant(out, 0, 2);
                fields!(out; flips, truncate, extend, fix_length, fix_crc);
            }
            restore::Blob::Raw(bytes) => {
                variant(out, 1, 2);
                bytes.encode(out);
            }
        }
    }
}

impl Encode for restore::Input {
    fn encode(&self, out: &mut Vec<u8>) {
        fields!(out; self.config, self.memory, self.blob, self.ops);
    }
}

#[cfg(feature = "ffi")]
mod ffi_impls {
    use super::{variant, Encode};
    use crate::ffi::{Call, Input, Ptr};

    impl Encode for Ptr {
        fn encode(&self, out: &mut Vec<u8>) {
            let i = match self {
                Ptr::Valid => 0,
                Ptr::Null => 1,
                Ptr::Misaligned => 2,
            };
            variant(out, i, 3);
        }
    }

    impl Encode for Call {
        fn encode(&self, out: &mut Vec<u8>) {
            const N: u32 = 11;
            match self {
                Call::MmioRead {
                    null_unit,
                    offset,
                    size,
                    out: o,
                } => {
                    variant(out, 0, N);
                    fields!(out; null_unit, offset, size, o);
                }
                Call::MmioWrite {
                    null_unit,
                    offset,
                    size,
                    value,
                } => {
                    variant(out, 1, N);
                    fields!(out; null_unit, offset, size, value);
                }
                Call::Reset { null_unit } => {
                    variant(out, 2, N);
                    null_unit.encode(out);
                }
                Call::Save {
                    null_unit,
                    len,
                    buf,
                    written,
                } => {
                    variant(out, 3, N);
                    fields!(out; null_unit, len, buf, written);
                }
                Call::Restore {
                    null_unit,
                    flips,
                    cut,
                    null_buf,
                } => {
                    variant(out, 4, N);
                    fields!(out; null_unit, flips, cut, null_buf);
                }
                Call::Translate {
                    uncached,
                    null_unit,
                    request,
                    out: o,
                    sid,
                    access,
                    has_pasid,
                    pasid,
                    address,
                } => {
                    variant(out, 5, N);
                    fields!(out; uncached, null_unit, request, o, sid, access, has_pasid, pasid, address);
                }
                Call::Remap {
                    null_unit,
                    request,
                    out: o,
                    sid,
                    address,
                    data,
                } => {
                    variant(out, 6, N);
                    fields!(out; null_unit, request, o, sid, address, data);
                }
                Call::Post {
                    null_unit,
                    posted,
                    out: o,
                    descriptor,
                    vector,
                    urgent,
                } => {
                    variant(out, 7, N);
                    fields!(out; null_unit, posted, o, descriptor, vector, urgent);
                }
                Call::StatusStr(code) => {
                    variant(out, 8, N);
                    code.encode(out);
                }
                Call::Poke(w) => {
                    variant(out, 9, N);
                    w.encode(out);
                }
                Call::DeviceAddressSpace {
                    null_unit,
                    out: o,
                    sid,
                } => {
                    variant(out, 10, N);
                    fields!(out; null_unit, o, sid);
                }
            }
        }
    }

    impl Encode for Input {
        fn encode(&self, out: &mut Vec<u8>) {
            fields!(out; self.config, self.config_size, self.config_tail, self.ops_size,
                self.null_callbacks, self.memory, self.calls);
        }
    }
}
