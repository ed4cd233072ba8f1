//! A token played at one sample rate and recorded at the other: 44.1 kHz to
//! 48 kHz and 48 kHz to 44.1 kHz, through a band-limited resampler with
//! ±100 ppm of clock error, the reverberation-dominated living room at
//! 1.5 m (direct-to-reverberant ratio about −5 dB), ambient recordings at a
//! stated in-band SNR (token power as heard over ambient power, both in
//! 17.5–20 kHz), random lead-in, streamed in random chunks.
//!
//! The cyclic prefix lasts 15.011 ms at 44.1 kHz and 15 ms at 48 kHz, so
//! without reading the token in the player's timing the symbols drift like a
//! 314 ppm clock offset that resampling cannot undo; see `PLAYER_RATES_HZ`
//! in the decoder.

mod acoustic_support;

use acoustic_support::{Chunking, CrossRate, room_index, run_cross_rate_trials};
use clink_core::acoustic::Profile;

/// Late reverberation dominates this impulse response.
const REVERB_DOMINATED_ROOM: &str = "livingroom_rt60-0.5_d-1.5m";
const TRIALS: usize = 100;
/// At least 98 % of trials must decode. The trials that fail at this SNR
/// are the shop scene's, at one rate as well as across rates: its in-band
/// energy comes in bursts (clinks and beeps, up to 250 times its median
/// level), and a burst over the token defeats the decoder even at +20 dB
/// measured over the whole recording.
const MIN_DECODED: usize = 98;
/// In-band SNR of the trials: from here on, 99 % to 100 % decode across
/// rates and at one rate alike (README has the sweep).
const IN_BAND_SNR_DB: f64 = 12.0;

fn assert_decoded_across_rates(play_rate_hz: u32, capture_rate_hz: u32, seed: u64) {
    let profile = Profile::NearUltrasound;
    let room = room_index(capture_rate_hz, REVERB_DOMINATED_ROOM);
    let stats = run_cross_rate_trials(
        profile,
        seed,
        TRIALS,
        Chunking::Random(4096),
        |rng, trial| {
            CrossRate::random(
                rng,
                trial,
                play_rate_hz,
                capture_rate_hz,
                room,
                IN_BAND_SNR_DB,
            )
        },
    );
    assert_eq!(stats.wrong, 0, "a wrong token was accepted");
    assert!(
        stats.decoded >= MIN_DECODED,
        "decoded {}/{} tokens",
        stats.decoded,
        stats.trials
    );
}

#[test]
fn decodes_token_played_at_44k1_and_recorded_at_48k_with_100ppm_and_ambient_at_12db_in_band_snr_in_reverb_dominated_livingroom_at_1_5m()
 {
    assert_decoded_across_rates(44_100, 48_000, 31);
}

#[test]
fn decodes_token_played_at_48k_and_recorded_at_44k1_with_100ppm_and_ambient_at_12db_in_band_snr_in_reverb_dominated_livingroom_at_1_5m()
 {
    assert_decoded_across_rates(48_000, 44_100, 32);
}
