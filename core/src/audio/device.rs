//! Finding a device and agreeing a stream format with it.

use cpal::traits::{DeviceTrait, HostTrait};
use cpal::{SampleFormat, SupportedStreamConfigRange};

use super::{AudioError, Direction};

/// A device as listed to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Stable identifier, `host:device` (e.g. `alsa:default`); accepted as a
    /// device name.
    pub id: String,
    /// Human-readable name.
    pub name: String,
}

/// What a stream was actually opened with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    /// The device's name as the user would recognise it.
    pub device: String,
    /// The rate samples are delivered (capture) or played (playback) at.
    pub sample_rate_hz: u32,
    /// The rate that was asked for; differs from `sample_rate_hz` when the
    /// device does not support it.
    pub requested_rate_hz: u32,
    /// Channels of the device stream: captured channels are averaged to
    /// mono, played samples are copied to every channel.
    pub device_channels: u16,
    /// Sample format of the device stream, converted to and from f32.
    pub device_format: SampleFormat,
}

impl StreamInfo {
    pub fn got_requested_rate(&self) -> bool {
        self.sample_rate_hz == self.requested_rate_hz
    }
}

/// Rates tried, in order, when the device does not offer the requested one.
const FALLBACK_RATES_HZ: [u32; 6] = [48_000, 44_100, 96_000, 88_200, 32_000, 16_000];

pub fn input_devices() -> Result<Vec<DeviceInfo>, AudioError> {
    list(Direction::Input)
}

pub fn output_devices() -> Result<Vec<DeviceInfo>, AudioError> {
    list(Direction::Output)
}

fn list(direction: Direction) -> Result<Vec<DeviceInfo>, AudioError> {
    Ok(devices(direction)?.iter().map(info).collect())
}

fn devices(direction: Direction) -> Result<Vec<cpal::Device>, AudioError> {
    let host = cpal::default_host();
    let all = host.devices().map_err(|e| AudioError::HostUnavailable {
        message: e.to_string(),
    })?;
    Ok(all
        .filter(|d| match direction {
            Direction::Input => d.supports_input(),
            Direction::Output => d.supports_output(),
        })
        .collect())
}

fn info(device: &cpal::Device) -> DeviceInfo {
    DeviceInfo {
        id: device.id().map(|id| id.to_string()).unwrap_or_default(),
        name: display_name(device),
    }
}

pub(super) fn display_name(device: &cpal::Device) -> String {
    match (device.description(), device.id()) {
        (Ok(description), _) => description.name().to_string(),
        (Err(_), Ok(id)) => id.to_string(),
        (Err(_), Err(_)) => "unknown device".to_string(),
    }
}

/// The default device, or the one whose name or id (`alsa:hw:CARD=…`, or
/// just the part after the host) is `name`.
pub(super) fn find(direction: Direction, name: Option<&str>) -> Result<cpal::Device, AudioError> {
    let host = cpal::default_host();
    let Some(name) = name else {
        let device = match direction {
            Direction::Input => host.default_input_device(),
            Direction::Output => host.default_output_device(),
        };
        return device.ok_or(AudioError::NoDefaultDevice { direction });
    };
    let candidates = devices(direction)?;
    let matches = |device: &cpal::Device| {
        let id = device.id().ok();
        display_name(device) == name
            || id
                .as_ref()
                .is_some_and(|id| id.to_string() == name || id.id() == name)
    };
    if let Some(device) = candidates.iter().find(|d| matches(d)) {
        return Ok(device.clone());
    }
    let available = candidates
        .iter()
        .map(|d| info(d).id)
        .collect::<Vec<_>>()
        .join(", ");
    Err(AudioError::DeviceNotFound {
        direction,
        name: name.to_string(),
        available: if available.is_empty() {
            "none".to_string()
        } else {
            available
        },
    })
}

/// Preference among the formats we convert: f32 needs no conversion, the
/// wider integer next.
fn format_rank(format: SampleFormat) -> Option<u8> {
    match format {
        SampleFormat::F32 => Some(0),
        SampleFormat::I32 => Some(1),
        SampleFormat::I16 => Some(2),
        _ => None,
    }
}

/// Picks the stream format: the requested rate above all (a rate cannot be
/// converted without resampling; format and channels can), then f32, then
/// mono. Without the requested rate, the first of [`FALLBACK_RATES_HZ`] a
/// range offers, else the range's highest rate.
pub(super) fn choose_config(
    ranges: &[SupportedStreamConfigRange],
    wanted_rate_hz: u32,
) -> Option<(cpal::StreamConfig, SampleFormat)> {
    let rate_in = |range: &SupportedStreamConfigRange| {
        if range.contains_rate(wanted_rate_hz) {
            return (0, wanted_rate_hz);
        }
        FALLBACK_RATES_HZ
            .iter()
            .enumerate()
            .find(|(_, rate)| range.contains_rate(**rate))
            .map(|(i, &rate)| (1 + i, rate))
            .unwrap_or((1 + FALLBACK_RATES_HZ.len(), range.max_sample_rate()))
    };
    ranges
        .iter()
        .filter(|r| r.channels() > 0)
        .filter_map(|range| {
            let format_rank = format_rank(range.sample_format())?;
            let (rate_rank, rate) = rate_in(range);
            let key = (rate_rank, format_rank, range.channels());
            Some((key, range, rate))
        })
        .min_by_key(|(key, _, _)| *key)
        .map(|(_, range, rate)| {
            (
                cpal::StreamConfig {
                    channels: range.channels(),
                    sample_rate: rate,
                    buffer_size: cpal::BufferSize::Default,
                },
                range.sample_format(),
            )
        })
}

/// Opens `device` for `direction` and agrees a format, or says why not.
pub(super) fn negotiate(
    device: &cpal::Device,
    direction: Direction,
    wanted_rate_hz: u32,
) -> Result<(cpal::StreamConfig, StreamInfo), AudioError> {
    let name = display_name(device);
    let ranges: Vec<SupportedStreamConfigRange> = match direction {
        Direction::Input => device.supported_input_configs().map(|c| c.collect()),
        Direction::Output => device.supported_output_configs().map(|c| c.collect()),
    }
    .map_err(|e| AudioError::DeviceUnavailable {
        direction,
        device: name.clone(),
        message: e.to_string(),
    })?;
    let (config, format) =
        choose_config(&ranges, wanted_rate_hz).ok_or_else(|| AudioError::UnsupportedConfig {
            direction,
            device: name.clone(),
            message: format!("offered {}", describe_ranges(&ranges)),
        })?;
    let info = StreamInfo {
        device: name,
        sample_rate_hz: config.sample_rate,
        requested_rate_hz: wanted_rate_hz,
        device_channels: config.channels,
        device_format: format,
    };
    Ok((config, info))
}

fn describe_ranges(ranges: &[SupportedStreamConfigRange]) -> String {
    if ranges.is_empty() {
        return "nothing".to_string();
    }
    ranges
        .iter()
        .map(|r| {
            format!(
                "{} {}ch {}-{} Hz",
                r.sample_format(),
                r.channels(),
                r.min_sample_rate(),
                r.max_sample_rate()
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use cpal::SupportedBufferSize;

    fn range(
        channels: u16,
        min: u32,
        max: u32,
        format: SampleFormat,
    ) -> SupportedStreamConfigRange {
        SupportedStreamConfigRange::new(channels, min, max, SupportedBufferSize::Unknown, format)
    }

    #[test]
    fn prefers_mono_f32_at_the_requested_rate() {
        let ranges = [
            range(2, 8_000, 192_000, SampleFormat::F32),
            range(1, 8_000, 192_000, SampleFormat::I16),
            range(1, 8_000, 192_000, SampleFormat::F32),
        ];
        let (config, format) = choose_config(&ranges, 48_000).unwrap();
        assert_eq!(
            (config.channels, config.sample_rate, format),
            (1, 48_000, SampleFormat::F32)
        );
    }

    #[test]
    fn the_requested_rate_beats_a_better_format() {
        let ranges = [
            range(1, 44_100, 44_100, SampleFormat::F32),
            range(2, 48_000, 48_000, SampleFormat::I16),
        ];
        let (config, format) = choose_config(&ranges, 48_000).unwrap();
        assert_eq!(
            (config.channels, config.sample_rate, format),
            (2, 48_000, SampleFormat::I16)
        );
    }

    #[test]
    fn falls_back_to_a_standard_rate_the_device_offers() {
        let ranges = [range(1, 44_100, 44_100, SampleFormat::F32)];
        assert_eq!(
            choose_config(&ranges, 48_000).unwrap().0.sample_rate,
            44_100
        );
        let odd = [range(1, 22_050, 22_050, SampleFormat::F32)];
        assert_eq!(choose_config(&odd, 48_000).unwrap().0.sample_rate, 22_050);
    }

    #[test]
    fn formats_it_cannot_convert_are_refused() {
        let ranges = [range(1, 48_000, 48_000, SampleFormat::U8)];
        assert_eq!(choose_config(&ranges, 48_000), None);
        assert_eq!(choose_config(&[], 48_000), None);
    }
}
