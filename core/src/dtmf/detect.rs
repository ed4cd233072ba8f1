//! Streaming DTMF detector meeting the ITU-T Q.24 acceptance limits.
//!
//! Design, and why:
//! - Analysis: DFT bins at the 8 DTMF frequencies and their 8 second
//!   harmonics (see `bank`), over 20 ms frames that slide by 5 ms hops.
//!   Chosen over an FFT per hop by measurement (`cargo bench -p clink-core
//!   --bench dtmf`): on audio without digits the whole detector takes about
//!   45 us per second of 8 kHz audio and 160 us at 48 kHz, where rustfft's
//!   transforms alone would take 25 us and 210 us (1.1 ms at 44.1 kHz, whose
//!   880-point frame has a factor 11). Both are thousands of times faster
//!   than real time; the bank puts every bin exactly on a DTMF frequency (an
//!   FFT's 50 Hz grid would need interpolation) and keeps phases against
//!   absolute time, which the frequency measurement below relies on. An FFT
//!   is still used, zero-padded to a power of two, for the purity check on
//!   frames that already look like a digit.
//! - Frequency tolerance: a 20 ms frame cannot tell 697 Hz +1.5 % (accept)
//!   from +3.5 % (reject) by magnitude alone, and a 40 ms one would already
//!   null a 1633 Hz tone that is 1.5 % off. So magnitude only decides which
//!   bin a tone belongs to; its frequency is read from the phase advance of
//!   that bin from frame to frame, averaged over the whole tone, and must be
//!   within `FREQUENCY_TOLERANCE` (2 %: margin enough above the 1.5 % that
//!   must pass, and tight, as musical notes lie 1.3-3 % from several DTMF
//!   frequencies).
//! - Duration: a tone of length T >= frame length keeps at least half its
//!   full amplitude in frames whose starts span exactly T, whatever its level,
//!   so the detector counts frames at or above half the tone's own peak
//!   amplitude. That measures 23 ms and 40 ms tones to within one hop (5 ms),
//!   either side of `MIN_TONE_MS`.
//! - Breaks: a digit ends only after `CLOSE_AFTER_GAP_MS` without its tones,
//!   which bridges a 10 ms break and still sees a 40 ms pause.
//! - Noise: every test compares the tones with the residual (frame energy
//!   the two tones do not explain, i.e. the noise in one bin), not with the
//!   total energy, so white noise as loud as the tones is fine; the final
//!   decision integrates energies over the whole tone.
//! - Talk-off (speech, music): the tones must each dominate their group, the
//!   two groups must be within the twist limits (twist measured on the tones'
//!   power in the Hann-windowed spectrum, where the louder tone does not leak
//!   into the weaker one's bin), the frequencies must be
//!   steady and within tolerance, and the second harmonics must be weak
//!   (speech and instruments are rich in harmonics, DTMF generators are not).
//!   Finally, for frames that already look like a digit, a Hann-windowed FFT
//!   of the telephone band (`purity`) must show nothing else nearly as
//!   strong as the tones, except peaks white noise itself makes: the other
//!   notes of a chord and the other harmonics of a voice fail this.

use super::bank::{BINS, FilterBank, Frame, TONE_BINS, bin_frequencies_hz, rectangular_response};
use super::purity::{BandSpectrum, tone_powers, tones_stand_out};
use super::{Digit, DtmfError, check_sample_rate};
use num_complex::Complex64;
use std::f64::consts::TAU;

/// Hop between frames: sets the time resolution of durations and gaps.
const HOP_MS: f64 = 5.0;
/// Frames are this many hops long (20 ms): long enough to separate
/// neighbouring DTMF frequencies, short enough to measure a 23 ms tone.
const FRAME_HOPS: usize = 4;
/// Tones measured at least this long are digits. Q.24: accept >= 40 ms,
/// reject < 23 ms.
const MIN_TONE_MS: f64 = 28.0;
/// A digit ends after this long without its tones. Q.24: a break of <= 10 ms
/// is not a pause, a pause of >= 40 ms is.
const CLOSE_AFTER_GAP_MS: f64 = 25.0;
/// Largest relative frequency error accepted. Q.24: accept 1.5 %, reject 3.5 %.
const FREQUENCY_TOLERANCE: f64 = 0.02;
/// Twist limits. Q.24 (as exchanges apply it): accept 8 dB normal (low group
/// louder) and 4 dB reverse (high group louder); the tests reject 12 dB and
/// 8 dB. Set half a dB inside those, which the spectrum's tone powers measure
/// a clean pair to within: codecs move twist (AMR-NB 12.2 kbit/s by up to
/// 2.5 dB), so the room beyond 8 and 4 dB is theirs.
const MAX_NORMAL_TWIST_DB: f64 = 11.5;
const MAX_REVERSE_TWIST_DB: f64 = 7.5;
/// A tone is judged on its first second; a key held longer only moves the
/// reported end, so memory stays bounded however long a tone lasts.
const MAX_JUDGED_MS: f64 = 1_000.0;
/// Extra twist a single frame may show before the whole tone is judged.
const FRAME_TWIST_SLACK_DB: f64 = 6.0;
/// Quietest tone considered, per tone, in dB relative to full scale.
const MIN_TONE_LEVEL_DBFS: f64 = -50.0;
/// A frame is a candidate if each tone's bin holds this many times the
/// residual energy per bin (6 dB)...
const FRAME_MIN_TONE_TO_RESIDUAL: f64 = 4.0;
/// ...and this many times any other bin of its group (3 dB; partly filled
/// frames at a tone's edges leak into neighbouring bins).
const FRAME_MIN_GROUP_DOMINANCE: f64 = 2.0;
/// Over the whole tone, each tone must hold this many times the residual
/// energy per bin (10 dB)...
const TONE_MIN_TONE_TO_RESIDUAL: f64 = 10.0;
/// ...and this many times any other bin of its group (7.8 dB).
const TONE_MIN_GROUP_DOMINANCE: f64 = 6.0;
/// The frames wholly inside a tone must reach this fraction of the strongest
/// frame's energy.
const INSIDE_PEAK_FRACTION: f64 = 0.6;
/// Fraction of the frames wholly inside a tone that must look like the digit.
const INSIDE_PRESENT_FRACTION: f64 = 0.75;
/// Over the whole tone, the weaker tone must stand this far (power ratio,
/// 6 dB) above every other component of the 300-3400 Hz spectrum. White
/// noise has no such components; speech and music nearly always do.
const MIN_TONE_PURITY: f64 = 4.0;
/// ...unless that component is no more than this many times the spectrum's
/// median (9 dB): the highest peak white noise makes across the band.
const NOISE_PEAK_OVER_MEDIAN: f64 = 8.0;
/// Dominance tests ignore this many times the residual energy per bin in
/// the other bins: noise, not a competing tone.
const DOMINANCE_NOISE_ALLOWANCE: f64 = 3.0;
/// A second harmonic may hold this fraction of its tone's energy (-16 dB)...
const MAX_SECOND_HARMONIC_RATIO: f64 = 0.025;
/// ...plus what noise explains (this many times the residual per bin)...
const SECOND_HARMONIC_NOISE_ALLOWANCE: f64 = 5.0;
/// ...plus this fraction of what the two tones leak into its bin (e.g. the
/// 1336 Hz tone into the 1394 Hz bin, 2 x 697 Hz), which is predicted and
/// removed; the allowance covers the prediction's error.
const SECOND_HARMONIC_LEAK_ALLOWANCE: f64 = 0.25;
/// Frames count towards a tone while their amplitude is at least half the
/// tone's peak, i.e. their energy a quarter.
const EDGE_ENERGY_FRACTION: f64 = 0.25;

/// A detected digit. Positions count samples from the start of the stream;
/// the tone occupied `start_sample..end_sample` (to within one hop).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfEvent {
    pub digit: Digit,
    pub start_sample: u64,
    pub end_sample: u64,
}

impl DtmfEvent {
    pub fn duration_samples(&self) -> u64 {
        self.end_sample - self.start_sample
    }
}

/// Detects digits in a stream fed in chunks of any size; each digit is
/// reported once its tone has ended.
pub struct DtmfDetector {
    bank: FilterBank,
    tracker: Tracker,
}

impl DtmfDetector {
    pub fn new(sample_rate_hz: u32) -> Result<DtmfDetector, DtmfError> {
        check_sample_rate(sample_rate_hz)?;
        let hop_len = (HOP_MS * sample_rate_hz as f64 / 1000.0).round() as usize;
        let hop_ms = hop_len as f64 * 1000.0 / sample_rate_hz as f64;
        let bank = FilterBank::new(sample_rate_hz, hop_len, FRAME_HOPS);
        let settings = Settings {
            noise_scale: 1.0 / bank.white_noise_fraction(),
            sample_rate_hz,
            hop_len,
            frame_len: hop_len * FRAME_HOPS,
            min_tone_hops: (MIN_TONE_MS / hop_ms).ceil() as usize,
            close_after_hops: (CLOSE_AFTER_GAP_MS / hop_ms).ceil() as usize,
            max_judged_frames: (MAX_JUDGED_MS / hop_ms).ceil() as usize,
            min_amplitude: 10f64.powf(MIN_TONE_LEVEL_DBFS / 20.0),
        };
        Ok(DtmfDetector {
            bank,
            tracker: Tracker {
                spectrum: BandSpectrum::new(settings.frame_len, sample_rate_hz),
                settings,
                bin_hz: bin_frequencies_hz(),
                segment: None,
                events: Vec::new(),
                #[cfg(test)]
                rejections: Vec::new(),
            },
        })
    }

    /// Rejected tones since the detector was made, for diagnosing tests.
    #[cfg(test)]
    pub(crate) fn take_rejections(&mut self) -> Vec<(Digit, Rejection)> {
        std::mem::take(&mut self.tracker.rejections)
    }

    pub fn sample_rate_hz(&self) -> u32 {
        self.tracker.settings.sample_rate_hz
    }

    /// Feeds samples in -1.0..=1.0; returns the digits that ended in them.
    pub fn push_f32(&mut self, samples: &[f32]) -> Vec<DtmfEvent> {
        let tracker = &mut self.tracker;
        self.bank.push(samples, |frame, frame_samples| {
            tracker.on_frame(frame, frame_samples)
        });
        std::mem::take(&mut tracker.events)
    }

    /// Feeds signed 16-bit samples; returns the digits that ended in them.
    pub fn push_i16(&mut self, samples: &[i16]) -> Vec<DtmfEvent> {
        const CHUNK: usize = 256;
        let mut events = Vec::new();
        let mut buffer = [0f32; CHUNK];
        for chunk in samples.chunks(CHUNK) {
            for (out, &x) in buffer.iter_mut().zip(chunk) {
                *out = x as f32 / 32768.0;
            }
            events.extend(self.push_f32(&buffer[..chunk.len()]));
        }
        events
    }

    /// Ends the stream: reports a digit still sounding at its end (if it is
    /// long enough) and resets the detector for a new stream.
    pub fn finish(&mut self) -> Vec<DtmfEvent> {
        // Let the last frames slide past the end of the signal.
        let tail = vec![0f32; self.tracker.settings.frame_len];
        let mut events = self.push_f32(&tail);
        if let Some(segment) = self.tracker.segment.take() {
            let tracker = &self.tracker;
            let verdict = tracker
                .settings
                .judge(&segment, &tracker.bin_hz, &tracker.spectrum);
            self.tracker.record(segment.digit, verdict);
            events.append(&mut self.tracker.events);
        }
        let fresh = DtmfDetector::new(self.sample_rate_hz()).expect("sample rate was checked");
        let _finished = std::mem::replace(self, fresh);
        #[cfg(test)]
        {
            self.tracker.rejections = _finished.tracker.rejections;
        }
        events
    }
}

/// Detects all digits in a complete recording.
pub fn detect_all(samples: &[f32], sample_rate_hz: u32) -> Result<Vec<DtmfEvent>, DtmfError> {
    let mut detector = DtmfDetector::new(sample_rate_hz)?;
    let mut events = detector.push_f32(samples);
    events.extend(detector.finish());
    Ok(events)
}

/// Why a followed tone was not accepted as a digit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Rejection {
    /// Shorter than `MIN_TONE_MS` (or its frames too scattered to be a tone).
    TooShort {
        hops: usize,
    },
    /// Frames inside the tone are missing: not a steady tone.
    Interrupted,
    /// Strongest where frames are partly filled: far off the bin.
    OffBin,
    FrequencyError {
        offset_hz: f64,
    },
    Twist {
        twist_db: f64,
    },
    BuriedInNoise,
    /// Another frequency of the same group is too strong.
    NotDominant,
    /// Something else in the telephone band is nearly as strong as the tones
    /// (other notes, harmonics, formants).
    Impure,
    SecondHarmonic,
}

struct Settings {
    /// Turns the frame energy not explained by the tones (measured in the
    /// telephone band) into the energy of one bin if it were white noise
    /// across that band.
    noise_scale: f64,
    sample_rate_hz: u32,
    hop_len: usize,
    frame_len: usize,
    min_tone_hops: usize,
    close_after_hops: usize,
    max_judged_frames: usize,
    min_amplitude: f64,
}

/// What the detector keeps of a frame while a tone lasts.
struct FrameRecord {
    index: u64,
    start_sample: u64,
    tones: [Complex64; TONE_BINS],
    harmonics: [Complex64; TONE_BINS],
    /// Frame energy the two strongest tones do not explain, in bin units: the
    /// expected energy of one bin if the rest were white noise.
    residual: f64,
    /// Geometric mean of the two tone energies.
    strength: f64,
    /// Power spectrum across the telephone band (filled in only for frames
    /// kept for judging).
    band_power: Vec<f32>,
}

/// A frame that looks like a digit.
struct Candidate {
    digit: Digit,
    strength: f64,
}

/// The tone being followed.
struct Segment {
    digit: Digit,
    /// The tone's frames, up to `Settings::max_judged_frames`.
    frames: Vec<FrameRecord>,
    peak_strength: f64,
    /// Start of the latest frame that still held the tone (kept beyond the
    /// judged frames, so a long tone's end is still reported right).
    last_present_start: u64,
    absent_hops: usize,
}

struct Tracker {
    settings: Settings,
    spectrum: BandSpectrum,
    bin_hz: [u32; BINS],
    segment: Option<Segment>,
    events: Vec<DtmfEvent>,
    /// Why followed tones were not digits, for tests to explain failures.
    #[cfg(test)]
    rejections: Vec<(Digit, Rejection)>,
}

impl Tracker {
    fn on_frame(&mut self, frame: &Frame, frame_samples: &[f32]) {
        let (mut record, candidate) = self.settings.classify(frame);
        if candidate.is_some() {
            record.band_power = self.spectrum.power(frame_samples);
        }
        let Some(segment) = self.segment.as_mut() else {
            if let Some(candidate) = candidate {
                self.start(candidate, record);
            }
            return;
        };
        match candidate {
            Some(c) if c.strength >= segment.peak_strength * EDGE_ENERGY_FRACTION => {
                if c.digit == segment.digit {
                    segment.absent_hops = 0;
                    segment.last_present_start = record.start_sample;
                    if segment.frames.len() < self.settings.max_judged_frames {
                        segment.peak_strength = segment.peak_strength.max(c.strength);
                        segment.frames.push(record);
                    }
                } else {
                    // A different key at comparable strength: the previous one ended.
                    self.close();
                    self.start(c, record);
                }
            }
            _ => {
                segment.absent_hops += 1;
                if segment.absent_hops >= self.settings.close_after_hops {
                    self.close();
                }
            }
        }
    }

    fn record(&mut self, _digit: Digit, verdict: Result<DtmfEvent, Rejection>) {
        match verdict {
            Ok(event) => self.events.push(event),
            Err(_rejection) => {
                #[cfg(test)]
                self.rejections.push((_digit, _rejection));
            }
        }
    }

    fn start(&mut self, candidate: Candidate, record: FrameRecord) {
        self.segment = Some(Segment {
            digit: candidate.digit,
            peak_strength: candidate.strength,
            last_present_start: record.start_sample,
            absent_hops: 0,
            frames: vec![record],
        });
    }

    fn close(&mut self) {
        if let Some(segment) = self.segment.take() {
            let verdict = self.settings.judge(&segment, &self.bin_hz, &self.spectrum);
            self.record(segment.digit, verdict);
        }
    }
}

impl Settings {
    /// Summarises a frame and says whether it looks like a digit.
    fn classify(&self, frame: &Frame) -> (FrameRecord, Option<Candidate>) {
        let energy: [f64; TONE_BINS] = std::array::from_fn(|k| frame.bins[k].norm_sqr());
        let row = strongest(&energy[..4]);
        let column = strongest(&energy[4..]);
        let (low, high) = (energy[row], energy[4 + column]);
        let n = self.frame_len as f64;
        // A tone of amplitude A puts A^2 n / 2 into the frame energy and
        // (A n / 2)^2 into its bin, i.e. 2 / n of its bin energy. The frame
        // energy covers the telephone band (0-4 kHz); white noise there
        // would put `noise_scale` times its share into every bin.
        let residual = ((frame.energy - 2.0 * (low + high) / n) * self.noise_scale)
            .max(frame.energy * 1e-9)
            .max(1e-30);
        let strength = (low * high).sqrt();
        let record = FrameRecord {
            index: frame.index,
            start_sample: frame.start_sample,
            tones: std::array::from_fn(|k| frame.bins[k]),
            harmonics: std::array::from_fn(|k| frame.bins[TONE_BINS + k]),
            residual,
            strength,
            band_power: Vec::new(),
        };

        let amplitude = |bin_energy: f64| 2.0 * bin_energy.sqrt() / n;
        let dominates = |group: &[f64], best: usize| {
            group.iter().enumerate().all(|(k, &e)| {
                k == best || group[best] >= FRAME_MIN_GROUP_DOMINANCE * above_noise(e, residual)
            })
        };
        let twist_db = 10.0 * (high / low.max(1e-30)).log10();
        let looks_like_digit = amplitude(low) >= self.min_amplitude
            && amplitude(high) >= self.min_amplitude
            && low >= FRAME_MIN_TONE_TO_RESIDUAL * residual
            && high >= FRAME_MIN_TONE_TO_RESIDUAL * residual
            && dominates(&energy[..4], row)
            && dominates(&energy[4..], column)
            && (-(MAX_NORMAL_TWIST_DB + FRAME_TWIST_SLACK_DB)
                ..=MAX_REVERSE_TWIST_DB + FRAME_TWIST_SLACK_DB)
                .contains(&twist_db);
        let candidate = looks_like_digit.then(|| Candidate {
            digit: Digit::from_row_column(row, column),
            strength,
        });
        (record, candidate)
    }

    /// Decides whether a followed tone was a digit, from all its frames.
    fn judge(
        &self,
        segment: &Segment,
        bin_hz: &[u32; BINS],
        spectrum: &BandSpectrum,
    ) -> Result<DtmfEvent, Rejection> {
        // Duration: from the first to the last frame at half amplitude. Noise
        // may knock out frames inside the tone, but not most of them.
        let edge_strength = segment.peak_strength * EDGE_ENERGY_FRACTION;
        let counted: Vec<&FrameRecord> = segment
            .frames
            .iter()
            .filter(|f| f.strength >= edge_strength)
            .collect();
        let (Some(&first), Some(&last)) = (counted.first(), counted.last()) else {
            return Err(Rejection::TooShort { hops: 0 });
        };
        let span_hops = (last.index - first.index + 1) as usize;
        if span_hops < self.min_tone_hops || 2 * counted.len() < span_hops {
            return Err(Rejection::TooShort { hops: span_hops });
        }
        // Everything else is measured on the frames that lie wholly inside the
        // tone: counted frames start half a frame before the tone starts and
        // end half a frame before it ends. Partly filled frames leak into
        // neighbouring bins and their phase advances at half the rate.
        let edge_hops = (FRAME_HOPS / 2) as u64;
        let inside: Vec<&FrameRecord> = counted
            .iter()
            .copied()
            .filter(|f| f.index >= first.index + edge_hops && f.index + edge_hops <= last.index)
            .collect();
        // In a real tone those frames are nearly all there; a tone far off its
        // bin is weak in them (its full-frame response is a sidelobe).
        let inside_positions = (last.index + 1).saturating_sub(first.index + 2 * edge_hops);
        if (inside.len() as f64) < INSIDE_PRESENT_FRACTION * inside_positions as f64 {
            return Err(Rejection::Interrupted);
        }
        let frames = if inside.len() >= 2 {
            inside
        } else {
            counted.clone()
        };
        // A tone near its bin is strongest in the frames it fills. One far off
        // it (about 2 % or more at 1633 Hz) is strongest in partly filled
        // frames, whose shorter window has a wider main lobe.
        let inside_peak = frames.iter().map(|f| f.strength).fold(0.0, f64::max);
        if inside_peak < INSIDE_PEAK_FRACTION * segment.peak_strength {
            return Err(Rejection::OffBin);
        }
        let digit = segment.digit;
        let tone_bins = [digit.row as usize, 4 + digit.column as usize];

        // Frequency of each tone from the phase advance between frames.
        let mut offset_hz = [0.0; 2];
        for (i, &bin) in tone_bins.iter().enumerate() {
            let advance: Complex64 = frames
                .windows(2)
                .filter(|pair| pair[1].index == pair[0].index + 1)
                .map(|pair| pair[1].tones[bin] * pair[0].tones[bin].conj())
                .sum();
            if advance == Complex64::new(0.0, 0.0) {
                return Err(Rejection::OffBin);
            }
            offset_hz[i] = advance.arg() * self.sample_rate_hz as f64 / (TAU * self.hop_len as f64);
            if offset_hz[i].abs() > FREQUENCY_TOLERANCE * bin_hz[bin] as f64 {
                return Err(Rejection::FrequencyError {
                    offset_hz: offset_hz[i],
                });
            }
        }

        let true_hz = [0, 1].map(|i| bin_hz[tone_bins[i]] as f64 + offset_hz[i]);
        let mut band_power = vec![0.0; frames[0].band_power.len()];
        for frame in &frames {
            for (sum, &p) in band_power.iter_mut().zip(&frame.band_power) {
                *sum += p as f64;
            }
        }
        if !tones_stand_out(
            spectrum,
            &band_power,
            true_hz,
            MIN_TONE_PURITY,
            NOISE_PEAK_OVER_MEDIAN,
        ) {
            return Err(Rejection::Impure);
        }

        let bin_energy = |bin: usize| frames.iter().map(|f| f.tones[bin].norm_sqr()).sum::<f64>();
        let residual: f64 = frames.iter().map(|f| f.residual).sum();
        let measured = tone_bins.map(bin_energy);
        // Energy the tones would show exactly on their bins.
        let response =
            offset_hz.map(|hz| rectangular_response(hz, self.frame_len, self.sample_rate_hz));
        let corrected = [
            measured[0] / response[0].powi(2),
            measured[1] / response[1].powi(2),
        ];

        // Twist from the tones' power in the Hann-windowed spectrum: a DFT
        // bin also holds the louder tone's leakage, which makes a clean tone
        // pair's twist waver by half a dB with phase and alignment.
        let powers = tone_powers(spectrum, &band_power, true_hz);
        let twist_db = 10.0 * (powers[1] / powers[0]).log10();
        if !(-MAX_NORMAL_TWIST_DB..=MAX_REVERSE_TWIST_DB).contains(&twist_db) {
            return Err(Rejection::Twist { twist_db });
        }

        for i in 0..2 {
            let bin = tone_bins[i];
            if measured[i] < TONE_MIN_TONE_TO_RESIDUAL * residual {
                return Err(Rejection::BuriedInNoise);
            }
            let group = if bin < 4 { 0..4 } else { 4..8 };
            if group.filter(|&other| other != bin).any(|other| {
                measured[i] < TONE_MIN_GROUP_DOMINANCE * above_noise(bin_energy(other), residual)
            }) {
                return Err(Rejection::NotDominant);
            }
            // What the two tones themselves put into the harmonic's bin (e.g.
            // 1336 Hz into 1394 Hz, twice 697 Hz) is predicted frame by frame
            // and removed; only a margin for prediction error is allowed.
            let harmonic_hz = bin_hz[TONE_BINS + bin];
            let leak: f64 = (0..2)
                .map(|j| {
                    let r = rectangular_response(
                        true_hz[j] - harmonic_hz as f64,
                        self.frame_len,
                        self.sample_rate_hz,
                    );
                    corrected[j] * r * r
                })
                .sum();
            let harmonic: f64 = frames
                .iter()
                .map(|f| {
                    let predicted: Complex64 = (0..2)
                        .map(|j| {
                            let from_hz = bin_hz[tone_bins[j]];
                            f.tones[tone_bins[j]]
                                * self.leak_ratio(true_hz[j], from_hz, harmonic_hz, f.start_sample)
                        })
                        .sum();
                    (f.harmonics[bin] - predicted).norm_sqr()
                })
                .sum();
            let allowed = MAX_SECOND_HARMONIC_RATIO * corrected[i]
                + SECOND_HARMONIC_NOISE_ALLOWANCE * residual
                + SECOND_HARMONIC_LEAK_ALLOWANCE * leak;
            if harmonic > allowed {
                return Err(Rejection::SecondHarmonic);
            }
        }

        // Counted frames start from half a frame before the tone to half a
        // frame before its end (see the module notes).
        let centre = (self.frame_len / 2) as u64;
        let half_hop = (self.hop_len / 2) as u64;
        Ok(DtmfEvent {
            digit,
            start_sample: (first.start_sample + centre).saturating_sub(half_hop),
            end_sample: last.start_sample.max(segment.last_present_start) + centre + half_hop,
        })
    }
}

/// What a bin holds beyond what white noise at the residual level explains,
/// so that dominance tests do not fail on noise alone.
fn above_noise(bin_energy: f64, residual: f64) -> f64 {
    (bin_energy - DOMINANCE_NOISE_ALLOWANCE * residual).max(0.0)
}

impl Settings {
    /// For a tone at `tone_hz`, the ratio of what a frame starting at
    /// `start_sample` shows in the bin at `to_hz` to what it shows in the bin
    /// at `from_hz` (rectangular window, phases against absolute time).
    fn leak_ratio(&self, tone_hz: f64, from_hz: u32, to_hz: u32, start_sample: u64) -> Complex64 {
        let rate = self.sample_rate_hz as u64;
        let len = self.frame_len as f64;
        // Sum of e^{j delta n} over the frame, delta in radians per sample.
        let window_sum = |offset_hz: f64| {
            let half = std::f64::consts::PI * offset_hz / rate as f64;
            if half.sin().abs() < 1e-12 {
                return Complex64::new(len, 0.0);
            }
            Complex64::from_polar((len * half).sin() / half.sin(), half * (len - 1.0))
        };
        // e^{j (w_from - w_to) start}, reduced in integers to stay exact.
        let difference = (from_hz as i64 - to_hz as i64).rem_euclid(rate as i64) as u64;
        let cycles_times_rate = (difference * (start_sample % rate)) % rate;
        let frame_phase = Complex64::from_polar(1.0, TAU * cycles_times_rate as f64 / rate as f64);
        frame_phase * window_sum(tone_hz - to_hz as f64) / window_sum(tone_hz - from_hz as f64)
    }
}

fn strongest(energies: &[f64]) -> usize {
    let mut best = 0;
    for (k, &e) in energies.iter().enumerate() {
        if e > energies[best] {
            best = k;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leak_ratio_predicts_what_a_tone_shows_in_another_bin() {
        // 1336 Hz, 1.2 % sharp, seen in its own bin and in the 1394 Hz bin
        // (second harmonic of 697 Hz), at frames far into the stream.
        let rate = 8_000;
        let tone_hz = 1336.0 * 1.012;
        let detector = DtmfDetector::new(rate).unwrap();
        let settings = &detector.tracker.settings;
        let lead_in = 1_000_003;
        let mut signal = vec![0f32; lead_in];
        signal.extend(
            (0..2_000).map(|n| (0.2 * (TAU * tone_hz * n as f64 / rate as f64 + 0.3).cos()) as f32),
        );
        let mut bank = FilterBank::new(rate, settings.hop_len, FRAME_HOPS);
        let mut checked = 0;
        bank.push(&signal, |frame, _| {
            if frame.start_sample < lead_in as u64 {
                return;
            }
            let own = frame.bins[5];
            let other = frame.bins[TONE_BINS];
            let predicted = own * settings.leak_ratio(tone_hz, 1336, 1394, frame.start_sample);
            assert!(
                (other - predicted).norm() < 0.02 * other.norm(),
                "{other} vs {predicted}"
            );
            checked += 1;
        });
        assert!(checked > 40);
    }
}
