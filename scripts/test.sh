#!/usr/bin/env bash
# Runs every test viommu has, on a fresh machine: formatting, lints, unit, scenario and
# differential tests, the loom models of the lock-free cache, and (when the nightly
# toolchain is present) a short smoke run of every fuzz target.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "toolchain components"
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test (unit, scenario, differential)"
cargo test --workspace

step "loom models of the cache protocol"
# A separate target directory: cfg(loom) rebuilds everything and must not evict the
# normal build's artifacts.
RUSTFLAGS="--cfg loom" cargo test -p viommu --release --target-dir target/loom --test loom_cache
