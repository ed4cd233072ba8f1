//! DTMF (dual-tone multi-frequency) modem: synthesis and a streaming detector.
//!
//! Clink's server plays a random challenge as DTMF over a phone call and the
//! app answers with DTMF; payment data can travel the same way. [`synth`]
//! turns digits into PCM, [`detect`] turns PCM (fed in chunks of any size)
//! back into digits, meeting the ITU-T Q.24 acceptance limits and staying
//! usable in heavy noise. See `detect` for the design and its reasons.

mod bank;
pub mod detect;
mod purity;
pub mod synth;

#[cfg(test)]
mod test_signals;
#[cfg(test)]
mod tests;

pub use detect::{DtmfDetector, DtmfEvent, detect_all};
pub use synth::{SynthConfig, synthesize_f32, synthesize_i16};

use thiserror::Error;

/// Low-group (row) frequencies in Hz, top row of the keypad first.
pub const LOW_GROUP_HZ: [u32; 4] = [697, 770, 852, 941];
/// High-group (column) frequencies in Hz, left column first.
pub const HIGH_GROUP_HZ: [u32; 4] = [1209, 1336, 1477, 1633];

/// Keypad layout: `KEYPAD[row][column]`, rows follow [`LOW_GROUP_HZ`] and
/// columns [`HIGH_GROUP_HZ`].
const KEYPAD: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];

/// Lowest and highest sample rates the modem accepts. 8 kHz is telephone
/// audio; above 192 kHz is not audio any phone produces.
pub const MIN_SAMPLE_RATE_HZ: u32 = 8_000;
pub const MAX_SAMPLE_RATE_HZ: u32 = 192_000;

/// One of the 16 DTMF keys: `0`-`9`, `*`, `#`, `A`-`D`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digit {
    row: u8,
    column: u8,
}

impl Digit {
    /// All 16 keys in keypad order.
    pub const ALL: [Digit; 16] = {
        let mut all = [Digit { row: 0, column: 0 }; 16];
        let mut i = 0;
        while i < 16 {
            all[i] = Digit {
                row: (i / 4) as u8,
                column: (i % 4) as u8,
            };
            i += 1;
        }
        all
    };

    /// Parses a key; `a`-`d` are accepted as `A`-`D`.
    pub fn from_char(key: char) -> Option<Digit> {
        let key = key.to_ascii_uppercase();
        Digit::ALL.into_iter().find(|d| d.as_char() == key)
    }

    /// The key pressed for the given row (low group) and column (high group).
    pub(crate) fn from_row_column(row: usize, column: usize) -> Digit {
        Digit {
            row: row as u8,
            column: column as u8,
        }
    }

    pub fn as_char(self) -> char {
        KEYPAD[self.row as usize][self.column as usize]
    }

    pub fn low_hz(self) -> u32 {
        LOW_GROUP_HZ[self.row as usize]
    }

    pub fn high_hz(self) -> u32 {
        HIGH_GROUP_HZ[self.column as usize]
    }
}

impl std::fmt::Display for Digit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.as_char())
    }
}

/// Parses a string of keys, reporting the first character that is not one.
pub fn parse_digits(keys: &str) -> Result<Vec<Digit>, DtmfError> {
    keys.chars()
        .enumerate()
        .map(|(position, found)| {
            Digit::from_char(found).ok_or(DtmfError::UnknownDigit { found, position })
        })
        .collect()
}

/// Renders events (or digits) back to a string of keys.
pub fn digits_to_string(digits: impl IntoIterator<Item = Digit>) -> String {
    digits.into_iter().map(Digit::as_char).collect()
}

/// Everything that can be wrong with what a caller hands the modem.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum DtmfError {
    #[error(
        "character {found:?} at position {position} is not a DTMF key (expected 0-9, *, #, A-D)"
    )]
    UnknownDigit { found: char, position: usize },
    #[error(
        "sample rate {hz} Hz is outside the supported range {MIN_SAMPLE_RATE_HZ}..={MAX_SAMPLE_RATE_HZ} Hz"
    )]
    SampleRateOutOfRange { hz: u32 },
    #[error("tone length {ms} ms is outside the supported range {min_ms}..={max_ms} ms")]
    ToneLengthOutOfRange { ms: f64, min_ms: f64, max_ms: f64 },
    #[error("gap length {ms} ms is outside the supported range 0..={max_ms} ms")]
    GapLengthOutOfRange { ms: f64, max_ms: f64 },
    #[error(
        "level {dbfs} dBFS per tone is outside {min_dbfs}..={max_dbfs} dBFS (two tones above the maximum would clip)"
    )]
    LevelOutOfRange {
        dbfs: f64,
        min_dbfs: f64,
        max_dbfs: f64,
    },
}

pub(crate) fn check_sample_rate(hz: u32) -> Result<(), DtmfError> {
    if (MIN_SAMPLE_RATE_HZ..=MAX_SAMPLE_RATE_HZ).contains(&hz) {
        Ok(())
    } else {
        Err(DtmfError::SampleRateOutOfRange { hz })
    }
}
