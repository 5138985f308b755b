//! viommu: an Intel VT-d remapping-hardware emulation engine.
#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(feature = "std")]
extern crate std;

pub mod cache;
pub mod config;
pub mod dma;
mod fault;
pub mod host;
mod inval;
pub mod irq;
pub mod memory;
pub mod platform;
pub mod regs;
pub mod spec;
pub mod state;
mod unit;

pub use config::{Config, ConfigError};
pub use dma::request::{Access, DmaError, DmaFault, DmaRequest, Mapping, SourceId, Translation};
pub use host::{Host, InvalidationEvent, MsiMessage, NoHost};
pub use irq::{
    Interrupt, InterruptError, InterruptFault, InterruptRequest, PostOutcome, PostedInterrupt,
    RemappedInterrupt,
};
pub use memory::{GuestMemory, MemoryError};
pub use spec::fault::FaultReason;
pub use state::{RestoreError, SaveError};
pub use unit::{Unit, CONTEXT_CACHE_SLOTS, IEC_SLOTS, IOTLB_SLOTS};
#[cfg(feature = "testing")]
pub mod testing;
