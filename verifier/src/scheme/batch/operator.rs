//! The server mode at the gate: the buyer's proof pays a request up to its price (a
//! ceiling), and our operator signs the cumulative voucher for what the answer actually
//! cost. Before the request is served its ceiling is held against the channel's deposit
//! under its request identifier, once per channel ([`hold`]); after the answer the
//! charge, the operator's voucher for the new total and the end of the hold commit in
//! one transaction ([`complete`]), or, the answer failed, the hold is let go and nothing
//! is charged ([`release`]). The operator's voucher goes back to the buyer in the
//! settlement header: its receipt. Claims settle it like a buyer's.

use x402_protocol::scheme::batch::{BatchTerms, BatchVoucher, Channel, ReadAuthorization};
use x402_protocol::scheme::channel::voucher_message;
use x402_protocol::unix_now;

use super::accept::{correction, settled};
use crate::context::{store_unavailable, Context};
use crate::error::{Reason, Refusal};
use crate::model::{BatchCommit, Held, SettledPayment};
use crate::store::{BatchStatus, Reservation};

/// Holds the ceiling of `proof`'s request on its channel, before it is served.
/// `deposited`: the deposit that landed with this request, whose settlement the answer
/// carries.
pub async fn hold(
    cx: &Context,
    terms: &BatchTerms,
    channel: &Channel,
    proof: &ReadAuthorization,
    deposited: Option<SettledPayment>,
) -> Result<SettledPayment, Refusal> {
    let address = proof.channel.to_string();
    let ceiling = terms.amount;
    let reservation = cx
        .store()
        .reserve_operation(&address, &proof.request_id, ceiling, unix_now())
        .await
        .map_err(store_unavailable)?;
    let (charged, deposit, claimed) = match reservation {
        Reservation::Held {
            charged,
            deposit,
            claimed,
        } => (charged, deposit, claimed),
        Reservation::Duplicate => {
            return Err(Refusal::new(Reason::DuplicateSettlement)
                .message("this request identifier was presented on the channel before"))
        }
        Reservation::Refused => return Err(why_not_held(cx, &address).await),
    };
    cx.metrics().voucher_accepted();
    let commit = BatchCommit {
        channel: proof.channel,
        from: charged,
        to: charged,
        deposit,
        claimed,
        moved: deposited
            .as_ref()
            .and_then(|d| d.batch.as_ref())
            .and_then(|b| b.moved),
        closed: false,
        held: Some(Held {
            request_id: proof.request_id.clone(),
            ceiling,
        }),
        voucher: None,
    };
    let mut held = settled(cx, channel, commit, None);
    if let Some(deposited) = deposited {
        held.reference = deposited.reference;
        held.transaction = deposited.transaction;
    }
    Ok(held)
}

/// Why a hold was refused, from the channel's row.
async fn why_not_held(cx: &Context, address: &str) -> Refusal {
    match cx.store().batch_channel(address).await {
        Err(error) => store_unavailable(error),
        Ok(None) => Refusal::new(Reason::BatchChannelState)
            .message("no open channel here: open one with a deposit"),
        Ok(Some(row)) if row.status == BatchStatus::Opening => {
            Refusal::new(Reason::SponsorshipBusy)
                .message("the channel's open is still landing: retry the same payment")
        }
        Ok(Some(row)) if row.status != BatchStatus::Open => {
            Refusal::new(Reason::BatchChannelClosing).message("the channel is closing: open a new one")
        }
        Ok(Some(row)) => Refusal::new(Reason::BatchCumulativeExceedsDeposit)
            .message("the deposit cannot hold this request's price on top of what is charged and held: top it up")
            .correction(correction(&row)),
    }
}

/// Completes a held request whose answer cost `charge` (`None`: it said nothing, so its
/// ceiling; above the ceiling, the ceiling): the operator signs the channel's new total,
/// committed with the charge before the answer goes out. The settlement, with the
/// operator's voucher.
pub async fn complete(
    cx: &Context,
    settled: &SettledPayment,
    charge: Option<u64>,
) -> Result<SettledPayment, Refusal> {
    let (commit, held) = held_of(settled);
    let operator = cx
        .settings()
        .batch
        .operator
        .clone()
        .ok_or_else(Refusal::unavailable)?;
    let amount = match charge {
        Some(charge) if charge > held.ceiling => {
            tracing::warn!(channel = %commit.channel, charge, ceiling = held.ceiling, "an answer said it cost more than its ceiling: charged the ceiling");
            held.ceiling
        }
        Some(charge) => charge,
        None => held.ceiling,
    };
    let channel = commit.channel;
    let sign = |cumulative: u64| {
        solana_signer::Signer::sign_message(
            operator.as_ref(),
            &voucher_message(&channel, cumulative, 0),
        )
        .to_string()
    };
    let completed = cx
        .store()
        .complete_operation(
            &channel.to_string(),
            &held.request_id,
            held.ceiling,
            amount,
            &sign,
            unix_now(),
        )
        .await
        .map_err(store_unavailable)?
        .ok_or_else(|| {
            tracing::error!(channel = %channel, "a served request's hold was gone: its answer is withheld");
            Refusal::unavailable()
        })?;
    let voucher = BatchVoucher {
        channel_id: channel.to_string(),
        max_claimable_amount: completed.cumulative.to_string(),
        expires_at: 0,
        signature: completed.signature,
    };
    let mut paid = settled.clone();
    paid.amount = amount;
    paid.batch = Some(BatchCommit {
        from: completed.cumulative - amount,
        to: completed.cumulative,
        deposit: completed.deposit,
        claimed: completed.claimed,
        held: None,
        voucher: Some(voucher),
        ..commit.clone()
    });
    Ok(paid)
}

/// Lets go of a held request whose answer failed: nothing is charged.
pub async fn release(cx: &Context, settled: &SettledPayment) {
    let (commit, held) = held_of(settled);
    if let Err(error) = cx
        .store()
        .release_operation(
            &commit.channel.to_string(),
            &held.request_id,
            held.ceiling,
            unix_now(),
        )
        .await
    {
        tracing::error!(%error, channel = %commit.channel, "could not let go of a failed request's hold: the janitor will");
    }
}

fn held_of(settled: &SettledPayment) -> (&BatchCommit, &Held) {
    let commit = settled
        .batch
        .as_ref()
        .expect("a held payment is a batch one");
    let held = commit.held.as_ref().expect("a held payment has its hold");
    (commit, held)
}
