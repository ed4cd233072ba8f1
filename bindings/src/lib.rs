//! Clink's core for Kotlin (Android), Swift (iOS) and Python, through uniffi.
//!
//! This crate decides nothing: every function hands its arguments to
//! `clink-core` and converts the types on the way in and out (`usize` to
//! `u64`, `char` to `String`, fixed arrays to byte strings, core errors to
//! error enums that the generated code raises as exceptions). A module per
//! core module, named the same. Core and protocol records and enums that
//! need no conversion carry their own uniffi derives (the feature `uniffi`
//! of clink-core and clink-protocol, on here) and are re-exported as they
//! are; uniffi generates a module per crate, so they come out in the core's
//! and the protocol's own modules next to this crate's (bindings/bindgen.toml
//! names them).
//!
//! Streaming objects (`DtmfDetector`, `TokenDecoder`, `KnockDetector`,
//! `FingerprintExtractor`) hold their core state in a `Mutex`: uniffi hands objects out as `Arc`s that any thread of the
//! app may call.
//!
//! Panics: the library is built with `panic = "unwind"` so that uniffi's
//! boundary can catch a panic (a bug) and raise it as an exception rather
//! than abort the app.

pub mod acoustic;
pub mod avatar;
pub mod bump;
pub mod challenge;
pub mod dialstring;
pub mod dtmf;
pub mod pairing;
pub mod pcm;
pub mod phone;
pub mod secrets;
pub mod wallet;
pub mod wallet_error;
pub mod wallet_types;

mod lock;

uniffi::setup_scaffolding!();
