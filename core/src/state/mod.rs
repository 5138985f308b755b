//! Save and restore of a unit's architectural state (for migration and snapshots).
//!
//! The blob is versioned little-endian: a header (magic, format version, length), the
//! capability registers the guest saw (a unit only restores state saved by a unit
//! configured the same way), every register, the fault records, the translation and
//! interrupt-remapping pointers as latched by SRTP/SIRTP, and a CRC-32 over all of it.
//! Caches are not saved: a restored unit starts with empty caches, which the spec
//! allows at any time.
//!
//! Restoring validates the whole blob before changing anything: a blob that is
//! truncated, corrupted, from a future version or from a differently configured unit is
//! rejected with an error and the unit is left as it was.

use core::sync::atomic::Ordering;

use crate::config::Config;
use crate::host::Host;
use crate::irq::{IR_STATE_CFIS, IR_STATE_IRES};
use crate::memory::GuestMemory;
use crate::regs::{FaultRecord, RegisterFile, IRTA_EIME, QUEUE_OFFSET_MASK};
use crate::spec::registers::{
    EventControl, FaultStatus, GlobalCommand, InvalidationCompletionStatus, MAX_FAULT_RECORDS,
};
use crate::unit::{Unit, DMA_STATE_TES};

/// The first eight bytes of every blob.
pub const MAGIC: [u8; 8] = *b"VIOMMU\0\x01";
/// The format version this build writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;

/// Bytes before the register block: magic, version, total length.
const HEADER_LEN: usize = 16;
/// The register block without fault records.
const FIXED_LEN: usize = 8 + 8 // CAP, ECAP
    + 4 + 8 + 8 + 4 + 4 + 4 + 4 + 4 + 4 // GSTS RTADDR CCMD FSTS FECTL FEDATA FEADDR FEUADDR PMEN
    + 8 + 8 + 8 + 4 + 4 + 4 + 4 + 4 + 8 // IQH IQT IQA ICS IECTL IEDATA IEADDR IEUADDR IQERCD
    + 8 + 8 + 8 // IRTA IVA IOTLB
    + 8 + 8 // latched DMA and IR state
    + 2 + 2; // next fault record, record count
const CRC_LEN: usize = 4;

/// Why a blob was not written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaveError {
    /// The buffer is smaller than [`Unit::saved_size`].
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
    },
}

/// Why a blob was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestoreError {
    /// Shorter than its header says, or than the smallest blob.
    Truncated,
    /// Not a viommu state blob.
    BadMagic,
    /// Written by a newer format version.
    UnsupportedVersion(u32),
    /// The length field does not match the blob.
    BadLength,
    /// The CRC does not match: the blob was corrupted.
    BadChecksum,
    /// Saved by a unit with other capabilities (CAP/ECAP differ).
    ConfigMismatch,
    /// A field holds a value no unit of this configuration can be in.
    InvalidField(&'static str),
}

impl core::fmt::Display for RestoreError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Truncated => f.write_str("state blob is truncated"),
            Self::BadMagic => f.write_str("not a viommu state blob"),
            Self::UnsupportedVersion(v) => {
                write!(f, "state blob format {v} is newer than this build")
            }
            Self::BadLength => f.write_str("state blob length field is wrong"),
            Self::BadChecksum => f.write_str("state blob checksum mismatch"),
            Self::ConfigMismatch => f.write_str("state blob is from a differently configured unit"),
            Self::InvalidField(name) => write!(f, "state blob field {name} is invalid"),
        }
    }
}

impl core::fmt::Display for SaveError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::BufferTooSmall { needed } => write!(f, "state needs a {needed}-byte buffer"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for RestoreError {}
#[cfg(feature = "std")]
impl std::error::Error for SaveError {}

/// CRC-32 (IEEE 802.3, reflected) as the blob's last four bytes hold it over the rest —
/// public so tools that craft or repair blobs (fuzzers, tests) compute the same one.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

struct Writer<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) {
        if let Some(dst) = self.buf.get_mut(self.at..self.at + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
        self.at += bytes.len();
    }
    fn u16(&mut self, v: u16) {
        self.put(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.put(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.put(&v.to_le_bytes());
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], RestoreError> {
        let bytes = self
            .buf
            .get(self.at..self.at + N)
            .ok_or(RestoreError::Truncated)?;
        self.at += N;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }
    fn u16(&mut self) -> Result<u16, RestoreError> {
        self.take().map(u16::from_le_bytes)
    }
    fn u32(&mut self) -> Result<u32, RestoreError> {
        self.take().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Result<u64, RestoreError> {
        self.take().map(u64::from_le_bytes)
    }
}

/// The size of a blob for `config`.
pub fn saved_size(config: &Config) -> usize {
    HEADER_LEN + FIXED_LEN + 16 * usize::from(config.fault_records) + CRC_LEN
}

/// Everything a blob holds, parsed and validated.
struct Saved {
    regs: RegisterFile,
    dma_state: u64,
    ir_state: u64,
}

fn parse(config: &Config, blob: &[u8]) -> Result<Saved, RestoreError> {
    let mut r = Reader { buf: blob, at: 0 };
    if r.take::<8>().map_err(|_| RestoreError::Truncated)? != MAGIC {
        return Err(RestoreError::BadMagic);
    }
    let version = r.u32()?;
    if version > FORMAT_VERSION || version == 0 {
        return Err(RestoreError::UnsupportedVersion(version));
    }
    let length = usize::try_from(r.u32()?).map_err(|_| RestoreError::BadLength)?;
    if length > blob.len() {
        return Err(RestoreError::Truncated);
    }
    if length != blob.len() || length < HEADER_LEN + FIXED_LEN + CRC_LEN {
        return Err(RestoreError::BadLength);
    }
    let (body, crc) = blob.split_at(length - CRC_LEN);
    let mut crc_bytes = [0u8; 4];
    crc_bytes.copy_from_slice(crc);
    if crc32(body) != u32::from_le_bytes(crc_bytes) {
        return Err(RestoreError::BadChecksum);
    }
    if r.u64()? != config.capability().into_bits()
        || r.u64()? != config.extended_capability().into_bits()
    {
        return Err(RestoreError::ConfigMismatch);
    }
    let mut regs = RegisterFile::new();
    regs.gsts = GlobalCommand::from_bits(r.u32()?);
    regs.rtaddr = r.u64()?;
    regs.ccmd = r.u64()?;
    regs.fsts = FaultStatus::from_bits(r.u32()?);
    regs.fectl = EventControl::from_bits(r.u32()?);
    regs.fedata = r.u32()?;
    regs.feaddr = r.u32()?;
    regs.feuaddr = r.u32()?;
    regs.pmen = r.u32()?;
    regs.iqh = r.u64()?;
    regs.iqt = r.u64()?;
    regs.iqa = r.u64()?;
    regs.ics = InvalidationCompletionStatus::from_bits(r.u32()?);
    regs.iectl = EventControl::from_bits(r.u32()?);
    regs.iedata = r.u32()?;
    regs.ieaddr = r.u32()?;
    regs.ieuaddr = r.u32()?;
    regs.iqercd = r.u64()?;
    regs.irta = r.u64()?;
    regs.iva = r.u64()?;
    regs.iotlb = r.u64()?;
    let dma_state = r.u64()?;
    let ir_state = r.u64()?;
    regs.next_fault_record = r.u16()?;
    let records = r.u16()?;
    if records != config.fault_records {
        return Err(RestoreError::ConfigMismatch);
    }
    for i in 0..usize::from(records).min(MAX_FAULT_RECORDS) {
        let record = FaultRecord {
            low: r.u64()?,
            high: r.u64()?,
        };
        if let Some(slot) = regs.frcd.get_mut(i) {
            *slot = record;
        }
    }
    if r.at != length - CRC_LEN {
        return Err(RestoreError::BadLength);
    }
    validate(config, &regs)?;
    let consistent = (dma_state & DMA_STATE_TES != 0) == regs.gsts.te()
        && dma_state & 0x3FE == 0
        && (ir_state & IR_STATE_IRES != 0) == regs.gsts.ire()
        && (ir_state & IR_STATE_CFIS != 0) == regs.gsts.cfi()
        && ir_state & 0x7C0 == 0
        && (config.extended_interrupt_mode || ir_state & IRTA_EIME == 0);
    if !consistent {
        return Err(RestoreError::InvalidField("latched DMA/IR state"));
    }
    Ok(Saved {
        regs,
        dma_state,
        ir_state,
    })
}

/// Values that register writes can never produce for this configuration.
fn validate(config: &Config, regs: &RegisterFile) -> Result<(), RestoreError> {
    let invalid = RestoreError::InvalidField;
    if regs.next_fault_record >= config.fault_records {
        return Err(invalid("next fault record"));
    }
    if regs.iqh & !QUEUE_OFFSET_MASK != 0 || regs.iqt & !QUEUE_OFFSET_MASK != 0 {
        return Err(invalid("IQH/IQT"));
    }
    let gsts = regs.gsts;
    if (gsts.qie() && !config.queued_invalidation)
        || ((gsts.ire() || gsts.sirtp() || gsts.cfi()) && !config.interrupt_remapping)
        || gsts.wbf()
        || gsts.sfl()
        || gsts.eafl()
    {
        return Err(invalid("GSTS"));
    }
    // FSTS holds only its RW1C bits and FRI (PPF is derived); FRI names an existing record.
    let fsts = regs.fsts.into_bits();
    if fsts & !(FaultStatus::RW1C_MASK | 0xFF00) != 0
        || u16::from(regs.fsts.fri()) >= config.fault_records
    {
        return Err(invalid("FSTS"));
    }
    if !config.extended_interrupt_mode && regs.irta & IRTA_EIME != 0 {
        return Err(invalid("IRTA.EIME"));
    }
    if regs.fectl.into_bits() & !0xC000_0000 != 0 || regs.iectl.into_bits() & !0xC000_0000 != 0 {
        return Err(invalid("FECTL/IECTL"));
    }
    Ok(())
}

impl<M: GuestMemory, H: Host> Unit<M, H> {
    /// The size of the blob [`Unit::save`] writes.
    pub fn saved_size(&self) -> usize {
        saved_size(&self.config)
    }

    /// Write the unit's architectural state into `out`; returns the bytes written.
    pub fn save(&self, out: &mut [u8]) -> Result<usize, SaveError> {
        let needed = self.saved_size();
        let Some(out) = out.get_mut(..needed) else {
            return Err(SaveError::BufferTooSmall { needed });
        };
        let state = self.state.lock();
        let regs = &state.regs;
        let mut w = Writer { buf: out, at: 0 };
        w.put(&MAGIC);
        w.u32(FORMAT_VERSION);
        w.u32(needed as u32);
        w.u64(self.config.capability().into_bits());
        w.u64(self.config.extended_capability().into_bits());
        w.u32(regs.gsts.into_bits());
        w.u64(regs.rtaddr);
        w.u64(regs.ccmd);
        w.u32(regs.fsts.into_bits());
        w.u32(regs.fectl.into_bits());
        w.u32(regs.fedata);
        w.u32(regs.feaddr);
        w.u32(regs.feuaddr);
        w.u32(regs.pmen);
        w.u64(regs.iqh);
        w.u64(regs.iqt);
        w.u64(regs.iqa);
        w.u32(regs.ics.into_bits());
        w.u32(regs.iectl.into_bits());
        w.u32(regs.iedata);
        w.u32(regs.ieaddr);
        w.u32(regs.ieuaddr);
        w.u64(regs.iqercd);
        w.u64(regs.irta);
        w.u64(regs.iva);
        w.u64(regs.iotlb);
        w.u64(self.dma_state.load(Ordering::Acquire));
        w.u64(self.ir_state.load(Ordering::Acquire));
        w.u16(regs.next_fault_record);
        w.u16(self.config.fault_records);
        for record in regs.records(&self.config) {
            w.u64(record.low);
            w.u64(record.high);
        }
        drop(state);
        let body_len = w.at;
        let crc = crc32(w.buf.get(..body_len).unwrap_or(&[]));
        w.u32(crc);
        Ok(w.at)
    }

    /// Replace the unit's architectural state with a saved one. The blob is validated
    /// whole first; on error nothing changes. Caches start empty.
    pub fn restore(&self, blob: &[u8]) -> Result<(), RestoreError> {
        let saved = parse(&self.config, blob)?;
        let mut state = self.state.lock();
        state.regs = saved.regs;
        self.dma_state.store(saved.dma_state, Ordering::Release);
        self.ir_state.store(saved.ir_state, Ordering::Release);
        self.context_cache.invalidate_all();
        self.iotlb.invalidate_all();
        self.first_level.invalidate_all();
        self.iec.invalidate_all();
        self.interrupt_first_level.invalidate_all();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::crc32;

    #[test]
    fn crc32_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }
}
