//! Capture through the real cpal path (ALSA) with no sound card: the
//! default PCM is ALSA's `file` plugin over `null`, reading a raw file made
//! here.
#![cfg(feature = "audio-io")]

mod audio_support;

use std::time::Duration;

use audio_support::*;
use clink_core::acoustic::{Profile, Token, TokenModem};
use clink_core::audio::{AudioError, Capture, CaptureOptions, Recorder, SampleFormat, TokenSink};

const TOKEN: Token = *b"mic-capture-0001";

#[test]
fn captures_a_recorded_token_and_sweep_sample_by_sample_through_alsa() {
    let dir = tempfile::tempdir().unwrap();
    // 1 s of noise, the token, a gap, a 1 s sweep, then padding so the file
    // outlasts the capture (at its end ALSA repeats the last buffer).
    let modem = TokenModem::new(Profile::NearUltrasound, RATE_HZ).unwrap();
    let mut signal = noise(1.0, 0.05, 1);
    signal.extend(modem.modulate(&TOKEN));
    signal.extend(noise(0.25, 0.05, 2));
    let sweep_start = signal.len();
    signal.extend(sweep(1.0, 100.0, 20_000.0));
    let sweep_end = signal.len();
    signal.extend(noise(2.0, 0.05, 3));
    let infile = dir.path().join("microphone.f32");
    write_raw_f32(&infile, &signal);
    use_alsa_config(&alsa_config_home(dir.path(), &capture_from_file(&infile)));

    // A device that is not there is a typed error naming what is.
    let missing = Capture::open(&CaptureOptions {
        device: Some("no-such-microphone".into()),
        ..CaptureOptions::default()
    })
    .unwrap_err();
    assert!(
        matches!(&missing, AudioError::DeviceNotFound { name, .. } if name == "no-such-microphone"),
        "{missing:?}"
    );

    // (a) and (b): everything up to past the sweep, in order, bit for bit,
    // and the token decoded on the way.
    let mut capture = Capture::open(&CaptureOptions::default()).unwrap();
    let info = capture.info().clone();
    assert_eq!(info.sample_rate_hz, RATE_HZ);
    assert!(info.got_requested_rate());
    assert_eq!(info.device_channels, 1);
    assert_eq!(info.device_format, SampleFormat::F32);
    let capture_len = sweep_end + samples(0.5);
    // The ring holds 4 s, more than this capture, so however late this
    // thread reads, nothing inside the capture can be dropped.
    let mut sinks = (
        (
            Recorder::new(RATE_HZ),
            TokenSink::new(Profile::NearUltrasound, RATE_HZ).unwrap(),
        ),
        Recorder::for_fingerprint(RATE_HZ),
    );
    let duration = Duration::from_secs_f64(capture_len as f64 / f64::from(RATE_HZ));
    let summary = capture.run(duration, &mut sinks).unwrap();
    assert_eq!(summary.samples, capture_len as u64);
    assert!(!summary.stopped_by_sink);
    let ((recorder, tokens), fingerprint_window) = sinks;
    let captured = recorder.samples();
    assert_eq!(captured.len(), capture_len);
    let first_difference = captured
        .iter()
        .zip(&signal)
        .position(|(got, sent)| got.to_bits() != sent.to_bits());
    assert_eq!(
        first_difference, None,
        "captured audio differs from the file"
    );
    assert_eq!(
        captured[sweep_start..sweep_end],
        signal[sweep_start..sweep_end]
    );
    let heard: Vec<Token> = tokens.heard().iter().map(|h| h.token).collect();
    assert_eq!(heard, vec![TOKEN]);
    // The fingerprint sink kept the last 2.4 s, as a bump needs.
    let window = fingerprint_window.len();
    assert_eq!(window, samples(2.4));
    assert_eq!(
        fingerprint_window.fingerprint().unwrap(),
        clink_core::bump::fingerprint::fingerprint_audio(
            &signal[capture_len - window..capture_len],
            RATE_HZ
        )
        .unwrap()
    );
    drop(capture);

    // A reader that falls behind loses the newest frames, counted, while
    // the audio thread carries on: the ring keeps the oldest 50 ms.
    let mut slow = Capture::open(&CaptureOptions {
        ring_s: 0.05,
        ..CaptureOptions::default()
    })
    .unwrap();
    let ring_len = samples(0.05);
    let mut kept = Vec::new();
    // `null` has no clock: the file arrives far faster than real time.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while slow.dropped_frames() == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(slow.dropped_frames() > 0, "a full ring must count drops");
    slow.read_available(&mut kept).unwrap();
    assert_eq!(kept.len(), ring_len);
    assert_eq!(kept[..], signal[..ring_len]);
}
