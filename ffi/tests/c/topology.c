/*
 * A VMM describing its PCI topology before the guest boots: the requester id each
 * device's DMA reaches the unit with (viommu_dma_alias), and the pre-boot check of the
 * configuration and topology (viommu_check_topology), including misuse.
 */
#include "vmm.h"

static viommu_pci_node host_bridge(uint16_t segment, uint8_t first, uint8_t last, bool bypass) {
    viommu_pci_node node;
    memset(&node, 0, sizeof node);
    node.kind = VIOMMU_PCI_NODE_HOST_BRIDGE;
    node.segment = segment;
    node.first_bus = first;
    node.last_bus = last;
    node.bypass_iommu = bypass;
    return node;
}

static viommu_pci_node function_at(uint32_t kind, uint32_t parent, uint8_t device,
                                   uint8_t function, uint8_t secondary_bus) {
    viommu_pci_node node;
    memset(&node, 0, sizeof node);
    node.kind = kind;
    node.parent = parent;
    node.device = device;
    node.function = function;
    node.secondary_bus = secondary_bus;
    return node;
}

#define MAX_SEEN 4

struct seen {
    size_t count;
    uint32_t kinds[MAX_SEEN];
    char messages[MAX_SEEN][512];
};

static void record_warning(void *opaque, uint32_t kind, const char *message) {
    struct seen *seen = opaque;
    CHECK(seen->count < MAX_SEEN);
    CHECK(message != NULL);
    seen->kinds[seen->count] = kind;
    snprintf(seen->messages[seen->count], sizeof seen->messages[0], "%s", message);
    seen->count++;
}

static viommu_dma_alias_info alias_of(const viommu_pci_node *nodes, size_t count,
                                      uint32_t node) {
    viommu_dma_alias_info alias;
    memset(&alias, 0xAA, sizeof alias);
    CHECK_OK(viommu_dma_alias(nodes, count, node, &alias));
    return alias;
}

int main(void) {
    /*
     * 0000:00 host bridge (remapped), buses 0x00..=0x7f
     *   00:01.0 root port -> bus 1
     *     01:00.0 PCIe-to-PCI bridge -> bus 2
     *       02:03.0, 02:03.1 conventional PCI endpoint functions
     *   00:04.0 PCIe endpoint
     * 0000:80 host bridge with bypass_iommu, buses 0x80..=0xff
     *   80:02.0 PCIe endpoint
     */
    viommu_pci_node nodes[] = {
        host_bridge(0, 0x00, 0x7f, false),
        function_at(VIOMMU_PCI_NODE_ROOT_PORT, 0, 1, 0, 1),
        function_at(VIOMMU_PCI_NODE_PCIE_TO_PCI_BRIDGE, 1, 0, 0, 2),
        function_at(VIOMMU_PCI_NODE_PCI_ENDPOINT, 2, 3, 0, 0),
        function_at(VIOMMU_PCI_NODE_PCI_ENDPOINT, 2, 3, 1, 0),
        function_at(VIOMMU_PCI_NODE_PCIE_ENDPOINT, 0, 4, 0, 0),
        host_bridge(0, 0x80, 0xff, true),
        function_at(VIOMMU_PCI_NODE_PCIE_ENDPOINT, 6, 2, 0, 0),
    };
    const size_t count = sizeof nodes / sizeof nodes[0];

    /* Both conventional functions alias to the bridge's (secondary bus, 00.0). */
    for (uint32_t node = 3; node <= 4; node++) {
        viommu_dma_alias_info a = alias_of(nodes, count, node);
        CHECK(!a.bypass);
        CHECK(a.segment == 0);
        CHECK(a.source_id == 0x0200);
    }
    /* A PCIe endpoint is its own requester id: 00:04.0. */
    viommu_dma_alias_info alias = alias_of(nodes, count, 5);
    CHECK(!alias.bypass && alias.segment == 0 && alias.source_id == ((4u << 3) | 0u));
    /* Below a bypassed host bridge: no remapping. */
    alias = alias_of(nodes, count, 7);
    CHECK(alias.bypass && alias.segment == 0 && alias.source_id == 0);

    /* A host bridge, or a node that is not there, has no alias. */
    CHECK_STATUS(viommu_dma_alias(nodes, count, 0, &alias), VIOMMU_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(viommu_dma_alias(nodes, count, (uint32_t)count, &alias),
                 VIOMMU_STATUS_INVALID_ARGUMENT);
    CHECK(!alias.bypass && alias.segment == 0 && alias.source_id == 0);

    /* The default configuration remaps interrupts: the bypassed device loses MSI. */
    viommu_config config;
    CHECK_OK(viommu_config_default(&config));
    CHECK(config.interrupt_remapping);
    struct seen seen;
    memset(&seen, 0, sizeof seen);
    size_t warnings = 99;
    CHECK_OK(viommu_check_topology(&config, nodes, count, 4, record_warning, &seen, &warnings));
    CHECK(warnings == 1 && seen.count == 1);
    CHECK(seen.kinds[0] == VIOMMU_WARNING_BYPASSED_DEVICES_LOSE_MSI);
    CHECK(strstr(seen.messages[0], "MSI") != NULL);
    CHECK(strstr(seen.messages[0], "0000:80:02.0") != NULL);

    /* Without the bypassed host bridge (the first six nodes): nothing to report. */
    memset(&seen, 0, sizeof seen);
    warnings = 99;
    CHECK_OK(viommu_check_topology(&config, nodes, 6, 4, record_warning, &seen, &warnings));
    CHECK(warnings == 0 && seen.count == 0);

    /* NULL pointers. */
    CHECK_STATUS(viommu_dma_alias(NULL, count, 3, &alias), VIOMMU_STATUS_NULL_POINTER);
    CHECK_STATUS(viommu_dma_alias(nodes, count, 3, NULL), VIOMMU_STATUS_NULL_POINTER);
    CHECK_STATUS(viommu_check_topology(NULL, nodes, count, 0, record_warning, &seen, &warnings),
                 VIOMMU_STATUS_NULL_POINTER);
    CHECK_STATUS(viommu_check_topology(&config, NULL, count, 0, record_warning, &seen, &warnings),
                 VIOMMU_STATUS_NULL_POINTER);
    CHECK_STATUS(viommu_check_topology(&config, nodes, count, 0, NULL, &seen, &warnings),
                 VIOMMU_STATUS_NULL_POINTER);
    CHECK_STATUS(viommu_check_topology(&config, nodes, count, 0, record_warning, &seen, NULL),
                 VIOMMU_STATUS_NULL_POINTER);
    CHECK(seen.count == 0);

    /* Bad values: an unknown kind, too many nodes, a device number above 31, a cycle. */
    viommu_pci_node bad[sizeof nodes / sizeof nodes[0]];
    memcpy(bad, nodes, sizeof nodes);
    bad[5].kind = 42;
    CHECK_STATUS(viommu_dma_alias(bad, count, 3, &alias), VIOMMU_STATUS_INVALID_ARGUMENT);
    warnings = 99;
    CHECK_STATUS(viommu_check_topology(&config, bad, count, 0, record_warning, &seen, &warnings),
                 VIOMMU_STATUS_INVALID_ARGUMENT);
    CHECK(warnings == 0 && seen.count == 0);
    CHECK_STATUS(viommu_dma_alias(nodes, VIOMMU_MAX_PCI_NODES + 1, 3, &alias),
                 VIOMMU_STATUS_INVALID_ARGUMENT);
    memcpy(bad, nodes, sizeof nodes);
    bad[5].device = 32;
    CHECK_STATUS(viommu_dma_alias(bad, count, 3, &alias), VIOMMU_STATUS_INVALID_ARGUMENT);
    memcpy(bad, nodes, sizeof nodes);
    bad[1].parent = 2; /* root port <-> PCIe-to-PCI bridge */
    CHECK_STATUS(viommu_dma_alias(bad, count, 3, &alias), VIOMMU_STATUS_INVALID_ARGUMENT);

    /* An impossible configuration. */
    viommu_config impossible = config;
    impossible.guest_address_width = 40;
    CHECK_STATUS(
        viommu_check_topology(&impossible, nodes, count, 0, record_warning, &seen, &warnings),
        VIOMMU_STATUS_INVALID_CONFIG);
    CHECK(seen.count == 0);

    printf("topology: ok\n");
    return 0;
}
