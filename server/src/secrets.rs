//! The server secret that keys PIN and code hashes. It lives in a file apart
//! from the database, so a leaked database alone reveals no PIN: without the
//! secret an attacker cannot even test guesses offline.

use std::io::Write;
use std::path::Path;

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

const SECRET_LEN: usize = 32;

#[derive(Clone)]
pub struct ServerSecret {
    key: hmac::Key,
}

impl std::fmt::Debug for ServerSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerSecret(..)")
    }
}

impl ServerSecret {
    /// Reads the secret, or creates the file (mode 0600) with fresh random bytes.
    pub fn load_or_create(path: &Path, rng: &SystemRandom) -> std::io::Result<ServerSecret> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = vec![0u8; SECRET_LEN];
                rng.fill(&mut bytes)
                    .map_err(|_| std::io::Error::other("no system randomness"))?;
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                options.open(path)?.write_all(&bytes)?;
                tracing::info!(path = %path.display(), "created a new PIN secret");
                bytes
            }
            Err(e) => return Err(e),
        };
        if bytes.len() < SECRET_LEN {
            return Err(std::io::Error::other(format!(
                "{} holds {} bytes; a PIN secret needs at least {SECRET_LEN}",
                path.display(),
                bytes.len()
            )));
        }
        Ok(ServerSecret {
            key: hmac::Key::new(hmac::HMAC_SHA256, &bytes),
        })
    }

    /// HMAC-SHA256 over `salt` and `secret_value`, hex encoded.
    pub fn hash(&self, salt: &str, secret_value: &str) -> String {
        hex::encode(hmac::sign(&self.key, &message(salt, secret_value)).as_ref())
    }

    /// Constant-time comparison of `secret_value` against a stored hash.
    pub fn verify(&self, salt: &str, secret_value: &str, stored_hex: &str) -> bool {
        match hex::decode(stored_hex) {
            Ok(tag) => hmac::verify(&self.key, &message(salt, secret_value), &tag).is_ok(),
            Err(_) => false,
        }
    }
}

fn message(salt: &str, value: &str) -> Vec<u8> {
    // Length-prefix the salt so no (salt, value) pair can collide with another.
    let mut m = Vec::with_capacity(8 + salt.len() + value.len());
    m.extend_from_slice(&(salt.len() as u64).to_be_bytes());
    m.extend_from_slice(salt.as_bytes());
    m.extend_from_slice(value.as_bytes());
    m
}

/// A random hex string of `bytes` bytes.
pub fn random_hex(rng: &SystemRandom, bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rng.fill(&mut buf).expect("system randomness is available");
    hex::encode(buf)
}

/// A uniformly random string of `digits` decimal digits.
pub fn random_digits(rng: &SystemRandom, digits: usize) -> String {
    let mut out = String::with_capacity(digits);
    while out.len() < digits {
        let mut b = [0u8; 1];
        rng.fill(&mut b).expect("system randomness is available");
        if b[0] < 250 {
            // 250 = 25 * 10: rejecting the rest keeps every digit equally likely.
            out.push(char::from(b'0' + b[0] % 10));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_file_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pin-secret");
        let rng = SystemRandom::new();
        let a = ServerSecret::load_or_create(&path, &rng).unwrap();
        let b = ServerSecret::load_or_create(&path, &rng).unwrap();
        let h = a.hash("salt", "1234");
        assert!(b.verify("salt", "1234", &h));
        assert!(!b.verify("salt", "1235", &h));
        assert!(!b.verify("salt2", "1234", &h));
        assert!(!b.verify("salt", "1234", "not hex"));
    }

    #[test]
    fn a_different_secret_cannot_check_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let rng = SystemRandom::new();
        let a = ServerSecret::load_or_create(&dir.path().join("a"), &rng).unwrap();
        let b = ServerSecret::load_or_create(&dir.path().join("b"), &rng).unwrap();
        assert!(!b.verify("salt", "1234", &a.hash("salt", "1234")));
    }

    #[test]
    fn short_secret_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("short");
        std::fs::write(&path, b"tiny").unwrap();
        assert!(ServerSecret::load_or_create(&path, &SystemRandom::new()).is_err());
    }

    #[test]
    fn random_digits_are_digits() {
        let code = random_digits(&SystemRandom::new(), 6);
        assert_eq!(code.len(), 6);
        assert!(code.bytes().all(|b| b.is_ascii_digit()));
    }
}
