/*
 * A VMM drives a unit through the C API the way it would for a real guest: guest RAM is a
 * malloc'd buffer behind the DMA callbacks, and the "guest" writes its tables there and
 * programs the registers (root table, context entries, page tables, SRTP, queued
 * invalidation with wait descriptors, TE, the interrupt remapping table, SIRTP, IRE).
 * Then: translation, a fault read back through the fault recording registers, an MSI
 * remapped for KVM, map notifications in caching mode, replay, translation from several
 * threads at once, and save -> free -> new unit -> restore giving the same answers.
 */
#include "vmm.h"

#define DEV 0x0018    /* 00:03.0 */
#define PT_DEV 0x0020 /* 00:04.0 */
#define NO_DEV 0x0100 /* 01:00.0: no root entry */
#define DOMAIN 1
#define PT_DOMAIN 2

/* A map notifier that also checks what it may call from inside the callback. */
struct watcher {
    const viommu_unit *unit;
    struct notes notes;
    viommu_status mmio_write_status;
    viommu_status translate_status;
};

static void watch(void *opaque, const viommu_map_event *event) {
    struct watcher *w = opaque;
    notes_record(&w->notes, event);
    w->mmio_write_status = viommu_mmio_write(w->unit, REG_FECTL, 4, 0);
    if (event->kind == VIOMMU_MAP_EVENT_KIND_MAP) {
        viommu_dma_request request = dma_request(DEV, event->iova, VIOMMU_ACCESS_READ);
        viommu_translation t;
        w->translate_status = viommu_translate(w->unit, &request, &t);
    }
}

static void check_event(const viommu_map_event *e, viommu_map_event_kind kind, uint64_t iova,
                        uint64_t size, uint64_t output, uint8_t permissions) {
    CHECK(e->kind == kind);
    CHECK(e->iova == iova);
    CHECK(e->size == size);
    CHECK(e->output == output);
    CHECK(e->permissions == permissions);
}

static void count_mapping(void *opaque, const viommu_mapping *mapping) {
    unsigned *count = opaque;
    CHECK(mapping->has_domain && mapping->domain_id == DOMAIN);
    (*count)++;
}

struct translator {
    const viommu_unit *unit;
    unsigned ok;
};

static void *translate_a_lot(void *opaque) {
    struct translator *t = opaque;
    for (unsigned i = 0; i < 2000; i++) {
        viommu_dma_request request =
            dma_request(DEV, 0x40000000u + (uint64_t)(i % 512) * 4096, VIOMMU_ACCESS_READ);
        viommu_translation out;
        if (viommu_translate(t->unit, &request, &out) == VIOMMU_STATUS_OK &&
            out.kind == VIOMMU_TRANSLATION_KIND_MAPPED && out.mapping.output_base == 0x600000) {
            t->ok++;
        }
    }
    return NULL;
}

/* The caching pattern of docs/ffi.md: a VMM's one-entry cache in front of viommu_translate,
 * validated by the unit's translation generation. `calls` counts library calls. */
struct vmm_cache {
    const uint64_t *generation;
    bool valid;
    uint64_t tag, page;
    uint16_t source_id;
    viommu_mapping mapping;
    unsigned calls;
};

static bool vmm_cache_translate(struct vmm_cache *c, const viommu_unit *unit, uint16_t sid,
                                uint64_t address, uint8_t access, uint64_t *output) {
    uint64_t now = __atomic_load_n(c->generation, __ATOMIC_ACQUIRE);
    if (c->valid && c->tag == now && c->source_id == sid && c->page == address >> 12 &&
        (access & ~c->mapping.permissions) == 0) {
        *output = c->mapping.output_base + (address - c->mapping.input_base);
        return true;
    }
    viommu_dma_request request = dma_request(sid, address, access);
    viommu_translation t;
    c->calls++;
    if (viommu_translate(unit, &request, &t) != VIOMMU_STATUS_OK ||
        t.kind != VIOMMU_TRANSLATION_KIND_MAPPED) {
        return false;
    }
    *c = (struct vmm_cache){.generation = c->generation, .valid = true, .tag = now,
                            .page = address >> 12, .source_id = sid, .mapping = t.mapping,
                            .calls = c->calls};
    *output = t.mapping.output_base + (address - t.mapping.input_base);
    return true;
}

static bool same_translation(const viommu_translation *a, const viommu_translation *b) {
    return a->kind == b->kind && a->mapping.input_base == b->mapping.input_base &&
           a->mapping.output_base == b->mapping.output_base &&
           a->mapping.size_shift == b->mapping.size_shift &&
           a->mapping.permissions == b->mapping.permissions &&
           a->mapping.has_domain == b->mapping.has_domain &&
           a->mapping.domain_id == b->mapping.domain_id && a->fault.reason == b->fault.reason &&
           a->fault.address == b->fault.address;
}

#define PROBES 5

static void probe_all(const viommu_unit *unit, viommu_translation out[PROBES],
                      viommu_status status[PROBES]) {
    const viommu_dma_request probes[PROBES] = {
        dma_request(DEV, 0x1000, VIOMMU_ACCESS_READ),
        dma_request(DEV, 0x40012345, VIOMMU_ACCESS_READ),
        dma_request(DEV, 0x1000, VIOMMU_ACCESS_WRITE),
        dma_request(DEV, 0x9000, VIOMMU_ACCESS_READ),
        dma_request(PT_DEV, 0x1000, VIOMMU_ACCESS_READ),
    };
    for (int i = 0; i < PROBES; i++) {
        status[i] = viommu_translate_uncached(unit, &probes[i], &out[i]);
    }
}

int main(void) {
    struct guest g;
    guest_init(&g);
    viommu_config config;
    CHECK_OK(viommu_config_default(&config));
    CHECK(config.struct_size == sizeof config);
    config.caching_mode = true;
    guest_new_unit(&g, &config);
    CHECK(reg_read64(&g, REG_CAP) & (1u << 7)); /* CAP.CM */

    /* The guest's tables: DEV translated in DOMAIN, PT_DEV pass-through. */
    uint64_t root = alloc_page(&g);
    uint64_t table = alloc_page(&g);
    set_context(&g, root, DEV, DOMAIN, table, 0);
    set_context(&g, root, PT_DEV, PT_DOMAIN, 0, 2);
    map_page(&g, table, 0x1000, 0x200000, 12, PTE_RW);
    map_page(&g, table, 0x40000000, 0x600000, 21, PTE_R);
    boot(&g, root);

    /* Translation. */
    viommu_translation t;
    viommu_dma_request request = dma_request(DEV, 0x1234, VIOMMU_ACCESS_READ);
    CHECK_OK(viommu_translate(g.unit, &request, &t));
    CHECK(t.kind == VIOMMU_TRANSLATION_KIND_MAPPED);
    CHECK(t.mapping.input_base == 0x1000 && t.mapping.output_base == 0x200000);
    CHECK(t.mapping.size_shift == 12 && t.mapping.permissions == VIOMMU_ACCESS_READ_WRITE);
    CHECK(t.mapping.has_domain && t.mapping.domain_id == DOMAIN);

    request = dma_request(DEV, 0x40012345, VIOMMU_ACCESS_READ);
    CHECK_OK(viommu_translate(g.unit, &request, &t));
    CHECK(t.mapping.size_shift == 21 && t.mapping.output_base == 0x600000);
    CHECK(t.mapping.permissions == VIOMMU_ACCESS_READ);

    request = dma_request(PT_DEV, 0x123456, VIOMMU_ACCESS_WRITE);
    CHECK_OK(viommu_translate(g.unit, &request, &t));
    CHECK(t.mapping.output_base + (0x123456 - t.mapping.input_base) == 0x123456);
    CHECK(t.mapping.domain_id == PT_DOMAIN);

    request = dma_request(DEV, 0xFEE00000, VIOMMU_ACCESS_WRITE);
    CHECK_OK(viommu_translate(g.unit, &request, &t));
    CHECK(t.kind == VIOMMU_TRANSLATION_KIND_INTERRUPT);

    /* A fault: recorded, the fault event raised, readable through MMIO, cleared. */
    reg_write32(&g, REG_FEDATA, 0x41);
    reg_write32(&g, REG_FEADDR, 0xFEE00000);
    reg_write32(&g, REG_FECTL, 0);
    unsigned msis = g.msis;
    request = dma_request(DEV, 0x5000, VIOMMU_ACCESS_WRITE);
    CHECK_STATUS(viommu_translate(g.unit, &request, &t), VIOMMU_STATUS_FAULT);
    CHECK(t.kind == VIOMMU_TRANSLATION_KIND_NONE);
    CHECK(t.fault.reason == 0x05 && t.fault.recorded);
    CHECK(t.fault.address == 0x5000 && t.fault.source_id == DEV);
    CHECK(g.msis == msis + 1 && g.last_msi_address == 0xFEE00000 && g.last_msi_data == 0x41);
    uint32_t fsts = reg_read32(&g, REG_FSTS);
    CHECK((fsts & FSTS_PPF) && ((fsts >> 8) & 0xFF) == 0);
    uint64_t record_low = reg_read64(&g, REG_FRCD);
    uint64_t record_high = reg_read64(&g, REG_FRCD + 8);
    CHECK(record_high >> 63);                        /* F */
    CHECK(((record_high >> 32) & 0xFF) == 0x05);     /* FR */
    CHECK((record_high & 0xFFFF) == DEV);            /* SID */
    CHECK((record_low & ~0xFFFull) == 0x5000);       /* FI */
    reg_write32(&g, REG_FRCD + 12, 1u << 31);        /* clear F (RW1C) */
    CHECK((reg_read32(&g, REG_FSTS) & FSTS_PPF) == 0);

    /* Interrupt remapping: an MSI from DEV through IRTE 5, x2APIC destination. */
    uint64_t irt = alloc_page(&g);
    set_irte(&g, irt, 5, 0x30, 0x12345, DEV);
    enable_interrupt_remapping(&g, irt, 7);
    CHECK(g.last_invalidation.kind == VIOMMU_INVALIDATION_KIND_INTERRUPT_ENTRIES_GLOBAL);
    viommu_interrupt_request interrupt = {
        .address = remappable_msi_address(5),
        .data = 0,
        .source_id = DEV,
    };
    viommu_interrupt irq;
    CHECK_OK(viommu_remap_interrupt(g.unit, &interrupt, &irq));
    CHECK(irq.kind == VIOMMU_INTERRUPT_KIND_REMAPPED);
    CHECK(irq.remapped.vector == 0x30 && irq.remapped.destination == 0x12345);
    CHECK(irq.remapped.index == 5 && !irq.remapped.logical_destination);
    /* The compatibility-format MSI KVM's routing takes: dest 7:0 in 19:12, 31:8 in 63:40. */
    CHECK(irq.msi_address == (0xFEE00000ull | (0x45ull << 12) | (0x123ull << 40)));
    CHECK(irq.msi_data == (0x30u | (1u << 14)));
    /* From the wrong requester: source-id verification fails (26h), recorded. */
    interrupt.source_id = PT_DEV;
    msis = g.msis;
    CHECK_STATUS(viommu_remap_interrupt(g.unit, &interrupt, &irq), VIOMMU_STATUS_FAULT);
    CHECK(irq.fault.reason == 0x26 && irq.fault.has_index && irq.fault.index == 5);
    CHECK(irq.fault.recorded && g.msis == msis + 1);
    reg_write32(&g, REG_FRCD + 16 + 12, 1u << 31);
    interrupt.source_id = DEV;

    /* Map notifications (caching mode): registering reports what is mapped now. */
    struct watcher w = {.unit = g.unit};
    uint64_t id = 0;
    CHECK_OK(viommu_notifier_register(g.unit, DEV, 0, watch, &w, &id));
    CHECK(id != 0);
    CHECK(w.notes.count == 2);
    check_event(&w.notes.events[0], VIOMMU_MAP_EVENT_KIND_MAP, 0x1000, 4096, 0x200000,
                VIOMMU_ACCESS_READ_WRITE);
    check_event(&w.notes.events[1], VIOMMU_MAP_EVENT_KIND_MAP, 0x40000000, 2u << 20, 0x600000,
                VIOMMU_ACCESS_READ);
    CHECK(w.notes.events[0].source_id == DEV && w.notes.events[0].has_domain);
    CHECK(w.notes.events[0].domain_id == DOMAIN);
    /* Inside the callback: translate works, changing the unit is refused. */
    CHECK(w.mmio_write_status == VIOMMU_STATUS_REENTERED);
    CHECK(w.translate_status == VIOMMU_STATUS_OK);

    struct notes pt = {0};
    uint64_t pt_id = 0;
    CHECK_OK(viommu_notifier_register(g.unit, PT_DEV, 0, notes_record, &pt, &pt_id));
    CHECK(pt.count == 1 && pt.events[0].kind == VIOMMU_MAP_EVENT_KIND_IDENTITY_BEGIN);
    CHECK(pt.events[0].has_domain && pt.events[0].domain_id == PT_DOMAIN);

    /* Which devices a VMM may send straight to guest memory; asking records nothing. */
    viommu_address_space kind;
    CHECK_OK(viommu_device_address_space(g.unit, PT_DEV, &kind));
    CHECK(kind.kind == VIOMMU_ADDRESS_SPACE_KIND_PASS_THROUGH);
    CHECK(kind.has_domain && kind.domain_id == PT_DOMAIN);
    CHECK_OK(viommu_device_address_space(g.unit, DEV, &kind));
    CHECK(kind.kind == VIOMMU_ADDRESS_SPACE_KIND_TRANSLATED && kind.domain_id == DOMAIN);
    CHECK_OK(viommu_device_address_space(g.unit, NO_DEV, &kind));
    CHECK(kind.kind == VIOMMU_ADDRESS_SPACE_KIND_BLOCKED && kind.fault_reason == 0x01);
    CHECK((reg_read32(&g, REG_FSTS) & FSTS_PPF) == 0);
    CHECK_STATUS(viommu_device_address_space(NULL, DEV, &kind), VIOMMU_STATUS_NULL_POINTER);
    CHECK(kind.kind == VIOMMU_ADDRESS_SPACE_KIND_NONE);
    CHECK_STATUS(viommu_device_address_space(g.unit, DEV, NULL), VIOMMU_STATUS_NULL_POINTER);

    /* The guest maps a page and, in caching mode, invalidates it: MAP. */
    w.notes.count = 0;
    map_page(&g, table, 0x3000, 0x300000, 12, PTE_RW);
    invalidate_iotlb(&g, 3, DOMAIN, 0x3000, 0);
    CHECK(w.notes.count == 1);
    check_event(&w.notes.events[0], VIOMMU_MAP_EVENT_KIND_MAP, 0x3000, 4096, 0x300000,
                VIOMMU_ACCESS_READ_WRITE);
    CHECK(g.last_invalidation.kind == VIOMMU_INVALIDATION_KIND_IOTLB_PAGES);
    CHECK(g.last_invalidation.domain_id == DOMAIN && g.last_invalidation.address == 0x3000);
    CHECK(g.last_invalidation.size == 4096);

    /* It takes write permission away: UNMAP of the old page, then MAP of the new. */
    w.notes.count = 0;
    map_page(&g, table, 0x1000, 0x200000, 12, PTE_R);
    invalidate_iotlb(&g, 3, DOMAIN, 0x1000, 0);
    CHECK(w.notes.count == 2);
    check_event(&w.notes.events[0], VIOMMU_MAP_EVENT_KIND_UNMAP, 0x1000, 4096, 0x200000,
                VIOMMU_ACCESS_READ_WRITE);
    check_event(&w.notes.events[1], VIOMMU_MAP_EVENT_KIND_MAP, 0x1000, 4096, 0x200000,
                VIOMMU_ACCESS_READ);

    /* It unmaps a page and invalidates the whole domain: UNMAP of just that page. */
    w.notes.count = 0;
    unmap_page(&g, table, 0x3000, 12);
    invalidate_iotlb(&g, 2, DOMAIN, 0, 0);
    CHECK(w.notes.count == 1);
    check_event(&w.notes.events[0], VIOMMU_MAP_EVENT_KIND_UNMAP, 0x3000, 4096, 0x300000,
                VIOMMU_ACCESS_READ_WRITE);

    /* Invalidations that change nothing, or cover another domain, report nothing. */
    w.notes.count = 0;
    invalidate_iotlb(&g, 2, DOMAIN, 0, 0);
    invalidate_iotlb(&g, 2, 7, 0, 0);
    invalidate_iotlb(&g, 3, DOMAIN, 0x40000000, 9);
    CHECK(w.notes.count == 0);

    /* PT_DEV moves into DOMAIN (device-selective context invalidation with its old
     * domain, as Linux does): IDENTITY_END, then MAPs of what DOMAIN maps. */
    set_context(&g, root, PT_DEV, DOMAIN, table, 0);
    invalidate_context(&g, 3, PT_DOMAIN, PT_DEV);
    CHECK(pt.count == 4);
    CHECK(pt.events[1].kind == VIOMMU_MAP_EVENT_KIND_IDENTITY_END);
    check_event(&pt.events[2], VIOMMU_MAP_EVENT_KIND_MAP, 0x1000, 4096, 0x200000,
                VIOMMU_ACCESS_READ);
    check_event(&pt.events[3], VIOMMU_MAP_EVENT_KIND_MAP, 0x40000000, 2u << 20, 0x600000,
                VIOMMU_ACCESS_READ);
    CHECK(pt.events[3].domain_id == DOMAIN);
    CHECK_OK(viommu_device_address_space(g.unit, PT_DEV, &kind));
    CHECK(kind.kind == VIOMMU_ADDRESS_SPACE_KIND_TRANSLATED && kind.domain_id == DOMAIN);

    /* Replay: everything DEV maps now, for a late attacher; with a budget. */
    unsigned count = 0;
    viommu_address_space space;
    CHECK_OK(viommu_replay(g.unit, DEV, 0, UINT64_MAX, 1000, count_mapping, &count, &space));
    CHECK(count == 2 && space.kind == VIOMMU_ADDRESS_SPACE_KIND_TRANSLATED);
    CHECK(space.has_domain && space.domain_id == DOMAIN);
    count = 0;
    CHECK_STATUS(viommu_replay(g.unit, DEV, 0, UINT64_MAX, 1, count_mapping, &count, &space),
                 VIOMMU_STATUS_BUDGET_EXHAUSTED);
    CHECK(count == 1 && space.kind == VIOMMU_ADDRESS_SPACE_KIND_TRANSLATED);
    CHECK_OK(viommu_replay(g.unit, NO_DEV, 0, UINT64_MAX, 1000, count_mapping, &count, NULL));
    CHECK_OK(viommu_replay(g.unit, NO_DEV, 0, UINT64_MAX, 1000, count_mapping, &count, &space));
    CHECK(count == 1 && space.kind == VIOMMU_ADDRESS_SPACE_KIND_BLOCKED);
    CHECK(space.fault_reason == 0x01);

    /* A VMM's own cache in front of viommu_translate, validated by the generation. */
    const uint64_t *generation = NULL;
    CHECK_STATUS(viommu_translation_generation(NULL, &generation), VIOMMU_STATUS_NULL_POINTER);
    CHECK_STATUS(viommu_translation_generation(g.unit, NULL), VIOMMU_STATUS_NULL_POINTER);
    CHECK_OK(viommu_translation_generation(g.unit, &generation));
    CHECK(generation != NULL);
    struct vmm_cache cache = {.generation = generation};
    uint64_t output = 0;
    CHECK(vmm_cache_translate(&cache, g.unit, DEV, 0x1010, VIOMMU_ACCESS_READ, &output));
    CHECK(output == 0x200010 && cache.calls == 1);
    CHECK(vmm_cache_translate(&cache, g.unit, DEV, 0x1020, VIOMMU_ACCESS_READ, &output));
    CHECK(output == 0x200020 && cache.calls == 1); /* a hit */
    /* Translations and faults leave the generation alone; a write the page does not
     * allow is not served from the cache (the library records the fault). */
    uint64_t generation_before = __atomic_load_n(generation, __ATOMIC_ACQUIRE);
    CHECK(!vmm_cache_translate(&cache, g.unit, DEV, 0x1010, VIOMMU_ACCESS_WRITE, &output));
    CHECK(cache.calls == 2);
    CHECK(__atomic_load_n(generation, __ATOMIC_ACQUIRE) == generation_before);
    CHECK(vmm_cache_translate(&cache, g.unit, DEV, 0x1010, VIOMMU_ACCESS_READ, &output));
    CHECK(cache.calls == 2 && output == 0x200010); /* still a hit */
    /* The guest moves the page and invalidates it: the generation moves, so the entry is
     * dead and the VMM sees the new frame. */
    map_page(&g, table, 0x1000, 0x700000, 12, PTE_R);
    invalidate_iotlb(&g, 3, DOMAIN, 0x1000, 0);
    CHECK(__atomic_load_n(generation, __ATOMIC_ACQUIRE) != generation_before);
    CHECK(vmm_cache_translate(&cache, g.unit, DEV, 0x1010, VIOMMU_ACCESS_READ, &output));
    CHECK(output == 0x700010 && cache.calls == 3);
    map_page(&g, table, 0x1000, 0x200000, 12, PTE_R);
    invalidate_iotlb(&g, 3, DOMAIN, 0x1000, 0);
    CHECK(vmm_cache_translate(&cache, g.unit, DEV, 0x1010, VIOMMU_ACCESS_READ, &output));
    CHECK(output == 0x200010 && cache.calls == 4);
    /* Context invalidations move it too. */
    generation_before = __atomic_load_n(generation, __ATOMIC_ACQUIRE);
    invalidate_context(&g, 1, 0, 0);
    CHECK(__atomic_load_n(generation, __ATOMIC_ACQUIRE) != generation_before);

    /* Translation from several threads while the guest invalidates. */
    pthread_t threads[3];
    struct translator translators[3];
    for (int i = 0; i < 3; i++) {
        translators[i].unit = g.unit;
        translators[i].ok = 0;
        CHECK(pthread_create(&threads[i], NULL, translate_a_lot, &translators[i]) == 0);
    }
    for (int i = 0; i < 5; i++) {
        invalidate_iotlb(&g, 1, 0, 0, 0);
    }
    for (int i = 0; i < 3; i++) {
        CHECK(pthread_join(threads[i], NULL) == 0);
        CHECK(translators[i].ok == 2000);
    }

    /* Save, free, a new unit, restore: the guest sees the same unit. */
    size_t needed = 0;
    CHECK_STATUS(viommu_save(g.unit, NULL, 0, &needed), VIOMMU_STATUS_BUFFER_TOO_SMALL);
    size_t size = 0;
    CHECK_OK(viommu_saved_size(g.unit, &size));
    CHECK(size == needed && size > 0);
    uint8_t *blob = malloc(size);
    CHECK(blob != NULL);
    size_t written = 0;
    CHECK_OK(viommu_save(g.unit, blob, size, &written));
    CHECK(written == size);

    viommu_translation before[PROBES], after[PROBES];
    viommu_status before_status[PROBES], after_status[PROBES];
    probe_all(g.unit, before, before_status);
    CHECK(before_status[0] == VIOMMU_STATUS_OK && before_status[2] == VIOMMU_STATUS_FAULT);
    CHECK(before_status[3] == VIOMMU_STATUS_FAULT && before_status[4] == VIOMMU_STATUS_OK);
    viommu_interrupt irq_before;
    CHECK_OK(viommu_remap_interrupt(g.unit, &interrupt, &irq_before));
    uint32_t gsts = reg_read32(&g, REG_GSTS);

    CHECK_OK(viommu_notifier_unregister(g.unit, id));
    CHECK_OK(viommu_notifier_unregister(g.unit, pt_id));
    CHECK_STATUS(viommu_notifier_unregister(g.unit, id), VIOMMU_STATUS_INVALID_ARGUMENT);
    viommu_unit_free(g.unit);

    guest_new_unit(&g, &config);
    request = dma_request(DEV, 0x1000, VIOMMU_ACCESS_READ);
    CHECK_OK(viommu_translate(g.unit, &request, &t));
    CHECK(!t.mapping.has_domain); /* a fresh unit: translation off */
    CHECK_OK(viommu_restore(g.unit, blob, written));
    free(blob);

    probe_all(g.unit, after, after_status);
    for (int i = 0; i < PROBES; i++) {
        CHECK(before_status[i] == after_status[i]);
        CHECK(same_translation(&before[i], &after[i]));
    }
    viommu_interrupt irq_after;
    CHECK_OK(viommu_remap_interrupt(g.unit, &interrupt, &irq_after));
    CHECK(irq_after.kind == irq_before.kind && irq_after.msi_address == irq_before.msi_address);
    CHECK(irq_after.msi_data == irq_before.msi_data);
    CHECK(reg_read32(&g, REG_GSTS) == gsts);
    /* The queue carries on where it was. */
    invalidate_iotlb(&g, 1, 0, 0, 0);

    guest_destroy(&g);
    printf("scenario: ok\n");
    return 0;
}
