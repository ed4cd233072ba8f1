//! `GET /health` and `GET /time`: unsigned, for load balancers and for the
//! phone's clock offset.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use clink_protocol::wire::*;

use crate::error::AppError;
use crate::{AppState, now_ms};

type St = State<Arc<AppState>>;

pub(crate) async fn health(State(state): St) -> Response {
    match sqlx::query("SELECT 1").fetch_one(&state.db.pool).await {
        Ok(_) => Json(HealthResponse {
            status: "ok".into(),
            database: state.db.backend.name().into(),
        })
        .into_response(),
        Err(e) => AppError::from(e).into_response(),
    }
}

pub(crate) async fn time() -> Json<TimeResponse> {
    Json(TimeResponse {
        server_time_ms: now_ms(),
    })
}
