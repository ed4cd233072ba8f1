//! Asking for money and paying by sound, on the wallet's flows
//! (`Wallet::request_by_sound`, `Wallet::listen_for_token`). The CLI only
//! moves audio between the devices (or WAV files) and the flows and prints
//! their states, as the apps will: every rule lives in the core.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clink_core::acoustic::Profile;
use clink_core::wallet::{SoundPayment, SoundPaymentState, SoundRequestState, Wallet};

use crate::sound::{self, DEFAULT_RATE_HZ, FILE_CHUNK, FILE_FLUSH_S, SoundError};

pub struct AskOptions {
    pub amount: i64,
    pub memo: String,
    /// `None`: near-ultrasound where the rate allows it.
    pub profile: Option<Profile>,
    pub device: Option<String>,
    /// Write the token's sound here instead of playing it.
    pub out: Option<PathBuf>,
    /// How long to wait for a payer.
    pub wait: Duration,
}

/// How long one turn of "play, then ask the server" waits between plays.
const REPLAY_PAUSE: Duration = Duration::from_millis(700);

/// Issues a token for `amount`, plays it until a payer redeems it (or writes
/// it to a file once), and waits for the payer's decision. `on_event` hears
/// each step, for the user.
pub async fn ask_by_sound(
    wallet: &Wallet,
    options: &AskOptions,
    mut on_event: impl FnMut(&str),
) -> Result<SoundRequestState, String> {
    let deadline = Instant::now() + options.wait;
    let player = match &options.out {
        Some(_) => None,
        None => Some(open_player(options.device.as_deref())?),
    };
    let rate = player.as_ref().map_or(DEFAULT_RATE_HZ, player_rate);
    let request = wallet
        .request_by_sound(options.amount, &options.memo, rate, options.profile)
        .await
        .map_err(|e| e.to_string())?;
    if let Some(path) = &options.out {
        sound::write_wav(request.pcm(), rate, path).map_err(|e| e.to_string())?;
        on_event(&format!(
            "token written to {}; waiting for a payer",
            path.display()
        ));
    }
    loop {
        let state = request.state();
        if let (Some(player), SoundRequestState::Playing { .. }) = (&player, &state) {
            play(player, request.pcm())?;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let turn = if player.is_some() {
            left.min(REPLAY_PAUSE)
        } else {
            left
        };
        let next = request
            .wait_for_payment(turn.as_millis() as u64)
            .await
            .map_err(|e| e.to_string())?;
        if next != state
            && let SoundRequestState::RequestSent { .. } = next
        {
            on_event("a payer heard the token and is asked to approve");
        }
        let done = !matches!(
            next,
            SoundRequestState::Playing { .. } | SoundRequestState::RequestSent { .. }
        );
        if done || Instant::now() >= deadline {
            return Ok(next);
        }
    }
}

pub struct PayOptions {
    pub device: Option<String>,
    /// Decode this recording instead of listening.
    pub input: Option<PathBuf>,
    /// How long to listen for a token.
    pub listen: Duration,
}

/// Listens for a token (or reads it from a file), redeems it, and returns
/// the flow in its `Confirm` state (or the state it ended in instead).
pub async fn hear_request(wallet: &Wallet, options: &PayOptions) -> Result<SoundPayment, String> {
    let flow = match &options.input {
        Some(path) => {
            let (audio, rate) = sound::read_wav(path).map_err(|e| e.to_string())?;
            let flow = wallet.listen_for_token(rate).map_err(|e| e.to_string())?;
            // Silence after the recording lets the decoder finish a token
            // that ends right at the end of the file.
            let flush = vec![0.0; (FILE_FLUSH_S * f64::from(rate)) as usize];
            for chunk in audio.chunks(FILE_CHUNK).chain(flush.chunks(FILE_CHUNK)) {
                if flow.push_audio(chunk) != SoundPaymentState::Listening {
                    break;
                }
            }
            flow
        }
        None => listen(wallet, options)?,
    };
    if flow.state() == SoundPaymentState::Listening {
        return Err("no token was heard; hold the phones closer and try again".into());
    }
    flow.wait_for_confirm().await;
    Ok(flow)
}

#[cfg(feature = "audio")]
fn listen(wallet: &Wallet, options: &PayOptions) -> Result<SoundPayment, String> {
    use clink_core::audio::{AudioSink, Capture, CaptureOptions};
    use std::ops::ControlFlow;

    struct IntoFlow<'a>(&'a SoundPayment);
    impl AudioSink for IntoFlow<'_> {
        fn accept(&mut self, samples: &[f32]) -> ControlFlow<()> {
            match self.0.push_audio(samples) {
                SoundPaymentState::Listening => ControlFlow::Continue(()),
                _ => ControlFlow::Break(()),
            }
        }
    }

    let audio = |source| {
        SoundError::Audio {
            source,
            hint: sound::LISTEN_HINT,
        }
        .to_string()
    };
    let mut capture = Capture::open(&CaptureOptions {
        device: options.device.clone(),
        sample_rate_hz: DEFAULT_RATE_HZ,
        ..CaptureOptions::default()
    })
    .map_err(audio)?;
    let flow = wallet
        .listen_for_token(capture.sample_rate_hz())
        .map_err(|e| e.to_string())?;
    capture
        .run(options.listen, &mut IntoFlow(&flow))
        .map_err(audio)?;
    Ok(flow)
}

#[cfg(not(feature = "audio"))]
fn listen(_wallet: &Wallet, _options: &PayOptions) -> Result<SoundPayment, String> {
    Err(SoundError::NoAudioSupport {
        hint: sound::LISTEN_HINT,
    }
    .to_string())
}

#[cfg(feature = "audio")]
type Player = clink_core::audio::Player;
#[cfg(not(feature = "audio"))]
type Player = std::convert::Infallible;

#[cfg(feature = "audio")]
fn open_player(device: Option<&str>) -> Result<Player, String> {
    Player::open(device, Some(DEFAULT_RATE_HZ)).map_err(|source| {
        SoundError::Audio {
            source,
            hint: "to write the sound to a file instead, use `--out FILE.wav`",
        }
        .to_string()
    })
}

#[cfg(not(feature = "audio"))]
fn open_player(_device: Option<&str>) -> Result<Player, String> {
    Err(SoundError::NoAudioSupport {
        hint: "to write the sound to a file instead, use `--out FILE.wav`",
    }
    .to_string())
}

#[cfg(feature = "audio")]
fn player_rate(player: &Player) -> u32 {
    player.sample_rate_hz()
}

#[cfg(not(feature = "audio"))]
fn player_rate(player: &Player) -> u32 {
    match *player {}
}

#[cfg(feature = "audio")]
fn play(player: &Player, pcm: &[f32]) -> Result<(), String> {
    player
        .play_and_wait(pcm.to_vec())
        .map_err(|e| e.to_string())
}

#[cfg(not(feature = "audio"))]
fn play(player: &Player, _pcm: &[f32]) -> Result<(), String> {
    match *player {}
}
