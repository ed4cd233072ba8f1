//! The rules for the text one person shows another: display names and memos.
//!
//! Paying by bump or by sound, the payer confirms nothing but the payee's
//! display name and the amount, so a name must show what it is. Phone and
//! server run these same rules: the wallet refuses before anything is sent,
//! the server refuses whatever else arrives, and both keep the normalised
//! form. Pure: no I/O, and nothing of the wallet.
//!
//! Both kinds of text are NFC-normalised first (a decomposed "e" + U+0301
//! is stored as the one character "é"); lengths and positions count the
//! characters of that form, positions from 1. Then, in names and memos alike,
//! these are refused:
//!
//! - bidirectional controls (U+061C, U+200E/F, U+202A–202E, U+2066–2069):
//!   they reorder how the text around them is shown ("\u{202E}ecohS" shows
//!   as "Shoce");
//! - invisible characters: every format character (general category Cf:
//!   zero-width space and joiners, U+2060–2064, U+FEFF, U+180E, U+00AD, tag
//!   characters, …) and every other default-ignorable code point (U+034F,
//!   the Hangul fillers, variation selectors, Mongolian free variation
//!   selectors, …) — with three exceptions that only refine how a visible
//!   character is drawn: U+FE0E/U+FE0F (text or emoji style) right after a
//!   non-ASCII emoji, U+200D ZERO WIDTH JOINER between two emoji (👩‍💻:
//!   without the font's support the parts show side by side, nothing
//!   hidden), and an ideographic variation selector (U+E0100–E01EF) right
//!   after a Han character, which picks the registered glyph of a family
//!   name (葛 + U+E0100);
//! - noncharacters (U+FDD0–FDEF and every U+xxFFFE/U+xxFFFF), control
//!   characters (Cc), the line and paragraph separators;
//! - private-use and unassigned code points: every phone would draw them
//!   differently, or not at all;
//! - a letter carrying more than 4 nonspacing marks, or the same mark twice
//!   in a row (UTS #39 §5.4): stacked marks spill over the text around.
//!
//! A display name also has to be written in one script, as UTS #39's
//! mixed-script detection has it (`unicode-security`): "Pаypal" with a
//! Cyrillic "а" is refused. Its augmented script sets count Han with
//! Hiragana and Katakana as one (Japanese), Han with Hangul (Korean) and Han
//! with Bopomofo, and digits, punctuation and emoji belong to every script,
//! so "山田 はなこ", "José", "Ζωή" and "Café 42" pass. A display name cannot
//! be blank, start or end with a space, or hold two spaces in a row; its
//! spaces are U+0020 or U+3000 IDEOGRAPHIC SPACE (what Japanese input
//! methods type between family and given name), not the look-alikes
//! (no-break, thin, hair spaces). A memo is free text: any script, any space.
//!
//! Apps still show a name in a bidi isolate (Android's `BidiFormatter`,
//! SwiftUI's `Text`): a right-to-left name is legitimate, and next to
//! digits it would otherwise reorder them.

use std::fmt;

use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeEmoji, UnicodeGeneralCategory};
use unicode_script::{Script, UnicodeScript};
use unicode_security::GeneralSecurityProfile;
use unicode_security::general_security_profile::IdentifierType;
use unicode_security::mixed_script::AugmentedScriptSet;

use super::{ApiError, ErrorCode};

/// Longest display name, in characters of its NFC form.
pub const MAX_DISPLAY_NAME_CHARS: usize = 64;
/// Longest memo, in characters of its NFC form.
pub const MAX_MEMO_CHARS: usize = 200;
/// Nonspacing marks one character may carry (UTS #39 §5.4 suggests 4).
const MAX_MARKS_IN_A_ROW: usize = 4;

/// Checks a display name; returns its NFC form, the one to store and show.
pub fn check_display_name(name: &str) -> Result<String, TextError> {
    check(TextField::DisplayName, name)
}

/// Checks a memo; returns its NFC form, the one to store and show. An empty
/// memo is fine.
pub fn check_memo(memo: &str) -> Result<String, TextError> {
    check(TextField::Memo, memo)
}

/// Which kind of text was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextField {
    DisplayName,
    Memo,
}

impl TextField {
    /// The code a refusal travels with over HTTP.
    pub fn error_code(self) -> ErrorCode {
        match self {
            TextField::DisplayName => ErrorCode::InvalidDisplayName,
            TextField::Memo => ErrorCode::InvalidMemo,
        }
    }

    fn max_chars(self) -> usize {
        match self {
            TextField::DisplayName => MAX_DISPLAY_NAME_CHARS,
            TextField::Memo => MAX_MEMO_CHARS,
        }
    }
}

impl fmt::Display for TextField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TextField::DisplayName => "display name",
            TextField::Memo => "memo",
        })
    }
}

/// Why a character may not appear.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CharClass {
    BidiControl,
    Invisible,
    Noncharacter,
    Control,
    LineBreak,
    PrivateUse,
    Unassigned,
    /// A space other than U+0020 and U+3000, in a display name.
    UnusualSpace,
}

impl CharClass {
    fn why(self) -> &'static str {
        match self {
            CharClass::BidiControl => "it changes the direction the text around it is shown in",
            CharClass::Invisible => "it is invisible",
            CharClass::Noncharacter => "it is a noncharacter, never meant for text",
            CharClass::Control => "it is a control character",
            CharClass::LineBreak => "it breaks the line",
            CharClass::PrivateUse => {
                "it is a private-use character that every phone draws differently"
            }
            CharClass::Unassigned => "it is not an assigned Unicode character",
            CharClass::UnusualSpace => {
                "words in a display name are separated by the ordinary space (U+0020) or the ideographic space (U+3000)"
            }
        }
    }
}

/// A refused display name or memo; the message names the character and its
/// position (from 1, in the NFC form).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TextError {
    Blank {
        field: TextField,
    },
    TooLong {
        field: TextField,
        length: usize,
        max: usize,
    },
    Forbidden {
        field: TextField,
        character: char,
        position: usize,
        class: CharClass,
    },
    EdgeSpace {
        field: TextField,
        position: usize,
    },
    RepeatedSpace {
        field: TextField,
        position: usize,
    },
    MixedScripts {
        character: char,
        position: usize,
        script: String,
        before: String,
    },
    StackedMarks {
        field: TextField,
        character: char,
        position: usize,
    },
}

impl fmt::Display for TextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TextError::Blank { field } => write!(f, "a {field} cannot be blank"),
            TextError::TooLong { field, length, max } => {
                write!(
                    f,
                    "a {field} has at most {max} characters; this one has {length}"
                )
            }
            TextError::Forbidden {
                field,
                character,
                position,
                class,
            } => write!(
                f,
                "{} at character {position} is not allowed in a {field}: {}",
                describe(*character),
                class.why()
            ),
            TextError::EdgeSpace { field, position } => write!(
                f,
                "a {field} cannot start or end with a space (character {position})"
            ),
            TextError::RepeatedSpace { field, position } => write!(
                f,
                "a {field} cannot hold two spaces in a row (character {position})"
            ),
            TextError::MixedScripts {
                character,
                position,
                script,
                before,
            } => write!(
                f,
                "{} {character:?} at character {position} is {script}, but the display name before it is {before}: a display name is written in one script",
                code_point(*character)
            ),
            TextError::StackedMarks {
                field,
                character,
                position,
            } => write!(
                f,
                "{} at character {position} of the {field} stacks combining marks: at most {MAX_MARKS_IN_A_ROW} on one character, never the same twice in a row",
                describe(*character)
            ),
        }
    }
}

impl std::error::Error for TextError {}

impl TextError {
    pub fn field(&self) -> TextField {
        match self {
            TextError::Blank { field }
            | TextError::TooLong { field, .. }
            | TextError::Forbidden { field, .. }
            | TextError::EdgeSpace { field, .. }
            | TextError::RepeatedSpace { field, .. }
            | TextError::StackedMarks { field, .. } => *field,
            TextError::MixedScripts { .. } => TextField::DisplayName,
        }
    }
}

impl From<TextError> for ApiError {
    fn from(e: TextError) -> ApiError {
        ApiError::new(e.field().error_code(), e.to_string())
    }
}

fn check(field: TextField, input: &str) -> Result<String, TextError> {
    let text: String = input.nfc().collect();
    let chars: Vec<char> = text.chars().collect();
    if chars.len() > field.max_chars() {
        return Err(TextError::TooLong {
            field,
            length: chars.len(),
            max: field.max_chars(),
        });
    }
    if field == TextField::DisplayName && chars.iter().all(|c| c.is_whitespace()) {
        return Err(TextError::Blank { field });
    }
    for (i, &c) in chars.iter().enumerate() {
        let before = i.checked_sub(1).map(|j| chars[j]);
        if let Some(class) = forbidden(field, c, before, chars.get(i + 1).copied()) {
            return Err(TextError::Forbidden {
                field,
                character: c,
                position: i + 1,
                class,
            });
        }
    }
    check_marks(field, &chars)?;
    if field == TextField::DisplayName {
        check_spaces(field, &chars)?;
        check_one_script(&chars)?;
    }
    Ok(text)
}

/// Why `c` (between `before` and `after`) may not appear, if it may not.
fn forbidden(
    field: TextField,
    c: char,
    before: Option<char>,
    after: Option<char>,
) -> Option<CharClass> {
    let code = u32::from(c);
    if (0xFDD0..=0xFDEF).contains(&code) || code & 0xFFFE == 0xFFFE {
        return Some(CharClass::Noncharacter);
    }
    if is_bidi_control(c) {
        return Some(CharClass::BidiControl);
    }
    let is_emoji = |c: Option<char>| c.is_some_and(|c| !c.is_ascii() && c.is_emoji_char());
    match c {
        '\u{FE0E}' | '\u{FE0F}' if is_emoji(before) => return None,
        '\u{200D}' if (is_emoji(before) || before == Some('\u{FE0F}')) && is_emoji(after) => {
            return None;
        }
        '\u{E0100}'..='\u{E01EF}' if before.is_some_and(is_han) => return None,
        _ => {}
    }
    match c.general_category() {
        GeneralCategory::Control => return Some(CharClass::Control),
        GeneralCategory::LineSeparator | GeneralCategory::ParagraphSeparator => {
            return Some(CharClass::LineBreak);
        }
        GeneralCategory::Format => return Some(CharClass::Invisible),
        GeneralCategory::PrivateUse => return Some(CharClass::PrivateUse),
        GeneralCategory::Unassigned | GeneralCategory::Surrogate => {
            return Some(CharClass::Unassigned);
        }
        GeneralCategory::SpaceSeparator
            if field == TextField::DisplayName && !matches!(c, ' ' | '\u{3000}') =>
        {
            return Some(CharClass::UnusualSpace);
        }
        _ => {}
    }
    // Default-ignorable code points outside Cf: combining grapheme joiner,
    // Hangul fillers, variation selectors, …
    if c.identifier_type() == Some(IdentifierType::Default_Ignorable) {
        return Some(CharClass::Invisible);
    }
    None
}

fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

/// Han by its Script property (its script extensions would also count
/// digits and punctuation, which belong to every script).
fn is_han(c: char) -> bool {
    c.script() == Script::Han
}

/// No more than [`MAX_MARKS_IN_A_ROW`] nonspacing marks in a row, and never
/// the same one twice (UTS #39 §5.4).
fn check_marks(field: TextField, chars: &[char]) -> Result<(), TextError> {
    let mut run = 0;
    for (i, &c) in chars.iter().enumerate() {
        if c.general_category() != GeneralCategory::NonspacingMark {
            run = 0;
            continue;
        }
        run += 1;
        if run > MAX_MARKS_IN_A_ROW || (i > 0 && chars[i - 1] == c) {
            return Err(TextError::StackedMarks {
                field,
                character: c,
                position: i + 1,
            });
        }
    }
    Ok(())
}

/// A display name's spaces (only U+0020 and U+3000 are left by now).
fn check_spaces(field: TextField, chars: &[char]) -> Result<(), TextError> {
    let space = |c: char| c.is_whitespace();
    if space(chars[0]) {
        return Err(TextError::EdgeSpace { field, position: 1 });
    }
    if space(chars[chars.len() - 1]) {
        return Err(TextError::EdgeSpace {
            field,
            position: chars.len(),
        });
    }
    match chars.windows(2).position(|w| space(w[0]) && space(w[1])) {
        Some(i) => Err(TextError::RepeatedSpace {
            field,
            position: i + 2,
        }),
        None => Ok(()),
    }
}

/// UTS #39 single-script: the augmented script sets of all characters
/// intersect. Finds the first character that empties the intersection.
fn check_one_script(chars: &[char]) -> Result<(), TextError> {
    let mut resolved = AugmentedScriptSet::default();
    for (i, &c) in chars.iter().enumerate() {
        let own = AugmentedScriptSet::for_char(c);
        let mut next = resolved;
        next.intersect_with(own);
        if next.is_empty() {
            return Err(TextError::MixedScripts {
                character: c,
                position: i + 1,
                script: script_names(&own),
                before: script_names(&resolved),
            });
        }
        resolved = next;
    }
    Ok(())
}

/// "Latin", "Cyrillic", "Hiragana or Katakana", "Japanese", …
fn script_names(set: &AugmentedScriptSet) -> String {
    let names: Vec<&str> = set.base.iter().map(Script::full_name).collect();
    if !names.is_empty() {
        return names.join(" or ");
    }
    let writing_systems = [
        (set.jpan, "Japanese"),
        (set.kore, "Korean"),
        (set.hanb, "Han with Bopomofo"),
    ];
    let names: Vec<&str> = writing_systems
        .iter()
        .filter(|(has, _)| *has)
        .map(|(_, name)| *name)
        .collect();
    names.join(" or ")
}

fn code_point(c: char) -> String {
    format!("U+{:04X}", u32::from(c))
}

/// "U+202E RIGHT-TO-LEFT OVERRIDE", or "U+0007" for a character without a
/// name here.
fn describe(c: char) -> String {
    match name(c) {
        Some(name) => format!("{} {name}", code_point(c)),
        None => code_point(c),
    }
}

/// Names of the characters people meet in refusals. Written out rather than
/// taken from a full Unicode name table (`unicode_names2`), which would add
/// hundreds of kilobytes to the phone library for these few dozen.
fn name(c: char) -> Option<String> {
    let fixed = match c {
        '\u{00A0}' => "NO-BREAK SPACE",
        '\u{00AD}' => "SOFT HYPHEN",
        '\u{034F}' => "COMBINING GRAPHEME JOINER",
        '\u{061C}' => "ARABIC LETTER MARK",
        '\u{115F}' => "HANGUL CHOSEONG FILLER",
        '\u{1160}' => "HANGUL JUNGSEONG FILLER",
        '\u{180E}' => "MONGOLIAN VOWEL SEPARATOR",
        '\u{2000}' => "EN QUAD",
        '\u{2001}' => "EM QUAD",
        '\u{2002}' => "EN SPACE",
        '\u{2003}' => "EM SPACE",
        '\u{2004}' => "THREE-PER-EM SPACE",
        '\u{2005}' => "FOUR-PER-EM SPACE",
        '\u{2006}' => "SIX-PER-EM SPACE",
        '\u{2007}' => "FIGURE SPACE",
        '\u{2008}' => "PUNCTUATION SPACE",
        '\u{2009}' => "THIN SPACE",
        '\u{200A}' => "HAIR SPACE",
        '\u{200B}' => "ZERO WIDTH SPACE",
        '\u{200C}' => "ZERO WIDTH NON-JOINER",
        '\u{200D}' => "ZERO WIDTH JOINER",
        '\u{200E}' => "LEFT-TO-RIGHT MARK",
        '\u{200F}' => "RIGHT-TO-LEFT MARK",
        '\u{2028}' => "LINE SEPARATOR",
        '\u{2029}' => "PARAGRAPH SEPARATOR",
        '\u{202A}' => "LEFT-TO-RIGHT EMBEDDING",
        '\u{202B}' => "RIGHT-TO-LEFT EMBEDDING",
        '\u{202C}' => "POP DIRECTIONAL FORMATTING",
        '\u{202D}' => "LEFT-TO-RIGHT OVERRIDE",
        '\u{202E}' => "RIGHT-TO-LEFT OVERRIDE",
        '\u{202F}' => "NARROW NO-BREAK SPACE",
        '\u{205F}' => "MEDIUM MATHEMATICAL SPACE",
        '\u{2060}' => "WORD JOINER",
        '\u{2061}' => "FUNCTION APPLICATION",
        '\u{2062}' => "INVISIBLE TIMES",
        '\u{2063}' => "INVISIBLE SEPARATOR",
        '\u{2064}' => "INVISIBLE PLUS",
        '\u{2066}' => "LEFT-TO-RIGHT ISOLATE",
        '\u{2067}' => "RIGHT-TO-LEFT ISOLATE",
        '\u{2068}' => "FIRST STRONG ISOLATE",
        '\u{2069}' => "POP DIRECTIONAL ISOLATE",
        '\u{3164}' => "HANGUL FILLER",
        '\u{FEFF}' => "ZERO WIDTH NO-BREAK SPACE (byte order mark)",
        '\u{FFA0}' => "HALFWIDTH HANGUL FILLER",
        '\u{FFF9}' => "INTERLINEAR ANNOTATION ANCHOR",
        '\u{FFFA}' => "INTERLINEAR ANNOTATION SEPARATOR",
        '\u{FFFB}' => "INTERLINEAR ANNOTATION TERMINATOR",
        '\u{FE00}'..='\u{FE0F}' => {
            return Some(format!("VARIATION SELECTOR-{}", u32::from(c) - 0xFE00 + 1));
        }
        '\u{E0100}'..='\u{E01EF}' => {
            return Some(format!(
                "VARIATION SELECTOR-{}",
                u32::from(c) - 0xE0100 + 17
            ));
        }
        '\u{E0001}' => "LANGUAGE TAG",
        '\u{E0020}'..='\u{E007F}' => "TAG CHARACTER",
        _ => return None,
    };
    Some(fixed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused_name(name: &str) -> TextError {
        check_display_name(name).expect_err(name)
    }

    fn class_of(e: &TextError) -> Option<(char, usize, CharClass)> {
        match e {
            TextError::Forbidden {
                character,
                position,
                class,
                ..
            } => Some((*character, *position, *class)),
            _ => None,
        }
    }

    #[test]
    fn names_in_many_scripts_are_accepted_as_typed() {
        for name in [
            "Alice",
            "José",
            "Müller",
            "Ζωή",
            "Наталья",
            "山田 はなこ",
            "山田　花子",
            "ヤマダ タロウ",
            "ラーメン一番",
            "김민준",
            "محمد",
            "שרה",
            "राम कुमार",
            "Bread & Co",
            "Bob's Cafe",
            "O'Brien-Smith Jr.",
            "Café 42",
            "Bob ❤\u{FE0F}",
            "👩\u{200D}💻 Ana",
            "葛\u{E0100}西",
        ] {
            assert_eq!(check_display_name(name).as_deref(), Ok(name), "{name}");
        }
    }

    #[test]
    fn a_decomposed_name_is_stored_composed() {
        let decomposed = "Jose\u{301}";
        assert_eq!(decomposed.chars().count(), 5);
        let stored = check_display_name(decomposed).unwrap();
        assert_eq!(stored, "José");
        assert_eq!(stored.chars().count(), 4);
        assert_eq!(check_memo("cafe\u{301}").unwrap(), "café");
    }

    #[test]
    fn length_is_counted_after_normalisation() {
        // 64 "é" typed decomposed are 128 code points but 64 characters.
        let name = "e\u{301}".repeat(MAX_DISPLAY_NAME_CHARS);
        assert_eq!(check_display_name(&name).unwrap().chars().count(), 64);
        assert_eq!(
            check_display_name(&format!("{name}e")),
            Err(TextError::TooLong {
                field: TextField::DisplayName,
                length: 65,
                max: 64
            })
        );
        assert!(check_memo(&"x".repeat(MAX_MEMO_CHARS)).is_ok());
        assert!(matches!(
            check_memo(&"x".repeat(MAX_MEMO_CHARS + 1)),
            Err(TextError::TooLong { length: 201, .. })
        ));
    }

    #[test]
    fn a_right_to_left_override_is_refused_and_named() {
        let e = refused_name("\u{202E}ecohS");
        assert_eq!(class_of(&e), Some(('\u{202E}', 1, CharClass::BidiControl)));
        assert_eq!(e.field().error_code(), ErrorCode::InvalidDisplayName);
        assert_eq!(
            e.to_string(),
            "U+202E RIGHT-TO-LEFT OVERRIDE at character 1 is not allowed in a display name: it changes the direction the text around it is shown in"
        );
        for c in ['\u{061C}', '\u{200E}', '\u{200F}', '\u{202A}', '\u{202D}'] {
            let e = refused_name(&format!("Bob{c}"));
            assert_eq!(class_of(&e), Some((c, 4, CharClass::BidiControl)));
        }
    }

    #[test]
    fn bidi_isolates_are_refused() {
        for c in '\u{2066}'..='\u{2069}' {
            let e = refused_name(&format!("A{c}b"));
            assert_eq!(class_of(&e), Some((c, 2, CharClass::BidiControl)));
            let e = check_memo(&format!("lunch {c}")).unwrap_err();
            assert_eq!(class_of(&e), Some((c, 7, CharClass::BidiControl)));
        }
        assert!(
            refused_name("a\u{2067}b")
                .to_string()
                .contains("U+2067 RIGHT-TO-LEFT ISOLATE at character 2")
        );
    }

    #[test]
    fn zero_width_and_other_invisible_characters_are_refused() {
        for c in [
            '\u{200B}',
            '\u{200C}',
            '\u{200D}',
            '\u{2060}',
            '\u{2062}',
            '\u{2064}',
            '\u{180E}',
            '\u{034F}',
            '\u{00AD}',
            '\u{3164}',
            '\u{115F}',
            '\u{FFA0}',
            '\u{FFF9}',
            '\u{E0001}',
            '\u{E0041}',
            '\u{E007F}',
            '\u{FE00}',
            '\u{180B}',
        ] {
            let e = refused_name(&format!("Al{c}ice"));
            assert_eq!(class_of(&e), Some((c, 3, CharClass::Invisible)), "{c:?}");
            let e = check_memo(&format!("Al{c}ice")).unwrap_err();
            assert_eq!(class_of(&e), Some((c, 3, CharClass::Invisible)), "{c:?}");
        }
        assert!(
            refused_name("Al\u{200B}ice")
                .to_string()
                .starts_with("U+200B ZERO WIDTH SPACE at character 3")
        );
    }

    #[test]
    fn a_byte_order_mark_is_refused_anywhere() {
        for (text, position) in [
            ("\u{FEFF}Alice", 1),
            ("Ali\u{FEFF}ce", 4),
            ("Alice\u{FEFF}", 6),
        ] {
            let e = refused_name(text);
            assert_eq!(
                class_of(&e),
                Some(('\u{FEFF}', position, CharClass::Invisible))
            );
            let e = check_memo(text).unwrap_err();
            assert_eq!(e.field().error_code(), ErrorCode::InvalidMemo);
        }
    }

    #[test]
    fn variation_selectors_only_where_they_style_a_visible_character() {
        // Emoji style after an emoji, a registered glyph after a Han character.
        assert!(check_memo("☕\u{FE0F} and ❤\u{FE0E}").is_ok());
        assert!(check_display_name("辻\u{E0101}").is_ok());
        assert!(check_memo("🏳\u{FE0F}\u{200D}🌈 party").is_ok());
        // Anywhere else they hide in plain sight.
        for text in [
            "a\u{FE0F}",
            "1\u{FE0F}",
            "a\u{E0100}",
            "1\u{E0100}",
            "\u{FE0F}",
        ] {
            assert!(
                matches!(
                    check_memo(text),
                    Err(TextError::Forbidden {
                        class: CharClass::Invisible,
                        ..
                    })
                ),
                "{text:?}"
            );
        }
        // A joiner between letters, or dangling after an emoji.
        assert!(check_memo("a\u{200D}b").is_err());
        assert!(check_memo("👩\u{200D}").is_err());
        assert!(check_memo("👩\u{200D}b").is_err());
    }

    #[test]
    fn noncharacters_are_refused() {
        for c in [
            '\u{FDD0}',
            '\u{FDEF}',
            '\u{FFFE}',
            '\u{FFFF}',
            '\u{1FFFE}',
            '\u{10FFFF}',
        ] {
            let e = check_memo(&format!("x{c}")).unwrap_err();
            assert_eq!(class_of(&e), Some((c, 2, CharClass::Noncharacter)), "{c:?}");
        }
    }

    #[test]
    fn control_characters_and_line_breaks_are_refused() {
        for c in [
            '\u{0}', '\u{7}', '\t', '\n', '\r', '\u{1B}', '\u{7F}', '\u{85}', '\u{9B}',
        ] {
            let e = check_memo(&format!("ok{c}")).unwrap_err();
            assert_eq!(class_of(&e), Some((c, 3, CharClass::Control)), "{c:?}");
            let e = refused_name(&format!("Al{c}ice"));
            assert_eq!(class_of(&e), Some((c, 3, CharClass::Control)), "{c:?}");
        }
        for c in ['\u{2028}', '\u{2029}'] {
            let e = check_memo(&format!("one{c}two")).unwrap_err();
            assert_eq!(class_of(&e), Some((c, 4, CharClass::LineBreak)));
        }
        assert!(
            check_memo("a\u{7}")
                .unwrap_err()
                .to_string()
                .starts_with("U+0007 at character 2 is not allowed in a memo")
        );
    }

    #[test]
    fn private_use_and_unassigned_code_points_are_refused() {
        let e = check_memo("\u{E000}").unwrap_err();
        assert_eq!(class_of(&e), Some(('\u{E000}', 1, CharClass::PrivateUse)));
        let e = check_memo("x\u{0378}").unwrap_err();
        assert_eq!(class_of(&e), Some(('\u{0378}', 2, CharClass::Unassigned)));
    }

    #[test]
    fn mixed_scripts_are_refused_in_a_name_but_not_in_a_memo() {
        let e = refused_name("Pаypal"); // Cyrillic а
        assert_eq!(
            e,
            TextError::MixedScripts {
                character: 'а',
                position: 2,
                script: "Cyrillic".into(),
                before: "Latin".into(),
            }
        );
        assert_eq!(e.field().error_code(), ErrorCode::InvalidDisplayName);
        assert!(
            e.to_string().starts_with(
                "U+0430 'а' at character 2 is Cyrillic, but the display name before it is Latin"
            ),
            "{e}"
        );
        // Greek omicron in a Latin name; Latin with Japanese; Hangul with kana.
        assert!(matches!(
            refused_name("Gοogle"),
            TextError::MixedScripts { position: 2, .. }
        ));
        assert!(matches!(
            refused_name("Tanaka 太郎"),
            TextError::MixedScripts { position: 8, .. }
        ));
        assert!(matches!(
            refused_name("김はな"),
            TextError::MixedScripts { position: 2, .. }
        ));
        // A memo is free text.
        assert_eq!(
            check_memo("Pаypal: ラーメン for Ζωή").unwrap(),
            "Pаypal: ラーメン for Ζωή"
        );
    }

    #[test]
    fn a_name_has_single_ordinary_spaces_inside_only() {
        assert_eq!(
            refused_name(""),
            TextError::Blank {
                field: TextField::DisplayName
            }
        );
        assert_eq!(
            refused_name("   "),
            TextError::Blank {
                field: TextField::DisplayName
            }
        );
        assert_eq!(
            refused_name(" Alice"),
            TextError::EdgeSpace {
                field: TextField::DisplayName,
                position: 1
            }
        );
        assert_eq!(
            refused_name("Alice\u{3000}"),
            TextError::EdgeSpace {
                field: TextField::DisplayName,
                position: 6
            }
        );
        assert_eq!(
            refused_name("Alice  Smith"),
            TextError::RepeatedSpace {
                field: TextField::DisplayName,
                position: 7
            }
        );
        assert_eq!(
            refused_name("山田 　花子"),
            TextError::RepeatedSpace {
                field: TextField::DisplayName,
                position: 4
            }
        );
        for c in ['\u{A0}', '\u{2009}', '\u{200A}', '\u{202F}', '\u{1680}'] {
            let e = refused_name(&format!("Alice{c}Smith"));
            assert_eq!(class_of(&e), Some((c, 6, CharClass::UnusualSpace)), "{c:?}");
        }
        // A memo keeps its spaces as typed.
        assert_eq!(
            check_memo(" two  spaces\u{A0}€ ").unwrap(),
            " two  spaces\u{A0}€ "
        );
        assert_eq!(check_memo("").unwrap(), "");
    }

    #[test]
    fn stacked_combining_marks_are_refused() {
        assert!(check_display_name("Nguyễn Thị").is_ok());
        let zalgo = "Z\u{336}\u{335}\u{334}\u{337}\u{338}ed";
        assert!(matches!(
            check_memo(zalgo),
            Err(TextError::StackedMarks { position: 6, .. })
        ));
        assert!(matches!(
            refused_name("i\u{307}\u{307}"),
            TextError::StackedMarks { position: 3, .. }
        ));
    }
}
