//! x402 protocol version 2 over HTTP (`specs/x402-specification-v2.md`, section 5, and
//! `specs/transports-v2/http.md` in coinbase/x402).
//!
//! Every message travels base64-encoded in a header: the server answers an unpaid
//! request with status 402 and a [`PaymentRequired`] in [`PAYMENT_REQUIRED`]; the
//! client retries with a [`PaymentPayload`] in [`PAYMENT_SIGNATURE`]; the server
//! returns a [`SettlementResponse`] in [`PAYMENT_RESPONSE`]. Networks are CAIP-2
//! identifiers such as `"solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1"` (Solana devnet).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The `x402Version` value of every version 2 message.
pub const VERSION: u32 = 2;

/// Response header in which a v2 server sends its base64-encoded [`PaymentRequired`].
pub const PAYMENT_REQUIRED: &str = "PAYMENT-REQUIRED";

/// Request header in which a v2 client sends its base64-encoded [`PaymentPayload`].
pub const PAYMENT_SIGNATURE: &str = "PAYMENT-SIGNATURE";

/// Response header in which a v2 server returns its base64-encoded
/// [`SettlementResponse`].
pub const PAYMENT_RESPONSE: &str = "PAYMENT-RESPONSE";

/// The protected resource a payment is for (`ResourceInfo` in spec section 5.1.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceInfo {
    /// URL of the protected resource.
    pub url: String,
    /// Human-readable description of the resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// MIME type of the resource's response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
}

/// One way to pay for a resource: an entry of [`PaymentRequired::accepts`], echoed by
/// the client as [`PaymentPayload::accepted`] (`PaymentRequirements` in spec section
/// 5.1.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRequirements {
    /// Payment scheme identifier, such as `"exact"` or our `"receipt"`.
    pub scheme: String,
    /// CAIP-2 network identifier, such as `"solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1"`.
    pub network: String,
    /// Amount to pay, in the asset's base units, as a decimal string.
    pub amount: String,
    /// The token paid: its contract address or, on Solana, its mint.
    pub asset: String,
    /// Address that receives the payment.
    pub pay_to: String,
    /// How long, in seconds, the client has to complete the payment.
    pub max_timeout_seconds: u64,
    /// Scheme-specific parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<Map<String, Value>>,
}

/// What a v2 server sends, base64-encoded, in the [`PAYMENT_REQUIRED`] header of a 402
/// response (`PaymentRequired` in spec section 5.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRequired {
    /// Protocol version: [`VERSION`] (2).
    #[serde(rename = "x402Version")]
    pub x402_version: u32,
    /// Human-readable reason why payment is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The resource the payment is for.
    pub resource: ResourceInfo,
    /// The payment methods the server accepts, any one of which pays for the resource.
    pub accepts: Vec<PaymentRequirements>,
    /// Protocol extensions the server offers, keyed by extension identifier; each value
    /// is, per the spec, an object with `info` and `schema`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<Map<String, Value>>,
}

/// What a v2 client sends, base64-encoded, in the [`PAYMENT_SIGNATURE`] header
/// (`PaymentPayload` in spec section 5.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentPayload {
    /// Protocol version: [`VERSION`] (2).
    #[serde(rename = "x402Version")]
    pub x402_version: u32,
    /// The resource being paid for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourceInfo>,
    /// The entry of the server's `accepts` that the client chose to pay with.
    pub accepted: PaymentRequirements,
    /// The scheme-specific proof of payment.
    pub payload: Value,
    /// The server's extensions echoed back, possibly with more `info` added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<Map<String, Value>>,
}

/// What a v2 server returns, base64-encoded, in the [`PAYMENT_RESPONSE`] header: the
/// outcome of settling the payment (`SettleResponse` in spec section 5.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SettlementResponse {
    /// Whether the payment was settled.
    pub success: bool,
    /// Why settlement failed (such as `"insufficient_funds"`); absent on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_reason: Option<String>,
    /// Address of the payer's wallet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer: Option<String>,
    /// Transaction hash or signature of the settlement; empty when it failed.
    pub transaction: String,
    /// CAIP-2 identifier of the network the payment was settled on.
    pub network: String,
    /// Amount actually settled, in base units, for schemes where it can differ from
    /// the required amount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<String>,
    /// Protocol extensions data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<Map<String, Value>>,
    /// Fields outside the spec, kept as they are so that they survive a round trip: the
    /// `receipt` scheme adds `reference` and `receipt` here. Keys must not repeat the
    /// fields above.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{decode_header, encode_header, version_of};
    use serde::de::DeserializeOwned;
    use serde_json::json;

    const DEVNET: &str = "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1";

    /// Parses `value` as `T`, writes it back and checks that nothing was lost, renamed or
    /// added, directly and through the header codec.
    fn round_trip<T: Serialize + DeserializeOwned>(value: &Value) -> T {
        let parsed: T = serde_json::from_value(value.clone()).unwrap();
        assert_eq!(&serde_json::to_value(&parsed).unwrap(), value);
        let through_header: T = decode_header(&encode_header(&parsed)).unwrap();
        assert_eq!(&serde_json::to_value(&through_header).unwrap(), value);
        parsed
    }

    fn resource() -> Value {
        json!({
            "url": "https://api.example.com/premium-data",
            "description": "Access to premium market data",
            "mimeType": "application/json"
        })
    }

    fn requirements() -> Value {
        json!({
            "scheme": "receipt",
            "network": DEVNET,
            "amount": "10000",
            "asset": "4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU",
            "payTo": "7tR4pXk1zWZ8cQmV3aN5bJ2hY6fG9sD1eL4uK8rT3wQx",
            "maxTimeoutSeconds": 60,
            "extra": {
                "reference": "3yZe7d8Fh2kQm9Lp4Vx6Ns1Ra5Tc8Wb2Jg7Hd3Kf9Mq",
                "expiresAt": 1740672154
            }
        })
    }

    #[test]
    fn payment_required_round_trips() {
        // Spec section 5.1.1, with the `receipt` scheme on Solana devnet.
        let required = json!({
            "x402Version": 2,
            "error": "PAYMENT-SIGNATURE header is required",
            "resource": resource(),
            "accepts": [requirements()],
            "extensions": {}
        });
        let parsed: PaymentRequired = round_trip(&required);
        assert_eq!(parsed.x402_version, VERSION);
        assert_eq!(
            parsed.error.as_deref(),
            Some("PAYMENT-SIGNATURE header is required")
        );
        assert_eq!(parsed.resource.url, "https://api.example.com/premium-data");
        assert_eq!(
            parsed.resource.description.as_deref(),
            Some("Access to premium market data")
        );
        assert_eq!(
            parsed.resource.mime_type.as_deref(),
            Some("application/json")
        );
        assert_eq!(parsed.extensions, Some(Map::new()));
        let [accept] = &parsed.accepts[..] else {
            panic!("one entry expected: {:?}", parsed.accepts);
        };
        assert_eq!(accept.scheme, "receipt");
        assert_eq!(accept.network, DEVNET);
        assert_eq!(accept.amount, "10000");
        assert_eq!(accept.asset, "4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU");
        assert_eq!(
            accept.pay_to,
            "7tR4pXk1zWZ8cQmV3aN5bJ2hY6fG9sD1eL4uK8rT3wQx"
        );
        assert_eq!(accept.max_timeout_seconds, 60);
        assert_eq!(
            accept.extra.as_ref().unwrap()["expiresAt"],
            json!(1740672154)
        );
        assert_eq!(version_of(&required), Some(VERSION));
    }

    #[test]
    fn minimal_payment_required_round_trips() {
        // Only the required fields: nothing optional is invented on the way back.
        let required = json!({
            "x402Version": 2,
            "resource": {"url": "https://api.example.com/premium-data"},
            "accepts": [{
                "scheme": "receipt",
                "network": DEVNET,
                "amount": "1",
                "asset": "4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU",
                "payTo": "7tR4pXk1zWZ8cQmV3aN5bJ2hY6fG9sD1eL4uK8rT3wQx",
                "maxTimeoutSeconds": 30
            }]
        });
        let parsed: PaymentRequired = round_trip(&required);
        assert_eq!(parsed.error, None);
        assert_eq!(parsed.extensions, None);
        assert_eq!(parsed.resource.description, None);
        assert_eq!(parsed.resource.mime_type, None);
        assert_eq!(parsed.accepts[0].extra, None);
    }

    #[test]
    fn required_fields_are_required() {
        let required = json!({
            "x402Version": 2,
            "resource": resource(),
            "accepts": [requirements()]
        });
        for field in ["x402Version", "resource", "accepts"] {
            let mut incomplete = required.clone();
            incomplete.as_object_mut().unwrap().remove(field);
            let result = serde_json::from_value::<PaymentRequired>(incomplete);
            assert!(result.is_err(), "parsed without {field}");
        }
        for field in [
            "scheme",
            "network",
            "amount",
            "asset",
            "payTo",
            "maxTimeoutSeconds",
        ] {
            let mut incomplete = requirements();
            incomplete.as_object_mut().unwrap().remove(field);
            let result = serde_json::from_value::<PaymentRequirements>(incomplete);
            assert!(result.is_err(), "parsed without {field}");
        }
        let result = serde_json::from_value::<ResourceInfo>(json!({"description": "x"}));
        assert!(result.is_err(), "parsed without url");
    }

    #[test]
    fn a_v1_402_body_is_not_a_v2_payment_required() {
        let v1_body = json!({
            "x402Version": 1,
            "error": "X-PAYMENT header is required",
            "accepts": [{
                "scheme": "receipt",
                "network": "solana-devnet",
                "maxAmountRequired": "10000",
                "resource": "https://api.example.com/premium-data",
                "description": "Access to premium market data",
                "payTo": "7tR4pXk1zWZ8cQmV3aN5bJ2hY6fG9sD1eL4uK8rT3wQx",
                "maxTimeoutSeconds": 60,
                "asset": "4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU"
            }]
        });
        assert!(serde_json::from_value::<PaymentRequired>(v1_body).is_err());
    }

    #[test]
    fn spec_payment_required_header_decodes() {
        // The PAYMENT-REQUIRED header of specs/transports-v2/http.md, as printed there
        // (unpadded).
        let header = "eyJ4NDAyVmVyc2lvbiI6MiwiZXJyb3IiOiJQQVlNRU5ULVNJR05BVFVSRSBoZWFkZXIgaXMgcmVxdWlyZWQiLCJyZXNvdXJjZSI6eyJ1cmwiOiJodHRwczovL2FwaS5leGFtcGxlLmNvbS9wcmVtaXVtLWRhdGEiLCJkZXNjcmlwdGlvbiI6IkFjY2VzcyB0byBwcmVtaXVtIG1hcmtldCBkYXRhIiwibWltZVR5cGUiOiJhcHBsaWNhdGlvbi9qc29uIn0sImFjY2VwdHMiOlt7InNjaGVtZSI6ImV4YWN0IiwibmV0d29yayI6ImVpcDE1NTo4NDUzMiIsImFtb3VudCI6IjEwMDAwIiwiYXNzZXQiOiIweDAzNkNiRDUzODQyYzU0MjY2MzRlNzkyOTU0MWVDMjMxOGYzZENGN2UiLCJwYXlUbyI6IjB4MjA5NjkzQmM2YWZjMEM1MzI4YkEzNkZhRjAzQzUxNEVGMzEyMjg3QyIsIm1heFRpbWVvdXRTZWNvbmRzIjo2MCwiZXh0cmEiOnsibmFtZSI6IlVTREMiLCJ2ZXJzaW9uIjoiMiJ9fV19";
        let required: PaymentRequired = decode_header(header).unwrap();
        assert_eq!(required.x402_version, 2);
        assert_eq!(
            required.resource.url,
            "https://api.example.com/premium-data"
        );
        assert_eq!(required.extensions, None);
        let accept = &required.accepts[0];
        assert_eq!(accept.scheme, "exact");
        assert_eq!(accept.network, "eip155:84532");
        assert_eq!(accept.amount, "10000");
        assert_eq!(accept.pay_to, "0x209693Bc6afc0C5328bA36FaF03C514EF312287C");
        assert_eq!(accept.max_timeout_seconds, 60);
        assert_eq!(accept.extra.as_ref().unwrap()["name"], "USDC");
    }

    #[test]
    fn payment_payload_round_trips() {
        // Spec section 5.2.1, with a `receipt` scheme payload.
        let payload = json!({
            "x402Version": 2,
            "resource": resource(),
            "accepted": requirements(),
            "payload": {
                "transaction": "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                "reference": "3yZe7d8Fh2kQm9Lp4Vx6Ns1Ra5Tc8Wb2Jg7Hd3Kf9Mq"
            },
            "extensions": {
                "payment-identifier": {
                    "info": {"id": "pay_7d5d747be160e280504c099d984bcfe0"},
                    "schema": {"type": "object"}
                }
            }
        });
        let parsed: PaymentPayload = round_trip(&payload);
        assert_eq!(parsed.x402_version, VERSION);
        assert_eq!(
            parsed.resource.as_ref().map(|r| r.url.as_str()),
            Some("https://api.example.com/premium-data")
        );
        assert_eq!(parsed.accepted.scheme, "receipt");
        assert_eq!(parsed.accepted.network, DEVNET);
        assert_eq!(
            parsed.payload["reference"],
            "3yZe7d8Fh2kQm9Lp4Vx6Ns1Ra5Tc8Wb2Jg7Hd3Kf9Mq"
        );
        let extensions = parsed.extensions.as_ref().unwrap();
        assert_eq!(
            extensions["payment-identifier"]["info"]["id"],
            "pay_7d5d747be160e280504c099d984bcfe0"
        );
    }

    #[test]
    fn payment_payload_without_optional_fields_round_trips() {
        let payload = json!({
            "x402Version": 2,
            "accepted": requirements(),
            "payload": {"transaction": "AQID"}
        });
        let parsed: PaymentPayload = round_trip(&payload);
        assert_eq!(parsed.resource, None);
        assert_eq!(parsed.extensions, None);
        let mut without_accepted = payload;
        without_accepted.as_object_mut().unwrap().remove("accepted");
        assert!(serde_json::from_value::<PaymentPayload>(without_accepted).is_err());
    }

    #[test]
    fn spec_payment_signature_header_decodes() {
        // The PAYMENT-SIGNATURE header of specs/transports-v2/http.md (padded).
        let header = "eyJ4NDAyVmVyc2lvbiI6MiwicmVzb3VyY2UiOnsidXJsIjoiaHR0cHM6Ly9hcGkuZXhhbXBsZS5jb20vcHJlbWl1bS1kYXRhIiwiZGVzY3JpcHRpb24iOiJBY2Nlc3MgdG8gcHJlbWl1bSBtYXJrZXQgZGF0YSIsIm1pbWVUeXBlIjoiYXBwbGljYXRpb24vanNvbiJ9LCJhY2NlcHRlZCI6eyJzY2hlbWUiOiJleGFjdCIsIm5ldHdvcmsiOiJlaXAxNTU6ODQ1MzIiLCJhbW91bnQiOiIxMDAwMCIsImFzc2V0IjoiMHgwMzZDYkQ1Mzg0MmM1NDI2NjM0ZTc5Mjk1NDFlQzIzMThmM2RDRjdlIiwicGF5VG8iOiIweDIwOTY5M0JjNmFmYzBDNTMyOGJBMzZGYUYwM0M1MTRFRjMxMjI4N0MiLCJtYXhUaW1lb3V0U2Vjb25kcyI6NjAsImV4dHJhIjp7Im5hbWUiOiJVU0RDIiwidmVyc2lvbiI6IjIifX0sInBheWxvYWQiOnsic2lnbmF0dXJlIjoiMHgyZDZhNzU4OGQ2YWNjYTUwNWNiZjBkOWE0YTIyN2UwYzUyYzZjMzQwMDhjOGU4OTg2YTEyODMyNTk3NjQxNzM2MDhhMmNlNjQ5NjY0MmUzNzdkNmRhOGRiYmY1ODM2ZTliZDE1MDkyZjllY2FiMDVkZWQzZDYyOTNhZjE0OGI1NzFjIiwiYXV0aG9yaXphdGlvbiI6eyJmcm9tIjoiMHg4NTdiMDY1MTlFOTFlM0E1NDUzODc5MWJEYmIwRTIyMzczZTM2YjY2IiwidG8iOiIweDIwOTY5M0JjNmFmYzBDNTMyOGJBMzZGYUYwM0M1MTRFRjMxMjI4N0MiLCJ2YWx1ZSI6IjEwMDAwIiwidmFsaWRBZnRlciI6IjE3NDA2NzIwODkiLCJ2YWxpZEJlZm9yZSI6IjE3NDA2NzIxNTQiLCJub25jZSI6IjB4ZjM3NDY2MTNjMmQ5MjBiNWZkYWJjMDg1NmYyYWViMmQ0Zjg4ZWU2MDM3YjhjYzVkMDRhNzFhNDQ2MmYxMzQ4MCJ9fX0=";
        let payload: PaymentPayload = decode_header(header).unwrap();
        assert_eq!(payload.x402_version, 2);
        assert_eq!(
            payload.resource.map(|r| r.url),
            Some("https://api.example.com/premium-data".to_owned())
        );
        assert_eq!(payload.accepted.network, "eip155:84532");
        assert_eq!(payload.accepted.amount, "10000");
        assert_eq!(
            payload.payload["authorization"]["validBefore"],
            "1740672154"
        );
        assert_eq!(payload.extensions, None);
    }

    #[test]
    fn settlement_response_round_trips() {
        // Spec section 5.3.1 on Solana devnet, with every optional field of section
        // 5.3.2 and the `receipt` scheme's two additions.
        let response = json!({
            "success": true,
            "transaction": "5VERv8NMvzbJMEkV8xnrLkEaWRtSz9CosKDYjCJjBRnbJLgp8uirBgmQpjKhoR4tjF3ZpRzrFmBV6UjKdiSZkQUW",
            "network": DEVNET,
            "payer": "4Nd1mBQtrMJVYVfKf2PJy9NZUZdTAsp7D4xWLs4gDB4T",
            "amount": "10000",
            "extensions": {"payment-identifier": {"info": {"id": "pay_1"}}},
            "reference": "3yZe7d8Fh2kQm9Lp4Vx6Ns1Ra5Tc8Wb2Jg7Hd3Kf9Mq",
            "receipt": "9kCx3mZt8RvQ2bHn6Yw1Lp5Ue7Jd4Fa2Gs9Tk3Nc8Vr"
        });
        let parsed: SettlementResponse = round_trip(&response);
        assert!(parsed.success);
        assert_eq!(parsed.error_reason, None);
        assert_eq!(
            parsed.payer.as_deref(),
            Some("4Nd1mBQtrMJVYVfKf2PJy9NZUZdTAsp7D4xWLs4gDB4T")
        );
        assert_eq!(parsed.network, DEVNET);
        assert_eq!(parsed.amount.as_deref(), Some("10000"));
        assert!(parsed.extensions.is_some());
        assert_eq!(parsed.extra.len(), 2);
        assert_eq!(
            parsed.extra["reference"],
            "3yZe7d8Fh2kQm9Lp4Vx6Ns1Ra5Tc8Wb2Jg7Hd3Kf9Mq"
        );
    }

    #[test]
    fn failed_settlement_response_round_trips() {
        // The failure example of specs/transports-v2/http.md, and the same without the
        // optional payer.
        let response = json!({
            "success": false,
            "errorReason": "insufficient_funds",
            "transaction": "",
            "network": DEVNET,
            "payer": "4Nd1mBQtrMJVYVfKf2PJy9NZUZdTAsp7D4xWLs4gDB4T"
        });
        let parsed: SettlementResponse = round_trip(&response);
        assert!(!parsed.success);
        assert_eq!(parsed.error_reason.as_deref(), Some("insufficient_funds"));
        assert!(parsed.extra.is_empty());

        let mut anonymous = response;
        anonymous.as_object_mut().unwrap().remove("payer");
        let parsed: SettlementResponse = round_trip(&anonymous);
        assert_eq!(parsed.payer, None);
    }

    #[test]
    fn spec_payment_response_header_decodes() {
        // The success PAYMENT-RESPONSE header of specs/transports-v2/http.md.
        let header = "eyJzdWNjZXNzIjp0cnVlLCJ0cmFuc2FjdGlvbiI6IjB4MTIzNDU2Nzg5MGFiY2RlZjEyMzQ1Njc4OTBhYmNkZWYxMjM0NTY3ODkwYWJjZGVmMTIzNDU2Nzg5MGFiY2RlZiIsIm5ldHdvcmsiOiJlaXAxNTU6ODQ1MzIiLCJwYXllciI6IjB4ODU3YjA2NTE5RTkxZTNBNTQ1Mzg3OTFiRGJiMEUyMjM3M2UzNmI2NiJ9";
        let response: SettlementResponse = decode_header(header).unwrap();
        assert!(response.success);
        assert_eq!(response.network, "eip155:84532");
        assert_eq!(
            response.transaction,
            "0x1234567890abcdef1234567890abcdef1234567890abcdef1234567890abcdef"
        );
        assert_eq!(
            response.payer.as_deref(),
            Some("0x857b06519E91e3A54538791bDbb0E22373e36b66")
        );
        assert!(response.extra.is_empty());
    }

    #[test]
    fn header_names_match_the_transport_spec() {
        assert_eq!(PAYMENT_REQUIRED, "PAYMENT-REQUIRED");
        assert_eq!(PAYMENT_SIGNATURE, "PAYMENT-SIGNATURE");
        assert_eq!(PAYMENT_RESPONSE, "PAYMENT-RESPONSE");
    }
}
