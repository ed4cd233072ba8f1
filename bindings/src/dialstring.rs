//! Dial strings (see `clink_core::dialstring`): parse what was typed or
//! dialed, and write the checked form Clink dials.

use clink_core::dialstring as core;

/// What a dial string asks for. Phone fields are digits as typed (no `+`);
/// amounts are in minor units of the currency.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum DialCommand {
    /// Money from the originator to the payee.
    Send {
        originator: String,
        payee: String,
        amount_minor: u64,
    },
    /// The requester asks the payer for the amount.
    Request {
        requester: String,
        payer: String,
        amount_minor: u64,
    },
    /// Money from the caller to a payee they have paid before.
    QuickSend { payee: String, amount_minor: u64 },
}

/// Whether the string carried a check digit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum DialForm {
    /// Typed by a person; nothing guards against typos.
    Seed,
    /// Written by Clink; its check digit was verified.
    Checked,
}

#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct ParsedDial {
    pub command: DialCommand,
    pub form: DialForm,
}

/// Which field of a dial string an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum DialField {
    Kind,
    Originator,
    Payee,
    Requester,
    Payer,
    /// A phone number given to `encode_dial_string`, outside any dial string.
    Phone,
    Amount,
    CheckDigit,
}

/// Why a dial string was rejected. `position` is a 0-based character index
/// into the input (for `encode_dial_string`, into the offending field);
/// `description` is the core's sentence for people and logs.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum DialError {
    #[error("{description}")]
    Empty { description: String },
    #[error("{description}")]
    UnexpectedChar {
        position: u64,
        found: String,
        description: String,
    },
    #[error("{description}")]
    TooLong {
        position: u64,
        max: u64,
        description: String,
    },
    #[error("{description}")]
    EmptyField {
        position: u64,
        field: DialField,
        description: String,
    },
    #[error("{description}")]
    TooFewFields {
        position: u64,
        expected: u64,
        found: u64,
        description: String,
    },
    #[error("{description}")]
    TooManyFields {
        position: u64,
        max: u64,
        found: u64,
        description: String,
    },
    #[error("{description}")]
    UnknownKind {
        position: u64,
        found: String,
        description: String,
    },
    #[error("{description}")]
    QuickSendPrefixMissing { position: u64, description: String },
    #[error("{description}")]
    PhoneTooLong {
        position: u64,
        field: DialField,
        max: u64,
        description: String,
    },
    #[error("{description}")]
    AmountZero { position: u64, description: String },
    #[error("{description}")]
    AmountLeadingZero { position: u64, description: String },
    #[error("{description}")]
    AmountTooLarge {
        position: u64,
        max: u64,
        description: String,
    },
    #[error("{description}")]
    MalformedCheckDigit { position: u64, description: String },
    #[error("{description}")]
    CheckDigitWrong { position: u64, description: String },
}

/// Parses a dial string in any of its forms (seed or checked).
#[uniffi::export]
pub fn parse_dial_string(input: String) -> Result<ParsedDial, DialError> {
    let parsed = core::parse(&input)?;
    Ok(ParsedDial {
        command: parsed.command.into(),
        form: parsed.form.into(),
    })
}

/// The checked form Clink dials, e.g. `*1*0000000000*1111*800*8#`, after
/// checking every field.
#[uniffi::export]
pub fn encode_dial_string(command: DialCommand) -> Result<String, DialError> {
    let phone = |digits: &str| core::PhoneDigits::new(digits);
    let amount = core::Amount::new;
    let command = match command {
        DialCommand::Send {
            originator,
            payee,
            amount_minor,
        } => core::DialCommand::Send(core::Send {
            originator: phone(&originator)?,
            payee: phone(&payee)?,
            amount: amount(amount_minor)?,
        }),
        DialCommand::Request {
            requester,
            payer,
            amount_minor,
        } => core::DialCommand::Request(core::Request {
            requester: phone(&requester)?,
            payer: phone(&payer)?,
            amount: amount(amount_minor)?,
        }),
        DialCommand::QuickSend {
            payee,
            amount_minor,
        } => core::DialCommand::QuickSend(core::QuickSend {
            payee: phone(&payee)?,
            amount: amount(amount_minor)?,
        }),
    };
    Ok(command.to_dial_string())
}

impl From<core::DialCommand> for DialCommand {
    fn from(command: core::DialCommand) -> Self {
        match command {
            core::DialCommand::Send(s) => DialCommand::Send {
                originator: s.originator.to_string(),
                payee: s.payee.to_string(),
                amount_minor: s.amount.minor_units(),
            },
            core::DialCommand::Request(r) => DialCommand::Request {
                requester: r.requester.to_string(),
                payer: r.payer.to_string(),
                amount_minor: r.amount.minor_units(),
            },
            core::DialCommand::QuickSend(q) => DialCommand::QuickSend {
                payee: q.payee.to_string(),
                amount_minor: q.amount.minor_units(),
            },
        }
    }
}

impl From<core::DialForm> for DialForm {
    fn from(form: core::DialForm) -> Self {
        match form {
            core::DialForm::Seed => DialForm::Seed,
            core::DialForm::Checked => DialForm::Checked,
        }
    }
}

impl From<core::Field> for DialField {
    fn from(field: core::Field) -> Self {
        match field {
            core::Field::Kind => DialField::Kind,
            core::Field::Originator => DialField::Originator,
            core::Field::Payee => DialField::Payee,
            core::Field::Requester => DialField::Requester,
            core::Field::Payer => DialField::Payer,
            core::Field::Phone => DialField::Phone,
            core::Field::Amount => DialField::Amount,
            core::Field::CheckDigit => DialField::CheckDigit,
        }
    }
}

impl From<core::DialError> for DialError {
    fn from(error: core::DialError) -> Self {
        use core::DialError as E;
        let description = error.to_string();
        let n = |v: usize| v as u64;
        match error {
            E::Empty => DialError::Empty { description },
            E::UnexpectedChar { position, found } => DialError::UnexpectedChar {
                position: n(position),
                found: found.to_string(),
                description,
            },
            E::TooLong { position, max } => DialError::TooLong {
                position: n(position),
                max: n(max),
                description,
            },
            E::EmptyField { position, field } => DialError::EmptyField {
                position: n(position),
                field: field.into(),
                description,
            },
            E::TooFewFields {
                position,
                expected,
                found,
            } => DialError::TooFewFields {
                position: n(position),
                expected: n(expected),
                found: n(found),
                description,
            },
            E::TooManyFields {
                position,
                max,
                found,
            } => DialError::TooManyFields {
                position: n(position),
                max: n(max),
                found: n(found),
                description,
            },
            E::UnknownKind { position, found } => DialError::UnknownKind {
                position: n(position),
                found,
                description,
            },
            E::QuickSendPrefixMissing { position } => DialError::QuickSendPrefixMissing {
                position: n(position),
                description,
            },
            E::PhoneTooLong {
                position,
                field,
                max,
            } => DialError::PhoneTooLong {
                position: n(position),
                field: field.into(),
                max: n(max),
                description,
            },
            E::AmountZero { position } => DialError::AmountZero {
                position: n(position),
                description,
            },
            E::AmountLeadingZero { position } => DialError::AmountLeadingZero {
                position: n(position),
                description,
            },
            E::AmountTooLarge { position, max } => DialError::AmountTooLarge {
                position: n(position),
                max,
                description,
            },
            E::MalformedCheckDigit { position } => DialError::MalformedCheckDigit {
                position: n(position),
                description,
            },
            E::CheckDigitWrong { position } => DialError::CheckDigitWrong {
                position: n(position),
                description,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_keep_the_cores_position_and_sentence() {
        let input = "*3*09011111111*600*5#";
        let core_error = core::parse(input).unwrap_err();
        let error = parse_dial_string(input.into()).unwrap_err();
        assert_eq!(
            error,
            DialError::CheckDigitWrong {
                position: 19,
                description: core_error.to_string(),
            }
        );
    }

    #[test]
    fn every_written_form_parses_back_to_the_same_command() {
        let commands = [
            DialCommand::Send {
                originator: "0000000000".into(),
                payee: "1111".into(),
                amount_minor: 800,
            },
            DialCommand::Request {
                requester: "09011111111".into(),
                payer: "1111".into(),
                amount_minor: core::MAX_AMOUNT_MINOR,
            },
            DialCommand::QuickSend {
                payee: "09011111111".into(),
                amount_minor: 1,
            },
        ];
        for command in commands {
            let written = encode_dial_string(command.clone()).unwrap();
            let parsed = parse_dial_string(written).unwrap();
            assert_eq!(parsed.command, command);
            assert_eq!(parsed.form, DialForm::Checked);
        }
    }
}
