//! The ecosystem's `exact` scheme on Solana, so that every stock x402 client can pay: the
//! buyer signs a `TransferChecked` to the payee with the challenge's reference as its
//! Memo; we validate it strictly (`x402_protocol::exact::validate_exact`), co-sign as fee
//! payer, submit, and grant only once the ledger shows the transaction succeeded and the
//! payee's token account grew by the price. There is no receipt account: the grant is
//! keyed by the reference in the Memo, so a payment serves one request, and the
//! submission holds the reference's lease, as a sponsored `receipt` payment does.

use anchor_lang::prelude::Pubkey;
use serde_json::{Map, Value};
use solana_signer::Signer;
use solana_transaction::versioned::VersionedTransaction;
use x402_protocol::scheme::exact::{validate_exact, ExactPayload, MEMO_PROGRAM};
use x402_protocol::scheme::{decode_transaction as decode_versioned, SchemeError};
use x402_protocol::wire::{v2, Offer};
use x402_protocol::{read_mint, ExactOffer, ExactTerms, Landed, LedgerError, MintInfo, Reference};

use super::{fee_cost, Landing, Next, Scheme, Verified};
use crate::error::{Reason, Refusal};
use crate::gate::sponsorship::Parties;
use crate::gate::{store_unavailable, Gate, Price, SettledPayment, Target};
use crate::metrics::LedgerCall;
use crate::unix_now;

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

impl ExactDemand {
    /// The gate's demand: its mint, payee and fee payer, the reference as the Memo.
    pub(super) fn at_gate(gate: &Gate, amount: u64, reference: Reference) -> Self {
        ExactDemand {
            terms: terms(gate, amount, reference),
            reference: Some(reference),
        }
    }
}

fn terms(gate: &Gate, amount: u64, reference: Reference) -> ExactTerms {
    let s = gate.settings();
    ExactTerms {
        mint: s.mint,
        pay_to: s.pay_to,
        amount,
        // `exact` is enabled only with a fee payer (checked at start).
        fee_payer: s.fee_payer.as_ref().map(|k| k.pubkey()).unwrap_or_default(),
        memo: Some(reference.memo()),
    }
}

/// The `exact` offer for `price` at `target`: the Memo must be the reference.
pub(super) fn offer(gate: &Gate, price: &Price, target: &Target, reference: Reference) -> Offer {
    ExactOffer {
        network: gate.settings().network.caip2().to_string(),
        terms: terms(gate, price.amount, reference),
        recent_blockhash: gate.blockhash(),
        resource: v2::ResourceInfo {
            url: target.resource.clone(),
            description: Some(price.description.clone()),
            mime_type: Some(price.mime_type.clone()),
        },
        max_timeout_seconds: price.ttl.as_secs(),
    }
    .to_offer()
}

/// What a facilitator caller's `exact` offer asks: any payee and memo (the caller's
/// policy decides which), our fee payer.
pub(super) fn demand(gate: &Gate, offer: &Offer) -> Result<ExactDemand, Refusal> {
    let offer = ExactOffer::from_offer(offer).map_err(|e| match e {
        SchemeError::OtherScheme => Refusal::new(Reason::UnsupportedScheme),
        SchemeError::Malformed(_) => Refusal::new(Reason::InvalidPaymentRequirements),
    })?;
    let ours = gate.settings().fee_payer.as_ref().map(|k| k.pubkey());
    if ours != Some(offer.terms.fee_payer) {
        return Err(Refusal::new(Reason::TransactionWrongFeePayer));
    }
    Ok(ExactDemand {
        terms: offer.terms,
        reference: None,
    })
}

/// `/supported`'s `extra` for `exact`: the fee payer stock clients need.
pub(super) fn supported(gate: &Gate) -> Map<String, Value> {
    let mut extra = Map::new();
    if let Some(fee_payer) = &gate.settings().fee_payer {
        extra.insert("feePayer".into(), fee_payer.pubkey().to_string().into());
    }
    extra
}

/// A payment in the `exact` scheme: the buyer's partially signed transaction.
#[derive(Debug)]
pub struct ExactPayment(Box<VersionedTransaction>);

impl ExactPayment {
    /// Reads an `exact` payload: `{"transaction": base64}`.
    pub fn read(payload: Value) -> Result<Self, Refusal> {
        let malformed = |what: &str| Refusal::new(Reason::InvalidPayload).message(what.to_string());
        let payload: ExactPayload = serde_json::from_value(payload)
            .map_err(|_| malformed("payload: not an exact payment"))?;
        let tx = decode_versioned(&payload.transaction)
            .map_err(|e| malformed(&format!("payload.transaction: {e}")))?;
        Ok(ExactPayment(Box::new(tx)))
    }

    /// The reference in the transaction's Memo, if it holds one.
    pub fn memo_reference(&self) -> Option<Reference> {
        let keys = self.0.message.static_account_keys();
        self.0
            .message
            .instructions()
            .iter()
            .find(|ix| keys.get(usize::from(ix.program_id_index)) == Some(&MEMO_PROGRAM))
            .and_then(|memo| Reference::from_memo(std::str::from_utf8(&memo.data).ok()?))
    }

    /// What this payment is recorded under, for `demand`.
    pub fn key(&self, demand: &ExactDemand) -> Reference {
        demand.key(&self.0)
    }

    /// While the challenge is open: the strict validation and, for a mint other than the
    /// gate's, one read of the mint. In its grace: only a payment that landed counts.
    pub(super) async fn verify(
        self,
        gate: &Gate,
        demand: &ExactDemand,
        open: bool,
    ) -> Result<Verified, Refusal> {
        let s = gate.settings();
        let policy = gate.sponsor_policy()?;
        let fee_payer = s
            .fee_payer
            .as_ref()
            .expect("a sponsor policy has a fee payer");
        let mint = mint_facts(gate, &demand.terms.mint).await?;
        let transfer = validate_exact(&self.0, &demand.terms, &mint, &policy)
            .map_err(|defect| Refusal::new(defect.into()))?;
        let mut transaction = self.0;
        // Deterministic: the same message always has the same transaction id.
        transaction.signatures[0] = fee_payer.sign_message(&transaction.message.serialize());
        let key = demand.key(&transaction);
        // One transaction buys one request, whichever key it came under: the gate's
        // reference (its Memo) or a facilitator caller's message hash.
        let elsewhere = gate
            .store()
            .exact_settled_elsewhere(&transaction.signatures[0].to_string(), &key.to_string())
            .await
            .map_err(store_unavailable)?;
        if elsewhere {
            return Err(Refusal::new(Reason::DuplicateSettlement));
        }
        let submission = Submission {
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
            return match submission.landed(gate).await? {
                Some(settled) => Ok(Verified {
                    payer: settled.payer,
                    amount: settled.amount,
                    next: Next::Settled(settled),
                }),
                None => Err(Refusal::new(Reason::ExpiredReference)),
            };
        }
        // Submitted this late, it could land after the expiry, unpaid for: a fresh
        // challenge instead.
        let margin = s.sponsor_limits.expiry_margin.as_secs() as i64;
        if demand
            .reference
            .is_some_and(|r| unix_now().saturating_add(margin) > r.expires_at())
        {
            return Err(Refusal::new(Reason::ExpiringReference));
        }
        Ok(Verified {
            payer: transfer.payer,
            amount: demand.terms.amount,
            next: Next::Exact(submission),
        })
    }
}

/// The mint's facts from the ledger (never from the payer or the caller); the gate's own
/// mint was read at start, and a mint that withholds part of a transfer disables `exact`.
async fn mint_facts(gate: &Gate, mint: &Pubkey) -> Result<MintInfo, Refusal> {
    let s = gate.settings();
    if *mint == s.mint {
        return Ok(MintInfo {
            decimals: s.decimals,
            token_program: s.token_program,
            delivers_in_full: true,
        });
    }
    let account = gate
        .ledger_call(LedgerCall::Account, gate.ledger().account(mint))
        .await?
        .ok_or_else(|| Refusal::new(Reason::InvalidPaymentRequirements))?;
    read_mint(&account).map_err(|_| Refusal::new(Reason::InvalidPaymentRequirements))
}

/// A checked `exact` payment, co-signed, waiting to be submitted.
#[derive(Debug)]
pub struct Submission {
    transaction: Box<VersionedTransaction>,
    demand: ExactDemand,
    /// The reference its grant and its submission lease are keyed by.
    key: Reference,
    parties: Parties,
    /// The payee's token account.
    destination: Pubkey,
}

impl Submission {
    /// The most it costs the fee payer: fees only, no account is created.
    pub(super) fn cost(&self, gate: &Gate) -> u64 {
        fee_cost(gate, self.transaction.signatures.len())
    }

    /// Submits and reads the outcome from the ledger: the transaction's status and the
    /// payee's balance change decide, not the submission's answer, so a retried payment
    /// that landed earlier is still served. Only within the sponsorship's limits, and
    /// only while holding the reference's lease.
    pub(super) async fn settle(self, gate: &Gate) -> Result<(SettledPayment, Landing), Refusal> {
        let cost = self.cost(gate);
        let permit = gate
            .sponsorship()
            .admit(self.parties, cost, gate.metrics().rent_held())?;
        let lease = self.key.to_string();
        let now = unix_now();
        let leased = gate
            .store()
            .lease_submission(
                &lease,
                now,
                now.saturating_add(super::receipt::LEASE_SECONDS),
            )
            .await
            .map_err(store_unavailable)?;
        if !leased {
            return Err(Refusal::new(Reason::SponsorshipBusy));
        }
        let (outcome, charged) = self.submit(gate).await;
        // Landed, it cost its fees, succeeded or not: they count against the ceiling. A
        // payer whose payment failed on chain (a wallet's assertion, say) is not sponsored
        // again for a while; one refused in preflight cost nothing.
        if charged {
            permit.spent(cost);
        }
        if let Err(refusal) = &outcome {
            if charged && refusal.reason() == Reason::TransactionFailed {
                permit.failed();
            }
            // A payment that did not land may be retried at once; one that landed keeps
            // its lease until it lapses, by when its grant is recorded.
            if let Err(error) = gate.store().end_submission(&lease).await {
                tracing::warn!(%error, "could not end a submission lease: it lapses by itself");
            }
        }
        outcome
    }

    /// Submits and reads what landed; whether the transaction landed (its fees paid).
    /// Refused as processed already, it landed before this request: [`Landing::Before`].
    async fn submit(&self, gate: &Gate) -> (Result<(SettledPayment, Landing), Refusal>, bool) {
        // Already processed, among others: what landed decides below. Unanswered, it may
        // have landed all the same: that is read too before a 503.
        let rejected = match gate
            .ledger_call(LedgerCall::Submit, gate.ledger().submit(&self.transaction))
            .await
        {
            Err(LedgerError::Rejected(why)) => Some(why),
            Ok(_) | Err(LedgerError::Unavailable(_)) => None,
        };
        match (self.landed(gate).await, rejected) {
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
        }
    }

    /// The payment, if its transaction landed, succeeded, and paid the payee in full.
    async fn landed(&self, gate: &Gate) -> Result<Option<SettledPayment>, Refusal> {
        let signature = self.transaction.signatures[0];
        let landed = gate
            .ledger_call(
                LedgerCall::Transaction,
                gate.ledger().landed(&signature, &self.destination),
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
                network: gate.settings().network.caip2().to_string(),
            })),
        }
    }
}
