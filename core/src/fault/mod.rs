//! Primary fault logging and the two event interrupts (§7.3, §7.4, §11.4.9, §11.4.10).
//!
//! This module owns the rules for putting a fault into the fault recording registers —
//! never overwrite a pending record, overflow (PFO) when the next one is pending, FRI —
//! and for when the fault event and the invalidation completion event send their MSI:
//! an event fires only when no earlier condition is still awaiting software; it is held
//! pending (IP) while masked and sent when software unmasks it; IP clears when software
//! clears the conditions.

use crate::config::Config;
use crate::host::MsiMessage;
use crate::regs::{FaultRecord, RegisterFile};
use crate::spec::fault::FaultReason;
use crate::spec::registers::{FaultRecordHigh, FaultRecordLow};

/// What is known about a fault when it is recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultInfo {
    /// Requester id.
    pub source_id: u16,
    /// Fault reason.
    pub reason: FaultReason,
    /// Faulting address (its page goes into FI), or for interrupt-remapping faults the
    /// interrupt index in bits 63:48.
    pub address: u64,
    /// Whether the request was a read (T1 = 1) rather than a write.
    pub is_read: bool,
    /// PASID of a request-with-PASID.
    pub pasid: Option<u32>,
}

impl FaultInfo {
    fn record(&self) -> FaultRecord {
        let high = FaultRecordHigh::new()
            .with_sid(self.source_id)
            .with_fr(self.reason.0)
            .with_t1(self.is_read)
            .with_pp(self.pasid.is_some())
            .with_pv(self.pasid.unwrap_or(0) & 0xF_FFFF)
            .with_f(true);
        FaultRecord {
            low: FaultRecordLow::new()
                .with_fi(self.address >> 12)
                .into_bits(),
            high: high.into_bits(),
        }
    }
}

/// Whether any condition that raises the fault event is awaiting software.
fn fault_condition_pending(regs: &RegisterFile, config: &Config) -> bool {
    let fsts = regs.fault_status(config);
    fsts.ppf() || fsts.pfo() || fsts.iqe() || fsts.ice() || fsts.ite()
}

/// The fault event message, as software programmed it.
fn fault_event_message(regs: &RegisterFile) -> MsiMessage {
    MsiMessage {
        address: (u64::from(regs.feuaddr) << 32) | u64::from(regs.feaddr),
        data: regs.fedata,
    }
}

/// The invalidation completion event message, as software programmed it.
fn invalidation_event_message(regs: &RegisterFile) -> MsiMessage {
    MsiMessage {
        address: (u64::from(regs.ieuaddr) << 32) | u64::from(regs.ieaddr),
        data: regs.iedata,
    }
}

/// Raise the fault event: set IP, and send now unless masked.
fn raise_fault_event(regs: &mut RegisterFile) -> Option<MsiMessage> {
    if regs.fectl.im() {
        regs.fectl.set_ip(true);
        None
    } else {
        regs.fectl.set_ip(false);
        Some(fault_event_message(regs))
    }
}

/// Record a fault. Returns whether it went into a register, and the fault event MSI to
/// send, if any.
pub fn record_fault(
    regs: &mut RegisterFile,
    config: &Config,
    fault: &FaultInfo,
) -> (bool, Option<MsiMessage>) {
    if regs.fsts.pfo() {
        // Overflowed: nothing more is recorded until software clears PFO.
        return (false, None);
    }
    let pending_before = fault_condition_pending(regs, config);
    let ppf_before = regs.fault_status(config).ppf();
    let count = usize::from(config.fault_records).max(1);
    let index = usize::from(regs.next_fault_record) % count;
    let Some(slot) = regs.frcd.get_mut(index) else {
        return (false, None);
    };
    if slot.is_pending() {
        regs.fsts.set_pfo(true);
        let msi = if pending_before {
            None
        } else {
            raise_fault_event(regs)
        };
        return (false, msi);
    }
    *slot = fault.record();
    if !ppf_before {
        regs.fsts.set_fri(index as u8);
    }
    regs.next_fault_record = ((index + 1) % count) as u16;
    let msi = if pending_before {
        None
    } else {
        raise_fault_event(regs)
    };
    (true, msi)
}

/// Status bits were cleared (FSTS written or a record's F cleared): once no condition
/// remains, IP clears; a pending record that software skipped keeps FRI pointing at a
/// pending record.
pub fn fault_status_written(regs: &mut RegisterFile, config: &Config) {
    if !fault_condition_pending(regs, config) {
        regs.fectl.set_ip(false);
    } else if let Some(first) = first_pending_record(regs, config) {
        if !regs
            .records(config)
            .get(usize::from(regs.fsts.fri()))
            .is_some_and(FaultRecord::is_pending)
        {
            regs.fsts.set_fri(first);
        }
    }
}

fn first_pending_record(regs: &RegisterFile, config: &Config) -> Option<u8> {
    let records = regs.records(config);
    let count = records.len();
    if count == 0 {
        return None;
    }
    // Search from the oldest possible record (the one the next fault would overwrite).
    let start = usize::from(regs.next_fault_record) % count;
    (0..count)
        .map(|i| (start + i) % count)
        .find(|&i| records.get(i).is_some_and(FaultRecord::is_pending))
        .map(|i| i as u8)
}

/// FECTL was written: unmasking with IP set sends the held event.
pub fn fault_event_control_written(regs: &mut RegisterFile) -> Option<MsiMessage> {
    if !regs.fectl.im() && regs.fectl.ip() {
        regs.fectl.set_ip(false);
        return Some(fault_event_message(regs));
    }
    None
}

/// Raise the fault event for an invalidation queue error (IQE, ICE or ITE just set);
/// `pending_before` is whether any fault condition was pending before it.
pub fn queue_error_event(regs: &mut RegisterFile, pending_before: bool) -> Option<MsiMessage> {
    if pending_before {
        None
    } else {
        raise_fault_event(regs)
    }
}

/// Whether any fault-event condition is pending (used before setting a new one).
pub fn any_fault_condition(regs: &RegisterFile, config: &Config) -> bool {
    fault_condition_pending(regs, config)
}

/// An invalidation wait descriptor with IF completed: set ICS.IWC and raise the
/// invalidation completion event unless IWC was already set.
pub fn invalidation_wait_completed(regs: &mut RegisterFile) -> Option<MsiMessage> {
    if regs.ics.iwc() {
        return None;
    }
    regs.ics.set_iwc(true);
    if regs.iectl.im() {
        regs.iectl.set_ip(true);
        None
    } else {
        regs.iectl.set_ip(false);
        Some(invalidation_event_message(regs))
    }
}

/// ICS was written: IP clears once IWC is clear.
pub fn completion_status_written(regs: &mut RegisterFile) {
    if !regs.ics.iwc() {
        regs.iectl.set_ip(false);
    }
}

/// IECTL was written: unmasking with IP set sends the held event.
pub fn invalidation_event_control_written(regs: &mut RegisterFile) -> Option<MsiMessage> {
    if !regs.iectl.im() && regs.iectl.ip() {
        regs.iectl.set_ip(false);
        return Some(invalidation_event_message(regs));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(sid: u16) -> FaultInfo {
        FaultInfo {
            source_id: sid,
            reason: FaultReason::READ_NOT_PERMITTED,
            address: 0x1234_5678,
            is_read: true,
            pasid: None,
        }
    }

    fn setup(records: u16) -> (Config, RegisterFile) {
        let config = Config {
            fault_records: records,
            ..Config::default()
        };
        let mut regs = RegisterFile::new();
        regs.fedata = 0x40;
        regs.feaddr = 0xFEE0_0000;
        (config, regs)
    }

    #[test]
    fn a_record_holds_the_fault_and_sets_ppf_and_fri() {
        let (c, mut r) = setup(4);
        r.fectl.set_im(false);
        let (recorded, msi) = record_fault(&mut r, &c, &fault(0x10));
        assert!(recorded);
        assert_eq!(
            msi,
            Some(MsiMessage {
                address: 0xFEE0_0000,
                data: 0x40
            })
        );
        let rec = r.frcd[0];
        assert_eq!(rec.low, 0x1234_5000);
        let high = FaultRecordHigh::from_bits(rec.high);
        assert!(high.f() && high.t1());
        assert_eq!((high.sid(), high.fr()), (0x10, 6));
        let fsts = r.fault_status(&c);
        assert!(fsts.ppf());
        assert_eq!(fsts.fri(), 0);
        // A second fault while PPF is set is recorded but raises no new event.
        assert_eq!(record_fault(&mut r, &c, &fault(0x11)), (true, None));
    }

    #[test]
    fn overflow_when_the_next_record_is_pending_and_nothing_is_overwritten() {
        let (c, mut r) = setup(2);
        assert!(record_fault(&mut r, &c, &fault(1)).0);
        assert!(record_fault(&mut r, &c, &fault(2)).0);
        assert!(!record_fault(&mut r, &c, &fault(3)).0);
        assert!(r.fsts.pfo());
        assert_eq!(FaultRecordHigh::from_bits(r.frcd[0].high).sid(), 1);
        assert_eq!(FaultRecordHigh::from_bits(r.frcd[1].high).sid(), 2);
        // Clearing the records alone does not resume recording while PFO is set.
        r.frcd[0].high = 0;
        assert!(!record_fault(&mut r, &c, &fault(4)).0);
        r.fsts.set_pfo(false);
        assert!(record_fault(&mut r, &c, &fault(5)).0);
    }

    #[test]
    fn masked_event_is_held_pending_and_sent_on_unmask() {
        let (c, mut r) = setup(8);
        assert_eq!(record_fault(&mut r, &c, &fault(1)), (true, None));
        assert!(r.fectl.ip());
        r.fectl.set_im(false);
        assert!(fault_event_control_written(&mut r).is_some());
        assert!(!r.fectl.ip());
        assert_eq!(fault_event_control_written(&mut r), None);
    }

    #[test]
    fn ip_clears_when_software_clears_the_conditions() {
        let (c, mut r) = setup(8);
        record_fault(&mut r, &c, &fault(1));
        assert!(r.fectl.ip());
        r.frcd[0].high = 0;
        fault_status_written(&mut r, &c);
        assert!(!r.fectl.ip());
    }

    #[test]
    fn invalidation_event_fires_once_per_iwc() {
        let mut r = RegisterFile::new();
        r.iectl.set_im(false);
        r.iedata = 7;
        assert_eq!(invalidation_wait_completed(&mut r).map(|m| m.data), Some(7));
        assert_eq!(invalidation_wait_completed(&mut r), None);
        r.ics.set_iwc(false);
        completion_status_written(&mut r);
        r.iectl.set_im(true);
        assert_eq!(invalidation_wait_completed(&mut r), None);
        assert!(r.iectl.ip());
        r.iectl.set_im(false);
        assert!(invalidation_event_control_written(&mut r).is_some());
    }
}
