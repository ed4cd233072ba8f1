//! How one-time registration codes reach a phone. Production plugs in an SMS
//! gateway; development logs the code; tests capture it.

use std::collections::HashMap;
use std::sync::Mutex;

use clink_core::phone::PhoneNumber;

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
