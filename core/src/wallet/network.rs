//! The sync client's timing rules, as pure functions: exponential backoff
//! with jitter between retries, and the NTP-style clock-offset estimate.

use std::time::Duration;

/// First retry delay; each further retry doubles it.
pub const BASE_BACKOFF_MS: u64 = 200;
/// No retry waits longer than this.
pub const MAX_BACKOFF_MS: u64 = 5_000;
/// Tries of one sync request before the wallet reports it is offline.
pub const MAX_SYNC_ATTEMPTS: u32 = 4;
/// Samples of `GET /v1/time` for one clock-offset estimate.
pub const CLOCK_SAMPLES: usize = 5;

/// How long to wait before retry number `attempt` (1 = the first retry):
/// "equal jitter": half the exponential delay, plus up to the other half
/// chosen by `jitter` in `[0, 1)`, so phones that lost the network together
/// do not all come back at the same instant.
pub fn backoff_delay(attempt: u32, jitter: f64) -> Duration {
    let exponential = BASE_BACKOFF_MS
        .saturating_mul(1u64 << attempt.saturating_sub(1).min(20))
        .min(MAX_BACKOFF_MS);
    let half = exponential / 2;
    let extra = (half as f64 * jitter.clamp(0.0, 1.0)) as u64;
    Duration::from_millis(half + extra)
}

/// One exchange with the server's clock: local time sent, server time,
/// local time received (all Unix ms).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockSample {
    pub sent_ms: i64,
    pub server_ms: i64,
    pub received_ms: i64,
}

/// Server time minus local time, and how sure we are of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct ClockOffset {
    pub offset_ms: i64,
    /// The round trip of the sample it came from; the error is at most half.
    pub round_trip_ms: i64,
}

/// The estimate from the sample with the smallest round trip (the one the
/// network delayed least), assuming the server read its clock halfway.
pub fn best_offset(samples: &[ClockSample]) -> Option<ClockOffset> {
    samples
        .iter()
        .filter(|s| s.received_ms >= s.sent_ms)
        .min_by_key(|s| s.received_ms - s.sent_ms)
        .map(|s| ClockOffset {
            offset_ms: s.server_ms - (s.sent_ms + (s.received_ms - s.sent_ms) / 2),
            round_trip_ms: s.received_ms - s.sent_ms,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_jitter_stays_within_the_upper_half() {
        let no_jitter: Vec<u64> = (1..=7)
            .map(|a| backoff_delay(a, 0.0).as_millis() as u64)
            .collect();
        assert_eq!(no_jitter, vec![100, 200, 400, 800, 1600, 2500, 2500]);
        for attempt in 1..=10 {
            let full = BASE_BACKOFF_MS
                .saturating_mul(1 << (attempt - 1))
                .min(MAX_BACKOFF_MS);
            for jitter in [0.0, 0.25, 0.5, 0.999] {
                let d = backoff_delay(attempt, jitter).as_millis() as u64;
                assert!(
                    d >= full / 2 && d <= full,
                    "attempt {attempt} jitter {jitter}: {d}"
                );
            }
        }
        assert!(backoff_delay(3, 0.9) > backoff_delay(3, 0.1));
        assert_eq!(
            backoff_delay(u32::MAX, 1.0).as_millis() as u64,
            MAX_BACKOFF_MS
        );
    }

    #[test]
    fn offset_comes_from_the_fastest_round_trip() {
        // True offset +5_000 ms. Slow samples are skewed by asymmetric delay.
        let samples = [
            ClockSample {
                sent_ms: 1_000,
                server_ms: 6_400,
                received_ms: 1_500,
            },
            ClockSample {
                sent_ms: 2_000,
                server_ms: 7_010,
                received_ms: 2_020,
            },
            ClockSample {
                sent_ms: 3_000,
                server_ms: 8_050,
                received_ms: 3_300,
            },
        ];
        let best = best_offset(&samples).unwrap();
        assert_eq!(
            best,
            ClockOffset {
                offset_ms: 5_000,
                round_trip_ms: 20
            }
        );
        assert_eq!(best_offset(&[]), None);
        // A sample whose clock ran backwards is ignored.
        let bad = ClockSample {
            sent_ms: 10,
            server_ms: 0,
            received_ms: 5,
        };
        assert_eq!(best_offset(&[bad]), None);
    }
}
