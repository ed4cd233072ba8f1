//! What a Clink phone and the Clink server share.
//!
//! The wire format (requests, responses, error codes, paths), request
//! signing, the rules for names and memos, phone numbers, dial strings with
//! their Damm check digit, OCRA challenge-response, the bump fingerprint's
//! format and comparison, and the rules that pair two bump reports. For
//! paying at shops: the EMVCo merchant-presented QR a terminal shows and a
//! phone scans, with Clink's dynamic merchant QR in that format (`emvco`),
//! and the one-time code a phone shows and a terminal scans
//! (`one_time_code`). Both sides compile these same definitions, so they
//! cannot drift. Everything here is pure: no I/O, no clock, no randomness it
//! was not handed.

pub mod challenge;
pub mod damm;
pub mod dialstring;
pub mod emvco;
pub mod fingerprint;
pub mod matching;
pub mod one_time_code;
pub mod phone;
pub mod wire;

// The bindings' scaffolding for the types this crate derives uniffi traits
// on (feature `uniffi`); clink-ffi exports them, and the generated code has
// them in a module of their own (namespace `clink_protocol`).
#[cfg(feature = "uniffi")]
uniffi::setup_scaffolding!();
