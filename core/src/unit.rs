//! [`Unit`]: one remapping hardware unit (a DRHD), the engine's public face.
//!
//! The unit owns the register file behind the one slow-path lock, the lock-free caches,
//! and the embedder's [`GuestMemory`] and [`Host`]. Register writes are decoded by
//! `regs`, carried out here and in `inval`; what they produce for the embedder (MSIs,
//! invalidation notices) is collected in an [`Outbox`] and delivered after the lock is
//! released, so host callbacks may call back into the unit.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::cache::SeqCache;
use crate::config::{Config, ConfigError};
use crate::fault;
use crate::host::{Host, InvalidationEvent, MsiMessage};
use crate::irq::{IR_STATE_CFIS, IR_STATE_IRES, IR_STATE_IRTA_MASK};
use crate::memory::GuestMemory;
use crate::regs::{Command, RegisterFile};
use crate::spec::registers::{GlobalCommand, RootTableAddress};

/// Slots in the IOTLB (4-way set-associative).
pub const IOTLB_SLOTS: usize = 4096;
/// Slots in the context cache.
pub const CONTEXT_CACHE_SLOTS: usize = 1024;
/// Slots in the first-level translation cache (by source id and 4 KiB page).
pub const FIRST_LEVEL_SLOTS: usize = 2048;
/// Slots in the interrupt entry cache.
pub const IEC_SLOTS: usize = 1024;
/// Slots of the hint that decides when a walk fills the SL-PDE cache.
pub(crate) const WALK_HINTS: usize = 64;

/// Qwords per cache entry: a key qword, the input page, the output page with
/// permissions, and a spare.
pub(crate) const ENTRY_WORDS: usize = 4;

/// The fast-path view of DMA remapping state, one atomic word: bit 0 TES; bits 11:10
/// TTM and 63:12 RTA as latched by the last SRTP.
pub(crate) const DMA_STATE_TES: u64 = 1;

/// Everything the slow path serializes.
pub(crate) struct State {
    pub(crate) regs: RegisterFile,
}

/// Something to hand to the embedder once the lock is released.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Outgoing {
    Msi(MsiMessage),
    Event(InvalidationEvent),
}

/// Messages produced under the lock. Queue processing stops a batch before this fills,
/// so pushes never fail in practice; if one did, a notice would be lost, never memory.
pub(crate) struct Outbox(heapless::Vec<Outgoing, OUTBOX_CAPACITY>);

const OUTBOX_CAPACITY: usize = 64;
/// Queue processing yields (releases the lock and delivers) once this many are queued.
pub(crate) const OUTBOX_HIGH_WATER: usize = OUTBOX_CAPACITY - 8;

impl Outbox {
    fn new() -> Self {
        Self(heapless::Vec::new())
    }
    pub(crate) fn msi(&mut self, msi: Option<MsiMessage>) {
        if let Some(msi) = msi {
            let _ = self.0.push(Outgoing::Msi(msi));
        }
    }
    pub(crate) fn event(&mut self, event: InvalidationEvent) {
        let _ = self.0.push(Outgoing::Event(event));
    }
    pub(crate) fn is_nearly_full(&self) -> bool {
        self.0.len() >= OUTBOX_HIGH_WATER
    }
}

/// One VT-d remapping hardware unit.
///
/// `translate` may be called from any number of threads at once and takes no lock on a
/// cache hit; register accesses serialize on one internal lock.
pub struct Unit<M: GuestMemory, H: Host> {
    pub(crate) config: Config,
    pub(crate) memory: M,
    pub(crate) host: H,
    pub(crate) state: spin::Mutex<State>,
    pub(crate) dma_state: AtomicU64,
    pub(crate) context_cache: SeqCache<ENTRY_WORDS, CONTEXT_CACHE_SLOTS>,
    pub(crate) iotlb: SeqCache<ENTRY_WORDS, IOTLB_SLOTS>,
    /// Which large page sizes (bit 0: 2 MiB, bit 1: 1 GiB) the IOTLB may hold: lookups
    /// skip the others. Set before inserting; never cleared, so it only ever widens.
    pub(crate) iotlb_large_sizes: core::sync::atomic::AtomicU8,
    /// The 2 MiB regions walked last, by (domain, region) hash: a walk probes and fills
    /// the SL-PDE cache only when its slot already names its region (from the second
    /// walk through it on), so misses spread over distinct regions pay neither. A
    /// heuristic: it only decides what is probed and cached, never what a translation
    /// returns.
    pub(crate) walk_hints: [AtomicU64; WALK_HINTS],
    /// The first-level cache in front of both: (source id, 4 KiB page) → mapping.
    pub(crate) first_level: SeqCache<ENTRY_WORDS, FIRST_LEVEL_SLOTS>,
    /// The fast-path view of interrupt remapping: IRTA as latched by SIRTP, IRES, CFIS.
    pub(crate) ir_state: AtomicU64,
    /// The interrupt entry cache.
    pub(crate) iec: SeqCache<ENTRY_WORDS, IEC_SLOTS>,
    /// In front of it: remappable-format requests (source id, address, data) → result.
    pub(crate) interrupt_first_level: SeqCache<ENTRY_WORDS, IEC_SLOTS>,
}

impl<M: GuestMemory, H: Host> Unit<M, H> {
    /// A unit in its reset state.
    pub fn new(config: Config, memory: M, host: H) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            config,
            memory,
            host,
            state: spin::Mutex::new(State {
                regs: RegisterFile::new(),
            }),
            dma_state: AtomicU64::new(0),
            context_cache: SeqCache::new(),
            iotlb: SeqCache::new(),
            first_level: SeqCache::new(),
            iotlb_large_sizes: core::sync::atomic::AtomicU8::new(0),
            walk_hints: [const { AtomicU64::new(u64::MAX) }; WALK_HINTS],
            ir_state: AtomicU64::new(0),
            iec: SeqCache::new(),
            interrupt_first_level: SeqCache::new(),
        })
    }

    /// The configuration the unit was built with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The translation generation: a counter that moves after every change that can
    /// alter what [`translate`](Self::translate) returns for a request that succeeds —
    /// every context-cache and IOTLB invalidation (register or queued, any granularity),
    /// SRTP, TE, [`reset`](Self::reset) and [`restore`](Self::restore) — and before that
    /// change is reported complete to the guest.
    ///
    /// It lets an embedder keep its own cache of successful translations in front of
    /// `translate` (a VMM's per-thread cache costs less than any call): tag each entry
    /// with the generation read, with Acquire ordering, *before* the call that produced
    /// it, and use the entry only while the generation still reads the same. A
    /// translation that raced a change is then dead on arrival. Cache only mappings, and
    /// only for the access they allow: a request that faults must reach `translate`,
    /// which records the fault.
    pub fn translation_generation(&self) -> u64 {
        self.first_level.epoch_counter().load(Ordering::Acquire)
    }

    /// The counter behind [`translation_generation`](Self::translation_generation), for
    /// embedders that read it without a call (the C ABI hands out its address). Never
    /// store to it.
    #[cfg(not(loom))]
    pub fn translation_generation_counter(&self) -> &AtomicU64 {
        self.first_level.epoch_counter()
    }

    /// The embedder's guest memory.
    pub fn memory(&self) -> &M {
        &self.memory
    }

    /// The embedder's host.
    pub fn host(&self) -> &H {
        &self.host
    }

    /// Return to the reset state (a platform reset): registers at their reset values,
    /// translation off, caches empty.
    pub fn reset(&self) {
        let mut state = self.state.lock();
        state.regs = RegisterFile::new();
        self.dma_state.store(0, Ordering::Release);
        self.ir_state.store(0, Ordering::Release);
        self.context_cache.invalidate_all();
        self.iotlb.invalidate_all();
        self.first_level.invalidate_all();
        self.iec.invalidate_all();
        self.interrupt_first_level.invalidate_all();
    }

    /// Read `size` bytes (4 or 8, naturally aligned) at `offset` in the register window.
    /// Any other access reads 0.
    pub fn mmio_read(&self, offset: u64, size: u8) -> u64 {
        self.state.lock().regs.read(&self.config, offset, size)
    }

    /// Write `size` bytes (4 or 8, naturally aligned) at `offset` in the register window.
    /// Any other access is dropped.
    pub fn mmio_write(&self, offset: u64, size: u8, value: u64) {
        let mut out = Outbox::new();
        let mut more = {
            let mut state = self.state.lock();
            let commands = state.regs.write(&self.config, offset, size, value);
            let mut queue = false;
            for command in commands.into_iter().flatten() {
                queue |= self.execute(&mut state, command, &mut out);
            }
            queue && self.process_queue(&mut state, &mut out)
        };
        self.deliver(&mut out);
        // A long queue is processed in batches so notices never pile up under the lock.
        while more {
            more = self.process_queue(&mut self.state.lock(), &mut out);
            self.deliver(&mut out);
        }
    }

    /// Record a fault the fast path found (taking the slow-path lock) and send the fault
    /// event, if one is due, after releasing it. Returns whether a record was written.
    pub(crate) fn report_fault(&self, info: &fault::FaultInfo) -> bool {
        let (recorded, msi) = {
            let mut state = self.state.lock();
            fault::record_fault(&mut state.regs, &self.config, info)
        };
        if let Some(msi) = msi {
            self.host.raise_msi(msi);
        }
        recorded
    }

    pub(crate) fn deliver(&self, out: &mut Outbox) {
        for item in out.0.iter() {
            match *item {
                Outgoing::Msi(msi) => self.host.raise_msi(msi),
                Outgoing::Event(event) => self.host.invalidated(event),
            }
        }
        out.0.clear();
    }

    /// Carry out a register command; returns whether the invalidation queue should run.
    fn execute(&self, state: &mut State, command: Command, out: &mut Outbox) -> bool {
        let config = &self.config;
        let regs = &mut state.regs;
        match command {
            Command::GlobalCommand(gcmd) => return self.global_command(state, gcmd, out),
            Command::InvalidateContext(ccmd) => {
                let done = self.register_context_invalidation(ccmd, out);
                regs.ccmd = ccmd.with_icc(false).with_caig(done.0).into_bits();
            }
            Command::InvalidateIotlb(cmd, address) => {
                let done = self.register_iotlb_invalidation(cmd, address, out);
                regs.iotlb = cmd.with_ivt(false).with_iaig(done.0).into_bits();
            }
            Command::ProcessQueue => return true,
            Command::FaultStatusWritten => {
                fault::fault_status_written(regs, config);
                // Clearing IQE lets the queue resume at the descriptor after the fix.
                return !regs.fsts.iqe() && !regs.fsts.ite();
            }
            Command::FaultRecordCleared => fault::fault_status_written(regs, config),
            Command::FaultEventControlWritten => out.msi(fault::fault_event_control_written(regs)),
            Command::CompletionStatusWritten => fault::completion_status_written(regs),
            Command::InvalidationEventControlWritten => {
                out.msi(fault::invalidation_event_control_written(regs));
            }
        }
        false
    }

    /// GCMD: persistent bits (TE, QIE, IRE, CFI) set their status; one-shot bits (SRTP,
    /// SIRTP, WBF) act on every write that has them set (§10.4.4).
    fn global_command(&self, state: &mut State, gcmd: GlobalCommand, out: &mut Outbox) -> bool {
        let config = &self.config;
        let regs = &mut state.regs;
        let mut run_queue = false;
        if gcmd.srtp() {
            let rtaddr = RootTableAddress::from_bits(regs.rtaddr);
            let latched = (rtaddr.into_bits() & !0xFFF) | (u64::from(rtaddr.ttm()) << 10);
            let tes = self.dma_state.load(Ordering::Relaxed) & DMA_STATE_TES;
            self.dma_state.store(latched | tes, Ordering::Release);
            regs.gsts.set_srtp(true);
            self.flush_translation_caches(out);
        }
        if gcmd.te() != regs.gsts.te() {
            regs.gsts.set_te(gcmd.te());
            if gcmd.te() {
                self.dma_state.fetch_or(DMA_STATE_TES, Ordering::AcqRel);
            } else {
                self.dma_state.fetch_and(!DMA_STATE_TES, Ordering::AcqRel);
            }
            self.flush_translation_caches(out);
        }
        if config.queued_invalidation && gcmd.qie() != regs.gsts.qie() {
            regs.gsts.set_qie(gcmd.qie());
            // The head restarts at 0 whenever the queue is enabled or disabled, which is
            // what drivers that reset their tail to 0 around enabling expect.
            regs.iqh = 0;
            run_queue = gcmd.qie();
        }
        if config.interrupt_remapping {
            if gcmd.sirtp() {
                regs.gsts.set_sirtp(true);
                let latched = regs.irta & IR_STATE_IRTA_MASK;
                let flags = self.ir_state.load(Ordering::Relaxed) & (IR_STATE_IRES | IR_STATE_CFIS);
                self.ir_state.store(latched | flags, Ordering::Release);
                self.flush_interrupt_entries(None);
                out.event(InvalidationEvent::InterruptEntriesGlobal);
            }
            if gcmd.ire() != regs.gsts.ire() {
                regs.gsts.set_ire(gcmd.ire());
                self.set_ir_state_flag(IR_STATE_IRES, gcmd.ire());
                // Entries cached while remapping was off must not outlive a re-enable.
                self.flush_interrupt_entries(None);
                out.event(InvalidationEvent::InterruptEntriesGlobal);
            }
            regs.gsts.set_cfi(gcmd.cfi());
            self.set_ir_state_flag(IR_STATE_CFIS, gcmd.cfi());
        }
        // WBF completes at once: WBFS never reads as set. SFL/EAFL: no advanced logging.
        run_queue
    }

    fn set_ir_state_flag(&self, flag: u64, on: bool) {
        if on {
            self.ir_state.fetch_or(flag, Ordering::AcqRel);
        } else {
            self.ir_state.fetch_and(!flag, Ordering::AcqRel);
        }
    }

    /// Translation structures changed wholesale (SRTP, TE): nothing cached survives.
    fn flush_translation_caches(&self, out: &mut Outbox) {
        self.context_cache.invalidate_all();
        self.iotlb.invalidate_all();
        self.first_level.invalidate_all();
        out.event(InvalidationEvent::ContextGlobal);
        out.event(InvalidationEvent::IotlbGlobal);
    }
}
