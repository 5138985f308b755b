//! Instruction counts of the hit paths, for `valgrind --tool=callgrind` (which counts
//! instructions, so the figure is repeatable on a noisy machine, unlike a timing):
//!
//! ```sh
//! cargo build --release -p viommu-bench --example hit_loop
//! valgrind --tool=callgrind --collect-atstart=no --toggle-collect='hit_loop::translate_hits' \
//!     target/release/examples/hit_loop translate
//! ```
//!
//! The program runs `CALLS` warm hits (`translate` or `remap`), or `CALLS` misses
//! (`miss`: the same loop over 64 Ki consecutive pages; `miss4`: over 8 Ki pages 2 MiB
//! apart, so every walk is a full 4-level one); divide callgrind's total by `CALLS`. See
//! docs/performance.md.

use std::hint::black_box;

use viommu::{Interrupt, InterruptRequest, Translation};
use viommu_bench::{Fixture, IrqFixture, SPREAD_STRIDE};

/// Calls per run: enough to make the set-up outside the toggled functions irrelevant.
const CALLS: usize = 100_000;

#[inline(never)]
fn translate_hits(fixture: &Fixture) -> u64 {
    let mut sum = 0;
    for i in 0..CALLS {
        let request = &fixture.requests[i % fixture.requests.len()];
        if let Ok(Translation::Mapped(m)) = fixture.unit.translate(black_box(request)) {
            sum += m.output_base;
        }
    }
    sum
}

#[inline(never)]
fn remap_hits(fixture: &IrqFixture, requests: &[InterruptRequest]) -> u64 {
    let mut sum = 0;
    for i in 0..CALLS {
        if let Ok(Interrupt::Remapped(r)) = fixture
            .unit
            .remap_interrupt(black_box(&requests[i % requests.len()]))
        {
            sum += u64::from(r.destination) | u64::from(r.vector);
        }
    }
    sum
}

/// Nanoseconds per step of two fixed-work loops, yardsticks for the machine's speed at the
/// moment, printed beside the figures so that a slow period of this VM shows as a slow
/// yardstick rather than as a slow translate: four independent chains of rotate, xor and
/// add (`alu`: about 12 simple operations per step, throughput-bound like the translate
/// paths, so it feels a busy SMT sibling), and a pointer chase around a random cycle of
/// 4 Ki indices (16 KiB, L1-resident: latency-bound dependent loads).
fn machine_yardsticks() -> (f64, f64) {
    const STEPS: u32 = 20_000_000;
    let start = std::time::Instant::now();
    let mut lanes = black_box([1u64, 2, 3, 4]);
    for step in 0..u64::from(STEPS) {
        for lane in &mut lanes {
            *lane = (lane.rotate_left(5) ^ step).wrapping_add(0x9E37_79B9);
        }
    }
    black_box(lanes);
    let alu = start.elapsed().as_nanos() as f64 / f64::from(STEPS);

    // A single cycle through all 4096 slots (Sattolo's shuffle with a fixed LCG).
    let mut next: Vec<u32> = (0..4096).collect();
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for i in (1..next.len()).rev() {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let j = (seed >> 33) as usize % i;
        next.swap(i, j);
    }
    let start = std::time::Instant::now();
    let mut at = 0u32;
    for _ in 0..STEPS {
        at = next[at as usize];
    }
    black_box(at);
    let chase = start.elapsed().as_nanos() as f64 / f64::from(STEPS);
    (alu, chase)
}

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("translate") => {
            let fixture = Fixture::new(64);
            fixture.warm();
            println!("{}", translate_hits(&fixture));
        }
        Some("miss") => {
            // 64 Ki pages, 16x the IOTLB, in order: nearly every call misses everything.
            let fixture = Fixture::new(64 * 1024);
            fixture.warm();
            println!("{}", translate_hits(&fixture));
        }
        Some("miss4") => {
            // 8 Ki pages, each in a 2 MiB region of its own (`SPREAD_STRIDE`): every call
            // misses everything and walks all four levels (no SL-PDE-cache hit).
            let fixture = Fixture::with_stride(8 * 1024, SPREAD_STRIDE);
            fixture.warm();
            println!("{}", translate_hits(&fixture));
        }
        Some("remap") => {
            let fixture = IrqFixture::new();
            let requests = fixture.requests.clone();
            println!("{}", remap_hits(&fixture, &requests));
        }
        Some("time") => {
            // Wall-clock cross-check of divan's figures: 100 rounds of CALLS hits each, and
            // 10 rounds of CALLS misses of each kind (the `miss` and `miss4` loops), with
            // the machine's yardsticks.
            let fixture = Fixture::new(64);
            fixture.warm();
            let irq = IrqFixture::new();
            let requests = irq.requests.clone();
            let cold = Fixture::new(64 * 1024);
            cold.warm();
            let spread = Fixture::with_stride(8 * 1024, SPREAD_STRIDE);
            spread.warm();
            for _ in 0..3 {
                let start = std::time::Instant::now();
                let mut sum = 0;
                for _ in 0..100 {
                    sum += translate_hits(&fixture);
                }
                let t = start.elapsed().as_nanos() as f64 / (100 * CALLS) as f64;
                let start = std::time::Instant::now();
                for _ in 0..100 {
                    sum += remap_hits(&irq, &requests);
                }
                let r = start.elapsed().as_nanos() as f64 / (100 * CALLS) as f64;
                let start = std::time::Instant::now();
                for _ in 0..10 {
                    sum += translate_hits(&cold);
                }
                let m = start.elapsed().as_nanos() as f64 / (10 * CALLS) as f64;
                let start = std::time::Instant::now();
                for _ in 0..10 {
                    sum += translate_hits(&spread);
                }
                let m4 = start.elapsed().as_nanos() as f64 / (10 * CALLS) as f64;
                let (alu, chase) = machine_yardsticks();
                println!(
                    "translate hit {t:.2} ns/call, remap hit {r:.2} ns/call, \
                     miss {m:.1} ns/call, 4-level miss {m4:.1} ns/call; yardsticks: alu {alu:.2} ns/step, \
                     L1 chase {chase:.2} ns/step ({sum})"
                );
            }
        }
        _ => eprintln!("usage: hit_loop translate|miss|miss4|remap|time"),
    }
}
