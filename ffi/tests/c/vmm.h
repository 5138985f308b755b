/*
 * Shared fixtures for the C tests: a VMM's side of a unit (guest RAM in a malloc'd buffer
 * behind dma_read/dma_write/dma_cmpxchg64, recorded MSIs and invalidations), table
 * builders that write root, context and page tables into guest RAM, and a guest driver
 * that programs the unit through MMIO the way Linux's intel-iommu driver does.
 */
#ifndef VIOMMU_TEST_VMM_H
#define VIOMMU_TEST_VMM_H

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "viommu.h"

#define CHECK(cond)                                                                    \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);   \
            exit(1);                                                                   \
        }                                                                              \
    } while (0)

#define CHECK_STATUS(call, expected)                                                   \
    do {                                                                               \
        viommu_status got_ = (call);                                                   \
        viommu_status want_ = (expected);                                              \
        if (got_ != want_) {                                                           \
            fprintf(stderr, "%s:%d: %s returned %s, expected %s\n", __FILE__, __LINE__, \
                    #call, viommu_status_str(got_), viommu_status_str(want_));         \
            exit(1);                                                                   \
        }                                                                              \
    } while (0)

#define CHECK_OK(call) CHECK_STATUS(call, VIOMMU_STATUS_OK)

/* Register offsets (VT-d §11.4). */
enum {
    REG_CAP = 0x08,
    REG_ECAP = 0x10,
    REG_GCMD = 0x18,
    REG_GSTS = 0x1C,
    REG_RTADDR = 0x20,
    REG_FSTS = 0x34,
    REG_FECTL = 0x38,
    REG_FEDATA = 0x3C,
    REG_FEADDR = 0x40,
    REG_FEUADDR = 0x44,
    REG_IQH = 0x80,
    REG_IQT = 0x88,
    REG_IQA = 0x90,
    REG_IRTA = 0xB8,
    REG_FRCD = 0x220,
};

/* GCMD / GSTS bits. */
#define GCMD_TE (1u << 31)
#define GCMD_SRTP (1u << 30)
#define GCMD_QIE (1u << 26)
#define GCMD_IRE (1u << 25)
#define GCMD_SIRTP (1u << 24)

#define FSTS_PFO (1u << 0)
#define FSTS_PPF (1u << 1)
#define FSTS_IQE (1u << 4)

/* Guest-physical layout. */
#define GUEST_RAM_SIZE (8u << 20)
#define WAIT_STATUS 0x7F000u
#define QUEUE_BASE 0x80000u
#define TABLES_BASE 0x100000u

/* Second-level permissions. */
#define PTE_R 1u
#define PTE_W 2u
#define PTE_RW 3u

#define MAX_NOTES 64

/* What a map notifier was told. */
struct notes {
    viommu_map_event events[MAX_NOTES];
    size_t count;
};

static inline void notes_record(void *opaque, const viommu_map_event *event) {
    struct notes *n = opaque;
    if (n->count < MAX_NOTES) {
        n->events[n->count] = *event;
    }
    n->count++;
}

struct guest {
    uint8_t *ram;
    uint64_t ram_size;
    uint64_t next_page;
    viommu_unit *unit;
    /* What the unit sent, guarded: translation may fault on any thread. */
    pthread_mutex_t lock;
    unsigned msis;
    uint64_t last_msi_address;
    uint32_t last_msi_data;
    unsigned invalidations;
    viommu_invalidation last_invalidation;
    unsigned logs;
    char last_log[256];
    /* The driver's state. */
    uint32_t gcmd;
    uint64_t tail;
    uint32_t wait_sequence;
};

static inline int guest_dma_read(void *opaque, uint64_t gpa, void *buf, size_t len) {
    struct guest *g = opaque;
    if (gpa > g->ram_size || len > g->ram_size - gpa) {
        return -1;
    }
    memcpy(buf, g->ram + gpa, len);
    return 0;
}

static inline int guest_dma_write(void *opaque, uint64_t gpa, const void *buf, size_t len) {
    struct guest *g = opaque;
    if (gpa > g->ram_size || len > g->ram_size - gpa) {
        return -1;
    }
    memcpy(g->ram + gpa, buf, len);
    return 0;
}

static inline int guest_dma_cmpxchg64(void *opaque, uint64_t gpa, uint64_t expected, uint64_t desired,
                               uint64_t *actual) {
    struct guest *g = opaque;
    if (gpa % 8 != 0 || gpa > g->ram_size - 8) {
        return -1;
    }
    /* The guest is little-endian, like the hosts this runs on. */
    __atomic_compare_exchange_n((uint64_t *)(void *)(g->ram + gpa), &expected, desired, false,
                                __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    *actual = expected;
    return 0;
}

static inline void guest_msi_raise(void *opaque, uint64_t address, uint32_t data) {
    struct guest *g = opaque;
    pthread_mutex_lock(&g->lock);
    g->msis++;
    g->last_msi_address = address;
    g->last_msi_data = data;
    pthread_mutex_unlock(&g->lock);
}

static inline void guest_invalidated(void *opaque, const viommu_invalidation *event) {
    struct guest *g = opaque;
    pthread_mutex_lock(&g->lock);
    g->invalidations++;
    g->last_invalidation = *event;
    pthread_mutex_unlock(&g->lock);
}

static inline void guest_log(void *opaque, viommu_log_level level, const char *message) {
    struct guest *g = opaque;
    (void)level;
    pthread_mutex_lock(&g->lock);
    g->logs++;
    snprintf(g->last_log, sizeof g->last_log, "%s", message);
    pthread_mutex_unlock(&g->lock);
}

static inline viommu_host_ops guest_ops(void) {
    viommu_host_ops ops = {
        .struct_size = sizeof(viommu_host_ops),
        .dma_read = guest_dma_read,
        .dma_write = guest_dma_write,
        .dma_cmpxchg64 = guest_dma_cmpxchg64,
        .msi_raise = guest_msi_raise,
        .invalidated = guest_invalidated,
        .log = guest_log,
    };
    return ops;
}

/* Guest RAM and the tables' page allocator; no unit yet. */
static inline void guest_init(struct guest *g) {
    memset(g, 0, sizeof *g);
    g->ram_size = GUEST_RAM_SIZE;
    g->ram = calloc(1, GUEST_RAM_SIZE);
    CHECK(g->ram != NULL);
    g->next_page = TABLES_BASE;
    pthread_mutex_init(&g->lock, NULL);
}

/* A unit for this guest. The driver's own state (gcmd, queue tail) is the guest's and
 * stays as it was: after a restore it matches the restored unit. */
static inline void guest_new_unit(struct guest *g, const viommu_config *config) {
    viommu_host_ops ops = guest_ops();
    CHECK_OK(viommu_unit_new(config, &ops, g, &g->unit));
    CHECK(g->unit != NULL);
}

static inline void guest_destroy(struct guest *g) {
    viommu_unit_free(g->unit);
    g->unit = NULL;
    free(g->ram);
    pthread_mutex_destroy(&g->lock);
}

static inline void ram_write64(struct guest *g, uint64_t gpa, uint64_t value) {
    CHECK(gpa + 8 <= g->ram_size);
    memcpy(g->ram + gpa, &value, 8);
}

static inline uint64_t ram_read64(struct guest *g, uint64_t gpa) {
    uint64_t value;
    CHECK(gpa + 8 <= g->ram_size);
    memcpy(&value, g->ram + gpa, 8);
    return value;
}

static inline uint32_t ram_read32(struct guest *g, uint64_t gpa) {
    uint32_t value;
    CHECK(gpa + 4 <= g->ram_size);
    memcpy(&value, g->ram + gpa, 4);
    return value;
}

static inline uint64_t alloc_page(struct guest *g) {
    uint64_t page = g->next_page;
    g->next_page += 4096;
    CHECK(g->next_page <= g->ram_size);
    memset(g->ram + page, 0, 4096);
    return page;
}

/* --- Tables (VT-d §9.1-9.3, §9.8). --- */

/* The context entry of `sid`, creating the bus's context table. */
static inline uint64_t context_entry_address(struct guest *g, uint64_t root, uint16_t sid) {
    uint64_t root_entry = root + (uint64_t)(sid >> 8) * 16;
    uint64_t low = ram_read64(g, root_entry);
    if ((low & 1) == 0) {
        low = alloc_page(g) | 1;
        ram_write64(g, root_entry, low);
    }
    return (low & ~0xFFFull) + (uint64_t)(sid & 0xFF) * 16;
}

/* A present context entry: translation type `tt` (0 translated, 2 pass-through), a
 * 4-level table (AW 2: 48 bits), domain `domain`. */
static inline void set_context(struct guest *g, uint64_t root, uint16_t sid, uint16_t domain,
                        uint64_t table, unsigned tt) {
    uint64_t entry = context_entry_address(g, root, sid);
    ram_write64(g, entry + 8, 2u | ((uint64_t)domain << 8));
    ram_write64(g, entry, 1u | ((uint64_t)tt << 2) | table);
}

/* The entry mapping `iova` at `level` (1: 4 KiB) in a 4-level table, creating tables. */
static inline uint64_t pte_address(struct guest *g, uint64_t table, uint64_t iova, unsigned level) {
    for (unsigned l = 4; l > level; l--) {
        uint64_t entry = table + ((iova >> (12 + 9 * (l - 1))) & 0x1FF) * 8;
        uint64_t value = ram_read64(g, entry);
        if ((value & 3) == 0) {
            value = alloc_page(g) | PTE_RW;
            ram_write64(g, entry, value);
        }
        table = value & 0x000FFFFFFFFFF000ull;
    }
    return table + ((iova >> (12 + 9 * (level - 1))) & 0x1FF) * 8;
}

/* Map `iova` to `gpa` with a page of 1 << size_shift bytes (12, 21 or 30). */
static inline void map_page(struct guest *g, uint64_t table, uint64_t iova, uint64_t gpa,
                     unsigned size_shift, unsigned perms) {
    unsigned level = (size_shift - 12) / 9 + 1;
    uint64_t ps = level > 1 ? (1u << 7) : 0;
    ram_write64(g, pte_address(g, table, iova, level), gpa | perms | ps);
}

static inline void unmap_page(struct guest *g, uint64_t table, uint64_t iova, unsigned size_shift) {
    ram_write64(g, pte_address(g, table, iova, (size_shift - 12) / 9 + 1), 0);
}

/* An IRTE in remapped format (§9.10) with source validation of `sid` (SVT 1, SQ 0). */
static inline void set_irte(struct guest *g, uint64_t table, uint16_t index, uint8_t vector,
                     uint32_t destination, uint16_t sid) {
    uint64_t low = 1u | ((uint64_t)vector << 16) | ((uint64_t)destination << 32);
    uint64_t high = sid | (1ull << 18);
    ram_write64(g, table + (uint64_t)index * 16 + 8, high);
    ram_write64(g, table + (uint64_t)index * 16, low);
}

/* --- The guest driver: MMIO. --- */

static inline uint32_t reg_read32(struct guest *g, uint64_t offset) {
    uint64_t value = 0;
    CHECK_OK(viommu_mmio_read(g->unit, offset, 4, &value));
    return (uint32_t)value;
}

static inline uint64_t reg_read64(struct guest *g, uint64_t offset) {
    uint64_t value = 0;
    CHECK_OK(viommu_mmio_read(g->unit, offset, 8, &value));
    return value;
}

static inline void reg_write32(struct guest *g, uint64_t offset, uint32_t value) {
    CHECK_OK(viommu_mmio_write(g->unit, offset, 4, value));
}

static inline void reg_write64(struct guest *g, uint64_t offset, uint64_t value) {
    CHECK_OK(viommu_mmio_write(g->unit, offset, 8, value));
}

static inline void set_root_table(struct guest *g, uint64_t root) {
    reg_write64(g, REG_RTADDR, root);
    reg_write32(g, REG_GCMD, g->gcmd | GCMD_SRTP);
    CHECK(reg_read32(g, REG_GSTS) & GCMD_SRTP);
}

static inline void enable_queued_invalidation(struct guest *g) {
    g->tail = 0;
    reg_write64(g, REG_IQT, 0);
    reg_write64(g, REG_IQA, QUEUE_BASE); /* QS 0: one 4 KiB page, 256 descriptors */
    g->gcmd |= GCMD_QIE;
    reg_write32(g, REG_GCMD, g->gcmd);
    CHECK(reg_read32(g, REG_GSTS) & GCMD_QIE);
}

static inline void queue_put(struct guest *g, uint64_t qw0, uint64_t qw1) {
    ram_write64(g, QUEUE_BASE + g->tail, qw0);
    ram_write64(g, QUEUE_BASE + g->tail + 8, qw1);
    g->tail = (g->tail + 16) % 4096;
}

/* Submit one descriptor and an invalidation wait with status write, then check the wait
 * completed: Linux's qi_submit_sync. */
static inline void qi_submit_sync(struct guest *g, uint64_t qw0, uint64_t qw1) {
    g->wait_sequence++;
    queue_put(g, qw0, qw1);
    /* Wait descriptor (type 5): SW (bit 5), FN (bit 6), status data in 63:32. */
    queue_put(g, 5u | (1u << 5) | (1u << 6) | ((uint64_t)g->wait_sequence << 32), WAIT_STATUS);
    reg_write64(g, REG_IQT, g->tail);
    CHECK((reg_read32(g, REG_FSTS) & FSTS_IQE) == 0);
    CHECK(ram_read32(g, WAIT_STATUS) == g->wait_sequence);
}

/* Context-cache invalidation (type 1): granularity 1 global, 3 device. */
static inline void invalidate_context(struct guest *g, unsigned granularity, uint16_t domain,
                               uint16_t sid) {
    qi_submit_sync(g, 1u | (granularity << 4) | ((uint64_t)domain << 16) | ((uint64_t)sid << 32),
                   0);
}

/* IOTLB invalidation (type 2) with drain reads/writes: granularity 1 global, 2 domain,
 * 3 pages (2^am pages at address). */
static inline void invalidate_iotlb(struct guest *g, unsigned granularity, uint16_t domain,
                             uint64_t address, unsigned am) {
    qi_submit_sync(g, 2u | (granularity << 4) | (3u << 6) | ((uint64_t)domain << 16),
                   address | am);
}

/* Global interrupt entry cache invalidation (type 4). */
static inline void invalidate_interrupt_entries(struct guest *g) {
    qi_submit_sync(g, 4u, 0);
}

static inline void enable_translation(struct guest *g) {
    g->gcmd |= GCMD_TE;
    reg_write32(g, REG_GCMD, g->gcmd);
    CHECK(reg_read32(g, REG_GSTS) & GCMD_TE);
}

/* Linux's boot: root table, queued invalidation, global invalidations, translation on. */
static inline void boot(struct guest *g, uint64_t root) {
    set_root_table(g, root);
    enable_queued_invalidation(g);
    invalidate_context(g, 1, 0, 0);
    invalidate_iotlb(g, 1, 0, 0, 0);
    enable_translation(g);
}

/* Linux's interrupt remapping enable: IRTA (2^(size+1) entries, x2APIC), SIRTP, a global
 * IEC invalidation, IRE. */
static inline void enable_interrupt_remapping(struct guest *g, uint64_t table, unsigned size) {
    reg_write64(g, REG_IRTA, table | (1u << 11) | size);
    reg_write32(g, REG_GCMD, g->gcmd | GCMD_SIRTP);
    CHECK(reg_read32(g, REG_GSTS) & GCMD_SIRTP);
    invalidate_interrupt_entries(g);
    g->gcmd |= GCMD_IRE;
    reg_write32(g, REG_GCMD, g->gcmd);
    CHECK(reg_read32(g, REG_GSTS) & GCMD_IRE);
}

/* A remappable-format MSI address for `handle` (no subhandle). */
static inline uint64_t remappable_msi_address(uint16_t handle) {
    return 0xFEE00000u | ((uint64_t)(handle & 0x7FFF) << 5) | (1u << 4) |
           ((uint64_t)(handle >> 15) << 2);
}

static inline viommu_dma_request dma_request(uint16_t sid, uint64_t address, uint8_t access) {
    viommu_dma_request request = {
        .source_id = sid,
        .access = access,
        .has_pasid = false,
        .pasid = 0,
        .address = address,
    };
    return request;
}

#endif /* VIOMMU_TEST_VMM_H */
