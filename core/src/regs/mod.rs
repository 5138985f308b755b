//! The register file: architectural register state and MMIO decode (§10, §11).
//!
//! This module owns what a guest can read back and the pure bit semantics of every
//! register — read-only bits, reserved bits reading zero, RW1C status bits, one-shot
//! commands. It does no I/O and touches no cache: a write that asks the hardware to *do*
//! something returns a [`Command`] that the unit carries out.
//!
//! Accesses are decoded as dwords: an 8-byte access is the low dword then the high dword,
//! which is exactly what a pair of 4-byte accesses does, so both work on every register.

use crate::config::Config;
use crate::spec::registers::{
    offset, Capability, ContextCommand, EventControl, ExtendedCapability, FaultRecordHigh,
    FaultStatus, GlobalCommand, InvalidateAddress, InvalidationCompletionStatus, IotlbInvalidate,
    MAX_FAULT_RECORDS,
};

/// One fault recording register (§11.4.14) as the guest reads it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultRecord {
    /// Low qword: fault information.
    pub low: u64,
    /// High qword: SID, FR, type, and the F bit.
    pub high: u64,
}

impl FaultRecord {
    /// Whether F is set (the record is pending software's attention).
    pub fn is_pending(&self) -> bool {
        FaultRecordHigh::from_bits(self.high).f()
    }
}

/// Something a register write asks the hardware to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// GCMD was written with this value.
    GlobalCommand(GlobalCommand),
    /// CCMD was written with ICC set.
    InvalidateContext(ContextCommand),
    /// The IOTLB register was written with IVT set (IVA holds the address part).
    InvalidateIotlb(IotlbInvalidate, InvalidateAddress),
    /// IQT was written: process the queue.
    ProcessQueue,
    /// FSTS was written: status bits may have been cleared (IP, queue restart).
    FaultStatusWritten,
    /// A fault record's F bit was cleared.
    FaultRecordCleared,
    /// FECTL was written: IM may have been cleared with IP set.
    FaultEventControlWritten,
    /// ICS was written: IWC may have been cleared.
    CompletionStatusWritten,
    /// IECTL was written: IM may have been cleared with IP set.
    InvalidationEventControlWritten,
}

/// Architectural state of the registers — a plain struct, so saving and restoring it is
/// copying it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisterFile {
    /// GSTS.
    pub gsts: GlobalCommand,
    /// RTADDR as last written.
    pub rtaddr: u64,
    /// CCMD readback (ICC clear, CAIG of the last request).
    pub ccmd: u64,
    /// FSTS's RW1C bits (PFO, AFO, APF, IQE, ICE, ITE) and FRI; PPF is derived.
    pub fsts: FaultStatus,
    /// FECTL.
    pub fectl: EventControl,
    /// FEDATA.
    pub fedata: u32,
    /// FEADDR.
    pub feaddr: u32,
    /// FEUADDR.
    pub feuaddr: u32,
    /// PMEN (EPM, and PRS mirroring it).
    pub pmen: u32,
    /// IQH: byte offset of the next descriptor to fetch.
    pub iqh: u64,
    /// IQT: byte offset one past the last descriptor software wrote.
    pub iqt: u64,
    /// IQA.
    pub iqa: u64,
    /// ICS.
    pub ics: InvalidationCompletionStatus,
    /// IECTL.
    pub iectl: EventControl,
    /// IEDATA.
    pub iedata: u32,
    /// IEADDR.
    pub ieaddr: u32,
    /// IEUADDR.
    pub ieuaddr: u32,
    /// IQERCD.
    pub iqercd: u64,
    /// IRTA as last written.
    pub irta: u64,
    /// IVA.
    pub iva: u64,
    /// IOTLB register readback.
    pub iotlb: u64,
    /// The fault recording registers (only the first `Config::fault_records` are used).
    pub frcd: [FaultRecord; MAX_FAULT_RECORDS],
    /// Index of the register the next fault goes into.
    pub next_fault_record: u16,
}

/// Bits of IQT/IQH that hold the offset (QT/QH, 18:4).
pub const QUEUE_OFFSET_MASK: u64 = 0x7_FFF0;
/// Writable bits of RTADDR (RTA and TTM).
const RTADDR_MASK: u64 = !0x3FF;
/// Writable bits of IQA (IQA, DW, QS).
const IQA_MASK: u64 = !0x7F8;
/// Writable bits of IRTA (IRTA, EIME, S).
const IRTA_MASK: u64 = !0x7F0;
/// IRTA.EIME: x2APIC mode (writable only with ECAP.EIM).
pub const IRTA_EIME: u64 = 1 << 11;
/// Writable bits of FEADDR/IEADDR.
const EVENT_ADDRESS_MASK: u32 = !0x3;
/// PMEN.EPM (bit 31) and PMEN.PRS (bit 0).
const PMEN_EPM: u32 = 1 << 31;
const PMEN_PRS: u32 = 1;

impl RegisterFile {
    /// Registers at reset (§10.4 reset values): everything clear but the interrupt masks.
    pub fn new() -> Self {
        Self {
            gsts: GlobalCommand::new(),
            rtaddr: 0,
            ccmd: 0,
            fsts: FaultStatus::new(),
            fectl: EventControl::new().with_im(true),
            fedata: 0,
            feaddr: 0,
            feuaddr: 0,
            pmen: 0,
            iqh: 0,
            iqt: 0,
            iqa: 0,
            ics: InvalidationCompletionStatus::new(),
            iectl: EventControl::new().with_im(true),
            iedata: 0,
            ieaddr: 0,
            ieuaddr: 0,
            iqercd: 0,
            irta: 0,
            iva: 0,
            iotlb: 0,
            frcd: [FaultRecord::default(); MAX_FAULT_RECORDS],
            next_fault_record: 0,
        }
    }

    /// Whether any fault record is pending (FSTS.PPF).
    pub fn primary_pending_fault(&self, config: &Config) -> bool {
        self.records(config).iter().any(FaultRecord::is_pending)
    }

    /// The fault records this configuration has.
    pub fn records(&self, config: &Config) -> &[FaultRecord] {
        let n = usize::from(config.fault_records).min(MAX_FAULT_RECORDS);
        self.frcd.get(..n).unwrap_or(&[])
    }

    /// FSTS as the guest reads it.
    pub fn fault_status(&self, config: &Config) -> FaultStatus {
        self.fsts.with_ppf(self.primary_pending_fault(config))
    }

    /// Read `size` (4 or 8) bytes at `offset`. Anything else reads 0.
    pub fn read(&self, config: &Config, offset: u64, size: u8) -> u64 {
        match size {
            4 if offset % 4 == 0 => u64::from(self.read32(config, offset)),
            8 if offset % 8 == 0 => {
                u64::from(self.read32(config, offset))
                    | (u64::from(self.read32(config, offset + 4)) << 32)
            }
            _ => 0,
        }
    }

    /// Write `size` (4 or 8) bytes at `offset`, returning what the hardware must do (at most
    /// one command per dword). Anything else is dropped.
    pub fn write(
        &mut self,
        config: &Config,
        offset: u64,
        size: u8,
        value: u64,
    ) -> [Option<Command>; 2] {
        match size {
            4 if offset % 4 == 0 => [self.write32(config, offset, value as u32), None],
            8 if offset % 8 == 0 => [
                self.write32(config, offset, value as u32),
                self.write32(config, offset + 4, (value >> 32) as u32),
            ],
            _ => [None, None],
        }
    }

    fn read32(&self, config: &Config, offset: u64) -> u32 {
        let cap: Capability = config.capability();
        let ecap: ExtendedCapability = config.extended_capability();
        let (qword, high) = (offset & !7, offset & 4 != 0);
        let half = |v: u64| if high { (v >> 32) as u32 } else { v as u32 };
        match offset {
            offset::VER => config.version().into_bits(),
            offset::GSTS => self.gsts.into_bits(),
            offset::FSTS => self.fault_status(config).into_bits(),
            offset::FECTL => self.fectl.into_bits(),
            offset::FEDATA => self.fedata,
            offset::FEADDR => self.feaddr,
            offset::FEUADDR => self.feuaddr,
            offset::PMEN => self.pmen,
            offset::ICS => self.ics.into_bits(),
            offset::IECTL => self.iectl.into_bits(),
            offset::IEDATA => self.iedata,
            offset::IEADDR => self.ieaddr,
            offset::IEUADDR => self.ieuaddr,
            _ => match qword {
                offset::CAP => half(cap.into_bits()),
                offset::ECAP => half(ecap.into_bits()),
                offset::RTADDR => half(self.rtaddr),
                offset::CCMD => half(self.ccmd),
                offset::IQH => half(self.iqh),
                offset::IQT => half(self.iqt),
                offset::IQA => half(self.iqa),
                offset::IQERCD => half(self.iqercd),
                offset::IRTA => half(self.irta),
                offset::IVA => half(self.iva),
                offset::IOTLB => half(self.iotlb),
                _ => match self.fault_record_index(config, qword) {
                    Some((index, upper)) => {
                        let record = self.frcd.get(index).copied().unwrap_or_default();
                        half(if upper { record.high } else { record.low })
                    }
                    None => 0,
                },
            },
        }
    }

    /// Which fault record (and which of its qwords) an 8-byte-aligned offset addresses.
    fn fault_record_index(&self, config: &Config, qword: u64) -> Option<(usize, bool)> {
        let rel = qword.checked_sub(offset::FRCD)?;
        let index = usize::try_from(rel / 16).ok()?;
        (index < usize::from(config.fault_records)).then_some((index, rel % 16 == 8))
    }

    fn write32(&mut self, config: &Config, offset: u64, value: u32) -> Option<Command> {
        let (qword, high) = (offset & !7, offset & 4 != 0);
        let merge = |old: u64, mask: u64| -> u64 {
            let v = if high {
                (old & 0xFFFF_FFFF) | (u64::from(value) << 32)
            } else {
                (old & !0xFFFF_FFFF) | u64::from(value)
            };
            v & mask
        };
        match offset {
            offset::GCMD => return Some(Command::GlobalCommand(GlobalCommand::from_bits(value))),
            offset::FSTS => {
                let clear = value & FaultStatus::RW1C_MASK;
                self.fsts = FaultStatus::from_bits(self.fsts.into_bits() & !clear);
                return Some(Command::FaultStatusWritten);
            }
            offset::FECTL => {
                self.fectl.set_im(EventControl::from_bits(value).im());
                return Some(Command::FaultEventControlWritten);
            }
            offset::FEDATA => self.fedata = value,
            offset::FEADDR => self.feaddr = value & EVENT_ADDRESS_MASK,
            offset::FEUADDR => self.feuaddr = value,
            offset::PMEN => {
                // No protected regions are advertised; EPM still reads back with PRS.
                let epm = value & PMEN_EPM;
                self.pmen = epm | if epm != 0 { PMEN_PRS } else { 0 };
            }
            offset::ICS => {
                if InvalidationCompletionStatus::from_bits(value).iwc() {
                    self.ics.set_iwc(false);
                }
                return Some(Command::CompletionStatusWritten);
            }
            offset::IECTL => {
                self.iectl.set_im(EventControl::from_bits(value).im());
                return Some(Command::InvalidationEventControlWritten);
            }
            offset::IEDATA => self.iedata = value,
            offset::IEADDR => self.ieaddr = value & EVENT_ADDRESS_MASK,
            offset::IEUADDR => self.ieuaddr = value,
            _ => match qword {
                offset::RTADDR => self.rtaddr = merge(self.rtaddr, RTADDR_MASK),
                offset::CCMD => {
                    let written = ContextCommand::from_bits(merge(self.ccmd, u64::MAX));
                    // Software sees ICC clear and CAIG from the last completed request.
                    self.ccmd = written.with_icc(false).into_bits();
                    if high && written.icc() {
                        return Some(Command::InvalidateContext(written));
                    }
                }
                offset::IQT => {
                    if !high {
                        self.iqt = u64::from(value) & QUEUE_OFFSET_MASK;
                        return Some(Command::ProcessQueue);
                    }
                }
                offset::IQA => self.iqa = merge(self.iqa, IQA_MASK),
                offset::IRTA => {
                    // EIME is RsvdZ when ECAP.EIM is clear (§11.4.29): no x2APIC mode.
                    let eime = if config.extended_interrupt_mode {
                        0
                    } else {
                        IRTA_EIME
                    };
                    self.irta = merge(self.irta, IRTA_MASK & !eime);
                }
                offset::IVA => self.iva = merge(self.iva, !0xF80),
                offset::IOTLB => {
                    let written = IotlbInvalidate::from_bits(merge(self.iotlb, u64::MAX));
                    self.iotlb = written.with_ivt(false).into_bits();
                    if high && written.ivt() {
                        return Some(Command::InvalidateIotlb(
                            written,
                            InvalidateAddress::from_bits(self.iva),
                        ));
                    }
                }
                _ => {
                    if let Some((index, true)) = self.fault_record_index(config, qword) {
                        // Only F (bit 127, the top bit of the last dword) is writable: RW1C.
                        if high && value & (1 << 31) != 0 {
                            if let Some(record) = self.frcd.get_mut(index) {
                                if record.is_pending() {
                                    record.high = FaultRecordHigh::from_bits(record.high)
                                        .with_f(false)
                                        .into_bits();
                                    return Some(Command::FaultRecordCleared);
                                }
                            }
                        }
                    }
                }
            },
        }
        None
    }
}

impl Default for RegisterFile {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regs() -> (Config, RegisterFile) {
        (Config::default(), RegisterFile::new())
    }

    #[test]
    fn reset_values() {
        let (c, r) = regs();
        assert_eq!(r.read(&c, offset::VER, 4), 0x10);
        assert_eq!(r.read(&c, offset::CAP, 8), c.capability().into_bits());
        assert_eq!(
            r.read(&c, offset::ECAP, 8),
            c.extended_capability().into_bits()
        );
        assert_eq!(r.read(&c, offset::GSTS, 4), 0);
        assert_eq!(r.read(&c, offset::FECTL, 4), 1 << 31);
        assert_eq!(r.read(&c, offset::IECTL, 4), 1 << 31);
    }

    #[test]
    fn a_64_bit_register_reads_as_two_dwords_and_an_8_byte_access_spans_a_pair() {
        let (c, r) = regs();
        let cap = c.capability().into_bits();
        assert_eq!(r.read(&c, offset::CAP, 4), cap & 0xFFFF_FFFF);
        assert_eq!(r.read(&c, offset::CAP + 4, 4), cap >> 32);
        // GCMD (reads 0) and GSTS as one qword.
        assert_eq!(r.read(&c, offset::GCMD, 8), 0);
    }

    #[test]
    fn reserved_and_read_only_bits() {
        let (c, mut r) = regs();
        r.write(&c, offset::RTADDR, 8, u64::MAX);
        assert_eq!(r.read(&c, offset::RTADDR, 8), !0x3FF);
        r.write(&c, offset::FEADDR, 4, u64::MAX);
        assert_eq!(r.read(&c, offset::FEADDR, 4), 0xFFFF_FFFC);
        r.write(&c, offset::CAP, 8, 0);
        assert_eq!(r.read(&c, offset::CAP, 8), c.capability().into_bits());
        r.write(&c, offset::FECTL, 4, u64::MAX);
        assert_eq!(r.read(&c, offset::FECTL, 4), 1 << 31, "IP is read-only");
        r.write(&c, offset::IQT, 8, u64::MAX);
        assert_eq!(r.read(&c, offset::IQT, 8), QUEUE_OFFSET_MASK);
    }

    #[test]
    fn bad_sizes_and_offsets_read_zero_and_drop_writes() {
        let (c, mut r) = regs();
        for size in [0u8, 1, 2, 3, 5, 16, 255] {
            assert_eq!(r.read(&c, offset::CAP, size), 0);
            assert_eq!(r.write(&c, offset::RTADDR, size, u64::MAX), [None, None]);
        }
        assert_eq!(r.read(&c, offset::CAP + 2, 4), 0);
        assert_eq!(r.read(&c, offset::CAP + 4, 8), 0);
        assert_eq!(r.read(&c, 0xFFC, 4), 0);
        assert_eq!(r.read(&c, u64::MAX - 3, 4), 0);
        assert_eq!(r.read(&c, !7, 8), 0);
        assert_eq!(r.read(&c, offset::RTADDR, 8), 0);
    }

    #[test]
    fn ccmd_fires_on_the_high_dword_and_reads_back_with_icc_clear() {
        let (c, mut r) = regs();
        let cmd = ContextCommand::new()
            .with_icc(true)
            .with_cirg(1)
            .with_did(7);
        let [low, high] = r.write(&c, offset::CCMD, 8, cmd.into_bits());
        assert_eq!(low, None);
        assert_eq!(high, Some(Command::InvalidateContext(cmd)));
        assert!(!ContextCommand::from_bits(r.read(&c, offset::CCMD, 8)).icc());
    }

    #[test]
    fn fault_record_f_bit_is_rw1c_and_other_bits_are_read_only() {
        let (c, mut r) = regs();
        r.frcd[1] = FaultRecord {
            low: 0x1000,
            high: (1 << 63) | (5 << 32) | 0x10,
        };
        let high = offset::FRCD + 16 + 8;
        r.write(&c, high, 8, 0);
        assert_eq!(r.read(&c, high, 8) >> 63, 1);
        assert_eq!(
            r.write(&c, high + 4, 4, 1 << 31)[0],
            Some(Command::FaultRecordCleared)
        );
        assert_eq!(r.read(&c, high, 8), (5 << 32) | 0x10);
        // Records past CAP.NFR do not exist.
        assert_eq!(r.read(&c, offset::FRCD + 16 * 8, 8), 0);
    }

    #[test]
    fn fsts_bits_are_rw1c_and_ppf_is_derived() {
        let (c, mut r) = regs();
        r.fsts = r.fsts.with_pfo(true).with_iqe(true);
        r.frcd[0].high = 1 << 63;
        assert_eq!(r.read(&c, offset::FSTS, 4), 0b10011);
        r.write(&c, offset::FSTS, 4, 0b10);
        assert_eq!(r.read(&c, offset::FSTS, 4), 0b10011, "PPF is read-only");
        r.write(&c, offset::FSTS, 4, 0b10001);
        assert_eq!(r.read(&c, offset::FSTS, 4), 0b10);
    }
}
