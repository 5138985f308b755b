#!/usr/bin/env python3
"""Where a TCG guest's disk reads spend the host's CPU: a host-side perf profile of QEMU
(recorded with -perfmap, so TCG's translated code is named by guest address) attributed to
the guest kernel's functions (its /proc/kallsyms, booted with nokaslr) and to QEMU's.

    profile.py PERF_DATA KALLSYMS [TOP]

Used by `ffi/qemu/bench.sh --profile CONFIG`. Only the samples of the reads count: the
window runs from the first to the last sample of guest code in the kernel's O_DIRECT block
read path (the guest's other disk reads, the hash at boot, go through the page cache).
Samples in QEMU's helpers (the TCG runtime: softmmu, TB lookup) are not attributable to a
guest function and are reported by host symbol.
"""

import bisect
import collections
import re
import subprocess
import sys

# The guest's IOMMU work: the DMA API over an IOMMU, IOVA allocation, the intel-iommu
# driver's page tables, invalidations and flush queue.
GUEST_IOMMU = re.compile(
    r"^(__)?(iommu|intel_iommu|domain_|dma_pte|pfn_to_dma_pte|alloc_iova|free_iova|iova|qi_|"
    r"cache_tag|fq_|dmar|dma_map|dma_unmap|__domain_mapping|iommu_dma)")
# The guest's O_DIRECT read path, which bounds the window.
WINDOW = re.compile(r"^_*blkdev_direct_IO")
# Host symbols by the part of QEMU they belong to.
HOST = [
    ("host kernel (syscalls, scheduling, futexes)", re.compile(r"^\[host kernel\]")),
    ("viommu library", re.compile(r"viommu::|^viommu_(?!vtd)")),
    ("viommu-vtd device (shim)", re.compile(r"^viommu_vtd|^vvtd_")),
    ("intel-iommu device", re.compile(r"^vtd_")),
    ("QEMU memory API (translate, map)", re.compile(r"^(address_space|flatview|memory_region|iommu_)")),
    ("TCG runtime (TB lookup, softmmu)", re.compile(
        r"^(helper_|tb_|qht_|cpu_|tlb_|probe_access|victim_tlb|mmu_|do_ld|do_st|get_page_addr)")),
    ("TCG translator", re.compile(r"^(tcg_|liveness|la_|i386_tr|x86_|gen_|disas_)")),
]


def load_kallsyms(path):
    syms = []
    for line in open(path):
        f = line.split()
        if len(f) < 3 or f[2].startswith("__pfx_"):
            continue
        syms.append((int(f[0], 16), f[2] + (" " + f[3] if len(f) > 3 else "")))
    syms.sort()
    return [a for a, _ in syms], [n for _, n in syms]


def main():
    data, kallsyms = sys.argv[1], sys.argv[2]
    top = int(sys.argv[3]) if len(sys.argv) > 3 else 25
    addrs, names = load_kallsyms(kallsyms)
    script = subprocess.run(["perf", "script", "-i", data, "-F", "tid,time,ip,sym,dso"],
                            capture_output=True, text=True, check=True).stdout
    samples = []  # (time, tid, kind, name)
    for line in script.splitlines():
        m = re.match(r"\s*(\d+)\s+([\d.]+):\s+[0-9a-f]+\s+(.*)$", line)
        if not m:
            continue
        tid, t, rest = int(m.group(1)), float(m.group(2)), m.group(3)
        g = re.search(r"guest-0x([0-9a-f]+)", rest)
        if g:
            pc = int(g.group(1), 16)
            i = bisect.bisect_right(addrs, pc) - 1
            name = names[i] if pc >= 0xFFFF800000000000 and i >= 0 else "(guest user space)"
            samples.append((t, tid, "guest", name))
        else:
            dso = re.search(r"\(([^()]*)\)\s*$", rest)
            sym = re.sub(r"\s*\([^()]*\)\s*$", "", rest).strip() or "(unknown)"
            if dso and "kernel" in dso.group(1):
                sym = "[host kernel] " + sym
            samples.append((t, tid, "host", sym))
    marks = [t for t, _, kind, name in samples if kind == "guest" and WINDOW.match(name)]
    if not marks:
        sys.exit("profile.py: no samples in the guest's O_DIRECT read path")
    t0, t1 = min(marks), max(marks)
    window = [s for s in samples if t0 <= s[0] <= t1]
    total = len(window)
    print(f"window {t1 - t0:.2f} s of O_DIRECT reads: {total} samples "
          f"({total / (t1 - t0) / 999:.2f} host CPUs busy on average at 999 Hz)")

    def pct(n):
        return f"{n:7d} {100 * n / total:6.2f}%"

    threads = collections.Counter(tid for _, tid, _, _ in window)
    print("\nby QEMU thread (the vCPUs run guest code; the main loop runs virtio-blk and DMA):")
    for tid, n in threads.most_common():
        print(f"  {pct(n)}  thread {tid}")

    guest = collections.Counter(name for _, _, kind, name in window if kind == "guest")
    host = collections.Counter(name for _, _, kind, name in window if kind == "host")
    iommu = sum(n for name, n in guest.items() if GUEST_IOMMU.match(name))
    gsum = sum(guest.values())
    print(f"\nguest code (TCG-translated): {pct(gsum)}")
    print(f"  of which the guest's IOMMU driver and DMA API: {pct(iommu)} "
          f"({100 * iommu / max(gsum, 1):.1f}% of guest code)")
    cats = collections.Counter()
    for name, n in host.items():
        for cat, rx in HOST:
            if rx.search(name):
                cats[cat] += n
                break
        else:
            cats["other host (QEMU devices and main loop, libc, glib)"] += n
    print("host code:")
    for cat, n in cats.most_common():
        print(f"  {pct(n)}  {cat}")

    print(f"\ntop guest functions (IOMMU driver marked *):")
    for name, n in guest.most_common(top):
        print(f"  {pct(n)} {'*' if GUEST_IOMMU.match(name) else ' '} {name}")
    print(f"\ntop host functions:")
    for name, n in host.most_common(top):
        print(f"  {pct(n)}   {name}")


if __name__ == "__main__":
    main()
