//! The schemes this verifier settles, behind one seam. A scheme makes its offer in a
//! challenge, reads an offer a facilitator caller sends, reads its payload, names the
//! reference it pays, checks it (`verify`: nothing moves), and settles it (`settle`:
//! co-sign and submit, or read what landed). The decision, the rendering and the
//! facilitator all go through here: a new scheme is a new module and one more variant.

pub mod exact;
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
    /// Ours: `pay` creates the reference's receipt account with the transfer.
    Receipt,
    /// The ecosystem's: a `TransferChecked` with the reference in its Memo, co-signed by
    /// our fee payer.
    Exact,
}

impl Scheme {
    /// Every scheme, in the order challenges offer them.
    pub const ALL: [Scheme; 2] = [Scheme::Receipt, Scheme::Exact];

    /// The scheme called `name` on the wire, if this verifier settles it.
    pub fn named(name: &str) -> Option<Scheme> {
        Scheme::ALL.into_iter().find(|scheme| scheme.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Scheme::Receipt => x402_protocol::SCHEME,
            Scheme::Exact => x402_protocol::EXACT,
        }
    }

    /// This gate's offer for `price` at `target`, paying `reference` (network: CAIP-2).
    pub fn offer(self, gate: &Gate, price: &Price, target: &Target, reference: Reference) -> Offer {
        match self {
            Scheme::Receipt => receipt::offer(gate, price, target, reference),
            Scheme::Exact => exact::offer(gate, price, target, reference),
        }
    }

    /// What an offer sent by a facilitator caller asks, if this verifier settles it.
    pub fn demand(self, gate: &Gate, offer: &Offer) -> Result<Demand, Refusal> {
        match self {
            Scheme::Receipt => receipt::requirement(gate, offer).map(Demand::Receipt),
            Scheme::Exact => exact::demand(gate, offer).map(Demand::Exact),
        }
    }

    /// What `/supported` says of this scheme (`extra`).
    pub fn supported(self, gate: &Gate) -> Map<String, Value> {
        match self {
            Scheme::Receipt => receipt::supported(gate),
            Scheme::Exact => exact::supported(gate),
        }
    }

    /// Reads `payload` as a payment in this scheme.
    pub fn read(self, payload: Value) -> Result<Payment, Refusal> {
        match self {
            Scheme::Receipt => Ok(Payment::Receipt(receipt::ReceiptPayment::read(payload)?)),
            Scheme::Exact => Ok(Payment::Exact(exact::ExactPayment::read(payload)?)),
        }
    }
}

impl std::str::FromStr for Scheme {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Scheme::named(name).ok_or_else(|| format!("{name:?} is not a scheme: receipt or exact"))
    }
}

impl std::fmt::Display for Scheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Schemes as one setting names them: `receipt,exact`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemeList(pub Vec<Scheme>);

impl std::str::FromStr for SchemeList {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        text.split(',')
            .map(|name| name.trim().parse())
            .collect::<Result<_, _>>()
            .map(SchemeList)
    }
}

/// What a payment must pay, in its scheme's terms.
#[derive(Clone, Debug)]
pub enum Demand {
    Receipt(Requirement),
    Exact(exact::ExactDemand),
}

impl Demand {
    /// The gate's demand for `amount`, paying `reference`, in `scheme`.
    pub fn at_gate(gate: &Gate, scheme: Scheme, amount: u64, reference: Reference) -> Demand {
        match scheme {
            Scheme::Receipt => Demand::Receipt(gate.requirement(amount, reference)),
            Scheme::Exact => Demand::Exact(exact::ExactDemand::at_gate(gate, amount, reference)),
        }
    }

    pub fn mint(&self) -> Pubkey {
        match self {
            Demand::Receipt(r) => r.mint,
            Demand::Exact(d) => d.terms.mint,
        }
    }

    pub fn pay_to(&self) -> Pubkey {
        match self {
            Demand::Receipt(r) => r.pay_to,
            Demand::Exact(d) => d.terms.pay_to,
        }
    }

    /// Base units.
    pub fn amount(&self) -> u64 {
        match self {
            Demand::Receipt(r) => r.amount,
            Demand::Exact(d) => d.terms.amount,
        }
    }

    /// Until when a new payment may be submitted, when the demand says (a reference's
    /// expiry); an `exact` payment for a facilitator caller is bounded by its blockhash.
    pub fn expires_at(&self) -> Option<i64> {
        match self {
            Demand::Receipt(r) => Some(r.expires_at),
            Demand::Exact(d) => d.reference.map(|r| r.expires_at()),
        }
    }
}

/// A payment in one of the schemes this verifier settles.
#[derive(Debug)]
pub enum Payment {
    Receipt(receipt::ReceiptPayment),
    Exact(exact::ExactPayment),
}

impl Payment {
    pub fn scheme(&self) -> Scheme {
        match self {
            Payment::Receipt(_) => Scheme::Receipt,
            Payment::Exact(_) => Scheme::Exact,
        }
    }

    /// The reference the payment claims to pay, read without a ledger call.
    pub fn reference(&self, gate: &Gate) -> Result<Reference, Refusal> {
        match self {
            Payment::Receipt(payment) => payment.reference(&gate.settings().program),
            Payment::Exact(payment) => payment
                .memo_reference()
                .ok_or_else(|| Refusal::new(Reason::InvalidReference)),
        }
    }

    /// What a payment for `demand` is recorded under: the reference it pays, or for a
    /// facilitator caller's `exact` payment (whose memo is the caller's), its message's
    /// hash.
    pub fn settlement_key(&self, demand: &Demand) -> Result<Reference, Refusal> {
        match (self, demand) {
            (Payment::Exact(payment), Demand::Exact(demand)) => Ok(payment.key(demand)),
            (Payment::Receipt(_), Demand::Receipt(requirement)) => Ok(requirement.reference),
            _ => Err(Refusal::new(Reason::UnsupportedScheme)),
        }
    }

    /// Checks the payment against `demand` without moving anything. While the
    /// challenge is open a new payment may still be submitted; in its grace, only a
    /// payment that landed in time counts; after that, nothing does.
    pub async fn verify(
        self,
        gate: &Gate,
        demand: &Demand,
        window: Window,
    ) -> Result<Verified, Refusal> {
        if window == Window::Closed {
            return Err(Refusal::new(Reason::ExpiredReference));
        }
        let open = window == Window::Open;
        match (self, demand) {
            (Payment::Receipt(payment), Demand::Receipt(requirement)) => {
                payment.verify(gate, requirement, open).await
            }
            (Payment::Exact(payment), Demand::Exact(demand)) => {
                payment.verify(gate, demand, open).await
            }
            // A payment is read in its offer's scheme: this is a caller's mix-up.
            _ => Err(Refusal::new(Reason::UnsupportedScheme)),
        }
    }
}

/// Whether a settled payment was landed by this request's own submission.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Landing {
    /// This request's submission landed it.
    Here,
    /// It had landed before: a payment self-submitted, retried after a 503, or read in
    /// its grace. It is on chain for anyone to copy: only its payer may redeem it.
    Before,
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
    /// An `exact` payment to co-sign and submit.
    Exact(exact::Submission),
}

impl Verified {
    /// The most settling it may cost the fee payer, in lamports: fees and rent of what is
    /// left to submit; nothing for a payment that landed.
    pub fn sponsor_cost(&self, gate: &Gate) -> u64 {
        match &self.next {
            Next::Settled(_) => 0,
            Next::Receipt(submission) => submission.cost(gate),
            Next::Exact(submission) => submission.cost(gate),
        }
    }

    /// Settles the payment: submits what is left to submit and reads what landed.
    pub async fn settle(self, gate: &Gate) -> Result<(SettledPayment, Landing), Refusal> {
        match self.next {
            Next::Settled(settled) => Ok((settled, Landing::Before)),
            Next::Receipt(submission) => submission.settle(gate).await,
            Next::Exact(submission) => submission.settle(gate).await,
        }
    }
}

/// The most a transaction with `signatures` costs the fee payer in fees: the signatures'
/// fee and the priority fee at the capped price and limit.
fn fee_cost(gate: &Gate, signatures: usize) -> u64 {
    const LAMPORTS_PER_SIGNATURE: u64 = 5_000;
    let s = gate.settings();
    let priority = s
        .max_compute_unit_price
        .saturating_mul(u64::from(s.max_compute_unit_limit))
        .div_ceil(1_000_000);
    (signatures as u64)
        .saturating_mul(LAMPORTS_PER_SIGNATURE)
        .saturating_add(priority)
}
