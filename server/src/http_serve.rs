//! The HTTP/1.1 server loop: accepts connections and serves the API on each
//! with hyper, until told to stop.
//!
//! In place of `axum::serve`, which has no way to set hyper's limits:
//! hyper answers a request head over them itself, with an empty body and no
//! code. Here they are set well above `http_limits`' own, so a head that is
//! too large gets the API's `{code, message}` answer from there instead.
//! Only a head beyond these (over [`HYPER_MAX_HEAD_BYTES`], with more than
//! [`HYPER_MAX_HEADERS`] fields, or a path over hyper's fixed 64 KiB, which
//! no real client sends) still gets hyper's bare 431 (414).

use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::http_limits::{MAX_HEADER_BYTES, MAX_HEADER_COUNT, MAX_URI_BYTES};

/// Most header fields hyper parses. Above 100 hyper allocates the parse
/// table on the heap for every request: a few kilobytes, worth an answer
/// any client can read.
pub const HYPER_MAX_HEADERS: usize = 256;
/// hyper's read buffer, which must hold a request's whole head.
pub const HYPER_MAX_HEAD_BYTES: usize = 256 * 1024;
const _: () = assert!(HYPER_MAX_HEADERS > MAX_HEADER_COUNT);
const _: () = assert!(HYPER_MAX_HEAD_BYTES > 4 * (MAX_HEADER_BYTES + MAX_URI_BYTES));

/// Serves `app` on `listener` until `shutdown` completes, then stops
/// accepting, lets each connection finish the request in flight, and
/// returns once all are closed.
pub async fn serve(listener: TcpListener, app: Router, shutdown: impl Future<Output = ()>) {
    let (stop, stopping) = watch::channel(false);
    // Every connection holds a sender; `recv` returns `None` once all are gone.
    let (open, mut all_closed) = mpsc::channel::<()>(1);
    let mut shutdown = pin!(shutdown);
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(app.clone());
        let mut stopping = stopping.clone();
        let open = open.clone();
        tokio::spawn(async move {
            let mut builder = http1::Builder::new();
            builder
                .max_headers(HYPER_MAX_HEADERS)
                .max_buf_size(HYPER_MAX_HEAD_BYTES);
            let mut connection = pin!(builder.serve_connection(TokioIo::new(tcp), service));
            let served = tokio::select! {
                served = connection.as_mut() => served,
                _ = stopping.changed() => {
                    connection.as_mut().graceful_shutdown();
                    connection.as_mut().await
                }
            };
            if let Err(e) = served {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(open);
        });
    }
    drop(listener);
    let _ = stop.send(true);
    drop(open);
    let _ = all_closed.recv().await;
}

/// A failed `accept`: the connection's own trouble is skipped; anything
/// else (out of file descriptors) is logged and waited out, as
/// `axum::serve` does.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accepting a connection failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
