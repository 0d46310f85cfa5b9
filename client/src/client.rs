//! `X402Client`: a reqwest client that answers 402 challenges by paying and retries.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anchor_lang::prelude::Pubkey;
use solana_keypair::Keypair;
use solana_signer::Signer;
use x402_protocol::scheme::encode_transaction;
use x402_protocol::scheme::encode_transaction as encode_versioned;
use x402_protocol::scheme::exact::build_exact;
use x402_protocol::wire::{self, decode_header, v1, v2, PaymentMessage, Version};
use x402_protocol::{sign_proof, ExactOffer, Ledger, LedgerError, ProofTarget};

use crate::offer::{describe, Offer, Terms};
use crate::policy::{PolicyRefusal, SpendingPolicy};

/// Why a request could not be paid for or served.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("HTTP: {0}")]
    Http(#[from] reqwest::Error),
    /// The server asked for payment and automatic payment is off: pay with
    /// [`X402Client::pay`], then send with [`X402Client::send_with`].
    #[error("payment required")]
    PaymentRequired(Box<Challenge>),
    /// Nothing offered is payable here: each offer, and why not.
    #[error("nothing offered can be paid: {}", offered.join("; "))]
    NoPayableOffer { offered: Vec<String> },
    #[error("the 402 answer cannot be read: {0}")]
    MalformedChallenge(String),
    #[error(transparent)]
    Policy(Box<PolicyRefusal>),
    #[error("paying needs a keypair")]
    NoKeypair,
    #[error("the server does not sponsor this payment; paying it yourself needs an RPC URL")]
    NeedsLedger,
    /// An `exact` payment needs the mint's token program and decimals from a trusted
    /// source: an RPC URL, or the table of well-known mints.
    #[error("paying in mint {0} needs an RPC URL (its decimals are never taken from the server)")]
    UnknownMint(Pubkey),
    /// The mint takes a fee or runs a hook on transfers: the payee would receive less
    /// than the price.
    #[error("mint {0} withholds part of each transfer (fee or hook): not paid")]
    WithholdingMint(Pubkey),
    #[error("the ledger: {0}")]
    Ledger(#[from] LedgerError),
    /// The server answered 402 again after the payment: its reason.
    #[error("the server refused the payment: {reason}")]
    PaymentRefused {
        reason: String,
        payment: Box<Payment>,
    },
    /// The server stayed unavailable; the payment may be retried with
    /// [`X402Client::send_with`], never paid again.
    #[error("the server or the ledger is unavailable ({attempts} attempts); the payment is kept: present it again, never pay again")]
    Unavailable {
        attempts: u32,
        payment: Box<Payment>,
    },
    /// The paid request answered 5xx (a 503 after its retries is [`Unavailable`]): the
    /// seller failed to serve it, and a seller of ours gave the payment's grant back. The
    /// payment is kept: present it again with [`X402Client::send_with`] (it then carries
    /// the payer's proof), never pay again.
    ///
    /// [`Unavailable`]: ClientError::Unavailable
    #[error("the server answered {status} to the paid request; the payment is kept: present it again, never pay again")]
    ServerError {
        status: reqwest::StatusCode,
        /// The start of the server's answer (its text, at most 4 KiB).
        body: String,
        payment: Box<Payment>,
    },
    #[error("the request body cannot be sent twice (a stream): buffer it to pay")]
    BodyNotReplayable,
}

/// The header in which a payment presented again carries its payer's proof:
/// `<reference>:<proof>` (see `x402_protocol::proof`).
pub const X_PAYMENT_PROOF: &str = "X-Payment-Proof";

/// The most of a failed answer's body kept in [`ClientError::ServerError`].
const ERROR_BODY_BYTES: usize = 4096;

/// A 402 answer, read.
#[derive(Clone, Debug)]
pub struct Challenge {
    /// The offers this client can pay, in the client's order of preference, then the
    /// server's.
    pub offers: Vec<Offer>,
    /// The offers it cannot pay, each with why, to say so when nothing is payable.
    pub unpayable: Vec<String>,
    /// The v2 challenge, when the server sent one: the payment is then sent in v2.
    pub v2: Option<v2::PaymentRequired>,
    /// The server's reason, when it gave one (`invalid_reference`, ...).
    pub error: Option<String>,
    /// The request that was answered with this challenge: a payment made on chain
    /// carries the payer's proof for it.
    pub request: Option<(reqwest::Method, reqwest::Url)>,
}

impl Challenge {
    /// Reads a 402 answer: the v2 `PAYMENT-REQUIRED` header when there is one (stock
    /// servers send an empty body with it), the v1 body otherwise.
    pub async fn read(response: reqwest::Response) -> Result<Self, ClientError> {
        let malformed = |e: String| ClientError::MalformedChallenge(e);
        let header = response
            .headers()
            .get(v2::PAYMENT_REQUIRED)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if let Some(header) = header {
            let required: v2::PaymentRequired =
                decode_header(&header).map_err(|e| malformed(e.to_string()))?;
            let offers = required
                .accepts
                .iter()
                .map(|offer| wire::Offer::from_v2(offer, &required.resource));
            let mut challenge = Challenge::of(offers.collect());
            challenge.error = required.error.clone();
            challenge.v2 = Some(required);
            return Ok(challenge);
        }
        let body: v1::PaymentRequired = response.json().await.map_err(|e| {
            malformed(format!(
                "no PAYMENT-REQUIRED header, and the body is not an x402 v1 challenge: {}",
                e.without_url()
            ))
        })?;
        let mut challenge = Challenge::of(body.accepts.iter().map(wire::Offer::from_v1).collect());
        challenge.error = Some(body.error).filter(|e| !e.is_empty() && e != "payment_required");
        Ok(challenge)
    }

    fn of(offered: Vec<wire::Offer>) -> Self {
        let mut challenge = Challenge {
            offers: Vec::new(),
            unpayable: Vec::new(),
            v2: None,
            error: None,
            request: None,
        };
        for offer in &offered {
            match Offer::read(offer) {
                Ok(payable) => challenge.offers.push(payable),
                Err(why) => challenge.unpayable.push(describe(offer, &why)),
            }
        }
        challenge
    }

    /// Puts the schemes of `preferred` first, in its order (stable otherwise).
    fn prefer(&mut self, preferred: &[String]) {
        let rank = |offer: &Offer| {
            preferred
                .iter()
                .position(|scheme| scheme == offer.scheme())
                .unwrap_or(preferred.len())
        };
        self.offers.sort_by_key(rank);
    }
}

/// A signed payment for one offer, ready to send (and to send again after a 503).
#[derive(Clone, Debug)]
pub struct Payment {
    pub offer: Offer,
    /// The payment header: name and value.
    pub header: (&'static str, String),
    /// Whether the server's fee payer submits it (way 1) or it was paid already (way 2).
    pub sponsored: bool,
    /// The transaction signature, when the payer submitted it.
    pub signature: Option<String>,
    /// Whether it was sent to the server already. Presented again (kept after a 503 or a
    /// 5xx, or read back with [`Payment::from_json`]), it carries the payer's proof in
    /// `X-Payment-Proof`, which a seller of ours demands for a payment whose grant it gave
    /// back: the payment header alone may have been copied by anyone on its way.
    pub presented: bool,
}

impl Payment {
    /// The payment as JSON, to keep when it could not be presented (a 503, a ledger
    /// error): presented later with [`Payment::from_json`] and [`X402Client::send_with`],
    /// it is never paid again.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "header": self.header.0,
            "value": self.header.1,
            "offer": self.offer.to_wire().to_v1(),
            "sponsored": self.sponsored,
            "signature": self.signature,
            "presented": self.presented,
        })
    }

    /// Reads a payment kept with [`Payment::to_json`].
    pub fn from_json(json: &serde_json::Value) -> Result<Self, ClientError> {
        let malformed =
            |what: &str| ClientError::MalformedChallenge(format!("a kept payment: {what}"));
        let name = json["header"].as_str().ok_or_else(|| malformed("header"))?;
        let header = Version::ALL
            .into_iter()
            .map(Version::payment_header)
            .find(|known| known.eq_ignore_ascii_case(name))
            .ok_or_else(|| malformed("header"))?;
        let value = json["value"].as_str().ok_or_else(|| malformed("value"))?;
        let offer =
            serde_json::from_value(json["offer"].clone()).map_err(|_| malformed("offer"))?;
        let offer = Offer::read(&wire::Offer::from_v1(&offer)).map_err(|_| malformed("offer"))?;
        Ok(Payment {
            offer,
            header: (header, value.to_string()),
            sponsored: json["sponsored"].as_bool().unwrap_or_default(),
            signature: json["signature"].as_str().map(str::to_string),
            // A kept payment of an older client may have been presented: prove it.
            presented: json["presented"].as_bool().unwrap_or(true),
        })
    }

    /// The same payment, marked as sent to the server.
    fn presented(&self) -> Box<Payment> {
        Box::new(Payment {
            presented: true,
            ..self.clone()
        })
    }
}

/// What a paid request bought, from the server's settlement header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settlement {
    pub scheme: String,
    pub transaction: String,
    /// The challenge's reference, when the server is one of ours.
    pub reference: Option<String>,
    /// The receipt account (`receipt` scheme).
    pub receipt: Option<String>,
    /// Base units paid.
    pub amount: u64,
    /// The amount for people (with the server's decimals, display only).
    pub shown_amount: String,
    pub network: String,
    pub payer: String,
}

/// A response, and the settlement when the request was paid for.
#[derive(Debug)]
pub struct Paid {
    pub response: reqwest::Response,
    pub settlement: Option<Settlement>,
}

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
    /// Base units signed away so far, against the budget.
    spent: Mutex<u64>,
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
    /// account settles it exactly once, on chain) then `exact` by default.
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
                spent: Mutex::new(0),
            },
        }
    }

    /// Base units paid (signed) so far.
    pub fn spent(&self) -> u64 {
        *self.spent.lock().expect("not poisoned")
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
        let offer = self.reserve(challenge, &decimals)?;
        let Some(payer) = self.payer.as_ref() else {
            self.unreserve(offer.amount());
            return Err(ClientError::NoKeypair);
        };
        let signed = match &offer.terms {
            Terms::Receipt(receipt) => match (receipt.fee_payer, receipt.recent_blockhash) {
                (Some(fee_payer), Some(blockhash)) => {
                    let requirement = &receipt.requirement;
                    let mut tx =
                        requirement.pay_transaction(&payer.pubkey(), &fee_payer, blockhash);
                    match tx.try_partial_sign(&[payer.as_ref()], blockhash) {
                        Ok(()) => Ok((
                            serde_json::json!({ "transaction": encode_transaction(&tx) }),
                            None,
                            None,
                        )),
                        Err(e) => Err(ClientError::MalformedChallenge(e.to_string())),
                    }
                }
                _ => {
                    self.pay_on_chain(payer, &receipt.requirement, challenge.request.as_ref())
                        .await
                }
            },
            Terms::Exact(exact) => self
                .sign_exact(payer, exact)
                .await
                .map(|payload| (payload, None, None)),
        };
        let sponsored = offer.sponsored();
        let (payload, signature, unsettled) = match signed {
            Ok(signed) => signed,
            Err(error) => {
                // Nothing left the client, or the ledger refused it: nothing was spent.
                self.unreserve(offer.amount());
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
            offer,
            header,
            sponsored,
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

    /// An `exact` payment for `offer`: the transfer, signed by the payer for the
    /// server's fee payer to co-sign. The mint's token program and decimals come from the
    /// client's ledger or its table of well-known mints, never from the server.
    async fn sign_exact(
        &self,
        payer: &Keypair,
        offer: &ExactOffer,
    ) -> Result<serde_json::Value, ClientError> {
        // The payer as fee payer would pay the network fee the seller offered to pay.
        if offer.terms.fee_payer == payer.pubkey() {
            return Err(ClientError::MalformedChallenge(
                "the offer names the payer as its fee payer".into(),
            ));
        }
        let mint = &offer.terms.mint;
        let facts = match &self.ledger {
            Some(ledger) => {
                let account = ledger
                    .account(mint)
                    .await?
                    .ok_or(ClientError::UnknownMint(*mint))?;
                x402_protocol::read_mint(&account).map_err(|_| ClientError::UnknownMint(*mint))?
            }
            None => x402_protocol::mint::known_mint(mint).ok_or(ClientError::UnknownMint(*mint))?,
        };
        if !facts.delivers_in_full {
            return Err(ClientError::WithholdingMint(*mint));
        }
        let blockhash = match (offer.recent_blockhash, &self.ledger) {
            (_, Some(ledger)) => ledger.latest_blockhash().await?,
            (Some(hint), None) => hint,
            (None, None) => return Err(ClientError::NeedsLedger),
        };
        let tx = build_exact(payer, &offer.terms, &facts, blockhash);
        Ok(serde_json::json!({ "transaction": encode_versioned(&tx) }))
    }

    /// Picks the first offer of `challenge` the policy allows and reserves its amount
    /// against the budget, under one lock: two payments at once cannot both pass it.
    fn reserve(
        &self,
        challenge: &Challenge,
        decimals: &[Option<u8>],
    ) -> Result<Offer, ClientError> {
        let ledger = self.ledger.as_ref().map(|ledger| ledger.network());
        let mut spent = self.spent.lock().expect("not poisoned");
        let mut refusal = None;
        let offer = challenge
            .offers
            .iter()
            .zip(decimals)
            .find(
                |(offer, decimals)| match self.policy.check(offer, *spent, **decimals, ledger) {
                    Ok(()) => true,
                    Err(why) => {
                        refusal.get_or_insert(why);
                        false
                    }
                },
            )
            .map(|(offer, _)| offer)
            .ok_or_else(|| match refusal {
                Some(refusal) => ClientError::Policy(refusal),
                None => ClientError::NoPayableOffer {
                    offered: challenge.unpayable.clone(),
                },
            })?;
        *spent = spent.saturating_add(offer.amount());
        Ok(offer.clone())
    }

    /// The decimals of `mint` as this client knows them: from its ledger, else from the
    /// table of well-known mints; never from the server. Asked only when the policy has
    /// decimal limits.
    async fn trusted_decimals(&self, mint: &anchor_lang::prelude::Pubkey) -> Option<u8> {
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

    fn unreserve(&self, amount: u64) {
        let mut spent = self.spent.lock().expect("not poisoned");
        *spent = spent.saturating_sub(amount);
    }

    /// Way 2: signs and submits `pay` through the client's ledger, the payer paying fee
    /// and rent. The payload, and the submission's error when it may still have landed
    /// (the ledger did not answer): the payment is then kept, never made again.
    async fn pay_on_chain(
        &self,
        payer: &Keypair,
        requirement: &x402_protocol::Requirement,
        request: Option<&(reqwest::Method, reqwest::Url)>,
    ) -> Result<(serde_json::Value, Option<String>, Option<LedgerError>), ClientError> {
        let ledger = self.ledger.as_ref().ok_or(ClientError::NeedsLedger)?;
        let blockhash = ledger.latest_blockhash().await?;
        let mut tx = requirement.pay_transaction(&payer.pubkey(), &payer.pubkey(), blockhash);
        tx.try_sign(&[payer], blockhash)
            .map_err(|e| ClientError::MalformedChallenge(e.to_string()))?;
        let signature = tx.signatures[0].to_string();
        let unsettled = match ledger.submit(&tx.clone().into()).await {
            Ok(_) => None,
            Err(rejected @ LedgerError::Rejected(_)) => return Err(rejected.into()),
            Err(unavailable) => Some(unavailable),
        };
        // The payer's proof that it presents this reference, for this request: the
        // reference is public once `pay` lands.
        let proof = request.map(|(method, url)| proof(payer, &requirement.reference, method, url));
        let payload = serde_json::json!({
            "reference": requirement.reference.to_string(),
            "proof": proof,
            "signature": signature,
        });
        Ok((payload, Some(signature), unsettled))
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
                    let settlement = settlement_of(&response, payment);
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

/// The payer's proof that it presents `reference` for `method url`: the method, the path,
/// and the host with its port when not the scheme's default, as the URL names it.
fn proof(
    payer: &Keypair,
    reference: &x402_protocol::Reference,
    method: &reqwest::Method,
    url: &reqwest::Url,
) -> String {
    let host = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_string(),
    };
    let target = ProofTarget {
        method: method.as_str(),
        path: url.path(),
        host: &host,
    };
    sign_proof(payer, reference, &target)
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

/// Reads the settlement header of a paid response, in whichever version it came.
fn settlement_of(response: &reqwest::Response, payment: &Payment) -> Option<Settlement> {
    let s = Version::ALL.into_iter().find_map(|version| {
        let value = response.headers().get(version.settlement_header())?;
        wire::Settlement::decode(version, value.to_str().ok()?).ok()
    })?;
    let text = |key: &str| {
        s.extra
            .get(key)
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    let offer = &payment.offer;
    let receipt = match &offer.terms {
        Terms::Receipt(o) => Some(o.requirement.receipt().to_string()),
        Terms::Exact(_) => None,
    };
    Some(Settlement {
        scheme: offer.scheme().into(),
        reference: text("reference").or_else(|| offer.reference().map(|r| r.to_string())),
        receipt: text("receipt").or(receipt),
        transaction: s.transaction,
        amount: offer.amount(),
        shown_amount: offer.shown_amount(),
        network: s.network,
        payer: s.payer,
    })
}
