/*
 * viommu-vtd: an Intel VT-d remapping unit backed by the viommu engine.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#ifndef HW_I386_VIOMMU_VTD_H
#define HW_I386_VIOMMU_VTD_H

#include "hw/acpi/bios-linker-loader.h"

#define TYPE_VIOMMU_VTD_DEVICE "viommu-vtd"
#define TYPE_VIOMMU_VTD_MEMORY_REGION "viommu-vtd-iommu-memory-region"

/* Append the DMAR ACPI table describing the viommu-vtd unit (built by viommu). */
void viommu_vtd_build_dmar(GArray *table_data, BIOSLinker *linker,
                           const char *oem_id, const char *oem_table_id);

#endif
