//! Where everything sits in time and frequency for one profile and sample rate.
//! The transmitter and the receiver build the same `Layout`.

use super::{AcousticError, Profile, fec, frame};

/// Subcarrier spacing: the useful part of an OFDM symbol lasts 1 / spacing.
pub const SUBCARRIER_SPACING_HZ: u32 = 50;
/// Cyclic prefix: echoes shorter than this (less the timing guard) add to
/// the symbol instead of disturbing the next one. Rooms put a third to a
/// half of the energy they return in the first 10 ms.
pub const CYCLIC_PREFIX_S: f64 = 0.015;
/// Raised-cosine ramps between symbols keep clicks out of the audible band.
pub const TAPER_S: f64 = 0.001;
/// Length of the preamble chirp.
pub const PREAMBLE_S: f64 = 0.05;
/// Highest sample rate accepted (keeps FFT sizes and buffers bounded).
pub const MAX_SAMPLE_RATE_HZ: u32 = 192_000;

#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    pub sample_rate_hz: u32,
    /// Band edges of the chirp, in Hz.
    pub band_low_hz: f64,
    pub band_high_hz: f64,
    /// FFT bin indices (of a `useful_len` FFT) of the data subcarriers.
    pub subcarrier_bins: Vec<usize>,
    pub preamble_len: usize,
    pub taper_len: usize,
    pub cyclic_prefix_len: usize,
    /// Samples in the useful (FFT) part of a symbol.
    pub useful_len: usize,
    /// Data symbols after the reference symbol.
    pub data_symbols: usize,
}

impl Layout {
    pub fn new(profile: Profile, sample_rate_hz: u32) -> Result<Self, AcousticError> {
        let min_hz = profile.min_sample_rate_hz();
        if sample_rate_hz < min_hz {
            return Err(AcousticError::SampleRateTooLow {
                profile,
                sample_rate_hz,
                min_hz,
            });
        }
        if sample_rate_hz > MAX_SAMPLE_RATE_HZ {
            return Err(AcousticError::SampleRateTooHigh {
                sample_rate_hz,
                max_hz: MAX_SAMPLE_RATE_HZ,
            });
        }
        // `is_multiple_of` is newer than the workspace's minimum Rust version.
        #[allow(clippy::manual_is_multiple_of)]
        if sample_rate_hz % SUBCARRIER_SPACING_HZ != 0 {
            return Err(AcousticError::SampleRateNotMultiple {
                sample_rate_hz,
                step_hz: SUBCARRIER_SPACING_HZ,
            });
        }
        let fs = f64::from(sample_rate_hz);
        let (low_hz, high_hz) = profile.band_hz();
        // Subcarriers strictly inside the band, so the chirp covers them all.
        let first_bin = (low_hz / SUBCARRIER_SPACING_HZ + 1) as usize;
        let last_bin = (high_hz / SUBCARRIER_SPACING_HZ - 1) as usize;
        let subcarrier_bins: Vec<usize> = (first_bin..=last_bin).collect();
        let slots_needed = fec::coded_len(frame::FRAME_BITS);
        let data_symbols = slots_needed.div_ceil(subcarrier_bins.len());
        Ok(Layout {
            sample_rate_hz,
            band_low_hz: f64::from(low_hz),
            band_high_hz: f64::from(high_hz),
            subcarrier_bins,
            preamble_len: (PREAMBLE_S * fs).round() as usize,
            taper_len: (TAPER_S * fs).round() as usize,
            cyclic_prefix_len: (CYCLIC_PREFIX_S * fs).round() as usize,
            useful_len: (sample_rate_hz / SUBCARRIER_SPACING_HZ) as usize,
            data_symbols,
        })
    }

    /// Samples from the start of one OFDM symbol to the start of the next.
    pub fn symbol_stride(&self) -> usize {
        self.cyclic_prefix_len + self.useful_len
    }

    /// Reference symbol plus data symbols.
    pub fn ofdm_symbols(&self) -> usize {
        1 + self.data_symbols
    }

    /// Offset of OFDM symbol `index` (0 = reference) from the preamble start.
    pub fn symbol_start(&self, index: usize) -> usize {
        self.preamble_len + index * self.symbol_stride()
    }

    /// Total samples of a modulated token, including the final ramp.
    pub fn token_len(&self) -> usize {
        self.symbol_start(self.ofdm_symbols()) + self.taper_len
    }

    /// Interleaver slots: one bit per subcarrier per data symbol.
    pub fn slots(&self) -> usize {
        self.data_symbols * self.subcarrier_bins.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_ultrasound_token_fits_in_half_a_second_at_44k1_and_48k() {
        for rate in [44_100, 48_000] {
            let layout = Layout::new(Profile::NearUltrasound, rate).unwrap();
            let seconds = layout.token_len() as f64 / f64::from(rate);
            assert!(seconds <= 0.5, "{rate} Hz: {seconds} s");
            assert!(layout.slots() >= fec::coded_len(frame::FRAME_BITS));
            let bin_hz = |bin: usize| bin as u32 * SUBCARRIER_SPACING_HZ;
            assert!(bin_hz(layout.subcarrier_bins[0]) > 17_500);
            assert!(bin_hz(*layout.subcarrier_bins.last().unwrap()) < 20_000);
        }
    }

    #[test]
    fn rejects_sample_rates_the_band_does_not_fit() {
        assert_eq!(
            Layout::new(Profile::NearUltrasound, 32_000),
            Err(AcousticError::SampleRateTooLow {
                profile: Profile::NearUltrasound,
                sample_rate_hz: 32_000,
                min_hz: 44_100
            })
        );
        assert!(matches!(
            Layout::new(Profile::NearUltrasound, 44_110),
            Err(AcousticError::SampleRateNotMultiple { .. })
        ));
        assert!(matches!(
            Layout::new(Profile::Audible, 384_000),
            Err(AcousticError::SampleRateTooHigh { .. })
        ));
        assert!(Layout::new(Profile::Audible, 16_000).is_ok());
    }
}
