#!/usr/bin/env bash
# Build the test guest(s): a Debian kernel (not installed: apt-get download + dpkg-deb -x)
# and a busybox initramfs whose /init loads the virtio/e1000e modules, reports what the
# IOMMU did, hashes /dev/vda and powers off (or, when asked, holds for the host).
#
#   ffi/qemu/guest.sh [--kernel 6.12|6.1]...     (default: both)
#
# Kernels: 6.12 = the target of bookworm-backports' linux-image-amd64 metapackage,
#          6.1  = the target of bookworm's (bookworm-security's when newer) linux-image-amd64.
# Output, cached under ${VIOMMU_CACHE:-$HOME/.cache/viommu}/guest/<6.12|6.1>/:
#   vmlinuz, initrd.img, kernel-version, and .stamp (rebuilt when the package version,
#   this script or busybox changes). One line per kernel on stdout: the directory.
set -euo pipefail
LOG_TAG=guest
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

KERNELS=()
while [ $# -gt 0 ]; do
    case $1 in
        --kernel) KERNELS+=("$2"); shift 2 ;;
        --kernel=*) KERNELS+=("${1#*=}"); shift ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) die "unknown argument: $1" ;;
    esac
done
[ ${#KERNELS[@]} -gt 0 ] || KERNELS=(6.12 6.1)

GDIR=$CACHE/guest
mkdir -p "$GDIR/dl"
exec 8>"$CACHE/guest.lock"
flock 8

apt_install dpkg-dev kmod cpio gzip xz-utils zstd
# Binary packages of bookworm-backports (Linux 6.12). Backports are NotAutomatic (pin 100):
# having the index changes nothing that apt would install or upgrade by itself.
if write_apt_source /etc/apt/sources.list.d/viommu-bpo.sources deb; then APT_UPDATED=0; apt_update; fi

# metapackage_target SERIES SUITE_REGEX -> "pkg version" of the newest linux-image-amd64 of
# that series whose archive line matches SUITE_REGEX, resolved to the image it depends on.
metapackage_target() {
    local series=$1 suites=$2 ver dep
    ver=$(apt-cache madison linux-image-amd64 2>/dev/null |
        awk -F'|' -v s="$series." -v r="$suites" '{ gsub(/ /, "", $2) } index($2, s) == 1 && $3 ~ r { print $2 }' |
        sort -V | tail -n1)
    [ -n "$ver" ] || return 1
    dep=$(apt-cache show "linux-image-amd64=$ver" | awk '/^Depends:/ { sub(/^Depends: */, ""); print; exit }')
    # "linux-image-6.12.95+deb12-amd64 (= 6.12.95-1~bpo12+1)"
    echo "$dep" | sed -n 's/^\(linux-image-[^ ,]*\) *(= *\([^)]*\)).*/\1 \2/p'
}

resolve_kernel() {
    case $1 in
        6.12) metapackage_target 6.12 'bookworm-backports/' ;;
        6.1) metapackage_target 6.1 'bookworm(-security|-updates)?/' ;;
        *) die "unsupported kernel '$1' (6.12 or 6.1)" ;;
    esac
}

BUSYBOX_PKG=busybox-static
busybox_path() {
    local ver deb
    ver=$(apt-cache policy "$BUSYBOX_PKG" | awk '/Candidate:/ { print $2 }')
    [ -n "$ver" ] && [ "$ver" != "(none)" ] || { APT_UPDATED=0; apt_update; ver=$(apt-cache policy "$BUSYBOX_PKG" | awk '/Candidate:/ { print $2 }'); }
    deb=$(ls "$GDIR"/dl/"${BUSYBOX_PKG}"_"${ver#*:}"_*.deb 2>/dev/null | head -n1 || true)
    if [ -z "$deb" ]; then
        (cd "$GDIR/dl" && apt-get download "$BUSYBOX_PKG=$ver" >/dev/null 2>&1) || die "apt-get download $BUSYBOX_PKG=$ver failed"
        deb=$(ls "$GDIR"/dl/"${BUSYBOX_PKG}"_*.deb | sort -V | tail -n1)
    fi
    rm -rf "$GDIR/busybox"; mkdir -p "$GDIR/busybox"
    dpkg-deb -x "$deb" "$GDIR/busybox"
    echo "$GDIR/busybox/bin/busybox"
}

# The guest's /init. Markers are parsed by boot-test.sh.
write_init() {
    cat >"$1" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /proc /sys /dev /tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
echo "VIOMMU-GUEST-START kernel=$(uname -r)"
echo "VIOMMU-CMDLINE $(cat /proc/cmdline)"
for m in $(cat /modules.order); do
    insmod "/modules/$m" && echo "VIOMMU-INSMOD-OK $m" || echo "VIOMMU-INSMOD-FAIL $m"
done
# virtio-blk and e1000e probe synchronously on insmod, but be patient under TCG.
i=0; while [ ! -b /dev/vda ] && [ $i -lt 30 ]; do sleep 1; i=$((i + 1)); done
NETIF=
for n in /sys/class/net/*; do
    [ "$(basename "$(readlink "$n/device/driver" 2>/dev/null)")" = e1000e ] && NETIF=$(basename "$n")
done
# e1000e requests its MSI-X vectors when the interface is opened; a DHCP exchange with
# QEMU's slirp makes the NIC DMA both ways (TX descriptors/buffers, RX buffers).
if [ -n "$NETIF" ]; then
    ip link set lo up
    ip link set "$NETIF" up
    printf '#!/bin/sh\n[ "$1" = bound ] && echo "VIOMMU-NET-LEASE if=$interface ip=$ip"\nexit 0\n' >/tmp/udhcpc.sh
    chmod +x /tmp/udhcpc.sh
    udhcpc -i "$NETIF" -n -q -f -t 10 -T 2 -s /tmp/udhcpc.sh 2>&1 | grep VIOMMU- || echo "VIOMMU-NET-NOLEASE if=$NETIF"
else
    echo "VIOMMU-NET-NOIF"
fi
if [ -b /dev/vda ]; then
    echo "VIOMMU-DISK-SIZE=$(cat /sys/block/vda/size)"
    echo "VIOMMU-DISK-SHA256=$(sha256sum /dev/vda | cut -d' ' -f1)"
else
    echo "VIOMMU-DISK-MISSING"
fi
# The kernel's text symbols, only when asked (ffi/qemu/bench.sh --profile boots with nokaslr
# and viommu.kallsyms=1 to name the guest code in a host-side perf profile of TCG).
case " $(cat /proc/cmdline) " in *" viommu.kallsyms=1 "*)
    echo "VIOMMU-BEGIN-KALLSYMS"
    grep -i ' t ' /proc/kallsyms
    echo "VIOMMU-END-KALLSYMS"
    ;;
esac
# Throughput of whole-disk reads, only when asked (ffi/qemu/bench.sh passes viommu.bench=1):
# O_DIRECT if this dd can, else after dropping the page cache. The clock: the "now at N
# nsecs" of /proc/timer_list (CLOCK_MONOTONIC in ns; /proc/uptime only counts 10 ms).
case " $(cat /proc/cmdline) " in *" viommu.bench=1 "*)
    size=$(($(cat /sys/block/vda/size) * 512))
    # Three timed reads per block size (the host takes the median and the fastest over its
    # boots); at 1 MiB one timed read is 16 passes over the disk, since one pass (64
    # requests) takes well under a tenth of a second.
    for bs in 4096 1048576; do
        passes=1
        [ $bs = 1048576 ] && passes=16
        mode=direct
        dd if=/dev/vda of=/dev/null bs=$bs count=1 iflag=direct 2>/dev/null || mode=cached
        for rep in 1 2 3; do
            echo 3 >/proc/sys/vm/drop_caches 2>/dev/null
            t0=$(awk '/^now at/ { print $3; exit }' /proc/timer_list)
            s0=$(head -n1 /proc/stat)
            pass=0
            while [ $pass -lt $passes ]; do
                pass=$((pass + 1))
                if [ $mode = direct ]; then
                    dd if=/dev/vda of=/dev/null bs=$bs count=$((size / bs)) iflag=direct 2>/dev/null
                else
                    dd if=/dev/vda of=/dev/null bs=$bs count=$((size / bs)) 2>/dev/null
                fi
            done
            t1=$(awk '/^now at/ { print $3; exit }' /proc/timer_list)
            s1=$(head -n1 /proc/stat)
            echo "VIOMMU-BENCH-DD bs=$bs mode=$mode rep=$rep bytes=$((size * passes)) seconds=$(awk "BEGIN { printf \"%.4f\", ($t1 - $t0) / 1e9 }")"
            # Where the guest's CPUs spent the read (ticks of both vCPUs, /proc/stat order).
            echo "$s0 $s1" | awk -v bs=$bs -v rep=$rep '{ n = NF / 2   # field k of the second line is $(n + k)
                printf "VIOMMU-BENCH-CPU bs=%s rep=%s user=%d system=%d idle=%d iowait=%d irq=%d softirq=%d\n", bs, rep,
                    $(n+2) - $2, $(n+4) - $4, $(n+5) - $5, $(n+6) - $6, $(n+7) - $7, $(n+8) - $8 }'
        done
    done
    ;;
esac
for d in /sys/bus/pci/devices/*; do
    drv=$(basename "$(readlink "$d/driver" 2>/dev/null)" 2>/dev/null)
    echo "VIOMMU-PCI $(basename "$d") id=$(cat "$d/vendor"):$(cat "$d/device") driver=${drv:--} group=$(basename "$(readlink "$d/iommu_group" 2>/dev/null)" 2>/dev/null) group_type=$(cat "$d/iommu_group/type" 2>/dev/null || echo none)"
done
echo "VIOMMU-BEGIN-DMESG-IOMMU"
dmesg | grep -iE 'DMAR|IOMMU|remapping|x2apic'
echo "VIOMMU-END-DMESG-IOMMU"
echo "VIOMMU-BEGIN-INTERRUPTS"
cat /proc/interrupts
echo "VIOMMU-END-INTERRUPTS"
echo "VIOMMU-BEGIN-DMESG"
dmesg
echo "VIOMMU-END-DMESG"
echo "VIOMMU-GUEST-DONE"
# Held for the host instead of powering off, only when asked (boot-test.sh --translate-bench,
# --migrate): viommu.hold=idle sleeps (the host times translations meanwhile); viommu.hold=io
# re-reads the whole disk, bypassing the page cache, in a loop, so that DMA and its
# interrupts keep flowing while the host migrates the VM. The host ends it with `quit`.
case " $(cat /proc/cmdline) " in
*" viommu.hold=idle "*)
    echo "VIOMMU-GUEST-HOLD idle"
    while :; do sleep 60; done ;;
*" viommu.hold=io "*)
    echo "VIOMMU-GUEST-HOLD io"
    n=0
    while :; do
        n=$((n + 1))
        echo 3 >/proc/sys/vm/drop_caches
        echo "VIOMMU-HOLD-SHA256 n=$n sha=$(sha256sum /dev/vda | cut -d' ' -f1)"
        sleep 1
    done ;;
esac
sync
poweroff -f
INIT
    chmod +x "$1"
}

# module_order MODDIR MOD... : the .ko paths (relative to MODDIR) in load order, deps first.
module_order() {
    local moddir=$1; shift
    awk -v want="$*" '
        { sub(/:$/, "", $1); key = $1; n = split(key, p, "/"); name = p[n]; sub(/\.ko(\..*)?$/, "", name)
          gsub(/-/, "_", name); path[name] = key; deps[key] = ""
          for (i = 2; i <= NF; i++) deps[key] = deps[key] " " $i }
        function visit(k,   d, m, i) {
            if (k in seen) return; seen[k] = 1
            m = split(deps[k], d, " ")
            for (i = m; i >= 1; i--) visit(d[i])   # modules.dep lists the deepest dep last
            print k
        }
        END { m = split(want, w, " ")
              for (i = 1; i <= m; i++) { if (!(w[i] in path)) { print "MISSING " w[i] > "/dev/stderr"; exit 1 }
                                         visit(path[w[i]]) } }' "$moddir/modules.dep"
}

# Modules the boot needs, when the kernel builds them as modules (6.1: virtio is =m;
# 6.12: virtio_pci is =y). Built-ins are skipped.
WANT_MODULES=(virtio_pci virtio_blk e1000e)

build_guest() {
    local series=$1 pkg pver out deb kver stamp_now
    read -r pkg pver < <(resolve_kernel "$series") || true
    [ -n "${pkg:-}" ] || die "no linux-image-amd64 for $series in the apt index"
    out=$GDIR/$series
    stamp_now=$(printf '%s\n' "$pkg=$pver" "$(sha256sum "$0" | cut -d' ' -f1)" \
        "$(apt-cache policy "$BUSYBOX_PKG" | awk '/Candidate:/ { print $2 }')" | sha256sum | cut -d' ' -f1)
    if [ -f "$out/vmlinuz" ] && [ -f "$out/initrd.img" ] && [ "$(cat "$out/.stamp" 2>/dev/null)" = "$stamp_now" ]; then
        log "$series: up to date ($pkg $pver)"
        echo "$out"; return 0
    fi
    deb=$(ls "$GDIR"/dl/"${pkg}"_"${pver#*:}"_amd64.deb 2>/dev/null || true)
    if [ -z "$deb" ]; then
        log "$series: apt-get download $pkg=$pver"
        (cd "$GDIR/dl" && apt-get download "$pkg=$pver" >/dev/null 2>&1) || die "apt-get download $pkg=$pver failed"
        deb=$(ls "$GDIR"/dl/"${pkg}"_*_amd64.deb | sort -V | tail -n1)
        # keep only the current package of this kernel series
        find "$GDIR/dl" -name "linux-image-${series}[.-]*_amd64.deb" ! -name "${deb##*/}" -delete 2>/dev/null || true
    fi
    local work=$GDIR/$series.tmp
    rm -rf "$work"; mkdir -p "$work/root" "$work/initramfs"/{bin,modules,proc,sys,dev,tmp}
    dpkg-deb -x "$deb" "$work/root"
    kver=$(ls "$work/root/lib/modules")
    [ -n "$kver" ] && [ -f "$work/root/boot/vmlinuz-$kver" ] || die "$deb: no kernel inside"
    depmod -b "$work/root" "$kver"
    local moddir=$work/root/lib/modules/$kver mods=() m cfg
    cfg=$work/root/boot/config-$kver
    for m in "${WANT_MODULES[@]}"; do
        if grep -qiE "^CONFIG_${m}=y" "$cfg" || grep -q "/${m}\.ko" "$moddir/modules.builtin"; then
            log "$series: $m is built in"
        else
            mods+=("$m")
        fi
    done
    : >"$work/initramfs/modules.order"
    if [ ${#mods[@]} -gt 0 ]; then
        local rel base
        while read -r rel; do
            base=${rel##*/}
            case $base in
                *.ko.xz) xz -dc "$moddir/$rel" >"$work/initramfs/modules/${base%.xz}"; base=${base%.xz} ;;
                *.ko.zst) zstd -qdc "$moddir/$rel" >"$work/initramfs/modules/${base%.zst}"; base=${base%.zst} ;;
                *.ko.gz) gzip -dc "$moddir/$rel" >"$work/initramfs/modules/${base%.gz}"; base=${base%.gz} ;;
                *) cp "$moddir/$rel" "$work/initramfs/modules/$base" ;;
            esac
            echo "$base" >>"$work/initramfs/modules.order"
        done < <(module_order "$moddir" "${mods[@]}")
    fi
    log "$series: $kver, modules: $(tr '\n' ' ' <"$work/initramfs/modules.order")"
    cp "$BUSYBOX" "$work/initramfs/bin/busybox"
    write_init "$work/initramfs/init"
    (cd "$work/initramfs" && find . -print0 | LC_ALL=C sort -z |
        cpio --null -o -H newc --reproducible --owner=0:0 --quiet | gzip -9n) >"$work/initrd.img"
    rm -rf "$out"; mkdir -p "$out"
    cp "$work/root/boot/vmlinuz-$kver" "$out/vmlinuz"
    cp "$work/root/boot/config-$kver" "$out/config"
    cp "$work/initramfs/modules.order" "$out/modules.order"
    mv "$work/initrd.img" "$out/initrd.img"
    echo "$pkg $pver $kver" >"$out/kernel-version"
    rm -rf "$work"
    echo "$stamp_now" >"$out/.stamp"
    log "$series: $out ($(du -h "$out/initrd.img" | cut -f1) initramfs)"
    echo "$out"
}

BUSYBOX=$(busybox_path)
for k in "${KERNELS[@]}"; do build_guest "$k"; done
