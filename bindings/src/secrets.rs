//! The platform's secret store (Android Keystore, iOS Keychain) as a
//! callback interface the app implements, and its adapter to the core's
//! `clink_core::secrets::SecretStore`.

use std::sync::Arc;

use clink_core::secrets as core;

/// Why a secret store call failed. Thrown by the app's store as well as by
/// the core, so it carries only what platform code can fill in.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum SecretError {
    #[error(
        "secret name {name:?} is invalid: use 1 to {} of a-z, 0-9, '.', '_' and '-'",
        core::MAX_NAME_LEN
    )]
    InvalidName { name: String },
    #[error("secret {name:?} is empty: stores hold only non-empty secrets")]
    EmptySecret { name: String },
    #[error("secret {name:?} holds something that is not a valid {expected}")]
    Malformed { name: String, expected: String },
    #[error("could not create secret {name:?}: {reason}")]
    Generation { name: String, reason: String },
    /// The store cannot be used at all (locked device, no keystore, or the
    /// app's store threw something other than a `SecretError`).
    #[error("the secret store cannot be used: {reason}")]
    Unavailable { reason: String },
    #[error("the secret store failed on {name:?}: {reason}")]
    Backend { name: String, reason: String },
}

/// Where the app keeps device secrets by name: implemented in Kotlin over
/// the Android Keystore and in Swift over the iOS Keychain. Names are
/// checked by the core before they reach it.
#[uniffi::export(with_foreign)]
pub trait SecretStore: Send + Sync {
    /// The secret, or null/nil/None if there is none by that name.
    fn get(&self, name: String) -> Result<Option<Vec<u8>>, SecretError>;

    /// Stores a secret, replacing any with the same name.
    fn put(&self, name: String, secret: Vec<u8>) -> Result<(), SecretError>;

    /// Removes a secret; returns whether there was one.
    fn delete(&self, name: String) -> Result<bool, SecretError>;
}

/// The core's `SecretStore` over a store the app implements; what the
/// wallet and the call check are handed.
pub struct ForeignSecretStore {
    store: Arc<dyn SecretStore>,
}

impl ForeignSecretStore {
    pub fn new(store: Arc<dyn SecretStore>) -> Self {
        ForeignSecretStore { store }
    }
}

impl core::SecretStore for ForeignSecretStore {
    fn get(&self, name: &str) -> Result<Option<core::SecretBytes>, core::SecretError> {
        core::check_name(name)?;
        let secret = self.store.get(name.to_string())?;
        Ok(secret.map(core::SecretBytes::new))
    }

    fn put(&self, name: &str, secret: &[u8]) -> Result<(), core::SecretError> {
        core::check_name(name)?;
        Ok(self.store.put(name.to_string(), secret.to_vec())?)
    }

    fn delete(&self, name: &str) -> Result<bool, core::SecretError> {
        core::check_name(name)?;
        Ok(self.store.delete(name.to_string())?)
    }
}

/// Anything the app's store throws that is not a `SecretError`.
impl From<uniffi::UnexpectedUniFFICallbackError> for SecretError {
    fn from(error: uniffi::UnexpectedUniFFICallbackError) -> Self {
        SecretError::Unavailable {
            reason: error.reason,
        }
    }
}

impl From<core::SecretError> for SecretError {
    fn from(error: core::SecretError) -> Self {
        use core::SecretError as E;
        match error {
            E::InvalidName { name } => SecretError::InvalidName { name },
            E::EmptySecret { name } => SecretError::EmptySecret { name },
            E::Malformed { name, expected } => SecretError::Malformed {
                name,
                expected: expected.to_string(),
            },
            E::Generation { name, reason } => SecretError::Generation { name, reason },
            E::Unavailable { reason } => SecretError::Unavailable { reason },
            E::Backend { name, reason } => SecretError::Backend { name, reason },
        }
    }
}

/// Errors the app's store threw, on their way into the core.
impl From<SecretError> for core::SecretError {
    fn from(error: SecretError) -> Self {
        use core::SecretError as E;
        match error {
            SecretError::InvalidName { name } => E::InvalidName { name },
            SecretError::EmptySecret { name } => E::EmptySecret { name },
            // The core names what it expected with a fixed string; an app's
            // store has no reason to throw this, so keep its words as the reason.
            SecretError::Malformed { name, expected } => E::Backend {
                reason: format!("holds something that is not a valid {expected}"),
                name,
            },
            SecretError::Generation { name, reason } => E::Generation { name, reason },
            SecretError::Unavailable { reason } => E::Unavailable { reason },
            SecretError::Backend { name, reason } => E::Backend { name, reason },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use clink_core::secrets::SecretStore as _;

    use super::*;

    /// An app's store that records the names it is asked about.
    #[derive(Default)]
    struct RecordingStore {
        names: Mutex<Vec<String>>,
    }

    impl SecretStore for RecordingStore {
        fn get(&self, name: String) -> Result<Option<Vec<u8>>, SecretError> {
            self.names.lock().unwrap().push(name);
            Ok(None)
        }

        fn put(&self, name: String, _secret: Vec<u8>) -> Result<(), SecretError> {
            self.names.lock().unwrap().push(name);
            Ok(())
        }

        fn delete(&self, name: String) -> Result<bool, SecretError> {
            self.names.lock().unwrap().push(name.clone());
            Err(SecretError::Backend {
                name,
                reason: "keystore I/O error".into(),
            })
        }
    }

    #[test]
    fn invalid_names_are_refused_before_they_reach_the_apps_store() {
        let app_store = Arc::new(RecordingStore::default());
        let store = ForeignSecretStore::new(app_store.clone());
        for name in [
            "",
            "Upper",
            "with space",
            &"a".repeat(core::MAX_NAME_LEN + 1),
        ] {
            assert!(matches!(
                store.get(name),
                Err(core::SecretError::InvalidName { .. })
            ));
            assert!(matches!(
                store.put(name, b"x"),
                Err(core::SecretError::InvalidName { .. })
            ));
        }
        assert!(app_store.names.lock().unwrap().is_empty());
    }

    #[test]
    fn errors_thrown_by_the_apps_store_reach_the_core_unchanged() {
        let store = ForeignSecretStore::new(Arc::new(RecordingStore::default()));
        assert_eq!(
            store.delete("ocra-key"),
            Err(core::SecretError::Backend {
                name: "ocra-key".into(),
                reason: "keystore I/O error".into()
            })
        );
    }
}
