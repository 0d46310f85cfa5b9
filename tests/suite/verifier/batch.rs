//! The `batch-settlement` scheme at the gate, on the embedded ledger with the
//! payment-channels program: a buyer deposits once, then pays each request with a
//! voucher that the gate checks and commits with no ledger call; claims settle the
//! latest vouchers in few transactions; a refund closes the channel and returns the
//! rest. Every guard against a hostile buyer has its test here.

use solana_keypair::Keypair;
use solana_signer::Signer;
use x402_protocol::scheme::batch::{
    build_open, build_refund, build_top_up, build_voucher, channel_of, sign_voucher, BatchOffer,
    BatchPayload, Channel,
};
use x402_protocol::scheme::channel::{random_salt, ChannelAccount, ChannelStatus, Opening};
use x402_protocol::wire::{decode_header, encode_header, v2, Offer};

use x402_protocol::Ledger;
use x402_verifier::scheme::batch::{claim_channels, tend_batch_channels};
use x402_verifier::store::BatchStatus;

use super::support::*;

const ROUTE: &str = "/batch";

/// A buyer with a channel at the gate: its key, the offer it paid, and the channel.
struct Buyer {
    keypair: Keypair,
    offer: BatchOffer,
    accepted: v2::PaymentRequirements,
    channel: Channel,
}

impl Buyer {
    fn address(&self) -> anchor_lang::prelude::Pubkey {
        self.channel.address(&self.offer.terms.fee_payer)
    }

    /// A voucher payment for `cumulative` in all.
    fn voucher(&self, cumulative: u64) -> (&'static str, String) {
        let payload = build_voucher(&self.keypair, &self.offer.terms, &self.channel, cumulative);
        header(&self.accepted, &payload)
    }
}

/// The `batch-settlement` offer of a 402 for `GET path`.
async fn offer(h: &Harness, path: &str) -> (BatchOffer, v2::PaymentRequirements) {
    let response = h.http.get(h.url(path)).send().await.unwrap();
    assert_eq!(response.status(), 402);
    let text = response.headers()[v2::PAYMENT_REQUIRED].to_str().unwrap();
    let required: v2::PaymentRequired = decode_header(text).unwrap();
    let accepted = required
        .accepts
        .iter()
        .find(|a| a.scheme == "batch-settlement")
        .expect("a batch-settlement offer")
        .clone();
    let offer = BatchOffer::from_offer(&Offer::from_v2(&accepted, &required.resource)).unwrap();
    (offer, accepted)
}

fn header(accepted: &v2::PaymentRequirements, payload: &BatchPayload) -> (&'static str, String) {
    (
        v2::PAYMENT_SIGNATURE,
        encode_header(&v2_payment(accepted, payload)),
    )
}

async fn get(h: &Harness, payment: &(&'static str, String)) -> reqwest::Response {
    h.http
        .get(h.url(ROUTE))
        .header(payment.0, &payment.1)
        .send()
        .await
        .unwrap()
}

fn settlement(response: &reqwest::Response) -> v2::SettlementResponse {
    let text = response.headers()[v2::PAYMENT_RESPONSE].to_str().unwrap();
    decode_header(text).unwrap()
}

/// The refusal's code and its challenge's batch offer `extra`.
async fn refusal(
    response: reqwest::Response,
) -> (String, serde_json::Map<String, serde_json::Value>) {
    assert_eq!(response.status(), 402);
    let text = response.headers()[v2::PAYMENT_REQUIRED].to_str().unwrap();
    let required: v2::PaymentRequired = decode_header(text).unwrap();
    let extra = required
        .accepts
        .iter()
        .find(|a| a.scheme == "batch-settlement")
        .and_then(|a| a.extra.clone())
        .unwrap_or_default();
    (required.error.unwrap_or_default(), extra)
}

/// Opens a channel of `deposit` for a new buyer with `tokens`, paying the first request.
async fn open(h: &Harness, tokens: u64, deposit: u64) -> (Buyer, reqwest::Response) {
    let keypair = h.new_payer(tokens).await;
    let (offer, accepted) = offer(h, ROUTE).await;
    let opening = Opening {
        payer: keypair.pubkey(),
        salt: random_salt(),
        open_slot: offer.recent_slot.expect("a recent slot"),
    };
    let channel = channel_of(&keypair, &offer.terms, &opening);
    let blockhash = offer.recent_blockhash.expect("a blockhash");
    let payload = build_open(&keypair, &offer.terms, &channel, deposit, PRICE, blockhash);
    let response = get(h, &header(&accepted, &payload)).await;
    let buyer = Buyer {
        keypair,
        offer,
        accepted,
        channel,
    };
    (buyer, response)
}

/// A new buyer with ten requests' worth, the route's offer, and the payment that would
/// open its channel with all of it and pay the first request.
async fn unopened(
    h: &Harness,
) -> (
    Keypair,
    BatchOffer,
    v2::PaymentRequirements,
    Channel,
    BatchPayload,
) {
    let keypair = h.new_payer(10 * PRICE).await;
    let (offer, accepted) = offer(h, ROUTE).await;
    let opening = Opening {
        payer: keypair.pubkey(),
        salt: random_salt(),
        open_slot: offer.recent_slot.unwrap(),
    };
    let channel = channel_of(&keypair, &offer.terms, &opening);
    let payload = build_open(
        &keypair,
        &offer.terms,
        &channel,
        10 * PRICE,
        PRICE,
        offer.recent_blockhash.unwrap(),
    );
    (keypair, offer, accepted, channel, payload)
}

/// Lands a deposit's `open` past the verifier, co-signed with its fee payer: as the
/// cluster lands one whose submission went unanswered.
async fn land_by_hand(h: &Harness, payload: &BatchPayload) {
    let BatchPayload::Deposit { deposit, .. } = payload else {
        unreachable!("a deposit")
    };
    let mut open: solana_transaction::versioned::VersionedTransaction =
        x402_protocol::scheme::decode_transaction(&deposit.transaction).unwrap();
    open.signatures[0] = h.market.fee_payer.sign_message(&open.message.serialize());
    h.market.ledger.submit(&open).await.expect("the open lands");
}

async fn channel_account(h: &Harness, buyer: &Buyer) -> Option<ChannelAccount> {
    let account = h.market.ledger.account(&buyer.address()).await.unwrap()?;
    ChannelAccount::read(&account.data)
}

#[tokio::test]
async fn one_deposit_then_vouchers_with_no_ledger_call_then_a_claim_and_a_refund() {
    let h = Harness::start().await;
    let (offer, _) = offer(&h, ROUTE).await;
    assert_eq!(offer.terms.amount, PRICE);
    assert_eq!(offer.terms.fee_payer, h.market.fee_payer.pubkey());
    assert_eq!(offer.terms.min_deposit, Some(100 * PRICE));
    assert!(
        !offers_of(&h, "/api/data")
            .await
            .contains(&"batch-settlement".to_string()),
        "a route offers batch-settlement only when it names it"
    );
    let deposit = 10 * PRICE;
    let merchant_before = h.token_balance(&h.market.merchant).await;
    let (buyer, response) = open(&h, deposit, deposit).await;
    assert_eq!(response.status(), 200);
    let opened = settlement(&response);
    assert_eq!(
        opened.amount.as_deref(),
        Some("100000"),
        "the deposit moved"
    );
    assert!(!opened.transaction.is_empty(), "the open's signature");
    assert_eq!(opened.extra["chargedAmount"], "10000");
    assert_eq!(
        opened.extra["channelState"]["chargedCumulativeAmount"],
        "10000"
    );
    assert_eq!(response.text().await.unwrap(), "served /batch body=");
    let on_chain = channel_account(&h, &buyer).await.expect("the channel");
    assert_eq!(
        (on_chain.status, on_chain.deposit, on_chain.settled),
        (ChannelStatus::Open, deposit, 0)
    );
    assert_eq!(h.token_balance(&buyer.keypair.pubkey()).await, 0);

    let calls = h.ledger.calls();
    for n in 2..=6 {
        let response = get(&h, &buyer.voucher(n * PRICE)).await;
        assert_eq!(response.status(), 200, "voucher {n}");
        let paid = settlement(&response);
        assert_eq!(paid.transaction, "", "nothing on chain");
        assert_eq!(paid.amount.as_deref(), Some(""));
        assert_eq!(paid.extra["chargedAmount"], "10000");
        assert_eq!(
            paid.extra["commitmentId"],
            format!("{}:{}", buyer.address(), n * PRICE)
        );
    }
    assert_eq!(h.ledger.calls(), calls, "no ledger call for a voucher");
    assert_eq!(h.api.hits(), 6);

    let (claimed, transactions) = claim_channels(&h.gate).await.unwrap();
    assert_eq!((claimed, transactions), (1, 1));
    let on_chain = channel_account(&h, &buyer).await.unwrap();
    assert_eq!(
        (on_chain.settled, on_chain.payout_watermark),
        (6 * PRICE, 6 * PRICE)
    );
    assert_eq!(
        h.token_balance(&h.market.merchant).await,
        merchant_before + 6 * PRICE,
        "the seller is paid exactly what the vouchers signed"
    );
    assert_eq!(
        claim_channels(&h.gate).await.unwrap(),
        (0, 0),
        "nothing left to claim"
    );

    // A seventh request after the claim, then the refund: settled, the rest back.
    assert_eq!(get(&h, &buyer.voucher(7 * PRICE)).await.status(), 200);
    let last = sign_voucher(&buyer.keypair, &buyer.address(), 7 * PRICE);
    let refund = header(&buyer.accepted, &build_refund(&buyer.channel, last));
    let hits = h.api.hits();
    let response = get(&h, &refund).await;
    assert_eq!(response.status(), 200);
    assert_eq!(h.api.hits(), hits, "a refund serves nothing");
    let closed = settlement(&response);
    assert_eq!(
        closed.amount.as_deref(),
        Some("30000"),
        "the unspent deposit"
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["refunded"], "30000");
    assert_eq!(h.token_balance(&buyer.keypair.pubkey()).await, 3 * PRICE);
    assert_eq!(
        h.token_balance(&h.market.merchant).await,
        merchant_before + 7 * PRICE
    );
    let account = channel_account(&h, &buyer).await;
    assert!(
        account.is_none_or(|a| a.status == ChannelStatus::Distributed),
        "closed: {account:?}"
    );
    let (code, _) = refusal(get(&h, &buyer.voucher(8 * PRICE)).await).await;
    assert_eq!(code, "invalid_batch_settlement_svm_channel_closing");
}

#[tokio::test]
async fn a_voucher_is_accepted_once_and_never_lowered_reordered_or_raised_past_the_deposit() {
    let h = Harness::start().await;
    let (buyer, response) = open(&h, 3 * PRICE, 3 * PRICE).await;
    assert_eq!(response.status(), 200);
    let second = buyer.voucher(2 * PRICE);
    assert_eq!(get(&h, &second).await.status(), 200);
    let hits = h.api.hits();

    // Replayed: the same voucher again. The refusal carries the seller's state and the
    // buyer's own voucher for it.
    let (code, extra) = refusal(get(&h, &second).await).await;
    assert_eq!(
        code,
        "invalid_batch_settlement_svm_cumulative_amount_mismatch"
    );
    assert_eq!(
        extra["channelState"]["chargedCumulativeAmount"],
        (2 * PRICE).to_string()
    );
    let state = &extra["voucherState"];
    assert_eq!(state["signedMaxClaimable"], (2 * PRICE).to_string());
    let proof = x402_protocol::scheme::batch::BatchVoucher {
        channel_id: buyer.address().to_string(),
        max_claimable_amount: state["signedMaxClaimable"].as_str().unwrap().into(),
        expires_at: 0,
        signature: state["signature"].as_str().unwrap().into(),
    };
    assert!(
        proof.read().unwrap().signed_by(&buyer.keypair.pubkey()),
        "the correction is the buyer's own voucher"
    );
    // Lowered, reordered (two steps ahead), and raised past the deposit.
    for cumulative in [PRICE, 4 * PRICE] {
        let (code, _) = refusal(get(&h, &buyer.voucher(cumulative)).await).await;
        assert_eq!(
            code, "invalid_batch_settlement_svm_cumulative_amount_mismatch",
            "{cumulative}"
        );
    }
    assert_eq!(get(&h, &buyer.voucher(3 * PRICE)).await.status(), 200);
    let (code, _) = refusal(get(&h, &buyer.voucher(4 * PRICE)).await).await;
    assert_eq!(
        code,
        "invalid_batch_settlement_svm_cumulative_exceeds_deposit"
    );
    assert_eq!(
        h.api.hits(),
        hits + 1,
        "only the one right voucher was served"
    );
}

#[tokio::test]
async fn concurrent_copies_of_one_voucher_at_two_replicas_are_served_once() {
    let h = Harness::start().await;
    let (buyer, response) = open(&h, 10 * PRICE, 10 * PRICE).await;
    assert_eq!(response.status(), 200);
    let replica = h.replica().await;
    let voucher = buyer.voucher(2 * PRICE);
    let requests = (0..8).map(|i| {
        let base = if i % 2 == 0 {
            h.url.clone()
        } else {
            replica.clone()
        };
        let request = h
            .http
            .get(format!("{base}{ROUTE}"))
            .header(voucher.0, &voucher.1);
        async move { request.send().await.unwrap().status() }
    });
    let statuses = futures_util::future::join_all(requests).await;
    let served = statuses.iter().filter(|s| s.as_u16() == 200).count();
    assert_eq!(served, 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| [200, 402].contains(&s.as_u16())));
    assert_eq!(h.api.hits(), 2);
}

#[tokio::test]
async fn a_voucher_for_another_channel_or_by_another_key_or_with_an_expiry_is_refused() {
    let h = Harness::start().await;
    let (buyer, response) = open(&h, 10 * PRICE, 10 * PRICE).await;
    assert_eq!(response.status(), 200);
    let h = &h;
    let refuse = |payload: BatchPayload| {
        let header = header(&buyer.accepted, &payload);
        async move { refusal(get(h, &header).await).await.0 }
    };
    let config = buyer.channel.config();
    let forged = sign_voucher(&Keypair::new(), &buyer.address(), 2 * PRICE);
    assert_eq!(
        refuse(BatchPayload::Voucher {
            channel_config: config.clone(),
            voucher: forged
        })
        .await,
        "invalid_batch_settlement_svm_voucher_signature"
    );
    let elsewhere = sign_voucher(&buyer.keypair, &Keypair::new().pubkey(), 2 * PRICE);
    assert_eq!(
        refuse(BatchPayload::Voucher {
            channel_config: config.clone(),
            voucher: elsewhere
        })
        .await,
        "invalid_batch_settlement_svm_channel_id_mismatch"
    );
    let mut expiring = sign_voucher(&buyer.keypair, &buyer.address(), 2 * PRICE);
    expiring.expires_at = x402_protocol::unix_now() + 600;
    assert_eq!(
        refuse(BatchPayload::Voucher {
            channel_config: config.clone(),
            voucher: expiring
        })
        .await,
        "invalid_batch_settlement_svm_voucher_expiry"
    );
    // A configuration naming the fee payer as the voucher signer: it could pay itself.
    let mut fee_payer_signs = config.clone();
    fee_payer_signs.payer_authorizer = h.market.fee_payer.pubkey().to_string();
    assert_eq!(
        refuse(BatchPayload::Voucher {
            channel_config: fee_payer_signs,
            voucher: sign_voucher(&buyer.keypair, &buyer.address(), 2 * PRICE)
        })
        .await,
        "invalid_batch_settlement_svm_fee_payer_mismatch"
    );
    assert_eq!(h.api.hits(), 1);
}

#[tokio::test]
async fn a_deposit_bound_to_another_receiver_authorizer_is_refused_before_anything_is_signed() {
    let h = Harness::start().await;
    let keypair = h.new_payer(10 * PRICE).await;
    let (offer, accepted) = offer(&h, ROUTE).await;
    let mut foreign = offer.terms.clone();
    foreign.receiver_authorizer = Keypair::new().pubkey();
    let opening = Opening {
        payer: keypair.pubkey(),
        salt: random_salt(),
        open_slot: offer.recent_slot.unwrap(),
    };
    // The configuration names ours, the `open`'s binding Memo another key.
    let channel = channel_of(&keypair, &offer.terms, &opening);
    let payload = build_open(
        &keypair,
        &foreign,
        &channel,
        10 * PRICE,
        PRICE,
        offer.recent_blockhash.unwrap(),
    );
    let submits = h.ledger.submits.load(std::sync::atomic::Ordering::SeqCst);
    let fee_payer_before = h.market.ledger.lamports(&h.market.fee_payer.pubkey()).await;
    let (code, _) = refusal(get(&h, &header(&accepted, &payload)).await).await;
    assert_eq!(code, "invalid_batch_settlement_svm_setup_transaction");
    assert_eq!(
        h.ledger.submits.load(std::sync::atomic::Ordering::SeqCst),
        submits
    );
    assert_eq!(
        h.market.ledger.lamports(&h.market.fee_payer.pubkey()).await,
        fee_payer_before,
        "the fee payer paid nothing"
    );
    assert_eq!(h.api.hits(), 0);
}

#[tokio::test]
async fn a_failed_upstream_takes_its_voucher_back_and_a_top_up_extends_the_channel() {
    let h = Harness::start().await;
    let (buyer, response) = open(&h, 4 * PRICE, 2 * PRICE).await;
    assert_eq!(response.status(), 200);
    // A top-up the deposit does not need is refused before our fee payer signs: it
    // would cost a transaction for nothing.
    let needless = build_top_up(
        &buyer.keypair,
        &buyer.offer.terms,
        &buyer.channel,
        PRICE,
        2 * PRICE,
        h.market.ledger.latest_blockhash().await.unwrap(),
    );
    let submits = h.ledger.submits.load(std::sync::atomic::Ordering::SeqCst);
    let (code, _) = refusal(get(&h, &header(&buyer.accepted, &needless)).await).await;
    assert_eq!(code, "invalid_batch_settlement_svm_setup_transaction");
    assert_eq!(
        h.ledger.submits.load(std::sync::atomic::Ordering::SeqCst),
        submits
    );
    h.api.set_mode(UpstreamMode::Fail);
    assert_eq!(get(&h, &buyer.voucher(2 * PRICE)).await.status(), 500);
    h.api.set_mode(UpstreamMode::Ok);
    // Not charged for the failure: the same amount pays the next request.
    assert_eq!(get(&h, &buyer.voucher(2 * PRICE)).await.status(), 200);
    let (code, _) = refusal(get(&h, &buyer.voucher(3 * PRICE)).await).await;
    assert_eq!(
        code,
        "invalid_batch_settlement_svm_cumulative_exceeds_deposit"
    );
    // The top-up adds two requests' worth and pays the third.
    let top_up = build_top_up(
        &buyer.keypair,
        &buyer.offer.terms,
        &buyer.channel,
        2 * PRICE,
        3 * PRICE,
        h.market.ledger.latest_blockhash().await.unwrap(),
    );
    let response = get(&h, &header(&buyer.accepted, &top_up)).await;
    assert_eq!(response.status(), 200);
    let paid = settlement(&response);
    assert_eq!(paid.amount.as_deref(), Some("20000"));
    assert_eq!(paid.extra["channelState"]["balance"], "40000");
    assert_eq!(
        channel_account(&h, &buyer).await.unwrap().deposit,
        4 * PRICE
    );
    assert_eq!(get(&h, &buyer.voucher(4 * PRICE)).await.status(), 200);
}

#[tokio::test]
async fn a_buyer_closing_on_chain_is_sealed_with_the_latest_voucher_and_claims_resume_after_a_crash(
) {
    let h = Harness::start().await;
    let (buyer, response) = open(&h, 10 * PRICE, 10 * PRICE).await;
    assert_eq!(response.status(), 200);
    for n in 2..=4 {
        assert_eq!(get(&h, &buyer.voucher(n * PRICE)).await.status(), 200);
    }
    // The buyer walks away on chain without a refund, hoping to keep what it owes.
    request_close(&h, &buyer.keypair, &buyer.address()).await;
    assert_eq!(
        channel_account(&h, &buyer).await.unwrap().status,
        ChannelStatus::Closing
    );
    // Another gate on the same store, as after a crash: its claim round finds the
    // channel closing and seals it with the latest accepted voucher.
    let merchant_before = h.token_balance(&h.market.merchant).await;
    let restarted = h.replica_gate().await;
    claim_channels(&restarted).await.unwrap();
    assert_eq!(
        h.token_balance(&h.market.merchant).await,
        merchant_before + 4 * PRICE,
        "every accepted voucher is paid"
    );
    assert_eq!(h.token_balance(&buyer.keypair.pubkey()).await, 6 * PRICE);
    let row = h
        .gate
        .store()
        .batch_channel(&buyer.address().to_string())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.status, BatchStatus::Closed);
    let (code, _) = refusal(get(&h, &buyer.voucher(5 * PRICE)).await).await;
    assert_eq!(code, "invalid_batch_settlement_svm_channel_closing");
}

#[tokio::test]
async fn claims_resume_from_the_store_after_a_restart_and_a_claim_above_the_vouchers_fails_on_chain(
) {
    let h = Harness::start().await;
    let (buyer, response) = open(&h, 10 * PRICE, 10 * PRICE).await;
    assert_eq!(response.status(), 200);
    for n in 2..=3 {
        assert_eq!(get(&h, &buyer.voucher(n * PRICE)).await.status(), 200);
    }
    // A seller (or a corrupted store) claiming more than the buyer signed: the voucher's
    // signature is for 3 requests, the row says 5.
    let address = buyer.address().to_string();
    let row = h
        .gate
        .store()
        .batch_channel(&address)
        .await
        .unwrap()
        .unwrap();
    let forged = h
        .gate
        .store()
        .accept_voucher(
            &address,
            3 * PRICE,
            5 * PRICE,
            row.signature.as_deref().unwrap(),
            None,
            x402_protocol::unix_now(),
        )
        .await
        .unwrap();
    assert!(forged.is_some());
    let merchant_before = h.token_balance(&h.market.merchant).await;
    let restarted = h.replica_gate().await;
    let (claimed, _) = claim_channels(&restarted).await.unwrap();
    assert_eq!(
        claimed, 0,
        "the program refuses a voucher the buyer did not sign"
    );
    assert_eq!(channel_account(&h, &buyer).await.unwrap().settled, 0);
    assert_eq!(h.token_balance(&h.market.merchant).await, merchant_before);

    // The true latest voucher back in the row (as before the corruption): a gate that
    // restarted claims it from the store.
    assert!(h
        .gate
        .store()
        .revert_voucher(&address, 5 * PRICE, x402_protocol::unix_now())
        .await
        .unwrap());
    let (claimed, transactions) = claim_channels(&restarted).await.unwrap();
    assert_eq!((claimed, transactions), (1, 1));
    assert_eq!(
        h.token_balance(&h.market.merchant).await,
        merchant_before + 3 * PRICE
    );
}

#[tokio::test]
async fn claims_of_many_channels_share_transactions() {
    let h = Harness::start().await;
    let mut buyers = Vec::new();
    for _ in 0..6 {
        let (buyer, response) = open(&h, 10 * PRICE, 10 * PRICE).await;
        assert_eq!(response.status(), 200);
        assert_eq!(get(&h, &buyer.voucher(2 * PRICE)).await.status(), 200);
        buyers.push(buyer);
    }
    let merchant_before = h.token_balance(&h.market.merchant).await;
    let (claimed, transactions) = claim_channels(&h.gate).await.unwrap();
    assert_eq!(claimed, 6);
    assert!(
        transactions < 6,
        "{transactions} transactions for 6 channels: they share"
    );
    assert_eq!(
        h.token_balance(&h.market.merchant).await,
        merchant_before + 6 * 2 * PRICE
    );
    for buyer in &buyers {
        assert_eq!(channel_account(&h, buyer).await.unwrap().settled, 2 * PRICE);
    }
}

#[tokio::test]
async fn an_open_whose_answer_was_lost_completes_on_the_retry_of_the_same_payment() {
    use std::sync::atomic::Ordering;
    let h = Harness::start().await;
    let (keypair, offer, accepted, channel, payload) = unopened(&h).await;
    let payment = header(&accepted, &payload);
    // The verifier's submission goes unanswered, while the open lands all the same
    // (here: landed by hand with the fee payer's signature, as the cluster would).
    h.ledger.failing_submits.store(true, Ordering::SeqCst);
    let lost = get(&h, &payment).await;
    assert_eq!(lost.status(), 503, "not served, not refused: retry");
    land_by_hand(&h, &payload).await;
    h.ledger.failing_submits.store(false, Ordering::SeqCst);
    assert_eq!(h.api.hits(), 0);

    let submits = h.ledger.submits.load(Ordering::SeqCst);
    let retried = get(&h, &payment).await;
    assert_eq!(
        retried.status(),
        200,
        "the channel on chain completes the open"
    );
    assert_eq!(
        h.ledger.submits.load(Ordering::SeqCst),
        submits,
        "nothing submitted again"
    );
    assert_eq!(h.api.hits(), 1);
    let buyer = Buyer {
        keypair,
        offer,
        accepted,
        channel,
    };
    assert_eq!(get(&h, &buyer.voucher(2 * PRICE)).await.status(), 200);
    let (code, _) = refusal(get(&h, &payment).await).await;
    assert_eq!(
        code, "invalid_batch_settlement_svm_cumulative_amount_mismatch",
        "the open's voucher again is a replay"
    );
}

/// A merchant rule: this payer is not served.
struct Blocklist(anchor_lang::prelude::Pubkey);

#[async_trait::async_trait]
impl x402_verifier::PaymentCheck for Blocklist {
    async fn check(&self, attempt: &x402_verifier::PaymentAttempt) -> Result<(), String> {
        if attempt.payer == self.0 {
            return Err("payer_blocked".into());
        }
        Ok(())
    }
}

#[tokio::test]
async fn the_merchants_own_check_refuses_a_batch_buyer_before_anything_is_signed() {
    let h = Harness::start().await;
    let blocked = h.new_payer(10 * PRICE).await;
    let router = axum::Router::new()
        .route("/checked", axum::routing::get(|| async { "served" }))
        .layer(
            h.gate
                .price("0.01")
                .schemes(&[x402_verifier::Scheme::Batch])
                .check(Blocklist(blocked.pubkey())),
        );
    let url = format!("{}/checked", x402_testkit::serve(router).await);
    let response = h.http.get(&url).send().await.unwrap();
    let text = response.headers()[v2::PAYMENT_REQUIRED].to_str().unwrap();
    let required: v2::PaymentRequired = decode_header(text).unwrap();
    let accepted = required.accepts[0].clone();
    let offer = BatchOffer::from_offer(&Offer::from_v2(&accepted, &required.resource)).unwrap();
    let opening = Opening {
        payer: blocked.pubkey(),
        salt: random_salt(),
        open_slot: offer.recent_slot.unwrap(),
    };
    let channel = channel_of(&blocked, &offer.terms, &opening);
    let payload = build_open(
        &blocked,
        &offer.terms,
        &channel,
        10 * PRICE,
        PRICE,
        offer.recent_blockhash.unwrap(),
    );
    let (name, value) = header(&accepted, &payload);
    let submits = h.ledger.submits.load(std::sync::atomic::Ordering::SeqCst);
    let refused = h.http.get(&url).header(name, value).send().await.unwrap();
    assert_eq!(refused.status(), 402);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "payer_blocked");
    assert_eq!(
        h.ledger.submits.load(std::sync::atomic::Ordering::SeqCst),
        submits,
        "nothing submitted"
    );
    assert_eq!(h.token_balance(&blocked.pubkey()).await, 10 * PRICE);
}

#[tokio::test]
async fn after_a_crash_once_an_open_landed_the_janitor_refunds_the_buyer_in_full() {
    use std::sync::atomic::Ordering;
    let h = Harness::start().await;
    let (keypair, offer, accepted, channel, payload) = unopened(&h).await;
    // The open lands, but the verifier never learns it did (and the buyer never retries):
    // its row stays opening, nothing is served.
    h.ledger.failing_submits.store(true, Ordering::SeqCst);
    assert_eq!(get(&h, &header(&accepted, &payload)).await.status(), 503);
    h.ledger.failing_submits.store(false, Ordering::SeqCst);
    land_by_hand(&h, &payload).await;
    assert_eq!(h.token_balance(&keypair.pubkey()).await, 0);

    // A janitor round (a restarted gate), once the open's blockhash has long expired.
    let restarted = h.replica_gate().await;
    let later = x402_protocol::unix_now() + 600;
    tend_batch_channels(&restarted, later).await.unwrap();
    assert_eq!(
        h.token_balance(&keypair.pubkey()).await,
        10 * PRICE,
        "nothing served, nothing charged: the whole deposit back"
    );
    let address = channel.address(&offer.terms.fee_payer).to_string();
    let row = h
        .gate
        .store()
        .batch_channel(&address)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.status, BatchStatus::Closed);
    assert_eq!(h.api.hits(), 0);
}

#[tokio::test]
async fn a_refund_cut_off_mid_close_is_finished_by_the_janitor_and_charges_nothing_twice() {
    use std::sync::atomic::Ordering;
    let h = Harness::start().await;
    let (buyer, response) = open(&h, 10 * PRICE, 10 * PRICE).await;
    assert_eq!(response.status(), 200);
    assert_eq!(get(&h, &buyer.voucher(2 * PRICE)).await.status(), 200);
    let merchant_before = h.token_balance(&h.market.merchant).await;
    // The close's transaction goes unanswered and never lands: the process stops there.
    h.ledger.failing_submits.store(true, Ordering::SeqCst);
    let last = sign_voucher(&buyer.keypair, &buyer.address(), 2 * PRICE);
    let refund = header(&buyer.accepted, &build_refund(&buyer.channel, last));
    assert_eq!(get(&h, &refund).await.status(), 503);
    h.ledger.failing_submits.store(false, Ordering::SeqCst);
    let (code, _) = refusal(get(&h, &buyer.voucher(3 * PRICE)).await).await;
    assert_eq!(
        code, "invalid_batch_settlement_svm_channel_closing",
        "no voucher is accepted once a close began"
    );

    let restarted = h.replica_gate().await;
    tend_batch_channels(&restarted, x402_protocol::unix_now() + 600)
        .await
        .unwrap();
    assert_eq!(
        h.token_balance(&h.market.merchant).await,
        merchant_before + 2 * PRICE,
        "the accepted vouchers, paid once"
    );
    assert_eq!(h.token_balance(&buyer.keypair.pubkey()).await, 8 * PRICE);
    // Another round finds it closed: nothing moves again.
    tend_batch_channels(&restarted, x402_protocol::unix_now() + 1200)
        .await
        .unwrap();
    assert_eq!(
        h.token_balance(&h.market.merchant).await,
        merchant_before + 2 * PRICE
    );
    assert_eq!(h.token_balance(&buyer.keypair.pubkey()).await, 8 * PRICE);
}

#[tokio::test]
async fn a_top_up_that_landed_unseen_is_completed_by_the_retry_of_the_same_payment() {
    use std::sync::atomic::Ordering;
    let h = Harness::start().await;
    let (buyer, response) = open(&h, 4 * PRICE, PRICE).await;
    assert_eq!(response.status(), 200);
    let top_up = build_top_up(
        &buyer.keypair,
        &buyer.offer.terms,
        &buyer.channel,
        3 * PRICE,
        2 * PRICE,
        h.market.ledger.latest_blockhash().await.unwrap(),
    );
    let payment = header(&buyer.accepted, &top_up);
    // The top-up lands, but the verifier never learns it did (a crash, a lost answer):
    // nothing is served and the channel's row still holds the old deposit.
    h.ledger.failing_submits.store(true, Ordering::SeqCst);
    assert_eq!(get(&h, &payment).await.status(), 503);
    h.ledger.failing_submits.store(false, Ordering::SeqCst);
    land_by_hand(&h, &top_up).await;
    assert_eq!(
        channel_account(&h, &buyer).await.unwrap().deposit,
        4 * PRICE
    );
    let row = |h: &Harness| {
        let store = h.gate.store().clone();
        let address = buyer.address().to_string();
        async move { store.batch_channel(&address).await.unwrap().unwrap() }
    };
    assert_eq!(row(&h).await.deposit, PRICE);
    let hits = h.api.hits();

    // The same payment again: the chain shows the top-up, so its voucher and the larger
    // deposit are committed, once, and the request is served.
    let retried = get(&h, &payment).await;
    assert_eq!(retried.status(), 200);
    assert_eq!(h.api.hits(), hits + 1);
    let now = row(&h).await;
    assert_eq!((now.deposit, now.charged), (4 * PRICE, 2 * PRICE));
    assert_eq!(h.token_balance(&buyer.keypair.pubkey()).await, 0);
    let (code, _) = refusal(get(&h, &payment).await).await;
    assert_eq!(
        code, "invalid_batch_settlement_svm_cumulative_amount_mismatch",
        "served once"
    );
    assert_eq!(get(&h, &buyer.voucher(3 * PRICE)).await.status(), 200);
}

#[tokio::test]
async fn a_channel_on_chain_that_pays_someone_else_is_never_taken_for_the_one_opened_here() {
    use std::sync::atomic::Ordering;
    let h = Harness::start().await;
    let (keypair, offer, accepted, channel, payload) = unopened(&h).await;
    let payment = header(&accepted, &payload);
    // Our open goes out unanswered: its row stays opening.
    h.ledger.failing_submits.store(true, Ordering::SeqCst);
    assert_eq!(get(&h, &payment).await.status(), 503);
    h.ledger.failing_submits.store(false, Ordering::SeqCst);
    // Meanwhile another open of the same address lands (the same buyer, salt and slot),
    // one that pays its settlements to someone else.
    let mut elsewhere = offer.terms.clone();
    elsewhere.pay_to = anchor_lang::prelude::Pubkey::new_unique();
    let other = channel_of(&keypair, &elsewhere, &channel.opening());
    assert_eq!(
        other.address(&elsewhere.fee_payer),
        channel.address(&offer.terms.fee_payer)
    );
    let rival = build_open(
        &keypair,
        &elsewhere,
        &other,
        10 * PRICE,
        PRICE,
        h.market.ledger.latest_blockhash().await.unwrap(),
    );
    land_by_hand(&h, &rival).await;
    // The retry finds a channel at the address, but not one that pays this seller: it is
    // not served on it.
    let retried = get(&h, &payment).await;
    assert_ne!(retried.status(), 200);
    assert_eq!(h.api.hits(), 0);
    let row = h
        .gate
        .store()
        .batch_channel(&channel.address(&offer.terms.fee_payer).to_string())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.status, BatchStatus::Opening);
}
