//! What a seller sends a facilitator to move a channel after its buyer paid: claims
//! (`settle` of the latest vouchers), payouts (`distribute`), the seal of a channel its
//! buyer is closing, and the close authorization that proves the seller's receiver
//! authorizer asked for a cooperative close. The authorization signs the SHA-256 digest
//! of the specification's domain-separated layout, so it authorizes that one close of
//! that one channel, at that voucher, on that network, program and facilitator, until
//! `validBefore`.

use anchor_lang::prelude::Pubkey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use solana_keypair::Keypair;
use solana_signature::Signature;
use solana_signer::Signer;

use super::types::{BatchVoucher, ChannelConfig};
use crate::scheme::channel::PAYMENT_CHANNELS_PROGRAM;

/// The domain a close authorization signs under.
const CLOSE_DOMAIN: &[u8] = b"x402:batch-settlement:svm:close:v1";

/// The most channels one claim or payout names: what fits in one transaction.
pub const MAX_CHANNELS_PER_SETTLEMENT: usize = 4;

/// The seller's word that a channel may be closed at a voucher: signed by the channel's
/// bound receiver authorizer, or (delegated to the facilitator) by no one, the
/// facilitator knowing its caller instead.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CloseAuthorization {
    /// Unix seconds.
    pub valid_before: i64,
    /// Base58; none on a delegated close.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// What a close authorization binds.
#[derive(Clone, Copy, Debug)]
pub struct CloseIntent<'a> {
    /// CAIP-2.
    pub network: &'a str,
    pub fee_payer: Pubkey,
    pub channel: Pubkey,
    /// The voucher it closes at, base units.
    pub max_claimable: u64,
    pub voucher_expires_at: i64,
}

impl CloseIntent<'_> {
    /// The digest the receiver authorizer signs, until `valid_before`.
    pub fn digest(&self, valid_before: i64) -> [u8; 32] {
        let network = self.network.as_bytes();
        let length = u16::try_from(network.len()).unwrap_or(u16::MAX);
        Sha256::new()
            .chain_update(CLOSE_DOMAIN)
            .chain_update([0])
            .chain_update(length.to_le_bytes())
            .chain_update(network)
            .chain_update(PAYMENT_CHANNELS_PROGRAM.as_ref())
            .chain_update(self.fee_payer.as_ref())
            .chain_update(self.channel.as_ref())
            .chain_update(self.max_claimable.to_le_bytes())
            .chain_update(self.voucher_expires_at.to_le_bytes())
            .chain_update(valid_before.to_le_bytes())
            .finalize()
            .into()
    }

    /// `authorizer`'s close authorization of this, until `valid_before`.
    pub fn sign(&self, authorizer: &Keypair, valid_before: i64) -> CloseAuthorization {
        CloseAuthorization {
            valid_before,
            signature: Some(
                authorizer
                    .sign_message(&self.digest(valid_before))
                    .to_string(),
            ),
        }
    }
}

impl CloseAuthorization {
    /// Whether `authorizer` signed it for `intent`. An unsigned (delegated) one is signed
    /// by no one.
    pub fn signed_by(&self, authorizer: &Pubkey, intent: &CloseIntent) -> bool {
        let Some(signature) = self
            .signature
            .as_deref()
            .and_then(|s| s.parse::<Signature>().ok())
        else {
            return false;
        };
        signature.verify(authorizer.as_ref(), &intent.digest(self.valid_before))
    }
}

/// One channel of a seller's claim: its configuration and its latest accepted voucher.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimEntry {
    pub channel_id: String,
    pub channel_config: ChannelConfig,
    pub voucher: BatchVoucher,
}

/// One channel of a seller's payout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelEntry {
    pub channel_id: String,
    pub channel_config: ChannelConfig,
}

/// What a seller asks its facilitator to settle on chain (the `payload` of a `/settle`
/// it authors).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum SellerPayload {
    /// Settles the latest vouchers of one to four channels: no funds move yet.
    Claim { claims: Vec<ClaimEntry> },
    /// Pays what one to four channels settled out to the seller.
    Settle { channels: Vec<ChannelEntry> },
    /// Seals a channel its buyer is closing with the seller's latest voucher, within the
    /// grace period: the seller is paid and the rest goes back to the buyer.
    Seal(Box<Seal>),
}

/// A seller's seal of one channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Seal {
    pub channel_id: String,
    pub channel_config: ChannelConfig,
    pub voucher: BatchVoucher,
    pub close_authorization: CloseAuthorization,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intent(channel: Pubkey) -> CloseIntent<'static> {
        CloseIntent {
            network: "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1",
            fee_payer: Pubkey::new_unique(),
            channel,
            max_claimable: 5_000,
            voucher_expires_at: 0,
        }
    }

    #[test]
    fn a_close_authorization_binds_its_channel_amount_and_expiry() {
        let authorizer = Keypair::new();
        let intent = intent(Pubkey::new_unique());
        let signed = intent.sign(&authorizer, 1_785_341_100);
        assert!(signed.signed_by(&authorizer.pubkey(), &intent));
        assert!(
            !signed.signed_by(&Pubkey::new_unique(), &intent),
            "another key"
        );
        let other_channel = CloseIntent {
            channel: Pubkey::new_unique(),
            ..intent
        };
        assert!(!signed.signed_by(&authorizer.pubkey(), &other_channel));
        let lower = CloseIntent {
            max_claimable: 4_000,
            ..intent
        };
        assert!(
            !signed.signed_by(&authorizer.pubkey(), &lower),
            "another voucher"
        );
        let other_network = CloseIntent {
            network: "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp",
            ..intent
        };
        assert!(!signed.signed_by(&authorizer.pubkey(), &other_network));
        let extended = CloseAuthorization {
            valid_before: signed.valid_before + 60,
            ..signed.clone()
        };
        assert!(
            !extended.signed_by(&authorizer.pubkey(), &intent),
            "later expiry"
        );
        let delegated = CloseAuthorization {
            valid_before: signed.valid_before,
            signature: None,
        };
        assert!(!delegated.signed_by(&authorizer.pubkey(), &intent));
    }

    #[test]
    fn the_digest_is_the_specifications_layout() {
        let intent = intent(Pubkey::new_unique());
        let mut bytes = b"x402:batch-settlement:svm:close:v1\0".to_vec();
        bytes.extend_from_slice(&(intent.network.len() as u16).to_le_bytes());
        bytes.extend_from_slice(intent.network.as_bytes());
        bytes.extend_from_slice(PAYMENT_CHANNELS_PROGRAM.as_ref());
        bytes.extend_from_slice(intent.fee_payer.as_ref());
        bytes.extend_from_slice(intent.channel.as_ref());
        bytes.extend_from_slice(&5_000u64.to_le_bytes());
        bytes.extend_from_slice(&0i64.to_le_bytes());
        bytes.extend_from_slice(&7i64.to_le_bytes());
        let expected: [u8; 32] = Sha256::digest(&bytes).into();
        assert_eq!(intent.digest(7), expected);
    }

    #[test]
    fn seller_payloads_read_as_the_specification_writes_them() {
        let config = serde_json::json!({
            "payer": Pubkey::new_unique().to_string(),
            "payerAuthorizer": Pubkey::new_unique().to_string(),
            "receiver": Pubkey::new_unique().to_string(),
            "receiverAuthorizer": Pubkey::new_unique().to_string(),
            "token": Pubkey::new_unique().to_string(),
            "withdrawDelay": 3600,
            "salt": "42",
            "openSlot": 341000000
        });
        let voucher = serde_json::json!({
            "channelId": "C", "maxClaimableAmount": "5000", "expiresAt": 0, "signature": "S"
        });
        let claim = serde_json::json!({"type": "claim", "claims": [
            {"channelId": "C", "channelConfig": config, "voucher": voucher}
        ]});
        let read: SellerPayload = serde_json::from_value(claim.clone()).unwrap();
        assert!(matches!(&read, SellerPayload::Claim { claims } if claims.len() == 1));
        assert_eq!(serde_json::to_value(&read).unwrap(), claim);
        let seal = serde_json::json!({"type": "seal", "channelId": "C", "channelConfig": config,
            "voucher": voucher, "closeAuthorization": {"validBefore": 1785341100, "signature": "A"}});
        let read: SellerPayload = serde_json::from_value(seal.clone()).unwrap();
        assert_eq!(serde_json::to_value(&read).unwrap(), seal);
        let settle = serde_json::json!({"type": "settle", "channels": [
            {"channelId": "C", "channelConfig": config}
        ]});
        let read: SellerPayload = serde_json::from_value(settle.clone()).unwrap();
        assert_eq!(serde_json::to_value(&read).unwrap(), settle);
    }
}
