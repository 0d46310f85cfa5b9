//! The `receipt` scheme: a `pay` of our program creates the reference's receipt account
//! atomically with the transfer, and the receipt decides. Way 1 (sponsored): validate the
//! transaction strictly, co-sign as fee payer, submit, read the receipt. Way 2
//! (self-submitted): the payer paid; read the receipt.

use anchor_lang::prelude::Pubkey;
use serde_json::{Map, Value};
use solana_signature::Signature;
use solana_signer::Signer;
use solana_transaction::Transaction;
use x402_protocol::scheme::receipt::{paid_reference, ReceiptOffer, ReceiptPayload};
use x402_protocol::scheme::{decode_transaction, SchemeError};
use x402_protocol::wire::Offer;
use x402_protocol::{
    check_receipt, validate_sponsored, LedgerError, Receipt, Reference, Requirement,
};

use super::{fee_cost, Landing, Next, Verified};
use crate::error::{Reason, Refusal};
use crate::gate::sponsorship::Parties;
use crate::gate::{store_unavailable, Gate, Price, SettledPayment, Target};
use crate::metrics::LedgerCall;
use crate::unix_now;

/// The `receipt` offer for `price` at `target`: sponsored (with the fee payer and a
/// fresh blockhash) when this verifier has a fee payer.
pub(super) fn offer(gate: &Gate, price: &Price, target: &Target, reference: Reference) -> Offer {
    let s = gate.settings();
    let fee_payer = s.fee_payer.as_ref().map(|k| k.pubkey());
    ReceiptOffer {
        network: s.network.caip2().to_string(),
        requirement: gate.requirement(price.amount, reference),
        decimals: s.decimals,
        fee_payer,
        recent_blockhash: fee_payer.and(gate.blockhash()),
        resource: target.resource.clone(),
        description: price.description.clone(),
        mime_type: price.mime_type.clone(),
        max_timeout_seconds: price.ttl.as_secs(),
    }
    .to_offer()
}

/// The requirement of a `receipt` offer a facilitator caller sends: any reference and
/// payee (the caller issues its own), but our program.
pub(super) fn requirement(gate: &Gate, offer: &Offer) -> Result<Requirement, Refusal> {
    let offer = ReceiptOffer::from_offer(offer).map_err(|e| match e {
        SchemeError::OtherScheme => Refusal::new(Reason::UnsupportedScheme),
        SchemeError::Malformed(_) => Refusal::new(Reason::InvalidPaymentRequirements),
    })?;
    if offer.requirement.program != gate.settings().program {
        return Err(Refusal::new(Reason::InvalidPaymentRequirements));
    }
    Ok(offer.requirement)
}

/// `/supported`'s `extra` for `receipt`: the program, and the fee payer that co-signs.
pub(super) fn supported(gate: &Gate) -> Map<String, Value> {
    let s = gate.settings();
    let mut extra = Map::new();
    extra.insert("programId".into(), s.program.to_string().into());
    if let Some(fee_payer) = &s.fee_payer {
        extra.insert("feePayer".into(), fee_payer.pubkey().to_string().into());
    }
    extra
}

/// A payment in the `receipt` scheme, as the request carries it.
#[derive(Debug)]
pub enum ReceiptPayment {
    /// Way 1: a `pay` transaction for the fee payer to co-sign.
    Sponsored(Box<Transaction>),
    /// Way 2: the payer paid; the verifier checks the receipt and the payer's proof.
    SelfSubmitted {
        reference: Reference,
        proof: Option<String>,
        signature: Option<String>,
    },
}

/// A checked sponsored payment, waiting to be co-signed and submitted.
#[derive(Debug)]
pub struct Submission {
    transaction: Box<Transaction>,
    requirement: Requirement,
    payer: Pubkey,
}

fn malformed(field: &str, error: impl std::fmt::Display) -> Refusal {
    Refusal::new(Reason::InvalidPayload).message(format!("{field}: {error}"))
}

impl ReceiptPayment {
    /// Reads a `receipt` payload: `{"transaction"}` or `{"reference", "signature"}`.
    pub fn read(payload: Value) -> Result<Self, Refusal> {
        let payload: ReceiptPayload = serde_json::from_value(payload)
            .map_err(|_| malformed("payload", "not a receipt payment"))?;
        match payload {
            ReceiptPayload::Sponsored { transaction } => {
                let tx = decode_transaction(&transaction)
                    .map_err(|e| malformed("payload.transaction", e))?;
                Ok(ReceiptPayment::Sponsored(Box::new(tx)))
            }
            ReceiptPayload::SelfSubmitted {
                reference,
                proof,
                signature,
            } => Ok(ReceiptPayment::SelfSubmitted {
                reference: reference
                    .parse()
                    .map_err(|e| malformed("payload.reference", e))?,
                proof,
                signature,
            }),
        }
    }

    /// The reference paid: the `pay` instruction's argument, or the one named.
    pub fn reference(&self, program: &Pubkey) -> Result<Reference, Refusal> {
        match self {
            ReceiptPayment::Sponsored(tx) => paid_reference(tx, program)
                .ok_or_else(|| Refusal::new(Reason::TransactionUnexpectedInstruction)),
            ReceiptPayment::SelfSubmitted { reference, .. } => Ok(*reference),
        }
    }

    /// Way 1 while the challenge is open: the strict validation, no ledger call. In every
    /// other case: the receipt, one ledger read, redeemed by its payer only.
    pub(super) async fn verify(
        self,
        gate: &Gate,
        requirement: &Requirement,
        open: bool,
    ) -> Result<Verified, Refusal> {
        let (signature, signer) = match self {
            ReceiptPayment::Sponsored(transaction) if open => {
                let payer = check_sponsored(gate, &transaction, requirement)?;
                // Submitted this late, it could land after the expiry and fail, at the
                // fee payer's cost: a fresh challenge instead.
                let margin = gate.settings().sponsor_limits.expiry_margin.as_secs() as i64;
                if unix_now().saturating_add(margin) > requirement.expires_at {
                    return Err(Refusal::new(Reason::ExpiringReference));
                }
                return Ok(Verified {
                    payer,
                    amount: requirement.amount,
                    next: Next::Receipt(Submission {
                        transaction,
                        requirement: requirement.clone(),
                        payer,
                    }),
                });
            }
            // Nothing new is submitted for an expired reference: only a receipt that
            // exists already pays for it, and only to the payer whose signed `pay` this
            // is (a copy with another signer, or none, redeems nothing).
            ReceiptPayment::Sponsored(transaction) => {
                let payer = check_sponsored(gate, &transaction, requirement)?;
                (None, Some(payer))
            }
            ReceiptPayment::SelfSubmitted { signature, .. } => (signature, None),
        };
        let receipt = match read_receipt(gate, requirement).await? {
            Some((receipt, _)) => receipt,
            None if !open => return Err(Refusal::new(Reason::ExpiredReference)),
            // It may still land: the client must present the same reference again.
            None => {
                return Err(Refusal::pending(
                    Reason::ReceiptNotFound,
                    requirement.reference,
                ))
            }
        };
        // The payer's proof is the decision's to check (it landed before this request);
        // a signed `pay` by anyone else is not even the payer's payment.
        if signer.is_some_and(|signer| signer != receipt.payer) {
            return Err(Refusal::new(Reason::InvalidProof));
        }
        Ok(Verified {
            payer: receipt.payer,
            amount: receipt.amount,
            next: Next::Settled(settled(gate, requirement, &receipt, signature)),
        })
    }
}

impl Submission {
    /// The most this submission costs the fee payer: the fee of its signatures, the
    /// priority fee at the capped price and limit, and the receipt's rent deposit.
    pub(super) fn cost(&self, gate: &Gate) -> u64 {
        fee_cost(gate, self.transaction.signatures.len()).saturating_add(rent_of_a_receipt())
    }

    /// Co-signs, submits, and reads the receipt: the receipt decides, not the
    /// submission's outcome, so a retried payment that landed earlier is still served
    /// (to its payer: [`Landing::Before`]). Only within the sponsorship's limits, and only
    /// while holding the reference's lease: copies of one payment sent at once are
    /// submitted once.
    pub(super) async fn settle(self, gate: &Gate) -> Result<(SettledPayment, Landing), Refusal> {
        let parties = Parties {
            payer: self.payer,
            source: payer_token(&self.transaction),
        };
        let cost = self.cost(gate);
        let permit = gate
            .sponsorship()
            .admit(parties, cost, gate.metrics().rent_held())?;
        let Submission {
            mut transaction,
            requirement,
            payer,
        } = self;
        let fee_payer = gate
            .settings()
            .fee_payer
            .as_ref()
            .ok_or_else(|| Refusal::new(Reason::SponsorshipUnavailable))?;
        let blockhash = transaction.message.recent_blockhash;
        transaction
            .try_partial_sign(&[fee_payer.as_ref()], blockhash)
            .map_err(|_| Refusal::new(Reason::TransactionBadSignature))?;

        let reference = requirement.reference.to_string();
        let now = unix_now();
        let held_until = now.saturating_add(LEASE_SECONDS);
        let leased = gate
            .store()
            .lease_submission(&reference, now, held_until)
            .await
            .map_err(store_unavailable)?;
        if !leased {
            // Another request submits this payment: its grant belongs to that request,
            // which no copy may take while it confirms.
            return Err(Refusal::new(Reason::SponsorshipBusy));
        }
        let submitted = submit(gate, &transaction, &requirement, payer).await;
        // Landed, it cost its fees, succeeded or not: they count against the ceiling. A
        // payer whose payment failed on chain is not sponsored again for a while; one
        // refused in preflight cost nothing and bars nobody (or anyone could bar anyone).
        if submitted.charged {
            permit.spent(cost.saturating_sub(rent_of_a_receipt()));
        }
        if let Some(deposited) = submitted.deposited {
            gate.metrics().rent_deposited(deposited);
        }
        if let Err(refusal) = &submitted.outcome {
            if submitted.charged && refusal.reason() == Reason::TransactionFailed {
                permit.failed();
            }
            // A payment that failed may be retried at once. One that landed keeps its
            // lease until it lapses (or its grant is given back): by then its grant is
            // recorded, and copies are refused before they reach the ledger.
            if let Err(error) = gate.store().end_submission(&reference).await {
                tracing::warn!(%error, "could not end a submission lease: it lapses by itself");
            }
        }
        submitted.outcome
    }
}

/// What one submission came to.
struct Submitted {
    outcome: Result<(SettledPayment, Landing), Refusal>,
    /// Lamports it deposited in the receipt it created.
    deposited: Option<u64>,
    /// Whether the ledger charged its fee: it landed, succeeded or not.
    charged: bool,
}

/// Submits the co-signed `transaction` and reads the receipt: the receipt decides, not
/// the submission's outcome, but only a receipt its own `payer` paid (the same payment
/// landed before, say retried after a 503): a copy signed by anyone else, which failed
/// because the buyer's landed, redeems nothing.
async fn submit(
    gate: &Gate,
    transaction: &Transaction,
    requirement: &Requirement,
    payer: Pubkey,
) -> Submitted {
    let signature = transaction.signatures[0];
    let refused = |refusal: Refusal, charged: bool| Submitted {
        outcome: Err(refusal),
        deposited: None,
        charged,
    };
    let rejected = match gate
        .ledger_call(
            LedgerCall::Submit,
            gate.ledger().submit(&transaction.clone().into()),
        )
        .await
    {
        Ok(_) => None,
        Err(LedgerError::Rejected(why)) => Some(why),
        Err(unavailable) => return refused(unavailable.into(), false),
    };
    let receipt = match read_receipt(gate, requirement).await {
        Ok(receipt) => receipt,
        Err(refusal) => return refused(refusal, rejected.is_none()),
    };
    match (receipt, rejected) {
        (Some((receipt, lamports)), rejected) if receipt.payer == payer => {
            let settled = settled(gate, requirement, &receipt, Some(signature.to_string()));
            match rejected {
                None => Submitted {
                    outcome: Ok((settled, Landing::Here)),
                    deposited: Some(lamports),
                    charged: true,
                },
                // The same payment landed before: nothing was charged now.
                Some(_) => Submitted {
                    outcome: Ok((settled, Landing::Before)),
                    deposited: None,
                    charged: false,
                },
            }
        }
        (receipt, Some(why)) => {
            if receipt.is_some() {
                tracing::info!(reference = %requirement.reference, "a copy of a payment another payer made");
            } else {
                tracing::info!(reference = %requirement.reference, %why, "sponsored payment rejected");
            }
            let charged = charged(gate, &signature, requirement).await;
            refused(Refusal::new(Reason::TransactionFailed), charged)
        }
        (Some(_), None) => {
            tracing::error!(reference = %requirement.reference, "a submission landed, yet the receipt names another payer");
            refused(Refusal::new(Reason::TransactionFailed), true)
        }
        // Submitted at our commitment yet not visible: the client retries the same
        // payment.
        (None, None) => {
            tracing::warn!(reference = %requirement.reference, "submitted, but the receipt is not visible yet");
            refused(Refusal::unavailable(), true)
        }
    }
}

/// Whether a rejected submission landed all the same (and failed, its fee charged), or
/// was refused before it landed (preflight): one read, on the failure path only. Unknown
/// counts as not charged: nobody is barred on a guess.
async fn charged(gate: &Gate, signature: &Signature, requirement: &Requirement) -> bool {
    let landed = gate
        .ledger_call(
            LedgerCall::Transaction,
            gate.ledger().landed(signature, &requirement.receipt()),
        )
        .await;
    matches!(landed, Ok(Some(_)))
}

/// The token account a validated `pay` spends from: its fifth account (`payer_token`,
/// which the program requires the payer to own).
fn payer_token(transaction: &Transaction) -> Pubkey {
    let message = &transaction.message;
    message
        .instructions
        .last()
        .and_then(|pay| pay.accounts.get(4))
        .and_then(|&index| message.account_keys.get(usize::from(index)))
        .copied()
        .unwrap_or_default()
}

/// How long a submission's lease is held at most: past the ledger calls' deadlines.
pub(super) const LEASE_SECONDS: i64 = 60;

/// The rent deposit of a receipt.
fn rent_of_a_receipt() -> u64 {
    anchor_lang::solana_program::rent::Rent::default()
        .minimum_balance(x402_receipts::Receipt::SPACE)
}

/// Whether the fee payer may sign `tx` for `requirement`: the payer, or why not.
fn check_sponsored(
    gate: &Gate,
    tx: &Transaction,
    requirement: &Requirement,
) -> Result<Pubkey, Refusal> {
    let policy = gate.sponsor_policy()?;
    validate_sponsored(tx, requirement, &policy).map_err(|defect| Refusal::new(defect.into()))
}

/// The receipt `requirement` asks for and its lamports, if it exists; a receipt that
/// does not meet the requirement is a refusal.
async fn read_receipt(
    gate: &Gate,
    requirement: &Requirement,
) -> Result<Option<(Receipt, u64)>, Refusal> {
    let account = gate
        .ledger_call(
            LedgerCall::Account,
            gate.ledger().account(&requirement.receipt()),
        )
        .await?;
    let Some(account) = account else {
        return Ok(None);
    };
    let receipt =
        check_receipt(&account, requirement).map_err(|defect| Refusal::new(defect.into()))?;
    Ok(Some((receipt, account.lamports)))
}

fn settled(
    gate: &Gate,
    requirement: &Requirement,
    receipt: &Receipt,
    transaction: Option<String>,
) -> SettledPayment {
    SettledPayment {
        scheme: super::Scheme::Receipt,
        reference: requirement.reference,
        receipt: Some(requirement.receipt()),
        payer: receipt.payer,
        amount: receipt.amount,
        mint: receipt.mint,
        transaction,
        network: gate.settings().network.caip2().to_string(),
    }
}
