//! What both channel schemes (`upto`, `batch-settlement`) do with a channel of the
//! payment-channels program: read it, and take its rent back once it is distributed.
//! Every transaction of a channel's life is signed by our fee payer.

use std::collections::HashMap;
use std::sync::Arc;

use anchor_lang::prelude::Pubkey;
use anchor_lang::solana_program::instruction::Instruction;
use solana_keypair::Keypair;
use solana_transaction::versioned::VersionedTransaction;
use x402_protocol::scheme::channel::{
    fee_payer_transaction, funded_by, reclaim_instruction, signatures_paid, ChannelAccount,
    PAYMENT_CHANNELS_PROGRAM,
};
use x402_protocol::LedgerError;

use crate::context::Context;
use crate::error::{Reason, Refusal};
use crate::metrics::LedgerCall;
use crate::scheme::LAMPORTS_PER_SIGNATURE;

/// The channel at `address` and its lamports, if it exists and is a channel.
pub(crate) async fn read_channel(
    cx: &Context,
    address: &Pubkey,
) -> Result<Option<(ChannelAccount, u64)>, Refusal> {
    let account = cx
        .ledger_call(LedgerCall::Account, cx.ledger().account(address))
        .await?;
    Ok(account.and_then(|account| {
        let channel = ChannelAccount::read(&account.data)
            .filter(|_| account.owner == PAYMENT_CHANNELS_PROGRAM)?;
        Some((channel, account.lamports))
    }))
}

/// The channels our fee payer funded, by address: only accounts that read as channels
/// and whose seeds re-derive their address; `ours`: those whose vouchers our fee payer
/// signs (`upto`), else those whose buyer signs them (`batch-settlement`), which each
/// scheme's janitor tends apart.
pub(crate) async fn funded_channels(
    cx: &Context,
    fee_payer: &Pubkey,
    ours: bool,
) -> Result<HashMap<Pubkey, ChannelAccount>, Refusal> {
    let funded = cx
        .ledger_call(
            LedgerCall::ProgramAccounts,
            cx.ledger()
                .program_accounts(&PAYMENT_CHANNELS_PROGRAM, &funded_by(fee_payer)),
        )
        .await?;
    Ok(funded
        .into_iter()
        .filter_map(|(address, account)| {
            let channel = ChannelAccount::read(&account.data)?;
            let signs = channel.authorized_signer == *fee_payer;
            (channel.address() == address && signs == ours).then_some((address, channel))
        })
        .collect())
}

/// Sends `instructions` in a transaction of our fee payer's own on a fresh blockhash:
/// its signature once it landed. `TransactionFailed` when the ledger refused it (logged
/// as `what` of `channel`), a 503 when it did not answer.
pub(crate) async fn send(
    cx: &Context,
    instructions: &[Instruction],
    channel: &str,
    what: &str,
) -> Result<String, Refusal> {
    let fee_payer = fee_payer_key(cx)?;
    let blockhash = cx
        .ledger_call(LedgerCall::LatestBlockhash, cx.ledger().latest_blockhash())
        .await?;
    let transaction = fee_payer_transaction(&fee_payer, instructions, blockhash);
    match cx
        .ledger_call(LedgerCall::Submit, cx.ledger().submit(&transaction))
        .await
    {
        Ok(signature) => {
            cx.sponsorship()
                .spent(LAMPORTS_PER_SIGNATURE * signatures_paid(instructions));
            Ok(signature.to_string())
        }
        Err(LedgerError::Rejected(why)) => {
            tracing::warn!(%channel, %why, "{what} rejected");
            Err(Refusal::new(Reason::TransactionFailed))
        }
        Err(LedgerError::Unavailable(_)) => Err(Refusal::unavailable()),
    }
}

/// What became of a buyer's channel transaction that our fee payer co-signed.
pub(crate) enum Sent {
    /// The channel shows it landed: the channel, its lamports, and whether the ledger
    /// charged the fee (it answered; a refusal of a copy that had landed charges none).
    Landed(Box<ChannelAccount>, u64, bool),
    /// The ledger refused it and the channel does not show it: nothing landed.
    Rejected(String),
    /// Submitted unanswered, and the channel does not show it (yet).
    Unseen,
}

/// Submits `transaction` and reads the channel at `address`: the chain decides, not the
/// submission's answer. `landed` says whether the channel shows the transaction.
pub(crate) async fn submit_and_read(
    cx: &Context,
    transaction: &VersionedTransaction,
    address: &Pubkey,
    landed: impl Fn(&ChannelAccount) -> bool,
) -> Result<Sent, Refusal> {
    let rejected = match cx
        .ledger_call(LedgerCall::Submit, cx.ledger().submit(transaction))
        .await
    {
        Err(LedgerError::Rejected(why)) => Some(why),
        Ok(_) | Err(LedgerError::Unavailable(_)) => None,
    };
    Ok(match read_channel(cx, address).await? {
        Some((account, lamports)) if landed(&account) => {
            Sent::Landed(Box::new(account), lamports, rejected.is_none())
        }
        _ => match rejected {
            Some(why) => Sent::Rejected(why),
            None => Sent::Unseen,
        },
    })
}

/// Our fee payer, which signs every transaction of a channel's life.
pub(crate) fn fee_payer_key(cx: &Context) -> Result<Arc<Keypair>, Refusal> {
    cx.settings()
        .fee_payer
        .clone()
        .ok_or_else(|| Refusal::new(Reason::SponsorshipUnavailable))
}

/// Sends `reclaim` for the distributed channel at `address`: its rent back to our fee
/// payer, its rent payer. The lamports that came back; `None` when the program refuses
/// (its slot window has not passed yet) or the channel is gone.
pub(crate) async fn reclaim(cx: &Context, address: &Pubkey) -> Result<Option<u64>, Refusal> {
    let keypair = fee_payer_key(cx)?;
    let Some((_, lamports)) = read_channel(cx, address).await? else {
        return Ok(None);
    };
    let blockhash = cx
        .ledger_call(LedgerCall::LatestBlockhash, cx.ledger().latest_blockhash())
        .await?;
    let fee_payer = solana_signer::Signer::pubkey(keypair.as_ref());
    let transaction = fee_payer_transaction(
        &keypair,
        &[reclaim_instruction(address, &fee_payer)],
        blockhash,
    );
    match cx
        .ledger_call(LedgerCall::Submit, cx.ledger().submit(&transaction))
        .await
    {
        Ok(_) => {
            cx.sponsorship().spent(LAMPORTS_PER_SIGNATURE);
            Ok(Some(lamports))
        }
        Err(LedgerError::Rejected(_)) => Ok(None),
        Err(LedgerError::Unavailable(_)) => Err(Refusal::unavailable()),
    }
}
