//! Clink's client core.
//!
//! Everything a Clink phone needs that is not UI: the wire format shared with
//! the server, phone-number handling, codecs and crypto. Pure modules (no I/O,
//! no clock, no randomness they were not handed) are the default; modules that
//! touch the outside world say so in their names.

pub mod acoustic;
#[cfg(feature = "audio-io")]
pub mod audio;
pub mod bump;
pub mod challenge;
pub mod damm;
pub mod dialstring;
pub mod dtmf;
pub mod http_client;
pub mod phone;
pub mod secrets;
pub mod store;
pub mod wallet;
pub mod wire;
