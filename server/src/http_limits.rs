//! What a request may carry (the size of its head and body, the format of
//! its body), checked before any handler runs; and the body read in full
//! before anything is answered.
//!
//! Why the body is read first: an answer given while part of the body is
//! still on its way (a 401 for a missing signature, a 404, a refused path)
//! leaves hyper with unread bytes on the connection. It cannot tell where
//! the next request starts, so it closes the connection after the answer,
//! and a client that already reused the connection for its next request
//! sees it drop. Reading the body (within its limit) before any answer
//! keeps every connection usable, whoever refuses the request and why. The
//! cost is nothing for requests that are served, as every endpoint reads
//! its whole body anyway, and little for refused ones: at most the body
//! limit, which a client can make the server read in any case.
//!
//! A body over its limit is read on and thrown away, up to
//! [`MAX_DRAIN_BYTES`] more, so a client that sent a little too much gets its
//! 413 on a connection it can go on using. A larger one (or one announced
//! larger by its `Content-Length`) is answered at once with `Connection:
//! close`, and hyper closes the connection once the answer is out: reading
//! without bound would let any client keep the server busy.
//!
//! hyper answers a head over its own limits itself, with an empty body;
//! `http_serve` sets those limits well above the ones here, so these answer
//! first, in the `{code, message}` shape.

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use clink_protocol::wire::ErrorCode;
use clink_protocol::wire::paths;
use http_body_util::BodyExt;

use crate::error::AppError;

/// Largest request body the API accepts.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Largest `POST /v1/sync` body: up to 500 signed items of a few hundred bytes.
pub const MAX_SYNC_BODY_BYTES: usize = 1024 * 1024;
/// Longest path and query read.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Largest header section: the names and values of all fields, with their
/// separators (`": "` and CRLF).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Most header fields in one request (hyper's own default).
pub const MAX_HEADER_COUNT: usize = 100;
/// Bytes read and thrown away past a body's limit before answering 413.
pub const MAX_DRAIN_BYTES: usize = 1024 * 1024;

/// The largest body the endpoint at `path` accepts.
pub fn body_limit(path: &str) -> usize {
    if path == paths::SYNC {
        MAX_SYNC_BODY_BYTES
    } else {
        MAX_BODY_BYTES
    }
}

/// Middleware: checks the head, reads the body (see the module docs), checks
/// its format, and hands the request on with its body in memory.
pub async fn read_request_first(request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let limit = body_limit(parts.uri.path());
    let declared = declared_length(&parts.headers);
    if declared.is_some_and(|n| n > (limit + MAX_DRAIN_BYTES) as u64) {
        return closing(too_large(limit));
    }
    let body = match read_body(body, limit, declared).await {
        Ok(ReadBody::Whole(bytes)) => bytes,
        Ok(ReadBody::TooLarge { drained: true }) => return too_large(limit).into_response(),
        Ok(ReadBody::TooLarge { drained: false }) => return closing(too_large(limit)),
        Err(e) => {
            return closing(AppError::new(
                ErrorCode::InvalidRequest,
                format!("the request body could not be read: {e}"),
            ));
        }
    };
    // Checked once the body is in, so the connection stays usable.
    if let Err(refusal) = check_head(&parts) {
        return refusal.into_response();
    }
    if !body.is_empty() && !is_json(&parts.headers).unwrap_or(true) {
        return AppError::new(
            ErrorCode::UnsupportedMediaType,
            "the body must be JSON: send Content-Type: application/json (or none)",
        )
        .into_response();
    }
    next.run(Request::from_parts(parts, Body::from(body))).await
}

fn check_head(parts: &Parts) -> Result<(), AppError> {
    let uri = &parts.uri;
    let uri_bytes = uri.path_and_query().map_or(0, |p| p.as_str().len())
        + uri.authority().map_or(0, |a| a.as_str().len());
    if uri_bytes > MAX_URI_BYTES {
        return Err(AppError::new(
            ErrorCode::UriTooLong,
            format!("the path and query are {uri_bytes} bytes; at most {MAX_URI_BYTES} are read"),
        ));
    }
    let count = parts.headers.len();
    if count > MAX_HEADER_COUNT {
        return Err(AppError::new(
            ErrorCode::HeadersTooLarge,
            format!("the request has {count} header fields; at most {MAX_HEADER_COUNT} are read"),
        ));
    }
    let bytes: usize = parts
        .headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if bytes > MAX_HEADER_BYTES {
        return Err(AppError::new(
            ErrorCode::HeadersTooLarge,
            format!("the header fields are {bytes} bytes; at most {MAX_HEADER_BYTES} are read"),
        ));
    }
    Ok(())
}

/// Whether the `Content-Type` names JSON (`application/json`, or a type
/// with the `+json` suffix); `None` without one.
pub(crate) fn is_json(headers: &HeaderMap) -> Option<bool> {
    let value = headers.get(CONTENT_TYPE)?;
    let json = value
        .to_str()
        .ok()
        .and_then(|text| text.parse::<mime::Mime>().ok())
        .is_some_and(|m| {
            m.type_() == mime::APPLICATION
                && (m.subtype() == mime::JSON || m.suffix() == Some(mime::JSON))
        });
    Some(json)
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

fn too_large(limit: usize) -> AppError {
    AppError::new(
        ErrorCode::PayloadTooLarge,
        format!("the body is larger than this endpoint's limit of {limit} bytes"),
    )
}

/// The answer, with word that the server closes the connection after it.
fn closing(error: AppError) -> Response {
    let mut response = error.into_response();
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

enum ReadBody {
    Whole(Bytes),
    /// Over the limit; `drained` when it was read to its end nonetheless.
    TooLarge {
        drained: bool,
    },
}

/// Reads the body, keeping up to `limit` bytes. Written here rather than
/// with `http_body_util::Limited`, which stops at the limit: this goes on
/// reading (and dropping) past it, up to [`MAX_DRAIN_BYTES`].
async fn read_body(
    mut body: Body,
    limit: usize,
    declared: Option<u64>,
) -> Result<ReadBody, axum::Error> {
    let capacity = declared.map_or(0, |n| n.min(limit as u64) as usize);
    let mut kept = Vec::with_capacity(capacity);
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        // Trailers carry no body bytes.
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        seen = seen.saturating_add(data.len());
        if seen <= limit {
            kept.extend_from_slice(&data);
        } else if seen > limit + MAX_DRAIN_BYTES {
            return Ok(ReadBody::TooLarge { drained: false });
        }
    }
    if seen > limit {
        return Ok(ReadBody::TooLarge { drained: true });
    }
    Ok(ReadBody::Whole(Bytes::from(kept)))
}
