//! Refusals at the HTTP level, on a real server over loopback: every one is
//! `{code, message}` JSON with its code's status, and none breaks the
//! keep-alive connection for the request after it. Framing is tested over
//! raw TCP, where the test decides exactly which bytes go when.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use clink_core::wire::signing::{self, DeviceKey};
use clink_core::wire::{ErrorCode, paths};
use common::{Backend, TestServer};
use ring::rand::SystemRandom;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a test waits for an answer before calling the connection dead.
const PATIENCE: Duration = Duration::from_secs(10);

/// One answer read off the wire.
#[derive(Debug)]
struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Checks the API's error shape and returns the code.
    fn error_code(&self) -> String {
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "{self:?}"
        );
        let json: serde_json::Value = serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&self.body)));
        let (code, message) = (json["code"].as_str(), json["message"].as_str());
        assert!(message.is_some_and(|m| !m.is_empty()), "{json}");
        let code = code
            .unwrap_or_else(|| panic!("no code: {json}"))
            .to_string();
        let parsed: ErrorCode = serde_json::from_value(json["code"].clone()).unwrap();
        assert_eq!(parsed.http_status(), self.status, "{json}");
        code
    }
}

/// One HTTP/1.1 connection, driven by hand.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).await.unwrap();
        // Each write leaves at once, as the test wrote it.
        stream.set_nodelay(true).unwrap();
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    /// Reads more bytes; `Ok(false)` at the end of the stream.
    async fn fill(&mut self) -> std::io::Result<bool> {
        let mut chunk = [0u8; 16 * 1024];
        let n = tokio::time::timeout(PATIENCE, self.stream.read(&mut chunk))
            .await
            .map_err(|_| std::io::Error::other("no answer in time"))??;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    }

    /// The next answer; an error if the connection ends first.
    async fn response(&mut self) -> std::io::Result<RawResponse> {
        let closed = || std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed");
        let (head_len, status, headers) = loop {
            let mut fields = [httparse::EMPTY_HEADER; 64];
            let mut parsed = httparse::Response::new(&mut fields);
            match parsed.parse(&self.buf).map_err(std::io::Error::other)? {
                httparse::Status::Complete(len) => {
                    let headers = parsed
                        .headers
                        .iter()
                        .map(|h| {
                            let value = String::from_utf8_lossy(h.value).into_owned();
                            (h.name.to_string(), value)
                        })
                        .collect::<Vec<_>>();
                    break (len, parsed.code.unwrap(), headers);
                }
                httparse::Status::Partial => {
                    if !self.fill().await? {
                        return Err(closed());
                    }
                }
            }
        };
        let length: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map_or(0, |(_, v)| v.parse().unwrap());
        while self.buf.len() < head_len + length {
            if !self.fill().await? {
                return Err(closed());
            }
        }
        let body = self.buf[head_len..head_len + length].to_vec();
        self.buf.drain(..head_len + length);
        Ok(RawResponse {
            status,
            headers,
            body,
        })
    }

    /// Whether the server closed the connection (after any answers).
    async fn is_closed(&mut self) -> bool {
        self.buf.is_empty() && matches!(self.fill().await, Ok(false) | Err(_))
    }

    async fn request(&mut self, bytes: &[u8]) -> RawResponse {
        self.send(bytes).await.unwrap();
        self.response().await.unwrap()
    }
}

const CLOCK: &[u8] = b"GET /v1/time HTTP/1.1\r\nhost: clink\r\n\r\n";

async fn server() -> TestServer {
    TestServer::start(Backend::Sqlite, |_| {})
        .await
        .expect("SQLite is always there")
}

/// A POST whose head and body go separately, the body a moment later as on
/// a real network. Without a signature, the server can refuse it from the
/// head alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_before_the_body_leaves_the_connection_usable_a_thousand_times() {
    let ts = server().await;
    let body = format!(
        r#"{{"idempotency_key":"k-1","payee":"090-1111-1111","amount":1,"pin":"1234","memo":"{}"}}"#,
        "x".repeat(150)
    );
    let head = format!(
        "POST {} HTTP/1.1\r\nhost: clink\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        paths::SEND,
        body.len()
    );
    let mut conn = Conn::open(ts.server.addr).await;
    let mut dropped = Vec::new();
    for round in 0..1_000 {
        let split = round % 2 == 0;
        let attempt = async {
            conn.send(head.as_bytes()).await?;
            if split {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            conn.send(body.as_bytes()).await?;
            let refused = conn.response().await?;
            conn.send(CLOCK).await?;
            let next = conn.response().await?;
            Ok::<_, std::io::Error>((refused, next))
        };
        match attempt.await {
            Ok((refused, next)) => {
                assert_eq!(
                    (refused.status, refused.error_code().as_str()),
                    (401, "unauthenticated")
                );
                assert_eq!(next.status, 200, "{next:?}");
            }
            Err(e) => {
                dropped.push((round, e.to_string()));
                conn = Conn::open(ts.server.addr).await;
            }
        }
    }
    assert!(
        dropped.is_empty(),
        "{} of 1000 connections dropped, first: {:?}",
        dropped.len(),
        dropped.first()
    );
}

/// hyper would answer these itself with an empty body; the server's own
/// limits answer first, over raw TCP as any client sees them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_heads_are_431_or_414_json_and_the_connection_goes_on() {
    let ts = server().await;
    let mut conn = Conn::open(ts.server.addr).await;

    let one_big_header = format!(
        "GET /v1/time HTTP/1.1\r\nhost: clink\r\nx-padding: {}\r\n\r\n",
        "a".repeat(20 * 1024)
    );
    let answer = conn.request(one_big_header.as_bytes()).await;
    assert_eq!(
        (answer.status, answer.error_code().as_str()),
        (431, "headers_too_large")
    );
    assert_eq!(conn.request(CLOCK).await.status, 200);

    // More fields than hyper's default limit (100) would let through.
    let fields: String = (0..150).map(|i| format!("x-field-{i}: {i}\r\n")).collect();
    let many = format!("GET /v1/time HTTP/1.1\r\nhost: clink\r\n{fields}\r\n");
    let answer = conn.request(many.as_bytes()).await;
    assert_eq!(
        (answer.status, answer.error_code().as_str()),
        (431, "headers_too_large")
    );
    assert_eq!(conn.request(CLOCK).await.status, 200);

    let long_uri = format!(
        "GET /v1/time?pad={} HTTP/1.1\r\nhost: clink\r\n\r\n",
        "a".repeat(10 * 1024)
    );
    let answer = conn.request(long_uri.as_bytes()).await;
    assert_eq!(
        (answer.status, answer.error_code().as_str()),
        (414, "uri_too_long")
    );
    assert_eq!(conn.request(CLOCK).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_bodies_are_413_json_and_the_connection_survives_a_small_excess() {
    let ts = server().await;
    let mut conn = Conn::open(ts.server.addr).await;
    let limit = clink_server::http_limits::MAX_BODY_BYTES;

    // One byte over, all sent: read to its end, refused, connection kept.
    let body = vec![b' '; limit + 1];
    let mut request = format!(
        "POST {} HTTP/1.1\r\nhost: clink\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        paths::REGISTER,
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    let answer = conn.request(&request).await;
    assert_eq!(
        (answer.status, answer.error_code().as_str()),
        (413, "payload_too_large")
    );
    assert_eq!(answer.header("connection"), None);
    assert_eq!(conn.request(CLOCK).await.status, 200);

    // The same without a length (chunked).
    let chunk = vec![b' '; limit / 2 + 1];
    let mut chunked = format!(
        "POST {} HTTP/1.1\r\nhost: clink\r\ntransfer-encoding: chunked\r\n\r\n",
        paths::REGISTER
    )
    .into_bytes();
    for _ in 0..2 {
        chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend_from_slice(&chunk);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let answer = conn.request(&chunked).await;
    assert_eq!(
        (answer.status, answer.error_code().as_str()),
        (413, "payload_too_large")
    );
    assert_eq!(conn.request(CLOCK).await.status, 200);

    // The sync endpoint takes larger bodies: this one reaches the
    // signature check.
    let big = vec![b' '; 200 * 1024];
    let mut request = format!(
        "POST {} HTTP/1.1\r\nhost: clink\r\ncontent-length: {}\r\n\r\n",
        paths::SYNC,
        big.len()
    )
    .into_bytes();
    request.extend_from_slice(&big);
    let answer = conn.request(&request).await;
    assert_eq!(
        (answer.status, answer.error_code().as_str()),
        (401, "unauthenticated")
    );

    // Announced far too large: refused before a byte of it is read, and
    // the connection is closed after the answer, as it says.
    let huge = format!(
        "POST {} HTTP/1.1\r\nhost: clink\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        paths::REGISTER,
        100 * 1024 * 1024
    );
    let answer = conn.request(huge.as_bytes()).await;
    assert_eq!(
        (answer.status, answer.error_code().as_str()),
        (413, "payload_too_large")
    );
    assert_eq!(answer.header("connection"), Some("close"));
    assert!(conn.is_closed().await);
}

/// Path segments that do not decode to UTF-8, on every route with one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_paths_are_400_json() {
    let ts = server().await;
    let http = reqwest::Client::new();
    for (method, path) in [
        ("GET", "/v1/transfers/%ff"),
        ("POST", "/v1/claims/%ff/approve"),
        ("POST", "/v1/claims/t_1/%c3%28"),
        ("GET", "/v1/bumps/%ff"),
        ("GET", "/v1/sound-tokens/%ff%fe"),
    ] {
        let answer = send(&http, &ts, method, path, &[], &[]).await;
        assert_eq!(
            (answer.status, answer.error_code().as_str()),
            (400, "invalid_request"),
            "{method} {path}"
        );
        let message = String::from_utf8_lossy(&answer.body).into_owned();
        assert!(message.contains("path is not valid"), "{message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_are_404_and_wrong_methods_405_json() {
    let ts = server().await;
    let http = reqwest::Client::new();
    let answer = send(&http, &ts, "GET", "/v1/nothing", &[], &[]).await;
    assert_eq!(
        (answer.status, answer.error_code().as_str()),
        (404, "not_found")
    );
    let answer = send(&http, &ts, "POST", "/nothing/at/all", &[], b"{}").await;
    assert_eq!(
        (answer.status, answer.error_code().as_str()),
        (404, "not_found")
    );

    let answer = send(&http, &ts, "DELETE", paths::SEND, &[], &[]).await;
    assert_eq!(
        (answer.status, answer.error_code().as_str()),
        (405, "method_not_allowed")
    );
    assert_eq!(answer.header("allow"), Some("POST"));
    let answer = send(&http, &ts, "POST", paths::HEALTH, &[], b"{}").await;
    assert_eq!(
        (answer.status, answer.error_code().as_str()),
        (405, "method_not_allowed")
    );
    assert_eq!(answer.header("allow"), Some("GET,HEAD"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_json_wrong_content_types_and_bad_queries_are_4xx_json() {
    let ts = server().await;
    let alice = ts.user("Alice", "1234").await;
    let http = reqwest::Client::new();
    let json = [("content-type", "application/json")];
    let send_body = br#"{"idempotency_key":"k-1","payee":"090-9999-9999","amount":1,"pin":"1234"}"#;

    for (content_type, body, status, code) in [
        ("application/json", &b"{not json"[..], 400, "malformed_json"),
        (
            "application/json",
            br#"{"payee":"090-1111-1111"}"#,
            400,
            "malformed_json",
        ),
        ("application/json", b"", 400, "malformed_json"),
        ("text/plain", send_body, 415, "unsupported_media_type"),
        (
            "application/x-www-form-urlencoded",
            send_body,
            415,
            "unsupported_media_type",
        ),
        ("not a media type", send_body, 415, "unsupported_media_type"),
        // JSON with parameters, or a +json type, reaches the handler.
        (
            "application/json; charset=utf-8",
            send_body,
            404,
            "unknown_payee",
        ),
        (
            "application/vnd.clink+json",
            send_body,
            404,
            "unknown_payee",
        ),
    ] {
        let headers = signed(&alice.key, "POST", paths::SEND, body);
        let mut all = headers
            .iter()
            .map(|(n, v)| (*n, v.as_str()))
            .collect::<Vec<_>>();
        all.push(("content-type", content_type));
        let answer = send(&http, &ts, "POST", paths::SEND, &all, body).await;
        assert_eq!(
            (answer.status, answer.error_code().as_str()),
            (status, code),
            "{content_type}: {}",
            String::from_utf8_lossy(body)
        );
    }

    // The unsigned registration checks its body the same way.
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let answer = send(&http, &ts, "POST", paths::REGISTER, &form, b"phone=1").await;
    assert_eq!(
        (answer.status, answer.error_code().as_str()),
        (415, "unsupported_media_type")
    );
    let answer = send(&http, &ts, "POST", paths::REGISTER, &json, b"[1,").await;
    assert_eq!(
        (answer.status, answer.error_code().as_str()),
        (400, "malformed_json")
    );

    let path = "/v1/history?limit=abc";
    let headers = signed(&alice.key, "GET", path, b"");
    let all = headers
        .iter()
        .map(|(n, v)| (*n, v.as_str()))
        .collect::<Vec<_>>();
    let answer = send(&http, &ts, "GET", path, &all, b"").await;
    assert_eq!(
        (answer.status, answer.error_code().as_str()),
        (400, "invalid_request")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_challenge_request_with_a_malformed_body_is_refused() {
    let ts = server().await;
    let alice = ts.user("Alice", "1234").await;
    let http = reqwest::Client::new();
    for body in [&b"{not json"[..], br#"{"amount":5}"#, b"null", b""] {
        let headers = signed(&alice.key, "POST", paths::CHALLENGES, body);
        let mut all = headers
            .iter()
            .map(|(n, v)| (*n, v.as_str()))
            .collect::<Vec<_>>();
        all.push(("content-type", "application/json"));
        let answer = send(&http, &ts, "POST", paths::CHALLENGES, &all, body).await;
        assert_eq!(
            (answer.status, answer.error_code().as_str()),
            (400, "malformed_json"),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    // `{}` is the body: it goes on to the next check (no OCRA key yet).
    let refused = common::code_of(alice.client.new_challenge().await);
    assert_eq!(refused.code, ErrorCode::OcraKeyNotRegistered);
}

/// The signing headers for a request by `key`.
fn signed(key: &DeviceKey, method: &str, path: &str, body: &[u8]) -> Vec<(&'static str, String)> {
    let nonce = signing::new_nonce(&SystemRandom::new());
    key.sign(method, path, body, clink_server::now_ms(), &nonce)
        .into_iter()
        .collect()
}

/// One request through a real HTTP client.
async fn send(
    http: &reqwest::Client,
    ts: &TestServer,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> RawResponse {
    let mut request = http.request(method.parse().unwrap(), format!("{}{path}", ts.url()));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.body(body.to_vec()).send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = response.bytes().await.unwrap().to_vec();
    RawResponse {
        status,
        headers,
        body,
    }
}
