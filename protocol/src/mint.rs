//! What a mint says about itself: its decimals and the token program that owns it. Read
//! from the account, never taken from a counterparty.

use anchor_lang::prelude::Pubkey;
use anchor_spl::token::spl_token;
use anchor_spl::token_2022::spl_token_2022::{
    self,
    extension::{BaseStateWithExtensions, ExtensionType, StateWithExtensions},
};

use crate::ledger::LedgerAccount;
use crate::network::Cluster;

/// A mint's facts, as its account holds them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MintInfo {
    pub decimals: u8,
    /// SPL Token or Token-2022.
    pub token_program: Pubkey,
    /// Whether a transfer delivers its whole amount and runs no foreign code: false for a
    /// Token-2022 mint with a transfer fee or a transfer hook.
    pub delivers_in_full: bool,
}

/// Why an account is not a usable mint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MintError {
    #[error("the account is not owned by SPL Token or Token-2022")]
    NotATokenProgram,
    #[error("the account is not an initialized mint")]
    NotAMint,
}

/// A mint whose facts the client knows without asking a ledger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KnownMint {
    /// The mint's address (base58).
    pub address: &'static str,
    pub decimals: u8,
    /// The cluster it exists on: an offer naming another network for it is not what it
    /// says (its money is on this cluster).
    pub cluster: Cluster,
    /// A stablecoin (1.00 is about a dollar): the only tokens a default cap written as a
    /// decimal amount ("1.00 per request") may be read in. Any other token's 1.00 could
    /// be worth anything (1 wSOL, 1 wBTC).
    pub stablecoin: bool,
}

/// USDC on Solana mainnet and devnet, whose decimals (6) and cluster are known without
/// asking. Both are stablecoins.
pub const KNOWN_MINTS: [KnownMint; 2] = [
    KnownMint {
        address: "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v",
        decimals: 6,
        cluster: Cluster::Mainnet,
        stablecoin: true,
    },
    KnownMint {
        address: "4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU",
        decimals: 6,
        cluster: Cluster::Devnet,
        stablecoin: true,
    },
];

/// The entry of a well-known mint.
fn known(mint: &Pubkey) -> Option<&'static KnownMint> {
    let mint = mint.to_string();
    KNOWN_MINTS.iter().find(|known| known.address == mint)
}

/// The cluster a well-known mint exists on, without a ledger.
pub fn known_cluster(mint: &Pubkey) -> Option<Cluster> {
    known(mint).map(|known| known.cluster)
}

/// The decimals of a well-known mint, without a ledger.
pub fn known_decimals(mint: &Pubkey) -> Option<u8> {
    known(mint).map(|known| known.decimals)
}

/// The decimals of a well-known stablecoin (never a ledger's word: a mint read from a
/// ledger is not thereby worth a dollar); None for any other mint.
pub fn known_stablecoin(mint: &Pubkey) -> Option<u8> {
    known(mint)
        .filter(|known| known.stablecoin)
        .map(|known| known.decimals)
}

/// The facts of a well-known mint (USDC's are SPL Token mints), without a ledger.
pub fn known_mint(mint: &Pubkey) -> Option<MintInfo> {
    known(mint).map(|known| MintInfo {
        decimals: known.decimals,
        token_program: spl_token::ID,
        delivers_in_full: true,
    })
}

/// Reads a mint of SPL Token or Token-2022 (with or without extensions).
pub fn read_mint(account: &LedgerAccount) -> Result<MintInfo, MintError> {
    if account.owner != spl_token::ID && account.owner != spl_token_2022::ID {
        return Err(MintError::NotATokenProgram);
    }
    let mint = StateWithExtensions::<spl_token_2022::state::Mint>::unpack(&account.data)
        .map_err(|_| MintError::NotAMint)?;
    if !mint.base.is_initialized {
        return Err(MintError::NotAMint);
    }
    let extensions = mint
        .get_extension_types()
        .map_err(|_| MintError::NotAMint)?;
    Ok(MintInfo {
        decimals: mint.base.decimals,
        token_program: account.owner,
        delivers_in_full: !extensions.iter().any(|e| {
            matches!(
                e,
                ExtensionType::TransferFeeConfig | ExtensionType::TransferHook
            )
        }),
    })
}

#[cfg(test)]
mod tests {
    use anchor_lang::solana_program::program_pack::Pack;

    use super::*;

    fn mint_account(owner: Pubkey, decimals: u8, initialized: bool) -> LedgerAccount {
        let mint = spl_token_2022::state::Mint {
            decimals,
            is_initialized: initialized,
            ..Default::default()
        };
        let mut data = vec![0; spl_token_2022::state::Mint::LEN];
        spl_token_2022::state::Mint::pack(mint, &mut data).unwrap();
        LedgerAccount {
            owner,
            lamports: 1,
            data,
        }
    }

    #[test]
    fn reads_decimals_and_token_program_of_either_token_program() {
        for program in [spl_token::ID, spl_token_2022::ID] {
            assert_eq!(
                read_mint(&mint_account(program, 9, true)),
                Ok(MintInfo {
                    decimals: 9,
                    token_program: program,
                    delivers_in_full: true,
                })
            );
        }
    }

    #[test]
    fn usdc_decimals_are_known_and_others_are_not() {
        let usdc: Pubkey = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"
            .parse()
            .unwrap();
        assert_eq!(known_decimals(&usdc), Some(6));
        assert_eq!(known_decimals(&Pubkey::new_unique()), None);
        assert_eq!(known_cluster(&usdc), Some(Cluster::Mainnet));
        let devnet_usdc: Pubkey = "4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU"
            .parse()
            .unwrap();
        assert_eq!(known_cluster(&devnet_usdc), Some(Cluster::Devnet));
        assert_eq!(known_cluster(&Pubkey::new_unique()), None);
        assert_eq!(known_stablecoin(&usdc), Some(6));
        assert_eq!(known_stablecoin(&devnet_usdc), Some(6));
        assert_eq!(known_stablecoin(&Pubkey::new_unique()), None);
    }

    #[test]
    fn refuses_what_is_not_an_initialized_mint_of_a_token_program() {
        assert_eq!(
            read_mint(&mint_account(Pubkey::new_unique(), 6, true)),
            Err(MintError::NotATokenProgram)
        );
        assert_eq!(
            read_mint(&mint_account(spl_token::ID, 6, false)),
            Err(MintError::NotAMint)
        );
        let mut token_account = mint_account(spl_token::ID, 6, true);
        token_account.data = vec![1; 165];
        assert_eq!(read_mint(&token_account), Err(MintError::NotAMint));
    }

    #[test]
    fn a_mint_with_a_transfer_fee_or_hook_does_not_deliver_in_full() {
        use spl_token_2022::extension::{
            transfer_fee::TransferFeeConfig, transfer_hook::TransferHook,
            BaseStateWithExtensionsMut, StateWithExtensionsMut,
        };
        fn with(extension: ExtensionType) -> LedgerAccount {
            let len = ExtensionType::try_calculate_account_len::<spl_token_2022::state::Mint>(&[
                extension,
            ])
            .unwrap();
            let mut data = vec![0; len];
            let mut state =
                StateWithExtensionsMut::<spl_token_2022::state::Mint>::unpack_uninitialized(
                    &mut data,
                )
                .unwrap();
            match extension {
                ExtensionType::TransferFeeConfig => {
                    state.init_extension::<TransferFeeConfig>(true).unwrap();
                }
                _ => {
                    state.init_extension::<TransferHook>(true).unwrap();
                }
            }
            state.base.decimals = 6;
            state.base.is_initialized = true;
            state.pack_base();
            state.init_account_type().unwrap();
            LedgerAccount {
                owner: spl_token_2022::ID,
                lamports: 1,
                data,
            }
        }
        for account in [
            with(ExtensionType::TransferFeeConfig),
            with(ExtensionType::TransferHook),
        ] {
            let info = read_mint(&account).unwrap();
            assert_eq!(info.decimals, 6);
            assert!(!info.delivers_in_full);
        }
    }
}
