//! Shop payment requests: a terminal or web shop asks, the customer's phone
//! approves.
//!
//! One object for every shop flow (`shop_payments`), named by the
//! merchant's own order id, which is also the idempotency key of its
//! creation. Its money is a pending claim customer → merchant, so the
//! customer approves or declines it like any request for money (PIN, policy,
//! second factor) and the sweeper expires it; every such decision moves the
//! payment request's state in the same transaction ([`on_claim_settled`]),
//! with a state guard, and bumps its version.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use clink_protocol::wire::*;
use sqlx::{AnyConnection, Row};

use crate::auth::Caller;
use crate::error::{AppError, AppResult};
use crate::http_errors::Path;
use crate::ledger::{self, Failure, NewTransfer, outcome};
use crate::merchants::{Channel, Merchant, MerchantCaller};
use crate::request::{new_transfer_id, parse_phone, user_by_phone, write_job};
use crate::secrets::random_hex;
use crate::webhooks;
use crate::{AppState, now_ms};

type St = State<Arc<AppState>>;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(paths::MERCHANT_PAYMENTS, post(create_payment))
        .route("/v1/merchant/payments/{order_id}", get(payment))
        .route(
            "/v1/merchant/payments/{order_id}/cancel",
            post(cancel_payment),
        )
        .route("/v1/charges/{claim_id}", get(charge))
}

/// How long a customer has to approve when the shop does not say: at a
/// till the customer is standing there; a web shop's customer may be
/// elsewhere.
pub const TILL_EXPIRY_SECS: u32 = 180;
pub const WEB_SHOP_EXPIRY_SECS: u32 = 3_600;
/// The shortest and longest expiry a shop may ask for.
pub const MIN_EXPIRY_SECS: u32 = 30;
pub const MAX_EXPIRY_SECS: u32 = 86_400;
/// Requests one merchant may have waiting for one customer at once: enough
/// for a real shop, too few to flood an inbox.
pub const MAX_PENDING_PER_CUSTOMER: i64 = 3;

fn state_str(state: ShopPaymentState) -> &'static str {
    match state {
        ShopPaymentState::Created => "created",
        ShopPaymentState::PendingApproval => "pending_approval",
        ShopPaymentState::Completed => "completed",
        ShopPaymentState::Declined => "declined",
        ShopPaymentState::Cancelled => "cancelled",
        ShopPaymentState::Expired => "expired",
    }
}

fn parse_state(text: &str) -> AppResult<ShopPaymentState> {
    [
        ShopPaymentState::Created,
        ShopPaymentState::PendingApproval,
        ShopPaymentState::Completed,
        ShopPaymentState::Declined,
        ShopPaymentState::Cancelled,
        ShopPaymentState::Expired,
    ]
    .into_iter()
    .find(|state| state_str(*state) == text)
    .ok_or_else(|| {
        AppError::new(
            ErrorCode::Internal,
            format!("unknown shop payment state {text:?} in the database"),
        )
    })
}

fn order_error(e: OrderError) -> AppError {
    AppError::new(e.error_code(), e.to_string())
}

async fn create_payment(State(state): St, caller: MerchantCaller) -> AppResult<Response> {
    let req: CreateShopPaymentRequest = caller.json()?;
    check_order_id(&req.merchant_order_id).map_err(order_error)?;
    ledger::check_amount(req.amount, state.config.max_amount)?;
    let items = check_items(&req.items, req.amount).map_err(order_error)?;
    let expires_in = req.expires_in_secs.unwrap_or(match caller.channel {
        Channel::Terminal => TILL_EXPIRY_SECS,
        Channel::WebShop => WEB_SHOP_EXPIRY_SECS,
    });
    if !(MIN_EXPIRY_SECS..=MAX_EXPIRY_SECS).contains(&expires_in) {
        return Err(AppError::new(
            ErrorCode::InvalidRequest,
            format!("expires_in_secs must be {MIN_EXPIRY_SECS} to {MAX_EXPIRY_SECS}"),
        ));
    }
    let ShopCustomer::Phone { phone } = &req.customer;
    let phone = parse_phone(&state, phone)?;
    // An unknown number is refused as an unlinked one: a merchant learns
    // nothing about who has an account.
    let customer = user_by_phone(&state, &phone).await?;
    let hash = ledger::fingerprint(paths::MERCHANT_PAYMENTS, &req);
    let plan = NewPayment {
        id: format!("sp_{}", random_hex(&state.rng, 16)),
        transfer_id: new_transfer_id(&state),
        merchant: caller.merchant,
        order_id: req.merchant_order_id,
        hash,
        customer,
        amount: req.amount,
        items,
        expires_in_ms: i64::from(expires_in) * 1000,
    };
    let (created, view) = write_job(&state, caller.signed, move |st, conn| {
        Box::pin(async move { outcome(create_job(st, conn, plan).await) })
    })
    .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view)).into_response())
}

struct NewPayment {
    id: String,
    transfer_id: String,
    merchant: Merchant,
    order_id: String,
    hash: String,
    customer: Option<i64>,
    amount: i64,
    items: Vec<ItemLine>,
    expires_in_ms: i64,
}

/// Creates the payment request, or finds the one this order already made;
/// returns whether it is new.
async fn create_job(
    state: &AppState,
    conn: &mut AnyConnection,
    p: NewPayment,
) -> Result<(bool, ShopPaymentView), Failure> {
    let now = now_ms();
    let items_json = serde_json::to_string(&p.items).expect("item lines serialise");
    // The unique (merchant, order id) makes a retried or concurrent create
    // find the first one, on any number of server instances.
    let inserted = sqlx::query(
        "INSERT INTO shop_payments (id, merchant_id, merchant_order_id, request_hash, customer_account, amount, items, state, version, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'created', 1, $8, $9)
         ON CONFLICT (merchant_id, merchant_order_id) DO NOTHING",
    )
    .bind(&p.id)
    .bind(&p.merchant.id)
    .bind(&p.order_id)
    .bind(&p.hash)
    .bind(p.customer)
    .bind(p.amount)
    .bind(&items_json)
    .bind(now)
    .bind(now + p.expires_in_ms)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if inserted == 0 {
        let existing = load_by_order(conn, &p.merchant.id, &p.order_id)
            .await?
            .expect("the conflicting row exists");
        if existing.request_hash != p.hash {
            return Err(AppError::new(
                ErrorCode::IdempotencyKeyReused,
                format!(
                    "merchant_order_id {:?} was already used for a different order",
                    p.order_id
                ),
            )
            .into());
        }
        return Ok((false, existing.view));
    }
    let linked = match p.customer {
        Some(customer) => {
            sqlx::query("SELECT 1 FROM merchant_links WHERE account_id = $1 AND merchant_id = $2")
                .bind(customer)
                .bind(&p.merchant.id)
                .fetch_optional(&mut *conn)
                .await?
                .map(|_| customer)
        }
        None => None,
    };
    let Some(customer) = linked else {
        return Err(AppError::new(
            ErrorCode::MerchantNotLinked,
            "this number has not linked your shop in Clink; the customer can link it in the app",
        )
        .into());
    };
    let waiting: i64 = sqlx::query(
        "SELECT COUNT(*) FROM shop_payments WHERE customer_account = $1 AND merchant_id = $2 AND state = 'pending_approval'",
    )
    .bind(customer)
    .bind(&p.merchant.id)
    .fetch_one(&mut *conn)
    .await?
    .try_get(0)?;
    if waiting >= MAX_PENDING_PER_CUSTOMER {
        return Err(AppError::new(
            ErrorCode::TooManyRequests,
            format!(
                "this customer already has {waiting} of your requests waiting; wait for an answer or cancel one"
            ),
        )
        .into());
    }
    let memo = format!("Order {}", p.order_id);
    let seq = ledger::insert_pending(
        conn,
        &NewTransfer {
            id: &p.transfer_id,
            kind: TransferKind::Claim,
            debit: customer,
            credit: p.merchant.account_id,
            amount: p.amount,
            memo: &memo,
            expires_at: Some(now + p.expires_in_ms),
        },
        now,
    )
    .await?;
    ledger::notify(conn, customer, NotificationKind::ClaimReceived, seq, now).await?;
    sqlx::query(
        "UPDATE shop_payments SET transfer_seq = $1, state = 'pending_approval', version = 2 WHERE id = $2 AND state = 'created'",
    )
    .bind(seq)
    .bind(&p.id)
    .execute(&mut *conn)
    .await?;
    let _ = state;
    let view = load_by_order(&mut *conn, &p.merchant.id, &p.order_id)
        .await?
        .expect("just written")
        .view;
    webhooks::record(conn, &p.merchant.id, &view, now).await?;
    Ok((true, view))
}

/// A payment request as stored.
struct Stored {
    view: ShopPaymentView,
    request_hash: String,
    transfer_seq: Option<i64>,
    customer: Option<i64>,
}

const STORED_COLUMNS: &str = "id, merchant_order_id, state, amount, items, created_at, expires_at, decided_at, version, request_hash, transfer_seq, customer_account";

fn stored_from_row(row: &sqlx::any::AnyRow) -> AppResult<Stored> {
    let items: String = row.try_get(4)?;
    Ok(Stored {
        view: ShopPaymentView {
            id: row.try_get(0)?,
            merchant_order_id: row.try_get(1)?,
            state: parse_state(&row.try_get::<String, _>(2)?)?,
            amount: row.try_get(3)?,
            items: serde_json::from_str(&items).map_err(|e| {
                AppError::new(ErrorCode::Internal, format!("stored item lines: {e}"))
            })?,
            created_at_ms: row.try_get(5)?,
            expires_at_ms: row.try_get(6)?,
            decided_at_ms: row.try_get(7)?,
            version: row.try_get(8)?,
        },
        request_hash: row.try_get(9)?,
        transfer_seq: row.try_get(10)?,
        customer: row.try_get(11)?,
    })
}

async fn load_by_order<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    executor: E,
    merchant_id: &str,
    order_id: &str,
) -> AppResult<Option<Stored>> {
    let row = sqlx::query(&format!(
        "SELECT {STORED_COLUMNS} FROM shop_payments WHERE merchant_id = $1 AND merchant_order_id = $2"
    ))
    .bind(merchant_id)
    .bind(order_id)
    .fetch_optional(executor)
    .await?;
    row.as_ref().map(stored_from_row).transpose()
}

fn no_such_order(order_id: &str) -> AppError {
    AppError::new(
        ErrorCode::NotFound,
        format!("you have no payment request for order {order_id:?}"),
    )
}

async fn payment(
    State(state): St,
    Path(order_id): Path<String>,
    caller: MerchantCaller,
) -> AppResult<Json<ShopPaymentView>> {
    if let Some(signed) = caller.signed {
        crate::request::consume_nonce(&state, signed).await?;
    }
    match load_by_order(&state.db.pool, &caller.merchant.id, &order_id).await? {
        Some(stored) => Ok(Json(stored.view)),
        None => Err(no_such_order(&order_id)),
    }
}

/// The shop gives up: allowed until the customer approves, and saying it
/// twice is not an error.
async fn cancel_payment(
    State(state): St,
    Path(order_id): Path<String>,
    caller: MerchantCaller,
) -> AppResult<Json<ShopPaymentView>> {
    let merchant = caller.merchant.id.clone();
    let view = write_job(&state, caller.signed, move |_, conn| {
        Box::pin(async move { outcome(cancel_job(conn, &merchant, &order_id).await) })
    })
    .await?;
    Ok(Json(view))
}

async fn cancel_job(
    conn: &mut AnyConnection,
    merchant: &str,
    order_id: &str,
) -> Result<ShopPaymentView, Failure> {
    let now = now_ms();
    let Some(stored) = load_by_order(&mut *conn, merchant, order_id).await? else {
        return Err(no_such_order(order_id).into());
    };
    match stored.view.state {
        ShopPaymentState::Cancelled => return Ok(stored.view),
        ShopPaymentState::Created | ShopPaymentState::PendingApproval => {}
        done => {
            return Err(AppError::new(
                ErrorCode::ClaimNotPending,
                format!(
                    "this payment request is already {}; a completed one can only be refunded",
                    state_str(done).replace('_', " ")
                ),
            )
            .into());
        }
    }
    if let Some(seq) = stored.transfer_seq {
        // The transfer's own guard decides a race with the customer's
        // approval: whichever commits first wins, the other is told.
        if !ledger::void_if_pending(conn, seq, VoidReason::Cancelled, now).await? {
            let t = ledger::load_transfer_by_seq(conn, seq).await?;
            return Err(ledger::already_decided(t.state, t.void_reason).into());
        }
        if let Some(customer) = stored.customer {
            ledger::notify(conn, customer, NotificationKind::ClaimCancelled, seq, now).await?;
        }
    }
    move_state(conn, &stored.view.id, ShopPaymentState::Cancelled, now).await?;
    let view = load_by_order(&mut *conn, merchant, order_id)
        .await?
        .expect("just read")
        .view;
    webhooks::record(conn, merchant, &view, now).await?;
    Ok(view)
}

/// Moves a payment request out of a waiting state, once.
async fn move_state(
    conn: &mut AnyConnection,
    id: &str,
    to: ShopPaymentState,
    now: i64,
) -> AppResult<bool> {
    Ok(sqlx::query(
        "UPDATE shop_payments SET state = $1, decided_at = $2, version = version + 1 WHERE id = $3 AND state IN ('created', 'pending_approval')",
    )
    .bind(state_str(to))
    .bind(now)
    .bind(id)
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

/// Called wherever a claim is posted or voided (approval, decline, expiry,
/// cancellation by the requester): a shop's payment request on that
/// transfer follows, in the same transaction. Person-to-person claims have
/// none, and the update touches nothing.
pub async fn on_claim_settled(
    conn: &mut AnyConnection,
    transfer_seq: i64,
    outcome: ClaimOutcome,
    now: i64,
) -> AppResult<()> {
    let to = match outcome {
        ClaimOutcome::Paid => ShopPaymentState::Completed,
        ClaimOutcome::Voided(VoidReason::Declined) => ShopPaymentState::Declined,
        ClaimOutcome::Voided(VoidReason::Expired) => ShopPaymentState::Expired,
        ClaimOutcome::Voided(VoidReason::Cancelled | VoidReason::Withdrawn) => {
            ShopPaymentState::Cancelled
        }
    };
    let moved = sqlx::query(
        "UPDATE shop_payments SET state = $1, decided_at = $2, version = version + 1 WHERE transfer_seq = $3 AND state = 'pending_approval' RETURNING merchant_id, merchant_order_id",
    )
    .bind(state_str(to))
    .bind(now)
    .bind(transfer_seq)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(row) = moved {
        let (merchant, order): (String, String) = (row.try_get(0)?, row.try_get(1)?);
        let view = load_by_order(&mut *conn, &merchant, &order)
            .await?
            .expect("just updated")
            .view;
        webhooks::record(conn, &merchant, &view, now).await?;
    }
    Ok(())
}

/// What happened to a claim.
#[derive(Clone, Copy, Debug)]
pub enum ClaimOutcome {
    Paid,
    Voided(VoidReason),
}

/// Declines every request `merchant` has waiting for `customer` (a spam
/// report).
pub async fn decline_all_pending(
    conn: &mut AnyConnection,
    merchant: &str,
    customer: i64,
    now: i64,
) -> AppResult<()> {
    let rows = sqlx::query(
        "SELECT transfer_seq FROM shop_payments WHERE merchant_id = $1 AND customer_account = $2 AND state = 'pending_approval'",
    )
    .bind(merchant)
    .bind(customer)
    .fetch_all(&mut *conn)
    .await?;
    for row in rows {
        let seq: i64 = row.try_get(0)?;
        if ledger::void_if_pending(conn, seq, VoidReason::Declined, now).await? {
            on_claim_settled(conn, seq, ClaimOutcome::Voided(VoidReason::Declined), now).await?;
        }
    }
    Ok(())
}

/// The customer's view of a shop's request, before the PIN.
async fn charge(
    State(state): St,
    Path(claim_id): Path<String>,
    caller: Caller,
) -> AppResult<Json<ChargeView>> {
    crate::request::consume_nonce(&state, caller.signed).await?;
    let row = sqlx::query(
        "SELECT t.id, m.id, m.display_name, m.category_code, sp.merchant_order_id, sp.state, sp.amount, sp.items, sp.expires_at
         FROM transfers t
         JOIN shop_payments sp ON sp.transfer_seq = t.seq
         JOIN merchants m ON m.id = sp.merchant_id
         WHERE t.id = $1 AND sp.customer_account = $2",
    )
    .bind(&claim_id)
    .bind(caller.account_id)
    .fetch_optional(&state.db.pool)
    .await?;
    let Some(row) = row else {
        return Err(AppError::new(
            ErrorCode::NotFound,
            format!("no shop's request {claim_id:?} is addressed to you"),
        ));
    };
    let items: String = row.try_get(7)?;
    Ok(Json(ChargeView {
        claim_id: row.try_get(0)?,
        merchant: MerchantSummary {
            merchant_id: row.try_get(1)?,
            display_name: row.try_get(2)?,
            category_code: row.try_get(3)?,
        },
        merchant_order_id: row.try_get(4)?,
        state: parse_state(&row.try_get::<String, _>(5)?)?,
        amount: row.try_get(6)?,
        items: serde_json::from_str(&items)
            .map_err(|e| AppError::new(ErrorCode::Internal, format!("stored item lines: {e}")))?,
        expires_at_ms: row.try_get(8)?,
    }))
}
