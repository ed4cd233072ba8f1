//! Band-limited interpolation by an arbitrary ratio: undoing a clock offset
//! of a few ppm, and carrying a token recorded at one sample rate over to
//! the rate it was played at.

/// Half-width of the kernel, in input samples.
const HALF_TAPS: usize = 32;
/// Fractional offsets tabulated (the offset is rounded to 1/512 sample: at
/// 44.1 kHz a 22 ns error, a few thousandths of a radian at 20 kHz).
const PHASES: usize = 512;

/// Blackman-windowed sinc interpolator, cut off at the input's Nyquist
/// frequency (hand-written: the resampling crates convert between fixed
/// rates, not by a ratio a few ppm from one).
///
/// Taking a 48 kHz recording down to 44.1 kHz this way folds 22.05–24 kHz
/// onto 20.1–22.05 kHz, above the near-ultrasound band and its margins, so
/// the band needs no sharper filter.
#[derive(Clone)]
pub struct Resampler {
    /// For each of `PHASES` fractional offsets f, the taps at
    /// d = j − (HALF_TAPS − 1) − f, j = 0..2·HALF_TAPS.
    table: Vec<f32>,
}

impl Resampler {
    pub fn new() -> Self {
        let taps = 2 * HALF_TAPS;
        let half = HALF_TAPS as f64;
        let table = (0..PHASES * taps)
            .map(|i| {
                let (phase, j) = (i / taps, i % taps);
                let d = j as f64 - (half - 1.0) - phase as f64 / PHASES as f64;
                if d.abs() >= half {
                    return 0.0;
                }
                let x = std::f64::consts::PI * d;
                let sinc = if d == 0.0 { 1.0 } else { x.sin() / x };
                let blackman = 0.42
                    + 0.5 * (std::f64::consts::PI * d / half).cos()
                    + 0.08 * (std::f64::consts::TAU * d / half).cos();
                (sinc * blackman) as f32
            })
            .collect();
        Resampler { table }
    }

    /// Input samples past the last one read for an output sample: keep this
    /// many after `(out_len − 1) · ratio` so every tap lands on real input.
    pub const fn reach() -> usize {
        HALF_TAPS + 1
    }

    /// `out[n] = input(n · ratio)` for n in 0..out_len; input beyond either
    /// end counts as silence.
    pub fn resample(&self, input: &[f32], ratio: f64, out_len: usize) -> Vec<f32> {
        let half = HALF_TAPS;
        let taps = 2 * half;
        // Zero padding on both sides keeps every tap inside the slice.
        let mut padded = vec![0f32; input.len() + 2 * taps];
        padded[taps..taps + input.len()].copy_from_slice(input);
        (0..out_len)
            .map(|n| {
                let t = n as f64 * ratio;
                let mut whole = t.floor() as usize;
                let mut phase = ((t - whole as f64) * PHASES as f64).round() as usize;
                if phase == PHASES {
                    whole += 1;
                    phase = 0;
                }
                // Input index whole − (half − 1) sits at padded index
                // whole − (half − 1) + taps.
                let first = whole + taps + 1 - half;
                let window = &padded[first.min(padded.len() - taps)..][..taps];
                let kernel = &self.table[phase * taps..][..taps];
                window.iter().zip(kernel).map(|(x, k)| x * k).sum()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(f: f64, fs: f64, n: usize) -> f32 {
        (std::f64::consts::TAU * f * n as f64 / fs).sin() as f32
    }

    #[test]
    fn carries_band_tones_between_44k1_and_48k() {
        // A tone keeps its frequency in Hz from one rate to the other, at
        // the bottom and top of the near-ultrasound band, both ways.
        let resampler = Resampler::new();
        for (from, to) in [(44_100.0, 48_000.0), (48_000.0, 44_100.0)] {
            for f in [17_500.0, 20_000.0] {
                let input: Vec<f32> = (0..20_000).map(|n| tone(f, from, n)).collect();
                let out_len = (20_000.0 * to / from) as usize;
                let output = resampler.resample(&input, from / to, out_len);
                let worst = (200..out_len - 200)
                    .map(|n| (output[n] - tone(f, to, n)).abs())
                    .fold(0f32, f32::max);
                assert!(worst < 0.02, "{f} Hz, {from} → {to}: worst error {worst}");
            }
        }
    }
}
