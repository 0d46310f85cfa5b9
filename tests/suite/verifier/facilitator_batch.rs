//! `batch-settlement` at the facilitator, for a resource server that delegates to this
//! verifier: the buyer's deposit verified and landed, the seller's claims of several
//! channels in one transaction, payouts, seals and cooperative refunds, each only on
//! the seller's word (its receiver authorizer's close authorization, or the API key
//! that opened the channel when it delegated closes to us), and the janitor's idle
//! close at the watermark the chain settled. The channels opened here are never taken
//! for the gate's own.

use std::sync::atomic::Ordering;

use solana_keypair::Keypair;
use solana_signer::Signer;
use x402_protocol::scheme::batch::{
    build_open, build_refund, build_refund_closing, channel_of, sign_voucher, BatchOffer,
    BatchPayload, BatchTerms, Channel, ChannelEntry, ClaimEntry, CloseIntent, Seal, SellerPayload,
};
use x402_protocol::scheme::channel::{random_salt, ChannelAccount, ChannelStatus, Opening};
use x402_protocol::wire::facilitator::{SettleResponse, VerifyResponse};
use x402_protocol::wire::v2;
use x402_protocol::Ledger;
use x402_verifier::scheme::batch::tend_batch_channels;
use x402_verifier::unix_now;

use super::support::*;

/// A delegating server's `batch-settlement` requirements at the price: the merchant's
/// mint and payee, our fee payer, closes authorized by `receiver_authorizer`.
async fn offer(h: &Harness, receiver_authorizer: anchor_lang::prelude::Pubkey) -> BatchOffer {
    let s = h.gate.settings();
    BatchOffer {
        network: s.network.caip2().into(),
        terms: BatchTerms {
            mint: s.mint,
            token_program: s.token_program,
            pay_to: s.pay_to,
            amount: PRICE,
            fee_payer: h.market.fee_payer.pubkey(),
            receiver_authorizer,
            withdraw_delay: 3_600,
            memo: None,
            min_deposit: None,
            operator: None,
        },
        recent_blockhash: Some(h.market.ledger.latest_blockhash().await.unwrap()),
        recent_slot: Some(h.market.ledger.slot().await),
        max_idle_secs: None,
        channel_state: None,
        voucher_state: None,
        resource: v2::ResourceInfo {
            url: "https://other.example/batch".into(),
            description: None,
            mime_type: None,
        },
        max_timeout_seconds: 300,
    }
}

/// A buyer of the delegating server: its key and channel.
struct Buyer {
    keypair: Keypair,
    channel: Channel,
    /// Its deposit: the `open` paying the first request.
    open: BatchPayload,
}

impl Buyer {
    async fn new(h: &Harness, offer: &BatchOffer, deposit: u64) -> Buyer {
        let keypair = h.new_payer(deposit).await;
        let opening = Opening {
            payer: keypair.pubkey(),
            salt: random_salt(),
            open_slot: offer.recent_slot.unwrap(),
        };
        let channel = channel_of(&keypair, &offer.terms, &opening);
        let open = build_open(
            &keypair,
            &offer.terms,
            &channel,
            deposit,
            PRICE,
            offer.recent_blockhash.unwrap(),
        );
        Buyer {
            keypair,
            channel,
            open,
        }
    }

    fn address(&self, offer: &BatchOffer) -> anchor_lang::prelude::Pubkey {
        self.channel.address(&offer.terms.fee_payer)
    }

    fn voucher(
        &self,
        offer: &BatchOffer,
        cumulative: u64,
    ) -> x402_protocol::scheme::batch::BatchVoucher {
        sign_voucher(&self.keypair, &self.address(offer), cumulative)
    }

    fn entry(&self, offer: &BatchOffer, cumulative: u64) -> ClaimEntry {
        ClaimEntry {
            channel_id: self.address(offer).to_string(),
            channel_config: self.channel.config(),
            voucher: self.voucher(offer, cumulative),
        }
    }
}

/// A `/verify` or `/settle` body: `payload` for `offer`.
fn request(offer: &BatchOffer, payload: impl serde::Serialize) -> serde_json::Value {
    facilitator_body(&offer.to_offer(), payload)
}

async fn post<T: serde::de::DeserializeOwned>(
    h: &Harness,
    key: &str,
    path: &str,
    body: &serde_json::Value,
) -> T {
    let (status, answer) = facilitator_post(h, key, path, body).await;
    assert_eq!(status, 200);
    answer
}

async fn settle(h: &Harness, body: &serde_json::Value) -> SettleResponse {
    post(h, FACILITATOR_KEY, "/settle", body).await
}

/// Lands a deposit's transaction past the verifier, co-signed with its fee payer: as the
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

async fn channel(h: &Harness, address: &anchor_lang::prelude::Pubkey) -> Option<ChannelAccount> {
    let account = h.market.ledger.account(address).await.unwrap()?;
    ChannelAccount::read(&account.data)
}

#[tokio::test]
async fn a_delegating_seller_opens_claims_pays_out_and_refunds_through_the_facilitator() {
    let h = Harness::start().await;
    let fee_payer = h.market.fee_payer.pubkey();
    // The facilitator advertises its fee payer, its idle window, and its own key for the
    // sellers that delegate closes to it.
    let supported = supported(&h).await;
    let kind = supported
        .kinds
        .iter()
        .find(|k| k.scheme == "batch-settlement")
        .expect("batch-settlement is supported");
    let extra = kind.extra.as_ref().unwrap();
    assert_eq!(kind.x402_version, 2);
    assert_eq!(extra["feePayer"], fee_payer.to_string());
    assert_eq!(extra["receiverAuthorizer"], fee_payer.to_string());
    assert!(extra["maxIdleSecs"].as_u64().unwrap() > 0);

    let offer = offer(&h, fee_payer).await;
    let first = Buyer::new(&h, &offer, 10 * PRICE).await;
    let second = Buyer::new(&h, &offer, 10 * PRICE).await;

    let deposit = request(&offer, &first.open);
    let verified: VerifyResponse = post(&h, FACILITATOR_KEY, "/verify", &deposit).await;
    assert!(verified.is_valid, "{verified:?}");
    assert_eq!(
        verified.extra.unwrap()["channelId"],
        first.address(&offer).to_string()
    );
    assert_eq!(
        h.ledger.submits.load(Ordering::SeqCst),
        0,
        "verify sends nothing"
    );

    let opened = settle(&h, &deposit).await;
    assert!(opened.success, "{opened:?}");
    assert_eq!(opened.amount.as_deref(), Some("100000"));
    assert_eq!(
        opened.extra.unwrap()["channelState"]["balance"],
        (10 * PRICE).to_string()
    );
    assert_eq!(
        h.token_balance(&first.keypair.pubkey()).await,
        0,
        "escrowed"
    );
    let again = settle(&h, &deposit).await;
    assert_eq!(again.error_reason.as_deref(), Some("duplicate_settlement"));
    let opened = settle(&h, &request(&offer, &second.open)).await;
    assert!(opened.success, "{opened:?}");

    // The seller accepts vouchers itself; the facilitator verifies one against the chain
    // on request, and refuses one signed by anyone but the buyer's voucher signer.
    let voucher = BatchPayload::Voucher {
        channel_config: first.channel.config(),
        voucher: first.voucher(&offer, 3 * PRICE),
    };
    let verified: VerifyResponse =
        post(&h, FACILITATOR_KEY, "/verify", &request(&offer, &voucher)).await;
    assert!(verified.is_valid, "{verified:?}");
    let forged = BatchPayload::Voucher {
        channel_config: first.channel.config(),
        voucher: sign_voucher(&Keypair::new(), &first.address(&offer), 3 * PRICE),
    };
    let verified: VerifyResponse =
        post(&h, FACILITATOR_KEY, "/verify", &request(&offer, &forged)).await;
    assert_eq!(
        verified.invalid_reason.as_deref(),
        Some("invalid_batch_settlement_svm_voucher_signature")
    );

    // A claim above a channel's deposit, or with a voucher the buyer did not sign, moves
    // nothing for any channel of the batch.
    let submits = h.ledger.submits.load(Ordering::SeqCst);
    let greedy = SellerPayload::Claim {
        claims: vec![
            first.entry(&offer, 3 * PRICE),
            second.entry(&offer, 11 * PRICE),
        ],
    };
    let refused = settle(&h, &request(&offer, &greedy)).await;
    assert_eq!(
        refused.error_reason.as_deref(),
        Some("invalid_batch_settlement_svm_cumulative_exceeds_deposit")
    );
    let mut stolen = first.entry(&offer, 9 * PRICE);
    stolen.voucher = sign_voucher(&h.market.fee_payer, &first.address(&offer), 9 * PRICE);
    let refused = settle(
        &h,
        &request(
            &offer,
            SellerPayload::Claim {
                claims: vec![stolen],
            },
        ),
    )
    .await;
    assert_eq!(
        refused.error_reason.as_deref(),
        Some("invalid_batch_settlement_svm_voucher_signature")
    );
    assert_eq!(h.ledger.submits.load(Ordering::SeqCst), submits);

    // Both channels' latest vouchers in one transaction.
    let claim = SellerPayload::Claim {
        claims: vec![
            first.entry(&offer, 3 * PRICE),
            second.entry(&offer, 2 * PRICE),
        ],
    };
    let claimed = settle(&h, &request(&offer, &claim)).await;
    assert!(claimed.success, "{claimed:?}");
    assert_eq!(
        h.ledger.submits.load(Ordering::SeqCst),
        submits + 1,
        "one transaction"
    );
    assert_eq!(
        claimed.amount.as_deref(),
        Some(""),
        "a claim moves no funds"
    );
    let accepts = &claimed.extra.unwrap()["accepts"];
    assert_eq!(accepts[0]["totalClaimed"], (3 * PRICE).to_string());
    assert_eq!(accepts[1]["totalClaimed"], (2 * PRICE).to_string());

    let merchant = h.token_balance(&h.market.merchant).await;
    let payout = SellerPayload::Settle {
        channels: [&first, &second]
            .iter()
            .map(|b| ChannelEntry {
                channel_id: b.address(&offer).to_string(),
                channel_config: b.channel.config(),
            })
            .collect(),
    };
    let paid = settle(&h, &request(&offer, &payout)).await;
    assert!(paid.success, "{paid:?}");
    assert_eq!(paid.amount.as_deref(), Some("50000"));
    assert_eq!(
        h.token_balance(&h.market.merchant).await,
        merchant + 5 * PRICE
    );

    // The first buyer closes through its seller, which delegated closes to us: only the
    // caller that opened the channel may close it.
    let refund = request(
        &offer,
        build_refund(&first.channel, first.voucher(&offer, 4 * PRICE)),
    );
    let stranger: SettleResponse = post(&h, OTHER_FACILITATOR_KEY, "/settle", &refund).await;
    assert_eq!(
        stranger.error_reason.as_deref(),
        Some("invalid_batch_settlement_svm_delegated_unauthenticated")
    );
    assert_eq!(
        channel(&h, &first.address(&offer)).await.unwrap().status,
        ChannelStatus::Open
    );
    let refunded = settle(&h, &refund).await;
    assert!(refunded.success, "{refunded:?}");
    assert_eq!(refunded.amount.as_deref(), Some("60000"), "the rest back");
    assert_eq!(h.token_balance(&first.keypair.pubkey()).await, 6 * PRICE);
    assert_eq!(
        h.token_balance(&h.market.merchant).await,
        merchant + 6 * PRICE,
        "the seller is paid what the refund's voucher settled"
    );
    let again = settle(&h, &refund).await;
    assert_eq!(again.error_reason.as_deref(), Some("duplicate_settlement"));
}

#[tokio::test]
async fn a_self_managed_close_needs_the_bound_authorizers_word_and_the_first_binding_stands() {
    let h = Harness::start().await;
    let authorizer = Keypair::new();
    let offer = offer(&h, authorizer.pubkey()).await;
    let buyer = Buyer::new(&h, &offer, 10 * PRICE).await;

    // The open is bound to the seller's authorizer before it is sent; when the send goes
    // unanswered, the binding stands, and the same channel's open naming another
    // receiver authorizer is refused before anything is signed.
    h.ledger.failing_submits.store(true, Ordering::SeqCst);
    let response = h
        .http
        .post(h.url("/settle"))
        .bearer_auth(FACILITATOR_KEY)
        .json(&request(&offer, &buyer.open))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    h.ledger.failing_submits.store(false, Ordering::SeqCst);
    let mut hijacked = offer.clone();
    hijacked.terms.receiver_authorizer = Keypair::new().pubkey();
    let same_channel = channel_of(
        &buyer.keypair,
        &hijacked.terms,
        &Opening {
            payer: buyer.keypair.pubkey(),
            salt: buyer.channel.salt,
            open_slot: buyer.channel.open_slot,
        },
    );
    assert_eq!(
        same_channel.address(&offer.terms.fee_payer),
        buyer.address(&offer)
    );
    let other_open = build_open(
        &buyer.keypair,
        &hijacked.terms,
        &same_channel,
        10 * PRICE,
        PRICE,
        offer.recent_blockhash.unwrap(),
    );
    let submits = h.ledger.submits.load(Ordering::SeqCst);
    let refused = settle(&h, &request(&hijacked, &other_open)).await;
    assert_eq!(
        refused.error_reason.as_deref(),
        Some("invalid_batch_settlement_svm_receiver_authorizer_mismatch")
    );
    assert_eq!(
        h.ledger.submits.load(Ordering::SeqCst),
        submits,
        "nothing sent"
    );
    let opened = settle(&h, &request(&offer, &buyer.open)).await;
    assert!(
        opened.success,
        "the first binding's open, retried: {opened:?}"
    );

    // A seal is for a channel its buyer is closing.
    let address = buyer.address(&offer);
    let network = h.gate.settings().network.caip2().to_string();
    let intent = |amount| CloseIntent {
        network: &network,
        fee_payer: offer.terms.fee_payer,
        channel: address,
        max_claimable: amount,
        voucher_expires_at: 0,
    };
    let seal = |amount, authorization| {
        SellerPayload::Seal(Box::new(Seal {
            channel_id: address.to_string(),
            channel_config: buyer.channel.config(),
            voucher: buyer.voucher(&offer, amount),
            close_authorization: authorization,
        }))
    };
    let soon = unix_now() + 60;
    let early = settle(
        &h,
        &request(
            &offer,
            seal(4 * PRICE, intent(4 * PRICE).sign(&authorizer, soon)),
        ),
    )
    .await;
    assert_eq!(
        early.error_reason.as_deref(),
        Some("invalid_batch_settlement_svm_close_state")
    );

    // The buyer walks away on chain: claims stop, and only the seller's authorized seal
    // applies its latest voucher in the grace period.
    request_close(&h, &buyer.keypair, &buyer.address(&offer)).await;
    let claim = SellerPayload::Claim {
        claims: vec![buyer.entry(&offer, 4 * PRICE)],
    };
    let refused = settle(&h, &request(&offer, &claim)).await;
    assert_eq!(
        refused.error_reason.as_deref(),
        Some("invalid_batch_settlement_svm_channel_closing")
    );
    let submits = h.ledger.submits.load(Ordering::SeqCst);
    for (why, authorization) in [
        ("another key", intent(4 * PRICE).sign(&Keypair::new(), soon)),
        ("another amount", intent(3 * PRICE).sign(&authorizer, soon)),
        (
            "past its maxTimeoutSeconds",
            intent(4 * PRICE).sign(&authorizer, unix_now() + 3_600),
        ),
        (
            "expired",
            intent(4 * PRICE).sign(&authorizer, unix_now() - 1),
        ),
        (
            "unsigned",
            x402_protocol::scheme::batch::CloseAuthorization {
                valid_before: soon,
                signature: None,
            },
        ),
    ] {
        let refused = settle(&h, &request(&offer, seal(4 * PRICE, authorization))).await;
        assert_eq!(
            refused.error_reason.as_deref(),
            Some("invalid_batch_settlement_svm_close_authorization"),
            "{why}"
        );
    }
    assert_eq!(
        h.ledger.submits.load(Ordering::SeqCst),
        submits,
        "nothing sent"
    );

    let merchant = h.token_balance(&h.market.merchant).await;
    let sealed = settle(
        &h,
        &request(
            &offer,
            seal(4 * PRICE, intent(4 * PRICE).sign(&authorizer, soon)),
        ),
    )
    .await;
    assert!(sealed.success, "{sealed:?}");
    assert_eq!(
        sealed.amount.as_deref(),
        Some("40000"),
        "paid to the seller"
    );
    assert_eq!(
        h.token_balance(&h.market.merchant).await,
        merchant + 4 * PRICE
    );
    assert_eq!(h.token_balance(&buyer.keypair.pubkey()).await, 6 * PRICE);
}

#[tokio::test]
async fn an_idle_facilitated_channel_is_closed_at_the_chains_watermark_and_never_taken_for_the_gates(
) {
    let h = Harness::start().await;
    let offer = offer(&h, h.market.fee_payer.pubkey()).await;
    let buyer = Buyer::new(&h, &offer, 10 * PRICE).await;
    let opened = settle(&h, &request(&offer, &buyer.open)).await;
    assert!(opened.success, "{opened:?}");
    let claim = SellerPayload::Claim {
        claims: vec![buyer.entry(&offer, 2 * PRICE)],
    };
    let claimed = settle(&h, &request(&offer, &claim)).await;
    assert!(claimed.success, "{claimed:?}");

    // The channel pays the merchant under the gate's own terms, yet the gate accepts none
    // of its vouchers: it did not open it.
    let payment = v2_payment(
        &offer.to_offer().to_v2(),
        BatchPayload::Voucher {
            channel_config: buyer.channel.config(),
            voucher: buyer.voucher(&offer, 3 * PRICE),
        },
    );
    let response = h
        .http
        .get(h.url("/batch"))
        .header(
            v2::PAYMENT_SIGNATURE,
            x402_protocol::wire::encode_header(&payment),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 402);
    assert_eq!(h.api.hits(), 0);

    // Within the idle window the janitor leaves it; past it, closes it at what the chain
    // settled (the seller's unclaimed vouchers are forfeit, as advertised), the rest back
    // to the buyer. It is never recorded as one of the gate's channels.
    let address = buyer.address(&offer);
    tend_batch_channels(&h.gate, unix_now()).await.unwrap();
    assert_eq!(
        channel(&h, &address).await.unwrap().status,
        ChannelStatus::Open
    );
    let idle = h.gate.settings().batch.idle_close.as_secs() as i64;
    let merchant = h.token_balance(&h.market.merchant).await;
    let tended = tend_batch_channels(&h.gate, unix_now() + idle + 1)
        .await
        .unwrap();
    assert_eq!((tended.closed, tended.found), (1, 0));
    assert_eq!(
        h.token_balance(&h.market.merchant).await,
        merchant + 2 * PRICE
    );
    assert_eq!(h.token_balance(&buyer.keypair.pubkey()).await, 8 * PRICE);
    assert!(h
        .gate
        .store()
        .batch_channel(&address.to_string())
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn a_buyers_own_close_is_relayed_when_no_binding_is_at_hand_and_sealed_after_its_grace() {
    let h = Harness::start().await;
    // Closes delegated to us: the caller relaying the close must not gain them.
    let offer = offer(&h, h.market.fee_payer.pubkey()).await;
    let buyer = Buyer::new(&h, &offer, 10 * PRICE).await;
    // A channel our fee payer funded that this facilitator has no binding for (its open
    // landed past it): it cannot be closed cooperatively.
    land_by_hand(&h, &buyer.open).await;
    let address = buyer.address(&offer);
    let voucher = || buyer.voucher(&offer, 0);
    let cooperative = settle(
        &h,
        &request(&offer, build_refund(&buyer.channel, voucher())),
    )
    .await;
    assert_eq!(
        cooperative.error_reason.as_deref(),
        Some("invalid_batch_settlement_svm_receiver_binding_unavailable")
    );

    // The buyer retries with its own request_close; one that also has the fee payer pay
    // anything else is refused unsigned.
    let blockhash = h.market.ledger.latest_blockhash().await.unwrap();
    let mut greedy = build_refund_closing(
        &buyer.keypair,
        &offer.terms,
        &buyer.channel,
        voucher(),
        blockhash,
    );
    if let BatchPayload::Refund { transaction, .. } = &mut greedy {
        let close = x402_protocol::scheme::channel::request_close_instruction(
            &address,
            &buyer.keypair.pubkey(),
        );
        let drain = anchor_lang::solana_program::system_instruction::transfer(
            &h.market.fee_payer.pubkey(),
            &buyer.keypair.pubkey(),
            1_000_000,
        );
        let tx = solana_transaction::Transaction::new_with_payer(
            &[close, drain],
            Some(&h.market.fee_payer.pubkey()),
        );
        let mut tx: solana_transaction::versioned::VersionedTransaction = tx.into();
        tx.message.set_recent_blockhash(blockhash);
        tx.signatures = vec![Default::default(); 2];
        tx.signatures[1] = buyer.keypair.sign_message(&tx.message.serialize());
        *transaction = Some(x402_protocol::scheme::encode_transaction(&tx));
    }
    let submits = h.ledger.submits.load(Ordering::SeqCst);
    let refused = settle(&h, &request(&offer, &greedy)).await;
    assert_eq!(
        refused.error_reason.as_deref(),
        Some("invalid_batch_settlement_svm_refund_transaction")
    );
    assert_eq!(
        h.ledger.submits.load(Ordering::SeqCst),
        submits,
        "nothing sent"
    );
    let closing = build_refund_closing(
        &buyer.keypair,
        &offer.terms,
        &buyer.channel,
        voucher(),
        blockhash,
    );
    let verified: VerifyResponse =
        post(&h, FACILITATOR_KEY, "/verify", &request(&offer, &closing)).await;
    assert!(verified.is_valid, "{verified:?}");
    let relayed = settle(&h, &request(&offer, &closing)).await;
    assert!(relayed.success, "{relayed:?}");
    assert!(!relayed.transaction.is_empty());
    assert_eq!(relayed.amount.as_deref(), Some(""), "nothing moved yet");
    let account = channel(&h, &address).await.unwrap();
    assert_eq!(account.status, ChannelStatus::Closing);
    // Its retry answers the closing channel, nothing sent again.
    let again = settle(&h, &request(&offer, &closing)).await;
    assert!(again.success && again.transaction.is_empty(), "{again:?}");
    // Relaying it gave the caller no right to close it at the watermark before the
    // seller's seal could come.
    let takeover = settle(
        &h,
        &request(&offer, build_refund(&buyer.channel, voucher())),
    )
    .await;
    assert!(!takeover.success, "{takeover:?}");
    assert_eq!(
        channel(&h, &address).await.unwrap().status,
        ChannelStatus::Closing
    );

    // Once the grace period has passed, the janitor seals it: the deposit goes back.
    let grace_ends = account.closure_started_at + i64::from(account.grace_period);
    tend_batch_channels(&h.gate, grace_ends - 1).await.unwrap();
    assert_eq!(
        h.token_balance(&buyer.keypair.pubkey()).await,
        0,
        "not before"
    );
    h.market.ledger.set_time(grace_ends + 1).await;
    tend_batch_channels(&h.gate, grace_ends + 1).await.unwrap();
    assert_eq!(h.token_balance(&buyer.keypair.pubkey()).await, 10 * PRICE);
}

#[tokio::test]
async fn the_gates_own_channel_is_never_closed_through_the_facilitator() {
    let h = Harness::start().await;
    // A channel opened at the gate's own batch route...
    let (gate_offer, accepted) = offers(&h.http, &h.url("/batch"))
        .await
        .into_iter()
        .find(|(o, _)| o.scheme == "batch-settlement")
        .map(|(o, a)| (BatchOffer::from_offer(&o).unwrap(), a))
        .unwrap();
    let buyer = Buyer::new(&h, &gate_offer, 10 * PRICE).await;
    let response = h
        .http
        .get(h.url("/batch"))
        .header(
            v2::PAYMENT_SIGNATURE,
            x402_protocol::wire::encode_header(&v2_payment(&accepted, &buyer.open)),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // ...is the gate's to close: its buyer's close relayed by a facilitator caller (who
    // would gain the close) is refused, nothing sent.
    let offer = offer(&h, h.market.fee_payer.pubkey()).await;
    let blockhash = h.market.ledger.latest_blockhash().await.unwrap();
    let closing = build_refund_closing(
        &buyer.keypair,
        &offer.terms,
        &buyer.channel,
        buyer.voucher(&offer, PRICE),
        blockhash,
    );
    let submits = h.ledger.submits.load(Ordering::SeqCst);
    let refused = settle(&h, &request(&offer, &closing)).await;
    assert_eq!(
        refused.error_reason.as_deref(),
        Some("invalid_batch_settlement_svm_close_state")
    );
    assert_eq!(h.ledger.submits.load(Ordering::SeqCst), submits);
    assert_eq!(
        channel(&h, &buyer.address(&offer)).await.unwrap().status,
        ChannelStatus::Open
    );
}

#[tokio::test]
async fn an_open_that_landed_unseen_is_answered_on_its_retry_and_sent_once() {
    let h = Harness::start().await;
    let offer = offer(&h, h.market.fee_payer.pubkey()).await;
    let buyer = Buyer::new(&h, &offer, 10 * PRICE).await;
    let deposit = request(&offer, &buyer.open);
    // The open lands, but the facilitator never learns it did (a crash, a lost answer).
    h.ledger.failing_submits.store(true, Ordering::SeqCst);
    let response = h
        .http
        .post(h.url("/settle"))
        .bearer_auth(FACILITATOR_KEY)
        .json(&deposit)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    h.ledger.failing_submits.store(false, Ordering::SeqCst);
    land_by_hand(&h, &buyer.open).await;
    // The seller retries the same settle: the channel it opened is its answer, nothing is
    // sent again, and another caller cannot claim it.
    let submits = h.ledger.submits.load(Ordering::SeqCst);
    let stranger: SettleResponse = post(&h, OTHER_FACILITATOR_KEY, "/settle", &deposit).await;
    assert_eq!(
        stranger.error_reason.as_deref(),
        Some("invalid_batch_settlement_svm_delegated_unauthenticated")
    );
    let answered = settle(&h, &deposit).await;
    assert!(answered.success, "{answered:?}");
    assert_eq!(answered.amount.as_deref(), Some("100000"));
    assert_eq!(
        answered.extra.unwrap()["channelState"]["balance"],
        (10 * PRICE).to_string()
    );
    assert_eq!(
        h.ledger.submits.load(Ordering::SeqCst),
        submits,
        "sent once"
    );
    assert_eq!(h.token_balance(&buyer.keypair.pubkey()).await, 0);
    let again = settle(&h, &deposit).await;
    assert_eq!(again.error_reason.as_deref(), Some("duplicate_settlement"));
}
