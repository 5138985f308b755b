#!/usr/bin/env bash
# A long fuzzing run (docs/reliability.md, "Runs so far"): each target named runs for
# SECONDS (default 3600) in turn, niced, from fuzz/seeds/<t> plus the corpus of earlier
# runs in fuzz/corpus/<t>; libFuzzer's log goes to fuzz/target/long-<t>.log and one
# summary line per target (executions, exec/s, CPU seconds, cov, ft, corpus, result) to
# stdout. Several instances may run side by side (one target each); the CPU seconds say what
# share of a core each one got.
# A crash stops that target's run; its input is in fuzz/artifacts/<t>/.
#
#   scripts/fuzz-long.sh [--seconds N] TARGET...      (targets: mmio translate queue irq restore ffi)
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
SECONDS_PER=3600
if [ "${1:-}" = --seconds ]; then SECONDS_PER=$2; shift 2; fi
[ $# -gt 0 ] || { sed -n '2,8p' "$0"; exit 2; }
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
cargo +nightly fuzz build -s none --features ffi
for t in "$@"; do
    mkdir -p "corpus/$t" "seeds/$t"
    log=target/long-$t.log
    start=$(date -u +%FT%TZ)
    set +e
    cpu_before=$(awk '{print $16 + $17}' /proc/$$/stat)
    # With CONFIG_SCHED_AUTOGROUP, nice only ranks processes within one session: the fuzzer
    # gets a session of its own whose autogroup is niced too, or it takes a full share of
    # the CPU from every other session (a benchmark run beside it went 4x slower).
    setsid -w sh -c 'echo 19 >/proc/self/autogroup 2>/dev/null; exec "$@"' sh \
        nice -n 19 cargo +nightly fuzz run -s none --features ffi "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$SECONDS_PER" -print_final_stats=1 >"$log" 2>&1
    rc=$?
    set -e
    ticks=$(getconf CLK_TCK)
    cpu_after=$(awk '{print $16 + $17}' /proc/$$/stat)
    cpu=$(( (cpu_after - cpu_before) / ticks ))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    first=$(grep -m1 -o 'cov: [0-9]* ft: [0-9]*' "$log" || true)
    last=$(grep -o 'cov: [0-9]* ft: [0-9]* corp: [0-9]*' "$log" | tail -1 || true)
    result="no failure"
    [ $rc -ne 0 ] && result="FAILED (exit $rc; see $log and artifacts/$t/)"
    echo "$t: from $start for ${SECONDS_PER}s: ${execs:-?} executions, ${rate:-?} exec/s, ${cpu} CPU s, ${first:-?} -> ${last:-?}; $result"
done
