//! Loom models of the lock-free cache protocol (`viommu::cache`).
//!
//! Run with:
//! `RUSTFLAGS="--cfg loom" cargo test -p viommu --test loom_cache --release`
#![cfg(loom)]

use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::Arc;
use loom::thread;
use viommu::cache::{SeqCache, Snapshot};

/// Two words per entry, four slots: a single set of four ways.
type Cache = SeqCache<2, 4>;

const DOMAIN: u16 = 3;

/// Entry for `key` holding `value`; the second word is the complement of the
/// first so a torn read is detectable.
fn entry(key: u64, value: u64) -> [u64; 2] {
    let w = key | (value << 8);
    [w, !w]
}

fn key_is(key: u64) -> impl Fn(&[u64; 2]) -> bool {
    move |w| w[0] & 0xFF == key
}

fn consistent(w: &[u64; 2]) -> bool {
    w[1] == !w[0]
}

/// Checks `f` under loom, once per thread orientation (see [`pair`]).
fn model(f: impl Fn(bool) + Sync + Send + 'static) {
    let f = std::sync::Arc::new(f);
    for swap in [false, true] {
        let f = f.clone();
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(2);
        builder.check(move || f(swap));
    }
}

/// Runs `a` and `b` concurrently and returns both results.
///
/// Loom's scheduler keeps running the spawning thread until it blocks, and
/// its DPOR only remembers the *last* access to each atomic: when the
/// first-scheduled thread merely reads a slot and the other thread reads it
/// too before writing it, the race is never explored. Running every model
/// with each closure once on the main thread and once on the spawned one
/// closes that gap for these two-thread models.
fn pair<A, B, RA, RB>(swap: bool, a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send + 'static,
    B: FnOnce() -> RB + Send + 'static,
    RA: Send + 'static,
    RB: Send + 'static,
{
    if swap {
        let a = thread::spawn(a);
        let rb = b();
        (a.join().unwrap(), rb)
    } else {
        let b = thread::spawn(b);
        let ra = a();
        (ra, b.join().unwrap())
    }
}

/// Reader racing a writer that fills a key and then replaces it in place:
/// the reader sees nothing, the first value or the second, never a mix.
#[test]
fn reader_never_sees_torn_entry() {
    model(|swap| {
        let cache = Arc::new(Cache::new());
        let writer = {
            let cache = cache.clone();
            move || {
                for value in 1..=2 {
                    let snap = cache.snapshot(DOMAIN);
                    assert!(cache.insert(snap, 1, entry(1, value), key_is(1)));
                }
            }
        };
        let reader = {
            let cache = cache.clone();
            move || {
                if let Some(w) = cache.lookup(DOMAIN, 1, key_is(1)) {
                    assert!(consistent(&w), "torn read {w:x?}");
                    assert!(w == entry(1, 1) || w == entry(1, 2));
                }
            }
        };
        pair(swap, writer, reader);
        assert_eq!(cache.lookup(DOMAIN, 1, key_is(1)), Some(entry(1, 2)));
    });
}

/// The invalidations a walker can race.
#[derive(Clone, Copy)]
enum Kind {
    Domain,
    All,
    Where,
    /// One `begin_removal`, then two set scans: the walker's key is removed by
    /// the second, so the scan that matters comes well after the bump and fence.
    Batch,
}

fn invalidate(cache: &Cache, kind: Kind) {
    match kind {
        Kind::Domain => cache.invalidate_domain(DOMAIN),
        Kind::All => cache.invalidate_all(),
        Kind::Where => cache.invalidate_where(1, key_is(1)),
        Kind::Batch => {
            let removal = cache.begin_removal();
            removal.remove_where(0, key_is(9));
            removal.remove_where(1, key_is(1));
        }
    }
}

/// A walker (snapshot, then insert) racing an invalidation of its key.
///
/// The walker records whether the invalidation had *started* when its
/// snapshot was taken (loaded after the snapshot: if it reads `false`, the
/// snapshot certainly predates the invalidation's epoch bump) and whether it
/// had *finished* before the insert. The cache already holds an older entry
/// for the key, which the insert replaces.
///
/// * If the snapshot predates the invalidation, the key is never visible once
///   both threads are joined.
/// * If moreover the invalidation finished before the insert, insert returns
///   `false`.
fn walker_vs_invalidation(kind: Kind) {
    model(move |swap| {
        let cache = Arc::new(Cache::new());
        let started = Arc::new(AtomicBool::new(false));
        let finished = Arc::new(AtomicBool::new(false));

        let snap = cache.snapshot(DOMAIN);
        assert!(cache.insert(snap, 1, entry(1, 0), key_is(1)));

        let invalidator = {
            let (cache, started, finished) = (cache.clone(), started.clone(), finished.clone());
            move || {
                started.store(true, Ordering::Release);
                invalidate(&cache, kind);
                finished.store(true, Ordering::Release);
            }
        };
        let walker = {
            let (cache, started, finished) = (cache.clone(), started.clone(), finished.clone());
            move || {
                let snap = cache.snapshot(DOMAIN);
                let began_before = !started.load(Ordering::Acquire);
                let finished_before_insert = finished.load(Ordering::Acquire);
                let inserted = cache.insert(snap, 1, entry(1, 1), key_is(1));
                if began_before && finished_before_insert {
                    assert!(!inserted, "insert missed a completed invalidation");
                }
                began_before
            }
        };

        let (began_before, ()) = pair(swap, walker, invalidator);
        if began_before {
            assert_eq!(cache.lookup(DOMAIN, 1, key_is(1)), None);
            assert_eq!(cache.count_valid(), 0);
            if let Kind::Where | Kind::Batch = kind {
                // Targeted removal leaves nothing behind, dead or alive.
                assert_eq!(cache.count_occupied(), 0);
            }
        }
    });
}

#[test]
fn walker_vs_invalidate_domain() {
    walker_vs_invalidation(Kind::Domain);
}

#[test]
fn walker_vs_invalidate_all() {
    walker_vs_invalidation(Kind::All);
}

#[test]
fn walker_vs_invalidate_where() {
    walker_vs_invalidation(Kind::Where);
}

#[test]
fn walker_vs_batched_removal() {
    walker_vs_invalidation(Kind::Batch);
}

/// When the walker takes its snapshot.
#[derive(Clone, Copy)]
enum Snap {
    /// Before the invalidation starts: the entry is certainly stale.
    Before,
    /// On the walker thread, racing the invalidation.
    Racing,
}

/// A walk racing the invalidation that wraps a generation to 0 (and its
/// sweep). An older entry, tagged with the pre-wrap generation, sits in
/// another way. Afterwards no slot may hold a *dead* entry: one tagged with
/// the pre-wrap generation would come back to life once the counter cycled
/// round. With [`Snap::Before`] the cache must be completely empty.
fn insert_vs_wrap(swap: bool, cache: Cache, kind: Kind, when: Snap) {
    let cache = Arc::new(cache);
    let snap = cache.snapshot(DOMAIN);
    assert!(cache.insert(snap, 1, entry(2, 0), key_is(2)));
    let early: Snapshot = cache.snapshot(DOMAIN);

    let invalidator = {
        let cache = cache.clone();
        move || invalidate(&cache, kind)
    };
    let walker = {
        let cache = cache.clone();
        move || {
            let snap = match when {
                Snap::Before => early,
                Snap::Racing => cache.snapshot(DOMAIN),
            };
            cache.insert(snap, 1, entry(1, 1), key_is(1));
        }
    };
    pair(swap, walker, invalidator);

    assert_eq!(cache.lookup(DOMAIN, 1, key_is(2)), None);
    assert_eq!(cache.count_occupied(), cache.count_valid());
    if let Snap::Before = when {
        assert_eq!(cache.count_occupied(), 0);
        assert_eq!(cache.lookup(DOMAIN, 1, key_is(1)), None);
    }
}

#[test]
fn global_generation_wrap_sweeps_racing_insert() {
    model(|swap| {
        let cache = Cache::with_generations(u32::MAX, 0);
        insert_vs_wrap(swap, cache, Kind::All, Snap::Before);
    });
}

#[test]
fn domain_generation_wrap_sweeps_racing_insert() {
    model(|swap| {
        let cache = Cache::with_generations(0, u32::MAX);
        insert_vs_wrap(swap, cache, Kind::Domain, Snap::Before);
    });
}

#[test]
fn global_generation_wrap_racing_snapshot_leaves_no_stale_entry() {
    model(|swap| {
        let cache = Cache::with_generations(u32::MAX, 0);
        insert_vs_wrap(swap, cache, Kind::All, Snap::Racing);
    });
}

#[test]
fn domain_generation_wrap_racing_snapshot_leaves_no_stale_entry() {
    model(|swap| {
        let cache = Cache::with_generations(0, u32::MAX);
        insert_vs_wrap(swap, cache, Kind::Domain, Snap::Racing);
    });
}

/// A walker filling two caches and confirming both with one fence
/// (`Published::confirm_with`) racing an invalidation that removes its key
/// from the first (targeted) and flushes the second: with a snapshot that
/// predates the invalidation, neither entry survives, exactly as with two
/// separate inserts.
#[test]
fn paired_fill_vs_invalidation() {
    model(|swap| {
        let (iotlb, first_level) = (Arc::new(Cache::new()), Arc::new(Cache::new()));
        let started = Arc::new(AtomicBool::new(false));

        let invalidator = {
            let (iotlb, first_level, started) =
                (iotlb.clone(), first_level.clone(), started.clone());
            move || {
                started.store(true, Ordering::Release);
                iotlb.invalidate_where(1, key_is(1));
                first_level.invalidate_all();
            }
        };
        let walker = {
            let (iotlb, first_level, started) =
                (iotlb.clone(), first_level.clone(), started.clone());
            move || {
                let first_snap = first_level.snapshot(DOMAIN);
                let snap = iotlb.snapshot(DOMAIN);
                let began_before = !started.load(Ordering::Acquire);
                let a = iotlb.publish(snap, 1, entry(1, 1), key_is(1));
                let b = first_level.publish(first_snap, 1, entry(1, 1), key_is(1));
                let _ = a.confirm_with(b);
                began_before
            }
        };

        let (began_before, ()) = pair(swap, walker, invalidator);
        if began_before {
            assert_eq!(iotlb.lookup(DOMAIN, 1, key_is(1)), None);
            assert_eq!(iotlb.count_occupied(), 0);
            assert_eq!(first_level.lookup(DOMAIN, 1, key_is(1)), None);
        }
    });
}
