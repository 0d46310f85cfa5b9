//! `X402Client`: a reqwest client that answers 402 challenges by paying and retries.

use std::sync::Arc;
use std::time::Duration;

use anchor_lang::prelude::Pubkey;
use solana_keypair::Keypair;
use solana_signer::Signer;
use x402_protocol::wire::{v2, PaymentMessage, Version};
use x402_protocol::Ledger;

use crate::book::{ChannelBook, HeldChannel};
use crate::budget::Budget;
use crate::challenge::Challenge;
use crate::error::ClientError;
use crate::payment::Payment;
use crate::policy::SpendingPolicy;
use crate::proof::proof;
use crate::scheme::batch::BatchStep;
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
    /// The buyer's `batch-settlement` channels.
    book: Arc<ChannelBook>,
    /// What a `batch-settlement` deposit escrows, in base units, when not the seller's
    /// suggestion.
    deposit: Option<u64>,
    /// Mint facts given by the user, trusted as the ledger is.
    mints: std::collections::HashMap<Pubkey, x402_protocol::MintInfo>,
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

    /// Where the buyer's `batch-settlement` channels are kept ([`ChannelBook::open`]): a
    /// client that restarts continues its channels. In memory only by default.
    pub fn channel_book(mut self, book: ChannelBook) -> Self {
        self.client.book = Arc::new(book);
        self
    }

    /// What a `batch-settlement` deposit escrows, in base units (an agent that knows how
    /// many requests it will make): still at most the policy's `max_deposit`. By default
    /// the seller's suggested `minDeposit`.
    pub fn deposit(mut self, base_units: u64) -> Self {
        self.client.deposit = Some(base_units);
        self
    }

    /// Facts about `mint` the user vouches for (its token program and decimals), as
    /// trusted as the ledger's: to pay in a mint outside the table of well-known ones
    /// without a ledger. Never the server's word.
    pub fn trusted_mint(mut self, mint: Pubkey, facts: x402_protocol::MintInfo) -> Self {
        self.client.mints.insert(mint, facts);
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
                book: Arc::new(ChannelBook::default()),
                deposit: None,
                mints: Default::default(),
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

    /// The buyer's `batch-settlement` channels.
    pub fn channel_book(&self) -> &ChannelBook {
        &self.book
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
    /// again with the payment. A URL a `batch-settlement` channel paid before is paid at
    /// once with its next voucher, with no 402 first; a voucher the seller did not take
    /// (its channel resynchronized or closed) is paid once more from its challenge.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Result<Paid, ClientError> {
        let retry = request.try_clone().ok_or(ClientError::BodyNotReplayable)?;
        let built = retry.try_clone().and_then(|r| r.build().ok());
        let url = built.as_ref().map(|b| b.url().to_string());
        let held = url.as_deref().and_then(|url| self.book.for_resource(url));
        if let (Some(held), true) = (held, self.auto_pay) {
            let challenge = held_challenge(&held);
            let payment = self.pay(&challenge).await?;
            match self.send_with(clone_request(&retry)?, &payment).await {
                Err(ClientError::PaymentRefused { .. }) => {}
                answered => return answered,
            }
        }
        let response = clone_request(&retry)?.send().await?;
        if response.status() != reqwest::StatusCode::PAYMENT_REQUIRED {
            return Ok(Paid {
                response,
                settlement: None,
            });
        }
        let mut challenge = Challenge::read(response).await?;
        challenge.prefer(&self.preferred);
        if let Some(built) = &built {
            challenge.request = Some((built.method().clone(), built.url().clone()));
        }
        if !self.auto_pay {
            return Err(ClientError::PaymentRequired(Box::new(challenge)));
        }
        let payment = self.pay(&challenge).await?;
        match self.send_with(clone_request(&retry)?, &payment).await {
            // The channel was resynchronized or closed meanwhile: once more, afresh.
            Err(ClientError::PaymentRefused { .. }) if payment.batch.is_some() => {
                let payment = self.pay(&challenge).await?;
                self.send_with(retry, &payment).await
            }
            answered => answered,
        }
    }

    /// Closes the `batch-settlement` channel `channel`: the seller settles what it
    /// accepted and returns the rest of the deposit, which this returns (base units).
    /// When the seller accepted another total than the client knows (its last answer was
    /// lost), its correction is taken as a payment's is, and the close sent once more.
    pub async fn close_channel(&self, channel: &str) -> Result<u64, ClientError> {
        match self.close_once(channel).await? {
            Some(refunded) => Ok(refunded),
            None => self.close_once(channel).await?.ok_or_else(|| {
                ClientError::MalformedChallenge(format!(
                    "the seller did not close channel {channel}: its total moved again"
                ))
            }),
        }
    }

    /// One close of `channel`: what came back, or `None` when the seller's correction
    /// was taken and the close may be sent again.
    async fn close_once(&self, channel: &str) -> Result<Option<u64>, ClientError> {
        let held = self
            .book
            .get(channel)
            .ok_or_else(|| ClientError::MalformedChallenge(format!("no channel {channel} held")))?;
        let payer = self.payer.as_ref().ok_or(ClientError::NoKeypair)?;
        let config = held
            .config
            .read()
            .map_err(|e| ClientError::MalformedChallenge(format!("a held channel: {e}")))?;
        if held.closed {
            return Err(ClientError::MalformedChallenge(format!(
                "channel {channel} is closed already"
            )));
        }
        let address = channel
            .parse()
            .map_err(|_| ClientError::MalformedChallenge(format!("channel {channel}")))?;
        let challenge = held_challenge(&held);
        let offer = challenge.offers.first().ok_or_else(|| {
            ClientError::MalformedChallenge("the held channel's offer cannot be read".into())
        })?;
        let payload = match &offer.terms {
            // The server mode: the buyer's proof of its close intent; the seller closes at
            // its operator's latest voucher.
            crate::offer::Terms::Batch(batch) if config.server_signed => {
                let request_id = format!("close-{}", x402_protocol::unix_now());
                let proof = x402_protocol::scheme::batch::Proof {
                    request_id: &request_id,
                    expires_at: x402_protocol::unix_now().saturating_add(60),
                };
                x402_protocol::scheme::batch::build_refund_proved(
                    payer,
                    &batch.terms,
                    &config,
                    proof,
                )
            }
            _ => {
                let voucher =
                    x402_protocol::scheme::batch::sign_voucher(payer, &address, held.confirmed);
                x402_protocol::scheme::batch::build_refund(&config, voucher)
            }
        };
        let mut paid = offer.to_wire();
        paid.resource.url = held.resource.clone();
        let (name, value) = PaymentMessage {
            version: Version::V2,
            offer: paid,
            payload: serde_json::to_value(payload).expect("plain fields serialize"),
        }
        .header();
        let response = self
            .http
            .get(&held.resource)
            .header(name, value)
            .send()
            .await?;
        let status = response.status();
        if !status.is_success() {
            let challenge = Challenge::read(response).await.ok();
            let payer = payer.pubkey();
            let corrected = challenge.as_ref().and_then(|c| {
                let charged = corrected(c, channel, &payer, held.confirmed)?;
                (charged != held.confirmed && charged <= held.signed).then_some(charged)
            });
            if let Some(charged) = corrected {
                self.book
                    .update(channel, |held| held.confirmed = charged)
                    .map_err(|e| ClientError::Book(e.to_string()))?;
                return Ok(None);
            }
            let reason = challenge
                .and_then(|c| c.error)
                .unwrap_or_else(|| status.to_string());
            return Err(ClientError::MalformedChallenge(format!(
                "the seller did not close channel {channel}: {reason}"
            )));
        }
        #[derive(serde::Deserialize)]
        struct Closed {
            refunded: String,
        }
        let closed: Closed = response.json().await?;
        self.book
            .update(channel, |held| held.closed = true)
            .map_err(|e| ClientError::Book(e.to_string()))?;
        closed
            .refunded
            .parse()
            .map(Some)
            .map_err(|_| ClientError::MalformedChallenge("the refunded amount".into()))
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
        // Only a `batch-settlement` payment escrows a deposit.
        let max_deposit = match &offer.terms {
            crate::offer::Terms::Batch(_) => {
                let trusted = self.trusted_decimals(&offer.mint()).await;
                match self.policy.deposit_limit(&offer, trusted) {
                    Ok(limit) => limit,
                    Err(refusal) => {
                        self.budget.release(offer.amount());
                        return Err(ClientError::Policy(refusal));
                    }
                }
            }
            _ => None,
        };
        let accepted = offer.to_wire();
        let resource = challenge.request.as_ref().map(|(_, url)| url.to_string());
        let context = PayContext {
            payer,
            ledger: self.ledger.as_deref(),
            request: challenge.request.as_ref(),
            accepted: &accepted,
            book: &self.book,
            resource: resource.as_deref(),
            max_deposit,
            deposit: self.deposit,
            mints: &self.mints,
        };
        let Signed {
            payload,
            signature,
            unsettled,
            batch,
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
            batch,
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
        if let Some(given) = self.mints.get(mint) {
            return Some(given.decimals);
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
                    if let Some(step) = &payment.batch {
                        self.resync(step, challenge.as_ref())?;
                    }
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
                    if let (Some(step), Some(settled)) = (&payment.batch, &settlement) {
                        self.confirm(step, settled)?;
                    }
                    return Ok(Paid {
                        response,
                        settlement,
                    });
                }
            }
        }
        unreachable!("the last attempt returns")
    }

    /// Records what the seller confirmed of a `batch-settlement` payment: its cumulative
    /// amount, never above what was signed, and the deposit once it landed.
    fn confirm(&self, step: &BatchStep, settlement: &Settlement) -> Result<(), ClientError> {
        let held = self.book.get(&step.channel);
        let server = |h: &&HeldChannel| {
            h.config.voucher_signer.as_deref() == Some(x402_protocol::scheme::batch::SERVER_SIGNER)
        };
        let charged = match held.as_ref().filter(server) {
            // The server mode: only the operator's voucher, checked, says what it cost.
            // One that is missing, not the operator's, or beyond what the request could
            // cost is not adopted: the book keeps what was confirmed before.
            Some(held) => match operator_receipt(held, step, settlement) {
                Some(total) => total,
                None => return Ok(()),
            },
            None => settlement.batch_charged.unwrap_or(step.cumulative),
        };
        self.book
            .update(&step.channel, |held| {
                held.confirmed = charged.min(held.signed).max(held.confirmed);
                held.deposit = held.deposit.max(step.deposit);
            })
            .map_err(|e| ClientError::Book(e.to_string()))?;
        Ok(())
    }

    /// Takes a seller's refusal of a voucher into the book: a corrective state the
    /// buyer's own key signed is adopted (never above what it signed); a channel the
    /// seller closed or does not know is closed, so that the next payment opens another.
    fn resync(&self, step: &BatchStep, challenge: Option<&Challenge>) -> Result<(), ClientError> {
        let Some(challenge) = challenge else {
            return Ok(());
        };
        let error = challenge.error.as_deref().unwrap_or_default();
        let keep = |change: &dyn Fn(&mut HeldChannel)| {
            self.book
                .update(&step.channel, change)
                .map(|_| ())
                .map_err(|e| ClientError::Book(e.to_string()))
        };
        let confirmed = self.book.get(&step.channel).map(|held| held.confirmed);
        match error {
            // Closed for good: the next payment opens another channel.
            "invalid_batch_settlement_svm_channel_closing" => keep(&|held| held.closed = true),
            "invalid_batch_settlement_svm_cumulative_amount_mismatch" => {
                let payer = match self.payer.as_ref() {
                    Some(payer) => payer.pubkey(),
                    None => return Ok(()),
                };
                match corrected(challenge, &step.channel, &payer, confirmed.unwrap_or(0)) {
                    Some(charged) => keep(&|held| {
                        if charged <= held.signed {
                            held.confirmed = charged;
                        }
                    }),
                    None => Ok(()),
                }
            }
            // Any other refusal of a channel's first payment: its open did not land.
            _ if confirmed == Some(0) => keep(&|held| {
                if held.deposit == 0 {
                    held.closed = true;
                }
            }),
            _ => Ok(()),
        }
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

/// A request sent again: its body must be replayable.
fn clone_request(
    request: &reqwest::RequestBuilder,
) -> Result<reqwest::RequestBuilder, ClientError> {
    request.try_clone().ok_or(ClientError::BodyNotReplayable)
}

/// The challenge a held channel answers for its resource: its offer, as the seller last
/// made it.
/// The channel's new total by the operator's voucher in a server-mode answer, if it is
/// the operator's (the channel's payer authorizer) for this channel, never expiring, and
/// within what this request could cost: at least what was confirmed, at most `step`'s
/// bound (what was confirmed when it was sent, plus its price).
fn operator_receipt(held: &HeldChannel, step: &BatchStep, settlement: &Settlement) -> Option<u64> {
    let voucher = settlement.batch_voucher.as_ref()?.read().ok()?;
    let operator: Pubkey = held.config.payer_authorizer.parse().ok()?;
    let ours = voucher.channel.to_string() == step.channel
        && voucher.expires_at == 0
        && voucher.signed_by(&operator)
        && voucher.cumulative >= held.confirmed
        && voucher.cumulative <= step.cumulative;
    ours.then_some(voucher.cumulative)
}

fn held_challenge(held: &HeldChannel) -> Challenge {
    let url = reqwest::Url::parse(&held.resource).ok();
    let mut challenge = Challenge::from_v2(v2::PaymentRequired {
        x402_version: 2,
        error: None,
        resource: v2::ResourceInfo {
            url: held.resource.clone(),
            description: None,
            mime_type: None,
        },
        accepts: vec![held.offer.clone()],
        extensions: None,
    });
    challenge.request = url.map(|url| (reqwest::Method::GET, url));
    challenge
}

/// The cumulative amount a corrective challenge states for `channel`: one at most what
/// the seller confirmed already (`confirmed`) as it is (lower costs the buyer nothing:
/// the seller can claim no more than the buyer signed); one above only with the buyer's
/// own voucher for it (signed by `payer`, the payer authorizer), and within it.
fn corrected(challenge: &Challenge, channel: &str, payer: &Pubkey, confirmed: u64) -> Option<u64> {
    let extra = challenge
        .v2
        .as_ref()?
        .accepts
        .iter()
        .find(|a| a.scheme == x402_protocol::BATCH_SETTLEMENT)?
        .extra
        .as_ref()?;
    let state = extra.get("channelState")?;
    if state.get("channelId")?.as_str()? != channel {
        return None;
    }
    let charged: u64 = state
        .get("chargedCumulativeAmount")?
        .as_str()?
        .parse()
        .ok()?;
    if charged <= confirmed {
        return Some(charged);
    }
    let voucher = extra.get("voucherState")?;
    let signed = x402_protocol::scheme::batch::BatchVoucher {
        channel_id: channel.to_string(),
        max_claimable_amount: voucher.get("signedMaxClaimable")?.as_str()?.to_string(),
        expires_at: voucher.get("expiresAt")?.as_i64()?,
        signature: voucher.get("signature")?.as_str()?.to_string(),
    }
    .read()
    .ok()?;
    (signed.signed_by(payer) && charged <= signed.cumulative).then_some(charged)
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

#[cfg(test)]
mod tests {
    use anchor_lang::prelude::Pubkey;
    use solana_keypair::Keypair;
    use x402_protocol::scheme::batch::sign_voucher;

    use super::*;

    /// A corrective 402 for `channel` stating `charged`, with `voucher` as its proof.
    fn corrective(channel: &str, charged: u64, voucher: Option<serde_json::Value>) -> Challenge {
        let mut extra = serde_json::json!({
            "channelState": {
                "channelId": channel, "balance": "100000", "totalClaimed": "0",
                "withdrawRequestedAt": 0, "chargedCumulativeAmount": charged.to_string(),
            }
        });
        if let Some(voucher) = voucher {
            extra["voucherState"] = voucher;
        }
        let accepted = serde_json::json!({
            "scheme": "batch-settlement", "network": "solana:x", "amount": "1000",
            "asset": Pubkey::new_unique().to_string(), "payTo": Pubkey::new_unique().to_string(),
            "maxTimeoutSeconds": 60, "extra": extra,
        });
        Challenge::from_v2(v2::PaymentRequired {
            x402_version: 2,
            error: Some("invalid_batch_settlement_svm_cumulative_amount_mismatch".into()),
            resource: v2::ResourceInfo {
                url: "https://seller/search".into(),
                description: None,
                mime_type: None,
            },
            accepts: vec![serde_json::from_value(accepted).unwrap()],
            extensions: None,
        })
    }

    fn proof(signer: &Keypair, channel: &Pubkey, amount: u64) -> serde_json::Value {
        let voucher = sign_voucher(signer, channel, amount);
        serde_json::json!({
            "signedMaxClaimable": voucher.max_claimable_amount,
            "expiresAt": 0,
            "signature": voucher.signature,
        })
    }

    #[test]
    fn a_correction_above_what_was_confirmed_needs_the_buyers_own_voucher() {
        let buyer = Keypair::new();
        let channel = Pubkey::new_unique();
        let id = channel.to_string();
        let own = corrective(&id, 5_000, Some(proof(&buyer, &channel, 5_000)));
        assert_eq!(corrected(&own, &id, &buyer.pubkey(), 3_000), Some(5_000));
        let forged = corrective(&id, 5_000, Some(proof(&Keypair::new(), &channel, 5_000)));
        assert_eq!(
            corrected(&forged, &id, &buyer.pubkey(), 3_000),
            None,
            "signed by another key"
        );
        let above = corrective(&id, 6_000, Some(proof(&buyer, &channel, 5_000)));
        assert_eq!(
            corrected(&above, &id, &buyer.pubkey(), 3_000),
            None,
            "a charge above the voucher shown"
        );
        let bare = corrective(&id, 5_000, None);
        assert_eq!(corrected(&bare, &id, &buyer.pubkey(), 3_000), None);
        assert_eq!(
            corrected(&bare, &id, &buyer.pubkey(), 6_000),
            Some(5_000),
            "lower than confirmed costs the buyer nothing"
        );
        let elsewhere = corrective(&Pubkey::new_unique().to_string(), 5_000, None);
        assert_eq!(corrected(&elsewhere, &id, &buyer.pubkey(), 9_000), None);
    }

    #[test]
    fn only_the_operators_voucher_within_what_the_request_could_cost_moves_the_book() {
        let operator = Keypair::new();
        let channel = Pubkey::new_unique();
        let held = HeldChannel {
            channel: channel.to_string(),
            resource: "https://seller/search".into(),
            offer: serde_json::from_value(serde_json::json!({
                "scheme": "batch-settlement", "network": "solana:x", "amount": "1000",
                "asset": Pubkey::new_unique().to_string(),
                "payTo": Pubkey::new_unique().to_string(), "maxTimeoutSeconds": 60
            }))
            .unwrap(),
            config: x402_protocol::scheme::batch::ChannelConfig {
                payer: Pubkey::new_unique().to_string(),
                payer_authorizer: operator.pubkey().to_string(),
                receiver: Pubkey::new_unique().to_string(),
                receiver_authorizer: Pubkey::new_unique().to_string(),
                token: Pubkey::new_unique().to_string(),
                withdraw_delay: 3_600,
                salt: "1".into(),
                open_slot: 1,
                voucher_signer: Some("server".into()),
            },
            fee_payer: Pubkey::new_unique().to_string(),
            deposit: 10_000,
            confirmed: 2_000,
            signed: 3_000,
            closed: false,
        };
        // The request sent at 2,000 confirmed, for up to 1,000 more.
        let step = BatchStep {
            channel: channel.to_string(),
            cumulative: 3_000,
            deposit: 10_000,
        };
        let receipt = |voucher| Settlement {
            scheme: "batch-settlement".into(),
            reference: None,
            receipt: None,
            transaction: String::new(),
            amount: 0,
            maximum: None,
            shown_amount: String::new(),
            network: "solana:x".into(),
            payer: String::new(),
            batch_charged: Some(9_000),
            batch_voucher: voucher,
        };
        let by = |signer: &Keypair, amount| Some(sign_voucher(signer, &channel, amount));
        assert_eq!(
            operator_receipt(&held, &step, &receipt(by(&operator, 2_400))),
            Some(2_400)
        );
        assert_eq!(
            operator_receipt(&held, &step, &receipt(by(&operator, 2_000))),
            Some(2_000),
            "free"
        );
        assert_eq!(
            operator_receipt(&held, &step, &receipt(by(&operator, 3_001))),
            None,
            "above the price"
        );
        assert_eq!(
            operator_receipt(&held, &step, &receipt(by(&operator, 1_999))),
            None,
            "below what was confirmed"
        );
        assert_eq!(
            operator_receipt(&held, &step, &receipt(by(&Keypair::new(), 2_400))),
            None,
            "another key"
        );
        let elsewhere = Some(sign_voucher(&operator, &Pubkey::new_unique(), 2_400));
        assert_eq!(
            operator_receipt(&held, &step, &receipt(elsewhere)),
            None,
            "another channel"
        );
        assert_eq!(
            operator_receipt(&held, &step, &receipt(None)),
            None,
            "the seller's word alone"
        );
    }
}
