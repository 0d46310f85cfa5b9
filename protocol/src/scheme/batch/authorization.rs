//! The server mode's bearer proof: instead of a voucher, the buyer signs that one request
//! (`requestId`) on one channel may cost up to `authorizedAmount` until `expiresAt`, for
//! the operator it trusted; after the answer, the operator signs the cumulative voucher
//! for what the request actually cost. The signed bytes are the specification's:
//! `"x402-batch-authorization-v2" || channel || payer || operator || u16 le len ||
//! requestId || u64 le amount || i64 le expiresAt`.

use anchor_lang::prelude::Pubkey;
use serde::{Deserialize, Serialize};
use solana_keypair::Keypair;
use solana_signature::Signature;
use solana_signer::Signer;

use super::types::decimal;
use crate::scheme::SchemeError;

/// The domain a proof signs under.
const AUTHORIZATION_DOMAIN: &[u8] = b"x402-batch-authorization-v2";

/// The proof's `type`.
const PROOF: &str = "proof";

/// The longest request identifier, in UTF-8 bytes.
pub const MAX_REQUEST_ID_BYTES: usize = 256;

/// The buyer's proof for one request in the server mode, on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchAuthorization {
    /// Always `proof`.
    #[serde(rename = "type")]
    pub kind: String,
    pub channel_id: String,
    pub payer: String,
    /// Fresh for each request: the seller accepts each once.
    pub request_id: String,
    /// The most this request may cost, base units (`0`: a refund's close intent).
    pub authorized_amount: String,
    /// Unix seconds.
    pub expires_at: i64,
    /// Ed25519 by the payer, base58.
    pub signature: String,
}

/// A proof read from the wire, its signature not yet checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadAuthorization {
    pub channel: Pubkey,
    pub payer: Pubkey,
    pub request_id: String,
    /// Base units.
    pub amount: u64,
    pub expires_at: i64,
    pub signature: Signature,
}

/// The bytes a proof signs.
fn message(
    channel: &Pubkey,
    payer: &Pubkey,
    operator: &Pubkey,
    request_id: &str,
    amount: u64,
    expires_at: i64,
) -> Vec<u8> {
    let id = request_id.as_bytes();
    let mut bytes = Vec::with_capacity(AUTHORIZATION_DOMAIN.len() + 96 + 2 + id.len() + 16);
    bytes.extend_from_slice(AUTHORIZATION_DOMAIN);
    bytes.extend_from_slice(channel.as_ref());
    bytes.extend_from_slice(payer.as_ref());
    bytes.extend_from_slice(operator.as_ref());
    bytes.extend_from_slice(&u16::try_from(id.len()).unwrap_or(u16::MAX).to_le_bytes());
    bytes.extend_from_slice(id);
    bytes.extend_from_slice(&amount.to_le_bytes());
    bytes.extend_from_slice(&expires_at.to_le_bytes());
    bytes
}

/// `payer`'s proof that request `request_id` on `channel` may cost up to `amount` base
/// units, for `operator`, until `expires_at`.
pub fn sign_authorization(
    payer: &Keypair,
    channel: &Pubkey,
    operator: &Pubkey,
    request_id: &str,
    amount: u64,
    expires_at: i64,
) -> BatchAuthorization {
    let signed = message(
        channel,
        &payer.pubkey(),
        operator,
        request_id,
        amount,
        expires_at,
    );
    BatchAuthorization {
        kind: PROOF.into(),
        channel_id: channel.to_string(),
        payer: payer.pubkey().to_string(),
        request_id: request_id.into(),
        authorized_amount: amount.to_string(),
        expires_at,
        signature: payer.sign_message(&signed).to_string(),
    }
}

impl BatchAuthorization {
    /// Its fields, typed; `field` names the first that is malformed. The request
    /// identifier is 1 to 256 bytes.
    pub fn read(&self) -> Result<ReadAuthorization, SchemeError> {
        if self.kind != PROOF {
            return Err(SchemeError::Malformed("authorization.type"));
        }
        if self.request_id.is_empty() || self.request_id.len() > MAX_REQUEST_ID_BYTES {
            return Err(SchemeError::Malformed("authorization.requestId"));
        }
        let key = |text: &str, field| {
            text.parse::<Pubkey>()
                .map_err(|_| SchemeError::Malformed(field))
        };
        Ok(ReadAuthorization {
            channel: key(&self.channel_id, "authorization.channelId")?,
            payer: key(&self.payer, "authorization.payer")?,
            request_id: self.request_id.clone(),
            amount: decimal(&self.authorized_amount)
                .ok_or(SchemeError::Malformed("authorization.authorizedAmount"))?,
            expires_at: self.expires_at,
            signature: self
                .signature
                .parse()
                .map_err(|_| SchemeError::Malformed("authorization.signature"))?,
        })
    }
}

impl ReadAuthorization {
    /// Whether its payer signed it for `operator`.
    pub fn signed_for(&self, operator: &Pubkey) -> bool {
        let signed = message(
            &self.channel,
            &self.payer,
            operator,
            &self.request_id,
            self.amount,
            self.expires_at,
        );
        self.signature.verify(self.payer.as_ref(), &signed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_binds_its_channel_operator_request_amount_and_expiry() {
        let payer = Keypair::new();
        let operator = Pubkey::new_unique();
        let channel = Pubkey::new_unique();
        let proof = sign_authorization(&payer, &channel, &operator, "req-1", 1_000, 1_758_215_100);
        let read = proof.read().unwrap();
        assert!(read.signed_for(&operator));
        assert!(!read.signed_for(&Pubkey::new_unique()), "another operator");
        for changed in [
            ReadAuthorization {
                channel: Pubkey::new_unique(),
                ..read.clone()
            },
            ReadAuthorization {
                request_id: "req-2".into(),
                ..read.clone()
            },
            ReadAuthorization {
                amount: 1_001,
                ..read.clone()
            },
            ReadAuthorization {
                expires_at: read.expires_at + 1,
                ..read.clone()
            },
        ] {
            assert!(!changed.signed_for(&operator), "{changed:?}");
        }
    }

    #[test]
    fn the_signed_bytes_are_the_specifications() {
        let (channel, payer, operator) = (
            Pubkey::new_unique(),
            Pubkey::new_unique(),
            Pubkey::new_unique(),
        );
        let mut expected = b"x402-batch-authorization-v2".to_vec();
        for key in [channel, payer, operator] {
            expected.extend_from_slice(key.as_ref());
        }
        expected.extend_from_slice(&[3, 0]);
        expected.extend_from_slice(b"abc");
        expected.extend_from_slice(&7u64.to_le_bytes());
        expected.extend_from_slice(&9i64.to_le_bytes());
        assert_eq!(message(&channel, &payer, &operator, "abc", 7, 9), expected);
    }

    #[test]
    fn a_malformed_proof_is_refused_before_its_signature_is_checked() {
        let payer = Keypair::new();
        let proof = sign_authorization(
            &payer,
            &Pubkey::new_unique(),
            &Pubkey::new_unique(),
            "r",
            5,
            9,
        );
        let broken = |change: fn(&mut BatchAuthorization)| {
            let mut proof = proof.clone();
            change(&mut proof);
            proof.read().err()
        };
        assert_eq!(
            broken(|p| p.kind = "voucher".into()),
            Some(SchemeError::Malformed("authorization.type"))
        );
        assert_eq!(
            broken(|p| p.request_id = String::new()),
            Some(SchemeError::Malformed("authorization.requestId"))
        );
        assert_eq!(
            broken(|p| p.request_id = "x".repeat(257)),
            Some(SchemeError::Malformed("authorization.requestId"))
        );
        assert_eq!(
            broken(|p| p.authorized_amount = "-1".into()),
            Some(SchemeError::Malformed("authorization.authorizedAmount"))
        );
    }
}
