//! Playing a mono f32 buffer (a modulated token) on an output device.
//!
//! The buffer moves into the audio callback, which copies it out and then
//! plays [`TAIL`] of silence so the device's own buffer has drained the
//! last samples to the speaker before the stream stops. The caller waits on
//! a [`Playing`] handle; the callback only stores atomics.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, StreamTrait};
use cpal::{FromSample, SampleFormat, SizedSample};

use super::device::{self, StreamInfo};
use super::{AudioError, DEFAULT_SAMPLE_RATE_HZ, Direction};

/// Silence played after the buffer, so the end of the buffer has left the
/// device before the stream closes.
pub const TAIL: Duration = Duration::from_millis(250);
/// Extra time a playback may take beyond its length before `wait` gives up.
pub const WAIT_MARGIN: Duration = Duration::from_secs(5);
const POLL_INTERVAL: Duration = Duration::from_millis(5);

/// An output device with an agreed format, ready to play buffers.
pub struct Player {
    device: cpal::Device,
    config: cpal::StreamConfig,
    info: StreamInfo,
}

#[derive(Default)]
struct Progress {
    frames_played: AtomicU64,
    finished: AtomicBool,
    failure: Mutex<Option<String>>,
}

/// A buffer being played; dropping it stops playback at once.
pub struct Playing {
    _stream: cpal::Stream,
    progress: Arc<Progress>,
    frames: u64,
    sample_rate_hz: u32,
    device: String,
}

impl Player {
    /// Opens the default output (`device: None`) or the named one, asking
    /// for `sample_rate_hz` (48 kHz by default). Modulate at
    /// [`sample_rate_hz`](Self::sample_rate_hz): the device may have
    /// offered another rate.
    pub fn open(device: Option<&str>, sample_rate_hz: Option<u32>) -> Result<Player, AudioError> {
        let device = device::find(Direction::Output, device)?;
        let wanted = sample_rate_hz.unwrap_or(DEFAULT_SAMPLE_RATE_HZ);
        let (config, info) = device::negotiate(&device, Direction::Output, wanted)?;
        Ok(Player {
            device,
            config,
            info,
        })
    }

    pub fn info(&self) -> &StreamInfo {
        &self.info
    }

    pub fn sample_rate_hz(&self) -> u32 {
        self.info.sample_rate_hz
    }

    /// Starts playing `pcm` (mono, at [`sample_rate_hz`](Self::sample_rate_hz)).
    pub fn play(&self, pcm: Vec<f32>) -> Result<Playing, AudioError> {
        let progress = Arc::new(Progress::default());
        let frames = pcm.len() as u64;
        let tail_frames = (TAIL.as_secs_f64() * f64::from(self.info.sample_rate_hz)).round() as u64;
        let source = Source {
            pcm,
            tail_frames,
            position: 0,
            progress: progress.clone(),
        };
        let stream = match self.info.device_format {
            SampleFormat::F32 => self.build::<f32>(source, &progress),
            SampleFormat::I32 => self.build::<i32>(source, &progress),
            SampleFormat::I16 => self.build::<i16>(source, &progress),
            other => unreachable!("choose_config only picks convertible formats, not {other}"),
        }
        .map_err(|e| self.error(e))?;
        stream.play().map_err(|e| self.error(e))?;
        Ok(Playing {
            _stream: stream,
            progress,
            frames: frames + tail_frames,
            sample_rate_hz: self.info.sample_rate_hz,
            device: self.info.device.clone(),
        })
    }

    /// Plays `pcm` and returns when it has been played.
    pub fn play_and_wait(&self, pcm: Vec<f32>) -> Result<(), AudioError> {
        self.play(pcm)?.wait()
    }

    fn build<T>(
        &self,
        mut source: Source,
        progress: &Arc<Progress>,
    ) -> Result<cpal::Stream, cpal::Error>
    where
        T: SizedSample + FromSample<f32>,
    {
        let channels = usize::from(self.config.channels);
        let error_progress = progress.clone();
        self.device.build_output_stream::<T, _, _>(
            self.config,
            move |data: &mut [T], _| source.fill(data, channels),
            move |e: cpal::Error| {
                if !matches!(
                    e.kind(),
                    cpal::ErrorKind::Xrun
                        | cpal::ErrorKind::DeviceChanged
                        | cpal::ErrorKind::RealtimeDenied
                ) {
                    let mut failure = error_progress
                        .failure
                        .lock()
                        .unwrap_or_else(|e| e.into_inner());
                    failure.get_or_insert_with(|| e.to_string());
                }
            },
            None,
        )
    }

    fn error(&self, e: cpal::Error) -> AudioError {
        let (direction, device, message) =
            (Direction::Output, self.info.device.clone(), e.to_string());
        match e.kind() {
            cpal::ErrorKind::UnsupportedConfig => AudioError::UnsupportedConfig {
                direction,
                device,
                message,
            },
            _ => AudioError::DeviceUnavailable {
                direction,
                device,
                message,
            },
        }
    }
}

/// The audio callback's state: the buffer, then silence.
struct Source {
    pcm: Vec<f32>,
    tail_frames: u64,
    position: u64,
    progress: Arc<Progress>,
}

impl Source {
    fn fill<T: SizedSample + FromSample<f32>>(&mut self, data: &mut [T], channels: usize) {
        for frame in data.chunks_exact_mut(channels) {
            let sample = self.pcm.get(self.position as usize).copied().unwrap_or(0.0);
            frame.fill(T::from_sample(sample));
            self.position += 1;
        }
        let total = self.pcm.len() as u64 + self.tail_frames;
        self.progress
            .frames_played
            .store(self.position.min(total), Ordering::Relaxed);
        if self.position >= total {
            self.progress.finished.store(true, Ordering::Release);
        }
    }
}

impl Playing {
    /// Share of the buffer (and its tail of silence) handed to the device.
    pub fn progress(&self) -> f64 {
        self.progress.frames_played.load(Ordering::Relaxed) as f64 / self.frames.max(1) as f64
    }

    /// Waits until everything has been played; a stream error or a device
    /// that stops consuming samples is an error.
    pub fn wait(self) -> Result<(), AudioError> {
        let length = Duration::from_secs_f64(self.frames as f64 / f64::from(self.sample_rate_hz));
        let limit = length + WAIT_MARGIN;
        let started = Instant::now();
        loop {
            if let Some(message) = self
                .progress
                .failure
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
            {
                return Err(AudioError::Stream {
                    direction: Direction::Output,
                    device: self.device.clone(),
                    message,
                });
            }
            if self.progress.finished.load(Ordering::Acquire) {
                return Ok(());
            }
            if started.elapsed() > limit {
                return Err(AudioError::PlaybackTimedOut {
                    device: self.device.clone(),
                    waited_ms: limit.as_millis() as u64,
                });
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }
}
