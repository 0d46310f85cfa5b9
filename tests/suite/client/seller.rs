//! A seller of the test's own making over a real socket: what a hostile or failing server
//! says, and what the buyer presented to it.

use std::sync::{Arc, Mutex};

use anchor_lang::prelude::Pubkey;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use solana_keypair::Keypair;
use solana_signer::Signer;
use x402_protocol::wire::encode_header;
use x402_protocol::{check_proof, ProofTarget, Reference};

/// USDC on mainnet and on devnet: mints whose decimals and cluster the client knows.
pub const MAINNET_USDC: &str = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v";
pub const DEVNET_USDC: &str = "4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU";
pub const DEVNET: &str = "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1";

/// How the seller answers one paid request.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
    pub headers: Vec<(&'static str, String)>,
}

impl Answer {
    pub fn status(status: u16, body: &str) -> Self {
        Answer {
            status,
            body: body.into(),
            headers: Vec::new(),
        }
    }

    /// A 402 after the payment, refusing it for `reason` (and offering nothing, so that
    /// the buyer does not take it for its payment still landing).
    pub fn refused(reason: &str) -> Self {
        let header = encode_header(&serde_json::json!({
            "x402Version": 2,
            "error": reason,
            "resource": {"url": "http://seller.example/paid"},
            "accepts": [],
        }));
        Answer {
            status: 402,
            body: "{}".into(),
            headers: vec![("PAYMENT-REQUIRED", header)],
        }
    }
}

/// What one paid request presented.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Presented {
    /// The payment header's value (`PAYMENT-SIGNATURE` or `X-PAYMENT`).
    pub payment: String,
    /// `X-Payment-Proof`, when sent.
    pub proof: Option<String>,
}

pub struct Seller {
    /// `http://127.0.0.1:<port>/paid`.
    pub url: String,
    /// `127.0.0.1:<port>`: the host a proof names.
    pub host: String,
    /// Requests without a payment (each answered with the 402).
    pub challenges: Arc<Mutex<usize>>,
    /// Paid requests, in order.
    pub presented: Arc<Mutex<Vec<Presented>>>,
}

impl Seller {
    /// Serves `GET /paid`: without a payment, a v2 402 whose `accepts` are `offers` and
    /// whose resource has `description`; each paid request gets the next of `answers`
    /// (a 200 "paid" once they run out).
    pub async fn start(
        offers: Vec<serde_json::Value>,
        description: &str,
        answers: Vec<Answer>,
    ) -> Self {
        let challenge = encode_header(&serde_json::json!({
            "x402Version": 2,
            "resource": {"url": "http://seller.example/paid", "description": description},
            "accepts": offers,
        }));
        let challenges = Arc::new(Mutex::new(0));
        let presented = Arc::new(Mutex::new(Vec::new()));
        let answers = Arc::new(Mutex::new(std::collections::VecDeque::from(answers)));
        let (count, seen) = (challenges.clone(), presented.clone());
        let app = axum::Router::new().route(
            "/paid",
            axum::routing::get(move |headers: HeaderMap| {
                let (challenge, count, seen, answers) = (
                    challenge.clone(),
                    count.clone(),
                    seen.clone(),
                    answers.clone(),
                );
                async move {
                    let text =
                        |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_string());
                    let Some(payment) = text("payment-signature").or_else(|| text("x-payment"))
                    else {
                        *count.lock().unwrap() += 1;
                        return (
                            StatusCode::PAYMENT_REQUIRED,
                            [("PAYMENT-REQUIRED", challenge)],
                            axum::Json(serde_json::json!({})),
                        )
                            .into_response();
                    };
                    seen.lock().unwrap().push(Presented {
                        payment,
                        proof: text("x-payment-proof"),
                    });
                    let answer = answers
                        .lock()
                        .unwrap()
                        .pop_front()
                        .unwrap_or_else(|| Answer::status(200, "paid"));
                    let mut response =
                        (StatusCode::from_u16(answer.status).unwrap(), answer.body).into_response();
                    for (name, value) in answer.headers {
                        response.headers_mut().insert(name, value.parse().unwrap());
                    }
                    response
                }
            }),
        );
        let base = x402_testkit::serve(app).await;
        let host = base.trim_start_matches("http://").to_string();
        Seller {
            url: format!("http://{host}/paid"),
            host,
            challenges,
            presented,
        }
    }

    pub fn presented(&self) -> Vec<Presented> {
        self.presented.lock().unwrap().clone()
    }

    /// Whether `proof` (`<reference>:<proof>`) is `payer`'s for `reference` at
    /// `GET /paid` on this seller.
    pub fn proves(&self, proof: &str, payer: &Keypair, reference: &Reference) -> bool {
        let Some((shown, signature)) = proof.split_once(':') else {
            return false;
        };
        let target = ProofTarget {
            method: "GET",
            path: "/paid",
            host: &self.host,
        };
        shown == reference.to_string()
            && check_proof(&payer.pubkey(), signature, reference, &target)
    }
}

/// A reference in the form our verifier issues (it fits a 32-character memo).
pub fn reference(seed: u8) -> Reference {
    let mut bytes = [seed; 32];
    bytes[..4].fill(0);
    bytes[12..16].fill(0);
    Reference(bytes)
}

/// An `exact` offer of `amount` base units of `asset` on `network`, whose Memo is
/// `reference`'s, for a fee payer and a payee of nobody's.
pub fn exact_offer(
    network: &str,
    asset: &str,
    amount: u64,
    reference: &Reference,
) -> serde_json::Value {
    serde_json::json!({
        "scheme": "exact", "network": network, "amount": amount.to_string(),
        "asset": asset, "payTo": Pubkey::new_unique().to_string(), "maxTimeoutSeconds": 60,
        "extra": {
            "feePayer": Pubkey::new_unique().to_string(),
            "memo": reference.memo(),
            "recentBlockhash": "11111111111111111111111111111111",
        }
    })
}
