//! The one generic lock-free translation cache.
//!
//! [`SeqCache`] backs the IOTLB, the context cache and the interrupt entry
//! cache. It is a fixed-size, [`WAYS`]-way set-associative array of slots; each
//! slot holds `W` words of caller data plus a little bookkeeping, all in
//! atomic `u64`s, so the whole thing is safe code, needs no heap and can live
//! in a `static`. Lookups take no lock and write nothing.
//!
//! # Slot layout
//!
//! Every slot has:
//!
//! * `seq`: a sequence counter. Even means stable, odd means a writer holds the
//!   slot. Writers lock the slot with a CAS from even to odd, so there is at
//!   most one writer per slot, and publish with `seq += 2`.
//! * `meta`: a valid bit and the index of the domain *bucket* the entry belongs
//!   to.
//! * `tag`: the global generation (high 32 bits) and the bucket generation (low
//!   32 bits) the entry was computed under.
//! * `words`: the caller's `W` words (key and value, in whatever encoding the
//!   caller likes).
//!
//! An entry is *live* iff it is valid, its global generation equals the current
//! global generation and its bucket generation equals the current generation of
//! its bucket. Domain ids are folded into [`DOMAIN_BUCKETS`] buckets (domain
//! modulo the bucket count) so memory stays bounded whatever the domain-id
//! width; invalidating a domain bumps its bucket's generation, which also kills
//! the entries of every other domain sharing that bucket. Killing too much is
//! always safe for a cache.
//!
//! # Reading: a seqlock
//!
//! A reader loads `seq` (Acquire) and skips the way if it is odd, loads the
//! other words with Relaxed loads, issues an Acquire fence and reloads `seq`
//! (Relaxed). It accepts what it read only if both `seq` loads agree. A writer
//! locks with an Acquire CAS, issues a Release fence, writes Relaxed and
//! publishes with a Release store. If any word the reader loaded was written
//! by a writer that locked after the reader's first `seq` load, the writer's
//! Release fence synchronises with the reader's Acquire fence, so the second
//! `seq` load sees the lock (or something later) and the read is rejected. A
//! torn entry is therefore never returned, and the caller's `matches` closure
//! only ever sees consistent words. A rejected read is simply a miss: the
//! caller walks the guest tables, which is always correct.
//!
//! # Invalidation and racing walks
//!
//! A cache fill is a three-step affair: the caller takes a [`Snapshot`]
//! *before* walking the guest tables, walks, then calls
//! [`SeqCache::insert`] with the result. Meanwhile the guest may change its
//! tables and issue an invalidation. The guarantee we need is:
//!
//! > A walk whose snapshot was taken before an invalidation began never leaves
//! > an entry visible after that invalidation returns.
//!
//! (A walk that snapshots after the invalidation began reads tables the guest
//! finished changing before it asked for the invalidation, so its result is
//! fresh and may stay.)
//!
//! Three mechanisms provide it.
//!
//! 1. **Generations.** [`invalidate_all`](SeqCache::invalidate_all) and
//!    [`invalidate_domain`](SeqCache::invalidate_domain) are O(1): they bump a
//!    generation counter. A lookup that starts after the bump returned reads
//!    the new value (coherence) and rejects every entry tagged with the old
//!    one. `insert` tags the entry with the generations *from the snapshot*,
//!    never the current ones, so a walk that snapshotted before the bump
//!    produces an entry that is dead on arrival.
//!
//! 2. **The epoch.** A 64-bit counter bumped by *every* invalidation. The
//!    bump is what makes targeted removal ([`invalidate_where`], or
//!    [`begin_removal`] once for several sets, and the
//!    generation wrap-around sweep below) race-free, by a store-buffering
//!    argument. The inserter publishes its entry, issues a SeqCst fence `Fi`
//!    and re-reads the epoch. The invalidator bumps the epoch, issues a SeqCst
//!    fence `Fv` and then reads the slots. The fences are totally ordered:
//!
//!    * `Fi` before `Fv`: every load the invalidator makes after `Fv` sees the
//!      inserter's publication or something later, so the invalidator examines
//!      the entry (or whatever replaced it) and removes it if it matches.
//!    * `Fv` before `Fi`: the inserter's epoch load sees the bump, so it
//!      removes its own entry (CAS-locking the slot only if `seq` is still the
//!      value it published; if someone else has locked the slot since, the
//!      entry has been overwritten or cleared already) and returns `false`.
//!
//!    The same argument lets the invalidator *skip* a slot it finds locked,
//!    torn, or changed under its CAS: the slot's `seq` then moved past a value
//!    the invalidator loaded after `Fv`, so whichever writer moved it published
//!    before its own fence, which must come after `Fv` (otherwise the
//!    invalidator would have seen that publication), so that writer sees the
//!    bump. If it was an inserter with an old snapshot it removes its entry;
//!    if it was a remover the slot ends up empty either way. No invalidator
//!    ever waits on a writer, and no writer ever waits on anything.
//!
//! 3. **Ordering of the counters.** Invalidators bump the generation *before*
//!    the epoch; [`snapshot`](SeqCache::snapshot) reads the epoch (Acquire)
//!    *before* the generations. So a snapshot that saw an old generation also
//!    saw an old epoch (had it seen the new epoch, the Release half of the
//!    epoch bump would make the earlier generation bump visible). That is what
//!    makes the wrap-around sweep catch every racing insert tagged with a
//!    pre-wrap generation.
//!
//! [`unchanged_since`](SeqCache::unchanged_since) compares the epoch, so it
//! reports any invalidation of any kind since the snapshot; `insert` returns
//! `false` exactly when that check fails after publication (or it could not
//! lock a slot and the check fails), in which case the entry is not left in
//! the cache by this insert and the caller must re-walk.
//!
//! # Generation wrap-around
//!
//! Generations are `u32` and wrap. An entry tagged `g` must not come back to
//! life when its counter returns to `g`. Whenever a bump lands the counter on
//! a multiple of 2^31 (0 or 2^31), the invalidator clears *every* slot (O(N),
//! once per 2^31 bumps). Sweeping at both half-points rather than only on the
//! wrap to 0 means that no concurrent lookup can ever see a revived entry
//! either: after the sweep at a point `L`, all remaining entries carry tags
//! first current at or after `L`, and the counter sweeps again 2^31 bumps
//! later, long before it could return to any of those tags. Inserts racing
//! the sweep are handled by the epoch argument above.
//!
//! # What the caller must provide
//!
//! * The same `hash` for the same key on lookup, insert and
//!   `invalidate_where`, and a `matches`/`same_key`/`pred` closure that
//!   compares the full key, including the domain id when two domains may
//!   share a bucket (a lookup only considers entries inserted under a
//!   snapshot of the same bucket).
//! * Some happens-before edge (a lock, a queue, a register write) between an
//!   invalidation returning and the lookups that must not see the old
//!   entries; that is how "after it returns" is defined.
//!
//! Two concurrent inserts of the same key may both land in the set; both were
//! correct translations when walked and both are killed by any invalidation
//! covering them, so lookups may return either.
//!
//! [`invalidate_where`]: SeqCache::invalidate_where
//! [`begin_removal`]: SeqCache::begin_removal

mod sync;

#[cfg(all(test, not(loom)))]
mod tests;

use sync::{fence, AtomicU32, AtomicU64, Ordering};

/// Associativity: the number of slots (ways) in each set.
pub const WAYS: usize = 4;

/// Number of per-domain generation counters; a domain uses bucket
/// `domain % DOMAIN_BUCKETS`.
pub const DOMAIN_BUCKETS: usize = 1024;

/// `meta` bit set while a slot holds an entry.
const VALID: u64 = 1 << 63;

/// Mask extracting a bucket index from `meta`.
const BUCKET_MASK: u64 = (DOMAIN_BUCKETS as u64) - 1;

/// A generation bump that lands on a multiple of this sweeps the cache.
const SWEEP_PERIOD_MASK: u32 = (1 << 31) - 1;

/// Packs the two generations into a slot tag.
#[inline]
const fn tag_of(global: u32, bucket_gen: u32) -> u64 {
    ((global as u64) << 32) | bucket_gen as u64
}

/// Bucket index of a domain.
#[inline]
const fn bucket_of(domain: u16) -> usize {
    domain as usize & (DOMAIN_BUCKETS - 1)
}

/// One slot; see the module documentation for the protocol.
///
/// Cache-line aligned: with the 4-word entries viommu uses, a slot is exactly one 64-byte
/// line, so a probe touches one line per way and the index scales by a shift.
#[cfg_attr(not(loom), repr(align(64)))]
struct Slot<const W: usize> {
    /// Sequence counter: odd while a writer holds the slot.
    seq: AtomicU64,
    /// `VALID | bucket`, or 0 when empty.
    meta: AtomicU64,
    /// Global generation (high half) and bucket generation (low half).
    tag: AtomicU64,
    /// The caller's words.
    words: [AtomicU64; W],
}

/// A consistent copy of a slot, as returned by [`Slot::read`].
struct Entry<const W: usize> {
    seq: u64,
    meta: u64,
    tag: u64,
    words: [u64; W],
}

impl<const W: usize> Slot<W> {
    #[cfg(not(loom))]
    const fn new() -> Self {
        Slot {
            seq: AtomicU64::new(0),
            meta: AtomicU64::new(0),
            tag: AtomicU64::new(0),
            words: [const { AtomicU64::new(0) }; W],
        }
    }

    #[cfg(loom)]
    fn new() -> Self {
        Slot {
            seq: AtomicU64::new(0),
            meta: AtomicU64::new(0),
            tag: AtomicU64::new(0),
            words: core::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Seqlock read of the whole slot. `None` if a writer held the slot at
    /// any point during the read.
    #[inline]
    fn read(&self) -> Option<Entry<W>> {
        let seq = self.seq.load(Ordering::Acquire);
        if seq & 1 != 0 {
            return None;
        }
        let meta = self.meta.load(Ordering::Relaxed);
        let tag = self.tag.load(Ordering::Relaxed);
        let words = self.words.each_ref().map(|w| w.load(Ordering::Relaxed));
        // Orders the loads above before the re-check below; pairs with the
        // Release fence writers issue right after locking.
        fence(Ordering::Acquire);
        (self.seq.load(Ordering::Relaxed) == seq).then_some(Entry {
            seq,
            meta,
            tag,
            words,
        })
    }

    /// Locks the slot if its sequence counter is still `seq` (even).
    #[inline]
    fn try_lock(&self, seq: u64) -> bool {
        let locked = self
            .seq
            .compare_exchange(
                seq,
                seq.wrapping_add(1),
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .is_ok();
        if locked {
            // Any reader that sees one of our upcoming data writes must also
            // see the odd `seq` on its re-check (see `read`).
            fence(Ordering::Release);
        }
        locked
    }

    /// Releases a slot locked at `seq`, publishing whatever was written.
    /// Returns the published sequence value.
    #[inline]
    fn unlock(&self, seq: u64) -> u64 {
        let published = seq.wrapping_add(2);
        self.seq.store(published, Ordering::Release);
        published
    }

    /// Empties the slot if it still holds exactly what was read at `seq`.
    /// Giving up when the CAS fails is fine: see the module documentation.
    #[inline]
    fn clear_at(&self, seq: u64) {
        if self.try_lock(seq) {
            self.meta.store(0, Ordering::Relaxed);
            self.unlock(seq);
        }
    }
}

/// What a walker captured before it started: the epoch and the generations
/// its result will be tagged with.
///
/// Take it with [`SeqCache::snapshot`] *before* reading any guest table, and
/// hand it to [`SeqCache::insert`] (or [`SeqCache::unchanged_since`]) after.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// Invalidation epoch at snapshot time.
    epoch: u64,
    /// Global generation at snapshot time.
    global: u32,
    /// Generation of the domain's bucket at snapshot time.
    domain_gen: u32,
    /// The domain's bucket.
    bucket: u16,
}

/// An entry [`SeqCache::publish`]ed and visible, not yet checked against the
/// invalidations that may have raced the walk that computed it.
///
/// [`confirm`](Self::confirm) (or [`confirm_with`](Self::confirm_with), or
/// dropping it) issues the SeqCst fence of the protocol and re-reads the epoch;
/// if an invalidation moved it since the snapshot, the entry is taken back out.
/// Between `publish` and the confirmation the entry may already be looked up:
/// it is exactly as visible as with [`SeqCache::insert`], which does the two
/// steps back to back.
#[must_use = "confirm the entry: an unconfirmed entry may outlive an invalidation that raced it"]
#[derive(Debug)]
pub struct Published<'a, const W: usize, const N: usize> {
    cache: &'a SeqCache<W, N>,
    snap: Snapshot,
    /// The slot index written and the sequence value it was published at;
    /// `None` if no way could be locked (nothing was written).
    written: Option<(usize, u64)>,
    /// The outcome, once checked.
    confirmed: Option<bool>,
}

impl<const W: usize, const N: usize> Published<'_, W, N> {
    /// Checks the entry against racing invalidations: `true` if none happened
    /// since the snapshot, else the entry is removed (unless already
    /// replaced) and the caller must re-walk. See [`SeqCache::insert`].
    pub fn confirm(mut self) -> bool {
        fence(Ordering::SeqCst);
        self.check_after_fence()
    }

    /// Confirms this entry and `other` (of any cache) with one fence: the
    /// fence orders both publications before both epoch checks, so each is
    /// exactly as safe as confirming it alone. Returns both outcomes.
    pub fn confirm_with<const W2: usize, const N2: usize>(
        mut self,
        mut other: Published<'_, W2, N2>,
    ) -> (bool, bool) {
        fence(Ordering::SeqCst);
        (self.check_after_fence(), other.check_after_fence())
    }

    /// The epoch check of the store-buffering argument (module docs, point 2).
    /// Must follow a SeqCst fence issued after the publication; runs once.
    fn check_after_fence(&mut self) -> bool {
        if let Some(done) = self.confirmed {
            return done;
        }
        let unchanged = self.cache.epoch.load(Ordering::Acquire) == self.snap.epoch;
        if !unchanged {
            if let Some((index, published)) = self.written {
                // Raced: take the entry back out unless someone already replaced it.
                self.cache.slots[index & (N - 1)].clear_at(published);
            }
        }
        self.confirmed = Some(unchanged);
        unchanged
    }
}

impl<const W: usize, const N: usize> Drop for Published<'_, W, N> {
    fn drop(&mut self) {
        if self.confirmed.is_none() {
            fence(Ordering::SeqCst);
            self.check_after_fence();
        }
    }
}

/// A lock-free, fixed-size, [`WAYS`]-way set-associative cache of `N` slots,
/// each holding `W` `u64` words of caller data.
///
/// `N` must be a power of two and a multiple of [`WAYS`] (checked at compile
/// time). See the [module documentation](self) for the protocol.
pub struct SeqCache<const W: usize, const N: usize> {
    slots: [Slot<W>; N],
    /// Bumped by every invalidation of any kind.
    epoch: AtomicU64,
    /// Generation shared by all entries.
    global: AtomicU32,
    /// Per-bucket domain generations.
    buckets: [AtomicU32; DOMAIN_BUCKETS],
}

impl<const W: usize, const N: usize> SeqCache<W, N> {
    /// Number of sets.
    const SETS: usize = N / WAYS;

    /// Compile-time check of the cache geometry, forced by [`Self::build`].
    const ASSERT_SHAPE: () = assert!(
        N.is_power_of_two() && N % WAYS == 0,
        "SeqCache: N must be a power of two and a multiple of WAYS"
    );

    /// An empty cache, usable in a `static`.
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        Self::build(0, 0)
    }

    /// An empty cache (loom's atomics cannot be built in a `const fn`).
    #[cfg(loom)]
    pub fn new() -> Self {
        Self::build(0, 0)
    }

    /// An empty cache whose global generation starts at `global` and every
    /// bucket generation at `bucket_gen`, to exercise wrap-around.
    #[cfg(any(test, loom))]
    pub fn with_generations(global: u32, bucket_gen: u32) -> Self {
        Self::build(global, bucket_gen)
    }

    /// Builds an empty cache with the given starting generations.
    #[cfg(not(loom))]
    const fn build(global: u32, bucket_gen: u32) -> Self {
        const { Self::ASSERT_SHAPE };
        SeqCache {
            slots: [const { Slot::new() }; N],
            epoch: AtomicU64::new(0),
            global: AtomicU32::new(global),
            buckets: {
                // `[expr; LEN]` needs a `Copy` or const operand, and atomics
                // are neither; fill a const-built array in place instead.
                let mut buckets = [const { AtomicU32::new(0) }; DOMAIN_BUCKETS];
                let mut i = 0;
                while i < DOMAIN_BUCKETS {
                    buckets[i] = AtomicU32::new(bucket_gen);
                    i += 1;
                }
                buckets
            },
        }
    }

    /// Builds an empty cache with the given starting generations. Values are
    /// set at construction rather than stored afterwards, so loom does not
    /// see 1024 extra scheduling points.
    #[cfg(loom)]
    fn build(global: u32, bucket_gen: u32) -> Self {
        const { Self::ASSERT_SHAPE };
        SeqCache {
            slots: core::array::from_fn(|_| Slot::new()),
            epoch: AtomicU64::new(0),
            global: AtomicU32::new(global),
            buckets: core::array::from_fn(|_| AtomicU32::new(bucket_gen)),
        }
    }

    /// Index of the first slot of the set chosen by `hash`.
    ///
    /// The callers' hashes carry a page number (or source id) in their low bits, which
    /// already spreads consecutive keys over consecutive sets, plus tag fields above bit
    /// 16 (a source id under a page number, a domain id at bit 40); folding those down
    /// with two shifts mixes them in without a multiply on the hit path. A guest that
    /// crafts colliding keys only evicts its own translations.
    #[inline]
    fn set_base(hash: u64) -> usize {
        let mixed = hash ^ (hash >> 17) ^ (hash >> 40);
        (mixed as usize & (Self::SETS - 1)) * WAYS
    }

    /// The slot `way` of the set starting at `base`. The mask keeps the index
    /// in bounds whatever the arguments, so this cannot panic.
    #[inline]
    fn slot(&self, base: usize, way: usize) -> &Slot<W> {
        &self.slots[base.wrapping_add(way) & (N - 1)]
    }

    /// The generation counter of a bucket (index masked into range).
    #[inline]
    fn bucket_gen(&self, bucket: usize) -> &AtomicU32 {
        &self.buckets[bucket & (DOMAIN_BUCKETS - 1)]
    }

    /// Whether a consistently read entry is live under global generation
    /// `global` and the current generation of its own bucket.
    #[inline]
    fn is_live(&self, copy: &Entry<W>, global: u32) -> bool {
        if copy.meta & VALID == 0 {
            return false;
        }
        let bucket = (copy.meta & BUCKET_MASK) as usize;
        let gen = self.bucket_gen(bucket).load(Ordering::Acquire);
        copy.tag == tag_of(global, gen)
    }

    /// Captures the epoch and generations a walk for `domain` will be tagged
    /// with. Call it *before* walking guest tables.
    #[inline]
    pub fn snapshot(&self, domain: u16) -> Snapshot {
        let bucket = bucket_of(domain);
        // Epoch first: invalidators bump generations before the epoch, so a
        // snapshot holding an old generation also holds an old epoch.
        let epoch = self.epoch.load(Ordering::Acquire);
        let global = self.global.load(Ordering::Acquire);
        let domain_gen = self.bucket_gen(bucket).load(Ordering::Acquire);
        Snapshot {
            epoch,
            global,
            domain_gen,
            bucket: bucket as u16,
        }
    }

    /// Probes the set chosen by `hash` and returns the words of a live entry
    /// of `domain`'s bucket for which `matches` is true.
    ///
    /// Never blocks and never writes. A way that is being written is treated
    /// as a miss.
    #[inline]
    pub fn lookup(
        &self,
        domain: u16,
        hash: u64,
        matches: impl Fn(&[u64; W]) -> bool,
    ) -> Option<[u64; W]> {
        let bucket = bucket_of(domain);
        let want_meta = VALID | bucket as u64;
        let want_tag = tag_of(
            self.global.load(Ordering::Acquire),
            self.bucket_gen(bucket).load(Ordering::Acquire),
        );
        let base = Self::set_base(hash);
        for way in 0..WAYS {
            let slot = self.slot(base, way);
            let seq = slot.seq.load(Ordering::Acquire);
            if seq & 1 != 0 {
                continue;
            }
            // Cheap rejection before loading the words. These loads are not
            // validated yet, but rejecting on a torn value only costs a miss.
            if slot.meta.load(Ordering::Relaxed) != want_meta
                || slot.tag.load(Ordering::Relaxed) != want_tag
            {
                continue;
            }
            let words = slot.words.each_ref().map(|w| w.load(Ordering::Relaxed));
            fence(Ordering::Acquire);
            if slot.seq.load(Ordering::Relaxed) != seq {
                continue;
            }
            // Only now, with meta, tag and words known to be one consistent
            // entry, is the caller's predicate consulted.
            if matches(&words) {
                return Some(words);
            }
        }
        None
    }

    /// Inserts an entry computed by a walk that started at `snap`.
    ///
    /// Replaces a live entry of the set for which `same_key` is true, else an
    /// empty or dead way, else a pseudo-random victim. The entry is tagged with
    /// the generations in `snap`, so it is dead on arrival if a domain or
    /// global invalidation happened since.
    ///
    /// Returns `false` if an invalidation raced the walk (the epoch moved
    /// since `snap`); the entry is then not left visible by this call and the
    /// caller must re-walk. If the chosen way is busy, nothing is inserted
    /// (this is a cache) and the result is
    /// [`unchanged_since`](Self::unchanged_since)`(&snap)`.
    ///
    /// The same as [`publish`](Self::publish) followed by
    /// [`Published::confirm`].
    pub fn insert(
        &self,
        snap: Snapshot,
        hash: u64,
        words: [u64; W],
        same_key: impl Fn(&[u64; W]) -> bool,
    ) -> bool {
        self.publish(snap, hash, words, same_key).confirm()
    }

    /// The first half of [`insert`](Self::insert): writes the entry and makes it
    /// visible, but leaves the check against racing invalidations to the
    /// returned [`Published`] — so that a caller filling two caches can confirm
    /// both with one fence ([`Published::confirm_with`]). Dropping the
    /// `Published` confirms it.
    pub fn publish(
        &self,
        snap: Snapshot,
        hash: u64,
        words: [u64; W],
        same_key: impl Fn(&[u64; W]) -> bool,
    ) -> Published<'_, W, N> {
        let base = Self::set_base(hash);
        let global = self.global.load(Ordering::Acquire);

        // Pick a way, remembering the sequence value it was examined at so
        // the CAS below fails if it changed since.
        let mut seen = [None; WAYS];
        let mut same = None;
        let mut free = None;
        for (way, seen) in seen.iter_mut().enumerate() {
            let Some(copy) = self.slot(base, way).read() else {
                continue;
            };
            *seen = Some(copy.seq);
            if !self.is_live(&copy, global) {
                free = free.or(Some((way, copy.seq)));
            } else if same_key(&copy.words) {
                same = Some((way, copy.seq));
                break;
            }
        }
        let choice = same.or(free).or_else(|| {
            // A full set: evict a way picked from the ways' sequence counters (each
            // write moves one of them, so successive evictions in a set move around)
            // and the hash — pseudo-random, and no shared counter to write.
            let mix = seen
                .iter()
                .flatten()
                .fold(hash, |acc, seq| acc ^ (seq >> 1));
            let way = (mix ^ (mix >> 7)) as usize % WAYS;
            seen.get(way).copied().flatten().map(|seq| (way, seq))
        });
        let written = choice.and_then(|(way, seq)| {
            let slot = self.slot(base, way);
            if !slot.try_lock(seq) {
                return None;
            }
            slot.meta.store(
                VALID | (u64::from(snap.bucket) & BUCKET_MASK),
                Ordering::Relaxed,
            );
            slot.tag
                .store(tag_of(snap.global, snap.domain_gen), Ordering::Relaxed);
            for (dst, src) in slot.words.iter().zip(words) {
                dst.store(src, Ordering::Relaxed);
            }
            Some((base.wrapping_add(way), slot.unlock(seq)))
        });
        Published {
            cache: self,
            snap,
            written,
            confirmed: None,
        }
    }

    /// The epoch counter: bumped (SeqCst) by every invalidation of any kind,
    /// before the invalidation returns.
    pub fn epoch_counter(&self) -> &AtomicU64 {
        &self.epoch
    }

    /// True while no invalidation of any kind happened since `snap` was taken.
    /// Use it before returning a result that was not cached.
    #[inline]
    pub fn unchanged_since(&self, snap: &Snapshot) -> bool {
        self.epoch.load(Ordering::Acquire) == snap.epoch
    }

    /// Bumps the epoch after a generation bump, and sweeps the whole cache if
    /// the generation just reached a sweep point (`new_gen % 2^31 == 0`).
    fn after_generation_bump(&self, new_gen: u32) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        if new_gen & SWEEP_PERIOD_MASK == 0 {
            fence(Ordering::SeqCst);
            for slot in &self.slots {
                if let Some(copy) = slot.read() {
                    if copy.meta & VALID != 0 {
                        slot.clear_at(copy.seq);
                    }
                }
            }
        }
    }

    /// Invalidates every entry. O(1) except once per 2^31 calls.
    pub fn invalidate_all(&self) {
        let new = self.global.fetch_add(1, Ordering::SeqCst).wrapping_add(1);
        self.after_generation_bump(new);
    }

    /// Invalidates every entry of `domain`, and of the other domains sharing
    /// its bucket. O(1) except once per 2^31 calls per bucket.
    pub fn invalidate_domain(&self, domain: u16) {
        let new = self
            .bucket_gen(bucket_of(domain))
            .fetch_add(1, Ordering::SeqCst)
            .wrapping_add(1);
        self.after_generation_bump(new);
    }

    /// Removes the valid entries of the set chosen by `hash` for which `pred`
    /// is true. Bumps the epoch first, so racing inserts undo themselves.
    pub fn invalidate_where(&self, hash: u64, pred: impl Fn(&[u64; W]) -> bool) {
        self.begin_removal().remove_where(hash, pred);
    }

    /// Starts a targeted invalidation of any number of sets: bumps the epoch and
    /// issues the fence once, for every [`Removal::remove_where`] that follows
    /// (what [`invalidate_where`](Self::invalidate_where) does per set). Sound
    /// because the argument of the module docs (point 2) only needs the bump and
    /// the fence to come before the invalidator reads the slots; reading more
    /// sets, later, changes nothing in it.
    pub fn begin_removal(&self) -> Removal<'_, W, N> {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        // Pairs with the fence in `insert` (module docs, point 2).
        fence(Ordering::SeqCst);
        Removal { cache: self }
    }

    /// Number of live entries. O(N); for tests and benchmarks only.
    pub fn count_valid(&self) -> usize {
        let global = self.global.load(Ordering::Acquire);
        self.slots
            .iter()
            .filter_map(Slot::read)
            .filter(|copy| self.is_live(copy, global))
            .count()
    }

    /// Number of slots holding an entry, live or dead. O(N); lets tests check
    /// that sweeps really emptied the cache.
    #[cfg(any(test, loom))]
    pub fn count_occupied(&self) -> usize {
        self.slots
            .iter()
            .filter_map(Slot::read)
            .filter(|copy| copy.meta & VALID != 0)
            .count()
    }
}

/// A targeted invalidation in progress: the epoch has been bumped and fenced
/// ([`SeqCache::begin_removal`]), so sets can be scanned without doing it again.
#[must_use = "a removal does nothing until remove_where is called"]
pub struct Removal<'c, const W: usize, const N: usize> {
    cache: &'c SeqCache<W, N>,
}

impl<const W: usize, const N: usize> Removal<'_, W, N> {
    /// Removes the valid entries of the set chosen by `hash` for which `pred`
    /// is true.
    pub fn remove_where(&self, hash: u64, pred: impl Fn(&[u64; W]) -> bool) {
        let cache = self.cache;
        let base = SeqCache::<W, N>::set_base(hash);
        for way in 0..WAYS {
            let slot = cache.slot(base, way);
            // A busy or torn slot is being rewritten by a writer that will see
            // our epoch bump; skipping it is safe (module docs).
            if let Some(copy) = slot.read() {
                if copy.meta & VALID != 0 && pred(&copy.words) {
                    slot.clear_at(copy.seq);
                }
            }
        }
    }
}

impl<const W: usize, const N: usize> Default for SeqCache<W, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const W: usize, const N: usize> core::fmt::Debug for SeqCache<W, N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SeqCache")
            .field("words", &W)
            .field("slots", &N)
            .field("epoch", &self.epoch.load(Ordering::Relaxed))
            .field("global", &self.global.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}
