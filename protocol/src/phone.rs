//! Phone numbers are Clink's user identities: always stored and compared in
//! E.164 form (`+819011111111`), parsed from whatever a person typed.

use std::fmt;
use std::str::FromStr;

use phonenumber::{Mode, country};
use serde::{Deserialize, Serialize};

/// A phone number known to be valid, held in E.164 form.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PhoneNumber(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("{input:?} is not a phone number: {reason}")]
    Invalid { input: String, reason: String },
    #[error("{region:?} is not a known region code (use two letters, e.g. \"JP\")")]
    UnknownRegion { region: String },
}

/// A default region for numbers typed without a country code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region(country::Id);

impl FromStr for Region {
    type Err = PhoneError;
    fn from_str(code: &str) -> Result<Self, PhoneError> {
        code.to_ascii_uppercase()
            .parse::<country::Id>()
            .map(Region)
            .map_err(|_| PhoneError::UnknownRegion {
                region: code.to_string(),
            })
    }
}

impl PhoneNumber {
    /// Parses what a person typed (`090-1111-1111`, `+81 90 1111 1111`),
    /// reading numbers without a country code as numbers of `default_region`.
    pub fn parse(input: &str, default_region: Region) -> Result<Self, PhoneError> {
        let invalid = |reason: &str| PhoneError::Invalid {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        if input.trim().is_empty() {
            return Err(invalid("it is empty"));
        }
        if input.len() > 40 {
            return Err(invalid("it is too long"));
        }
        let parsed = phonenumber::parse(Some(default_region.0), input)
            .map_err(|e| invalid(&e.to_string()))?;
        if !phonenumber::is_valid(&parsed) {
            return Err(invalid("no such number exists in its numbering plan"));
        }
        Ok(PhoneNumber(parsed.format().mode(Mode::E164).to_string()))
    }

    /// The E.164 form, e.g. `+819011111111`.
    pub fn as_e164(&self) -> &str {
        &self.0
    }

    /// The national significant digits and country code without `+`, as used
    /// in dial strings.
    pub fn digits(&self) -> &str {
        &self.0[1..]
    }
}

impl TryFrom<String> for PhoneNumber {
    type Error = PhoneError;
    /// Accepts only E.164 (the wire form); typed input goes through [`PhoneNumber::parse`].
    fn try_from(value: String) -> Result<Self, PhoneError> {
        if !value.starts_with('+') {
            return Err(PhoneError::Invalid {
                input: value,
                reason: "expected E.164 form starting with '+'".into(),
            });
        }
        let region = Region(country::Id::US); // unused for numbers with a country code
        let number = PhoneNumber::parse(&value, region)?;
        if number.0 != value {
            return Err(PhoneError::Invalid {
                input: value,
                reason: format!("not in E.164 form (did you mean {}?)", number.0),
            });
        }
        Ok(number)
    }
}

impl From<PhoneNumber> for String {
    fn from(value: PhoneNumber) -> String {
        value.0
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jp() -> Region {
        "JP".parse().unwrap()
    }

    #[test]
    fn local_japanese_mobile_number_becomes_e164() {
        let n = PhoneNumber::parse("090-1111-1111", jp()).unwrap();
        assert_eq!(n.as_e164(), "+819011111111");
        assert_eq!(n.digits(), "819011111111");
    }

    #[test]
    fn international_form_ignores_default_region() {
        let n = PhoneNumber::parse("+1 650-253-0000", jp()).unwrap();
        assert_eq!(n.as_e164(), "+16502530000");
    }

    #[test]
    fn garbage_and_impossible_numbers_are_refused() {
        for bad in [
            "",
            "   ",
            "hello",
            "090-11",
            "+81 00 0000 0000",
            &"9".repeat(60),
        ] {
            assert!(
                matches!(
                    PhoneNumber::parse(bad, jp()),
                    Err(PhoneError::Invalid { .. })
                ),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn wire_form_must_already_be_e164() {
        assert!(PhoneNumber::try_from("+819011111111".to_string()).is_ok());
        assert!(PhoneNumber::try_from("09011111111".to_string()).is_err());
        assert!(PhoneNumber::try_from("+81 90 1111 1111".to_string()).is_err());
    }

    #[test]
    fn unknown_region_is_an_error() {
        assert!("XX".parse::<Region>().is_err());
        assert!("jp".parse::<Region>().is_ok());
    }
}
