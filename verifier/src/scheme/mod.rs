//! The schemes this verifier settles, behind one trait ([`PaymentScheme`]). A scheme
//! makes its offer in a challenge, reads an offer a facilitator caller sends, reads its
//! payload, names the reference it pays, checks it (`verify`: nothing moves) and says
//! what is left to settle it: nothing (it landed) or a [`Submission`], which every
//! scheme settles through the same leased submission ([`submission`]).
//!
//! The decision, the rendering and the facilitator see only the erased forms below
//! ([`Demand`], [`Payment`], [`Verified`]). Adding a scheme is one module implementing
//! [`PaymentScheme`] and one line in [`rules`].

pub mod batch;
mod channel;
pub mod exact;
pub mod receipt;
pub mod submission;
pub mod upto;

use std::any::Any;
use std::fmt::Debug;
use std::marker::PhantomData;

use anchor_lang::prelude::Pubkey;
use async_trait::async_trait;
use serde_json::{Map, Value};
use solana_transaction::versioned::VersionedTransaction;
use x402_protocol::scheme::exact::MEMO_PROGRAM;
use x402_protocol::wire::{v2, Offer};
use x402_protocol::Reference;

pub use self::submission::{Submission, Submitted};
use crate::context::Context;
use crate::error::{Reason, Refusal};
use crate::model::{Price, Scheme, SettledPayment, Target, Window};

/// One scheme at the verifier.
#[async_trait]
pub trait PaymentScheme: Send + Sync + 'static {
    const SCHEME: Scheme;
    /// What a payment must pay, in the scheme's own terms.
    type Demand: Debug + Send + Sync + 'static;
    /// A payment as its payload carries it.
    type Payment: Debug + Send + 'static;

    /// The gate's offer for `price` at `target`, paying `reference`.
    fn offer(cx: &Context, price: &Price, target: &Target, reference: Reference) -> Offer;
    /// Every offer the gate makes in the scheme: [`PaymentScheme::offer`], unless the
    /// scheme offers more than one mode.
    fn offers(cx: &Context, price: &Price, target: &Target, reference: Reference) -> Vec<Offer> {
        vec![Self::offer(cx, price, target, reference)]
    }
    /// What `/supported` says of the scheme (`extra`).
    fn supported(cx: &Context) -> Map<String, Value>;
    /// The gate's demand for `price`, paying `reference`.
    fn at_gate(cx: &Context, price: &Price, reference: Reference) -> Self::Demand;
    /// What an offer sent by a facilitator caller asks, if this verifier settles it.
    fn requested(cx: &Context, offer: &Offer) -> Result<Self::Demand, Refusal>;
    /// What any demand states, for the facilitator's policy and the window.
    fn terms(demand: &Self::Demand) -> Terms;
    /// What the facilitator's policy holds a payment for `demand` to: its terms, unless
    /// the scheme says otherwise.
    fn policy_terms(_payment: &Self::Payment, demand: &Self::Demand) -> Terms {
        Self::terms(demand)
    }

    /// Reads `payload` as a payment in this scheme.
    fn read(payload: Value) -> Result<Self::Payment, Refusal>;
    /// The reference the payment claims to pay, read without a ledger call.
    fn reference(cx: &Context, payment: &Self::Payment) -> Result<Reference, Refusal>;
    /// Where the payment carries its payer's proof in its payload (a self-submitted
    /// `receipt`): `Some`, with the proof if it has one. `None`: a proof, if any, comes
    /// beside the payment (`X-Payment-Proof`).
    fn payload_proof(_payment: &Self::Payment) -> Option<Option<&str>> {
        None
    }
    /// What a payment for `demand` is recorded and leased under.
    fn key(payment: &Self::Payment, demand: &Self::Demand) -> Reference;
    /// Checks the payment against `demand` without moving anything. `open`: a new
    /// payment may still be submitted; otherwise only one that landed in time counts.
    async fn verify(
        cx: &Context,
        payment: Self::Payment,
        demand: &Self::Demand,
        open: bool,
    ) -> Result<Verified, Refusal>;
}

/// The one registration: each scheme's module, by name.
fn rules(scheme: Scheme) -> &'static dyn Rules {
    match scheme {
        Scheme::Receipt => &Erased::<receipt::ReceiptScheme>(PhantomData),
        Scheme::Exact => &Erased::<exact::ExactScheme>(PhantomData),
        Scheme::Upto => &Erased::<upto::UptoScheme>(PhantomData),
        Scheme::Batch => &Erased::<batch::BatchScheme>(PhantomData),
    }
}

/// What every demand states, whatever its scheme.
#[derive(Clone, Copy, Debug)]
pub struct Terms {
    pub mint: Pubkey,
    pub pay_to: Pubkey,
    /// Base units.
    pub amount: u64,
    /// Until when a new payment may be submitted, when the demand says (a reference's
    /// expiry); an `exact` payment for a facilitator caller is bounded by its blockhash.
    pub expires_at: Option<i64>,
}

/// What a payment must pay, in one of the schemes.
pub struct Demand {
    scheme: Scheme,
    terms: Terms,
    own: Box<dyn Any + Send + Sync>,
}

impl Debug for Demand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Demand")
            .field("scheme", &self.scheme)
            .field("terms", &self.terms)
            .finish_non_exhaustive()
    }
}

impl Demand {
    pub fn terms(&self) -> Terms {
        self.terms
    }

    /// The window a payment for this demand is checked in at `now`.
    pub fn window(&self, now: i64) -> Window {
        match self.terms.expires_at {
            Some(expires_at) => Window::at(expires_at, now),
            // An `exact` payment's blockhash bounds it.
            None => Window::Open,
        }
    }
}

/// A payment in one of the schemes, as a request or a facilitator caller presents it.
#[derive(Debug)]
pub struct Payment(Box<dyn Presented>);

impl Payment {
    pub fn scheme(&self) -> Scheme {
        self.0.scheme()
    }

    /// The reference the payment claims to pay, read without a ledger call.
    pub fn reference(&self, cx: &Context) -> Result<Reference, Refusal> {
        self.0.reference(cx)
    }

    /// A payment in scheme `S`.
    pub fn of<S: PaymentScheme>(payment: S::Payment) -> Payment {
        Payment(Box::new(Read::<S>(payment)))
    }

    /// The payment as scheme `S` reads it, if it is one.
    pub fn downcast_ref<S: PaymentScheme>(&self) -> Option<&S::Payment> {
        self.0
            .as_any()
            .downcast_ref::<Read<S>>()
            .map(|read| &read.0)
    }

    /// The payment as scheme `S` reads it, taken out; the payment itself otherwise.
    pub fn downcast<S: PaymentScheme>(self) -> Result<S::Payment, Payment> {
        if self.0.as_any().is::<Read<S>>() {
            let read = self
                .0
                .into_any()
                .downcast::<Read<S>>()
                .expect("checked its type");
            return Ok(read.0);
        }
        Err(self)
    }

    /// The payer's proof in the payload, where its scheme carries it there (a
    /// self-submitted `receipt`): `Some`, with the proof if it has one.
    pub fn payload_proof(&self) -> Option<Option<&str>> {
        self.0.payload_proof()
    }

    /// What the payment is recorded under, for `demand`.
    pub fn key(&self, demand: &Demand) -> Result<Reference, Refusal> {
        self.0.key(demand)
    }

    /// What the facilitator's policy holds the payment for `demand` to.
    pub fn policy_terms(&self, demand: &Demand) -> Result<Terms, Refusal> {
        self.0.policy_terms(demand)
    }

    /// Checks the payment against `demand` in its `window` without moving anything.
    /// While the challenge is open a new payment may still be submitted; in its grace,
    /// only a payment that landed in time counts; after that, nothing does.
    pub async fn verify(
        self,
        cx: &Context,
        demand: &Demand,
        window: Window,
    ) -> Result<Verified, Refusal> {
        if window == Window::Closed {
            return Err(Refusal::new(Reason::ExpiredReference));
        }
        self.0.verify(cx, demand, window == Window::Open).await
    }
}

impl Scheme {
    /// This gate's offers for `price` at `target`, paying `reference`.
    pub fn offers(
        self,
        cx: &Context,
        price: &Price,
        target: &Target,
        reference: Reference,
    ) -> Vec<Offer> {
        rules(self).offers(cx, price, target, reference)
    }

    /// What `/supported` says of this scheme (`extra`).
    pub fn supported(self, cx: &Context) -> Map<String, Value> {
        rules(self).supported(cx)
    }

    /// The gate's demand for `price`, paying `reference`.
    pub fn at_gate(self, cx: &Context, price: &Price, reference: Reference) -> Demand {
        rules(self).at_gate(cx, price, reference)
    }

    /// What an offer sent by a facilitator caller asks, if this verifier settles it.
    pub fn requested(self, cx: &Context, offer: &Offer) -> Result<Demand, Refusal> {
        rules(self).requested(cx, offer)
    }

    /// Reads `payload` as a payment in this scheme.
    pub fn read(self, payload: Value) -> Result<Payment, Refusal> {
        rules(self).read(payload)
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
    Settled(Box<SettledPayment>),
    /// A sponsored payment to submit.
    Submit(Box<dyn Submission>),
}

impl Verified {
    /// A payment that landed already.
    pub fn landed(settled: SettledPayment) -> Self {
        Verified {
            payer: settled.payer,
            amount: settled.amount,
            next: Next::Settled(Box::new(settled)),
        }
    }

    /// A payment of `amount` by `payer`, settled by `submission`.
    pub fn to_submit(payer: Pubkey, amount: u64, submission: impl Submission + 'static) -> Self {
        Verified {
            payer,
            amount,
            next: Next::Submit(Box::new(submission)),
        }
    }

    /// The most settling it may cost the fee payer, in lamports: fees and rent of what is
    /// left to submit; nothing for a payment that landed.
    pub fn sponsor_cost(&self, cx: &Context) -> u64 {
        match &self.next {
            Next::Settled(_) => 0,
            Next::Submit(submission) => submission.cost(cx),
        }
    }

    /// Settles the payment: submits what is left to submit and reads what landed.
    pub async fn settle(self, cx: &Context) -> Result<(SettledPayment, Landing), Refusal> {
        match self.next {
            Next::Settled(settled) => Ok((*settled, Landing::Before)),
            Next::Submit(submission) => submission::settle(cx, submission.as_ref()).await,
        }
    }
}

/// The resource an offer for `price` at `target` names.
fn resource(price: &Price, target: &Target) -> v2::ResourceInfo {
    v2::ResourceInfo {
        url: target.resource.clone(),
        description: Some(price.description.clone()),
        mime_type: Some(price.mime_type.clone()),
    }
}

/// The extra `/supported` states of a scheme our fee payer sponsors: the fee payer.
fn sponsored_extra(cx: &Context) -> Map<String, Value> {
    let mut extra = Map::new();
    if let Some(fee_payer) = cx.fee_payer() {
        extra.insert("feePayer".into(), fee_payer.to_string().into());
    }
    extra
}

/// The reference in a transaction's Memo, if it holds one: the gate's challenge names it
/// there in the `exact` and `upto` schemes.
fn memo_reference(transaction: &VersionedTransaction) -> Option<Reference> {
    let keys = transaction.message.static_account_keys();
    transaction
        .message
        .instructions()
        .iter()
        .find(|ix| keys.get(usize::from(ix.program_id_index)) == Some(&MEMO_PROGRAM))
        .and_then(|memo| Reference::from_memo(std::str::from_utf8(&memo.data).ok()?))
}

/// What each signature of a transaction costs its fee payer.
pub(crate) const LAMPORTS_PER_SIGNATURE: u64 = 5_000;

/// The most a transaction with `signatures` costs the fee payer in fees: the signatures'
/// fee and the priority fee at the capped price and limit.
fn fee_cost(cx: &Context, signatures: usize) -> u64 {
    let s = cx.settings();
    let priority = s
        .max_compute_unit_price
        .saturating_mul(u64::from(s.max_compute_unit_limit))
        .div_ceil(1_000_000);
    (signatures as u64)
        .saturating_mul(LAMPORTS_PER_SIGNATURE)
        .saturating_add(priority)
}

/// A scheme's rules with its types erased, for [`rules`].
trait Rules: Sync {
    fn offers(
        &self,
        cx: &Context,
        price: &Price,
        target: &Target,
        reference: Reference,
    ) -> Vec<Offer>;
    fn supported(&self, cx: &Context) -> Map<String, Value>;
    fn at_gate(&self, cx: &Context, price: &Price, reference: Reference) -> Demand;
    fn requested(&self, cx: &Context, offer: &Offer) -> Result<Demand, Refusal>;
    fn read(&self, payload: Value) -> Result<Payment, Refusal>;
}

struct Erased<S>(PhantomData<fn() -> S>);

impl<S: PaymentScheme> Erased<S> {
    fn demand(own: S::Demand) -> Demand {
        Demand {
            scheme: S::SCHEME,
            terms: S::terms(&own),
            own: Box::new(own),
        }
    }
}

impl<S: PaymentScheme> Rules for Erased<S> {
    fn offers(
        &self,
        cx: &Context,
        price: &Price,
        target: &Target,
        reference: Reference,
    ) -> Vec<Offer> {
        S::offers(cx, price, target, reference)
    }

    fn supported(&self, cx: &Context) -> Map<String, Value> {
        S::supported(cx)
    }

    fn at_gate(&self, cx: &Context, price: &Price, reference: Reference) -> Demand {
        Self::demand(S::at_gate(cx, price, reference))
    }

    fn requested(&self, cx: &Context, offer: &Offer) -> Result<Demand, Refusal> {
        S::requested(cx, offer).map(Self::demand)
    }

    fn read(&self, payload: Value) -> Result<Payment, Refusal> {
        Ok(Payment::of::<S>(S::read(payload)?))
    }
}

/// A payment read in scheme `S`.
struct Read<S: PaymentScheme>(S::Payment);

impl<S: PaymentScheme> Debug for Read<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[async_trait]
trait Presented: Debug + Send {
    fn scheme(&self) -> Scheme;
    fn reference(&self, cx: &Context) -> Result<Reference, Refusal>;
    fn payload_proof(&self) -> Option<Option<&str>>;
    fn as_any(&self) -> &dyn Any;
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
    fn key(&self, demand: &Demand) -> Result<Reference, Refusal>;
    fn policy_terms(&self, demand: &Demand) -> Result<Terms, Refusal>;
    async fn verify(
        self: Box<Self>,
        cx: &Context,
        demand: &Demand,
        open: bool,
    ) -> Result<Verified, Refusal>;
}

impl<S: PaymentScheme> Read<S> {
    /// `demand` in this payment's scheme; a payment is read in its offer's scheme, so
    /// another is a caller's mix-up.
    fn own(demand: &Demand) -> Result<&S::Demand, Refusal> {
        demand
            .own
            .downcast_ref()
            .filter(|_| demand.scheme == S::SCHEME)
            .ok_or_else(|| Refusal::new(Reason::UnsupportedScheme))
    }
}

#[async_trait]
impl<S: PaymentScheme> Presented for Read<S> {
    fn scheme(&self) -> Scheme {
        S::SCHEME
    }

    fn reference(&self, cx: &Context) -> Result<Reference, Refusal> {
        S::reference(cx, &self.0)
    }

    fn payload_proof(&self) -> Option<Option<&str>> {
        S::payload_proof(&self.0)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }

    fn key(&self, demand: &Demand) -> Result<Reference, Refusal> {
        Ok(S::key(&self.0, Self::own(demand)?))
    }

    fn policy_terms(&self, demand: &Demand) -> Result<Terms, Refusal> {
        Ok(S::policy_terms(&self.0, Self::own(demand)?))
    }

    async fn verify(
        self: Box<Self>,
        cx: &Context,
        demand: &Demand,
        open: bool,
    ) -> Result<Verified, Refusal> {
        S::verify(cx, self.0, Self::own(demand)?, open).await
    }
}
