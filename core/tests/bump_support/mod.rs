//! Generated accelerometer traces and ambient scenes for the bump tests, the
//! crowd simulation (server) and the benches.
//!
//! Motion is a function of continuous time (ms) in the phone's axes,
//! including gravity; a sensor model samples it at a nominal rate with
//! jittered instants, a zero-phase anti-alias filter (a Hann average over two
//! sample periods, as if the platform had removed the filter's delay from the
//! timestamps) and white noise.
#![allow(dead_code)]

use std::f64::consts::{PI, TAU};
use std::path::PathBuf;

use clink_core::bump::AccelSample;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

pub const GRAVITY_MPS2: f64 = 9.806_65;

pub fn gaussian(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.gen_range(1e-12..1.0);
    let u2: f64 = rng.r#gen();
    (-2.0 * u1.ln()).sqrt() * (TAU * u2).cos()
}

fn unit(v: [f64; 3]) -> [f64; 3] {
    let n = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
    v.map(|x| x / n)
}

pub fn random_unit(rng: &mut ChaCha8Rng) -> [f64; 3] {
    unit([gaussian(rng), gaussian(rng), gaussian(rng)])
}

/// A half-sine pulse of `peak` over `[start, start + width]` ms.
fn half_sine(t: f64, start: f64, width: f64, peak: f64) -> f64 {
    if t < start || t > start + width {
        0.0
    } else {
        peak * (PI * (t - start) / width).sin()
    }
}

/// One ingredient of a phone's motion.
#[derive(Debug, Clone)]
pub enum Part {
    /// Gravity seen by a phone held at pitch/roll angles (rad) that sway
    /// slowly: `sway` rad at `sway_hz`.
    HeldGravity {
        pitch: f64,
        roll: f64,
        sway: f64,
        sway_hz: f64,
        phase: f64,
    },
    /// Gravity of a phone that turns from held (pitch/roll) to lying flat
    /// between `from_ms` and `to_ms`.
    LoweredGravity {
        pitch: f64,
        roll: f64,
        from_ms: f64,
        to_ms: f64,
    },
    /// A sum of sinusoids per axis: (amplitude m/s², frequency Hz, phase).
    Sines {
        axis: usize,
        terms: Vec<(f64, f64, f64)>,
    },
    /// Sinusoidal shaking along a direction between two instants.
    Shake {
        direction: [f64; 3],
        amplitude: f64,
        hz: f64,
        from_ms: f64,
        to_ms: f64,
    },
    /// Walking: a vertical bounce at the step rate with a heel-strike
    /// transient at each step.
    Walk {
        step_hz: f64,
        bounce: f64,
        heel: f64,
        heel_ms: f64,
        up: [f64; 3],
        phase: f64,
    },
    /// A collision: contact pulse of `width_ms` (half sine, `peak` m/s²)
    /// along `direction`, then ringing at `ring_hz`.
    Impact {
        at_ms: f64,
        width_ms: f64,
        peak: f64,
        direction: [f64; 3],
        ring_hz: f64,
        ring_fraction: f64,
        ring_tau_ms: f64,
    },
    /// A smooth hand movement: a half-sine of acceleration and one of
    /// deceleration along `direction`.
    Reach {
        from_ms: f64,
        width_ms: f64,
        peak: f64,
        direction: [f64; 3],
    },
}

impl Part {
    fn add(&self, t: f64, a: &mut [f64; 3]) {
        match *self {
            Part::HeldGravity {
                pitch,
                roll,
                sway,
                sway_hz,
                phase,
            } => {
                let s = sway * (TAU * sway_hz * t / 1000.0 + phase).sin();
                add_gravity(a, pitch + s, roll - 0.7 * s);
            }
            Part::LoweredGravity {
                pitch,
                roll,
                from_ms,
                to_ms,
            } => {
                let f = ((t - from_ms) / (to_ms - from_ms)).clamp(0.0, 1.0);
                let keep = 0.5 + 0.5 * (PI * f).cos();
                add_gravity(a, pitch * keep, roll * keep);
            }
            Part::Sines { axis, ref terms } => {
                for &(amp, hz, phase) in terms {
                    a[axis] += amp * (TAU * hz * t / 1000.0 + phase).sin();
                }
            }
            Part::Shake {
                direction,
                amplitude,
                hz,
                from_ms,
                to_ms,
            } => {
                if t >= from_ms && t <= to_ms {
                    // Ramped in and out over 200 ms; a little second harmonic.
                    let ramp = ((t - from_ms) / 200.0).min((to_ms - t) / 200.0).min(1.0);
                    let w = TAU * hz * (t - from_ms) / 1000.0;
                    let v = amplitude * ramp * (w.sin() + 0.25 * (2.0 * w + 0.5).sin());
                    for k in 0..3 {
                        a[k] += v * direction[k];
                    }
                }
            }
            Part::Walk {
                step_hz,
                bounce,
                heel,
                heel_ms,
                up,
                phase,
            } => {
                let steps = step_hz * t / 1000.0 + phase;
                let in_step_ms = steps.fract() / step_hz * 1000.0;
                let v = bounce * (TAU * steps).sin()
                    + 0.3 * bounce * (2.0 * TAU * steps + 1.0).sin()
                    + half_sine(in_step_ms, 0.0, heel_ms, heel);
                for k in 0..3 {
                    a[k] += v * up[k];
                }
            }
            Part::Impact {
                at_ms,
                width_ms,
                peak,
                direction,
                ring_hz,
                ring_fraction,
                ring_tau_ms,
            } => {
                let mut v = half_sine(t, at_ms, width_ms, peak);
                let after = t - at_ms - width_ms / 2.0;
                if after > 0.0 {
                    v += peak
                        * ring_fraction
                        * (-after / ring_tau_ms).exp()
                        * (TAU * ring_hz * after / 1000.0).sin();
                }
                for k in 0..3 {
                    a[k] += v * direction[k];
                }
            }
            Part::Reach {
                from_ms,
                width_ms,
                peak,
                direction,
            } => {
                let v = half_sine(t, from_ms, width_ms / 2.0, peak)
                    - half_sine(t, from_ms + width_ms / 2.0, width_ms / 2.0, peak);
                for k in 0..3 {
                    a[k] += v * direction[k];
                }
            }
        }
    }
}

fn add_gravity(a: &mut [f64; 3], pitch: f64, roll: f64) {
    a[0] += GRAVITY_MPS2 * pitch.cos() * roll.sin();
    a[1] += GRAVITY_MPS2 * pitch.sin();
    a[2] += GRAVITY_MPS2 * pitch.cos() * roll.cos();
}

/// A phone's motion: the sum of its parts.
#[derive(Debug, Clone, Default)]
pub struct Motion {
    pub parts: Vec<Part>,
}

impl Motion {
    pub fn accel(&self, t: f64) -> [f64; 3] {
        let mut a = [0.0; 3];
        for p in &self.parts {
            p.add(t, &mut a);
        }
        a
    }
}

/// How a phone's accelerometer samples.
#[derive(Debug, Clone, Copy)]
pub struct Sensor {
    pub rate_hz: f64,
    /// Each sampling instant moves by up to this fraction of the period.
    pub jitter_fraction: f64,
    /// White noise per axis, m/s² RMS.
    pub noise_mps2: f64,
    /// Error of the reported timestamps (a fixed bias), ms.
    pub timestamp_bias_ms: f64,
    /// Resolution at which the continuous motion is evaluated, ms.
    pub grid_step_ms: f64,
    /// The sensor's own low-pass filter (second-order Butterworth), Hz:
    /// phones filter well below their rate (a 50 Hz sensor at 15–25 Hz), so a
    /// few-ms knock reads a fraction of its true peak. `None`: only the
    /// sampling window.
    pub bandwidth_hz: Option<f64>,
}

impl Sensor {
    pub fn new(rate_hz: f64) -> Sensor {
        Sensor {
            rate_hz,
            jitter_fraction: 0.15,
            noise_mps2: 0.03,
            timestamp_bias_ms: 0.0,
            grid_step_ms: 0.25,
            bandwidth_hz: None,
        }
    }

    /// Samples `motion` from `start_ms` for `duration_ms`; timestamps are
    /// `clock_ms` ahead of the true time (the phone's wall clock).
    pub fn sample(
        &self,
        motion: &Motion,
        start_ms: f64,
        duration_ms: f64,
        clock_ms: f64,
        rng: &mut ChaCha8Rng,
    ) -> Vec<AccelSample> {
        let period = 1000.0 / self.rate_hz;
        // The motion on a fine grid, then each sample a Hann-weighted mean of
        // the grid over [t - period, t + period].
        let step = self.grid_step_ms;
        let grid_start = start_ms - 2.0 * period;
        let mut grid: Vec<[f64; 3]> = (0..((duration_ms + 4.0 * period) / step) as usize)
            .map(|i| motion.accel(grid_start + i as f64 * step))
            .collect();
        if let Some(bandwidth_hz) = self.bandwidth_hz {
            low_pass(&mut grid, bandwidth_hz, 1000.0 / step);
        }
        let half_taps = (period / step).ceil() as isize;
        let weights: Vec<f64> = (-half_taps..=half_taps)
            .map(|i| 0.5 + 0.5 * (PI * i as f64 / half_taps as f64).cos())
            .collect();
        let weight_sum: f64 = weights.iter().sum();
        let count = (duration_ms / period) as usize;
        let mut out = Vec::with_capacity(count);
        for k in 0..count {
            let jitter = self.jitter_fraction * period * rng.gen_range(-1.0..1.0);
            let t = start_ms + k as f64 * period + jitter;
            let centre = ((t - grid_start) / step).round() as isize;
            let mut sum = [0.0f64; 3];
            for (i, w) in (-half_taps..=half_taps).zip(&weights) {
                let a = grid[(centre + i) as usize];
                for axis in 0..3 {
                    sum[axis] += w * a[axis];
                }
            }
            let mut v = [0.0f32; 3];
            for axis in 0..3 {
                v[axis] = (sum[axis] / weight_sum + self.noise_mps2 * gaussian(rng)) as f32;
            }
            out.push(AccelSample {
                timestamp_ms: t + clock_ms + self.timestamp_bias_ms,
                x: v[0],
                y: v[1],
                z: v[2],
            });
        }
        out
    }
}

/// Second-order Butterworth low-pass (RBJ biquad) over each axis, in place,
/// run forwards then backwards: no delay, as the platforms promise
/// timestamps with the filter's delay removed. The state starts at the edge
/// value so gravity does not ring.
fn low_pass(grid: &mut [[f64; 3]], cutoff_hz: f64, rate_hz: f64) {
    let w0 = 2.0 * PI * cutoff_hz / rate_hz;
    let alpha = w0.sin() / (2.0 * std::f64::consts::FRAC_1_SQRT_2);
    let cos = w0.cos();
    let a0 = 1.0 + alpha;
    let b = [
        (1.0 - cos) / 2.0 / a0,
        (1.0 - cos) / a0,
        (1.0 - cos) / 2.0 / a0,
    ];
    let a = [-2.0 * cos / a0, (1.0 - alpha) / a0];
    let n = grid.len();
    for axis in 0..3 {
        for backwards in [false, true] {
            let index = |k: usize| if backwards { n - 1 - k } else { k };
            let edge = if n > 0 { grid[index(0)][axis] } else { 0.0 };
            let (mut x1, mut x2, mut y1, mut y2) = (edge, edge, edge, edge);
            for k in 0..n {
                let x = grid[index(k)][axis];
                let y = b[0] * x + b[1] * x1 + b[2] * x2 - a[0] * y1 - a[1] * y2;
                (x2, x1, y2, y1) = (x1, x, y1, y);
                grid[index(k)][axis] = y;
            }
        }
    }
}

/// A phone held in a hand: swaying gravity plus slow hand motion and tremor.
pub fn held(rng: &mut ChaCha8Rng) -> Motion {
    let mut parts = vec![Part::HeldGravity {
        pitch: rng.gen_range(0.2..1.2),
        roll: rng.gen_range(-0.5..0.5),
        sway: rng.gen_range(0.02..0.15),
        sway_hz: rng.gen_range(0.2..1.0),
        phase: rng.gen_range(0.0..TAU),
    }];
    for axis in 0..3 {
        parts.push(Part::Sines {
            axis,
            terms: vec![
                (
                    rng.gen_range(0.1..0.6),
                    rng.gen_range(0.5..3.0),
                    rng.gen_range(0.0..TAU),
                ),
                // Physiological tremor.
                (
                    rng.gen_range(0.02..0.08),
                    rng.gen_range(8.0..12.0),
                    rng.gen_range(0.0..TAU),
                ),
            ],
        });
    }
    Motion { parts }
}

/// Adds walking to a motion.
pub fn walking(rng: &mut ChaCha8Rng, motion: &mut Motion) {
    motion.parts.push(Part::Walk {
        step_hz: rng.gen_range(1.6..2.3),
        bounce: rng.gen_range(1.5..3.5),
        heel: rng.gen_range(2.0..6.0),
        heel_ms: rng.gen_range(25.0..60.0),
        up: unit([
            rng.gen_range(-0.3..0.3),
            rng.gen_range(0.5..1.0),
            rng.gen_range(0.2..0.8),
        ]),
        phase: rng.r#gen(),
    });
}

/// Adds gestures: reaching moves of a few m/s² every second or so.
pub fn gestures(rng: &mut ChaCha8Rng, motion: &mut Motion, from_ms: f64, to_ms: f64) {
    let mut t = from_ms + rng.gen_range(0.0..500.0);
    while t < to_ms - 600.0 {
        let width = rng.gen_range(250.0..600.0);
        motion.parts.push(Part::Reach {
            from_ms: t,
            width_ms: width,
            peak: rng.gen_range(1.5..6.0),
            direction: random_unit(rng),
        });
        t += width + rng.gen_range(200.0..1000.0);
    }
}

/// One collision between two phones, as each one feels it: a velocity
/// change of 0.14 to 0.75 m/s for a 180 g phone, from a tap to a firm knock.
#[derive(Debug, Clone, Copy)]
pub struct Collision {
    /// Start of contact (true time), ms.
    pub at_ms: f64,
    pub width_ms: f64,
    /// Force over the phone's mass: the peak for a 180 g phone, m/s².
    pub peak_180g: f64,
    pub ring_hz: f64,
}

impl Collision {
    pub fn random(rng: &mut ChaCha8Rng, at_ms: f64) -> Collision {
        Collision {
            at_ms,
            width_ms: rng.gen_range(4.0..8.0),
            peak_180g: rng.gen_range(70.0..150.0),
            ring_hz: rng.gen_range(200.0..450.0),
        }
    }

    /// The knock instant the detector should find: the middle of contact.
    pub fn instant_ms(&self) -> f64 {
        self.at_ms + self.width_ms / 2.0
    }

    /// Adds the approach, the impact and the retreat to a phone's motion.
    pub fn add_to(&self, rng: &mut ChaCha8Rng, motion: &mut Motion, mass_g: f64) {
        let direction = random_unit(rng);
        let approach_ms = rng.gen_range(250.0..450.0);
        motion.parts.push(Part::Reach {
            from_ms: self.at_ms - approach_ms,
            width_ms: approach_ms,
            peak: rng.gen_range(1.0..4.0),
            direction: direction.map(|v| -v),
        });
        motion.parts.push(Part::Impact {
            at_ms: self.at_ms,
            width_ms: self.width_ms,
            peak: self.peak_180g * 180.0 / mass_g,
            direction,
            ring_hz: self.ring_hz,
            ring_fraction: rng.gen_range(0.1..0.4),
            ring_tau_ms: rng.gen_range(2.0..5.0),
        });
        motion.parts.push(Part::Reach {
            from_ms: self.at_ms + self.width_ms + rng.gen_range(20.0..80.0),
            width_ms: rng.gen_range(300.0..600.0),
            peak: rng.gen_range(1.0..4.0),
            direction,
        });
    }
}

/// `core/tests/data/acoustic`: room impulse responses and two-phone ambient
/// scenes kept in the repository (see its README for how they were made).
/// Panics with a clear message when missing: these tests must never pass by
/// skipping.
pub fn testdata_dir() -> PathBuf {
    // Through the workspace root: other crates (the server's crowd test)
    // include this module too.
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../core/tests/data/acoustic");
    assert!(
        dir.join("rir").is_dir() && dir.join("ambient").is_dir(),
        "acoustic test data missing: expected core/tests/data/acoustic (looked in {})",
        dir.display()
    );
    dir
}

pub const TESTDATA_RATE_HZ: u32 = 48_000;

/// The six two-phone scenes: (name, micA, micB) at 48 kHz.
pub fn ambient_scenes() -> Vec<(String, Vec<f32>, Vec<f32>)> {
    const SCENES: [&str; 6] = [
        "cafe_babble",
        "car_cabin",
        "hall_babble",
        "quiet_room",
        "shop_babble_music",
        "street",
    ];
    let dir = testdata_dir().join("ambient");
    SCENES
        .iter()
        .map(|name| {
            let a = read_wav(&dir.join(format!("{name}_micA.wav")));
            let b = read_wav(&dir.join(format!("{name}_micB.wav")));
            (name.to_string(), a, b)
        })
        .collect()
}

pub fn read_wav(path: &std::path::Path) -> Vec<f32> {
    let mut reader = hound::WavReader::open(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let spec = reader.spec();
    assert_eq!(spec.channels, 1, "{} is not mono", path.display());
    assert_eq!(spec.sample_rate, TESTDATA_RATE_HZ, "{}", path.display());
    reader
        .samples::<f32>()
        .map(|s| s.expect("valid float sample"))
        .collect()
}

/// Band-limited resampling (Blackman-windowed sinc, 32 zero crossings).
pub fn resample(input: &[f32], from_hz: u32, to_hz: u32) -> Vec<f32> {
    if from_hz == to_hz {
        return input.to_vec();
    }
    const HALF_TAPS: f64 = 32.0;
    let ratio = f64::from(to_hz) / f64::from(from_hz);
    let cutoff = 0.95 * ratio.min(1.0);
    let half_width = HALF_TAPS / cutoff;
    let out_len = (input.len() as f64 * ratio) as usize;
    (0..out_len)
        .map(|m| {
            let t = m as f64 / ratio;
            let first = (t - half_width).ceil().max(0.0) as usize;
            let last = ((t + half_width).floor() as usize).min(input.len() - 1);
            let mut acc = 0.0f64;
            for (n, &x) in input.iter().enumerate().take(last + 1).skip(first) {
                let d = n as f64 - t;
                let w =
                    0.42 + 0.5 * (PI * d / half_width).cos() + 0.08 * (TAU * d / half_width).cos();
                let x_c = cutoff * d;
                let sinc = if x_c.abs() < 1e-9 {
                    1.0
                } else {
                    (PI * x_c).sin() / (PI * x_c)
                };
                acc += f64::from(x) * cutoff * sinc * w;
            }
            acc as f32
        })
        .collect()
}

/// `audio` delayed by `shift_ms` (positive: later; the start is padded with
/// the audio's own beginning mirrored, so the level stays the same).
pub fn shifted(audio: &[f32], rate_hz: u32, shift_ms: f64) -> Vec<f32> {
    let shift = (shift_ms.abs() * f64::from(rate_hz) / 1000.0).round() as usize;
    if shift_ms >= 0.0 {
        let mut out: Vec<f32> = audio[..shift].iter().rev().copied().collect();
        out.extend_from_slice(&audio[..audio.len() - shift]);
        out
    } else {
        let mut out = audio[shift..].to_vec();
        out.extend(audio[audio.len() - shift..].iter().rev());
        out
    }
}

/// A one-pole high-pass at `cutoff_hz` and a gain: a different phone's
/// microphone.
pub fn other_microphone(audio: &[f32], rate_hz: u32, cutoff_hz: f64, gain: f32) -> Vec<f32> {
    let alpha = (-TAU * cutoff_hz / f64::from(rate_hz)).exp() as f32;
    let (mut previous_in, mut previous_out) = (0.0f32, 0.0f32);
    audio
        .iter()
        .map(|&x| {
            let y = alpha * (previous_out + x - previous_in);
            previous_in = x;
            previous_out = y;
            gain * y
        })
        .collect()
}
