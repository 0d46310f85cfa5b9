//! A channel's address, derived from who and what it binds, and the voucher message the
//! seller's receiver authorizer signs to settle it.

use anchor_lang::prelude::Pubkey;

use super::PAYMENT_CHANNELS_PROGRAM;

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
    /// The seller's fee payer, the channel's zero-share payee.
    pub payee: Pubkey,
    pub mint: Pubkey,
    /// The seller's receiver authorizer, which signs vouchers.
    pub authorized_signer: Pubkey,
    /// The payload's `nonce`.
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

/// What a receiver authorizer signs to settle `channel` at `cumulative_amount` base units
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
