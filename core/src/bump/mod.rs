//! Pay by bump, on the phone: find the knock in the accelerometer stream and
//! fingerprint the room's sound around it.
//!
//! The two phones of a bump each send a [`BumpReport`](crate::wire::BumpReport)
//! with the knock's instant (server time), the impulse's shape and the
//! ambient fingerprint; the server pairs reports whose instants, sounds,
//! locations and impulses agree, and only when exactly one pairing is
//! plausible.
//!
//! - [`knock`]: a streaming detector over accelerometer samples (any rate
//!   from 50 to 500 Hz, uneven timing tolerated) that reports sharp, short,
//!   isolated impulses and ignores walking, shaking, hand motion and a phone
//!   being set down on a table.
//! - [`fingerprint`]: a compact (< 512 bytes) binary fingerprint of the
//!   sound around the knock, compared with a lag search so that tens of
//!   milliseconds of misalignment and different microphones do not matter.
//!
//! Everything here is pure: samples in, values out.

pub mod click;
pub mod fingerprint;
pub mod knock;

pub use click::{Click, find_click};
pub use fingerprint::{AmbientFingerprint, FingerprintError, FingerprintExtractor};
pub use knock::{AccelSample, KnockDetector, KnockError, KnockEvent, detect_knocks};
