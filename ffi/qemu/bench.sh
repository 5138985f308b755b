#!/usr/bin/env bash
# Disk-read throughput inside a Linux 6.12 guest (TCG), the same QEMU binary and guest with
# no vIOMMU, QEMU's intel-iommu and viommu-vtd, each in passthrough, lazy and strict mode:
# the guest reads its whole virtio-blk disk with dd at 4 KiB and 1 MiB (O_DIRECT when its
# dd can). A benchmark, not a test: it prints a table and records nothing by itself.
#
#   ffi/qemu/bench.sh [--rounds N] [--translate [CALLS] | --profile CONFIG]
#
# Each round boots every configuration once (three timed reads per block size per boot),
# in an order rotated from round to round; the summary gives, per configuration, the
# median and the fastest read over all rounds and the throughput lost against no vIOMMU.
#
# --translate: instead, the in-QEMU translate microbenchmark: for each backend (intel-iommu,
# viommu-vtd, viommu-vtd with x-translation-cache=off), boot the
# guest, then time CALLS (default 10000000) translations of its virtio-blk rings through
# the IOMMU region's translate callback and through address_space_translate() (the
# iommu_translate_bench monitor command of patch 0002), N rounds alternating backends.
#
# --profile CONFIG: instead, one boot of CONFIG (no-viommu, intel-iommu-pt, viommu-lazy, ...)
# under `perf record`, and where the host's CPU went during the guest's reads: guest kernel
# functions (the IOMMU driver's share apart), QEMU's TCG runtime, its memory API, the
# vIOMMU (profile.py). Installs linux-perf (perf) if it is missing.
set -euo pipefail
DIR=$(cd "$(dirname "$0")" && pwd)
CACHE=${VIOMMU_CACHE:-$HOME/.cache/viommu}
ROUNDS=1 TRANSLATE="" PROFILE=""
while [ $# -gt 0 ]; do
    case $1 in
        --rounds) ROUNDS=$2; shift 2 ;;
        --translate)
            TRANSLATE=10000000
            if [[ "${2:-}" =~ ^[0-9]+$ ]]; then TRANSLATE=$2; shift; fi
            shift ;;
        --profile) PROFILE=$2; shift 2 ;;
        *) echo "usage: $0 [--rounds N] [--translate [CALLS] | --profile CONFIG]" >&2; exit 2 ;;
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

# The configurations, in the order of the first round (later rounds rotate it, so that no
# configuration always runs at the same point of the machine's slow drifts):
#   no-viommu         the lazy command line without the vIOMMU device, intel_iommu=off
#   <iommu>-pt        intel_iommu=on iommu.passthrough=1: the guest maps nothing (identity
#                     domains, pass-through contexts: DMA straight to memory with either
#                     backend), but every MSI is still remapped
#   <iommu>-lazy      translated DMA, invalidations batched by the guest's flush queue
#   <iommu>-strict    translated DMA, an IOTLB invalidation per unmap (iommu.strict=1)
# pt against lazy/strict separates the two parts of a loss: what the vIOMMU costs without
# the guest driver (pt) and what the guest's own intel-iommu driver costs (mapping and
# unmapping every request).
CONFIGS=(no-viommu intel-iommu-pt viommu-pt intel-iommu-lazy viommu-lazy intel-iommu-strict viommu-strict)

# config_run CONFIG: "IOMMU MODE DROP PT": the boot-test run whose command line CONFIG
# starts from, whether to drop the vIOMMU device, whether to boot with iommu.passthrough=1.
config_run() {
    case $1 in
        no-viommu) echo intel-iommu lazy 1 0 ;;
        *-pt) echo "${1%-pt}" lazy 0 1 ;;
        intel-iommu-lazy | intel-iommu-strict | viommu-lazy | viommu-strict) echo "${1%-*}" "${1##*-}" 0 0 ;;
        *) echo "unknown configuration '$1' (one of: ${CONFIGS[*]})" >&2; return 1 ;;
    esac
}

# run_bench CONFIG ROUND [PERF...]: boot the guest of CONFIG with viommu.bench=1 from the
# command line boot-test.sh recorded (the same QEMU binary, guest and devices), print its
# reads as "CONFIG ROUND bs seconds" lines; with PERF, run QEMU under that command.
run_bench() {
    local name=$1 round=$2 a skip=0 out iommu mode drop pt
    shift 2
    read -r iommu mode drop pt < <(config_run "$name")
    local -a cmd new=()
    eval "cmd=($(cat "$CACHE/runs/$iommu-6.12-$mode/cmdline"))"
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
            a="$a viommu.bench=1 $EXTRA_APPEND"
            [ "$drop" = 1 ] && a=${a//intel_iommu=on/intel_iommu=off}
            [ "$pt" = 1 ] && a=${a//iommu.passthrough=0/iommu.passthrough=1} ;;
        esac
        new+=("$a")
    done
    rm -f "$out"
    timeout 900 "$@" "${new[@]}" $EXTRA_QEMU >"$out.qemu" 2>&1 || true
    grep -a 'VIOMMU-BENCH-DD' "$out" | sed 's/\r//' | while read -r _ bs _ _ _ secs; do
        echo "$name $round ${bs#bs=} ${secs#seconds=}"
    done | tee -a "$RESULTS"
    grep -aq 'VIOMMU-BENCH-DD' "$out" || { echo "$name: no figures, see $out" >&2; return 1; }
}

# boot-test removes its disk after a run: read a 64 MiB disk of our own.
DISK=$CACHE/runs/bench-disk.img
mkdir -p "$CACHE/runs"
[ -f "$DISK" ] || head -c $((64 << 20)) /dev/urandom >"$DISK"
EXTRA_APPEND="" EXTRA_QEMU=""

# The command lines (and the checks that the guest works with each backend and mode).
if [ -n "$PROFILE" ]; then
    run=$(config_run "$PROFILE") || exit 2
    read -r iommu mode _ <<<"$run"
    RUNS=("$iommu $mode")
else
    RUNS=("intel-iommu lazy" "viommu lazy" "intel-iommu strict" "viommu strict")
fi
for r in "${RUNS[@]}"; do
    read -r iommu mode <<<"$r"
    "$DIR/boot-test.sh" --iommu "$iommu" --kernel 6.12 --mode "$mode" >/dev/null ||
        { echo "boot-test --iommu $iommu --mode $mode failed" >&2; exit 1; }
done

if [ -n "$PROFILE" ]; then
    # One boot of PROFILE under perf, TCG's code named by guest address (-perfmap) and the
    # guest's kernel symbols at fixed addresses (nokaslr), then the profile of the reads.
    # shellcheck source=lib.sh
    LOG_TAG=bench . "$DIR/lib.sh"
    apt_install linux-perf python3
    RESULTS=$CACHE/runs/bench-profile-results.txt
    : >"$RESULTS"
    EXTRA_APPEND="nokaslr viommu.kallsyms=1" EXTRA_QEMU="-perfmap"
    data=$CACHE/runs/bench-$PROFILE.perf
    run_bench "$PROFILE" 1 perf record -q -F 999 -o "$data" --
    sed -n '/VIOMMU-BEGIN-KALLSYMS/,/VIOMMU-END-KALLSYMS/p' "$CACHE/runs/bench-$PROFILE.log" |
        sed 's/\r//' | grep -v VIOMMU- >"$CACHE/runs/bench-$PROFILE.kallsyms"
    python3 "$DIR/profile.py" "$data" "$CACHE/runs/bench-$PROFILE.kallsyms"
    exit 0
fi

RESULTS=$CACHE/runs/bench-results.txt
: >"$RESULTS"
echo "configuration round block seconds"
for round in $(seq "$ROUNDS"); do
    for ((k = 0; k < ${#CONFIGS[@]}; k++)); do
        run_bench "${CONFIGS[$(((k + round - 1) % ${#CONFIGS[@]}))]}" "$round" ||
            exit 1
    done
done

# Per configuration and block size, over all reads of all rounds (three per boot): the
# median and the fastest read, and the throughput lost against no vIOMMU
# (1 - t(none)/t(config)) by each: the figure the goal is stated in.
echo
awk -v order="${CONFIGS[*]}" '
    { key = $1 " " $3; n[key]++; t[key, n[key]] = $4 + 0 }
    function median(key,   i, j, m, v, x) {
        m = n[key]
        for (i = 1; i <= m; i++) v[i] = t[key, i]
        for (i = 2; i <= m; i++) { x = v[i]; for (j = i - 1; j >= 1 && v[j] > x; j--) v[j + 1] = v[j]; v[j + 1] = x }
        fastest[key] = v[1]
        return (m % 2) ? v[(m + 1) / 2] : (v[m / 2] + v[m / 2 + 1]) / 2
    }
    END {
        printf "%-20s %-8s %5s %10s %8s %10s %8s\n", "configuration", "block", "reads", "median", "loss", "fastest", "loss"
        c = split(order, names, " ")
        split("4096 1048576", sizes, " ")
        for (j = 1; j <= 2; j++) {
            base = sizes[j]
            bm = median("no-viommu " base); bf = fastest["no-viommu " base]
            for (i = 1; i <= c; i++) {
                key = names[i] " " sizes[j]
                if (!(key in n)) continue
                m = median(key); f = fastest[key]
                printf "%-20s %-8s %5d %8.3f s %7.1f%% %8.3f s %7.1f%%\n", names[i], sizes[j], n[key],
                    m, (m > 0) ? 100 * (1 - bm / m) : 0, f, (f > 0) ? 100 * (1 - bf / f) : 0
            }
        }
    }' "$RESULTS"
