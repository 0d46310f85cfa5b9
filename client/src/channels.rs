//! The buyer's `upto` channels on chain, and its way out when a seller never settles:
//! `request_close` starts the channel's grace period (the seller may still settle
//! during it); once it has passed, `seal` and `withdraw_payer` bring the deposit, less
//! what was settled, back to the buyer.

use anchor_lang::prelude::Pubkey;
use anchor_lang::solana_program::instruction::Instruction;
use solana_keypair::Keypair;
use solana_signer::Signer;
use solana_transaction::Transaction;
use x402_protocol::scheme::upto::{
    deposited_by, request_close_instruction, seal_instruction, withdraw_payer_instruction,
    ChannelAccount, ChannelStatus, PAYMENT_CHANNELS_PROGRAM,
};
use x402_protocol::{Ledger, LedgerError};

/// A channel the buyer deposited in, at its address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BuyerChannel {
    pub address: Pubkey,
    pub account: ChannelAccount,
}

/// What the buyer can do with a channel now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Open: `request_close` starts the grace period; the deposit can be withdrawn that
    /// many seconds later.
    RequestClose,
    /// Closing: the seller may still settle until then (unix seconds, chain time).
    WaitUntil(i64),
    /// The grace period has passed (`seal` first, when `seal` is true) or the channel is
    /// sealed: `withdraw_payer` refunds `refund` base units.
    Withdraw { seal: bool, refund: u64 },
    /// Withdrawn or distributed: nothing is left for the buyer.
    Done,
}

impl BuyerChannel {
    /// What the buyer can do with it at `now` (unix seconds, chain time).
    pub fn step(&self, now: i64) -> Step {
        let account = &self.account;
        // What was settled is the seller's: the refund is the rest.
        let refund = account.deposit.saturating_sub(account.settled);
        match account.status {
            ChannelStatus::Open => Step::RequestClose,
            ChannelStatus::Closing => {
                let ends = account
                    .closure_started_at
                    .saturating_add(i64::from(account.grace_period));
                if now < ends {
                    Step::WaitUntil(ends)
                } else {
                    Step::Withdraw { seal: true, refund }
                }
            }
            ChannelStatus::Sealed if account.payer_withdrawn_at == 0 => Step::Withdraw {
                seal: false,
                refund,
            },
            ChannelStatus::Sealed | ChannelStatus::Distributed => Step::Done,
        }
    }
}

/// The channels `payer` deposited in, as the chain holds them.
pub async fn buyer_channels(
    ledger: &dyn Ledger,
    payer: &Pubkey,
) -> Result<Vec<BuyerChannel>, LedgerError> {
    let found = ledger
        .program_accounts(&PAYMENT_CHANNELS_PROGRAM, &deposited_by(payer))
        .await?;
    Ok(found
        .into_iter()
        .filter_map(|(address, account)| {
            let account = ChannelAccount::read(&account.data)?;
            (account.payer == *payer && account.address() == address)
                .then_some(BuyerChannel { address, account })
        })
        .collect())
}

/// What [`recover`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recovery {
    /// `request_close` landed: the deposit can be withdrawn `grace_period` seconds later.
    CloseRequested {
        transaction: String,
        grace_period: u32,
    },
    /// The grace period has not passed: nothing was sent; try again then (unix seconds,
    /// chain time).
    Wait { until: i64 },
    /// `withdraw_payer` landed: `refund` base units are back in the buyer's token account.
    Withdrawn { transaction: String, refund: u64 },
    /// Nothing is left for the buyer.
    Nothing,
}

/// Takes `channel`'s next step for `payer` at `now` (unix seconds, the chain's clock):
/// `request_close` for an open channel, `seal` and `withdraw_payer` once its grace period
/// has passed. The buyer pays the fees.
pub async fn recover(
    ledger: &dyn Ledger,
    payer: &Keypair,
    channel: &BuyerChannel,
    now: i64,
) -> Result<Recovery, LedgerError> {
    let address = &channel.address;
    let account = &channel.account;
    match channel.step(now) {
        Step::RequestClose => {
            let close = request_close_instruction(address, &payer.pubkey());
            Ok(Recovery::CloseRequested {
                transaction: send(ledger, payer, &[close]).await?,
                grace_period: account.grace_period,
            })
        }
        Step::WaitUntil(until) => Ok(Recovery::Wait { until }),
        Step::Withdraw { seal, refund } => {
            // The escrow's token program is the mint's owner on chain.
            let mint = ledger.account(&account.mint).await?.ok_or_else(|| {
                LedgerError::Rejected(format!("mint {} does not exist", account.mint))
            })?;
            let withdraw =
                withdraw_payer_instruction(address, &payer.pubkey(), &account.mint, &mint.owner);
            let instructions = match seal {
                true => vec![seal_instruction(address), withdraw],
                false => vec![withdraw],
            };
            Ok(Recovery::Withdrawn {
                transaction: send(ledger, payer, &instructions).await?,
                refund,
            })
        }
        Step::Done => Ok(Recovery::Nothing),
    }
}

/// Signs `instructions` with `payer` as fee payer, submits them; the signature.
async fn send(
    ledger: &dyn Ledger,
    payer: &Keypair,
    instructions: &[Instruction],
) -> Result<String, LedgerError> {
    let blockhash = ledger.latest_blockhash().await?;
    let tx = Transaction::new_signed_with_payer(
        instructions,
        Some(&payer.pubkey()),
        &[payer],
        blockhash,
    );
    Ok(ledger.submit(&tx.into()).await?.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use x402_protocol::scheme::upto::ChannelStatus::*;

    fn channel(
        status: ChannelStatus,
        closure_started_at: i64,
        payer_withdrawn_at: i64,
    ) -> BuyerChannel {
        BuyerChannel {
            address: Pubkey::new_unique(),
            account: ChannelAccount {
                status,
                salt: 1,
                deposit: 10_000,
                settled: 2_500,
                payout_watermark: 0,
                closure_started_at,
                payer_withdrawn_at,
                grace_period: 60,
                distribution_hash: [0; 32],
                payer: Pubkey::new_unique(),
                payee: Pubkey::new_unique(),
                authorized_signer: Pubkey::new_unique(),
                mint: Pubkey::new_unique(),
                rent_payer: Pubkey::new_unique(),
                open_slot: 7,
            },
        }
    }

    #[test]
    fn a_closing_channel_is_withdrawn_only_once_its_grace_period_has_passed() {
        let closing = channel(Closing, 1_000, 0);
        assert_eq!(closing.step(1_059), Step::WaitUntil(1_060));
        let past = Step::Withdraw {
            seal: true,
            refund: 7_500,
        };
        assert_eq!(
            closing.step(1_060),
            past,
            "the program seals at the deadline"
        );
        assert_eq!(channel(Open, 0, 0).step(5_000), Step::RequestClose);
        assert_eq!(
            channel(Sealed, 0, 0).step(0),
            Step::Withdraw {
                seal: false,
                refund: 7_500
            }
        );
        assert_eq!(channel(Sealed, 0, 1_100).step(2_000), Step::Done);
        assert_eq!(channel(Distributed, 0, 0).step(2_000), Step::Done);
    }
}
