//! The gate: answers 402 challenges, settles or checks payments, and grants a request
//! only once it has read the receipt and found the right payee, mint, expiry and amount.
//! The tower layer and the reverse proxy both go through it.

use std::sync::Arc;
use std::time::Duration;

use anchor_lang::prelude::Pubkey;
use async_trait::async_trait;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};
use serde_json::json;
use solana_hash::Hash;
use solana_keypair::Keypair;
use solana_signer::Signer;
use tokio::sync::RwLock;
use x402_protocol::amount::{format_units, parse_units, AmountError};
use x402_protocol::receipt::{close_expired, funded_by, CloseReport};
use x402_protocol::scheme::{paid_reference, ReceiptOffer};
use x402_protocol::wire::{encode_header, v1, v2};
use x402_protocol::{
    check_receipt, validate_sponsored, ChallengeKey, Ledger, LedgerError, Network, Receipt,
    Reference, ReferenceError, Requirement, SponsorPolicy, Terms,
};

use crate::metrics::Metrics;
use crate::payment::{read_payment, Payment, PaymentError, Wire};
use crate::store::{Grant, GrantStore};
use crate::unix_now;

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
    pub max_compute_unit_price: u64,
    pub max_compute_unit_limit: u32,
    /// How often the blockhash handed out in sponsored challenges is refreshed: well
    /// inside the ledger's blockhash lifetime.
    pub blockhash_refresh: Duration,
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
}

/// A payment the gate accepted, in the request's extensions for the handler to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettledPayment {
    pub reference: Reference,
    pub receipt: Pubkey,
    pub payer: Pubkey,
    /// Base units the payee received.
    pub amount: u64,
    pub mint: Pubkey,
    /// The payment's transaction signature, when known.
    pub transaction: Option<String>,
    pub network: String,
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
/// payment, before anything is submitted. `Err(reason)` refuses it with a 402.
#[async_trait]
pub trait PaymentCheck: Send + Sync {
    async fn check(&self, attempt: &PaymentAttempt) -> Result<(), String>;
}

/// The request a payment is for.
#[derive(Clone, Debug)]
pub struct Target {
    pub method: String,
    pub path: String,
    /// The absolute URL of the resource, as the challenge names it.
    pub resource: String,
}

/// Why a request was not granted, and so what it is answered.
#[derive(Debug)]
pub enum Refusal {
    /// 402 with a fresh challenge; the reason code, or none when no payment was sent.
    Challenge(Option<String>),
    /// 402 repeating the paid reference: the payment may still land, so the client must
    /// not pay again.
    Pending {
        reference: Reference,
        reason: &'static str,
    },
    /// 400: the payment headers cannot be read.
    InvalidPayload(String),
    /// 503: the ledger or the store could not answer. Never a 200, never a new challenge.
    Unavailable,
}

impl From<LedgerError> for Refusal {
    fn from(error: LedgerError) -> Self {
        tracing::warn!(%error, "ledger call failed");
        Refusal::Unavailable
    }
}

impl From<crate::store::StoreError> for Refusal {
    fn from(error: crate::store::StoreError) -> Self {
        tracing::warn!(%error, "grant store call failed");
        Refusal::Unavailable
    }
}

fn refuse(reason: &str) -> Refusal {
    Refusal::Challenge(Some(reason.to_string()))
}

/// How long after its expiry a reference paid in time is still accepted.
pub const SETTLEMENT_GRACE_SECONDS: i64 = 120;
/// How long a client waits before retrying after a 503.
const RETRY_AFTER_SECONDS: u32 = 2;

/// The gate, cheap to clone.
#[derive(Clone)]
pub struct Gate(Arc<Inner>);

struct Inner {
    settings: PaymentSettings,
    ledger: Arc<dyn Ledger>,
    store: GrantStore,
    /// The blockhash sponsored challenges carry, refreshed in the background so that
    /// issuing a challenge makes no ledger call.
    blockhash: RwLock<Option<Hash>>,
    metrics: Metrics,
}

impl Gate {
    /// A gate over `ledger` and `store`. With a fee payer it starts refreshing the
    /// blockhash for sponsored challenges in the background.
    pub async fn new(
        settings: PaymentSettings,
        ledger: Arc<dyn Ledger>,
        store: GrantStore,
    ) -> Self {
        assert!(
            !settings.challenge_keys.is_empty(),
            "a gate needs a challenge key"
        );
        let sponsored = settings.fee_payer.is_some();
        let refresh = settings.blockhash_refresh;
        let gate = Gate(Arc::new(Inner {
            settings,
            ledger,
            store,
            blockhash: RwLock::new(None),
            metrics: Metrics::default(),
        }));
        if sponsored {
            gate.refresh_blockhash().await;
            let weak = Arc::downgrade(&gate.0);
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval(refresh);
                ticks.tick().await;
                loop {
                    ticks.tick().await;
                    let Some(inner) = weak.upgrade() else { break };
                    Gate(inner).refresh_blockhash().await;
                }
            });
        }
        gate
    }

    async fn refresh_blockhash(&self) {
        let fresh = self
            .ledger_call("latest_blockhash", self.0.ledger.latest_blockhash())
            .await;
        if let Err(error) = &fresh {
            tracing::warn!(%error, "cannot refresh the blockhash for sponsored challenges");
        }
        // A stale blockhash is worse than none: clients would sign a dead transaction.
        *self.0.blockhash.write().await = fresh.ok();
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

    /// Parses a decimal price ("0.01") in the gate's token.
    pub fn parse_price(&self, price: &str) -> Result<u64, AmountError> {
        parse_units(price, self.0.settings.decimals)
    }

    fn terms<'a>(&'a self, amount: u64, target: &'a Target) -> Terms<'a> {
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

    /// Decides whether the request in `headers` has paid `price` for `target`. On success
    /// the grant is recorded: the caller serves the request, and calls [`Gate::release`]
    /// if serving it fails.
    pub async fn admit(
        &self,
        price: &Price,
        target: &Target,
        headers: &http::HeaderMap,
        check: Option<&dyn PaymentCheck>,
    ) -> Result<(SettledPayment, Wire), Refusal> {
        let s = &self.0.settings;
        let (payment, wire) = match read_payment(headers, &s.network) {
            Ok(Some(found)) => found,
            Ok(None) => return Err(Refusal::Challenge(None)),
            Err(PaymentError::Malformed(why)) => return Err(Refusal::InvalidPayload(why)),
            Err(PaymentError::Unsupported(reason)) => return Err(refuse(reason)),
        };
        let reference = match &payment {
            Payment::Sponsored(tx) => paid_reference(tx, &s.program)
                .ok_or_else(|| refuse("transaction_unexpected_instruction"))?,
            Payment::SelfSubmitted { reference, .. } => *reference,
        };
        // Everything that needs no ledger call comes first.
        let now = unix_now();
        let expired =
            match reference.check(&s.challenge_keys, &self.terms(price.amount, target), now) {
                Ok(()) => false,
                Err(ReferenceError::Expired) => true,
                Err(_) => return Err(refuse("invalid_reference")),
            };
        if self.0.store.is_granted(&reference.to_string()).await? {
            return Err(refuse("reference_already_used"));
        }
        // An expired reference can no longer be paid (`pay` refuses it), but one paid in
        // time may be presented late, e.g. retried after a 503: within the grace its
        // receipt still counts. Past the grace it is refused without a ledger call.
        if expired
            && now
                > reference
                    .expires_at()
                    .saturating_add(SETTLEMENT_GRACE_SECONDS)
        {
            return Err(refuse("expired_reference"));
        }
        let requirement = self.requirement(price.amount, reference);
        let (receipt, transaction) = match payment {
            Payment::Sponsored(tx) if !expired => {
                self.settle_sponsored(*tx, &requirement, target, check)
                    .await?
            }
            // Nothing new is submitted for an expired reference: only a receipt that
            // exists already pays for it.
            Payment::Sponsored(_) => match self.read_receipt(&requirement).await? {
                Some(receipt) => (receipt, None),
                None => return Err(refuse("expired_reference")),
            },
            Payment::SelfSubmitted { signature, .. } => {
                let receipt = match self.read_receipt(&requirement).await? {
                    Some(receipt) => receipt,
                    None if expired => return Err(refuse("expired_reference")),
                    None => {
                        return Err(Refusal::Pending {
                            reference,
                            reason: "receipt_not_found",
                        })
                    }
                };
                run_check(check, reference, receipt.payer, receipt.amount, target).await?;
                (receipt, signature)
            }
        };

        let settled = SettledPayment {
            reference,
            receipt: requirement.receipt(),
            payer: receipt.payer,
            amount: receipt.amount,
            mint: receipt.mint,
            transaction,
            network: s.network.caip2().to_string(),
        };
        let grant = Grant {
            reference: reference.to_string(),
            method: target.method.clone(),
            path: target.path.clone(),
            payer: settled.payer.to_string(),
            amount: settled.amount,
            mint: settled.mint.to_string(),
            receipt: settled.receipt.to_string(),
            transaction: settled.transaction.clone(),
            granted_at: unix_now(),
        };
        if !self.0.store.try_grant(&grant).await? {
            return Err(refuse("reference_already_used"));
        }
        self.0.metrics.granted();
        tracing::info!(reference = %reference, payer = %settled.payer, amount = settled.amount, "granted");
        Ok((settled, wire))
    }

    /// Way 1: validate strictly, co-sign, submit, wait, then read the receipt.
    async fn settle_sponsored(
        &self,
        tx: solana_transaction::Transaction,
        requirement: &Requirement,
        target: &Target,
        check: Option<&dyn PaymentCheck>,
    ) -> Result<(Receipt, Option<String>), Refusal> {
        let payer = self.check_sponsored(&tx, requirement)?;
        run_check(
            check,
            requirement.reference,
            payer,
            requirement.amount,
            target,
        )
        .await?;
        self.submit_sponsored(tx, requirement).await
    }

    /// Whether the fee payer may sign `tx` for `requirement`: the payer, or why not.
    pub(crate) fn check_sponsored(
        &self,
        tx: &solana_transaction::Transaction,
        requirement: &Requirement,
    ) -> Result<Pubkey, Refusal> {
        let s = &self.0.settings;
        let fee_payer = s
            .fee_payer
            .as_ref()
            .ok_or_else(|| refuse("sponsorship_unavailable"))?;
        let policy = SponsorPolicy {
            fee_payer: fee_payer.pubkey(),
            max_compute_unit_price: s.max_compute_unit_price,
            max_compute_unit_limit: s.max_compute_unit_limit,
        };
        validate_sponsored(tx, requirement, &policy).map_err(|d| refuse(d.reason()))
    }

    /// Co-signs a checked sponsored payment, submits it, and reads its receipt.
    pub(crate) async fn submit_sponsored(
        &self,
        mut tx: solana_transaction::Transaction,
        requirement: &Requirement,
    ) -> Result<(Receipt, Option<String>), Refusal> {
        let fee_payer = self
            .0
            .settings
            .fee_payer
            .as_ref()
            .ok_or_else(|| refuse("sponsorship_unavailable"))?;
        let blockhash = tx.message.recent_blockhash;
        tx.try_partial_sign(&[fee_payer.as_ref()], blockhash)
            .map_err(|_| refuse("transaction_bad_signature"))?;
        let signature = tx.signatures[0].to_string();
        // A rejection may be this very payment landing earlier (a client retrying after a
        // 503): the receipt decides, not the rejection.
        let rejected = match self.ledger_call("submit", self.0.ledger.submit(&tx)).await {
            Ok(_) => None,
            Err(LedgerError::Rejected(why)) => Some(why),
            Err(unavailable) => return Err(unavailable.into()),
        };
        match self.read_receipt(requirement).await? {
            Some(receipt) => Ok((receipt, Some(signature))),
            None => match rejected {
                Some(why) => {
                    tracing::info!(reference = %requirement.reference, %why, "sponsored payment rejected");
                    Err(refuse("transaction_failed"))
                }
                // Submitted at our commitment yet not visible: ask the client to retry.
                None => Err(Refusal::Unavailable),
            },
        }
    }

    /// The receipt `requirement` asks for, if it exists; a receipt that does not meet the
    /// requirement is a refusal.
    pub(crate) async fn read_receipt(
        &self,
        requirement: &Requirement,
    ) -> Result<Option<Receipt>, Refusal> {
        match self
            .ledger_call("account", self.0.ledger.account(&requirement.receipt()))
            .await?
        {
            Some(account) => Ok(Some(
                check_receipt(&account, requirement).map_err(|d| refuse(d.reason()))?,
            )),
            None => Ok(None),
        }
    }

    /// A ledger call bounded by the gate's deadline: past it the ledger counts as
    /// unavailable (a 503), never as an answer.
    async fn ledger_call<T>(
        &self,
        kind: &'static str,
        call: impl std::future::Future<Output = Result<T, LedgerError>>,
    ) -> Result<T, LedgerError> {
        let started = std::time::Instant::now();
        let answer = tokio::time::timeout(self.0.settings.ledger_timeout, call)
            .await
            .unwrap_or_else(|_| Err(LedgerError::Unavailable("the ledger call timed out".into())));
        let failed = matches!(answer, Err(LedgerError::Unavailable(_)));
        self.0.metrics.ledger_call(kind, started.elapsed(), failed);
        answer
    }

    /// The verifier's counters.
    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }

    /// The rent held in open receipts the fee payer funded (one ledger call).
    pub async fn rent_held(&self) -> Result<u64, LedgerError> {
        let Some(fee_payer) = &self.0.settings.fee_payer else {
            return Ok(0);
        };
        let filters = funded_by(&fee_payer.pubkey());
        let program = self.0.settings.program;
        let funded = self
            .ledger_call(
                "program_accounts",
                self.0.ledger.program_accounts(&program, &filters),
            )
            .await?;
        Ok(funded.iter().map(|(_, account)| account.lamports).sum())
    }

    /// The janitor's round: closes the receipts the fee payer funded whose challenge
    /// expired more than `retention` ago, and takes their rent back.
    pub async fn close_expired_receipts(
        &self,
        retention: Duration,
    ) -> Result<CloseReport, LedgerError> {
        let Some(fee_payer) = &self.0.settings.fee_payer else {
            return Ok(CloseReport::default());
        };
        let before = unix_now().saturating_sub(retention.as_secs() as i64);
        let report = close_expired(
            self.0.ledger.as_ref(),
            &self.0.settings.program,
            fee_payer,
            before,
        )
        .await?;
        self.0.metrics.rent_returned(report.rent_returned);
        Ok(report)
    }

    /// Gives the grant back after the upstream failed: the receipt may be used again.
    pub async fn release(&self, settled: &SettledPayment) {
        self.0.metrics.released();
        if let Err(error) = self.0.store.release(&settled.reference.to_string()).await {
            tracing::error!(%error, reference = %settled.reference, "could not release a grant");
        }
    }

    /// The answer to a refused request.
    pub async fn refusal_response(
        &self,
        refusal: Refusal,
        price: &Price,
        target: &Target,
    ) -> Response {
        let m = &self.0.metrics;
        match &refusal {
            Refusal::InvalidPayload(_) => m.refused("invalid_payload"),
            Refusal::Unavailable => m.refused("ledger_unavailable"),
            Refusal::Challenge(reason) => {
                m.challenge_issued();
                if let Some(reason) = reason {
                    m.refused(reason);
                }
            }
            Refusal::Pending { reason, .. } => {
                m.challenge_issued();
                m.refused(reason);
            }
        }
        match refusal {
            Refusal::InvalidPayload(why) => (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": "invalid_payload", "message": why})),
            )
                .into_response(),
            Refusal::Unavailable => {
                let body = json!({
                    "error": "ledger_unavailable",
                    "message": "The payment could not be checked right now. Retry with the same payment; do not pay again.",
                });
                let mut response =
                    (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
                response.headers_mut().insert(
                    http::header::RETRY_AFTER,
                    HeaderValue::from(RETRY_AFTER_SECONDS),
                );
                response
            }
            Refusal::Challenge(reason) => {
                let expires_at = unix_now().saturating_add(price.ttl.as_secs() as i64);
                let reference = Reference::issue(
                    &self.0.settings.challenge_keys[0],
                    &self.terms(price.amount, target),
                    expires_at,
                );
                self.challenge(price, target, reference, reason.as_deref())
                    .await
            }
            Refusal::Pending { reference, reason } => {
                self.challenge(price, target, reference, Some(reason)).await
            }
        }
    }

    /// A 402 offering `reference`: the v1 JSON body (with plain fields for people) and
    /// the v2 `PAYMENT-REQUIRED` header.
    async fn challenge(
        &self,
        price: &Price,
        target: &Target,
        reference: Reference,
        reason: Option<&str>,
    ) -> Response {
        let s = &self.0.settings;
        let sponsored = s.fee_payer.as_ref().map(|k| k.pubkey());
        let offer = ReceiptOffer {
            network: s.network.v1_name().into(),
            requirement: self.requirement(price.amount, reference),
            decimals: s.decimals,
            fee_payer: sponsored,
            recent_blockhash: if sponsored.is_some() {
                *self.0.blockhash.read().await
            } else {
                None
            },
            resource: target.resource.clone(),
            description: price.description.clone(),
            mime_type: price.mime_type.clone(),
            max_timeout_seconds: price.ttl.as_secs(),
        };
        let amount = format_units(price.amount, s.decimals);
        let ttl = (reference.expires_at() - unix_now()).max(0);
        let message = format!(
            "Pay {amount} {} to {} on {} for {} {}{}",
            s.currency,
            s.pay_to,
            s.network.v1_name(),
            target.method,
            target.path,
            reason.map(|r| format!(" ({r})")).unwrap_or_default()
        );
        let mut extra = serde_json::Map::new();
        extra.insert("amount".into(), amount.into());
        extra.insert("currency".into(), s.currency.clone().into());
        extra.insert("payee".into(), s.pay_to.to_string().into());
        extra.insert("reference".into(), reference.to_string().into());
        extra.insert("ttl".into(), ttl.into());
        extra.insert("message".into(), message.into());
        if let Some(url) = &s.facilitator_url {
            extra.insert("facilitatorUrl".into(), url.clone().into());
        }
        let body = v1::PaymentRequired {
            x402_version: v1::VERSION,
            error: reason.unwrap_or("payment_required").to_string(),
            accepts: vec![offer.to_v1(s.network.v1_name())],
            extra,
        };
        let header = v2::PaymentRequired {
            x402_version: v2::VERSION,
            error: reason.map(str::to_string),
            resource: v2::ResourceInfo {
                url: target.resource.clone(),
                description: Some(price.description.clone()),
                mime_type: Some(price.mime_type.clone()),
            },
            accepts: vec![offer.to_v2(s.network.caip2())],
            extensions: None,
        };
        let mut response = (StatusCode::PAYMENT_REQUIRED, axum::Json(body)).into_response();
        let header =
            HeaderValue::from_str(&encode_header(&header)).expect("base64 is a valid header value");
        response.headers_mut().insert(v2::PAYMENT_REQUIRED, header);
        response
    }

    /// The settlement header for a served request, named after the header the payment
    /// came in.
    pub fn settlement_header(
        &self,
        settled: &SettledPayment,
        wire: Wire,
    ) -> (&'static str, HeaderValue) {
        let mut extra = serde_json::Map::new();
        extra.insert("reference".into(), settled.reference.to_string().into());
        extra.insert("receipt".into(), settled.receipt.to_string().into());
        let transaction = settled.transaction.clone().unwrap_or_default();
        let (name, encoded) = match wire {
            Wire::V2 => (
                v2::PAYMENT_RESPONSE,
                encode_header(&v2::SettlementResponse {
                    success: true,
                    error_reason: None,
                    payer: Some(settled.payer.to_string()),
                    transaction,
                    network: settled.network.clone(),
                    amount: Some(settled.amount.to_string()),
                    extensions: None,
                    extra,
                }),
            ),
            Wire::V1 | Wire::Plain => (
                v1::X_PAYMENT_RESPONSE,
                encode_header(&v1::SettlementResponse {
                    success: true,
                    error_reason: None,
                    transaction,
                    network: self.0.settings.network.v1_name().to_string(),
                    payer: settled.payer.to_string(),
                    extra,
                }),
            ),
        };
        (
            name,
            HeaderValue::from_str(&encoded).expect("base64 is a valid header value"),
        )
    }
}

async fn run_check(
    check: Option<&dyn PaymentCheck>,
    reference: Reference,
    payer: Pubkey,
    amount: u64,
    target: &Target,
) -> Result<(), Refusal> {
    let Some(check) = check else { return Ok(()) };
    let attempt = PaymentAttempt {
        reference,
        payer,
        amount,
        method: target.method.clone(),
        path: target.path.clone(),
    };
    check
        .check(&attempt)
        .await
        .map_err(|reason| Refusal::Challenge(Some(reason)))
}
