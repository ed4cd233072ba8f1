//! Test signals generated in code with fixed seeds: tone pairs with chosen
//! frequency errors, twist and breaks; white noise; speech-like and
//! music-like audio for talk-off tests.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::f64::consts::TAU;

pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// Standard normal sample (Box-Muller; two lines do not justify `rand_distr`).
pub fn gaussian(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = 1.0 - rng.r#gen::<f64>();
    let u2: f64 = rng.r#gen();
    (-2.0 * u1.ln()).sqrt() * (TAU * u2).cos()
}

pub fn samples_for_ms(rate: u32, ms: f64) -> usize {
    (ms * rate as f64 / 1000.0).round() as usize
}

/// Two tones: `low_hz` at amplitude `low_amp`, `high_hz` at `high_amp`.
#[derive(Clone, Copy, Debug)]
pub struct TonePair {
    pub low_hz: f64,
    pub high_hz: f64,
    pub low_amp: f64,
    pub high_amp: f64,
}

impl TonePair {
    pub fn nominal(digit: char, amplitude: f64) -> TonePair {
        let d = crate::dtmf::Digit::from_char(digit).unwrap();
        TonePair {
            low_hz: d.low_hz() as f64,
            high_hz: d.high_hz() as f64,
            low_amp: amplitude,
            high_amp: amplitude,
        }
    }

    /// Appends `len` samples of the pair, with phases continuing from sample
    /// `phase_origin` (so two calls with gated gaps make one interrupted tone).
    pub fn render(
        &self,
        rate: u32,
        len: usize,
        phases: (f64, f64),
        phase_origin: usize,
        out: &mut Vec<f32>,
    ) {
        let rate = rate as f64;
        for n in phase_origin..phase_origin + len {
            let t = n as f64 / rate;
            let x = self.low_amp * (TAU * self.low_hz * t + phases.0).sin()
                + self.high_amp * (TAU * self.high_hz * t + phases.1).sin();
            out.push(x as f32);
        }
    }
}

pub fn random_phases(rng: &mut ChaCha8Rng) -> (f64, f64) {
    (rng.gen_range(0.0..TAU), rng.gen_range(0.0..TAU))
}

pub fn push_silence(len: usize, out: &mut Vec<f32>) {
    out.resize(out.len() + len, 0.0);
}

pub fn add_white_noise(signal: &mut [f32], sigma: f64, rng: &mut ChaCha8Rng) {
    for x in signal {
        *x += (sigma * gaussian(rng)) as f32;
    }
}

fn rms(signal: &[f32]) -> f64 {
    (signal.iter().map(|&x| x as f64 * x as f64).sum::<f64>() / signal.len() as f64).sqrt()
}

fn normalise_rms(signal: &mut [f32], target_rms: f64) {
    let gain = target_rms / rms(signal).max(1e-12);
    for x in signal {
        *x = (*x as f64 * gain) as f32;
    }
}

/// Two-pole resonator (a formant), unit gain at its centre frequency.
struct Resonator {
    y1: f64,
    y2: f64,
}

impl Resonator {
    fn new() -> Resonator {
        Resonator { y1: 0.0, y2: 0.0 }
    }

    fn step(&mut self, x: f64, centre_hz: f64, bandwidth_hz: f64, rate: f64) -> f64 {
        let r = (-std::f64::consts::PI * bandwidth_hz / rate).exp();
        let a1 = 2.0 * r * (TAU * centre_hz / rate).cos();
        let a2 = -r * r;
        let gain = 1.0 - r;
        let y = gain * x + a1 * self.y1 + a2 * self.y2;
        self.y2 = self.y1;
        self.y1 = y;
        y
    }
}

/// Formants (F1, F2, F3) of common vowels, in Hz.
const VOWELS_HZ: [(f64, f64, f64); 10] = [
    (730.0, 1090.0, 2440.0), // a
    (270.0, 2290.0, 3010.0), // i
    (300.0, 870.0, 2240.0),  // u
    (530.0, 1840.0, 2480.0), // e
    (570.0, 840.0, 2410.0),  // o
    (660.0, 1720.0, 2410.0), // ae
    (520.0, 1190.0, 2390.0), // schwa
    (490.0, 1350.0, 1690.0), // er
    (390.0, 1990.0, 2550.0), // I
    (640.0, 1190.0, 2390.0), // ah
];

/// Speech-like audio: phrases of syllables; voiced syllables are glottal
/// pulse trains (pitch 80-300 Hz, intonation and jitter, -12 dB/octave source
/// with lip radiation) through three formant resonators gliding between
/// vowels, sometimes held at a steady pitch; unvoiced syllables are noise
/// through a high formant; syllable-rate envelopes and pauses between
/// phrases; then a telephone handset's upward tilt. RMS -20 dBFS.
pub fn speech_like(rate: u32, seconds: f64, seed: u64) -> Vec<f32> {
    let mut rng = rng(seed);
    let fs = rate as f64;
    let total = (seconds * fs) as usize;
    let mut out = Vec::with_capacity(total);
    let mut formants = [Resonator::new(), Resonator::new(), Resonator::new()];
    let mut fricative = Resonator::new();
    let glottal_pole = (-TAU * 200.0 / fs).exp();
    let (mut g1, mut g2, mut previous) = (0.0, 0.0, 0.0);
    let mut pulse_phase = 0.0;
    let mut current = VOWELS_HZ[0];

    while out.len() < total {
        // A phrase by one "speaker".
        let base_f0: f64 = rng.gen_range(80.0..300.0);
        let phrase_syllables = rng.gen_range(3..10);
        let phrase_len: usize = phrase_syllables;
        let rise_fall: f64 = rng.gen_range(-0.3..0.3);
        for syllable in 0..phrase_len {
            let voiced = rng.gen_bool(0.8);
            // Now and then a held vowel or hum at a steady pitch: the hardest
            // case for talk-off, as its harmonics are steady tones.
            let held = voiced && rng.gen_bool(0.15);
            let len = if held {
                samples_for_ms(rate, rng.gen_range(400.0..900.0))
            } else {
                samples_for_ms(rate, rng.gen_range(120.0..320.0))
            };
            let target = VOWELS_HZ[rng.gen_range(0..VOWELS_HZ.len())];
            let loudness = 10f64.powf(rng.gen_range(-8.0..0.0) / 20.0);
            let fricative_hz: f64 = rng.gen_range(2200.0f64..3600.0).min(0.45 * fs);
            let start = current;
            let glide = samples_for_ms(rate, 50.0).max(1);
            for n in 0..len {
                let progress = n as f64 / len as f64;
                let g = (n as f64 / glide as f64).min(1.0);
                current = (
                    start.0 + (target.0 - start.0) * g,
                    start.1 + (target.1 - start.1) * g,
                    start.2 + (target.2 - start.2) * g,
                );
                // Syllable envelope: smooth rise and fall.
                let envelope = (std::f64::consts::PI * progress).sin().powf(0.7) * loudness;
                let phrase_pos = (syllable as f64 + progress) / phrase_len as f64;
                let contour_pos = if held {
                    syllable as f64 / phrase_len as f64
                } else {
                    phrase_pos
                };
                let f0 = base_f0
                    * (1.0 + rise_fall * (contour_pos - 0.5))
                    * (1.0 + 0.08 * (TAU * 3.0 * contour_pos).sin());
                let sample = if voiced {
                    pulse_phase += f0 / fs;
                    let mut excitation = 0.0;
                    if pulse_phase >= 1.0 {
                        pulse_phase -= 1.0 + 0.01 * gaussian(&mut rng);
                        excitation = 1.0;
                    }
                    // Glottal source: two poles at 200 Hz, then lip radiation.
                    g1 = glottal_pole * g1 + excitation;
                    g2 = glottal_pole * g2 + g1;
                    let radiated = g2 - previous;
                    previous = g2;
                    let aspiration = 0.02 * gaussian(&mut rng);
                    let mut y = radiated + aspiration;
                    let bandwidths = [80.0, 100.0, 140.0];
                    let centres = [current.0, current.1, current.2.min(0.45 * fs)];
                    for (k, formant) in formants.iter_mut().enumerate() {
                        y = formant.step(y, centres[k], bandwidths[k], fs) * 4.0;
                    }
                    y
                } else {
                    fricative.step(gaussian(&mut rng), fricative_hz, 600.0, fs) * 3.0
                };
                out.push((sample * envelope) as f32);
            }
        }
        // Pause between phrases, with a little room noise.
        let pause = samples_for_ms(rate, rng.gen_range(150.0..600.0));
        for _ in 0..pause {
            out.push((1e-4 * gaussian(&mut rng)) as f32);
        }
    }
    out.truncate(total);
    telephone_send_tilt(&mut out);
    normalise_rms(&mut out, 0.1);
    out
}

/// Telephone handsets boost the upper speech band (the IRS send response
/// rises about 6 dB/octave up to 3 kHz): a first difference does the same.
/// It also lifts speech harmonics into the DTMF high group, which makes the
/// talk-off test harder.
fn telephone_send_tilt(signal: &mut [f32]) {
    let mut previous = 0.0;
    for x in signal {
        let input = *x;
        *x = input - 0.9 * previous;
        previous = input;
    }
}

fn midi_to_hz(note: f64) -> f64 {
    440.0 * 2f64.powf((note - 69.0) / 12.0)
}

/// A note: MIDI pitch, where it starts and how long it lasts (samples), and
/// its level.
struct Note {
    midi: f64,
    start: usize,
    len: usize,
    level: f64,
}

/// One instrument voice: harmonic partials with amplitudes 1/k^rolloff,
/// an envelope and optional vibrato.
struct Voice {
    rolloff: f64,
    plucked: bool,
    vibrato_depth: f64,
    vibrato_hz: f64,
}

impl Voice {
    fn random(rng: &mut ChaCha8Rng) -> Voice {
        let plucked = rng.gen_bool(0.5);
        Voice {
            rolloff: rng.gen_range(0.8..2.0),
            plucked,
            vibrato_depth: if plucked {
                0.0
            } else {
                rng.gen_range(0.002..0.01)
            },
            vibrato_hz: rng.gen_range(4.5..6.5),
        }
    }

    /// Adds `note` to `mix`.
    fn play(&self, note: Note, rate: f64, rng: &mut ChaCha8Rng, mix: &mut [f32]) {
        let Note {
            midi,
            start,
            len,
            level,
        } = note;
        let f0 = midi_to_hz(midi);
        let partials = ((0.45 * rate).min(3800.0) / f0).floor().max(1.0) as usize;
        let phases: Vec<f64> = (0..partials).map(|_| rng.gen_range(0.0..TAU)).collect();
        let jitter: Vec<f64> = (0..partials).map(|_| rng.gen_range(0.7..1.3)).collect();
        let vibrato_phase = rng.gen_range(0.0..TAU);
        let decay_s = rng.gen_range(0.3..1.2);
        let mut phase = 0.0;
        let end = (start + len).min(mix.len());
        for (i, out) in mix[start.min(end)..end].iter_mut().enumerate() {
            let t = i as f64 / rate;
            let envelope = if self.plucked {
                (t / 0.005).min(1.0) * (-t / decay_s).exp()
            } else {
                let remaining = (end - start - i) as f64 / rate;
                (t / 0.05).min(1.0) * (remaining / 0.08).min(1.0)
            };
            let vibrato =
                1.0 + self.vibrato_depth * (TAU * self.vibrato_hz * t + vibrato_phase).sin();
            phase += TAU * f0 * vibrato / rate;
            let mut y = 0.0;
            for k in 0..partials {
                let harmonic = (k + 1) as f64;
                y += jitter[k] / harmonic.powf(self.rolloff) * (harmonic * phase + phases[k]).sin();
            }
            *out += (level * envelope * y) as f32;
        }
    }
}

/// Music-like audio: sections in random keys and tempos; a chord progression
/// played by a pad voice, a bass line, a melody of eighth and quarter notes
/// (all harmonic timbres, some with vibrato), and a drum kit (kick, snare,
/// hi-hat). RMS -18 dBFS.
pub fn music_like(rate: u32, seconds: f64, seed: u64) -> Vec<f32> {
    let mut rng = rng(seed);
    let fs = rate as f64;
    let total = (seconds * fs) as usize;
    let mut mix = vec![0f32; total];
    const MAJOR: [i32; 7] = [0, 2, 4, 5, 7, 9, 11];
    const PROGRESSIONS: [[usize; 4]; 4] = [[0, 4, 5, 3], [0, 5, 3, 4], [1, 4, 0, 0], [0, 3, 4, 3]];
    let mut position = 0;
    while position < total {
        let key = rng.gen_range(0..12) as f64;
        let beat = (fs * 60.0 / rng.gen_range(80.0..150.0)) as usize;
        let progression = PROGRESSIONS[rng.gen_range(0..PROGRESSIONS.len())];
        let pad = Voice::random(&mut rng);
        let bass = Voice::random(&mut rng);
        let lead = Voice::random(&mut rng);
        for &degree in progression.iter().cycle().take(8) {
            let bar = position;
            let scale_note = |step: usize| -> f64 {
                let octave = (step / 7) as f64;
                key + MAJOR[step % 7] as f64 + 12.0 * octave
            };
            // Chord: root, third, fifth and sometimes the seventh, voiced
            // between MIDI 55 and 84.
            let mut chord = vec![degree, degree + 2, degree + 4];
            if rng.gen_bool(0.4) {
                chord.push(degree + 6);
            }
            for &step in &chord {
                let octave_shift = 12.0 * rng.gen_range(4..7) as f64;
                let note = (scale_note(step) + octave_shift).clamp(55.0, 84.0);
                pad.play(
                    Note {
                        midi: note,
                        start: bar,
                        len: 4 * beat,
                        level: 0.15,
                    },
                    fs,
                    &mut rng,
                    &mut mix,
                );
            }
            bass.play(
                Note {
                    midi: scale_note(degree) + 36.0,
                    start: bar,
                    len: 4 * beat,
                    level: 0.3,
                },
                fs,
                &mut rng,
                &mut mix,
            );
            // Melody.
            let mut t = bar;
            let mut step = degree + 7 + rng.gen_range(0..5);
            while t < bar + 4 * beat {
                let len = if rng.gen_bool(0.6) { beat / 2 } else { beat };
                step = (step as i64 + rng.gen_range(-2..=2)).clamp(7, 20) as usize;
                let note = (scale_note(step) + 48.0).clamp(60.0, 96.0);
                lead.play(
                    Note {
                        midi: note,
                        start: t,
                        len,
                        level: 0.25,
                    },
                    fs,
                    &mut rng,
                    &mut mix,
                );
                t += len;
            }
            // Drums.
            for b in 0..4 {
                let at = bar + b * beat;
                if b % 2 == 0 {
                    kick(at, fs, &mut mix);
                } else {
                    snare(at, fs, &mut rng, &mut mix);
                }
                hi_hat(at, fs, &mut rng, &mut mix);
                hi_hat(at + beat / 2, fs, &mut rng, &mut mix);
            }
            position = bar + 4 * beat;
            if position >= total {
                break;
            }
        }
    }
    normalise_rms(&mut mix, 0.125);
    mix
}

fn kick(at: usize, fs: f64, mix: &mut [f32]) {
    let mut phase = 0.0;
    for n in at..(at + (0.25 * fs) as usize).min(mix.len()) {
        let t = (n - at) as f64 / fs;
        let hz = 45.0 + 110.0 * (-t / 0.04).exp();
        phase += TAU * hz / fs;
        mix[n] += (0.8 * (-t / 0.12).exp() * phase.sin()) as f32;
    }
}

fn snare(at: usize, fs: f64, rng: &mut ChaCha8Rng, mix: &mut [f32]) {
    for n in at..(at + (0.2 * fs) as usize).min(mix.len()) {
        let t = (n - at) as f64 / fs;
        let body = (TAU * 185.0 * t).sin() * (-t / 0.05).exp();
        let rattle = gaussian(rng) * (-t / 0.07).exp();
        mix[n] += (0.3 * body + 0.25 * rattle) as f32;
    }
}

fn hi_hat(at: usize, fs: f64, rng: &mut ChaCha8Rng, mix: &mut [f32]) {
    let mut previous = 0.0;
    for n in at..(at + (0.05 * fs) as usize).min(mix.len()) {
        let t = (n - at) as f64 / fs;
        let noise = gaussian(rng);
        // First difference: a crude high-pass, enough to make it a hiss.
        mix[n] += (0.1 * (noise - previous) * (-t / 0.015).exp()) as f32;
        previous = noise;
    }
}

/// Band-limited upsampling by an integer `factor`: zero-stuffing, then a
/// Kaiser-windowed sinc low-pass (beta 8, 64 input samples either side)
/// cut at 95 % of the input's Nyquist frequency, i.e. 3.8 kHz for 8 kHz
/// audio; images above it are more than 70 dB down from 4.1 kHz on.
pub fn upsample(signal: &[f32], factor: usize) -> Vec<f32> {
    const HALF_TAPS: usize = 64;
    const CUTOFF: f64 = 0.95;
    const BETA: f64 = 8.0;
    // Zeroth-order modified Bessel function, by its series.
    let bessel_i0 = |x: f64| {
        let (mut sum, mut term, mut k) = (1.0, 1.0, 1.0);
        while term > 1e-12 * sum {
            term *= (x / (2.0 * k)).powi(2);
            sum += term;
            k += 1.0;
        }
        sum
    };
    let half_len = (HALF_TAPS * factor) as f64;
    // Impulse response at output-sample offsets -half_len..=half_len.
    let taps: Vec<f64> = (-(HALF_TAPS as isize * factor as isize)..=(HALF_TAPS * factor) as isize)
        .map(|i| {
            let t = i as f64 / factor as f64;
            let x = std::f64::consts::PI * CUTOFF * t;
            let sinc = if x == 0.0 { 1.0 } else { x.sin() / x };
            let r = i as f64 / half_len;
            CUTOFF * sinc * bessel_i0(BETA * (1.0 - r * r).max(0.0).sqrt()) / bessel_i0(BETA)
        })
        .collect();
    let centre = (HALF_TAPS * factor) as isize;
    (0..signal.len() * factor)
        .map(|m| {
            // Input samples k with |m - k factor| <= centre.
            let first = ((m as isize - centre).max(0) as usize).div_ceil(factor);
            let last = ((m as isize + centre) as usize / factor).min(signal.len() - 1);
            (first..=last)
                .map(|k| {
                    signal[k] as f64 * taps[(m as isize - (k * factor) as isize + centre) as usize]
                })
                .sum::<f64>() as f32
        })
        .collect()
}
