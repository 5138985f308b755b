//! Test fixtures shared by the unit tests, the scenario tests, the benchmarks, the fuzzers
//! and the demo (feature `testing`, which needs `std`).
//!
//! - [`TestMemory`]: guest memory backed by a byte vector; accesses outside it fail.
//! - [`RecordingHost`]: a host that records every MSI and invalidation notice.
//! - [`GuestTables`]: builds root, context and second-level tables in guest memory.
//! - [`GuestDriver`]: programs the unit through MMIO the way Linux's intel-iommu driver
//!   does — root table, queued invalidation, invalidations and waits, translation enable.

use std::boxed::Box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::vec::Vec;

use crate::dma::request::{DmaError, DmaFault, DmaRequest, Mapping, Translation};
use crate::host::{Host, InvalidationEvent, MsiMessage};
use crate::memory::{GuestMemory, MemoryError};
use crate::spec::invalidation::{
    ContextCacheInvalidate, DescriptorType, DeviceTlbInvalidate, DeviceTlbInvalidateAddress,
    InterruptEntryCacheInvalidate, InvalidationWait, IotlbInvalidateDescriptor,
};
use crate::spec::registers::{
    offset, ContextCommand, FaultRecordHigh, FaultRecordLow, FaultStatus, GlobalCommand,
    InvalidateAddress, IotlbInvalidate,
};
use crate::spec::root_context::{AddressWidth, TranslationType};
use crate::unit::Unit;

/// Guest memory backed by `size` bytes at guest-physical 0, held in atomic qwords so that
/// any number of threads read and write it without a lock (the way a VMM's guest RAM is
/// plain shared memory): an aligned 8-byte access is one atomic load or store, other
/// accesses go qword by qword, so — as on real hardware — a read wider than 8 bytes that
/// races a write can see part of it. Accesses outside the memory fail.
pub struct TestMemory {
    words: Box<[AtomicU64]>,
    size: usize,
    reads: AtomicU64,
}

impl TestMemory {
    /// `size` bytes of zeroed memory.
    pub fn new(size: usize) -> Self {
        Self {
            words: (0..size.div_ceil(8)).map(|_| AtomicU64::new(0)).collect(),
            size,
            reads: AtomicU64::new(0),
        }
    }

    /// A copy of this memory (for running the same operations on two units).
    pub fn snapshot(&self) -> Self {
        Self {
            words: self
                .words
                .iter()
                .map(|w| AtomicU64::new(w.load(Ordering::Relaxed)))
                .collect(),
            size: self.size,
            reads: AtomicU64::new(0),
        }
    }

    /// How many reads were made through [`GuestMemory::read`]: exact while one thread
    /// reads at a time (the counter is bumped without a locked instruction, to keep the
    /// fixture's cost out of the miss-path benchmark), at least 1 per reading thread
    /// otherwise.
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.size as u64
    }

    /// Write a little-endian qword (test set-up; panics outside memory).
    pub fn write_u64(&self, gpa: u64, value: u64) {
        self.write(gpa, &value.to_le_bytes())
            .expect("write_u64 inside test memory");
    }

    /// Read a little-endian qword (test checks; panics outside memory, unlike
    /// [`GuestMemory::read_u64`]).
    pub fn peek_u64(&self, gpa: u64) -> u64 {
        let mut b = [0u8; 8];
        self.read(gpa, &mut b).expect("peek_u64 inside test memory");
        u64::from_le_bytes(b)
    }

    /// Read a little-endian dword, for test checks (panics outside memory).
    pub fn peek_u32(&self, gpa: u64) -> u32 {
        let mut b = [0u8; 4];
        self.read(gpa, &mut b).expect("peek_u32 inside test memory");
        u32::from_le_bytes(b)
    }

    /// The byte range `[gpa, gpa + len)` if it lies inside the memory.
    fn range(&self, gpa: u64, len: usize) -> Result<core::ops::Range<usize>, MemoryError> {
        let start = usize::try_from(gpa).map_err(|_| MemoryError)?;
        let end = start.checked_add(len).ok_or(MemoryError)?;
        if end > self.size {
            return Err(MemoryError);
        }
        Ok(start..end)
    }

    /// Calls `f(qword, first byte in it, bytes)` for each qword `range` touches, in order.
    fn for_each_qword(
        &self,
        range: core::ops::Range<usize>,
        mut f: impl FnMut(&AtomicU64, usize, usize),
    ) {
        let mut at = range.start;
        while at < range.end {
            let offset = at % 8;
            let n = (8 - offset).min(range.end - at);
            f(&self.words[at / 8], offset, n);
            at += n;
        }
    }
}

impl GuestMemory for TestMemory {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        self.reads.store(self.reads() + 1, Ordering::Relaxed);
        let range = self.range(gpa, buf.len())?;
        let mut done = 0;
        self.for_each_qword(range, |word, offset, n| {
            let bytes = word.load(Ordering::Acquire).to_le_bytes();
            buf[done..done + n].copy_from_slice(&bytes[offset..offset + n]);
            done += n;
        });
        Ok(())
    }

    /// One atomic load for an aligned qword, as a VMM reading guest RAM does.
    fn read_u64(&self, gpa: u64) -> Result<u64, MemoryError> {
        let range = self.range(gpa, 8)?;
        if range.start % 8 != 0 {
            let mut bytes = [0u8; 8];
            self.read(gpa, &mut bytes)?;
            return Ok(u64::from_le_bytes(bytes));
        }
        self.reads.store(self.reads() + 1, Ordering::Relaxed);
        Ok(self.words[range.start / 8].load(Ordering::Acquire))
    }

    fn write(&self, gpa: u64, data: &[u8]) -> Result<(), MemoryError> {
        let range = self.range(gpa, data.len())?;
        let mut done = 0;
        self.for_each_qword(range, |word, offset, n| {
            let part = &data[done..done + n];
            if n == 8 {
                let mut bytes = [0u8; 8];
                bytes.copy_from_slice(part);
                word.store(u64::from_le_bytes(bytes), Ordering::Release);
            } else {
                let _ = word.fetch_update(Ordering::Release, Ordering::Relaxed, |old| {
                    let mut bytes = old.to_le_bytes();
                    bytes[offset..offset + n].copy_from_slice(part);
                    Some(u64::from_le_bytes(bytes))
                });
            }
            done += n;
        });
        Ok(())
    }

    fn compare_exchange_u64(
        &self,
        gpa: u64,
        current: u64,
        new: u64,
    ) -> Result<Result<u64, u64>, MemoryError> {
        let range = self.range(gpa, 8)?;
        if range.start % 8 != 0 {
            return crate::memory::compare_exchange_by_read_write(self, gpa, current, new);
        }
        Ok(self.words[range.start / 8].compare_exchange(
            current,
            new,
            Ordering::AcqRel,
            Ordering::Acquire,
        ))
    }
}

/// A host that records what the unit tells it.
#[derive(Default)]
pub struct RecordingHost {
    msis: Mutex<Vec<MsiMessage>>,
    events: Mutex<Vec<InvalidationEvent>>,
}

impl RecordingHost {
    /// A host with nothing recorded.
    pub fn new() -> Self {
        Self::default()
    }
    /// Take the MSIs recorded so far.
    pub fn take_msis(&self) -> Vec<MsiMessage> {
        std::mem::take(&mut *self.msis.lock().expect("msis lock"))
    }
    /// Take the invalidation notices recorded so far.
    pub fn take_events(&self) -> Vec<InvalidationEvent> {
        std::mem::take(&mut *self.events.lock().expect("events lock"))
    }
}

impl Host for RecordingHost {
    fn raise_msi(&self, msi: MsiMessage) {
        self.msis.lock().expect("msis lock").push(msi);
    }
    fn invalidated(&self, event: InvalidationEvent) {
        self.events.lock().expect("events lock").push(event);
    }
}

/// Second-level permissions for [`GuestTables::map`].
pub mod perm {
    /// Read only.
    pub const R: u64 = 1;
    /// Write only.
    pub const W: u64 = 2;
    /// Read and write.
    pub const RW: u64 = 3;
}

/// How a context entry is programmed.
#[derive(Clone, Copy, Debug)]
pub struct ContextSpec {
    /// Domain id.
    pub domain_id: u16,
    /// Second-level table root (ignored for pass-through).
    pub table: u64,
    /// AW field.
    pub address_width: AddressWidth,
    /// TT field.
    pub translation_type: TranslationType,
    /// FPD bit.
    pub fpd: bool,
}

impl ContextSpec {
    /// A translated context of `domain_id` with a 4-level table at `table`.
    pub fn translated(domain_id: u16, table: u64) -> Self {
        Self {
            domain_id,
            table,
            address_width: AddressWidth::AGAW_48,
            translation_type: TranslationType::UNTRANSLATED,
            fpd: false,
        }
    }
    /// A pass-through context.
    pub fn pass_through(domain_id: u16) -> Self {
        Self {
            domain_id,
            table: 0,
            address_width: AddressWidth::AGAW_48,
            translation_type: TranslationType::PASS_THROUGH,
            fpd: false,
        }
    }
}

/// Builds translation tables in guest memory with a bump page allocator.
pub struct GuestTables<'m> {
    memory: &'m TestMemory,
    next_page: u64,
    /// Guest-physical address of the root table.
    pub root_table: u64,
}

/// Where [`GuestTables`] starts allocating pages.
pub const TABLES_BASE: u64 = 0x10_0000;

impl<'m> GuestTables<'m> {
    /// Start allocating at [`TABLES_BASE`]; allocates the root table.
    pub fn new(memory: &'m TestMemory) -> Self {
        let mut tables = Self {
            memory,
            next_page: TABLES_BASE,
            root_table: 0,
        };
        tables.root_table = tables.alloc_page();
        tables
    }

    /// Tables already in memory with their root at `root_table` (for inspecting them;
    /// allocating through it is not supported).
    pub fn new_at(memory: &'m TestMemory, root_table: u64) -> Self {
        Self {
            memory,
            next_page: u64::MAX,
            root_table,
        }
    }

    /// The memory the tables live in.
    pub fn memory(&self) -> &'m TestMemory {
        self.memory
    }

    /// A zeroed 4 KiB page.
    pub fn alloc_page(&mut self) -> u64 {
        let page = self.next_page;
        self.next_page += 4096;
        self.memory
            .write(page, &[0u8; 4096])
            .expect("page allocation inside test memory");
        page
    }

    /// A new (empty) top-level second-level table.
    pub fn new_domain_table(&mut self) -> u64 {
        self.alloc_page()
    }

    /// The address of the context entry for `source_id`, creating its context table.
    pub fn context_entry_address(&mut self, source_id: u16) -> u64 {
        let bus = u64::from(source_id >> 8);
        let root_entry = self.root_table + bus * 16;
        let low = self.memory.peek_u64(root_entry);
        let table = if low & 1 == 0 {
            let table = self.alloc_page();
            self.memory.write_u64(root_entry, table | 1);
            table
        } else {
            low & !0xFFF
        };
        table + u64::from(source_id & 0xFF) * 16
    }

    /// Program the context entry of `source_id`.
    pub fn set_context(&mut self, source_id: u16, spec: ContextSpec) {
        let entry = self.context_entry_address(source_id);
        let low =
            1 | (u64::from(spec.fpd) << 1) | (u64::from(spec.translation_type.0) << 2) | spec.table;
        let high = u64::from(spec.address_width.0) | (u64::from(spec.domain_id) << 8);
        self.memory.write_u64(entry + 8, high);
        self.memory.write_u64(entry, low);
    }

    /// Clear the context entry of `source_id` (not present, FPD as given).
    pub fn clear_context(&mut self, source_id: u16, fpd: bool) {
        let entry = self.context_entry_address(source_id);
        self.memory.write_u64(entry, u64::from(fpd) << 1);
        self.memory.write_u64(entry + 8, 0);
    }

    /// The address of the entry mapping `iova` at `level` (creating tables above it).
    pub fn entry_address(&mut self, table: u64, levels: u8, iova: u64, level: u8) -> u64 {
        let mut table = table;
        for l in (level + 1..=levels).rev() {
            let shift = 12 + 9 * (u32::from(l) - 1);
            let entry = table + ((iova >> shift) & 0x1FF) * 8;
            let value = self.memory.peek_u64(entry);
            table = if value & 3 == 0 {
                let next = self.alloc_page();
                self.memory.write_u64(entry, next | perm::RW);
                next
            } else {
                value & 0x000F_FFFF_FFFF_F000
            };
        }
        let shift = 12 + 9 * (u32::from(level) - 1);
        table + ((iova >> shift) & 0x1FF) * 8
    }

    /// Map `iova` → `gpa` with a page of `1 << size_shift` bytes (12, 21 or 30) in a
    /// `levels`-level table.
    pub fn map(&mut self, table: u64, levels: u8, iova: u64, gpa: u64, size_shift: u8, perms: u64) {
        let level = (size_shift - 12) / 9 + 1;
        let entry = self.entry_address(table, levels, iova, level);
        let ps = if level > 1 { 1 << 7 } else { 0 };
        self.memory.write_u64(entry, gpa | perms | ps);
    }

    /// Write a raw entry value at the place of `iova` at `level`.
    pub fn set_entry(&mut self, table: u64, levels: u8, iova: u64, level: u8, value: u64) {
        let entry = self.entry_address(table, levels, iova, level);
        self.memory.write_u64(entry, value);
    }

    /// Remove the leaf mapping `iova` of `1 << size_shift` bytes.
    pub fn unmap(&mut self, table: u64, levels: u8, iova: u64, size_shift: u8) {
        self.set_entry(table, levels, iova, (size_shift - 12) / 9 + 1, 0);
    }
}

/// Where [`GuestDriver`] keeps its invalidation queue and wait status.
pub const QUEUE_BASE: u64 = 0x8_0000;
/// The invalidation-wait status dword.
pub const WAIT_STATUS: u64 = 0x7_F000;

/// An error the driver saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DriverError {
    /// The queue stopped with IQE (FSTS) — the head is on the bad descriptor.
    QueueError,
    /// A wait's status was not written.
    WaitNotCompleted,
}

/// Programs a unit through MMIO the way Linux's intel-iommu driver does.
pub struct GuestDriver<'u, M: GuestMemory, H: Host> {
    /// The unit driven.
    pub unit: &'u Unit<M, H>,
    memory: &'u TestMemory,
    /// Persistent GCMD bits the driver has enabled (Linux's `iommu->gcmd`).
    pub gcmd: GlobalCommand,
    tail: u64,
    queue_bytes: u64,
    wait_sequence: u32,
}

impl<'u, M: GuestMemory, H: Host> GuestDriver<'u, M, H> {
    /// A driver for `unit`, whose guest memory is `memory`.
    pub fn new(unit: &'u Unit<M, H>, memory: &'u TestMemory) -> Self {
        Self {
            unit,
            memory,
            gcmd: GlobalCommand::new(),
            tail: 0,
            queue_bytes: 4096,
            wait_sequence: 0,
        }
    }

    /// Read a 32-bit register.
    pub fn read32(&self, offset: u64) -> u32 {
        self.unit.mmio_read(offset, 4) as u32
    }
    /// Read a 64-bit register.
    pub fn read64(&self, offset: u64) -> u64 {
        self.unit.mmio_read(offset, 8)
    }
    /// Write a 32-bit register.
    pub fn write32(&self, offset: u64, value: u32) {
        self.unit.mmio_write(offset, 4, u64::from(value));
    }
    /// Write a 64-bit register.
    pub fn write64(&self, offset: u64, value: u64) {
        self.unit.mmio_write(offset, 8, value);
    }

    /// GSTS.
    pub fn gsts(&self) -> GlobalCommand {
        GlobalCommand::from_bits(self.read32(offset::GSTS))
    }

    /// Set the root table pointer (RTADDR, then GCMD.SRTP, then wait for RTPS).
    pub fn set_root_table(&mut self, root_table: u64) {
        self.write64(offset::RTADDR, root_table);
        self.write32(offset::GCMD, self.gcmd.with_srtp(true).into_bits());
        assert!(self.gsts().srtp(), "RTPS set after SRTP");
    }

    /// Enable queued invalidation with a 4 KiB queue at [`QUEUE_BASE`].
    pub fn enable_queued_invalidation(&mut self) {
        self.enable_queued_invalidation_sized(0);
    }

    /// Enable queued invalidation with a queue of 2^`qs` 4 KiB pages (IQA.QS, at most 7)
    /// at [`QUEUE_BASE`].
    pub fn enable_queued_invalidation_sized(&mut self, qs: u8) {
        assert!(
            qs <= 7,
            "IQA.QS is at most 7 here (the queue must fit below the tables)"
        );
        self.tail = 0;
        self.queue_bytes = 4096 << qs;
        self.write64(offset::IQT, 0);
        self.write64(offset::IQA, QUEUE_BASE | u64::from(qs));
        self.gcmd.set_qie(true);
        self.write32(offset::GCMD, self.gcmd.into_bits());
        assert!(self.gsts().qie(), "QIES set after QIE");
    }

    /// Put 128-bit descriptors in the queue and move the tail past them.
    pub fn submit(&mut self, descriptors: &[[u64; 2]]) {
        for d in descriptors {
            self.memory.write_u64(QUEUE_BASE + self.tail, d[0]);
            self.memory.write_u64(QUEUE_BASE + self.tail + 8, d[1]);
            self.tail = (self.tail + 16) % self.queue_bytes;
        }
        self.write64(offset::IQT, self.tail);
    }

    /// Submit descriptors followed by an invalidation wait with status write, and check
    /// the wait completed (as Linux's qi_submit_sync does).
    pub fn submit_sync(&mut self, descriptors: &[[u64; 2]]) -> Result<(), DriverError> {
        self.wait_sequence = self.wait_sequence.wrapping_add(1);
        let mut all = descriptors.to_vec();
        all.push(wait_descriptor(
            true,
            false,
            true,
            self.wait_sequence,
            WAIT_STATUS,
        ));
        self.submit(&all);
        if self.read32(offset::FSTS) & (1 << 4) != 0 {
            return Err(DriverError::QueueError);
        }
        if self.memory.peek_u32(WAIT_STATUS) != self.wait_sequence {
            return Err(DriverError::WaitNotCompleted);
        }
        Ok(())
    }

    /// Global context-cache invalidation, queued.
    pub fn invalidate_context_global(&mut self) -> Result<(), DriverError> {
        self.submit_sync(&[context_descriptor(1, 0, 0, 0)])
    }

    /// Global IOTLB invalidation, queued.
    pub fn invalidate_iotlb_global(&mut self) -> Result<(), DriverError> {
        self.submit_sync(&[iotlb_descriptor(1, 0, 0, 0, false)])
    }

    /// Domain-selective IOTLB invalidation, queued.
    pub fn invalidate_iotlb_domain(&mut self, domain_id: u16) -> Result<(), DriverError> {
        self.submit_sync(&[iotlb_descriptor(2, domain_id, 0, 0, false)])
    }

    /// Page-selective IOTLB invalidation of 2^`am` pages at `address`, queued.
    pub fn invalidate_iotlb_pages(
        &mut self,
        domain_id: u16,
        address: u64,
        am: u8,
    ) -> Result<(), DriverError> {
        self.submit_sync(&[iotlb_descriptor(3, domain_id, address, am, false)])
    }

    /// Enable DMA remapping (GCMD.TE).
    pub fn enable_translation(&mut self) {
        self.gcmd.set_te(true);
        self.write32(offset::GCMD, self.gcmd.into_bits());
        assert!(self.gsts().te(), "TES set after TE");
    }

    /// Write an IRTE into the table at `table`.
    pub fn set_irte(&self, table: u64, index: u16, irte: &IrteSpec) {
        let [low, high] = irte.encode();
        self.memory
            .write_u64(table + u64::from(index) * 16 + 8, high);
        self.memory.write_u64(table + u64::from(index) * 16, low);
    }

    /// Linux's interrupt remapping enable: IRTA (2^(size+1) entries, EIME as given),
    /// SIRTP, a global IEC invalidation, then IRE with compatibility format blocked.
    pub fn enable_interrupt_remapping(&mut self, table: u64, size: u8, eime: bool) {
        self.write64(
            offset::IRTA,
            table | (u64::from(eime) << 11) | u64::from(size & 0xF),
        );
        self.write32(offset::GCMD, self.gcmd.with_sirtp(true).into_bits());
        assert!(self.gsts().sirtp(), "IRTPS set after SIRTP");
        self.submit_sync(&[iec_descriptor(None)])
            .expect("global IEC invalidation");
        self.gcmd.set_cfi(false);
        self.gcmd.set_ire(true);
        self.write32(offset::GCMD, self.gcmd.into_bits());
        assert!(self.gsts().ire(), "IRES set after IRE");
    }

    /// Set or clear GCMD.CFI (compatibility-format interrupts allowed).
    pub fn set_compatibility_format(&mut self, allowed: bool) {
        self.gcmd.set_cfi(allowed);
        self.write32(offset::GCMD, self.gcmd.into_bits());
    }

    /// Linux's boot sequence: root table, queued invalidation, global context and IOTLB
    /// invalidation, then translation on.
    pub fn boot(&mut self, root_table: u64) {
        self.set_root_table(root_table);
        self.enable_queued_invalidation();
        self.invalidate_context_global()
            .expect("global context invalidation");
        self.invalidate_iotlb_global()
            .expect("global IOTLB invalidation");
        self.enable_translation();
    }
}

/// An interrupt remapping table entry for [`GuestDriver::set_irte`].
#[derive(Clone, Copy, Debug, Default)]
pub struct IrteSpec {
    /// Vector (remapped) or virtual vector (posted).
    pub vector: u8,
    /// Destination: written to DST as is (put an xAPIC id in bits 15:8 yourself).
    pub destination: u32,
    /// DM: logical destination mode.
    pub logical: bool,
    /// TM: level triggered.
    pub level: bool,
    /// RH: redirection hint.
    pub redirection_hint: bool,
    /// DLM.
    pub delivery_mode: u8,
    /// FPD.
    pub fpd: bool,
    /// SID, SQ, SVT.
    pub sid: u16,
    /// SQ.
    pub sq: u8,
    /// SVT.
    pub svt: u8,
    /// Posted format: descriptor address (64-byte aligned) and urgent flag.
    pub posted: Option<(u64, bool)>,
}

impl IrteSpec {
    /// The entry's two qwords, present.
    pub fn encode(&self) -> [u64; 2] {
        let high =
            u64::from(self.sid) | (u64::from(self.sq & 3) << 16) | (u64::from(self.svt & 3) << 18);
        let common = 1 | (u64::from(self.fpd) << 1) | (u64::from(self.vector) << 16);
        match self.posted {
            None => [
                common
                    | (u64::from(self.logical) << 2)
                    | (u64::from(self.redirection_hint) << 3)
                    | (u64::from(self.level) << 4)
                    | (u64::from(self.delivery_mode & 7) << 5)
                    | (u64::from(self.destination) << 32),
                high,
            ],
            Some((pda, urgent)) => [
                common | (1 << 15) | (u64::from(urgent) << 14) | (((pda >> 6) & 0x3FF_FFFF) << 38),
                high | ((pda >> 32) << 32),
            ],
        }
    }
}

/// The address and data of a remappable-format MSI for `handle` (with `subhandle` when
/// given: SHV set).
pub fn remappable_msi(handle: u16, subhandle: Option<u16>) -> (u64, u32) {
    let address = 0xFEE0_0000u64
        | (u64::from(handle & 0x7FFF) << 5)
        | (1 << 4)
        | (u64::from(subhandle.is_some()) << 3)
        | (u64::from(handle >> 15) << 2);
    (address, u32::from(subhandle.unwrap_or(0)))
}

/// A context-cache invalidate descriptor.
pub fn context_descriptor(
    granularity: u8,
    domain_id: u16,
    source_id: u16,
    function_mask: u8,
) -> [u64; 2] {
    let qw0 = ContextCacheInvalidate::new()
        .with_g(granularity)
        .with_did(domain_id)
        .with_sid(source_id)
        .with_fm(function_mask)
        .into_bits()
        | u64::from(DescriptorType::CONTEXT_CACHE.0);
    [qw0, 0]
}

/// An IOTLB invalidate descriptor.
pub fn iotlb_descriptor(
    granularity: u8,
    domain_id: u16,
    address: u64,
    am: u8,
    ih: bool,
) -> [u64; 2] {
    let qw0 = IotlbInvalidateDescriptor::new()
        .with_g(granularity)
        .with_did(domain_id)
        .with_dr(true)
        .with_dw(true)
        .into_bits()
        | u64::from(DescriptorType::IOTLB.0);
    let qw1 = InvalidateAddress::new()
        .with_addr(address >> 12)
        .with_am(am)
        .with_ih(ih)
        .into_bits();
    [qw0, qw1]
}

/// An interrupt entry cache invalidate descriptor (`index` None: global).
pub fn iec_descriptor(index: Option<(u16, u8)>) -> [u64; 2] {
    let mut d = InterruptEntryCacheInvalidate::new();
    if let Some((iidx, im)) = index {
        d = d.with_g(true).with_iidx(iidx).with_im(im);
    }
    [
        d.into_bits() | u64::from(DescriptorType::INTERRUPT_ENTRY_CACHE.0),
        0,
    ]
}

/// An invalidation wait descriptor.
pub fn wait_descriptor(
    status_write: bool,
    interrupt: bool,
    fence: bool,
    data: u32,
    address: u64,
) -> [u64; 2] {
    let qw0 = InvalidationWait::new()
        .with_status_write(status_write)
        .with_interrupt_flag(interrupt)
        .with_fence(fence)
        .with_status_data(data)
        .into_bits()
        | u64::from(DescriptorType::INVALIDATION_WAIT.0);
    [qw0, address]
}

/// Fault-handling and queue-inspection helpers, as Linux's `dmar_fault` and
/// `qi_check_fault` read the registers.
impl<M: GuestMemory, H: Host> GuestDriver<'_, M, H> {
    /// Where the next submitted descriptor goes (byte offset in the queue).
    pub fn tail(&self) -> u64 {
        self.tail
    }

    /// FSTS.
    pub fn fsts(&self) -> FaultStatus {
        FaultStatus::from_bits(self.read32(offset::FSTS))
    }

    /// Fault recording register `index`, read through MMIO as two qwords.
    pub fn fault_record(&self, index: usize) -> (FaultRecordLow, FaultRecordHigh) {
        let base = offset::FRCD + 16 * index as u64;
        (
            FaultRecordLow::from_bits(self.read64(base)),
            FaultRecordHigh::from_bits(self.read64(base + 8)),
        )
    }

    /// Clear fault record `index` the way Linux does: write 1 to F (bit 31 of its last dword).
    pub fn clear_fault_record(&self, index: usize) {
        self.write32(offset::FRCD + 16 * index as u64 + 12, 1 << 31);
    }

    /// Register-based IOTLB invalidation as Linux's `__iommu_flush_iotlb` does it: IVA
    /// (page-selective only), then the IOTLB register with IVT, then IVT must read clear.
    /// Returns IAIG, the granularity performed (0: not performed).
    pub fn register_invalidate_iotlb(
        &self,
        granularity: u8,
        domain_id: u16,
        address: u64,
        am: u8,
        ih: bool,
    ) -> u8 {
        if granularity == 3 {
            let iva = InvalidateAddress::new()
                .with_addr(address >> 12)
                .with_am(am)
                .with_ih(ih);
            self.write64(offset::IVA, iva.into_bits());
        }
        let cmd = IotlbInvalidate::new()
            .with_ivt(true)
            .with_iirg(granularity)
            .with_did(domain_id)
            .with_dr(true)
            .with_dw(true);
        self.write64(offset::IOTLB, cmd.into_bits());
        let done = IotlbInvalidate::from_bits(self.read64(offset::IOTLB));
        assert!(!done.ivt(), "IVT clear once the invalidation is done");
        done.iaig()
    }

    /// Register-based context-cache invalidation as Linux's `__iommu_flush_context` does
    /// it: CCMD with ICC, then ICC must read clear. Returns CAIG (0: not performed).
    pub fn register_invalidate_context(
        &self,
        granularity: u8,
        domain_id: u16,
        source_id: u16,
        function_mask: u8,
    ) -> u8 {
        let cmd = ContextCommand::new()
            .with_icc(true)
            .with_cirg(granularity)
            .with_did(domain_id)
            .with_sid(source_id)
            .with_fm(function_mask);
        self.write64(offset::CCMD, cmd.into_bits());
        let done = ContextCommand::from_bits(self.read64(offset::CCMD));
        assert!(!done.icc(), "ICC clear once the invalidation is done");
        done.caig()
    }
}

/// A device-TLB invalidate descriptor: `size` set means ADDR's lowest clear bit (from
/// bit 12) encodes the range (§6.5.2.5).
pub fn device_tlb_descriptor(
    source_id: u16,
    pf_source_id: u16,
    address: u64,
    size: bool,
) -> [u64; 2] {
    let qw0 = DeviceTlbInvalidate::new()
        .with_sid(source_id)
        .with_pfsid_low((pf_source_id & 0xF) as u8)
        .with_pfsid_high(pf_source_id >> 4)
        .into_bits()
        | u64::from(DescriptorType::DEVICE_TLB.0);
    let qw1 = DeviceTlbInvalidateAddress::new()
        .with_addr(address >> 12)
        .with_s(size)
        .into_bits();
    [qw0, qw1]
}

/// Translate `request`, which must map to memory; returns the mapping.
pub fn expect_mapping<M: GuestMemory, H: Host>(unit: &Unit<M, H>, request: DmaRequest) -> Mapping {
    match unit.translate(&request) {
        Ok(Translation::Mapped(m)) => m,
        other => panic!("expected a mapping for {request:?}, got {other:?}"),
    }
}

/// Translate `request`, which must fault; returns the fault.
pub fn expect_fault<M: GuestMemory, H: Host>(unit: &Unit<M, H>, request: DmaRequest) -> DmaFault {
    match unit.translate(&request) {
        Err(DmaError::Fault(f)) => f,
        other => panic!("expected a fault for {request:?}, got {other:?}"),
    }
}

/// A small deterministic pseudo-random generator (xorshift64) for sweep and garbage tests.
#[derive(Clone, Debug)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator seeded with `seed` (zero is replaced: xorshift never leaves 0).
    pub fn new(seed: u64) -> Self {
        Self(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A value in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Fill `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}
