/*
 * Every way a caller can get the API wrong gets the documented status, and nothing
 * crashes: NULL pointers everywhere, bad sizes and access bits, misaligned pointers, tiny
 * buffers, garbage and corrupted restore blobs, NULL callbacks, unknown statuses.
 */
#include "vmm.h"

static void never_called(void *opaque, const viommu_mapping *mapping) {
    (void)opaque;
    (void)mapping;
    CHECK(!"no mapping expected");
}

static void ignore_event(void *opaque, const viommu_map_event *event) {
    (void)opaque;
    (void)event;
}

static struct guest g;

static void check_new_fails(const viommu_config *config, const viommu_host_ops *ops,
                            viommu_status expected) {
    viommu_unit *unit = (viommu_unit *)(uintptr_t)1; /* must be overwritten with NULL */
    CHECK_STATUS(viommu_unit_new(config, ops, &g, &unit), expected);
    CHECK(unit == NULL);
}

int main(void) {
    guest_init(&g);
    viommu_config config;
    CHECK_OK(viommu_config_default(&config));
    viommu_host_ops ops = guest_ops();

    /* Statuses and the version. */
    CHECK(strcmp(viommu_status_str(VIOMMU_STATUS_OK), "VIOMMU_STATUS_OK") == 0);
    CHECK(strcmp(viommu_status_str(VIOMMU_STATUS_FAULT), "VIOMMU_STATUS_FAULT") == 0);
    CHECK(strcmp(viommu_status_str(VIOMMU_STATUS_PANIC), "VIOMMU_STATUS_PANIC") == 0);
    CHECK(strcmp(viommu_status_str(999), "VIOMMU_STATUS_UNKNOWN") == 0);
    char version[32];
    snprintf(version, sizeof version, "%d.%d.%d", VIOMMU_VERSION_MAJOR, VIOMMU_VERSION_MINOR,
             VIOMMU_VERSION_PATCH);
    CHECK(strcmp(viommu_version(), version) == 0);

    /* Creating a unit. */
    CHECK_STATUS(viommu_config_default(NULL), VIOMMU_STATUS_NULL_POINTER);
    check_new_fails(NULL, &ops, VIOMMU_STATUS_NULL_POINTER);
    check_new_fails(&config, NULL, VIOMMU_STATUS_NULL_POINTER);
    CHECK_STATUS(viommu_unit_new(&config, &ops, NULL, NULL), VIOMMU_STATUS_NULL_POINTER);
    viommu_config bad = config;
    bad.struct_size = 3;
    check_new_fails(&bad, &ops, VIOMMU_STATUS_INVALID_ARGUMENT);
    bad.struct_size = (size_t)1 << 30;
    check_new_fails(&bad, &ops, VIOMMU_STATUS_INVALID_ARGUMENT);
    viommu_host_ops bad_ops = ops;
    bad_ops.struct_size = 0;
    check_new_fails(&config, &bad_ops, VIOMMU_STATUS_INVALID_ARGUMENT);
    bad = config;
    bad.guest_address_width = 40;
    viommu_unit *unit = NULL;
    CHECK_STATUS(viommu_unit_new(&bad, &ops, &g, &unit), VIOMMU_STATUS_INVALID_CONFIG);
    CHECK(unit == NULL);
    CHECK(g.logs == 1 && strstr(g.last_log, "40") != NULL); /* the log says why */
    bad = config;
    bad.queued_invalidation = false; /* interrupt remapping needs it */
    check_new_fails(&bad, &ops, VIOMMU_STATUS_INVALID_CONFIG);
    viommu_unit_free(NULL);

    /* A unit with every callback NULL works; its guest memory accesses all fail. */
    viommu_host_ops no_ops = {.struct_size = sizeof no_ops};
    CHECK_OK(viommu_unit_new(&config, &no_ops, NULL, &g.unit));
    set_root_table(&g, 0x1000);
    enable_translation(&g);
    viommu_dma_request request = dma_request(0x18, 0x1000, VIOMMU_ACCESS_READ);
    viommu_translation t;
    CHECK_STATUS(viommu_translate(g.unit, &request, &t), VIOMMU_STATUS_FAULT);
    CHECK(t.fault.reason == 0x08); /* root table access error */
    g.tail = 0;
    reg_write64(&g, REG_IQA, QUEUE_BASE);
    reg_write32(&g, REG_GCMD, g.gcmd | GCMD_QIE);
    reg_write64(&g, REG_IQT, 16); /* the fetch fails: IQE */
    CHECK(reg_read32(&g, REG_FSTS) & FSTS_IQE);
    viommu_unit_free(g.unit);

    guest_new_unit(&g, &config);
    const viommu_unit *u = g.unit;

    /* Registers: NULLs, sizes, the window. */
    uint64_t value = 7;
    CHECK_STATUS(viommu_mmio_read(NULL, 0, 4, &value), VIOMMU_STATUS_NULL_POINTER);
    CHECK(value == 0);
    CHECK_STATUS(viommu_mmio_read(u, 0, 4, NULL), VIOMMU_STATUS_NULL_POINTER);
    CHECK_STATUS(viommu_mmio_read(u, 0, 2, &value), VIOMMU_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(viommu_mmio_read(u, 0, 16, &value), VIOMMU_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(viommu_mmio_read(u, VIOMMU_MMIO_SIZE, 4, &value),
                 VIOMMU_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(viommu_mmio_read(u, VIOMMU_MMIO_SIZE - 4, 8, &value),
                 VIOMMU_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(viommu_mmio_read(u, UINT64_MAX - 1, 4, &value), VIOMMU_STATUS_INVALID_ARGUMENT);
    CHECK_OK(viommu_mmio_read(u, 0x1A, 4, &value)); /* misaligned: the guest's business */
    CHECK(value == 0);
    CHECK_OK(viommu_mmio_read(u, 0, 4, &value));
    CHECK(value == 0x10); /* VER 1.0 */
    CHECK_STATUS(viommu_mmio_write(NULL, REG_GCMD, 4, 0), VIOMMU_STATUS_NULL_POINTER);
    CHECK_STATUS(viommu_mmio_write(u, REG_GCMD, 1, 0), VIOMMU_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(viommu_mmio_write(u, 0x2000, 4, 0), VIOMMU_STATUS_INVALID_ARGUMENT);

    /* Translation: NULLs, access bits, misaligned out, unsupported requests. */
    request = dma_request(0x18, 0x1000, VIOMMU_ACCESS_READ);
    CHECK_STATUS(viommu_translate(NULL, &request, &t), VIOMMU_STATUS_NULL_POINTER);
    CHECK_STATUS(viommu_translate(u, NULL, &t), VIOMMU_STATUS_NULL_POINTER);
    CHECK(t.kind == VIOMMU_TRANSLATION_KIND_NONE); /* out is written whenever it is valid */
    CHECK_STATUS(viommu_translate(u, &request, NULL), VIOMMU_STATUS_NULL_POINTER);
    request.access = 0;
    CHECK_STATUS(viommu_translate(u, &request, &t), VIOMMU_STATUS_INVALID_ARGUMENT);
    request.access = 4;
    CHECK_STATUS(viommu_translate(u, &request, &t), VIOMMU_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(viommu_translate_uncached(u, &request, &t), VIOMMU_STATUS_INVALID_ARGUMENT);
    request.access = VIOMMU_ACCESS_READ;
    _Alignas(8) unsigned char raw[sizeof(viommu_translation) + 8];
    CHECK_STATUS(viommu_translate(u, &request, (viommu_translation *)(void *)(raw + 1)),
                 VIOMMU_STATUS_INVALID_ARGUMENT);
    request.has_pasid = true;
    CHECK_STATUS(viommu_translate(u, &request, &t), VIOMMU_STATUS_UNSUPPORTED_REQUEST);
    request = dma_request(0x18, 0xFEE00000, VIOMMU_ACCESS_READ);
    CHECK_STATUS(viommu_translate_uncached(u, &request, &t), VIOMMU_STATUS_UNSUPPORTED_REQUEST);

    /* Interrupts. */
    viommu_interrupt_request interrupt = {.address = 0x1000, .data = 0, .source_id = 0x18};
    viommu_interrupt irq;
    CHECK_STATUS(viommu_remap_interrupt(u, &interrupt, &irq), VIOMMU_STATUS_NOT_AN_INTERRUPT);
    CHECK_STATUS(viommu_remap_interrupt(u, NULL, &irq), VIOMMU_STATUS_NULL_POINTER);
    CHECK_STATUS(viommu_remap_interrupt(u, &interrupt, NULL), VIOMMU_STATUS_NULL_POINTER);
    interrupt.address = 0xFEE01000;
    CHECK_OK(viommu_remap_interrupt(u, &interrupt, &irq)); /* remapping off */
    CHECK(irq.kind == VIOMMU_INTERRUPT_KIND_PASS_THROUGH && irq.msi_address == 0xFEE01000);
    viommu_posted_interrupt posted = {.descriptor_address = 1ull << 40, .vector = 0x40};
    viommu_post_outcome outcome;
    CHECK_STATUS(viommu_post_interrupt(u, &posted, &outcome), VIOMMU_STATUS_MEMORY_ERROR);
    CHECK_STATUS(viommu_post_interrupt(u, NULL, &outcome), VIOMMU_STATUS_NULL_POINTER);
    posted.descriptor_address = 0x2000;
    CHECK_OK(viommu_post_interrupt(u, &posted, &outcome));
    CHECK(outcome.kind == VIOMMU_POST_KIND_NOTIFY);
    CHECK(ram_read64(&g, 0x2000 + 8) == 1); /* PIR bit 0x40 */

    /* Replay and notifiers. */
    CHECK_STATUS(viommu_replay(u, 0x18, 0, UINT64_MAX, 10, NULL, NULL, NULL),
                 VIOMMU_STATUS_NULL_POINTER);
    viommu_address_space space;
    CHECK_OK(viommu_replay(u, 0x18, 0, UINT64_MAX, 10, never_called, NULL, &space));
    CHECK(space.kind == VIOMMU_ADDRESS_SPACE_KIND_UNTRANSLATED);
    uint64_t id = 5;
    CHECK_STATUS(viommu_notifier_register(u, 0x18, 0, NULL, NULL, &id),
                 VIOMMU_STATUS_NULL_POINTER);
    CHECK(id == 0);
    CHECK_STATUS(viommu_notifier_register(u, 0x18, 0, ignore_event, NULL, NULL),
                 VIOMMU_STATUS_NULL_POINTER);
    CHECK_STATUS(viommu_notifier_unregister(u, 12345), VIOMMU_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(viommu_notifier_unregister(NULL, 1), VIOMMU_STATUS_NULL_POINTER);

    /* Save: tiny buffers, NULLs. */
    size_t size = 0, written = 99;
    CHECK_STATUS(viommu_saved_size(NULL, &size), VIOMMU_STATUS_NULL_POINTER);
    CHECK_STATUS(viommu_saved_size(u, NULL), VIOMMU_STATUS_NULL_POINTER);
    CHECK_OK(viommu_saved_size(u, &size));
    uint8_t tiny[4];
    CHECK_STATUS(viommu_save(u, tiny, sizeof tiny, &written), VIOMMU_STATUS_BUFFER_TOO_SMALL);
    CHECK(written == size);
    CHECK_STATUS(viommu_save(u, tiny, sizeof tiny, NULL), VIOMMU_STATUS_NULL_POINTER);
    CHECK_STATUS(viommu_save(u, NULL, size, &written), VIOMMU_STATUS_NULL_POINTER);
    uint8_t *blob = malloc(size);
    CHECK(blob != NULL);
    CHECK_OK(viommu_save(u, blob, size, &written));

    /* Restore: garbage, truncation, corruption, another configuration. */
    uint8_t garbage[256];
    for (size_t i = 0; i < sizeof garbage; i++) {
        garbage[i] = (uint8_t)(i * 37 + 11);
    }
    CHECK_STATUS(viommu_restore(u, garbage, sizeof garbage), VIOMMU_STATUS_RESTORE_BAD_MAGIC);
    CHECK_STATUS(viommu_restore(u, blob, 0), VIOMMU_STATUS_RESTORE_TRUNCATED);
    CHECK_STATUS(viommu_restore(u, blob, 10), VIOMMU_STATUS_RESTORE_TRUNCATED);
    CHECK_STATUS(viommu_restore(u, blob, size - 1), VIOMMU_STATUS_RESTORE_TRUNCATED);
    CHECK_STATUS(viommu_restore(u, NULL, size), VIOMMU_STATUS_NULL_POINTER);
    CHECK_STATUS(viommu_restore(NULL, blob, size), VIOMMU_STATUS_NULL_POINTER);
    blob[size / 2] ^= 0x40;
    CHECK_STATUS(viommu_restore(u, blob, size), VIOMMU_STATUS_RESTORE_BAD_CHECKSUM);
    blob[size / 2] ^= 0x40;
    blob[8] = 99; /* format version */
    CHECK_STATUS(viommu_restore(u, blob, size), VIOMMU_STATUS_RESTORE_UNSUPPORTED_VERSION);
    blob[8] = 1;
    CHECK_OK(viommu_restore(u, blob, size));

    viommu_config other;
    CHECK_OK(viommu_config_default(&other));
    other.caching_mode = true;
    viommu_unit *other_unit = NULL;
    CHECK_OK(viommu_unit_new(&other, &ops, &g, &other_unit));
    CHECK_STATUS(viommu_restore(other_unit, blob, size), VIOMMU_STATUS_RESTORE_CONFIG_MISMATCH);
    viommu_unit_free(other_unit);
    free(blob);

    CHECK_STATUS(viommu_reset(NULL), VIOMMU_STATUS_NULL_POINTER);
    CHECK_OK(viommu_reset(u));

    guest_destroy(&g);
    printf("misuse: ok\n");
    return 0;
}
