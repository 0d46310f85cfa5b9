//! `X402Client`: a reqwest client that answers 402 challenges by paying and retries.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use solana_keypair::Keypair;
use solana_signer::Signer;
use x402_protocol::scheme::{encode_transaction, SCHEME};
use x402_protocol::wire::{self, decode_header, v1, v2, PaymentMessage, Version};
use x402_protocol::{sign_proof, Ledger, LedgerError, ProofTarget, ReceiptOffer};

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
    #[error("the 402 answer holds no offer in the receipt scheme")]
    NoReceiptOffer,
    #[error("the 402 answer cannot be read: {0}")]
    MalformedChallenge(String),
    #[error(transparent)]
    Policy(Box<PolicyRefusal>),
    #[error("paying needs a keypair")]
    NoKeypair,
    #[error("the server does not sponsor this payment; paying it yourself needs an RPC URL")]
    NeedsLedger,
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
    #[error("the request body cannot be sent twice (a stream): buffer it to pay")]
    BodyNotReplayable,
}

/// A 402 answer, read.
#[derive(Clone, Debug)]
pub struct Challenge {
    /// The offers in the receipt scheme, in the server's order.
    pub offers: Vec<ReceiptOffer>,
    /// The v2 challenge, when the server sent one: the payment is then sent in v2.
    pub v2: Option<v2::PaymentRequired>,
    /// The server's reason, when it gave one (`invalid_reference`, ...).
    pub error: Option<String>,
    /// The request that was answered with this challenge: a payment made on chain
    /// carries the payer's proof for it.
    pub request: Option<(reqwest::Method, reqwest::Url)>,
}

impl Challenge {
    /// Reads a 402 answer: the v2 `PAYMENT-REQUIRED` header first, the v1 body otherwise.
    pub async fn read(response: reqwest::Response) -> Result<Self, ClientError> {
        let header = response
            .headers()
            .get(v2::PAYMENT_REQUIRED)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if let Some(header) = header {
            let required: v2::PaymentRequired = decode_header(&header)
                .map_err(|e| ClientError::MalformedChallenge(e.to_string()))?;
            let offers: Vec<ReceiptOffer> = required
                .accepts
                .iter()
                .filter(|offer| offer.scheme == SCHEME)
                .filter_map(|offer| ReceiptOffer::from_v2(offer, &required.resource).ok())
                .collect();
            if !offers.is_empty() {
                return Ok(Challenge {
                    offers,
                    error: required.error.clone(),
                    v2: Some(required),
                    request: None,
                });
            }
        }
        let body: v1::PaymentRequired = response
            .json()
            .await
            .map_err(|e| ClientError::MalformedChallenge(e.without_url().to_string()))?;
        let offers: Vec<ReceiptOffer> = body
            .accepts
            .iter()
            .filter(|offer| offer.scheme == SCHEME)
            .filter_map(|offer| ReceiptOffer::from_v1(offer).ok())
            .collect();
        if offers.is_empty() {
            return Err(ClientError::NoReceiptOffer);
        }
        let error = Some(body.error).filter(|e| !e.is_empty() && e != "payment_required");
        Ok(Challenge {
            offers,
            v2: None,
            error,
            request: None,
        })
    }
}

/// A signed payment for one offer, ready to send (and to send again after a 503).
#[derive(Clone, Debug)]
pub struct Payment {
    pub offer: ReceiptOffer,
    /// The payment header: name and value.
    pub header: (&'static str, String),
    /// Whether the server's fee payer submits it (way 1) or it was paid already (way 2).
    pub sponsored: bool,
    /// The transaction signature, when the payer submitted it.
    pub signature: Option<String>,
}

impl Payment {
    /// The payment as JSON, to keep when it could not be presented (a 503, a ledger
    /// error): presented later with [`Payment::from_json`] and [`X402Client::send_with`],
    /// it is never paid again.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "header": self.header.0,
            "value": self.header.1,
            "offer": self.offer.to_offer().to_v1(),
            "sponsored": self.sponsored,
            "signature": self.signature,
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
        let offer = ReceiptOffer::from_v1(&offer).map_err(|_| malformed("offer"))?;
        Ok(Payment {
            offer,
            header: (header, value.to_string()),
            sponsored: json["sponsored"].as_bool().unwrap_or_default(),
            signature: json["signature"].as_str().map(str::to_string),
        })
    }
}

/// What a paid request bought, from the server's settlement header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settlement {
    pub transaction: String,
    pub reference: String,
    pub receipt: String,
    /// Base units paid.
    pub amount: u64,
    pub decimals: u8,
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
        if let Some(built) = retry.try_clone().and_then(|r| r.build().ok()) {
            challenge.request = Some((built.method().clone(), built.url().clone()));
        }
        if !self.auto_pay {
            return Err(ClientError::PaymentRequired(Box::new(challenge)));
        }
        let payment = self.pay(&challenge).await?;
        self.send_with(retry, &payment).await
    }

    /// Pays the first offer of `challenge` the policy allows: sponsored when the server
    /// offers it, through the ledger otherwise. Nothing is signed if the policy refuses.
    pub async fn pay(&self, challenge: &Challenge) -> Result<Payment, ClientError> {
        let mut decimals = Vec::with_capacity(challenge.offers.len());
        for offer in &challenge.offers {
            decimals.push(self.trusted_decimals(&offer.requirement.mint).await);
        }
        let offer = self.reserve(challenge, &decimals)?;
        let requirement = &offer.requirement;
        let Some(payer) = self.payer.as_ref() else {
            self.unreserve(requirement.amount);
            return Err(ClientError::NoKeypair);
        };
        let signed = match (offer.fee_payer, offer.recent_blockhash) {
            (Some(fee_payer), Some(blockhash)) => {
                let mut tx = requirement.pay_transaction(&payer.pubkey(), &fee_payer, blockhash);
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
                self.pay_on_chain(payer, requirement, challenge.request.as_ref())
                    .await
            }
        };
        let sponsored = offer.fee_payer.is_some() && offer.recent_blockhash.is_some();
        let (payload, signature, unsettled) = match signed {
            Ok(signed) => signed,
            Err(error) => {
                // Nothing left the client, or the ledger refused it: nothing was spent.
                self.unreserve(requirement.amount);
                return Err(error);
            }
        };
        let version = match challenge.v2 {
            Some(_) => Version::V2,
            None => Version::V1,
        };
        let mut paid = offer.to_offer();
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

    /// Picks the first offer of `challenge` the policy allows and reserves its amount
    /// against the budget, under one lock: two payments at once cannot both pass it.
    fn reserve(
        &self,
        challenge: &Challenge,
        decimals: &[Option<u8>],
    ) -> Result<ReceiptOffer, ClientError> {
        let mut spent = self.spent.lock().expect("not poisoned");
        let mut refusal = None;
        let offer = challenge
            .offers
            .iter()
            .zip(decimals)
            .map(|(offer, decimals)| (offer, *decimals))
            .find(
                |(offer, decimals)| match self.policy.check(offer, *spent, *decimals) {
                    Ok(()) => true,
                    Err(why) => {
                        refusal.get_or_insert(why);
                        false
                    }
                },
            )
            .map(|(offer, _)| offer)
            .ok_or_else(|| {
                refusal
                    .map(ClientError::Policy)
                    .unwrap_or(ClientError::NoReceiptOffer)
            })?;
        *spent = spent.saturating_add(offer.requirement.amount);
        Ok(offer.clone())
    }

    /// The decimals of `mint` as this client knows them: from its ledger, else from the
    /// table of well-known mints; never from the server. Asked only when the policy has
    /// decimal limits.
    async fn trusted_decimals(&self, mint: &anchor_lang::prelude::Pubkey) -> Option<u8> {
        if !self.policy.has_decimal_limits() {
            return None;
        }
        if let Some(ledger) = &self.ledger {
            if let Ok(Some(account)) = ledger.account(mint).await {
                if let Ok(facts) = x402_protocol::read_mint(&account) {
                    return Some(facts.decimals);
                }
            }
        }
        x402_protocol::mint::known_decimals(mint)
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
        let proof = request.map(|(method, url)| {
            let host = match url.port() {
                Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
                None => url.host_str().unwrap_or_default().to_string(),
            };
            let target = ProofTarget {
                method: method.as_str(),
                path: url.path(),
                host: &host,
            };
            sign_proof(payer, &requirement.reference, &target)
        });
        let payload = serde_json::json!({
            "reference": requirement.reference.to_string(),
            "proof": proof,
            "signature": signature,
        });
        Ok((payload, Some(signature), unsettled))
    }

    /// Sends `request` with `payment`. A 503 is retried with the same payment, waiting
    /// longer each time; a 402 is the server's refusal, with its reason.
    pub async fn send_with(
        &self,
        request: reqwest::RequestBuilder,
        payment: &Payment,
    ) -> Result<Paid, ClientError> {
        let (name, value) = &payment.header;
        let mut wait = self.backoff;
        for attempt in 1..=self.retries + 1 {
            let attempt_request = request.try_clone().ok_or(ClientError::BodyNotReplayable)?;
            let response = attempt_request.header(*name, value).send().await?;
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
                        payment: Box::new(payment.clone()),
                    })
                }
                reqwest::StatusCode::PAYMENT_REQUIRED => {
                    let challenge = Challenge::read(response).await.ok();
                    // The same reference asked again: our payment may still land. Waiting
                    // and presenting it again is right; paying again never is.
                    let pending = challenge.as_ref().is_some_and(|c| {
                        let ours = &payment.offer.requirement.reference;
                        c.offers.iter().any(|o| &o.requirement.reference == ours)
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
                        payment: Box::new(payment.clone()),
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
    let requirement = &payment.offer.requirement;
    Some(Settlement {
        reference: text("reference").unwrap_or_else(|| requirement.reference.to_string()),
        receipt: text("receipt").unwrap_or_else(|| requirement.receipt().to_string()),
        transaction: s.transaction,
        amount: requirement.amount,
        decimals: payment.offer.decimals,
        network: s.network,
        payer: s.payer,
    })
}
