//! Phone numbers (see `clink_core::phone`): what a person typed, in E.164.

use clink_core::phone as core;

/// A valid phone number.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct PhoneNumber {
    /// E.164 form, e.g. `+819011111111`: the user's identity on the wire.
    pub e164: String,
    /// Country code and national digits without `+`, as dial strings carry them.
    pub digits: String,
}

/// Why a phone number was refused; `description` is the core's sentence for
/// people and logs.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum PhoneError {
    #[error("{description}")]
    Invalid {
        input: String,
        reason: String,
        description: String,
    },
    #[error("{description}")]
    UnknownRegion { region: String, description: String },
}

/// Parses what a person typed (`090-1111-1111`, `+81 90 1111 1111`),
/// reading numbers without a country code as numbers of `default_region`
/// (two letters, e.g. `JP`).
#[uniffi::export]
pub fn parse_phone_number(
    input: String,
    default_region: String,
) -> Result<PhoneNumber, PhoneError> {
    let region: core::Region = default_region.parse()?;
    let number = core::PhoneNumber::parse(&input, region)?;
    Ok(PhoneNumber {
        e164: number.as_e164().to_string(),
        digits: number.digits().to_string(),
    })
}

impl From<core::PhoneError> for PhoneError {
    fn from(error: core::PhoneError) -> Self {
        let description = error.to_string();
        match error {
            core::PhoneError::Invalid { input, reason } => PhoneError::Invalid {
                input,
                reason,
                description,
            },
            core::PhoneError::UnknownRegion { region } => PhoneError::UnknownRegion {
                region,
                description,
            },
        }
    }
}
