//! Pairing bump reports: which payer knocked phones with which payee.
//!
//! Pure logic: reports and the current time in, outcomes out; no database,
//! no clock, no I/O.
//!
//! Two reports are *plausible* partners when they have opposite roles and
//! agree on everything they both carry: instants within
//! [`MatcherConfig::max_time_diff_ms`] (the phones' clock errors after offset
//! correction, ±30 ms each, plus the detector's error), ambient fingerprints
//! at least [`MatcherConfig::min_fingerprint_similarity`] alike, locations
//! (when both have one) no further apart than their accuracies allow, and
//! velocity changes in a ratio two phone masses can have.
//!
//! Plausibility links reports into groups. A group of exactly one payer and
//! one payee is a match; a group of three or more is ambiguous, and every
//! phone in it is told to bump again: with money, never guess.
//!
//! **When to decide.** Ambiguity only grows as reports arrive (a new report
//! can add links, never remove them), so a group is declared ambiguous the
//! moment a third report joins it. A match, though, must wait until no
//! conflicting report can still arrive: a report is accepted only up to
//! [`MatcherConfig::max_report_delay_ms`] after its instant, and a conflicting
//! one has an instant at most `max_time_diff_ms` after either partner's, so
//! a pair is decided once both partners are *settled*, `max_time_diff_ms +
//! max_report_delay_ms` after their instants. Deciding on arrival of the
//! second report would pair two phones before a third phone in the same shop
//! that bumped at the same moment had a chance to report, and pay the wrong
//! person. A settled report with no partner expires.
//!
//! State is bounded: reports live in a map and an instant-ordered index,
//! leave as soon as they are decided (at the latest when they settle, a
//! couple of seconds after their instant), and [`MatcherConfig::capacity`]
//! caps how many are pending at once.

use std::collections::{BTreeSet, HashMap};

use crate::fingerprint::SAME_ROOM_THRESHOLD;
use crate::fingerprint::{AmbientFingerprint, FingerprintError};
use crate::wire::{Amount, BumpReport, BumpRole, CoarseLocation, ImpulseFeatures, Millis};

/// The server's name for a report (e.g. a row id); unique among pending
/// reports.
pub type ReportId = u64;

#[derive(Debug, Clone, PartialEq)]
pub struct MatcherConfig {
    /// Largest difference between the two instants of one bump, ms.
    pub max_time_diff_ms: i64,
    /// A report arriving later than this after its instant is refused, ms.
    pub max_report_delay_ms: i64,
    /// A report whose instant is more than this ahead of the server's clock
    /// is refused, ms.
    pub max_future_ms: i64,
    /// Lowest fingerprint similarity of two phones in the same room.
    pub min_fingerprint_similarity: f32,
    /// Distance allowed between two phones that touched, on top of
    /// `location_sigmas` times their combined accuracy, m.
    pub distance_slack_m: f64,
    pub location_sigmas: f64,
    /// Largest ratio between the two velocity changes (the inverse ratio of
    /// the phones' masses, plus measurement error).
    pub max_delta_v_ratio: f32,
    /// Most reports pending at once.
    pub capacity: usize,
}

impl Default for MatcherConfig {
    fn default() -> Self {
        MatcherConfig {
            // 2 × 30 ms clock error + 2 × 5 ms detector error, and margin.
            max_time_diff_ms: 80,
            max_report_delay_ms: 1_500,
            max_future_ms: 500,
            min_fingerprint_similarity: SAME_ROOM_THRESHOLD,
            // Phone fixes: 1 in 20 is 2–4 times worse than its stated
            // accuracy, so the allowance is wide; location only rules out
            // phones streets apart.
            distance_slack_m: 40.0,
            location_sigmas: 4.5,
            // Masses differ by up to 2×, and a 50–100 Hz sensor's filter
            // makes the velocity change of a few-ms pulse uncertain by
            // several times (measured on independent crowds: true partners
            // up to 10×); only wildly different impulses rule a pair out.
            max_delta_v_ratio: 12.0,
            capacity: 100_000,
        }
    }
}

impl MatcherConfig {
    /// How long after its instant a report's set of partners is final.
    pub fn settle_ms(&self) -> i64 {
        self.max_time_diff_ms + self.max_report_delay_ms
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("{field} must be positive")]
    NotPositive { field: &'static str },
}

/// Why a report was refused. The phone may bump again.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SubmitError {
    #[error("report {id} is already pending")]
    DuplicateId { id: ReportId },
    #[error("{capacity} reports are pending: the matcher is full")]
    Full { capacity: usize },
    #[error("the knock at {instant_ms} is {age_ms} ms old: reports must arrive within {max_ms} ms")]
    TooLate {
        instant_ms: Millis,
        age_ms: i64,
        max_ms: i64,
    },
    #[error("the knock at {instant_ms} is {ahead_ms} ms in the future (more than {max_ms} ms)")]
    FromTheFuture {
        instant_ms: Millis,
        ahead_ms: i64,
        max_ms: i64,
    },
    #[error("a payee's report must carry the amount asked for")]
    PayeeWithoutAmount,
    #[error("a payer's report must not carry an amount")]
    PayerWithAmount,
    #[error("the amount {0} is not positive")]
    AmountNotPositive(Amount),
    #[error("impulse figures must be finite and non-negative, with a unit direction")]
    BadImpulse,
    #[error("location must be finite latitude/longitude in range and a positive accuracy")]
    BadLocation,
    #[error("fingerprint: {0}")]
    BadFingerprint(#[from] FingerprintError),
}

/// How well two reports agree.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairScore {
    pub time_diff_ms: i64,
    pub fingerprint_similarity: f32,
    pub distance_m: Option<f64>,
    /// Larger velocity change over the smaller, ≥ 1.
    pub delta_v_ratio: f32,
}

#[derive(Debug, Clone, PartialEq)]
pub enum MatchOutcome {
    /// The payer is asked to pay the payee's amount.
    Matched {
        payer_id: ReportId,
        payee_id: ReportId,
        amount: Amount,
        score: PairScore,
    },
    /// More than one pairing was plausible; all these phones bump again.
    Ambiguous { ids: Vec<ReportId> },
    /// No plausible partner reported in time.
    Expired { id: ReportId },
}

/// A report checked and decoded, ready to be compared with others.
pub struct Pending {
    role: BumpRole,
    instant_ms: Millis,
    amount: Option<Amount>,
    impulse: ImpulseFeatures,
    fingerprint: AmbientFingerprint,
    location: Option<CoarseLocation>,
    /// Plausible partners (opposite role), with how well they agree.
    partners: Vec<(ReportId, PairScore)>,
}

pub struct Matcher {
    config: MatcherConfig,
    pending: HashMap<ReportId, Pending>,
    by_instant: BTreeSet<(Millis, ReportId)>,
    /// Reports told to bump again, kept until they settle: a rival that
    /// reports later still sees them, and is told to bump again too.
    told_again: HashMap<ReportId, Pending>,
    told_again_by_instant: BTreeSet<(Millis, ReportId)>,
}

impl Matcher {
    pub fn new(config: MatcherConfig) -> Result<Matcher, ConfigError> {
        let positive = [
            ("max_time_diff_ms", config.max_time_diff_ms > 0),
            ("max_report_delay_ms", config.max_report_delay_ms > 0),
            ("max_delta_v_ratio", config.max_delta_v_ratio >= 1.0),
            ("capacity", config.capacity > 0),
        ];
        if let Some((field, _)) = positive.iter().find(|(_, ok)| !ok) {
            return Err(ConfigError::NotPositive { field });
        }
        Ok(Matcher {
            config,
            pending: HashMap::new(),
            by_instant: BTreeSet::new(),
            told_again: HashMap::new(),
            told_again_by_instant: BTreeSet::new(),
        })
    }

    pub fn config(&self) -> &MatcherConfig {
        &self.config
    }

    /// Reports waiting for a decision.
    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    /// Takes a report at server time `now_ms`. Returns the decisions due by
    /// now, including any the new report caused (an ambiguity).
    pub fn submit(
        &mut self,
        id: ReportId,
        report: &BumpReport,
        now_ms: Millis,
    ) -> Result<Vec<MatchOutcome>, SubmitError> {
        let mut outcomes = self.expire(now_ms);
        let new = self.validate(report, now_ms)?;
        if self.pending.contains_key(&id) {
            return Err(SubmitError::DuplicateId { id });
        }
        if self.pending.len() + self.told_again.len() >= self.config.capacity {
            return Err(SubmitError::Full {
                capacity: self.config.capacity,
            });
        }
        let window = (new.instant_ms - self.config.max_time_diff_ms, ReportId::MIN)
            ..=(new.instant_ms + self.config.max_time_diff_ms, ReportId::MAX);
        // A rival of phones already told to bump again joins them: with one
        // of them out of the picture it might look like the only candidate.
        let rival_of_told_again = self
            .told_again_by_instant
            .range(window.clone())
            .any(|&(_, other_id)| self.plausible(&new, &self.told_again[&other_id]).is_some());
        let partners: Vec<(ReportId, PairScore)> = self
            .by_instant
            .range(window)
            .filter_map(|&(_, other_id)| {
                let other = &self.pending[&other_id];
                self.plausible(&new, other).map(|score| (other_id, score))
            })
            .collect();
        for &(other_id, score) in &partners {
            if let Some(other) = self.pending.get_mut(&other_id) {
                other.partners.push((id, score));
            }
        }
        self.by_instant.insert((new.instant_ms, id));
        self.pending.insert(id, Pending { partners, ..new });

        let group = self.group_of(id);
        if group.len() >= 3 || rival_of_told_again {
            for member in &group {
                self.tell_again(*member);
            }
            outcomes.push(MatchOutcome::Ambiguous { ids: group });
        }
        Ok(outcomes)
    }

    /// Decides every report settled by `now_ms`: matches pairs whose
    /// partners have both settled, expires reports with no partner.
    pub fn expire(&mut self, now_ms: Millis) -> Vec<MatchOutcome> {
        let settled_before = now_ms - self.config.settle_ms();
        // Phones told to bump again are forgotten once no rival can arrive.
        let forgotten: Vec<(Millis, ReportId)> = self
            .told_again_by_instant
            .range(..=(settled_before, ReportId::MAX))
            .copied()
            .collect();
        for key in forgotten {
            self.told_again_by_instant.remove(&key);
            self.told_again.remove(&key.1);
        }
        let settled: Vec<ReportId> = self
            .by_instant
            .range(..=(settled_before, ReportId::MAX))
            .map(|&(_, id)| id)
            .collect();
        let mut outcomes = Vec::new();
        for id in settled {
            let Some(report) = self.pending.get(&id) else {
                continue; // decided with its partner earlier in this loop
            };
            match report.partners.as_slice() {
                [] => {
                    self.remove(id);
                    outcomes.push(MatchOutcome::Expired { id });
                }
                &[(partner_id, score)] => {
                    if self.pending[&partner_id].instant_ms > settled_before {
                        continue; // the partner may still get a rival
                    }
                    let (payer_id, payee_id) = match report.role {
                        BumpRole::Payer => (id, partner_id),
                        BumpRole::Payee => (partner_id, id),
                    };
                    let amount = self.pending[&payee_id]
                        .amount
                        .expect("payee reports carry an amount (checked on submit)");
                    self.remove(id);
                    self.remove(partner_id);
                    outcomes.push(MatchOutcome::Matched {
                        payer_id,
                        payee_id,
                        amount,
                        score,
                    });
                }
                // Groups of three or more are removed as soon as they form.
                _ => unreachable!("ambiguous groups are decided on submit"),
            }
        }
        outcomes
    }

    fn validate(&self, report: &BumpReport, now_ms: Millis) -> Result<Pending, SubmitError> {
        check_timing(&self.config, report, now_ms)?;
        candidate(report)
    }

    fn plausible(&self, a: &Pending, b: &Pending) -> Option<PairScore> {
        plausible(&self.config, a, b)
    }

    /// Every report linked to `id` through plausible partners, `id` first.
    fn group_of(&self, id: ReportId) -> Vec<ReportId> {
        let mut group = vec![id];
        let mut next = 0;
        while next < group.len() {
            for &(partner, _) in &self.pending[&group[next]].partners {
                if !group.contains(&partner) {
                    group.push(partner);
                }
            }
            next += 1;
        }
        group
    }

    /// Moves a pending report to those told to bump again.
    fn tell_again(&mut self, id: ReportId) {
        if let Some(mut report) = self.remove(id) {
            report.partners.clear();
            self.told_again_by_instant.insert((report.instant_ms, id));
            self.told_again.insert(id, report);
        }
    }

    fn remove(&mut self, id: ReportId) -> Option<Pending> {
        let report = self.pending.remove(&id)?;
        self.by_instant.remove(&(report.instant_ms, id));
        for (partner, _) in &report.partners {
            if let Some(p) = self.pending.get_mut(partner) {
                p.partners.retain(|(other, _)| *other != id);
            }
        }
        Some(report)
    }
}

/// Refuses a report that arrives too long after its knock, or whose knock
/// lies in the future, at server time `now_ms`.
pub fn check_timing(
    config: &MatcherConfig,
    report: &BumpReport,
    now_ms: Millis,
) -> Result<(), SubmitError> {
    let age_ms = now_ms - report.instant_ms;
    if age_ms > config.max_report_delay_ms {
        return Err(SubmitError::TooLate {
            instant_ms: report.instant_ms,
            age_ms,
            max_ms: config.max_report_delay_ms,
        });
    }
    if -age_ms > config.max_future_ms {
        return Err(SubmitError::FromTheFuture {
            instant_ms: report.instant_ms,
            ahead_ms: -age_ms,
            max_ms: config.max_future_ms,
        });
    }
    Ok(())
}

/// Checks a report's shape (role and amount, impulse, location, fingerprint)
/// and decodes it; timing is [`check_timing`]'s job, so a stored report can
/// be decoded again later.
pub fn candidate(report: &BumpReport) -> Result<Pending, SubmitError> {
    match (report.role, report.amount) {
        (BumpRole::Payee, None) => return Err(SubmitError::PayeeWithoutAmount),
        (BumpRole::Payer, Some(_)) => return Err(SubmitError::PayerWithAmount),
        (BumpRole::Payee, Some(amount)) if amount <= 0 => {
            return Err(SubmitError::AmountNotPositive(amount));
        }
        _ => {}
    }
    let impulse = report.impulse;
    let direction_norm = impulse.direction.iter().map(|v| v * v).sum::<f32>().sqrt();
    let figures = [
        impulse.peak_mps2,
        impulse.delta_v_mps,
        impulse.rise_ms,
        impulse.duration_ms,
    ];
    if !figures.iter().all(|v| v.is_finite() && *v >= 0.0)
        || impulse.delta_v_mps == 0.0
        || !direction_norm.is_finite()
        || (direction_norm - 1.0).abs() >= 0.01
    {
        return Err(SubmitError::BadImpulse);
    }
    if let Some(l) = report.location {
        let ok = l.lat_deg.is_finite()
            && l.lon_deg.is_finite()
            && l.lat_deg.abs() <= 90.0
            && l.lon_deg.abs() <= 180.0
            && l.accuracy_m.is_finite()
            && l.accuracy_m > 0.0;
        if !ok {
            return Err(SubmitError::BadLocation);
        }
    }
    Ok(Pending {
        role: report.role,
        instant_ms: report.instant_ms,
        amount: report.amount,
        impulse,
        fingerprint: AmbientFingerprint::from_bytes(&report.fingerprint)?,
        location: report.location,
        partners: Vec::new(),
    })
}

impl Pending {
    pub fn role(&self) -> BumpRole {
        self.role
    }

    pub fn instant_ms(&self) -> Millis {
        self.instant_ms
    }

    pub fn amount(&self) -> Option<Amount> {
        self.amount
    }
}

/// The agreement of two reports, if they could be one bump. Cheap tests
/// first; the fingerprint comparison last.
pub fn plausible(config: &MatcherConfig, a: &Pending, b: &Pending) -> Option<PairScore> {
    let c = config;
    if a.role == b.role {
        return None;
    }
    let time_diff_ms = (a.instant_ms - b.instant_ms).abs();
    if time_diff_ms > c.max_time_diff_ms {
        return None;
    }
    let (dv_a, dv_b) = (a.impulse.delta_v_mps, b.impulse.delta_v_mps);
    let delta_v_ratio = dv_a.max(dv_b) / dv_a.min(dv_b);
    if delta_v_ratio > c.max_delta_v_ratio {
        return None;
    }
    let distance_m = match (a.location, b.location) {
        (Some(la), Some(lb)) => {
            let d = la.distance_m(&lb);
            let accuracy = f64::from(la.accuracy_m).hypot(f64::from(lb.accuracy_m));
            if d > c.distance_slack_m + c.location_sigmas * accuracy {
                return None;
            }
            Some(d)
        }
        _ => None,
    };
    let fingerprint_similarity = a.fingerprint.similarity(&b.fingerprint);
    if fingerprint_similarity < c.min_fingerprint_similarity {
        return None;
    }
    Some(PairScore {
        time_diff_ms,
        fingerprint_similarity,
        distance_m,
        delta_v_ratio,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Millis = 1_700_000_000_000;

    /// A fingerprint that only reports made with the same `room` match.
    fn fingerprint(room: u64) -> Vec<u8> {
        let mut state = room.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut bytes = vec![2u8]; // format version
        for _ in 0..92 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            bytes.extend_from_slice(&(state as u16).to_le_bytes());
        }
        bytes
    }

    fn report(role: BumpRole, instant_ms: Millis, room: u64) -> BumpReport {
        BumpReport {
            role,
            amount: (role == BumpRole::Payee).then_some(800),
            instant_ms,
            impulse: ImpulseFeatures {
                peak_mps2: 40.0,
                delta_v_mps: 0.2,
                rise_ms: 2.0,
                duration_ms: 4.0,
                direction: [0.0, 1.0, 0.0],
            },
            fingerprint: fingerprint(room),
            location: None,
        }
    }

    fn matcher() -> Matcher {
        Matcher::new(MatcherConfig::default()).unwrap()
    }

    #[test]
    fn pair_matches_only_once_settled() {
        let mut m = matcher();
        let settle = m.config().settle_ms();
        assert!(
            m.submit(1, &report(BumpRole::Payee, T0, 7), T0 + 300)
                .unwrap()
                .is_empty()
        );
        assert!(
            m.submit(2, &report(BumpRole::Payer, T0 + 25, 7), T0 + 400)
                .unwrap()
                .is_empty()
        );
        // The payee has settled, the payer not yet: wait.
        assert!(m.expire(T0 + settle + 10).is_empty());
        let outcomes = m.expire(T0 + 25 + settle);
        assert_eq!(outcomes.len(), 1);
        let MatchOutcome::Matched {
            payer_id,
            payee_id,
            amount,
            score,
        } = outcomes[0]
        else {
            panic!("{outcomes:?}")
        };
        assert_eq!((payer_id, payee_id, amount), (2, 1, 800));
        assert_eq!(score.time_diff_ms, 25);
        assert_eq!(m.pending_count(), 0);
    }

    #[test]
    fn third_plausible_report_makes_all_three_ambiguous_at_once() {
        let mut m = matcher();
        m.submit(1, &report(BumpRole::Payee, T0, 7), T0 + 200)
            .unwrap();
        m.submit(2, &report(BumpRole::Payer, T0 + 10, 7), T0 + 200)
            .unwrap();
        let outcomes = m
            .submit(3, &report(BumpRole::Payer, T0 - 20, 7), T0 + 900)
            .unwrap();
        assert_eq!(
            outcomes,
            vec![MatchOutcome::Ambiguous { ids: vec![3, 1, 2] }]
        );
        assert_eq!(m.pending_count(), 0);
    }

    #[test]
    fn a_rival_of_phones_told_to_bump_again_is_told_to_bump_again_too() {
        let mut m = matcher();
        // Payee 1 and payers 2 and 3 bump in one room at once: ambiguous.
        m.submit(1, &report(BumpRole::Payee, T0, 7), T0 + 300)
            .unwrap();
        m.submit(2, &report(BumpRole::Payer, T0 + 10, 7), T0 + 300)
            .unwrap();
        let outcomes = m
            .submit(3, &report(BumpRole::Payer, T0 + 5, 7), T0 + 400)
            .unwrap();
        assert_eq!(
            outcomes,
            vec![MatchOutcome::Ambiguous { ids: vec![3, 1, 2] }]
        );
        // Payer 5, whose partner felt nothing, and payee 4, payer 3's true
        // partner, report late: with 1, 2 and 3 gone they would be each
        // other's only candidate. Each is told to bump again.
        let outcomes = m
            .submit(5, &report(BumpRole::Payer, T0 + 30, 7), T0 + 900)
            .unwrap();
        assert_eq!(outcomes, vec![MatchOutcome::Ambiguous { ids: vec![5] }]);
        let outcomes = m
            .submit(4, &report(BumpRole::Payee, T0 + 20, 7), T0 + 1_000)
            .unwrap();
        assert_eq!(outcomes, vec![MatchOutcome::Ambiguous { ids: vec![4] }]);
        // Once every one of them has settled, they are forgotten.
        assert!(m.expire(T0 + 10_000).is_empty());
        assert_eq!(m.pending_count(), 0);
        assert!(m.told_again.is_empty() && m.told_again_by_instant.is_empty());
    }

    /// Over random crowds packed into a few rooms and a fraction of a
    /// second, with random reports lost: two phones of different pairs are
    /// never paired when a true partner of either reported.
    #[test]
    fn never_pairs_strangers_when_a_true_partner_reported() {
        use proptest::prelude::*;
        use proptest::test_runner::{Config, RngSeed, TestRunner};
        let config = Config {
            cases: 3_000,
            rng_seed: RngSeed::Fixed(2026),
            ..Config::default()
        };
        let crowd = (2usize..16, any::<u64>());
        TestRunner::new(config)
            .run(&crowd, |(pairs, seed)| {
                check_crowd(pairs, seed);
                Ok(())
            })
            .unwrap();
    }

    fn check_crowd(pairs: usize, seed: u64) {
        let mut state = seed | 1;
        let mut next = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        // Phone 2p is pair p's payee, 2p + 1 its payer.
        let mut arrivals = Vec::new();
        let mut sent = vec![false; 2 * pairs];
        for p in 0..pairs {
            let room = next(3);
            let at = T0 + next(400) as i64;
            for (role, phone) in [(BumpRole::Payee, 2 * p), (BumpRole::Payer, 2 * p + 1)] {
                // A third of the phones felt nothing.
                if next(3) == 0 {
                    continue;
                }
                sent[phone] = true;
                let instant = at + next(61) as i64 - 30;
                let arrival = instant + 200 + next(1_200) as i64;
                arrivals.push((arrival, phone as u64, report(role, instant, room)));
            }
        }
        arrivals.sort_by_key(|(arrival, id, _)| (*arrival, *id));
        let mut m = matcher();
        let mut outcomes = Vec::new();
        for (arrival, id, r) in &arrivals {
            outcomes.extend(m.submit(*id, r, *arrival).unwrap());
        }
        outcomes.extend(m.expire(T0 + 60_000));
        for outcome in outcomes {
            if let MatchOutcome::Matched {
                payer_id, payee_id, ..
            } = outcome
            {
                if payer_id == payee_id + 1 {
                    continue;
                }
                let (payer_partner, payee_partner) = (payer_id - 1, payee_id + 1);
                assert!(
                    !sent[payer_partner as usize] && !sent[payee_partner as usize],
                    "seed {seed}: payer {payer_id} paired with payee {payee_id} though a true partner reported"
                );
            }
        }
    }

    #[test]
    fn other_room_same_role_and_far_instant_are_not_partners() {
        let mut m = matcher();
        m.submit(1, &report(BumpRole::Payee, T0, 7), T0).unwrap();
        m.submit(2, &report(BumpRole::Payer, T0, 8), T0).unwrap(); // other room
        m.submit(3, &report(BumpRole::Payee, T0, 7), T0).unwrap(); // same role
        m.submit(4, &report(BumpRole::Payer, T0 + 81, 7), T0 + 100)
            .unwrap(); // too late
        let mut outcomes = m.expire(T0 + 10_000);
        outcomes.sort_by_key(|o| match o {
            MatchOutcome::Expired { id } => *id,
            _ => 0,
        });
        let expired: Vec<_> = (1..=4).map(|id| MatchOutcome::Expired { id }).collect();
        assert_eq!(outcomes, expired);
    }

    #[test]
    fn distant_locations_and_unequal_impulses_are_not_partners() {
        let mut m = matcher();
        let here = CoarseLocation {
            lat_deg: 35.0,
            lon_deg: 139.0,
            accuracy_m: 10.0,
        };
        let mut payee = report(BumpRole::Payee, T0, 7);
        payee.location = Some(here);
        let mut far = report(BumpRole::Payer, T0, 7);
        // 0.002° of latitude: 222 m, beyond 40 + 4.5 × 14 m.
        far.location = Some(CoarseLocation {
            lat_deg: 35.002,
            ..here
        });
        // 15 times the payee's velocity change: no two phones' masses.
        let mut hard = report(BumpRole::Payer, T0, 7);
        hard.impulse.delta_v_mps = 3.0;
        m.submit(1, &payee, T0).unwrap();
        m.submit(2, &far, T0).unwrap();
        m.submit(3, &hard, T0).unwrap();
        assert_eq!(m.expire(T0 + 10_000).len(), 3);
        let mut near = report(BumpRole::Payer, T0, 7);
        near.location = Some(CoarseLocation {
            lat_deg: 35.0003,
            ..here
        });
        let mut payee2 = payee.clone();
        payee2.instant_ms = T0 + 20_000;
        near.instant_ms = T0 + 20_000;
        m.submit(5, &payee2, T0 + 20_000).unwrap();
        m.submit(6, &near, T0 + 20_000).unwrap();
        let outcomes = m.expire(T0 + 30_000);
        assert!(
            matches!(outcomes[..], [MatchOutcome::Matched { payer_id: 6, payee_id: 5, score, .. }] if score.distance_m.unwrap() > 30.0)
        );
    }

    #[test]
    fn bad_reports_are_refused_with_the_reason() {
        let mut m = matcher();
        let ok = report(BumpRole::Payee, T0, 7);
        assert!(matches!(
            m.submit(1, &ok, T0 + 1_501),
            Err(SubmitError::TooLate { age_ms: 1_501, .. })
        ));
        assert!(matches!(
            m.submit(1, &ok, T0 - 501),
            Err(SubmitError::FromTheFuture { ahead_ms: 501, .. })
        ));
        let mut no_amount = ok.clone();
        no_amount.amount = None;
        assert_eq!(
            m.submit(1, &no_amount, T0),
            Err(SubmitError::PayeeWithoutAmount)
        );
        let mut negative = ok.clone();
        negative.amount = Some(-5);
        assert_eq!(
            m.submit(1, &negative, T0),
            Err(SubmitError::AmountNotPositive(-5))
        );
        let mut payer = report(BumpRole::Payer, T0, 7);
        payer.amount = Some(5);
        assert_eq!(m.submit(1, &payer, T0), Err(SubmitError::PayerWithAmount));
        let mut nan = ok.clone();
        nan.impulse.peak_mps2 = f32::NAN;
        assert_eq!(m.submit(1, &nan, T0), Err(SubmitError::BadImpulse));
        let mut bad_fp = ok.clone();
        bad_fp.fingerprint = vec![9, 0, 0, 0, 0];
        assert_eq!(
            m.submit(1, &bad_fp, T0),
            Err(SubmitError::BadFingerprint(
                FingerprintError::UnknownVersion(9)
            ))
        );
        let mut bad_place = ok.clone();
        bad_place.location = Some(CoarseLocation {
            lat_deg: 91.0,
            lon_deg: 0.0,
            accuracy_m: 5.0,
        });
        assert_eq!(m.submit(1, &bad_place, T0), Err(SubmitError::BadLocation));
        m.submit(1, &ok, T0).unwrap();
        assert_eq!(
            m.submit(1, &ok, T0),
            Err(SubmitError::DuplicateId { id: 1 })
        );
    }

    #[test]
    fn capacity_is_a_hard_cap_and_settling_frees_it() {
        let mut m = Matcher::new(MatcherConfig {
            capacity: 3,
            ..MatcherConfig::default()
        })
        .unwrap();
        for id in 0..3 {
            m.submit(id, &report(BumpRole::Payee, T0, id + 100), T0)
                .unwrap();
        }
        assert_eq!(
            m.submit(9, &report(BumpRole::Payee, T0, 9), T0),
            Err(SubmitError::Full { capacity: 3 })
        );
        let later = T0 + m.config().settle_ms();
        let outcomes = m
            .submit(9, &report(BumpRole::Payee, later, 9), later)
            .unwrap();
        assert_eq!(outcomes.len(), 3);
        assert_eq!(m.pending_count(), 1);
    }

    #[test]
    fn bad_config_is_named() {
        let err = Matcher::new(MatcherConfig {
            capacity: 0,
            ..MatcherConfig::default()
        })
        .err()
        .unwrap();
        assert_eq!(err, ConfigError::NotPositive { field: "capacity" });
    }
}
