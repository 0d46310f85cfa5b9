//! The schemes this verifier settles, behind one seam. A scheme makes its offer in a
//! challenge, reads an offer a facilitator caller sends, reads its payload, names the
//! reference it pays, checks it (`verify`: nothing moves), and settles it (`settle`:
//! co-sign and submit, or read what landed). The decision, the rendering and the
//! facilitator all go through here: a new scheme is a new module and one more variant.

pub mod receipt;

use anchor_lang::prelude::Pubkey;
use serde_json::{Map, Value};
use x402_protocol::wire::Offer;
use x402_protocol::{Reference, Requirement};

use crate::error::{Reason, Refusal};
use crate::gate::{Gate, Price, SettledPayment, Target, Window};

/// A scheme this verifier settles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Receipt,
}

impl Scheme {
    /// Every scheme, in the order challenges offer them.
    pub const ALL: [Scheme; 1] = [Scheme::Receipt];

    /// The scheme called `name` on the wire, if this verifier settles it.
    pub fn named(name: &str) -> Option<Scheme> {
        Scheme::ALL.into_iter().find(|scheme| scheme.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Scheme::Receipt => x402_protocol::SCHEME,
        }
    }

    /// This gate's offer for `price` at `target`, paying `reference` (network: CAIP-2).
    pub fn offer(self, gate: &Gate, price: &Price, target: &Target, reference: Reference) -> Offer {
        match self {
            Scheme::Receipt => receipt::offer(gate, price, target, reference),
        }
    }

    /// What an offer sent by a facilitator caller asks, if this verifier settles it.
    pub fn requirement(self, gate: &Gate, offer: &Offer) -> Result<Requirement, Refusal> {
        match self {
            Scheme::Receipt => receipt::requirement(gate, offer),
        }
    }

    /// What `/supported` says of this scheme (`extra`).
    pub fn supported(self, gate: &Gate) -> Map<String, Value> {
        match self {
            Scheme::Receipt => receipt::supported(gate),
        }
    }

    /// Reads `payload` as a payment in this scheme.
    pub fn read(self, payload: Value) -> Result<Payment, Refusal> {
        match self {
            Scheme::Receipt => Ok(Payment::Receipt(receipt::ReceiptPayment::read(payload)?)),
        }
    }
}

/// A payment in one of the schemes this verifier settles.
#[derive(Debug)]
pub enum Payment {
    Receipt(receipt::ReceiptPayment),
}

impl Payment {
    /// The reference the payment claims to pay, read without a ledger call.
    pub fn reference(&self, gate: &Gate) -> Result<Reference, Refusal> {
        match self {
            Payment::Receipt(payment) => payment.reference(&gate.settings().program),
        }
    }

    /// Checks the payment against `requirement` without moving anything. While the
    /// challenge is open a new payment may still be submitted; in its grace, only a
    /// payment that landed in time counts; after that, nothing does. `target` is the
    /// request it pays for, when this verifier serves it (not for the facilitator).
    pub async fn verify(
        self,
        gate: &Gate,
        requirement: &Requirement,
        window: Window,
        target: Option<&Target>,
    ) -> Result<Verified, Refusal> {
        if window == Window::Closed {
            return Err(Refusal::new(Reason::ExpiredReference));
        }
        let open = window == Window::Open;
        match self {
            Payment::Receipt(payment) => payment.verify(gate, requirement, open, target).await,
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
    /// The most settling it may cost the fee payer, in lamports: fees and rent of what is
    /// left to submit; nothing for a payment that landed.
    pub fn sponsor_cost(&self, gate: &Gate) -> u64 {
        match &self.next {
            Next::Settled(_) => 0,
            Next::Receipt(submission) => submission.cost(gate),
        }
    }

    /// Settles the payment: submits what is left to submit and reads what landed.
    pub async fn settle(self, gate: &Gate) -> Result<SettledPayment, Refusal> {
        match self.next {
            Next::Settled(settled) => Ok(settled),
            Next::Receipt(submission) => submission.settle(gate).await,
        }
    }
}
