//! What the engine tells its embedder: interrupt messages and invalidations.

/// An interrupt message (MSI) the unit sends: the fault event or the invalidation
/// completion event, addressed as FEADDR/FEUADDR/FEDATA (or IE*) were programmed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsiMessage {
    /// Message address (upper register in bits 63:32).
    pub address: u64,
    /// Message data.
    pub data: u32,
}

/// A cache invalidation the guest performed, reported so a VMM can drop what it derived
/// from the unit's translations (its own IOTLB, vhost's, KVM MSI routes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvalidationEvent {
    /// Every context-cache entry (and so every device's translation) may have changed.
    ContextGlobal,
    /// Context entries of one domain.
    ContextDomain {
        /// Domain id.
        domain_id: u16,
    },
    /// Context entries of the devices `source_id`, with the function bits that
    /// `function_mask` (FM) names ignored, in one domain.
    ContextDevice {
        /// Domain id.
        domain_id: u16,
        /// Source id (bus:device.function).
        source_id: u16,
        /// FM: which source-id function bits are ignored — 0 none, 1 bit 2, 2 bits 2:1,
        /// 3 bits 2:0 (phantom functions).
        function_mask: u8,
    },
    /// Every IOTLB entry.
    IotlbGlobal,
    /// IOTLB entries of one domain.
    IotlbDomain {
        /// Domain id.
        domain_id: u16,
    },
    /// IOTLB entries for `2^address_mask` pages at `address` in one domain.
    IotlbPages {
        /// Domain id.
        domain_id: u16,
        /// First byte of the range (aligned to its size).
        address: u64,
        /// The range is `2^address_mask` 4 KiB pages.
        address_mask: u8,
        /// Invalidation hint: only leaf entries changed.
        leaf_only: bool,
    },
    /// A device-TLB invalidation for an ATS-capable device (the VMM forwards it).
    DeviceTlb {
        /// Source id of the device.
        source_id: u16,
        /// Physical-function source id (for SR-IOV virtual functions).
        pf_source_id: u16,
        /// First byte of the range.
        address: u64,
        /// Size of the range in bytes (a power of two, at least 4 KiB).
        size: u64,
    },
    /// Every interrupt entry cache entry.
    InterruptEntriesGlobal,
    /// `2^index_mask` interrupt entries starting at `index`.
    InterruptEntries {
        /// First interrupt index.
        index: u16,
        /// The range is `2^index_mask` entries.
        index_mask: u8,
    },
}

/// The embedder's side of the unit: where interrupts go and who hears of invalidations.
///
/// Every method has a default that does nothing, so an embedder implements only what it
/// needs. Methods are called without the unit's internal lock held and may call back into
/// the unit.
pub trait Host: Sync {
    /// Deliver an interrupt message the unit generated (fault event, invalidation event).
    fn raise_msi(&self, msi: MsiMessage) {
        let _ = msi;
    }

    /// Hear that the guest invalidated something.
    fn invalidated(&self, event: InvalidationEvent) {
        let _ = event;
    }
}

/// A host that ignores everything: for tests, fuzzing and embedders without caches.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoHost;

impl Host for NoHost {}

impl<T: Host + ?Sized> Host for &T {
    fn raise_msi(&self, msi: MsiMessage) {
        (**self).raise_msi(msi);
    }
    fn invalidated(&self, event: InvalidationEvent) {
        (**self).invalidated(event);
    }
}
