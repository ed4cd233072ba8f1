//! Every refusal in one shape, `{code, message}` JSON with the status of its
//! code, whichever layer refuses: the limits on a request's head and body
//! (`http_limits`), routing (no such endpoint, wrong method), extractors
//! (a path segment that does not decode), handlers, and a handler that
//! panics. A last layer turns any other error answer (axum's own plain-text
//! rejections, should a handler use one) into the same shape, so a client
//! can always read the code.

use std::any::Any;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::extract::rejection::PathRejection;
use axum::http::StatusCode;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use clink_protocol::wire::ErrorCode;
use serde::de::DeserializeOwned;
use tower_http::catch_panic::CatchPanicLayer;

use crate::error::AppError;
use crate::http_limits;

/// Adds to `routes` the fallbacks and layers that make every answer of the
/// API, refusals included, come out in the API's shape.
pub fn finish<S>(routes: Router<S>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    routes
        .fallback(|| async { AppError::new(ErrorCode::NotFound, "no such endpoint") })
        .method_not_allowed_fallback(|| async {
            AppError::new(
                ErrorCode::MethodNotAllowed,
                "this endpoint does not take that HTTP method (see the Allow header)",
            )
        })
        .layer(middleware::from_fn(http_limits::read_request_first))
        .layer(middleware::map_response(in_api_shape))
        .layer(CatchPanicLayer::custom(panicked))
}

fn panicked(_: Box<dyn Any + Send>) -> Response {
    tracing::error!("a handler panicked");
    AppError::new(ErrorCode::Internal, "internal error").into_response()
}

/// Longest text of a foreign error answer carried over into `message`.
const MAX_MESSAGE_BYTES: usize = 4 * 1024;

/// An error answer that is not JSON becomes `{code, message}`: the code
/// its status stands for, the text it had as the message. Other headers
/// (`Allow`, `Connection`) stay.
async fn in_api_shape(response: Response) -> Response {
    let status = response.status();
    let is_error = status.is_client_error() || status.is_server_error();
    if !is_error || http_limits::is_json(response.headers()) == Some(true) {
        return response;
    }
    let code = code_for_status(status);
    let (parts, body) = response.into_parts();
    let message = axum::body::to_bytes(body, MAX_MESSAGE_BYTES)
        .await
        .ok()
        .map(|text| String::from_utf8_lossy(&text).trim().to_string())
        .filter(|text| !text.is_empty())
        .unwrap_or_else(|| {
            status
                .canonical_reason()
                .unwrap_or("refused")
                .to_lowercase()
        });
    let mut shaped = AppError::new(code, message).into_response();
    for (name, value) in &parts.headers {
        if name != CONTENT_TYPE && name != CONTENT_LENGTH {
            shaped.headers_mut().append(name, value.clone());
        }
    }
    shaped
}

/// The code an HTTP status stands for; the answer then carries the code's
/// own status, so code and status always agree.
fn code_for_status(status: StatusCode) -> ErrorCode {
    match status {
        StatusCode::UNAUTHORIZED => ErrorCode::Unauthenticated,
        StatusCode::FORBIDDEN => ErrorCode::Forbidden,
        StatusCode::NOT_FOUND => ErrorCode::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
        StatusCode::URI_TOO_LONG => ErrorCode::UriTooLong,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => ErrorCode::HeadersTooLarge,
        StatusCode::SERVICE_UNAVAILABLE => ErrorCode::Unavailable,
        s if s.is_client_error() => ErrorCode::InvalidRequest,
        _ => ErrorCode::Internal,
    }
}

/// `axum::extract::Path`, refusing a path it cannot read (a segment that is
/// not UTF-8 once percent-decoded, like `/v1/transfers/%ff`, or not of the
/// expected type) with `invalid_request` rather than axum's plain text.
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(PathRejection::FailedToDeserializePathParams(e))
                if e.status().is_client_error() =>
            {
                Err(AppError::new(
                    ErrorCode::InvalidRequest,
                    format!("the path is not valid: {}", e.kind()),
                ))
            }
            // A route whose parameters do not fit its handler: a bug here.
            Err(e) => Err(AppError::new(ErrorCode::Internal, e.body_text())),
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;
    use axum::routing::{get, post};
    use tokio::net::TcpListener;
    use tokio::sync::oneshot;

    use super::*;

    /// `routes` behind [`finish`], served on a loopback port.
    async fn serve(routes: Router) -> (String, oneshot::Sender<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(crate::http_serve::serve(listener, finish(routes), async {
            let _ = stopped.await;
        }));
        (url, stop)
    }

    async fn a_bug() -> &'static str {
        panic!("a bug in a handler")
    }

    async fn answer(request: reqwest::RequestBuilder) -> (u16, serde_json::Value) {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let content_type = response.headers()[CONTENT_TYPE].clone();
        assert_eq!(content_type, "application/json");
        (status, response.json().await.unwrap())
    }

    #[tokio::test]
    async fn foreign_error_answers_and_panics_come_out_as_code_and_message() {
        let routes = Router::new()
            .route(
                "/plain",
                get(|| async { (StatusCode::UNPROCESSABLE_ENTITY, "plain words") }),
            )
            .route(
                "/busy",
                get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "") }),
            )
            .route(
                "/axum-json",
                post(|_: axum::Json<serde_json::Value>| async { "read" }),
            )
            .route("/panic", get(a_bug));
        let (url, _stop) = serve(routes).await;
        let http = reqwest::Client::new();

        let (status, body) = answer(http.get(format!("{url}/plain"))).await;
        assert_eq!(
            (status, body),
            (
                400,
                serde_json::json!({"code": "invalid_request", "message": "plain words"})
            )
        );
        let (status, body) = answer(http.get(format!("{url}/busy"))).await;
        assert_eq!(
            (status, body),
            (
                503,
                serde_json::json!({"code": "unavailable", "message": "service unavailable"})
            )
        );
        // axum's own JSON extractor refuses a body that is not JSON in plain text.
        let (status, body) = answer(
            http.post(format!("{url}/axum-json"))
                .header(CONTENT_TYPE, "application/json")
                .body("{not json"),
        )
        .await;
        assert_eq!(
            (status, &body["code"]),
            (400, &serde_json::json!("invalid_request"))
        );
        assert!(body["message"].as_str().unwrap().contains("JSON"), "{body}");
        let (status, body) = answer(http.get(format!("{url}/panic"))).await;
        assert_eq!(
            (status, body),
            (
                500,
                serde_json::json!({"code": "internal", "message": "internal error"})
            )
        );
        // The server still answers after the panic.
        let (status, body) = answer(http.get(format!("{url}/nothing"))).await;
        assert_eq!(
            (status, &body["code"]),
            (404, &serde_json::json!("not_found"))
        );
    }
}
