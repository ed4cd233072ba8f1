//! Pay by bump and by sound through the HTTP API, on SQLite and PostgreSQL:
//! the claim a pairing creates, the refusals, several server instances on
//! one database, and no phone number in any pairing answer.

mod common;

use std::time::Duration;

use clink_core::http_client::{ApiClient, ClientError};
use clink_core::wire::*;
use common::*;
use sqlx::Row;

const ROOM: u64 = 7;

fn now_ms() -> i64 {
    clink_server::now_ms()
}

/// A fingerprint that only reports made with the same `room` match (the
/// real ones come from audio; the wallet tests use those).
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

fn report(role: BumpRole, instant_ms: i64, room: u64) -> BumpReport {
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

/// Calls and returns the raw JSON too, checked to hold no phone number.
async fn call_json<T: serde::de::DeserializeOwned>(
    client: &ApiClient,
    method: reqwest::Method,
    path: &str,
    body: Option<&serde_json::Value>,
) -> Result<T, ClientError> {
    let value: serde_json::Value = client.call(method, path, body, true).await?;
    let text = value.to_string();
    assert!(!text.contains("+81"), "a phone number in {path}: {text}");
    assert!(!text.contains("phone"), "a phone field in {path}: {text}");
    Ok(serde_json::from_value(value).expect("the wire type"))
}

async fn submit(
    client: &ApiClient,
    report: BumpReport,
    memo: &str,
) -> Result<BumpReportView, ClientError> {
    let body = serde_json::to_value(SubmitBumpRequest {
        report,
        memo: memo.into(),
    })
    .unwrap();
    call_json(client, reqwest::Method::POST, paths::BUMPS, Some(&body)).await
}

async fn poll(client: &ApiClient, id: &str) -> BumpReportView {
    // Long-polls until decided; a decision is due about 2 s after the knock.
    for _ in 0..3 {
        let view: BumpReportView = call_json(
            client,
            reqwest::Method::GET,
            &paths::bump_report(id, 5_000),
            None,
        )
        .await
        .unwrap();
        if !matches!(view.outcome, BumpOutcome::Pending { .. }) {
            return view;
        }
    }
    panic!("bump report {id} still pending after 15 s");
}

async fn claims_between(server: &TestServer) -> i64 {
    sqlx::query("SELECT COUNT(*) FROM transfers WHERE kind = 'claim'")
        .fetch_one(server.pool())
        .await
        .unwrap()
        .get(0)
}

async fn issue(client: &ApiClient, amount: i64, memo: &str) -> [u8; 16] {
    let body = serde_json::to_value(IssueSoundTokenRequest {
        amount,
        memo: memo.into(),
    })
    .unwrap();
    let issued: SoundTokenIssued = call_json(
        client,
        reqwest::Method::POST,
        paths::SOUND_TOKENS,
        Some(&body),
    )
    .await
    .unwrap();
    decode_token(&issued.token).expect("16 bytes")
}

async fn redeem(client: &ApiClient, token: &[u8; 16]) -> Result<PairingRequestView, ClientError> {
    let body = serde_json::to_value(RedeemSoundTokenRequest {
        token: encode_token(token),
    })
    .unwrap();
    call_json(
        client,
        reqwest::Method::POST,
        paths::SOUND_TOKEN_REDEEM,
        Some(&body),
    )
    .await
}

// ------------------------------------------------------------------- bump

async fn bump_match_creates_one_request_that_pays_once(backend: Backend) {
    let Some(s) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let alice = s.user("Alice", "1234").await;
    let bob = s.user("Bob's Cafe", "5678").await;
    alice.cash_in(5_000).await;
    let t = now_ms();
    let payee = submit(&bob.client, report(BumpRole::Payee, t, ROOM), "coffee")
        .await
        .unwrap();
    let payer = submit(&alice.client, report(BumpRole::Payer, t + 25, ROOM), "")
        .await
        .unwrap();
    assert!(
        matches!(payee.outcome, BumpOutcome::Pending { decide_after_ms } if decide_after_ms > t)
    );
    let BumpOutcome::Confirm { request } = poll(&alice.client, &payer.report_id).await.outcome
    else {
        panic!("the payer is asked to confirm")
    };
    assert_eq!(request.payee_display_name, "Bob's Cafe");
    assert_eq!((request.amount, request.memo.as_str()), (800, "coffee"));
    let BumpOutcome::RequestSent { request: sent } =
        poll(&bob.client, &payee.report_id).await.outcome
    else {
        panic!("the payee hears the request was sent")
    };
    assert_eq!(sent, request);
    // The payer's inbox holds it, without the payee's number.
    let inbox = alice.client.inbox(0).await.unwrap();
    assert_eq!(inbox.pending_claims.len(), 1);
    assert_eq!(inbox.pending_claims[0].counterpart.phone, None);
    assert_eq!(
        inbox.pending_claims[0].counterpart.display_name,
        "Bob's Cafe"
    );

    let paid = alice
        .client
        .approve_claim(&request.request_id, "1234")
        .await
        .unwrap();
    assert_eq!(paid.state, TransferState::Posted);
    assert_eq!(paid.counterpart.phone, None);
    let again = alice
        .client
        .approve_claim(&request.request_id, "1234")
        .await
        .unwrap();
    assert_eq!(again.state, TransferState::Posted);
    assert_eq!((alice.balance().await, bob.balance().await), (4_200, 800));
    assert_eq!(s.sum_of_balances().await, 0);
    let entries: i64 = sqlx::query(
        "SELECT COUNT(*) FROM entries e JOIN transfers t ON t.seq = e.transfer_seq WHERE t.id = $1",
    )
    .bind(&request.request_id)
    .fetch_one(s.pool())
    .await
    .unwrap()
    .get(0);
    assert_eq!(entries, 2);
    // The payee is told through the inbox; neither history shows a number.
    let bob_inbox = bob.client.inbox(0).await.unwrap();
    let approved = bob_inbox
        .notifications
        .iter()
        .find(|n| n.kind == NotificationKind::ClaimApproved)
        .expect("claim_approved");
    assert_eq!(approved.transfer.counterpart.display_name, "Alice");
    assert_eq!(approved.transfer.counterpart.phone, None);
    for user in [&alice, &bob] {
        let history = user.client.history(None, 10).await.unwrap();
        let text = serde_json::to_string(&history).unwrap();
        assert!(!text.contains("+81"), "{text}");
    }

    // A second bump, declined: voided, no money moves.
    let t = now_ms();
    let payee = submit(&bob.client, report(BumpRole::Payee, t, ROOM + 1), "cake")
        .await
        .unwrap();
    let payer = submit(&alice.client, report(BumpRole::Payer, t - 10, ROOM + 1), "")
        .await
        .unwrap();
    let BumpOutcome::Confirm { request } = poll(&alice.client, &payer.report_id).await.outcome
    else {
        panic!("confirm")
    };
    let declined = alice
        .client
        .decline_claim(&request.request_id)
        .await
        .unwrap();
    assert_eq!(declined.state, TransferState::Voided);
    assert!(matches!(
        poll(&bob.client, &payee.report_id).await.outcome,
        BumpOutcome::RequestSent { .. }
    ));
    assert_eq!((alice.balance().await, bob.balance().await), (4_200, 800));
}

async fn three_phones_in_one_window_all_bump_again(backend: Backend) {
    let Some(s) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let bob = s.user("Bob", "5678").await;
    let alice = s.user("Alice", "1234").await;
    let carol = s.user("Carol", "4321").await;
    let t = now_ms();
    let payee = submit(&bob.client, report(BumpRole::Payee, t, ROOM), "")
        .await
        .unwrap();
    let first = submit(&alice.client, report(BumpRole::Payer, t + 10, ROOM), "")
        .await
        .unwrap();
    // The third plausible report makes the group ambiguous at once.
    let third = submit(&carol.client, report(BumpRole::Payer, t - 15, ROOM), "")
        .await
        .unwrap();
    assert_eq!(third.outcome, BumpOutcome::BumpAgain);
    for (user, id) in [
        (&bob, &payee.report_id),
        (&alice, &first.report_id),
        (&carol, &third.report_id),
    ] {
        assert_eq!(poll(&user.client, id).await.outcome, BumpOutcome::BumpAgain);
    }
    // Even after every report has settled, nothing was paired.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(claims_between(&s).await, 0);
}

/// Phones told to bump again stay visible to rivals until they settle: two
/// late reporters near them (one the true partner of a phone in the group)
/// bump again too, rather than pairing with each other as the only
/// candidates left.
async fn late_rivals_of_phones_told_to_bump_again_bump_again_too(backend: Backend) {
    let Some(s) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let bob = s.user("Bob", "5678").await;
    let alice = s.user("Alice", "1234").await;
    let carol = s.user("Carol", "4321").await;
    let dave = s.user("Dave", "1111").await;
    let erin = s.user("Erin", "2222").await;
    let t = now_ms();
    submit(&bob.client, report(BumpRole::Payee, t, ROOM), "")
        .await
        .unwrap();
    submit(&alice.client, report(BumpRole::Payer, t + 10, ROOM), "")
        .await
        .unwrap();
    let third = submit(&carol.client, report(BumpRole::Payer, t + 5, ROOM), "")
        .await
        .unwrap();
    assert_eq!(third.outcome, BumpOutcome::BumpAgain);
    // Erin (a payer whose partner felt nothing) and Dave (Carol's payee).
    let erin_report = submit(&erin.client, report(BumpRole::Payer, t + 30, ROOM), "")
        .await
        .unwrap();
    let dave_report = submit(&dave.client, report(BumpRole::Payee, t + 20, ROOM), "")
        .await
        .unwrap();
    assert_eq!(erin_report.outcome, BumpOutcome::BumpAgain);
    assert_eq!(dave_report.outcome, BumpOutcome::BumpAgain);
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    for (user, id) in [
        (&erin, &erin_report.report_id),
        (&dave, &dave_report.report_id),
    ] {
        assert_eq!(poll(&user.client, id).await.outcome, BumpOutcome::BumpAgain);
    }
    assert_eq!(claims_between(&s).await, 0);
}

async fn unmatched_report_expires_and_is_forgotten(backend: Backend) {
    let Some(s) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let alice = s.user("Alice", "1234").await;
    let bob = s.user("Bob", "5678").await;
    let t = now_ms();
    let lonely = submit(&alice.client, report(BumpRole::Payer, t, ROOM), "")
        .await
        .unwrap();
    // Another room's payee at the same instant is no partner.
    let elsewhere = submit(&bob.client, report(BumpRole::Payee, t, ROOM + 100), "")
        .await
        .unwrap();
    assert_eq!(
        poll(&alice.client, &lonely.report_id).await.outcome,
        BumpOutcome::Expired
    );
    assert_eq!(
        poll(&bob.client, &elsewhere.report_id).await.outcome,
        BumpOutcome::Expired
    );
    assert_eq!(claims_between(&s).await, 0);
    // The sweeper forgets decided reports a minute later.
    let mut conn = s.pool().acquire().await.unwrap();
    clink_server::sweeper::sweep(&mut conn, now_ms() + 61_000)
        .await
        .unwrap();
    let left: i64 = sqlx::query("SELECT COUNT(*) FROM bump_reports")
        .fetch_one(&mut *conn)
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
    let gone = bob.client.bump_status(&elsewhere.report_id, 0).await;
    assert_eq!(code_of(gone).code, ErrorCode::NotFound);
}

async fn bad_and_late_reports_are_refused_with_a_reason(backend: Backend) {
    let Some(s) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let alice = s.user("Alice", "1234").await;
    let t = now_ms();
    let late = submit(&alice.client, report(BumpRole::Payer, t - 3_000, ROOM), "").await;
    let late = code_of(late);
    assert_eq!(late.code, ErrorCode::BumpRejected);
    assert!(late.message.contains("bump again"), "{}", late.message);
    let future = submit(&alice.client, report(BumpRole::Payer, t + 3_000, ROOM), "").await;
    assert_eq!(code_of(future).code, ErrorCode::BumpRejected);
    let mut payer_with_amount = report(BumpRole::Payer, t, ROOM);
    payer_with_amount.amount = Some(5);
    let refused = submit(&alice.client, payer_with_amount, "").await;
    assert_eq!(code_of(refused).code, ErrorCode::InvalidRequest);
    let mut huge = report(BumpRole::Payee, t, ROOM);
    huge.amount = Some(10_000_000);
    assert_eq!(
        code_of(submit(&alice.client, huge, "").await).code,
        ErrorCode::AmountTooLarge
    );
    let missing = alice.client.bump_status("b_nope", 0).await;
    assert_eq!(code_of(missing).code, ErrorCode::NotFound);
    let rows: i64 = sqlx::query("SELECT COUNT(*) FROM bump_reports")
        .fetch_one(s.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 0);
}

async fn two_instances_sharing_a_database_match_each_pair_once(backend: Backend) {
    let Some(a) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let b = a.another_instance(true).await;
    const PAIRS: usize = 4;
    let mut payers = Vec::new();
    let mut payees = Vec::new();
    for i in 0..PAIRS {
        let payer = a.user(&format!("Payer {i}"), "1234").await;
        payer.cash_in(1_000).await;
        let payee = a.user(&format!("Shop {i}"), "5678").await;
        // Each payee talks to instance B only.
        let via_b = ApiClient::new(&b.url()).with_key(payee.key.clone());
        payers.push(payer);
        payees.push((payee, via_b));
    }
    let mut ids = Vec::new();
    for i in 0..PAIRS {
        // Pairs one after the other, each in its own room.
        let instant = now_ms();
        let room = 1_000 + i as u64;
        let payer = submit(
            &payers[i].client,
            report(BumpRole::Payer, instant, room),
            "",
        )
        .await
        .unwrap();
        let payee = submit(
            &payees[i].1,
            report(BumpRole::Payee, instant + 30, room),
            "",
        )
        .await
        .unwrap();
        ids.push((payer.report_id, payee.report_id));
    }
    for (i, (payer_id, payee_id)) in ids.iter().enumerate() {
        let BumpOutcome::Confirm { request } = poll(&payers[i].client, payer_id).await.outcome
        else {
            panic!("pair {i}: confirm")
        };
        assert_eq!(request.payee_display_name, format!("Shop {i}"));
        let BumpOutcome::RequestSent { request: sent } = poll(&payees[i].1, payee_id).await.outcome
        else {
            panic!("pair {i}: request sent")
        };
        assert_eq!(sent.request_id, request.request_id);
        // Approved through instance B: posted once.
        let via_b = ApiClient::new(&b.url()).with_key(payers[i].key.clone());
        let paid = via_b
            .approve_claim(&request.request_id, "1234")
            .await
            .unwrap();
        assert_eq!(paid.state, TransferState::Posted);
    }
    // Both instances' deciders ran over the same rows: one claim a pair.
    assert_eq!(claims_between(&a).await, PAIRS as i64);
    for (payee, _) in &payees {
        assert_eq!(payee.balance().await, 800);
    }
    assert_eq!(a.sum_of_balances().await, 0);
    b.server.shutdown().await;
}

/// Two deciders (as on two instances) take the same settled pair in
/// overlapping transactions: the second waits for the first one's row
/// locks (PostgreSQL) or write lock (SQLite), then finds the rows decided
/// and creates nothing. Without the state guard it would pay twice.
async fn overlapping_decisions_create_one_claim(backend: Backend) {
    let Some(s) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let alice = s.user("Alice", "1234").await;
    let bob = s.user("Bob", "5678").await;
    let t = now_ms();
    submit(&bob.client, report(BumpRole::Payee, t, ROOM), "")
        .await
        .unwrap();
    submit(&alice.client, report(BumpRole::Payer, t, ROOM), "")
        .await
        .unwrap();
    // Decide as of 3 s from now, before the server's own decider would.
    let later = t + 3_000;
    let state = s.server.state.clone();
    let begin = state.db.backend.begin_write();
    let mut first = s.pool().acquire().await.unwrap();
    sqlx::Executor::execute(&mut *first, begin).await.unwrap();
    let decided = clink_server::pairing::bump::decide_due(&state, &mut first, later)
        .await
        .unwrap();
    assert_eq!(decided, 2);
    let second = tokio::spawn({
        let state = state.clone();
        async move {
            let mut conn = state.db.pool.acquire().await.unwrap();
            sqlx::Executor::execute(&mut *conn, begin).await.unwrap();
            let decided = clink_server::pairing::bump::decide_due(&state, &mut conn, later)
                .await
                .unwrap();
            sqlx::Executor::execute(&mut *conn, "COMMIT").await.unwrap();
            decided
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    sqlx::Executor::execute(&mut *first, "COMMIT")
        .await
        .unwrap();
    assert_eq!(second.await.unwrap(), 0);
    assert_eq!(claims_between(&s).await, 1);
}

/// Alice (a payer with 5,000) and Bob (a payee) have bumped; their reports
/// are on the server. Carol, another payer in the same room, bumped at the
/// same moment, and her report is yet to come.
struct LateRival {
    s: TestServer,
    alice: User,
    bob: User,
    carol: User,
    instant_ms: i64,
    payer_id: String,
    payee_id: String,
}

impl LateRival {
    async fn start(backend: Backend) -> Option<LateRival> {
        let s = TestServer::start(backend, |_| {}).await?;
        let alice = s.user("Alice", "1234").await;
        let bob = s.user("Bob", "5678").await;
        let carol = s.user("Carol", "4321").await;
        alice.cash_in(5_000).await;
        let t = now_ms();
        let payee = submit(&bob.client, report(BumpRole::Payee, t, ROOM), "")
            .await
            .unwrap();
        let payer = submit(&alice.client, report(BumpRole::Payer, t + 10, ROOM), "")
            .await
            .unwrap();
        Some(LateRival {
            s,
            alice,
            bob,
            carol,
            instant_ms: t,
            payer_id: payer.report_id,
            payee_id: payee.report_id,
        })
    }

    /// Opens a write transaction on a connection of its own and decides
    /// every report as if settled, as another instance's decider would;
    /// committing is the caller's.
    async fn begin_deciding(&self) -> sqlx::pool::PoolConnection<sqlx::Any> {
        let state = self.s.server.state.clone();
        let mut conn = self.s.pool().acquire().await.unwrap();
        sqlx::Executor::execute(&mut *conn, state.db.backend.begin_write())
            .await
            .unwrap();
        let at = self.instant_ms + 3_000;
        let decided = clink_server::pairing::bump::decide_due(&state, &mut conn, at)
            .await
            .unwrap();
        assert_eq!(decided, 2, "Alice and Bob matched");
        conn
    }

    async fn decide(&self) -> PairingRequestView {
        let mut decider = self.begin_deciding().await;
        sqlx::Executor::execute(&mut *decider, "COMMIT")
            .await
            .unwrap();
        let outcome = poll(&self.alice.client, &self.payer_id).await.outcome;
        let BumpOutcome::Confirm { request } = outcome else {
            panic!("matched before the rival arrived, got {outcome:?}")
        };
        request
    }

    fn rival_report(&self) -> BumpReport {
        report(BumpRole::Payer, self.instant_ms - 15, ROOM)
    }

    /// The claim the match created: its state and why it was voided.
    async fn claim(&self) -> (String, Option<String>) {
        let row = sqlx::query("SELECT state, void_reason FROM transfers WHERE kind = 'claim'")
            .fetch_one(self.s.pool())
            .await
            .unwrap();
        (row.get(0), row.get(1))
    }

    /// The match is withdrawn: both phones bump again, nothing moved.
    async fn assert_withdrawn(&self) {
        for (user, id) in [(&self.alice, &self.payer_id), (&self.bob, &self.payee_id)] {
            assert_eq!(poll(&user.client, id).await.outcome, BumpOutcome::BumpAgain);
        }
        assert_eq!(
            self.claim().await,
            ("voided".to_string(), Some("withdrawn".to_string()))
        );
        let balances = (self.alice.balance().await, self.bob.balance().await);
        assert_eq!(balances, (5_000, 0));
        assert_eq!(self.s.sum_of_balances().await, 0);
    }
}

/// Carol's report reaches the database only after the pair it rivals was
/// matched (its commit was slow, on this instance or another): the match
/// was a guess, so it is withdrawn while unpaid and all three phones bump
/// again. Without the withdrawal Alice could pay Bob for Carol's bump.
async fn a_rival_committed_after_the_match_withdraws_it(backend: Backend) {
    let Some(scene) = LateRival::start(backend).await else {
        return;
    };
    let request = scene.decide().await;
    let rival = submit(&scene.carol.client, scene.rival_report(), "")
        .await
        .unwrap();
    assert_eq!(rival.outcome, BumpOutcome::BumpAgain);
    scene.assert_withdrawn().await;
    let alice = &scene.alice;
    let refused = code_of(
        alice
            .client
            .approve_claim(&request.request_id, "1234")
            .await,
    );
    assert_eq!(refused.code, ErrorCode::PairingWithdrawn);
    assert!(
        refused.message.contains("bump again"),
        "{}",
        refused.message
    );
    // Alice's inbox no longer holds it, and says why.
    let inbox = alice.client.inbox(0).await.unwrap();
    assert!(inbox.pending_claims.is_empty());
    let cancelled = inbox
        .notifications
        .iter()
        .find(|n| n.kind == NotificationKind::ClaimCancelled)
        .expect("claim_cancelled");
    assert_eq!(cancelled.transfer.void_reason, Some(VoidReason::Withdrawn));
}

/// The same rival while the decision is still uncommitted: its job waits
/// for the decider's row locks (PostgreSQL) or the write lock (SQLite),
/// then sees the match and withdraws it.
async fn a_rival_overlapping_the_decision_withdraws_it(backend: Backend) {
    let Some(scene) = LateRival::start(backend).await else {
        return;
    };
    let mut decider = scene.begin_deciding().await;
    let carol = scene.carol.client.clone();
    let report = scene.rival_report();
    let rival = tokio::spawn(async move { submit(&carol, report, "").await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!rival.is_finished(), "the rival waits for the decision");
    sqlx::Executor::execute(&mut *decider, "COMMIT")
        .await
        .unwrap();
    let outcome = rival.await.unwrap().unwrap().outcome;
    assert_eq!(outcome, BumpOutcome::BumpAgain);
    scene.assert_withdrawn().await;
}

/// A rival arriving after the payer already paid changes nothing: the
/// payer confirmed the payee's name and the amount. The rival bumps again.
async fn a_late_rival_leaves_a_paid_match_alone(backend: Backend) {
    let Some(scene) = LateRival::start(backend).await else {
        return;
    };
    let request = scene.decide().await;
    let alice = &scene.alice;
    alice
        .client
        .approve_claim(&request.request_id, "1234")
        .await
        .unwrap();
    let rival = submit(&scene.carol.client, scene.rival_report(), "")
        .await
        .unwrap();
    assert_eq!(rival.outcome, BumpOutcome::BumpAgain);
    let payee = poll(&scene.bob.client, &scene.payee_id).await.outcome;
    assert!(
        matches!(payee, BumpOutcome::RequestSent { .. }),
        "{payee:?}"
    );
    assert_eq!(scene.claim().await, ("posted".to_string(), None));
    let balances = (alice.balance().await, scene.bob.balance().await);
    assert_eq!(balances, (4_200, 800));
}

/// Alice approves while the withdrawal is still uncommitted: her approval
/// waits for it (the claim's row lock on PostgreSQL, the write lock on
/// SQLite), then is refused as withdrawn; no money moves.
async fn an_approval_racing_the_withdrawal_is_told_it_was_withdrawn(backend: Backend) {
    let Some(scene) = LateRival::start(backend).await else {
        return;
    };
    let request = scene.decide().await;
    let state = scene.s.server.state.clone();
    let mut withdrawal = scene.s.pool().acquire().await.unwrap();
    sqlx::Executor::execute(&mut *withdrawal, state.db.backend.begin_write())
        .await
        .unwrap();
    sqlx::query(
        "UPDATE transfers SET state = 'voided', void_reason = 'withdrawn', decided_at = $1 WHERE kind = 'claim'",
    )
    .bind(now_ms())
    .execute(&mut *withdrawal)
    .await
    .unwrap();
    let alice = scene.alice.client.clone();
    let id = request.request_id.clone();
    let approval = tokio::spawn(async move { alice.approve_claim(&id, "1234").await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !approval.is_finished(),
        "the approval waits for the withdrawal"
    );
    sqlx::Executor::execute(&mut *withdrawal, "COMMIT")
        .await
        .unwrap();
    let refused = code_of(approval.await.unwrap());
    assert_eq!(
        refused.code,
        ErrorCode::PairingWithdrawn,
        "{}",
        refused.message
    );
    let balances = (scene.alice.balance().await, scene.bob.balance().await);
    assert_eq!(balances, (5_000, 0));
    assert_eq!(scene.s.sum_of_balances().await, 0);
}

/// A phone sending its report of the bump again after the match (a retry)
/// is no rival: the match stands and is paid.
async fn a_phone_reporting_its_bump_again_is_no_rival(backend: Backend) {
    let Some(scene) = LateRival::start(backend).await else {
        return;
    };
    let request = scene.decide().await;
    let again = report(BumpRole::Payee, scene.instant_ms, ROOM);
    let retried = submit(&scene.bob.client, again, "").await.unwrap();
    assert!(
        matches!(retried.outcome, BumpOutcome::Pending { .. }),
        "{retried:?}"
    );
    assert_eq!(scene.claim().await, ("pending".to_string(), None));
    let paid = scene
        .alice
        .client
        .approve_claim(&request.request_id, "1234")
        .await
        .unwrap();
    assert_eq!(paid.state, TransferState::Posted);
    assert_eq!(scene.bob.balance().await, 800);
}

// ------------------------------------------------------------------ sound

async fn sound_token_is_redeemed_once_and_paid(backend: Backend) {
    let Some(s) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let alice = s.user("Alice", "1234").await;
    let bob = s.user("Bob's Bakery", "5678").await;
    let carol = s.user("Carol", "4321").await;
    alice.cash_in(2_000).await;
    let token = issue(&bob.client, 500, "bread").await;
    let waiting = bob.client.sound_token_status(&token).await.unwrap();
    assert!(matches!(waiting, SoundTokenStatus::Waiting { .. }));
    // The payee cannot redeem its own token.
    assert_eq!(
        code_of(redeem(&bob.client, &token).await).code,
        ErrorCode::SelfTransfer
    );
    let request = redeem(&alice.client, &token).await.unwrap();
    assert_eq!(request.payee_display_name, "Bob's Bakery");
    assert_eq!((request.amount, request.memo.as_str()), (500, "bread"));
    // The same payer asking again (a lost answer) gets the same request.
    assert_eq!(redeem(&alice.client, &token).await.unwrap(), request);
    // Anyone else: used.
    assert_eq!(
        code_of(redeem(&carol.client, &token).await).code,
        ErrorCode::TokenUsed
    );
    let SoundTokenStatus::Redeemed { request: seen } =
        bob.client.sound_token_status(&token).await.unwrap()
    else {
        panic!("redeemed")
    };
    assert_eq!(seen, request);
    let paid = alice
        .client
        .approve_claim(&request.request_id, "1234")
        .await
        .unwrap();
    assert_eq!(paid.state, TransferState::Posted);
    assert_eq!(paid.counterpart.phone, None);
    assert_eq!((alice.balance().await, bob.balance().await), (1_500, 500));
    assert_eq!(claims_between(&s).await, 1);
    assert_eq!(s.sum_of_balances().await, 0);
}

async fn expired_forged_and_foreign_tokens_are_refused(backend: Backend) {
    let Some(s) = TestServer::start(backend, |c| c.sound_token_ttl_secs = 1).await else {
        return;
    };
    let alice = s.user("Alice", "1234").await;
    let bob = s.user("Bob", "5678").await;
    let token = issue(&bob.client, 300, "").await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(
        code_of(redeem(&alice.client, &token).await).code,
        ErrorCode::TokenExpired
    );
    assert_eq!(
        bob.client.sound_token_status(&token).await.unwrap(),
        SoundTokenStatus::Expired
    );

    let fresh = s.another_instance(true).await;
    let _ = fresh; // same secret: its tokens are this server's tokens
    let token = issue(&bob.client, 300, "").await;
    let mut flipped = token;
    flipped[15] ^= 0x80;
    assert_eq!(
        code_of(redeem(&alice.client, &flipped).await).code,
        ErrorCode::TokenUnknown
    );
    assert_eq!(
        code_of(redeem(&alice.client, &[0x5a; 16]).await).code,
        ErrorCode::TokenUnknown
    );
    let garbage = serde_json::json!({"token": "not a token"});
    let refused = alice
        .client
        .call::<serde_json::Value>(
            reqwest::Method::POST,
            paths::SOUND_TOKEN_REDEEM,
            Some(&garbage),
            true,
        )
        .await;
    assert_eq!(code_of(refused).code, ErrorCode::TokenUnknown);

    // Another deployment (another secret) on the same database: its token
    // has a row here, yet this server refuses it before looking.
    let foreign = s.another_instance(false).await;
    let bob_there = ApiClient::new(&foreign.url()).with_key(bob.key.clone());
    let foreign_token = issue(&bob_there, 300, "").await;
    assert_eq!(
        code_of(redeem(&alice.client, &foreign_token).await).code,
        ErrorCode::TokenUnknown
    );
    // …and a separate server never heard of this one's tokens.
    let other = TestServer::start(backend, |_| {}).await.unwrap();
    let dave = other.user("Dave", "1111").await;
    assert_eq!(
        code_of(redeem(&dave.client, &token).await).code,
        ErrorCode::TokenUnknown
    );
    assert_eq!(claims_between(&s).await, 0);
    // The genuine one still works.
    redeem(&alice.client, &token).await.unwrap();
    foreign.server.shutdown().await;
    fresh.server.shutdown().await;
}

// ----------------------------------------------------------------- avatars

/// The payer confirms the person, not only the amount: its `Confirm` (bump)
/// and redeem answer (sound) carry the payee's name, emoji and picture; the
/// payee's own views carry the emoji alone, and an avatar changed or cleared
/// later shows as it is now.
async fn the_payer_confirms_the_payee_by_name_and_avatar(backend: Backend) {
    let Some(s) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let alice = s.user("Alice", "1234").await;
    let bob = s.user("Bob's Cafe", "5678").await;
    alice.cash_in(5_000).await;
    let picture = png(4_000);
    let avatar = bob
        .client
        .set_avatar(&SetAvatarRequest {
            emoji: Some("👩\u{200D}🍳".into()),
            picture: Some(avatar::encode_picture(&picture)),
        })
        .await
        .unwrap();

    let t = now_ms();
    let payee = submit(&bob.client, report(BumpRole::Payee, t, ROOM), "coffee")
        .await
        .unwrap();
    let payer = submit(&alice.client, report(BumpRole::Payer, t + 25, ROOM), "")
        .await
        .unwrap();
    let BumpOutcome::Confirm { request } = poll(&alice.client, &payer.report_id).await.outcome
    else {
        panic!("the payer is asked to confirm")
    };
    assert_eq!(request.payee_display_name, "Bob's Cafe");
    assert_eq!(request.payee_avatar, avatar);
    assert_eq!(request.payee_avatar.emoji.as_deref(), Some("👩\u{200D}🍳"));
    assert_eq!(
        request.payee_avatar.picture_bytes().unwrap(),
        Some(picture.clone())
    );
    let BumpOutcome::RequestSent { request: sent } =
        poll(&bob.client, &payee.report_id).await.outcome
    else {
        panic!("the payee hears the request was sent")
    };
    assert_eq!(sent.payee_avatar.emoji, avatar.emoji);
    assert_eq!(sent.payee_avatar.picture, None);
    alice
        .client
        .approve_claim(&request.request_id, "1234")
        .await
        .unwrap();

    // By sound, with the picture cleared since: the emoji alone.
    bob.client
        .set_avatar(&SetAvatarRequest {
            emoji: Some("☕".into()),
            picture: None,
        })
        .await
        .unwrap();
    let token = issue(&bob.client, 500, "bread").await;
    let request = redeem(&alice.client, &token).await.unwrap();
    assert_eq!(request.payee_display_name, "Bob's Cafe");
    assert_eq!(request.payee_avatar.emoji.as_deref(), Some("☕"));
    assert_eq!(request.payee_avatar.picture, None);
    // And with a picture again: the payer's redeem answer carries it, the
    // payee's token status does not.
    bob.client
        .set_avatar(&SetAvatarRequest {
            emoji: None,
            picture: Some(avatar::encode_picture(&picture)),
        })
        .await
        .unwrap();
    let token = issue(&bob.client, 300, "").await;
    let request = redeem(&alice.client, &token).await.unwrap();
    assert_eq!(request.payee_avatar.picture_bytes().unwrap(), Some(picture));
    assert_eq!(request.payee_avatar.emoji, None);
    let SoundTokenStatus::Redeemed { request: seen } =
        bob.client.sound_token_status(&token).await.unwrap()
    else {
        panic!("redeemed")
    };
    assert!(seen.payee_avatar.is_empty(), "{:?}", seen.payee_avatar);

    // Cleared: no avatar in the view at all (as from a server before avatars).
    bob.client.clear_avatar().await.unwrap();
    let token = issue(&bob.client, 200, "").await;
    let value: serde_json::Value = alice
        .client
        .call(
            reqwest::Method::POST,
            paths::SOUND_TOKEN_REDEEM,
            Some(&RedeemSoundTokenRequest {
                token: encode_token(&token),
            }),
            true,
        )
        .await
        .unwrap();
    assert_eq!(value["payee_display_name"], "Bob's Cafe");
    assert!(value.get("payee_avatar").is_none(), "{value}");
}

on_both_backends!(
    bump_match_creates_one_request_that_pays_once,
    three_phones_in_one_window_all_bump_again,
    late_rivals_of_phones_told_to_bump_again_bump_again_too,
    unmatched_report_expires_and_is_forgotten,
    bad_and_late_reports_are_refused_with_a_reason,
    two_instances_sharing_a_database_match_each_pair_once,
    overlapping_decisions_create_one_claim,
    a_rival_committed_after_the_match_withdraws_it,
    a_rival_overlapping_the_decision_withdraws_it,
    a_late_rival_leaves_a_paid_match_alone,
    a_phone_reporting_its_bump_again_is_no_rival,
    an_approval_racing_the_withdrawal_is_told_it_was_withdrawn,
    sound_token_is_redeemed_once_and_paid,
    expired_forged_and_foreign_tokens_are_refused,
    the_payer_confirms_the_payee_by_name_and_avatar,
);
