/*
 * viommu-vtd: QEMU's x86 vIOMMU, with the Intel VT-d remapping hardware emulated by
 * the viommu engine (libviommu, a Rust library with a C ABI).
 *
 * This file is a thin shim: it forwards the register window to viommu_mmio_read/write,
 * asks viommu_translate for every DMA of every device behind the unit, routes interrupt
 * requests (MSI writes to 0xFEEx_xxxx and the IOAPIC's messages) through
 * viommu_remap_interrupt, turns viommu's invalidation notices into IOMMU notifier
 * events, and saves/restores the engine's state for migration. Every status viommu
 * returns is checked. A device whose DMA viommu does not translate (translation off, or
 * a pass-through context) gets guest memory directly, as with QEMU's intel-iommu.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/error-report.h"
#include "qemu/log.h"
#include "qemu/main-loop.h"
#include "qapi/error.h"
#include "hw/sysbus.h"
#include "hw/pci/pci.h"
#include "hw/pci/pci_bus.h"
#include "hw/qdev-properties.h"
#include "hw/i386/pc.h"
#include "hw/i386/x86-iommu.h"
#include "hw/i386/intel_iommu.h"
#include "hw/i386/viommu-vtd.h"
#include "hw/pci-host/q35.h"
#include "hw/i386/apic_internal.h"
#include "hw/acpi/aml-build.h"
#include "acpi-common.h"
#include "system/kvm.h"
#include "system/dma.h"
#include "exec/address-spaces.h"
#include "migration/vmstate.h"

#include "viommu.h"

#define VIOMMU_VTD_REG_SIZE 0x1000
#define VIOMMU_VTD_IR_BASE 0xfee00000ULL
#define VIOMMU_VTD_IR_SIZE 0x100000ULL
/* The IOAPIC's requester id: the DMAR IOAPIC scope (bus 0xff, devfn 0). */
#define VIOMMU_VTD_IOAPIC_SID \
    ((Q35_PSEUDO_BUS_PLATFORM << 8) | Q35_PSEUDO_DEVFN_IOAPIC)
/* Pages a caching-mode re-walk may report for one invalidation. */
#define VIOMMU_VTD_NOTIFY_BUDGET (1ULL << 20)

OBJECT_DECLARE_SIMPLE_TYPE(ViommuVtdState, VIOMMU_VTD_DEVICE)

typedef struct ViommuVtdAddressSpace {
    PCIBus *bus;
    uint8_t devfn;
    /* The requester id when bus is a root bus, whose number never changes. */
    bool on_root_bus;
    uint16_t root_bus_sid;
    ViommuVtdState *unit;
    MemoryRegion root;
    IOMMUMemoryRegion iommu;
    /*
     * Guest memory below 2^aw-bits, over the IOMMU region, enabled while viommu says the
     * device's DMA is untranslated or passed through (viommu_vtd_update_direct).
     */
    MemoryRegion direct;
    MemoryRegion ir_alias;
    AddressSpace as;
    IOMMUNotifierFlag notifier_flags;
    bool map_registered;
    uint64_t map_notifier_id;
    QLIST_ENTRY(ViommuVtdAddressSpace) next_with_notifiers;
} ViommuVtdAddressSpace;

struct ViommuVtdState {
    X86IOMMUState parent_obj;

    /* Properties (intremap, device-iotlb and pt come from x86-iommu). */
    OnOffAuto eim;
    bool caching_mode;
    uint8_t aw_bits;
    bool translation_cache;
    bool passthrough_direct;

    viommu_config config;
    viommu_unit *unit;
    /* The unit's translation generation (NULL: x-translation-cache=off). */
    const uint64_t *generation;
    MemoryRegion csrmem;
    MemoryRegion mr_ir;
    GHashTable *address_spaces;
    QLIST_HEAD(, ViommuVtdAddressSpace) with_notifiers;
    /* A context-cache invalidation (or SRTP, TE) happened: re-ask which devices pass through. */
    bool contexts_changed;

    /* Migration: the engine's state blob. */
    uint32_t migration_len;
    uint8_t *migration_blob;
};

static void viommu_vtd_check(const char *what, viommu_status status)
{
    if (status != VIOMMU_STATUS_OK) {
        qemu_log_mask(LOG_GUEST_ERROR, "viommu-vtd: %s: %s\n", what,
                      viommu_status_str(status));
    }
}

/* ---- host callbacks: guest memory, MSIs, invalidation notices ---- */

static int viommu_vtd_dma_read(void *opaque, uint64_t gpa, void *buf, size_t len)
{
    return address_space_read(&address_space_memory, gpa,
                              MEMTXATTRS_UNSPECIFIED, buf, len) == MEMTX_OK ? 0 : -1;
}

static int viommu_vtd_dma_write(void *opaque, uint64_t gpa, const void *buf,
                                size_t len)
{
    return address_space_write(&address_space_memory, gpa,
                               MEMTXATTRS_UNSPECIFIED, buf, len) == MEMTX_OK ? 0 : -1;
}

static void viommu_vtd_msi_raise(void *opaque, uint64_t address, uint32_t data)
{
    MSIMessage msi = { .address = address, .data = data };

    apic_get_class(NULL)->send_msi(&msi);
}

static void viommu_vtd_log(void *opaque, viommu_log_level level,
                           const char *message)
{
    qemu_log_mask(LOG_GUEST_ERROR, "viommu-vtd: %s\n", message);
}

/* Send an UNMAP of [iova, iova + 2^shift) to every address space that listens. */
static void viommu_vtd_notify_unmap(ViommuVtdState *s, uint64_t iova,
                                    unsigned shift)
{
    ViommuVtdAddressSpace *vas;
    uint64_t mask = shift >= 64 ? UINT64_MAX : (1ULL << shift) - 1;

    QLIST_FOREACH(vas, &s->with_notifiers, next_with_notifiers) {
        IOMMUTLBEvent event = {
            .type = IOMMU_NOTIFIER_UNMAP,
            .entry = {
                .target_as = &address_space_memory,
                .iova = iova & ~mask,
                .translated_addr = 0,
                .addr_mask = mask,
                .perm = IOMMU_NONE,
            },
        };
        if (vas->notifier_flags & IOMMU_NOTIFIER_UNMAP) {
            memory_region_notify_iommu(&vas->iommu, 0, event);
        }
    }
}

static void viommu_vtd_invalidated(void *opaque,
                                   const viommu_invalidation *event)
{
    ViommuVtdState *s = opaque;
    X86IOMMUState *x86 = X86_IOMMU_DEVICE(s);

    switch (event->kind) {
    case VIOMMU_INVALIDATION_KIND_INTERRUPT_ENTRIES_GLOBAL:
        x86_iommu_iec_notify_all(x86, true, 0, 0);
        break;
    case VIOMMU_INVALIDATION_KIND_INTERRUPT_ENTRIES:
        x86_iommu_iec_notify_all(x86, false, event->index, event->index_mask);
        break;
    case VIOMMU_INVALIDATION_KIND_IOTLB_PAGES:
        viommu_vtd_notify_unmap(s, event->address, 12 + event->address_mask);
        break;
    case VIOMMU_INVALIDATION_KIND_CONTEXT_GLOBAL:
    case VIOMMU_INVALIDATION_KIND_CONTEXT_DOMAIN:
    case VIOMMU_INVALIDATION_KIND_CONTEXT_DEVICE:
        s->contexts_changed = true;
        /* fall through */
    case VIOMMU_INVALIDATION_KIND_IOTLB_GLOBAL:
    case VIOMMU_INVALIDATION_KIND_IOTLB_DOMAIN:
        viommu_vtd_notify_unmap(s, 0, s->aw_bits);
        break;
    default:
        break;
    }
}

/* ---- the register window ---- */

static uint64_t viommu_vtd_mmio_read(void *opaque, hwaddr addr, unsigned size)
{
    ViommuVtdState *s = opaque;
    uint64_t value = 0;

    viommu_vtd_check("mmio read",
                     viommu_mmio_read(s->unit, addr, size, &value));
    return value;
}

static void viommu_vtd_update_direct(ViommuVtdState *s);

static void viommu_vtd_mmio_write(void *opaque, hwaddr addr, uint64_t value,
                                  unsigned size)
{
    ViommuVtdState *s = opaque;

    viommu_vtd_check("mmio write", viommu_mmio_write(s->unit, addr, size, value));
    /* Not from the invalidated callback: viommu is still inside the write there. */
    if (s->contexts_changed) {
        viommu_vtd_update_direct(s);
    }
}

static const MemoryRegionOps viommu_vtd_mmio_ops = {
    .read = viommu_vtd_mmio_read,
    .write = viommu_vtd_mmio_write,
    .endianness = DEVICE_LITTLE_ENDIAN,
    .impl = { .min_access_size = 4, .max_access_size = 8 },
    .valid = { .min_access_size = 4, .max_access_size = 8 },
};

/* ---- interrupt remapping ---- */

static int viommu_vtd_remap(ViommuVtdState *s, MSIMessage *src, MSIMessage *dst,
                            uint16_t sid)
{
    viommu_interrupt_request request = {
        .address = src->address,
        .data = src->data,
        .source_id = sid,
    };
    viommu_interrupt out;
    viommu_status status = viommu_remap_interrupt(s->unit, &request, &out);

    if (status != VIOMMU_STATUS_OK) {
        if (status != VIOMMU_STATUS_FAULT) {
            viommu_vtd_check("remap interrupt", status);
        }
        return -EINVAL;
    }
    switch (out.kind) {
    case VIOMMU_INTERRUPT_KIND_PASS_THROUGH:
    case VIOMMU_INTERRUPT_KIND_REMAPPED:
        dst->address = out.msi_address;
        dst->data = out.msi_data;
        return 0;
    default:
        /* Posted interrupts are not advertised to QEMU guests. */
        return -EINVAL;
    }
}

static int viommu_vtd_int_remap(X86IOMMUState *iommu, MSIMessage *src,
                                MSIMessage *dst, uint16_t sid)
{
    ViommuVtdState *s = VIOMMU_VTD_DEVICE(iommu);

    if (sid == X86_IOMMU_SID_INVALID) {
        sid = VIOMMU_VTD_IOAPIC_SID;
    }
    return viommu_vtd_remap(s, src, dst, sid);
}

static MemTxResult viommu_vtd_ir_read(void *opaque, hwaddr addr, uint64_t *data,
                                      unsigned size, MemTxAttrs attrs)
{
    *data = 0;
    return MEMTX_OK;
}

static MemTxResult viommu_vtd_ir_write(void *opaque, hwaddr addr, uint64_t value,
                                       unsigned size, MemTxAttrs attrs)
{
    ViommuVtdState *s = opaque;
    MSIMessage from = {
        .address = VIOMMU_VTD_IR_BASE + addr,
        .data = (uint32_t)value,
    };
    MSIMessage to = {};
    /* PCI devices carry their requester id; the IOAPIC's messages do not. */
    uint16_t sid = attrs.unspecified ? VIOMMU_VTD_IOAPIC_SID : attrs.requester_id;

    if (viommu_vtd_remap(s, &from, &to, sid)) {
        return MEMTX_ERROR;
    }
    apic_get_class(NULL)->send_msi(&to);
    return MEMTX_OK;
}

static const MemoryRegionOps viommu_vtd_ir_ops = {
    .read_with_attrs = viommu_vtd_ir_read,
    .write_with_attrs = viommu_vtd_ir_write,
    .endianness = DEVICE_LITTLE_ENDIAN,
    .impl = { .min_access_size = 4, .max_access_size = 4 },
    .valid = { .min_access_size = 4, .max_access_size = 4 },
};

/* ---- DMA translation ---- */

static uint16_t viommu_vtd_sid(ViommuVtdAddressSpace *vas)
{
    /*
     * pci_bus_num() goes through a QOM class cast on every call (tens of ns, more than
     * a viommu cache hit); a root bus's number is fixed, so its requester ids are cached.
     * Behind a bridge the guest may renumber the bus: ask every time.
     */
    if (vas->on_root_bus) {
        return vas->root_bus_sid;
    }
    return PCI_BUILD_BDF(pci_bus_num(vas->bus), vas->devfn);
}

/*
 * A per-thread cache of recent translations in front of viommu_translate, following the
 * contract of viommu_translation_generation: an entry carries the unit's translation
 * generation as read *before* the call that produced it and is used only while the
 * generation still reads the same, so a translation that raced an invalidation is dead on
 * arrival and none outlives an invalidation the guest has seen complete. Only mappings
 * are cached, and only used for the access they allow; everything else (faults,
 * interrupt requests) goes to viommu_translate, which records faults.
 *
 * Per thread, so an entry is only ever read and written by one thread and needs no
 * locking. The translate callback never yields, so a coroutine cannot change threads
 * between the lookup and the fill. Entries name their address space by pointer; address
 * spaces live as long as the unit, and the x86 vIOMMU is never unplugged.
 */
#define VIOMMU_VTD_TCACHE_ENTRIES 64 /* a power of two */

typedef struct {
    const ViommuVtdAddressSpace *vas;
    uint64_t page;       /* addr >> 12 */
    uint64_t generation;
    uint64_t translated_addr;
    uint64_t addr_mask;
    uint16_t sid;
    uint8_t perm;        /* IOMMU_RO, IOMMU_WO or IOMMU_RW */
} ViommuVtdCachedTranslation;

static __thread ViommuVtdCachedTranslation viommu_vtd_tcache[VIOMMU_VTD_TCACHE_ENTRIES];

static IOMMUTLBEntry viommu_vtd_translate(IOMMUMemoryRegion *iommu, hwaddr addr,
                                          IOMMUAccessFlags flag, int iommu_idx)
{
    ViommuVtdAddressSpace *vas = container_of(iommu, ViommuVtdAddressSpace, iommu);
    const uint64_t *generation_counter = vas->unit->generation;
    uint16_t sid = viommu_vtd_sid(vas);
    /* A notifier replay asks with IOMMU_NONE: look as a read. */
    uint8_t access = (flag & IOMMU_RW) ? (flag & IOMMU_RW) : IOMMU_RO;
    ViommuVtdCachedTranslation *cached = NULL;
    uint64_t generation = 0;

    if (generation_counter) {
        generation = qatomic_load_acquire(generation_counter);
        cached = &viommu_vtd_tcache[((addr >> 12) ^ ((uintptr_t)vas >> 6)) &
                                    (VIOMMU_VTD_TCACHE_ENTRIES - 1)];
        if (cached->vas == vas && cached->page == addr >> 12 &&
            cached->generation == generation && cached->sid == sid &&
            (access & ~cached->perm) == 0) {
            return (IOMMUTLBEntry) {
                .target_as = &address_space_memory,
                .iova = addr & ~cached->addr_mask,
                .translated_addr = cached->translated_addr,
                .addr_mask = cached->addr_mask,
                .perm = cached->perm,
            };
        }
    }

    viommu_dma_request request = {
        .source_id = sid,
        .access = access,
        .address = addr,
    };
    viommu_translation out;
    viommu_status status = viommu_translate(vas->unit->unit, &request, &out);

    /*
     * Each path returns one literal, built straight into the caller's slot: building a
     * local entry field by field and returning it makes the compiler copy it with wide
     * loads over those narrow stores, a store-forwarding stall that cost more than the
     * translation itself.
     */
    if (status == VIOMMU_STATUS_OK &&
        out.kind == VIOMMU_TRANSLATION_KIND_MAPPED) {
        uint64_t mask = (1ULL << out.mapping.size_shift) - 1;

        if (cached) {
            *cached = (ViommuVtdCachedTranslation) {
                .vas = vas,
                .page = addr >> 12,
                .generation = generation,
                .translated_addr = out.mapping.output_base,
                .addr_mask = mask,
                .sid = sid,
                .perm = out.mapping.permissions & IOMMU_RW,
            };
        }

        /*
         * The page contains addr, so its base is addr & ~mask; computing it rather than
         * loading out.mapping.input_base keeps the compiler from fetching input_base and
         * output_base with one 16-byte load over the library's two 8-byte stores.
         */
        return (IOMMUTLBEntry) {
            .target_as = &address_space_memory,
            .iova = addr & ~mask,
            .translated_addr = out.mapping.output_base,
            .addr_mask = mask,
            .perm = out.mapping.permissions & IOMMU_RW,
        };
    }
    if (status != VIOMMU_STATUS_FAULT &&
        status != VIOMMU_STATUS_UNSUPPORTED_REQUEST &&
        status != VIOMMU_STATUS_OK) {
        viommu_vtd_check("translate", status);
    }
    return (IOMMUTLBEntry) {
        .target_as = &address_space_memory,
        .iova = addr & ~0xfffULL,
        .translated_addr = 0,
        .addr_mask = 0xfff,
        .perm = IOMMU_NONE,
    };
}

static void viommu_vtd_map_notify(void *opaque, const viommu_map_event *event)
{
    ViommuVtdAddressSpace *vas = opaque;
    bool map = event->kind == VIOMMU_MAP_EVENT_KIND_MAP;
    IOMMUTLBEvent tlb = {
        .type = map ? IOMMU_NOTIFIER_MAP : IOMMU_NOTIFIER_UNMAP,
        .entry = {
            .target_as = &address_space_memory,
            .iova = event->iova,
            .translated_addr = map ? event->output : 0,
            .addr_mask = event->size - 1,
            .perm = map ? (event->permissions & IOMMU_RW) : IOMMU_NONE,
        },
    };

    if (vas->notifier_flags & tlb.type) {
        memory_region_notify_iommu(&vas->iommu, 0, tlb);
    }
}

static int viommu_vtd_notify_flag_changed(IOMMUMemoryRegion *iommu,
                                          IOMMUNotifierFlag old,
                                          IOMMUNotifierFlag new, Error **errp)
{
    ViommuVtdAddressSpace *vas = container_of(iommu, ViommuVtdAddressSpace, iommu);
    ViommuVtdState *s = vas->unit;

    if ((new & IOMMU_NOTIFIER_MAP) && !s->caching_mode) {
        error_setg(errp, "viommu-vtd: caching-mode=on is needed for devices that "
                   "mirror mappings (e.g. vfio-pci)");
        return -EINVAL;
    }
    if ((new & IOMMU_NOTIFIER_MAP) && !vas->map_registered) {
        viommu_status status = viommu_notifier_register(
            s->unit, viommu_vtd_sid(vas), VIOMMU_VTD_NOTIFY_BUDGET,
            viommu_vtd_map_notify, vas, &vas->map_notifier_id);
        if (status != VIOMMU_STATUS_OK) {
            error_setg(errp, "viommu-vtd: notifier: %s", viommu_status_str(status));
            return -EINVAL;
        }
        vas->map_registered = true;
    } else if (!(new & IOMMU_NOTIFIER_MAP) && vas->map_registered) {
        viommu_vtd_check("notifier unregister",
                         viommu_notifier_unregister(s->unit, vas->map_notifier_id));
        vas->map_registered = false;
    }
    if (old == IOMMU_NOTIFIER_NONE && new != IOMMU_NOTIFIER_NONE) {
        QLIST_INSERT_HEAD(&s->with_notifiers, vas, next_with_notifiers);
    } else if (old != IOMMU_NOTIFIER_NONE && new == IOMMU_NOTIFIER_NONE) {
        QLIST_REMOVE(vas, next_with_notifiers);
    }
    vas->notifier_flags = new;
    return 0;
}

typedef struct {
    IOMMUNotifier *notifier;
} ViommuVtdReplay;

static void viommu_vtd_replay_one(void *opaque, const viommu_mapping *mapping)
{
    ViommuVtdReplay *replay = opaque;
    IOMMUTLBEvent event = {
        .type = IOMMU_NOTIFIER_MAP,
        .entry = {
            .target_as = &address_space_memory,
            .iova = mapping->input_base,
            .translated_addr = mapping->output_base,
            .addr_mask = (1ULL << mapping->size_shift) - 1,
            .perm = mapping->permissions & IOMMU_RW,
        },
    };

    memory_region_notify_iommu_one(replay->notifier, &event);
}

static void viommu_vtd_replay(IOMMUMemoryRegion *iommu, IOMMUNotifier *n)
{
    ViommuVtdAddressSpace *vas = container_of(iommu, ViommuVtdAddressSpace, iommu);
    ViommuVtdReplay replay = { .notifier = n };
    viommu_address_space space;

    viommu_vtd_check("replay",
                     viommu_replay(vas->unit->unit, viommu_vtd_sid(vas), 0,
                                   (1ULL << vas->unit->aw_bits) - 1,
                                   VIOMMU_VTD_NOTIFY_BUDGET,
                                   viommu_vtd_replay_one, &replay, &space));
}

typedef struct {
    PCIBus *bus;
    int devfn;
} ViommuVtdKey;

static guint viommu_vtd_key_hash(gconstpointer v)
{
    const ViommuVtdKey *k = v;

    return g_direct_hash(k->bus) ^ (guint)k->devfn;
}

static gboolean viommu_vtd_key_equal(gconstpointer a, gconstpointer b)
{
    const ViommuVtdKey *x = a, *y = b;

    return x->bus == y->bus && x->devfn == y->devfn;
}

/*
 * Send the device's DMA straight to guest memory when viommu says it is untranslated
 * or passed through, through the IOMMU region otherwise. Valid until the next context
 * invalidation notice, reset or restore, after each of which viommu_vtd_update_direct
 * asks again. (A device behind a bridge is asked for by its requester id now; a guest
 * that renumbers buses invalidates the context cache before relying on the change.)
 */
static void viommu_vtd_update_direct_one(ViommuVtdAddressSpace *vas)
{
    ViommuVtdState *s = vas->unit;
    viommu_address_space space;
    viommu_status status;
    bool direct = false;

    if (s->passthrough_direct) {
        status = viommu_device_address_space(s->unit, viommu_vtd_sid(vas), &space);
        viommu_vtd_check("device address space", status);
        direct = status == VIOMMU_STATUS_OK &&
                 (space.kind == VIOMMU_ADDRESS_SPACE_KIND_UNTRANSLATED ||
                  space.kind == VIOMMU_ADDRESS_SPACE_KIND_PASS_THROUGH);
    }
    memory_region_set_enabled(&vas->direct, direct); /* no-op when unchanged */
}

static void viommu_vtd_update_direct(ViommuVtdState *s)
{
    GHashTableIter iter;
    gpointer value;

    s->contexts_changed = false;
    memory_region_transaction_begin();
    g_hash_table_iter_init(&iter, s->address_spaces);
    while (g_hash_table_iter_next(&iter, NULL, &value)) {
        viommu_vtd_update_direct_one(value);
    }
    memory_region_transaction_commit();
}

static AddressSpace *viommu_vtd_find_add_as(PCIBus *bus, void *opaque, int devfn)
{
    ViommuVtdState *s = opaque;
    ViommuVtdKey key = { .bus = bus, .devfn = devfn };
    ViommuVtdAddressSpace *vas = g_hash_table_lookup(s->address_spaces, &key);
    char name[64];

    if (vas) {
        return &vas->as;
    }
    vas = g_new0(ViommuVtdAddressSpace, 1);
    vas->bus = bus;
    vas->devfn = devfn;
    vas->on_root_bus = pci_bus_is_root(bus);
    vas->root_bus_sid = PCI_BUILD_BDF(pci_bus_num(bus), devfn);
    vas->unit = s;
    snprintf(name, sizeof(name), "viommu-vtd-%02x.%x", PCI_SLOT(devfn),
             PCI_FUNC(devfn));
    memory_region_init(&vas->root, OBJECT(s), name, UINT64_MAX);
    memory_region_init_iommu(&vas->iommu, sizeof(vas->iommu),
                             TYPE_VIOMMU_VTD_MEMORY_REGION, OBJECT(s), name,
                             UINT64_MAX);
    memory_region_add_subregion_overlap(&vas->root, 0,
                                        MEMORY_REGION(&vas->iommu), 0);
    /*
     * Untranslated DMA below 2^aw-bits goes straight to guest memory; above it, the
     * IOMMU region still asks viommu (which faults a pass-through device's request
     * beyond the guest address width, as the spec says).
     */
    memory_region_init_alias(&vas->direct, OBJECT(s), "viommu-vtd-direct",
                             get_system_memory(), 0, 1ULL << s->aw_bits);
    memory_region_set_enabled(&vas->direct, false);
    memory_region_add_subregion_overlap(&vas->root, 0, &vas->direct, 1);
    /* Interrupt requests are never translated: they go to interrupt remapping. */
    memory_region_init_alias(&vas->ir_alias, OBJECT(s), "viommu-vtd-ir",
                             &s->mr_ir, 0, VIOMMU_VTD_IR_SIZE);
    memory_region_add_subregion_overlap(&vas->root, VIOMMU_VTD_IR_BASE,
                                        &vas->ir_alias, 2);
    address_space_init(&vas->as, &vas->root, name);
    g_hash_table_insert(s->address_spaces, g_memdup2(&key, sizeof(key)), vas);
    viommu_vtd_update_direct_one(vas);
    return &vas->as;
}

static PCIIOMMUOps viommu_vtd_iommu_ops = {
    .get_address_space = viommu_vtd_find_add_as,
};

/* ---- configuration, realize, reset, migration ---- */

static bool viommu_vtd_decide_config(ViommuVtdState *s, Error **errp)
{
    X86IOMMUState *x86 = X86_IOMMU_DEVICE(s);
    bool ir = x86_iommu_ir_supported(x86);
    viommu_status status = viommu_config_default(&s->config);

    if (status != VIOMMU_STATUS_OK) {
        error_setg(errp, "viommu-vtd: %s", viommu_status_str(status));
        return false;
    }
    if (ir && kvm_irqchip_in_kernel() && !kvm_irqchip_is_split()) {
        error_setg(errp, "viommu-vtd: interrupt remapping needs "
                   "kernel-irqchip=split or off");
        return false;
    }
    if (s->eim == ON_OFF_AUTO_ON && !ir) {
        error_setg(errp, "viommu-vtd: eim=on needs intremap=on");
        return false;
    }
    if (s->aw_bits != 39 && s->aw_bits != 48 && s->aw_bits != 57) {
        error_setg(errp, "viommu-vtd: aw-bits must be 39, 48 or 57");
        return false;
    }
    s->config.guest_address_width = s->aw_bits;
    s->config.host_address_width = s->aw_bits > 48 ? 52 : 48;
    s->config.caching_mode = s->caching_mode;
    s->config.interrupt_remapping = ir;
    s->config.extended_interrupt_mode = ir && s->eim != ON_OFF_AUTO_OFF;
    s->config.device_tlb = x86->dt_supported;
    s->config.pass_through = x86->pt_supported;
    s->config.posted_interrupts = false;
    return true;
}

static void viommu_vtd_realize(DeviceState *dev, Error **errp)
{
    MachineState *ms = MACHINE(qdev_get_machine());
    PCMachineState *pcms = PC_MACHINE(ms);
    X86MachineState *x86ms = X86_MACHINE(ms);
    ViommuVtdState *s = VIOMMU_VTD_DEVICE(dev);
    viommu_host_ops ops = {
        .struct_size = sizeof(ops),
        .dma_read = viommu_vtd_dma_read,
        .dma_write = viommu_vtd_dma_write,
        .msi_raise = viommu_vtd_msi_raise,
        .invalidated = viommu_vtd_invalidated,
        .log = viommu_vtd_log,
    };
    viommu_status status;

    if (!viommu_vtd_decide_config(s, errp)) {
        return;
    }
    status = viommu_unit_new(&s->config, &ops, s, &s->unit);
    if (status != VIOMMU_STATUS_OK) {
        error_setg(errp, "viommu-vtd: %s", viommu_status_str(status));
        return;
    }
    if (s->translation_cache) {
        status = viommu_translation_generation(s->unit, &s->generation);
        if (status != VIOMMU_STATUS_OK) {
            error_setg(errp, "viommu-vtd: %s", viommu_status_str(status));
            return;
        }
    }
    memory_region_init_io(&s->csrmem, OBJECT(s), &viommu_vtd_mmio_ops, s,
                          "viommu-vtd", VIOMMU_VTD_REG_SIZE);
    memory_region_add_subregion(get_system_memory(), Q35_HOST_BRIDGE_IOMMU_ADDR,
                                &s->csrmem);
    memory_region_init_io(&s->mr_ir, OBJECT(s), &viommu_vtd_ir_ops, s,
                          "viommu-vtd-ir", VIOMMU_VTD_IR_SIZE);
    s->address_spaces = g_hash_table_new_full(viommu_vtd_key_hash,
                                              viommu_vtd_key_equal, g_free, g_free);
    QLIST_INIT(&s->with_notifiers);
    pci_setup_iommu(pcms->pcibus, &viommu_vtd_iommu_ops, dev);
    /* The IOAPIC's messages reach interrupt remapping through this space. */
    x86ms->ioapic_as = viommu_vtd_find_add_as(pcms->pcibus, s,
                                              Q35_PSEUDO_DEVFN_IOAPIC);
}

static void viommu_vtd_reset_exit(Object *obj, ResetType type)
{
    ViommuVtdState *s = VIOMMU_VTD_DEVICE(obj);

    if (s->unit) {
        viommu_vtd_check("reset", viommu_reset(s->unit));
        viommu_vtd_update_direct(s);
    }
}

static int viommu_vtd_pre_save(void *opaque)
{
    ViommuVtdState *s = opaque;
    size_t size = 0, written = 0;
    viommu_status status = viommu_saved_size(s->unit, &size);

    if (status != VIOMMU_STATUS_OK) {
        error_report("viommu-vtd: save: %s", viommu_status_str(status));
        return -EINVAL;
    }
    g_free(s->migration_blob);
    s->migration_blob = g_malloc0(size);
    status = viommu_save(s->unit, s->migration_blob, size, &written);
    if (status != VIOMMU_STATUS_OK) {
        error_report("viommu-vtd: save: %s", viommu_status_str(status));
        return -EINVAL;
    }
    s->migration_len = written;
    return 0;
}

static int viommu_vtd_post_load(void *opaque, int version_id)
{
    ViommuVtdState *s = opaque;
    viommu_status status = viommu_restore(s->unit, s->migration_blob,
                                          s->migration_len);

    if (status != VIOMMU_STATUS_OK) {
        error_report("viommu-vtd: restore: %s", viommu_status_str(status));
        return -EINVAL;
    }
    viommu_vtd_notify_unmap(s, 0, s->aw_bits);
    viommu_vtd_update_direct(s);
    return 0;
}

static const VMStateDescription viommu_vtd_vmstate = {
    .name = "viommu-vtd",
    .version_id = 1,
    .minimum_version_id = 1,
    .pre_save = viommu_vtd_pre_save,
    .post_load = viommu_vtd_post_load,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT32(migration_len, ViommuVtdState),
        VMSTATE_VBUFFER_ALLOC_UINT32(migration_blob, ViommuVtdState, 0, NULL,
                                     migration_len),
        VMSTATE_END_OF_LIST()
    },
};

static const Property viommu_vtd_properties[] = {
    DEFINE_PROP_ON_OFF_AUTO("eim", ViommuVtdState, eim, ON_OFF_AUTO_AUTO),
    DEFINE_PROP_BOOL("caching-mode", ViommuVtdState, caching_mode, false),
    DEFINE_PROP_UINT8("aw-bits", ViommuVtdState, aw_bits, 48),
    /* The per-thread translation cache in front of viommu_translate (off: every DMA
     * calls the library, for comparison). */
    DEFINE_PROP_BOOL("x-translation-cache", ViommuVtdState, translation_cache, true),
    /* Untranslated and pass-through devices get guest memory directly (off: their DMA
     * goes through viommu_translate too, for comparison). */
    DEFINE_PROP_BOOL("x-passthrough-direct", ViommuVtdState, passthrough_direct, true),
};

void viommu_vtd_build_dmar(GArray *table_data, BIOSLinker *linker,
                           const char *oem_id, const char *oem_table_id)
{
    ViommuVtdState *s = VIOMMU_VTD_DEVICE(x86_iommu_get_default());
    uint8_t table[1024];
    size_t len = 0;
    viommu_dmar_options options = {
        .register_base = Q35_HOST_BRIDGE_IOMMU_ADDR,
        .ioapic_id = ACPI_BUILD_IOAPIC_ID,
        .ioapic_source_id = VIOMMU_VTD_IOAPIC_SID,
    };
    viommu_status status;

    memcpy(options.oem_id, oem_id, MIN(strlen(oem_id), sizeof(options.oem_id)));
    memcpy(options.oem_table_id, oem_table_id,
           MIN(strlen(oem_table_id), sizeof(options.oem_table_id)));
    status = viommu_build_dmar(&s->config, &options, table, sizeof(table), &len);
    if (status != VIOMMU_STATUS_OK) {
        error_report("viommu-vtd: DMAR: %s", viommu_status_str(status));
        return;
    }
    g_array_append_vals(table_data, table, len);
}

static void viommu_vtd_class_init(ObjectClass *klass, void *data)
{
    DeviceClass *dc = DEVICE_CLASS(klass);
    X86IOMMUClass *x86_class = X86_IOMMU_DEVICE_CLASS(klass);
    ResettableClass *rc = RESETTABLE_CLASS(klass);

    rc->phases.exit = viommu_vtd_reset_exit;
    dc->vmsd = &viommu_vtd_vmstate;
    device_class_set_props(dc, viommu_vtd_properties);
    dc->hotpluggable = false;
    x86_class->realize = viommu_vtd_realize;
    x86_class->int_remap = viommu_vtd_int_remap;
    set_bit(DEVICE_CATEGORY_MISC, dc->categories);
    dc->desc = "Intel VT-d remapping unit emulated by viommu";
}

static const TypeInfo viommu_vtd_info = {
    .name = TYPE_VIOMMU_VTD_DEVICE,
    .parent = TYPE_X86_IOMMU_DEVICE,
    .instance_size = sizeof(ViommuVtdState),
    .class_init = viommu_vtd_class_init,
};

static void viommu_vtd_memory_region_class_init(ObjectClass *klass, void *data)
{
    IOMMUMemoryRegionClass *imrc = IOMMU_MEMORY_REGION_CLASS(klass);

    imrc->translate = viommu_vtd_translate;
    imrc->notify_flag_changed = viommu_vtd_notify_flag_changed;
    imrc->replay = viommu_vtd_replay;
}

static const TypeInfo viommu_vtd_memory_region_info = {
    .parent = TYPE_IOMMU_MEMORY_REGION,
    .name = TYPE_VIOMMU_VTD_MEMORY_REGION,
    .class_init = viommu_vtd_memory_region_class_init,
};

static void viommu_vtd_register_types(void)
{
    type_register_static(&viommu_vtd_info);
    type_register_static(&viommu_vtd_memory_region_info);
}

type_init(viommu_vtd_register_types)
