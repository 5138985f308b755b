//! Target `restore`: save/restore.
//!
//! A unit is driven with fuzzed MMIO operations (those of the `mmio` target), saved, and
//! restored into a fresh unit over a copy of the same memory. Then a blob derived from
//! the saved one (bytes changed, truncated or extended, CRC and length optionally fixed up
//! so the field validation is reached) or an arbitrary blob is restored over it.
//!
//! Invariants: `save` succeeds with `saved_size` bytes; restoring one's own blob succeeds;
//! the restored unit reads back every register exactly as the original; saving it again
//! gives the same blob; its translations and remaps agree with the original's uncached
//! reference (and, caches being empty, its cached path agrees with its own reference);
//! `restore` never panics; a rejected blob leaves every register read unchanged; an
//! accepted blob saves back byte for byte, and the unit keeps working after it.

use arbitrary::Arbitrary;
use viommu::{Access, Config, DmaRequest, InterruptRequest, NoHost, SourceId, Unit};

use crate::common::{
    check_dma, check_irq, dma_outcome, irq_outcome, read_all_registers, ConfigBits, MemWrite,
    WatchedMemory,
};
use crate::mmio::{apply, check_registers, FuzzUnit, MmioOp};

/// Guest memory size for this target.
pub const MEMORY: usize = 2 << 20;

/// The second blob restored.
#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
pub enum Blob {
    /// The saved blob, changed.
    Mutated {
        /// (position modulo the length, byte XORed in).
        flips: Vec<(u16, u8)>,
        /// Cut to this many bytes (modulo length + 1).
        truncate: Option<u16>,
        /// Bytes appended.
        extend: Vec<u8>,
        /// Rewrite the length field to the new length.
        fix_length: bool,
        /// Recompute the CRC over the new body.
        fix_crc: bool,
    },
    /// Any bytes.
    Raw(Vec<u8>),
}

/// The input of the `restore` target.
#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// Configuration.
    pub config: ConfigBits,
    /// Initial guest memory content.
    pub memory: Vec<MemWrite>,
    /// The second blob.
    pub blob: Blob,
    /// What the original unit goes through before it is saved.
    pub ops: Vec<MmioOp>,
}

pub use viommu::state::crc32;

/// Requests probed on both units: a few fixed ones and those the input made.
fn probes(ops: &[MmioOp]) -> (Vec<DmaRequest>, Vec<InterruptRequest>) {
    let mut dma = Vec::new();
    let mut irq = Vec::new();
    for sid in [0x0000u16, 0x0008, 0x0018, 0x0100] {
        for address in [0u64, 0x1000, 0x20_0000, 0x4000_0000, 0xFEE0_0000] {
            dma.push(DmaRequest::read(SourceId(sid), address));
            dma.push(DmaRequest::write(SourceId(sid), address));
        }
        irq.push(InterruptRequest {
            source_id: SourceId(sid),
            address: 0xFEE0_0010 | (5 << 5),
            data: 0,
        });
    }
    for op in ops.iter().take(16) {
        match *op {
            MmioOp::Translate {
                sid,
                address,
                access,
                pasid,
            } => dma.push(DmaRequest {
                source_id: SourceId(sid),
                pasid,
                address: address.get(),
                access: Access::from_bits(access),
            }),
            MmioOp::Remap {
                sid,
                address,
                raw,
                data,
            } => irq.push(InterruptRequest {
                source_id: SourceId(sid),
                address: if raw {
                    u64::from(address)
                } else {
                    0xFEE0_0000 | u64::from(address & 0xF_FFFF)
                },
                data,
            }),
            _ => {}
        }
    }
    (dma, irq)
}

fn save(unit: &FuzzUnit<'_>) -> Vec<u8> {
    let mut blob = vec![0u8; unit.saved_size()];
    let n = unit.save(&mut blob).expect("save into a saved_size buffer");
    assert_eq!(n, blob.len(), "save wrote saved_size bytes");
    let mut small = vec![0u8; blob.len() - 1];
    assert!(
        unit.save(&mut small).is_err(),
        "save into a short buffer fails"
    );
    blob
}

fn derive(saved: &[u8], blob: &Blob) -> Vec<u8> {
    match blob {
        Blob::Raw(bytes) => bytes.clone(),
        Blob::Mutated {
            flips,
            truncate,
            extend,
            fix_length,
            fix_crc,
        } => {
            let mut b = saved.to_vec();
            for &(at, x) in flips {
                let i = usize::from(at) % b.len();
                b[i] ^= x;
            }
            if let Some(t) = truncate {
                b.truncate(usize::from(*t) % (b.len() + 1));
            }
            b.extend_from_slice(extend);
            if *fix_length && b.len() >= 16 {
                let len = b.len() as u32;
                b[12..16].copy_from_slice(&len.to_le_bytes());
            }
            if *fix_crc && b.len() >= 4 {
                let body = b.len() - 4;
                let crc = crc32(&b[..body]);
                b[body..].copy_from_slice(&crc.to_le_bytes());
            }
            b
        }
    }
}

fn exercise(unit: &FuzzUnit<'_>, config: &Config, dma: &[DmaRequest], irq: &[InterruptRequest]) {
    for r in dma {
        let result = unit.translate(r);
        check_dma(config, r, &result);
        assert_eq!(
            dma_outcome(&result),
            dma_outcome(&unit.translate_uncached(r)),
            "restored unit: cached and uncached differ for {r:?}"
        );
    }
    for r in irq {
        let result = unit.remap_interrupt(r);
        check_irq(config, r, None, &result);
        assert_eq!(
            irq_outcome(&result),
            irq_outcome(&unit.remap_interrupt_uncached(r)),
            "restored unit: cached and uncached remap differ for {r:?}"
        );
    }
}

/// Run one input.
pub fn run(input: &Input) {
    let config = input.config.config();
    let memory = WatchedMemory::new(MEMORY);
    memory.apply(&input.memory);
    let original = Box::new(Unit::new(config, &memory, NoHost).expect("valid config"));
    for op in &input.ops {
        apply(&original, &memory, &config, op);
    }
    let saved = save(&original);
    assert_eq!(saved.len(), original.saved_size());

    // Round trip into a fresh unit over a copy of the memory.
    let copy = WatchedMemory {
        inner: memory.inner.snapshot(),
        writes: Default::default(),
    };
    let restored = Box::new(Unit::new(config, &copy, NoHost).expect("valid config"));
    assert_eq!(
        restored.restore(&saved),
        Ok(()),
        "a unit's own blob restores"
    );
    assert_eq!(
        read_all_registers(&original),
        read_all_registers(&restored),
        "restored registers differ"
    );
    assert_eq!(
        save(&restored),
        saved,
        "restored unit saves a different blob"
    );
    let (dma, irq) = probes(&input.ops);
    for r in &dma {
        assert_eq!(
            dma_outcome(&original.translate_uncached(r)),
            dma_outcome(&restored.translate_uncached(r)),
            "restored unit translates {r:?} differently"
        );
    }
    for r in &irq {
        assert_eq!(
            irq_outcome(&original.remap_interrupt_uncached(r)),
            irq_outcome(&restored.remap_interrupt_uncached(r)),
            "restored unit remaps {r:?} differently"
        );
    }
    exercise(&restored, &config, &dma, &irq);

    // A derived or arbitrary blob over the restored unit.
    let blob = derive(&saved, &input.blob);
    let before = read_all_registers(&restored);
    match restored.restore(&blob) {
        Err(_) => assert_eq!(
            read_all_registers(&restored),
            before,
            "a rejected blob changed the registers"
        ),
        Ok(()) => {
            assert_eq!(save(&restored), blob, "an accepted blob does not save back");
            check_registers(&restored, &config);
            exercise(&restored, &config, &dma, &irq);
            for op in input.ops.iter().take(32) {
                apply(&restored, &copy, &config, op);
            }
            check_registers(&restored, &config);
        }
    }
}
