//! The three x402 messages as both sides use them, whichever protocol version carries
//! them: an [`Offer`] (one entry of a challenge's `accepts`), a [`PaymentMessage`] (what
//! the client sends back) and a [`Settlement`] (what the server answers with). Each is
//! read from and written to its [`Version`]'s shape and header in one place, so that the
//! verifier, the facilitator and the client never branch on the version themselves.

use serde_json::{Map, Value};

use super::{decode_header, encode_header, v1, v2, WireError};

/// An x402 protocol version, and so the headers its messages travel in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    V1,
    V2,
}

impl Version {
    /// Newest first: the order in which a server looks for a payment.
    pub const ALL: [Version; 2] = [Version::V2, Version::V1];

    /// The `x402Version` number.
    pub const fn number(self) -> u32 {
        match self {
            Version::V1 => v1::VERSION,
            Version::V2 => v2::VERSION,
        }
    }

    /// The request header that carries a payment.
    pub const fn payment_header(self) -> &'static str {
        match self {
            Version::V1 => v1::X_PAYMENT,
            Version::V2 => v2::PAYMENT_SIGNATURE,
        }
    }

    /// The response header that carries the settlement.
    pub const fn settlement_header(self) -> &'static str {
        match self {
            Version::V1 => v1::X_PAYMENT_RESPONSE,
            Version::V2 => v2::PAYMENT_RESPONSE,
        }
    }

    /// The version a JSON message names in `x402Version`.
    pub fn of(message: &Value) -> Option<Version> {
        match super::version_of(message)? {
            v1::VERSION => Some(Version::V1),
            v2::VERSION => Some(Version::V2),
            _ => None,
        }
    }
}

/// One way to pay: an entry of a challenge's `accepts`, with the resource it pays for
/// (v2 sends the resource beside the offers, v1 inside each).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offer {
    pub scheme: String,
    /// The network as the version names it: a v1 name or a CAIP-2 id.
    pub network: String,
    /// Base units, as a decimal string.
    pub amount: String,
    pub asset: String,
    pub pay_to: String,
    pub max_timeout_seconds: u64,
    pub extra: Map<String, Value>,
    pub resource: v2::ResourceInfo,
}

impl Offer {
    /// Reads a v1 `accepts` entry.
    pub fn from_v1(offer: &v1::PaymentRequirements) -> Self {
        Offer {
            scheme: offer.scheme.clone(),
            network: offer.network.clone(),
            amount: offer.max_amount_required.clone(),
            asset: offer.asset.clone(),
            pay_to: offer.pay_to.clone(),
            max_timeout_seconds: offer.max_timeout_seconds,
            extra: offer.extra.clone().unwrap_or_default(),
            resource: v2::ResourceInfo {
                url: offer.resource.clone(),
                description: Some(offer.description.clone()),
                mime_type: offer.mime_type.clone(),
            },
        }
    }

    /// Reads a v2 `accepts` entry of a challenge for `resource`.
    pub fn from_v2(offer: &v2::PaymentRequirements, resource: &v2::ResourceInfo) -> Self {
        Offer {
            scheme: offer.scheme.clone(),
            network: offer.network.clone(),
            amount: offer.amount.clone(),
            asset: offer.asset.clone(),
            pay_to: offer.pay_to.clone(),
            max_timeout_seconds: offer.max_timeout_seconds,
            extra: offer.extra.clone().unwrap_or_default(),
            resource: resource.clone(),
        }
    }

    /// This offer as a v1 `accepts` entry.
    pub fn to_v1(&self) -> v1::PaymentRequirements {
        v1::PaymentRequirements {
            scheme: self.scheme.clone(),
            network: self.network.clone(),
            max_amount_required: self.amount.clone(),
            resource: self.resource.url.clone(),
            description: self.resource.description.clone().unwrap_or_default(),
            mime_type: self.resource.mime_type.clone(),
            output_schema: None,
            pay_to: self.pay_to.clone(),
            max_timeout_seconds: self.max_timeout_seconds,
            asset: self.asset.clone(),
            extra: Some(self.extra.clone()),
        }
    }

    /// This offer as a v2 `accepts` entry (the resource travels apart).
    pub fn to_v2(&self) -> v2::PaymentRequirements {
        v2::PaymentRequirements {
            scheme: self.scheme.clone(),
            network: self.network.clone(),
            amount: self.amount.clone(),
            asset: self.asset.clone(),
            pay_to: self.pay_to.clone(),
            max_timeout_seconds: self.max_timeout_seconds,
            extra: Some(self.extra.clone()),
        }
    }
}

/// A payment as the client sends it: the offer it pays and the scheme's payload.
#[derive(Clone, Debug, PartialEq)]
pub struct PaymentMessage {
    pub version: Version,
    pub offer: Offer,
    /// The scheme's proof of payment.
    pub payload: Value,
}

impl PaymentMessage {
    /// Reads a payment header of `version`. A v1 payment names only the scheme and the
    /// network of the offer it pays; the rest of its [`Offer`] is left empty.
    pub fn decode(version: Version, header: &str) -> Result<Self, WireError> {
        Ok(match version {
            Version::V1 => Self::from_v1(decode_header(header)?),
            Version::V2 => Self::from_v2(decode_header(header)?),
        })
    }

    /// Reads a payment from JSON (a facilitator request's `paymentPayload`).
    pub fn from_json(message: Value) -> Result<Self, serde_json::Error> {
        match Version::of(&message) {
            Some(Version::V2) => Ok(Self::from_v2(serde_json::from_value(message)?)),
            _ => Ok(Self::from_v1(serde_json::from_value(message)?)),
        }
    }

    fn from_v1(payment: v1::PaymentPayload) -> Self {
        PaymentMessage {
            version: Version::V1,
            offer: Offer {
                scheme: payment.scheme,
                network: payment.network,
                amount: String::new(),
                asset: String::new(),
                pay_to: String::new(),
                max_timeout_seconds: 0,
                extra: Map::new(),
                resource: v2::ResourceInfo {
                    url: String::new(),
                    description: None,
                    mime_type: None,
                },
            },
            payload: payment.payload,
        }
    }

    fn from_v2(payment: v2::PaymentPayload) -> Self {
        let resource = payment.resource.unwrap_or(v2::ResourceInfo {
            url: String::new(),
            description: None,
            mime_type: None,
        });
        PaymentMessage {
            version: Version::V2,
            offer: Offer::from_v2(&payment.accepted, &resource),
            payload: payment.payload,
        }
    }

    /// The header that carries this payment: its name and base64 value.
    pub fn header(&self) -> (&'static str, String) {
        let value = match self.version {
            Version::V1 => encode_header(&v1::PaymentPayload {
                x402_version: v1::VERSION,
                scheme: self.offer.scheme.clone(),
                network: self.offer.network.clone(),
                payload: self.payload.clone(),
            }),
            Version::V2 => encode_header(&v2::PaymentPayload {
                x402_version: v2::VERSION,
                resource: Some(self.offer.resource.clone()),
                accepted: self.offer.to_v2(),
                payload: self.payload.clone(),
                extensions: None,
            }),
        };
        (self.version.payment_header(), value)
    }
}

/// The outcome of a paid request, as the server reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settlement {
    pub success: bool,
    pub error_reason: Option<String>,
    pub payer: String,
    /// The payment's transaction signature; empty when unknown.
    pub transaction: String,
    /// The network as the version names it.
    pub network: String,
    /// Base units received (v2 only).
    pub amount: Option<String>,
    /// Scheme fields (`reference`, `receipt`).
    pub extra: Map<String, Value>,
}

impl Settlement {
    /// The settlement header of `version`: its name and base64 value.
    pub fn header(&self, version: Version) -> (&'static str, String) {
        let value = match version {
            Version::V1 => encode_header(&v1::SettlementResponse {
                success: self.success,
                error_reason: self.error_reason.clone(),
                transaction: self.transaction.clone(),
                network: self.network.clone(),
                payer: self.payer.clone(),
                extra: self.extra.clone(),
            }),
            Version::V2 => encode_header(&v2::SettlementResponse {
                success: self.success,
                error_reason: self.error_reason.clone(),
                payer: Some(self.payer.clone()),
                transaction: self.transaction.clone(),
                network: self.network.clone(),
                amount: self.amount.clone(),
                extensions: None,
                extra: self.extra.clone(),
            }),
        };
        (version.settlement_header(), value)
    }

    /// Reads a settlement header of `version`.
    pub fn decode(version: Version, header: &str) -> Result<Self, WireError> {
        Ok(match version {
            Version::V1 => {
                let s: v1::SettlementResponse = decode_header(header)?;
                Settlement {
                    success: s.success,
                    error_reason: s.error_reason,
                    payer: s.payer,
                    transaction: s.transaction,
                    network: s.network,
                    amount: None,
                    extra: s.extra,
                }
            }
            Version::V2 => {
                let s: v2::SettlementResponse = decode_header(header)?;
                Settlement {
                    success: s.success,
                    error_reason: s.error_reason,
                    payer: s.payer.unwrap_or_default(),
                    transaction: s.transaction,
                    network: s.network,
                    amount: s.amount,
                    extra: s.extra,
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn offer() -> Offer {
        Offer {
            scheme: "receipt".into(),
            network: "solana-devnet".into(),
            amount: "10000".into(),
            asset: "mint".into(),
            pay_to: "merchant".into(),
            max_timeout_seconds: 300,
            extra: json!({"reference": "r"}).as_object().unwrap().clone(),
            resource: v2::ResourceInfo {
                url: "https://api.example.com/a".into(),
                description: Some("a".into()),
                mime_type: Some("application/json".into()),
            },
        }
    }

    #[test]
    fn an_offer_survives_both_versions() {
        let offer = offer();
        assert_eq!(Offer::from_v1(&offer.to_v1()), offer);
        assert_eq!(Offer::from_v2(&offer.to_v2(), &offer.resource), offer);
    }

    #[test]
    fn a_payment_travels_in_its_version_header_and_back() {
        for version in Version::ALL {
            let payment = PaymentMessage {
                version,
                offer: offer(),
                payload: json!({"transaction": "AQ=="}),
            };
            let (name, value) = payment.header();
            assert_eq!(name, version.payment_header());
            let back = PaymentMessage::decode(version, &value).unwrap();
            assert_eq!((back.version, &back.payload), (version, &payment.payload));
            assert_eq!(
                (back.offer.scheme.as_str(), back.offer.network.as_str()),
                ("receipt", "solana-devnet")
            );
            let json: Value = decode_header(&value).unwrap();
            assert_eq!(PaymentMessage::from_json(json).unwrap(), back);
        }
        assert_eq!(
            PaymentMessage::decode(Version::V2, &payment_v2_only())
                .unwrap()
                .offer,
            offer()
        );
    }

    fn payment_v2_only() -> String {
        PaymentMessage {
            version: Version::V2,
            offer: offer(),
            payload: json!({}),
        }
        .header()
        .1
    }

    #[test]
    fn a_settlement_travels_in_its_version_header_and_back() {
        let settlement = Settlement {
            success: true,
            error_reason: None,
            payer: "payer".into(),
            transaction: "sig".into(),
            network: "solana-devnet".into(),
            amount: Some("10000".into()),
            extra: json!({"receipt": "r"}).as_object().unwrap().clone(),
        };
        let (name, value) = settlement.header(Version::V2);
        assert_eq!(name, "PAYMENT-RESPONSE");
        assert_eq!(Settlement::decode(Version::V2, &value).unwrap(), settlement);
        let (name, value) = settlement.header(Version::V1);
        assert_eq!(name, "X-PAYMENT-RESPONSE");
        let v1 = Settlement::decode(Version::V1, &value).unwrap();
        assert_eq!(
            v1,
            Settlement {
                amount: None,
                ..settlement
            },
            "v1 has no amount"
        );
    }
}
