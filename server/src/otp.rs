//! How one-time registration codes reach a phone. Production plugs in an SMS
//! gateway; development logs the code (and, if asked, also appends it to a
//! file); tests capture it.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use clink_protocol::phone::PhoneNumber;

use crate::Config;

pub trait OtpSender: Send + Sync {
    /// Hands `code` to the delivery channel for `phone`. Must not block for long.
    fn send(&self, phone: &PhoneNumber, code: &str);
}

/// Writes codes to the server log: for development only.
pub struct LogOtpSender;

impl OtpSender for LogOtpSender {
    fn send(&self, phone: &PhoneNumber, code: &str) {
        tracing::warn!(%phone, code, "registration code (development sender: not for production)");
    }
}

/// Keeps the last code sent to each number, for tests.
#[derive(Default)]
pub struct CapturingOtpSender {
    codes: Mutex<HashMap<String, String>>,
}

impl CapturingOtpSender {
    pub fn last_code(&self, phone_e164: &str) -> Option<String> {
        self.codes.lock().unwrap().get(phone_e164).cloned()
    }
}

impl OtpSender for CapturingOtpSender {
    fn send(&self, phone: &PhoneNumber, code: &str) {
        self.codes
            .lock()
            .unwrap()
            .insert(phone.as_e164().to_string(), code.to_string());
    }
}

/// Appends `<e164> <code>` lines to a file, for development and the
/// bindings' tests, which read the code from there (`--dev-otp-file`); and
/// logs the code, as the development sender does, so a developer watching
/// the log sees it either way.
pub struct FileOtpSender {
    path: PathBuf,
    /// One line at a time, so lines from concurrent registrations never mix.
    file: Mutex<()>,
}

impl FileOtpSender {
    pub fn new(path: impl Into<PathBuf>) -> FileOtpSender {
        FileOtpSender {
            path: path.into(),
            file: Mutex::new(()),
        }
    }
}

impl OtpSender for FileOtpSender {
    fn send(&self, phone: &PhoneNumber, code: &str) {
        let _one_writer = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let written = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .and_then(|mut file| writeln!(file, "{} {code}", phone.as_e164()));
        match written {
            Ok(()) => tracing::warn!(%phone, code, path = %self.path.display(),
                "registration code, also written to the development OTP file (not for production)"),
            // The trait cannot fail the registration; the log has the code.
            Err(error) => tracing::error!(%phone, code, %error, path = %self.path.display(),
                "could not write the registration code to the development OTP file"),
        }
    }
}

/// The sender `config` asks for: the development file if one is named,
/// otherwise the log.
pub fn sender_for(config: &Config) -> Arc<dyn OtpSender> {
    match &config.dev_otp_file {
        Some(path) => Arc::new(FileOtpSender::new(path)),
        None => Arc::new(LogOtpSender),
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Log output kept in memory.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_dev_otp_file_gets_the_code_and_the_log_has_it_too() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("otp.txt");
        let log = Captured::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let phone = PhoneNumber::parse("090-5555-0003", "JP".parse().unwrap()).unwrap();
        tracing::subscriber::with_default(subscriber, || {
            FileOtpSender::new(&path).send(&phone, "424242");
        });
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "+819055550003 424242\n"
        );
        let log = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
        assert!(log.contains("code") && log.contains("424242"), "{log}");
        assert!(log.contains("+819055550003"), "{log}");
    }
}
