//! x402 protocol version 1 over HTTP (`specs/x402-specification-v1.md`, section 5, and
//! `specs/transports-v1/http.md` in coinbase/x402).
//!
//! The server answers an unpaid request with status 402 and a [`PaymentRequired`] JSON
//! body; the client retries with a base64 [`PaymentPayload`] in the [`X_PAYMENT`]
//! header; the server returns a base64 [`SettlementResponse`] in the
//! [`X_PAYMENT_RESPONSE`] header. Networks are plain names such as `"solana-devnet"`.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// The `x402Version` value of every version 1 message.
pub const VERSION: u32 = 1;

/// Request header in which a v1 client sends its base64-encoded [`PaymentPayload`].
pub const X_PAYMENT: &str = "X-PAYMENT";

/// Response header in which a v1 server returns its base64-encoded
/// [`SettlementResponse`].
pub const X_PAYMENT_RESPONSE: &str = "X-PAYMENT-RESPONSE";

/// One way to pay for a resource: an entry of the 402 body's `accepts` array
/// (`PaymentRequirements` in spec section 5.1.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRequirements {
    /// Payment scheme identifier, such as `"exact"` or our `"receipt"`.
    pub scheme: String,
    /// Network name, such as `"solana-devnet"` or `"base-sepolia"`.
    pub network: String,
    /// Amount to pay, in the asset's base units, as a decimal string.
    pub max_amount_required: String,
    /// URL of the protected resource.
    pub resource: String,
    /// Human-readable description of the resource.
    pub description: String,
    /// MIME type of the resource's response, when the server states it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// JSON schema of the resource's response. `None` when the field is absent (and it
    /// is then not written); `Some(Value::Null)` keeps the explicit `null` that the
    /// spec's examples show.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub output_schema: Option<Value>,
    /// Address that receives the payment.
    pub pay_to: String,
    /// How long, in seconds, the client has to complete the payment.
    pub max_timeout_seconds: u64,
    /// The token paid: its contract address or, on Solana, its mint.
    pub asset: String,
    /// Scheme-specific parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<Map<String, Value>>,
}

/// Reads a field that is present, keeping an explicit `null` as `Some(Value::Null)`
/// (an absent field falls back to `None` through `#[serde(default)]`).
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

/// The JSON body of a v1 402 response (`PaymentRequirementsResponse` in spec section
/// 5.1): why payment is required and the ways the server accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRequired {
    /// Protocol version: [`VERSION`] (1).
    #[serde(rename = "x402Version")]
    pub x402_version: u32,
    /// Human-readable reason why payment is required. The spec makes it required, so it
    /// is always written; a body without it still parses (as an empty string), because
    /// some servers omit it.
    #[serde(default)]
    pub error: String,
    /// The payment methods the server accepts, any one of which pays for the resource.
    pub accepts: Vec<PaymentRequirements>,
    /// Top-level fields outside the spec, kept as they are so that they survive a round
    /// trip. Our server puts human-readable ones here for `curl` users (`amount`,
    /// `currency`, `payee`, `reference`, `facilitatorUrl`, `ttl`, `message`). Keys must
    /// not repeat the fields above.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// What a v1 client sends, base64-encoded, in the [`X_PAYMENT`] header (`PaymentPayload`
/// in spec section 5.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentPayload {
    /// Protocol version: [`VERSION`] (1).
    #[serde(rename = "x402Version")]
    pub x402_version: u32,
    /// Payment scheme chosen from the server's `accepts`.
    pub scheme: String,
    /// Network chosen from the server's `accepts`.
    pub network: String,
    /// The scheme-specific proof of payment.
    pub payload: Value,
}

/// What a v1 server returns, base64-encoded, in the [`X_PAYMENT_RESPONSE`] header: the
/// outcome of settling the payment (`SettlementResponse` in spec section 5.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SettlementResponse {
    /// Whether the payment was settled.
    pub success: bool,
    /// Why settlement failed (such as `"insufficient_funds"`); absent on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_reason: Option<String>,
    /// Transaction hash or signature of the settlement; empty when it failed.
    pub transaction: String,
    /// Network the payment was settled on.
    pub network: String,
    /// Address of the payer's wallet.
    pub payer: String,
    /// Fields outside the spec, kept as they are so that they survive a round trip: the
    /// `receipt` scheme adds `reference` and `receipt` here. Keys must not repeat the
    /// fields above.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{decode_header, encode_header};
    use serde::de::DeserializeOwned;
    use serde_json::json;

    /// Parses `value` as `T`, writes it back and checks that nothing was lost, renamed or
    /// added.
    fn round_trip<T: Serialize + DeserializeOwned>(value: &Value) -> T {
        let parsed: T = serde_json::from_value(value.clone()).unwrap();
        assert_eq!(&serde_json::to_value(&parsed).unwrap(), value);
        let through_header: T = decode_header(&encode_header(&parsed)).unwrap();
        assert_eq!(&serde_json::to_value(&through_header).unwrap(), value);
        parsed
    }

    /// The 402 body of spec section 5.1.1, with the `receipt` scheme on Solana devnet.
    fn payment_required_body() -> Value {
        json!({
            "x402Version": 1,
            "error": "X-PAYMENT header is required",
            "accepts": [
                {
                    "scheme": "receipt",
                    "network": "solana-devnet",
                    "maxAmountRequired": "10000",
                    "asset": "4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU",
                    "payTo": "7tR4pXk1zWZ8cQmV3aN5bJ2hY6fG9sD1eL4uK8rT3wQx",
                    "resource": "https://api.example.com/premium-data",
                    "description": "Access to premium market data",
                    "mimeType": "application/json",
                    "outputSchema": null,
                    "maxTimeoutSeconds": 60,
                    "extra": {
                        "reference": "3yZe7d8Fh2kQm9Lp4Vx6Ns1Ra5Tc8Wb2Jg7Hd3Kf9Mq",
                        "expiresAt": 1740672154
                    }
                }
            ]
        })
    }

    #[test]
    fn payment_required_round_trips() {
        let body = payment_required_body();
        let required: PaymentRequired = round_trip(&body);
        assert_eq!(required.x402_version, VERSION);
        assert_eq!(required.error, "X-PAYMENT header is required");
        assert!(required.extra.is_empty(), "{:?}", required.extra);
        let [accept] = &required.accepts[..] else {
            panic!("one entry expected: {:?}", required.accepts);
        };
        assert_eq!(accept.scheme, "receipt");
        assert_eq!(accept.network, "solana-devnet");
        assert_eq!(accept.max_amount_required, "10000");
        assert_eq!(accept.resource, "https://api.example.com/premium-data");
        assert_eq!(accept.description, "Access to premium market data");
        assert_eq!(accept.mime_type.as_deref(), Some("application/json"));
        assert_eq!(accept.output_schema, Some(Value::Null));
        assert_eq!(
            accept.pay_to,
            "7tR4pXk1zWZ8cQmV3aN5bJ2hY6fG9sD1eL4uK8rT3wQx"
        );
        assert_eq!(accept.max_timeout_seconds, 60);
        assert_eq!(accept.asset, "4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU");
        let extra = accept.extra.as_ref().unwrap();
        assert_eq!(extra["expiresAt"], json!(1740672154));
    }

    #[test]
    fn unknown_top_level_fields_of_the_402_body_survive() {
        let mut body = payment_required_body();
        let human = json!({
            "amount": "0.01",
            "currency": "USDC",
            "payee": "7tR4pXk1zWZ8cQmV3aN5bJ2hY6fG9sD1eL4uK8rT3wQx",
            "reference": "3yZe7d8Fh2kQm9Lp4Vx6Ns1Ra5Tc8Wb2Jg7Hd3Kf9Mq",
            "facilitatorUrl": "https://verifier.example.com",
            "ttl": 60,
            "message": "Pay 0.01 USDC to get this resource",
            "somethingNew": {"nested": [1, 2, 3]}
        });
        for (key, value) in human.as_object().unwrap() {
            body[key] = value.clone();
        }
        let required: PaymentRequired = round_trip(&body);
        assert_eq!(required.extra.len(), 8);
        assert_eq!(required.extra["ttl"], json!(60));
        assert_eq!(
            required.extra["facilitatorUrl"],
            "https://verifier.example.com"
        );
        assert_eq!(required.accepts.len(), 1);
        assert_eq!(required.error, "X-PAYMENT header is required");
    }

    #[test]
    fn optional_requirement_fields_are_omitted_when_absent() {
        // The requirements of spec section 7.1's example: no outputSchema.
        let requirements = json!({
            "scheme": "receipt",
            "network": "solana-devnet",
            "maxAmountRequired": "10000",
            "resource": "https://api.example.com/premium-data",
            "description": "Access to premium market data",
            "payTo": "7tR4pXk1zWZ8cQmV3aN5bJ2hY6fG9sD1eL4uK8rT3wQx",
            "maxTimeoutSeconds": 60,
            "asset": "4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU"
        });
        let parsed: PaymentRequirements = round_trip(&requirements);
        assert_eq!(parsed.mime_type, None);
        assert_eq!(parsed.output_schema, None);
        assert_eq!(parsed.extra, None);

        let mut with_schema = requirements.clone();
        with_schema["outputSchema"] = json!({"type": "object"});
        let parsed: PaymentRequirements = round_trip(&with_schema);
        assert_eq!(parsed.output_schema, Some(json!({"type": "object"})));
    }

    #[test]
    fn required_requirement_fields_are_required() {
        let entry = &payment_required_body()["accepts"][0];
        for field in [
            "scheme",
            "network",
            "maxAmountRequired",
            "resource",
            "description",
            "payTo",
            "maxTimeoutSeconds",
            "asset",
        ] {
            let mut incomplete = entry.clone();
            incomplete.as_object_mut().unwrap().remove(field);
            let result = serde_json::from_value::<PaymentRequirements>(incomplete);
            assert!(result.is_err(), "parsed without {field}");
        }
    }

    #[test]
    fn a_402_body_without_error_parses_and_gains_one() {
        let mut body = payment_required_body();
        body.as_object_mut().unwrap().remove("error");
        let required: PaymentRequired = serde_json::from_value(body.clone()).unwrap();
        assert_eq!(required.error, "");
        assert!(required.extra.is_empty());
        body["error"] = json!("");
        assert_eq!(serde_json::to_value(&required).unwrap(), body);
    }

    #[test]
    fn a_402_body_without_accepts_is_refused() {
        let mut body = payment_required_body();
        body.as_object_mut().unwrap().remove("accepts");
        assert!(serde_json::from_value::<PaymentRequired>(body).is_err());
    }

    #[test]
    fn payment_payload_round_trips() {
        // Spec section 5.2.1, with a `receipt` scheme payload.
        let payload = json!({
            "x402Version": 1,
            "scheme": "receipt",
            "network": "solana-devnet",
            "payload": {
                "transaction": "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                "reference": "3yZe7d8Fh2kQm9Lp4Vx6Ns1Ra5Tc8Wb2Jg7Hd3Kf9Mq"
            }
        });
        let parsed: PaymentPayload = round_trip(&payload);
        assert_eq!(parsed.x402_version, VERSION);
        assert_eq!(parsed.scheme, "receipt");
        assert_eq!(parsed.network, "solana-devnet");
        assert_eq!(
            parsed.payload["reference"],
            "3yZe7d8Fh2kQm9Lp4Vx6Ns1Ra5Tc8Wb2Jg7Hd3Kf9Mq"
        );
    }

    #[test]
    fn spec_x_payment_header_decodes() {
        // The X-PAYMENT header of specs/transports-v1/http.md, as printed there.
        let header = "eyJ4NDAyVmVyc2lvbiI6MSwic2NoZW1lIjoiZXhhY3QiLCJuZXR3b3JrIjoiYmFzZS1zZXBvbGlhIiwicGF5bG9hZCI6eyJzaWduYXR1cmUiOiIweDJkNmE3NTg4ZDZhY2NhNTA1Y2JmMGQ5YTRhMjI3ZTBjNTJjNmMzNDAwOGM4ZTg5ODZhMTI4MzI1OTc2NDE3MzYwOGEyY2U2NDk2NjQyZTM3N2Q2ZGE4ZGJiZjU4MzZlOWJkMTUwOTJmOWVjYWIwNWRlZDNkNjI5M2FmMTQ4YjU3MWMiLCJhdXRob3JpemF0aW9uIjp7ImZyb20iOiIweDg1N2IwNjUxOUU5MWUzQTU0NTM4NzkxYkRiYjBFMjIzNzNlMzZiNjYiLCJ0byI6IjB4MjA5NjkzQmM2YWZjMEM1MzI4YkEzNkZhRjAzQzUxNEVGMzEyMjg3QyIsInZhbHVlIjoiMTAwMDAiLCJ2YWxpZEFmdGVyIjoiMTc0MDY3MjA4OSIsInZhbGlkQmVmb3JlIjoiMTc0MDY3MjE1NCIsIm5vbmNlIjoiMHhmMzc0NjYxM2MyZDkyMGI1ZmRhYmMwODU2ZjJhZWIyZDRmODhlZTYwMzdiOGNjNWQwNGE3MWE0NDYyZjEzNDgwIn19fQ==";
        let payload: PaymentPayload = decode_header(header).unwrap();
        assert_eq!(payload.x402_version, 1);
        assert_eq!(payload.scheme, "exact");
        assert_eq!(payload.network, "base-sepolia");
        assert_eq!(payload.payload["authorization"]["value"], "10000");
        assert_eq!(
            payload.payload["authorization"]["from"],
            "0x857b06519E91e3A54538791bDbb0E22373e36b66"
        );
    }

    #[test]
    fn settlement_response_round_trips() {
        // Spec section 5.3.1, on Solana, with the `receipt` scheme's two additions.
        let response = json!({
            "success": true,
            "transaction": "5VERv8NMvzbJMEkV8xnrLkEaWRtSz9CosKDYjCJjBRnbJLgp8uirBgmQpjKhoR4tjF3ZpRzrFmBV6UjKdiSZkQUW",
            "network": "solana-devnet",
            "payer": "4Nd1mBQtrMJVYVfKf2PJy9NZUZdTAsp7D4xWLs4gDB4T",
            "reference": "3yZe7d8Fh2kQm9Lp4Vx6Ns1Ra5Tc8Wb2Jg7Hd3Kf9Mq",
            "receipt": "9kCx3mZt8RvQ2bHn6Yw1Lp5Ue7Jd4Fa2Gs9Tk3Nc8Vr"
        });
        let parsed: SettlementResponse = round_trip(&response);
        assert!(parsed.success);
        assert_eq!(parsed.error_reason, None);
        assert_eq!(parsed.network, "solana-devnet");
        assert_eq!(parsed.payer, "4Nd1mBQtrMJVYVfKf2PJy9NZUZdTAsp7D4xWLs4gDB4T");
        assert_eq!(parsed.extra.len(), 2);
        assert_eq!(
            parsed.extra["receipt"],
            "9kCx3mZt8RvQ2bHn6Yw1Lp5Ue7Jd4Fa2Gs9Tk3Nc8Vr"
        );
    }

    #[test]
    fn failed_settlement_response_round_trips() {
        // The error response of spec section 7.2.
        let response = json!({
            "success": false,
            "errorReason": "insufficient_funds",
            "payer": "4Nd1mBQtrMJVYVfKf2PJy9NZUZdTAsp7D4xWLs4gDB4T",
            "transaction": "",
            "network": "solana-devnet"
        });
        let parsed: SettlementResponse = round_trip(&response);
        assert!(!parsed.success);
        assert_eq!(parsed.error_reason.as_deref(), Some("insufficient_funds"));
        assert_eq!(parsed.transaction, "");
        assert!(parsed.extra.is_empty());
    }

    #[test]
    fn spec_x_payment_response_header_decodes() {
        // The failure X-PAYMENT-RESPONSE header of specs/transports-v1/http.md.
        let header = "eyJzdWNjZXNzIjpmYWxzZSwiZXJyb3JSZWFzb24iOiJpbnN1ZmZpY2llbnRfZnVuZHMiLCJ0cmFuc2FjdGlvbiI6IiIsIm5ldHdvcmsiOiJiYXNlLXNlcG9saWEiLCJwYXllciI6IjB4ODU3YjA2NTE5RTkxZTNBNTQ1Mzg3OTFiRGJiMEUyMjM3M2UzNmI2NiJ9";
        let response: SettlementResponse = decode_header(header).unwrap();
        assert!(!response.success);
        assert_eq!(response.error_reason.as_deref(), Some("insufficient_funds"));
        assert_eq!(response.transaction, "");
        assert_eq!(response.network, "base-sepolia");
        assert_eq!(response.payer, "0x857b06519E91e3A54538791bDbb0E22373e36b66");
        assert!(response.extra.is_empty());
    }

    #[test]
    fn header_names_match_the_transport_spec() {
        assert_eq!(X_PAYMENT, "X-PAYMENT");
        assert_eq!(X_PAYMENT_RESPONSE, "X-PAYMENT-RESPONSE");
    }
}
