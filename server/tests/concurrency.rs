//! Many clients paying each other at once must never create, lose or
//! overdraw money.

mod common;

use std::sync::Arc;

use clink_core::wire::{Direction, ErrorCode, SendRequest, TransferState};
use common::{Backend, TestServer};
use sqlx::Row;

const CLIENTS: usize = 32;
const SENDS_PER_CLIENT: usize = 200;
const ACCOUNTS: usize = 50;
const OPENING_BALANCE: i64 = 1_000;

on_both_backends!(
    concurrent_random_sends_keep_the_books_balanced,
    concurrent_duplicates_post_once_and_share_one_answer,
);

/// A small deterministic generator, so a failure can be replayed.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, below: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % below as u64) as usize
    }
}

async fn concurrent_random_sends_keep_the_books_balanced(backend: Backend) {
    let Some(ts) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let mut users = Vec::new();
    for i in 0..ACCOUNTS {
        let user = ts.user(&format!("User {i}"), "1234").await;
        user.cash_in(OPENING_BALANCE).await;
        users.push(user);
    }
    let users = Arc::new(users);
    let mut tasks = Vec::new();
    for client in 0..CLIENTS {
        let users = users.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = Lcg(client as u64 + 1);
            let (mut posted, mut refused) = (0, 0);
            for _ in 0..SENDS_PER_CLIENT {
                let payer = rng.next(ACCOUNTS);
                let payee = (payer + 1 + rng.next(ACCOUNTS - 1)) % ACCOUNTS;
                // Amounts large enough that accounts often run dry.
                let amount = 1 + rng.next(400) as i64;
                match users[payer].send(&users[payee], amount).await {
                    Ok(_) => posted += 1,
                    Err(e) if e.code() == Some(ErrorCode::InsufficientFunds) => refused += 1,
                    Err(e) => panic!("unexpected failure: {e}"),
                }
            }
            (posted, refused)
        }));
    }
    let (mut posted, mut refused) = (0, 0);
    for task in tasks {
        let (p, r) = task.await.unwrap();
        posted += p;
        refused += r;
    }
    eprintln!("{backend:?}: {posted} sends posted, {refused} refused for insufficient funds");
    assert_eq!(posted + refused, CLIENTS * SENDS_PER_CLIENT);
    assert!(
        posted > CLIENTS * SENDS_PER_CLIENT / 2,
        "most sends should go through"
    );

    // All balances, system accounts included, sum to zero.
    assert_eq!(ts.sum_of_balances().await, 0);
    let pool = ts.pool();
    // No user balance is negative.
    let min: i64 = sqlx::query("SELECT MIN(balance) FROM accounts WHERE kind = 'user'")
        .fetch_one(pool)
        .await
        .unwrap()
        .get(0);
    assert!(min >= 0, "a user balance went negative: {min}");
    // Each account's balance is the sum of its entries, and each posted
    // transfer has exactly two entries that cancel out.
    let drift = sqlx::query(
        "SELECT COUNT(*) FROM accounts a WHERE a.balance <> (SELECT CAST(COALESCE(SUM(e.amount), 0) AS BIGINT) FROM entries e WHERE e.account_id = a.id)",
    )
    .fetch_one(pool)
    .await
    .unwrap()
    .get::<i64, _>(0);
    assert_eq!(
        drift, 0,
        "accounts whose balance differs from their entries"
    );
    let unbalanced = sqlx::query(
        "SELECT COUNT(*) FROM transfers t WHERE t.state = 'posted' AND (
            (SELECT COUNT(*) FROM entries e WHERE e.transfer_seq = t.seq) <> 2 OR
            (SELECT CAST(SUM(e.amount) AS BIGINT) FROM entries e WHERE e.transfer_seq = t.seq) <> 0)",
    )
    .fetch_one(pool)
    .await
    .unwrap()
    .get::<i64, _>(0);
    assert_eq!(
        unbalanced, 0,
        "posted transfers without two cancelling entries"
    );

    // And what each user sees: balance = posted incoming - posted outgoing in their history.
    let mut total_seen = 0;
    for user in users.iter() {
        let balance = user.balance().await;
        assert!(balance >= 0);
        let mut from_history = 0;
        let mut before = None;
        loop {
            let page = user.client.history(before, 200).await.unwrap();
            for t in page
                .items
                .iter()
                .filter(|t| t.state == TransferState::Posted)
            {
                from_history += if t.direction == Direction::Incoming {
                    t.amount
                } else {
                    -t.amount
                };
            }
            match page.next_before {
                Some(b) => before = Some(b),
                None => break,
            }
        }
        assert_eq!(
            balance, from_history,
            "{}'s balance differs from their history",
            user.name
        );
        total_seen += balance;
    }
    assert_eq!(
        total_seen,
        OPENING_BALANCE * ACCOUNTS as i64,
        "money was created or destroyed"
    );
}

/// Retries of one payment that race each other (a client that timed out and
/// sent again while the first try was still queued) post it once, and every
/// try hears the same answer, even the tries that, run on their own, would
/// have been refused for funds the first one just spent.
async fn concurrent_duplicates_post_once_and_share_one_answer(backend: Backend) {
    let Some(ts) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    const TRIES: usize = 16;
    let payer = Arc::new(ts.user("Payer", "1234").await);
    let payee = ts.user("Payee", "1234").await;
    // 1,000 spends the whole balance: a duplicate that ran would be refused
    // for funds; 1 leaves plenty: a duplicate that ran would post again.
    for amount in [1_000, 1] {
        payer.cash_in(1_000).await;
        let request = Arc::new(SendRequest {
            idempotency_key: common::key(),
            payee: payee.phone.clone(),
            amount,
            memo: "once".into(),
            pin: payer.pin.clone(),
            challenge_id: None,
            challenge_response: None,
        });
        let tries: Vec<_> = (0..TRIES)
            .map(|_| {
                let (payer, request) = (payer.clone(), request.clone());
                // Each try is signed anew (its own nonce), like a real retry.
                tokio::spawn(async move { payer.client.send(&request).await })
            })
            .collect();
        let mut answers = Vec::new();
        for t in tries {
            answers.push(
                t.await
                    .unwrap()
                    .expect("every try hears the payment's answer"),
            );
        }
        assert!(
            answers.iter().all(|a| a == &answers[0]),
            "the tries heard different answers: {answers:?}"
        );
        let posted: i64 = sqlx::query("SELECT COUNT(*) FROM transfers WHERE id = $1")
            .bind(&answers[0].id)
            .fetch_one(ts.pool())
            .await
            .unwrap()
            .get(0);
        assert_eq!(posted, 1);
    }
    assert_eq!(payer.balance().await, 999);
    assert_eq!(payee.balance().await, 1_001);
    let sends: i64 = sqlx::query("SELECT COUNT(*) FROM transfers WHERE kind = 'send'")
        .fetch_one(ts.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(sends, 2, "each payment posted exactly once");
}
