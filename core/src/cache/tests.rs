//! Unit tests for [`SeqCache`].

extern crate std;

use super::*;
use std::sync::atomic::{AtomicBool, AtomicU64 as StdAtomicU64, Ordering as StdOrdering};
use std::thread;

/// Three-word test entry: key, value, and a check word derived from both, so
/// a torn read (words from two different entries) is detectable.
fn entry(key: u64, value: u64) -> [u64; 3] {
    [key, value, check(key, value)]
}

fn check(key: u64, value: u64) -> u64 {
    key.rotate_left(17) ^ value.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xA5A5_5A5A_DEAD_BEEF
}

fn consistent(w: &[u64; 3]) -> bool {
    w[2] == check(w[0], w[1])
}

fn key_is(key: u64) -> impl Fn(&[u64; 3]) -> bool {
    move |w| w[0] == key
}

type Cache = SeqCache<3, 16>;

/// Inserts `key -> value` for `domain` with a fresh snapshot, using the key as
/// its hash; asserts the insert was not raced.
fn put<const N: usize>(c: &SeqCache<3, N>, domain: u16, key: u64, value: u64) {
    let snap = c.snapshot(domain);
    assert!(c.insert(snap, key, entry(key, value), key_is(key)));
}

fn get<const N: usize>(c: &SeqCache<3, N>, domain: u16, key: u64) -> Option<u64> {
    c.lookup(domain, key, key_is(key)).map(|w| {
        assert!(consistent(&w));
        w[1]
    })
}

static STATIC_CACHE: SeqCache<2, 8> = SeqCache::new();

#[test]
fn usable_as_static() {
    let snap = STATIC_CACHE.snapshot(3);
    assert!(STATIC_CACHE.insert(snap, 42, [42, 1], |w| w[0] == 42));
    assert_eq!(STATIC_CACHE.lookup(3, 42, |w| w[0] == 42), Some([42, 1]));
}

#[test]
fn empty_cache_misses() {
    let c = Cache::default();
    assert_eq!(get(&c, 0, 0), None);
    assert_eq!(get(&c, 1, 12345), None);
    assert_eq!(c.count_valid(), 0);
}

#[test]
fn insert_then_lookup_hits() {
    let c = Cache::new();
    put(&c, 1, 10, 100);
    put(&c, 1, 11, 110);
    assert_eq!(get(&c, 1, 10), Some(100));
    assert_eq!(get(&c, 1, 11), Some(110));
    assert_eq!(c.count_valid(), 2);
}

#[test]
fn lookup_requires_matching_key_and_bucket() {
    let c = Cache::new();
    put(&c, 1, 10, 100);
    // Same hash (so same set), different key: the predicate rejects it.
    assert_eq!(c.lookup(1, 10, key_is(11)), None);
    // Same key, but a domain in another bucket: not considered at all.
    assert_eq!(get(&c, 2, 10), None);
    // A domain sharing the bucket does see it; telling domains apart within
    // a bucket is the predicate's job.
    assert_eq!(get(&c, 1 + DOMAIN_BUCKETS as u16, 10), Some(100));
}

#[test]
fn same_key_is_replaced_in_place() {
    let c = Cache::new();
    put(&c, 1, 10, 100);
    put(&c, 1, 10, 101);
    put(&c, 1, 10, 102);
    assert_eq!(get(&c, 1, 10), Some(102));
    assert_eq!(c.count_valid(), 1);
}

#[test]
fn full_set_evicts_and_keeps_newest() {
    // One set only, so every key collides.
    let c = SeqCache::<3, 4>::new();
    for key in 0..10 {
        put(&c, 1, key, key * 10);
        assert_eq!(get(&c, 1, key), Some(key * 10));
        assert_eq!(c.count_valid(), (key as usize + 1).min(WAYS));
    }
}

#[test]
fn dead_ways_are_reused_before_live_ones() {
    let c = SeqCache::<3, 4>::new();
    for key in 0..3 {
        put(&c, 1, key, key);
    }
    put(&c, 2, 100, 100);
    c.invalidate_domain(2);
    // The set is full, but one way is dead: the new entry must take it.
    put(&c, 1, 3, 3);
    for key in 0..4 {
        assert_eq!(get(&c, 1, key), Some(key));
    }
}

#[test]
fn invalidate_domain_kills_only_its_bucket() {
    let c = SeqCache::<3, 64>::new();
    let shared = 5 + DOMAIN_BUCKETS as u16;
    put(&c, 5, 1, 1);
    put(&c, shared, 2, 2);
    put(&c, 6, 3, 3);
    put(&c, 7, 4, 4);
    c.invalidate_domain(5);
    assert_eq!(get(&c, 5, 1), None);
    // Over-invalidation of a domain sharing the bucket: safe and expected.
    assert_eq!(get(&c, shared, 2), None);
    assert_eq!(get(&c, 6, 3), Some(3));
    assert_eq!(get(&c, 7, 4), Some(4));
    assert_eq!(c.count_valid(), 2);
    // The domain is usable again straight away.
    put(&c, 5, 1, 11);
    assert_eq!(get(&c, 5, 1), Some(11));
}

#[test]
fn invalidate_all_kills_everything() {
    let c = SeqCache::<3, 64>::new();
    for d in 0..8 {
        put(&c, d, u64::from(d), u64::from(d));
    }
    c.invalidate_all();
    for d in 0..8 {
        assert_eq!(get(&c, d, u64::from(d)), None);
    }
    assert_eq!(c.count_valid(), 0);
    put(&c, 3, 3, 33);
    assert_eq!(get(&c, 3, 3), Some(33));
}

#[test]
fn invalidate_where_removes_matching_entries_only() {
    let c = SeqCache::<3, 4>::new();
    for key in 0..4 {
        put(&c, 1, key, key);
    }
    c.invalidate_where(0, |w| w[1] % 2 == 0);
    assert_eq!(get(&c, 1, 0), None);
    assert_eq!(get(&c, 1, 1), Some(1));
    assert_eq!(get(&c, 1, 2), None);
    assert_eq!(get(&c, 1, 3), Some(3));
    assert_eq!(c.count_occupied(), 2);
}

#[test]
fn insert_raced_by_any_invalidation_fails_and_stays_invisible() {
    let kinds: [fn(&Cache); 4] = [
        |c| c.invalidate_domain(1),
        |c| c.invalidate_all(),
        |c| c.invalidate_where(10, key_is(10)),
        // Even an unrelated targeted invalidation moves the epoch: the walk
        // is conservatively retried.
        |c| c.invalidate_where(999, key_is(999)),
    ];
    for invalidate in kinds {
        let c = Cache::new();
        let snap = c.snapshot(1);
        assert!(c.unchanged_since(&snap));
        invalidate(&c);
        assert!(!c.unchanged_since(&snap));
        assert!(!c.insert(snap, 10, entry(10, 1), key_is(10)));
        assert_eq!(get(&c, 1, 10), None);
        assert_eq!(c.count_occupied(), 0);
        // The re-walk succeeds.
        put(&c, 1, 10, 2);
        assert_eq!(get(&c, 1, 10), Some(2));
    }
}

#[test]
fn other_domain_invalidation_also_reports_change() {
    let c = Cache::new();
    let snap = c.snapshot(1);
    c.invalidate_domain(2);
    assert!(!c.unchanged_since(&snap));
    assert!(!c.insert(snap, 10, entry(10, 1), key_is(10)));
}

#[test]
fn global_generation_wraps_without_revival() {
    let c = Cache::with_generations(u32::MAX - 1, 0);
    put(&c, 1, 1, 1);
    c.invalidate_all(); // -> MAX
    assert_eq!(get(&c, 1, 1), None);
    put(&c, 1, 2, 2);
    let stale = c.snapshot(1); // tagged MAX
    assert_eq!(c.count_occupied(), 2);
    c.invalidate_all(); // -> 0: sweep
    assert_eq!(c.count_occupied(), 0);
    assert_eq!(get(&c, 1, 2), None);
    // A walk that started before the wrap cannot plant a MAX-tagged entry
    // that would come back to life 2^32 bumps later.
    assert!(!c.insert(stale, 3, entry(3, 3), key_is(3)));
    assert_eq!(c.count_occupied(), 0);
    put(&c, 1, 4, 4);
    assert_eq!(get(&c, 1, 4), Some(4));
}

#[test]
fn bucket_generation_wraps_without_revival() {
    let c = Cache::with_generations(7, u32::MAX);
    put(&c, 1, 1, 1);
    put(&c, 2, 2, 2);
    c.invalidate_domain(1); // bucket 1 -> 0: sweeps everything
    assert_eq!(c.count_occupied(), 0);
    assert_eq!(get(&c, 1, 1), None);
    // Over-invalidated by the sweep: still safe.
    assert_eq!(get(&c, 2, 2), None);
    put(&c, 1, 1, 10);
    assert_eq!(get(&c, 1, 1), Some(10));
}

#[test]
fn half_period_also_sweeps() {
    let c = Cache::with_generations((1 << 31) - 1, 0);
    put(&c, 1, 1, 1);
    assert_eq!(c.count_occupied(), 1);
    c.invalidate_all(); // -> 2^31
    assert_eq!(c.count_occupied(), 0);
}

#[test]
fn ordinary_bumps_do_not_sweep() {
    let c = Cache::with_generations(5, 5);
    put(&c, 1, 1, 1);
    c.invalidate_all();
    // Dead but still occupying its slot: invalidation stays O(1).
    assert_eq!(c.count_occupied(), 1);
    assert_eq!(c.count_valid(), 0);
}

#[test]
fn single_set_and_any_hash_are_fine() {
    let c = SeqCache::<1, 4>::new();
    for hash in [0, 1, u64::MAX, 1 << 63, 0xDEAD_BEEF] {
        let snap = c.snapshot(u16::MAX);
        assert!(c.insert(snap, hash, [hash], |w| w[0] == hash));
        assert_eq!(c.lookup(u16::MAX, hash, |w| w[0] == hash), Some([hash]));
    }
    let big = SeqCache::<1, 1024>::new();
    for hash in [0, 1, u64::MAX, 1 << 63] {
        let snap = big.snapshot(0);
        assert!(big.insert(snap, hash, [hash], |w| w[0] == hash));
        assert_eq!(big.lookup(0, hash, |w| w[0] == hash), Some([hash]));
    }
}

/// Sets a flag when dropped, so readers stop even if a writer panics.
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, StdOrdering::SeqCst);
    }
}

/// Walker, invalidator and two readers on real threads.
///
/// Every invalidation kills every key. The walker records, in each entry, how
/// many invalidations had *started* by the time its snapshot was taken (read
/// after the snapshot, so an over-estimate is impossible: if invalidation
/// `j` had bumped the epoch before the snapshot, its earlier `started = j`
/// store would be visible). Readers load how many invalidations have
/// *finished* before each lookup; an entry whose walk predates a finished
/// invalidation must never be returned. All words must be consistent.
#[test]
fn stress_no_torn_or_stale_entries() {
    const KEYS: u64 = 12;
    const WALKS: u64 = 100_000;
    const INVALIDATIONS: u64 = 20_000;
    // Two domains sharing a bucket, so domain invalidation covers both.
    const DOMAINS: [u16; 2] = [7, 7 + DOMAIN_BUCKETS as u16];

    fn domain(key: u64) -> u16 {
        DOMAINS[(key % 2) as usize]
    }
    fn key_word(key: u64) -> u64 {
        (u64::from(domain(key)) << 32) | key
    }

    let c = SeqCache::<3, 16>::new();
    let started = StdAtomicU64::new(0);
    let finished = StdAtomicU64::new(0);
    let walker_done = AtomicBool::new(false);
    let invalidator_done = AtomicBool::new(false);

    thread::scope(|s| {
        s.spawn(|| {
            let _done = SetOnDrop(&walker_done);
            for i in 0..WALKS {
                let key = i % KEYS;
                let snap = c.snapshot(domain(key));
                let begun = started.load(StdOrdering::SeqCst);
                // A slow walk, so invalidations overlap it. (The checks do
                // not depend on timing; this only makes races likelier.)
                for _ in 0..(i % 64) {
                    std::hint::spin_loop();
                }
                let value = (begun << 32) | (i & 0xFFFF_FFFF);
                let kw = key_word(key);
                let done = finished.load(StdOrdering::SeqCst);
                let ok = c.insert(snap, key, entry(kw, value), key_is(kw));
                if begun < done {
                    // An invalidation that began after our snapshot had
                    // finished before we inserted: the insert must say so.
                    assert!(!ok);
                }
            }
        });
        s.spawn(|| {
            let _done = SetOnDrop(&invalidator_done);
            for j in 1..=INVALIDATIONS {
                started.store(j, StdOrdering::SeqCst);
                match j % 3 {
                    0 => c.invalidate_all(),
                    1 => c.invalidate_domain(DOMAINS[(j % 2) as usize]),
                    _ => {
                        for key in 0..KEYS {
                            c.invalidate_where(key, |_| true);
                        }
                    }
                }
                finished.store(j, StdOrdering::SeqCst);
            }
        });
        for _ in 0..2 {
            s.spawn(|| loop {
                let stop = walker_done.load(StdOrdering::SeqCst)
                    && invalidator_done.load(StdOrdering::SeqCst);
                let done = finished.load(StdOrdering::SeqCst);
                for key in 0..KEYS {
                    let kw = key_word(key);
                    if let Some(w) = c.lookup(domain(key), key, key_is(kw)) {
                        assert!(consistent(&w), "torn entry {w:x?}");
                        assert_eq!((w[1] & 0xFFFF_FFFF) % KEYS, key);
                        let begun = w[1] >> 32;
                        assert!(
                            begun >= done,
                            "entry from a walk before invalidation {} seen after {done} finished",
                            begun + 1
                        );
                    }
                }
                if stop {
                    break;
                }
                // Two cores, four threads: let the writers run.
                thread::yield_now();
            });
        }
    });

    // Quiescent: the last invalidation left only entries walked after it began.
    let last = finished.load(StdOrdering::SeqCst);
    for key in 0..KEYS {
        let kw = key_word(key);
        if let Some(w) = c.lookup(domain(key), key, key_is(kw)) {
            assert!(consistent(&w));
            assert!(w[1] >> 32 >= last);
        }
    }
}
