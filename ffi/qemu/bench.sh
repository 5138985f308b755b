#!/usr/bin/env bash
# Disk-read throughput inside a Linux 6.12 guest (TCG), the same QEMU binary and guest with
# no vIOMMU, QEMU's intel-iommu, and viommu-vtd, in lazy and strict invalidation mode: the
# guest reads its whole virtio-blk disk with dd at 4 KiB and 1 MiB (O_DIRECT when its dd can).
# A benchmark, not a test: it prints a table and records nothing by itself.
#
#   ffi/qemu/bench.sh [--rounds N] [--translate [CALLS]]
#
# --translate: instead, the in-QEMU translate microbenchmark: for each backend (intel-iommu,
# viommu-vtd, viommu-vtd with x-translation-cache=off), boot the
# guest, then time CALLS (default 10000000) translations of its virtio-blk rings through
# the IOMMU region's translate callback and through address_space_translate() (the
# iommu_translate_bench monitor command of patch 0002), N rounds alternating backends.
set -euo pipefail
DIR=$(cd "$(dirname "$0")" && pwd)
CACHE=${VIOMMU_CACHE:-$HOME/.cache/viommu}
ROUNDS=1 TRANSLATE=""
while [ $# -gt 0 ]; do
    case $1 in
        --rounds) ROUNDS=$2; shift 2 ;;
        --translate)
            TRANSLATE=10000000
            if [[ "${2:-}" =~ ^[0-9]+$ ]]; then TRANSLATE=$2; shift; fi
            shift ;;
        *) echo "usage: $0 [--rounds N] [--translate [CALLS]]" >&2; exit 2 ;;
    esac
done

if [ -n "$TRANSLATE" ]; then
    printf '%-15s %-6s %14s %14s\n' backend round callback dma-path
    for round in $(seq "$ROUNDS"); do
        for backend in intel-iommu viommu viommu-nocache; do
            iommu=${backend%-nocache} opts=() run=$iommu-6.12-lazy
            [ "$backend" = viommu-nocache ] && opts=(--no-translation-cache) run+=-nocache
            "$DIR/boot-test.sh" --iommu "$iommu" "${opts[@]}" --kernel 6.12 --translate-bench "$TRANSLATE" >/dev/null ||
                { echo "boot-test --iommu $iommu ${opts[*]} --translate-bench failed" >&2; exit 1; }
            sed -n 's/.*calls [0-9]* callback \([0-9.]*\) ns\/call dma-path \([0-9.]*\) ns\/call.*/\1 \2/p' \
                "$CACHE/runs/$run-bench/translate-bench.txt" |
                while read -r cb dp; do printf '%-15s %-6s %11s ns %11s ns\n' "$backend" "$round" "$cb" "$dp"; done
        done
    done
    exit 0
fi

# run_bench NAME RUN_DIR DROP_IOMMU : re-run the boot-test command line of RUN_DIR with
# viommu.bench=1 (and without any vIOMMU when DROP_IOMMU=1); print the guest's figures.
run_bench() {
    local name=$1 run=$2 drop=$3 a skip=0 out
    local -a cmd new=()
    eval "cmd=($(cat "$run/cmdline"))"
    out=$CACHE/runs/bench-$name.log
    for ((i = 0; i < ${#cmd[@]}; i++)); do
        a=${cmd[$i]}
        if [ $skip = 1 ]; then skip=0; continue; fi
        case "$a" in
        -device)
            if [ "$drop" = 1 ] && [[ "${cmd[$((i + 1))]}" == intel-iommu* || "${cmd[$((i + 1))]}" == viommu-vtd* ]]; then
                skip=1; continue
            fi ;;
        file:*serial.log) a="file:$out" ;;
        file=*disk.img,*) a="file=$DISK,${a#*,}" ;;
        console=*)
            a="$a viommu.bench=1"
            [ "$drop" = 1 ] && a=${a//intel_iommu=on/intel_iommu=off} ;;
        esac
        new+=("$a")
    done
    rm -f "$out"
    timeout 600 "${new[@]}" >"$out.qemu" 2>&1 || true
    grep -a 'VIOMMU-BENCH-DD' "$out" | sed 's/\r//' | while read -r _ bs mode _ bytes secs; do
        local b=${bytes#bytes=} s=${secs#seconds=}
        printf '%-22s %-12s %-12s %8.2f s %10.1f MiB/s\n' "$name" "${bs#bs=}" "${mode#mode=}" "$s" \
            "$(awk "BEGIN { print ($s > 0) ? $b / 1048576 / $s : 0 }")"
    done | tee -a "$RESULTS"
}

# boot-test removes its disk after a run: read a 64 MiB disk of our own.
DISK=$CACHE/runs/bench-disk.img
mkdir -p "$CACHE/runs"
[ -f "$DISK" ] || head -c $((64 << 20)) /dev/urandom >"$DISK"

RESULTS=$CACHE/runs/bench-results.txt
: >"$RESULTS"
printf '%-22s %-12s %-12s %10s %16s\n' configuration block mode time throughput
for round in $(seq "$ROUNDS"); do
    for mode in lazy strict; do
        for iommu in intel-iommu viommu; do
            "$DIR/boot-test.sh" --iommu "$iommu" --kernel 6.12 --mode "$mode" >/dev/null ||
                { echo "boot-test --iommu $iommu --mode $mode failed" >&2; exit 1; }
            run_bench "$iommu-$mode" "$CACHE/runs/$iommu-6.12-$mode" 0
        done
    done
    run_bench "no-viommu" "$CACHE/runs/intel-iommu-6.12-lazy" 1
done

# The fastest read of each configuration and block size over all rounds (three reads per
# boot), and the throughput lost against no vIOMMU: the figure the goal is stated in.
echo
awk '
    { key = $1 " " $2; t = $4 + 0; if (!(key in best) || t < best[key]) best[key] = t }
    END {
        printf "%-22s %-10s %10s %10s\n", "fastest of all reads", "block", "time", "loss"
        n = split("no-viommu intel-iommu-lazy viommu-lazy intel-iommu-strict viommu-strict", names, " ")
        split("4096 1048576", sizes, " ")
        for (j = 1; j <= 2; j++)
            for (i = 1; i <= n; i++) {
                key = names[i] " " sizes[j]
                if (!(key in best)) continue
                base = best["no-viommu " sizes[j]]
                loss = (base > 0) ? 100 * (1 - base / best[key]) : 0
                printf "%-22s %-10s %8.2f s %9.1f%%\n", names[i], sizes[j], best[key], loss
            }
    }' "$RESULTS"
