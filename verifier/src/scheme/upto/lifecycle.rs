//! A channel's life after its `open`, from its row in the grant store: settled for what
//! its answer cost ([`settle_channel`]), and tended by the janitor ([`tend_channels`]),
//! which finishes whatever a crash, an outage or an abandoned request left: channels
//! found on chain with no row are recorded, channels nobody settled are closed at zero
//! once their buyer's `expiresAt` has passed, settled ones are finished, and the rent of
//! distributed ones is reclaimed. What the channel is on chain decides each step: it is
//! read again before anything is sent (another replica may have moved it).

use anchor_lang::prelude::Pubkey;
use solana_signer::Signer;
use x402_protocol::scheme::upto::{
    distribute_instruction, settle_and_seal_instructions, treasury_owner, voucher_message,
    ChannelAccount, ChannelStatus, UptoTerms, Voucher,
};
use x402_protocol::unix_now;

use super::WITHDRAW_DELAY_SECONDS;
use crate::context::{store_unavailable, Context};
use crate::error::Refusal;
use crate::scheme::channel::{fee_payer_key, funded_channels, read_channel, reclaim, send};
use crate::scheme::submission::LEASE_SECONDS;
use crate::store::{ChannelRecord, Stage};

/// How long a voucher we sign for our own settlement stays valid: it is applied in the
/// same transaction, at once.
const VOUCHER_SECONDS: i64 = 120;

/// Settles `record`'s channel for `amount` base units (at most its deposit): a voucher
/// for it signed by our receiver authorizer, `settle_and_seal` and `distribute` in one
/// transaction signed by our fee payer; a channel sealed already is only distributed.
/// `Ok` with the `distribute`'s signature, or none when it was distributed before; the
/// row moves on to `distributed` and the grant records the charge.
pub async fn settle_channel(
    cx: &Context,
    record: &ChannelRecord,
    amount: u64,
) -> Result<Option<String>, Refusal> {
    let fee_payer = fee_payer_key(cx)?;
    let terms = record_terms(record, fee_payer.pubkey())?;
    let address: Pubkey = parse(&record.channel)?;
    let payer: Pubkey = parse(&record.payer)?;
    let now = unix_now();
    let advance = |stage| async move {
        cx.store()
            .advance_channel(&record.channel, stage, None, None, now)
            .await
            .map_err(store_unavailable)
    };
    let channel = match read_channel(cx, &address).await? {
        // Gone: distributed and reclaimed already.
        None => return advance(Stage::Closed).await.map(|()| None),
        Some((channel, _)) if channel.status == ChannelStatus::Distributed => {
            return advance(Stage::Distributed).await.map(|()| None)
        }
        Some((channel, _)) => channel,
    };
    let amount = amount.min(channel.deposit);
    let mut instructions = Vec::new();
    if channel.status != ChannelStatus::Sealed {
        let expires_at = now.saturating_add(VOUCHER_SECONDS);
        let message = voucher_message(&address, amount, expires_at);
        let voucher = Voucher {
            channel: address,
            cumulative_amount: amount,
            expires_at,
            signer: fee_payer.pubkey(),
            signature: fee_payer.sign_message(&message).into(),
        };
        instructions.extend(settle_and_seal_instructions(
            &fee_payer.pubkey(),
            &address,
            Some(&voucher),
        ));
    }
    let treasury = treasury_owner(cx.settings().network.cluster());
    instructions.push(distribute_instruction(
        &terms.plan(),
        &address,
        &payer,
        &treasury,
    ));
    let signature = send(cx, &instructions, &record.channel, "upto settlement").await?;
    let store = cx.store();
    store
        .advance_channel(
            &record.channel,
            Stage::Distributed,
            Some(amount),
            Some(&signature),
            now,
        )
        .await
        .map_err(store_unavailable)?;
    store
        .settle_grant(&record.reference, amount, &signature)
        .await
        .map_err(store_unavailable)?;
    Ok(Some(signature))
}

/// What one round of the janitor did with channels.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tended {
    /// Channels found on chain that the store did not know of.
    pub found: usize,
    /// Channels settled (or closed at zero) by the janitor.
    pub settled: usize,
    /// Channels whose rent came back.
    pub reclaimed: usize,
    pub rent_returned: u64,
}

/// The janitor's round over channels at `now` (unix seconds): discovers the channels our
/// fee payer funded, records the unknown ones, and moves every unfinished one on as far
/// as it can go.
pub async fn tend_channels(cx: &Context, now: i64) -> Result<Tended, Refusal> {
    let mut tended = Tended::default();
    let Some(fee_payer) = cx.fee_payer() else {
        return Ok(tended);
    };
    let on_chain = funded_channels(cx, &fee_payer, true).await?;
    for (address, channel) in &on_chain {
        if adopt(cx, address, channel, now).await? {
            tended.found += 1;
        }
    }
    let records = cx
        .store()
        .unclosed_channels()
        .await
        .map_err(store_unavailable)?;
    for record in records {
        let Ok(address) = record.channel.parse::<Pubkey>() else {
            continue;
        };
        let outcome = match record.stage {
            // Its request may still be serving it: not before the buyer's expiry.
            Stage::Opened if now <= record.expires_at => continue,
            // Its request is settling it.
            Stage::Served if now <= record.updated_at.saturating_add(LEASE_SECONDS) => continue,
            Stage::Opened if !on_chain.contains_key(&address) => {
                // It never opened (or is gone): nothing to do on chain.
                close(cx, &record.channel, now).await
            }
            // Nobody said what its answer cost: nothing is charged.
            Stage::Opened => settle_channel(cx, &record, 0)
                .await
                .map(|_| tended.settled += 1),
            Stage::Served => settle_channel(cx, &record, record.amount.unwrap_or(0))
                .await
                .map(|_| tended.settled += 1),
            Stage::Distributed => match on_chain.get(&address) {
                None => close(cx, &record.channel, now).await,
                Some(_) => match reclaim(cx, &address).await {
                    Ok(Some(lamports)) => {
                        tended.reclaimed += 1;
                        tended.rent_returned = tended.rent_returned.saturating_add(lamports);
                        close(cx, &record.channel, now).await
                    }
                    // Its slot window has not passed yet: a later round.
                    Ok(None) => Ok(()),
                    Err(refusal) => Err(refusal),
                },
            },
            Stage::Closed => Ok(()),
        };
        if let Err(refusal) = outcome {
            tracing::warn!(channel = %record.channel, reason = refusal.code(), "janitor could not move a channel on");
        }
    }
    cx.metrics().rent_returned(tended.rent_returned);
    Ok(tended)
}

/// Records a channel found on chain that the store does not know of (its request
/// stopped before recording it, or the store was lost): closed at zero as abandoned once
/// a withdraw delay has passed, since its buyer's expiry is not known. `true` when
/// recorded now.
async fn adopt(
    cx: &Context,
    address: &Pubkey,
    channel: &ChannelAccount,
    now: i64,
) -> Result<bool, Refusal> {
    let store = cx.store();
    let key = address.to_string();
    if store
        .channel(&key)
        .await
        .map_err(store_unavailable)?
        .is_some()
    {
        return Ok(false);
    }
    let s = cx.settings();
    if channel.mint != s.mint {
        // Not a channel this gate can distribute: its buyer can take it back.
        return Ok(false);
    }
    let record = ChannelRecord {
        channel: key.clone(),
        // No reference is known: the channel stands for itself.
        reference: key,
        payer: channel.payer.to_string(),
        mint: channel.mint.to_string(),
        token_program: s.token_program.to_string(),
        pay_to: s.pay_to.to_string(),
        max_amount: channel.deposit,
        expires_at: now.saturating_add(i64::from(WITHDRAW_DELAY_SECONDS)),
        stage: match channel.status {
            ChannelStatus::Distributed => Stage::Distributed,
            _ => Stage::Opened,
        },
        amount: None,
        transaction: None,
        updated_at: now,
    };
    tracing::info!(channel = %record.channel, "janitor found a channel the store did not know of");
    store.open_channel(&record).await.map_err(store_unavailable)
}

async fn close(cx: &Context, channel: &str, now: i64) -> Result<(), Refusal> {
    cx.store()
        .advance_channel(channel, Stage::Closed, None, None, now)
        .await
        .map_err(store_unavailable)
}

/// The terms a recorded channel was opened under.
fn record_terms(record: &ChannelRecord, fee_payer: Pubkey) -> Result<UptoTerms, Refusal> {
    Ok(UptoTerms {
        mint: parse(&record.mint)?,
        token_program: parse(&record.token_program)?,
        pay_to: parse(&record.pay_to)?,
        max_amount: record.max_amount,
        fee_payer,
        receiver_authorizer: fee_payer,
        withdraw_delay: WITHDRAW_DELAY_SECONDS,
        memo: None,
    })
}

fn parse(key: &str) -> Result<Pubkey, Refusal> {
    key.parse().map_err(|_| {
        tracing::error!("a corrupt key in the channels table");
        Refusal::unavailable()
    })
}
