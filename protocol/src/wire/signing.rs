//! Request signing: how the server knows a request comes from a registered
//! device and was not altered or replayed.
//!
//! Every signed request carries four headers:
//!
//! | header              | value                                                   |
//! |---------------------|---------------------------------------------------------|
//! | `x-clink-key`       | the device's Ed25519 public key, base64url, no padding  |
//! | `x-clink-timestamp` | the client's Unix time in milliseconds                  |
//! | `x-clink-nonce`     | 16–64 characters of `[A-Za-z0-9_-]`, never reused       |
//! | `x-clink-signature` | Ed25519 signature of the message below, base64url       |
//!
//! The signed message is these lines joined by `\n` (no trailing newline):
//! `clink-v1`, the HTTP method in upper case, the path with its query string,
//! the lowercase hex SHA-256 of the raw body (of the empty string for no
//! body), the timestamp, and the nonce.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SecureRandom;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

pub const HEADER_KEY: &str = "x-clink-key";
pub const HEADER_TIMESTAMP: &str = "x-clink-timestamp";
pub const HEADER_NONCE: &str = "x-clink-nonce";
pub const HEADER_SIGNATURE: &str = "x-clink-signature";

/// How far a request's timestamp may be from the server's clock.
pub const MAX_CLOCK_SKEW_MS: i64 = 5 * 60 * 1000;

const SCHEME: &str = "clink-v1";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    #[error("the public key is not 32 bytes of base64url")]
    MalformedKey,
    #[error("the signature is not 64 bytes of base64url")]
    MalformedSignature,
    #[error("the nonce must be 16 to 64 characters of A-Z, a-z, 0-9, '-' or '_'")]
    MalformedNonce,
    #[error("the signature does not match the request")]
    BadSignature,
    #[error("the key pair could not be generated or read")]
    KeyRejected,
}

/// The bytes a device signs for one request.
pub fn message(
    method: &str,
    path_and_query: &str,
    body: &[u8],
    timestamp_ms: i64,
    nonce: &str,
) -> Vec<u8> {
    let body_hash = hex::encode(ring::digest::digest(&ring::digest::SHA256, body));
    format!(
        "{SCHEME}\n{}\n{path_and_query}\n{body_hash}\n{timestamp_ms}\n{nonce}",
        method.to_ascii_uppercase()
    )
    .into_bytes()
}

pub fn is_valid_nonce(nonce: &str) -> bool {
    (16..=64).contains(&nonce.len())
        && nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A device's signing key. The PKCS#8 bytes are the secret to keep in the
/// platform's secret store.
pub struct DeviceKey {
    pair: Ed25519KeyPair,
}

impl DeviceKey {
    /// Makes a new key; returns it with the PKCS#8 document to store.
    pub fn generate(rng: &dyn SecureRandom) -> Result<(DeviceKey, Vec<u8>), SigningError> {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(rng).map_err(|_| SigningError::KeyRejected)?;
        let key = DeviceKey::from_pkcs8(pkcs8.as_ref())?;
        Ok((key, pkcs8.as_ref().to_vec()))
    }

    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<DeviceKey, SigningError> {
        Ed25519KeyPair::from_pkcs8(pkcs8)
            .map(|pair| DeviceKey { pair })
            .map_err(|_| SigningError::KeyRejected)
    }

    /// The public key as it goes in `x-clink-key`.
    pub fn public_key_b64(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.pair.public_key().as_ref())
    }

    /// The four headers for one request.
    pub fn sign(
        &self,
        method: &str,
        path_and_query: &str,
        body: &[u8],
        timestamp_ms: i64,
        nonce: &str,
    ) -> [(&'static str, String); 4] {
        let signature = self
            .pair
            .sign(&message(method, path_and_query, body, timestamp_ms, nonce));
        [
            (HEADER_KEY, self.public_key_b64()),
            (HEADER_TIMESTAMP, timestamp_ms.to_string()),
            (HEADER_NONCE, nonce.to_string()),
            (HEADER_SIGNATURE, URL_SAFE_NO_PAD.encode(signature.as_ref())),
        ]
    }
}

/// A fresh random nonce (32 hex characters).
pub fn new_nonce(rng: &dyn SecureRandom) -> String {
    let mut bytes = [0u8; 16];
    rng.fill(&mut bytes)
        .expect("system randomness is available");
    hex::encode(bytes)
}

/// Decodes a base64url public key, checking its length.
pub fn decode_public_key(b64: &str) -> Result<[u8; 32], SigningError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(b64)
        .map_err(|_| SigningError::MalformedKey)?;
    bytes.try_into().map_err(|_| SigningError::MalformedKey)
}

/// Checks one request's signature. The caller checks the timestamp window
/// and that the nonce was never seen before.
pub fn verify(
    public_key: &[u8; 32],
    signature_b64: &str,
    method: &str,
    path_and_query: &str,
    body: &[u8],
    timestamp_ms: i64,
    nonce: &str,
) -> Result<(), SigningError> {
    if !is_valid_nonce(nonce) {
        return Err(SigningError::MalformedNonce);
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature_b64)
        .ok()
        .filter(|s| s.len() == 64)
        .ok_or(SigningError::MalformedSignature)?;
    UnparsedPublicKey::new(&ED25519, public_key)
        .verify(
            &message(method, path_and_query, body, timestamp_ms, nonce),
            &signature,
        )
        .map_err(|_| SigningError::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;

    fn header<'a>(headers: &'a [(&'static str, String); 4], name: &str) -> &'a str {
        &headers.iter().find(|(n, _)| *n == name).unwrap().1
    }

    #[test]
    fn signed_request_verifies_and_any_change_breaks_it() {
        let rng = SystemRandom::new();
        let (key, _) = DeviceKey::generate(&rng).unwrap();
        let nonce = new_nonce(&rng);
        let body = br#"{"amount":800}"#;
        let headers = key.sign(
            "post",
            "/v1/transfers/send",
            body,
            1_700_000_000_000,
            &nonce,
        );
        let pk = decode_public_key(header(&headers, HEADER_KEY)).unwrap();
        let sig = header(&headers, HEADER_SIGNATURE);
        let ts = 1_700_000_000_000;
        assert_eq!(
            verify(&pk, sig, "POST", "/v1/transfers/send", body, ts, &nonce),
            Ok(())
        );

        let tampered = [
            verify(&pk, sig, "GET", "/v1/transfers/send", body, ts, &nonce),
            verify(&pk, sig, "POST", "/v1/transfers/sendx", body, ts, &nonce),
            verify(
                &pk,
                sig,
                "POST",
                "/v1/transfers/send",
                br#"{"amount":900}"#,
                ts,
                &nonce,
            ),
            verify(&pk, sig, "POST", "/v1/transfers/send", body, ts + 1, &nonce),
            verify(
                &pk,
                sig,
                "POST",
                "/v1/transfers/send",
                body,
                ts,
                &new_nonce(&rng),
            ),
        ];
        for result in tampered {
            assert_eq!(result, Err(SigningError::BadSignature));
        }
    }

    #[test]
    fn key_survives_storage_as_pkcs8() {
        let rng = SystemRandom::new();
        let (key, pkcs8) = DeviceKey::generate(&rng).unwrap();
        let again = DeviceKey::from_pkcs8(&pkcs8).unwrap();
        assert_eq!(key.public_key_b64(), again.public_key_b64());
    }

    #[test]
    fn malformed_inputs_are_named() {
        assert_eq!(decode_public_key("abc"), Err(SigningError::MalformedKey));
        let pk = [0u8; 32];
        let nonce = "n".repeat(16);
        assert_eq!(
            verify(&pk, "!!", "GET", "/", b"", 0, &nonce),
            Err(SigningError::MalformedSignature)
        );
        assert_eq!(
            verify(&pk, "AAAA", "GET", "/", b"", 0, "short"),
            Err(SigningError::MalformedNonce)
        );
        assert!(!is_valid_nonce("has space in it ....."));
    }

    #[test]
    fn message_layout_is_stable() {
        // A fixed vector so clients in other languages can check themselves.
        let m = message("post", "/v1/x?a=1", b"", 42, "0123456789abcdef");
        assert_eq!(
            String::from_utf8(m).unwrap(),
            "clink-v1\nPOST\n/v1/x?a=1\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n42\n0123456789abcdef"
        );
    }
}
