//! The decoder must never produce a token that was not sent: not from noise
//! or ambient sound, and not from a frame damaged beyond what the code can
//! repair (the CRC-32C rejects it).

mod acoustic_support;

use acoustic_support::{Chunking, decode_streaming, gaussian, rms, room_data};
use clink_core::acoustic::{Profile, Token, TokenDecoder, TokenModem};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[test]
fn no_token_in_120_s_of_white_noise_and_looped_ambient_at_several_levels_at_48k() {
    const RATE: u32 = 48_000;
    let mut rng = StdRng::seed_from_u64(21);
    let mut audio = Vec::new();
    // 60 s of white noise at three levels, from near silence to loud.
    for level in [1e-4f32, 0.01, 0.3] {
        audio.extend((0..20 * RATE as usize).map(|_| level * gaussian(&mut rng)));
    }
    // 60 s of the ambient scenes (10 s each, looped), at two levels, over a
    // little white noise.
    for (index, (name, scene)) in room_data(RATE).ambient.iter().enumerate().step_by(2) {
        let level = if index % 4 == 0 { 0.05 } else { 0.5 };
        let gain = level / rms(scene) as f32;
        let start = rng.gen_range(0..scene.len());
        assert!(scene.len() > RATE as usize, "{name} is too short");
        audio.extend(
            (0..10 * RATE as usize)
                .map(|i| gain * scene[(start + i) % scene.len()] + 1e-3 * gaussian(&mut rng)),
        );
    }
    assert_eq!(audio.len(), 120 * RATE as usize);
    let mut decoder = TokenDecoder::new(Profile::NearUltrasound, RATE).unwrap();
    let tokens = decode_streaming(&mut decoder, &audio, Chunking::Random(8192), &mut rng);
    assert!(tokens.is_empty(), "false tokens: {tokens:?}");
}

#[test]
fn no_token_in_30_s_of_white_noise_at_44k1_audible_profile() {
    const RATE: u32 = 44_100;
    let mut rng = StdRng::seed_from_u64(22);
    let audio: Vec<f32> = (0..30 * RATE as usize)
        .map(|_| 0.1 * gaussian(&mut rng))
        .collect();
    let mut decoder = TokenDecoder::new(Profile::Audible, RATE).unwrap();
    let tokens = decode_streaming(&mut decoder, &audio, Chunking::Fixed(1024), &mut rng);
    assert!(tokens.is_empty(), "false tokens: {tokens:?}");
}

#[test]
fn overwritten_frames_beyond_fec_capacity_yield_no_token_rather_than_a_wrong_one_at_48k() {
    // From a random point in the first half of the data on, token A's signal
    // is overwritten by another token's signal played backwards: in band,
    // OFDM-like, but no valid frame. The preamble is perfect, so a decode is
    // attempted, and too little of A is left for the code to recover.
    const RATE: u32 = 48_000;
    let modem = TokenModem::new(Profile::NearUltrasound, RATE).unwrap();
    let mut decoder = TokenDecoder::new(Profile::NearUltrasound, RATE).unwrap();
    let mut rng = StdRng::seed_from_u64(23);
    let mut rejected = 0;
    for _ in 0..100 {
        let a: Token = rng.r#gen();
        let b: Token = rng.r#gen();
        let mut tx = modem.modulate(&a);
        let mut other = modem.modulate(&b);
        other.reverse();
        let splice = rng.gen_range(tx.len() / 5..tx.len() * 9 / 20);
        tx[splice..].copy_from_slice(&other[splice..]);
        let mut rx = vec![0f32; 2000];
        rx.extend(tx);
        rx.extend(vec![0f32; 2000]);
        for s in rx.iter_mut() {
            *s += 0.01 * gaussian(&mut rng);
        }
        decoder.reset();
        let got = decode_streaming(&mut decoder, &rx, Chunking::Random(4096), &mut rng);
        assert!(
            got.iter().all(|t| *t == a),
            "wrong token accepted: {got:?}, sent {a:?} spliced with {b:?} at {splice}"
        );
        rejected += usize::from(got.is_empty());
    }
    // Almost every overwrite is far beyond what the code corrects.
    assert!(
        rejected >= 95,
        "only {rejected}/100 overwritten frames rejected"
    );
}

#[test]
fn data_buried_in_noise_yields_no_token_rather_than_a_wrong_one_at_48k() {
    // Clean preamble, data symbols under noise 15 dB above them: the decode
    // attempt happens and must fail the CRC.
    const RATE: u32 = 48_000;
    let modem = TokenModem::new(Profile::NearUltrasound, RATE).unwrap();
    let mut decoder = TokenDecoder::new(Profile::NearUltrasound, RATE).unwrap();
    let mut rng = StdRng::seed_from_u64(24);
    let preamble_len = (0.05 * f64::from(RATE)) as usize;
    let mut rejected = 0;
    for _ in 0..100 {
        let token: Token = rng.r#gen();
        let mut rx = vec![0f32; 1000];
        rx.extend(modem.modulate(&token));
        rx.extend(vec![0f32; 1000]);
        let level = 10f32.powf(15.0 / 20.0) * rms(&rx) as f32;
        for s in rx[1000 + preamble_len..].iter_mut() {
            *s += level * gaussian(&mut rng);
        }
        decoder.reset();
        let got = decode_streaming(&mut decoder, &rx, Chunking::Fixed(1024), &mut rng);
        assert!(got.iter().all(|t| *t == token), "wrong token accepted");
        rejected += usize::from(got.is_empty());
    }
    assert!(rejected >= 95, "only {rejected}/100 buried frames rejected");
}

#[test]
fn stream_of_preamble_fragments_tokens_and_noise_in_random_chunks_never_yields_a_wrong_token_at_48k()
 {
    // Many detections at arbitrary places relative to block and chunk
    // boundaries: preambles cut short (they trigger a decode attempt that
    // must fail), whole tokens, noise; chunk sizes from 1 to 20 000 samples.
    const RATE: u32 = 48_000;
    let modem = TokenModem::new(Profile::NearUltrasound, RATE).unwrap();
    let mut rng = StdRng::seed_from_u64(25);
    let mut audio = Vec::new();
    let mut sent = Vec::new();
    while audio.len() < 60 * RATE as usize {
        audio.extend((0..rng.gen_range(0..RATE as usize / 2)).map(|_| 0.05 * gaussian(&mut rng)));
        let token: Token = rng.r#gen();
        let signal = modem.modulate(&token);
        if rng.gen_bool(0.3) {
            audio.extend(&signal);
            sent.push(token);
        } else {
            // Preamble plus a little data, then silence.
            audio.extend(&signal[..rng.gen_range(2_400..6_000)]);
        }
    }
    let mut decoder = TokenDecoder::new(Profile::NearUltrasound, RATE).unwrap();
    let mut got = Vec::new();
    let mut rest = &audio[..];
    while !rest.is_empty() {
        let size = if rng.gen_bool(0.5) {
            rng.gen_range(1..64)
        } else {
            rng.gen_range(1..20_000)
        };
        let (chunk, after) = rest.split_at(size.min(rest.len()));
        got.extend(decoder.push(chunk));
        rest = after;
    }
    assert!(
        got.iter().all(|t| sent.contains(t)),
        "a token that was not sent came out"
    );
    assert!(
        got.len() >= sent.len() * 95 / 100,
        "decoded {} of {} tokens",
        got.len(),
        sent.len()
    );
}
