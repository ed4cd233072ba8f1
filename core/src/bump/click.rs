//! The knock's own sound: did the microphone hear a click at the moment the
//! accelerometer felt a knock?
//!
//! A phone hears its own knock from a few centimetres: a broadband click
//! 25–45 dB above the room's level in the band above 1.5 kHz, where voices
//! and traffic carry little. Ambient sound rarely rises 10 dB above its own
//! median there within a fraction of a second. So a faint knock from a slow
//! accelerometer is reported only when the audio around it holds a click
//! [`MIN_CLICK_DB`] above the clip's median level, within
//! ±[`CLICK_SEARCH_MS`] of the knock (the audio and sensor clocks of one
//! phone differ by tens of milliseconds at most).
//!
//! Pure: samples in, a verdict out.

/// The band the click is measured in starts here: above most of the energy
/// of voices, music and traffic.
pub const HIGH_PASS_HZ: f32 = 1_500.0;
/// Energy is measured over frames of this length, every [`HOP_MS`].
pub const FRAME_MS: f64 = 2.0;
pub const HOP_MS: f64 = 1.0;
/// A click stands at least this far above the clip's median frame level.
/// Measured on crowds of phones: a phone's own knock 26–45 dB, a window
/// without a knock at most 10 dB.
pub const MIN_CLICK_DB: f32 = 18.0;
/// The click is searched for within this span either side of the knock.
pub const CLICK_SEARCH_MS: f64 = 60.0;

/// A click found in the audio.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Click {
    /// Where its loudest frame starts, ms from the clip's first sample.
    pub at_ms: f64,
    /// How far that frame stands above the clip's median frame level, dB.
    pub level_db: f32,
}

/// The loudest click within ±[`CLICK_SEARCH_MS`] of `knock_at_ms` (ms from
/// the clip's first sample), if it stands [`MIN_CLICK_DB`] above the clip.
pub fn find_click(audio: &[f32], sample_rate_hz: u32, knock_at_ms: f64) -> Option<Click> {
    let levels = frame_levels_db(audio, sample_rate_hz);
    if levels.len() < 3 {
        return None;
    }
    let mut sorted = levels.clone();
    sorted.sort_by(f32::total_cmp);
    let median = sorted[sorted.len() / 2];
    let first = ((knock_at_ms - CLICK_SEARCH_MS) / HOP_MS).max(0.0) as usize;
    let last = (((knock_at_ms + CLICK_SEARCH_MS) / HOP_MS).max(0.0) as usize).min(levels.len());
    let (index, loudest) = levels
        .get(first..last)?
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))?;
    let level_db = loudest - median;
    (level_db >= MIN_CLICK_DB).then_some(Click {
        at_ms: (first + index) as f64 * HOP_MS,
        level_db,
    })
}

/// Energy of the high-passed audio per frame, dB.
fn frame_levels_db(audio: &[f32], sample_rate_hz: u32) -> Vec<f32> {
    let high = high_pass(audio, sample_rate_hz);
    let rate = f64::from(sample_rate_hz);
    let frame = ((FRAME_MS * rate / 1000.0).round() as usize).max(1);
    let hop = ((HOP_MS * rate / 1000.0).round() as usize).max(1);
    if high.len() < frame {
        return Vec::new();
    }
    (0..=(high.len() - frame) / hop)
        .map(|f| {
            let energy: f64 = high[f * hop..f * hop + frame]
                .iter()
                .map(|&s| f64::from(s) * f64::from(s))
                .sum::<f64>()
                / frame as f64;
            (10.0 * (energy + 1e-20).log10()) as f32
        })
        .collect()
}

/// Second-order Butterworth high-pass at [`HIGH_PASS_HZ`] (RBJ biquad).
fn high_pass(audio: &[f32], sample_rate_hz: u32) -> Vec<f32> {
    let w0 = 2.0 * std::f64::consts::PI * f64::from(HIGH_PASS_HZ) / f64::from(sample_rate_hz);
    let alpha = w0.sin() / (2.0 * std::f64::consts::FRAC_1_SQRT_2);
    let cos = w0.cos();
    let a0 = 1.0 + alpha;
    let b = [
        (1.0 + cos) / 2.0 / a0,
        -(1.0 + cos) / a0,
        (1.0 + cos) / 2.0 / a0,
    ];
    let a = [-2.0 * cos / a0, (1.0 - alpha) / a0];
    let (mut x1, mut x2, mut y1, mut y2) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    audio
        .iter()
        .map(|&x| {
            let x = f64::from(x);
            let y = b[0] * x + b[1] * x1 + b[2] * x2 - a[0] * y1 - a[1] * y2;
            (x2, x1, y2, y1) = (x1, x, y1, y);
            y as f32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seeded white noise (xorshift), RMS about `level`.
    fn noise(len: usize, level: f32, mut state: u64) -> Vec<f32> {
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                level * 1.73 * ((state >> 11) as f32 / (1u64 << 53) as f32 * 2.0 - 1.0)
            })
            .collect()
    }

    /// A click: a decaying 3 kHz burst of `ms` milliseconds at `at_ms`.
    fn add_click(audio: &mut [f32], rate: u32, at_ms: f64, amplitude: f32) {
        let start = (at_ms * f64::from(rate) / 1000.0) as usize;
        for (n, s) in audio[start..]
            .iter_mut()
            .take(rate as usize / 100)
            .enumerate()
        {
            let t = n as f32 / rate as f32;
            *s += amplitude * (-t / 0.002).exp() * (2.0 * std::f32::consts::PI * 3_000.0 * t).sin();
        }
    }

    #[test]
    fn finds_a_knock_click_and_its_time_at_phone_rates() {
        for (rate, seed) in [(16_000, 1), (44_100, 2), (48_000, 3)] {
            let mut audio = noise(rate as usize * 2, 0.01, seed);
            add_click(&mut audio, rate, 1_230.0, 0.5);
            // The accelerometer placed the knock 40 ms off.
            let click = find_click(&audio, rate, 1_190.0).expect("click found");
            assert!((click.at_ms - 1_230.0).abs() <= 3.0, "{rate} Hz: {click:?}");
            assert!(click.level_db > 25.0, "{rate} Hz: {click:?}");
        }
    }

    #[test]
    fn no_click_in_noise_speech_band_sound_or_beyond_the_search_span() {
        let rate = 48_000;
        // Steady noise only.
        let audio = noise(rate as usize * 2, 0.05, 7);
        assert_eq!(find_click(&audio, rate, 1_000.0), None);
        // A loud 300 Hz thump (a voice, a door): below the click's band.
        let mut thump = noise(rate as usize * 2, 0.01, 8);
        for (n, s) in thump[48_000..48_000 + 4_800].iter_mut().enumerate() {
            *s += 0.5 * (2.0 * std::f32::consts::PI * 300.0 * n as f32 / rate as f32).sin();
        }
        assert_eq!(find_click(&thump, rate, 1_000.0), None);
        // A click 200 ms away from the knock is another event.
        let mut late = noise(rate as usize * 2, 0.01, 9);
        add_click(&mut late, rate, 1_200.0, 0.5);
        assert_eq!(find_click(&late, rate, 1_000.0), None);
        // Too little audio, or none, is no click and no panic.
        assert_eq!(find_click(&[], rate, 0.0), None);
        assert_eq!(find_click(&late[..50], rate, 0.0), None);
    }
}
