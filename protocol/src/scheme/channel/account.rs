//! A channel's address, derived from who and what it binds, the voucher message its
//! authorized signer signs to settle it, and the channel account as the program keeps it.

use anchor_lang::prelude::Pubkey;

use super::PAYMENT_CHANNELS_PROGRAM;
use crate::ledger::AccountFilter;

/// The channel account's seed prefix.
const CHANNEL_SEED: &[u8] = b"channel";

/// A voucher's tag and version, its first two bytes.
const VOUCHER_MAGIC: [u8; 2] = [0x56, 0x01];

/// The voucher message's length: magic, channel, amount, expiry.
pub const VOUCHER_MESSAGE_BYTES: usize = 2 + 32 + 8 + 8;

/// Who and what a channel binds, as its address is derived from them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelSeeds {
    /// The buyer, who deposits.
    pub payer: Pubkey,
    /// The seller's fee payer, the channel's zero-share payee and rent payer.
    pub payee: Pubkey,
    pub mint: Pubkey,
    /// Who signs vouchers: the seller's receiver authorizer in `upto`, the buyer's
    /// payer authorizer in `batch-settlement`.
    pub authorized_signer: Pubkey,
    pub salt: u64,
    pub open_slot: u64,
}

/// The channel's address under the canonical program.
pub fn channel_address(seeds: &ChannelSeeds) -> Pubkey {
    let salt = seeds.salt.to_le_bytes();
    let open_slot = seeds.open_slot.to_le_bytes();
    Pubkey::find_program_address(
        &[
            CHANNEL_SEED,
            seeds.payer.as_ref(),
            seeds.payee.as_ref(),
            seeds.mint.as_ref(),
            seeds.authorized_signer.as_ref(),
            &salt,
            &open_slot,
        ],
        &PAYMENT_CHANNELS_PROGRAM,
    )
    .0
}

/// What the channel's authorized signer signs to settle `channel` at `cumulative_amount` base units
/// until `expires_at` (unix seconds): `0x56 0x01 || channel || u64 le || i64 le`.
pub fn voucher_message(
    channel: &Pubkey,
    cumulative_amount: u64,
    expires_at: i64,
) -> [u8; VOUCHER_MESSAGE_BYTES] {
    let mut message = [0u8; VOUCHER_MESSAGE_BYTES];
    message[..2].copy_from_slice(&VOUCHER_MAGIC);
    message[2..34].copy_from_slice(channel.as_ref());
    message[34..42].copy_from_slice(&cumulative_amount.to_le_bytes());
    message[42..].copy_from_slice(&expires_at.to_le_bytes());
    message
}

/// The channel account's size: the program's fixed 256-byte layout.
pub const CHANNEL_ACCOUNT_BYTES: usize = 256;

/// Where the channel account holds its buyer, and its rent payer (the seller's fee payer).
const PAYER_AT: usize = 88;
const RENT_PAYER_AT: usize = 216;

/// A channel's state, as the program's `status` byte says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelStatus {
    /// Vouchers may still settle it; the buyer may `request_close`.
    Open,
    /// Its watermark is locked: `distribute` (or the buyer's `withdraw_payer`) is next.
    Sealed,
    /// The buyer asked to close: the payee may still `settle_and_seal` within the grace
    /// period; after it, anyone may `seal`.
    Closing,
    /// Every token paid out: only `reclaim` is left, once its slot window passed.
    Distributed,
}

/// A channel account of the payment-channels program, read from its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelAccount {
    pub status: ChannelStatus,
    pub salt: u64,
    pub deposit: u64,
    /// What vouchers have settled so far, in base units.
    pub settled: u64,
    /// What `distribute` has paid out of `settled` so far.
    pub payout_watermark: u64,
    /// Unix seconds when the buyer asked to close; zero unless closing.
    pub closure_started_at: i64,
    /// Unix seconds when the buyer withdrew its refund; zero if not yet.
    pub payer_withdrawn_at: i64,
    /// Seconds.
    pub grace_period: u32,
    /// The SHA-256 commitment to its payout, fixed at `open` and checked by every
    /// `distribute`: who receives what it settles.
    pub distribution_hash: [u8; 32],
    pub payer: Pubkey,
    pub payee: Pubkey,
    pub authorized_signer: Pubkey,
    pub mint: Pubkey,
    pub rent_payer: Pubkey,
    pub open_slot: u64,
}

impl ChannelAccount {
    /// Reads a channel account's data; `None` for anything else (another account shape,
    /// version or size).
    pub fn read(data: &[u8]) -> Option<ChannelAccount> {
        const CHANNEL: u8 = 1;
        const VERSION: u8 = 1;
        if data.len() != CHANNEL_ACCOUNT_BYTES || data[0] != CHANNEL || data[1] != VERSION {
            return None;
        }
        let u64_at = |at: usize| u64::from_le_bytes(data[at..at + 8].try_into().expect("8 bytes"));
        let key_at = |at: usize| Pubkey::new_from_array(data[at..at + 32].try_into().expect("32"));
        let status = match data[3] {
            0 => ChannelStatus::Open,
            1 => ChannelStatus::Sealed,
            2 => ChannelStatus::Closing,
            3 => ChannelStatus::Distributed,
            _ => return None,
        };
        Some(ChannelAccount {
            status,
            salt: u64_at(4),
            deposit: u64_at(12),
            settled: u64_at(20),
            payout_watermark: u64_at(28),
            closure_started_at: u64_at(36) as i64,
            payer_withdrawn_at: u64_at(44) as i64,
            grace_period: u32::from_le_bytes(data[52..56].try_into().expect("4 bytes")),
            distribution_hash: data[56..88].try_into().expect("32 bytes"),
            payer: key_at(PAYER_AT),
            payee: key_at(120),
            authorized_signer: key_at(152),
            mint: key_at(184),
            rent_payer: key_at(RENT_PAYER_AT),
            open_slot: u64_at(248),
        })
    }

    /// Its address, re-derived from what it binds.
    pub fn address(&self) -> Pubkey {
        channel_address(&ChannelSeeds {
            payer: self.payer,
            payee: self.payee,
            mint: self.mint,
            authorized_signer: self.authorized_signer,
            salt: self.salt,
            open_slot: self.open_slot,
        })
    }
}

/// The filters that find the channels `rent_payer` funded (a seller's fee payer).
pub fn funded_by(rent_payer: &Pubkey) -> Vec<AccountFilter> {
    vec![
        AccountFilter::DataSize(CHANNEL_ACCOUNT_BYTES as u64),
        AccountFilter::Memcmp {
            offset: RENT_PAYER_AT,
            bytes: rent_payer.to_bytes().to_vec(),
        },
    ]
}

/// The filters that find the channels `payer` deposited in (a buyer).
pub fn deposited_by(payer: &Pubkey) -> Vec<AccountFilter> {
    vec![
        AccountFilter::DataSize(CHANNEL_ACCOUNT_BYTES as u64),
        AccountFilter::Memcmp {
            offset: PAYER_AT,
            bytes: payer.to_bytes().to_vec(),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seeds() -> ChannelSeeds {
        ChannelSeeds {
            payer: Pubkey::new_unique(),
            payee: Pubkey::new_unique(),
            mint: Pubkey::new_unique(),
            authorized_signer: Pubkey::new_unique(),
            salt: 7,
            open_slot: 341_000_000,
        }
    }

    #[test]
    fn a_channel_address_binds_every_seed_under_the_canonical_program() {
        let base = seeds();
        let address = channel_address(&base);
        assert!(
            !address.is_on_curve(),
            "a program address has no private key"
        );
        let other = Pubkey::new_unique();
        for changed in [
            ChannelSeeds {
                payer: other,
                ..base
            },
            ChannelSeeds {
                payee: other,
                ..base
            },
            ChannelSeeds {
                mint: other,
                ..base
            },
            ChannelSeeds {
                authorized_signer: other,
                ..base
            },
            ChannelSeeds { salt: 8, ..base },
            ChannelSeeds {
                open_slot: base.open_slot + 1,
                ..base
            },
        ] {
            assert_ne!(channel_address(&changed), address, "{changed:?}");
        }
    }

    #[test]
    fn the_voucher_message_is_magic_channel_amount_and_expiry_little_endian() {
        let channel = Pubkey::new_from_array([9; 32]);
        let message = voucher_message(&channel, 0x0102, -2);
        assert_eq!(message.len(), 50);
        assert_eq!(&message[..2], &[0x56, 0x01]);
        assert_eq!(&message[2..34], &[9; 32]);
        assert_eq!(&message[34..42], &[0x02, 0x01, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            &message[42..],
            &[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]
        );
    }
}
