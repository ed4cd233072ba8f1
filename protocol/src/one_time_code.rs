//! The one-time code a customer's phone shows and a shop's terminal scans:
//! the other way round from the merchant QR ([`crate::emvco`]).
//!
//! The server issues a code for one payment; it is good for at most
//! [`LIFETIME_MS`] and for one use (the server's rules). This module is its
//! text form, which the phone that shows it and the terminal that reads it
//! share.
//!
//! # Form
//!
//! [`PREFIX`] `CL`, then 16 digits: 15 the server draws at random, then
//! their [Damm](crate::damm) check digit.
//!
//! * Scanned (QR or barcode): `CL` and the digits, as [`OneTimeCode`]'s
//!   `Display` writes it: `CL4821937705126640`. Capital letters and digits
//!   only, so a QR holds it in alphanumeric mode and Code 128 prints it.
//! * Read out or typed: [`OneTimeCode::grouped`], `CL 4821 9377 0512 6640`.
//!
//! The parser takes either: it ignores whitespace (scanners often end with
//! a newline) and `-`, reads the prefix in any case, and takes the 16
//! digits without it, as a cashier keys them on a number pad. The check
//! digit catches any one mistyped digit and any two adjacent digits swapped.
//! 15 random digits are about 50 bits: far beyond guessing within a minute.
//!
//! ```
//! use clink_protocol::one_time_code::{OneTimeCode, OneTimeCodeError};
//!
//! let code = OneTimeCode::from_body(482_193_770_512_664).unwrap();
//! assert_eq!(code.to_string(), "CL4821937705126640");
//! assert_eq!(code.grouped(), "CL 4821 9377 0512 6640");
//! assert_eq!("4821-9377-0512-6640".parse(), Ok(code));
//! assert_eq!("CL 4821 9377 0512 6604".parse::<OneTimeCode>(), Err(OneTimeCodeError::CheckDigitWrong));
//! ```

use std::fmt;
use std::str::FromStr;

use crate::damm;
use crate::wire::Millis;

/// What the scanned form starts with, so a terminal tells a Clink code from
/// other wallets' codes.
pub const PREFIX: &str = "CL";

/// Digits after the prefix: the body and the check digit.
pub const DIGITS: usize = 16;

/// The body is below this: 15 decimal digits.
pub const BODY_LIMIT: u64 = 1_000_000_000_000_000;

/// The longest a code may be good for, from its issue.
pub const LIFETIME_MS: Millis = 60_000;

/// A one-time code: 15 digits of body and a Damm check digit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OneTimeCode {
    body: u64,
}

/// Why a text is not a one-time code. `position` is a 0-based character
/// index into the text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OneTimeCodeError {
    #[error("character {position}: {found:?} is not a digit")]
    NotADigit { position: usize, found: char },
    #[error("a one-time code has {DIGITS} digits, this has {found}")]
    WrongLength { found: usize },
    #[error("the check digit is wrong: a digit was mistyped or two were swapped")]
    CheckDigitWrong,
}

impl OneTimeCode {
    /// The code for a body the server drew uniformly below [`BODY_LIMIT`];
    /// `None` if it is not below.
    pub fn from_body(body: u64) -> Option<Self> {
        (body < BODY_LIMIT).then_some(Self { body })
    }

    pub fn body(self) -> u64 {
        self.body
    }

    /// The 16 digits, without the prefix.
    pub fn digits(self) -> String {
        let body = format!("{:015}", self.body);
        let check = damm::check_digit(body.bytes().map(|b| b - b'0'));
        format!("{body}{check}")
    }

    /// The form for people: `CL 4821 9377 0512 6640`.
    pub fn grouped(self) -> String {
        let digits = self.digits();
        let groups: Vec<&str> = [0, 4, 8, 12].map(|i| &digits[i..i + 4]).to_vec();
        format!("{PREFIX} {}", groups.join(" "))
    }

    /// Reads a scanned or typed code (see the module docs).
    pub fn parse(text: &str) -> Result<Self, OneTimeCodeError> {
        let trimmed = text.trim_start();
        let mut position = text.chars().count() - trimmed.chars().count();
        let rest = match trimmed.get(..PREFIX.len()) {
            Some(prefix) if prefix.eq_ignore_ascii_case(PREFIX) => {
                position += PREFIX.len();
                &trimmed[PREFIX.len()..]
            }
            _ => trimmed,
        };
        let mut digits = Vec::with_capacity(DIGITS);
        let mut found = 0;
        for (offset, c) in rest.chars().enumerate() {
            if c.is_whitespace() || c == '-' {
                continue;
            }
            let digit = c.to_digit(10).ok_or(OneTimeCodeError::NotADigit {
                position: position + offset,
                found: c,
            })?;
            found += 1;
            if digits.len() < DIGITS {
                // A decimal digit fits in a u8.
                digits.push(digit as u8);
            }
        }
        if found != DIGITS {
            return Err(OneTimeCodeError::WrongLength { found });
        }
        if !damm::is_valid(digits.iter().copied()) {
            return Err(OneTimeCodeError::CheckDigitWrong);
        }
        let body = digits[..DIGITS - 1]
            .iter()
            .fold(0, |body, &d| body * 10 + u64::from(d));
        Ok(Self { body })
    }
}

impl fmt::Display for OneTimeCode {
    /// The scanned form: `CL4821937705126640`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{}", self.digits())
    }
}

impl FromStr for OneTimeCode {
    type Err = OneTimeCodeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::{Config, RngSeed};

    fn code(body: u64) -> OneTimeCode {
        OneTimeCode::from_body(body).unwrap()
    }

    #[test]
    fn writes_the_prefix_the_body_and_its_damm_digit() {
        assert_eq!(code(0).to_string(), "CL0000000000000000");
        assert_eq!(code(572).digits(), "0000000000005724");
        assert_eq!(code(BODY_LIMIT - 1).grouped(), "CL 9999 9999 9999 9990");
        assert_eq!(OneTimeCode::from_body(BODY_LIMIT), None);
    }

    #[test]
    fn reads_every_written_and_typed_form() {
        let expected = Ok(code(482_193_770_512_664));
        for text in [
            "CL4821937705126640",
            "cl4821937705126640",
            "CL 4821 9377 0512 6640",
            "  CL-4821-9377-0512-6640\r\n",
            "4821937705126640",
            "4821 9377 0512 6640",
        ] {
            assert_eq!(OneTimeCode::parse(text), expected, "{text:?}");
        }
    }

    #[test]
    fn rejects_with_the_reason_and_where() {
        use OneTimeCodeError::*;
        let cases = [
            ("", WrongLength { found: 0 }),
            ("CL", WrongLength { found: 0 }),
            ("CL 4821 9377 0512 664", WrongLength { found: 15 }),
            ("CL 4821 9377 0512 66401", WrongLength { found: 17 }),
            (
                "CL 4821 9377 O512 6640",
                NotADigit {
                    position: 13,
                    found: 'O',
                },
            ),
            (
                "XL4821937705126640",
                NotADigit {
                    position: 0,
                    found: 'X',
                },
            ),
            (
                "CL４821937705126640",
                NotADigit {
                    position: 2,
                    found: '４',
                },
            ),
            ("CL4821937705126604", CheckDigitWrong),
            ("CL4821937705126641", CheckDigitWrong),
        ];
        for (text, error) in cases {
            assert_eq!(OneTimeCode::parse(text), Err(error), "{text:?}");
        }
    }

    #[test]
    fn every_single_typo_and_adjacent_swap_is_caught() {
        let digits: Vec<u8> = code(482_193_770_512_664)
            .digits()
            .bytes()
            .map(|b| b - b'0')
            .collect();
        let text = |d: &[u8]| d.iter().map(|d| char::from(b'0' + d)).collect::<String>();
        for i in 0..DIGITS {
            for wrong in (0..10).filter(|&w| w != digits[i]) {
                let mut typo = digits.clone();
                typo[i] = wrong;
                assert_eq!(
                    OneTimeCode::parse(&text(&typo)),
                    Err(OneTimeCodeError::CheckDigitWrong)
                );
            }
            if i + 1 < DIGITS && digits[i] != digits[i + 1] {
                let mut swapped = digits.clone();
                swapped.swap(i, i + 1);
                assert_eq!(
                    OneTimeCode::parse(&text(&swapped)),
                    Err(OneTimeCodeError::CheckDigitWrong)
                );
            }
        }
    }

    fn seeded(cases: u32) -> Config {
        Config {
            cases,
            rng_seed: RngSeed::Fixed(0x0c11_4b00),
            failure_persistence: None,
            ..Config::default()
        }
    }

    proptest! {
        #![proptest_config(seeded(2000))]

        #[test]
        fn both_forms_round_trip(body in 0..BODY_LIMIT) {
            let code = code(body);
            prop_assert_eq!(OneTimeCode::parse(&code.to_string()), Ok(code));
            prop_assert_eq!(OneTimeCode::parse(&code.grouped()), Ok(code));
            prop_assert_eq!(code.body(), body);
        }

        #[test]
        fn any_text_is_read_or_refused_without_panic(text in any::<String>()) {
            let _ = OneTimeCode::parse(&text);
        }

        #[test]
        fn digit_soup_is_read_or_refused_without_panic(text in "(?i:cl)?[0-9 -]{0,24}") {
            let _ = OneTimeCode::parse(&text);
        }
    }
}
