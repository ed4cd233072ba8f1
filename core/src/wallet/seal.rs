//! Outbox items at rest: a queued send carries the PIN (the server checks it
//! on every send), so the signed item is sealed with ChaCha20-Poly1305 under
//! a key that lives in the `SecretStore`, never in SQLite. The idempotency
//! key is the associated data, so a sealed item cannot be moved to another
//! row without failing to open.

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::SecureRandom;
use zeroize::Zeroizing;

use crate::secrets::{SecretError, SecretStore};

/// Name of the outbox sealing key in the secret store.
pub const OUTBOX_KEY: &str = "wallet-outbox-key";

const KEY_LEN: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("a sealed outbox item does not open: it was altered, or the outbox key changed")]
    Unopenable,
    #[error("no randomness available to seal an item")]
    NoRandomness,
}

pub struct Sealer {
    key: LessSafeKey,
}

impl Sealer {
    /// The store's outbox key, made and stored on first use.
    pub fn load_or_create(
        store: &dyn SecretStore,
        rng: &dyn SecureRandom,
    ) -> Result<Sealer, SealError> {
        let bytes = match store.get(OUTBOX_KEY)? {
            Some(b) if b.expose().len() == KEY_LEN => Zeroizing::new(b.expose().to_vec()),
            Some(_) => {
                return Err(SecretError::Malformed {
                    name: OUTBOX_KEY.into(),
                    expected: "32-byte ChaCha20-Poly1305 key",
                }
                .into());
            }
            None => {
                let mut fresh = Zeroizing::new(vec![0u8; KEY_LEN]);
                rng.fill(&mut fresh).map_err(|_| SealError::NoRandomness)?;
                store.put(OUTBOX_KEY, &fresh)?;
                fresh
            }
        };
        let key = UnboundKey::new(&CHACHA20_POLY1305, &bytes).map_err(|_| SealError::Unopenable)?;
        Ok(Sealer {
            key: LessSafeKey::new(key),
        })
    }

    /// `nonce ‖ ciphertext ‖ tag`, bound to `context`.
    pub fn seal(
        &self,
        plaintext: &[u8],
        context: &str,
        rng: &dyn SecureRandom,
    ) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill(&mut nonce).map_err(|_| SealError::NoRandomness)?;
        let mut sealed = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| SealError::Unopenable)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    pub fn open(&self, sealed: &[u8], context: &str) -> Result<Zeroizing<Vec<u8>>, SealError> {
        if sealed.len() < NONCE_LEN {
            return Err(SealError::Unopenable);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Unopenable)?;
        let mut buf = Zeroizing::new(body.to_vec());
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buf)
            .map_err(|_| SealError::Unopenable)?
            .to_vec();
        Ok(Zeroizing::new(plain))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::MemorySecretStore;
    use ring::rand::SystemRandom;

    #[test]
    fn sealed_items_open_only_with_their_context_and_hide_the_pin() {
        let store = MemorySecretStore::new();
        let rng = SystemRandom::new();
        let sealer = Sealer::load_or_create(&store, &rng).unwrap();
        let plain = br#"{"pin":"4321","amount":800}"#;
        let sealed = sealer.seal(plain, "key-1", &rng).unwrap();
        assert!(!sealed.windows(4).any(|w| w == b"4321"));
        assert_eq!(sealer.open(&sealed, "key-1").unwrap().as_slice(), plain);
        assert_eq!(sealer.open(&sealed, "key-2"), Err(SealError::Unopenable));
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(sealer.open(&flipped, "key-1"), Err(SealError::Unopenable));
        // The same store gives back the same key.
        let again = Sealer::load_or_create(&store, &rng).unwrap();
        assert_eq!(again.open(&sealed, "key-1").unwrap().as_slice(), plain);
        // Another store's key cannot open it.
        let other = Sealer::load_or_create(&MemorySecretStore::new(), &rng).unwrap();
        assert_eq!(other.open(&sealed, "key-1"), Err(SealError::Unopenable));
    }
}
