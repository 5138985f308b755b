#!/usr/bin/env bash
# The main job: build QEMU with the viommu-vtd device (and Linux guests) if needed, boot
# Linux with intel_iommu=on and interrupt remapping through viommu, and show the guest's
# IOMMU lines and the DMA check. `--engine-only` runs the in-process engine demo instead.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--engine-only" ]; then
    exec cargo run --release -p viommu --example demo
fi
cargo run --release -q -p viommu --example demo
echo
ffi/qemu/boot-test.sh --iommu viommu --kernel 6.12 --mode lazy
run=${VIOMMU_CACHE:-$HOME/.cache/viommu}/runs/viommu-6.12-lazy
echo
echo "== the guest's IOMMU lines (from $run/serial.log)"
grep -aE 'DMAR|IOMMU|iommu|remapping|x2apic|VIOMMU-DISK' "$run/serial.log" | head -40 || true
