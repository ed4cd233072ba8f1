//! A `SecretStore` in files, one per secret, readable only by their owner
//! (mode 0600 in a 0700 directory), written atomically.
//!
//! For desktop tools (the `clink` CLI) and tests: unlike the kernel keyring
//! behind `os-keyring`, it survives a reboot together with the wallet's
//! database, which a wallet needs (its outbox is sealed with a key from this
//! store). The phones use their Keystore/Keychain through the bindings.

use std::fs;
use std::io::Write;
use std::path::PathBuf;

use crate::secrets::{SecretBytes, SecretError, SecretStore, check_name};

#[derive(Debug)]
pub struct FileSecretStore {
    dir: PathBuf,
}

impl FileSecretStore {
    /// Secrets under `dir`, created if missing.
    pub fn new(dir: &str) -> Result<FileSecretStore, SecretError> {
        let dir = PathBuf::from(dir);
        fs::create_dir_all(&dir).map_err(|e| SecretError::Unavailable {
            reason: format!("cannot create the secrets directory: {e}"),
        })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).map_err(|e| {
                SecretError::Unavailable {
                    reason: format!("cannot restrict the secrets directory: {e}"),
                }
            })?;
        }
        Ok(FileSecretStore { dir })
    }

    fn backend(name: &str, e: std::io::Error) -> SecretError {
        SecretError::Backend {
            name: name.to_string(),
            reason: e.to_string(),
        }
    }
}

impl SecretStore for FileSecretStore {
    fn get(&self, name: &str) -> Result<Option<SecretBytes>, SecretError> {
        check_name(name)?;
        match fs::read(self.dir.join(name)) {
            Ok(bytes) => Ok(Some(SecretBytes::new(bytes))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Self::backend(name, e)),
        }
    }

    fn put(&self, name: &str, secret: &[u8]) -> Result<(), SecretError> {
        check_name(name)?;
        if secret.is_empty() {
            return Err(SecretError::EmptySecret {
                name: name.to_string(),
            });
        }
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp).map_err(|e| Self::backend(name, e))?;
        file.write_all(secret)
            .and_then(|_| file.sync_all())
            .map_err(|e| Self::backend(name, e))?;
        fs::rename(&tmp, self.dir.join(name)).map_err(|e| Self::backend(name, e))?;
        // Make the rename itself durable.
        if let Ok(d) = fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    fn delete(&self, name: &str) -> Result<bool, SecretError> {
        check_name(name)?;
        match fs::remove_file(self.dir.join(name)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Self::backend(name, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_persist_across_instances_and_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets");
        let store = FileSecretStore::new(path.to_str().unwrap()).unwrap();
        assert_eq!(store.get("device-signing-key").unwrap(), None);
        store.put("device-signing-key", b"abc").unwrap();
        let again = FileSecretStore::new(path.to_str().unwrap()).unwrap();
        assert_eq!(
            again.get("device-signing-key").unwrap().unwrap().expose(),
            b"abc"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(path.join("device-signing-key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "mode {mode:o}");
        }
        assert!(again.delete("device-signing-key").unwrap());
        assert!(!again.delete("device-signing-key").unwrap());
        assert!(matches!(
            store.put("../escape", b"x"),
            Err(SecretError::InvalidName { .. })
        ));
        assert!(matches!(
            store.put("empty", b""),
            Err(SecretError::EmptySecret { .. })
        ));
    }
}
