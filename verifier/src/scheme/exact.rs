//! The ecosystem's `exact` scheme on Solana, so that every stock x402 client can pay: the
//! buyer signs a `TransferChecked` to the payee with the challenge's reference as its
//! Memo; we validate it strictly (`x402_protocol::scheme::exact::validate_exact`), co-sign as fee
//! payer, submit, and grant only once the ledger shows the transaction succeeded and the
//! payee's token account grew by the price. There is no receipt account: the grant is
//! keyed by the reference in the Memo, so a payment serves one request, and the
//! submission holds the reference's lease, as a sponsored `receipt` payment does.

use anchor_lang::prelude::Pubkey;
use async_trait::async_trait;
use serde_json::{Map, Value};
use solana_signer::Signer;
use solana_transaction::versioned::VersionedTransaction;
use x402_protocol::scheme::decode_transaction;
use x402_protocol::scheme::exact::{validate_exact, ExactPayload};
use x402_protocol::wire::Offer;
use x402_protocol::{read_mint, ExactOffer, ExactTerms, Landed, LedgerError, MintInfo, Reference};

use super::{
    fee_cost, memo_reference, resource, sponsored_extra, Landing, PaymentScheme, Submission,
    Submitted, Terms, Verified,
};
use crate::context::{store_unavailable, Context};
use crate::error::{Reason, Refusal};
use crate::metrics::LedgerCall;
use crate::model::{Price, Scheme, SettledPayment, Target};
use crate::sponsorship::Parties;

/// The `exact` scheme at the verifier.
pub struct ExactScheme;

/// What an `exact` payment must pay.
#[derive(Clone, Debug)]
pub struct ExactDemand {
    pub terms: ExactTerms,
    /// The challenge's reference, at the gate (also the Memo); none for a facilitator
    /// caller, whose memo is its own.
    pub reference: Option<Reference>,
}

impl ExactDemand {
    /// What the payment `tx` is recorded and leased under: the reference, or the hash
    /// of its message when there is none (x402's duplicate-settlement key).
    fn key(&self, tx: &VersionedTransaction) -> Reference {
        self.reference
            .unwrap_or_else(|| Reference(tx.message.hash().to_bytes()))
    }
}

/// The gate's terms: its mint, payee and fee payer, the reference as the Memo.
fn terms(cx: &Context, amount: u64, reference: Reference) -> ExactTerms {
    let s = cx.settings();
    ExactTerms {
        mint: s.mint,
        pay_to: s.pay_to,
        amount,
        // `exact` is enabled only with a fee payer (checked at start).
        fee_payer: cx.fee_payer().unwrap_or_default(),
        memo: Some(reference.memo()),
    }
}

/// A payment in the `exact` scheme: the buyer's partially signed transaction.
#[derive(Debug)]
pub struct ExactPayment(Box<VersionedTransaction>);

#[async_trait]
impl PaymentScheme for ExactScheme {
    const SCHEME: Scheme = Scheme::Exact;
    type Demand = ExactDemand;
    type Payment = ExactPayment;

    /// The Memo must be the reference.
    fn offer(cx: &Context, price: &Price, target: &Target, reference: Reference) -> Offer {
        ExactOffer {
            network: cx.settings().network.caip2().to_string(),
            terms: terms(cx, price.amount, reference),
            recent_blockhash: cx.blockhash(),
            resource: resource(price, target),
            max_timeout_seconds: price.ttl.as_secs(),
        }
        .to_offer()
    }

    /// The fee payer stock clients need.
    fn supported(cx: &Context) -> Map<String, Value> {
        sponsored_extra(cx)
    }

    fn at_gate(cx: &Context, price: &Price, reference: Reference) -> ExactDemand {
        let amount = price.amount;
        ExactDemand {
            terms: terms(cx, amount, reference),
            reference: Some(reference),
        }
    }

    /// A facilitator caller's offer: any payee and memo (the caller's policy decides
    /// which), our fee payer.
    fn requested(cx: &Context, offer: &Offer) -> Result<ExactDemand, Refusal> {
        let offer = ExactOffer::from_offer(offer)?;
        if cx.fee_payer() != Some(offer.terms.fee_payer) {
            return Err(Refusal::new(Reason::TransactionWrongFeePayer));
        }
        Ok(ExactDemand {
            terms: offer.terms,
            reference: None,
        })
    }

    fn terms(demand: &ExactDemand) -> Terms {
        Terms {
            mint: demand.terms.mint,
            pay_to: demand.terms.pay_to,
            amount: demand.terms.amount,
            expires_at: demand.reference.map(|r| r.expires_at()),
        }
    }

    /// `{"transaction": base64}`.
    fn read(payload: Value) -> Result<ExactPayment, Refusal> {
        let malformed = |what: &str| Refusal::new(Reason::InvalidPayload).message(what.to_string());
        let payload: ExactPayload = serde_json::from_value(payload)
            .map_err(|_| malformed("payload: not an exact payment"))?;
        let tx = decode_transaction(&payload.transaction)
            .map_err(|e| malformed(&format!("payload.transaction: {e}")))?;
        Ok(ExactPayment(Box::new(tx)))
    }

    /// The reference in the Memo.
    fn reference(_: &Context, payment: &ExactPayment) -> Result<Reference, Refusal> {
        memo_reference(&payment.0).ok_or_else(|| Refusal::new(Reason::InvalidReference))
    }

    fn key(payment: &ExactPayment, demand: &ExactDemand) -> Reference {
        demand.key(&payment.0)
    }

    /// While the challenge is open: the strict validation and, for a mint other than the
    /// gate's, one read of the mint. In its grace: only a payment that landed counts.
    async fn verify(
        cx: &Context,
        payment: ExactPayment,
        demand: &ExactDemand,
        open: bool,
    ) -> Result<Verified, Refusal> {
        let policy = cx.sponsor_policy()?;
        let fee_payer = cx
            .settings()
            .fee_payer
            .as_ref()
            .expect("a sponsor policy has a fee payer");
        let mint = mint_facts(cx, &demand.terms.mint).await?;
        let transfer = validate_exact(&payment.0, &demand.terms, &mint, &policy)
            .map_err(|defect| Refusal::new(defect.into()))?;
        let mut transaction = payment.0;
        // Deterministic: the same message always has the same transaction id.
        transaction.signatures[0] = fee_payer.sign_message(&transaction.message.serialize());
        let key = demand.key(&transaction);
        // One transaction buys one request, whichever key it came under: the gate's
        // reference (its Memo) or a facilitator caller's message hash.
        let elsewhere = cx
            .store()
            .exact_settled_elsewhere(&transaction.signatures[0].to_string(), &key.to_string())
            .await
            .map_err(store_unavailable)?;
        if elsewhere {
            return Err(Refusal::new(Reason::DuplicateSettlement));
        }
        let submission = ExactSubmission {
            transaction,
            demand: demand.clone(),
            key,
            parties: Parties {
                payer: transfer.payer,
                source: transfer.source,
            },
            destination: transfer.destination,
        };
        if !open {
            // Nothing new is submitted for an expired reference.
            return match submission.landed(cx).await? {
                Some(settled) => Ok(Verified::landed(settled)),
                None => Err(Refusal::new(Reason::ExpiredReference)),
            };
        }
        if let Some(reference) = demand.reference {
            cx.sponsorship()
                .check_expiry(reference.expires_at(), x402_protocol::unix_now())?;
        }
        Ok(Verified::to_submit(
            transfer.payer,
            demand.terms.amount,
            submission,
        ))
    }
}

/// The mint's facts from the ledger (never from the payer or the caller); the gate's own
/// mint was read at start, and a mint that withholds part of a transfer disables `exact`.
async fn mint_facts(cx: &Context, mint: &Pubkey) -> Result<MintInfo, Refusal> {
    let s = cx.settings();
    if *mint == s.mint {
        return Ok(MintInfo {
            decimals: s.decimals,
            token_program: s.token_program,
            delivers_in_full: true,
        });
    }
    let account = cx
        .ledger_call(LedgerCall::Account, cx.ledger().account(mint))
        .await?
        .ok_or_else(|| Refusal::new(Reason::InvalidPaymentRequirements))?;
    read_mint(&account).map_err(|_| Refusal::new(Reason::InvalidPaymentRequirements))
}

/// A checked `exact` payment, co-signed, waiting to be submitted.
#[derive(Debug)]
struct ExactSubmission {
    transaction: Box<VersionedTransaction>,
    demand: ExactDemand,
    /// The reference its grant and its submission lease are keyed by.
    key: Reference,
    parties: Parties,
    /// The payee's token account.
    destination: Pubkey,
}

#[async_trait]
impl Submission for ExactSubmission {
    fn parties(&self) -> Parties {
        self.parties
    }

    fn key(&self) -> Reference {
        self.key
    }

    /// Fees only: no account is created.
    fn cost(&self, cx: &Context) -> u64 {
        fee_cost(cx, self.transaction.signatures.len())
    }

    /// Submits and reads the outcome from the ledger: the transaction's status and the
    /// payee's balance change decide, not the submission's answer, so a retried payment
    /// that landed earlier is still served ([`Landing::Before`]).
    async fn submit(&self, cx: &Context) -> Submitted {
        // Already processed, among others: what landed decides below. Unanswered, it may
        // have landed all the same: that is read too before a 503.
        let rejected = match cx
            .ledger_call(LedgerCall::Submit, cx.ledger().submit(&self.transaction))
            .await
        {
            Err(LedgerError::Rejected(why)) => Some(why),
            Ok(_) | Err(LedgerError::Unavailable(_)) => None,
        };
        let (outcome, charged) = match (self.landed(cx).await, rejected) {
            (Ok(Some(settled)), None) => (Ok((settled, Landing::Here)), true),
            (Ok(Some(settled)), Some(_)) => (Ok((settled, Landing::Before)), false),
            (Err(refusal), _) if refusal.reason() != Reason::LedgerUnavailable => {
                (Err(refusal), true)
            }
            (_, Some(why)) => {
                tracing::info!(reference = %self.key, %why, "exact payment rejected");
                (Err(Refusal::new(Reason::TransactionFailed)), false)
            }
            // Submitted at our commitment yet not visible: the client retries the same
            // payment.
            (Ok(None) | Err(_), None) => {
                tracing::warn!(reference = %self.key, "submitted, but not visible yet");
                (Err(Refusal::unavailable()), false)
            }
        };
        Submitted {
            outcome,
            deposited: None,
            charged,
        }
    }
}

impl ExactSubmission {
    /// The payment, if its transaction landed, succeeded, and paid the payee in full.
    async fn landed(&self, cx: &Context) -> Result<Option<SettledPayment>, Refusal> {
        let signature = self.transaction.signatures[0];
        let landed = cx
            .ledger_call(
                LedgerCall::Transaction,
                cx.ledger().landed(&signature, &self.destination),
            )
            .await?;
        let amount = self.demand.terms.amount;
        match landed {
            None => Ok(None),
            Some(Landed {
                failure: Some(why), ..
            }) => {
                tracing::info!(reference = %self.key, %why, "exact payment failed on chain");
                Err(Refusal::new(Reason::TransactionFailed))
            }
            Some(Landed { received, .. }) if received < amount => {
                tracing::error!(reference = %self.key, received, amount, "the payee received less than the price");
                Err(Refusal::new(Reason::ReceiptAmountBelowPrice))
            }
            Some(_) => Ok(Some(SettledPayment {
                scheme: Scheme::Exact,
                reference: self.key,
                receipt: None,
                payer: self.parties.payer,
                amount,
                mint: self.demand.terms.mint,
                transaction: Some(signature.to_string()),
                network: cx.settings().network.caip2().to_string(),
                metered: None,
                batch: None,
            })),
        }
    }
}
