//! Behavioural tests of the detector: sample rates, streaming, ITU-T Q.24
//! limits, noise and talk-off.

mod codecs;
mod noise;
mod q24;
mod streaming;
mod talk_off;

use super::{DtmfDetector, DtmfEvent, detect_all, digits_to_string};

pub(super) fn decode(samples: &[f32], rate: u32) -> String {
    digits_to_string(events(samples, rate).into_iter().map(|e| e.digit))
}

pub(super) fn events(samples: &[f32], rate: u32) -> Vec<DtmfEvent> {
    detect_all(samples, rate).expect("supported sample rate")
}

#[test]
fn new_rejects_unsupported_sample_rates() {
    use super::DtmfError;
    for hz in [0, 4_000, 7_999, 192_001, u32::MAX] {
        assert_eq!(
            DtmfDetector::new(hz).err(),
            Some(DtmfError::SampleRateOutOfRange { hz })
        );
    }
}
