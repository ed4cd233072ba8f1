//! How one-time registration codes reach a phone. Production plugs in an SMS
//! gateway; development logs the code (or appends it to a file); tests
//! capture it.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use clink_core::phone::PhoneNumber;

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
/// bindings' tests, which read the code from there (`--dev-otp-file`).
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
            Ok(()) => tracing::warn!(%phone, path = %self.path.display(),
                "registration code written to the development OTP file (not for production)"),
            // The trait cannot fail the registration; the log still has it.
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
