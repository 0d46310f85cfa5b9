//! A 402 answer, read: the offers this client can pay, in its order of preference.

use x402_protocol::wire::{self, decode_header, v1, v2};

use crate::offer::{describe, Offer, Unreadable};

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
    pub async fn read(response: reqwest::Response) -> Result<Self, Unreadable> {
        let malformed = Unreadable;
        let header = response
            .headers()
            .get(v2::PAYMENT_REQUIRED)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if let Some(header) = header {
            let required: v2::PaymentRequired =
                decode_header(&header).map_err(|e| malformed(e.to_string()))?;
            return Ok(Challenge::from_v2(required));
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

    /// A v2 challenge, read.
    pub(crate) fn from_v2(required: v2::PaymentRequired) -> Self {
        let offers = required
            .accepts
            .iter()
            .map(|offer| wire::Offer::from_v2(offer, &required.resource));
        let mut challenge = Challenge::of(offers.collect());
        challenge.error = required.error.clone();
        challenge.v2 = Some(required);
        challenge
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
    pub(crate) fn prefer(&mut self, preferred: &[String]) {
        let rank = |offer: &Offer| {
            preferred
                .iter()
                .position(|scheme| scheme == offer.scheme())
                .unwrap_or(preferred.len())
        };
        self.offers.sort_by_key(rank);
    }
}
