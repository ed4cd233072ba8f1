//! The wallet against a real server on a loopback port: offline drafting and
//! queueing, reopening, then syncing each item exactly once; batches with
//! refused items; items that need the user again; syncs that cannot connect
//! or get no answer; a slow uplink; payees with pages of news to catch up on.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;

use clink_core::http_client::ApiClient;
use clink_core::secrets::SecretStore;
use clink_core::wallet::{DraftKind, FileSecretStore, OutboxState, Wallet, WalletError};
use clink_core::wire::{ErrorCode, SendRequest};
use support::{PIN, TestServer, WalletHome, fresh_phone, registered};
use tokio::io::AsyncReadExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_queued_while_the_server_is_down_post_once_after_reopen_and_restart() {
    let server = TestServer::start().await;
    let (alice_home, bob_home) = (WalletHome::new(), WalletHome::new());
    let (alice, alice_phone) = registered(&server, &alice_home, "Alice").await;
    let (bob, bob_phone) = registered(&server, &bob_home, "Bob").await;
    server.fund(&alice, &alice_phone, 10_000).await;
    let url = server.url();
    let (addr, db_dir) = server.stop().await;

    // Offline: draft, edit, delete, queue.
    let sends = [800, 1_200, 50];
    let mut ids = Vec::new();
    for amount in sends {
        ids.push(alice.draft_send(&bob_phone, amount, "offline").unwrap().id);
    }
    let request = alice.draft_request(&bob_phone, 999, "typo").unwrap();
    alice
        .edit_draft(request.id, &bob_phone, 300, "tickets")
        .unwrap();
    let scrapped = alice.draft_send(&bob_phone, 5, "never").unwrap();
    alice.delete_draft(scrapped.id).unwrap();
    ids.push(request.id);
    let queued = alice.queue_drafts(ids, PIN).unwrap();
    assert_eq!(queued.len(), 4);
    assert!(alice.drafts().unwrap().is_empty());
    match alice.sync_now().await {
        Err(WalletError::Offline { .. }) => {}
        other => panic!("expected offline, got {other:?}"),
    }
    drop(alice);

    // Reopen from the directory: everything is still there.
    let alice = alice_home.open(&url);
    let outbox = alice.outbox().unwrap();
    assert_eq!(outbox.len(), 4);
    assert!(outbox.iter().all(|i| !i.state.is_final()));
    assert_eq!(
        outbox
            .iter()
            .map(|i| i.idempotency_key.clone())
            .collect::<Vec<_>>(),
        queued
            .iter()
            .map(|i| i.idempotency_key.clone())
            .collect::<Vec<_>>(),
        "idempotency keys are fixed at queue time"
    );

    let server = TestServer::start_at(addr, db_dir).await;
    let report = alice.sync_now().await.unwrap();
    assert_eq!(
        (report.accepted, report.rejected, report.needs_action),
        (4, 0, 0)
    );
    let total: i64 = sends.iter().sum();
    assert_eq!(report.balance, 10_000 - total);
    assert_eq!(alice.balance().unwrap(), 10_000 - total);
    assert!(
        alice
            .outbox()
            .unwrap()
            .iter()
            .all(|i| i.state == OutboxState::Accepted && i.transfer_id.is_some())
    );
    // Syncing again sends nothing twice.
    let again = alice.sync_now().await.unwrap();
    assert_eq!(again.accepted, 0);
    assert_eq!(server.posted_sends_from(&alice_phone).await, (3, total));
    assert_eq!(server.claims_from(&alice_phone).await, 1);
    assert_eq!(server.balance_of(&alice_phone).await, 10_000 - total);
    assert_eq!(server.sum_of_balances().await, 0);

    // Bob sees the money and Alice's request.
    let bob_report = bob.sync_now().await.unwrap();
    assert_eq!(bob_report.balance, total);
    assert_eq!(bob.balance().unwrap(), total);
    let requests = bob.incoming_requests().unwrap();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        (requests[0].amount, requests[0].memo.as_str()),
        (300, "tickets")
    );
    assert_eq!(bob.history(50, None).unwrap().len(), 4);
    // Alice now knows Bob as a payee.
    let payees = alice.known_payees().unwrap();
    assert_eq!(payees.len(), 1);
    assert_eq!(
        (payees[0].phone.as_str(), payees[0].display_name.as_str()),
        (bob_phone_e164(&bob), "Bob")
    );

    // Bob pays the request; Alice sees it on her next sync.
    let paid = bob.approve_request(&requests[0].id, PIN).await.unwrap();
    assert_eq!(paid.amount, 300);
    assert!(bob.incoming_requests().unwrap().is_empty());
    assert_eq!(bob.balance().unwrap(), total - 300);
    alice.sync_now().await.unwrap();
    assert_eq!(alice.balance().unwrap(), 10_000 - total + 300);
}

fn bob_phone_e164(bob: &clink_core::wallet::Wallet) -> &'static str {
    Box::leak(bob.account().unwrap().unwrap().phone.into_boxed_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_items_with_eight_the_server_refuses_post_the_rest_once() {
    let server = TestServer::start().await;
    let (alice_home, bob_home) = (WalletHome::new(), WalletHome::new());
    let (alice, alice_phone) = registered(&server, &alice_home, "Alice").await;
    let (_bob, bob_phone) = registered(&server, &bob_home, "Bob").await;
    server.fund(&alice, &alice_phone, 100_000).await;
    let stranger = fresh_phone(); // never registered

    // Item i: a send of 10 to Bob, except for the refused ones.
    let refused: [(usize, &str, i64, ErrorCode); 8] = [
        (3, stranger.as_str(), 10, ErrorCode::UnknownPayee),
        (250, stranger.as_str(), 10, ErrorCode::UnknownPayee),
        (499, &alice_phone, 10, ErrorCode::SelfTransfer),
        (500, &alice_phone, 10, ErrorCode::SelfTransfer),
        (501, &bob_phone, 2_000_000, ErrorCode::AmountTooLarge),
        (700, &bob_phone, 500_000, ErrorCode::InsufficientFunds),
        (998, stranger.as_str(), 10, ErrorCode::UnknownPayee),
        (999, &bob_phone, 99_000, ErrorCode::InsufficientFunds),
    ];
    let mut ids = Vec::with_capacity(1_000);
    for i in 0..1_000 {
        let draft = match refused.iter().find(|r| r.0 == i) {
            Some((_, to, amount, _)) => alice.draft_send(to, *amount, &format!("item {i}")),
            None => alice.draft_send(&bob_phone, 10, &format!("item {i}")),
        };
        ids.push(draft.unwrap().id);
    }
    let queued = alice.queue_drafts(ids, support::PIN).unwrap();
    let report = alice.sync_now().await.unwrap();
    assert_eq!(
        (report.accepted, report.rejected, report.needs_action),
        (992, 8, 0)
    );

    let outbox = alice.outbox().unwrap();
    assert_eq!(outbox.len(), 1_000);
    for (i, item) in outbox.iter().enumerate() {
        assert_eq!(item.idempotency_key, queued[i].idempotency_key);
        match refused.iter().find(|r| r.0 == i) {
            Some((_, _, _, code)) => {
                assert_eq!(item.state, OutboxState::Rejected, "item {i}");
                let reason = item.reason.as_ref().expect("a reason");
                assert_eq!(reason.code, *code, "item {i}: {}", reason.message);
                assert!(!reason.message.is_empty());
            }
            None => {
                assert_eq!(item.state, OutboxState::Accepted, "item {i}");
                assert_eq!(item.kind, DraftKind::Send);
            }
        }
    }
    assert_eq!(server.posted_sends_from(&alice_phone).await, (992, 9_920));
    assert_eq!(server.balance_of(&bob_phone).await, 9_920);
    assert_eq!(alice.balance().unwrap(), 100_000 - 9_920);
    assert_eq!(server.sum_of_balances().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_pin_item_needs_action_then_posts_once_after_requeue() {
    let server = TestServer::start().await;
    let (alice_home, bob_home) = (WalletHome::new(), WalletHome::new());
    let (alice, alice_phone) = registered(&server, &alice_home, "Alice").await;
    let (_bob, bob_phone) = registered(&server, &bob_home, "Bob").await;
    server.fund(&alice, &alice_phone, 1_000).await;
    let draft = alice.draft_send(&bob_phone, 400, "rent").unwrap();
    let item = alice.queue(draft.id, "0000").unwrap();
    let report = alice.sync_now().await.unwrap();
    assert_eq!(report.needs_action, 1);
    let stuck = &alice.outbox().unwrap()[0];
    assert_eq!(stuck.state, OutboxState::NeedsAction);
    assert_eq!(stuck.reason.as_ref().unwrap().code, ErrorCode::WrongPin);
    assert_eq!(server.posted_sends_from(&alice_phone).await, (0, 0));
    // Only an item needing action can be requeued; then it goes once.
    let fixed = alice.requeue(item.id, PIN).unwrap();
    assert_eq!(
        (fixed.state, fixed.idempotency_key.as_str()),
        (OutboxState::Queued, item.idempotency_key.as_str())
    );
    assert!(matches!(
        alice.requeue(item.id, PIN),
        Err(WalletError::WrongItemState { .. })
    ));
    assert_eq!(alice.sync_now().await.unwrap().accepted, 1);
    alice.sync_now().await.unwrap();
    assert_eq!(server.posted_sends_from(&alice_phone).await, (1, 400));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clock_offset_comes_from_the_server_and_is_kept() {
    let server = TestServer::start().await;
    let home = WalletHome::new();
    let wallet = home.open(&server.url());
    assert_eq!(wallet.clock_offset_ms().unwrap(), None);
    let offset = wallet.estimate_clock_offset().await.unwrap();
    // Same machine, same clock: the offset is within the round trip.
    assert!(
        offset.offset_ms.abs() <= offset.round_trip_ms + 1,
        "{offset:?}"
    );
    drop(wallet);
    assert_eq!(
        home.open(&server.url()).clock_offset_ms().unwrap(),
        Some(offset.offset_ms)
    );
}

/// A phone whose clock moved since its last estimate (here: the kept offset
/// is ten minutes off) signs requests the server refuses as stale; the
/// wallet measures the offset again by itself and the sync goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_clock_offset_is_measured_again_and_the_sync_goes_through() {
    let server = TestServer::start().await;
    let (alice_home, bob_home) = (WalletHome::new(), WalletHome::new());
    let (alice, alice_phone) = registered(&server, &alice_home, "Alice").await;
    let (_bob, bob_phone) = registered(&server, &bob_home, "Bob").await;
    server.fund(&alice, &alice_phone, 1_000).await;
    let draft = alice.draft_send(&bob_phone, 700, "clock").unwrap();
    alice.queue(draft.id, PIN).unwrap();
    drop(alice);

    const TEN_MINUTES_MS: i64 = 10 * 60 * 1000;
    let db = rusqlite::Connection::open(alice_home.data().join(clink_core::wallet::DATABASE_FILE))
        .unwrap();
    db.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('clock_offset_ms', ?1)",
        [TEN_MINUTES_MS.to_string()],
    )
    .unwrap();
    drop(db);

    let alice = alice_home.open(&server.url());
    assert_eq!(alice.clock_offset_ms().unwrap(), Some(TEN_MINUTES_MS));
    let report = alice.sync_now().await.unwrap();
    assert_eq!(report.accepted, 1);
    assert_eq!(report.balance, 300);
    let offset = alice.clock_offset_ms().unwrap().unwrap();
    assert!(
        offset.abs() < 1_000,
        "a loopback server's clock is ours: offset {offset} ms"
    );
}

fn states(wallet: &Wallet) -> BTreeSet<&'static str> {
    wallet
        .outbox()
        .unwrap()
        .iter()
        .map(|i| i.state.as_str())
        .collect()
}

/// A sync that cannot connect sends nothing, so it leaves nothing `sending`:
/// both of its batches (two are in flight at once) go back to `queued`,
/// also on disk; a later sync posts each item once, under its key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_that_cannot_connect_leaves_every_item_queued_and_a_later_one_posts_each_once() {
    let server = TestServer::start().await;
    let (alice_home, bob_home) = (WalletHome::new(), WalletHome::new());
    let (alice, alice_phone) = registered(&server, &alice_home, "Alice").await;
    let (_bob, bob_phone) = registered(&server, &bob_home, "Bob").await;
    server.fund(&alice, &alice_phone, 10_000).await;
    const ITEMS: usize = 1_000;
    let ids = (0..ITEMS)
        .map(|i| {
            alice
                .draft_send(&bob_phone, 3, &format!("n{i}"))
                .unwrap()
                .id
        })
        .collect();
    let queued = alice.queue_drafts(ids, PIN).unwrap();
    let url = server.url();
    let (addr, db_dir) = server.stop().await;

    match alice.sync_now().await {
        Err(WalletError::Offline { .. }) => {}
        other => panic!("expected offline, got {other:?}"),
    }
    assert_eq!(states(&alice), BTreeSet::from(["queued"]));
    drop(alice);
    let alice = alice_home.open(&url);
    assert_eq!(states(&alice), BTreeSet::from(["queued"]));

    let server = TestServer::start_at(addr, db_dir).await;
    let report = alice.sync_now().await.unwrap();
    assert_eq!(
        (report.accepted, report.rejected, report.still_sending),
        (ITEMS as u32, 0, 0)
    );
    let keys: Vec<String> = alice
        .outbox()
        .unwrap()
        .into_iter()
        .map(|i| i.idempotency_key)
        .collect();
    assert_eq!(
        keys,
        queued
            .into_iter()
            .map(|i| i.idempotency_key)
            .collect::<Vec<_>>()
    );
    assert_eq!(alice.sync_now().await.unwrap().accepted, 0);
    assert_eq!(
        server.posted_sends_from(&alice_phone).await,
        (ITEMS as i64, 3 * ITEMS as i64)
    );
    assert_eq!(
        alice.balance().unwrap(),
        server.balance_of(&alice_phone).await
    );
}

/// Something at the server's address takes the request and hangs up
/// without an answer: the request may have run, so the items stay
/// `sending`; the next sync sends them again under the same keys, and each
/// posts once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_whose_request_got_no_answer_keeps_its_items_sending_and_posts_them_once_later() {
    let server = TestServer::start().await;
    let (alice_home, bob_home) = (WalletHome::new(), WalletHome::new());
    let (alice, alice_phone) = registered(&server, &alice_home, "Alice").await;
    let (_bob, bob_phone) = registered(&server, &bob_home, "Bob").await;
    server.fund(&alice, &alice_phone, 1_000).await;
    let ids = (0..20)
        .map(|i| {
            alice
                .draft_send(&bob_phone, 5, &format!("n{i}"))
                .unwrap()
                .id
        })
        .collect();
    alice.queue_drafts(ids, PIN).unwrap();
    let (addr, db_dir) = server.stop().await;

    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let silent = tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let mut request = vec![0u8; 64 * 1024];
            let _ = conn.read(&mut request).await;
        }
    });
    match alice.sync_now().await {
        Err(WalletError::Offline { .. }) => {}
        other => panic!("expected offline, got {other:?}"),
    }
    assert_eq!(states(&alice), BTreeSet::from(["sending"]));
    silent.abort();
    let _ = silent.await;

    let server = TestServer::start_at(addr, db_dir).await;
    assert_eq!(alice.sync_now().await.unwrap().accepted, 20);
    assert_eq!(server.posted_sends_from(&alice_phone).await, (20, 100));
}

/// On a slow uplink a small request overtakes a big batch sent before it,
/// and the server answers it first. The balance a sync leaves is still the
/// server's balance after every batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_slow_uplink_the_balance_after_a_sync_is_the_servers() {
    let server = TestServer::start().await;
    let (alice_home, bob_home) = (WalletHome::new(), WalletHome::new());
    let (alice, alice_phone) = registered(&server, &alice_home, "Alice").await;
    let (_bob, bob_phone) = registered(&server, &bob_home, "Bob").await;
    server.fund(&alice, &alice_phone, 100_000).await;
    drop(alice);
    let slow = support::slow_uplink(server.addr, 250_000).await;
    let alice = alice_home.open(&format!("http://{slow}"));
    // Three full batches: the last one is still uploading when the one
    // before it is answered.
    const ITEMS: i64 = 1_500;
    let ids = (0..ITEMS)
        .map(|i| alice.draft_send(&bob_phone, 1 + i % 9, "slow").unwrap().id)
        .collect();
    alice.queue_drafts(ids, PIN).unwrap();
    let before = server.balance_of(&alice_phone).await;
    let sent: i64 = (0..ITEMS).map(|i| 1 + i % 9).sum();

    let report = alice.sync_now().await.unwrap();
    assert_eq!(report.accepted, ITEMS as u32);
    let on_server = server.balance_of(&alice_phone).await;
    assert_eq!(on_server, before - sent);
    assert_eq!(report.balance, on_server);
    assert_eq!(alice.balance().unwrap(), on_server);
}

/// A payee with more than a page of news (payments and requests: four inbox
/// pages) catches up in one sync: history, requests and balance as on the
/// server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payee_with_pages_of_news_catches_up_in_one_sync() {
    let server = TestServer::start().await;
    let (alice_home, bob_home) = (WalletHome::new(), WalletHome::new());
    let (alice, alice_phone) = registered(&server, &alice_home, "Alice").await;
    let (bob, bob_phone) = registered(&server, &bob_home, "Bob").await;
    server.fund(&alice, &alice_phone, 100_000).await;
    let is_request = |i: i64| i % 7 < 2;
    let ids = (0..700)
        .map(|i| {
            if is_request(i) {
                alice.draft_request(&bob_phone, 1 + i % 4, "ask")
            } else {
                alice.draft_send(&bob_phone, 1 + i % 5, "pay")
            }
            .unwrap()
            .id
        })
        .collect();
    alice.queue_drafts(ids, PIN).unwrap();
    assert_eq!(alice.sync_now().await.unwrap().accepted, 700);
    let requests = (0..700).filter(|&i| is_request(i)).count();
    let paid: i64 = (0..700)
        .filter(|&i| !is_request(i))
        .map(|i| 1 + i % 5)
        .sum();

    let report = bob.sync_now().await.unwrap();
    assert_eq!(report.new_requests as usize, requests);
    let history: BTreeSet<String> = bob
        .history(10_000, None)
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(history.len(), 700);
    assert_eq!(history, server.transfer_ids_of(&bob_phone).await);
    let waiting: BTreeSet<String> = bob
        .incoming_requests()
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(waiting, server.pending_claims_of(&bob_phone).await);
    assert_eq!(waiting.len(), requests);
    assert_eq!(bob.balance().unwrap(), paid);
    assert_eq!(report.balance, server.balance_of(&bob_phone).await);
}

/// Transfers that reach no inbox (here, sends made with the account's key
/// outside this wallet, as a payment by telephone is) come in with the
/// server's history, page after page, in one sync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_that_reach_no_inbox_come_in_with_the_history_in_one_sync() {
    let server = TestServer::start().await;
    let (alice_home, bob_home) = (WalletHome::new(), WalletHome::new());
    let (alice, alice_phone) = registered(&server, &alice_home, "Alice").await;
    let (_bob, bob_phone) = registered(&server, &bob_home, "Bob").await;
    server.fund(&alice, &alice_phone, 10_000).await;
    let secrets: Arc<dyn SecretStore> = Arc::new(
        FileSecretStore::new(alice_home.dir.path().join("secrets").to_str().unwrap()).unwrap(),
    );
    let key = clink_core::secrets::device_key(secrets.as_ref(), &ring::rand::SystemRandom::new())
        .unwrap();
    let outside = ApiClient::new(&server.url()).with_key(Arc::new(key));
    let mut sent = BTreeSet::new();
    for i in 0..250 {
        let view = outside
            .send(&SendRequest {
                idempotency_key: format!("outside-{i}"),
                payee: bob_phone.clone(),
                amount: 2,
                memo: "by phone".into(),
                pin: PIN.into(),
                challenge_id: None,
                challenge_response: None,
            })
            .await
            .unwrap();
        sent.insert(view.id);
    }

    alice.sync_now().await.unwrap();
    let history: BTreeSet<String> = alice
        .history(10_000, None)
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert!(sent.is_subset(&history));
    assert_eq!(history, server.transfer_ids_of(&alice_phone).await);
    assert_eq!(
        alice.balance().unwrap(),
        server.balance_of(&alice_phone).await
    );
}

/// News about old transfers reaches a phone only through its inbox: here
/// the payer declines 450 old requests, while the newest page of history
/// (200 payments) has not changed. One sync brings every decision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_of_decisions_on_old_requests_arrive_in_one_sync() {
    let server = TestServer::start().await;
    let (alice_home, bob_home) = (WalletHome::new(), WalletHome::new());
    let (alice, alice_phone) = registered(&server, &alice_home, "Alice").await;
    let (bob, _) = registered(&server, &bob_home, "Bob").await;
    const ASKED: usize = 450;
    let ids = (0..ASKED)
        .map(|i| {
            bob.draft_request(&alice_phone, 10, &format!("ask {i}"))
                .unwrap()
                .id
        })
        .collect();
    bob.queue_drafts(ids, PIN).unwrap();
    assert_eq!(bob.sync_now().await.unwrap().accepted, ASKED as u32);
    // Then 200 payments to Bob: the newest page of his history.
    server.fund(&alice, &alice_phone, 10_000).await;
    let bob_phone = bob.account().unwrap().unwrap().phone;
    let ids = (0..200)
        .map(|i| {
            alice
                .draft_send(&bob_phone, 1, &format!("pay {i}"))
                .unwrap()
                .id
        })
        .collect();
    alice.queue_drafts(ids, PIN).unwrap();
    assert_eq!(alice.sync_now().await.unwrap().accepted, 200);
    bob.sync_now().await.unwrap();

    let requests = alice.incoming_requests().unwrap();
    assert_eq!(requests.len(), ASKED);
    for request in &requests {
        alice.decline_request(&request.id).await.unwrap();
    }
    bob.sync_now().await.unwrap();
    let history = bob.history(10_000, None).unwrap();
    let still_pending: Vec<_> = history
        .iter()
        .filter(|t| t.state == clink_core::wire::TransferState::Pending)
        .collect();
    assert!(
        still_pending.is_empty(),
        "{} of {ASKED} declines not seen",
        still_pending.len()
    );
    assert_eq!(history.len(), ASKED + 200);
}
