//! DMA remapping: request → context → IOTLB → page walk → mapping or fault.

pub mod context;
pub mod enumerate;
pub mod request;
pub mod translate;
pub mod walk;
