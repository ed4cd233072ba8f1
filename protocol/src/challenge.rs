//! OCRA (RFC 6287): the challenge-response that proves a call comes from a
//! genuine Clink install.
//!
//! When a call connects the server plays a random numeric challenge as DTMF
//! and the app answers with `OCRA(K, challenge)` as DTMF, where `K` is a key
//! unique to the install ([`OcraKey`], kept in the
//! phone's secret store). Clink uses [`CLINK_SUITE`]; the rest of
//! RFC 6287 is implemented so the module can be checked against every test
//! vector in its Appendix C.
//!
//! # Suites
//!
//! `OCRA-1:HOTP-<SHA1|SHA256|SHA512>-<t>:<data input>`, where `t` is the
//! number of decimal digits in a response (4 to 10), or 0 for the whole HMAC
//! (returned as lowercase hex). The data input is, in this order:
//!
//! | item      | meaning                                                        |
//! |-----------|----------------------------------------------------------------|
//! | `C`       | an 8-byte counter (optional)                                   |
//! | `Q{A,N,H}xx` | the challenge: alphanumeric, numeric or hex, at most `xx` (04–64) characters (required) |
//! | `P{SHA1,SHA256,SHA512}` | the hash of a PIN or password (optional)         |
//! | `Snnn`    | `nnn` bytes of session information (optional)                  |
//! | `T{n}{S,M,H}` | the number of `n`-second/minute/hour steps since the Unix epoch (optional; 1–59 S or M, 1–48 H) |
//!
//! # Modes (RFC 6287 §7)
//!
//! * One-way and signature: [`OcraSuite::respond`] over one challenge (for a
//!   signature, the challenge is derived from what is signed).
//! * Mutual: the server answers over the client's challenge then its own
//!   ([`OcraSuite::respond_mutual_server`]), the client over the server's then
//!   its own ([`OcraSuite::respond_mutual_client`]). Each challenge is checked
//!   against the suite's `xx` on its own.
//!
//! Challenge encoding follows the RFC's reference code: numeric challenges are
//! read as one decimal number and written as hex digits, alphanumeric ones as
//! their ASCII bytes, hex ones as they are; the result is left-aligned in 128
//! zero-padded bytes. Session information shorter than `nnn` bytes is
//! left-padded with zero bytes, as the reference code does.

use std::fmt;
use std::str::FromStr;

use ring::hmac;
use ring::rand::SecureRandom;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// The suite Clink's call check uses: HMAC-SHA-256, 8-digit responses, an
/// 8-digit numeric challenge, nothing else.
pub const CLINK_SUITE: &str = "OCRA-1:HOTP-SHA256-8:QN08";

/// Length of a Clink OCRA key: one SHA-256 block's worth of entropy is more
/// than enough, and RFC 6287 Appendix C uses 32 bytes for SHA-256.
pub const OCRA_KEY_LEN: usize = 32;

/// Digits in a Clink challenge, as `QN08` says.
pub const CLINK_CHALLENGE_DIGITS: usize = 8;

/// The challenge occupies this many bytes of the HMAC input, padded with zeros.
const QUESTION_LEN: usize = 128;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashFunction {
    Sha1,
    Sha256,
    Sha512,
}

impl HashFunction {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "SHA1" => Some(HashFunction::Sha1),
            "SHA256" => Some(HashFunction::Sha256),
            "SHA512" => Some(HashFunction::Sha512),
            _ => None,
        }
    }

    fn digest_algorithm(self) -> &'static ring::digest::Algorithm {
        match self {
            HashFunction::Sha1 => &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
            HashFunction::Sha256 => &ring::digest::SHA256,
            HashFunction::Sha512 => &ring::digest::SHA512,
        }
    }

    fn hmac_algorithm(self) -> hmac::Algorithm {
        match self {
            // RFC 6287 mandates SHA-1 for these suites; HMAC-SHA-1 is still sound.
            HashFunction::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            HashFunction::Sha256 => hmac::HMAC_SHA256,
            HashFunction::Sha512 => hmac::HMAC_SHA512,
        }
    }

    /// Length of the hash in bytes (the length a `P` input must have).
    pub fn output_len(self) -> usize {
        self.digest_algorithm().output_len()
    }

    /// Hashes a PIN or password for a suite's `P` input.
    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        ring::digest::digest(self.digest_algorithm(), data)
            .as_ref()
            .to_vec()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChallengeFormat {
    /// `QA`: ASCII letters and digits.
    Alphanumeric,
    /// `QN`: decimal digits.
    Numeric,
    /// `QH`: hex digits.
    Hex,
}

impl fmt::Display for ChallengeFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChallengeFormat::Alphanumeric => "alphanumeric",
            ChallengeFormat::Numeric => "numeric",
            ChallengeFormat::Hex => "hex",
        })
    }
}

impl ChallengeFormat {
    fn allows(self, c: char) -> bool {
        match self {
            ChallengeFormat::Alphanumeric => c.is_ascii_alphanumeric(),
            ChallengeFormat::Numeric => c.is_ascii_digit(),
            ChallengeFormat::Hex => c.is_ascii_hexdigit(),
        }
    }
}

/// An input that a suite needs or forbids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    Counter,
    PinHash,
    Session,
    Timestamp,
}

impl fmt::Display for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Input::Counter => "counter (C)",
            Input::PinHash => "PIN hash (P)",
            Input::Session => "session information (S)",
            Input::Timestamp => "timestamp (T)",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OcraError {
    #[error("suite {suite:?} does not have the form OCRA-1:<crypto function>:<data input>")]
    SuiteStructure { suite: String },
    #[error("unsupported OCRA version {found:?}: only OCRA-1 exists")]
    SuiteVersion { found: String },
    #[error("crypto function {found:?} is not HOTP-SHA1-t, HOTP-SHA256-t or HOTP-SHA512-t")]
    CryptoFunction { found: String },
    #[error("truncation {found:?} must be 0 or 4 to 10 digits")]
    Truncation { found: String },
    #[error("data input item {item:?} is not one of C, Q.., P.., S.., T..")]
    UnknownDataInput { item: String },
    #[error("data input item {item:?} is repeated or out of order (C, Q, P, S, T)")]
    DataInputOrder { item: String },
    #[error("challenge item {item:?} must be QA, QN or QH followed by a length from 04 to 64")]
    ChallengeFormat { item: String },
    #[error("the data input has no challenge item (Q..)")]
    MissingChallenge,
    #[error("PIN item {item:?} must be PSHA1, PSHA256 or PSHA512")]
    PinHashFunction { item: String },
    #[error("session item {item:?} must be S followed by a length from 001 to 512")]
    SessionLength { item: String },
    #[error("timestamp item {item:?} must be T followed by 1-59S, 1-59M or 1-48H")]
    TimeStep { item: String },
    #[error("challenge is {found} characters; this suite takes 1 to {max}")]
    ChallengeLength { found: usize, max: usize },
    #[error("challenge character {found:?} at {position} is not {format}")]
    ChallengeCharacter {
        position: usize,
        found: char,
        format: ChallengeFormat,
    },
    #[error("the suite needs a {0}")]
    MissingInput(Input),
    #[error("the suite takes no {0}")]
    UnexpectedInput(Input),
    #[error("the PIN hash is {found} bytes; the suite's hash gives {expected}")]
    PinHashLength { expected: usize, found: usize },
    #[error("the session information is {found} bytes; the suite allows {max}")]
    SessionTooLong { max: usize, found: usize },
    #[error("an OCRA key must be {expected} bytes, got {found}")]
    KeyLength { expected: usize, found: usize },
    #[error("the system random number generator failed")]
    Randomness,
}

/// A parsed OCRA suite. Read-only: the suite's text is part of every
/// HMAC input, so its parts cannot be changed apart from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OcraSuite {
    text: String,
    hash: HashFunction,
    /// Decimal digits in a response; 0 means the full HMAC in hex.
    digits: u8,
    counter: bool,
    challenge_format: ChallengeFormat,
    challenge_max_len: usize,
    pin_hash: Option<HashFunction>,
    session_len: Option<usize>,
    time_step_s: Option<u64>,
}

/// The optional inputs of one OCRA computation; set those the suite names.
#[derive(Clone, Copy, Debug, Default)]
pub struct DataInput<'a> {
    pub counter: Option<u64>,
    /// The hash of the PIN, as [`HashFunction::hash`] makes it.
    pub pin_hash: Option<&'a [u8]>,
    pub session: Option<&'a [u8]>,
    /// Unix time in seconds; the suite's time step turns it into `T`.
    pub unix_time_s: Option<u64>,
}

impl FromStr for OcraSuite {
    type Err = OcraError;

    fn from_str(suite: &str) -> Result<Self, OcraError> {
        let parts: Vec<&str> = suite.split(':').collect();
        let [version, crypto, data_input] = parts[..] else {
            return Err(OcraError::SuiteStructure {
                suite: suite.to_string(),
            });
        };
        if version != "OCRA-1" {
            return Err(OcraError::SuiteVersion {
                found: version.to_string(),
            });
        }
        let (hash, digits) = parse_crypto_function(crypto)?;
        let mut parsed = OcraSuite {
            text: suite.to_string(),
            hash,
            digits,
            counter: false,
            challenge_format: ChallengeFormat::Numeric,
            challenge_max_len: 0,
            pin_hash: None,
            session_len: None,
            time_step_s: None,
        };
        parse_data_input(data_input, &mut parsed)?;
        Ok(parsed)
    }
}

fn parse_crypto_function(crypto: &str) -> Result<(HashFunction, u8), OcraError> {
    let bad = || OcraError::CryptoFunction {
        found: crypto.to_string(),
    };
    let parts: Vec<&str> = crypto.split('-').collect();
    let ["HOTP", hash, truncation] = parts[..] else {
        return Err(bad());
    };
    let hash = HashFunction::parse(hash).ok_or_else(bad)?;
    // Spelled exactly as the RFC lists them: no sign, no leading zero.
    let canonical = truncation == "0" || !truncation.starts_with(['0', '+']);
    let digits = match truncation.parse::<u8>() {
        Ok(d) if canonical && (d == 0 || (4..=10).contains(&d)) => d,
        _ => {
            return Err(OcraError::Truncation {
                found: truncation.to_string(),
            });
        }
    };
    Ok((hash, digits))
}

/// Parses a decimal number of exactly `width` digits within `range`.
fn fixed_width_number(
    text: &str,
    width: usize,
    range: std::ops::RangeInclusive<u64>,
) -> Option<u64> {
    if text.len() != width || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok().filter(|n| range.contains(n))
}

fn parse_data_input(data_input: &str, suite: &mut OcraSuite) -> Result<(), OcraError> {
    // Items must appear in this order, each at most once.
    const ORDER: [char; 5] = ['C', 'Q', 'P', 'S', 'T'];
    let mut next_allowed = 0;
    let mut has_challenge = false;
    for item in data_input.split('-') {
        let unknown = || OcraError::UnknownDataInput {
            item: item.to_string(),
        };
        let first = item.chars().next().ok_or_else(unknown)?;
        let rank = ORDER.iter().position(|&c| c == first).ok_or_else(unknown)?;
        if rank < next_allowed {
            return Err(OcraError::DataInputOrder {
                item: item.to_string(),
            });
        }
        next_allowed = rank + 1;
        let rest = &item[1..];
        match first {
            'C' if rest.is_empty() => suite.counter = true,
            'C' => return Err(unknown()),
            'Q' => {
                let bad = || OcraError::ChallengeFormat {
                    item: item.to_string(),
                };
                let format = match rest.chars().next() {
                    Some('A') => ChallengeFormat::Alphanumeric,
                    Some('N') => ChallengeFormat::Numeric,
                    Some('H') => ChallengeFormat::Hex,
                    _ => return Err(bad()),
                };
                let max_len = fixed_width_number(&rest[1..], 2, 4..=64).ok_or_else(bad)?;
                suite.challenge_format = format;
                suite.challenge_max_len = max_len as usize;
                has_challenge = true;
            }
            'P' => {
                let hash = HashFunction::parse(rest);
                suite.pin_hash = Some(hash.ok_or_else(|| OcraError::PinHashFunction {
                    item: item.to_string(),
                })?);
            }
            'S' => {
                let len = fixed_width_number(rest, 3, 1..=512);
                suite.session_len = Some(len.ok_or_else(|| OcraError::SessionLength {
                    item: item.to_string(),
                })? as usize);
            }
            _ => {
                let bad = || OcraError::TimeStep {
                    item: item.to_string(),
                };
                let unit = rest.chars().last().ok_or_else(bad)?;
                let count = &rest[..rest.len() - unit.len_utf8()];
                let (unit_s, max) = match unit {
                    'S' => (1, 59),
                    'M' => (60, 59),
                    'H' => (3600, 48),
                    _ => return Err(bad()),
                };
                let n = match count.len() {
                    1 | 2 => fixed_width_number(count, count.len(), 1..=max),
                    _ => None,
                };
                suite.time_step_s = Some(n.ok_or_else(bad)? * unit_s);
            }
        }
    }
    if !has_challenge {
        return Err(OcraError::MissingChallenge);
    }
    Ok(())
}

impl fmt::Display for OcraSuite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl OcraSuite {
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn hash(&self) -> HashFunction {
        self.hash
    }

    /// Decimal digits in a response; 0 means the full HMAC in hex.
    pub fn digits(&self) -> u8 {
        self.digits
    }

    pub fn uses_counter(&self) -> bool {
        self.counter
    }

    pub fn challenge_format(&self) -> ChallengeFormat {
        self.challenge_format
    }

    /// The most characters one challenge may have (`xx` in `Q?xx`).
    pub fn challenge_max_len(&self) -> usize {
        self.challenge_max_len
    }

    /// The hash a PIN must be given in, if the suite takes one.
    pub fn pin_hash(&self) -> Option<HashFunction> {
        self.pin_hash
    }

    /// Bytes of session information, if the suite takes it.
    pub fn session_len(&self) -> Option<usize> {
        self.session_len
    }

    /// Length of one time step in seconds, if the suite takes a timestamp.
    pub fn time_step_s(&self) -> Option<u64> {
        self.time_step_s
    }

    /// One-way challenge-response or a signature (RFC 6287 §7.1, §7.3).
    pub fn respond(
        &self,
        key: &[u8],
        challenge: &str,
        input: &DataInput,
    ) -> Result<String, OcraError> {
        self.check_challenge(challenge)?;
        self.compute(key, challenge, input)
    }

    /// The server's response in mutual mode: over the client's challenge
    /// followed by the server's (RFC 6287 §7.2).
    pub fn respond_mutual_server(
        &self,
        key: &[u8],
        client_challenge: &str,
        server_challenge: &str,
        input: &DataInput,
    ) -> Result<String, OcraError> {
        self.check_challenge(client_challenge)?;
        self.check_challenge(server_challenge)?;
        self.compute(key, &format!("{client_challenge}{server_challenge}"), input)
    }

    /// The client's response in mutual mode: over the server's challenge
    /// followed by the client's (RFC 6287 §7.2).
    pub fn respond_mutual_client(
        &self,
        key: &[u8],
        client_challenge: &str,
        server_challenge: &str,
        input: &DataInput,
    ) -> Result<String, OcraError> {
        self.check_challenge(client_challenge)?;
        self.check_challenge(server_challenge)?;
        self.compute(key, &format!("{server_challenge}{client_challenge}"), input)
    }

    fn check_challenge(&self, challenge: &str) -> Result<(), OcraError> {
        let len = challenge.chars().count();
        if len == 0 || len > self.challenge_max_len {
            return Err(OcraError::ChallengeLength {
                found: len,
                max: self.challenge_max_len,
            });
        }
        match challenge
            .chars()
            .enumerate()
            .find(|(_, c)| !self.challenge_format.allows(*c))
        {
            Some((position, found)) => Err(OcraError::ChallengeCharacter {
                position,
                found,
                format: self.challenge_format,
            }),
            None => Ok(()),
        }
    }

    /// `question` is already checked against the challenge format.
    fn compute(&self, key: &[u8], question: &str, input: &DataInput) -> Result<String, OcraError> {
        let message = self.message(question, input)?;
        let tag = hmac::sign(&hmac::Key::new(self.hash.hmac_algorithm(), key), &message);
        Ok(truncate(tag.as_ref(), self.digits))
    }

    /// The HMAC input: suite, 0x00, then C, Q, P, S, T as the suite names them.
    fn message(&self, question: &str, input: &DataInput) -> Result<Vec<u8>, OcraError> {
        let mut message = Vec::with_capacity(self.text.len() + 1 + 8 + QUESTION_LEN + 64 + 512 + 8);
        message.extend_from_slice(self.text.as_bytes());
        message.push(0);

        match (self.counter, input.counter) {
            (true, Some(counter)) => message.extend_from_slice(&counter.to_be_bytes()),
            (true, None) => return Err(OcraError::MissingInput(Input::Counter)),
            (false, Some(_)) => return Err(OcraError::UnexpectedInput(Input::Counter)),
            (false, None) => {}
        }

        message.extend_from_slice(&encode_question(question, self.challenge_format));

        match (self.pin_hash, input.pin_hash) {
            (Some(hash), Some(pin_hash)) if pin_hash.len() == hash.output_len() => {
                message.extend_from_slice(pin_hash)
            }
            (Some(hash), Some(pin_hash)) => {
                return Err(OcraError::PinHashLength {
                    expected: hash.output_len(),
                    found: pin_hash.len(),
                });
            }
            (Some(_), None) => return Err(OcraError::MissingInput(Input::PinHash)),
            (None, Some(_)) => return Err(OcraError::UnexpectedInput(Input::PinHash)),
            (None, None) => {}
        }

        match (self.session_len, input.session) {
            (Some(len), Some(session)) if session.len() <= len => {
                message.resize(message.len() + len - session.len(), 0);
                message.extend_from_slice(session);
            }
            (Some(len), Some(session)) => {
                return Err(OcraError::SessionTooLong {
                    max: len,
                    found: session.len(),
                });
            }
            (Some(_), None) => return Err(OcraError::MissingInput(Input::Session)),
            (None, Some(_)) => return Err(OcraError::UnexpectedInput(Input::Session)),
            (None, None) => {}
        }

        match (self.time_step_s, input.unix_time_s) {
            (Some(step_s), Some(unix_s)) => {
                message.extend_from_slice(&(unix_s / step_s).to_be_bytes())
            }
            (Some(_), None) => return Err(OcraError::MissingInput(Input::Timestamp)),
            (None, Some(_)) => return Err(OcraError::UnexpectedInput(Input::Timestamp)),
            (None, None) => {}
        }
        Ok(message)
    }
}

/// Puts a checked question into its 128-byte field (see the module docs).
fn encode_question(question: &str, format: ChallengeFormat) -> [u8; QUESTION_LEN] {
    let mut field = [0u8; QUESTION_LEN];
    match format {
        ChallengeFormat::Alphanumeric => {
            field[..question.len()].copy_from_slice(question.as_bytes())
        }
        ChallengeFormat::Numeric => pack_nibbles(&decimal_to_hex_nibbles(question), &mut field),
        ChallengeFormat::Hex => {
            let nibbles: Vec<u8> = question
                .chars()
                .map(|c| c.to_digit(16).expect("checked hex") as u8)
                .collect();
            pack_nibbles(&nibbles, &mut field)
        }
    }
    field
}

/// Left-aligns hex digits in `field`, two per byte, high nibble first.
fn pack_nibbles(nibbles: &[u8], field: &mut [u8]) {
    for (i, nibble) in nibbles.iter().enumerate() {
        field[i / 2] |= if i % 2 == 0 { nibble << 4 } else { *nibble };
    }
}

/// The hex digits of a decimal number of any length (at most 128 digits
/// here), most significant first, without leading zeros ("0" for zero).
fn decimal_to_hex_nibbles(decimal: &str) -> Vec<u8> {
    let mut number: Vec<u32> = decimal
        .bytes()
        .map(|b| u32::from(b - b'0'))
        .skip_while(|&d| d == 0)
        .collect();
    let mut nibbles = Vec::new();
    // Schoolbook long division by 16, collecting remainders.
    while !number.is_empty() {
        let mut quotient = Vec::with_capacity(number.len());
        let mut remainder = 0;
        for digit in &number {
            let current = remainder * 10 + digit;
            if !(quotient.is_empty() && current / 16 == 0) {
                quotient.push(current / 16);
            }
            remainder = current % 16;
        }
        nibbles.push(remainder as u8);
        number = quotient;
    }
    if nibbles.is_empty() {
        nibbles.push(0);
    }
    nibbles.reverse();
    nibbles
}

/// HOTP dynamic truncation (RFC 4226 §5.3) to `digits` decimal digits, or
/// the whole tag in hex for 0.
fn truncate(tag: &[u8], digits: u8) -> String {
    if digits == 0 {
        return hex::encode(tag);
    }
    let offset = usize::from(tag[tag.len() - 1] & 0x0f);
    let binary = u32::from_be_bytes([
        tag[offset] & 0x7f,
        tag[offset + 1],
        tag[offset + 2],
        tag[offset + 3],
    ]);
    let code = u64::from(binary) % 10u64.pow(u32::from(digits));
    format!("{code:0width$}", width = usize::from(digits))
}

/// One install's OCRA key. Its bytes belong in the secret store; `Debug`
/// does not show them and they are wiped when dropped.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct OcraKey([u8; OCRA_KEY_LEN]);

impl OcraKey {
    pub fn generate(rng: &dyn SecureRandom) -> Result<Self, OcraError> {
        let mut bytes = [0u8; OCRA_KEY_LEN];
        rng.fill(&mut bytes).map_err(|_| OcraError::Randomness)?;
        Ok(OcraKey(bytes))
    }

    /// Reads a key back from the secret store.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, OcraError> {
        let bytes: [u8; OCRA_KEY_LEN] = bytes.try_into().map_err(|_| OcraError::KeyLength {
            expected: OCRA_KEY_LEN,
            found: bytes.len(),
        })?;
        Ok(OcraKey(bytes))
    }

    /// The bytes to put in the secret store.
    pub fn as_bytes(&self) -> &[u8; OCRA_KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for OcraKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OcraKey(<redacted>)")
    }
}

/// Clink's suite, [`CLINK_SUITE`], parsed.
pub fn clink_suite() -> OcraSuite {
    CLINK_SUITE.parse().expect("CLINK_SUITE is a valid suite")
}

/// The app's answer to the server's challenge (8 digits in, 8 digits out).
pub fn clink_response(key: &OcraKey, challenge: &str) -> Result<String, OcraError> {
    clink_suite().respond(key.as_bytes(), challenge, &DataInput::default())
}

/// A fresh 8-digit challenge for the server to play.
pub fn new_clink_challenge(rng: &dyn SecureRandom) -> Result<String, OcraError> {
    let mut challenge = String::with_capacity(CLINK_CHALLENGE_DIGITS);
    let mut bytes = [0u8; 16];
    while challenge.len() < CLINK_CHALLENGE_DIGITS {
        rng.fill(&mut bytes).map_err(|_| OcraError::Randomness)?;
        push_uniform_digits(&bytes, &mut challenge, CLINK_CHALLENGE_DIGITS);
    }
    Ok(challenge)
}

/// Turns random bytes into decimal digits without bias: bytes of 250 and
/// above are dropped, the rest taken modulo 10.
fn push_uniform_digits(random: &[u8], digits: &mut String, want: usize) {
    for &byte in random.iter().filter(|&&b| b < 250) {
        if digits.len() == want {
            return;
        }
        digits.push(char::from(b'0' + byte % 10));
    }
}

/// Compares an expected response with a received one in time that does not
/// depend on where they differ (their lengths are not secret).
pub fn responses_match(expected: &str, received: &str) -> bool {
    expected.len() == received.len() && bool::from(expected.as_bytes().ct_eq(received.as_bytes()))
}

/// The server's check of an app's answer to `challenge`.
pub fn verify_clink_response(
    key: &OcraKey,
    challenge: &str,
    received: &str,
) -> Result<bool, OcraError> {
    Ok(responses_match(&clink_response(key, challenge)?, received))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;

    // RFC 6287 Appendix C keys: the ASCII digits "1234567890" repeated.
    const SEED_20: &str = "3132333435363738393031323334353637383930";
    const SEED_32: &str = "3132333435363738393031323334353637383930313233343536373839303132";
    const SEED_64: &str = "31323334353637383930313233343536373839303132333435363738393031323334353637383930313233343536373839303132333435363738393031323334";
    // SHA-1 of the PIN "1234", as Appendix C gives it.
    const PIN_1234_SHA1: &str = "7110eda4d09e062aa5e4a390b0a572ac0d2c0220";
    // Appendix C's timestamp: 0x132d0b6 minutes after the Unix epoch.
    const T_MINUTES: u64 = 0x132d0b6;

    fn key(hex_key: &str) -> Vec<u8> {
        hex::decode(hex_key).unwrap()
    }

    fn suite(text: &str) -> OcraSuite {
        text.parse().unwrap()
    }

    fn repeated_digit(i: usize) -> String {
        i.to_string().repeat(8)
    }

    #[test]
    fn rfc6287_one_way_sha1_6_qn08() {
        let expected = [
            "237653", "243178", "653583", "740991", "608993", "388898", "816933", "224598",
            "750600", "294470",
        ];
        let suite = suite("OCRA-1:HOTP-SHA1-6:QN08");
        for (i, response) in expected.iter().enumerate() {
            let q = repeated_digit(i);
            assert_eq!(
                suite
                    .respond(&key(SEED_20), &q, &DataInput::default())
                    .unwrap(),
                *response,
                "Q={q}"
            );
        }
    }

    #[test]
    fn rfc6287_one_way_sha256_8_c_qn08_psha1() {
        let expected = [
            "65347737", "86775851", "78192410", "71565254", "10104329", "65983500", "70069104",
            "91771096", "75011558", "08522129",
        ];
        let suite = suite("OCRA-1:HOTP-SHA256-8:C-QN08-PSHA1");
        let pin = key(PIN_1234_SHA1);
        assert_eq!(HashFunction::Sha1.hash(b"1234"), pin);
        for (c, response) in expected.iter().enumerate() {
            let input = DataInput {
                counter: Some(c as u64),
                pin_hash: Some(&pin),
                ..DataInput::default()
            };
            assert_eq!(
                suite.respond(&key(SEED_32), "12345678", &input).unwrap(),
                *response,
                "C={c}"
            );
        }
    }

    #[test]
    fn rfc6287_one_way_sha256_8_qn08_psha1() {
        let expected = ["83238735", "01501458", "17957585", "86776967", "86807031"];
        let suite = suite("OCRA-1:HOTP-SHA256-8:QN08-PSHA1");
        let pin = key(PIN_1234_SHA1);
        let input = DataInput {
            pin_hash: Some(&pin),
            ..DataInput::default()
        };
        for (i, response) in expected.iter().enumerate() {
            assert_eq!(
                suite
                    .respond(&key(SEED_32), &repeated_digit(i), &input)
                    .unwrap(),
                *response
            );
        }
    }

    #[test]
    fn rfc6287_one_way_sha512_8_c_qn08() {
        let expected = [
            "07016083", "63947962", "70123924", "25341727", "33203315", "34205738", "44343969",
            "51946085", "20403879", "31409299",
        ];
        let suite = suite("OCRA-1:HOTP-SHA512-8:C-QN08");
        for (i, response) in expected.iter().enumerate() {
            let input = DataInput {
                counter: Some(i as u64),
                ..DataInput::default()
            };
            assert_eq!(
                suite
                    .respond(&key(SEED_64), &repeated_digit(i), &input)
                    .unwrap(),
                *response
            );
        }
    }

    #[test]
    fn rfc6287_one_way_sha512_8_qn08_t1m() {
        let expected = ["95209754", "55907591", "22048402", "24218844", "36209546"];
        let suite = suite("OCRA-1:HOTP-SHA512-8:QN08-T1M");
        for (i, response) in expected.iter().enumerate() {
            // Any second within the minute gives the same time step.
            for second in [0, 30, 59] {
                let input = DataInput {
                    unix_time_s: Some(T_MINUTES * 60 + second),
                    ..DataInput::default()
                };
                assert_eq!(
                    suite
                        .respond(&key(SEED_64), &repeated_digit(i), &input)
                        .unwrap(),
                    *response
                );
            }
        }
    }

    #[test]
    fn rfc6287_mutual_sha256_8_qa08_server_and_client() {
        let suite = suite("OCRA-1:HOTP-SHA256-8:QA08");
        let server = [
            ("CLI22220", "SRV11110", "28247970"),
            ("CLI22221", "SRV11111", "01984843"),
            ("CLI22222", "SRV11112", "65387857"),
            ("CLI22223", "SRV11113", "03351211"),
            ("CLI22224", "SRV11114", "83412541"),
        ];
        for (qc, qs, response) in server {
            let r = suite
                .respond_mutual_server(&key(SEED_32), qc, qs, &DataInput::default())
                .unwrap();
            assert_eq!(r, response);
        }
        let client = [
            ("CLI22220", "SRV11110", "15510767"),
            ("CLI22221", "SRV11111", "90175646"),
            ("CLI22222", "SRV11112", "33777207"),
            ("CLI22223", "SRV11113", "95285278"),
            ("CLI22224", "SRV11114", "28934924"),
        ];
        for (qc, qs, response) in client {
            let r = suite
                .respond_mutual_client(&key(SEED_32), qc, qs, &DataInput::default())
                .unwrap();
            assert_eq!(r, response);
        }
    }

    #[test]
    fn rfc6287_mutual_sha512_8_qa08_server_and_psha1_client() {
        let server_suite = suite("OCRA-1:HOTP-SHA512-8:QA08");
        let server = [
            ("CLI22220", "SRV11110", "79496648"),
            ("CLI22221", "SRV11111", "76831980"),
            ("CLI22222", "SRV11112", "12250499"),
            ("CLI22223", "SRV11113", "90856481"),
            ("CLI22224", "SRV11114", "12761449"),
        ];
        for (qc, qs, response) in server {
            let r = server_suite
                .respond_mutual_server(&key(SEED_64), qc, qs, &DataInput::default())
                .unwrap();
            assert_eq!(r, response);
        }
        let client_suite = suite("OCRA-1:HOTP-SHA512-8:QA08-PSHA1");
        let pin = key(PIN_1234_SHA1);
        let input = DataInput {
            pin_hash: Some(&pin),
            ..DataInput::default()
        };
        let client = [
            ("CLI22220", "SRV11110", "18806276"),
            ("CLI22221", "SRV11111", "70020315"),
            ("CLI22222", "SRV11112", "01600026"),
            ("CLI22223", "SRV11113", "18951020"),
            ("CLI22224", "SRV11114", "32528969"),
        ];
        for (qc, qs, response) in client {
            let r = client_suite
                .respond_mutual_client(&key(SEED_64), qc, qs, &input)
                .unwrap();
            assert_eq!(r, response);
        }
    }

    #[test]
    fn rfc6287_plain_signature_sha256_8_qa08() {
        let suite = suite("OCRA-1:HOTP-SHA256-8:QA08");
        let expected = [
            ("SIG10000", "53095496"),
            ("SIG11000", "04110475"),
            ("SIG12000", "31331128"),
            ("SIG13000", "76028668"),
            ("SIG14000", "46554205"),
        ];
        for (q, response) in expected {
            assert_eq!(
                suite
                    .respond(&key(SEED_32), q, &DataInput::default())
                    .unwrap(),
                response
            );
        }
    }

    #[test]
    fn rfc6287_signature_with_timestamp_sha512_8_qa10_t1m() {
        let suite = suite("OCRA-1:HOTP-SHA512-8:QA10-T1M");
        let input = DataInput {
            unix_time_s: Some(T_MINUTES * 60),
            ..DataInput::default()
        };
        let expected = [
            ("SIG1000000", "77537423"),
            ("SIG1100000", "31970405"),
            ("SIG1200000", "10235557"),
            ("SIG1300000", "95213541"),
            ("SIG1400000", "65360607"),
        ];
        for (q, response) in expected {
            assert_eq!(suite.respond(&key(SEED_64), q, &input).unwrap(), response);
        }
    }

    #[test]
    fn suites_parse_into_their_parts() {
        let s = suite("OCRA-1:HOTP-SHA512-8:C-QH16-PSHA256-S128-T14H");
        assert_eq!(s.hash(), HashFunction::Sha512);
        assert_eq!(s.digits(), 8);
        assert!(s.uses_counter());
        assert_eq!(
            (s.challenge_format(), s.challenge_max_len()),
            (ChallengeFormat::Hex, 16)
        );
        assert_eq!(s.pin_hash(), Some(HashFunction::Sha256));
        assert_eq!(s.session_len(), Some(128));
        assert_eq!(s.time_step_s(), Some(14 * 3600));
        assert_eq!(
            s.to_string(),
            "OCRA-1:HOTP-SHA512-8:C-QH16-PSHA256-S128-T14H"
        );

        let s = suite("OCRA-1:HOTP-SHA1-0:QA64-T30S");
        assert_eq!(
            (s.digits(), s.uses_counter(), s.pin_hash(), s.session_len()),
            (0, false, None, None)
        );
        assert_eq!(s.time_step_s(), Some(30));
        assert_eq!(clink_suite().challenge_max_len(), CLINK_CHALLENGE_DIGITS);
    }

    #[test]
    fn bad_suites_get_typed_errors() {
        let err = |s: &str| s.parse::<OcraSuite>().unwrap_err();
        assert!(matches!(
            err("OCRA-1:HOTP-SHA1-6"),
            OcraError::SuiteStructure { .. }
        ));
        assert!(matches!(
            err("OCRA-1:HOTP-SHA1-6:QN08:X"),
            OcraError::SuiteStructure { .. }
        ));
        assert_eq!(
            err("OCRA-2:HOTP-SHA1-6:QN08"),
            OcraError::SuiteVersion {
                found: "OCRA-2".into()
            }
        );
        assert!(matches!(
            err("OCRA-1:TOTP-SHA1-6:QN08"),
            OcraError::CryptoFunction { .. }
        ));
        assert!(matches!(
            err("OCRA-1:HOTP-MD5-6:QN08"),
            OcraError::CryptoFunction { .. }
        ));
        for t in ["1", "3", "11", "", "a0", "006", "06", "+6", "00"] {
            let suite = format!("OCRA-1:HOTP-SHA1-{t}:QN08");
            assert_eq!(
                err(&suite),
                OcraError::Truncation { found: t.into() },
                "{suite}"
            );
        }
        assert_eq!(
            err("OCRA-1:HOTP-SHA1-6:QX08"),
            OcraError::ChallengeFormat {
                item: "QX08".into()
            }
        );
        assert_eq!(
            err("OCRA-1:HOTP-SHA1-6:QN03"),
            OcraError::ChallengeFormat {
                item: "QN03".into()
            }
        );
        assert_eq!(
            err("OCRA-1:HOTP-SHA1-6:QN65"),
            OcraError::ChallengeFormat {
                item: "QN65".into()
            }
        );
        assert_eq!(
            err("OCRA-1:HOTP-SHA1-6:QN8"),
            OcraError::ChallengeFormat { item: "QN8".into() }
        );
        assert_eq!(err("OCRA-1:HOTP-SHA1-6:C"), OcraError::MissingChallenge);
        assert_eq!(
            err("OCRA-1:HOTP-SHA1-6:QN08-X"),
            OcraError::UnknownDataInput { item: "X".into() }
        );
        assert_eq!(
            err("OCRA-1:HOTP-SHA1-6:QN08-"),
            OcraError::UnknownDataInput { item: "".into() }
        );
        assert_eq!(
            err("OCRA-1:HOTP-SHA1-6:CX-QN08"),
            OcraError::UnknownDataInput { item: "CX".into() }
        );
        assert_eq!(
            err("OCRA-1:HOTP-SHA1-6:QN08-C"),
            OcraError::DataInputOrder { item: "C".into() }
        );
        assert_eq!(
            err("OCRA-1:HOTP-SHA1-6:QN08-QN08"),
            OcraError::DataInputOrder {
                item: "QN08".into()
            }
        );
        assert_eq!(
            err("OCRA-1:HOTP-SHA1-6:QN08-T1M-S064"),
            OcraError::DataInputOrder {
                item: "S064".into()
            }
        );
        assert_eq!(
            err("OCRA-1:HOTP-SHA1-6:QN08-PMD5"),
            OcraError::PinHashFunction {
                item: "PMD5".into()
            }
        );
        assert_eq!(
            err("OCRA-1:HOTP-SHA1-6:QN08-S64"),
            OcraError::SessionLength { item: "S64".into() }
        );
        assert_eq!(
            err("OCRA-1:HOTP-SHA1-6:QN08-S000"),
            OcraError::SessionLength {
                item: "S000".into()
            }
        );
        assert_eq!(
            err("OCRA-1:HOTP-SHA1-6:QN08-S513"),
            OcraError::SessionLength {
                item: "S513".into()
            }
        );
        for t in ["T", "T1", "T0M", "T60S", "T49H", "T1X", "T100M", "TM"] {
            let suite = format!("OCRA-1:HOTP-SHA1-6:QN08-{t}");
            assert_eq!(
                err(&suite),
                OcraError::TimeStep { item: t.into() },
                "{suite}"
            );
        }
    }

    #[test]
    fn challenges_are_checked_against_the_suite() {
        let s = suite("OCRA-1:HOTP-SHA256-8:QN08");
        let k = key(SEED_32);
        let none = DataInput::default();
        assert_eq!(
            s.respond(&k, "", &none),
            Err(OcraError::ChallengeLength { found: 0, max: 8 })
        );
        assert_eq!(
            s.respond(&k, "123456789", &none),
            Err(OcraError::ChallengeLength { found: 9, max: 8 })
        );
        assert_eq!(
            s.respond(&k, "1234a678", &none),
            Err(OcraError::ChallengeCharacter {
                position: 4,
                found: 'a',
                format: ChallengeFormat::Numeric
            })
        );
        let hex = suite("OCRA-1:HOTP-SHA256-8:QH08");
        assert!(hex.respond(&k, "deadBEEF", &none).is_ok());
        assert!(matches!(
            hex.respond(&k, "deadbeeg", &none),
            Err(OcraError::ChallengeCharacter { position: 7, .. })
        ));
        let alpha = suite("OCRA-1:HOTP-SHA256-8:QA08");
        assert!(matches!(
            alpha.respond(&k, "SIG-1000", &none),
            Err(OcraError::ChallengeCharacter { position: 3, .. })
        ));
        // In mutual mode each challenge is held to the limit on its own.
        assert!(matches!(
            alpha.respond_mutual_server(&k, "CLI222200", "SRV11110", &none),
            Err(OcraError::ChallengeLength { found: 9, max: 8 })
        ));
    }

    #[test]
    fn inputs_must_match_the_suite() {
        let k = key(SEED_32);
        let pin = key(PIN_1234_SHA1);
        let none = DataInput::default();
        let all = suite("OCRA-1:HOTP-SHA1-6:C-QN08-PSHA1-S004-T1M");
        let full = DataInput {
            counter: Some(1),
            pin_hash: Some(&pin),
            session: Some(b"abcd"),
            unix_time_s: Some(60),
        };
        assert!(all.respond(&k, "1234", &full).is_ok());
        let missing = [
            (
                DataInput {
                    counter: None,
                    ..full
                },
                Input::Counter,
            ),
            (
                DataInput {
                    pin_hash: None,
                    ..full
                },
                Input::PinHash,
            ),
            (
                DataInput {
                    session: None,
                    ..full
                },
                Input::Session,
            ),
            (
                DataInput {
                    unix_time_s: None,
                    ..full
                },
                Input::Timestamp,
            ),
        ];
        for (input, which) in missing {
            assert_eq!(
                all.respond(&k, "1234", &input),
                Err(OcraError::MissingInput(which))
            );
        }
        let bare = suite("OCRA-1:HOTP-SHA1-6:QN08");
        let unexpected = [
            (
                DataInput {
                    counter: Some(1),
                    ..none
                },
                Input::Counter,
            ),
            (
                DataInput {
                    pin_hash: Some(&pin),
                    ..none
                },
                Input::PinHash,
            ),
            (
                DataInput {
                    session: Some(b"abcd"),
                    ..none
                },
                Input::Session,
            ),
            (
                DataInput {
                    unix_time_s: Some(60),
                    ..none
                },
                Input::Timestamp,
            ),
        ];
        for (input, which) in unexpected {
            assert_eq!(
                bare.respond(&k, "1234", &input),
                Err(OcraError::UnexpectedInput(which))
            );
        }
        let short_pin = DataInput {
            pin_hash: Some(&pin[..19]),
            ..full
        };
        assert_eq!(
            all.respond(&k, "1234", &short_pin),
            Err(OcraError::PinHashLength {
                expected: 20,
                found: 19
            })
        );
        let long_session = DataInput {
            session: Some(b"abcde"),
            ..full
        };
        assert_eq!(
            all.respond(&k, "1234", &long_session),
            Err(OcraError::SessionTooLong { max: 4, found: 5 })
        );
    }

    #[test]
    fn short_session_information_is_left_padded_with_zeros() {
        let s = suite("OCRA-1:HOTP-SHA1-6:QN08-S004");
        let k = key(SEED_20);
        let short = DataInput {
            session: Some(b"ab"),
            ..DataInput::default()
        };
        let padded = DataInput {
            session: Some(b"\0\0ab"),
            ..DataInput::default()
        };
        assert_eq!(
            s.respond(&k, "1234", &short).unwrap(),
            s.respond(&k, "1234", &padded).unwrap()
        );
        let other = DataInput {
            session: Some(b"ab\0\0"),
            ..DataInput::default()
        };
        assert_ne!(
            s.respond(&k, "1234", &short).unwrap(),
            s.respond(&k, "1234", &other).unwrap()
        );
    }

    #[test]
    fn zero_truncation_returns_the_whole_hmac_in_hex() {
        let s = suite("OCRA-1:HOTP-SHA256-0:QN08");
        let r = s
            .respond(&key(SEED_32), "12345678", &DataInput::default())
            .unwrap();
        assert_eq!(r.len(), 64);
        assert!(r.bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn decimal_to_hex_handles_long_numbers() {
        let hex_of = |d: &str| -> String {
            decimal_to_hex_nibbles(d)
                .iter()
                .map(|n| char::from_digit(u32::from(*n), 16).unwrap())
                .collect()
        };
        assert_eq!(hex_of("0"), "0");
        assert_eq!(hex_of("00000000"), "0");
        assert_eq!(hex_of("99999999"), "5f5e0ff");
        assert_eq!(hex_of("18446744073709551615"), "ffffffffffffffff");
        assert_eq!(hex_of("18446744073709551616"), "10000000000000000");
        // 64 nines: 10^64 - 1 needs 54 hex digits.
        assert_eq!(
            hex_of(&"9".repeat(64)),
            "184f03e93ff9f4daa797ed6e38ed64bf6a1f00ffffffffffffffff"
        );
    }

    #[test]
    fn clink_key_round_trips_and_hides_in_debug() {
        let rng = SystemRandom::new();
        let a = OcraKey::generate(&rng).unwrap();
        let b = OcraKey::generate(&rng).unwrap();
        assert_ne!(a, b);
        assert_eq!(OcraKey::from_bytes(a.as_bytes()).unwrap(), a);
        assert_eq!(
            OcraKey::from_bytes(&[0; 31]),
            Err(OcraError::KeyLength {
                expected: 32,
                found: 31
            })
        );
        let shown = format!("{a:?}");
        assert_eq!(shown, "OcraKey(<redacted>)");
    }

    #[test]
    fn clink_response_verifies_with_the_same_key_only() {
        let rng = SystemRandom::new();
        let key = OcraKey::generate(&rng).unwrap();
        let other = OcraKey::generate(&rng).unwrap();
        let challenge = new_clink_challenge(&rng).unwrap();
        let answer = clink_response(&key, &challenge).unwrap();
        assert_eq!(answer.len(), 8);
        assert!(answer.bytes().all(|b| b.is_ascii_digit()));
        assert!(verify_clink_response(&key, &challenge, &answer).unwrap());
        let wrong_answer = format!("{}{}", &answer[..7], (answer.as_bytes()[7] - b'0' + 1) % 10);
        assert!(!verify_clink_response(&key, &challenge, &wrong_answer).unwrap());
        assert!(!verify_clink_response(&key, &challenge, &answer[..7]).unwrap());
        // Another install's answer to the same challenge.
        let theirs = clink_response(&other, &challenge).unwrap();
        assert_eq!(
            verify_clink_response(&key, &challenge, &theirs).unwrap(),
            theirs == answer
        );
    }

    #[test]
    fn clink_response_matches_the_generic_suite() {
        let raw_key = key(SEED_32);
        let ocra_key = OcraKey::from_bytes(&raw_key).unwrap();
        let generic =
            suite("OCRA-1:HOTP-SHA256-8:QN08").respond(&raw_key, "12345678", &DataInput::default());
        assert_eq!(clink_response(&ocra_key, "12345678"), generic);
    }

    #[test]
    fn challenge_digits_drop_biased_bytes() {
        let mut digits = String::new();
        push_uniform_digits(
            &[0, 9, 10, 249, 250, 255, 123, 77, 58, 41, 1],
            &mut digits,
            8,
        );
        assert_eq!(digits, "09093781");
        let mut capped = String::new();
        push_uniform_digits(&[1; 20], &mut capped, 8);
        assert_eq!(capped, "11111111");
    }

    #[test]
    fn new_challenges_are_eight_digits_and_vary() {
        let rng = SystemRandom::new();
        let challenges: Vec<String> = (0..20)
            .map(|_| new_clink_challenge(&rng).unwrap())
            .collect();
        assert!(
            challenges
                .iter()
                .all(|c| c.len() == 8 && c.bytes().all(|b| b.is_ascii_digit()))
        );
        assert!(challenges.iter().any(|c| c != &challenges[0]));
    }

    #[test]
    fn responses_match_is_exact() {
        assert!(responses_match("12345678", "12345678"));
        assert!(!responses_match("12345678", "12345679"));
        assert!(!responses_match("12345678", "1234567"));
        assert!(!responses_match("12345678", ""));
    }
}
