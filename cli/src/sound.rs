//! Acoustic tokens on the command line: play a token on the speaker (or
//! into a WAV file) and listen for tokens on the microphone (or in a WAV
//! file).
//!
//! The functions take and return [`Token`]s, so a wallet flow that gets a
//! token from the server plays it with [`play_token`], and one that redeems
//! a heard token gets it from [`listen_for_token`]. Devices are used only
//! with the `audio` feature; WAV files always work.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clink_core::acoustic::{AcousticError, Profile, TOKEN_LEN, Token, TokenDecoder, TokenModem};

/// Rate of WAV files written when no rate is given, and asked of devices.
pub const DEFAULT_RATE_HZ: u32 = 48_000;
/// Silence fed to the decoder after a file ends, so a token that ends with
/// the file is still completed.
pub const FILE_FLUSH_S: f64 = 0.5;
/// Chunk size when decoding a file (as a device would deliver it).
pub const FILE_CHUNK: usize = 1_024;

#[derive(Debug, thiserror::Error)]
pub enum SoundError {
    #[error("{input:?} is not a token: {reason}")]
    BadToken { input: String, reason: String },
    #[error(transparent)]
    Acoustic(#[from] AcousticError),
    #[error("cannot read {path}: {message}")]
    ReadWav { path: PathBuf, message: String },
    #[error("cannot write {path}: {message}")]
    WriteWav { path: PathBuf, message: String },
    #[cfg(feature = "audio")]
    #[error("{source} ({hint})")]
    Audio {
        source: clink_core::audio::AudioError,
        hint: &'static str,
    },
    #[cfg(not(feature = "audio"))]
    #[error(
        "this clink was built without the `audio` feature, so it cannot use sound devices; {hint}"
    )]
    NoAudioSupport { hint: &'static str },
}

pub const LISTEN_HINT: &str = "to decode a recording instead, use `clink listen --in FILE.wav`";
pub const PLAY_HINT: &str =
    "to write the sound to a file instead, use `clink play-token HEX --out FILE.wav`";

/// Parses 32 hex digits (spaces and dashes allowed between them).
pub fn parse_token(input: &str) -> Result<Token, SoundError> {
    let digits: String = input
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    let bytes = hex::decode(&digits).map_err(|e| SoundError::BadToken {
        input: input.to_string(),
        reason: format!("{e}; a token is {} hex digits", TOKEN_LEN * 2),
    })?;
    Token::try_from(bytes.as_slice()).map_err(|_| SoundError::BadToken {
        input: input.to_string(),
        reason: format!(
            "it has {} bytes; a token has {TOKEN_LEN} ({} hex digits)",
            bytes.len(),
            TOKEN_LEN * 2
        ),
    })
}

/// A token that was heard, and when.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Heard {
    #[serde(serialize_with = "as_hex")]
    pub token: Token,
    /// Seconds of audio from the start of listening until the token was
    /// complete.
    pub heard_after_s: f64,
}

fn as_hex<S: serde::Serializer>(token: &Token, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(token))
}

/// Where a played token went.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Played {
    #[serde(serialize_with = "as_hex")]
    pub token: Token,
    /// The device's name, or the file written.
    pub to: String,
    pub sample_rate_hz: u32,
    pub duration_s: f64,
}

/// Writes the token's sound to a mono 32-bit float WAV file.
pub fn write_token_wav(
    token: &Token,
    profile: Profile,
    sample_rate_hz: Option<u32>,
    path: &Path,
) -> Result<Played, SoundError> {
    let modem = TokenModem::new(profile, sample_rate_hz.unwrap_or(DEFAULT_RATE_HZ))?;
    write_wav(&modem.modulate(token), modem.sample_rate_hz(), path)?;
    Ok(Played {
        token: *token,
        to: path.display().to_string(),
        sample_rate_hz: modem.sample_rate_hz(),
        duration_s: modem.token_duration_s(),
    })
}

/// Reads a WAV file as mono f32 (channels averaged) and its rate.
/// Writes mono f32 audio as a 32-bit float WAV file.
pub fn write_wav(pcm: &[f32], sample_rate_hz: u32, path: &Path) -> Result<(), SoundError> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: sample_rate_hz,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let write_error = |e: hound::Error| SoundError::WriteWav {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let mut writer = hound::WavWriter::create(path, spec).map_err(write_error)?;
    for sample in pcm {
        writer.write_sample(*sample).map_err(write_error)?;
    }
    writer.finalize().map_err(write_error)
}

/// A WAV file's audio as mono f32 (channels averaged) and its sample rate.
pub fn read_wav(path: &Path) -> Result<(Vec<f32>, u32), SoundError> {
    let read_error = |e: hound::Error| SoundError::ReadWav {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let mut reader = hound::WavReader::open(path).map_err(read_error)?;
    let spec = reader.spec();
    let interleaved: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => reader.samples::<f32>().collect::<Result<_, _>>(),
        hound::SampleFormat::Int => {
            let full_scale = (1u64 << (spec.bits_per_sample - 1)) as f32;
            reader
                .samples::<i32>()
                .map(|s| s.map(|s| s as f32 / full_scale))
                .collect::<Result<_, _>>()
        }
    }
    .map_err(read_error)?;
    let channels = usize::from(spec.channels.max(1));
    let mono = interleaved
        .chunks_exact(channels)
        .map(|frame| frame.iter().sum::<f32>() / channels as f32)
        .collect();
    Ok((mono, spec.sample_rate))
}

/// Every token in a WAV file, in order.
pub fn decode_wav(path: &Path, profile: Profile) -> Result<Vec<Heard>, SoundError> {
    let (audio, rate) = read_wav(path)?;
    let mut decoder = TokenDecoder::new(profile, rate)?;
    let flush = vec![0.0; (FILE_FLUSH_S * f64::from(rate)) as usize];
    let mut consumed = 0usize;
    let mut heard = Vec::new();
    for chunk in audio.chunks(FILE_CHUNK).chain(flush.chunks(FILE_CHUNK)) {
        consumed += chunk.len();
        heard.extend(decoder.push(chunk).into_iter().map(|token| Heard {
            token,
            heard_after_s: consumed as f64 / f64::from(rate),
        }));
    }
    Ok(heard)
}

/// How to listen on a device.
#[derive(Debug, Clone)]
#[cfg_attr(not(feature = "audio"), allow(dead_code))]
pub struct ListenOptions {
    pub profile: Profile,
    /// `None` for the default microphone.
    pub device: Option<String>,
    /// Stop after this much audio.
    pub duration: Duration,
    /// Stop at the first token.
    pub first: bool,
}

/// What a listening session heard.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Listened {
    pub device: String,
    pub sample_rate_hz: u32,
    pub seconds: f64,
    /// Frames lost because this process fell behind the microphone.
    pub dropped_frames: u64,
    pub tokens: Vec<Heard>,
}

/// The microphone as opened.
#[derive(Debug, Clone)]
pub struct Opened {
    pub device: String,
    pub sample_rate_hz: u32,
    pub requested_rate_hz: u32,
}

/// Listens on the microphone, calling `on_token` as each token is heard
/// (and `on_start` once the device is open).
#[cfg(feature = "audio")]
pub fn listen(
    options: &ListenOptions,
    on_start: impl FnOnce(&Opened),
    mut on_token: impl FnMut(&Heard) + Send + 'static,
) -> Result<Listened, SoundError> {
    use clink_core::audio::{Capture, CaptureOptions, TokenSink};
    use std::ops::ControlFlow;

    let audio = |source| SoundError::Audio {
        source,
        hint: LISTEN_HINT,
    };
    let mut capture = Capture::open(&CaptureOptions {
        device: options.device.clone(),
        sample_rate_hz: DEFAULT_RATE_HZ,
        ..CaptureOptions::default()
    })
    .map_err(audio)?;
    let info = capture.info().clone();
    let rate = info.sample_rate_hz;
    let first = options.first;
    let mut sink = TokenSink::new(options.profile, rate)?.on_token(move |heard| {
        on_token(&Heard {
            token: heard.token,
            heard_after_s: heard.heard_after.as_secs_f64(),
        });
        if first {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    on_start(&Opened {
        device: info.device.clone(),
        sample_rate_hz: rate,
        requested_rate_hz: info.requested_rate_hz,
    });
    let summary = capture.run(options.duration, &mut sink).map_err(audio)?;
    Ok(Listened {
        device: info.device,
        sample_rate_hz: rate,
        seconds: summary.samples as f64 / f64::from(rate),
        dropped_frames: capture.dropped_frames(),
        tokens: sink
            .into_heard()
            .into_iter()
            .map(|h| Heard {
                token: h.token,
                heard_after_s: h.heard_after.as_secs_f64(),
            })
            .collect(),
    })
}

#[cfg(not(feature = "audio"))]
pub fn listen(
    _options: &ListenOptions,
    _on_start: impl FnOnce(&Opened),
    _on_token: impl FnMut(&Heard) + Send + 'static,
) -> Result<Listened, SoundError> {
    Err(SoundError::NoAudioSupport { hint: LISTEN_HINT })
}

/// The first token heard on the microphone within `options.duration`, if
/// any: what a "redeem a token by sound" flow needs.
// Not called by a command yet: the wallet's sound flows will.
#[allow(dead_code)]
pub fn listen_for_token(options: &ListenOptions) -> Result<Option<Token>, SoundError> {
    let options = ListenOptions {
        first: true,
        ..options.clone()
    };
    let listened = listen(&options, |_| {}, |_| {})?;
    Ok(listened.tokens.first().map(|h| h.token))
}

/// How to play on a device.
#[derive(Debug, Clone)]
#[cfg_attr(not(feature = "audio"), allow(dead_code))]
pub struct PlayOptions {
    pub profile: Profile,
    /// `None` for the default speaker.
    pub device: Option<String>,
    /// The rate to ask of the device; it may offer another, and the token
    /// is modulated at whichever it gives.
    pub sample_rate_hz: Option<u32>,
}

/// Plays the token on the speaker and returns once it has been played.
#[cfg(feature = "audio")]
pub fn play_token(token: &Token, options: &PlayOptions) -> Result<Played, SoundError> {
    use clink_core::audio::Player;

    let audio = |source| SoundError::Audio {
        source,
        hint: PLAY_HINT,
    };
    let player = Player::open(options.device.as_deref(), options.sample_rate_hz).map_err(audio)?;
    let modem = TokenModem::new(options.profile, player.sample_rate_hz())?;
    player.play_and_wait(modem.modulate(token)).map_err(audio)?;
    Ok(Played {
        token: *token,
        to: player.info().device.clone(),
        sample_rate_hz: player.sample_rate_hz(),
        duration_s: modem.token_duration_s(),
    })
}

#[cfg(not(feature = "audio"))]
pub fn play_token(_token: &Token, _options: &PlayOptions) -> Result<Played, SoundError> {
    Err(SoundError::NoAudioSupport { hint: PLAY_HINT })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_from_32_hex_digits_and_refuse_anything_else() {
        let token = parse_token("00112233-44556677 8899aabb ccddeeff").unwrap();
        assert_eq!(hex::encode(token), "00112233445566778899aabbccddeeff");
        assert!(matches!(
            parse_token("0011"),
            Err(SoundError::BadToken { reason, .. }) if reason.contains("2 bytes")
        ));
        assert!(matches!(
            parse_token("zz112233445566778899aabbccddeeff"),
            Err(SoundError::BadToken { .. })
        ));
    }

    #[test]
    fn a_wav_file_round_trips_a_token_at_44_1_khz() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token.wav");
        let token = *b"wav-roundtrip-01";
        let played = write_token_wav(&token, Profile::NearUltrasound, Some(44_100), &path).unwrap();
        assert_eq!(played.sample_rate_hz, 44_100);
        let heard = decode_wav(&path, Profile::NearUltrasound).unwrap();
        assert_eq!(heard.len(), 1);
        assert_eq!(heard[0].token, token);
        // The other profile hears nothing in it.
        assert!(decode_wav(&path, Profile::Audible).unwrap().is_empty());
    }

    #[test]
    fn a_rate_too_low_for_the_profile_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("low.wav");
        let error =
            write_token_wav(&[0; 16], Profile::NearUltrasound, Some(16_000), &path).unwrap_err();
        assert!(error.to_string().contains("at least 44100 Hz"), "{error}");
        assert!(!path.exists());
    }
}
