//! Queued invalidation: fetching and carrying out invalidation descriptors (§6.5.2).
//!
//! Processing is bounded by construction: it advances the head toward the tail, one
//! descriptor at a time, and the tail is a valid offset inside the queue, so it stops
//! after at most one lap. An error sets IQE and leaves the head on the offending
//! descriptor; clearing IQE resumes there.

use crate::fault;
use crate::host::{Host, InvalidationEvent};
use crate::memory::GuestMemory;
use crate::regs::{RegisterFile, QUEUE_OFFSET_MASK};
use crate::spec::invalidation::{
    ContextCacheInvalidate, DescriptorType, DeviceTlbInvalidate, DeviceTlbInvalidateAddress,
    InterruptEntryCacheInvalidate, InvalidationDescriptor, InvalidationWait,
    IotlbInvalidateDescriptor,
};
use crate::spec::registers::{
    ContextGranularity, InvalidateAddress, InvalidationQueueAddress, InvalidationQueueErrorRecord,
    IotlbGranularity, QueueErrorInfo,
};
use crate::unit::{Outbox, State, Unit};

impl<M: GuestMemory, H: Host> Unit<M, H> {
    /// Process descriptors from IQH up to IQT. Returns true when it stopped early to let
    /// the caller deliver notices (call again), false when the queue is empty or stopped.
    pub(crate) fn process_queue(&self, state: &mut State, out: &mut Outbox) -> bool {
        let regs = &mut state.regs;
        if !regs.gsts.qie() || regs.fsts.iqe() || regs.fsts.ite() {
            return false;
        }
        let iqa = InvalidationQueueAddress::from_bits(regs.iqa);
        let wide = iqa.dw();
        let descriptor_size: u64 = if wide { 32 } else { 16 };
        let queue_bytes = 4096u64 << iqa.qs();
        let base = iqa.iqa() << 12;
        let tail = regs.iqt & QUEUE_OFFSET_MASK;
        let mut head = regs.iqh & QUEUE_OFFSET_MASK;
        if wide {
            // 256-bit descriptors need scalable-mode support, which this unit lacks.
            return self.queue_error(regs, QueueErrorInfo::INVALID_WIDTH, out);
        }
        if tail >= queue_bytes || head >= queue_bytes || tail % descriptor_size != 0 {
            return self.queue_error(regs, QueueErrorInfo::TAIL_MISALIGNED, out);
        }
        while head != tail {
            if out.is_nearly_full() {
                return true;
            }
            let mut bytes = [0u8; 32];
            let len = descriptor_size as usize;
            // IQA is a 52-bit page number: a queue may run past the top of the address
            // space, which is as unreachable as memory above HAW.
            let fetched = base.checked_add(head).is_some_and(|address| {
                address
                    .checked_add(descriptor_size - 1)
                    .is_some_and(|last| crate::dma::context::below_haw(&self.config, last))
                    && bytes
                        .get_mut(..len)
                        .is_some_and(|b| self.memory.read(address, b).is_ok())
            });
            if !fetched {
                return self.queue_error(regs, QueueErrorInfo::FETCH_ERROR, out);
            }
            let mut descriptor = InvalidationDescriptor::default();
            for (qw, chunk) in descriptor.qw.iter_mut().zip(bytes.chunks_exact(8)) {
                let mut word = [0u8; 8];
                word.copy_from_slice(chunk);
                *qw = u64::from_le_bytes(word);
            }
            if let Err(info) = self.execute_descriptor(regs, &descriptor, out) {
                return self.queue_error(regs, info, out);
            }
            head = (head + descriptor_size) % queue_bytes;
            regs.iqh = head;
        }
        false
    }

    /// Stop the queue with IQE (head stays on the bad descriptor) and raise the fault event.
    fn queue_error(&self, regs: &mut RegisterFile, info: QueueErrorInfo, out: &mut Outbox) -> bool {
        let pending_before = fault::any_fault_condition(regs, &self.config);
        regs.fsts.set_iqe(true);
        regs.iqercd = InvalidationQueueErrorRecord::from_bits(regs.iqercd)
            .with_iqei(info.0)
            .into_bits();
        out.msi(fault::queue_error_event(regs, pending_before));
        false
    }

    fn execute_descriptor(
        &self,
        regs: &mut RegisterFile,
        descriptor: &InvalidationDescriptor,
        out: &mut Outbox,
    ) -> Result<(), QueueErrorInfo> {
        let [qw0, qw1, ..] = descriptor.qw;
        let kind = descriptor.descriptor_type();
        let supported = match kind {
            DescriptorType::CONTEXT_CACHE
            | DescriptorType::IOTLB
            | DescriptorType::INVALIDATION_WAIT => true,
            DescriptorType::DEVICE_TLB => self.config.device_tlb,
            DescriptorType::INTERRUPT_ENTRY_CACHE => self.config.interrupt_remapping,
            _ => false,
        };
        if !supported {
            return Err(QueueErrorInfo::INVALID_TYPE);
        }
        if descriptor.has_reserved_bits() {
            return Err(QueueErrorInfo::RESERVED_FIELD);
        }
        match kind {
            DescriptorType::CONTEXT_CACHE => {
                let d = ContextCacheInvalidate::from_bits(qw0);
                let done = self.invalidate_context(
                    ContextGranularity(d.g()),
                    d.did(),
                    d.sid(),
                    d.fm(),
                    out,
                );
                if done == ContextGranularity::NONE {
                    return Err(QueueErrorInfo::RESERVED_FIELD);
                }
            }
            DescriptorType::IOTLB => {
                let d = IotlbInvalidateDescriptor::from_bits(qw0);
                let mut granularity = IotlbGranularity(d.g());
                let address = InvalidateAddress::from_bits(qw1);
                if granularity == IotlbGranularity::PAGE
                    && (!self.config.page_selective_invalidation
                        || address.am() > self.config.max_address_mask)
                {
                    // Over-invalidating is always correct; the domain covers the pages.
                    granularity = IotlbGranularity::DOMAIN;
                }
                if self.invalidate_iotlb(granularity, d.did(), address, out)
                    == IotlbGranularity::NONE
                {
                    return Err(QueueErrorInfo::RESERVED_FIELD);
                }
            }
            DescriptorType::DEVICE_TLB => {
                let d = DeviceTlbInvalidate::from_bits(qw0);
                let a = DeviceTlbInvalidateAddress::from_bits(qw1);
                let (address, size) = device_tlb_range(a);
                out.event(InvalidationEvent::DeviceTlb {
                    source_id: d.sid(),
                    pf_source_id: u16::from(d.pfsid_low()) | (d.pfsid_high() << 4),
                    address,
                    size,
                });
            }
            DescriptorType::INTERRUPT_ENTRY_CACHE => {
                let d = InterruptEntryCacheInvalidate::from_bits(qw0);
                let index = d
                    .g()
                    .then(|| (d.iidx() & !((1u16 << d.im().min(15)) - 1), d.im()));
                self.invalidate_interrupt_entries(index, out);
            }
            _ => {
                let d = InvalidationWait::from_bits(qw0);
                if d.status_write() {
                    let address = qw1 & !3;
                    let written = crate::dma::context::below_haw(&self.config, address + 3)
                        && self
                            .memory
                            .write(address, &d.status_data().to_le_bytes())
                            .is_ok();
                    if !written {
                        return Err(QueueErrorInfo::STATUS_WRITE_ERROR);
                    }
                }
                if d.interrupt_flag() {
                    out.msi(fault::invalidation_wait_completed(regs));
                }
                // FN (fence) and PD (drain) hold trivially: descriptors complete in order
                // and there are no page requests.
            }
        }
        Ok(())
    }
}

/// The range a device-TLB invalidation names: with S set, the lowest clear address bit
/// (from bit 12) gives the size (§6.5.2.5).
fn device_tlb_range(a: DeviceTlbInvalidateAddress) -> (u64, u64) {
    let page = a.addr() << 12;
    if !a.s() {
        return (page, 4096);
    }
    let ones = (a.addr()).trailing_ones();
    let shift = (12 + ones + 1).min(63);
    (page & !((1u64 << shift) - 1), 1u64 << shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_tlb_size_encoding() {
        let a = |addr: u64, s: bool| {
            DeviceTlbInvalidateAddress::new()
                .with_addr(addr >> 12)
                .with_s(s)
        };
        assert_eq!(device_tlb_range(a(0x5000, false)), (0x5000, 0x1000));
        // ADDR bit 12 set, bit 13 clear: 16 KiB.
        assert_eq!(device_tlb_range(a(0x5000, true)), (0x4000, 0x4000));
        assert_eq!(device_tlb_range(a(0x7000, true)), (0, 0x10000));
        assert_eq!(device_tlb_range(a(0x4000, true)), (0x4000, 0x2000));
        assert_eq!(device_tlb_range(a(!0xFFF, true)).1, 1 << 63);
    }
}
