//! The schemes this verifier settles, behind one seam. A scheme reads its payload,
//! names the reference it pays, checks it (`verify`: nothing moves), and settles it
//! (`settle`: co-sign and submit, or read what landed). The decision and the facilitator
//! both go through here, so that a new scheme is a new module and one more variant.

pub mod receipt;

use anchor_lang::prelude::Pubkey;
use serde_json::Value;
use x402_protocol::{Reference, Requirement};

use crate::error::{Reason, Refusal};
use crate::gate::{Gate, SettledPayment};

/// A payment in one of the schemes this verifier settles.
#[derive(Debug)]
pub enum Payment {
    Receipt(receipt::ReceiptPayment),
}

impl Payment {
    /// Reads `payload` as a payment in `scheme`.
    pub fn read(scheme: &str, payload: Value) -> Result<Self, Refusal> {
        match scheme {
            x402_protocol::SCHEME => Ok(Payment::Receipt(receipt::ReceiptPayment::read(payload)?)),
            _ => Err(Refusal::new(Reason::UnsupportedScheme)),
        }
    }

    /// The reference the payment claims to pay, read without a ledger call.
    pub fn reference(&self, gate: &Gate) -> Result<Reference, Refusal> {
        match self {
            Payment::Receipt(payment) => payment.reference(&gate.settings().program),
        }
    }

    /// Checks the payment against `requirement` without moving anything. While the
    /// challenge is `open` a new payment may still be submitted; after it, only a
    /// payment that landed in time counts.
    pub async fn verify(
        self,
        gate: &Gate,
        requirement: &Requirement,
        open: bool,
    ) -> Result<Verified, Refusal> {
        match self {
            Payment::Receipt(payment) => payment.verify(gate, requirement, open).await,
        }
    }
}

/// A payment that passed its checks: who pays how much, and what is left to settle it.
#[derive(Debug)]
pub struct Verified {
    pub payer: Pubkey,
    /// Base units the payee receives.
    pub amount: u64,
    next: Next,
}

#[derive(Debug)]
enum Next {
    /// It has landed already.
    Settled(SettledPayment),
    /// A sponsored `receipt` payment to co-sign and submit.
    Receipt(receipt::Submission),
}

impl Verified {
    /// Settles the payment: submits what is left to submit and reads what landed.
    pub async fn settle(self, gate: &Gate) -> Result<SettledPayment, Refusal> {
        match self.next {
            Next::Settled(settled) => Ok(settled),
            Next::Receipt(submission) => submission.settle(gate).await,
        }
    }
}
