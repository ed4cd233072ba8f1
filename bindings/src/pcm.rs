//! Microphone audio as raw bytes: the apps' own buffers, handed over in one
//! piece instead of a list of floats.
//!
//! uniffi passes a `Vec<f32>` (a Kotlin `List<Float>`, a Python `list`)
//! element by element, which costs more than the signal processing itself
//! from Python. A byte string crosses as one copy. Two encodings, because
//! the apps have both: Android's `AudioRecord` guarantees 16-bit PCM on
//! every device (`ENCODING_PCM_16BIT`, a `ShortArray` or a `ByteBuffer`),
//! while iOS's `AVAudioEngine` and Android's `ENCODING_PCM_FLOAT` deliver
//! 32-bit floats. Both are little-endian on every phone ABI.
//!
//! Converting here is format adaptation only: the samples reach the core
//! exactly as the list path would hand them over (i16 scaled by 1/32768, as
//! the core's own `push_i16` does).

/// How the samples in a byte string are laid out (mono).
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum PcmEncoding {
    /// Signed 16-bit little-endian (Android `ENCODING_PCM_16BIT`).
    I16Le,
    /// 32-bit IEEE float little-endian, -1.0..=1.0 (iOS, Android
    /// `ENCODING_PCM_FLOAT`).
    F32Le,
}

impl PcmEncoding {
    pub fn bytes_per_sample(self) -> usize {
        match self {
            PcmEncoding::I16Le => 2,
            PcmEncoding::F32Le => 4,
        }
    }
}

/// A byte string that is not a whole number of samples.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum PcmError {
    #[error("{description}")]
    PartialSample {
        len: u64,
        bytes_per_sample: u64,
        description: String,
    },
}

/// The samples of `bytes` as floats in -1.0..=1.0. Hand-written rather
/// than a cast (`bytemuck`): a cast would need the buffer aligned and would
/// read in the machine's byte order, not the format's.
pub fn to_f32(bytes: &[u8], encoding: PcmEncoding) -> Result<Vec<f32>, PcmError> {
    let width = encoding.bytes_per_sample();
    if !bytes.len().is_multiple_of(width) {
        return Err(PcmError::PartialSample {
            len: bytes.len() as u64,
            bytes_per_sample: width as u64,
            description: format!(
                "{} bytes is not a whole number of {width}-byte {encoding:?} samples",
                bytes.len()
            ),
        });
    }
    let samples = bytes.chunks_exact(width);
    Ok(match encoding {
        PcmEncoding::I16Le => samples
            .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
            .collect(),
        PcmEncoding::F32Le => samples
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
    })
}

/// Floats as bytes in `encoding`; for i16, clipped to -1.0..=1.0 and
/// rounded.
pub fn from_f32(samples: &[f32], encoding: PcmEncoding) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(samples.len() * encoding.bytes_per_sample());
    for &s in samples {
        match encoding {
            PcmEncoding::I16Le => {
                let v = (s.clamp(-1.0, 1.0) * 32767.0).round() as i16;
                bytes.extend_from_slice(&v.to_le_bytes());
            }
            PcmEncoding::F32Le => bytes.extend_from_slice(&s.to_le_bytes()),
        }
    }
    bytes
}

/// Bytes in `encoding` for floats, for an app that plays or stores PCM as
/// bytes (e.g. a `SoundRequest`'s token).
#[uniffi::export]
pub fn pcm_to_bytes(samples: Vec<f32>, encoding: PcmEncoding) -> Vec<u8> {
    from_f32(&samples, encoding)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn i16_bytes_scale_like_the_cores_push_i16() {
        let bytes = [0x00, 0x80, 0xff, 0x7f, 0x00, 0x00, 0x00, 0x40];
        assert_eq!(
            to_f32(&bytes, PcmEncoding::I16Le).unwrap(),
            vec![-1.0, 32767.0 / 32768.0, 0.0, 0.5]
        );
    }

    #[test]
    fn f32_bytes_round_trip_exactly() {
        let samples = [0.25f32, -1.0, 1.0e-7, 0.999];
        let bytes = from_f32(&samples, PcmEncoding::F32Le);
        assert_eq!(bytes.len(), 16);
        assert_eq!(&bytes[..4], &0.25f32.to_le_bytes());
        assert_eq!(to_f32(&bytes, PcmEncoding::F32Le).unwrap(), samples);
    }

    #[test]
    fn a_partial_sample_is_refused_with_its_length() {
        assert!(matches!(
            to_f32(&[1, 2, 3], PcmEncoding::I16Le),
            Err(PcmError::PartialSample {
                len: 3,
                bytes_per_sample: 2,
                ..
            })
        ));
        assert!(to_f32(&[0; 6], PcmEncoding::F32Le).is_err());
        assert_eq!(to_f32(&[], PcmEncoding::F32Le).unwrap(), Vec::<f32>::new());
    }

    #[test]
    fn i16_output_clips_and_rounds() {
        let bytes = from_f32(&[2.0, -2.0, 0.5], PcmEncoding::I16Le);
        assert_eq!(bytes, [0xff, 0x7f, 0x01, 0x80, 0x00, 0x40]);
    }
}
