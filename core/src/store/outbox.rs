//! The outbox state machine: every transition an outbox item may make, in
//! one place.
//!
//! ```text
//! queued ──dispatch──▶ sending ──accept──▶ accepted
//!   ▲                   │  ▲  ──reject──▶ rejected(reason)
//!   └────not_sent───────┤  └ dispatch (resent after an interrupted sync)
//!                       └──need_action──▶ needs_action ──requeue──▶ queued
//! ```
//!
//! `accepted` and `rejected` are final. An item leaves `sending` by the
//! server's answer, or by `not_sent` when no connection to the server could
//! be made for the request that marked it (so nothing left the phone). After
//! a crash or a lost answer it stays `sending` and is sent again under the
//! same idempotency key, which the server answers with the first result.

use serde::{Deserialize, Serialize};

/// Where a confirmed remittance is on its way to the server:
/// `queued → sending → accepted | rejected | needs_action`; `sending →
/// queued` when its request never left the phone, and `needs_action →
/// queued` when the user confirms it again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum OutboxState {
    /// Confirmed by the user, waiting for a connection.
    Queued,
    /// Handed to the network at least once; the answer is not recorded yet.
    Sending,
    /// The server posted it (or recorded the claim).
    Accepted,
    /// The server refused it for good; the reason is kept with the item.
    Rejected,
    /// The server refused it for a reason the user can fix (wrong PIN,
    /// locked account, confirmation too old); `requeue` with the PIN again.
    NeedsAction,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OutboxEvent {
    /// A sync puts the item in a request.
    Dispatch,
    Accept,
    Reject,
    NeedAction,
    /// The user confirmed again.
    Requeue,
    /// The sync that marked the item could not connect to the server: its
    /// request never left. Only for items that sync took from `queued`; an
    /// item sent by an earlier sync may have reached the server and stays
    /// `sending`.
    NotSent,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("an outbox item in state {from:?} cannot take event {event:?}")]
pub struct IllegalTransition {
    pub from: OutboxState,
    pub event: OutboxEvent,
}

impl OutboxState {
    /// The state after `event`, or why that cannot happen.
    pub fn apply(self, event: OutboxEvent) -> Result<OutboxState, IllegalTransition> {
        use OutboxEvent as E;
        use OutboxState as S;
        match (self, event) {
            (S::Queued | S::Sending, E::Dispatch) => Ok(S::Sending),
            (S::Sending, E::Accept) => Ok(S::Accepted),
            (S::Sending, E::Reject) => Ok(S::Rejected),
            (S::Sending, E::NeedAction) => Ok(S::NeedsAction),
            (S::NeedsAction, E::Requeue) => Ok(S::Queued),
            (S::Sending, E::NotSent) => Ok(S::Queued),
            (from, event) => Err(IllegalTransition { from, event }),
        }
    }

    pub fn is_final(self) -> bool {
        matches!(self, OutboxState::Accepted | OutboxState::Rejected)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OutboxState::Queued => "queued",
            OutboxState::Sending => "sending",
            OutboxState::Accepted => "accepted",
            OutboxState::Rejected => "rejected",
            OutboxState::NeedsAction => "needs_action",
        }
    }

    pub fn parse(text: &str) -> Option<OutboxState> {
        ALL_STATES.into_iter().find(|s| s.as_str() == text)
    }
}

const ALL_STATES: [OutboxState; 5] = [
    OutboxState::Queued,
    OutboxState::Sending,
    OutboxState::Accepted,
    OutboxState::Rejected,
    OutboxState::NeedsAction,
];

#[cfg(test)]
mod tests {
    use super::*;
    use OutboxEvent as E;
    use OutboxState as S;

    const ALL_EVENTS: [OutboxEvent; 6] = [
        E::Dispatch,
        E::Accept,
        E::Reject,
        E::NeedAction,
        E::Requeue,
        E::NotSent,
    ];

    #[test]
    fn the_happy_path_and_the_fix_path_are_legal() {
        let sent = S::Queued.apply(E::Dispatch).unwrap();
        assert_eq!(sent, S::Sending);
        assert_eq!(sent.apply(E::Dispatch), Ok(S::Sending));
        assert_eq!(sent.apply(E::Accept), Ok(S::Accepted));
        assert_eq!(sent.apply(E::Reject), Ok(S::Rejected));
        let stuck = sent.apply(E::NeedAction).unwrap();
        assert_eq!(stuck.apply(E::Requeue), Ok(S::Queued));
        assert_eq!(sent.apply(E::NotSent), Ok(S::Queued));
    }

    #[test]
    fn only_a_sending_item_can_turn_out_not_sent() {
        for from in ALL_STATES {
            let back = from.apply(E::NotSent);
            if from == S::Sending {
                assert_eq!(back, Ok(S::Queued));
            } else {
                assert!(back.is_err(), "{from:?} + not_sent");
            }
        }
    }

    #[test]
    fn final_states_take_no_event() {
        for from in [S::Accepted, S::Rejected] {
            assert!(from.is_final());
            for event in ALL_EVENTS {
                assert_eq!(from.apply(event), Err(IllegalTransition { from, event }));
            }
        }
    }

    #[test]
    fn only_a_sent_item_gets_an_answer_and_only_a_stuck_one_is_requeued() {
        for event in [E::Accept, E::Reject, E::NeedAction] {
            assert!(S::Queued.apply(event).is_err(), "queued + {event:?}");
            assert!(
                S::NeedsAction.apply(event).is_err(),
                "needs_action + {event:?}"
            );
        }
        for from in [S::Queued, S::Sending, S::Accepted, S::Rejected] {
            assert!(from.apply(E::Requeue).is_err(), "{from:?} + requeue");
        }
        assert!(S::NeedsAction.apply(E::Dispatch).is_err());
    }

    /// The store records an answer with one update conditioned on
    /// `sending` (`store::write_answer`): an answer is legal from no other
    /// state.
    #[test]
    fn answers_are_legal_only_for_a_sending_item() {
        for event in [E::Accept, E::Reject, E::NeedAction] {
            for from in ALL_STATES {
                assert_eq!(
                    from.apply(event).is_ok(),
                    from == S::Sending,
                    "{from:?} + {event:?}"
                );
            }
        }
    }

    /// The store marks a dispatched batch with one update of its `queued`
    /// items (`Store::dispatch`): dispatch moves `queued` to `sending` and
    /// leaves `sending` as it is.
    #[test]
    fn dispatch_moves_only_queued_items() {
        for from in ALL_STATES {
            match from {
                S::Queued | S::Sending => assert_eq!(from.apply(E::Dispatch), Ok(S::Sending)),
                _ => assert!(from.apply(E::Dispatch).is_err(), "{from:?} + dispatch"),
            }
        }
    }

    #[test]
    fn states_round_trip_through_their_names() {
        for s in ALL_STATES {
            assert_eq!(OutboxState::parse(s.as_str()), Some(s));
        }
        assert_eq!(OutboxState::parse("lost"), None);
    }
}
