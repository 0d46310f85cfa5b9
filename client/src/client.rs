//! `X402Client`: a reqwest client that answers 402 challenges by paying and retries.

use std::sync::Arc;
use std::time::Duration;

use anchor_lang::prelude::Pubkey;
use solana_keypair::Keypair;
use x402_protocol::wire::{PaymentMessage, Version};
use x402_protocol::Ledger;

use crate::budget::Budget;
use crate::challenge::Challenge;
use crate::error::ClientError;
use crate::payment::Payment;
use crate::policy::SpendingPolicy;
use crate::proof::proof;
use crate::scheme::{self, PayContext, Signed};
use crate::settlement::{Paid, Settlement};

/// The header in which a payment presented again carries its payer's proof:
/// `<reference>:<proof>` (see `x402_protocol::proof`).
pub const X_PAYMENT_PROOF: &str = "X-Payment-Proof";

/// The most of a failed answer's body kept in [`ClientError::ServerError`].
const ERROR_BODY_BYTES: usize = 4096;

/// A reqwest client that pays 402 challenges in the `receipt` scheme and retries.
pub struct X402Client {
    http: reqwest::Client,
    payer: Option<Arc<Keypair>>,
    policy: SpendingPolicy,
    ledger: Option<Arc<dyn Ledger>>,
    auto_pay: bool,
    /// Schemes to pay first when several are offered.
    preferred: Vec<String>,
    retries: u32,
    backoff: Duration,
    /// Base units signed away so far, against the policy's budget.
    budget: Budget,
}

/// Builds an [`X402Client`].
pub struct X402ClientBuilder {
    client: X402Client,
}

impl X402ClientBuilder {
    pub fn http(mut self, http: reqwest::Client) -> Self {
        self.client.http = http;
        self
    }

    /// The payer: the token authority that signs payments.
    pub fn keypair(mut self, keypair: Keypair) -> Self {
        self.client.payer = Some(Arc::new(keypair));
        self
    }

    pub fn policy(mut self, policy: SpendingPolicy) -> Self {
        self.client.policy = policy;
        self
    }

    /// A ledger to pay through when the server does not sponsor (way 2).
    pub fn ledger(mut self, ledger: Arc<dyn Ledger>) -> Self {
        self.client.ledger = Some(ledger);
        self
    }

    /// The schemes to pay first when a server offers several: `receipt` (whose receipt
    /// account settles it exactly once, on chain) then `exact` by default; a scheme not
    /// named comes after those named. `upto` (a deposit of the maximum, the seller settling
    /// what the answer cost) is paid first only when named here.
    pub fn prefer(mut self, schemes: &[&str]) -> Self {
        self.client.preferred = schemes.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Off: a 402 comes back as [`ClientError::PaymentRequired`] with the challenge.
    pub fn auto_pay(mut self, auto_pay: bool) -> Self {
        self.client.auto_pay = auto_pay;
        self
    }

    /// How often a 503 is retried with the same payment, and the first wait.
    pub fn retries(mut self, retries: u32, backoff: Duration) -> Self {
        self.client.retries = retries;
        self.client.backoff = backoff;
        self
    }

    pub fn build(self) -> X402Client {
        self.client
    }
}

impl X402Client {
    pub fn builder() -> X402ClientBuilder {
        X402ClientBuilder {
            client: X402Client {
                http: reqwest::Client::new(),
                payer: None,
                policy: SpendingPolicy::default(),
                ledger: None,
                auto_pay: true,
                preferred: vec![x402_protocol::SCHEME.into(), x402_protocol::EXACT.into()],
                retries: 3,
                backoff: Duration::from_millis(500),
                budget: Budget::default(),
            },
        }
    }

    /// Base units paid (signed) so far.
    pub fn spent(&self) -> u64 {
        self.budget.spent()
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub async fn get(&self, url: &str) -> Result<Paid, ClientError> {
        self.send(self.http.get(url)).await
    }

    pub async fn post(
        &self,
        url: &str,
        body: impl Into<reqwest::Body>,
    ) -> Result<Paid, ClientError> {
        self.send(self.http.post(url).body(body)).await
    }

    /// Sends `request`; on a 402, pays (unless automatic payment is off) and sends it
    /// again with the payment.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Result<Paid, ClientError> {
        let retry = request.try_clone().ok_or(ClientError::BodyNotReplayable)?;
        let response = request.send().await?;
        if response.status() != reqwest::StatusCode::PAYMENT_REQUIRED {
            return Ok(Paid {
                response,
                settlement: None,
            });
        }
        let mut challenge = Challenge::read(response).await?;
        challenge.prefer(&self.preferred);
        if let Some(built) = retry.try_clone().and_then(|r| r.build().ok()) {
            challenge.request = Some((built.method().clone(), built.url().clone()));
        }
        if !self.auto_pay {
            return Err(ClientError::PaymentRequired(Box::new(challenge)));
        }
        let payment = self.pay(&challenge).await?;
        self.send_with(retry, &payment).await
    }

    /// Pays the first offer of `challenge` the policy allows: a `receipt` offer
    /// sponsored when the server offers it, through the ledger otherwise; an `exact`
    /// offer signed for the server's fee payer. Nothing is signed if the policy refuses.
    pub async fn pay(&self, challenge: &Challenge) -> Result<Payment, ClientError> {
        if challenge.offers.is_empty() {
            return Err(ClientError::NoPayableOffer {
                offered: challenge.unpayable.clone(),
            });
        }
        let mut decimals = Vec::with_capacity(challenge.offers.len());
        for offer in &challenge.offers {
            decimals.push(self.trusted_decimals(&offer.mint()).await);
        }
        let ledger = self.ledger.as_ref().map(|ledger| ledger.network());
        let offer = self
            .budget
            .reserve(&self.policy, challenge, &decimals, ledger)?;
        let Some(payer) = self.payer.as_ref() else {
            self.budget.release(offer.amount());
            return Err(ClientError::NoKeypair);
        };
        let context = PayContext {
            payer,
            ledger: self.ledger.as_deref(),
            request: challenge.request.as_ref(),
        };
        let Signed {
            payload,
            signature,
            unsettled,
        } = match scheme::pay(&offer.terms, &context).await {
            Ok(signed) => signed,
            Err(error) => {
                // Nothing left the client, or the ledger refused it: nothing was spent.
                self.budget.release(offer.amount());
                return Err(error);
            }
        };
        let version = match challenge.v2 {
            Some(_) => Version::V2,
            None => Version::V1,
        };
        let mut paid = offer.to_wire();
        if let Some(required) = &challenge.v2 {
            paid.resource = required.resource.clone();
        }
        let header = PaymentMessage {
            version,
            offer: paid,
            payload,
        }
        .header();
        let payment = Payment {
            sponsored: offer.sponsored(),
            offer,
            header,
            signature,
            presented: false,
        };
        match unsettled {
            // It may have landed: present it later, never pay again.
            Some(_) => Err(ClientError::Unavailable {
                attempts: 0,
                payment: Box::new(payment),
            }),
            None => Ok(payment),
        }
    }

    /// The decimals of `mint` as this client knows them: from its ledger, else from the
    /// table of well-known mints; never from the server. Asked only when the policy has
    /// decimal limits.
    async fn trusted_decimals(&self, mint: &Pubkey) -> Option<u8> {
        if !self.policy.has_decimal_limits() {
            return None;
        }
        if let Some(known) = x402_protocol::mint::known_decimals(mint) {
            return Some(known);
        }
        if let Some(ledger) = &self.ledger {
            if let Ok(Some(account)) = ledger.account(mint).await {
                if let Ok(facts) = x402_protocol::read_mint(&account) {
                    return Some(facts.decimals);
                }
            }
        }
        None
    }

    /// Sends `request` with `payment`. A 503 is retried with the same payment, waiting
    /// longer each time; a 402 is the server's refusal, with its reason; another 5xx keeps
    /// the payment ([`ClientError::ServerError`]). A payment presented again (a retry, or
    /// a kept one) carries the payer's proof beside it.
    pub async fn send_with(
        &self,
        request: reqwest::RequestBuilder,
        payment: &Payment,
    ) -> Result<Paid, ClientError> {
        let (name, value) = &payment.header;
        let proof = self.proof_header(&request, payment);
        let mut wait = self.backoff;
        for attempt in 1..=self.retries + 1 {
            let mut attempt_request = request
                .try_clone()
                .ok_or(ClientError::BodyNotReplayable)?
                .header(*name, value);
            if attempt > 1 || payment.presented {
                if let Some(proof) = &proof {
                    attempt_request = attempt_request.header(X_PAYMENT_PROOF, proof);
                }
            }
            let response = attempt_request.send().await?;
            match response.status() {
                reqwest::StatusCode::SERVICE_UNAVAILABLE if attempt <= self.retries => {
                    let asked = response
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                        .map(Duration::from_secs);
                    tokio::time::sleep(asked.unwrap_or(wait).min(Duration::from_secs(30))).await;
                    wait *= 2;
                }
                reqwest::StatusCode::SERVICE_UNAVAILABLE => {
                    return Err(ClientError::Unavailable {
                        attempts: attempt,
                        payment: payment.presented(),
                    })
                }
                reqwest::StatusCode::PAYMENT_REQUIRED => {
                    let challenge = Challenge::read(response).await.ok();
                    // The same reference asked again: our payment may still land. Waiting
                    // and presenting it again is right; paying again never is.
                    let pending = challenge.as_ref().is_some_and(|c| {
                        let ours = payment.offer.key();
                        ours.is_some() && c.offers.iter().any(|o| o.key() == ours)
                    });
                    if pending && attempt <= self.retries {
                        tokio::time::sleep(wait.min(Duration::from_secs(30))).await;
                        wait *= 2;
                        continue;
                    }
                    let reason = challenge
                        .and_then(|c| c.error)
                        .unwrap_or_else(|| "payment_required".into());
                    return Err(ClientError::PaymentRefused {
                        reason,
                        payment: payment.presented(),
                    });
                }
                status if status.is_server_error() => {
                    // Not served: a seller of ours gave the grant back. The payment is
                    // the buyer's to present again, never to make again.
                    return Err(ClientError::ServerError {
                        status,
                        body: error_body(response).await,
                        payment: payment.presented(),
                    });
                }
                _ => {
                    let settlement = Settlement::of(&response, payment)?;
                    return Ok(Paid {
                        response,
                        settlement,
                    });
                }
            }
        }
        unreachable!("the last attempt returns")
    }

    /// `X-Payment-Proof: <reference>:<proof>` for `payment` at `request`'s method, path and
    /// host, signed by this client's payer: the reference the payment pays (a `receipt`
    /// offer's, or the one an `exact` Memo holds). None without a keypair or a reference.
    fn proof_header(&self, request: &reqwest::RequestBuilder, payment: &Payment) -> Option<String> {
        let payer = self.payer.as_ref()?;
        let reference = payment.offer.reference()?;
        let built = request.try_clone()?.build().ok()?;
        let proof = proof(payer, &reference, built.method(), built.url());
        Some(format!("{reference}:{proof}"))
    }
}

/// The start of a failed answer's body, as text.
async fn error_body(mut response: reqwest::Response) -> String {
    let mut body = Vec::new();
    while body.len() < ERROR_BODY_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    body.truncate(ERROR_BODY_BYTES);
    String::from_utf8_lossy(&body).into_owned()
}
