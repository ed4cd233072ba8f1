//! Playback through the real cpal path (ALSA) with no sound card: the
//! default PCM is ALSA's `file` plugin over `null`, writing what is played
//! to a raw file, which is read back and decoded.
#![cfg(feature = "audio-io")]

mod audio_support;

use audio_support::*;
use clink_core::acoustic::{Profile, Token, TokenDecoder, TokenModem};
use clink_core::audio::{Player, SampleFormat};

const TOKEN: Token = *b"speaker-token-01";

#[test]
fn plays_a_token_that_decodes_from_what_the_device_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let outfile = dir.path().join("speaker.f32");
    use_alsa_config(&alsa_config_home(dir.path(), &playback_to_file(&outfile)));

    let player = Player::open(None, None).unwrap();
    assert_eq!(player.sample_rate_hz(), RATE_HZ);
    assert_eq!(player.info().device_channels, 1);
    assert_eq!(player.info().device_format, SampleFormat::F32);
    let modem = TokenModem::new(Profile::NearUltrasound, player.sample_rate_hz()).unwrap();
    let pcm = modem.modulate(&TOKEN);
    player.play_and_wait(pcm.clone()).unwrap();
    // Closing the stream flushes the file.
    drop(player);

    let played = read_raw_f32(&outfile);
    // The buffer appears whole and unchanged, after whatever silence the
    // device started with.
    let leading_zeros = pcm.iter().position(|s| *s != 0.0).unwrap();
    let start = played
        .iter()
        .position(|s| *s != 0.0)
        .expect("something was played")
        - leading_zeros;
    assert!(
        played.len() >= start + pcm.len(),
        "playback was cut short: {} samples written, the token starts at {start}",
        played.len()
    );
    let first_difference = played[start..start + pcm.len()]
        .iter()
        .zip(&pcm)
        .position(|(got, sent)| got.to_bits() != sent.to_bits());
    assert_eq!(first_difference, None);
    assert!(played[start + pcm.len()..].iter().all(|s| *s == 0.0));

    let mut decoder = TokenDecoder::new(Profile::NearUltrasound, RATE_HZ).unwrap();
    let mut heard = decoder.push(&played);
    heard.extend(decoder.push(&vec![0.0; samples(0.5)]));
    assert_eq!(heard, vec![TOKEN]);
}
