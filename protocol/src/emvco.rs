//! The QR a shop's terminal shows and a phone scans: EMV® QR Code
//! Specification for Payment Systems, Merchant-Presented Mode (EMVCo MPM,
//! version 1.1), and Clink's dynamic merchant QR in that format.
//!
//! Most national QR payment schemes are this format (Brazil's Pix "BR Code",
//! SGQR, PromptPay, QRIS, DuitNow, VietQR, Bharat QR), so one parser reads
//! them all, and a Clink QR is one more of them: a phone tells it from the
//! rest by its merchant account template.
//!
//! # Format
//!
//! A payload is a run of data objects, each a two-digit id, a two-digit
//! length and a value of that many characters: `000201` is id `00`, length
//! `02`, value `01`. A template's value is itself a run of data objects.
//! Lengths count characters, not bytes: the language template may hold
//! Chinese, for one.
//!
//! | id | data object | in [`MerchantQr`] |
//! |---|---|---|
//! | `00` | payload format indicator, always `01` | checked, not kept |
//! | `01` | point of initiation method: `11` static, `12` dynamic | `initiation` |
//! | `02`–`25` | merchant account information of a card network | `merchant_accounts` |
//! | `26`–`51` | merchant account information template, its globally unique identifier (GUI) in `00` | `merchant_account_templates` |
//! | `52` | merchant category code (ISO 18245), 4 digits | `merchant_category_code` |
//! | `53` | transaction currency (ISO 4217 numeric), 3 digits | `currency` |
//! | `54` | transaction amount, such as `23.72` (up to 13) | `amount` |
//! | `55`–`57` | tip or convenience fee: indicator, fixed fee, percentage | `tip` |
//! | `58` | country (ISO 3166-1 alpha-2) | `country` |
//! | `59` | merchant name (up to 25) | `merchant_name` |
//! | `60` | merchant city (up to 15) | `merchant_city` |
//! | `61` | postal code (up to 10) | `postal_code` |
//! | `62` | additional data template: [`additional::BILL_NUMBER`], [`additional::REFERENCE_LABEL`], [`additional::TERMINAL_LABEL`], … | `additional_data` |
//! | `63` | CRC, the last object | checked, not kept |
//! | `64` | merchant information language template | `language` |
//! | `65`–`79` | reserved for EMVCo's future use | `reserved`, kept as read |
//! | `80`–`99` | unreserved templates, GUI in `00` | `unreserved_templates` |
//!
//! `00` comes first and `63` last; the rest may come in any order. [`parse`]
//! takes any order, [`MerchantQr::to_payload`] writes them by id. Mandatory:
//! `00`, at least one of `02`–`51`, `52`, `53`, `58`, `59`, `60` and `63`.
//! Every value holds 1 to 99 characters, and the spec's shorter limits are
//! checked. The character set of text fields is not: a reader gains nothing
//! by refusing a merchant name with an accent. A template nested in a
//! template stays as its text in [`Fields`].
//!
//! # CRC
//!
//! CRC-16/CCITT-FALSE (polynomial `0x1021`, initial value `0xFFFF`) over the
//! UTF-8 bytes of the whole payload up to and including the CRC's own id and
//! length (`6304`), written as 4 uppercase hex digits; read in either case.
//!
//! # Clink's QR
//!
//! [`ClinkMerchantQr`]: a dynamic QR whose merchant account template (GUI
//! [`CLINK_GUI`], written at id [`CLINK_TEMPLATE`]) holds the merchant id
//! (`01`, `m_…`) and the payment request id (`02`, `sp_…`), with the amount,
//! currency, merchant name and city, country, category code, and the order id
//! as bill number (`62`.`01`). A reader finds the template by its GUI,
//! whatever its id.
//!
//! ```
//! use clink_protocol::emvco::{ClinkMerchantQr, ClinkQrError, QrCurrency};
//!
//! let jpy = QrCurrency { numeric: 392, exponent: 0 };
//! let qr = ClinkMerchantQr {
//!     merchant_id: "m_7f3a".into(),
//!     request_id: "sp_91c2".into(),
//!     amount: 800,
//!     currency: jpy,
//!     merchant_name: "KISSA HIKARI".into(),
//!     merchant_city: "TOKYO".into(),
//!     country: "JP".into(),
//!     merchant_category_code: "5814".into(),
//!     order_id: "A-1042".into(),
//! };
//! let payload = qr.to_payload().unwrap();
//! assert_eq!(
//!     payload,
//!     "00020101021226340009app.clink0106m_7f3a0207sp_91c2520458145303392540380058\
//!      02JP5912KISSA HIKARI6005TOKYO62100106A-104263045FC7"
//! );
//! assert_eq!(ClinkMerchantQr::from_payload(&payload, jpy).unwrap(), qr);
//!
//! // Brazil's Pix example: a valid EMVCo QR, but not Clink's.
//! let pix = "00020126580014br.gov.bcb.pix0136123e4567-e12b-12d1-a456-426655440000\
//!            5204000053039865802BR5913Fulano de Tal6008BRASILIA62070503***63041D3D";
//! assert_eq!(ClinkMerchantQr::from_payload(pix, jpy), Err(ClinkQrError::NotClink));
//! ```

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use crate::wire::Amount;

/// The data objects of a template, by id (`00`–`99`), each value as text.
pub type Fields = BTreeMap<u8, String>;

/// The id of the globally unique identifier in a merchant account template
/// (`26`–`51`) or an unreserved template (`80`–`99`): a reverse domain name
/// or an application identifier (AID), up to 32 characters.
pub const GUI: u8 = 0;

/// Ids in the additional data field template (`62`). Those named here hold
/// up to 25 characters; `50`–`99` are payment systems' own templates.
pub mod additional {
    pub const BILL_NUMBER: u8 = 1;
    pub const MOBILE_NUMBER: u8 = 2;
    pub const STORE_LABEL: u8 = 3;
    pub const LOYALTY_NUMBER: u8 = 4;
    pub const REFERENCE_LABEL: u8 = 5;
    pub const CUSTOMER_LABEL: u8 = 6;
    pub const TERMINAL_LABEL: u8 = 7;
    pub const PURPOSE_OF_TRANSACTION: u8 = 8;
}

/// Ids in the merchant information language template (`64`).
pub mod language {
    /// ISO 639-1, two letters: mandatory.
    pub const PREFERENCE: u8 = 0;
    /// The merchant's name in that language, up to 25: mandatory.
    pub const MERCHANT_NAME: u8 = 1;
    /// The merchant's city in that language, up to 15.
    pub const MERCHANT_CITY: u8 = 2;
}

const PAYLOAD_FORMAT: u8 = 0;
const INITIATION: u8 = 1;
const CATEGORY: u8 = 52;
const CURRENCY: u8 = 53;
const AMOUNT: u8 = 54;
const TIP: u8 = 55;
const FIXED_FEE: u8 = 56;
const PERCENTAGE_FEE: u8 = 57;
const COUNTRY: u8 = 58;
const NAME: u8 = 59;
const CITY: u8 = 60;
const POSTAL_CODE: u8 = 61;
const ADDITIONAL: u8 = 62;
const CRC_ID: u8 = 63;
const LANGUAGE: u8 = 64;

/// EMVCo's CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no
/// final XOR. The `crc` crate's catalogue (Greg Cook's CRC RevEng names)
/// calls it CRC-16/IBM-3740; taken from there rather than written by hand.
const CRC16: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_IBM_3740);

/// Where a data object sits: its id, and the template it is in, if any.
/// Shown as `54`, or `62.01` for id `01` in template `62`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectId {
    pub template: Option<u8>,
    pub id: u8,
}

impl ObjectId {
    const fn top(id: u8) -> Self {
        Self { template: None, id }
    }

    const fn within(template: u8, id: u8) -> Self {
        Self {
            template: Some(template),
            id,
        }
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.template {
            Some(template) => write!(f, "{template:02}.{:02}", self.id),
            None => write!(f, "{:02}", self.id),
        }
    }
}

/// Why a payload was rejected or could not be written. `position` is a
/// 0-based character index into the payload.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EmvError {
    #[error("character {position}: a data object's id must be two digits")]
    NonNumericId { position: usize },
    #[error("character {position}: the length of data object {id} must be two digits")]
    NonNumericLength { id: ObjectId, position: usize },
    #[error(
        "character {position}: data object {id} has length 00; a value holds 1 to 99 characters"
    )]
    BadLength { id: ObjectId, position: usize },
    #[error("character {position}: the data object starting here is cut short")]
    Truncated { position: usize },
    #[error("character {position}: data object {id} appears a second time")]
    Duplicate { id: ObjectId, position: usize },
    #[error("mandatory data object {id} is missing")]
    Missing { id: ObjectId },
    #[error("no merchant account information (ids 02 to 51)")]
    NoMerchantAccount,
    #[error("the CRC (63) is not the last data object")]
    CrcNotLast,
    #[error("CRC mismatch: the payload computes to {expected}, it carries {found}")]
    CrcMismatch { expected: String, found: String },
    #[error("the payload format indicator (00) is not the first data object")]
    PayloadFormatNotFirst,
    #[error("payload format indicator {found:?}: only \"01\" is defined")]
    WrongPayloadFormat { found: String },
    #[error("{id}: {value:?} is not an amount (digits, with at most one '.' as decimal mark)")]
    BadAmount { id: ObjectId, value: String },
    #[error("{id}: {length} characters, at most {max} allowed")]
    TooLong {
        id: ObjectId,
        max: usize,
        length: usize,
    },
    #[error("{id}: an empty value cannot be written")]
    Empty { id: ObjectId },
    #[error("{id}: not an id for this field ({allowed})")]
    IdOutOfRange { id: ObjectId, allowed: &'static str },
    #[error("{id}: {value:?} is invalid ({rule})")]
    Invalid {
        id: ObjectId,
        value: String,
        rule: &'static str,
    },
}

/// Point of initiation method (`01`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Initiation {
    /// `11`: the same QR for every payment, printed at the till.
    Static,
    /// `12`: a QR for one payment, shown on a screen.
    Dynamic,
}

impl Initiation {
    fn code(self) -> &'static str {
        match self {
            Initiation::Static => "11",
            Initiation::Dynamic => "12",
        }
    }
}

/// Tip or convenience fee (`55`, with `56` or `57`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tip {
    /// `55` = `01`: the phone asks the customer for a tip.
    Prompt,
    /// `55` = `02`: a fixed fee in `56`, in the amount format.
    FixedFee(String),
    /// `55` = `03`: a percentage in `57`, such as `3.00` (up to 5).
    PercentageFee(String),
}

/// A merchant-presented QR's content. Build one and call
/// [`to_payload`](Self::to_payload), or get one from [`parse`]. A mandatory
/// text field left empty counts as missing; an empty template as absent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MerchantQr {
    pub initiation: Option<Initiation>,
    /// Ids `02`–`25`: card networks' merchant identifiers.
    pub merchant_accounts: BTreeMap<u8, String>,
    /// Ids `26`–`51`, each with a [`GUI`].
    pub merchant_account_templates: BTreeMap<u8, Fields>,
    pub merchant_category_code: String,
    /// ISO 4217 numeric, three digits: `392` for the yen.
    pub currency: String,
    /// As written in the QR: digits with an optional `.` (`23.72`, `800`).
    /// Absent, the customer types the amount.
    pub amount: Option<String>,
    pub tip: Option<Tip>,
    pub country: String,
    pub merchant_name: String,
    pub merchant_city: String,
    pub postal_code: Option<String>,
    /// Template `62` (empty: absent); ids in [`additional`].
    pub additional_data: Fields,
    /// Template `64` (empty: absent); ids in [`mod@language`].
    pub language: Fields,
    /// Ids `65`–`79`, reserved for EMVCo: kept as read.
    pub reserved: BTreeMap<u8, String>,
    /// Ids `80`–`99`, each with a [`GUI`].
    pub unreserved_templates: BTreeMap<u8, Fields>,
}

/// One data object as read: where it starts, its id and its value.
struct Tlv<'a> {
    position: usize,
    id: ObjectId,
    value: &'a str,
}

/// Reads a merchant-presented QR's payload, checking its structure, its CRC
/// and every rule in the module docs.
pub fn parse(payload: &str) -> Result<MerchantQr, EmvError> {
    let objects = split(payload, 0, None)?;
    check_crc(payload, &objects)?;
    match objects.first() {
        Some(first) if first.id.id == PAYLOAD_FORMAT => {
            if first.value != "01" {
                return Err(EmvError::WrongPayloadFormat {
                    found: first.value.to_owned(),
                });
            }
        }
        _ if objects.iter().any(|o| o.id.id == PAYLOAD_FORMAT) => {
            return Err(EmvError::PayloadFormatNotFirst);
        }
        _ => return Err(missing(PAYLOAD_FORMAT)),
    }

    let mut qr = MerchantQr::default();
    let (mut tip, mut fixed_fee, mut percentage_fee) = (None, None, None);
    for object in &objects {
        let id = object.id.id;
        let value = object.value.to_owned();
        match id {
            PAYLOAD_FORMAT | CRC_ID => {}
            INITIATION => {
                qr.initiation = Some(match object.value {
                    "11" => Initiation::Static,
                    "12" => Initiation::Dynamic,
                    _ => return Err(invalid(object.id, value, "11 static or 12 dynamic")),
                })
            }
            2..=25 => {
                qr.merchant_accounts.insert(id, value);
            }
            26..=51 => {
                qr.merchant_account_templates.insert(id, fields(object)?);
            }
            CATEGORY => qr.merchant_category_code = value,
            CURRENCY => qr.currency = value,
            AMOUNT => qr.amount = Some(value),
            TIP => tip = Some(object),
            FIXED_FEE => fixed_fee = Some(value),
            PERCENTAGE_FEE => percentage_fee = Some(value),
            COUNTRY => qr.country = value,
            NAME => qr.merchant_name = value,
            CITY => qr.merchant_city = value,
            POSTAL_CODE => qr.postal_code = Some(value),
            ADDITIONAL => qr.additional_data = fields(object)?,
            LANGUAGE => qr.language = fields(object)?,
            65..=79 => {
                qr.reserved.insert(id, value);
            }
            // 80 to 99: an id has two digits.
            _ => {
                qr.unreserved_templates.insert(id, fields(object)?);
            }
        }
    }
    qr.tip = read_tip(tip, fixed_fee, percentage_fee)?;
    qr.validate()?;
    Ok(qr)
}

impl MerchantQr {
    /// Writes the payload: `00` first, the other objects by id, the CRC last.
    pub fn to_payload(&self) -> Result<String, EmvError> {
        self.validate()?;
        let mut out = String::new();
        push(&mut out, ObjectId::top(PAYLOAD_FORMAT), "01")?;
        if let Some(initiation) = self.initiation {
            push(&mut out, ObjectId::top(INITIATION), initiation.code())?;
        }
        for (&id, value) in &self.merchant_accounts {
            push(&mut out, ObjectId::top(id), value)?;
        }
        for (&id, fields) in &self.merchant_account_templates {
            push_template(&mut out, id, fields)?;
        }
        push(
            &mut out,
            ObjectId::top(CATEGORY),
            &self.merchant_category_code,
        )?;
        push(&mut out, ObjectId::top(CURRENCY), &self.currency)?;
        if let Some(amount) = &self.amount {
            push(&mut out, ObjectId::top(AMOUNT), amount)?;
        }
        match &self.tip {
            None => {}
            Some(Tip::Prompt) => push(&mut out, ObjectId::top(TIP), "01")?,
            Some(Tip::FixedFee(fee)) => {
                push(&mut out, ObjectId::top(TIP), "02")?;
                push(&mut out, ObjectId::top(FIXED_FEE), fee)?;
            }
            Some(Tip::PercentageFee(percentage)) => {
                push(&mut out, ObjectId::top(TIP), "03")?;
                push(&mut out, ObjectId::top(PERCENTAGE_FEE), percentage)?;
            }
        }
        push(&mut out, ObjectId::top(COUNTRY), &self.country)?;
        push(&mut out, ObjectId::top(NAME), &self.merchant_name)?;
        push(&mut out, ObjectId::top(CITY), &self.merchant_city)?;
        if let Some(postal_code) = &self.postal_code {
            push(&mut out, ObjectId::top(POSTAL_CODE), postal_code)?;
        }
        if !self.additional_data.is_empty() {
            push_template(&mut out, ADDITIONAL, &self.additional_data)?;
        }
        if !self.language.is_empty() {
            push_template(&mut out, LANGUAGE, &self.language)?;
        }
        for (&id, value) in &self.reserved {
            push(&mut out, ObjectId::top(id), value)?;
        }
        for (&id, fields) in &self.unreserved_templates {
            push_template(&mut out, id, fields)?;
        }
        // The CRC covers its own id and length.
        out.push_str("6304");
        let crc = crc_hex(&out);
        out.push_str(&crc);
        Ok(out)
    }

    /// Checks the rules of the module docs that do not depend on how the
    /// payload was laid out: [`parse`] runs it on what it read,
    /// [`to_payload`](Self::to_payload) before writing.
    pub fn validate(&self) -> Result<(), EmvError> {
        if self.merchant_accounts.is_empty() && self.merchant_account_templates.is_empty() {
            return Err(EmvError::NoMerchantAccount);
        }
        for (&id, value) in &self.merchant_accounts {
            check_id(ObjectId::top(id), 2..=25, "02 to 25")?;
            check_length(ObjectId::top(id), value, 99)?;
        }
        for (&id, fields) in &self.merchant_account_templates {
            check_id(ObjectId::top(id), 26..=51, "26 to 51")?;
            check_gui_template(id, fields)?;
        }
        check_digits(CATEGORY, &self.merchant_category_code, 4, "4 digits")?;
        check_digits(CURRENCY, &self.currency, 3, "ISO 4217 numeric, 3 digits")?;
        if let Some(amount) = &self.amount {
            check_amount(AMOUNT, amount, 13)?;
        }
        match &self.tip {
            Some(Tip::FixedFee(fee)) => check_amount(FIXED_FEE, fee, 13)?,
            Some(Tip::PercentageFee(percentage)) => check_amount(PERCENTAGE_FEE, percentage, 5)?,
            Some(Tip::Prompt) | None => {}
        }
        let country = &self.country;
        if country.is_empty() {
            return Err(missing(COUNTRY));
        }
        if !(country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase())) {
            let rule = "ISO 3166-1 alpha-2, two capital letters";
            return Err(invalid(ObjectId::top(COUNTRY), country.clone(), rule));
        }
        check_mandatory(NAME, &self.merchant_name, 25)?;
        check_mandatory(CITY, &self.merchant_city, 15)?;
        if let Some(postal_code) = &self.postal_code {
            check_length(ObjectId::top(POSTAL_CODE), postal_code, 10)?;
        }
        for (&id, value) in &self.additional_data {
            let max = if (1..=8).contains(&id) { 25 } else { 99 };
            check_sub(ADDITIONAL, id, value, max)?;
        }
        if !self.language.is_empty() {
            check_language(&self.language)?;
        }
        for (&id, value) in &self.reserved {
            check_id(ObjectId::top(id), 65..=79, "65 to 79")?;
            check_length(ObjectId::top(id), value, 99)?;
        }
        for (&id, fields) in &self.unreserved_templates {
            check_id(ObjectId::top(id), 80..=99, "80 to 99")?;
            check_gui_template(id, fields)?;
        }
        Ok(())
    }
}

/// Splits `text` into data objects. `position` is where `text` starts in
/// the payload; `template` is the template whose value it is, if any.
fn split(text: &str, mut position: usize, template: Option<u8>) -> Result<Vec<Tlv<'_>>, EmvError> {
    let mut objects = Vec::new();
    let mut seen = [false; 100];
    let mut rest = text;
    while !rest.is_empty() {
        let start = position;
        let truncated = EmvError::Truncated { position: start };
        let (id_text, after_id) = take_chars(rest, 2).ok_or(truncated.clone())?;
        let id = two_digits(id_text).ok_or(EmvError::NonNumericId { position: start })?;
        let id = ObjectId { template, id };
        let (length_text, after_length) = take_chars(after_id, 2).ok_or(truncated.clone())?;
        let length = two_digits(length_text).ok_or(EmvError::NonNumericLength {
            id,
            position: start + 2,
        })?;
        if length == 0 {
            return Err(EmvError::BadLength {
                id,
                position: start + 2,
            });
        }
        let (value, after_value) =
            take_chars(after_length, usize::from(length)).ok_or(truncated)?;
        if std::mem::replace(&mut seen[usize::from(id.id)], true) {
            return Err(EmvError::Duplicate {
                id,
                position: start,
            });
        }
        objects.push(Tlv {
            position: start,
            id,
            value,
        });
        position = start + 4 + usize::from(length);
        rest = after_value;
    }
    Ok(objects)
}

/// The first `n` characters of `text` and the rest, or `None` if it is shorter.
fn take_chars(text: &str, n: usize) -> Option<(&str, &str)> {
    let end = text
        .char_indices()
        .map(|(i, _)| i)
        .chain([text.len()])
        .nth(n)?;
    Some(text.split_at(end))
}

fn two_digits(text: &str) -> Option<u8> {
    match text.as_bytes() {
        &[tens @ b'0'..=b'9', ones @ b'0'..=b'9'] => Some((tens - b'0') * 10 + (ones - b'0')),
        _ => None,
    }
}

/// A template's value read as data objects.
fn fields(object: &Tlv<'_>) -> Result<Fields, EmvError> {
    let objects = split(object.value, object.position + 4, Some(object.id.id))?;
    Ok(objects
        .into_iter()
        .map(|o| (o.id.id, o.value.to_owned()))
        .collect())
}

fn check_crc(payload: &str, objects: &[Tlv<'_>]) -> Result<(), EmvError> {
    let index = objects
        .iter()
        .position(|o| o.id.id == CRC_ID)
        .ok_or(missing(CRC_ID))?;
    if index + 1 != objects.len() {
        return Err(EmvError::CrcNotLast);
    }
    let found = objects[index].value;
    if !(found.len() == 4 && found.bytes().all(|b| b.is_ascii_hexdigit())) {
        return Err(invalid(
            ObjectId::top(CRC_ID),
            found.to_owned(),
            "4 hex digits",
        ));
    }
    // The CRC is the payload's last 4 bytes; it covers all before them.
    let expected = crc_hex(&payload[..payload.len() - found.len()]);
    if !found.eq_ignore_ascii_case(&expected) {
        return Err(EmvError::CrcMismatch {
            expected,
            found: found.to_owned(),
        });
    }
    Ok(())
}

fn crc_hex(text: &str) -> String {
    format!("{:04X}", CRC16.checksum(text.as_bytes()))
}

/// `55`, `56` and `57` as one [`Tip`]: a fee only with the indicator that
/// calls for it, and that indicator only with its fee.
fn read_tip(
    indicator: Option<&Tlv<'_>>,
    fixed_fee: Option<String>,
    percentage_fee: Option<String>,
) -> Result<Option<Tip>, EmvError> {
    let tip = match indicator.map(|o| o.value) {
        None => None,
        Some("01") => Some(Tip::Prompt),
        Some("02") => Some(Tip::FixedFee(fixed_fee.clone().ok_or(missing(FIXED_FEE))?)),
        Some("03") => Some(Tip::PercentageFee(
            percentage_fee.clone().ok_or(missing(PERCENTAGE_FEE))?,
        )),
        Some(other) => {
            let rule = "01 prompt, 02 fixed fee or 03 percentage fee";
            return Err(invalid(ObjectId::top(TIP), other.to_owned(), rule));
        }
    };
    if let Some(fee) = fixed_fee.filter(|_| !matches!(tip, Some(Tip::FixedFee(_)))) {
        return Err(invalid(ObjectId::top(FIXED_FEE), fee, "only with 55 = 02"));
    }
    if let Some(fee) = percentage_fee.filter(|_| !matches!(tip, Some(Tip::PercentageFee(_)))) {
        return Err(invalid(
            ObjectId::top(PERCENTAGE_FEE),
            fee,
            "only with 55 = 03",
        ));
    }
    Ok(tip)
}

fn push(out: &mut String, id: ObjectId, value: &str) -> Result<(), EmvError> {
    let length = check_length(id, value, 99)?;
    // Writing to a String cannot fail.
    let _ = write!(out, "{:02}{length:02}{value}", id.id);
    Ok(())
}

fn push_template(out: &mut String, id: u8, fields: &Fields) -> Result<(), EmvError> {
    let mut value = String::new();
    for (&sub_id, sub_value) in fields {
        push(&mut value, ObjectId::within(id, sub_id), sub_value)?;
    }
    push(out, ObjectId::top(id), &value)
}

/// The value's length in characters, if it is 1 to `max`.
fn check_length(id: ObjectId, value: &str, max: usize) -> Result<usize, EmvError> {
    match value.chars().count() {
        0 => Err(EmvError::Empty { id }),
        length if length > max => Err(EmvError::TooLong { id, max, length }),
        length => Ok(length),
    }
}

fn check_mandatory(id: u8, value: &str, max: usize) -> Result<(), EmvError> {
    if value.is_empty() {
        return Err(missing(id));
    }
    check_length(ObjectId::top(id), value, max).map(drop)
}

fn check_digits(id: u8, value: &str, digits: usize, rule: &'static str) -> Result<(), EmvError> {
    if value.is_empty() {
        return Err(missing(id));
    }
    if !(value.len() == digits && value.bytes().all(|b| b.is_ascii_digit())) {
        return Err(invalid(ObjectId::top(id), value.to_owned(), rule));
    }
    Ok(())
}

/// The spec's amount format: digits, with at most one `.` as decimal mark,
/// which may end the amount (`4.` is allowed) but not start it.
fn check_amount(id: u8, value: &str, max: usize) -> Result<(), EmvError> {
    let id = ObjectId::top(id);
    check_length(id, value, max)?;
    let (whole, decimals) = value.split_once('.').unwrap_or((value, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !all_digits(whole) || !all_digits(decimals) {
        return Err(EmvError::BadAmount {
            id,
            value: value.to_owned(),
        });
    }
    Ok(())
}

fn check_id(
    id: ObjectId,
    range: std::ops::RangeInclusive<u8>,
    allowed: &'static str,
) -> Result<(), EmvError> {
    if range.contains(&id.id) {
        Ok(())
    } else {
        Err(EmvError::IdOutOfRange { id, allowed })
    }
}

fn check_sub(template: u8, id: u8, value: &str, max: usize) -> Result<(), EmvError> {
    let id = ObjectId::within(template, id);
    check_id(id, 0..=99, "00 to 99")?;
    check_length(id, value, max).map(drop)
}

/// A merchant account or unreserved template: a GUI of up to 32 characters.
fn check_gui_template(template: u8, fields: &Fields) -> Result<(), EmvError> {
    if !fields.contains_key(&GUI) {
        return Err(EmvError::Missing {
            id: ObjectId::within(template, GUI),
        });
    }
    for (&id, value) in fields {
        check_sub(template, id, value, if id == GUI { 32 } else { 99 })?;
    }
    Ok(())
}

fn check_language(fields: &Fields) -> Result<(), EmvError> {
    for id in [language::PREFERENCE, language::MERCHANT_NAME] {
        if !fields.contains_key(&id) {
            return Err(EmvError::Missing {
                id: ObjectId::within(LANGUAGE, id),
            });
        }
    }
    for (&id, value) in fields {
        let max = match id {
            language::PREFERENCE => 2,
            language::MERCHANT_NAME => 25,
            language::MERCHANT_CITY => 15,
            _ => 99,
        };
        check_sub(LANGUAGE, id, value, max)?;
        if id == language::PREFERENCE
            && !(value.len() == 2 && value.bytes().all(|b| b.is_ascii_alphabetic()))
        {
            let id = ObjectId::within(LANGUAGE, id);
            return Err(invalid(id, value.clone(), "ISO 639-1, two letters"));
        }
    }
    Ok(())
}

fn missing(id: u8) -> EmvError {
    EmvError::Missing {
        id: ObjectId::top(id),
    }
}

fn invalid(id: ObjectId, value: String, rule: &'static str) -> EmvError {
    EmvError::Invalid { id, value, rule }
}

/// The GUI of Clink's merchant account template (compared without regard to
/// case when read, as reverse domain names are).
pub const CLINK_GUI: &str = "app.clink";
/// The id Clink writes its template at: the first of `26`–`51`. Readers look
/// for the GUI instead, since a QR that several schemes share numbers its
/// templates as it likes.
pub const CLINK_TEMPLATE: u8 = 26;
const CLINK_MERCHANT_ID: u8 = 1;
const CLINK_REQUEST_ID: u8 = 2;
const MERCHANT_ID_PREFIX: &str = "m_";
const REQUEST_ID_PREFIX: &str = "sp_";
/// Longest id after its prefix: the server's ids are 32 hex digits.
const MAX_ID_BODY: usize = 32;

/// A currency as the QR needs it: the ISO 4217 numeric code goes in `53`,
/// and the exponent turns minor units into the amount's decimal text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QrCurrency {
    /// `392` for the yen, `978` for the euro.
    pub numeric: u16,
    /// Digits after the decimal mark: 0 for the yen, 2 for the euro.
    pub exponent: u8,
}

/// What a Clink terminal's QR carries: one payment request of one merchant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClinkMerchantQr {
    /// `m_` and 1 to 32 letters or digits.
    pub merchant_id: String,
    /// The payment request the terminal opened: `sp_` and 1 to 32 letters or
    /// digits.
    pub request_id: String,
    /// In minor units, positive.
    pub amount: Amount,
    pub currency: QrCurrency,
    /// Up to 25 characters.
    pub merchant_name: String,
    /// Up to 15 characters.
    pub merchant_city: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
    /// ISO 18245, 4 digits: `5814` for fast food.
    pub merchant_category_code: String,
    /// The shop's order id, written as the bill number: up to 25 characters.
    pub order_id: String,
}

/// Why a payload is not a Clink merchant QR.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClinkQrError {
    #[error(transparent)]
    Emv(#[from] EmvError),
    #[error("a valid EMVCo QR, but not Clink's: no merchant account template {CLINK_GUI}")]
    NotClink,
    #[error("Clink's QR is dynamic (01 = 12); this one is not")]
    NotDynamic,
    #[error("Clink's QR has no {0}")]
    MissingField(&'static str),
    #[error("the {what} {value:?} is not {prefix} followed by 1 to 32 letters or digits")]
    BadId {
        what: &'static str,
        prefix: &'static str,
        value: String,
    },
    #[error("the QR is in currency {found}, this wallet's is {expected:03}")]
    CurrencyMismatch { expected: u16, found: String },
    #[error("amount {value:?} is not a positive amount with at most {exponent} decimals")]
    BadAmount { value: String, exponent: u8 },
}

impl ClinkMerchantQr {
    /// The QR's payload.
    pub fn to_payload(&self) -> Result<String, ClinkQrError> {
        check_clink_id("merchant id", MERCHANT_ID_PREFIX, &self.merchant_id)?;
        check_clink_id("payment request id", REQUEST_ID_PREFIX, &self.request_id)?;
        let amount = u64::try_from(self.amount)
            .ok()
            .filter(|&minor| minor > 0)
            .ok_or(ClinkQrError::BadAmount {
                value: self.amount.to_string(),
                exponent: self.currency.exponent,
            })?;
        let template = Fields::from([
            (GUI, CLINK_GUI.to_owned()),
            (CLINK_MERCHANT_ID, self.merchant_id.clone()),
            (CLINK_REQUEST_ID, self.request_id.clone()),
        ]);
        let qr = MerchantQr {
            initiation: Some(Initiation::Dynamic),
            merchant_account_templates: BTreeMap::from([(CLINK_TEMPLATE, template)]),
            merchant_category_code: self.merchant_category_code.clone(),
            currency: format!("{:03}", self.currency.numeric),
            amount: Some(amount_text(amount, self.currency.exponent)),
            country: self.country.clone(),
            merchant_name: self.merchant_name.clone(),
            merchant_city: self.merchant_city.clone(),
            additional_data: Fields::from([(additional::BILL_NUMBER, self.order_id.clone())]),
            ..MerchantQr::default()
        };
        Ok(qr.to_payload()?)
    }

    /// Only the merchant's and the payment request's ids, from a genuine
    /// Clink QR (CRC, dynamic, Clink's template): what a phone needs to take
    /// the request, whose amount and lines it then shows from the server.
    pub fn ids(payload: &str) -> Result<(String, String), ClinkQrError> {
        let (_, merchant_id, request_id) = Self::read_ids(payload)?;
        Ok((merchant_id, request_id))
    }

    fn read_ids(payload: &str) -> Result<(MerchantQr, String, String), ClinkQrError> {
        let qr = parse(payload)?;
        let template = qr
            .merchant_account_templates
            .values()
            .find(|fields| {
                fields
                    .get(&GUI)
                    .is_some_and(|gui| gui.eq_ignore_ascii_case(CLINK_GUI))
            })
            .ok_or(ClinkQrError::NotClink)?;
        if qr.initiation != Some(Initiation::Dynamic) {
            return Err(ClinkQrError::NotDynamic);
        }
        let merchant_id = template
            .get(&CLINK_MERCHANT_ID)
            .ok_or(ClinkQrError::MissingField("merchant id"))?;
        check_clink_id("merchant id", MERCHANT_ID_PREFIX, merchant_id)?;
        let request_id = template
            .get(&CLINK_REQUEST_ID)
            .ok_or(ClinkQrError::MissingField("payment request id"))?;
        check_clink_id("payment request id", REQUEST_ID_PREFIX, request_id)?;
        let (merchant_id, request_id) = (merchant_id.clone(), request_id.clone());
        Ok((qr, merchant_id, request_id))
    }

    /// Reads a scanned payload as a Clink QR in `currency`, the wallet's own:
    /// a QR in another cannot be paid from it.
    pub fn from_payload(payload: &str, currency: QrCurrency) -> Result<Self, ClinkQrError> {
        let (qr, merchant_id, request_id) = Self::read_ids(payload)?;
        if qr.currency != format!("{:03}", currency.numeric) {
            return Err(ClinkQrError::CurrencyMismatch {
                expected: currency.numeric,
                found: qr.currency,
            });
        }
        let text = qr.amount.ok_or(ClinkQrError::MissingField("amount"))?;
        let amount = amount_minor(&text, currency.exponent)
            .and_then(|minor| Amount::try_from(minor).ok())
            .filter(|&minor| minor > 0)
            .ok_or(ClinkQrError::BadAmount {
                value: text,
                exponent: currency.exponent,
            })?;
        let order_id = qr
            .additional_data
            .get(&additional::BILL_NUMBER)
            .ok_or(ClinkQrError::MissingField("order id (bill number, 62.01)"))?;
        Ok(Self {
            merchant_id,
            request_id,
            amount,
            currency,
            merchant_name: qr.merchant_name,
            merchant_city: qr.merchant_city,
            country: qr.country,
            merchant_category_code: qr.merchant_category_code,
            order_id: order_id.clone(),
        })
    }
}

fn check_clink_id(
    what: &'static str,
    prefix: &'static str,
    value: &str,
) -> Result<(), ClinkQrError> {
    let body = value.strip_prefix(prefix).unwrap_or("");
    if (1..=MAX_ID_BODY).contains(&body.len()) && body.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        Err(ClinkQrError::BadId {
            what,
            prefix,
            value: value.to_owned(),
        })
    }
}

/// Minor units as the QR's decimal text: 1234 at exponent 2 is `12.34`,
/// 800 at exponent 0 is `800`.
fn amount_text(minor: u64, exponent: u8) -> String {
    if exponent == 0 {
        return minor.to_string();
    }
    let exponent = usize::from(exponent);
    let digits = format!("{minor:0width$}", width = exponent + 1);
    let (whole, decimals) = digits.split_at(digits.len() - exponent);
    format!("{whole}.{decimals}")
}

/// The QR's decimal text in minor units; `None` if it has more non-zero
/// decimals than the currency or does not fit.
fn amount_minor(text: &str, exponent: u8) -> Option<u64> {
    let (whole, decimals) = text.split_once('.').unwrap_or((text, ""));
    let decimals = decimals.trim_end_matches('0');
    let missing_decimals = u32::from(exponent).checked_sub(u32::try_from(decimals.len()).ok()?)?;
    // Digits only; `str::parse` would also take a leading `+`.
    let number = |s: &str| {
        s.bytes().try_fold(0u64, |n, b| match b {
            b'0'..=b'9' => n.checked_mul(10)?.checked_add(u64::from(b - b'0')),
            _ => None,
        })
    };
    let whole = number(whole)?.checked_mul(10u64.checked_pow(u32::from(exponent))?)?;
    let decimals = number(decimals)?.checked_mul(10u64.checked_pow(missing_decimals)?)?;
    whole.checked_add(decimals)
}

#[cfg(test)]
mod tests;
