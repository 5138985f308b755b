/*
 * iommu_translate_bench: an HMP command that times QEMU's IOMMU translate path for one
 * device, whichever x86 vIOMMU is in the machine (QEMU's intel-iommu or viommu-vtd), so
 * the two backends are measured through the same interface by the same code.
 *
 *   (qemu) iommu_translate_bench <id> [count]
 *
 * <id> names a virtio PCI device (-device virtio-blk-pci,id=<id>,iommu_platform=on):
 * the IOVAs timed are its virtqueue 0 descriptor, available and used rings, which the
 * guest driver keeps mapped for as long as it is bound, so no guest cooperation or
 * knowledge of its IOVA allocator is needed and nothing faults. Two figures, each the
 * mean over <count> calls (default 1000000) after one warm-up call per IOVA:
 *
 *   callback   the IOMMU memory region's translate callback alone (what differs
 *              between the backends);
 *   dma-path   address_space_translate() on the device's DMA address space: the flat
 *              view lookup plus the callback plus the lookup in the target address
 *              space, i.e. what QEMU pays per page of a DMA.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/timer.h"
#include "qemu/rcu.h"
#include "monitor/monitor.h"
#include "monitor/hmp-target.h"
#include "qobject/qdict.h"
#include "hw/pci/pci.h"
#include "exec/memory.h"
#include "exec/address-spaces.h"
#include CONFIG_DEVICES
#ifdef CONFIG_VIRTIO_PCI
#include "hw/virtio/virtio-pci.h"
#include "hw/virtio/virtio-bus.h"
#endif

#define BENCH_IOVAS 3

static int bench_iovas(PCIDevice *pdev, hwaddr *iovas, Monitor *mon)
{
#ifdef CONFIG_VIRTIO_PCI
    VirtIOPCIProxy *proxy;
    VirtIODevice *vdev;

    if (!object_dynamic_cast(OBJECT(pdev), TYPE_VIRTIO_PCI)) {
        monitor_printf(mon, "iommu_translate_bench: not a virtio PCI device\n");
        return -1;
    }
    proxy = VIRTIO_PCI(pdev);
    vdev = virtio_bus_get_device(&proxy->bus);
    if (!vdev) {
        monitor_printf(mon, "iommu_translate_bench: no virtio device on the proxy\n");
        return -1;
    }
    iovas[0] = virtio_queue_get_desc_addr(vdev, 0);
    iovas[1] = virtio_queue_get_avail_addr(vdev, 0);
    iovas[2] = virtio_queue_get_used_addr(vdev, 0);
    if (!iovas[0]) {
        monitor_printf(mon, "iommu_translate_bench: virtqueue 0 is not set up\n");
        return -1;
    }
    return 0;
#else
    monitor_printf(mon, "iommu_translate_bench: built without virtio-pci\n");
    return -1;
#endif
}

void hmp_iommu_translate_bench(Monitor *mon, const QDict *qdict)
{
    const char *id = qdict_get_str(qdict, "id");
    int64_t count = qdict_get_try_int(qdict, "count", 1000000);
    PCIDevice *pdev = NULL;
    AddressSpace *as;
    MemoryRegionSection section;
    IOMMUMemoryRegion *iommu_mr;
    IOMMUMemoryRegionClass *imrc;
    hwaddr iovas[BENCH_IOVAS];
    IOMMUTLBEntry first[BENCH_IOVAS];
    int64_t start, callback_ns, path_ns;
    uint64_t sink = 0;
    int i;

    if (count <= 0 || count > (int64_t)1e9) {
        monitor_printf(mon, "iommu_translate_bench: count must be 1..1e9\n");
        return;
    }
    if (pci_qdev_find_device(id, &pdev) < 0) {
        monitor_printf(mon, "iommu_translate_bench: no PCI device '%s'\n", id);
        return;
    }
    if (bench_iovas(pdev, iovas, mon) < 0) {
        return;
    }
    as = pci_device_iommu_address_space(pdev);
    section = memory_region_find(as->root, iovas[0], 1);
    iommu_mr = section.mr ? memory_region_get_iommu(section.mr) : NULL;
    if (!iommu_mr) {
        monitor_printf(mon, "iommu_translate_bench: '%s' is not behind an enabled "
                       "IOMMU (DMA remapping off?)\n", id);
        if (section.mr) {
            memory_region_unref(section.mr);
        }
        return;
    }
    imrc = IOMMU_MEMORY_REGION_GET_CLASS(iommu_mr);

    for (i = 0; i < BENCH_IOVAS; i++) {
        first[i] = imrc->translate(iommu_mr, iovas[i], IOMMU_RO, 0);
        if (!(first[i].perm & IOMMU_RO)) {
            monitor_printf(mon, "iommu_translate_bench: iova 0x%" PRIx64
                           " is not mapped readable\n", (uint64_t)iovas[i]);
            memory_region_unref(section.mr);
            return;
        }
    }

    start = get_clock();
    for (int64_t n = 0; n < count; n++) {
        IOMMUTLBEntry e = imrc->translate(iommu_mr, iovas[n % BENCH_IOVAS], IOMMU_RO, 0);
        sink += e.translated_addr;
    }
    callback_ns = get_clock() - start;

    start = get_clock();
    WITH_RCU_READ_LOCK_GUARD() {
        for (int64_t n = 0; n < count; n++) {
            hwaddr xlat, len = 1;
            MemoryRegion *mr = address_space_translate(as, iovas[n % BENCH_IOVAS], &xlat,
                                                       &len, false,
                                                       MEMTXATTRS_UNSPECIFIED);
            sink += xlat + (uintptr_t)mr;
        }
    }
    path_ns = get_clock() - start;
    memory_region_unref(section.mr);

    monitor_printf(mon, "iommu_translate_bench: device %s, iommu region %s\n", id,
                   memory_region_name(MEMORY_REGION(iommu_mr)));
    for (i = 0; i < BENCH_IOVAS; i++) {
        monitor_printf(mon, "iommu_translate_bench: iova 0x%" PRIx64 " -> 0x%" PRIx64
                       " mask 0x%" PRIx64 " perm %d\n", (uint64_t)iovas[i],
                       (uint64_t)first[i].translated_addr, (uint64_t)first[i].addr_mask,
                       first[i].perm);
    }
    monitor_printf(mon, "iommu_translate_bench: calls %" PRId64 " callback %.2f ns/call"
                   " dma-path %.2f ns/call (checksum %" PRIx64 ")\n", count,
                   (double)callback_ns / count, (double)path_ns / count, sink);
}
