//! The `receipt` scheme: a `pay` of our program creates the reference's receipt account
//! atomically with the transfer, and the receipt decides. Way 1 (sponsored): validate the
//! transaction strictly, co-sign as fee payer, submit, read the receipt. Way 2
//! (self-submitted): the payer paid; read the receipt.

use anchor_lang::prelude::Pubkey;
use async_trait::async_trait;
use serde_json::{Map, Value};
use solana_signature::Signature;
use solana_transaction::Transaction;
use x402_protocol::scheme::decode_transaction;
use x402_protocol::scheme::receipt::{paid_reference, ReceiptOffer, ReceiptPayload};
use x402_protocol::wire::Offer;
use x402_protocol::{
    check_receipt, validate_sponsored, LedgerError, Receipt, Reference, Requirement,
};

use super::{fee_cost, Landing, PaymentScheme, Submission, Submitted, Terms, Verified};
use crate::context::Context;
use crate::error::{Reason, Refusal};
use crate::metrics::LedgerCall;
use crate::model::{Price, Scheme, SettledPayment, Target};
use crate::sponsorship::Parties;

/// The `receipt` scheme at the verifier.
pub struct ReceiptScheme;

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

fn malformed(field: &str, error: impl std::fmt::Display) -> Refusal {
    Refusal::new(Reason::InvalidPayload).message(format!("{field}: {error}"))
}

#[async_trait]
impl PaymentScheme for ReceiptScheme {
    const SCHEME: Scheme = Scheme::Receipt;
    type Demand = Requirement;
    type Payment = ReceiptPayment;

    /// Sponsored (with the fee payer and a fresh blockhash) when this verifier has a fee
    /// payer.
    fn offer(cx: &Context, price: &Price, target: &Target, reference: Reference) -> Offer {
        let s = cx.settings();
        let fee_payer = cx.fee_payer();
        ReceiptOffer {
            network: s.network.caip2().to_string(),
            requirement: cx.requirement(price.amount, reference),
            decimals: s.decimals,
            fee_payer,
            recent_blockhash: fee_payer.and(cx.blockhash()),
            resource: target.resource.clone(),
            description: price.description.clone(),
            mime_type: price.mime_type.clone(),
            max_timeout_seconds: price.ttl.as_secs(),
        }
        .to_offer()
    }

    /// The program, and the fee payer that co-signs.
    fn supported(cx: &Context) -> Map<String, Value> {
        let mut extra = Map::new();
        extra.insert("programId".into(), cx.settings().program.to_string().into());
        if let Some(fee_payer) = cx.fee_payer() {
            extra.insert("feePayer".into(), fee_payer.to_string().into());
        }
        extra
    }

    fn at_gate(cx: &Context, price: &Price, reference: Reference) -> Requirement {
        let amount = price.amount;
        cx.requirement(amount, reference)
    }

    /// A facilitator caller's offer: any reference and payee (the caller issues its
    /// own), but our program.
    fn requested(cx: &Context, offer: &Offer) -> Result<Requirement, Refusal> {
        let offer = ReceiptOffer::from_offer(offer)?;
        if offer.requirement.program != cx.settings().program {
            return Err(Refusal::new(Reason::InvalidPaymentRequirements));
        }
        Ok(offer.requirement)
    }

    fn terms(requirement: &Requirement) -> Terms {
        Terms {
            mint: requirement.mint,
            pay_to: requirement.pay_to,
            amount: requirement.amount,
            expires_at: Some(requirement.expires_at),
        }
    }

    /// `{"transaction"}` or `{"reference", "signature"}`.
    fn read(payload: Value) -> Result<ReceiptPayment, Refusal> {
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

    /// The `pay` instruction's argument, or the one named.
    fn reference(cx: &Context, payment: &ReceiptPayment) -> Result<Reference, Refusal> {
        match payment {
            ReceiptPayment::Sponsored(tx) => paid_reference(tx, &cx.settings().program)
                .ok_or_else(|| Refusal::new(Reason::TransactionUnexpectedInstruction)),
            ReceiptPayment::SelfSubmitted { reference, .. } => Ok(*reference),
        }
    }

    fn payload_proof(payment: &ReceiptPayment) -> Option<Option<&str>> {
        match payment {
            ReceiptPayment::SelfSubmitted { proof, .. } => Some(proof.as_deref()),
            ReceiptPayment::Sponsored(_) => None,
        }
    }

    fn key(_: &ReceiptPayment, requirement: &Requirement) -> Reference {
        requirement.reference
    }

    /// Way 1 while the challenge is open: the strict validation, no ledger call. In every
    /// other case: the receipt, one ledger read, redeemed by its payer only.
    async fn verify(
        cx: &Context,
        payment: ReceiptPayment,
        requirement: &Requirement,
        open: bool,
    ) -> Result<Verified, Refusal> {
        let (signature, signer) = match payment {
            ReceiptPayment::Sponsored(transaction) if open => {
                let payer = check_sponsored(cx, &transaction, requirement)?;
                cx.sponsorship()
                    .check_expiry(requirement.expires_at, x402_protocol::unix_now())?;
                let submission = ReceiptSubmission::cosigned(cx, transaction, requirement, payer)?;
                return Ok(Verified::to_submit(payer, requirement.amount, submission));
            }
            // Nothing new is submitted for an expired reference: only a receipt that
            // exists already pays for it, and only to the payer whose signed `pay` this
            // is (a copy with another signer, or none, redeems nothing).
            ReceiptPayment::Sponsored(transaction) => {
                let payer = check_sponsored(cx, &transaction, requirement)?;
                (None, Some(payer))
            }
            ReceiptPayment::SelfSubmitted { signature, .. } => (signature, None),
        };
        let receipt = match read_receipt(cx, requirement).await? {
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
        Ok(Verified::landed(settled(
            cx,
            requirement,
            &receipt,
            signature,
        )))
    }
}

/// A checked sponsored `pay`, co-signed by the fee payer.
#[derive(Debug)]
struct ReceiptSubmission {
    transaction: Box<Transaction>,
    requirement: Requirement,
    payer: Pubkey,
}

impl ReceiptSubmission {
    fn cosigned(
        cx: &Context,
        mut transaction: Box<Transaction>,
        requirement: &Requirement,
        payer: Pubkey,
    ) -> Result<Self, Refusal> {
        let fee_payer = cx
            .settings()
            .fee_payer
            .as_ref()
            .ok_or_else(|| Refusal::new(Reason::SponsorshipUnavailable))?;
        let blockhash = transaction.message.recent_blockhash;
        transaction
            .try_partial_sign(&[fee_payer.as_ref()], blockhash)
            .map_err(|_| Refusal::new(Reason::TransactionBadSignature))?;
        Ok(ReceiptSubmission {
            transaction,
            requirement: requirement.clone(),
            payer,
        })
    }
}

#[async_trait]
impl Submission for ReceiptSubmission {
    fn parties(&self) -> Parties {
        Parties {
            payer: self.payer,
            source: payer_token(&self.transaction),
        }
    }

    fn key(&self) -> Reference {
        self.requirement.reference
    }

    /// The fee of its signatures, the priority fee at the capped price and limit, and
    /// the receipt's rent deposit.
    fn cost(&self, cx: &Context) -> u64 {
        fee_cost(cx, self.transaction.signatures.len()).saturating_add(self.rent())
    }

    fn rent(&self) -> u64 {
        rent_of_a_receipt()
    }

    /// Submits and reads the receipt: the receipt decides, not the submission's outcome,
    /// but only a receipt its own payer paid (the same payment landed before, say retried
    /// after a 503: [`Landing::Before`]): a copy signed by anyone else, which failed
    /// because the buyer's landed, redeems nothing.
    async fn submit(&self, cx: &Context) -> Submitted {
        let requirement = &self.requirement;
        let signature = self.transaction.signatures[0];
        let rejected = match cx
            .ledger_call(
                LedgerCall::Submit,
                cx.ledger()
                    .submit(&self.transaction.as_ref().clone().into()),
            )
            .await
        {
            Ok(_) => None,
            Err(LedgerError::Rejected(why)) => Some(why),
            Err(unavailable) => return Submitted::refused(unavailable.into(), false),
        };
        let receipt = match read_receipt(cx, requirement).await {
            Ok(receipt) => receipt,
            Err(refusal) => return Submitted::refused(refusal, rejected.is_none()),
        };
        match (receipt, rejected) {
            (Some((receipt, lamports)), rejected) if receipt.payer == self.payer => {
                let settled = settled(cx, requirement, &receipt, Some(signature.to_string()));
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
                let charged = charged(cx, &signature, requirement).await;
                Submitted::refused(Refusal::new(Reason::TransactionFailed), charged)
            }
            (Some(_), None) => {
                tracing::error!(reference = %requirement.reference, "a submission landed, yet the receipt names another payer");
                Submitted::refused(Refusal::new(Reason::TransactionFailed), true)
            }
            // Submitted at our commitment yet not visible: the client retries the same
            // payment.
            (None, None) => {
                tracing::warn!(reference = %requirement.reference, "submitted, but the receipt is not visible yet");
                Submitted::refused(Refusal::unavailable(), true)
            }
        }
    }
}

/// Whether a rejected submission landed all the same (and failed, its fee charged), or
/// was refused before it landed (preflight): one read, on the failure path only. Unknown
/// counts as not charged: nobody is barred on a guess.
async fn charged(cx: &Context, signature: &Signature, requirement: &Requirement) -> bool {
    let landed = cx
        .ledger_call(
            LedgerCall::Transaction,
            cx.ledger().landed(signature, &requirement.receipt()),
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

/// The rent deposit of a receipt.
fn rent_of_a_receipt() -> u64 {
    anchor_lang::solana_program::rent::Rent::default()
        .minimum_balance(x402_receipts::Receipt::SPACE)
}

/// Whether the fee payer may sign `tx` for `requirement`: the payer, or why not.
fn check_sponsored(
    cx: &Context,
    tx: &Transaction,
    requirement: &Requirement,
) -> Result<Pubkey, Refusal> {
    let policy = cx.sponsor_policy()?;
    validate_sponsored(tx, requirement, &policy).map_err(|defect| Refusal::new(defect.into()))
}

/// The receipt `requirement` asks for and its lamports, if it exists; a receipt that
/// does not meet the requirement is a refusal.
async fn read_receipt(
    cx: &Context,
    requirement: &Requirement,
) -> Result<Option<(Receipt, u64)>, Refusal> {
    let account = cx
        .ledger_call(
            LedgerCall::Account,
            cx.ledger().account(&requirement.receipt()),
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
    cx: &Context,
    requirement: &Requirement,
    receipt: &Receipt,
    transaction: Option<String>,
) -> SettledPayment {
    SettledPayment {
        scheme: Scheme::Receipt,
        reference: requirement.reference,
        receipt: Some(requirement.receipt()),
        payer: receipt.payer,
        amount: receipt.amount,
        mint: receipt.mint,
        transaction,
        network: cx.settings().network.caip2().to_string(),
        metered: None,
        batch: None,
    }
}
