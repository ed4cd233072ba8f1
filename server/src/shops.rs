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
        .route(
            "/v1/merchant/payments/{order_id}/refunds",
            post(refund_payment),
        )
        .route(paths::CHARGES, post(take_charge))
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
    let customer = match &req.customer {
        ShopCustomer::Phone { phone } => {
            let phone = parse_phone(&state, phone)?;
            // An unknown number is refused as an unlinked one: a merchant
            // learns nothing about who has an account.
            Customer::ByPhone(user_by_phone(&state, &phone).await?)
        }
        ShopCustomer::Presented => Customer::Presented,
        ShopCustomer::Code { code } => Customer::Code {
            code: code.clone(),
            order: Box::new(req.clone()),
        },
    };
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
    customer: Customer,
    amount: i64,
    items: Vec<ItemLine>,
    expires_in_ms: i64,
}

/// Who is asked to pay, as far as the shop's request says.
enum Customer {
    /// A registered number's account, or `None` for a number nobody has.
    ByPhone(Option<i64>),
    /// Whoever takes the presented request first.
    Presented,
    /// Whoever showed this one-time code, if their statement of the order
    /// is the shop's.
    Code {
        code: String,
        order: Box<CreateShopPaymentRequest>,
    },
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
    .bind(None::<i64>)
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
    let by_phone = match p.customer {
        Customer::ByPhone(account) => account,
        Customer::Presented => {
            let view = load_by_order(&mut *conn, &p.merchant.id, &p.order_id)
                .await?
                .expect("just written")
                .view;
            webhooks::record(conn, &p.merchant.id, &view, now).await?;
            return Ok((true, view));
        }
        Customer::Code {
            ref code,
            ref order,
        } => {
            return pay_by_code(state, conn, &p, code, order, now).await;
        }
    };
    let linked = match by_phone {
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
    let _ = state;
    let expires_at = now + p.expires_in_ms;
    bind_customer(
        conn,
        &p.id,
        &p.order_id,
        &p.merchant,
        customer,
        &p.transfer_id,
        p.amount,
        expires_at,
        now,
    )
    .await?;
    let view = load_by_order(&mut *conn, &p.merchant.id, &p.order_id)
        .await?
        .expect("just written")
        .view;
    webhooks::record(conn, &p.merchant.id, &view, now).await?;
    Ok((true, view))
}

/// Makes `customer` the payer of a request still `created`: writes the
/// pending claim customer → merchant and its inbox notification, and moves
/// the request to `pending_approval`, in the caller's transaction.
#[allow(clippy::too_many_arguments)]
async fn bind_customer(
    conn: &mut AnyConnection,
    payment_id: &str,
    order_id: &str,
    merchant: &Merchant,
    customer: i64,
    transfer_id: &str,
    amount: i64,
    expires_at: i64,
    now: i64,
) -> Result<i64, Failure> {
    let memo = format!("Order {order_id}");
    let seq = ledger::insert_pending(
        conn,
        &NewTransfer {
            id: transfer_id,
            kind: TransferKind::Claim,
            debit: customer,
            credit: merchant.account_id,
            amount,
            memo: &memo,
            expires_at: Some(expires_at),
        },
        now,
    )
    .await?;
    ledger::notify(conn, customer, NotificationKind::ClaimReceived, seq, now).await?;
    let bound = sqlx::query(
        "UPDATE shop_payments SET transfer_seq = $1, customer_account = $2, state = 'pending_approval', version = version + 1 WHERE id = $3 AND state = 'created'",
    )
    .bind(seq)
    .bind(customer)
    .bind(payment_id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if bound != 1 {
        // Taken or ended since it was read (another instance): undo.
        return Err(AppError::new(
            ErrorCode::TokenUsed,
            "this payment request was just taken or ended",
        )
        .into());
    }
    Ok(seq)
}

/// Both sides agree: the code's statement (the customer's, approved with
/// the PIN when the code was issued) must match the shop's field by field;
/// then the payment is bound and posted at once. A code is used up by any
/// attempt, matching or not, so a terminal cannot try variations of an
/// order against it; a mismatch leaves no payment request behind.
async fn pay_by_code(
    state: &AppState,
    conn: &mut AnyConnection,
    p: &NewPayment,
    code: &str,
    order: &CreateShopPaymentRequest,
    now: i64,
) -> Result<(bool, ShopPaymentView), Failure> {
    let (customer, statement) =
        crate::customer_codes::use_code(conn, code, &p.merchant.id, now).await?;
    if let Err(mismatch) = compare_orders(&statement, &p.merchant.id, order) {
        sqlx::query("DELETE FROM shop_payments WHERE id = $1")
            .bind(&p.id)
            .execute(&mut *conn)
            .await?;
        return Err(Failure {
            error: AppError::new(ErrorCode::OrderMismatch, mismatch.to_string()),
            keep_writes: true,
        });
    }
    let seq = bind_customer(
        conn,
        &p.id,
        &p.order_id,
        &p.merchant,
        customer,
        &p.transfer_id,
        p.amount,
        now + p.expires_in_ms,
        now,
    )
    .await?;
    let pending = ledger::load_transfer_by_seq(conn, seq).await?;
    ledger::post_pending(conn, &state.system, &pending, now).await?;
    on_claim_settled(conn, seq, ClaimOutcome::Paid, now).await?;
    let view = load_by_order(&mut *conn, &p.merchant.id, &p.order_id)
        .await?
        .expect("just paid")
        .view;
    Ok((true, view))
}

/// The customer's phone takes a request a terminal presented (its QR):
/// the first phone to take it pays, once it approves with its PIN. Taking
/// it again from the same phone answers the same.
async fn take_charge(State(state): St, caller: Caller) -> AppResult<Json<ChargeView>> {
    let req: TakeChargeRequest = caller.signed.json()?;
    let me = caller.account_id;
    let transfer_id = new_transfer_id(&state);
    let claim_id = write_job(&state, Some(caller.signed), move |_, conn| {
        Box::pin(async move { outcome(take_job(conn, me, &req.payment_id, &transfer_id).await) })
    })
    .await?;
    charge_view(&state, &claim_id, me).await.map(Json)
}

async fn take_job(
    conn: &mut AnyConnection,
    me: i64,
    payment_id: &str,
    transfer_id: &str,
) -> Result<String, Failure> {
    let now = now_ms();
    let unknown = || {
        AppError::new(
            ErrorCode::TokenUnknown,
            format!("there is no payment request {payment_id:?}"),
        )
    };
    let row = sqlx::query(&format!(
        "SELECT {STORED_COLUMNS}, merchant_id FROM shop_payments WHERE id = $1"
    ))
    .bind(payment_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Err(unknown().into());
    };
    let stored = stored_from_row(&row)?;
    let merchant_id: String = row.try_get(13)?;
    let merchant = crate::merchants::merchant_by_id(&mut *conn, &merchant_id)
        .await?
        .ok_or_else(unknown)?;
    if merchant.account_id == me {
        return Err(AppError::new(ErrorCode::SelfTransfer, "a merchant cannot pay itself").into());
    }
    let expired = || AppError::new(ErrorCode::ClaimExpired, "this payment request has expired");
    match (stored.view.state, stored.customer) {
        (ShopPaymentState::Created, _) if stored.view.expires_at_ms <= now => Err(expired().into()),
        (ShopPaymentState::Created, _) => {
            bind_customer(
                conn,
                payment_id,
                &stored.view.merchant_order_id,
                &merchant,
                me,
                transfer_id,
                stored.view.amount,
                stored.view.expires_at_ms,
                now,
            )
            .await?;
            let view = load_by_order(&mut *conn, &merchant.id, &stored.view.merchant_order_id)
                .await?
                .expect("just bound")
                .view;
            webhooks::record(conn, &merchant.id, &view, now).await?;
            Ok(transfer_id.to_string())
        }
        (_, Some(customer)) if customer == me => {
            let seq = stored
                .transfer_seq
                .expect("a bound request has its transfer");
            let row = sqlx::query("SELECT id FROM transfers WHERE seq = $1")
                .bind(seq)
                .fetch_one(&mut *conn)
                .await?;
            Ok(row.try_get(0)?)
        }
        (ShopPaymentState::Expired, _) => Err(expired().into()),
        (ShopPaymentState::PendingApproval | ShopPaymentState::Completed, _) => Err(AppError::new(
            ErrorCode::TokenUsed,
            "another phone has taken this payment request",
        )
        .into()),
        (done, _) => Err(AppError::new(
            ErrorCode::ClaimNotPending,
            format!("this payment request was {}", state_str(done)),
        )
        .into()),
    }
}

/// Requests presented but taken by nobody before their expiry end as
/// `expired` (the sweeper calls this; requests with a customer expire with
/// their claim).
pub async fn expire_untaken(conn: &mut AnyConnection, now: i64) -> AppResult<usize> {
    let rows = sqlx::query(
        "UPDATE shop_payments SET state = 'expired', decided_at = $1, version = version + 1
         WHERE state = 'created' AND expires_at <= $1 RETURNING merchant_id, merchant_order_id",
    )
    .bind(now)
    .fetch_all(&mut *conn)
    .await?;
    for row in &rows {
        let (merchant, order): (String, String) = (row.try_get(0)?, row.try_get(1)?);
        let view = load_by_order(&mut *conn, &merchant, &order)
            .await?
            .expect("just updated")
            .view;
        webhooks::record(conn, &merchant, &view, now).await?;
    }
    Ok(rows.len())
}

/// Pays back part or all of a completed payment, never more than was paid
/// in total; each refund is its own transfer merchant → customer, and its
/// `refund_id` makes a retry answer the same.
async fn refund_payment(
    State(state): St,
    Path(order_id): Path<String>,
    caller: MerchantCaller,
) -> AppResult<Response> {
    let req: RefundRequest = caller.json()?;
    check_order_id(&req.refund_id).map_err(|_| {
        AppError::new(
            ErrorCode::InvalidRequest,
            "refund_id must be 1 to 64 characters of A-Z, a-z, 0-9, '-', '_', '.', ':'",
        )
    })?;
    if req.amount <= 0 {
        return Err(AppError::new(
            ErrorCode::InvalidAmount,
            "a refund's amount must be positive",
        ));
    }
    let merchant = caller.merchant.clone();
    let transfer_id = new_transfer_id(&state);
    let (created, view) = write_job(&state, caller.signed, move |st, conn| {
        Box::pin(async move {
            outcome(refund_job(st, conn, &merchant, &order_id, req, &transfer_id).await)
        })
    })
    .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view)).into_response())
}

async fn refund_job(
    state: &AppState,
    conn: &mut AnyConnection,
    merchant: &Merchant,
    order_id: &str,
    req: RefundRequest,
    transfer_id: &str,
) -> Result<(bool, RefundView), Failure> {
    let now = now_ms();
    let Some(stored) = load_by_order(&mut *conn, &merchant.id, order_id).await? else {
        return Err(no_such_order(order_id).into());
    };
    let earlier = sqlx::query(
        "SELECT r.amount, t.id, r.created_at FROM shop_refunds r JOIN transfers t ON t.seq = r.transfer_seq
         WHERE r.shop_payment_id = $1 AND r.refund_id = $2",
    )
    .bind(&stored.view.id)
    .bind(&req.refund_id)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(row) = earlier {
        let amount: i64 = row.try_get(0)?;
        if amount != req.amount {
            return Err(AppError::new(
                ErrorCode::IdempotencyKeyReused,
                format!(
                    "refund_id {:?} was already used for a refund of {amount}",
                    req.refund_id
                ),
            )
            .into());
        }
        return Ok((
            false,
            RefundView {
                refund_id: req.refund_id,
                transfer_id: row.try_get(1)?,
                amount,
                created_at_ms: row.try_get(2)?,
                payment: stored.view,
            },
        ));
    }
    if stored.view.state != ShopPaymentState::Completed {
        return Err(AppError::new(
            ErrorCode::ClaimNotPending,
            format!(
                "only a completed payment can be refunded; this one is {}",
                state_str(stored.view.state)
            ),
        )
        .into());
    }
    let left = stored.view.amount - stored.view.refunded;
    if req.amount > left {
        return Err(AppError::new(
            ErrorCode::InvalidAmount,
            format!(
                "a refund of {} is more than the {left} left of the {} paid",
                req.amount, stored.view.amount
            ),
        )
        .into());
    }
    let customer = stored
        .customer
        .expect("a completed payment has its customer");
    let memo = format!("Refund of order {order_id}");
    let seq = ledger::insert_posted(
        conn,
        &state.system,
        &NewTransfer {
            id: transfer_id,
            kind: TransferKind::Refund,
            debit: merchant.account_id,
            credit: customer,
            amount: req.amount,
            memo: &memo,
            expires_at: None,
        },
        now,
    )
    .await?;
    ledger::notify(conn, customer, NotificationKind::PaymentReceived, seq, now).await?;
    sqlx::query(
        "INSERT INTO shop_refunds (shop_payment_id, refund_id, amount, transfer_seq, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&stored.view.id)
    .bind(&req.refund_id)
    .bind(req.amount)
    .bind(seq)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    // Guarded again: refunds never add up to more than was paid, even
    // across instances.
    let updated = sqlx::query(
        "UPDATE shop_payments SET refunded = refunded + $1, version = version + 1
         WHERE id = $2 AND state = 'completed' AND refunded + $1 <= amount",
    )
    .bind(req.amount)
    .bind(&stored.view.id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if updated != 1 {
        return Err(AppError::new(
            ErrorCode::InvalidAmount,
            "refunds would add up to more than was paid",
        )
        .into());
    }
    let view = load_by_order(&mut *conn, &merchant.id, order_id)
        .await?
        .expect("just updated")
        .view;
    webhooks::record_as(conn, &merchant.id, &view, "shop_payment.refunded", now).await?;
    Ok((
        true,
        RefundView {
            refund_id: req.refund_id,
            transfer_id: transfer_id.to_string(),
            amount: req.amount,
            created_at_ms: now,
            payment: view,
        },
    ))
}

/// A payment request as stored.
struct Stored {
    view: ShopPaymentView,
    request_hash: String,
    transfer_seq: Option<i64>,
    customer: Option<i64>,
}

const STORED_COLUMNS: &str = "id, merchant_order_id, state, amount, items, created_at, expires_at, decided_at, version, request_hash, transfer_seq, customer_account, refunded";

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
            refunded: row.try_get(12)?,
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
    charge_view(&state, &claim_id, caller.account_id)
        .await
        .map(Json)
}

async fn charge_view(state: &AppState, claim_id: &str, customer: i64) -> AppResult<ChargeView> {
    let row = sqlx::query(
        "SELECT t.id, m.id, m.display_name, m.category_code, sp.merchant_order_id, sp.state, sp.amount, sp.items, sp.expires_at
         FROM transfers t
         JOIN shop_payments sp ON sp.transfer_seq = t.seq
         JOIN merchants m ON m.id = sp.merchant_id
         WHERE t.id = $1 AND sp.customer_account = $2",
    )
    .bind(claim_id)
    .bind(customer)
    .fetch_optional(&state.db.pool)
    .await?;
    let Some(row) = row else {
        return Err(AppError::new(
            ErrorCode::NotFound,
            format!("no shop's request {claim_id:?} is addressed to you"),
        ));
    };
    let items: String = row.try_get(7)?;
    Ok(ChargeView {
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
    })
}
