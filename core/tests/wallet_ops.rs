//! The wallet's online operations against a real server on a loopback port:
//! withdrawals that stay exactly once when their answer is lost, the
//! security policy with the second factor answered by the install's key,
//! wrong PINs on each operation, cancelling one's own request, and the
//! account's avatar.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use clink_core::secrets::{OCRA_KEY, SecretStore};
use clink_core::wallet::{
    Avatar, FIELD_AVATAR_EMOJI, FIELD_AVATAR_PICTURE, FileSecretStore, OutboxState, Wallet,
    WalletError, WalletEvent, WalletListener,
};
use clink_core::wire::{ErrorCode, TransferKind, TransferState, VoidReason};
use sqlx::Row;
use support::{PIN, TestServer, WalletHome, registered};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WRONG_PIN: &str = "0000";

/// Puts `amount` on `wallet`'s account: the one place these tests fund.
async fn fund(server: &TestServer, wallet: &Wallet, amount: i64) {
    let phone = wallet.account().unwrap().expect("registered").phone;
    server.fund(wallet, &phone, amount).await;
}

/// A TCP proxy in front of the server that can lose an answer: after
/// [`lose_answer_to`](Self::lose_answer_to), the answer to the next request
/// whose text contains the needle is not passed on and the connection is
/// cut, so the server has done the request and the phone never hears of it.
struct LossyProxy {
    addr: SocketAddr,
    needle: Arc<Mutex<Option<String>>>,
}

impl LossyProxy {
    async fn start(upstream: SocketAddr) -> LossyProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let needle = Arc::new(Mutex::new(None::<String>));
        let shared_needle = needle.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let needle = shared_needle.clone();
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut server_read, mut server_write) = server.into_split();
                    // The text of the request this connection carries now
                    // (HTTP/1.1: one at a time).
                    let request = Arc::new(Mutex::new(Vec::<u8>::new()));
                    let uploading = request.clone();
                    let upload = tokio::spawn(async move {
                        let mut buf = vec![0u8; 64 * 1024];
                        while let Ok(n) = client_read.read(&mut buf).await {
                            if n == 0 {
                                break;
                            }
                            {
                                let mut text = uploading.lock().unwrap();
                                let starts_request = [&b"GET "[..], b"POST ", b"PUT "]
                                    .iter()
                                    .any(|m| buf[..n].starts_with(m));
                                if starts_request {
                                    text.clear();
                                }
                                text.extend_from_slice(&buf[..n]);
                            }
                            if server_write.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    });
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match server_read.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        let lose = {
                            let mut needle = needle.lock().unwrap();
                            let text = request.lock().unwrap();
                            let hit = needle
                                .as_ref()
                                .is_some_and(|n| text.windows(n.len()).any(|w| w == n.as_bytes()));
                            if hit {
                                *needle = None;
                            }
                            hit
                        };
                        if lose || client_write.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    upload.abort();
                });
            }
        });
        LossyProxy { addr, needle }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn lose_answer_to(&self, needle: &str) {
        *self.needle.lock().unwrap() = Some(needle.to_string());
    }
}

/// Withdrawals on the server's ledger from `e164`: how many, and their sum.
async fn withdrawals_of(server: &TestServer, e164: &str) -> (i64, i64) {
    let row = sqlx::query(
        "SELECT COUNT(*), CAST(COALESCE(SUM(t.amount), 0) AS BIGINT) FROM transfers t JOIN users u ON u.account_id = t.debit_account
         WHERE u.phone = $1 AND t.kind = 'withdrawal' AND t.state = 'posted'",
    )
    .bind(e164)
    .fetch_one(server.pool())
    .await
    .unwrap();
    (row.get(0), row.get(1))
}

/// Second-factor challenges the server has seen answered (used up).
async fn used_challenges(server: &TestServer) -> i64 {
    sqlx::query("SELECT COUNT(*) FROM challenges WHERE used_at IS NOT NULL")
        .fetch_one(server.pool())
        .await
        .unwrap()
        .get(0)
}

fn secrets_of(home: &WalletHome) -> FileSecretStore {
    FileSecretStore::new(home.dir.path().join("secrets").to_str().unwrap()).unwrap()
}

fn ocra_key_of(home: &WalletHome) -> Vec<u8> {
    secrets_of(home)
        .get(OCRA_KEY)
        .unwrap()
        .expect("an OCRA key in the secret store")
        .expose()
        .to_vec()
}

#[derive(Default)]
struct Events(Mutex<Vec<WalletEvent>>);

impl WalletListener for Events {
    fn on_event(&self, event: WalletEvent) {
        self.0.lock().unwrap().push(event);
    }
}

fn refused_with(result: Result<impl std::fmt::Debug, WalletError>, code: ErrorCode) -> WalletError {
    match result {
        Err(e @ WalletError::Refused { code: c, .. }) if c == code => e,
        other => panic!("expected a refusal with {code:?}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawal_whose_answer_is_lost_is_done_once_when_retried() {
    let server = TestServer::start().await;
    let home = WalletHome::new();
    let (alice, alice_phone) = registered(&server, &home, "Alice").await;
    fund(&server, &alice, 5_000).await;
    drop(alice);
    let proxy = LossyProxy::start(server.addr).await;
    let alice = home.open(&proxy.url());

    // The server does it; the answer never arrives.
    proxy.lose_answer_to("POST /v1/transfers/withdraw");
    match alice.withdraw(1_200, PIN).await {
        Err(WalletError::Offline { .. }) => {}
        other => panic!("expected the answer to be lost, got {other:?}"),
    }
    assert_eq!(withdrawals_of(&server, &alice_phone).await, (1, 1_200));
    let pending = alice
        .pending_withdrawal()
        .unwrap()
        .expect("kept for the retry");
    assert_eq!(pending.amount, 1_200);
    // The pending one survives the app being closed.
    drop(alice);
    let alice = home.open(&proxy.url());
    assert_eq!(alice.pending_withdrawal().unwrap(), Some(pending.clone()));

    // Another amount waits until that one is answered.
    assert_eq!(
        alice.withdraw(500, PIN).await.unwrap_err(),
        WalletError::WithdrawalPending { amount: 1_200 }
    );

    // The retry goes under the same key: the server answers with the first
    // result and moves nothing again.
    let done = alice.withdraw(1_200, PIN).await.unwrap();
    assert_eq!(
        (done.kind, done.state, done.amount),
        (TransferKind::Withdrawal, TransferState::Posted, 1_200)
    );
    assert_eq!(withdrawals_of(&server, &alice_phone).await, (1, 1_200));
    assert_eq!(server.balance_of(&alice_phone).await, 3_800);
    assert_eq!(alice.balance().unwrap(), 3_800);
    assert_eq!(alice.pending_withdrawal().unwrap(), None);
    assert!(
        alice
            .history(10, None)
            .unwrap()
            .iter()
            .any(|t| t.id == done.id)
    );

    // A new confirmation is a new withdrawal.
    alice.withdraw(1_200, PIN).await.unwrap();
    assert_eq!(withdrawals_of(&server, &alice_phone).await, (2, 2_400));
    assert_eq!(alice.balance().unwrap(), 2_600);

    // A refusal is final and leaves nothing pending.
    refused_with(
        alice.withdraw(9_000, PIN).await,
        ErrorCode::InsufficientFunds,
    );
    assert_eq!(alice.pending_withdrawal().unwrap(), None);
    assert!(matches!(
        alice.withdraw(0, PIN).await,
        Err(WalletError::InvalidInput { .. })
    ));
    assert_eq!(server.balance_of(&alice_phone).await, 2_600);
    assert_eq!(server.sum_of_balances().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn above_the_policy_threshold_sends_and_approvals_answer_the_second_factor_by_themselves() {
    let server = TestServer::start().await;
    let (alice_home, bob_home) = (WalletHome::new(), WalletHome::new());
    let (alice, alice_phone) = registered(&server, &alice_home, "Alice").await;
    let (bob, bob_phone) = registered(&server, &bob_home, "Bob").await;
    fund(&server, &alice, 10_000).await;
    let events = Arc::new(Events::default());
    alice.set_listener(Some(events.clone()));

    let account = alice.account().unwrap().unwrap();
    assert_eq!(
        (
            account.second_factor_above,
            account.second_factor_registered
        ),
        (None, false)
    );
    let account = alice.register_second_factor(PIN).await.unwrap();
    assert!(account.second_factor_registered);
    let key = ocra_key_of(&alice_home);
    let account = alice.set_security_policy(Some(1_000), PIN).await.unwrap();
    assert_eq!(account.second_factor_above, Some(1_000));
    drop(alice);
    let alice = alice_home.open(&server.url());
    alice.set_listener(Some(events.clone()));
    assert_eq!(
        alice.account().unwrap().unwrap().second_factor_above,
        Some(1_000),
        "the policy is kept with the account"
    );

    // Above the threshold: the server asks, the wallet answers, once.
    let paid = alice.send(&bob_phone, 2_500, "rent", PIN).await.unwrap();
    assert_eq!((paid.state, paid.amount), (TransferState::Posted, 2_500));
    assert_eq!(used_challenges(&server).await, 1);
    // At or below it, the PIN alone.
    alice.send(&bob_phone, 1_000, "", PIN).await.unwrap();
    assert_eq!(used_challenges(&server).await, 1);
    assert_eq!(server.posted_sends_from(&alice_phone).await, (2, 3_500));
    assert_eq!(alice.balance().unwrap(), 6_500);
    let outbox = alice.outbox().unwrap();
    assert_eq!(outbox.len(), 2);
    assert_eq!(outbox[0].state, OutboxState::Accepted);
    assert_eq!(outbox[0].transfer_id.as_deref(), Some(paid.id.as_str()));
    let seen = events.0.lock().unwrap().clone();
    for state in [OutboxState::Sending, OutboxState::Accepted] {
        assert!(
            seen.contains(&WalletEvent::OutboxItemChanged {
                item_id: outbox[0].id,
                state
            }),
            "{seen:?}"
        );
    }
    assert!(seen.contains(&WalletEvent::BalanceChanged { balance: 7_500 }));
    assert_eq!(alice.known_payees().unwrap().len(), 1);

    // Approving a request above the threshold too.
    let ask = bob.draft_request(&alice_phone, 1_500, "tickets").unwrap();
    bob.queue(ask.id, PIN).unwrap();
    bob.sync_now().await.unwrap();
    alice.sync_now().await.unwrap();
    let [request] = alice.incoming_requests().unwrap().try_into().unwrap();
    let approved = alice.approve_request(&request.id, PIN).await.unwrap();
    assert_eq!(approved.state, TransferState::Posted);
    assert_eq!(used_challenges(&server).await, 2);
    assert_eq!(server.balance_of(&alice_phone).await, 5_000);

    // Registering again keeps the key (and it still answers); another
    // install makes its own.
    alice.register_second_factor(PIN).await.unwrap();
    assert_eq!(ocra_key_of(&alice_home), key);
    alice.send(&bob_phone, 1_001, "", PIN).await.unwrap();
    assert_eq!(used_challenges(&server).await, 3);
    bob.register_second_factor(PIN).await.unwrap();
    assert_ne!(ocra_key_of(&bob_home), key);

    // A key the server does not know answers wrongly, and that counts.
    secrets_of(&alice_home).put(OCRA_KEY, &[7u8; 32]).unwrap();
    let wrong = refused_with(
        alice.send(&bob_phone, 2_000, "", PIN).await,
        ErrorCode::WrongChallengeResponse,
    );
    assert!(matches!(
        wrong,
        WalletError::Refused {
            attempts_remaining: Some(4),
            ..
        }
    ));
    assert_eq!(
        alice.outbox().unwrap().last().unwrap().state,
        OutboxState::NeedsAction
    );
    assert_eq!(server.balance_of(&alice_phone).await, 3_999);
    assert_eq!(server.sum_of_balances().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_registered_key_payments_above_the_threshold_fail_clearly_until_one_is() {
    let server = TestServer::start().await;
    let (alice_home, bob_home) = (WalletHome::new(), WalletHome::new());
    let (alice, alice_phone) = registered(&server, &alice_home, "Alice").await;
    let (bob, bob_phone) = registered(&server, &bob_home, "Bob").await;
    fund(&server, &alice, 10_000).await;
    alice.set_security_policy(Some(1_000), PIN).await.unwrap();

    assert_eq!(
        alice
            .send(&bob_phone, 2_000, "bike", PIN)
            .await
            .unwrap_err(),
        WalletError::SecondFactorNotRegistered
    );
    let [item] = alice.outbox().unwrap().try_into().unwrap();
    assert_eq!(item.state, OutboxState::NeedsAction);
    assert_eq!(
        item.reason.as_ref().unwrap().code,
        ErrorCode::SecondFactorRequired
    );
    let ask = bob.draft_request(&alice_phone, 3_000, "").unwrap();
    bob.queue(ask.id, PIN).unwrap();
    bob.sync_now().await.unwrap();
    alice.sync_now().await.unwrap();
    let [request] = alice.incoming_requests().unwrap().try_into().unwrap();
    assert_eq!(
        alice.approve_request(&request.id, PIN).await.unwrap_err(),
        WalletError::SecondFactorNotRegistered
    );
    assert_eq!(server.posted_sends_from(&alice_phone).await, (0, 0));
    assert_eq!(server.balance_of(&alice_phone).await, 10_000);

    // An item that needs action is not sent before it is confirmed again.
    assert!(matches!(
        alice.send_now(item.id).await,
        Err(WalletError::WrongItemState { .. })
    ));
    alice.register_second_factor(PIN).await.unwrap();
    alice.requeue(item.id, PIN).unwrap();
    let paid = alice.send_now(item.id).await.unwrap();
    assert_eq!(paid.amount, 2_000);
    alice.approve_request(&request.id, PIN).await.unwrap();
    assert_eq!(server.posted_sends_from(&alice_phone).await, (1, 2_000));
    assert_eq!(server.balance_of(&alice_phone).await, 5_000);
    // Nothing goes twice.
    assert!(matches!(
        alice.send_now(item.id).await,
        Err(WalletError::WrongItemState { .. })
    ));
    assert_eq!(alice.sync_now().await.unwrap().accepted, 0);
    assert_eq!(server.posted_sends_from(&alice_phone).await, (1, 2_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_items_above_the_threshold_end_needs_action_and_send_now_finishes_them() {
    let server = TestServer::start().await;
    let (alice_home, bob_home) = (WalletHome::new(), WalletHome::new());
    let (alice, alice_phone) = registered(&server, &alice_home, "Alice").await;
    let (_bob, bob_phone) = registered(&server, &bob_home, "Bob").await;
    fund(&server, &alice, 10_000).await;
    alice.register_second_factor(PIN).await.unwrap();
    alice.set_security_policy(Some(1_000), PIN).await.unwrap();

    let big = alice.draft_send(&bob_phone, 1_500, "big").unwrap();
    let small = alice.draft_send(&bob_phone, 200, "small").unwrap();
    let items = alice.queue_drafts(vec![big.id, small.id], PIN).unwrap();
    let report = alice.sync_now().await.unwrap();
    assert_eq!((report.accepted, report.needs_action), (1, 1));
    let stuck = alice.outbox().unwrap()[0].clone();
    assert_eq!(stuck.state, OutboxState::NeedsAction);
    assert_eq!(stuck.reason.unwrap().code, ErrorCode::SecondFactorRequired);

    alice.requeue(items[0].id, PIN).unwrap();
    alice.send_now(items[0].id).await.unwrap();
    alice.sync_now().await.unwrap();
    assert!(
        alice
            .outbox()
            .unwrap()
            .iter()
            .all(|i| i.state == OutboxState::Accepted)
    );
    assert_eq!(server.posted_sends_from(&alice_phone).await, (2, 1_700));
    assert_eq!(alice.balance().unwrap(), 8_300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_online_send_whose_answer_is_lost_is_finished_by_the_next_sync_once() {
    let server = TestServer::start().await;
    let (alice_home, bob_home) = (WalletHome::new(), WalletHome::new());
    let (alice, alice_phone) = registered(&server, &alice_home, "Alice").await;
    let (_bob, bob_phone) = registered(&server, &bob_home, "Bob").await;
    fund(&server, &alice, 10_000).await;
    alice.register_second_factor(PIN).await.unwrap();
    alice.set_security_policy(Some(1_000), PIN).await.unwrap();
    drop(alice);
    let proxy = LossyProxy::start(server.addr).await;
    let alice = alice_home.open(&proxy.url());

    // The challenge is answered, the send is done, its answer is lost.
    proxy.lose_answer_to("challenge_response");
    match alice.send(&bob_phone, 4_000, "car", PIN).await {
        Err(WalletError::Offline { .. }) => {}
        other => panic!("expected the answer to be lost, got {other:?}"),
    }
    let [item] = alice.outbox().unwrap().try_into().unwrap();
    assert_eq!(item.state, OutboxState::Sending);
    assert_eq!(server.posted_sends_from(&alice_phone).await, (1, 4_000));
    assert_eq!(used_challenges(&server).await, 1);

    // The sync sends the item again under its key, without a second factor:
    // the server answers with the first result.
    let report = alice.sync_now().await.unwrap();
    assert_eq!(report.accepted, 1);
    assert_eq!(alice.outbox().unwrap()[0].state, OutboxState::Accepted);
    assert_eq!(server.posted_sends_from(&alice_phone).await, (1, 4_000));
    assert_eq!(alice.balance().unwrap(), 6_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_pin_counts_on_every_operation_and_changes_nothing() {
    let server = TestServer::start().await;
    let (alice_home, bob_home) = (WalletHome::new(), WalletHome::new());
    let (alice, alice_phone) = registered(&server, &alice_home, "Alice").await;
    let (_bob, bob_phone) = registered(&server, &bob_home, "Bob").await;
    fund(&server, &alice, 3_000).await;

    let attempts = |e: WalletError| match e {
        WalletError::Refused {
            code: ErrorCode::WrongPin,
            attempts_remaining,
            ..
        } => attempts_remaining,
        other => panic!("expected a wrong PIN, got {other:?}"),
    };
    assert_eq!(
        attempts(alice.withdraw(100, WRONG_PIN).await.unwrap_err()),
        Some(4)
    );
    assert_eq!(alice.pending_withdrawal().unwrap(), None);
    assert_eq!(
        attempts(
            alice
                .set_security_policy(Some(10), WRONG_PIN)
                .await
                .unwrap_err()
        ),
        Some(3)
    );
    assert_eq!(
        attempts(alice.register_second_factor(WRONG_PIN).await.unwrap_err()),
        Some(2)
    );
    assert_eq!(
        attempts(
            alice
                .send(&bob_phone, 100, "", WRONG_PIN)
                .await
                .unwrap_err()
        ),
        Some(1)
    );
    assert_eq!(alice.outbox().unwrap()[0].state, OutboxState::NeedsAction);
    refused_with(
        alice.withdraw(100, WRONG_PIN).await,
        ErrorCode::AccountLocked,
    );
    refused_with(alice.withdraw(100, PIN).await, ErrorCode::AccountLocked);

    assert_eq!(server.balance_of(&alice_phone).await, 3_000);
    assert_eq!(withdrawals_of(&server, &alice_phone).await, (0, 0));
    assert_eq!(server.posted_sends_from(&alice_phone).await, (0, 0));
    let account = alice.account().unwrap().unwrap();
    assert_eq!(
        (
            account.second_factor_above,
            account.second_factor_registered
        ),
        (None, false)
    );
    let keys: i64 = sqlx::query("SELECT COUNT(*) FROM ocra_keys")
        .fetch_one(server.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(keys, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_request_cannot_be_paid_and_leaves_the_payers_inbox_at_sync() {
    let server = TestServer::start().await;
    let (alice_home, bob_home) = (WalletHome::new(), WalletHome::new());
    let (alice, alice_phone) = registered(&server, &alice_home, "Alice").await;
    let (bob, bob_phone) = registered(&server, &bob_home, "Bob").await;
    fund(&server, &bob, 2_000).await;

    // A request sent at once rather than with a sync.
    let ask = alice.draft_request(&bob_phone, 700, "tickets").unwrap();
    let item = alice.queue(ask.id, PIN).unwrap();
    let asked = alice.send_now(item.id).await.unwrap();
    assert_eq!(
        (asked.kind, asked.state),
        (TransferKind::Claim, TransferState::Pending)
    );
    let request_id = asked.id;
    let [sent] = alice.outbox().unwrap().try_into().unwrap();
    assert_eq!(sent.state, OutboxState::Accepted);
    assert_eq!(sent.transfer_id.as_deref(), Some(request_id.as_str()));
    bob.sync_now().await.unwrap();
    assert_eq!(bob.incoming_requests().unwrap().len(), 1);

    // Only the requester may cancel.
    refused_with(bob.cancel_request(&request_id).await, ErrorCode::NotFound);
    assert!(matches!(
        alice.cancel_request("../transfers/withdraw").await,
        Err(WalletError::InvalidInput { .. })
    ));

    let cancelled = alice.cancel_request(&request_id).await.unwrap();
    assert_eq!(
        (cancelled.state, cancelled.void_reason),
        (TransferState::Voided, Some(VoidReason::Cancelled))
    );
    let mine = alice.history(10, None).unwrap();
    assert!(mine.contains(&cancelled), "{mine:?}");
    // Saying it again is no error: the first answer may have been lost.
    assert_eq!(
        alice.cancel_request(&request_id).await.unwrap().state,
        TransferState::Voided
    );

    // The payer still sees it until the sync, but cannot pay it.
    refused_with(
        bob.approve_request(&request_id, PIN).await,
        ErrorCode::ClaimNotPending,
    );
    bob.sync_now().await.unwrap();
    assert!(bob.incoming_requests().unwrap().is_empty());
    let theirs = bob.history(10, None).unwrap();
    let seen = theirs
        .iter()
        .find(|t| t.id == request_id)
        .expect("in history");
    assert_eq!(seen.void_reason, Some(VoidReason::Cancelled));
    assert_eq!(server.balance_of(&bob_phone).await, 2_000);
    assert_eq!(server.balance_of(&alice_phone).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_confirmed_more_than_a_day_ago_is_not_sent_online_until_confirmed_again() {
    let server = TestServer::start().await;
    let (alice_home, bob_home) = (WalletHome::new(), WalletHome::new());
    let (alice, alice_phone) = registered(&server, &alice_home, "Alice").await;
    let (_bob, bob_phone) = registered(&server, &bob_home, "Bob").await;
    fund(&server, &alice, 1_000).await;
    drop(alice);

    // Queued with a clock 25 h behind, sent with the right one.
    let set_offset = |ms: i64| {
        let db =
            rusqlite::Connection::open(alice_home.data().join(clink_core::wallet::DATABASE_FILE))
                .unwrap();
        db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('clock_offset_ms', ?1)",
            [ms.to_string()],
        )
        .unwrap();
    };
    set_offset(-25 * 3600 * 1000);
    let alice = alice_home.open(&server.url());
    let draft = alice.draft_send(&bob_phone, 600, "old").unwrap();
    let item = alice.queue(draft.id, PIN).unwrap();
    drop(alice);
    set_offset(0);
    let alice = alice_home.open(&server.url());

    assert!(matches!(
        alice.send_now(item.id).await,
        Err(WalletError::WrongItemState { .. })
    ));
    let stale = &alice.outbox().unwrap()[0];
    assert_eq!(stale.state, OutboxState::NeedsAction);
    assert_eq!(
        stale.reason.as_ref().unwrap().code,
        ErrorCode::StaleTimestamp
    );
    assert_eq!(server.posted_sends_from(&alice_phone).await, (0, 0));

    alice.requeue(item.id, PIN).unwrap();
    alice.send_now(item.id).await.unwrap();
    assert_eq!(server.posted_sends_from(&alice_phone).await, (1, 600));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_avatar_is_set_replaced_and_cleared_and_a_bad_one_refused_before_sending() {
    let server = TestServer::start().await;
    let home = WalletHome::new();
    let unregistered = home.open(&server.url());
    assert!(matches!(
        unregistered.set_avatar(Some("🐱"), None).await,
        Err(WalletError::NotRegistered)
    ));
    drop(unregistered);
    let (bob, _) = registered(&server, &home, "Bob").await;
    assert_eq!(bob.avatar().await.unwrap(), Avatar::default());

    let jpeg = [b"\xFF\xD8\xFF\xE0".as_slice(), &[1; 300]].concat();
    let set = bob
        .set_avatar(Some("🧑\u{200D}🍳"), Some(&jpeg))
        .await
        .unwrap();
    assert_eq!(
        set,
        Avatar {
            emoji: Some("🧑\u{200D}🍳".into()),
            picture: Some(jpeg),
        }
    );
    assert_eq!(bob.avatar().await.unwrap(), set);
    let set = bob.set_avatar(Some("🐱"), None).await.unwrap();
    assert_eq!((set.emoji.as_deref(), set.picture), (Some("🐱"), None));

    // Refused by the wallet, before anything is sent; the avatar stays.
    for (emoji, picture, field) in [
        (Some("🐱🐶"), None, FIELD_AVATAR_EMOJI),
        (Some("A"), None, FIELD_AVATAR_EMOJI),
        (None, Some(b"GIF89a".to_vec()), FIELD_AVATAR_PICTURE),
        (
            None,
            Some([b"\x89PNG\r\n\x1a\n".as_slice(), &[0; 40_000]].concat()),
            FIELD_AVATAR_PICTURE,
        ),
        (None, None, "avatar"),
    ] {
        match bob.set_avatar(emoji, picture.as_deref()).await {
            Err(WalletError::InvalidInput { field: f, .. }) if f == field => {}
            other => panic!("{emoji:?}: expected {field} refused, got {other:?}"),
        }
    }
    let rows: i64 = sqlx::query("SELECT COUNT(*) FROM avatars")
        .fetch_one(server.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 1);
    assert_eq!(bob.avatar().await.unwrap().emoji.as_deref(), Some("🐱"));

    bob.clear_avatar().await.unwrap();
    bob.clear_avatar().await.unwrap();
    assert!(bob.avatar().await.unwrap().is_empty());
}
