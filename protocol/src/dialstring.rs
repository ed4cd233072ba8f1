//! Dial strings: a whole remittance packed into something a phone can dial.
//!
//! A dial string is digits and fields separated by `*`, optionally ended by
//! `#`. People type `-` to group digits; it is ignored everywhere. Phone
//! fields are digit strings exactly as typed (national or international
//! digits, no `+`); the server maps them to accounts.
//!
//! # Forms
//!
//! | form              | grammar                               | example                         | written by |
//! |-------------------|---------------------------------------|---------------------------------|------------|
//! | send (seed)       | `originator*payee*amount[#]`          | `00-0000-0000*1111*800`         | people     |
//! | quick send (seed) | `111payee*amount[#]`                  | `111-090-1111-1111*800`         | people     |
//! | send              | `*1*originator*payee*amount*C[#]`     | `*1*0000000000*1111*800*8#`     | Clink      |
//! | request           | `*2*requester*payer*amount*C[#]`      | `*2*09011111111*1111*800*1#`    | Clink      |
//! | quick send        | `*3*payee*amount*C[#]`                | `*3*09011111111*800*5#`         | Clink      |
//!
//! * A string that starts with `*` (after any `-`) was written by Clink and
//!   must end in a check digit `C`; a string that starts with a digit is a
//!   seed form typed by a person and has none.
//! * In the written forms the digit after the leading `*` says what the
//!   string is: `1` send, `2` request (the requester asks the payer for the
//!   amount), `3` quick send. That is how a request is told apart from a send:
//!   the fields are the same shape, the kind digit differs, and the check
//!   digit covers the kind digit so a typo cannot turn one into the other.
//!   Requests have no seed form.
//! * A seed with three fields is a send; a seed with two fields is a quick
//!   send, whose first field must start with the prefix `111` followed by the
//!   payee's number.
//! * Clink always writes the `#`; the parser accepts strings with or without.
//!
//! # Check digit
//!
//! `C` is the [Damm](crate::damm) check digit of: every digit of the string
//! before `C` in order, then, for every `*` in the string, its offset among
//! the dialable characters (digits and `*`, counted from 0) modulo 10. The
//! digits alone catch every single mistyped digit and every swap of two
//! adjacent digits; the `*` offsets also catch a `*` typed one place early or
//! late (`*1*1234*56*` for `*1*123*456*`), which would otherwise move digits
//! from one field to the next unnoticed. `-` does not count, so regrouping
//! digits does not change `C`.
//!
//! # Fields
//!
//! * Phone fields: 1 to [`MAX_PHONE_DIGITS`] digits.
//! * Amounts: a positive integer in minor units of the currency, 1 to
//!   [`MAX_AMOUNT_MINOR`], written in decimal with no leading zero (so each
//!   amount has exactly one spelling: `0800` is rejected, not read as 800).
//! * The whole string: at most [`MAX_DIAL_CHARS`] dialable characters.
//!
//! Errors name the 0-based character index in the input where the problem is.
//!
//! ```
//! use clink_protocol::dialstring::{parse, DialCommand, DialError, DialForm};
//!
//! let typed = parse("111-090-1111-1111*800").unwrap();
//! assert_eq!(typed.form, DialForm::Seed);
//! let DialCommand::QuickSend(quick) = &typed.command else { unreachable!() };
//! assert_eq!((quick.payee.as_str(), quick.amount.minor_units()), ("09011111111", 800));
//!
//! // What Clink writes for the same quick send, and a typo in it.
//! assert_eq!(typed.command.to_dial_string(), "*3*09011111111*800*5#");
//! assert_eq!(parse("*3*09011111111*600*5#"), Err(DialError::CheckDigitWrong { position: 19 }));
//! ```

use std::fmt;

use crate::damm;

/// The most dialable characters (digits, `*`, `#`) a phone can send in one
/// call setup.
///
/// 3GPP TS 24.008 §10.5.4.7: the Called party BCD number is a type 4
/// information element of at most 43 octets. Less the IE identifier (octet
/// 1), the length (octet 2) and the type of number / numbering plan (octet
/// 3), 40 octets carry BCD digits, two per octet; `*` and `#` have BCD codes
/// of their own, so they count as digits: 40 × 2 = 80.
pub const MAX_DIAL_CHARS: usize = 80;

/// Longest phone field: E.164's 15 digits plus room for an international
/// access prefix such as `010` or `0011`.
pub const MAX_PHONE_DIGITS: usize = 20;

/// Largest amount in minor units: 15 decimal digits, so it also fits the
/// server's signed 64-bit columns.
pub const MAX_AMOUNT_MINOR: u64 = 999_999_999_999_999;

/// The first digits of a seed quick send, before the payee's number.
pub const QUICK_SEND_PREFIX: &str = "111";

const KIND_SEND: char = '1';
const KIND_REQUEST: char = '2';
const KIND_QUICK_SEND: char = '3';

/// Which field of a dial string an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Kind,
    Originator,
    Payee,
    Requester,
    Payer,
    /// A phone field given to [`PhoneDigits::new`] outside any dial string.
    Phone,
    Amount,
    CheckDigit,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Kind => "kind",
            Field::Originator => "originator",
            Field::Payee => "payee",
            Field::Requester => "requester",
            Field::Payer => "payer",
            Field::Phone => "phone number",
            Field::Amount => "amount",
            Field::CheckDigit => "check digit",
        })
    }
}

/// Why a dial string was rejected; `position` is a 0-based character index
/// into the input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DialError {
    #[error("the dial string is empty")]
    Empty,
    #[error(
        "unexpected character {found:?} at {position}: only digits, '*', '#' and '-' may be dialed, and nothing after '#'"
    )]
    UnexpectedChar { position: usize, found: char },
    #[error("too long at {position}: a phone can dial at most {max} digits, '*' and '#'")]
    TooLong { position: usize, max: usize },
    #[error("the {field} at {position} is empty")]
    EmptyField { position: usize, field: Field },
    #[error(
        "too few fields: the string ends at {position} after {found} field(s), {expected} needed"
    )]
    TooFewFields {
        position: usize,
        expected: usize,
        found: usize,
    },
    #[error("too many fields: '*' at {position} starts field {found}, at most {max} allowed")]
    TooManyFields {
        position: usize,
        max: usize,
        found: usize,
    },
    #[error(
        "unknown kind {found:?} at {position}: expected 1 (send), 2 (request) or 3 (quick send)"
    )]
    UnknownKind { position: usize, found: String },
    #[error(
        "a two-field dial string is a quick send and must start with {QUICK_SEND_PREFIX} (at {position})"
    )]
    QuickSendPrefixMissing { position: usize },
    #[error("the {field} is too long at {position}: at most {max} digits")]
    PhoneTooLong {
        position: usize,
        field: Field,
        max: usize,
    },
    #[error("the amount at {position} is zero")]
    AmountZero { position: usize },
    #[error("the amount at {position} starts with 0: write it without leading zeros")]
    AmountLeadingZero { position: usize },
    #[error("the amount at {position} is larger than {max}")]
    AmountTooLarge { position: usize, max: u64 },
    #[error("the check digit field at {position} must be exactly one digit")]
    MalformedCheckDigit { position: usize },
    #[error("check digit at {position} is wrong: the string was mistyped")]
    CheckDigitWrong { position: usize },
}

/// A phone field: 1 to [`MAX_PHONE_DIGITS`] ASCII digits, as typed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PhoneDigits(String);

impl PhoneDigits {
    /// Checks a digit string (no separators) for use as a phone field.
    pub fn new(digits: &str) -> Result<Self, DialError> {
        let positions: Vec<usize> = (0..digits.chars().count()).collect();
        if let Some((position, found)) = digits
            .chars()
            .enumerate()
            .find(|(_, c)| !c.is_ascii_digit())
        {
            return Err(DialError::UnexpectedChar { position, found });
        }
        Self::from_field(digits, &positions, digits.chars().count(), Field::Phone)
    }

    /// `positions[i]` is where digit `i` sits in the input; `end` is where an
    /// empty field would be reported.
    fn from_field(
        digits: &str,
        positions: &[usize],
        end: usize,
        field: Field,
    ) -> Result<Self, DialError> {
        if digits.is_empty() {
            return Err(DialError::EmptyField {
                position: end,
                field,
            });
        }
        if digits.len() > MAX_PHONE_DIGITS {
            return Err(DialError::PhoneTooLong {
                position: positions[MAX_PHONE_DIGITS],
                field,
                max: MAX_PHONE_DIGITS,
            });
        }
        Ok(PhoneDigits(digits.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PhoneDigits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A positive amount in minor units of the currency, at most [`MAX_AMOUNT_MINOR`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Amount(u64);

impl Amount {
    pub fn new(minor_units: u64) -> Result<Self, DialError> {
        match minor_units {
            0 => Err(DialError::AmountZero { position: 0 }),
            n if n > MAX_AMOUNT_MINOR => Err(DialError::AmountTooLarge {
                position: 0,
                max: MAX_AMOUNT_MINOR,
            }),
            n => Ok(Amount(n)),
        }
    }

    pub fn minor_units(self) -> u64 {
        self.0
    }

    fn from_field(digits: &str, positions: &[usize], end: usize) -> Result<Self, DialError> {
        let Some(&first) = positions.first() else {
            return Err(DialError::EmptyField {
                position: end,
                field: Field::Amount,
            });
        };
        if digits.len() > 1 && digits.starts_with('0') {
            return Err(DialError::AmountLeadingZero { position: first });
        }
        // 15 digits cannot overflow u64; longer strings are too large anyway.
        let too_large = DialError::AmountTooLarge {
            position: first,
            max: MAX_AMOUNT_MINOR,
        };
        if digits.len() > MAX_AMOUNT_MINOR.to_string().len() {
            return Err(too_large);
        }
        let value: u64 = digits.parse().map_err(|_| too_large.clone())?;
        Amount::new(value).map_err(|e| match e {
            DialError::AmountZero { .. } => DialError::AmountZero { position: first },
            _ => too_large,
        })
    }
}

/// Money from the originator to the payee.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Send {
    pub originator: PhoneDigits,
    pub payee: PhoneDigits,
    pub amount: Amount,
}

/// The requester asks the payer to pay them the amount (a claim).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub requester: PhoneDigits,
    pub payer: PhoneDigits,
    pub amount: Amount,
}

/// Money from the caller to a payee they have paid before; the server takes
/// the originator from the call itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuickSend {
    pub payee: PhoneDigits,
    pub amount: Amount,
}

/// What a dial string asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DialCommand {
    Send(Send),
    Request(Request),
    QuickSend(QuickSend),
}

/// Whether the string carried a check digit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DialForm {
    /// Typed by a person; nothing guards against typos.
    Seed,
    /// Written by Clink; its check digit was verified.
    Checked,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedDial {
    pub command: DialCommand,
    pub form: DialForm,
}

impl DialCommand {
    /// The checked form Clink writes, e.g. `*1*0000000000*1111*800*8#`.
    ///
    /// Always within [`MAX_DIAL_CHARS`]: the longest, a send or request with
    /// two 20-digit numbers and a 15-digit amount, is 63 characters.
    pub fn to_dial_string(&self) -> String {
        let (kind, fields): (char, Vec<String>) = match self {
            DialCommand::Send(s) => (
                KIND_SEND,
                vec![
                    s.originator.to_string(),
                    s.payee.to_string(),
                    s.amount.0.to_string(),
                ],
            ),
            DialCommand::Request(r) => (
                KIND_REQUEST,
                vec![
                    r.requester.to_string(),
                    r.payer.to_string(),
                    r.amount.0.to_string(),
                ],
            ),
            DialCommand::QuickSend(q) => (
                KIND_QUICK_SEND,
                vec![q.payee.to_string(), q.amount.0.to_string()],
            ),
        };
        let mut body = format!("*{kind}");
        for field in fields {
            body.push('*');
            body.push_str(&field);
        }
        body.push('*');
        let body_chars: Vec<char> = body.chars().collect();
        let check = damm::check_digit(checksum_input(&body_chars));
        format!("{body}{check}#")
    }
}

/// The Damm input for the dialable characters before the check digit: all
/// digits in order, then each `*`'s offset modulo 10.
fn checksum_input(dialable: &[char]) -> Vec<u8> {
    let digits = dialable.iter().filter_map(|c| c.to_digit(10));
    let separators = dialable
        .iter()
        .enumerate()
        .filter(|(_, c)| **c == '*')
        .map(|(offset, _)| (offset % 10) as u32);
    digits.chain(separators).map(|d| d as u8).collect()
}

/// One `*`-separated field as read from the input.
#[derive(Debug)]
struct RawField {
    digits: String,
    /// Input index of each digit.
    positions: Vec<usize>,
    /// Input index of the `*` before the field (none for the first).
    separator: Option<usize>,
    /// Input index of what ended the field (`*`, `#` or the end of input).
    end: usize,
}

impl RawField {
    fn start(&self) -> usize {
        self.positions.first().copied().unwrap_or(self.end)
    }
}

/// Splits the input into fields, enforcing the character set, the `#`
/// terminator and the length limit. Also returns the dialable characters
/// (digits and `*`) and where the dialable content ends.
fn split(input: &str) -> Result<(Vec<RawField>, Vec<char>, usize), DialError> {
    let new_field = |separator| RawField {
        digits: String::new(),
        positions: Vec::new(),
        separator,
        end: 0,
    };
    let mut fields = vec![new_field(None)];
    let mut dialable = Vec::new();
    let mut dialed_count = 0;
    let mut terminated = false;
    let mut end = 0;
    for (position, c) in input.chars().enumerate() {
        end = position + 1;
        if terminated {
            return Err(DialError::UnexpectedChar { position, found: c });
        }
        if !matches!(c, '0'..='9' | '*' | '#' | '-') {
            return Err(DialError::UnexpectedChar { position, found: c });
        }
        if c == '-' {
            continue;
        }
        dialed_count += 1;
        if dialed_count > MAX_DIAL_CHARS {
            return Err(DialError::TooLong {
                position,
                max: MAX_DIAL_CHARS,
            });
        }
        let current = fields.last_mut().expect("there is always a current field");
        match c {
            '*' => {
                current.end = position;
                dialable.push(c);
                fields.push(new_field(Some(position)));
            }
            '#' => {
                current.end = position;
                terminated = true;
                end = position;
            }
            digit => {
                current.digits.push(digit);
                current.positions.push(position);
                dialable.push(digit);
            }
        }
    }
    if dialed_count == 0 {
        return Err(DialError::Empty);
    }
    if !terminated {
        fields
            .last_mut()
            .expect("there is always a current field")
            .end = end;
    }
    Ok((fields, dialable, end))
}

fn check_field_count(fields: &[RawField], expected: usize, end: usize) -> Result<(), DialError> {
    if fields.len() < expected {
        return Err(DialError::TooFewFields {
            position: end,
            expected,
            found: fields.len(),
        });
    }
    if fields.len() > expected {
        return Err(DialError::TooManyFields {
            position: fields[expected]
                .separator
                .expect("only the first field has no separator"),
            max: expected,
            found: expected + 1,
        });
    }
    Ok(())
}

fn phone(field: &RawField, name: Field) -> Result<PhoneDigits, DialError> {
    PhoneDigits::from_field(&field.digits, &field.positions, field.end, name)
}

fn amount(field: &RawField) -> Result<Amount, DialError> {
    Amount::from_field(&field.digits, &field.positions, field.end)
}

/// Reads a dial string in any of the forms in the module docs.
pub fn parse(input: &str) -> Result<ParsedDial, DialError> {
    let (fields, dialable, end) = split(input)?;
    if dialable.first() == Some(&'*') {
        parse_written(&fields[1..], &dialable, end)
    } else {
        parse_seed(&fields, end)
    }
}

fn parse_seed(fields: &[RawField], end: usize) -> Result<ParsedDial, DialError> {
    let command = match fields.len() {
        2 => {
            let first = &fields[0];
            if !first.digits.starts_with(QUICK_SEND_PREFIX) {
                return Err(DialError::QuickSendPrefixMissing {
                    position: first.start(),
                });
            }
            let prefix_len = QUICK_SEND_PREFIX.len();
            let payee = PhoneDigits::from_field(
                &first.digits[prefix_len..],
                &first.positions[prefix_len..],
                first.end,
                Field::Payee,
            )?;
            DialCommand::QuickSend(QuickSend {
                payee,
                amount: amount(&fields[1])?,
            })
        }
        _ => {
            check_field_count(fields, 3, end)?;
            DialCommand::Send(Send {
                originator: phone(&fields[0], Field::Originator)?,
                payee: phone(&fields[1], Field::Payee)?,
                amount: amount(&fields[2])?,
            })
        }
    };
    Ok(ParsedDial {
        command,
        form: DialForm::Seed,
    })
}

/// `fields` starts at the kind field (the empty field before the leading `*`
/// is already dropped).
fn parse_written(
    fields: &[RawField],
    dialable: &[char],
    end: usize,
) -> Result<ParsedDial, DialError> {
    let kind_field = &fields[0];
    if kind_field.digits.is_empty() {
        return Err(DialError::EmptyField {
            position: kind_field.end,
            field: Field::Kind,
        });
    }
    let kind = match kind_field.digits.as_str() {
        "1" => KIND_SEND,
        "2" => KIND_REQUEST,
        "3" => KIND_QUICK_SEND,
        other => {
            return Err(DialError::UnknownKind {
                position: kind_field.start(),
                found: other.to_string(),
            });
        }
    };
    // Kind, the value fields, then the check digit.
    let expected = if kind == KIND_QUICK_SEND { 4 } else { 5 };
    check_field_count(fields, expected, end)?;

    let check_field = &fields[expected - 1];
    match check_field.positions.as_slice() {
        [] => {
            return Err(DialError::EmptyField {
                position: check_field.end,
                field: Field::CheckDigit,
            });
        }
        [_] => {}
        [_, second, ..] => return Err(DialError::MalformedCheckDigit { position: *second }),
    }
    // The check digit is the last dialable character.
    let (check, body) = dialable.split_last().expect("a check digit was found");
    let mut sequence = checksum_input(body);
    sequence.push(check.to_digit(10).expect("the check field holds one digit") as u8);
    if !damm::is_valid(sequence) {
        return Err(DialError::CheckDigitWrong {
            position: check_field.positions[0],
        });
    }

    let command = match kind {
        KIND_SEND => DialCommand::Send(Send {
            originator: phone(&fields[1], Field::Originator)?,
            payee: phone(&fields[2], Field::Payee)?,
            amount: amount(&fields[3])?,
        }),
        KIND_REQUEST => DialCommand::Request(Request {
            requester: phone(&fields[1], Field::Requester)?,
            payer: phone(&fields[2], Field::Payer)?,
            amount: amount(&fields[3])?,
        }),
        _ => DialCommand::QuickSend(QuickSend {
            payee: phone(&fields[1], Field::Payee)?,
            amount: amount(&fields[2])?,
        }),
    };
    Ok(ParsedDial {
        command,
        form: DialForm::Checked,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::{Config, RngSeed};

    fn digits(s: &str) -> PhoneDigits {
        PhoneDigits::new(s).unwrap()
    }

    fn send(originator: &str, payee: &str, amount: u64) -> DialCommand {
        DialCommand::Send(Send {
            originator: digits(originator),
            payee: digits(payee),
            amount: Amount::new(amount).unwrap(),
        })
    }

    /// Appends the right check digit and `#` to a written body ending in `*`.
    fn with_check(body: &str) -> String {
        let dialable: Vec<char> = body.chars().filter(|&c| c != '-').collect();
        format!("{body}{}#", damm::check_digit(checksum_input(&dialable)))
    }

    fn parse_err(input: &str) -> DialError {
        parse(input).expect_err(input)
    }

    #[test]
    fn seed_send_example_parses() {
        let parsed = parse("00-0000-0000*1111*800").unwrap();
        assert_eq!(
            parsed,
            ParsedDial {
                command: send("0000000000", "1111", 800),
                form: DialForm::Seed
            }
        );
        assert_eq!(parse("00-0000-0000*1111*800#").unwrap(), parsed);
    }

    #[test]
    fn seed_quick_send_example_parses() {
        let parsed = parse("111-090-1111-1111*800").unwrap();
        let expected = DialCommand::QuickSend(QuickSend {
            payee: digits("09011111111"),
            amount: Amount::new(800).unwrap(),
        });
        assert_eq!(
            parsed,
            ParsedDial {
                command: expected,
                form: DialForm::Seed
            }
        );
        assert_eq!(parse("111-090-1111-1111*800#").unwrap(), parsed);
    }

    #[test]
    fn a_three_field_seed_starting_with_111_is_a_send() {
        assert_eq!(parse("111*222*5").unwrap().command, send("111", "222", 5));
    }

    #[test]
    fn documented_written_examples_are_what_clink_writes() {
        let request = DialCommand::Request(Request {
            requester: digits("09011111111"),
            payer: digits("1111"),
            amount: Amount::new(800).unwrap(),
        });
        let quick = DialCommand::QuickSend(QuickSend {
            payee: digits("09011111111"),
            amount: Amount::new(800).unwrap(),
        });
        let examples = [
            (send("0000000000", "1111", 800), "*1*0000000000*1111*800*8#"),
            (request, "*2*09011111111*1111*800*1#"),
            (quick, "*3*09011111111*800*5#"),
        ];
        for (command, text) in examples {
            assert_eq!(command.to_dial_string(), text);
            assert_eq!(
                parse(text).unwrap(),
                ParsedDial {
                    command,
                    form: DialForm::Checked
                }
            );
        }
    }

    #[test]
    fn request_and_send_with_the_same_fields_are_told_apart() {
        let as_send = send("09011111111", "1111", 800).to_dial_string();
        let as_request = DialCommand::Request(Request {
            requester: digits("09011111111"),
            payer: digits("1111"),
            amount: Amount::new(800).unwrap(),
        })
        .to_dial_string();
        assert_ne!(as_send, as_request);
        assert!(matches!(
            parse(&as_send).unwrap().command,
            DialCommand::Send(_)
        ));
        assert!(matches!(
            parse(&as_request).unwrap().command,
            DialCommand::Request(_)
        ));
    }

    #[test]
    fn written_string_may_omit_the_terminator_and_carry_dashes() {
        let written = send("0000000000", "1111", 800).to_dial_string();
        let bare = written.trim_end_matches('#');
        assert_eq!(
            parse(bare).unwrap().command,
            send("0000000000", "1111", 800)
        );
        let dashed = bare.replace("0000000000", "00-0000-0000");
        assert_eq!(
            parse(&dashed).unwrap().command,
            send("0000000000", "1111", 800)
        );
    }

    #[test]
    fn longest_written_string_fits_the_dial_limit() {
        let longest = send(
            &"9".repeat(MAX_PHONE_DIGITS),
            &"9".repeat(MAX_PHONE_DIGITS),
            MAX_AMOUNT_MINOR,
        );
        let text = longest.to_dial_string();
        assert!(text.len() <= MAX_DIAL_CHARS, "{} characters", text.len());
        assert_eq!(parse(&text).unwrap().command, longest);
    }

    fn phone_strategy() -> impl Strategy<Value = PhoneDigits> {
        proptest::string::string_regex(&format!("[0-9]{{1,{MAX_PHONE_DIGITS}}}"))
            .unwrap()
            .prop_map(|s| PhoneDigits::new(&s).unwrap())
    }

    fn amount_strategy() -> impl Strategy<Value = Amount> {
        prop_oneof![1..1_000u64, 1..=MAX_AMOUNT_MINOR].prop_map(|n| Amount::new(n).unwrap())
    }

    fn command_strategy() -> impl Strategy<Value = DialCommand> {
        prop_oneof![
            (phone_strategy(), phone_strategy(), amount_strategy()).prop_map(
                |(originator, payee, amount)| DialCommand::Send(Send {
                    originator,
                    payee,
                    amount
                })
            ),
            (phone_strategy(), phone_strategy(), amount_strategy()).prop_map(
                |(requester, payer, amount)| DialCommand::Request(Request {
                    requester,
                    payer,
                    amount
                })
            ),
            (phone_strategy(), amount_strategy())
                .prop_map(|(payee, amount)| DialCommand::QuickSend(QuickSend { payee, amount })),
        ]
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
        fn written_form_round_trips(command in command_strategy()) {
            let text = command.to_dial_string();
            prop_assert!(text.chars().count() <= MAX_DIAL_CHARS);
            prop_assert_eq!(parse(&text).unwrap(), ParsedDial { command, form: DialForm::Checked });
        }

        #[test]
        fn seed_send_round_trips(originator in phone_strategy(), payee in phone_strategy(), amount in amount_strategy()) {
            let text = format!("{originator}*{payee}*{}", amount.minor_units());
            let expected = DialCommand::Send(Send { originator, payee, amount });
            prop_assert_eq!(parse(&text).unwrap(), ParsedDial { command: expected, form: DialForm::Seed });
        }
    }

    proptest! {
        #![proptest_config(seeded(5000))]

        /// Every single-digit substitution and every swap of two adjacent,
        /// different characters (digit/digit, digit/'*', digit/'#') of a
        /// written string is rejected.
        #[test]
        fn every_single_typo_and_adjacent_swap_is_rejected(command in command_strategy()) {
            let chars: Vec<char> = command.to_dial_string().chars().collect();
            for i in 0..chars.len() {
                if let Some(digit) = chars[i].to_digit(10) {
                    for wrong in (0..10).filter(|&d| d != digit) {
                        let mut typo = chars.clone();
                        typo[i] = char::from_digit(wrong, 10).unwrap();
                        let typo: String = typo.into_iter().collect();
                        prop_assert!(parse(&typo).is_err(), "{} was accepted", typo);
                    }
                }
                if i + 1 < chars.len() && chars[i] != chars[i + 1] {
                    let mut swapped = chars.clone();
                    swapped.swap(i, i + 1);
                    let swapped: String = swapped.into_iter().collect();
                    prop_assert!(parse(&swapped).is_err(), "{} was accepted", swapped);
                }
            }
        }
    }

    #[test]
    fn empty_input_is_rejected() {
        assert_eq!(parse_err(""), DialError::Empty);
        assert_eq!(parse_err("---"), DialError::Empty);
    }

    #[test]
    fn unexpected_character_is_reported_at_its_char_index() {
        assert_eq!(
            parse_err("00 0000*1111*800"),
            DialError::UnexpectedChar {
                position: 2,
                found: ' '
            }
        );
        // Char index, not byte index: the full-width digit is 3 bytes.
        assert_eq!(
            parse_err("0-0*\u{ff11}*800"),
            DialError::UnexpectedChar {
                position: 4,
                found: '\u{ff11}'
            }
        );
        assert_eq!(
            parse_err("+81*1111*800"),
            DialError::UnexpectedChar {
                position: 0,
                found: '+'
            }
        );
    }

    #[test]
    fn nothing_may_follow_the_terminator() {
        assert_eq!(
            parse_err("00*11*800#1"),
            DialError::UnexpectedChar {
                position: 10,
                found: '1'
            }
        );
        assert_eq!(
            parse_err("00*11*800##"),
            DialError::UnexpectedChar {
                position: 10,
                found: '#'
            }
        );
    }

    #[test]
    fn too_long_points_at_the_first_character_past_the_limit() {
        let input = "1".repeat(MAX_DIAL_CHARS + 1);
        assert_eq!(
            parse_err(&input),
            DialError::TooLong {
                position: MAX_DIAL_CHARS,
                max: MAX_DIAL_CHARS
            }
        );
        // Dashes are not dialed and do not count.
        let dashed = format!("-----{input}");
        assert_eq!(
            parse_err(&dashed),
            DialError::TooLong {
                position: MAX_DIAL_CHARS + 5,
                max: MAX_DIAL_CHARS
            }
        );
    }

    #[test]
    fn empty_fields_are_reported_where_they_end() {
        assert_eq!(
            parse_err("00**800"),
            DialError::EmptyField {
                position: 3,
                field: Field::Payee
            }
        );
        assert_eq!(
            parse_err("**00*800"),
            DialError::EmptyField {
                position: 1,
                field: Field::Kind
            }
        );
        assert_eq!(
            parse_err("00*11*"),
            DialError::EmptyField {
                position: 6,
                field: Field::Amount
            }
        );
        assert_eq!(
            parse_err("00*11*#"),
            DialError::EmptyField {
                position: 6,
                field: Field::Amount
            }
        );
        assert_eq!(
            parse_err("111*800"),
            DialError::EmptyField {
                position: 3,
                field: Field::Payee
            }
        );
        assert_eq!(
            parse_err("*1*00*11*800*#"),
            DialError::EmptyField {
                position: 13,
                field: Field::CheckDigit
            }
        );
    }

    #[test]
    fn too_few_fields_are_reported_at_the_end() {
        assert_eq!(
            parse_err("0000"),
            DialError::TooFewFields {
                position: 4,
                expected: 3,
                found: 1
            }
        );
        assert_eq!(
            parse_err("*1*00*11*800#"),
            DialError::TooFewFields {
                position: 12,
                expected: 5,
                found: 4
            }
        );
    }

    #[test]
    fn too_many_fields_point_at_the_extra_separator() {
        assert_eq!(
            parse_err("00*11*800*5"),
            DialError::TooManyFields {
                position: 9,
                max: 3,
                found: 4
            }
        );
        assert_eq!(
            parse_err("*3*11*800*5*6#"),
            DialError::TooManyFields {
                position: 11,
                max: 4,
                found: 5
            }
        );
    }

    #[test]
    fn unknown_kind_is_reported() {
        assert_eq!(
            parse_err("*4*00*11*800*1#"),
            DialError::UnknownKind {
                position: 1,
                found: "4".into()
            }
        );
        assert_eq!(
            parse_err("*12*00*11*800*1#"),
            DialError::UnknownKind {
                position: 1,
                found: "12".into()
            }
        );
    }

    #[test]
    fn two_field_seed_without_quick_prefix_is_rejected() {
        assert_eq!(
            parse_err("-112-0901111*800"),
            DialError::QuickSendPrefixMissing { position: 1 }
        );
    }

    #[test]
    fn phone_too_long_points_at_the_first_extra_digit() {
        let input = format!("{}*11*800", "1".repeat(MAX_PHONE_DIGITS + 1));
        assert_eq!(
            parse_err(&input),
            DialError::PhoneTooLong {
                position: MAX_PHONE_DIGITS,
                field: Field::Originator,
                max: MAX_PHONE_DIGITS
            }
        );
        let written = with_check(&format!("*2*11*{}*800*", "2".repeat(MAX_PHONE_DIGITS + 1)));
        assert_eq!(
            parse_err(&written),
            DialError::PhoneTooLong {
                position: 6 + MAX_PHONE_DIGITS,
                field: Field::Payer,
                max: MAX_PHONE_DIGITS
            }
        );
    }

    #[test]
    fn amount_zero_is_rejected() {
        assert_eq!(parse_err("00*11*0"), DialError::AmountZero { position: 6 });
        assert_eq!(Amount::new(0), Err(DialError::AmountZero { position: 0 }));
    }

    #[test]
    fn amount_with_leading_zero_is_rejected() {
        assert_eq!(
            parse_err("00*11*0800"),
            DialError::AmountLeadingZero { position: 6 }
        );
        assert_eq!(
            parse_err(&with_check("*3*11*08*")),
            DialError::AmountLeadingZero { position: 6 }
        );
    }

    #[test]
    fn amount_too_large_is_rejected() {
        let max = MAX_AMOUNT_MINOR;
        assert_eq!(
            parse_err(&format!("00*11*{}", max + 1)),
            DialError::AmountTooLarge { position: 6, max }
        );
        assert_eq!(
            parse_err("00*11*99999999999999999999999"),
            DialError::AmountTooLarge { position: 6, max }
        );
        assert_eq!(
            Amount::new(max + 1),
            Err(DialError::AmountTooLarge { position: 0, max })
        );
        assert_eq!(
            parse(&format!("00*11*{max}")).unwrap().command,
            send("00", "11", max)
        );
    }

    #[test]
    fn check_field_of_two_digits_is_malformed() {
        assert_eq!(
            parse_err("*3*11*800*12#"),
            DialError::MalformedCheckDigit { position: 11 }
        );
    }

    #[test]
    fn wrong_check_digit_is_reported_at_the_check_digit() {
        let written = send("0000000000", "1111", 800).to_dial_string();
        let check = written
            .chars()
            .nth(written.len() - 2)
            .unwrap()
            .to_digit(10)
            .unwrap();
        let wrong = format!("{}{}#", &written[..written.len() - 2], (check + 1) % 10);
        assert_eq!(
            parse_err(&wrong),
            DialError::CheckDigitWrong {
                position: written.len() - 2
            }
        );
    }

    #[test]
    fn shifted_separator_is_caught() {
        let written = with_check("*1*123*456*800*");
        assert!(parse(&written).is_ok());
        let check = written.chars().nth(written.len() - 2).unwrap();
        let shifted = format!("*1*1234*56*800*{check}#");
        assert!(matches!(
            parse_err(&shifted),
            DialError::CheckDigitWrong { .. }
        ));
    }

    #[test]
    fn phone_digits_constructor_rejects_bad_input() {
        assert_eq!(
            PhoneDigits::new("12a"),
            Err(DialError::UnexpectedChar {
                position: 2,
                found: 'a'
            })
        );
        assert_eq!(
            PhoneDigits::new(""),
            Err(DialError::EmptyField {
                position: 0,
                field: Field::Phone
            })
        );
        assert!(matches!(
            PhoneDigits::new(&"1".repeat(21)),
            Err(DialError::PhoneTooLong { position: 20, .. })
        ));
    }
}
