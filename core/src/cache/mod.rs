//! The one generic lock-free cache (placeholder: being written).
