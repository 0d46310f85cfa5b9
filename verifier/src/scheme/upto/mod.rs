//! The ecosystem's `upto` scheme on Solana (x402's `scheme_upto_svm.md`): the buyer
//! signs an `open` that escrows the route's price, as a ceiling, in a one-request channel
//! of the payment-channels program. We check it strictly
//! (`x402_protocol::scheme::upto::validate_open`), record the channel, co-sign as fee
//! payer (also the channel's rent payer, zero-share payee and receiver authorizer), and
//! grant once the channel is on chain binding the challenge. The request is served, and
//! [`settle_channel`] then pays the seller what the answer cost (a voucher for it, our
//! `settle_and_seal` and `distribute` in one transaction) and refunds the rest; the
//! janitor ([`crate::tasks`]) reclaims the rent later. The channel's row in the grant
//! store is written before each step, so a crash resumes from it.

use anchor_lang::prelude::Pubkey;
use async_trait::async_trait;
use serde_json::{Map, Value};
use solana_signer::Signer;
use solana_transaction::versioned::VersionedTransaction;
use x402_protocol::scheme::decode_transaction;
use x402_protocol::scheme::upto::{
    read_payload, token_account, treasury_owner, validate_open, ChannelAccount, ChannelStatus,
    Claimed, UptoOffer, UptoPayload, UptoTerms, CHANNEL_ACCOUNT_BYTES,
};
use x402_protocol::wire::Offer;
use x402_protocol::Reference;

use super::channel::{submit_and_read, Sent};
use super::{
    fee_cost, memo_reference, resource, sponsored_extra, Landing, PaymentScheme, Submission,
    Submitted, Terms, Verified,
};
use crate::context::{store_unavailable, Context};
use crate::error::{Reason, Refusal};
use crate::metrics::LedgerCall;
use crate::model::{MeteredChannel, Price, Scheme, SettledPayment, Target};
use crate::sponsorship::Parties;
use crate::store::{ChannelRecord, Stage};

mod claim;
mod lifecycle;

pub use lifecycle::{settle_channel, tend_channels, Tended};

/// How long the buyer may take to close a channel we never settled, in seconds: our
/// window to settle after a buyer's `request_close` (the same as pay-kit's).
pub const WITHDRAW_DELAY_SECONDS: u32 = 900;

/// How far the buyer's clock may run ahead of ours when it dates its payment.
const CLOCK_SKEW_SECONDS: u64 = 30;

/// The token account rent the channel's escrow costs at most (an ATA with Token-2022's
/// immutable-owner extension).
const ESCROW_ACCOUNT_BYTES: usize = 170;

/// The `upto` scheme at the verifier.
pub struct UptoScheme;

/// What an `upto` payment must escrow.
#[derive(Clone, Debug)]
pub struct UptoDemand {
    pub terms: UptoTerms,
    /// The challenge's reference (also the `open`'s Memo); none for a facilitator
    /// caller, whose memo is its own.
    pub reference: Option<Reference>,
    /// The most the buyer may date its payment's expiry ahead, in seconds.
    pub max_timeout_seconds: u64,
}

/// The gate's terms: its mint and payee, our fee payer in every channel role of ours,
/// the reference as the Memo.
fn terms(cx: &Context, max_amount: u64, reference: Reference) -> UptoTerms {
    let s = cx.settings();
    // `upto` is enabled only with a fee payer (checked at start).
    let fee_payer = cx.fee_payer().unwrap_or_default();
    UptoTerms {
        mint: s.mint,
        token_program: s.token_program,
        pay_to: s.pay_to,
        max_amount,
        fee_payer,
        receiver_authorizer: fee_payer,
        withdraw_delay: WITHDRAW_DELAY_SECONDS,
        memo: Some(reference.memo()),
    }
}

/// A payment in the `upto` scheme: what the buyer states, and its signed `open`.
#[derive(Debug)]
pub struct UptoPayment {
    payload: UptoPayload,
    open: Box<VersionedTransaction>,
}

#[async_trait]
impl PaymentScheme for UptoScheme {
    const SCHEME: Scheme = Scheme::Upto;
    type Demand = UptoDemand;
    type Payment = UptoPayment;

    /// The price is the ceiling; the Memo must be the reference.
    fn offer(cx: &Context, price: &Price, target: &Target, reference: Reference) -> Offer {
        UptoOffer {
            network: cx.settings().network.caip2().to_string(),
            terms: terms(cx, price.amount, reference),
            recent_blockhash: cx.blockhash(),
            last_valid_block_height: None,
            recent_slot: cx.recent_slot(),
            valid_after: None,
            resource: resource(price, target),
            max_timeout_seconds: price.ttl.as_secs(),
        }
        .to_offer()
    }

    fn supported(cx: &Context) -> Map<String, Value> {
        sponsored_extra(cx)
    }

    fn at_gate(cx: &Context, price: &Price, reference: Reference) -> UptoDemand {
        UptoDemand {
            terms: terms(cx, price.amount, reference),
            reference: Some(reference),
            max_timeout_seconds: price.ttl.as_secs(),
        }
    }

    /// A facilitator caller's offer: any payee, signer and memo (the caller's policy
    /// decides which payees), our fee payer. Its amount is the ceiling of a deposit, or
    /// what a claim charges.
    fn requested(cx: &Context, offer: &Offer) -> Result<UptoDemand, Refusal> {
        let offer = UptoOffer::from_offer(offer)?;
        if cx.fee_payer() != Some(offer.terms.fee_payer) {
            return Err(Refusal::new(Reason::TransactionWrongFeePayer));
        }
        Ok(UptoDemand {
            terms: offer.terms,
            reference: None,
            max_timeout_seconds: offer.max_timeout_seconds,
        })
    }

    fn terms(demand: &UptoDemand) -> Terms {
        Terms {
            mint: demand.terms.mint,
            pay_to: demand.terms.pay_to,
            amount: demand.terms.max_amount,
            expires_at: demand.reference.map(|r| r.expires_at()),
        }
    }

    /// A claim is held to the policy by the ceiling its buyer escrowed (the deposit the
    /// policy allowed), not by its charge, which may be anything down to a refund's zero.
    fn policy_terms(payment: &UptoPayment, demand: &UptoDemand) -> Terms {
        let mut terms = Self::terms(demand);
        if claim::is_claim(payment, demand) {
            terms.amount = payment.payload.max_amount.parse().unwrap_or(terms.amount);
        }
        terms
    }

    fn read(payload: Value) -> Result<UptoPayment, Refusal> {
        let malformed = |what: &str| Refusal::new(Reason::InvalidPayload).message(what.to_string());
        let payload: UptoPayload = serde_json::from_value(payload)
            .map_err(|_| malformed("payload: not an upto payment"))?;
        let open = decode_transaction(&payload.open_transaction)
            .map_err(|e| malformed(&format!("payload.openTransaction: {e}")))?;
        Ok(UptoPayment {
            payload,
            open: Box::new(open),
        })
    }

    /// The reference in the `open`'s Memo.
    fn reference(_: &Context, payment: &UptoPayment) -> Result<Reference, Refusal> {
        memo_reference(&payment.open).ok_or_else(|| Refusal::new(Reason::InvalidReference))
    }

    /// The reference at the gate; at the facilitator the channel, a claim apart from
    /// its deposit (each settles once).
    fn key(payment: &UptoPayment, demand: &UptoDemand) -> Reference {
        demand.reference.unwrap_or_else(|| {
            claim::channel_key(
                &payment.payload.channel_id,
                claim::is_claim(payment, demand),
            )
        })
    }

    /// The payload's statements, the `open`'s strict validation, and one read: the
    /// channel must not exist, the accounts its settlement pays into must. Only a payment
    /// still open may be submitted: a channel is opened by its own request only.
    async fn verify(
        cx: &Context,
        payment: UptoPayment,
        demand: &UptoDemand,
        open: bool,
    ) -> Result<Verified, Refusal> {
        if !open {
            return Err(Refusal::new(Reason::ExpiredReference));
        }
        if claim::is_claim(&payment, demand) {
            return claim::verify_claim(cx, payment, demand).await;
        }
        let policy = cx.sponsor_policy()?;
        let now = x402_protocol::unix_now();
        let terms = &demand.terms;
        let claimed = read_payload(
            &payment.payload,
            terms,
            demand
                .max_timeout_seconds
                .saturating_add(CLOCK_SKEW_SECONDS),
            now,
        )
        .map_err(|defect| Refusal::new(defect.into()))?;
        validate_open(
            &payment.open,
            terms,
            &claimed.opening,
            &claimed.channel,
            &policy,
        )
        .map_err(|defect| Refusal::new(defect.into()))?;
        check_ready(cx, terms, &claimed).await?;
        let expires_at = demand
            .reference
            .map_or(claimed.expires_at, |reference| reference.expires_at());
        cx.sponsorship().check_expiry(expires_at, now)?;
        let fee_payer = cx
            .settings()
            .fee_payer
            .as_ref()
            .expect("a sponsor policy has a fee payer");
        let mut open_transaction = payment.open;
        open_transaction.signatures[0] =
            fee_payer.sign_message(&open_transaction.message.serialize());
        let payer = claimed.opening.payer;
        let submission = OpenSubmission {
            transaction: open_transaction,
            demand: demand.clone(),
            parties: Parties {
                payer,
                source: token_account(&terms.plan(), &payer),
            },
            claimed,
        };
        Ok(Verified::to_submit(payer, terms.max_amount, submission))
    }
}

/// Refuses a channel that exists already (a channel pays for one request), and one whose
/// settlement could not pay out: the payee's and the treasury's token accounts must
/// exist, or the deposit would sit in escrow until the buyer takes it back.
async fn check_ready(cx: &Context, terms: &UptoTerms, claimed: &Claimed) -> Result<(), Refusal> {
    let accounts = cx
        .ledger_call(
            LedgerCall::Account,
            cx.ledger().accounts(&[
                claimed.channel,
                token_account(&terms.plan(), &terms.pay_to),
                token_account(
                    &terms.plan(),
                    &treasury_owner(cx.settings().network.cluster()),
                ),
            ]),
        )
        .await?;
    if accounts[0].is_some() {
        return Err(Refusal::new(Reason::UptoChannelAlreadyOpen));
    }
    if accounts[1..].iter().any(Option::is_none) {
        tracing::error!(
            "an upto payment cannot settle: the payee's or the treasury's token account is missing"
        );
        return Err(Refusal::new(Reason::UptoSettlementNotReady));
    }
    Ok(())
}

/// A checked `open`, co-signed, waiting to be submitted.
#[derive(Debug)]
struct OpenSubmission {
    transaction: Box<VersionedTransaction>,
    demand: UptoDemand,
    parties: Parties,
    claimed: Claimed,
}

#[async_trait]
impl Submission for OpenSubmission {
    fn parties(&self) -> Parties {
        self.parties
    }

    fn key(&self) -> Reference {
        self.demand
            .reference
            .unwrap_or_else(|| claim::channel_key(&self.claimed.channel.to_string(), false))
    }

    /// The `open`'s fees and rent and, at the gate, the settlement's fees to come (our
    /// signature and the voucher's): counted against the spending ceiling now, since the
    /// settlement must go out whatever the ceiling is by then. A facilitator's claim is
    /// charged on its own.
    fn cost(&self, cx: &Context) -> u64 {
        let settlement = match self.demand.reference {
            Some(_) => fee_cost(cx, 2),
            None => 0,
        };
        fee_cost(cx, self.transaction.signatures.len())
            .saturating_add(settlement)
            .saturating_add(self.rent())
    }

    /// The channel's and its escrow's rent, which `reclaim` and `distribute` return.
    fn rent(&self) -> u64 {
        let rent = anchor_lang::solana_program::rent::Rent::default();
        rent.minimum_balance(CHANNEL_ACCOUNT_BYTES)
            .saturating_add(rent.minimum_balance(ESCROW_ACCOUNT_BYTES))
    }

    /// Records the channel, submits the `open`, and reads the channel it opened: the
    /// channel on chain decides, not the submission's answer.
    async fn submit(&self, cx: &Context) -> Submitted {
        let channel = self.claimed.channel;
        let record = ChannelRecord {
            channel: channel.to_string(),
            reference: self.key().to_string(),
            payer: self.parties.payer.to_string(),
            mint: self.demand.terms.mint.to_string(),
            token_program: self.demand.terms.token_program.to_string(),
            pay_to: self.demand.terms.pay_to.to_string(),
            max_amount: self.demand.terms.max_amount,
            expires_at: self.claimed.expires_at,
            stage: Stage::Opened,
            amount: None,
            transaction: None,
            updated_at: x402_protocol::unix_now(),
        };
        // Before anything lands: a channel the store does not know of is still found by
        // the janitor on chain, but one it knows of is settled by what it records.
        match cx.store().open_channel(&record).await {
            Ok(true) => {}
            Ok(false) => {
                return Submitted::refused(Refusal::new(Reason::UptoChannelAlreadyOpen), false)
            }
            Err(error) => return Submitted::refused(store_unavailable(error), false),
        }
        let signature = self.transaction.signatures[0];
        let (account, lamports, charged) =
            match submit_and_read(cx, &self.transaction, &channel, |_| true).await {
                Ok(Sent::Landed(account, lamports, charged)) => (*account, lamports, charged),
                Ok(Sent::Rejected(why)) => {
                    tracing::info!(channel = %channel, %why, "upto open rejected");
                    close_record(cx, &channel).await;
                    return Submitted::refused(Refusal::new(Reason::TransactionFailed), false);
                }
                // Submitted yet not visible: the janitor closes it if it opens unserved.
                Ok(Sent::Unseen) => {
                    tracing::warn!(channel = %channel, "upto open submitted, but not visible yet");
                    return Submitted::refused(Refusal::unavailable(), false);
                }
                Err(refusal) => return Submitted::refused(refusal, false),
            };
        if !binds(&account, &self.demand.terms, &self.claimed) {
            // Not the channel this payment opens: the janitor closes it at zero.
            tracing::error!(%channel, "the channel on chain does not bind the challenge");
            return Submitted::refused(Refusal::new(Reason::UptoChannelState), true);
        }
        let settled = SettledPayment {
            scheme: Scheme::Upto,
            reference: self.key(),
            receipt: None,
            payer: self.parties.payer,
            // Held, not yet charged: the answer says what it cost.
            amount: self.demand.terms.max_amount,
            mint: self.demand.terms.mint,
            // The `open`, until the settlement's `distribute` replaces it.
            transaction: Some(signature.to_string()),
            network: cx.settings().network.caip2().to_string(),
            metered: Some(MeteredChannel {
                address: channel,
                max_amount: self.demand.terms.max_amount,
                opened_by: signature.to_string(),
            }),
            batch: None,
        };
        Submitted {
            outcome: Ok((settled, Landing::Here)),
            deposited: Some(lamports),
            charged,
        }
    }
}

/// Whether the channel opened binds the challenge: open, the exact deposit, our fee
/// payer as payee, rent payer and signer, the grace period and open slot signed.
fn binds(channel: &ChannelAccount, terms: &UptoTerms, claimed: &Claimed) -> bool {
    channel.distribution_hash == terms.plan().distribution_hash()
        && channel.status == ChannelStatus::Open
        && channel.deposit == terms.max_amount
        && channel.settled == 0
        && channel.mint == terms.mint
        && channel.payer == claimed.opening.payer
        && channel.payee == terms.fee_payer
        && channel.rent_payer == terms.fee_payer
        && channel.authorized_signer == terms.receiver_authorizer
        && channel.grace_period == terms.withdraw_delay
        && channel.open_slot == claimed.opening.open_slot
}

async fn close_record(cx: &Context, channel: &Pubkey) {
    let now = x402_protocol::unix_now();
    if let Err(error) = cx
        .store()
        .advance_channel(&channel.to_string(), Stage::Closed, None, None, now)
        .await
    {
        tracing::warn!(%error, "could not close a channel's record: the janitor will");
    }
}
