//! Crash points for the kill tests: places in the sync where a test can have
//! the process stop dead. Enabled only when the environment variable
//! [`CRASH_AT_ENV`] names the point; otherwise each point is one cached
//! comparison.
//!
//! At an enabled point the process writes `<dir>/crashed-at-<point>` (the
//! directory is [`CRASH_DIR_ENV`]) and then waits forever, so the test can
//! SIGKILL it at exactly that place.

use std::sync::OnceLock;

pub const CRASH_AT_ENV: &str = "CLINK_WALLET_CRASH_AT";
pub const CRASH_DIR_ENV: &str = "CLINK_WALLET_CRASH_DIR";

/// Before a sync request leaves (items already marked `sending`).
pub const BEFORE_REQUEST: &str = "before_request";
/// The server committed and answered; the phone has not recorded it.
pub const AFTER_RESPONSE: &str = "after_response";
/// Half of a batch's answers written, inside the uncommitted transaction.
pub const MID_RECORD: &str = "mid_record";
/// One batch recorded; the next already sent (it may be committed).
pub const BETWEEN_BATCHES: &str = "between_batches";

fn armed() -> Option<&'static str> {
    static ARMED: OnceLock<Option<String>> = OnceLock::new();
    ARMED
        .get_or_init(|| std::env::var(CRASH_AT_ENV).ok())
        .as_deref()
}

pub(crate) fn point(name: &str) {
    if armed() != Some(name) {
        return;
    }
    if let Ok(dir) = std::env::var(CRASH_DIR_ENV) {
        let _ = std::fs::write(
            std::path::Path::new(&dir).join(format!("crashed-at-{name}")),
            b"",
        );
    }
    loop {
        std::thread::sleep(std::time::Duration::from_secs(60));
    }
}
