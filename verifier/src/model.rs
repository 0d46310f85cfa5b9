//! What the verifier's other modules talk about, with no behaviour of its own: the
//! schemes by name, a price, the request it is for, where a challenge stands in time, a
//! settled payment, and the merchant's own check. Everything else imports this; it
//! imports nothing of the verifier but the grant store's record.

use std::time::Duration;

use anchor_lang::prelude::Pubkey;
use async_trait::async_trait;
use x402_protocol::Reference;

use crate::store::Grant;

/// How long after its expiry a reference paid in time is still accepted.
pub const SETTLEMENT_GRACE_SECONDS: i64 = 120;

/// How long a submission may wait for its confirmation before the request gets a 503: a
/// stock x402 client does not retry a 503, so a payment that is merely slow to confirm
/// should still be served; within the request's own timeout (60 s by default).
pub const SUBMIT_TIMEOUT: Duration = Duration::from_secs(45);

/// How long a challenge may be paid, unless its price says otherwise.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);

/// What a paid resource is, unless its price says otherwise.
pub const DEFAULT_MIME_TYPE: &str = "application/json";

/// A scheme this verifier settles, by name: what each does is its module's
/// ([`crate::scheme`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// Ours: `pay` creates the reference's receipt account with the transfer.
    Receipt,
    /// The ecosystem's: a `TransferChecked` with the reference in its Memo, co-signed by
    /// our fee payer.
    Exact,
    /// The ecosystem's metered scheme: the buyer escrows the price as a ceiling in a
    /// payment channel, and pays what the answer cost.
    Upto,
    /// The ecosystem's high-throughput scheme: the buyer deposits once in a payment
    /// channel, then pays each request with a voucher checked off chain; claims go on
    /// chain in batches.
    Batch,
}

impl Scheme {
    /// Every scheme, in the order challenges offer them.
    pub const ALL: [Scheme; 4] = [Scheme::Receipt, Scheme::Exact, Scheme::Upto, Scheme::Batch];

    /// Whether the scheme runs on the payment-channels program: a route offers it only
    /// when it names it (`upto`'s price is a ceiling, `batch-settlement` asks for a
    /// deposit), and it exists in x402 v2 only.
    pub fn on_channels(self) -> bool {
        matches!(self, Scheme::Upto | Scheme::Batch)
    }

    /// The scheme called `name` on the wire, if this verifier settles it.
    pub fn named(name: &str) -> Option<Scheme> {
        Scheme::ALL.into_iter().find(|scheme| scheme.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Scheme::Receipt => x402_protocol::SCHEME,
            Scheme::Exact => x402_protocol::EXACT,
            Scheme::Upto => x402_protocol::scheme::upto::UPTO,
            Scheme::Batch => x402_protocol::BATCH_SETTLEMENT,
        }
    }
}

impl std::str::FromStr for Scheme {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Scheme::named(name).ok_or_else(|| {
            format!("{name:?} is not a scheme: receipt, exact, upto or batch-settlement")
        })
    }
}

impl std::fmt::Display for Scheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What one request costs, with what the challenge says about it.
#[derive(Clone, Debug)]
pub struct Price {
    /// Base units of the gate's mint.
    pub amount: u64,
    pub description: String,
    pub mime_type: String,
    /// How long a challenge may be paid.
    pub ttl: Duration,
    /// The schemes its challenges offer and its payments may use, among the gate's.
    pub schemes: Vec<Scheme>,
}

/// The request a payment is for.
#[derive(Clone, Debug)]
pub struct Target {
    pub method: String,
    pub path: String,
    /// The absolute URL of the resource, as the challenge names it.
    pub resource: String,
    /// A browser navigation: its 402 is the paywall page ([`crate::paywall`]).
    pub wants_page: bool,
}

impl Target {
    /// `host[:port]` of the resource URL, as a payer's proof names it.
    pub fn host(&self) -> String {
        let Ok(url) = url::Url::parse(&self.resource) else {
            return String::new();
        };
        let host = url.host_str().unwrap_or_default();
        match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        }
    }

    /// Whether `proof` is `payer`'s proof that it presents `reference` for this request.
    pub fn proven_by(&self, payer: &Pubkey, proof: Option<&str>, reference: &Reference) -> bool {
        let host = self.host();
        let request = x402_protocol::ProofTarget {
            method: &self.method,
            path: &self.path,
            host: &host,
        };
        proof.is_some_and(|proof| x402_protocol::check_proof(payer, proof, reference, &request))
    }
}

/// Where a challenge stands in time: the same rule for the gate and the facilitator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    /// It may be paid: a new payment may be submitted.
    Open,
    /// Expired, but a payment that landed in time may still be presented, e.g. retried
    /// after a 503 (`pay` refuses late payments, so a receipt proves it was in time).
    Grace,
    /// Expired past the grace: refused without a ledger call.
    Closed,
}

impl Window {
    pub fn at(expires_at: i64, now: i64) -> Window {
        if now <= expires_at {
            Window::Open
        } else if now <= expires_at.saturating_add(SETTLEMENT_GRACE_SECONDS) {
            Window::Grace
        } else {
            Window::Closed
        }
    }
}

/// A payment the gate accepted, in the request's extensions for the handler to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettledPayment {
    pub scheme: Scheme,
    pub reference: Reference,
    /// The receipt account; an `exact` payment has none.
    pub receipt: Option<Pubkey>,
    pub payer: Pubkey,
    /// Base units the payee received.
    pub amount: u64,
    pub mint: Pubkey,
    /// The payment's transaction signature, when known: for a metered payment, the
    /// `distribute` that paid the payee, once settled.
    pub transaction: Option<String>,
    /// CAIP-2.
    pub network: String,
    /// The channel of a metered payment.
    pub metered: Option<MeteredChannel>,
    /// The voucher a `batch-settlement` payment committed.
    pub batch: Option<BatchCommit>,
}

/// What a `batch-settlement` request did to its channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchCommit {
    pub channel: Pubkey,
    /// The cumulative amount accepted before this request, and with it.
    pub from: u64,
    pub to: u64,
    /// The channel's deposit, and what the chain has settled of it, in base units.
    pub deposit: u64,
    pub claimed: u64,
    /// What this request moved on chain, in base units: a deposit's escrow, a refund's
    /// return to the buyer; none for a voucher.
    pub moved: Option<u64>,
    /// The request closed the channel: nothing is served.
    pub closed: bool,
    /// The server mode: the request's hold until its answer says what it cost.
    pub held: Option<Held>,
    /// The server mode: the operator's voucher for the channel's new total, the buyer's
    /// receipt.
    pub voucher: Option<x402_protocol::scheme::batch::BatchVoucher>,
}

/// A server-mode request's hold on its channel's deposit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    pub request_id: String,
    /// Base units: the route's price, the most the answer may cost.
    pub ceiling: u64,
}

/// The channel a metered payment escrowed its ceiling in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeteredChannel {
    pub address: Pubkey,
    /// The most the answer may cost, in base units: the deposit.
    pub max_amount: u64,
    /// The `open` transaction's signature.
    pub opened_by: String,
}

/// What a metered answer cost, in base units of the gate's mint: an axum handler behind
/// the gate puts it in its response's extensions. Capped at the route's price (the
/// ceiling the buyer escrowed); an answer that says nothing costs the ceiling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Charge(pub u64);

impl SettledPayment {
    /// Whether it is charged after its answer: a metered channel's (`upto`), or a
    /// server-mode request held on its `batch-settlement` channel.
    pub fn is_metered(&self) -> bool {
        self.metered.is_some() || self.is_held()
    }

    /// Whether it is a server-mode request held on its channel until its answer.
    pub fn is_held(&self) -> bool {
        self.batch.as_ref().is_some_and(|b| b.held.is_some())
    }

    /// The grant that records this payment serving `method path`.
    pub fn grant(&self, method: &str, path: &str) -> Grant {
        Grant {
            reference: self.reference.to_string(),
            method: method.into(),
            path: path.into(),
            payer: self.payer.to_string(),
            amount: self.amount,
            mint: self.mint.to_string(),
            scheme: self.scheme.name().into(),
            receipt: self.receipt.map(|r| r.to_string()),
            transaction: self.transaction.clone(),
            granted_at: x402_protocol::unix_now(),
        }
    }
}

/// A payment about to be accepted, for a merchant's own rule to refuse.
#[derive(Clone, Debug)]
pub struct PaymentAttempt {
    pub reference: Reference,
    pub payer: Pubkey,
    pub amount: u64,
    pub method: String,
    pub path: String,
}

/// A merchant's own check of a payment, run after the gate's checks and, for a sponsored
/// payment, before anything is submitted. `Err(code)` refuses it with a 402 whose `error`
/// is `code`.
#[async_trait]
pub trait PaymentCheck: Send + Sync {
    async fn check(&self, attempt: &PaymentAttempt) -> Result<(), String>;
}
