//! Benchmark support for viommu (shared fixtures live here).
