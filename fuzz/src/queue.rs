//! Target `queue`: queued invalidation with arbitrary descriptor streams (well-formed ones
//! from the testing builders and raw ones), queue sizes (IQA.QS), bases, the DW bit, tail
//! values, enable/disable, IQE recovery, and guest memory changes.
//!
//! Invariants: processing always returns (the harness finishing proves it); after any
//! register write with the queue enabled and not stopped, IQH == IQT (drained); when a
//! write sets FSTS.IQE, IQH is a 128-bit descriptor slot inside the queue (unless the
//! guest rewrote IQA while the queue was enabled, which the spec forbids); the unit writes
//! guest memory only as 4-byte status writes of the data, at the address, that an
//! invalidation wait descriptor with SW set in the processed part of the queue named;
//! VER/CAP/ECAP and the other register checks of the `mmio` target hold throughout.

use arbitrary::Arbitrary;
use viommu::spec::registers::offset;
use viommu::testing::{
    context_descriptor, device_tlb_descriptor, iec_descriptor, iotlb_descriptor, wait_descriptor,
};
use viommu::{Config, NoHost, Unit};

use crate::common::{ConfigBits, MemWrite, WatchedMemory};
use crate::mmio::{check_registers, FuzzUnit};

/// Guest memory size for this target.
pub const MEMORY: usize = 2 << 20;

/// One invalidation descriptor.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Desc {
    /// Any two qwords.
    Raw(u64, u64),
    /// Invalidation wait.
    Wait {
        /// SW.
        status_write: bool,
        /// IF.
        interrupt: bool,
        /// FN.
        fence: bool,
        /// Status data.
        data: u32,
        /// Status address.
        address: u32,
    },
    /// Context-cache invalidate.
    Context {
        /// Granularity.
        g: u8,
        /// Domain id.
        did: u16,
        /// Source id.
        sid: u16,
        /// Function mask.
        fm: u8,
    },
    /// IOTLB invalidate.
    Iotlb {
        /// Granularity.
        g: u8,
        /// Domain id.
        did: u16,
        /// Address.
        address: u64,
        /// Address mask.
        am: u8,
        /// Invalidation hint.
        ih: bool,
    },
    /// Interrupt entry cache invalidate.
    Iec {
        /// Index-selective (else global).
        selective: bool,
        /// Index.
        index: u16,
        /// Index mask.
        im: u8,
    },
    /// Device-TLB invalidate.
    DeviceTlb {
        /// Source id.
        sid: u16,
        /// PF source id.
        pfsid: u16,
        /// Address.
        address: u64,
        /// Size bit.
        s: bool,
    },
}

impl Desc {
    /// The descriptor's two qwords.
    pub fn encode(&self) -> [u64; 2] {
        match *self {
            Self::Raw(a, b) => [a, b],
            Self::Wait {
                status_write,
                interrupt,
                fence,
                data,
                address,
            } => wait_descriptor(status_write, interrupt, fence, data, u64::from(address)),
            Self::Context { g, did, sid, fm } => context_descriptor(g % 4, did, sid, fm % 4),
            Self::Iotlb {
                g,
                did,
                address,
                am,
                ih,
            } => iotlb_descriptor(g % 4, did, address, am % 64, ih),
            Self::Iec {
                selective,
                index,
                im,
            } => iec_descriptor(selective.then_some((index, im % 32))),
            Self::DeviceTlb {
                sid,
                pfsid,
                address,
                s,
            } => device_tlb_descriptor(sid, pfsid, address, s),
        }
    }
}

/// Where the queue is and how it is shaped.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueShape {
    /// Base page (modulo 1024: half inside the 2 MiB memory).
    pub base: u16,
    /// IQA.QS (modulo 8).
    pub qs: u8,
    /// IQA.DW.
    pub dw: bool,
}

impl QueueShape {
    /// The IQA value.
    pub fn iqa(&self) -> u64 {
        (u64::from(self.base % 1024) << 12) | (u64::from(self.dw) << 11) | u64::from(self.qs % 8)
    }
}

/// What the guest does.
#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
pub enum QOp {
    /// Write IQT with the descriptor slot `n` (n × 16 bytes).
    Tail(u16),
    /// Write IQT with any value.
    TailRaw(u64),
    /// Write descriptors at slot `at` (wrapping in the queue), without moving the tail.
    Put {
        /// First slot.
        at: u16,
        /// Descriptors.
        descriptors: Vec<Desc>,
    },
    /// Set or clear GCMD.QIE.
    Enable(bool),
    /// Rewrite IQA.
    Shape(QueueShape),
    /// Clear FSTS.IQE (resumes the queue).
    ClearIqe,
    /// Write FSTS with any value.
    Fsts(u32),
    /// Clear ICS.IWC.
    ClearIwc,
    /// Write IECTL.
    Iectl(u32),
    /// Any qword of guest memory.
    Poke(MemWrite),
}

/// The input of the `queue` target.
#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// Configuration (queued invalidation forced on).
    pub config: ConfigBits,
    /// The queue.
    pub shape: QueueShape,
    /// Initial guest memory content.
    pub memory: Vec<MemWrite>,
    /// Descriptors written from slot 0 before anything else.
    pub descriptors: Vec<Desc>,
    /// What happens.
    pub ops: Vec<QOp>,
}

struct Harness<'m> {
    unit: Box<FuzzUnit<'m>>,
    memory: &'m WatchedMemory,
    config: Config,
    iqa: u64,
    enabled: bool,
    /// The guest changed IQA while the queue was enabled (undefined by the spec).
    reshaped_while_enabled: bool,
}

impl Harness<'_> {
    fn queue_bytes(&self) -> u64 {
        4096 << (self.iqa & 7)
    }
    fn base(&self) -> u64 {
        self.iqa & !0xFFF
    }
    fn slot_size(&self) -> u64 {
        if self.iqa & (1 << 11) != 0 {
            32
        } else {
            16
        }
    }

    fn put(&self, at: u64, descriptors: &[Desc]) {
        let mut offset = (at * self.slot_size()) % self.queue_bytes();
        for d in descriptors {
            let [a, b] = d.encode();
            self.memory.poke(self.base() + offset, a);
            self.memory.poke(self.base() + offset + 8, b);
            if self.slot_size() == 32 {
                self.memory.poke(self.base() + offset + 16, 0);
                self.memory.poke(self.base() + offset + 24, 0);
            }
            offset = (offset + self.slot_size()) % self.queue_bytes();
        }
    }

    /// The status writes (address, data) the wait descriptors in slots `head..tail` name.
    fn named_status_writes(&self, head: u64, tail: u64) -> Vec<(u64, u32)> {
        let mut named = Vec::new();
        let bytes = self.queue_bytes();
        if head >= bytes || tail >= bytes {
            return named;
        }
        let mut at = head;
        let mut steps = 0;
        while at != tail && steps <= bytes / 16 {
            if let (Some(qw0), Some(qw1)) = (
                self.memory.peek(self.base() + at),
                self.memory.peek(self.base() + at + 8),
            ) {
                if qw0 & 0xF == 5 && qw0 & (1 << 5) != 0 {
                    named.push((qw1 & !3, (qw0 >> 32) as u32));
                }
            }
            at = (at + 16) % bytes;
            steps += 1;
        }
        named
    }

    /// A register write that may run the queue, with the queue invariants checked.
    fn processing_write(&mut self, offset: u64, size: u8, value: u64, enables: bool) {
        let head_before = if enables && !self.enabled {
            0
        } else {
            self.unit.mmio_read(offset::IQH, 8)
        };
        let iqe_before = self.fsts() & (1 << 4) != 0;
        let tail = if offset == offset::IQT {
            value & 0x7_FFF0
        } else {
            self.unit.mmio_read(offset::IQT, 8)
        };
        let mut named = self.named_status_writes(head_before, tail);
        self.unit.mmio_write(offset, size, value);
        named.extend(self.named_status_writes(head_before, tail));
        for (address, data) in self.memory.take_writes() {
            assert_eq!(data.len(), 4, "status write of {} bytes", data.len());
            let value = u32::from_le_bytes(data[..4].try_into().unwrap());
            assert!(
                named.contains(&(address, value)),
                "status write {value:#x} at {address:#x} that no processed wait descriptor named \
                 (head {head_before:#x}, tail {tail:#x}, IQA {:#x})",
                self.iqa
            );
        }
        let gsts = self.unit.mmio_read(offset::GSTS, 4);
        let fsts = self.fsts();
        let iqe = fsts & (1 << 4) != 0;
        let head = self.unit.mmio_read(offset::IQH, 8);
        let qie = gsts & (1 << 26) != 0;
        if qie && !iqe {
            assert_eq!(
                head,
                self.unit.mmio_read(offset::IQT, 8),
                "queue enabled and not stopped, but not drained"
            );
        }
        if iqe && !iqe_before && !self.reshaped_while_enabled {
            assert!(
                head < self.queue_bytes() && head.is_multiple_of(16),
                "IQE with IQH {head:#x} outside the queue of {:#x} bytes",
                self.queue_bytes()
            );
        }
    }

    fn fsts(&self) -> u64 {
        self.unit.mmio_read(offset::FSTS, 4)
    }
}

/// Run one input.
pub fn run(input: &Input) {
    let mut config = input.config.config();
    config.queued_invalidation = true;
    let memory = WatchedMemory::new(MEMORY);
    memory.apply(&input.memory);
    let unit = Box::new(Unit::new(config, &memory, NoHost).expect("valid config"));
    let mut h = Harness {
        unit,
        memory: &memory,
        config,
        iqa: input.shape.iqa(),
        enabled: false,
        reshaped_while_enabled: false,
    };
    h.unit.mmio_write(offset::IQA, 8, h.iqa);
    h.put(0, &input.descriptors);
    for op in &input.ops {
        match op {
            QOp::Tail(n) => h.processing_write(offset::IQT, 8, u64::from(*n) << 4, false),
            QOp::TailRaw(v) => h.processing_write(offset::IQT, 8, *v, false),
            QOp::Put { at, descriptors } => h.put(u64::from(*at), descriptors),
            QOp::Enable(on) => {
                let value = u64::from(*on) << 26;
                h.processing_write(offset::GCMD, 4, value, *on);
                h.enabled = *on;
                let qies = h.unit.mmio_read(offset::GSTS, 4) & (1 << 26) != 0;
                assert_eq!(qies, *on, "QIES follows QIE");
            }
            QOp::Shape(shape) => {
                h.iqa = shape.iqa();
                h.reshaped_while_enabled |= h.enabled;
                h.unit.mmio_write(offset::IQA, 8, h.iqa);
                assert_eq!(h.unit.mmio_read(offset::IQA, 8), h.iqa, "IQA reads back");
            }
            QOp::ClearIqe => h.processing_write(offset::FSTS, 4, 1 << 4, false),
            QOp::Fsts(v) => h.processing_write(offset::FSTS, 4, u64::from(*v), false),
            QOp::ClearIwc => h.unit.mmio_write(offset::ICS, 4, 1),
            QOp::Iectl(v) => h.unit.mmio_write(offset::IECTL, 4, u64::from(*v)),
            QOp::Poke(w) => memory.apply(&[*w]),
        }
        assert!(
            memory.take_writes().is_empty(),
            "a write outside queue processing"
        );
        check_registers(&h.unit, &h.config);
    }
}
