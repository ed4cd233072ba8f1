//! What a Clink phone and the Clink server share.
//!
//! The wire format (requests, responses, error codes, paths), request
//! signing, the rules for names and memos, phone numbers, dial strings with
//! their Damm check digit, OCRA challenge-response, and the bump fingerprint's
//! format and comparison, and the rules that pair two bump reports. Both sides compile these same definitions, so they
//! cannot drift. Everything here is pure: no I/O, no clock, no randomness it
//! was not handed.

pub mod challenge;
pub mod damm;
pub mod dialstring;
pub mod fingerprint;
pub mod matching;
pub mod phone;
pub mod wire;

// The bindings' scaffolding for the types this crate derives uniffi traits
// on (feature `uniffi`); clink-ffi exports them, and the generated code has
// them in a module of their own (namespace `clink_protocol`).
#[cfg(feature = "uniffi")]
uniffi::setup_scaffolding!();
