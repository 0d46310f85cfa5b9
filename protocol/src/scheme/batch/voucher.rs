//! Vouchers: the buyer's payer authorizer signs the channel's new cumulative total for
//! each request (`0x56 0x01 || channel || u64 le || i64 le`, the program's own layout),
//! and anyone can check one against the channel's authorized signer without a ledger.

use anchor_lang::prelude::Pubkey;
use solana_keypair::Keypair;
use solana_signature::Signature;
use solana_signer::Signer;

use super::types::{decimal, BatchVoucher};
use crate::scheme::channel::{voucher_message, Voucher};
use crate::scheme::SchemeError;

/// A voucher read from the wire, its signature not yet checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadVoucher {
    pub channel: Pubkey,
    /// Base units.
    pub cumulative: u64,
    pub expires_at: i64,
    pub signature: Signature,
}

impl ReadVoucher {
    /// Whether `signer` signed this voucher.
    pub fn signed_by(&self, signer: &Pubkey) -> bool {
        let message = voucher_message(&self.channel, self.cumulative, self.expires_at);
        self.signature.verify(signer.as_ref(), &message)
    }

    /// The voucher as the program takes it, signed by `signer`.
    pub fn for_program(&self, signer: Pubkey) -> Voucher {
        Voucher {
            channel: self.channel,
            cumulative_amount: self.cumulative,
            expires_at: self.expires_at,
            signer,
            signature: self.signature.into(),
        }
    }
}

impl BatchVoucher {
    /// Its fields, typed; `field` names the first that is malformed.
    pub fn read(&self) -> Result<ReadVoucher, SchemeError> {
        let signature = bs58::decode(&self.signature)
            .into_vec()
            .ok()
            .and_then(|bytes| <[u8; 64]>::try_from(bytes).ok())
            .ok_or(SchemeError::Malformed("voucher.signature"))?;
        Ok(ReadVoucher {
            channel: self
                .channel_id
                .parse()
                .map_err(|_| SchemeError::Malformed("voucher.channelId"))?,
            cumulative: decimal(&self.max_claimable_amount)
                .ok_or(SchemeError::Malformed("voucher.maxClaimableAmount"))?,
            expires_at: self.expires_at,
            signature: Signature::from(signature),
        })
    }
}

/// `signer`'s voucher that `channel` may settle up to `cumulative` base units, never
/// expiring.
pub fn sign_voucher(signer: &Keypair, channel: &Pubkey, cumulative: u64) -> BatchVoucher {
    let signature = signer.sign_message(&voucher_message(channel, cumulative, 0));
    BatchVoucher {
        channel_id: channel.to_string(),
        max_claimable_amount: cumulative.to_string(),
        expires_at: 0,
        signature: signature.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_voucher_reads_back_and_verifies_only_for_its_signer_and_amount() {
        let signer = Keypair::new();
        let channel = Pubkey::new_unique();
        let wire = sign_voucher(&signer, &channel, 5_000);
        assert_eq!(wire.max_claimable_amount, "5000");
        assert_eq!(wire.expires_at, 0);
        let read = wire.read().unwrap();
        assert_eq!((read.channel, read.cumulative), (channel, 5_000));
        assert!(read.signed_by(&signer.pubkey()));
        assert!(!read.signed_by(&Pubkey::new_unique()), "another key");
        let raised = ReadVoucher {
            cumulative: 5_001,
            ..read
        };
        assert!(!raised.signed_by(&signer.pubkey()), "another amount");
        let elsewhere = ReadVoucher {
            channel: Pubkey::new_unique(),
            ..read
        };
        assert!(!elsewhere.signed_by(&signer.pubkey()), "another channel");
    }

    #[test]
    fn a_malformed_voucher_names_its_field() {
        let wire = sign_voucher(&Keypair::new(), &Pubkey::new_unique(), 1);
        let malformed = |change: fn(&mut BatchVoucher)| {
            let mut v = wire.clone();
            change(&mut v);
            v.read().err()
        };
        let field = |f| Some(SchemeError::Malformed(f));
        assert_eq!(
            malformed(|v| v.max_claimable_amount = "-1".into()),
            field("voucher.maxClaimableAmount")
        );
        assert_eq!(
            malformed(|v| v.max_claimable_amount = "1.5".into()),
            field("voucher.maxClaimableAmount")
        );
        assert_eq!(
            malformed(|v| v.signature = "abc".into()),
            field("voucher.signature")
        );
        assert_eq!(
            malformed(|v| v.channel_id = "x".into()),
            field("voucher.channelId")
        );
    }
}
