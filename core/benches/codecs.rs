//! Medians for the dial string codec, OCRA and the memory secret store.
//!
//! Run with `cargo bench -p clink-core --bench codecs`. Each figure is the
//! median over `SAMPLES` samples of the time per call, where a sample times
//! a batch of calls long enough to dwarf the clock's resolution.

use std::hint::black_box;
use std::time::Instant;

use clink_core::challenge::{self, DataInput, OcraKey, OcraSuite};
use clink_core::dialstring::{self, Amount, DialCommand, PhoneDigits, Send};
use clink_core::secrets::{MemorySecretStore, SecretStore};

const SAMPLES: usize = 31;
const CALLS_PER_SAMPLE: u32 = 2_000;

fn median_ns(mut f: impl FnMut()) -> f64 {
    for _ in 0..CALLS_PER_SAMPLE {
        f(); // warm up caches and the branch predictor
    }
    let mut per_call_ns: Vec<f64> = (0..SAMPLES)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..CALLS_PER_SAMPLE {
                f();
            }
            start.elapsed().as_nanos() as f64 / f64::from(CALLS_PER_SAMPLE)
        })
        .collect();
    per_call_ns.sort_by(f64::total_cmp);
    per_call_ns[SAMPLES / 2]
}

fn report(name: &str, ns: f64) {
    println!("{name:<48} median {ns:>10.0} ns/call");
}

fn main() {
    let send = DialCommand::Send(Send {
        originator: PhoneDigits::new("09011111111").unwrap(),
        payee: PhoneDigits::new("08022222222").unwrap(),
        amount: Amount::new(125_000).unwrap(),
    });
    let written = send.to_dial_string();
    report(
        "dialstring: write a send",
        median_ns(|| {
            black_box(black_box(&send).to_dial_string());
        }),
    );
    report(
        "dialstring: parse a written send",
        median_ns(|| {
            black_box(dialstring::parse(black_box(&written)).unwrap());
        }),
    );
    report(
        "dialstring: parse the seed 00-0000-0000*1111*800",
        median_ns(|| {
            black_box(dialstring::parse(black_box("00-0000-0000*1111*800")).unwrap());
        }),
    );

    let key = OcraKey::from_bytes(&[7; 32]).unwrap();
    report(
        "ocra: parse suite OCRA-1:HOTP-SHA256-8:QN08",
        median_ns(|| {
            black_box(
                black_box(challenge::CLINK_SUITE)
                    .parse::<OcraSuite>()
                    .unwrap(),
            );
        }),
    );
    report(
        "ocra: Clink response (SHA256-8, QN08)",
        median_ns(|| {
            black_box(challenge::clink_response(black_box(&key), black_box("12345678")).unwrap());
        }),
    );
    let answer = challenge::clink_response(&key, "12345678").unwrap();
    report(
        "ocra: verify a Clink response",
        median_ns(|| {
            black_box(
                challenge::verify_clink_response(&key, "12345678", black_box(&answer)).unwrap(),
            );
        }),
    );
    let sha512: OcraSuite = "OCRA-1:HOTP-SHA512-8:C-QN08-PSHA1-T1M".parse().unwrap();
    let pin = [1u8; 20];
    let input = DataInput {
        counter: Some(42),
        pin_hash: Some(&pin),
        unix_time_s: Some(1_700_000_000),
        ..DataInput::default()
    };
    report(
        "ocra: SHA512-8 response with C, P and T",
        median_ns(|| {
            black_box(
                sha512
                    .respond(&[7; 64], black_box("87654321"), &input)
                    .unwrap(),
            );
        }),
    );

    let store = MemorySecretStore::new();
    report(
        "secrets: memory put + get of 32 bytes",
        median_ns(|| {
            store.put("ocra-key", black_box(&[9; 32])).unwrap();
            black_box(store.get("ocra-key").unwrap());
        }),
    );
}
