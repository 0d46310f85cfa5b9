//! The `receipt` scheme: a `pay` of our program creates the reference's receipt account
//! atomically with the transfer, and the receipt decides. Way 1 (sponsored): validate the
//! transaction strictly, co-sign as fee payer, submit, read the receipt. Way 2
//! (self-submitted): the payer paid; read the receipt.

use anchor_lang::prelude::Pubkey;
use serde_json::{Map, Value};
use solana_signer::Signer;
use solana_transaction::Transaction;
use x402_protocol::scheme::{
    decode_transaction, paid_reference, ReceiptOffer, ReceiptPayload, SchemeError,
};
use x402_protocol::wire::Offer;
use x402_protocol::{
    check_receipt, validate_sponsored, LedgerError, Receipt, Reference, Requirement,
};

use super::{fee_cost, Next, Verified};
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
        target: Option<&Target>,
    ) -> Result<Verified, Refusal> {
        let (signature, presenter) = match self {
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
                (None, Presenter::Signer(payer))
            }
            ReceiptPayment::SelfSubmitted {
                signature, proof, ..
            } => (signature, Presenter::Proof(proof)),
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
        // A receipt is redeemed by its payer only: its reference is public on chain, its
        // payer's signature is not.
        let proven = match (presenter, target) {
            (Presenter::Signer(payer), _) => payer == receipt.payer,
            (Presenter::Proof(proof), Some(target)) => {
                target.proven_by(&receipt.payer, proof.as_deref(), &requirement.reference)
            }
            // A facilitator caller binds the payment to its request itself.
            (Presenter::Proof(_), None) => true,
        };
        if !proven {
            return Err(Refusal::new(Reason::InvalidProof));
        }
        Ok(Verified {
            payer: receipt.payer,
            amount: receipt.amount,
            next: Next::Settled(settled(gate, requirement, &receipt, signature)),
        })
    }
}

/// Who presents a payment that is read from its receipt.
enum Presenter {
    /// The signer of the sponsored `pay` presented (its signature checked).
    Signer(Pubkey),
    /// A self-submitted payment's proof, if any.
    Proof(Option<String>),
}

impl Submission {
    /// The most this submission costs the fee payer: the fee of its signatures, the
    /// priority fee at the capped price and limit, and the receipt's rent deposit.
    pub(super) fn cost(&self, gate: &Gate) -> u64 {
        fee_cost(gate, self.transaction.signatures.len()).saturating_add(rent_of_a_receipt())
    }

    /// Co-signs, submits, and reads the receipt: the receipt decides, not the
    /// submission's outcome, so a retried payment that landed earlier is still served.
    /// Only within the sponsorship's limits, and only while holding the reference's
    /// lease: copies of one payment sent at once are submitted once.
    pub(super) async fn settle(self, gate: &Gate) -> Result<SettledPayment, Refusal> {
        let parties = Parties {
            payer: self.payer,
            source: payer_token(&self.transaction),
        };
        let permit =
            gate.sponsorship()
                .admit(parties, self.cost(gate), gate.metrics().rent_held())?;
        let cost = self.cost(gate);
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
        let signature = transaction.signatures[0].to_string();

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
        let outcome = submit(gate, &transaction, &requirement, payer, signature).await;
        match &outcome {
            Ok((_, Some(deposited))) => {
                gate.metrics().rent_deposited(*deposited);
                permit.spent(cost.saturating_sub(rent_of_a_receipt()));
            }
            Ok((_, None)) => {}
            // A payment that failed may be retried at once. One that landed keeps its
            // lease until it lapses (or its grant is given back): by then its grant is
            // recorded, and copies are refused before they reach the ledger.
            Err(refusal) => {
                if refusal.reason() == Reason::TransactionFailed {
                    permit.failed();
                }
                if let Err(error) = gate.store().end_submission(&reference).await {
                    tracing::warn!(%error, "could not end a submission lease: it lapses by itself");
                }
            }
        }
        outcome.map(|(settled, _)| settled)
    }
}

/// Submits the co-signed `transaction` and reads the receipt: the receipt decides, not
/// the submission's outcome, but only a receipt its own `payer` paid (the same payment
/// landed before, say retried after a 503): a copy signed by anyone else, which failed
/// because the buyer's landed, redeems nothing. The payment, and the rent this
/// submission deposited when it landed (none when the same payment had landed before).
async fn submit(
    gate: &Gate,
    transaction: &Transaction,
    requirement: &Requirement,
    payer: Pubkey,
    signature: String,
) -> Result<(SettledPayment, Option<u64>), Refusal> {
    let transaction = transaction.clone().into();
    let rejected = match gate
        .ledger_call(LedgerCall::Submit, gate.ledger().submit(&transaction))
        .await
    {
        Ok(_) => None,
        Err(LedgerError::Rejected(why)) => Some(why),
        Err(unavailable) => return Err(unavailable.into()),
    };
    match (read_receipt(gate, requirement).await?, rejected) {
        (Some((receipt, _)), _) if receipt.payer != payer => {
            tracing::info!(reference = %requirement.reference, "a copy of a payment another payer made");
            Err(Refusal::new(Reason::TransactionFailed))
        }
        (Some((receipt, lamports)), rejected) => {
            let deposited = rejected.is_none().then_some(lamports);
            let settled = settled(gate, requirement, &receipt, Some(signature));
            Ok((settled, deposited))
        }
        (None, Some(why)) => {
            tracing::info!(reference = %requirement.reference, %why, "sponsored payment rejected");
            Err(Refusal::new(Reason::TransactionFailed))
        }
        // Submitted at our commitment yet not visible: the client retries the same
        // payment.
        (None, None) => {
            tracing::warn!(reference = %requirement.reference, "submitted, but the receipt is not visible yet");
            Err(Refusal::unavailable())
        }
    }
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
