//! The same work as the Kotlin and Python FFI benchmarks, called from Rust
//! without crossing the FFI, so their difference is the cost of the
//! boundary. `cargo bench -p clink-ffi --bench native`.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use clink_ffi::acoustic::{AcousticProfile, TokenDecoder, acoustic_token_len};
use clink_ffi::dialstring::parse_dial_string;
use clink_ffi::dtmf::{DtmfDetector, dtmf_synth_config_default, synthesize_dtmf_f32};
use clink_ffi::pcm::{PcmEncoding, pcm_to_bytes};
use clink_ffi::secrets::{SecretError, SecretStore};
use clink_ffi::wallet::Wallet;

/// The app's keychain, as the Kotlin and Python benchmarks have it: a map.
#[derive(Default)]
struct MapStore(Mutex<HashMap<String, Vec<u8>>>);

impl SecretStore for MapStore {
    fn get(&self, name: String) -> Result<Option<Vec<u8>>, SecretError> {
        Ok(self.0.lock().unwrap().get(&name).cloned())
    }

    fn put(&self, name: String, secret: Vec<u8>) -> Result<(), SecretError> {
        self.0.lock().unwrap().insert(name, secret);
        Ok(())
    }

    fn delete(&self, name: String) -> Result<bool, SecretError> {
        Ok(self.0.lock().unwrap().remove(&name).is_some())
    }
}

/// Median nanoseconds per call of `body` over `rounds` timed rounds.
fn median_ns(rounds: usize, calls_per_round: u32, mut body: impl FnMut()) -> f64 {
    for _ in 0..calls_per_round {
        body();
    }
    let mut per_call: Vec<f64> = (0..rounds)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..calls_per_round {
                body();
            }
            start.elapsed().as_nanos() as f64 / f64::from(calls_per_round)
        })
        .collect();
    per_call.sort_by(f64::total_cmp);
    per_call[rounds / 2]
}

fn report(what: &str, ns: f64) {
    let shown = if ns < 1_000_000.0 {
        format!("{:.3} µs", ns / 1_000.0)
    } else {
        format!("{:.3} ms", ns / 1_000_000.0)
    };
    println!("rust    {what:<52} median {shown}");
}

fn main() {
    report(
        "trivial call: acoustic_token_len()",
        median_ns(51, 100_000, || {
            black_box(acoustic_token_len());
        }),
    );
    // The string-argument call of the Kotlin and Python benchmarks; the
    // clone stands for the string the FFI hands over.
    const DIAL: &str = "111-090-1111-1111*800";
    let dial = String::from(DIAL);
    report(
        &format!("string argument: parse_dial_string(\"{DIAL}\")"),
        median_ns(51, 100_000, || {
            black_box(parse_dial_string(black_box(dial.clone())).expect("a dial string"));
        }),
    );
    for rate_hz in [8_000u32, 48_000] {
        let mut config = dtmf_synth_config_default();
        config.sample_rate_hz = rate_hz;
        let mut pcm = synthesize_dtmf_f32("0123456789".into(), config).expect("valid config");
        pcm.truncate(rate_hz as usize);
        let detector = DtmfDetector::new(rate_hz).expect("valid rate");
        // The clone stands for the copy the FFI makes of every buffer.
        let ns = median_ns(31, 5, || {
            black_box(detector.push_f32(pcm.clone()));
        });
        report(
            &format!("DtmfDetector.push_f32, 1 s at {} kHz", rate_hz / 1000),
            ns,
        );
    }
    // One second at 48 kHz as the app's own buffer: bytes in, converted here.
    let mut config = dtmf_synth_config_default();
    config.sample_rate_hz = 48_000;
    let mut pcm = synthesize_dtmf_f32("0123456789".into(), config).expect("valid config");
    pcm.truncate(48_000);
    let encoded = [PcmEncoding::F32Le, PcmEncoding::I16Le]
        .map(|encoding| (encoding, pcm_to_bytes(pcm.clone(), encoding)));
    for (encoding, bytes) in &encoded {
        let detector = DtmfDetector::new(48_000).expect("valid rate");
        let ns = median_ns(31, 5, || {
            black_box(
                detector
                    .push_bytes(bytes.clone(), *encoding)
                    .expect("whole samples"),
            );
        });
        report(
            &format!("DtmfDetector.push_bytes({encoding:?}), 1 s at 48 kHz"),
            ns,
        );
    }
    let decoder = TokenDecoder::new(AcousticProfile::NearUltrasound, 48_000).expect("valid rate");
    report(
        "TokenDecoder.push, 1 s at 48 kHz",
        median_ns(31, 5, || {
            black_box(decoder.push(pcm.clone()));
        }),
    );
    for (encoding, bytes) in &encoded {
        let ns = median_ns(31, 5, || {
            black_box(
                decoder
                    .push_bytes(bytes.clone(), *encoding)
                    .expect("whole samples"),
            );
        });
        report(
            &format!("TokenDecoder.push_bytes({encoding:?}), 1 s at 48 kHz"),
            ns,
        );
    }
    // The wallet's local reads: a number, and a list of records, from its
    // SQLite store (no server: nothing here goes to the network).
    let dir = tempfile::tempdir().expect("a temporary directory");
    let wallet = Wallet::open(
        dir.path().to_str().expect("UTF-8 path").into(),
        "http://127.0.0.1:9".into(),
        Arc::new(MapStore::default()),
    )
    .expect("the wallet opens");
    report(
        "Wallet.balance() (local store)",
        median_ns(51, 2_000, || {
            black_box(wallet.balance().expect("balance"));
        }),
    );
    for i in 0..20 {
        wallet
            .draft_send("090-1234-5678".into(), 100 + i, "lunch".into())
            .expect("a draft");
    }
    report(
        "Wallet.drafts(), 20 drafts (local store)",
        median_ns(51, 500, || {
            black_box(wallet.drafts().expect("drafts"));
        }),
    );
}
