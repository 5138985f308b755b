//! Translate-path and cache benchmarks (divan). Run with `cargo bench -p viommu-bench`.
//!
//! Set-up (table building, booting, warming, cache filling) happens before timing;
//! each figure is the time of one call. See docs/performance.md for what each measures
//! and the latest results.

use std::sync::atomic::{AtomicUsize, Ordering};

use divan::{black_box, Bencher};
use viommu::cache::SeqCache;
use viommu::testing::GuestDriver;
use viommu::{Translation, IOTLB_SLOTS};
use viommu_bench::{
    fill_seq_cache, seq_cache_hash, seq_cache_key, Fixture, IrqFixture, DOMAIN, SPREAD_STRIDE,
};

fn main() {
    divan::main();
}

/// Pages in the IOTLB-hit workload: far fewer than the IOTLB holds.
const HOT_PAGES: usize = 64;

/// Pages in the IOTLB-miss workload: 16 times the IOTLB, so cycling over them in order
/// evicts every page long before it comes round again.
const COLD_PAGES: usize = 64 * 1024;

const _: () = assert!(COLD_PAGES >= 16 * IOTLB_SLOTS);

/// Pages of the 4-level-walk miss workload, 2 MiB apart: twice the IOTLB, each under its
/// own level-1 table (32 MiB of tables).
const MISS_4_LEVEL_PAGES: usize = 8 * 1024;

const _: () = assert!(MISS_4_LEVEL_PAGES >= 2 * IOTLB_SLOTS);

/// The translated address a caller takes out of a result, reading its fields as a VMM
/// does. (Handing the whole 24-byte `Result` to `black_box` instead makes the benchmark
/// copy it with wide loads over the callee's narrow stores, a store-forwarding stall of
/// several nanoseconds that belongs to the harness, not to `translate`.)
#[inline(always)]
fn output_of(result: Result<Translation, viommu::DmaError>) -> u64 {
    match result {
        Ok(Translation::Mapped(m)) => m.output_base | u64::from(m.size_shift),
        _ => 0,
    }
}

/// One call of the engine as a device model (or the C ABI) makes it: a function of its
/// own, not inlined into the benchmark loop.
#[inline(never)]
fn translate_one(fixture: &Fixture, request: &viommu::DmaRequest) -> u64 {
    output_of(fixture.unit.translate(request))
}

/// Time `call` once per iteration over `pages` warm pages, cycling in order (the shared
/// loop of the single-thread translate benchmarks).
fn bench_cycling(
    bencher: Bencher,
    fixture: Fixture,
    call: impl Fn(&Fixture, &viommu::DmaRequest) -> u64,
) {
    fixture.warm();
    let requests = &fixture.requests;
    let pages = requests.len();
    let mut i = 0;
    bencher.bench_local(|| {
        i = (i + 1) % pages;
        call(&fixture, black_box(&requests[i]))
    });
}

/// `unit.translate` on a first-level cache hit, one thread, cycling over 64 warm pages:
/// one probe of the first-level cache by (source id, page); no guest memory read.
#[divan::bench]
fn translate_hit(bencher: Bencher) {
    bench_cycling(bencher, Fixture::new(HOT_PAGES), translate_one);
}

/// The same, with `translate` (which is `#[inline]`) inlined straight into divan's
/// sampling loop. Kept because it measures about 2.5x `translate_hit` on this machine
/// (docs/performance.md): how the inlined code sits in that loop costs more than the
/// lookup itself.
#[divan::bench]
fn translate_hit_inlined(bencher: Bencher) {
    bench_cycling(bencher, Fixture::new(HOT_PAGES), |fixture, request| {
        output_of(fixture.unit.translate(request))
    });
}

/// The same IOTLB-hit workload on 1 and 2 threads at once, sharing one unit; the time
/// is per call on each thread. Requests are handed out by a shared counter outside the
/// timed region.
#[divan::bench(threads = [1, 2])]
fn translate_hit_threads(bencher: Bencher) {
    let fixture = Fixture::new(HOT_PAGES);
    fixture.warm();
    let next = AtomicUsize::new(0);
    bencher
        .with_inputs(|| fixture.requests[next.fetch_add(1, Ordering::Relaxed) % HOT_PAGES])
        .bench_values(|request| translate_one(&fixture, &request));
}

/// `unit.translate` on an IOTLB miss, one thread: cycling in order over 64 Ki mapped
/// pages (16x the IOTLB) so nearly every call misses. Each call misses the first-level
/// cache, hits the context cache, probes the IOTLB for 4 KiB pages (the only size this
/// workload ever caches, so the only one probed), finds the page's 2 MiB region in the
/// SL-PDE cache (filled by the region's second walk), reads the one level-1 entry through
/// `GuestMemory`, and publishes the leaf in the IOTLB and the first-level cache.
#[divan::bench]
fn translate_miss(bencher: Bencher) {
    // `bench_cycling` warms once more first, so the table pages are in the CPU caches
    // as far as they fit.
    bench_cycling(bencher, Fixture::new(COLD_PAGES), translate_one);
}

/// The miss with a full 4-level walk (the target's case): 8 Ki pages, each in a 2 MiB region
/// of its own (`SPREAD_STRIDE`), cycled in order, so every call misses the caches
/// and the SL-PDE cache is never probed (each region's hint names the region walked
/// before it): the first-level probe, the context cache, the IOTLB probe, four
/// `GuestMemory` reads, and the two fills.
#[divan::bench]
fn translate_miss_4_level(bencher: Bencher) {
    let fixture = Fixture::with_stride(MISS_4_LEVEL_PAGES, SPREAD_STRIDE);
    bench_cycling(bencher, fixture, translate_one);
}

/// The pure 4-level walk (`viommu::dma::walk::walk_second_level`) over the 64 warm
/// pages: four `GuestMemory` reads and entry checks, no cache of any kind.
#[divan::bench]
fn walk_4_level(bencher: Bencher) {
    let fixture = Fixture::new(HOT_PAGES);
    let requests = &fixture.requests;
    let mut i = 0;
    bencher.bench_local(|| {
        i = (i + 1) % HOT_PAGES;
        fixture.walk(black_box(requests[i].address))
    });
}

/// A cache with as many slots as the largest fill, in a `static` (it is 3.5 MiB; no
/// stack copy on the way to the heap).
static BIG_CACHE: SeqCache<4, 65536> = SeqCache::new();

/// A cache shaped like the IOTLB.
static IOTLB_SHAPED: SeqCache<4, IOTLB_SLOTS> = SeqCache::new();

/// The domain the bare-cache benchmarks use.
const CACHE_DOMAIN: u16 = 7;

/// `SeqCache::invalidate_domain` on a 64 Ki-slot cache after filling it with `n`
/// entries of the domain. The entries are live for the first call only (later calls
/// find them already dead); invalidation never reads the slots, so equal figures for
/// 1 Ki and 64 Ki show it is O(1). The sample size is fixed: left to divan's tuning, a
/// slow first call once made it time single calls, which mostly measures the timer.
#[divan::bench(args = [1024, 65536], sample_size = 1024)]
fn invalidate_domain(bencher: Bencher, n: usize) {
    BIG_CACHE.invalidate_all();
    let live = fill_seq_cache(&BIG_CACHE, CACHE_DOMAIN, n);
    assert!(live >= n * 9 / 10, "only {live} of {n} entries cached");
    bencher.bench(|| BIG_CACHE.invalidate_domain(black_box(CACHE_DOMAIN)));
}

/// A page-selective IOTLB invalidation of one 4 KiB page (AM = 0) through the register
/// interface (IVA, then IOTLB with IVT, then the read-back a driver polls), what a
/// strict-mode guest asks for per unmap: the MMIO decode, the probes of the page's 4 KiB,
/// 2 MiB and 1 GiB sets (with the SL-PDE entries), the first-level flush and the
/// translation-generation bump. Over 64 warm pages, cycled; after the first round they are
/// gone, which changes nothing in the work (every probe reads its set). The sample size is
/// fixed: divan's tuning otherwise settles on one call per sample, which times the timer.
#[divan::bench(sample_count = 1000, sample_size = 64)]
fn invalidate_page(bencher: Bencher) {
    let fixture = Fixture::new(HOT_PAGES);
    fixture.warm();
    let driver = GuestDriver::new(&fixture.unit, fixture.unit.memory());
    let pages: Vec<u64> = fixture
        .requests
        .iter()
        .map(|r| r.address & !0xFFF)
        .collect();
    let mut i = 0;
    bencher.bench_local(|| {
        i = (i + 1) % HOT_PAGES;
        driver.register_invalidate_iotlb(3, DOMAIN, black_box(pages[i]), 0, false)
    });
}

/// `SeqCache::lookup` hit on an IOTLB-shaped cache (4096 slots, 4 ways) holding 1 Ki
/// entries, cycling over 64 of them.
#[divan::bench]
fn seq_cache_lookup_hit(bencher: Bencher) {
    IOTLB_SHAPED.invalidate_all();
    let live = fill_seq_cache(&IOTLB_SHAPED, CACHE_DOMAIN, 1024);
    assert_eq!(live, 1024, "1 Ki entries fit a 4 Ki-slot cache");
    let mut i = 0u64;
    bencher.bench_local(|| {
        i = (i + 1) % 64;
        let key = seq_cache_key(i);
        let words =
            IOTLB_SHAPED.lookup(black_box(CACHE_DOMAIN), seq_cache_hash(black_box(i)), |w| {
                w[0] == key
            });
        debug_assert!(words.is_some());
        words
    });
}

/// `unit.remap_interrupt` on an interrupt entry cache hit: x2APIC mode, 64 IRTEs with
/// source-id verification, cycling over their remappable-format MSIs.
#[divan::bench]
fn remap_hit(bencher: Bencher) {
    let fixture = IrqFixture::new();
    let requests = &fixture.requests;
    let mut i = 0;
    bencher.bench_local(|| {
        i = (i + 1) % requests.len();
        match fixture.unit.remap_interrupt(black_box(&requests[i])) {
            Ok(viommu::Interrupt::Remapped(r)) => u64::from(r.destination) | u64::from(r.vector),
            _ => 0,
        }
    });
}

/// The harness alone: the same loop as `translate_hit` (advance the index, pass a
/// request through `black_box`) around a trivial body. Subtract it from the `*_hit` rows
/// to get the cost of the call itself.
#[divan::bench]
fn harness_overhead(bencher: Bencher) {
    let fixture = Fixture::new(HOT_PAGES);
    let requests = &fixture.requests;
    let mut i = 0;
    bencher.bench_local(|| {
        i = (i + 1) % HOT_PAGES;
        black_box(&requests[i]).address
    });
}

/// `translate_hit` as a run: one iteration translates all 64 warm pages in turn (as a
/// device's scatter-gather list does), so the figure is 64 calls; divide by 64.
#[divan::bench]
fn translate_hit_run_of_64(bencher: Bencher) {
    let fixture = Fixture::new(HOT_PAGES);
    fixture.warm();
    let requests = &fixture.requests;
    bencher.bench_local(|| {
        for request in requests {
            black_box(output_of(fixture.unit.translate(black_box(request))));
        }
    });
}
