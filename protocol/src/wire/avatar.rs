//! Avatars: what a payer sees beside the payee's display name before the
//! PIN, so that in a crowd the payer confirms the person and not only the
//! amount. An avatar is an emoji, a small picture, or both; phone and server
//! run these same rules, and the server keeps what they return.
//!
//! **Emoji**: one extended grapheme cluster (UAX #29, what people see as one
//! character) that is an emoji by UTS #51's grammar: a character with
//! `Emoji_Presentation`, or with U+FE0F (emoji style) after it; a person or
//! hand with a skin tone (`Emoji_Modifier_Base` + `Emoji_Modifier`); a flag
//! (two regional indicators); a keycap (`0`–`9`, `#` or `*`, U+FE0F,
//! U+20E3); a subdivision flag (🏴 with tag characters); or up to four of
//! those joined by U+200D ZERO WIDTH JOINER (👩‍💻, 👨‍👩‍👧‍👦). What a phone
//! without the joined glyph shows is the parts side by side: nothing hidden.
//! A digit or a letter alone, U+FE0E (text style), a lone skin tone or
//! joiner, two emoji, are refused.
//!
//! Why these crates: `unicode-segmentation` (unicode-rs, the same family as
//! the normalisation and script crates the display-name rules use) draws
//! grapheme boundaries, and `unicode-properties`, already used by
//! `wire::text`, gives UTS #51's character properties at Unicode 18. The
//! `emojis` crate would check against the full list of recommended
//! sequences, but its tables (names, shortcodes) add about 1 MB to a
//! stripped release binary — a fifth of the phone library — and
//! `unic-emoji-char` stopped at Unicode 10 (2019).
//!
//! **Picture**: PNG or JPEG bytes (recognised by their signature), at most
//! [`MAX_PICTURE_BYTES`]; on the wire, standard base64 with padding
//! ([`encode_picture`]).

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use unicode_properties::{EmojiStatus, UnicodeEmoji};
use unicode_segmentation::UnicodeSegmentation;

use super::{ApiError, ErrorCode};

/// Largest avatar picture, in bytes (before base64).
pub const MAX_PICTURE_BYTES: usize = 32 * 1024;
/// Most emoji one avatar may join with U+200D (a family of four).
pub const MAX_JOINED_EMOJI: usize = 4;

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
const JPEG_SIGNATURE: &[u8] = b"\xFF\xD8\xFF";
const ZWJ: char = '\u{200D}';
const EMOJI_STYLE: char = '\u{FE0F}';
const TEXT_STYLE: char = '\u{FE0E}';
const KEYCAP: char = '\u{20E3}';
const BLACK_FLAG: char = '\u{1F3F4}';
const CANCEL_TAG: char = '\u{E007F}';

/// An account's avatar as the server holds it: `GET /v1/avatar`, the answer
/// to `PUT` and `DELETE /v1/avatar` (empty after a clear), and a pairing
/// request's `payee_avatar`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Avatar {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emoji: Option<String>,
    /// PNG or JPEG bytes, standard base64 with padding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub picture: Option<String>,
}

impl Avatar {
    /// Neither an emoji nor a picture.
    pub fn is_empty(&self) -> bool {
        self.emoji.is_none() && self.picture.is_none()
    }

    /// The picture's bytes, checked like an upload.
    pub fn picture_bytes(&self) -> Result<Option<Vec<u8>>, AvatarError> {
        self.picture.as_deref().map(decode_picture).transpose()
    }
}

/// `PUT /v1/avatar`: replaces the caller's avatar with this emoji, this
/// picture, or both (at least one; `DELETE /v1/avatar` clears it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetAvatarRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emoji: Option<String>,
    /// PNG or JPEG bytes, standard base64 with padding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub picture: Option<String>,
}

impl SetAvatarRequest {
    /// Checks the request: the emoji as it is to be stored, and the
    /// picture's bytes.
    pub fn check(&self) -> Result<(Option<String>, Option<Vec<u8>>), AvatarError> {
        if self.emoji.is_none() && self.picture.is_none() {
            return Err(AvatarError::Nothing);
        }
        let emoji = self.emoji.as_deref().map(check_emoji).transpose()?;
        let picture = self.picture.as_deref().map(decode_picture).transpose()?;
        Ok((emoji, picture))
    }
}

/// What a picture's signature says it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PictureFormat {
    Png,
    Jpeg,
}

impl PictureFormat {
    pub fn media_type(self) -> &'static str {
        match self {
            PictureFormat::Png => "image/png",
            PictureFormat::Jpeg => "image/jpeg",
        }
    }
}

/// A refused avatar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AvatarError {
    /// A `PUT` with neither an emoji nor a picture.
    Nothing,
    EmptyEmoji,
    /// More than one character as people see it (two emoji, a word).
    NotOneEmoji {
        characters: usize,
    },
    /// One character, but not an emoji; `why` says what is wrong.
    NotAnEmoji {
        why: String,
    },
    EmptyPicture,
    PictureNotBase64 {
        detail: String,
    },
    /// Neither PNG nor JPEG; `start` is its first bytes in hex.
    PictureFormat {
        start: String,
    },
    PictureTooLarge {
        bytes: usize,
    },
}

impl AvatarError {
    pub fn error_code(&self) -> ErrorCode {
        match self {
            AvatarError::Nothing => ErrorCode::InvalidRequest,
            AvatarError::EmptyEmoji
            | AvatarError::NotOneEmoji { .. }
            | AvatarError::NotAnEmoji { .. } => ErrorCode::InvalidAvatarEmoji,
            AvatarError::EmptyPicture
            | AvatarError::PictureNotBase64 { .. }
            | AvatarError::PictureFormat { .. } => ErrorCode::InvalidAvatarPicture,
            AvatarError::PictureTooLarge { .. } => ErrorCode::AvatarPictureTooLarge,
        }
    }

    /// Whether the emoji (rather than the picture) was refused.
    pub fn is_about_emoji(&self) -> bool {
        self.error_code() == ErrorCode::InvalidAvatarEmoji
    }
}

impl fmt::Display for AvatarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AvatarError::Nothing => write!(
                f,
                "an avatar is an emoji, a picture or both: send at least one (DELETE /v1/avatar clears it)"
            ),
            AvatarError::EmptyEmoji => write!(f, "the avatar emoji is empty"),
            AvatarError::NotOneEmoji { characters } => write!(
                f,
                "an avatar emoji is one emoji; this is {characters} characters"
            ),
            AvatarError::NotAnEmoji { why } => write!(f, "not an emoji: {why}"),
            AvatarError::EmptyPicture => write!(f, "the avatar picture is empty"),
            AvatarError::PictureNotBase64 { detail } => write!(
                f,
                "the avatar picture is not standard base64 with padding: {detail}"
            ),
            AvatarError::PictureFormat { start } => write!(
                f,
                "an avatar picture is PNG or JPEG; this one starts with {start}"
            ),
            AvatarError::PictureTooLarge { bytes } => write!(
                f,
                "an avatar picture has at most {MAX_PICTURE_BYTES} bytes; this one has {bytes}"
            ),
        }
    }
}

impl std::error::Error for AvatarError {}

impl From<AvatarError> for ApiError {
    fn from(e: AvatarError) -> ApiError {
        ApiError::new(e.error_code(), e.to_string())
    }
}

/// Checks an avatar emoji; returns it as it is to be stored.
pub fn check_emoji(emoji: &str) -> Result<String, AvatarError> {
    if emoji.is_empty() {
        return Err(AvatarError::EmptyEmoji);
    }
    let characters = emoji.graphemes(true).count();
    if characters != 1 {
        return Err(AvatarError::NotOneEmoji { characters });
    }
    let not = |why: String| AvatarError::NotAnEmoji { why };
    let chars: Vec<char> = emoji.chars().collect();
    let elements: Vec<&[char]> = chars.split(|&c| c == ZWJ).collect();
    if elements.len() > MAX_JOINED_EMOJI {
        return Err(not(format!(
            "{} emoji joined; at most {MAX_JOINED_EMOJI}",
            elements.len()
        )));
    }
    if elements.iter().any(|e| e.is_empty()) {
        return Err(not(
            "U+200D ZERO WIDTH JOINER only stands between two emoji".into(),
        ));
    }
    for element in elements {
        check_element(element).map_err(not)?;
    }
    Ok(emoji.to_string())
}

/// One element of a (possibly joined) emoji: UTS #51's
/// `emoji_zwj_element`, shown in emoji style.
fn check_element(element: &[char]) -> Result<(), String> {
    let (&base, rest) = element.split_first().expect("not empty");
    let status = base.emoji_status();
    if is_regional_indicator(base) {
        return match rest {
            [second] if is_regional_indicator(*second) => Ok(()),
            _ => Err(format!(
                "{} is half a flag: a flag is two regional indicators",
                code_point(base)
            )),
        };
    }
    if !base.is_emoji_char() {
        return Err(format!("{} is not an emoji character", code_point(base)));
    }
    let keycap_base = matches!(base, '0'..='9' | '#' | '*');
    match rest {
        // Shown as an emoji by default.
        [] if has_emoji_presentation(status) && !base.is_emoji_component() => Ok(()),
        [] if keycap_base => Err(format!(
            "{} alone is text; its emoji is the keycap {base}\u{FE0F}\u{20E3}",
            code_point(base)
        )),
        [] if is_modifier(status) => Err(format!(
            "{} is a skin tone: it follows a person or a hand",
            code_point(base)
        )),
        [] => Err(format!(
            "{} is shown as text unless U+FE0F (emoji style) follows it",
            code_point(base)
        )),
        [EMOJI_STYLE] if !base.is_emoji_component() => Ok(()),
        [EMOJI_STYLE, KEYCAP] if keycap_base => Ok(()),
        [modifier] if is_modifier(modifier.emoji_status()) => {
            if is_modifier_base(status) {
                Ok(())
            } else {
                Err(format!(
                    "{} takes no skin tone ({})",
                    code_point(base),
                    code_point(*modifier)
                ))
            }
        }
        [tags @ .., CANCEL_TAG] if base == BLACK_FLAG && is_tag_spec(tags) => Ok(()),
        [TEXT_STYLE, ..] => Err(format!(
            "U+FE0E after {} asks for text style",
            code_point(base)
        )),
        [other, ..] => Err(format!(
            "{} cannot follow {} in an emoji",
            code_point(*other),
            code_point(base)
        )),
    }
}

fn is_regional_indicator(c: char) -> bool {
    matches!(c, '\u{1F1E6}'..='\u{1F1FF}')
}

fn is_tag_spec(tags: &[char]) -> bool {
    // A subdivision code: 3 to 7 lowercase letters or digits as tags.
    (3..=7).contains(&tags.len())
        && tags
            .iter()
            .all(|&t| matches!(t, '\u{E0030}'..='\u{E0039}' | '\u{E0061}'..='\u{E007A}'))
}

fn has_emoji_presentation(status: EmojiStatus) -> bool {
    matches!(
        status,
        EmojiStatus::EmojiPresentation
            | EmojiStatus::EmojiPresentationAndModifierBase
            | EmojiStatus::EmojiPresentationAndEmojiComponent
            | EmojiStatus::EmojiPresentationAndModifierAndEmojiComponent
    )
}

fn is_modifier(status: EmojiStatus) -> bool {
    status == EmojiStatus::EmojiPresentationAndModifierAndEmojiComponent
}

fn is_modifier_base(status: EmojiStatus) -> bool {
    matches!(
        status,
        EmojiStatus::EmojiModifierBase | EmojiStatus::EmojiPresentationAndModifierBase
    )
}

fn code_point(c: char) -> String {
    format!("U+{:04X}", u32::from(c))
}

/// Checks a picture's bytes: not empty, PNG or JPEG by its signature, at
/// most [`MAX_PICTURE_BYTES`].
pub fn check_picture(bytes: &[u8]) -> Result<PictureFormat, AvatarError> {
    if bytes.is_empty() {
        return Err(AvatarError::EmptyPicture);
    }
    let format = if bytes.starts_with(PNG_SIGNATURE) {
        PictureFormat::Png
    } else if bytes.starts_with(JPEG_SIGNATURE) {
        PictureFormat::Jpeg
    } else {
        let start = bytes
            .iter()
            .take(8)
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(" ");
        return Err(AvatarError::PictureFormat { start });
    };
    if bytes.len() > MAX_PICTURE_BYTES {
        return Err(AvatarError::PictureTooLarge { bytes: bytes.len() });
    }
    Ok(format)
}

/// A picture's wire form.
pub fn encode_picture(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// A picture's bytes from its wire form, checked with [`check_picture`].
pub fn decode_picture(text: &str) -> Result<Vec<u8>, AvatarError> {
    // Four base64 characters carry three bytes: refuse what cannot fit
    // before decoding it.
    if text.len() / 4 * 3 > MAX_PICTURE_BYTES + 3 {
        return Err(AvatarError::PictureTooLarge {
            bytes: text.len() / 4 * 3,
        });
    }
    let bytes = STANDARD
        .decode(text.as_bytes())
        .map_err(|e| AvatarError::PictureNotBase64 {
            detail: e.to_string(),
        })?;
    check_picture(&bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(emoji: &str) -> AvatarError {
        check_emoji(emoji).expect_err(emoji)
    }

    #[test]
    fn one_emoji_of_every_kind_is_accepted_as_it_is() {
        for emoji in [
            "🐱",
            "😀",
            "☕",
            "❤\u{FE0F}",         // text by default, emoji with U+FE0F
            "👍🏽",                // a hand with a skin tone
            "🇯🇵",                // a flag
            "1\u{FE0F}\u{20E3}", // a keycap
            "#\u{FE0F}\u{20E3}",
            "👩\u{200D}💻",                            // joined: woman technologist
            "👨\u{200D}👩\u{200D}👧\u{200D}👦",        // a family of four
            "👩\u{200D}❤\u{FE0F}\u{200D}💋\u{200D}👨", // kiss
            "🏳\u{FE0F}\u{200D}🌈",                     // rainbow flag
            "🧑🏽\u{200D}🚀",                            // astronaut with a skin tone
            "🏴\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}", // Scotland
        ] {
            assert_eq!(check_emoji(emoji).as_deref(), Ok(emoji), "{emoji:?}");
        }
    }

    #[test]
    fn two_emoji_letters_and_text_style_are_refused() {
        assert_eq!(refused(""), AvatarError::EmptyEmoji);
        assert_eq!(refused("🐱🐶"), AvatarError::NotOneEmoji { characters: 2 });
        assert_eq!(refused("ab"), AvatarError::NotOneEmoji { characters: 2 });
        assert_eq!(refused(" 🐱"), AvatarError::NotOneEmoji { characters: 2 });
        for (emoji, says) in [
            ("a", "U+0061 is not an emoji character"),
            ("é", "U+00E9 is not an emoji character"),
            ("1", "its emoji is the keycap"),
            ("❤", "shown as text unless U+FE0F"),
            ("☕\u{FE0E}", "asks for text style"),
            ("🏽", "is a skin tone"),
            ("🐱🏽", "takes no skin tone"),
            ("🇯", "half a flag"),
            ("a\u{20E3}", "not an emoji character"),
            ("\u{200D}", "only stands between two emoji"),
            ("🐱\u{200D}", "only stands between two emoji"),
            ("🏴\u{E0067}\u{E007F}", "cannot follow"),
            (
                "🐱\u{200D}🐱\u{200D}🐱\u{200D}🐱\u{200D}🐱",
                "5 emoji joined",
            ),
        ] {
            let e = refused(emoji);
            assert_eq!(e.error_code(), ErrorCode::InvalidAvatarEmoji, "{emoji:?}");
            assert!(e.to_string().contains(says), "{emoji:?}: {e}");
        }
    }

    #[test]
    fn pictures_are_png_or_jpeg_within_the_cap() {
        let png = [PNG_SIGNATURE, &[0u8; 100]].concat();
        let jpeg = [JPEG_SIGNATURE, &[0xE0, 0, 16]].concat();
        assert_eq!(check_picture(&png), Ok(PictureFormat::Png));
        assert_eq!(check_picture(&jpeg), Ok(PictureFormat::Jpeg));
        assert_eq!(decode_picture(&encode_picture(&png)), Ok(png.clone()));
        let gif = b"GIF89a\x01\x00\x01\x00";
        let e = check_picture(gif).unwrap_err();
        assert_eq!(e.error_code(), ErrorCode::InvalidAvatarPicture);
        assert!(e.to_string().contains("47 49 46 38 39 61 01 00"), "{e}");
        assert_eq!(check_picture(b""), Err(AvatarError::EmptyPicture));

        let mut big = png.clone();
        big.resize(MAX_PICTURE_BYTES, 7);
        assert_eq!(check_picture(&big), Ok(PictureFormat::Png));
        big.push(7);
        let e = decode_picture(&encode_picture(&big)).unwrap_err();
        assert_eq!(
            e,
            AvatarError::PictureTooLarge {
                bytes: MAX_PICTURE_BYTES + 1
            }
        );
        assert_eq!(e.error_code(), ErrorCode::AvatarPictureTooLarge);
        assert_eq!(e.error_code().http_status(), 413);
        // Far too large is refused before it is decoded.
        let huge = "A".repeat(4 * MAX_PICTURE_BYTES);
        assert!(matches!(
            decode_picture(&huge),
            Err(AvatarError::PictureTooLarge { .. })
        ));
        assert!(matches!(
            decode_picture("iVBORw0KGgo=!"),
            Err(AvatarError::PictureNotBase64 { .. })
        ));
    }

    #[test]
    fn a_request_sets_at_least_one_part() {
        let nothing = SetAvatarRequest::default().check().unwrap_err();
        assert_eq!(nothing.error_code(), ErrorCode::InvalidRequest);
        let emoji_only = SetAvatarRequest {
            emoji: Some("🍞".into()),
            picture: None,
        };
        assert_eq!(emoji_only.check(), Ok((Some("🍞".into()), None)));
        assert_eq!(
            serde_json::to_string(&emoji_only).unwrap(),
            r#"{"emoji":"🍞"}"#
        );
        assert!(serde_json::from_str::<SetAvatarRequest>(r#"{"emoji":"🍞","x":1}"#).is_err());
        assert!(Avatar::default().is_empty());
    }
}
