//! Paying shops through the `Wallet` API against a real server on loopback:
//! a till presents a request as an EMVCo QR and the phone takes it from the
//! scanned payload; a linked web shop's request waits in the inbox; the
//! phone shows the shop's lines, approves or declines, and unlinks or
//! reports the shop.

mod support;

use std::sync::Arc;

use clink_core::emvco::{ClinkMerchantQr, QrCurrency};
use clink_core::http_client::ApiClient;
use clink_core::wallet::{ShopPaymentPhase, WalletError};
use clink_core::wire::signing::DeviceKey;
use clink_core::wire::*;
use ring::rand::SystemRandom;
use serde_json::{Value, json};
use support::*;

async fn operator(server: &TestServer, method: &str, path: &str, body: Value) -> Value {
    let response = reqwest::Client::new()
        .request(method.parse().unwrap(), format!("{}{path}", server.url()))
        .bearer_auth(OPERATOR_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    response.json().await.unwrap()
}

/// A merchant with one terminal, whose client signs as the till does.
async fn till(server: &TestServer) -> (String, ApiClient) {
    let merchant = operator(
        server,
        "POST",
        paths::OPERATOR_MERCHANTS,
        json!({"display_name": "Corner Cafe", "category_code": "5814"}),
    )
    .await;
    let merchant_id = merchant["merchant_id"].as_str().unwrap().to_string();
    let (key, _) = DeviceKey::generate(&SystemRandom::new()).unwrap();
    operator(
        server,
        "POST",
        &paths::operator_terminals(&merchant_id),
        json!({ "public_key": key.public_key_b64() }),
    )
    .await;
    let client = ApiClient::new(&server.url()).with_key(Arc::new(key));
    (merchant_id, client)
}

fn order(order_id: &str, customer: Value) -> CreateShopPaymentRequest {
    serde_json::from_value(json!({
        "merchant_order_id": order_id,
        "amount": 1_050,
        "items": [
            {"code": "LAT", "name": "Latte", "quantity": 2, "unit_price": 450},
            {"code": "CKE", "name": "Cookie", "quantity": 1, "unit_price": 150},
        ],
        "customer": customer,
    }))
    .unwrap()
}

async fn create(till: &ApiClient, request: &CreateShopPaymentRequest) -> ShopPaymentView {
    till.call(
        reqwest::Method::POST,
        paths::MERCHANT_PAYMENTS,
        Some(request),
        true,
    )
    .await
    .expect("the till's request is accepted")
}

async fn state_of(till: &ApiClient, order_id: &str) -> ShopPaymentState {
    let view: ShopPaymentView = till
        .call(
            reqwest::Method::GET,
            &paths::merchant_payment(order_id),
            None::<&()>,
            true,
        )
        .await
        .unwrap();
    view.state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_pays_a_till_from_its_qr_after_seeing_every_line() {
    let server = TestServer::start().await;
    let home = WalletHome::new();
    let (wallet, e164) = registered(&server, &home, "Alice").await;
    server.fund(&wallet, &e164, 5_000).await;
    let (merchant_id, till) = till(&server).await;

    let request = create(&till, &order("qr-1", json!({"by": "presented"}))).await;
    assert_eq!(request.state, ShopPaymentState::Created);
    let qr = ClinkMerchantQr {
        merchant_id: merchant_id.clone(),
        request_id: request.id.clone(),
        amount: request.amount,
        currency: QrCurrency {
            numeric: 392,
            exponent: 0,
        },
        merchant_name: "Corner Cafe".into(),
        merchant_city: "Tokyo".into(),
        country: "JP".into(),
        merchant_category_code: "5814".into(),
        order_id: "qr-1".into(),
    }
    .to_payload()
    .unwrap();

    // A garbled scan never reaches the server.
    let mut garbled = qr.clone();
    garbled.replace_range(20..21, "9");
    assert!(matches!(
        wallet.take_shop_payment_from_qr(&garbled).await,
        Err(WalletError::InvalidInput { .. })
    ));

    let payment = wallet.take_shop_payment_from_qr(&qr).await.unwrap();
    let ShopPaymentPhase::Confirm { charge } = payment.phase() else {
        panic!("expected Confirm, got {:?}", payment.phase());
    };
    assert_eq!(charge.merchant.display_name, "Corner Cafe");
    assert_eq!(charge.amount, 1_050);
    let lines = payment.lines();
    assert_eq!(
        lines
            .iter()
            .map(|l| (l.name.as_str(), l.quantity, l.unit_price))
            .collect::<Vec<_>>(),
        [("Latte", 2, 450), ("Cookie", 1, 150)]
    );
    assert_eq!(
        state_of(&till, "qr-1").await,
        ShopPaymentState::PendingApproval
    );

    // A wrong PIN leaves the flow in Confirm.
    assert!(matches!(
        payment.approve("0000").await,
        Err(WalletError::Refused {
            code: ErrorCode::WrongPin,
            ..
        })
    ));
    assert!(matches!(payment.phase(), ShopPaymentPhase::Confirm { .. }));
    assert_eq!(payment.approve(PIN).await.unwrap(), ShopPaymentPhase::Paid);
    assert_eq!(state_of(&till, "qr-1").await, ShopPaymentState::Completed);
    assert_eq!(server.balance_of(&e164).await, 5_000 - 1_050);
    assert_eq!(server.sum_of_balances().await, 0);
    assert!(matches!(
        payment.approve(PIN).await,
        Err(WalletError::InvalidInput { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linked_web_shops_request_waits_in_the_inbox_and_can_be_declined_or_reported() {
    let server = TestServer::start().await;
    let home = WalletHome::new();
    let (wallet, e164) = registered(&server, &home, "Alice").await;
    server.fund(&wallet, &e164, 5_000).await;
    let (merchant_id, shop) = till(&server).await;

    let linked = wallet.link_merchant(&merchant_id).await.unwrap();
    assert_eq!(linked.display_name, "Corner Cafe");
    assert_eq!(wallet.linked_merchants().await.unwrap(), vec![linked]);
    create(
        &shop,
        &order("web-1", json!({"by": "phone", "phone": e164})),
    )
    .await;
    create(
        &shop,
        &order("web-2", json!({"by": "phone", "phone": e164})),
    )
    .await;

    wallet.sync_now().await.unwrap();
    let claims = wallet.incoming_requests().unwrap();
    let claim = claims
        .iter()
        .find(|c| c.memo == "Order web-1")
        .expect("the shop's request is in the inbox");
    let payment = wallet.shop_payment(&claim.id).await.unwrap();
    assert_eq!(payment.lines().len(), 2);
    assert_eq!(payment.decline().await.unwrap(), ShopPaymentPhase::Declined);
    assert_eq!(state_of(&shop, "web-1").await, ShopPaymentState::Declined);

    // Reporting spam unlinks the shop and declines what it has waiting.
    assert!(
        wallet
            .report_merchant_spam(&merchant_id)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(state_of(&shop, "web-2").await, ShopPaymentState::Declined);
    let refused: Result<ShopPaymentView, _> = shop
        .call(
            reqwest::Method::POST,
            paths::MERCHANT_PAYMENTS,
            Some(&order("web-3", json!({"by": "phone", "phone": e164}))),
            true,
        )
        .await;
    assert_eq!(
        refused.unwrap_err().code(),
        Some(ErrorCode::MerchantNotLinked)
    );
    assert!(matches!(
        wallet.link_merchant("not-a-merchant").await,
        Err(WalletError::InvalidInput { .. })
    ));
    assert_eq!(server.balance_of(&e164).await, 5_000);
}
