//! Every route of the API and the handler that answers it. Handlers live in
//! a module per resource; they validate input, then hand one job to the
//! writer, and never touch balances themselves.

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{any, get, post, put};
use clink_protocol::wire::paths;

use crate::http_limits::MAX_BODY_BYTES;
use crate::{AppState, accounts, claims, inbox, status, transfers};

pub fn router(state: Arc<AppState>) -> Router {
    let routes = Router::new()
        .route(paths::HEALTH, get(status::health))
        .route(paths::TIME, get(status::time))
        .route(paths::REGISTER, post(accounts::register))
        .route(paths::REGISTER_VERIFY, post(accounts::verify))
        .route(paths::ME, get(accounts::me))
        .route(paths::POLICY, put(accounts::update_policy))
        .route(
            paths::AVATAR,
            get(accounts::get_avatar)
                .put(accounts::set_avatar)
                .delete(accounts::clear_avatar),
        )
        .route(paths::SEND, post(transfers::send))
        .route(paths::WITHDRAW, post(transfers::withdraw))
        .route(
            "/v1/transfers/deposit",
            any(transfers::self_deposit_is_gone),
        )
        .route("/v1/transfers/{id}", get(transfers::transfer))
        .route(paths::CLAIMS, post(claims::create_claim))
        .route("/v1/claims/{id}/{action}", post(claims::decide_claim))
        .route(paths::HISTORY, get(transfers::history))
        .route(paths::INBOX, get(inbox::inbox))
        .merge(crate::second_factor::routes())
        .merge(crate::gateway::routes())
        .merge(crate::operator::routes())
        .merge(crate::pairing::routes())
        .merge(crate::merchants::routes())
        .merge(crate::shops::routes())
        .merge(crate::customer_codes::routes())
        .merge(crate::webhooks::routes())
        .route(paths::SYNC, post(crate::sync::sync))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    // Fallbacks, limits and the one error shape for every answer.
    crate::http_errors::finish(routes).with_state(state)
}
