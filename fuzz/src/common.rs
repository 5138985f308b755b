//! What every harness shares: configurations from input bits, guest memory that watches
//! the unit's writes, and the invariants of translation and interrupt remapping results.

use std::sync::Mutex;

use arbitrary::Arbitrary;
use viommu::testing::TestMemory;
use viommu::{
    Access, Config, DmaError, DmaRequest, GuestMemory, Interrupt, InterruptError, InterruptRequest,
    MemoryError, Translation,
};

/// A unit configuration, chosen by input bits. All-zero bits give `Config::default()`;
/// every other value is fixed up to a valid configuration, so no input is wasted.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConfigBits {
    /// Field selectors and feature toggles (see [`ConfigBits::config`]).
    pub bits: u32,
    /// Fault recording registers: 0 → 8, 255 → 256, n → n.
    pub fault_records: u8,
}

impl ConfigBits {
    /// The configuration these bits select (always valid).
    pub fn config(&self) -> Config {
        let b = self.bits;
        let bit = |n: u32| b & (1 << n) != 0;
        let mut c = Config {
            guest_address_width: [48, 39, 57, 48][(b & 3) as usize],
            ..Config::default()
        };
        let haw = (b >> 2) & 0x1F;
        c.host_address_width = if haw == 0 {
            48
        } else {
            32 + ((haw - 1) % 21) as u8
        };
        let nd = (b >> 7) & 7;
        c.domain_id_bits = if nd == 0 { 16 } else { 4 + 2 * (nd as u8 - 1) };
        c.fault_records = match self.fault_records {
            0 => 8,
            0xFF => 256,
            n => u16::from(n),
        };
        c.caching_mode = bit(10);
        c.required_write_buffer_flush = bit(11);
        c.large_pages_2m = !bit(12);
        c.large_pages_1g = !bit(13);
        c.page_selective_invalidation = !bit(14);
        c.coherent = !bit(15);
        c.device_tlb = bit(16);
        c.posted_interrupts = bit(17);
        c.pass_through = !bit(18);
        c.interrupt_remapping = !bit(19);
        c.extended_interrupt_mode = !bit(20);
        c.queued_invalidation = !bit(21);
        let mamv = (b >> 22) & 0x3F;
        c.max_address_mask = if mamv == 0 { 18 } else { mamv as u8 };
        if !c.queued_invalidation {
            c.interrupt_remapping = false;
        }
        if !c.interrupt_remapping {
            c.extended_interrupt_mode = false;
            c.posted_interrupts = false;
        }
        assert_eq!(c.validate(), Ok(()), "fixed-up config must be valid: {c:?}");
        c
    }
}

/// A qword the input puts in guest memory (address taken modulo the memory size).
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemWrite {
    /// Byte address (modulo memory size, qword aligned).
    pub addr: u32,
    /// The qword.
    pub value: u64,
}

/// An input address: mostly low (where tables and mappings are), sometimes anything.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addr {
    /// Below 4 GiB.
    Low(u32),
    /// Any 64-bit value.
    Any(u64),
}

impl Addr {
    /// The address.
    pub fn get(self) -> u64 {
        match self {
            Self::Low(a) => u64::from(a),
            Self::Any(a) => a,
        }
    }
}

/// Guest memory that records every write the *unit* makes (status writes, posted
/// interrupts). The harness writes through [`WatchedMemory::inner`], which is not recorded.
pub struct WatchedMemory {
    /// The memory itself.
    pub inner: TestMemory,
    /// (address, bytes) of every write through the `GuestMemory` trait.
    pub writes: Mutex<Vec<(u64, Vec<u8>)>>,
}

impl WatchedMemory {
    /// `size` bytes of zeroed memory.
    pub fn new(size: usize) -> Self {
        Self {
            inner: TestMemory::new(size),
            writes: Mutex::new(Vec::new()),
        }
    }

    /// Take the writes recorded so far.
    pub fn take_writes(&self) -> Vec<(u64, Vec<u8>)> {
        std::mem::take(&mut *self.writes.lock().unwrap())
    }

    /// Harness write of a qword; silently dropped outside memory.
    pub fn poke(&self, addr: u64, value: u64) {
        let _ = self.inner.write(addr, &value.to_le_bytes());
    }

    /// Harness read of a qword; `None` outside memory.
    pub fn peek(&self, addr: u64) -> Option<u64> {
        let mut b = [0u8; 8];
        self.inner.read(addr, &mut b).ok()?;
        Some(u64::from_le_bytes(b))
    }

    /// Apply input memory writes (address modulo the size, qword aligned).
    pub fn apply(&self, writes: &[MemWrite]) {
        let size = self.inner.size();
        for w in writes {
            self.poke((u64::from(w.addr) % size) & !7, w.value);
        }
    }
}

impl GuestMemory for WatchedMemory {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        self.inner.read(gpa, buf)
    }
    fn read_u64(&self, gpa: u64) -> Result<u64, MemoryError> {
        self.inner.read_u64(gpa)
    }
    fn write(&self, gpa: u64, data: &[u8]) -> Result<(), MemoryError> {
        let result = self.inner.write(gpa, data);
        if result.is_ok() {
            self.writes.lock().unwrap().push((gpa, data.to_vec()));
        }
        result
    }
}

/// The interrupt address range (§3.14).
pub const INTERRUPT_RANGE: std::ops::RangeInclusive<u64> = 0xFEE0_0000..=0xFEEF_FFFF;

/// A translation outcome without the fields that legitimately differ between the cached
/// and the uncached path (`recorded`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmaOutcome {
    /// Mapped through this mapping.
    Mapped(viommu::Mapping),
    /// An interrupt request.
    Interrupt,
    /// A fault with this reason.
    Fault(u8),
    /// Unsupported request.
    Unsupported,
}

/// Normalize a translation result.
pub fn dma_outcome(result: &Result<Translation, DmaError>) -> DmaOutcome {
    match result {
        Ok(Translation::Mapped(m)) => DmaOutcome::Mapped(*m),
        Ok(Translation::Interrupt) => DmaOutcome::Interrupt,
        Err(DmaError::Fault(f)) => DmaOutcome::Fault(f.reason.0),
        Err(DmaError::UnsupportedRequest) => DmaOutcome::Unsupported,
    }
}

/// Whether `reason` is one of the spec's legacy-mode DMA remapping fault codes.
pub fn is_legacy_dma_reason(reason: u8) -> bool {
    (1..=0xD).contains(&reason) || reason == 0x30
}

/// The invariants every DMA translation result holds, whatever the tables say.
pub fn check_dma(config: &Config, request: &DmaRequest, result: &Result<Translation, DmaError>) {
    let address = request.address;
    let in_interrupt_range = INTERRUPT_RANGE.contains(&address);
    match result {
        Ok(Translation::Mapped(m)) => {
            assert!(
                matches!(m.size_shift, 12 | 21 | 30),
                "page size 2^{} for {request:?}: {m:?}",
                m.size_shift
            );
            let size = 1u64 << m.size_shift;
            assert_eq!(m.input_base & (size - 1), 0, "input base unaligned: {m:?}");
            assert_eq!(
                m.output_base & (size - 1),
                0,
                "output base unaligned: {m:?}"
            );
            assert!(
                address >= m.input_base && address - m.input_base < size,
                "{request:?} outside its page {m:?}"
            );
            assert!(
                m.permissions.allows(request.access),
                "{m:?} does not allow {request:?}"
            );
            assert!(
                request.pasid.is_none(),
                "a PASID request was mapped: {request:?}"
            );
            assert!(
                !in_interrupt_range,
                "{request:?} mapped in the interrupt range"
            );
            // A page larger than 4 KiB never covers the interrupt range.
            let last = m.input_base + (size - 1);
            if m.size_shift > 12 {
                assert!(
                    last < *INTERRUPT_RANGE.start() || m.input_base > *INTERRUPT_RANGE.end(),
                    "{m:?} overlaps the interrupt range"
                );
            }
            if m.domain_id.is_some() {
                // Translated (or pass-through) traffic: the page is inside 2^MGAW.
                assert_eq!(
                    last >> config.guest_address_width,
                    0,
                    "{m:?} beyond MGAW {}",
                    config.guest_address_width
                );
                if let Some(d) = m.domain_id {
                    assert!(
                        u32::from(d) < config.domain_count(),
                        "domain {d} beyond ND in {m:?}"
                    );
                }
            }
        }
        Ok(Translation::Interrupt) => {
            assert!(in_interrupt_range && request.access == Access::WRITE);
        }
        Err(DmaError::Fault(f)) => {
            assert!(
                is_legacy_dma_reason(f.reason.0),
                "fault reason {:#x} is not a legacy DMA code ({request:?})",
                f.reason.0
            );
            assert_eq!(f.address, address);
            assert_eq!(f.source_id, request.source_id);
            assert!(request.pasid.is_none());
            assert!(!in_interrupt_range);
        }
        Err(DmaError::UnsupportedRequest) => {
            assert!(
                request.pasid.is_some() || (in_interrupt_range && request.access != Access::WRITE),
                "unsupported request for {request:?}"
            );
        }
    }
}

/// An interrupt remapping outcome without `recorded`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IrqOutcome {
    /// Delivered as is, remapped or posted.
    Delivered(Interrupt),
    /// A fault with this reason and index.
    Fault(u8, Option<u16>),
    /// Not an interrupt request.
    NotAnInterrupt,
}

/// Normalize a remapping result.
pub fn irq_outcome(result: &Result<Interrupt, InterruptError>) -> IrqOutcome {
    match result {
        Ok(i) => IrqOutcome::Delivered(*i),
        Err(InterruptError::Fault(f)) => IrqOutcome::Fault(f.reason.0, f.index),
        Err(InterruptError::NotAnInterrupt) => IrqOutcome::NotAnInterrupt,
    }
}

/// The invariants every interrupt remapping result holds. `x2apic`: IRTA.EIME as latched
/// by the last SIRTP (None when unknown: destination width is not checked).
pub fn check_irq(
    config: &Config,
    request: &InterruptRequest,
    x2apic: Option<bool>,
    result: &Result<Interrupt, InterruptError>,
) {
    let is_interrupt = request.address >> 20 == 0xFEE;
    match result {
        Ok(Interrupt::PassThrough(msi)) => {
            assert_eq!(msi.address, request.address);
            assert_eq!(msi.data, request.data);
        }
        Ok(Interrupt::Remapped(r)) => {
            assert!(is_interrupt);
            if x2apic == Some(false) {
                assert!(
                    r.destination <= 0xFF,
                    "xAPIC destination {:#x} wider than 8 bits",
                    r.destination
                );
            }
            let msi = r.to_msi();
            assert_eq!(msi.address >> 20 & 0xFFF, 0xFEE);
        }
        Ok(Interrupt::Posted(p)) => {
            assert!(is_interrupt);
            assert!(config.posted_interrupts, "posted without CAP.PI: {p:?}");
        }
        Err(InterruptError::Fault(f)) => {
            assert!(is_interrupt);
            assert!(
                (0x20..=0x27).contains(&f.reason.0),
                "interrupt fault reason {:#x}",
                f.reason.0
            );
            assert_eq!(f.source_id, request.source_id);
        }
        Err(InterruptError::NotAnInterrupt) => assert!(!is_interrupt),
    }
}

/// Every register as the guest reads it: dwords over the window and the largest
/// fault-record area.
pub fn read_all_registers<M: GuestMemory, H: viommu::Host>(unit: &viommu::Unit<M, H>) -> Vec<u64> {
    // Qword reads are two dword reads (regs/mod.rs), so dwords cover everything.
    (0..0x1300u64)
        .step_by(4)
        .map(|o| unit.mmio_read(o, 4))
        .collect()
}

/// Whether `VIOMMU_FUZZ_TRACE` is set: harnesses then print what requests turned into
/// (to check by eye that seeds reach what they were written for).
pub fn tracing() -> bool {
    static TRACE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("VIOMMU_FUZZ_TRACE").is_some())
}
