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

# ---- fuzz smoke (owned by fuzz/; see docs/reliability.md) ---------------------------
# A short run of every cargo-fuzz target from its checked-in seeds, plus a replay of every
# saved regression input (~4 min from scratch incl. the build; more the first time, when
# cargo-fuzz itself is installed). Needs the nightly toolchain; skipped without it.
if cargo +nightly --version >/dev/null 2>&1; then
    step "fuzz smoke: every target ~12 s from fuzz/seeds, and fuzz/regressions replayed"
    command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
    (
        cd fuzz
        # No sanitizer: the engine is #![forbid(unsafe_code)] (ASan would find nothing
        # Rust's own checks miss) and runs without it are several times faster.
        # Debug assertions and overflow checks stay on (cargo-fuzz's default).
        FUZZ="cargo +nightly fuzz run -s none --features ffi"
        cargo +nightly fuzz build -s none --features ffi
        for t in mmio translate queue irq restore ffi; do
            mkdir -p "corpus/$t" "seeds/$t"
            if [ -d "regressions/$t" ] && [ -n "$(ls -A "regressions/$t")" ]; then
                $FUZZ "$t" regressions/"$t"/* >/dev/null 2>"target/smoke-$t-regressions.log" \
                    || { cat "target/smoke-$t-regressions.log"; exit 1; }
            fi
            $FUZZ "$t" "corpus/$t" "seeds/$t" -- -max_total_time=12 -print_final_stats=1 \
                >"target/smoke-$t.log" 2>&1 || { tail -60 "target/smoke-$t.log"; exit 1; }
            printf '  %-10s %10s executions, %s\n' "$t" \
                "$(sed -n 's/^stat::number_of_executed_units: *//p' "target/smoke-$t.log")" \
                "$(grep -o 'cov: [0-9]* ft: [0-9]*' "target/smoke-$t.log" | tail -1)"
        done
    )
else
    step "fuzz smoke: skipped (no nightly toolchain)"
fi
# ---- end fuzz smoke ------------------------------------------------------------------

# ---- QEMU: Linux boots through viommu (see docs/qemu.md) ---------------------------------
# Builds QEMU 10.0.2 with the viommu-vtd device and the guest kernels on first use (cached
# under ~/.cache/viommu), then boots Linux with intel_iommu=on and interrupt remapping,
# checking DMA remapping, IR-PCI-MSI/MSI-X, no DMAR faults and the disk's sha256.
step "QEMU boot tests through viommu-vtd"
for args in "--kernel 6.12 --mode lazy" "--kernel 6.12 --mode strict" \
    "--kernel 6.12 --mode lazy --caching-mode" "--kernel 6.12 --mode lazy --no-eim" \
    "--kernel 6.12 --mode pt" "--kernel 6.1 --mode lazy"; do
    # shellcheck disable=SC2086
    ffi/qemu/boot-test.sh --iommu viommu $args
done
# Migration: save the running unit mid-DMA, restore it in a second QEMU, DMA goes on.
ffi/qemu/boot-test.sh --iommu viommu --kernel 6.12 --migrate
echo "7 passed, 0 failed: QEMU boot and migration tests through viommu-vtd"
