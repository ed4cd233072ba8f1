//! Bump matcher speed with about 10,000 reports in flight: throughput
//! (reports per second through `submit`, single thread) and the latency of
//! one `submit` call (p50/p99), for phones spread over a city and for all
//! phones in one block (every fingerprint in the time window compared).
//!
//! `cargo bench -p clink-server --bench matcher`
//!
//! A match is announced `settle_ms` (1.58 s by default) after the later
//! knock by design; the latency here is the server's work per report.

use std::hint::black_box;
use std::time::Instant;

use clink_core::wire::{BumpReport, BumpRole, CoarseLocation, ImpulseFeatures};
use clink_server::matching::{MatchOutcome, Matcher, MatcherConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const FRAMES: usize = 92;
/// Pairs per second: with reports pending from arrival until they settle
/// (about 0.65 s on average here), 7,700 pairs/s keep 10,000 in flight.
const PAIRS_PER_S: f64 = 7_700.0;
const SECONDS: f64 = 6.0;

fn fingerprint(words: &[u16]) -> Vec<u8> {
    let mut bytes = vec![2u8]; // format version
    for w in words {
        bytes.extend_from_slice(&w.to_le_bytes());
    }
    bytes
}

/// (arrival ms, id, report), in arrival order. Partners' fingerprints share
/// 80 % of their bits; `spread_m` is the side of the square they stand in.
fn stream(rng: &mut ChaCha8Rng, spread_m: f64) -> Vec<(i64, u64, BumpReport)> {
    let pairs = (PAIRS_PER_S * SECONDS) as usize;
    let mut out = Vec::with_capacity(2 * pairs);
    for pair in 0..pairs {
        let instant = 1_000 + (rng.gen_range(0.0..SECONDS) * 1000.0) as i64;
        let words: Vec<u16> = (0..FRAMES).map(|_| rng.r#gen()).collect();
        let (north, east) = (rng.gen_range(0.0..spread_m), rng.gen_range(0.0..spread_m));
        let dv = rng.gen_range(0.1..0.5f32);
        for (role, id) in [
            (BumpRole::Payee, 2 * pair as u64),
            (BumpRole::Payer, 2 * pair as u64 + 1),
        ] {
            let mine: Vec<u16> = words
                .iter()
                .map(|w| {
                    // Flip each bit with probability 1/8 (masks of 3 random words ANDed).
                    w ^ (rng.r#gen::<u16>() & rng.r#gen::<u16>() & rng.r#gen::<u16>())
                })
                .collect();
            let report = BumpReport {
                role,
                amount: (role == BumpRole::Payee).then_some(800),
                instant_ms: instant + rng.gen_range(-30..=30),
                impulse: ImpulseFeatures {
                    peak_mps2: 40.0,
                    delta_v_mps: dv * rng.gen_range(0.8..1.25),
                    rise_ms: 2.0,
                    duration_ms: 5.0,
                    direction: [1.0, 0.0, 0.0],
                },
                fingerprint: fingerprint(&mine),
                location: Some(CoarseLocation {
                    lat_deg: 35.0 + (north + rng.gen_range(-10.0..10.0)) / 111_195.0,
                    lon_deg: 139.0 + (east + rng.gen_range(-10.0..10.0)) / 91_000.0,
                    accuracy_m: 10.0,
                }),
            };
            let arrival = report.instant_ms + rng.gen_range(450..1_400);
            out.push((arrival, id, report));
        }
    }
    out.sort_by_key(|(arrival, id, _)| (*arrival, *id));
    out
}

fn run(label: &str, spread_m: f64) {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let reports = stream(&mut rng, spread_m);
    let mut matcher = Matcher::new(MatcherConfig::default()).unwrap();
    let mut latencies_ns: Vec<u64> = Vec::with_capacity(reports.len());
    let (mut matched, mut in_flight_max, mut in_flight_sum, mut samples) = (0usize, 0, 0, 0);
    let start = Instant::now();
    for (arrival, id, report) in &reports {
        let t = Instant::now();
        let outcomes = black_box(matcher.submit(*id, report, *arrival).unwrap());
        latencies_ns.push(t.elapsed().as_nanos() as u64);
        matched += outcomes
            .iter()
            .filter(|o| matches!(o, MatchOutcome::Matched { .. }))
            .count();
        // Steady state: skip the first and last second.
        if *arrival > 2_500 && *arrival < (SECONDS * 1000.0) as i64 {
            in_flight_max = in_flight_max.max(matcher.pending_count());
            in_flight_sum += matcher.pending_count();
            samples += 1;
        }
    }
    let elapsed = start.elapsed();
    matched += matcher
        .expire(i64::MAX / 2)
        .iter()
        .filter(|o| matches!(o, MatchOutcome::Matched { .. }))
        .count();
    latencies_ns.sort_unstable();
    let pick = |q: f64| latencies_ns[((latencies_ns.len() - 1) as f64 * q) as usize] as f64 / 1e3;
    println!(
        "matcher, {label}: {} reports, {:.0} in flight on average (max {in_flight_max}), {:.0} reports/s, submit p50 {:.1} µs, p99 {:.1} µs, max {:.0} µs; {matched} of {} pairs matched",
        reports.len(),
        in_flight_sum as f64 / samples as f64,
        reports.len() as f64 / elapsed.as_secs_f64(),
        pick(0.5),
        pick(0.99),
        pick(1.0),
        reports.len() / 2
    );
}

fn main() {
    run("phones spread over 10 km", 10_000.0);
    run("all phones in one 100 m block", 100.0);
}
