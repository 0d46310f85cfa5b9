//! Pays one request to a verifier the sponsored way and prints the answer:
//! `cargo run -p x402-verifier --example pay -- URL KEYPAIR.json`.
//!
//! A minimal buyer for trying the verifier; the `x402` client is the real one.

use std::path::Path;

use solana_signer::Signer;
use x402_protocol::keypair::read_keypair_file;
use x402_protocol::scheme::{encode_transaction, ReceiptOffer, SCHEME};
use x402_protocol::wire::{decode_header, encode_header, v1};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(url), Some(keypair)) = (args.next(), args.next()) else {
        return Err("usage: pay URL KEYPAIR.json".into());
    };
    let payer = read_keypair_file(Path::new(&keypair))?;
    let http = reqwest::Client::new();

    let challenge = http.get(&url).send().await?;
    if challenge.status() != reqwest::StatusCode::PAYMENT_REQUIRED {
        return Err(format!("expected 402, got {}", challenge.status()).into());
    }
    let body: v1::PaymentRequired = challenge.json().await?;
    let offer = body
        .accepts
        .iter()
        .find(|o| o.scheme == SCHEME)
        .ok_or("no receipt offer")?;
    let offer = ReceiptOffer::from_v1(offer)?;
    let (Some(fee_payer), Some(blockhash)) = (offer.fee_payer, offer.recent_blockhash) else {
        return Err("the verifier does not sponsor payments".into());
    };
    eprintln!(
        "paying {} base units for reference {}",
        offer.requirement.amount, offer.requirement.reference
    );

    let mut tx = offer
        .requirement
        .pay_transaction(&payer.pubkey(), &fee_payer, blockhash);
    tx.try_partial_sign(&[&payer], blockhash)?;
    let payment = v1::PaymentPayload {
        x402_version: v1::VERSION,
        scheme: SCHEME.into(),
        network: offer.network.clone(),
        payload: serde_json::json!({ "transaction": encode_transaction(&tx) }),
    };
    let paid = http
        .get(&url)
        .header(v1::X_PAYMENT, encode_header(&payment))
        .send()
        .await?;
    let status = paid.status();
    let settlement = paid
        .headers()
        .get(v1::X_PAYMENT_RESPONSE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    println!("{}", paid.text().await?);
    if let Some(settlement) = settlement {
        let settlement: v1::SettlementResponse = decode_header(&settlement)?;
        eprintln!(
            "settled: transaction {} receipt {}",
            settlement.transaction, settlement.extra["receipt"]
        );
    }
    let base = url.split('/').take(3).collect::<Vec<_>>().join("/");
    eprintln!(
        "{status}; the receipt: curl {base}/receipts/{}",
        offer.requirement.reference
    );
    Ok(())
}
