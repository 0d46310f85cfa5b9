//! The x402 facilitator API (`POST /verify`, `POST /settle`, `GET /supported`), with
//! which a resource server delegates checking and settling payments.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The body of `/verify` and `/settle`: a payment and what it must pay. Both stay
/// JSON here: their shape depends on `paymentPayload.x402Version`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FacilitatorRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x402_version: Option<u32>,
    pub payment_payload: Value,
    pub payment_requirements: Value,
}

/// The answer of `/verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyResponse {
    pub is_valid: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalid_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer: Option<String>,
    /// What the scheme adds (`batch-settlement`: the channel's state).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<Map<String, Value>>,
}

/// The answer of `/settle`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SettleResponse {
    pub success: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer: Option<String>,
    pub transaction: String,
    pub network: String,
    /// Base units charged, for schemes where it can differ from the requirements'
    /// (`upto`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<String>,
    /// What the scheme adds (`batch-settlement`: the channel's state).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<Map<String, Value>>,
}

/// One payment kind a facilitator supports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SupportedKind {
    pub x402_version: u32,
    pub scheme: String,
    pub network: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<Map<String, Value>>,
}

/// The answer of `/supported`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SupportedResponse {
    pub kinds: Vec<SupportedKind>,
    #[serde(default)]
    pub extensions: Vec<String>,
    /// CAIP-2 patterns to the addresses that sign as the facilitator.
    #[serde(default)]
    pub signers: Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_examples_round_trip() {
        let verify = serde_json::json!({"isValid": false, "invalidReason": "insufficient_funds", "payer": "CKPK"});
        let parsed: VerifyResponse = serde_json::from_value(verify.clone()).unwrap();
        assert_eq!(serde_json::to_value(&parsed).unwrap(), verify);
        let settle = serde_json::json!({"success": true, "payer": "CKPK", "transaction": "5x", "network": "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1"});
        let parsed: SettleResponse = serde_json::from_value(settle.clone()).unwrap();
        assert_eq!(serde_json::to_value(&parsed).unwrap(), settle);
        let supported = serde_json::json!({
            "kinds": [{"x402Version": 2, "scheme": "receipt", "network": "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1"}],
            "extensions": [],
            "signers": {"solana:*": ["CKPK"]}
        });
        let parsed: SupportedResponse = serde_json::from_value(supported.clone()).unwrap();
        assert_eq!(serde_json::to_value(&parsed).unwrap(), supported);
        let request: FacilitatorRequest = serde_json::from_value(
            serde_json::json!({"paymentPayload": {}, "paymentRequirements": {}}),
        )
        .unwrap();
        assert_eq!(request.x402_version, None);
    }
}
