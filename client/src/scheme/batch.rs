//! Paying a `batch-settlement` offer: the first request opens a channel with a deposit
//! (its `open` signed for the seller's fee payer to co-sign) and pays itself with the
//! first voucher; every later one signs a voucher for the channel's new cumulative
//! total; a channel whose deposit is spent is topped up. What is signed is kept in the
//! channel book before the voucher leaves the client. In the server mode (an operator
//! the policy trusts) each request carries a fresh proof for up to its price instead,
//! and the operator's voucher in the answer says what it cost.

use anchor_lang::prelude::Pubkey;
use solana_signer::Signer;
use x402_protocol::scheme::batch::{
    build_authorization, build_open, build_open_proved, build_top_up, build_top_up_proved,
    build_voucher, channel_of, BatchOffer, BatchPayload, Channel, Proof, BATCH_SETTLEMENT,
};
use x402_protocol::scheme::channel::{random_salt, Opening};
use x402_protocol::{unix_now, ChainClock, Reference};

use super::{mint_facts, PayContext, PayScheme, Signed};
use crate::book::HeldChannel;
use crate::error::ClientError;
use crate::offer::Asks;

impl Asks for BatchOffer {
    fn scheme(&self) -> &'static str {
        BATCH_SETTLEMENT
    }

    fn network(&self) -> &str {
        &self.network
    }

    /// One request's price: what each voucher adds, and what the spending policy caps
    /// (the deposit is capped apart).
    fn amount(&self) -> u64 {
        self.terms.amount
    }

    fn mint(&self) -> Pubkey {
        self.terms.mint
    }

    fn pay_to(&self) -> Pubkey {
        self.terms.pay_to
    }

    fn reference(&self) -> Option<Reference> {
        None
    }

    fn key(&self) -> Option<String> {
        None
    }

    /// The seller's fee payer pays the deposit's fee and the channel's rent.
    fn sponsored(&self) -> bool {
        true
    }

    fn shown_amount(&self) -> String {
        format!("{} base units a request", self.terms.amount)
    }

    fn description(&self) -> String {
        self.resource.description.clone().unwrap_or_default()
    }
}

/// What a batch payment did to its channel, for the client to record once the seller
/// confirms it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchStep {
    pub channel: String,
    /// The cumulative amount the voucher signs.
    pub cumulative: u64,
    /// The channel's deposit once this payment's deposit (if any) landed.
    pub deposit: u64,
}

impl PayScheme for BatchOffer {
    type Payload = BatchPayload;

    /// A voucher on the channel the book holds for this seller, topped up when its
    /// deposit is spent; a new channel otherwise. The deposit is the seller's suggestion
    /// (at least one request), never more than the policy's deposit limit.
    async fn pay(&self, context: &PayContext<'_>) -> Result<Signed<BatchPayload>, ClientError> {
        let payer = context.payer;
        let terms = &self.terms;
        let malformed = |why: String| Err(ClientError::MalformedChallenge(why));
        if terms.fee_payer == payer.pubkey() {
            return malformed("the offer names the payer as its fee payer".into());
        }
        let book = context.book;
        let mut held = book.paying(&self.network, terms);
        if let Some(unconfirmed) = held.as_ref().filter(|h| h.deposit == 0) {
            // Its open was never confirmed (refused, or its answer lost): not a channel
            // to pay into. Were it on chain after all, the seller closes it when idle
            // and `x402 channels recover` takes it back.
            book.update(&unconfirmed.channel, |h| h.closed = true)
                .map_err(|e| ClientError::Book(e.to_string()))?;
            held = None;
        }
        // The server mode's proof of this request, for up to its price, fresh each time.
        let request_id = format!("{:016x}{:016x}", random_salt(), random_salt());
        let proof = Proof {
            request_id: &request_id,
            expires_at: unix_now()
                .saturating_add(i64::try_from(self.max_timeout_seconds).unwrap_or(i64::MAX)),
        };
        let server = terms.operator.is_some();
        if let Some(held) = &held {
            // In the server mode, the most the operator may charge for it: the price.
            let cumulative = held.confirmed.saturating_add(terms.amount);
            if cumulative <= held.deposit {
                let channel = held_channel(held)?;
                let payload = match server {
                    true => build_authorization(payer, terms, &channel, proof),
                    false => build_voucher(payer, terms, &channel, cumulative),
                };
                return sign_ahead(context, held, cumulative, held.deposit, payload);
            }
        }
        let facts = mint_facts(&terms.mint, context).await?;
        if facts.token_program != terms.token_program {
            return malformed(format!(
                "mint {} is of token program {}, not the offer's {}",
                terms.mint, facts.token_program, terms.token_program
            ));
        }
        if !facts.delivers_in_full {
            return Err(ClientError::WithholdingMint(terms.mint));
        }
        let deposit = deposit_for(self, context.deposit, context.max_deposit)?;
        let blockhash = match (context.ledger, self.recent_blockhash) {
            (Some(ledger), _) => ledger.latest_blockhash().await?,
            (None, Some(hint)) => hint,
            (None, None) => return Err(ClientError::NeedsLedger),
        };
        match held {
            Some(held) => {
                // Its deposit is spent: top it up, and pay this request from it.
                let channel = held_channel(&held)?;
                let cumulative = held.confirmed.saturating_add(terms.amount);
                let deposit_after = held.deposit.saturating_add(deposit);
                let payload = match server {
                    true => build_top_up_proved(payer, terms, &channel, deposit, proof, blockhash),
                    false => build_top_up(payer, terms, &channel, deposit, cumulative, blockhash),
                };
                sign_ahead(context, &held, cumulative, deposit_after, payload)
            }
            None => {
                let open_slot = match (context.ledger, self.recent_slot) {
                    (_, Some(slot)) => slot,
                    (Some(ledger), None) => ChainClock::read(ledger).await?.slot,
                    (None, None) => return Err(ClientError::NeedsLedger),
                };
                let opening = Opening {
                    payer: payer.pubkey(),
                    salt: random_salt(),
                    open_slot,
                };
                let channel = channel_of(payer, terms, &opening);
                let payload = match server {
                    true => build_open_proved(payer, terms, &channel, deposit, proof, blockhash),
                    false => build_open(payer, terms, &channel, deposit, terms.amount, blockhash),
                };
                let held = HeldChannel {
                    channel: channel.address(&terms.fee_payer).to_string(),
                    resource: context.resource.unwrap_or_default().to_string(),
                    offer: context.accepted.to_v2(),
                    config: channel.config(),
                    fee_payer: terms.fee_payer.to_string(),
                    deposit: 0,
                    confirmed: 0,
                    signed: 0,
                    closed: false,
                };
                sign_ahead(context, &held, terms.amount, deposit, payload)
            }
        }
    }
}

/// The deposit a new channel (or a top-up) escrows: the buyer's `target`, else the
/// seller's suggestion; at least one request, at most `max_deposit`; refused when even
/// one request is above it.
fn deposit_for(
    offer: &BatchOffer,
    target: Option<u64>,
    max_deposit: Option<u64>,
) -> Result<u64, ClientError> {
    let amount = offer.terms.amount;
    let wanted = target
        .or(offer.terms.min_deposit)
        .unwrap_or(amount)
        .max(amount);
    match max_deposit {
        Some(max) if amount > max => Err(ClientError::MalformedChallenge(format!(
            "one request ({amount} base units) is more than the deposit limit ({max})"
        ))),
        Some(max) => Ok(wanted.min(max)),
        None => Ok(wanted),
    }
}

/// The channel a held record states.
fn held_channel(held: &HeldChannel) -> Result<Channel, ClientError> {
    held.config
        .read()
        .map_err(|e| ClientError::MalformedChallenge(format!("a held channel: {e}")))
}

/// Keeps what `payload` signs in the book before it leaves the client, then hands it
/// out with the step the seller's answer confirms.
fn sign_ahead(
    context: &PayContext<'_>,
    held: &HeldChannel,
    cumulative: u64,
    deposit: u64,
    payload: BatchPayload,
) -> Result<Signed<BatchPayload>, ClientError> {
    let mut kept = held.clone();
    kept.signed = kept.signed.max(cumulative);
    if let Some(resource) = context.resource {
        kept.resource = resource.to_string();
    }
    kept.offer = context.accepted.to_v2();
    context
        .book
        .put(kept)
        .map_err(|e| ClientError::Book(e.to_string()))?;
    Ok(Signed {
        payload,
        signature: None,
        unsettled: None,
        batch: Some(BatchStep {
            channel: held.channel.clone(),
            cumulative,
            deposit,
        }),
    })
}
