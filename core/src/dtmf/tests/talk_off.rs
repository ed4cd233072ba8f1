//! Talk-off: no digits from speech or music. Signals are generated with fixed
//! seeds (see `test_signals`).

use super::events;
use crate::dtmf::test_signals::{music_like, speech_like};

const SECONDS: f64 = 60.0;

#[test]
fn no_digits_in_60s_of_speech_like_audio_at_8khz() {
    let pcm = speech_like(8_000, SECONDS, 1);
    let found = events(&pcm, 8_000);
    assert!(found.is_empty(), "{} false digits: {found:?}", found.len());
}

#[test]
fn no_digits_in_60s_of_music_like_audio_at_8khz() {
    let pcm = music_like(8_000, SECONDS, 2);
    let found = events(&pcm, 8_000);
    assert!(found.is_empty(), "{} false digits: {found:?}", found.len());
}
