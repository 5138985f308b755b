# Minimal x86_64-softmmu device set for the viommu harness (ffi/qemu/build.sh passes
# --without-default-devices --with-devices-x86_64=viommu-min). With
# --without-default-devices only what is listed here (and what it `select`s) is built.
# Add the Kconfig symbol of any new device here, e.g. CONFIG_VIOMMU_VTD=y.

CONFIG_Q35=y
CONFIG_VTD=y
CONFIG_E1000E_PCI_EXPRESS=y
CONFIG_VIRTIO_PCI=y
CONFIG_VIRTIO_BLK=y
CONFIG_VIRTIO_NET=y
CONFIG_PCIE_PORT=y
CONFIG_VIOMMU_VTD=y
