//! Pay by bump and by sound end to end through the `Wallet` API, against a
//! real server on loopback, from samples: generated accelerometer traces
//! (fixed seeds) with one knock, the same room recording (plus each phone's
//! own noise) on every microphone, and the token's PCM through a noisy
//! channel in odd-sized chunks.

mod bump_support;
mod support;

use bump_support::*;
use clink_core::bump::AccelSample;
use clink_core::wallet::{
    Avatar, BumpPayment, BumpPaymentState, SoundPaymentState, SoundRequestState, Wallet,
    WalletError,
};
use clink_core::wire::ErrorCode;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sqlx::Row;
use support::*;

const RATE_HZ: u32 = 48_000;
/// Where the knock falls in each generated trace.
const KNOCK_AT_MS: f64 = 3_000.0;
const TRACE_MS: f64 = 4_200.0;
/// Pushed 20 ms at a time, as an audio callback would.
const STEP_MS: f64 = 20.0;

/// One phone's sensors around a bump, on a time axis starting at 0.
struct PhoneSignals {
    accel: Vec<AccelSample>,
    audio: Vec<f32>,
}

/// `phones` phones knocked together at `KNOCK_AT_MS` in one room: each has
/// its own hand motion, mass, accelerometer rate and microphone noise.
fn bump_scene(seed: u64, phones: usize) -> Vec<PhoneSignals> {
    bump_scene_in(seed, &vec!["cafe_babble"; phones])
}

/// Like [`bump_scene`], phone `i` hearing the room `rooms[i]` (one of the
/// recorded scenes).
fn bump_scene_in(seed: u64, rooms: &[&str]) -> Vec<PhoneSignals> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let dir = testdata_dir().join("ambient");
    let len = (TRACE_MS / 1000.0 * f64::from(RATE_HZ)) as usize;
    let offset = rng.gen_range(0..6 * RATE_HZ as usize - len);
    let collision = Collision::random(&mut rng, KNOCK_AT_MS);
    rooms
        .iter()
        .enumerate()
        .map(|(i, room)| {
            let mic_name = format!("{room}_mic{}.wav", ["A", "B"][i % 2]);
            let recording = read_wav(&dir.join(mic_name));
            let mut motion = held(&mut rng);
            let mass_g = rng.gen_range(150.0..220.0);
            collision.add_to(&mut rng, &mut motion, mass_g);
            let rate = [100.0, 200.0, 400.0][i % 3];
            let accel = Sensor::new(rate).sample(&motion, 0.0, TRACE_MS, 0.0, &mut rng);
            let mic = &recording[offset..offset + len];
            let level = (mic.iter().map(|s| s * s).sum::<f32>() / len as f32).sqrt();
            let audio = mic
                .iter()
                .map(|&s| s + 0.05 * level * gaussian(&mut rng) as f32)
                .collect();
            PhoneSignals { accel, audio }
        })
        .collect()
}

fn now_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        * 1000.0
}

/// Feeds each flow its phone's signals as if the knock happened 100 ms ago
/// on the phone's clock, 20 ms of audio and accelerometer at a time.
fn feed(flows: &[&BumpPayment], phones: &[PhoneSignals]) {
    let base_ms = now_ms() - KNOCK_AT_MS - 100.0;
    let samples_per_step = (STEP_MS / 1000.0 * f64::from(RATE_HZ)) as usize;
    for (flow, phone) in flows.iter().zip(phones) {
        let mut next_accel = 0;
        for (step, chunk) in phone.audio.chunks(samples_per_step).enumerate() {
            let start_ms = step as f64 * STEP_MS;
            flow.push_audio(chunk, base_ms + start_ms).unwrap();
            let until = phone.accel[next_accel..]
                .iter()
                .take_while(|s| s.timestamp_ms < start_ms + STEP_MS)
                .count();
            let batch: Vec<AccelSample> = phone.accel[next_accel..next_accel + until]
                .iter()
                .map(|s| AccelSample {
                    timestamp_ms: base_ms + s.timestamp_ms,
                    ..*s
                })
                .collect();
            next_accel += until;
            flow.push_accel(&batch).unwrap();
        }
        assert_eq!(
            flow.state(),
            BumpPaymentState::Reporting,
            "the knock and the sound around it were found"
        );
    }
}

async fn wallet(server: &TestServer, home: &WalletHome, name: &str) -> (Wallet, String) {
    let (wallet, phone) = registered(server, home, name).await;
    wallet.estimate_clock_offset().await.unwrap();
    (wallet, phone)
}

async fn posted_claims(server: &TestServer) -> i64 {
    sqlx::query("SELECT COUNT(*) FROM transfers WHERE kind = 'claim' AND state = 'posted'")
        .fetch_one(server.pool())
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bump_from_samples_asks_the_payer_and_pays_once() {
    let server = TestServer::start().await;
    let (alice_home, bob_home) = (WalletHome::new(), WalletHome::new());
    let (alice, alice_phone) = wallet(&server, &alice_home, "Alice").await;
    let (bob, bob_phone) = wallet(&server, &bob_home, "Bob's Cafe").await;
    server.fund(&alice, &alice_phone, 5_000).await;
    // The payer confirms the person: Bob's emoji and picture come with his name.
    let picture = [b"\x89PNG\r\n\x1a\n".as_slice(), &[7; 500]].concat();
    bob.set_avatar(Some("☕"), Some(&picture)).await.unwrap();

    let phones = bump_scene(11, 2);
    let payer = alice.pay_by_bump(RATE_HZ).unwrap();
    let payee = bob.request_by_bump(800, "coffee", RATE_HZ).unwrap();
    assert_eq!(payer.state(), BumpPaymentState::Listening);
    feed(&[&payer, &payee], &phones);
    let (asked, sent) = tokio::join!(payer.wait_for_outcome(), payee.wait_for_outcome());
    let BumpPaymentState::Confirm {
        payee_display_name,
        payee_avatar,
        amount,
        memo,
        ..
    } = asked
    else {
        panic!("the payer is asked to confirm, got {asked:?}")
    };
    assert_eq!(
        (payee_display_name.as_str(), amount, memo.as_str()),
        ("Bob's Cafe", 800, "coffee")
    );
    assert_eq!(
        payee_avatar,
        Avatar {
            emoji: Some("☕".into()),
            picture: Some(picture),
        }
    );
    assert!(
        matches!(sent, BumpPaymentState::RequestSent { amount: 800, .. }),
        "{sent:?}"
    );
    // Nothing to approve on the payee's side; a wrong PIN keeps the payer asked.
    assert!(payee.approve(PIN).await.is_err());
    let wrong = payer.approve("0000").await.unwrap_err();
    assert!(
        matches!(
            wrong,
            WalletError::Refused {
                code: ErrorCode::WrongPin,
                ..
            }
        ),
        "{wrong:?}"
    );
    assert!(matches!(payer.state(), BumpPaymentState::Confirm { .. }));
    assert_eq!(payer.approve(PIN).await.unwrap(), BumpPaymentState::Paid);
    assert_eq!(
        payee.wait_for_payment(5_000).await.unwrap(),
        BumpPaymentState::Paid
    );
    // Approving again changes nothing.
    assert!(payer.approve(PIN).await.is_err());
    assert_eq!(posted_claims(&server).await, 1);
    // Each side's history names the other by display name, never by number.
    let paid = &alice.history(10, None).unwrap()[0];
    assert_eq!(paid.counterpart.display_name, "Bob's Cafe");
    assert_eq!(paid.counterpart.phone, None);
    let received = &bob.history(10, None).unwrap()[0];
    assert_eq!(received.counterpart.display_name, "Alice");
    assert_eq!(received.counterpart.phone, None);
    assert_eq!(server.balance_of(&bob_phone).await, 800);
    assert_eq!(alice.balance().unwrap(), 4_200);
    assert_eq!(server.sum_of_balances().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_phones_bumping_at_once_are_all_told_to_bump_again() {
    let server = TestServer::start().await;
    let homes = [WalletHome::new(), WalletHome::new(), WalletHome::new()];
    let (bob, _) = wallet(&server, &homes[0], "Bob").await;
    let (alice, _) = wallet(&server, &homes[1], "Alice").await;
    let (carol, _) = wallet(&server, &homes[2], "Carol").await;
    let phones = bump_scene(12, 3);
    let flows = [
        bob.request_by_bump(800, "", RATE_HZ).unwrap(),
        alice.pay_by_bump(RATE_HZ).unwrap(),
        carol.pay_by_bump(RATE_HZ).unwrap(),
    ];
    feed(&[&flows[0], &flows[1], &flows[2]], &phones);
    let (a, b, c) = tokio::join!(
        flows[0].wait_for_outcome(),
        flows[1].wait_for_outcome(),
        flows[2].wait_for_outcome()
    );
    for outcome in [a, b, c] {
        assert!(
            matches!(outcome, BumpPaymentState::BumpAgain { .. }),
            "{outcome:?}"
        );
    }
    assert_eq!(server.claims_from(&homes_phone(&bob)).await, 0);
}

/// Decides every bump report on `server` now, as if they had all settled
/// (as a decider on another instance might, before a slow rival commits).
async fn decide_early(server: &TestServer) {
    let state = server.server.as_ref().unwrap().state.clone();
    let mut conn = server.pool().acquire().await.unwrap();
    sqlx::Executor::execute(&mut *conn, state.db.backend.begin_write())
        .await
        .unwrap();
    let later = clink_server::now_ms() + 3_000;
    clink_server::pairing::bump::decide_due(&state, &mut conn, later)
        .await
        .unwrap();
    sqlx::Executor::execute(&mut *conn, "COMMIT").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_phones_late_report_withdraws_the_match_and_nobody_pays() {
    let server = TestServer::start().await;
    let homes = [WalletHome::new(), WalletHome::new(), WalletHome::new()];
    let (bob, bob_phone) = wallet(&server, &homes[0], "Bob").await;
    let (alice, alice_phone) = wallet(&server, &homes[1], "Alice").await;
    let (carol, _) = wallet(&server, &homes[2], "Carol").await;
    server.fund(&alice, &alice_phone, 5_000).await;
    let phones = bump_scene(14, 3);
    let flows = [
        bob.request_by_bump(800, "", RATE_HZ).unwrap(),
        alice.pay_by_bump(RATE_HZ).unwrap(),
        carol.pay_by_bump(RATE_HZ).unwrap(),
    ];
    feed(&[&flows[0], &flows[1], &flows[2]], &phones);
    let [payee, payer, rival] = &flows;
    // Bob's and Alice's reports reach the server and are matched before
    // Carol's report (of the same knock) arrives.
    let decide_once_both_reported = async {
        while [payee, payer]
            .iter()
            .any(|f| f.state() != BumpPaymentState::WaitingForPartner)
        {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        decide_early(&server).await;
    };
    let (sent, asked, ()) = tokio::join!(
        payee.wait_for_outcome(),
        payer.wait_for_outcome(),
        decide_once_both_reported
    );
    assert!(
        matches!(sent, BumpPaymentState::RequestSent { .. }),
        "{sent:?}"
    );
    assert!(
        matches!(asked, BumpPaymentState::Confirm { .. }),
        "{asked:?}"
    );

    let late = rival.wait_for_outcome().await;
    assert!(
        matches!(late, BumpPaymentState::BumpAgain { .. }),
        "{late:?}"
    );
    // Alice's approval finds the match withdrawn; so does Bob's wait.
    let approved = payer.approve(PIN).await.unwrap();
    let BumpPaymentState::BumpAgain { reason } = approved else {
        panic!("the payer bumps again, got {approved:?}")
    };
    assert!(reason.contains("withdrawn"), "{reason}");
    assert!(matches!(
        payee.wait_for_payment(5_000).await.unwrap(),
        BumpPaymentState::BumpAgain { .. }
    ));
    assert_eq!(posted_claims(&server).await, 0);
    assert_eq!(server.balance_of(&bob_phone).await, 0);
    assert_eq!(alice.balance().unwrap(), 5_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_knock_at_the_same_moment_in_another_room_is_no_match() {
    let server = TestServer::start().await;
    let (alice_home, bob_home) = (WalletHome::new(), WalletHome::new());
    let (alice, _alice_phone) = wallet(&server, &alice_home, "Alice").await;
    let (bob, _) = wallet(&server, &bob_home, "Bob").await;
    // Same instant, same knock shape, but the payer is in the street.
    let phones = bump_scene_in(13, &["cafe_babble", "street"]);
    let payee = bob.request_by_bump(800, "", RATE_HZ).unwrap();
    let payer = alice.pay_by_bump(RATE_HZ).unwrap();
    feed(&[&payee, &payer], &phones);
    let (a, b) = tokio::join!(payee.wait_for_outcome(), payer.wait_for_outcome());
    assert_eq!(
        (a, b),
        (BumpPaymentState::Expired, BumpPaymentState::Expired)
    );
    assert_eq!(server.claims_from(&homes_phone(&bob)).await, 0);
}

fn homes_phone(wallet: &Wallet) -> String {
    wallet.account().unwrap().unwrap().phone
}

/// The token's PCM as a payer's microphone hears it: silence before, the
/// token at half scale, white noise at 10 dB SNR over the token.
fn heard(pcm: &[f32], seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let level = (pcm.iter().map(|s| s * s).sum::<f32>() / pcm.len() as f32).sqrt() * 0.5;
    let noise = level / 10f32.powf(10.0 / 20.0);
    let lead = vec![0.0f32; RATE_HZ as usize / 3];
    let tail = vec![0.0f32; RATE_HZ as usize / 4];
    lead.iter()
        .chain(pcm.iter().map(|s| s * 0.5).collect::<Vec<_>>().iter())
        .chain(tail.iter())
        .map(|&s| s + noise * gaussian(&mut rng) as f32)
        .collect()
}

/// Pushes audio in odd-sized chunks until the flow stops listening.
fn listen(flow: &clink_core::wallet::SoundPayment, audio: &[f32]) -> SoundPaymentState {
    let mut at = 0;
    for size in [997usize, 1, 4093, 333].iter().cycle() {
        if at >= audio.len() || flow.state() != SoundPaymentState::Listening {
            break;
        }
        let end = (at + size).min(audio.len());
        flow.push_audio(&audio[at..end]);
        at = end;
    }
    flow.state()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_played_and_heard_asks_the_payer_and_pays_once_and_never_twice() {
    let server = TestServer::start().await;
    let homes = [WalletHome::new(), WalletHome::new(), WalletHome::new()];
    let (bob, bob_phone) = wallet(&server, &homes[0], "Bob's Bakery").await;
    let (alice, alice_phone) = wallet(&server, &homes[1], "Alice").await;
    let (carol, _) = wallet(&server, &homes[2], "Carol").await;
    server.fund(&alice, &alice_phone, 2_000).await;
    bob.set_avatar(Some("🍞"), None).await.unwrap();

    let request = bob
        .request_by_sound(500, "bread", RATE_HZ, None)
        .await
        .unwrap();
    assert_eq!(
        request.profile(),
        clink_core::acoustic::Profile::NearUltrasound
    );
    assert!(matches!(request.state(), SoundRequestState::Playing { .. }));
    let audio = heard(request.pcm(), 1);
    let payer = alice.listen_for_token(RATE_HZ).unwrap();
    assert_eq!(listen(&payer, &audio), SoundPaymentState::Redeeming);
    let SoundPaymentState::Confirm {
        payee_display_name,
        payee_avatar,
        amount,
        memo,
        ..
    } = payer.wait_for_confirm().await
    else {
        panic!("confirm: {:?}", payer.state())
    };
    assert_eq!(
        (payee_display_name.as_str(), amount, memo.as_str()),
        ("Bob's Bakery", 500, "bread")
    );
    assert_eq!(
        (payee_avatar.emoji.as_deref(), payee_avatar.picture),
        (Some("🍞"), None)
    );
    assert_eq!(payer.approve(PIN).await.unwrap(), SoundPaymentState::Paid);
    assert_eq!(
        request.wait_for_payment(5_000).await.unwrap(),
        SoundRequestState::Paid
    );

    // Carol hears the same token played again: already used.
    let replay = carol.listen_for_token(RATE_HZ).unwrap();
    assert_eq!(
        listen(&replay, &heard(request.pcm(), 2)),
        SoundPaymentState::Redeeming
    );
    let refused = replay.wait_for_confirm().await;
    assert!(
        matches!(
            &refused,
            SoundPaymentState::Failed {
                error: WalletError::Refused {
                    code: ErrorCode::TokenUsed,
                    ..
                }
            }
        ),
        "{refused:?}"
    );
    assert_eq!(posted_claims(&server).await, 1);
    assert_eq!(server.balance_of(&bob_phone).await, 500);
    assert_eq!(server.sum_of_balances().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_ends_the_payers_flow_as_expired() {
    let server = TestServer::start_with(|c| c.sound_token_ttl_secs = 1).await;
    let (bob_home, alice_home) = (WalletHome::new(), WalletHome::new());
    let (bob, _) = wallet(&server, &bob_home, "Bob").await;
    let (alice, _alice_phone) = wallet(&server, &alice_home, "Alice").await;
    // The audible profile, as a phone without near-ultrasound would play it.
    let request = bob
        .request_by_sound(
            300,
            "",
            RATE_HZ,
            Some(clink_core::acoustic::Profile::Audible),
        )
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let payer = alice.listen_for_token(RATE_HZ).unwrap();
    assert_eq!(
        listen(&payer, &heard(request.pcm(), 3)),
        SoundPaymentState::Redeeming
    );
    assert_eq!(payer.wait_for_confirm().await, SoundPaymentState::Expired);
    assert_eq!(
        request.wait_for_payment(1_000).await.unwrap(),
        SoundRequestState::Expired
    );
    assert!(payer.approve(PIN).await.is_err());
}
