//! What a phone reports after a bump, for the server to pair it with the
//! other phone's report.
//!
//! A report travels as the body of a normal signed request (see
//! [`signing`](super::signing)); it carries no phone number, so neither side
//! learns the other's.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::types::{Amount, Millis};

/// Which side of the payment the phone is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum BumpRole {
    /// Pays; confirms the amount the payee asked for.
    Payer,
    /// Is paid; typed the amount.
    Payee,
}

impl BumpRole {
    pub fn counterpart(self) -> BumpRole {
        match self {
            BumpRole::Payer => BumpRole::Payee,
            BumpRole::Payee => BumpRole::Payer,
        }
    }
}

/// The shape of the knock as one phone's accelerometer saw it. The other
/// phone felt the same collision, so its figures should agree: the same
/// contact time, and by conservation of momentum a velocity change in the
/// inverse ratio of the phones' masses.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImpulseFeatures {
    /// Largest acceleration magnitude (gravity removed), m/s². Depends on
    /// the sensor's sample rate and filtering.
    pub peak_mps2: f32,
    /// Velocity change over the impulse, m/s: the area under the pulse,
    /// which does not depend on the sample rate.
    pub delta_v_mps: f32,
    /// From 10 % of the peak to the peak, ms.
    pub rise_ms: f32,
    /// Width at half the peak, ms.
    pub duration_ms: f32,
    /// Unit vector of the acceleration at the peak, in the phone's own axes
    /// (x right, y up the screen, z out of the screen).
    pub direction: [f32; 3],
}

/// Where the phone was, from the platform's location service.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoarseLocation {
    pub lat_deg: f64,
    pub lon_deg: f64,
    /// Radius of 68 % confidence, metres.
    pub accuracy_m: f32,
}

impl CoarseLocation {
    /// Great-circle distance in metres (haversine; mean Earth radius).
    pub fn distance_m(&self, other: &CoarseLocation) -> f64 {
        const EARTH_RADIUS_M: f64 = 6_371_008.8;
        let (lat1, lat2) = (self.lat_deg.to_radians(), other.lat_deg.to_radians());
        let d_lat = lat2 - lat1;
        let d_lon = (other.lon_deg - self.lon_deg).to_radians();
        let h = (d_lat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (d_lon / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_M * h.sqrt().min(1.0).asin()
    }
}

/// One phone's report of a bump.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BumpReport {
    pub role: BumpRole,
    /// What the payee asks for; only the payee sends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<Amount>,
    /// When the knock happened, server time (the phone's clock corrected by
    /// its measured offset to the server), Unix ms.
    pub instant_ms: Millis,
    pub impulse: ImpulseFeatures,
    /// The ambient sound around the knock, see
    /// [`AmbientFingerprint::to_bytes`](crate::fingerprint::AmbientFingerprint::to_bytes). Base64 (standard
    /// alphabet, padded) in JSON.
    #[serde(with = "base64_bytes")]
    pub fingerprint: Vec<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<CoarseLocation>,
}

mod base64_bytes {
    use super::*;

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD
            .decode(text.as_bytes())
            .map_err(|e| serde::de::Error::custom(format!("fingerprint is not base64: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> BumpReport {
        BumpReport {
            role: BumpRole::Payee,
            amount: Some(800),
            instant_ms: 1_700_000_000_123,
            impulse: ImpulseFeatures {
                peak_mps2: 31.5,
                delta_v_mps: 0.12,
                rise_ms: 3.0,
                duration_ms: 6.5,
                direction: [0.0, -1.0, 0.0],
            },
            fingerprint: vec![0, 1, 2, 250, 255],
            location: Some(CoarseLocation {
                lat_deg: 35.6812,
                lon_deg: 139.7671,
                accuracy_m: 12.0,
            }),
        }
    }

    #[test]
    fn report_round_trips_with_base64_fingerprint() {
        let json = serde_json::to_string(&report()).unwrap();
        assert!(json.contains(r#""fingerprint":"AAEC+v8=""#), "{json}");
        assert!(json.contains(r#""role":"payee""#), "{json}");
        let back: BumpReport = serde_json::from_str(&json).unwrap();
        assert_eq!(back, report());
    }

    #[test]
    fn payer_report_omits_amount_and_location() {
        let mut payer = report();
        payer.role = BumpRole::Payer;
        payer.amount = None;
        payer.location = None;
        let json = serde_json::to_string(&payer).unwrap();
        assert!(
            !json.contains("amount") && !json.contains("location"),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<BumpReport>(&json).unwrap(), payer);
    }

    #[test]
    fn bad_fingerprint_and_unknown_fields_are_rejected() {
        let json = serde_json::to_string(&report()).unwrap();
        let bad = json.replace("AAEC+v8=", "not base64!");
        let err = serde_json::from_str::<BumpReport>(&bad).unwrap_err();
        assert!(
            err.to_string().contains("fingerprint is not base64"),
            "{err}"
        );
        let extra = json.replacen('{', r#"{"phone":"+81312345678","#, 1);
        assert!(serde_json::from_str::<BumpReport>(&extra).is_err());
    }

    #[test]
    fn distance_between_known_points() {
        // Tokyo station to the Imperial Palace east gardens: about 1 km.
        let a = CoarseLocation {
            lat_deg: 35.6812,
            lon_deg: 139.7671,
            accuracy_m: 5.0,
        };
        let b = CoarseLocation {
            lat_deg: 35.6852,
            lon_deg: 139.7577,
            accuracy_m: 5.0,
        };
        let d = a.distance_m(&b);
        assert!((900.0..1000.0).contains(&d), "{d}");
        // 0.001 degree of latitude is 111 m everywhere.
        let north = CoarseLocation {
            lat_deg: a.lat_deg + 0.001,
            ..a
        };
        assert!((a.distance_m(&north) - 111.2).abs() < 0.5);
        assert_eq!(a.distance_m(&a), 0.0);
    }
}
