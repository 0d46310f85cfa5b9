//! The gate: what a payment must pay and what it bought, and the shared state the
//! decision ([`decision`]), the schemes ([`crate::scheme`]), the rendering
//! ([`crate::render`]) and the background tasks ([`crate::tasks`]) work on.

pub mod decision;
pub mod sponsorship;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use anchor_lang::prelude::Pubkey;
use async_trait::async_trait;
use solana_hash::Hash;
use solana_keypair::Keypair;
use x402_protocol::amount::{parse_units, AmountError};
use x402_protocol::{
    ChallengeKey, Ledger, LedgerError, Network, Reference, Requirement, SponsorPolicy, Terms,
};

use self::sponsorship::{SponsorLimits, Sponsorship};
use crate::error::Refusal;
use crate::metrics::{LedgerCall, Metrics};
use crate::scheme::Scheme;
use crate::store::{Grant, GrantStore};

/// What every price of one gate shares: where the money goes and how it is checked.
pub struct PaymentSettings {
    pub network: Network,
    pub program: Pubkey,
    pub mint: Pubkey,
    pub decimals: u8,
    pub token_program: Pubkey,
    /// The token's name for people ("USDC").
    pub currency: String,
    pub pay_to: Pubkey,
    /// The first key signs new challenges; all are accepted (rotation).
    pub challenge_keys: Vec<ChallengeKey>,
    /// When set, the gate sponsors payments: it co-signs and pays fee and rent.
    pub fee_payer: Option<Arc<Keypair>>,
    /// The schemes challenges offer, in order. `exact` needs a fee payer (checked here)
    /// and a mint without a transfer fee or hook (checked by `server::build`; a library
    /// user must check it: the gate takes its own mint to deliver in full).
    pub schemes: Vec<Scheme>,
    /// What sponsoring may cost and how much of it may be in flight.
    pub sponsor_limits: SponsorLimits,
    pub max_compute_unit_price: u64,
    pub max_compute_unit_limit: u32,
    /// The deadline of each ledger call made for a request.
    pub ledger_timeout: Duration,
    /// The public base URL of the API (`https://api.example.com`); the Host header otherwise.
    pub public_url: Option<String>,
    pub facilitator_url: Option<String>,
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
    /// The payment's transaction signature, when known.
    pub transaction: Option<String>,
    /// CAIP-2.
    pub network: String,
}

impl SettledPayment {
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
            granted_at: crate::unix_now(),
        }
    }
}

/// The grant store did not answer: logged here, answered as a 503.
pub(crate) fn store_unavailable(error: crate::store::StoreError) -> Refusal {
    tracing::warn!(%error, "grant store call failed");
    Refusal::unavailable()
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

/// The gate, cheap to clone.
#[derive(Clone)]
pub struct Gate(Arc<Inner>);

/// A gate that does not keep itself alive: background tasks end with it.
pub(crate) struct WeakGate(std::sync::Weak<Inner>);

impl WeakGate {
    pub(crate) fn upgrade(&self) -> Option<Gate> {
        self.0.upgrade().map(Gate)
    }
}

struct Inner {
    settings: PaymentSettings,
    ledger: Arc<dyn Ledger>,
    store: GrantStore,
    /// The blockhash sponsored challenges carry, kept fresh by [`crate::tasks`] so that
    /// issuing a challenge makes no ledger call.
    blockhash: RwLock<Option<Hash>>,
    metrics: Metrics,
    sponsorship: Sponsorship,
}

impl Gate {
    /// A gate over `ledger` and `store` with its background tasks running
    /// ([`crate::tasks`]): what a server or an app wants.
    pub async fn start(
        settings: PaymentSettings,
        ledger: Arc<dyn Ledger>,
        store: GrantStore,
        schedule: &crate::tasks::Schedule,
    ) -> Self {
        let gate = Gate::new(settings, ledger, store);
        crate::tasks::start(&gate, schedule).await;
        gate
    }

    /// A gate without its background tasks: start them with [`crate::tasks::start`], or
    /// sponsored challenges carry no blockhash (use [`Gate::start`]).
    pub fn new(settings: PaymentSettings, ledger: Arc<dyn Ledger>, store: GrantStore) -> Self {
        assert!(
            !settings.challenge_keys.is_empty(),
            "a gate needs a challenge key"
        );
        assert!(
            settings.fee_payer.is_some() || !settings.schemes.contains(&Scheme::Exact),
            "exact needs a fee payer: the seller pays its fee"
        );
        Gate(Arc::new(Inner {
            sponsorship: Sponsorship::new(settings.sponsor_limits.clone()),
            settings,
            ledger,
            store,
            blockhash: RwLock::new(None),
            metrics: Metrics::default(),
        }))
    }

    pub fn settings(&self) -> &PaymentSettings {
        &self.0.settings
    }

    pub fn ledger(&self) -> &Arc<dyn Ledger> {
        &self.0.ledger
    }

    pub fn store(&self) -> &GrantStore {
        &self.0.store
    }

    /// The verifier's counters.
    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }

    /// The guards on the fee payer's money.
    pub fn sponsorship(&self) -> &Sponsorship {
        &self.0.sponsorship
    }

    /// A handle that does not keep the gate alive, for background tasks.
    pub(crate) fn downgrade(&self) -> WeakGate {
        WeakGate(Arc::downgrade(&self.0))
    }

    /// The blockhash for sponsored challenges, when fresh.
    pub fn blockhash(&self) -> Option<Hash> {
        *self.0.blockhash.read().expect("not poisoned")
    }

    pub(crate) fn set_blockhash(&self, blockhash: Option<Hash>) {
        *self.0.blockhash.write().expect("not poisoned") = blockhash;
    }

    /// What the fee payer co-signs: its key and the compute-budget caps; without a fee
    /// payer, nothing (`sponsorship_unavailable`).
    pub(crate) fn sponsor_policy(&self) -> Result<SponsorPolicy, Refusal> {
        let s = &self.0.settings;
        let fee_payer = s
            .fee_payer
            .as_ref()
            .ok_or_else(|| Refusal::new(crate::error::Reason::SponsorshipUnavailable))?;
        Ok(SponsorPolicy {
            fee_payer: solana_signer::Signer::pubkey(fee_payer.as_ref()),
            max_compute_unit_price: s.max_compute_unit_price,
            max_compute_unit_limit: s.max_compute_unit_limit,
        })
    }

    /// Parses a decimal price ("0.01") in the gate's token.
    pub fn parse_price(&self, price: &str) -> Result<u64, AmountError> {
        parse_units(price, self.0.settings.decimals)
    }

    /// What a reference binds: this gate's terms for `amount` at `target`.
    pub(crate) fn terms<'a>(&'a self, amount: u64, target: &'a Target) -> Terms<'a> {
        let s = &self.0.settings;
        Terms {
            network: s.network.caip2(),
            program: s.program,
            mint: s.mint,
            pay_to: s.pay_to,
            amount,
            method: &target.method,
            path: &target.path,
        }
    }

    /// A new reference for `price` at `target`, signed with the newest key.
    pub(crate) fn issue(&self, price: &Price, target: &Target) -> Reference {
        let expires_at = crate::unix_now().saturating_add(price.ttl.as_secs() as i64);
        Reference::issue(
            &self.0.settings.challenge_keys[0],
            &self.terms(price.amount, target),
            expires_at,
        )
    }

    /// What a payment of `amount` for `reference` must be, at this gate.
    pub fn requirement(&self, amount: u64, reference: Reference) -> Requirement {
        let s = &self.0.settings;
        Requirement {
            program: s.program,
            reference,
            amount,
            expires_at: reference.expires_at(),
            mint: s.mint,
            token_program: s.token_program,
            pay_to: s.pay_to,
        }
    }

    /// A ledger call bounded by the gate's deadline (a submission, which waits for its
    /// confirmation, by [`SUBMIT_TIMEOUT`] at least): past it the ledger counts as
    /// unavailable (a 503), never as an answer. Failures are logged here, where they are
    /// decided, without the ledger's text (it may name the RPC URL).
    pub(crate) async fn ledger_call<T>(
        &self,
        kind: LedgerCall,
        call: impl std::future::Future<Output = Result<T, LedgerError>>,
    ) -> Result<T, LedgerError> {
        let started = std::time::Instant::now();
        let deadline = match kind {
            LedgerCall::Submit => self.0.settings.ledger_timeout.max(SUBMIT_TIMEOUT),
            _ => self.0.settings.ledger_timeout,
        };
        let answer = tokio::time::timeout(deadline, call)
            .await
            .unwrap_or_else(|_| Err(LedgerError::Unavailable("the ledger call timed out".into())));
        let failed = matches!(answer, Err(LedgerError::Unavailable(_)));
        match &answer {
            Err(LedgerError::Unavailable(_)) => {
                tracing::warn!(call = ?kind, "ledger call failed or timed out")
            }
            Err(LedgerError::Rejected(_)) => tracing::info!(call = ?kind, "ledger call rejected"),
            Ok(_) => {}
        }
        self.0.metrics.ledger_call(kind, started.elapsed(), failed);
        answer
    }

    /// Gives the grant back after serving failed: the payment may be presented again by
    /// its payer, with the payer's proof (its submission lease ends too, so that the
    /// retry settles it at once).
    pub async fn release(&self, settled: &SettledPayment) {
        self.0.metrics.released();
        let reference = settled.reference.to_string();
        if let Err(error) = self.0.store.release(&reference, crate::unix_now()).await {
            tracing::error!(%error, reference = %settled.reference, "could not release a grant");
        }
        if let Err(error) = self.0.store.end_submission(&reference).await {
            tracing::warn!(%error, "could not end a submission lease: it lapses by itself");
        }
    }
}
