//! Consumers of captured audio: the same decoders the phone apps feed by
//! hand, fed from a [`Capture`](super::Capture) instead.

use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::time::Duration;

use crate::acoustic::{AcousticError, Profile, Token, TokenDecoder};
use crate::bump::{AmbientFingerprint, FingerprintError};

/// Takes mono f32 audio in chunks of any size; `Break` asks the capture to
/// stop.
pub trait AudioSink {
    fn accept(&mut self, samples: &[f32]) -> ControlFlow<()>;
}

/// Feeds both sinks; stops when either asks to.
impl<A: AudioSink, B: AudioSink> AudioSink for (A, B) {
    fn accept(&mut self, samples: &[f32]) -> ControlFlow<()> {
        let first = self.0.accept(samples);
        let second = self.1.accept(samples);
        if first.is_break() || second.is_break() {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }
}

impl<S: AudioSink + ?Sized> AudioSink for &mut S {
    fn accept(&mut self, samples: &[f32]) -> ControlFlow<()> {
        (**self).accept(samples)
    }
}

/// A token and when it was heard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeardToken {
    pub token: Token,
    /// Audio consumed when the decoder completed the token, from the start
    /// of the capture; the token ended shortly before.
    pub heard_after: Duration,
}

/// Samples given to the decoder at a time, so a token's time is known to
/// about 20 ms however much audio a capture delivers at once.
const DECODE_CHUNK: usize = 1_024;

type TokenCallback = Box<dyn FnMut(&HeardToken) -> ControlFlow<()> + Send>;

/// Decodes acoustic tokens from captured audio.
pub struct TokenSink {
    decoder: TokenDecoder,
    sample_rate_hz: u32,
    samples_seen: u64,
    heard: Vec<HeardToken>,
    on_token: Option<TokenCallback>,
}

impl TokenSink {
    pub fn new(profile: Profile, sample_rate_hz: u32) -> Result<TokenSink, AcousticError> {
        Ok(TokenSink {
            decoder: TokenDecoder::new(profile, sample_rate_hz)?,
            sample_rate_hz,
            samples_seen: 0,
            heard: Vec::new(),
            on_token: None,
        })
    }

    /// Calls `f` as each token is heard; `Break` stops the capture (e.g.
    /// after the first token).
    pub fn on_token(
        mut self,
        f: impl FnMut(&HeardToken) -> ControlFlow<()> + Send + 'static,
    ) -> TokenSink {
        self.on_token = Some(Box::new(f));
        self
    }

    /// Every token heard so far, in order.
    pub fn heard(&self) -> &[HeardToken] {
        &self.heard
    }

    pub fn into_heard(self) -> Vec<HeardToken> {
        self.heard
    }
}

impl AudioSink for TokenSink {
    fn accept(&mut self, samples: &[f32]) -> ControlFlow<()> {
        let mut flow = ControlFlow::Continue(());
        for chunk in samples.chunks(DECODE_CHUNK) {
            self.samples_seen += chunk.len() as u64;
            let heard_after =
                Duration::from_secs_f64(self.samples_seen as f64 / f64::from(self.sample_rate_hz));
            for token in self.decoder.push(chunk) {
                let heard = HeardToken { token, heard_after };
                if let Some(callback) = self.on_token.as_mut()
                    && callback(&heard).is_break()
                {
                    flow = ControlFlow::Break(());
                }
                self.heard.push(heard);
            }
        }
        flow
    }
}

/// Keeps captured audio: all of it, or only the most recent stretch (the
/// window an ambient fingerprint is cut from).
#[derive(Debug, Clone)]
pub struct Recorder {
    sample_rate_hz: u32,
    samples: VecDeque<f32>,
    keep_last: Option<usize>,
}

impl Recorder {
    /// Keeps everything.
    pub fn new(sample_rate_hz: u32) -> Recorder {
        Recorder {
            sample_rate_hz,
            samples: VecDeque::new(),
            keep_last: None,
        }
    }

    /// Keeps only the last `window` of audio.
    pub fn keeping_last(sample_rate_hz: u32, window: Duration) -> Recorder {
        let keep = (window.as_secs_f64() * f64::from(sample_rate_hz)).round() as usize;
        Recorder {
            sample_rate_hz,
            samples: VecDeque::with_capacity(keep),
            keep_last: Some(keep),
        }
    }

    /// For a bump: the fingerprint window, from
    /// [`AUDIO_BEFORE_KNOCK_MS`](crate::bump::fingerprint::AUDIO_BEFORE_KNOCK_MS)
    /// before the knock to
    /// [`AUDIO_AFTER_KNOCK_MS`](crate::bump::fingerprint::AUDIO_AFTER_KNOCK_MS)
    /// after it, once capture has run that long past the knock.
    pub fn for_fingerprint(sample_rate_hz: u32) -> Recorder {
        use crate::bump::fingerprint::{AUDIO_AFTER_KNOCK_MS, AUDIO_BEFORE_KNOCK_MS};
        let window_ms = u64::from(AUDIO_BEFORE_KNOCK_MS + AUDIO_AFTER_KNOCK_MS);
        Recorder::keeping_last(sample_rate_hz, Duration::from_millis(window_ms))
    }

    pub fn sample_rate_hz(&self) -> u32 {
        self.sample_rate_hz
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The kept audio, oldest first.
    pub fn samples(&self) -> Vec<f32> {
        self.samples.iter().copied().collect()
    }

    /// Fingerprints the kept audio.
    pub fn fingerprint(&self) -> Result<AmbientFingerprint, FingerprintError> {
        crate::bump::fingerprint::fingerprint_audio(&self.samples(), self.sample_rate_hz)
    }
}

impl AudioSink for Recorder {
    fn accept(&mut self, samples: &[f32]) -> ControlFlow<()> {
        self.samples.extend(samples);
        if let Some(keep) = self.keep_last
            && self.samples.len() > keep
        {
            let excess = self.samples.len() - keep;
            self.samples.drain(..excess);
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acoustic::TokenModem;

    #[test]
    fn token_sink_reports_a_token_pushed_in_small_chunks_and_stops_when_asked() {
        let token: Token = *b"sink-token-00001";
        let mut audio = vec![0.0f32; 24_000];
        audio.extend(
            TokenModem::new(Profile::Audible, 48_000)
                .unwrap()
                .modulate(&token),
        );
        audio.extend(vec![0.0f32; 24_000]);
        let mut sink = TokenSink::new(Profile::Audible, 48_000)
            .unwrap()
            .on_token(|_| ControlFlow::Break(()));
        let flows: Vec<ControlFlow<()>> = audio.chunks(441).map(|c| sink.accept(c)).collect();
        assert_eq!(sink.heard().len(), 1);
        assert_eq!(sink.heard()[0].token, token);
        assert!(sink.heard()[0].heard_after > Duration::from_millis(500 + 471));
        assert_eq!(flows.iter().filter(|f| f.is_break()).count(), 1);
    }

    #[test]
    fn recorder_keeps_only_the_last_window() {
        let mut recorder = Recorder::keeping_last(1_000, Duration::from_millis(10));
        let ramp: Vec<f32> = (0..25).map(|i| i as f32).collect();
        for chunk in ramp.chunks(7) {
            let _ = recorder.accept(chunk);
        }
        assert_eq!(
            recorder.samples(),
            (15..25).map(|i| i as f32).collect::<Vec<_>>()
        );
        let mut all = Recorder::new(1_000);
        let _ = all.accept(&ramp);
        assert_eq!(all.samples(), ramp);
    }

    #[test]
    fn fingerprint_window_is_the_bump_window() {
        let recorder = Recorder::for_fingerprint(48_000);
        assert_eq!(recorder.keep_last, Some(48_000 * 24 / 10));
    }
}
