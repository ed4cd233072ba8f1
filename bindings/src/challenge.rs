//! OCRA challenge-response (see `clink_core::challenge`): the install's
//! answer to the challenge the server plays when a call connects.

use std::sync::Arc;

use clink_core::challenge as core;
use clink_core::secrets::ocra_key;
use ring::rand::SystemRandom;

use crate::secrets::{ForeignSecretStore, SecretError, SecretStore};

/// How a suite's challenge is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum OcraChallengeFormat {
    Alphanumeric,
    Numeric,
    Hex,
}

/// An optional input of a suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum OcraInput {
    Counter,
    PinHash,
    Session,
    Timestamp,
}

/// The optional inputs of one OCRA computation; set those the suite names.
#[derive(Clone, Debug, Default, PartialEq, Eq, uniffi::Record)]
pub struct OcraDataInput {
    #[uniffi(default = None)]
    pub counter: Option<u64>,
    /// The hash of the PIN, computed with the suite's `P` hash.
    #[uniffi(default = None)]
    pub pin_hash: Option<Vec<u8>>,
    #[uniffi(default = None)]
    pub session: Option<Vec<u8>>,
    #[uniffi(default = None)]
    pub unix_time_s: Option<u64>,
}

/// Why an OCRA suite, key or challenge was refused; `description` is the
/// core's sentence for people and logs.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum OcraError {
    #[error("{description}")]
    SuiteStructure { suite: String, description: String },
    #[error("{description}")]
    SuiteVersion { found: String, description: String },
    #[error("{description}")]
    CryptoFunction { found: String, description: String },
    #[error("{description}")]
    Truncation { found: String, description: String },
    #[error("{description}")]
    UnknownDataInput { item: String, description: String },
    #[error("{description}")]
    DataInputOrder { item: String, description: String },
    #[error("{description}")]
    ChallengeFormat { item: String, description: String },
    #[error("{description}")]
    MissingChallenge { description: String },
    #[error("{description}")]
    PinHashFunction { item: String, description: String },
    #[error("{description}")]
    SessionLength { item: String, description: String },
    #[error("{description}")]
    TimeStep { item: String, description: String },
    #[error("{description}")]
    ChallengeLength {
        found: u64,
        max: u64,
        description: String,
    },
    #[error("{description}")]
    ChallengeCharacter {
        position: u64,
        found: String,
        format: OcraChallengeFormat,
        description: String,
    },
    #[error("{description}")]
    MissingInput {
        input: OcraInput,
        description: String,
    },
    #[error("{description}")]
    UnexpectedInput {
        input: OcraInput,
        description: String,
    },
    #[error("{description}")]
    PinHashLength {
        expected: u64,
        found: u64,
        description: String,
    },
    #[error("{description}")]
    SessionTooLong {
        max: u64,
        found: u64,
        description: String,
    },
    #[error("{description}")]
    KeyLength {
        expected: u64,
        found: u64,
        description: String,
    },
    #[error("{description}")]
    Randomness { description: String },
}

/// The suite Clink's call check uses, `OCRA-1:HOTP-SHA256-8:QN08`.
#[uniffi::export]
pub fn clink_ocra_suite() -> String {
    core::CLINK_SUITE.to_string()
}

/// A one-way (or signature) OCRA response under any RFC 6287 suite.
#[uniffi::export]
pub fn ocra_respond(
    suite: String,
    key: Vec<u8>,
    challenge: String,
    input: OcraDataInput,
) -> Result<String, OcraError> {
    let suite: core::OcraSuite = suite.parse()?;
    let input = core::DataInput {
        counter: input.counter,
        pin_hash: input.pin_hash.as_deref(),
        session: input.session.as_deref(),
        unix_time_s: input.unix_time_s,
    };
    Ok(suite.respond(&key, &challenge, &input)?)
}

/// The install's answer to the server's call-check challenge, with the
/// install's OCRA key. The key is read from the app's secret store (made and
/// stored there on first use) and stays in Rust memory, wiped on release.
#[derive(uniffi::Object)]
pub struct OcraResponder {
    key: core::OcraKey,
}

#[uniffi::export]
impl OcraResponder {
    /// Loads the install's key from `store`, creating it on first use.
    #[uniffi::constructor]
    pub fn load_or_create(store: Arc<dyn SecretStore>) -> Result<Arc<Self>, SecretError> {
        let store = ForeignSecretStore::new(store);
        let key = ocra_key(&store, &SystemRandom::new())?;
        Ok(Arc::new(OcraResponder { key }))
    }

    /// The 8-digit response to an 8-digit challenge.
    pub fn respond(&self, challenge: String) -> Result<String, OcraError> {
        Ok(core::clink_response(&self.key, &challenge)?)
    }
}

impl From<core::ChallengeFormat> for OcraChallengeFormat {
    fn from(format: core::ChallengeFormat) -> Self {
        match format {
            core::ChallengeFormat::Alphanumeric => OcraChallengeFormat::Alphanumeric,
            core::ChallengeFormat::Numeric => OcraChallengeFormat::Numeric,
            core::ChallengeFormat::Hex => OcraChallengeFormat::Hex,
        }
    }
}

impl From<core::Input> for OcraInput {
    fn from(input: core::Input) -> Self {
        match input {
            core::Input::Counter => OcraInput::Counter,
            core::Input::PinHash => OcraInput::PinHash,
            core::Input::Session => OcraInput::Session,
            core::Input::Timestamp => OcraInput::Timestamp,
        }
    }
}

impl From<core::OcraError> for OcraError {
    fn from(error: core::OcraError) -> Self {
        use core::OcraError as E;
        let description = error.to_string();
        let n = |v: usize| v as u64;
        match error {
            E::SuiteStructure { suite } => OcraError::SuiteStructure { suite, description },
            E::SuiteVersion { found } => OcraError::SuiteVersion { found, description },
            E::CryptoFunction { found } => OcraError::CryptoFunction { found, description },
            E::Truncation { found } => OcraError::Truncation { found, description },
            E::UnknownDataInput { item } => OcraError::UnknownDataInput { item, description },
            E::DataInputOrder { item } => OcraError::DataInputOrder { item, description },
            E::ChallengeFormat { item } => OcraError::ChallengeFormat { item, description },
            E::MissingChallenge => OcraError::MissingChallenge { description },
            E::PinHashFunction { item } => OcraError::PinHashFunction { item, description },
            E::SessionLength { item } => OcraError::SessionLength { item, description },
            E::TimeStep { item } => OcraError::TimeStep { item, description },
            E::ChallengeLength { found, max } => OcraError::ChallengeLength {
                found: n(found),
                max: n(max),
                description,
            },
            E::ChallengeCharacter {
                position,
                found,
                format,
            } => OcraError::ChallengeCharacter {
                position: n(position),
                found: found.to_string(),
                format: format.into(),
                description,
            },
            E::MissingInput(input) => OcraError::MissingInput {
                input: input.into(),
                description,
            },
            E::UnexpectedInput(input) => OcraError::UnexpectedInput {
                input: input.into(),
                description,
            },
            E::PinHashLength { expected, found } => OcraError::PinHashLength {
                expected: n(expected),
                found: n(found),
                description,
            },
            E::SessionTooLong { max, found } => OcraError::SessionTooLong {
                max: n(max),
                found: n(found),
                description,
            },
            E::KeyLength { expected, found } => OcraError::KeyLength {
                expected: n(expected),
                found: n(found),
                description,
            },
            E::Randomness => OcraError::Randomness { description },
        }
    }
}
