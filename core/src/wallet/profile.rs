//! Where a sync spends its time, for the wallet benchmark: process-wide
//! totals per phase, taken (and reset) with [`take`]. Each phase costs two
//! clock reads and two relaxed atomic adds per batch, not per item.
//!
//! The `sync_now` phases ([`Phase::on_the_path`]) follow one another on the
//! sync's own task and add up to its wall time; the request phases run in
//! the background while the sync records the batch before, so they overlap
//! with the others.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Reading the next batch from the store and marking it `sending`.
    Dispatch,
    /// Unsealing the batch's signed items.
    Unseal,
    /// Waiting for a batch's answer (what the request phases cost the sync).
    Wait,
    /// Writing a batch's answers (states, history, payees) into the store.
    Record,
    /// Requests with no items at the end: the balance and inbox pages.
    Account,
    /// Paging the server's history for transfers the phone has not seen.
    History,
    /// Serialising and signing a request (in the background task).
    Encode,
    /// A request's round trip, from sending to the whole answer read.
    RoundTrip,
    /// Parsing an answer.
    Decode,
}

pub const PHASES: [Phase; 9] = [
    Phase::Dispatch,
    Phase::Unseal,
    Phase::Wait,
    Phase::Record,
    Phase::Account,
    Phase::History,
    Phase::Encode,
    Phase::RoundTrip,
    Phase::Decode,
];

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Dispatch => "store: read + mark sending",
            Phase::Unseal => "unseal items",
            Phase::Wait => "wait for answers",
            Phase::Record => "store: write answers",
            Phase::Account => "balance + inbox pages",
            Phase::History => "history catch-up",
            Phase::Encode => "request: serialise + sign",
            Phase::RoundTrip => "request: HTTP round trip",
            Phase::Decode => "answer: parse",
        }
    }

    /// Whether the phase runs on the sync's own task (the phases that add
    /// up to its wall time).
    pub fn on_the_path(self) -> bool {
        !matches!(self, Phase::Encode | Phase::RoundTrip | Phase::Decode)
    }
}

static NANOS: [AtomicU64; PHASES.len()] = [const { AtomicU64::new(0) }; PHASES.len()];
static COUNTS: [AtomicU64; PHASES.len()] = [const { AtomicU64::new(0) }; PHASES.len()];

pub(crate) fn add(phase: Phase, took: Duration) {
    NANOS[phase as usize].fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
    COUNTS[phase as usize].fetch_add(1, Ordering::Relaxed);
}

/// Times `f` as `phase`.
pub(crate) fn time<T>(phase: Phase, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    add(phase, start.elapsed());
    out
}

/// Every phase's total time and how many times it ran since the last
/// `take`; resets them.
pub fn take() -> Vec<(Phase, Duration, u64)> {
    PHASES
        .iter()
        .map(|&phase| {
            let nanos = NANOS[phase as usize].swap(0, Ordering::Relaxed);
            let count = COUNTS[phase as usize].swap(0, Ordering::Relaxed);
            (phase, Duration::from_nanos(nanos), count)
        })
        .collect()
}
