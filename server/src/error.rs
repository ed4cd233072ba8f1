//! Every failure leaves the server as `{code, message}` JSON with the status
//! its code prescribes (see `clink_protocol::wire::ErrorCode`).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use clink_protocol::wire::{ApiError, ErrorCode};

#[derive(Debug, Clone)]
pub struct AppError(pub ApiError);

pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        AppError(ApiError::new(code, message))
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        AppError::new(ErrorCode::Unavailable, message)
    }

    pub fn code(&self) -> ErrorCode {
        self.0.code
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<ApiError> for AppError {
    fn from(e: ApiError) -> Self {
        AppError(e)
    }
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        // The details stay in the log; the client learns only that it may retry.
        tracing::error!(error = %e, "database error");
        AppError::unavailable(
            "the ledger could not complete the request; retry with the same idempotency key",
        )
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(self.0)).into_response()
    }
}
