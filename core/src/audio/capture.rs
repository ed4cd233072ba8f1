//! Microphone capture as mono f32.
//!
//! The audio thread must never wait: it writes into a single-producer,
//! single-consumer lock-free ring (rtrb) and, when the ring is full, counts
//! the frames it could not keep instead of blocking. The reader polls the
//! ring from its own thread. Polling (every [`POLL_INTERVAL`]) rather than
//! being woken keeps the audio thread free of locks and system calls; the
//! ring holds seconds of audio, so a few milliseconds of delay cost nothing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, StreamTrait};
use cpal::{FromSample, SampleFormat, SizedSample};

use super::device::{self, StreamInfo};
use super::sinks::AudioSink;
use super::{AudioError, DEFAULT_SAMPLE_RATE_HZ, Direction};

/// How often the reader looks for new samples.
pub const POLL_INTERVAL: Duration = Duration::from_millis(5);
/// Audio the ring holds by default before the audio thread starts dropping.
pub const DEFAULT_RING_S: f32 = 4.0;
/// A capture that has delivered nothing for this long is reported as
/// stalled rather than waited on for ever.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(2);

/// What to open.
#[derive(Debug, Clone)]
pub struct CaptureOptions {
    /// A device name or id (see [`input_devices`](super::input_devices));
    /// `None` for the system's default input.
    pub device: Option<String>,
    /// The rate to ask for; the device may give another (see [`StreamInfo`]).
    pub sample_rate_hz: u32,
    /// Seconds of audio the ring between the audio thread and the reader
    /// holds.
    pub ring_s: f32,
}

impl Default for CaptureOptions {
    fn default() -> Self {
        CaptureOptions {
            device: None,
            sample_rate_hz: DEFAULT_SAMPLE_RATE_HZ,
            ring_s: DEFAULT_RING_S,
        }
    }
}

/// State shared with the audio thread's callbacks.
#[derive(Default)]
struct Shared {
    /// Frames the ring had no room for.
    dropped_frames: AtomicU64,
    /// Device over- and underruns reported by the backend.
    xruns: AtomicU64,
    /// The first error that ended the stream. Only the error callback
    /// writes it, never the data callback.
    failure: Mutex<Option<String>>,
}

/// How a [`Capture::run`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunSummary {
    /// Samples handed to the sink.
    pub samples: u64,
    /// True when the sink asked to stop before the duration was reached.
    pub stopped_by_sink: bool,
}

/// An open input stream; it stops when dropped.
pub struct Capture {
    // Dropping the stream stops the device and joins its thread.
    _stream: cpal::Stream,
    ring: rtrb::Consumer<f32>,
    shared: Arc<Shared>,
    info: StreamInfo,
}

impl Capture {
    /// Opens the device and starts capturing.
    pub fn open(options: &CaptureOptions) -> Result<Capture, AudioError> {
        let device = device::find(Direction::Input, options.device.as_deref())?;
        let (config, info) = device::negotiate(&device, Direction::Input, options.sample_rate_hz)?;
        let capacity = (options.ring_s.max(0.01) * info.sample_rate_hz as f32) as usize;
        let (producer, ring) = rtrb::RingBuffer::new(capacity.max(1));
        let shared = Arc::new(Shared::default());
        let stream = match info.device_format {
            SampleFormat::F32 => build::<f32>(&device, &config, producer, &shared),
            SampleFormat::I32 => build::<i32>(&device, &config, producer, &shared),
            SampleFormat::I16 => build::<i16>(&device, &config, producer, &shared),
            other => unreachable!("choose_config only picks convertible formats, not {other}"),
        }
        .map_err(|e| open_error(&info.device, e))?;
        stream.play().map_err(|e| open_error(&info.device, e))?;
        Ok(Capture {
            _stream: stream,
            ring,
            shared,
            info,
        })
    }

    /// The device, rate and format the stream runs with.
    pub fn info(&self) -> &StreamInfo {
        &self.info
    }

    pub fn sample_rate_hz(&self) -> u32 {
        self.info.sample_rate_hz
    }

    /// Frames lost because the reader fell behind by more than the ring.
    pub fn dropped_frames(&self) -> u64 {
        self.shared.dropped_frames.load(Ordering::Relaxed)
    }

    /// Over- and underruns the device reported.
    pub fn xruns(&self) -> u64 {
        self.shared.xruns.load(Ordering::Relaxed)
    }

    /// Moves every sample captured so far into `out` (appending), without
    /// waiting; returns how many.
    pub fn read_available(&mut self, out: &mut Vec<f32>) -> Result<usize, AudioError> {
        self.check_failure()?;
        let n = self.ring.slots();
        if n == 0 {
            return Ok(0);
        }
        let chunk = self.ring.read_chunk(n).expect("n slots are readable");
        let (first, second) = chunk.as_slices();
        out.extend_from_slice(first);
        out.extend_from_slice(second);
        chunk.commit_all();
        Ok(n)
    }

    /// Feeds captured audio to `sink` until `duration` of audio (counted in
    /// samples, so it does not depend on how fast the device delivers) has
    /// passed or the sink asks to stop. A device that delivers nothing for
    /// [`STALL_TIMEOUT`] is an error.
    pub fn run(
        &mut self,
        duration: Duration,
        sink: &mut dyn AudioSink,
    ) -> Result<RunSummary, AudioError> {
        let wanted = (duration.as_secs_f64() * f64::from(self.sample_rate_hz())).round() as u64;
        let mut summary = RunSummary {
            samples: 0,
            stopped_by_sink: false,
        };
        let mut buffer = Vec::new();
        let mut last_audio = Instant::now();
        while summary.samples < wanted {
            buffer.clear();
            if self.read_available(&mut buffer)? == 0 {
                if last_audio.elapsed() >= STALL_TIMEOUT {
                    return Err(AudioError::Stream {
                        direction: Direction::Input,
                        device: self.info.device.clone(),
                        message: format!("no audio arrived for {} ms", STALL_TIMEOUT.as_millis()),
                    });
                }
                std::thread::sleep(POLL_INTERVAL);
                continue;
            }
            last_audio = Instant::now();
            let take = buffer.len().min((wanted - summary.samples) as usize);
            summary.samples += take as u64;
            if sink.accept(&buffer[..take]).is_break() {
                summary.stopped_by_sink = true;
                break;
            }
        }
        Ok(summary)
    }

    fn check_failure(&self) -> Result<(), AudioError> {
        let failure = self
            .shared
            .failure
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match failure.as_ref() {
            Some(message) => Err(AudioError::Stream {
                direction: Direction::Input,
                device: self.info.device.clone(),
                message: message.clone(),
            }),
            None => Ok(()),
        }
    }
}

fn open_error(device: &str, e: cpal::Error) -> AudioError {
    let (direction, device, message) = (Direction::Input, device.to_string(), e.to_string());
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

/// Builds the input stream for device samples of type `T`.
fn build<T>(
    device: &cpal::Device,
    config: &cpal::StreamConfig,
    mut ring: rtrb::Producer<f32>,
    shared: &Arc<Shared>,
) -> Result<cpal::Stream, cpal::Error>
where
    T: SizedSample,
    f32: FromSample<T>,
{
    let channels = usize::from(config.channels);
    let data_shared = shared.clone();
    let error_shared = shared.clone();
    device.build_input_stream::<T, _, _>(
        *config,
        move |data: &[T], _| {
            let frames = data.len() / channels;
            let kept = frames.min(ring.slots());
            if kept < frames {
                data_shared
                    .dropped_frames
                    .fetch_add((frames - kept) as u64, Ordering::Relaxed);
            }
            if kept == 0 {
                return;
            }
            let chunk = ring.write_chunk_uninit(kept).expect("kept slots are free");
            chunk.fill_from_iter(data.chunks_exact(channels).map(|frame| mono(frame)));
        },
        move |e: cpal::Error| report(&error_shared, e),
        None,
    )
}

/// Average of a frame's channels (a single channel passes unchanged).
fn mono<T>(frame: &[T]) -> f32
where
    T: SizedSample,
    f32: FromSample<T>,
{
    if let [only] = frame {
        return only.to_sample::<f32>();
    }
    frame.iter().map(|s| s.to_sample::<f32>()).sum::<f32>() / frame.len() as f32
}

fn report(shared: &Shared, e: cpal::Error) {
    match e.kind() {
        cpal::ErrorKind::Xrun => {
            shared.xruns.fetch_add(1, Ordering::Relaxed);
        }
        // The stream keeps running through these.
        cpal::ErrorKind::DeviceChanged | cpal::ErrorKind::RealtimeDenied => {}
        _ => {
            let mut failure = shared.failure.lock().unwrap_or_else(|e| e.into_inner());
            failure.get_or_insert_with(|| e.to_string());
        }
    }
}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture").field("info", &self.info).finish()
    }
}
