//! Where device secrets live: the Ed25519 signing key (PKCS#8, see
//! [`wire::signing`](crate::wire::signing)) and the OCRA key (see
//! [`challenge`](crate::challenge)).
//!
//! They go in the platform's secret store, never in SQLite, files or logs.
//! Each platform supplies a [`SecretStore`]: the mobile apps implement it
//! over the Android Keystore / iOS Keychain through the bindings, tests use
//! [`MemorySecretStore`], and desktop Linux can use `KeyringSecretStore`
//! (cargo feature `os-keyring`), which keeps secrets in the kernel's keyutils
//! keyrings.
//!
//! Types that hold secret bytes ([`SecretBytes`], [`OcraKey`]) do not print
//! them in `Debug` and wipe them when dropped.
//!
//! Secret names are 1 to [`MAX_NAME_LEN`] characters of `a-z`, `0-9`, `.`,
//! `_` and `-`, so every store can use them as they are.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use ring::rand::SecureRandom;
use zeroize::Zeroizing;

use crate::challenge::OcraKey;
use crate::wire::signing::DeviceKey;

/// Name of the device's Ed25519 signing key (PKCS#8 document).
pub const DEVICE_SIGNING_KEY: &str = "device-signing-key";

/// Name of the install's OCRA key.
pub const OCRA_KEY: &str = "ocra-key";

pub const MAX_NAME_LEN: usize = 64;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error(
        "secret name {name:?} is invalid: use 1 to {MAX_NAME_LEN} of a-z, 0-9, '.', '_' and '-'"
    )]
    InvalidName { name: String },
    #[error("secret {name:?} is empty: stores hold only non-empty secrets")]
    EmptySecret { name: String },
    #[error("secret {name:?} holds something that is not a valid {expected}")]
    Malformed {
        name: String,
        expected: &'static str,
    },
    #[error("could not create secret {name:?}: {reason}")]
    Generation { name: String, reason: String },
    #[error("the secret store cannot be used: {reason}")]
    Unavailable { reason: String },
    #[error("the secret store failed on {name:?}: {reason}")]
    Backend { name: String, reason: String },
}

/// Secret bytes read from a store. `Debug` shows only the length, and the
/// bytes are wiped when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretBytes(Zeroizing::new(bytes))
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes(<{} bytes redacted>)", self.0.len())
    }
}

/// A place to keep device secrets by name.
pub trait SecretStore: Send + Sync {
    /// The secret, or `None` if there is none by that name.
    fn get(&self, name: &str) -> Result<Option<SecretBytes>, SecretError>;

    /// Stores a secret, replacing any with the same name.
    fn put(&self, name: &str, secret: &[u8]) -> Result<(), SecretError>;

    /// Removes a secret; returns whether there was one.
    fn delete(&self, name: &str) -> Result<bool, SecretError>;
}

/// Checks a name against the rule in the module docs.
pub fn check_name(name: &str) -> Result<(), SecretError> {
    let valid = (1..=MAX_NAME_LEN).contains(&name.len())
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        });
    if valid {
        Ok(())
    } else {
        Err(SecretError::InvalidName {
            name: name.to_string(),
        })
    }
}

fn check_put(name: &str, secret: &[u8]) -> Result<(), SecretError> {
    check_name(name)?;
    if secret.is_empty() {
        return Err(SecretError::EmptySecret {
            name: name.to_string(),
        });
    }
    Ok(())
}

/// Secrets in process memory, for tests and for hosts without a keychain.
#[derive(Default)]
pub struct MemorySecretStore {
    secrets: Mutex<HashMap<String, SecretBytes>>,
}

impl MemorySecretStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn secrets(&self) -> std::sync::MutexGuard<'_, HashMap<String, SecretBytes>> {
        // A panic elsewhere while holding the lock cannot leave the map half
        // updated (every operation is a single insert/remove), so go on.
        self.secrets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl fmt::Debug for MemorySecretStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<String> = self.secrets().keys().cloned().collect();
        names.sort();
        f.debug_struct("MemorySecretStore")
            .field("names", &names)
            .finish()
    }
}

impl SecretStore for MemorySecretStore {
    fn get(&self, name: &str) -> Result<Option<SecretBytes>, SecretError> {
        check_name(name)?;
        Ok(self.secrets().get(name).cloned())
    }

    fn put(&self, name: &str, secret: &[u8]) -> Result<(), SecretError> {
        check_put(name, secret)?;
        self.secrets()
            .insert(name.to_string(), SecretBytes::new(secret.to_vec()));
        Ok(())
    }

    fn delete(&self, name: &str) -> Result<bool, SecretError> {
        check_name(name)?;
        Ok(self.secrets().remove(name).is_some())
    }
}

/// The install's OCRA key, made and stored on first use.
pub fn ocra_key(store: &dyn SecretStore, rng: &dyn SecureRandom) -> Result<OcraKey, SecretError> {
    if let Some(bytes) = store.get(OCRA_KEY)? {
        return OcraKey::from_bytes(bytes.expose()).map_err(|_| SecretError::Malformed {
            name: OCRA_KEY.to_string(),
            expected: "32-byte OCRA key",
        });
    }
    let key = OcraKey::generate(rng).map_err(|e| SecretError::Generation {
        name: OCRA_KEY.to_string(),
        reason: e.to_string(),
    })?;
    store.put(OCRA_KEY, key.as_bytes())?;
    Ok(key)
}

/// The device's signing key, made and stored on first use.
pub fn device_key(
    store: &dyn SecretStore,
    rng: &dyn SecureRandom,
) -> Result<DeviceKey, SecretError> {
    if let Some(pkcs8) = store.get(DEVICE_SIGNING_KEY)? {
        return DeviceKey::from_pkcs8(pkcs8.expose()).map_err(|_| SecretError::Malformed {
            name: DEVICE_SIGNING_KEY.to_string(),
            expected: "Ed25519 PKCS#8 document",
        });
    }
    let (key, pkcs8) = DeviceKey::generate(rng).map_err(|e| SecretError::Generation {
        name: DEVICE_SIGNING_KEY.to_string(),
        reason: e.to_string(),
    })?;
    let pkcs8 = Zeroizing::new(pkcs8);
    store.put(DEVICE_SIGNING_KEY, &pkcs8)?;
    Ok(key)
}

#[cfg(all(feature = "os-keyring", target_os = "linux"))]
pub use os_keyring::KeyringSecretStore;

/// The OS keyring behind the `os-keyring` feature (Linux keyutils for now).
#[cfg(all(feature = "os-keyring", target_os = "linux"))]
mod os_keyring {
    use std::collections::HashMap;
    use std::fmt;
    use std::sync::Arc;

    use keyring_core::api::CredentialPersistence;
    use keyring_core::{CredentialStore, Entry, Error as KeyringError};
    use linux_keyutils::{KeyRing, KeyRingIdentifier};

    use super::{SecretBytes, SecretError, SecretStore, check_name, check_put};

    /// Secrets in the Linux kernel's keyutils keyrings, one key per secret,
    /// described as `clink:<name>@<service>`.
    ///
    /// keyutils needs no daemon, but keeps keys in kernel memory: they last
    /// as long as the user's session or persistent keyring, not across a
    /// reboot (see [`KeyringSecretStore::survives_reboot`]).
    pub struct KeyringSecretStore {
        store: Arc<CredentialStore>,
        service: String,
    }

    impl fmt::Debug for KeyringSecretStore {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("KeyringSecretStore")
                .field("service", &self.service)
                .finish()
        }
    }

    impl KeyringSecretStore {
        /// A store whose secrets are scoped by `service` (e.g. `"clink"`;
        /// the same name rules as secrets).
        ///
        /// Makes sure the process has a session keyring, creating one if it
        /// has none (a process started outside a login session, such as a
        /// CI job, has none and could not add keys otherwise).
        pub fn new(service: &str) -> Result<Self, SecretError> {
            check_name(service)?;
            KeyRing::from_special_id(KeyRingIdentifier::Session, true).map_err(|e| {
                SecretError::Unavailable {
                    reason: format!("no session keyring: {e:?}"),
                }
            })?;
            let config = HashMap::from([("prefix", "clink:"), ("service_no_divider", "true")]);
            let store = linux_keyutils_keyring_store::Store::new_with_configuration(&config)
                .map_err(|e| SecretError::Unavailable {
                    reason: describe(&e),
                })?;
            Ok(KeyringSecretStore {
                store,
                service: service.to_string(),
            })
        }

        /// Whether secrets outlive a reboot. keyutils keeps them only in
        /// kernel memory, so a caller must be ready to enrol again.
        pub fn survives_reboot(&self) -> bool {
            matches!(self.store.persistence(), CredentialPersistence::UntilDelete)
        }

        fn entry(&self, name: &str) -> Result<Entry, SecretError> {
            check_name(name)?;
            self.store
                .build(&self.service, name, None)
                .map_err(|e| backend(name, &e))
        }
    }

    /// Text for an error, never including stored bytes (some variants carry them).
    fn describe(error: &KeyringError) -> String {
        match error {
            KeyringError::BadEncoding(_) | KeyringError::BadDataFormat(..) => {
                "the stored data has an unexpected format".to_string()
            }
            other => other.to_string(),
        }
    }

    fn backend(name: &str, error: &KeyringError) -> SecretError {
        match error {
            KeyringError::NoStorageAccess(_) | KeyringError::NoDefaultStore => {
                SecretError::Unavailable {
                    reason: describe(error),
                }
            }
            _ => SecretError::Backend {
                name: name.to_string(),
                reason: describe(error),
            },
        }
    }

    impl SecretStore for KeyringSecretStore {
        fn get(&self, name: &str) -> Result<Option<SecretBytes>, SecretError> {
            match self.entry(name)?.get_secret() {
                Ok(bytes) => Ok(Some(SecretBytes::new(bytes))),
                Err(KeyringError::NoEntry) => Ok(None),
                Err(e) => Err(backend(name, &e)),
            }
        }

        fn put(&self, name: &str, secret: &[u8]) -> Result<(), SecretError> {
            check_put(name, secret)?;
            self.entry(name)?
                .set_secret(secret)
                .map_err(|e| backend(name, &e))
        }

        fn delete(&self, name: &str) -> Result<bool, SecretError> {
            match self.entry(name)?.delete_credential() {
                Ok(()) => Ok(true),
                Err(KeyringError::NoEntry) => Ok(false),
                Err(e) => Err(backend(name, &e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;

    /// The behaviour every store must have; run against each implementation.
    fn exercise_store(store: &dyn SecretStore, prefix: &str) {
        let name = format!("{prefix}-roundtrip");
        assert_eq!(
            store.get(&name).unwrap(),
            None,
            "missing secret reads as None"
        );

        store.put(&name, b"first secret").unwrap();
        assert_eq!(store.get(&name).unwrap().unwrap().expose(), b"first secret");

        let binary: Vec<u8> = (0..=255).collect();
        store.put(&name, &binary).unwrap();
        assert_eq!(
            store.get(&name).unwrap().unwrap().expose(),
            &binary[..],
            "overwrite replaces"
        );

        let other = format!("{prefix}-other");
        store.put(&other, b"x").unwrap();
        assert_eq!(
            store.get(&name).unwrap().unwrap().expose(),
            &binary[..],
            "names are separate"
        );

        assert!(store.delete(&name).unwrap());
        assert_eq!(store.get(&name).unwrap(), None);
        assert!(
            !store.delete(&name).unwrap(),
            "deleting twice reports nothing was there"
        );
        assert!(store.delete(&other).unwrap());

        assert_eq!(
            store.put(&name, b""),
            Err(SecretError::EmptySecret { name: name.clone() })
        );
        for bad in [
            "",
            "Upper",
            "with space",
            "slash/",
            "at@sign",
            &"a".repeat(MAX_NAME_LEN + 1),
        ] {
            let invalid = SecretError::InvalidName {
                name: bad.to_string(),
            };
            assert_eq!(store.put(bad, b"x").unwrap_err(), invalid);
            assert_eq!(store.get(bad).unwrap_err(), invalid);
            assert_eq!(store.delete(bad).unwrap_err(), invalid);
        }
    }

    #[test]
    fn memory_store_behaves_as_a_secret_store() {
        exercise_store(&MemorySecretStore::new(), "test");
    }

    #[test]
    fn debug_output_never_shows_secret_bytes() {
        let store = MemorySecretStore::new();
        store.put("token", b"hunter2").unwrap();
        let shown = format!("{store:?} {:?}", store.get("token").unwrap().unwrap());
        assert!(shown.contains("token"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("104"), "no byte values either: {shown}");
    }

    #[test]
    fn ocra_key_is_created_once_then_reloaded() {
        let store = MemorySecretStore::new();
        let rng = SystemRandom::new();
        let first = ocra_key(&store, &rng).unwrap();
        assert_eq!(
            store.get(OCRA_KEY).unwrap().unwrap().expose(),
            first.as_bytes()
        );
        let again = ocra_key(&store, &rng).unwrap();
        assert_eq!(again, first);
    }

    #[test]
    fn device_key_is_created_once_then_reloaded() {
        let store = MemorySecretStore::new();
        let rng = SystemRandom::new();
        let first = device_key(&store, &rng).unwrap();
        let again = device_key(&store, &rng).unwrap();
        assert_eq!(again.public_key_b64(), first.public_key_b64());
    }

    #[test]
    fn malformed_stored_keys_are_reported() {
        let store = MemorySecretStore::new();
        let rng = SystemRandom::new();
        store.put(OCRA_KEY, &[1; 31]).unwrap();
        assert!(matches!(
            ocra_key(&store, &rng),
            Err(SecretError::Malformed { .. })
        ));
        store.put(DEVICE_SIGNING_KEY, b"not pkcs8").unwrap();
        assert!(matches!(
            device_key(&store, &rng),
            Err(SecretError::Malformed { .. })
        ));
    }

    #[test]
    fn stores_are_usable_as_shared_trait_objects() {
        let store: std::sync::Arc<dyn SecretStore> = std::sync::Arc::new(MemorySecretStore::new());
        let writer = {
            let store = store.clone();
            std::thread::spawn(move || store.put("from-thread", b"v").unwrap())
        };
        writer.join().unwrap();
        assert_eq!(store.get("from-thread").unwrap().unwrap().expose(), b"v");
    }

    #[cfg(all(feature = "os-keyring", target_os = "linux"))]
    #[test]
    fn keyring_store_behaves_as_a_secret_store() {
        // A service name per run keeps parallel runs on one machine apart.
        let service = format!("clink-test-{}", std::process::id());
        let store = KeyringSecretStore::new(&service).unwrap();
        assert!(!store.survives_reboot());
        exercise_store(&store, "keyring");

        // A second handle on the same service sees the same secrets.
        store.put("shared", b"seen by both").unwrap();
        let again = KeyringSecretStore::new(&service).unwrap();
        assert_eq!(
            again.get("shared").unwrap().unwrap().expose(),
            b"seen by both"
        );
        assert!(again.delete("shared").unwrap());
        assert_eq!(store.get("shared").unwrap(), None);
    }
}
