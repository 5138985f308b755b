#!/usr/bin/env bash
# Boot a Linux guest behind a vIOMMU and check that DMA remapping and interrupt remapping
# really work: DMAR on with translated (non-identity) domains, IRQ remapping on, virtio-blk
# and e1000e on (IR-)PCI-MSI/MSI-X, no DMAR fault, the guest's sha256 of /dev/vda equal to
# the host's, and an e1000e DHCP exchange with QEMU's slirp.
#
#   ffi/qemu/boot-test.sh [--iommu intel-iommu|viommu] [--kernel 6.12|6.1]
#                         [--mode lazy|strict|pt] [--caching-mode] [--no-eim] [--aw-bits 39|48]
#                         [--accel auto|kvm|tcg] [--timeout SECONDS] [--seed N]
#                         [--translate-bench COUNT | --migrate] [--no-translation-cache]
#
# --translate-bench COUNT: after the checks the guest idles and the host runs the
#   iommu_translate_bench monitor command (patch 0002) on the virtio-blk disk: COUNT
#   translations of its ring IOVAs through QEMU's IOMMU translate path; the figures go to
#   <run>/translate-bench.txt. Works with either --iommu: one interface, two backends.
# --no-translation-cache: viommu-vtd with x-translation-cache=off (every DMA calls
#   viommu_translate; the shim's per-thread cache is off), for comparison.
# --migrate: after the checks the guest keeps re-reading its disk (DMA + remapped MSI-X);
#   the host migrates the VM to a file mid-read, quits it, starts a second QEMU from that
#   file and checks that the guest's reads go on, with the right sha256 and no DMAR fault.
#
# Builds whatever is missing first (build.sh, guest.sh). Run artefacts (serial log, QEMU
# command line, result) go to ${VIOMMU_CACHE:-$HOME/.cache/viommu}/runs/<name>/.
# Exit status: 0 PASS, 1 FAIL, 2 usage/setup error.
set -euo pipefail
LOG_TAG=boot-test
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"

IOMMU=intel-iommu KERNEL=6.12 MODE=lazy CM=0 EIM=1 AW_BITS="" ACCEL=${VIOMMU_ACCEL:-auto}
TIMEOUT=300 SEED=1 DISK_MIB=32 BENCH_COUNT="" MIGRATE=0 TCACHE=1
usage() { sed -n '2,23p' "$0"; exit 2; }
while [ $# -gt 0 ]; do
    case $1 in
        --iommu) IOMMU=$2; shift 2 ;;
        --kernel) KERNEL=$2; shift 2 ;;
        --mode) MODE=$2; shift 2 ;;
        --caching-mode) CM=1; shift ;;
        --no-eim) EIM=0; shift ;;
        --aw-bits) AW_BITS=$2; shift 2 ;;
        --accel) ACCEL=$2; shift 2 ;;
        --timeout) TIMEOUT=$2; shift 2 ;;
        --seed) SEED=$2; shift 2 ;;
        --translate-bench) BENCH_COUNT=$2; shift 2 ;;
        --migrate) MIGRATE=1; shift ;;
        --no-translation-cache) TCACHE=0; shift ;;
        -h|--help) usage ;;
        *) echo "unknown argument: $1" >&2; usage ;;
    esac
done
case $IOMMU in intel-iommu|viommu) ;; *) usage ;; esac
case $KERNEL in 6.12|6.1) ;; *) usage ;; esac
case $MODE in lazy|strict|pt) ;; *) usage ;; esac
case $ACCEL in auto|kvm|tcg) ;; *) usage ;; esac
[ -n "$BENCH_COUNT" ] && [ $MIGRATE = 1 ] && usage
[ $TCACHE = 0 ] && [ $IOMMU != viommu ] && usage
HOLD=""
[ -n "$BENCH_COUNT" ] && HOLD=idle
[ $MIGRATE = 1 ] && HOLD=io
# viommu in pt mode: hold the guest to look at the disk's address space (check 11).
MTREE=0
[ $MODE = pt ] && [ $IOMMU = viommu ] && [ -z "$HOLD" ] && HOLD=idle MTREE=1

# --- what to boot ---------------------------------------------------------------------
t0=$SECONDS
QEMU=$("$HERE/build.sh" | tail -n1)
[ -x "$QEMU" ] || die "build.sh did not produce qemu-system-x86_64"
GUEST=$("$HERE/guest.sh" --kernel "$KERNEL" | tail -n1)
[ -f "$GUEST/vmlinuz" ] || die "guest.sh did not produce a kernel"
QEMU_BUILD_DIR=$(dirname "$QEMU")
SEABIOS=/usr/share/seabios/bios-256k.bin
apt_install seabios python3 coreutils
[ -f "$SEABIOS" ] || die "$SEABIOS missing (Debian package seabios)"
log "prerequisites ready in $((SECONDS - t0)) s"

NAME="$IOMMU-$KERNEL-$MODE"
[ $CM = 1 ] && NAME+=-cm
[ $EIM = 0 ] && NAME+=-noeim
[ -n "$AW_BITS" ] && NAME+=-aw$AW_BITS
[ $TCACHE = 0 ] && NAME+=-nocache
[ -n "$BENCH_COUNT" ] && NAME+=-bench
[ $MIGRATE = 1 ] && NAME+=-migrate
RUN=$CACHE/runs/$NAME
rm -rf "$RUN"; mkdir -p "$RUN"

# Firmware: SeaBIOS from Debian (the +ds source has no blobs), QEMU's own option ROMs
# (linuxboot_dma.bin etc., built from source) from the build tree. No NIC option ROM.
FW_ARGS=(-bios "$SEABIOS" -L "$QEMU_BUILD_DIR/pc-bios/optionrom" -L "$QEMU_BUILD_DIR/pc-bios" -L /usr/share/seabios)

# --- accelerator: KVM only if it can really run an unmodified guest --------------------
# /dev/kvm can exist and open fine yet belong to a paravirtual KVM that cannot run a normal
# kernel, so probe with a real boot of the guest (no IOMMU) and require its first marker.
kvm_usable() {
    [ -c /dev/kvm ] && [ -r /dev/kvm ] && [ -w /dev/kvm ] || { log "kvm: /dev/kvm not usable"; return 1; }
    local cache=$CACHE/kvm-probe boot_id
    boot_id=$(cat /proc/sys/kernel/random/boot_id 2>/dev/null || echo unknown)
    # The verdict is about the host's KVM, not about our QEMU: keep it for this host boot.
    if [ -f "$cache" ] && [ "$(head -n1 "$cache")" = "$boot_id" ]; then
        [ "$(sed -n 2p "$cache")" = yes ]; return
    fi
    local plog=$RUN/kvm-probe.log result=no start=$SECONDS limit=${VIOMMU_KVM_PROBE_SECONDS:-30}
    : >"$plog"
    "$QEMU" -accel kvm -cpu host -machine q35 -m 256 -smp 1 -nodefaults -display none \
        -no-reboot "${FW_ARGS[@]}" -serial "file:$plog" -monitor none \
        -kernel "$GUEST/vmlinuz" -initrd "$GUEST/initrd.img" \
        -append "console=ttyS0 panic=-1 loglevel=4" >"$RUN/kvm-probe.qemu.log" 2>&1 &
    local pid=$!
    while kill -0 "$pid" 2>/dev/null && [ $((SECONDS - start)) -lt "$limit" ]; do
        if grep -q VIOMMU-GUEST-START "$plog"; then result=yes; break; fi
        # A KVM that cannot run the guest says so and pauses the VM: no need to wait.
        grep -qE 'KVM internal error|emulation failure|KVM_[A-Z_]* failed|failed to initialize kvm' \
            "$RUN/kvm-probe.qemu.log" 2>/dev/null && break
        sleep 1
    done
    kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
    log "kvm probe: $result after $((SECONDS - start)) s$([ $result = no ] && echo ": $(grep -m1 -E 'error|fail' "$RUN/kvm-probe.qemu.log" 2>/dev/null || echo "no guest output within ${limit}s")")"
    printf '%s\n%s\n' "$boot_id" "$result" >"$cache"
    [ $result = yes ]
}
if [ "$ACCEL" = auto ]; then
    if kvm_usable; then ACCEL=kvm; else ACCEL=tcg; fi
fi
if [ "$ACCEL" = kvm ]; then
    # split irqchip: the IOAPIC is in QEMU so that its interrupts go through the vIOMMU's
    # interrupt remapping (intel-iommu refuses intremap=on with an in-kernel IOAPIC).
    MACHINE=(-machine q35,kernel-irqchip=split -accel kvm -cpu host)
else
    # TCG: no in-kernel irqchip at all. "max" has x2apic, needed for eim=on/x2apic mode.
    MACHINE=(-machine q35 -accel tcg -cpu max)
fi

# --- the disk: deterministic random content ---------------------------------------------
DISK=$RUN/disk.img
/usr/bin/python3 - "$DISK" "$SEED" "$DISK_MIB" <<'PY'
import hashlib, sys
path, seed, mib = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(path, "wb") as f:
    for i in range(mib):   # 1 MiB blocks: SHAKE-256("viommu-disk/<seed>/<i>")
        f.write(hashlib.shake_256(f"viommu-disk/{seed}/{i}".encode()).digest(1 << 20))
PY
HOST_SHA=$(sha256sum "$DISK" | cut -d' ' -f1)

# --- the vIOMMU ---------------------------------------------------------------------------
onoff() { [ "$1" = 1 ] && echo on || echo off; }
IOMMU_PROPS="intremap=on,eim=$(onoff $EIM),caching-mode=$(onoff $CM)${AW_BITS:+,aw-bits=$AW_BITS}"
case $IOMMU in
    intel-iommu) IOMMU_DEV="intel-iommu,$IOMMU_PROPS" ;;
    viommu) IOMMU_DEV="viommu-vtd,$IOMMU_PROPS" ;;   # our device: same property names
esac
[ $TCACHE = 0 ] && IOMMU_DEV+=",x-translation-cache=off"
STRICT=$([ $MODE = strict ] && echo 1 || echo 0)
PASSTHROUGH=$([ $MODE = pt ] && echo 1 || echo 0)
APPEND="console=ttyS0 loglevel=4 panic=-1 intel_iommu=on iommu.passthrough=$PASSTHROUGH iommu.strict=$STRICT"
[ -n "$HOLD" ] && APPEND+=" viommu.hold=$HOLD"
MONITOR=(-monitor none)
[ -n "$HOLD" ] && MONITOR=(-monitor "unix:$RUN/monitor.sock,server=on,wait=off")

QEMU_CMD=("$QEMU" "${MACHINE[@]}" -m 512 -smp 2 -nodefaults -display none -no-reboot
    -serial "file:$RUN/serial.log" "${MONITOR[@]}" "${FW_ARGS[@]}"
    -device "$IOMMU_DEV"
    -drive "file=$DISK,if=none,id=d0,format=raw"
    -device virtio-blk-pci,id=disk0,drive=d0,iommu_platform=on,disable-legacy=on
    -netdev user,id=n0,restrict=on
    -device e1000e,netdev=n0,romfile=
    -kernel "$GUEST/vmlinuz" -initrd "$GUEST/initrd.img" -append "$APPEND")
printf '%q ' "${QEMU_CMD[@]}" >"$RUN/cmdline"; echo >>"$RUN/cmdline"
log "booting $NAME ($ACCEL, $(cut -d' ' -f3 "$GUEST/kernel-version")), log: $RUN/serial.log"
boot_start=$(date +%s.%N)
set +e
MIGRATION_NOTE=""
if [ -z "$HOLD" ]; then
    timeout --kill-after=10 "$TIMEOUT" "${QEMU_CMD[@]}" >"$RUN/qemu.log" 2>&1
    QEMU_RC=$?
else
    # Held guest: QEMU runs in the background and the host drives it through its monitor.
    timeout --kill-after=10 "$TIMEOUT" "${QEMU_CMD[@]}" >"$RUN/qemu.log" 2>&1 &
    qpid=$!
    if [ -n "$BENCH_COUNT" ]; then
        if wait_for_line "$RUN/serial.log" '^VIOMMU-GUEST-HOLD' $qpid "$TIMEOUT"; then
            hmp "$RUN/monitor.sock" "iommu_translate_bench disk0 $BENCH_COUNT" >"$RUN/translate-bench.txt"
            log "$(grep -h 'ns/call' "$RUN/translate-bench.txt" || echo "translate bench: no figures")"
        fi
        hmp "$RUN/monitor.sock" quit >/dev/null 2>&1
        wait $qpid; QEMU_RC=$?
    elif [ $MTREE = 1 ]; then
        # The guest is done and idle, its devices in identity (pass-through) domains.
        wait_for_line "$RUN/serial.log" '^VIOMMU-GUEST-HOLD' $qpid "$TIMEOUT" &&
            hmp "$RUN/monitor.sock" "info mtree -f" >"$RUN/mtree.txt"
        hmp "$RUN/monitor.sock" quit >/dev/null 2>&1
        wait $qpid; QEMU_RC=$?
    else
        # Migrate while the guest reads its disk, to a file; then resume from it.
        if wait_for_line "$RUN/serial.log" '^VIOMMU-HOLD-SHA256 n=1 ' $qpid "$TIMEOUT"; then
            hmp "$RUN/monitor.sock" "migrate exec:cat>$RUN/migration.bin" >"$RUN/migrate.txt"
            for _ in $(seq 120); do
                hmp "$RUN/monitor.sock" "info migrate" >"$RUN/migrate-info.txt"
                grep -qE 'status: *(completed|failed|cancelled)' "$RUN/migrate-info.txt" && break
                sleep 1
            done
            MIGRATION_NOTE=$(grep -m1 -oE 'status: *[a-z]+' "$RUN/migrate-info.txt")
        fi
        hmp "$RUN/monitor.sock" quit >/dev/null 2>&1
        wait $qpid; QEMU_RC=$?
        if [[ "$MIGRATION_NOTE" == *completed ]]; then
            DEST_CMD=()
            for a in "${QEMU_CMD[@]}"; do
                case $a in
                    "file:$RUN/serial.log") a="file:$RUN/serial-dest.log" ;;
                    "unix:$RUN/monitor.sock,"*) a="unix:$RUN/monitor-dest.sock,server=on,wait=off" ;;
                esac
                DEST_CMD+=("$a")
            done
            DEST_CMD+=(-incoming "exec:cat $RUN/migration.bin")
            printf '%q ' "${DEST_CMD[@]}" >"$RUN/cmdline-dest"; echo >>"$RUN/cmdline-dest"
            log "migrated ($(du -h "$RUN/migration.bin" | cut -f1) stream); resuming from it, log: $RUN/serial-dest.log"
            : >"$RUN/serial-dest.log"
            timeout --kill-after=10 "$TIMEOUT" "${DEST_CMD[@]}" >"$RUN/qemu-dest.log" 2>&1 &
            dpid=$!
            # Two whole-disk reads after the resume: DMA and interrupts through the restored unit.
            wait_for_line "$RUN/serial-dest.log" '^VIOMMU-HOLD-SHA256 ' $dpid "$TIMEOUT" &&
                for _ in $(seq "$TIMEOUT"); do
                    [ "$(tr -d '\r' <"$RUN/serial-dest.log" | grep -c '^VIOMMU-HOLD-SHA256 ')" -ge 2 ] && break
                    kill -0 $dpid 2>/dev/null || break
                    sleep 1
                done
            hmp "$RUN/monitor-dest.sock" quit >/dev/null 2>&1
            wait $dpid || true
        fi
    fi
fi
set -e
BOOT_SECS=$(awk -v a="$boot_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
[ -f "$RUN/serial.log" ] || : >"$RUN/serial.log"

# --- checks ------------------------------------------------------------------------------
# (no errexit from here on: a check that finds nothing must report FAIL, not end the script)
set +e +o pipefail
LOGF=$RUN/serial.txt   # the serial log without its CRs
tr -d '\r' <"$RUN/serial.log" >"$LOGF"
section() { sed -n "/^VIOMMU-BEGIN-$1\$/,/^VIOMMU-END-$1\$/p" "$LOGF"; }
DMESG=$(section DMESG)
INTERRUPTS=$(section INTERRUPTS)
PASS=0 FAIL=0
RESULTS=()
check() {   # check NAME OK(0/1) DETAIL
    if [ "$2" = 1 ]; then RESULTS+=("PASS  $1: $3"); PASS=$((PASS + 1))
    else RESULTS+=("FAIL  $1: $3"); FAIL=$((FAIL + 1)); fi
}
has() { grep -qE "$1" <<<"$2"; }

# 1. The guest ran to the end and QEMU exited by itself.
ok=0; grep -q '^VIOMMU-GUEST-DONE' "$LOGF" && [ $QEMU_RC -eq 0 ] && ok=1
check "guest completed" $ok "VIOMMU-GUEST-DONE $(grep -q '^VIOMMU-GUEST-DONE' "$LOGF" && echo seen || echo missing), qemu exit $QEMU_RC$([ $QEMU_RC = 124 ] && echo " (timeout ${TIMEOUT}s)")"

# 2. Modules loaded.
nfail=$(grep -c '^VIOMMU-INSMOD-FAIL' "$LOGF")
nok=$(grep -c '^VIOMMU-INSMOD-OK' "$LOGF")
nwant=$(grep -c . "$GUEST/modules.order" 2>/dev/null)
check "modules loaded" "$([ "$nfail" = 0 ] && [ "$nok" = "${nwant:-x}" ] && echo 1 || echo 0)" "$nok of ${nwant:-?} insmod ok, $nfail failed"

# 3. DMA remapping on: translating (DMA / DMA-FQ domains), or identity with --mode pt.
line=$(grep -m1 -E 'DMAR: Intel\(R\) Virtualization Technology for Directed I/O' <<<"$DMESG" || true)
want_type=DMA-FQ
[ $MODE = strict ] && want_type=DMA
# Linux forces strict invalidation when the IOMMU reports Caching Mode (virtualized):
# "IOMMU batching disallowed due to virtualization".
[ $CM = 1 ] && want_type=DMA
# iommu.passthrough=1: identity domains, pass-through context entries (ECAP.PT).
[ $MODE = pt ] && want_type=identity
types=$(grep -E '^VIOMMU-PCI .* driver=(virtio-pci|e1000e) ' "$LOGF" | sed -E 's/.*group_type=([^ ]*).*/\1/' | sort -u | tr '\n' ' ')
ndev=$(grep -cE '^VIOMMU-PCI .* driver=(virtio-pci|e1000e) ' "$LOGF" || true)
policy=$(grep -m1 -oE 'DMA domain TLB invalidation policy: [a-z]+ mode' <<<"$DMESG" || true)
ok=0; [ -n "$line" ] && [ "$ndev" -ge 2 ] && [ "$types" = "$want_type " ] && ok=1
detail="$([ -n "$line" ] && echo "DMAR driver up" || echo "no \"DMAR: Intel(R) Virtualization Technology for Directed I/O\"")"
detail+="; $ndev devices (virtio-pci, e1000e) in domains of type ${types:-none}(want $want_type)${policy:+; ${policy#DMA domain }}"
check "DMA remapping" $ok "$detail"

# 4. Interrupt remapping.
ir_mode=$([ $EIM = 1 ] && echo x2apic || echo xapic)
line=$(grep -m1 -E "Enabled IRQ remapping in $ir_mode mode" <<<"$DMESG" || true)
check "IRQ remapping" "$([ -n "$line" ] && echo 1 || echo 0)" "$([ -n "$line" ] && echo "\"${line#*] }\"" || echo "no \"Enabled IRQ remapping in $ir_mode mode\"")"

# 5. virtio and e1000e on MSI/MSI-X through the remapper, with interrupts delivered.
irq_check() {   # irq_check LABEL REGEX
    local lines bad total
    lines=$(grep -E "$2" <<<"$INTERRUPTS" || true)
    if [ -z "$lines" ]; then check "$1 interrupts" 0 "no /proc/interrupts line matches $2"; return; fi
    bad=$(grep -E 'IO-APIC|XT-PIC' <<<"$lines" || true)
    local nmsi; nmsi=$(grep -cE 'PCI-MSI' <<<"$lines" || true)
    total=$(awk -v n="$(nproc_guest)" '{ s = 0; for (i = 2; i <= n + 1; i++) s += $i; t += s } END { print t + 0 }' <<<"$lines")
    local chips; chips=$(awk -v n="$(nproc_guest)" '{ print $(n + 2) }' <<<"$lines" | sed -E 's/-[0-9a-f]{4}:.*//' | sort -u | tr '\n' ' ')
    local ok=0; [ -z "$bad" ] && [ "$nmsi" -eq "$(wc -l <<<"$lines")" ] && [ "$total" -gt 0 ] && ok=1
    check "$1 interrupts" $ok "$(wc -l <<<"$lines") vectors on ${chips% }, $total interrupts$([ -n "$bad" ] && echo ", IO-APIC/XT-PIC lines present")"
}
nproc_guest() { head -n2 <<<"$INTERRUPTS" | sed -n 2p | grep -o 'CPU[0-9]*' | wc -l; }
irq_check virtio 'virtio[0-9]+-'
irq_check e1000e ' eth[0-9]+(-(rx|tx)-[0-9]+)?$'

# 6. No DMAR fault anywhere (DMA or interrupt-remapping faults).
faults=$(grep -E 'DMAR: DRHD: handling fault|DMAR: \[(DMA Read|DMA Write|INTR-REMAP)|DMAR: \[Fault|PTE (Read|Write) access is not set' "$LOGF" | tr -d '\r' || true)
if [ -n "$faults" ]; then
    check "no DMAR faults" 0 "$(wc -l <<<"$faults") fault lines, first: $(head -n1 <<<"$faults")"
elif ! grep -q '^VIOMMU-GUEST-DONE' "$LOGF"; then
    check "no DMAR faults" 0 "none logged, but the guest did not finish"
else
    check "no DMAR faults" 1 "none"
fi

# 7. The disk read through the IOMMU is the disk the host wrote.
guest_sha=$(sed -n 's/^VIOMMU-DISK-SHA256=\([0-9a-f]\{64\}\).*/\1/p' "$LOGF" | head -n1)
check "disk sha256" "$([ "$guest_sha" = "$HOST_SHA" ] && echo 1 || echo 0)" "guest ${guest_sha:-none} vs host $HOST_SHA (${DISK_MIB} MiB)"

# 6b. The same for the migrated VM's log.
if [ $MIGRATE = 1 ]; then
    faults=$(tr -d '\r' <"$RUN/serial-dest.log" 2>/dev/null | grep -E 'DMAR: DRHD: handling fault|DMAR: \[(DMA Read|DMA Write|INTR-REMAP)|DMAR: \[Fault|PTE (Read|Write) access is not set' || true)
    check "no DMAR faults after migration" "$([ -z "$faults" ] && echo 1 || echo 0)" "${faults:-none}"
fi

# 8. The NIC's DMA both ways: a DHCP lease from slirp.
lease=$(grep -m1 '^VIOMMU-NET-LEASE' "$LOGF" | tr -d '\r' || true)
check "e1000e DHCP" "$([ -n "$lease" ] && echo 1 || echo 0)" "${lease:-no lease (DHCP over e1000e failed)}"

# 9. Translate bench: figures came back from the monitor command.
if [ -n "$BENCH_COUNT" ]; then
    fig=$(grep -h 'ns/call' "$RUN/translate-bench.txt" 2>/dev/null | sed 's/^iommu_translate_bench: //')
    check "translate bench" "$([ -n "$fig" ] && echo 1 || echo 0)" "${fig:-no figures from iommu_translate_bench (see $RUN/translate-bench.txt)}"
fi

# 10. Migration: the source's stream completed and the resumed guest read its disk, right.
if [ $MIGRATE = 1 ]; then
    shas=$(tr -d '\r' <"$RUN/serial-dest.log" 2>/dev/null | sed -n 's/^VIOMMU-HOLD-SHA256 n=\([0-9]*\) sha=\([0-9a-f]*\).*/\1 \2/p')
    nread=0 nbad=0
    if [ -n "$shas" ]; then nread=$(grep -c . <<<"$shas"); nbad=$(grep -vc " $HOST_SHA\$" <<<"$shas"); fi
    ok=0; [[ "$MIGRATION_NOTE" == *completed ]] && [ "$nread" -ge 2 ] && [ "$nbad" = 0 ] && ok=1
    check "migration" $ok "source ${MIGRATION_NOTE:-never migrated}; after resume $nread whole-disk reads (n=$(head -n1 <<<"$shas" | cut -d' ' -f1)..), $nbad with a wrong sha256"
fi

# 11. viommu in pt mode: the pass-through disk's DMA goes straight to guest memory (the
# device's x-passthrough-direct alias), not through the translate callback: in the flat
# view of its address space, guest RAM above 1 MiB is pc.ram itself.
if [ $MTREE = 1 ]; then
    ram=$(awk '/^FlatView #/ { block = 0 } /AS "virtio-blk-pci"/ { block = 1 }
               block && /^ *0000000000100000-.*\(prio [0-9]+, ram\): pc\.ram/ { print; exit }' \
        "$RUN/mtree.txt" 2>/dev/null | tr -d '\r')
    detail="no pc.ram at 1 MiB in the flat view of the virtio-blk address space (see $RUN/mtree.txt)"
    [ -n "$ram" ] && detail="virtio-blk address space: $(echo $ram)"
    check "direct DMA" "$([ -n "$ram" ] && echo 1 || echo 0)" "$detail"
fi

{
    echo "== boot-test $NAME: accel=$ACCEL kernel=$(cat "$GUEST/kernel-version") boot ${BOOT_SECS}s"
    echo "   qemu: $QEMU"
    echo "   iommu: -device $IOMMU_DEV; append: $APPEND"
    printf '   %s\n' "${RESULTS[@]}"
    if [ $FAIL -eq 0 ]; then echo "== PASS ($PASS checks) $NAME in ${BOOT_SECS}s"
    else echo "== FAIL ($FAIL of $((PASS + FAIL)) checks failed) $NAME; logs in $RUN"; fi
} | tee "$RUN/result.txt"
if [ $FAIL -ne 0 ]; then
    echo "-- last lines of $RUN/qemu.log:"; tail -n 5 "$RUN/qemu.log"
    echo "-- last lines of $RUN/serial.log:"; tail -n 15 "$LOGF"
    exit 1
fi
rm -f "$DISK"
exit 0
