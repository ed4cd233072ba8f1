//! Knock detection on accelerometer samples.
//!
//! A knock of one phone against another is a collision: a pulse of a few
//! milliseconds, tens of m/s², far above the motion of the hand before and
//! after it. Walking and hand gestures are slow and weak, shaking is strong
//! but smooth and repeated, and a phone set down on a table hits hard but
//! then lies flat and still. The detector therefore asks, of the strongest
//! sample within ±[`ISOLATION_MS`]:
//!
//! 1. is it at least [`MIN_PEAK_MPS2`] (gravity removed; less for sensors
//!    slower than 100 Hz, whose filters flatten short pulses)?
//! 2. is it [`MIN_PEAK_TO_MOTION`] times the RMS motion in the half second
//!    before and the few hundred milliseconds after it? Both are measured
//!    on the acceleration less its mean over ±100 ms, so a slow hand
//!    movement or the walking bounce does not mask a knock;
//! 3. is it short: narrower than [`MAX_WIDTH_MS`] (or a couple of sample
//!    intervals at low rates) at half its peak?
//! 4. is the phone still moving afterwards (held in a hand), rather than flat
//!    and still as on a table?
//!
//! The instant is the centroid of the pulse above the surrounding motion,
//! which interpolates between samples. It assumes the platform's timestamps
//! say when each sample was measured, as Android and iOS promise (sensor
//! filter delay removed); what is left of that error, and the wallet's clock
//! error, is the server's to absorb.
//!
//! A knock is reported [`REPORT_DELAY_MS`] after it happened, once the
//! motion after it has been seen.
//!
//! **Faint knocks.** Phones deliver 50–100 Hz (every iPhone caps at 100 Hz)
//! and their sensors low-pass a 5–30 ms pulse, so a real knock can read a
//! fraction of its true peak, near walking's. A detector that listens with
//! the microphone too ([`KnockDetector::with_faint_candidates`]) also reports
//! peaks that pass only lower bars ([`FAINT_MIN_PEAK_MPS2`],
//! [`FAINT_MIN_PEAK_TO_MOTION`]; the shape and set-down checks are the same),
//! marked [`KnockEvent::faint`]: the accelerometer only confirms them, and
//! the caller reports one only when the microphone heard the knock's own
//! click at that moment (see [`click`](super::click)).

use std::collections::VecDeque;

use crate::wire::ImpulseFeatures;

/// Standard gravity, m/s².
const STANDARD_GRAVITY_MPS2: f32 = 9.806_65;
/// Gravity is tracked by low-passing the raw acceleration with this time
/// constant: slow enough that a knock barely moves it, fast enough to follow
/// a phone being turned.
const GRAVITY_TAU_MS: f64 = 500.0;
/// Weakest knock (gravity removed) at sample intervals up to
/// [`FULL_PEAK_INTERVAL_MS`]. Hand gestures and walking stay well below.
pub const MIN_PEAK_MPS2: f32 = 12.0;
/// A slower sensor's filter spreads a pulse of a few ms over its sample
/// interval and reports a lower peak; beyond this interval the threshold
/// falls in proportion (6 m/s² at 50 Hz).
pub const FULL_PEAK_INTERVAL_MS: f64 = 10.0;
/// How many times the RMS of the surrounding motion the peak must be.
pub const MIN_PEAK_TO_MOTION: f32 = 4.0;
/// The lower bars of a faint knock, to be confirmed by its sound: a knock
/// read through a 50 Hz sensor's filter measures 3–9 m/s², walking's
/// detail stays near 1–2 m/s² RMS.
pub const FAINT_MIN_PEAK_MPS2: f32 = 2.5;
pub const FAINT_MIN_PEAK_TO_MOTION: f32 = 1.5;
/// The peak must be the strongest sample within this span on either side.
pub const ISOLATION_MS: f64 = 250.0;
/// A faint knock need only be the strongest within this span: a walking
/// step near it may read stronger than a knock through a slow sensor.
pub const FAINT_ISOLATION_MS: f64 = 100.0;
/// Motion before the knock is measured from `.0` to `.1` ms before the peak.
const MOTION_BEFORE_MS: (f64, f64) = (500.0, 40.0);
/// Motion after the knock, from `.0` to `.1` ms after the peak; the pulse
/// and its ringing are over by then.
const MOTION_AFTER_MS: (f64, f64) = (80.0, 450.0);
/// Widest knock at half its peak at high sample rates, ms.
pub const MAX_WIDTH_MS: f64 = 30.0;
/// At low rates a pulse is smeared over the sensor's filter: allow this many
/// sample intervals instead when that is more.
const MAX_WIDTH_SAMPLE_INTERVALS: f64 = 2.0;
/// A faint knock's width (see [`faint_shape`]) in sample intervals.
const FAINT_MAX_WIDTH_SAMPLE_INTERVALS: f64 = 3.5;
/// "Still" after a set-down: the raw acceleration varies by less than this
/// (RMS), m/s²...
const STILL_MPS2: f32 = 0.15;
/// ...and gravity within this angle of the phone's z axis (lying flat).
const FLAT_TILT_DEG: f32 = 12.0;
/// The still-and-flat test looks at this span after the peak, ms.
const SETTLED_AFTER_MS: (f64, f64) = (150.0, 450.0);
/// Half-span of the pulse for its instant and velocity change: at least this
/// many ms, or this many sample intervals.
const PULSE_HALF_SPAN_MS: f64 = 8.0;
const PULSE_HALF_SPAN_SAMPLE_INTERVALS: f64 = 1.6;
/// The "detail" of the motion, compared between the knock and its
/// surroundings, is the acceleration less its mean over this half-window:
/// hand movements and the walking bounce (below ~3 Hz) drop out, a knock
/// does not.
const DETAIL_HALF_WINDOW_MS: f64 = 100.0;
/// A gap in the samples longer than this restarts detection (the app paused
/// the sensor); a knock cannot be measured across it.
pub const MAX_GAP_MS: f64 = 100.0;
/// How long after a knock it is reported.
pub const REPORT_DELAY_MS: f64 = MOTION_AFTER_MS.1;
/// Samples older than this behind the newest are dropped.
const HISTORY_MS: f64 = MOTION_BEFORE_MS.0 + ISOLATION_MS + MOTION_AFTER_MS.1 + 100.0;

/// One accelerometer reading as the platform delivers it.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct AccelSample {
    /// When it was measured, on the phone's wall clock, Unix ms (fractions
    /// allowed).
    pub timestamp_ms: f64,
    /// Acceleration including gravity in the phone's axes, m/s².
    pub x: f32,
    pub y: f32,
    pub z: f32,
}

/// A knock, as found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KnockEvent {
    /// Server time of the knock: the phone's instant plus the clock offset,
    /// rounded to the millisecond.
    pub instant_ms: i64,
    /// The instant on the phone's own clock, Unix ms.
    pub device_instant_ms: f64,
    pub impulse: ImpulseFeatures,
    /// RMS of the motion around the knock (gravity removed), m/s².
    pub motion_rms_mps2: f32,
    /// Passed only the faint knock's lower bars: report it only if the
    /// microphone heard the knock (see the module docs). Always `false`
    /// unless the detector was made [`KnockDetector::with_faint_candidates`].
    pub faint: bool,
}

/// Samples the detector cannot use. Nothing of the offending `push` was
/// consumed, so the caller may drop the bad sample and push the rest again.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KnockError {
    #[error(
        "sample {index} has timestamp {timestamp_ms} ms, not after the previous sample's {previous_ms} ms"
    )]
    TimestampNotIncreasing {
        index: usize,
        timestamp_ms: f64,
        previous_ms: f64,
    },
    #[error("sample {index} (timestamp {timestamp_ms} ms) has a non-finite value")]
    NotFinite { index: usize, timestamp_ms: f64 },
}

#[derive(Debug, Clone, Copy)]
struct Processed {
    t_ms: f64,
    raw: [f32; 3],
    linear: [f32; 3],
    magnitude: f32,
}

/// Streaming knock detector for one phone.
#[derive(Debug, Clone)]
pub struct KnockDetector {
    clock_offset_ms: i64,
    gravity: Option<[f32; 3]>,
    history: VecDeque<Processed>,
    /// Index in `history` of the first sample not yet judged as a peak.
    next_candidate: usize,
    /// Also report faint knocks, for the caller to confirm by sound.
    faint_candidates: bool,
}

impl KnockDetector {
    /// `clock_offset_ms`: server time minus the phone's clock, as the wallet
    /// measured it.
    pub fn new(clock_offset_ms: i64) -> Self {
        KnockDetector {
            clock_offset_ms,
            gravity: None,
            history: VecDeque::new(),
            next_candidate: 0,
            faint_candidates: false,
        }
    }

    /// A detector for a caller that also hears the microphone: it reports
    /// faint knocks too, marked [`KnockEvent::faint`], which the caller
    /// reports only when it heard the knock's click at that moment.
    pub fn with_faint_candidates(clock_offset_ms: i64) -> Self {
        KnockDetector {
            faint_candidates: true,
            ..KnockDetector::new(clock_offset_ms)
        }
    }

    /// The wallet measured its clock again; applies to knocks reported from
    /// now on.
    pub fn set_clock_offset(&mut self, clock_offset_ms: i64) {
        self.clock_offset_ms = clock_offset_ms;
    }

    /// Forgets all samples (e.g. when the app stops listening).
    pub fn reset(&mut self) {
        self.gravity = None;
        self.history.clear();
        self.next_candidate = 0;
    }

    /// Feeds samples in time order; returns the knocks that can now be
    /// judged (each [`REPORT_DELAY_MS`] after it happened).
    pub fn push(&mut self, samples: &[AccelSample]) -> Result<Vec<KnockEvent>, KnockError> {
        let mut previous_ms = self.history.back().map(|p| p.t_ms);
        for (index, s) in samples.iter().enumerate() {
            if ![s.x, s.y, s.z].iter().all(|v| v.is_finite()) || !s.timestamp_ms.is_finite() {
                return Err(KnockError::NotFinite {
                    index,
                    timestamp_ms: s.timestamp_ms,
                });
            }
            if let Some(previous_ms) = previous_ms.filter(|&p| s.timestamp_ms <= p) {
                return Err(KnockError::TimestampNotIncreasing {
                    index,
                    timestamp_ms: s.timestamp_ms,
                    previous_ms,
                });
            }
            previous_ms = Some(s.timestamp_ms);
        }
        let mut knocks = Vec::new();
        for s in samples {
            self.add(s);
            self.judge_ready_candidates(&mut knocks);
            self.drop_old_history();
        }
        Ok(knocks)
    }

    fn add(&mut self, s: &AccelSample) {
        let raw = [s.x, s.y, s.z];
        if self
            .history
            .back()
            .is_some_and(|last| s.timestamp_ms - last.t_ms > MAX_GAP_MS)
        {
            self.reset();
        }
        let dt_ms = self.history.back().map_or(0.0, |p| s.timestamp_ms - p.t_ms);
        let gravity = *self.gravity.get_or_insert(raw);
        let linear = [
            raw[0] - gravity[0],
            raw[1] - gravity[1],
            raw[2] - gravity[2],
        ];
        let alpha = (1.0 - (-dt_ms / GRAVITY_TAU_MS).exp()) as f32;
        self.gravity = Some([
            gravity[0] + alpha * linear[0],
            gravity[1] + alpha * linear[1],
            gravity[2] + alpha * linear[2],
        ]);
        self.history.push_back(Processed {
            t_ms: s.timestamp_ms,
            raw,
            linear,
            magnitude: norm(linear),
        });
    }

    fn drop_old_history(&mut self) {
        let newest = self.history.back().map_or(0.0, |p| p.t_ms);
        while self.next_candidate > 0
            && self
                .history
                .front()
                .is_some_and(|p| p.t_ms < newest - HISTORY_MS)
        {
            self.history.pop_front();
            self.next_candidate -= 1;
        }
    }

    fn judge_ready_candidates(&mut self, knocks: &mut Vec<KnockEvent>) {
        let newest = self.history.back().map_or(f64::NEG_INFINITY, |p| p.t_ms);
        while self.next_candidate < self.history.len()
            && self.history[self.next_candidate].t_ms + MOTION_AFTER_MS.1 <= newest
        {
            if let Some(knock) = self.judge(self.next_candidate) {
                knocks.push(knock);
            }
            self.next_candidate += 1;
        }
    }

    /// Whether sample `i` is the peak of a knock, and the knock if so.
    fn judge(&self, i: usize) -> Option<KnockEvent> {
        let h = &self.history;
        let peak = h[i];
        let interval_ms = local_interval_ms(h, i);
        let min_peak = MIN_PEAK_MPS2 * (FULL_PEAK_INTERVAL_MS / interval_ms).min(1.0) as f32;
        let lowest_peak = if self.faint_candidates {
            FAINT_MIN_PEAK_MPS2.min(min_peak)
        } else {
            min_peak
        };
        if peak.magnitude < lowest_peak {
            return None;
        }
        // The strongest sample around (ties go to the earliest).
        let isolated_within = |span_ms: f64| {
            h.iter().enumerate().all(|(j, p)| {
                (p.t_ms - peak.t_ms).abs() > span_ms
                    || (j < i && p.magnitude < peak.magnitude)
                    || (j >= i && p.magnitude <= peak.magnitude)
            })
        };
        let isolated = isolated_within(ISOLATION_MS);
        if !isolated && !(self.faint_candidates && isolated_within(FAINT_ISOLATION_MS)) {
            return None;
        }
        let span = |from_ms: f64, to_ms: f64| {
            let from = h.partition_point(|p| p.t_ms < peak.t_ms + from_ms);
            let to = h.partition_point(|p| p.t_ms <= peak.t_ms + to_ms);
            from..to
        };

        // Compare in the knock's band: slow hand motion does not hide a knock.
        let peak_detail = detail(h, i);
        let before = rms(span(-MOTION_BEFORE_MS.0, -MOTION_BEFORE_MS.1).map(|j| detail(h, j)))?;
        let after = rms(span(MOTION_AFTER_MS.0, MOTION_AFTER_MS.1).map(|j| detail(h, j)))?;
        let motion = before.max(after);

        let half = 0.5 * peak.magnitude;
        let half_start = crossing_before(h, i, half)?;
        let half_end = crossing_after(h, i, half)?;
        let duration_ms = half_end - half_start;
        let clear = isolated
            && peak.magnitude >= min_peak
            && peak_detail >= MIN_PEAK_TO_MOTION * motion
            && duration_ms <= MAX_WIDTH_MS.max(MAX_WIDTH_SAMPLE_INTERVALS * interval_ms);
        if !clear && !(self.faint_candidates && faint_shape(h, i, peak_detail, motion, interval_ms))
        {
            return None;
        }

        let settled = span(SETTLED_AFTER_MS.0, SETTLED_AFTER_MS.1);
        if settled.len() >= 3 && still_and_flat(h.range(settled)) {
            return None;
        }

        // The instant: the centroid of what stands above the surrounding
        // motion near the peak.
        let half_span = PULSE_HALF_SPAN_MS.max(PULSE_HALF_SPAN_SAMPLE_INTERVALS * interval_ms);
        let (mut weight_sum, mut weighted_t) = (0.0f64, 0.0f64);
        for p in h.range(span(-half_span, half_span)) {
            let excess = f64::from((p.magnitude - motion).max(0.0));
            weight_sum += excess;
            weighted_t += excess * (p.t_ms - peak.t_ms);
        }
        let device_instant_ms = peak.t_ms + weighted_t / weight_sum;
        // The pulse runs while the magnitude stands clear of the motion;
        // the motion's trend across it is interpolated between its ends.
        let level = 0.1 * peak.magnitude + motion;
        let first = (0..i).rev().find(|&j| h[j].magnitude < level).unwrap_or(0);
        let last = (i + 1..h.len())
            .find(|&j| h[j].magnitude < level)
            .unwrap_or(h.len() - 1);
        let (start, end) = (&h[first], &h[last]);
        let mut velocity = [0.0f64; 3];
        for j in first + 1..last {
            let dt_s = local_interval_ms(h, j) / 1000.0;
            let f = ((h[j].t_ms - start.t_ms) / (end.t_ms - start.t_ms)) as f32;
            for (axis, v) in velocity.iter_mut().enumerate() {
                let trend = start.linear[axis] + f * (end.linear[axis] - start.linear[axis]);
                *v += f64::from(h[j].linear[axis] - trend) * dt_s;
            }
        }
        let delta_v_mps = velocity.iter().map(|v| v * v).sum::<f64>().sqrt() as f32;
        let rise_start = crossing_before(h, i, 0.1 * peak.magnitude).unwrap_or(half_start);
        let direction = peak.linear.map(|v| v / peak.magnitude);
        Some(KnockEvent {
            instant_ms: (device_instant_ms + self.clock_offset_ms as f64).round() as i64,
            device_instant_ms,
            impulse: ImpulseFeatures {
                peak_mps2: peak.magnitude,
                delta_v_mps,
                rise_ms: (peak.t_ms - rise_start) as f32,
                duration_ms: duration_ms as f32,
                direction,
            },
            motion_rms_mps2: motion,
            faint: !clear,
        })
    }
}

/// The lower bars of a faint knock at sample `i` (see the module docs): its
/// detail (`peak_detail`) stands [`FAINT_MIN_PEAK_TO_MOTION`] times above the surrounding
/// motion, and its width is measured halfway between that motion and the
/// peak (walking keeps the magnitude itself high around a weak pulse), at
/// most [`FAINT_MAX_WIDTH_SAMPLE_INTERVALS`] intervals: a slow sensor's
/// filter smears a few-ms pulse over two or three of them.
fn faint_shape(
    h: &VecDeque<Processed>,
    i: usize,
    peak_detail: f32,
    motion: f32,
    interval_ms: f64,
) -> bool {
    if peak_detail < FAINT_MIN_PEAK_TO_MOTION * motion {
        return false;
    }
    let level = motion + 0.5 * (h[i].magnitude - motion);
    match (crossing_before(h, i, level), crossing_after(h, i, level)) {
        (Some(start), Some(end)) => {
            end - start <= MAX_WIDTH_MS.max(FAINT_MAX_WIDTH_SAMPLE_INTERVALS * interval_ms)
        }
        _ => false,
    }
}

/// Magnitude of sample `j`'s acceleration less the mean over
/// ±[`DETAIL_HALF_WINDOW_MS`]: the part of the motion faster than a few Hz.
fn detail(h: &VecDeque<Processed>, j: usize) -> f32 {
    let t = h[j].t_ms;
    let from = h.partition_point(|p| p.t_ms < t - DETAIL_HALF_WINDOW_MS);
    let to = h.partition_point(|p| p.t_ms <= t + DETAIL_HALF_WINDOW_MS);
    let mean = mean_linear(h, from..to);
    norm([
        h[j].linear[0] - mean[0],
        h[j].linear[1] - mean[1],
        h[j].linear[2] - mean[2],
    ])
}

fn mean_linear(h: &VecDeque<Processed>, indices: impl Iterator<Item = usize>) -> [f32; 3] {
    let (count, sum) = indices.fold((0usize, [0.0f32; 3]), |(n, s), j| {
        let l = h[j].linear;
        (n + 1, [s[0] + l[0], s[1] + l[1], s[2] + l[2]])
    });
    sum.map(|v| v / count.max(1) as f32)
}

/// Runs a fresh detector over a whole recording.
pub fn detect_knocks(
    samples: &[AccelSample],
    clock_offset_ms: i64,
) -> Result<Vec<KnockEvent>, KnockError> {
    KnockDetector::new(clock_offset_ms).push(samples)
}

fn norm(v: [f32; 3]) -> f32 {
    (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt()
}

/// RMS of the values, `None` when there are fewer than three (too little to
/// judge the motion by, e.g. right after the stream started).
fn rms(values: impl Iterator<Item = f32>) -> Option<f32> {
    let (count, sum_sq) = values.fold((0usize, 0.0f64), |(n, s), v| {
        (n + 1, s + f64::from(v) * f64::from(v))
    });
    (count >= 3).then(|| (sum_sq / count as f64).sqrt() as f32)
}

/// Mean interval between the samples next to `i`, ms.
fn local_interval_ms(h: &VecDeque<Processed>, i: usize) -> f64 {
    let first = i.saturating_sub(1);
    let last = (i + 1).min(h.len() - 1);
    if last == first {
        return 0.0;
    }
    (h[last].t_ms - h[first].t_ms) / (last - first) as f64
}

/// Interpolated time at which the magnitude rises through `level` before
/// sample `i`.
fn crossing_before(h: &VecDeque<Processed>, i: usize, level: f32) -> Option<f64> {
    (0..i)
        .rev()
        .find(|&j| h[j].magnitude < level)
        .map(|j| interpolate(&h[j], &h[j + 1], level))
}

/// Interpolated time at which the magnitude falls through `level` after
/// sample `i`.
fn crossing_after(h: &VecDeque<Processed>, i: usize, level: f32) -> Option<f64> {
    (i + 1..h.len())
        .find(|&j| h[j].magnitude < level)
        .map(|j| interpolate(&h[j - 1], &h[j], level))
}

fn interpolate(a: &Processed, b: &Processed, level: f32) -> f64 {
    let span = b.magnitude - a.magnitude;
    if span == 0.0 {
        return a.t_ms;
    }
    let fraction = f64::from((level - a.magnitude) / span);
    a.t_ms + fraction * (b.t_ms - a.t_ms)
}

/// Whether the phone lies still and flat, as on a table: the raw
/// acceleration barely varies (it is gravity alone) and points along the
/// phone's z axis.
fn still_and_flat<'a>(samples: impl Iterator<Item = &'a Processed> + Clone) -> bool {
    let (count, sum) = samples.clone().fold((0usize, [0.0f32; 3]), |(n, s), p| {
        (n + 1, [s[0] + p.raw[0], s[1] + p.raw[1], s[2] + p.raw[2]])
    });
    if count == 0 {
        return false;
    }
    let mean = sum.map(|v| v / count as f32);
    let variance = samples
        .map(|p| {
            let d = [p.raw[0] - mean[0], p.raw[1] - mean[1], p.raw[2] - mean[2]];
            d[0] * d[0] + d[1] * d[1] + d[2] * d[2]
        })
        .sum::<f32>()
        / count as f32;
    if variance.sqrt() >= STILL_MPS2 {
        return false;
    }
    let g = norm(mean);
    if (g - STANDARD_GRAVITY_MPS2).abs() > 0.2 * STANDARD_GRAVITY_MPS2 {
        return false;
    }
    let tilt_deg = (mean[2].abs() / g).min(1.0).acos().to_degrees();
    tilt_deg < FLAT_TILT_DEG
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at_rest(t_ms: f64) -> AccelSample {
        AccelSample {
            timestamp_ms: t_ms,
            x: 0.0,
            y: 0.0,
            z: STANDARD_GRAVITY_MPS2,
        }
    }

    #[test]
    fn rejects_time_going_backwards_without_consuming_anything() {
        let mut d = KnockDetector::new(0);
        d.push(&[at_rest(10.0)]).unwrap();
        let err = d.push(&[at_rest(20.0), at_rest(15.0)]).unwrap_err();
        assert_eq!(
            err,
            KnockError::TimestampNotIncreasing {
                index: 1,
                timestamp_ms: 15.0,
                previous_ms: 20.0
            }
        );
        // 20.0 was not consumed, so it is accepted now.
        assert!(d.push(&[at_rest(20.0)]).is_ok());
        let err = d.push(&[at_rest(20.0)]).unwrap_err();
        assert!(matches!(
            err,
            KnockError::TimestampNotIncreasing { index: 0, .. }
        ));
    }

    #[test]
    fn rejects_non_finite_values() {
        let mut bad = at_rest(5.0);
        bad.y = f32::NAN;
        let err = detect_knocks(&[at_rest(0.0), bad], 0).unwrap_err();
        assert_eq!(
            err,
            KnockError::NotFinite {
                index: 1,
                timestamp_ms: 5.0
            }
        );
        assert!(err.to_string().contains("sample 1"));
    }

    #[test]
    fn history_stays_bounded() {
        let mut d = KnockDetector::new(0);
        let samples: Vec<_> = (0..50_000).map(|i| at_rest(i as f64 * 2.0)).collect();
        assert!(d.push(&samples).unwrap().is_empty());
        // 500 Hz over HISTORY_MS plus the samples waiting to be judged.
        assert!(d.history.len() < 800, "{}", d.history.len());
    }
}
