//! Paying at shops: merchants, their terminals and web-shop servers, and the
//! one payment-request object every shop flow uses.
//!
//! A shop states its order (`merchant_order_id`, the total and the item
//! lines that add up to it); the customer's phone shows exactly that and
//! approves with the PIN. The rules for orders live here so that a shop's
//! server, a terminal, the phone and the Clink server all check the same
//! thing. A merchant never sees the customer's phone number or account.

use serde::{Deserialize, Serialize};

use super::text::{self, TextError};
use super::{Amount, ErrorCode, Millis};

/// Longest `merchant_order_id`.
pub const MAX_ORDER_ID_CHARS: usize = 64;
/// Most item lines an order may have (a receipt a phone can still show).
pub const MAX_ITEM_LINES: usize = 100;
/// Longest item code (an SKU, EAN-13, slot number...).
pub const MAX_ITEM_CODE_CHARS: usize = 32;
/// Longest item name.
pub const MAX_ITEM_NAME_CHARS: usize = 64;
/// Most units of one line.
pub const MAX_QUANTITY: i64 = 10_000;

/// Where a payment request is. `created` waits for a customer (a QR on a
/// till); `pending_approval` waits for the customer's PIN; the last four
/// are final.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShopPaymentState {
    Created,
    PendingApproval,
    Completed,
    Declined,
    Cancelled,
    Expired,
}

impl ShopPaymentState {
    pub fn is_final(self) -> bool {
        !matches!(
            self,
            ShopPaymentState::Created | ShopPaymentState::PendingApproval
        )
    }
}

/// One line of an order: `quantity` units of `code` at `unit_price` each.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemLine {
    pub code: String,
    pub name: String,
    pub quantity: i64,
    /// Minor units, per unit. Zero is allowed (a free item on the receipt).
    pub unit_price: Amount,
}

/// How the shop reaches its customer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case", deny_unknown_fields)]
pub enum ShopCustomer {
    /// A web shop charges a phone number whose owner linked the merchant in
    /// the app; unlinked numbers are refused (no spam requests).
    Phone { phone: String },
    /// A terminal presents the request (a QR on its screen): the first
    /// phone that takes it (`POST /v1/charges`) is the customer.
    Presented,
    /// The terminal scanned the one-time code the customer's phone shows
    /// (`POST /v1/customer-codes`): the customer's own signed statement of
    /// the order. The server pays only if the two statements match.
    Code { code: String },
}

/// The customer's own statement of an order, made on the phone and
/// approved there with the PIN before the terminal scans its code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerOrder {
    pub merchant_id: String,
    pub merchant_order_id: String,
    pub amount: Amount,
    pub items: Vec<ItemLine>,
}

/// `POST /v1/customer-codes`: the customer states the order and approves it
/// with the PIN (and the second factor where the policy asks); the answer
/// is a one-time code for the terminal to scan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssueCustomerCodeRequest {
    pub order: CustomerOrder,
    pub pin: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge_response: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerCodeView {
    /// As scanned: `CL` and 16 digits.
    pub code: String,
    /// As shown to people: `CL 4821 9377 0512 6640`.
    pub grouped: String,
    pub expires_at_ms: Millis,
}

/// Where the shop's statement of an order differs from the customer's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the customer's statement of the order differs in {field}: the customer says {customer}, the shop {shop}"
)]
pub struct OrderMismatch {
    /// `merchant`, `merchant_order_id`, `amount`, `items` (their number) or
    /// `item line N: code|name|quantity|unit_price`.
    pub field: String,
    pub customer: String,
    pub shop: String,
}

/// Compares the customer's statement with the shop's, field by field, and
/// names the first that differs.
pub fn compare_orders(
    customer: &CustomerOrder,
    merchant_id: &str,
    shop: &CreateShopPaymentRequest,
) -> Result<(), OrderMismatch> {
    let differ = |field: String, customer: &dyn std::fmt::Display, shop: &dyn std::fmt::Display| {
        Err(OrderMismatch {
            field,
            customer: customer.to_string(),
            shop: shop.to_string(),
        })
    };
    if customer.merchant_id != merchant_id {
        return differ("merchant".into(), &customer.merchant_id, &merchant_id);
    }
    if customer.merchant_order_id != shop.merchant_order_id {
        return differ(
            "merchant_order_id".into(),
            &customer.merchant_order_id,
            &shop.merchant_order_id,
        );
    }
    if customer.amount != shop.amount {
        return differ("amount".into(), &customer.amount, &shop.amount);
    }
    if customer.items.len() != shop.items.len() {
        return differ("items".into(), &customer.items.len(), &shop.items.len());
    }
    for (index, (c, s)) in customer.items.iter().zip(&shop.items).enumerate() {
        let line = index + 1;
        if c.code != s.code {
            return differ(format!("item line {line}: code"), &c.code, &s.code);
        }
        if c.name != s.name {
            return differ(format!("item line {line}: name"), &c.name, &s.name);
        }
        if c.quantity != s.quantity {
            return differ(
                format!("item line {line}: quantity"),
                &c.quantity,
                &s.quantity,
            );
        }
        if c.unit_price != s.unit_price {
            return differ(
                format!("item line {line}: unit_price"),
                &c.unit_price,
                &s.unit_price,
            );
        }
    }
    Ok(())
}

/// `POST /v1/merchant/payments`: a terminal or a web shop asks a customer
/// to pay. The `merchant_order_id` is the request's idempotency key: the
/// same order sent again gets the same payment request, a different body
/// under the same id is refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateShopPaymentRequest {
    pub merchant_order_id: String,
    pub amount: Amount,
    pub items: Vec<ItemLine>,
    pub customer: ShopCustomer,
    /// How long the customer has to approve; the server's default for the
    /// kind of merchant caller when absent (a till: 3 min).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_secs: Option<u32>,
}

/// A payment request as its merchant sees it: never the customer's number
/// or account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShopPaymentView {
    pub id: String,
    pub merchant_order_id: String,
    pub state: ShopPaymentState,
    pub amount: Amount,
    pub items: Vec<ItemLine>,
    pub created_at_ms: Millis,
    pub expires_at_ms: Millis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at_ms: Option<Millis>,
    /// Paid back so far (refunds of a completed payment).
    #[serde(default)]
    pub refunded: Amount,
    /// Grows by one at every change (state or refund), so a late
    /// notification of an older one can be recognised and ignored.
    pub version: i64,
}

/// `POST /v1/charges`: the customer's phone takes a payment request a
/// terminal presented (from its QR).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TakeChargeRequest {
    pub payment_id: String,
}

/// `POST /v1/merchant/payments/{order_id}/refunds`: pays back part or all
/// of a completed payment. `refund_id` (unique per payment, the same
/// characters as an order id) is the idempotency key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefundRequest {
    pub refund_id: String,
    pub amount: Amount,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundView {
    pub refund_id: String,
    /// The refund's own transfer, which the customer sees.
    pub transfer_id: String,
    pub amount: Amount,
    pub created_at_ms: Millis,
    /// The payment after the refund.
    pub payment: ShopPaymentView,
}

/// Who is asking the customer to pay, as the phone shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MerchantSummary {
    pub merchant_id: String,
    pub display_name: String,
    /// ISO 18245 merchant category code (four digits).
    pub category_code: String,
}

/// `GET /v1/charges/{claim_id}`: a shop's payment request as the customer's
/// phone shows it before the PIN: the merchant, every line and the total.
/// Approve or decline it as any claim (`/v1/claims/{claim_id}/…`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeView {
    pub claim_id: String,
    pub merchant: MerchantSummary,
    pub merchant_order_id: String,
    pub state: ShopPaymentState,
    pub amount: Amount,
    pub items: Vec<ItemLine>,
    pub expires_at_ms: Millis,
}

/// The merchants a customer allows to charge them by phone number.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkedMerchants {
    pub merchants: Vec<MerchantSummary>,
}

/// `POST /v1/operator/merchants`: the operator opens a merchant account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateMerchantRequest {
    pub display_name: String,
    pub category_code: String,
}

/// A merchant as the operator sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MerchantView {
    pub merchant_id: String,
    pub display_name: String,
    pub category_code: String,
    pub balance: Amount,
    pub created_at_ms: Millis,
}

/// `POST /v1/operator/merchants/{id}/api-keys`: a web shop's key. The
/// secret is shown this once; several keys may be live while a shop rotates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyCreated {
    pub key_id: String,
    pub secret: String,
}

/// `POST /v1/operator/merchants/{id}/terminals`: a POS or vending machine's
/// Ed25519 device key (base64url, as a phone's); it then signs requests
/// exactly as a phone does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterTerminalRequest {
    pub public_key: String,
}

/// What a merchant's webhook receives: one change of one payment request.
/// `id` is stable (the same event delivered again has the same id); the
/// payment request's `version` orders events, so a late one can be ignored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookEvent {
    pub id: String,
    /// `shop_payment.<state>`, e.g. `shop_payment.completed`.
    #[serde(rename = "type")]
    pub kind: String,
    pub created_at_ms: Millis,
    pub data: ShopPaymentView,
}

/// An event not yet delivered, as `GET /v1/merchant/events/undelivered`
/// lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventDelivery {
    pub event: WebhookEvent,
    pub attempts: i64,
    pub next_attempt_at_ms: Millis,
    /// Retries stopped (24 h passed); the event is kept for reading.
    pub gave_up: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UndeliveredEvents {
    pub events: Vec<EventDelivery>,
}

/// `PUT /v1/operator/merchants/{id}/webhook`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetWebhookRequest {
    pub url: String,
}

/// `POST /v1/operator/merchants/{id}/webhook/rotate`: a new signing secret;
/// the old one keeps signing for `overlap_secs` while the shop switches.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateWebhookSecretRequest {
    pub overlap_secs: u32,
}

/// Where a merchant's events go and the secrets that sign them, newest
/// first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    pub secrets: Vec<String>,
}

/// Webhook signatures, as Stripe's: the header
/// `Clink-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>…]`, each `v1` an
/// HMAC-SHA256 of `"{t}.{raw body}"` under one live secret (several while a
/// secret rotates). A receiver accepts an event if one `v1` matches one of
/// its secrets and `t` is within [`TOLERANCE_SECS`] of its clock.
pub mod webhook_signing {
    use ring::hmac;

    pub const HEADER: &str = "clink-signature";
    pub const TOLERANCE_SECS: i64 = 300;

    pub fn signature(secret: &str, timestamp_secs: i64, body: &[u8]) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
        let mut message = format!("{timestamp_secs}.").into_bytes();
        message.extend_from_slice(body);
        hex::encode(hmac::sign(&key, &message))
    }

    /// The header's value for `body` signed at `timestamp_secs` by every
    /// secret in `secrets`.
    pub fn header(secrets: &[String], timestamp_secs: i64, body: &[u8]) -> String {
        let mut value = format!("t={timestamp_secs}");
        for secret in secrets {
            value.push_str(",v1=");
            value.push_str(&signature(secret, timestamp_secs, body));
        }
        value
    }
}

/// Why an order was refused, naming the part that is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    #[error(
        "merchant_order_id must be 1 to {MAX_ORDER_ID_CHARS} characters of A-Z, a-z, 0-9, '-', '_', '.', ':'"
    )]
    OrderId,
    #[error("an order needs 1 to {MAX_ITEM_LINES} item lines, not {0}")]
    LineCount(usize),
    #[error("item line {line}: code must be 1 to {MAX_ITEM_CODE_CHARS} printable ASCII characters")]
    ItemCode { line: usize },
    #[error("item line {line}: name: {error}")]
    ItemName { line: usize, error: TextError },
    #[error("item line {line}: name must be 1 to {MAX_ITEM_NAME_CHARS} characters")]
    ItemNameLength { line: usize },
    #[error("item line {line}: quantity must be 1 to {MAX_QUANTITY}, not {quantity}")]
    Quantity { line: usize, quantity: i64 },
    #[error("item line {line}: unit_price must not be negative, not {unit_price}")]
    UnitPrice { line: usize, unit_price: Amount },
    #[error("the item lines add up to more than any amount can hold")]
    Overflow,
    #[error("the item lines add up to {lines}, but the amount is {amount}")]
    Total { lines: Amount, amount: Amount },
}

impl OrderError {
    pub fn error_code(&self) -> ErrorCode {
        match self {
            OrderError::Total { .. } | OrderError::Overflow => ErrorCode::ItemsDoNotAddUp,
            _ => ErrorCode::InvalidOrder,
        }
    }
}

/// Checks a merchant's order id.
pub fn check_order_id(id: &str) -> Result<(), OrderError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':');
    if id.is_empty() || id.len() > MAX_ORDER_ID_CHARS || !id.chars().all(allowed) {
        return Err(OrderError::OrderId);
    }
    Ok(())
}

/// Checks the item lines and that they add up to `amount`; returns the
/// lines as stored (names in NFC). Lines are numbered from 1 in errors, as
/// on a receipt.
pub fn check_items(items: &[ItemLine], amount: Amount) -> Result<Vec<ItemLine>, OrderError> {
    if items.is_empty() || items.len() > MAX_ITEM_LINES {
        return Err(OrderError::LineCount(items.len()));
    }
    let mut total: Amount = 0;
    let mut checked = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let line = index + 1;
        let code_ok = !item.code.is_empty()
            && item.code.len() <= MAX_ITEM_CODE_CHARS
            && item.code.chars().all(|c| c.is_ascii_graphic());
        if !code_ok {
            return Err(OrderError::ItemCode { line });
        }
        // A name is shown to the customer before the PIN: the memo rules
        // (no bidi controls, invisible or control characters) apply.
        let name =
            text::check_memo(&item.name).map_err(|error| OrderError::ItemName { line, error })?;
        let name_chars = name.chars().count();
        if name_chars == 0 || name_chars > MAX_ITEM_NAME_CHARS {
            return Err(OrderError::ItemNameLength { line });
        }
        if !(1..=MAX_QUANTITY).contains(&item.quantity) {
            return Err(OrderError::Quantity {
                line,
                quantity: item.quantity,
            });
        }
        if item.unit_price < 0 {
            return Err(OrderError::UnitPrice {
                line,
                unit_price: item.unit_price,
            });
        }
        total = item
            .quantity
            .checked_mul(item.unit_price)
            .and_then(|line_total| total.checked_add(line_total))
            .ok_or(OrderError::Overflow)?;
        checked.push(ItemLine {
            name,
            ..item.clone()
        });
    }
    if total != amount {
        return Err(OrderError::Total {
            lines: total,
            amount,
        });
    }
    Ok(checked)
}

/// Web shops sign each request with HMAC-SHA256 under their API key's
/// secret, over the timestamp, method, path (with query) and body. Headers:
/// [`HEADER_KEY_ID`], [`HEADER_TIMESTAMP`](super::signing::HEADER_TIMESTAMP)
/// and [`HEADER_SIGNATURE`] (lowercase hex).
pub mod merchant_signing {
    use ring::hmac;

    pub const HEADER_KEY_ID: &str = "x-clink-key-id";
    pub const HEADER_SIGNATURE: &str = "x-clink-merchant-signature";

    fn message(timestamp_ms: i64, method: &str, path: &str, body: &[u8]) -> Vec<u8> {
        let mut m = format!("{timestamp_ms}\n{method}\n{path}\n").into_bytes();
        m.extend_from_slice(body);
        m
    }

    /// The signature a shop sends (lowercase hex).
    pub fn sign(secret: &str, timestamp_ms: i64, method: &str, path: &str, body: &[u8]) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
        hex::encode(hmac::sign(&key, &message(timestamp_ms, method, path, body)))
    }

    /// Whether `signature_hex` is the signature of this request under
    /// `secret` (compared in constant time).
    pub fn verify(
        secret: &str,
        signature_hex: &str,
        timestamp_ms: i64,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> bool {
        let Ok(tag) = hex::decode(signature_hex) else {
            return false;
        };
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
        hmac::verify(&key, &message(timestamp_ms, method, path, body), &tag).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(code: &str, quantity: i64, unit_price: Amount) -> ItemLine {
        ItemLine {
            code: code.into(),
            name: format!("Item {code}"),
            quantity,
            unit_price,
        }
    }

    #[test]
    fn lines_that_add_up_pass_and_names_come_back_normalised() {
        let mut items = vec![line("A1", 2, 150), line("B2", 1, 0)];
        items[1].name = "Cafe\u{301}".into();
        let checked = check_items(&items, 300).unwrap();
        assert_eq!(checked[1].name, "Caf\u{e9}");
    }

    #[test]
    fn every_bad_line_is_named() {
        let cases: Vec<(Vec<ItemLine>, Amount, OrderError)> = vec![
            (vec![], 0, OrderError::LineCount(0)),
            (
                vec![line("A", 1, 100), line("B", 2, 50)],
                150,
                OrderError::Total {
                    lines: 200,
                    amount: 150,
                },
            ),
            (
                vec![line("A", 0, 100)],
                0,
                OrderError::Quantity {
                    line: 1,
                    quantity: 0,
                },
            ),
            (
                vec![line("A", 1, 100), line("B", -3, 100)],
                -200,
                OrderError::Quantity {
                    line: 2,
                    quantity: -3,
                },
            ),
            (
                vec![line("A", 1, -5)],
                -5,
                OrderError::UnitPrice {
                    line: 1,
                    unit_price: -5,
                },
            ),
            (
                vec![line("A", MAX_QUANTITY, i64::MAX / 2)],
                1,
                OrderError::Overflow,
            ),
            (
                vec![line("with space", 1, 1)],
                1,
                OrderError::ItemCode { line: 1 },
            ),
        ];
        for (items, amount, expected) in cases {
            assert_eq!(check_items(&items, amount), Err(expected));
        }
        let mut hidden = line("A", 1, 1);
        hidden.name = "Tea\u{202e}".into();
        assert!(matches!(
            check_items(&[hidden], 1),
            Err(OrderError::ItemName { line: 1, .. })
        ));
        let too_many: Vec<ItemLine> = (0..=MAX_ITEM_LINES)
            .map(|i| line(&i.to_string(), 1, 1))
            .collect();
        assert_eq!(
            check_items(&too_many, too_many.len() as i64),
            Err(OrderError::LineCount(MAX_ITEM_LINES + 1))
        );
    }

    #[test]
    fn order_ids_are_short_plain_ascii() {
        assert!(check_order_id("order-2026-12-03:0042").is_ok());
        for bad in [
            "",
            "with space",
            "ünicode",
            &"x".repeat(MAX_ORDER_ID_CHARS + 1),
        ] {
            assert_eq!(check_order_id(bad), Err(OrderError::OrderId), "{bad:?}");
        }
    }

    #[test]
    fn a_merchant_signature_covers_every_part() {
        let sig =
            merchant_signing::sign("sk_secret", 1_000, "POST", "/v1/merchant/payments", b"{}");
        assert!(merchant_signing::verify(
            "sk_secret",
            &sig,
            1_000,
            "POST",
            "/v1/merchant/payments",
            b"{}"
        ));
        for (secret, ts, method, path, body) in [
            (
                "sk_other",
                1_000,
                "POST",
                "/v1/merchant/payments",
                &b"{}"[..],
            ),
            ("sk_secret", 1_001, "POST", "/v1/merchant/payments", b"{}"),
            ("sk_secret", 1_000, "GET", "/v1/merchant/payments", b"{}"),
            ("sk_secret", 1_000, "POST", "/v1/merchant/payment", b"{}"),
            ("sk_secret", 1_000, "POST", "/v1/merchant/payments", b"{ }"),
        ] {
            assert!(!merchant_signing::verify(
                secret, &sig, ts, method, path, body
            ));
        }
        assert!(!merchant_signing::verify(
            "sk_secret",
            "not hex",
            1_000,
            "POST",
            "/",
            b""
        ));
    }
}
