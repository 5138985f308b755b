//! Second-level paging entries (§9.8).

use super::LeU64;
use bitfield_struct::bitfield;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// A second-level paging entry at any level (SL-PML5E, SL-PML4E, SL-PDPE, SL-PDE, SL-PTE).
///
/// Whether it points to a table or maps a page depends on its level and PS.
#[bitfield(u64, repr = LeU64, from = LeU64::new, into = LeU64::get)]
#[derive(PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct SecondLevelEntry {
    /// R: read permission.
    pub r: bool,
    /// W: write permission.
    pub w: bool,
    /// X: execute permission (only meaningful with ECAP.ERS).
    pub x: bool,
    /// EMT: extended memory type (ignored: ECAP.MTS is clear).
    #[bits(3)]
    pub emt: u8,
    /// IPAT: ignore PAT (ignored: ECAP.MTS is clear).
    pub ipat: bool,
    /// PS: page size — at a level that supports large pages, the entry maps a page.
    pub ps: bool,
    /// A: accessed (only with second-level A/D support).
    pub a: bool,
    /// D: dirty (only with second-level A/D support).
    pub d: bool,
    /// Ignored.
    #[bits(1)]
    pub ignored_10: u8,
    /// SNP: snoop behaviour (ignored: ECAP.SC is clear).
    pub snp: bool,
    /// ADDR: page-frame number of the next table or of the page (bits above HAW reserved).
    #[bits(40)]
    pub addr: u64,
    /// Ignored.
    #[bits(10)]
    pub ignored_61_52: u16,
    /// TM: transient mapping (device-TLB only).
    pub tm: bool,
    /// Ignored.
    pub ignored_63: bool,
}

impl SecondLevelEntry {
    /// Size of one entry in bytes.
    pub const SIZE: u64 = 8;
    /// Entries per table.
    pub const PER_TABLE: u64 = 512;

    /// Whether the entry is present, i.e. grants read or write (§9.8: "R and W both clear
    /// means not present").
    pub fn is_present(&self) -> bool {
        self.r() || self.w()
    }
}
