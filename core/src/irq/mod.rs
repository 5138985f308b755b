//! Interrupt remapping: interrupt request → interrupt entry cache → IRTE → the interrupt
//! to deliver, a posted interrupt, or a fault (§5).
//!
//! Like the DMA path, the remap path takes no lock on a cache hit: it reads one atomic
//! word of unit state (IRES, CFIS and the table latched by SIRTP) and probes the interrupt
//! entry cache (IEC) by interrupt index. The IEC holds IRTEs that passed the present and
//! reserved-field checks; source-id verification runs on every request because it depends
//! on the requester.

use core::sync::atomic::Ordering;

use crate::dma::context::below_haw;
use crate::dma::request::SourceId;
use crate::fault::FaultInfo;
use crate::host::{Host, MsiMessage};
use crate::memory::{read_copy, GuestMemory, MemoryError};
use crate::spec::fault::FaultReason;
use crate::spec::irte::{
    DeliveryMode, Irte, IrteHigh, IrteLow, RemappableAddress, SourceValidation,
};
use crate::spec::LeU64;
use crate::unit::{Unit, ENTRY_WORDS};

/// Bits of the fast-path interrupt remapping state word that are not IRTA's own:
/// IRTA's bits 10:4 are reserved, so they carry IRES and CFIS.
pub(crate) const IR_STATE_IRES: u64 = 1 << 4;
pub(crate) const IR_STATE_CFIS: u64 = 1 << 5;
/// IRTA bits latched by SIRTP: table base, EIME, S.
pub(crate) const IR_STATE_IRTA_MASK: u64 = !0x7F0;

/// Index-selective IEC invalidations of more than 2^this entries flush the whole cache.
const IEC_PROBE_LIMIT_SHIFT: u8 = 6;

const IEC_KEY_TAG: u64 = 1 << 32;

/// An interrupt request as it appears on the bus: a DMA write of `data` to `address` in
/// the interrupt range (an MSI, or an IOAPIC entry presented as the MSI it encodes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InterruptRequest {
    /// Requester id.
    pub source_id: SourceId,
    /// Message address (0xFEEx_xxxx).
    pub address: u64,
    /// Message data.
    pub data: u32,
}

/// An interrupt after remapping, in the form a local APIC model (or KVM) takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemappedInterrupt {
    /// Vector.
    pub vector: u8,
    /// Destination APIC id: 8-bit in xAPIC mode, 32-bit in x2APIC mode (IRTA.EIME).
    pub destination: u32,
    /// Logical (true) or physical destination mode.
    pub logical_destination: bool,
    /// Delivery mode.
    pub delivery_mode: DeliveryMode,
    /// Level (true) or edge triggered.
    pub level_triggered: bool,
    /// Redirection hint.
    pub redirection_hint: bool,
    /// The IRTE that produced it.
    pub index: u16,
}

impl RemappedInterrupt {
    /// The compatibility-format MSI that delivers this interrupt. Destination bits 7:0 go
    /// in address bits 19:12 and bits 31:8 in address bits 63:40 (the x2APIC extended
    /// destination that KVM's MSI routing takes).
    pub fn to_msi(&self) -> MsiMessage {
        let low = 0xFEE0_0000u64
            | (u64::from(self.destination & 0xFF) << 12)
            | (u64::from(self.redirection_hint) << 3)
            | (u64::from(self.logical_destination) << 2);
        let high = u64::from(self.destination & 0xFFFF_FF00) << 32;
        let data = u32::from(self.vector)
            | (u32::from(self.delivery_mode.0 & 7) << 8)
            | (1 << 14)
            | (u32::from(self.level_triggered) << 15);
        MsiMessage {
            address: low | high,
            data,
        }
    }
}

/// A posted interrupt: set `vector` in the posted-interrupt descriptor at
/// `descriptor_address` ([`Unit::post_interrupt`] does it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PostedInterrupt {
    /// Guest-physical address of the 64-byte posted-interrupt descriptor.
    pub descriptor_address: u64,
    /// The virtual vector to post.
    pub vector: u8,
    /// Notify even if the descriptor suppresses notifications (SN).
    pub urgent: bool,
    /// The IRTE that produced it.
    pub index: u16,
}

/// What an interrupt request turns into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interrupt {
    /// Not remapped (interrupt remapping off, or a compatibility-format request that
    /// GSTS.CFIS lets through): deliver the message as it is.
    PassThrough(MsiMessage),
    /// Remapped through an IRTE.
    Remapped(RemappedInterrupt),
    /// Posted through an IRTE in posted format.
    Posted(PostedInterrupt),
}

/// An interrupt-remapping fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InterruptFault {
    /// The spec's reason (20h..=27h).
    pub reason: FaultReason,
    /// Requester.
    pub source_id: SourceId,
    /// The interrupt index, when the request had one.
    pub index: Option<u16>,
    /// Whether it went into a fault recording register.
    pub recorded: bool,
}

/// Why an interrupt request was not delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InterruptError {
    /// Blocked with an interrupt-remapping fault.
    Fault(InterruptFault),
    /// The address is not in the interrupt range: this is not an interrupt request
    /// (an embedder mistake — route it as memory).
    NotAnInterrupt,
}

impl core::fmt::Display for InterruptError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Fault(fault) => write!(
                f,
                "interrupt remapping fault {:?} for {:#06x}",
                fault.reason, fault.source_id.0
            ),
            Self::NotAnInterrupt => f.write_str("not an interrupt request"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for InterruptError {}

/// What posting an interrupt asks the VMM to do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PostOutcome {
    /// The vector is pending in the descriptor; no notification is needed (one is
    /// outstanding, or notifications are suppressed).
    Pending,
    /// Send the notification event: `vector` (the descriptor's NV) to `destination`
    /// (its NDST, decoded for the interrupt mode: 8-bit xAPIC id or 32-bit x2APIC id).
    Notify {
        /// Notification vector.
        vector: u8,
        /// Destination APIC id.
        destination: u32,
    },
}

/// Why the remap logic stopped, before reporting.
enum Blocked {
    /// A fault, its index, and whether FPD applies.
    Fault(FaultReason, Option<u16>, bool),
    NotAnInterrupt,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Caching {
    Use,
    Bypass,
}

/// The first-level key of a remappable-format request: address bits 19:0, data bits
/// 15:0 and the source id — everything the result depends on besides unit state, which
/// flushes the cache when it changes. Other requests are not cached.
fn interrupt_first_level_key(request: &InterruptRequest) -> Option<u64> {
    let remappable = request.address & (1 << 4) != 0;
    if request.address >> 20 != 0xFEE || request.data >> 16 != 0 || !remappable {
        return None;
    }
    Some(
        (request.address & 0xF_FFFF)
            | (u64::from(request.data) << 20)
            | (u64::from(request.source_id.0) << 36)
            | (1 << 52),
    )
}

/// The set hash of a first-level key: the handle (address bits 19:5) at the bottom, so
/// consecutive handles land in consecutive sets.
fn interrupt_first_level_hash(key: u64) -> u64 {
    key >> 5
}

const PACKED_REMAPPED: u64 = 1 << 32;
const PACKED_POSTED: u64 = 2 << 32;

fn pack_interrupt(key: u64, interrupt: &Interrupt) -> Option<[u64; ENTRY_WORDS]> {
    match *interrupt {
        Interrupt::Remapped(r) => Some([
            key,
            PACKED_REMAPPED
                | u64::from(r.vector)
                | (u64::from(r.delivery_mode.0 & 7) << 8)
                | (u64::from(r.logical_destination) << 11)
                | (u64::from(r.level_triggered) << 12)
                | (u64::from(r.redirection_hint) << 13)
                | (u64::from(r.index) << 16),
            u64::from(r.destination),
            0,
        ]),
        Interrupt::Posted(p) => Some([
            key,
            PACKED_POSTED
                | u64::from(p.vector)
                | (u64::from(p.urgent) << 14)
                | (u64::from(p.index) << 16),
            p.descriptor_address,
            0,
        ]),
        Interrupt::PassThrough(_) => None,
    }
}

fn unpack_interrupt(w: &[u64; ENTRY_WORDS]) -> Interrupt {
    let vector = (w[1] & 0xFF) as u8;
    let index = ((w[1] >> 16) & 0xFFFF) as u16;
    if w[1] & PACKED_POSTED != 0 {
        Interrupt::Posted(PostedInterrupt {
            descriptor_address: w[2],
            vector,
            urgent: w[1] & (1 << 14) != 0,
            index,
        })
    } else {
        Interrupt::Remapped(RemappedInterrupt {
            vector,
            destination: w[2] as u32,
            logical_destination: w[1] & (1 << 11) != 0,
            delivery_mode: DeliveryMode(((w[1] >> 8) & 7) as u8),
            level_triggered: w[1] & (1 << 12) != 0,
            redirection_hint: w[1] & (1 << 13) != 0,
            index,
        })
    }
}

fn iec_key(index: u16) -> u64 {
    u64::from(index) | IEC_KEY_TAG
}

fn encode_irte(index: u16, irte: &Irte) -> [u64; ENTRY_WORDS] {
    [
        iec_key(index),
        irte.low.into_bits().get(),
        irte.high.into_bits().get(),
        0,
    ]
}

fn decode_irte(words: &[u64; ENTRY_WORDS]) -> Irte {
    Irte {
        low: IrteLow::from_bits(LeU64::new(words[1])),
        high: IrteHigh::from_bits(LeU64::new(words[2])),
    }
}

impl<M: GuestMemory, H: Host> Unit<M, H> {
    /// Remap an interrupt request.
    ///
    /// Callable from any thread at once. A fault is recorded in the fault registers (and
    /// the fault event raised) as the spec says, and also returned.
    #[inline]
    pub fn remap_interrupt(&self, request: &InterruptRequest) -> Result<Interrupt, InterruptError> {
        let key = interrupt_first_level_key(request);
        if let Some(key) = key {
            let hash = interrupt_first_level_hash(key);
            if let Some(w) = self.interrupt_first_level.lookup(0, hash, |w| w[0] == key) {
                return Ok(unpack_interrupt(&w));
            }
        }
        self.remap_interrupt_miss(request, key)
    }

    /// Everything but a first-level hit: kept out of line so the hit path stays small.
    #[inline(never)]
    fn remap_interrupt_miss(
        &self,
        request: &InterruptRequest,
        key: Option<u64>,
    ) -> Result<Interrupt, InterruptError> {
        let snap = self.interrupt_first_level.snapshot(0);
        let result = self.remap_with(request, Caching::Use);
        if let (Some(key), Ok(interrupt)) = (key, &result) {
            if let Some(words) = pack_interrupt(key, interrupt) {
                // A refused insert only costs a later miss.
                let _ = self.interrupt_first_level.insert(
                    snap,
                    interrupt_first_level_hash(key),
                    words,
                    |w| w[0] == key,
                );
            }
        }
        result.map_err(|blocked| match blocked {
            Blocked::Fault(reason, index, fpd) => self.interrupt_fault(request, reason, index, fpd),
            Blocked::NotAnInterrupt => InterruptError::NotAnInterrupt,
        })
    }

    /// Remap without the interrupt entry cache and without recording faults: the
    /// reference the cached path is tested against.
    pub fn remap_interrupt_uncached(
        &self,
        request: &InterruptRequest,
    ) -> Result<Interrupt, InterruptError> {
        self.remap_with(request, Caching::Bypass)
            .map_err(|blocked| match blocked {
                Blocked::Fault(reason, index, _) => InterruptError::Fault(InterruptFault {
                    reason,
                    source_id: request.source_id,
                    index,
                    recorded: false,
                }),
                Blocked::NotAnInterrupt => InterruptError::NotAnInterrupt,
            })
    }

    fn remap_with(
        &self,
        request: &InterruptRequest,
        caching: Caching,
    ) -> Result<Interrupt, Blocked> {
        if request.address >> 20 != 0xFEE {
            return Err(Blocked::NotAnInterrupt);
        }
        let message = MsiMessage {
            address: request.address,
            data: request.data,
        };
        let state = self.ir_state.load(Ordering::Acquire);
        if state & IR_STATE_IRES == 0 {
            return Ok(Interrupt::PassThrough(message));
        }
        let eime = state & (1 << 11) != 0;
        let address = RemappableAddress::from_bits(request.address as u32);
        if !address.remappable() {
            // Compatibility format: allowed only with CFIS, and never in x2APIC mode.
            return if state & IR_STATE_CFIS != 0 && !eime {
                Ok(Interrupt::PassThrough(message))
            } else {
                Err(Blocked::Fault(
                    FaultReason::IR_COMPATIBILITY_BLOCKED,
                    None,
                    false,
                ))
            };
        }
        let subhandle = if address.shv() {
            request.data & 0xFFFF
        } else {
            0
        };
        let index = u32::from(address.handle()) + subhandle;
        let short_index = u16::try_from(index).ok();
        if request.data >> 16 != 0 {
            return Err(Blocked::Fault(
                FaultReason::IR_REQUEST_RESERVED,
                short_index,
                false,
            ));
        }
        let entries = 2u32 << (state & 0xF);
        let Some(index) = short_index.filter(|_| index < entries) else {
            return Err(Blocked::Fault(
                FaultReason::IR_INDEX_BEYOND_TABLE,
                short_index,
                false,
            ));
        };
        let irte = self.interrupt_entry(state & !0xFFF, index, eime, caching)?;
        let fpd = irte.low.fpd();
        let fault = |reason| Blocked::Fault(reason, Some(index), fpd);
        let sid = irte.high.sid();
        let requester = request.source_id.0;
        let verified = match SourceValidation(irte.high.svt()) {
            SourceValidation::NONE => true,
            SourceValidation::REQUESTER_ID => {
                let mask = SourceValidation::sq_mask(irte.high.sq());
                requester & mask == sid & mask
            }
            SourceValidation::BUS_RANGE => {
                let bus = requester >> 8;
                (sid >> 8) <= bus && bus <= (sid & 0xFF)
            }
            _ => return Err(fault(FaultReason::IRTE_RESERVED)),
        };
        if !verified {
            return Err(fault(FaultReason::IR_SOURCE_ID_INVALID));
        }
        if irte.low.im() {
            let posted = irte.posted();
            return Ok(Interrupt::Posted(PostedInterrupt {
                descriptor_address: irte.posted_descriptor_address(),
                vector: posted.vector(),
                urgent: posted.urgent(),
                index,
            }));
        }
        let low = irte.low;
        let destination = if eime {
            low.dst()
        } else {
            (low.dst() >> 8) & 0xFF
        };
        Ok(Interrupt::Remapped(RemappedInterrupt {
            vector: low.vector(),
            destination,
            logical_destination: low.dm(),
            delivery_mode: DeliveryMode(low.dlm()),
            level_triggered: low.tm(),
            redirection_hint: low.rh(),
            index,
        }))
    }

    /// The IRTE at `index`, present and free of reserved bits, from the IEC or the table.
    fn interrupt_entry(
        &self,
        table: u64,
        index: u16,
        eime: bool,
        caching: Caching,
    ) -> Result<Irte, Blocked> {
        let key = iec_key(index);
        let hash = u64::from(index);
        if caching == Caching::Use {
            if let Some(words) = self.iec.lookup(0, hash, |w| w[0] == key) {
                return Ok(decode_irte(&words));
            }
        }
        let mut attempts = 0;
        loop {
            let snap = self.iec.snapshot(0);
            let irte = self.read_irte(table, index, eime)?;
            attempts += 1;
            if caching == Caching::Bypass
                || self
                    .iec
                    .insert(snap, hash, encode_irte(index, &irte), |w| w[0] == key)
                || attempts >= 3
            {
                return Ok(irte);
            }
        }
    }

    fn read_irte(&self, table: u64, index: u16, eime: bool) -> Result<Irte, Blocked> {
        let address = table + u64::from(index) * Irte::SIZE;
        let access_error = Blocked::Fault(FaultReason::IRTE_ACCESS_ERROR, Some(index), false);
        if !below_haw(&self.config, address + Irte::SIZE - 1) {
            return Err(access_error);
        }
        let irte: Irte = read_copy(&self.memory, address).map_err(|_| access_error)?;
        let fpd = irte.low.fpd();
        if !irte.low.present() {
            return Err(Blocked::Fault(
                FaultReason::IRTE_NOT_PRESENT,
                Some(index),
                fpd,
            ));
        }
        let reserved = if irte.low.im() {
            !self.config.posted_interrupts || irte.posted_has_reserved_bits()
        } else {
            irte.remapped_has_reserved_bits(eime) || matches!(irte.low.dlm(), 3 | 6)
        };
        if reserved {
            return Err(Blocked::Fault(FaultReason::IRTE_RESERVED, Some(index), fpd));
        }
        Ok(irte)
    }

    fn interrupt_fault(
        &self,
        request: &InterruptRequest,
        reason: FaultReason,
        index: Option<u16>,
        fpd: bool,
    ) -> InterruptError {
        let mut recorded = false;
        if !(fpd && reason.is_qualified()) {
            let info = FaultInfo {
                source_id: request.source_id.0,
                reason,
                // FI[63:48] holds the interrupt index for interrupt-remapping faults.
                address: u64::from(index.unwrap_or(0)) << 48,
                is_read: false,
                pasid: None,
            };
            recorded = self.report_fault(&info);
        }
        InterruptError::Fault(InterruptFault {
            reason,
            source_id: request.source_id,
            index,
            recorded,
        })
    }

    /// Invalidate the interrupt entry cache: all of it, or 2^`mask` entries at `index`.
    pub(crate) fn flush_interrupt_entries(&self, index: Option<(u16, u8)>) {
        match index {
            Some((first, mask)) if mask <= IEC_PROBE_LIMIT_SHIFT => {
                for i in 0..(1u16 << mask) {
                    let index = first.wrapping_add(i);
                    let key = iec_key(index);
                    self.iec.invalidate_where(u64::from(index), |w| w[0] == key);
                }
            }
            _ => self.iec.invalidate_all(),
        }
        // Results cached by request are flushed whole, after the IEC beneath them.
        self.interrupt_first_level.invalidate_all();
    }

    /// Post `interrupt` into its posted-interrupt descriptor (§9.12): set the vector's
    /// bit in PIR, and if no notification is outstanding (ON clear) and notifications are
    /// not suppressed (SN clear, or the interrupt is urgent), set ON and ask for the
    /// notification event.
    ///
    /// Updates go through [`GuestMemory::compare_exchange_u64`], so they are atomic with
    /// respect to the guest when the embedder implements it atomically.
    pub fn post_interrupt(&self, interrupt: &PostedInterrupt) -> Result<PostOutcome, MemoryError> {
        let base = interrupt.descriptor_address & !0x3F;
        let pir = base + 8 * u64::from(interrupt.vector / 64);
        let bit = 1u64 << (interrupt.vector % 64);
        self.update_u64(pir, |v| v | bit)?;
        let control = base + 32;
        let mut outcome = PostOutcome::Pending;
        self.update_u64(control, |v| {
            let on = v & 1 != 0;
            let sn = v & 2 != 0;
            if on || (sn && !interrupt.urgent) {
                outcome = PostOutcome::Pending;
                v
            } else {
                let ndst = (v >> 32) as u32;
                let x2apic = self.ir_state.load(Ordering::Acquire) & (1 << 11) != 0;
                outcome = PostOutcome::Notify {
                    vector: ((v >> 16) & 0xFF) as u8,
                    destination: if x2apic { ndst } else { (ndst >> 8) & 0xFF },
                };
                v | 1
            }
        })?;
        Ok(outcome)
    }

    /// Read-modify-write a guest qword with compare-exchange, retrying a bounded number of
    /// times if the guest changes it underneath.
    fn update_u64(&self, gpa: u64, mut f: impl FnMut(u64) -> u64) -> Result<(), MemoryError> {
        let mut current = self.memory.read_u64(gpa)?;
        for _ in 0..64 {
            let new = f(current);
            if new == current {
                return Ok(());
            }
            match self.memory.compare_exchange_u64(gpa, current, new)? {
                Ok(_) => return Ok(()),
                Err(actual) => current = actual,
            }
        }
        Err(MemoryError)
    }
}
