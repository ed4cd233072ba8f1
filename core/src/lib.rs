//! Clink's client core.
//!
//! Everything a Clink phone needs that is not UI: the `Wallet` and its local
//! store and HTTP client, the pairing flows, codecs (DTMF, the acoustic token)
//! and bump detection. What the phone shares with the server (wire types,
//! signing, phone numbers, dial strings, OCRA) is the `clink-protocol` crate,
//! re-exported here under the same names so an app needs one dependency.
//! Pure modules (no I/O, no clock, no randomness they were not handed) are the
//! default; modules that touch the outside world say so in their names.

pub mod acoustic;
#[cfg(feature = "audio-io")]
pub mod audio;
pub mod bump;
pub mod dtmf;
pub mod http_client;
pub mod secrets;
pub mod store;
pub mod wallet;

pub use clink_protocol::{challenge, damm, dialstring, emvco, one_time_code, phone, wire};

// The bindings' scaffolding for the types this crate derives uniffi traits
// on (feature `uniffi`); clink-ffi exports them, and the generated code has
// them in a module of their own (namespace `clink_core`).
#[cfg(feature = "uniffi")]
uniffi::setup_scaffolding!();
