//! Target `irq`: interrupt remapping with arbitrary IRTE tables (well-formed entries from
//! `IrteSpec` and raw ones), table sizes, EIM on/off, CFI on/off, posted interrupts on/off,
//! and arbitrary interrupt requests, IRTE changes and IEC invalidations, booted the way
//! Linux enables interrupt remapping.
//!
//! Invariants: every result satisfies [`crate::common::check_irq`] (faults in 20h..=27h,
//! remapped destinations fit 8 bits in xAPIC mode, posted only with CAP.PI); the same
//! request twice in a row gives the same outcome; whenever no IEC invalidation is pending
//! (no IRTE changed since the last global IEC invalidation, or each changed one was
//! covered by an index-selective one) `remap_interrupt` and `remap_interrupt_uncached`
//! agree exactly; posting a posted interrupt sets its PIR bit.

use std::collections::BTreeSet;

use arbitrary::Arbitrary;
use viommu::spec::registers::offset;
use viommu::testing::{iec_descriptor, remappable_msi, GuestDriver, IrteSpec};
use viommu::{Interrupt, InterruptRequest, NoHost, PostOutcome, SourceId, Unit};

use crate::common::{check_irq, irq_outcome, ConfigBits, MemWrite, WatchedMemory};

/// Guest memory size for this target.
pub const MEMORY: usize = 2 << 20;
/// The interrupt remapping table (up to 2^16 entries of 16 bytes: to the end of memory).
pub const IRT: u64 = 0x10_0000;

/// An IRTE change.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum IrteOp {
    /// A present entry from `IrteSpec`.
    Spec {
        /// Index.
        index: u16,
        /// Vector.
        vector: u8,
        /// Destination (DST as written).
        destination: u32,
        /// DM.
        logical: bool,
        /// TM.
        level: bool,
        /// RH.
        redirection_hint: bool,
        /// DLM (modulo 8).
        delivery_mode: u8,
        /// FPD.
        fpd: bool,
        /// SID.
        sid: u16,
        /// SQ (modulo 4).
        sq: u8,
        /// SVT (modulo 4).
        svt: u8,
        /// Posted: descriptor address (aligned down to 64 bytes) and urgent.
        posted: Option<(u32, bool)>,
    },
    /// Two raw qwords.
    Raw {
        /// Index.
        index: u16,
        /// Low qword.
        low: u64,
        /// High qword.
        high: u64,
    },
}

impl IrteOp {
    /// The index and the two qwords.
    pub fn encode(&self) -> (u16, [u64; 2]) {
        match *self {
            Self::Spec {
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
                let spec = IrteSpec {
                    vector,
                    destination,
                    logical,
                    level,
                    redirection_hint,
                    delivery_mode: delivery_mode % 8,
                    fpd,
                    sid,
                    sq: sq % 4,
                    svt: svt % 4,
                    posted: posted.map(|(pda, urgent)| (u64::from(pda) & !0x3F, urgent)),
                };
                (index, spec.encode())
            }
            Self::Raw { index, low, high } => (index, [low, high]),
        }
    }
}

/// An interrupt request's address.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Msi {
    /// Remappable format for `handle`, with a subhandle (SHV) when `shv`.
    Remappable {
        /// Handle.
        handle: u16,
        /// SHV.
        shv: bool,
    },
    /// Compatibility format (interrupt format bit clear): 0xFEE0_0000 | low 20 bits.
    Compatibility(u32),
    /// Any address.
    Any(u64),
}

/// What happens.
#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
pub enum IrqOp {
    /// An interrupt request.
    Remap {
        /// Requester.
        sid: u16,
        /// Address.
        msi: Msi,
        /// Data.
        data: u32,
    },
    /// Change an IRTE (an IEC invalidation is now pending for it).
    Irte(IrteOp),
    /// Global IEC invalidation.
    GlobalIec,
    /// Index-selective IEC invalidation of 2^`im` entries at `index`.
    SelectiveIec {
        /// Index.
        index: u16,
        /// Index mask.
        im: u8,
    },
    /// Set GCMD.CFI.
    Compatibility(bool),
    /// Toggle GCMD.IRE.
    ToggleRemapping,
    /// Set the table pointer again (SIRTP).
    SetTable,
    /// Any qword of guest memory.
    Poke(MemWrite),
}

/// The input of the `irq` target.
#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// Configuration (interrupt remapping forced on).
    pub config: ConfigBits,
    /// IRTA.S (modulo 16).
    pub size: u8,
    /// IRTA.EIME.
    pub eime: bool,
    /// GCMD.CFI.
    pub cfi: bool,
    /// IRTEs before remapping is enabled.
    pub entries: Vec<IrteOp>,
    /// What happens.
    pub ops: Vec<IrqOp>,
}

fn write_irte(memory: &WatchedMemory, op: &IrteOp) -> u16 {
    let (index, [low, high]) = op.encode();
    let at = IRT + u64::from(index) * 16;
    memory.poke(at + 8, high);
    memory.poke(at, low);
    index
}

/// Run one input.
pub fn run(input: &Input) {
    let mut config = input.config.config();
    config.queued_invalidation = true;
    config.interrupt_remapping = true;
    let memory = WatchedMemory::new(MEMORY);
    for e in &input.entries {
        write_irte(&memory, e);
    }
    let unit = Box::new(Unit::new(config, &memory, NoHost).expect("valid config"));
    let mut d = GuestDriver::new(&unit, &memory.inner);
    d.enable_queued_invalidation();
    d.enable_interrupt_remapping(IRT, input.size % 16, input.eime);
    d.set_compatibility_format(input.cfi);
    memory.take_writes();
    // IRTA.EIME is reserved (treated as 0) when ECAP.EIM is clear (§11.4.29).
    let x2apic_mode = input.eime && config.extended_interrupt_mode;
    let x2apic = Some(x2apic_mode);
    let entries = 2u32 << (input.size % 16);
    // Indices whose IRTE changed since the last IEC invalidation covering them.
    let mut dirty: BTreeSet<u16> = BTreeSet::new();
    for op in &input.ops {
        match *op {
            IrqOp::Remap { sid, msi, data } => {
                let address = match msi {
                    Msi::Remappable { handle, shv } => {
                        remappable_msi(handle, shv.then_some(data as u16)).0
                    }
                    Msi::Compatibility(low) => 0xFEE0_0000 | u64::from(low & 0xF_FFEF),
                    Msi::Any(a) => a,
                };
                let request = InterruptRequest {
                    source_id: SourceId(sid),
                    address,
                    data,
                };
                let result = unit.remap_interrupt(&request);
                check_irq(&config, &request, x2apic, &result);
                if let Ok(Interrupt::Remapped(r)) = &result {
                    assert!(
                        u32::from(r.index) < entries,
                        "index {} beyond the table",
                        r.index
                    );
                }
                let again = unit.remap_interrupt(&request);
                assert_eq!(
                    irq_outcome(&result),
                    irq_outcome(&again),
                    "{request:?} twice"
                );
                let reference = unit.remap_interrupt_uncached(&request);
                check_irq(&config, &request, x2apic, &reference);
                if dirty.is_empty() {
                    assert_eq!(
                        irq_outcome(&result),
                        irq_outcome(&reference),
                        "cached and uncached remapping differ with no invalidation pending: {request:?}"
                    );
                }
                if let Ok(Interrupt::Posted(p)) = result {
                    let pir = (p.descriptor_address & !0x3F) + 8 * u64::from(p.vector / 64);
                    // An Err means the descriptor is outside guest memory: nothing to post into.
                    if let Ok(outcome) = unit.post_interrupt(&p) {
                        let bits = memory.peek(pir).expect("posted descriptor was readable");
                        assert_ne!(bits & (1 << (p.vector % 64)), 0, "PIR bit not set");
                        if let PostOutcome::Notify { destination, .. } = outcome {
                            if !x2apic_mode {
                                assert!(destination <= 0xFF, "xAPIC NDST {destination:#x}");
                            }
                        }
                    }
                    for (addr, data) in memory.take_writes() {
                        let base = p.descriptor_address & !0x3F;
                        assert!(
                            addr >= base && addr + data.len() as u64 <= base + 64,
                            "posting wrote outside the descriptor: {addr:#x}"
                        );
                        // A descriptor the guest placed over its own IRT: posting just
                        // rewrote IRTEs behind the cache's back, as any DMA write could
                        // (finding 6 in docs/reliability.md).
                        let end = addr + data.len() as u64;
                        for at in (addr.max(IRT)..end).step_by(16) {
                            dirty.insert(((at - IRT) / 16) as u16);
                        }
                    }
                }
                assert!(
                    memory.take_writes().is_empty(),
                    "remapping wrote guest memory"
                );
            }
            IrqOp::Irte(e) => {
                dirty.insert(write_irte(&memory, &e));
            }
            IrqOp::GlobalIec => {
                assert_eq!(d.submit_sync(&[iec_descriptor(None)]), Ok(()));
                dirty.clear();
            }
            IrqOp::SelectiveIec { index, im } => {
                let im = im % 32;
                assert_eq!(d.submit_sync(&[iec_descriptor(Some((index, im)))]), Ok(()));
                let first = u32::from(index) & !((1u32 << im.min(16)) - 1);
                let last = first + (1u32 << im.min(16)) - 1;
                dirty.retain(|&i| u32::from(i) < first || u32::from(i) > last);
            }
            IrqOp::Compatibility(on) => d.set_compatibility_format(on),
            IrqOp::ToggleRemapping => {
                let on = !d.gcmd.ire();
                d.gcmd.set_ire(on);
                d.write32(offset::GCMD, d.gcmd.into_bits());
                assert_eq!(d.gsts().ire(), on, "IRES follows IRE");
                dirty.clear();
            }
            IrqOp::SetTable => {
                d.write32(offset::GCMD, d.gcmd.with_sirtp(true).into_bits());
                dirty.clear();
            }
            IrqOp::Poke(w) => {
                let addr = (u64::from(w.addr) % MEMORY as u64) & !7;
                memory.poke(addr, w.value);
                if addr >= IRT {
                    dirty.insert(((addr - IRT) / 16) as u16);
                }
            }
        }
        memory.take_writes();
    }
}
