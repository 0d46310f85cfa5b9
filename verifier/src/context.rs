//! What the schemes, the decision and the tasks share: the gate's settings, its ledger
//! (every call through [`Context::ledger_call`], which owns deadlines, logging and
//! metrics), the grant store, the sponsorship guards, the counters, and the blockhash
//! sponsored challenges carry. A scheme sees this, never the gate above it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anchor_lang::prelude::Pubkey;
use solana_hash::Hash;
use solana_keypair::Keypair;
use x402_protocol::amount::{parse_units, AmountError};
use x402_protocol::{
    ChallengeKey, Ledger, LedgerError, Network, Reference, Requirement, SponsorPolicy, Terms,
};

use crate::error::{Reason, Refusal};
use crate::metrics::{LedgerCall, Metrics};
use crate::model::{Price, Scheme, Target, SUBMIT_TIMEOUT};
use crate::sponsorship::{SponsorLimits, Sponsorship};
use crate::store::{GrantStore, StoreError};

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
    /// The schemes challenges offer, in order. `exact` needs a fee payer (checked by
    /// [`crate::Gate::new`]) and a mint without a transfer fee or hook (checked by
    /// `server::build`; a library user must check it: the gate takes its own mint to
    /// deliver in full).
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
    /// When `batch-settlement` channels are claimed and closed.
    pub batch: BatchSettings,
}

/// When `batch-settlement` channels are claimed and closed, and who signs the server
/// mode's vouchers.
#[derive(Clone)]
pub struct BatchSettings {
    /// How often the latest vouchers are claimed on chain: what is accepted and not yet
    /// claimed is credit the seller extends until then.
    pub claim_interval: Duration,
    /// How long an open channel may go without a paid request before we close it (its
    /// latest voucher settled, the rest refunded): advertised as `maxIdleSecs`.
    pub idle_close: Duration,
    /// The server mode's operator: with it, `batch-settlement` routes also offer the
    /// server mode, in which it signs the vouchers for what each answer cost (each
    /// request's price is then a ceiling). Never the fee payer.
    pub operator: Option<Arc<Keypair>>,
}

impl Default for BatchSettings {
    fn default() -> Self {
        BatchSettings {
            claim_interval: Duration::from_secs(60),
            idle_close: Duration::from_secs(24 * 60 * 60),
            operator: None,
        }
    }
}

/// One gate's shared state.
pub struct Context {
    settings: PaymentSettings,
    ledger: Arc<dyn Ledger>,
    store: GrantStore,
    /// Kept fresh by [`crate::tasks`], so that issuing a challenge makes no ledger call.
    blockhash: RwLock<Option<Hash>>,
    /// A recent slot, for `upto` buyers to open their channel at (0: none yet); kept
    /// fresh with the blockhash.
    recent_slot: AtomicU64,
    metrics: Metrics,
    sponsorship: Sponsorship,
}

impl Context {
    pub(crate) fn new(
        settings: PaymentSettings,
        ledger: Arc<dyn Ledger>,
        store: GrantStore,
    ) -> Self {
        let mut metrics = Metrics::default();
        metrics.count_voucher_commits(store.voucher_commits());
        Context {
            sponsorship: Sponsorship::new(settings.sponsor_limits.clone()),
            settings,
            ledger,
            store,
            blockhash: RwLock::new(None),
            recent_slot: AtomicU64::new(0),
            metrics,
        }
    }

    pub fn settings(&self) -> &PaymentSettings {
        &self.settings
    }

    pub fn ledger(&self) -> &Arc<dyn Ledger> {
        &self.ledger
    }

    pub fn store(&self) -> &GrantStore {
        &self.store
    }

    /// The verifier's counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The guards on the fee payer's money.
    pub fn sponsorship(&self) -> &Sponsorship {
        &self.sponsorship
    }

    /// The blockhash for sponsored challenges, when fresh.
    pub fn blockhash(&self) -> Option<Hash> {
        *self.blockhash.read().expect("not poisoned")
    }

    pub(crate) fn set_blockhash(&self, blockhash: Option<Hash>) {
        *self.blockhash.write().expect("not poisoned") = blockhash;
    }

    /// A recent slot of the ledger, when one was read.
    pub fn recent_slot(&self) -> Option<u64> {
        Some(self.recent_slot.load(Ordering::Relaxed)).filter(|&slot| slot > 0)
    }

    pub(crate) fn set_recent_slot(&self, slot: Option<u64>) {
        self.recent_slot.store(slot.unwrap_or(0), Ordering::Relaxed);
    }

    /// The fee payer's key, if this gate sponsors payments.
    pub fn fee_payer(&self) -> Option<Pubkey> {
        self.settings
            .fee_payer
            .as_ref()
            .map(|k| solana_signer::Signer::pubkey(k.as_ref()))
    }

    /// What the fee payer co-signs: its key and the compute-budget caps; without a fee
    /// payer, nothing (`sponsorship_unavailable`).
    pub(crate) fn sponsor_policy(&self) -> Result<SponsorPolicy, Refusal> {
        let s = &self.settings;
        Ok(SponsorPolicy {
            fee_payer: self
                .fee_payer()
                .ok_or_else(|| Refusal::new(Reason::SponsorshipUnavailable))?,
            max_compute_unit_price: s.max_compute_unit_price,
            max_compute_unit_limit: s.max_compute_unit_limit,
        })
    }

    /// Parses a decimal price ("0.01") in the gate's token.
    pub fn parse_price(&self, price: &str) -> Result<u64, AmountError> {
        parse_units(price, self.settings.decimals)
    }

    /// What a reference binds: this gate's terms for `amount` at `target`.
    pub(crate) fn terms<'a>(&'a self, amount: u64, target: &'a Target) -> Terms<'a> {
        let s = &self.settings;
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
        let expires_at = x402_protocol::unix_now().saturating_add(price.ttl.as_secs() as i64);
        Reference::issue(
            &self.settings.challenge_keys[0],
            &self.terms(price.amount, target),
            expires_at,
        )
    }

    /// What a payment of `amount` for `reference` must be, at this gate.
    pub fn requirement(&self, amount: u64, reference: Reference) -> Requirement {
        let s = &self.settings;
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
            LedgerCall::Submit => self.settings.ledger_timeout.max(SUBMIT_TIMEOUT),
            _ => self.settings.ledger_timeout,
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
        self.metrics.ledger_call(kind, started.elapsed(), failed);
        answer
    }

    /// Ends the submission lease under `key`, so that the payment's retry settles at once.
    pub(crate) async fn end_lease(&self, key: &Reference) {
        if let Err(error) = self.store.end_submission(&key.to_string()).await {
            tracing::warn!(%error, "could not end a submission lease: it lapses by itself");
        }
    }
}

/// The grant store did not answer: logged here, answered as a 503.
pub(crate) fn store_unavailable(error: StoreError) -> Refusal {
    tracing::warn!(%error, "grant store call failed");
    Refusal::unavailable()
}

impl From<StoreError> for Refusal {
    fn from(error: StoreError) -> Self {
        store_unavailable(error)
    }
}
