//! `X402Client`: pays once per request, within its policy, and never twice.

use std::sync::atomic::Ordering;
use std::time::Duration;

use anchor_lang::prelude::Pubkey;
use solana_keypair::Keypair;
use solana_signer::Signer;
use x402_client::{ClientError, Limit, PolicyRule, SpendingPolicy, TrustedOperator, X402Client};
use x402_testkit::TestLedger;

use crate::verifier::support::*;

/// The harness's network by both of its names (v1 `solana-localnet`, and its CAIP-2 id):
/// without a ledger, a sponsored offer is signed over the verifier's blockhash, and paid
/// only on a network the buyer allowed explicitly.
fn local(h: &Harness) -> Vec<String> {
    let network = x402_protocol::Ledger::network(h.market.ledger.as_ref());
    vec![network.v1_name().to_string(), network.caip2().to_string()]
}

/// At most the price of `/api/*`, in base units (the harness's local mint is no
/// stablecoin the client knows, so the default cap of 1.00 refuses it), on the harness's
/// network, allowed explicitly.
fn capped(h: &Harness) -> SpendingPolicy {
    SpendingPolicy {
        max_per_request: Some(Limit::Units(PRICE)),
        networks: local(h),
        ..Default::default()
    }
}

/// At most the price of `/api/*`, in base units, and nothing else: for a client with a
/// ledger, which checks the network itself.
fn units() -> SpendingPolicy {
    SpendingPolicy {
        max_per_request: Some(Limit::Units(PRICE)),
        ..Default::default()
    }
}

fn client(payer: &Keypair, policy: SpendingPolicy) -> X402Client {
    X402Client::builder()
        .keypair(payer.insecure_clone())
        .policy(policy)
        .retries(3, Duration::from_millis(50))
        .build()
}

#[tokio::test]
async fn a_fetch_pays_once_and_returns_the_body_and_the_settlement() {
    let h = Harness::start().await;
    let payer = h.new_payer(10 * PRICE).await;
    let client = client(&payer, capped(&h));

    let paid = client.get(&h.url("/api/one")).await.unwrap();

    assert_eq!(paid.response.status(), 200);
    let settlement = paid
        .settlement
        .clone()
        .expect("a paid request has a settlement");
    assert_eq!(paid.response.text().await.unwrap(), "served /api/one body=");
    assert_eq!(
        (settlement.amount, settlement.payer.as_str()),
        (PRICE, payer.pubkey().to_string().as_str())
    );
    assert!(!settlement.transaction.is_empty());
    assert_eq!(h.token_balance(&payer.pubkey()).await, 9 * PRICE);
    assert_eq!(h.token_balance(&h.market.merchant).await, PRICE);
    assert_eq!(client.spent(), PRICE);
    assert_eq!(h.api.hits(), 1);

    // The same URL again is a new purchase, with a new reference.
    let again = client
        .get(&h.url("/api/one"))
        .await
        .unwrap()
        .settlement
        .unwrap();
    assert_ne!(again.reference, settlement.reference);
    assert_eq!(h.token_balance(&payer.pubkey()).await, 8 * PRICE);
    assert_eq!(h.api.hits(), 2);
}

/// A client that reads mints' decimals from the harness's ledger.
fn client_with_ledger(h: &Harness, payer: &Keypair, policy: SpendingPolicy) -> X402Client {
    X402Client::builder()
        .keypair(payer.insecure_clone())
        .policy(policy)
        .ledger(h.market.ledger.clone())
        .retries(3, Duration::from_millis(50))
        .build()
}

#[tokio::test]
async fn the_per_request_maximum_and_the_budget_refuse_before_signing() {
    let h = Harness::start().await;
    let payer = h.new_payer(10 * PRICE).await;

    let stingy = client_with_ledger(
        &h,
        &payer,
        SpendingPolicy {
            max_per_request: Some(Limit::Decimal("0.005".into())),
            ..Default::default()
        },
    );
    match stingy.get(&h.url("/api/dear")).await {
        Err(ClientError::Policy(refusal)) => {
            assert_eq!(
                (refusal.rule, refusal.amount),
                (PolicyRule::MaxPerRequest, PRICE)
            );
            assert_eq!(refusal.pay_to, h.market.merchant);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(stingy.spent(), 0);

    let budgeted = client_with_ledger(
        &h,
        &payer,
        SpendingPolicy {
            // The local mint is no stablecoin: a limit per request of the buyer's own.
            max_per_request: Some(Limit::Decimal("0.01".into())),
            budget: Some(Limit::Decimal("0.015".into())),
            ..Default::default()
        },
    );
    budgeted.get(&h.url("/api/first")).await.unwrap();
    match budgeted.get(&h.url("/api/second")).await {
        Err(ClientError::Policy(refusal)) => assert_eq!(refusal.rule, PolicyRule::Budget),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        h.token_balance(&payer.pubkey()).await,
        9 * PRICE,
        "one payment, then nothing"
    );
    assert_eq!(
        h.ledger.submits.load(Ordering::SeqCst),
        1,
        "nothing else was signed or submitted"
    );
}

#[tokio::test]
async fn a_challenge_for_a_payee_or_mint_not_allowed_is_refused() {
    let h = Harness::start().await;
    let payer = h.new_payer(PRICE).await;
    for (policy, rule) in [
        (
            SpendingPolicy {
                payees: vec![Pubkey::new_unique()],
                ..capped(&h)
            },
            PolicyRule::Payee,
        ),
        (
            SpendingPolicy {
                mints: vec![Pubkey::new_unique()],
                ..capped(&h)
            },
            PolicyRule::Mint,
        ),
        (
            SpendingPolicy {
                networks: vec!["solana".into()],
                ..Default::default()
            },
            PolicyRule::Network,
        ),
    ] {
        match client(&payer, policy).get(&h.url("/api/elsewhere")).await {
            Err(ClientError::Policy(refusal)) => assert_eq!(refusal.rule, rule),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(h.token_balance(&payer.pubkey()).await, PRICE);
}

#[tokio::test]
async fn a_503_is_retried_with_the_same_payment_and_paid_once() {
    let h = Harness::start().await;
    let payer = h.new_payer(10 * PRICE).await;
    // The payment lands, then the verifier cannot read the receipt once: a 503.
    *h.ledger.failing_reads.lock().unwrap() = 1;
    let client = client(&payer, capped(&h));

    let paid = client.get(&h.url("/api/wobbly")).await.unwrap();

    assert_eq!(paid.response.status(), 200);
    assert_eq!(
        *h.ledger.failing_reads.lock().unwrap(),
        0,
        "the outage happened"
    );
    assert_eq!(
        h.token_balance(&payer.pubkey()).await,
        9 * PRICE,
        "paid exactly once"
    );
    assert_eq!(client.spent(), PRICE);
    assert_eq!(h.api.hits(), 1);
}

#[tokio::test]
async fn the_manual_flow_returns_the_challenge_and_a_refusal_after_paying_says_why() {
    let h = Harness::start().await;
    let payer = h.new_payer(10 * PRICE).await;
    let client = X402Client::builder()
        .keypair(payer.insecure_clone())
        .policy(capped(&h))
        .auto_pay(false)
        .build();

    let challenge = match client.get(&h.url("/api/manual")).await {
        Err(ClientError::PaymentRequired(challenge)) => challenge,
        other => panic!("{other:?}"),
    };
    assert_eq!(challenge.offers[0].amount(), PRICE);
    assert_eq!(
        h.token_balance(&payer.pubkey()).await,
        10 * PRICE,
        "nothing paid yet"
    );

    let payment = client.pay(&challenge).await.unwrap();
    let request = || client.http().get(h.url("/api/manual"));
    let paid = client.send_with(request(), &payment).await.unwrap();
    assert_eq!(paid.response.status(), 200);

    // The same payment twice: the server's reason comes back.
    match client.send_with(request(), &payment).await {
        Err(ClientError::PaymentRefused { reason, .. }) => {
            assert_eq!(reason, "reference_already_used")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(h.token_balance(&payer.pubkey()).await, 9 * PRICE);
}

#[tokio::test]
async fn without_sponsorship_the_client_pays_through_its_ledger() {
    let h = Harness::start_with(false).await;
    let payer = h.new_payer(PRICE).await;
    let sol = h.market.ledger.lamports(&payer.pubkey()).await;

    let without_ledger = client(&payer, capped(&h));
    assert!(matches!(
        without_ledger.get(&h.url("/api/own")).await,
        Err(ClientError::NeedsLedger)
    ));

    let client = X402Client::builder()
        .keypair(payer.insecure_clone())
        .policy(units())
        .ledger(h.market.ledger.clone())
        .build();
    let paid = client.get(&h.url("/api/own")).await.unwrap();
    assert_eq!(paid.response.status(), 200);
    let settlement = paid.settlement.unwrap();
    assert_eq!(h.token_balance(&payer.pubkey()).await, 0);
    assert!(
        h.market.ledger.lamports(&payer.pubkey()).await < sol,
        "the payer paid fee and rent itself"
    );
    assert!(!settlement.transaction.is_empty());
}

/// A hostile server names a program of its own in its offer: a `pay` for it would hand
/// that program the payer's signature and writable token account. Nothing is signed.
#[tokio::test]
async fn an_offer_for_another_program_is_refused_before_signing() {
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    let h = Harness::start().await;
    let payer = h.new_payer(10 * PRICE).await;
    let (mut offer, _) = h.challenge("GET", "/api/hostile").await;
    offer.requirement.program = Pubkey::new_unique();
    let body = serde_json::json!({
        "x402Version": 1,
        "error": "payment_required",
        "accepts": [offer.to_offer().to_v1()],
    });
    let payments = Arc::new(AtomicUsize::new(0));
    let seen = payments.clone();
    let hostile = axum::Router::new().route(
        "/api/hostile",
        axum::routing::get(move |headers: HeaderMap| {
            let seen = seen.clone();
            let body = body.clone();
            async move {
                if headers.contains_key("x-payment") || headers.contains_key("payment-signature") {
                    seen.fetch_add(1, Ordering::SeqCst);
                }
                (StatusCode::PAYMENT_REQUIRED, axum::Json(body)).into_response()
            }
        }),
    );
    let url = format!("{}/api/hostile", x402_testkit::serve(hostile).await);

    let client = client(&payer, SpendingPolicy::default());
    match client.get(&url).await {
        Err(ClientError::Policy(refusal)) => assert_eq!(refusal.rule, PolicyRule::Program),
        other => panic!("{other:?}"),
    }
    assert_eq!(payments.load(Ordering::SeqCst), 0, "no payment was sent");
    assert_eq!(client.spent(), 0);

    // A deployment the buyer chose to trust is paid as any other.
    let mut trusting = capped(&h);
    trusting.programs.push(offer.requirement.program);
    let client = self::client(&payer, trusting);
    assert!(!matches!(
        client.get(&url).await,
        Err(ClientError::Policy(_))
    ));
}

/// Two payments at once through one client cannot together pass its budget.
#[tokio::test]
async fn the_budget_holds_when_two_payments_race() {
    let h = Harness::start().await;
    let payer = h.new_payer(10 * PRICE).await;
    let client = client(
        &payer,
        SpendingPolicy {
            budget: Some(Limit::Units(PRICE)),
            ..capped(&h)
        },
    );
    let (url_a, url_b) = (h.url("/api/a"), h.url("/api/b"));
    let (a, b) = tokio::join!(client.get(&url_a), client.get(&url_b));
    let outcomes = [a, b];
    let paid = outcomes.iter().filter(|o| o.is_ok()).count();
    let refused = outcomes
        .iter()
        .filter(|o| matches!(o, Err(ClientError::Policy(r)) if r.rule == PolicyRule::Budget))
        .count();
    assert_eq!((paid, refused), (1, 1));
    assert_eq!(h.token_balance(&payer.pubkey()).await, 9 * PRICE);
    assert_eq!(client.spent(), PRICE);
}

/// The verifier answers `receipt_not_found` with the same reference while a payment is
/// still landing: the client presents it again instead of paying twice.
#[tokio::test]
async fn a_payment_still_landing_is_presented_again_not_paid_again() {
    let h = Harness::start_with(false).await;
    let payer = h.new_payer(10 * PRICE).await;
    let ledger = std::sync::Arc::new(TestLedger::over(h.market.ledger.clone()).late());
    let client = X402Client::builder()
        .keypair(payer.insecure_clone())
        .policy(units())
        .ledger(ledger.clone())
        .retries(8, Duration::from_millis(100))
        .build();
    let url = h.url("/api/landing");
    let paying = tokio::spawn(async move { client.get(&url).await.map(|p| (p, client.spent())) });

    // The first presentation finds no receipt; then the payment lands.
    let not_found = "x402_refusals_total{reason=\"receipt_not_found\"} 1";
    while !h.metrics().await.contains(not_found) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    ledger.land().await;

    let (paid, spent) = paying.await.unwrap().unwrap();
    assert_eq!(paid.response.status(), 200);
    assert_eq!(
        h.token_balance(&payer.pubkey()).await,
        9 * PRICE,
        "paid once"
    );
    assert_eq!(spent, PRICE);
}

/// A server claims 18 decimals for its token: a decimal limit read with them would approve
/// a million million times more. Without the mint's decimals from a ledger or the table
/// of well-known mints, a decimal limit refuses; a limit in base units still holds.
#[tokio::test]
async fn a_decimal_limit_never_trusts_the_servers_decimals() {
    let h = Harness::start().await;
    let payer = h.new_payer(10 * PRICE).await;
    let (mut offer, _) = h.challenge("GET", "/api/claims").await;
    offer.decimals = 18;
    let challenge = x402_client::Challenge {
        offers: vec![x402_client::Offer::read(&offer.to_offer()).unwrap()],
        unpayable: Vec::new(),
        v2: None,
        error: None,
        request: None,
    };
    let decimal = SpendingPolicy {
        max_per_request: Some(Limit::Decimal("0.05".into())),
        networks: local(&h),
        ..Default::default()
    };
    match client(&payer, decimal.clone()).pay(&challenge).await {
        Err(ClientError::Policy(refusal)) => assert_eq!(refusal.rule, PolicyRule::UnknownDecimals),
        other => panic!("{other:?}"),
    }
    // With the ledger, the mint's own 6 decimals: 0.05 is 50_000 base units, enough.
    let paid = client_with_ledger(&h, &payer, decimal)
        .pay(&challenge)
        .await;
    assert!(paid.is_ok(), "{paid:?}");
    // Base units need no decimals.
    let units = SpendingPolicy {
        max_per_request: Some(Limit::Units(PRICE - 1)),
        ..capped(&h)
    };
    match client(&payer, units).pay(&challenge).await {
        Err(ClientError::Policy(refusal)) => assert_eq!(refusal.rule, PolicyRule::MaxPerRequest),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn preferring_exact_pays_the_exact_offer_once_with_mint_facts_from_the_ledger() {
    let h = Harness::start().await;
    let payer = h.new_payer(3 * PRICE).await;
    let client = X402Client::builder()
        .keypair(payer.insecure_clone())
        .policy(units())
        .ledger(h.market.ledger.clone())
        .prefer(&["exact"])
        .retries(3, Duration::from_millis(50))
        .build();
    let paid = client.get(&h.url("/api/exact")).await.unwrap();
    assert_eq!(paid.response.status(), 200);
    let settlement = paid.settlement.unwrap();
    assert_eq!(settlement.scheme, "exact");
    assert_eq!(settlement.receipt, None);
    let reference = settlement
        .reference
        .expect("our verifier's memo is a reference");
    let grant = h.gate.store().grant(&reference).await.unwrap().unwrap();
    assert_eq!(grant.scheme, "exact");
    assert_eq!(h.token_balance(&payer.pubkey()).await, 2 * PRICE);
    assert_eq!(h.token_balance(&h.market.merchant).await, PRICE);
    assert_eq!(h.api.hits(), 1);

    // Without a ledger, the mint is not a well-known one: its facts are never the
    // server's, so nothing is signed (even on a network allowed explicitly).
    let local = x402_protocol::Ledger::network(h.market.ledger.as_ref());
    let blind = X402Client::builder()
        .keypair(payer.insecure_clone())
        .policy(SpendingPolicy {
            networks: vec![local.caip2().to_string(), local.v1_name().to_string()],
            ..capped(&h)
        })
        .prefer(&["exact"])
        .build();
    assert!(matches!(
        blind.get(&h.url("/api/exact")).await,
        Err(ClientError::UnknownMint(mint)) if mint == h.market.mint
    ));
    assert_eq!(blind.spent(), 0);
    assert_eq!(h.token_balance(&payer.pubkey()).await, 2 * PRICE);
}

/// A stock seller's 402: an empty body, the offers in the header only.
async fn stock_402(offers: Vec<serde_json::Value>) -> String {
    use axum::response::IntoResponse;
    let header = x402_protocol::wire::encode_header(&serde_json::json!({
        "x402Version": 2,
        "resource": {"url": "http://stock.example/paid"},
        "accepts": offers,
    }));
    let app = axum::Router::new().route(
        "/paid",
        axum::routing::get(move || {
            let header = header.clone();
            async move {
                (
                    axum::http::StatusCode::PAYMENT_REQUIRED,
                    [("PAYMENT-REQUIRED", header)],
                    axum::Json(serde_json::json!({})),
                )
                    .into_response()
            }
        }),
    );
    let url = format!("{}/paid", x402_testkit::serve(app).await);
    url
}

#[tokio::test]
async fn a_stock_402_with_nothing_payable_says_what_was_offered_and_why() {
    let url = stock_402(vec![
        serde_json::json!({
            "scheme": "exact", "network": "eip155:8453", "amount": "1000",
            "asset": "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913",
            "payTo": "0x0000000000000000000000000000000000000001",
            "maxTimeoutSeconds": 60, "extra": {}
        }),
        serde_json::json!({
            "scheme": "deferred", "network": "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1", "amount": "1000",
            "asset": "4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU",
            "payTo": Pubkey::new_unique().to_string(), "maxTimeoutSeconds": 60, "extra": {}
        }),
        // A scheme this client pays, without what its offers must say.
        serde_json::json!({
            "scheme": "upto", "network": "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1", "amount": "1000",
            "asset": "4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU",
            "payTo": Pubkey::new_unique().to_string(), "maxTimeoutSeconds": 60, "extra": {}
        }),
    ])
    .await;
    let client = X402Client::builder().keypair(Keypair::new()).build();
    match client.get(&url).await {
        Err(ClientError::NoPayableOffer { offered }) => {
            assert_eq!(offered.len(), 3, "{offered:?}");
            assert!(offered[0].contains("eip155:8453") && offered[0].contains("not Solana"));
            assert!(
                offered[1].starts_with("deferred on solana:")
                    && offered[1].contains("scheme deferred")
            );
            assert!(
                offered[2].starts_with("upto on solana:") && offered[2].contains("`extra`"),
                "{offered:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(client.spent(), 0);
}

/// A Token-2022 mint that takes a fee on every transfer: the payee would get less.
fn mint_with_a_transfer_fee() -> x402_protocol::LedgerAccount {
    use anchor_spl::token_2022::spl_token_2022::extension::{
        transfer_fee::TransferFeeConfig, BaseStateWithExtensionsMut, ExtensionType,
        StateWithExtensionsMut,
    };
    use anchor_spl::token_2022::spl_token_2022::{self, state::Mint};
    let len = ExtensionType::try_calculate_account_len::<Mint>(&[ExtensionType::TransferFeeConfig])
        .unwrap();
    let mut data = vec![0; len];
    let mut mint = StateWithExtensionsMut::<Mint>::unpack_uninitialized(&mut data).unwrap();
    mint.init_extension::<TransferFeeConfig>(true).unwrap();
    mint.base.decimals = 6;
    mint.base.is_initialized = true;
    mint.pack_base();
    mint.init_account_type().unwrap();
    x402_protocol::LedgerAccount {
        owner: spl_token_2022::ID,
        lamports: 1_000_000_000,
        data,
    }
}

#[tokio::test]
async fn an_exact_offer_in_a_mint_that_takes_a_transfer_fee_is_not_signed() {
    let h = Harness::start().await;
    let mint = Pubkey::new_unique();
    h.market
        .ledger
        .set_account(&mint, &mint_with_a_transfer_fee())
        .await;
    let url = stock_402(vec![serde_json::json!({
        "scheme": "exact", "network": "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1", "amount": "1000",
        "asset": mint.to_string(), "payTo": Pubkey::new_unique().to_string(),
        "maxTimeoutSeconds": 60,
        "extra": {"feePayer": Pubkey::new_unique().to_string(), "recentBlockhash": "11111111111111111111111111111111"}
    })])
    .await;
    let payer = Keypair::new();
    // A devnet label over the local ledger: paid only as the user allows it explicitly;
    // in a mint that is no stablecoin, under a limit of the user's own.
    let devnet = SpendingPolicy {
        networks: vec!["solana-devnet".into()],
        ..units()
    };
    let client = client_with_ledger(&h, &payer, devnet);
    assert!(matches!(
        client.get(&url).await,
        Err(ClientError::WithholdingMint(refused)) if refused == mint
    ));
    assert_eq!(client.spent(), 0);
}

#[tokio::test]
async fn an_exact_offer_naming_the_payer_as_fee_payer_is_not_signed() {
    let payer = Keypair::new();
    let usdc = "4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU";
    let url = stock_402(vec![serde_json::json!({
        "scheme": "exact", "network": "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1", "amount": "1000",
        "asset": usdc, "payTo": Pubkey::new_unique().to_string(), "maxTimeoutSeconds": 60,
        "extra": {"feePayer": payer.pubkey().to_string(), "recentBlockhash": "11111111111111111111111111111111"}
    })])
    .await;
    let devnet = SpendingPolicy {
        networks: vec!["solana-devnet".into()],
        ..Default::default()
    };
    let client = client(&payer, devnet);
    assert!(matches!(
        client.get(&url).await,
        Err(ClientError::MalformedChallenge(why)) if why.contains("fee payer")
    ));
    assert_eq!(client.spent(), 0);
}

use crate::client::seller::{self, Answer, Seller, DEVNET, DEVNET_USDC, MAINNET_USDC};

/// A client with no policy of its own but the networks it allows: the default cap holds.
fn on_networks(payer: &Keypair, networks: &[&str]) -> X402Client {
    client(
        payer,
        SpendingPolicy {
            networks: networks.iter().map(|n| n.to_string()).collect(),
            ..Default::default()
        },
    )
}

/// A hostile seller asks a million USDC for a request. Without a limit of the buyer's
/// own, the client pays at most 1.00 of the token (USDC's decimals it knows itself), as
/// stock x402 clients cap a payment at $1: nothing is signed or sent.
#[tokio::test]
async fn without_a_limit_a_million_usdc_is_refused_and_one_is_paid() {
    let payer = Keypair::new();
    let million = 1_000_000 * 1_000_000;
    let hostile = Seller::start(
        vec![seller::exact_offer(
            DEVNET,
            DEVNET_USDC,
            million,
            &seller::reference(1),
        )],
        "everything you have",
        vec![],
    )
    .await;
    let client = on_networks(&payer, &["solana-devnet"]);
    match client.get(&hostile.url).await {
        Err(ClientError::Policy(refusal)) => {
            assert_eq!(
                (refusal.rule, refusal.amount),
                (PolicyRule::MaxPerRequest, million)
            );
            assert!(
                refusal.detail.contains("at most 1 per request"),
                "{}",
                refusal.detail
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(hostile.presented(), vec![], "nothing was sent");
    assert_eq!(client.spent(), 0);

    // One base unit over 1.00 is refused; 1.00 itself is paid.
    for (amount, paid) in [(1_000_001, false), (1_000_000, true)] {
        let seller = Seller::start(
            vec![seller::exact_offer(
                DEVNET,
                DEVNET_USDC,
                amount,
                &seller::reference(2),
            )],
            "",
            vec![],
        )
        .await;
        let outcome = client.get(&seller.url).await;
        assert_eq!(outcome.is_ok(), paid, "{amount}: {outcome:?}");
        assert_eq!(seller.presented().len(), usize::from(paid));
    }
    assert_eq!(client.spent(), 1_000_000);

    // Only an explicit choice lifts the cap.
    let unlimited = self::client(
        &payer,
        SpendingPolicy {
            max_per_request: None,
            networks: vec!["solana-devnet".into()],
            ..Default::default()
        },
    );
    assert_eq!(
        unlimited.get(&hostile.url).await.unwrap().response.status(),
        200
    );
    assert_eq!(hostile.presented().len(), 1);
}

/// A plain SPL Token mint of `decimals`, as a ledger holds it.
fn plain_mint(decimals: u8) -> x402_protocol::LedgerAccount {
    use anchor_lang::solana_program::program_pack::Pack;
    use anchor_spl::token::spl_token::{self, state::Mint};
    let mut data = vec![0; Mint::LEN];
    let mint = Mint {
        decimals,
        is_initialized: true,
        ..Default::default()
    };
    Mint::pack(mint, &mut data).unwrap();
    x402_protocol::LedgerAccount {
        owner: spl_token::ID,
        lamports: 1_000_000_000,
        data,
    }
}

/// A hostile seller picks the mint: 1.00 of a token whose decimals the buyer's ledger
/// reads (9, as wSOL's; or wBTC, or anything the buyer holds) is no dollar. The default
/// cap of 1.00 holds in a well-known stablecoin only: an offer in any other mint is
/// refused before signing, naming the mint and how to allow it, unless the buyer gives a
/// limit of its own (base units, or a decimal read with the ledger's decimals) or none.
#[tokio::test]
async fn the_default_cap_pays_only_a_well_known_stablecoin_whatever_the_ledger_knows() {
    let h = Harness::start().await;
    let payer = Keypair::new();
    let token = Pubkey::new_unique();
    h.market.ledger.set_account(&token, &plain_mint(9)).await;
    let one_token = 1_000_000_000;
    let network = x402_protocol::Ledger::network(h.market.ledger.as_ref()).caip2();
    let hostile = Seller::start(
        vec![seller::exact_offer(
            network,
            &token.to_string(),
            one_token,
            &seller::reference(9),
        )],
        "",
        vec![],
    )
    .await;

    let default = client_with_ledger(&h, &payer, SpendingPolicy::default());
    match default.get(&hostile.url).await {
        Err(ClientError::Policy(refusal)) => {
            assert_eq!(
                (refusal.rule, refusal.mint, refusal.amount),
                (PolicyRule::NotAStablecoin, token, one_token)
            );
            assert!(
                refusal.detail.contains(&token.to_string())
                    && refusal.detail.contains("--max-units"),
                "{}",
                refusal.detail
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(hostile.presented(), vec![], "nothing signed or sent");
    assert_eq!(default.spent(), 0);

    // A decimal limit of the buyer's own is read with the ledger's 9 decimals.
    let half = client_with_ledger(
        &h,
        &payer,
        SpendingPolicy {
            max_per_request: Some(Limit::Decimal("0.5".into())),
            ..Default::default()
        },
    );
    match half.get(&hostile.url).await {
        Err(ClientError::Policy(refusal)) => assert_eq!(refusal.rule, PolicyRule::MaxPerRequest),
        other => panic!("{other:?}"),
    }
    assert_eq!(hostile.presented(), vec![]);

    // The buyer's own limit, in either form, or none: paid.
    for max_per_request in [
        Some(Limit::Decimal("1".into())),
        Some(Limit::Units(one_token)),
        None,
    ] {
        let policy = SpendingPolicy {
            max_per_request: max_per_request.clone(),
            ..Default::default()
        };
        let outcome = client_with_ledger(&h, &payer, policy)
            .get(&hostile.url)
            .await;
        assert!(outcome.is_ok(), "{max_per_request:?}: {outcome:?}");
    }
    assert_eq!(hostile.presented().len(), 3);
}

/// Our own verifier's offer in its local mint (whose currency it calls "USDC": the
/// seller's word) is no stablecoin the client knows: the default cap refuses it, with a
/// ledger or without, whatever decimals the server claims; the buyer's own limit (base
/// units, a decimal with the ledger's decimals, or none) pays it.
#[tokio::test]
async fn the_default_cap_refuses_the_verifiers_local_mint_unless_the_buyer_gives_a_limit() {
    let h = Harness::start().await;
    let payer = h.new_payer(10 * PRICE).await;

    let on_local = SpendingPolicy {
        networks: local(&h),
        ..Default::default()
    };
    let without_ledger = client(&payer, on_local.clone());
    let with_ledger = client_with_ledger(&h, &payer, SpendingPolicy::default());
    for default in [&without_ledger, &with_ledger] {
        match default.get(&h.url("/api/default")).await {
            Err(ClientError::Policy(refusal)) => {
                assert_eq!(refusal.rule, PolicyRule::NotAStablecoin);
                assert!(
                    refusal.detail.contains(&h.market.mint.to_string())
                        && refusal.detail.contains("--max-units"),
                    "{}",
                    refusal.detail
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(default.spent(), 0);
    }
    assert_eq!(h.token_balance(&payer.pubkey()).await, 10 * PRICE);

    let status = |client: X402Client, path: &'static str| {
        let url = h.url(path);
        async move { client.get(&url).await.unwrap().response.status() }
    };
    assert_eq!(status(client(&payer, capped(&h)), "/api/units").await, 200);
    let no_limit = SpendingPolicy {
        max_per_request: None,
        ..on_local
    };
    assert_eq!(status(client(&payer, no_limit), "/api/none").await, 200);
    let decimal = SpendingPolicy {
        max_per_request: Some(Limit::Decimal("0.01".into())),
        ..Default::default()
    };
    let read = client_with_ledger(&h, &payer, decimal);
    assert_eq!(status(read, "/api/read").await, 200);
    assert_eq!(h.token_balance(&payer.pubkey()).await, 7 * PRICE);
}

/// Without a ledger, a sponsored `receipt` offer is signed over the seller's blockhash,
/// as an `exact` one is: it lands wherever that blockhash is, whatever the label says
/// (and the local mint says nothing of its cluster). Paid only on a network the buyer
/// allowed explicitly; with a ledger of its own, the ledger's network is checked instead.
#[tokio::test]
async fn without_a_ledger_a_sponsored_receipt_is_paid_only_on_a_network_allowed_explicitly() {
    let h = Harness::start().await;
    let payer = h.new_payer(10 * PRICE).await;

    let unconsented = client(&payer, units());
    match unconsented.get(&h.url("/api/anywhere")).await {
        Err(ClientError::Policy(refusal)) => {
            assert_eq!(refusal.rule, PolicyRule::Network);
            assert!(
                refusal.detail.starts_with("receipt on ") && refusal.detail.contains("explicitly"),
                "{}",
                refusal.detail
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(unconsented.spent(), 0);
    let elsewhere = SpendingPolicy {
        networks: vec!["solana-devnet".into()],
        ..units()
    };
    match client(&payer, elsewhere).get(&h.url("/api/anywhere")).await {
        Err(ClientError::Policy(refusal)) => assert_eq!(refusal.rule, PolicyRule::Network),
        other => panic!("{other:?}"),
    }
    assert_eq!(h.token_balance(&payer.pubkey()).await, 10 * PRICE);
    assert_eq!(
        h.ledger.submits.load(Ordering::SeqCst),
        0,
        "nothing submitted"
    );

    let named = client(&payer, capped(&h)).get(&h.url("/api/named")).await;
    assert_eq!(named.unwrap().response.status(), 200);
    let ledger = client_with_ledger(&h, &payer, units())
        .get(&h.url("/api/ledger"))
        .await;
    assert_eq!(ledger.unwrap().response.status(), 200);
    assert_eq!(h.token_balance(&payer.pubkey()).await, 8 * PRICE);
}

/// An offer labelled devnet but priced in mainnet USDC (with, say, a mainnet blockhash)
/// would move real money: refused before signing, in either scheme, even with devnet
/// allowed explicitly. Mainnet USDC labelled mainnet is what it says.
#[tokio::test]
async fn an_offer_labelled_devnet_in_mainnet_usdc_is_refused_before_signing() {
    let payer = Keypair::new();
    let mislabelled = Seller::start(
        vec![seller::exact_offer(
            DEVNET,
            MAINNET_USDC,
            1000,
            &seller::reference(3),
        )],
        "",
        vec![],
    )
    .await;
    let client = on_networks(&payer, &["solana-devnet", DEVNET]);
    match client.get(&mislabelled.url).await {
        Err(ClientError::Policy(refusal)) => {
            assert_eq!(refusal.rule, PolicyRule::NetworkMismatch);
            assert_eq!(refusal.network, DEVNET);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(mislabelled.presented(), vec![]);

    // A `receipt` offer, the same: our own verifier's, relabelled.
    let h = Harness::start().await;
    let (mut offer, _) = h.challenge("GET", "/api/relabelled").await;
    offer.network = "solana-devnet".into();
    offer.requirement.mint = MAINNET_USDC.parse().unwrap();
    let body = serde_json::json!({
        "x402Version": 1, "error": "payment_required", "accepts": [offer.to_offer().to_v1()],
    });
    let app = axum::Router::new().route(
        "/paid",
        axum::routing::get(move || {
            let body = body.clone();
            async move { (axum::http::StatusCode::PAYMENT_REQUIRED, axum::Json(body)) }
        }),
    );
    let url = format!("{}/paid", x402_testkit::serve(app).await);
    match client.get(&url).await {
        Err(ClientError::Policy(refusal)) => assert_eq!(refusal.rule, PolicyRule::NetworkMismatch),
        other => panic!("{other:?}"),
    }
    assert_eq!(client.spent(), 0);

    let honest = Seller::start(
        vec![seller::exact_offer(
            "solana",
            MAINNET_USDC,
            1000,
            &seller::reference(4),
        )],
        "",
        vec![],
    )
    .await;
    let mainnet = on_networks(&payer, &["solana"]);
    assert_eq!(
        mainnet.get(&honest.url).await.unwrap().response.status(),
        200
    );
    assert_eq!(honest.presented().len(), 1);
}

/// Without a ledger to read the cluster from (its genesis hash), nothing but the seller's
/// word says where an `exact` payment lands: it is paid only on a network the buyer named.
#[tokio::test]
async fn without_a_ledger_exact_is_paid_only_on_a_network_allowed_explicitly() {
    let payer = Keypair::new();
    let seller = Seller::start(
        vec![seller::exact_offer(
            DEVNET,
            DEVNET_USDC,
            1000,
            &seller::reference(5),
        )],
        "",
        vec![],
    )
    .await;
    match client(&payer, SpendingPolicy::default())
        .get(&seller.url)
        .await
    {
        Err(ClientError::Policy(refusal)) => {
            assert_eq!(refusal.rule, PolicyRule::Network);
            assert!(refusal.detail.contains("explicitly"), "{}", refusal.detail);
        }
        other => panic!("{other:?}"),
    }
    match on_networks(&payer, &["solana"]).get(&seller.url).await {
        Err(ClientError::Policy(refusal)) => assert_eq!(refusal.rule, PolicyRule::Network),
        other => panic!("{other:?}"),
    }
    assert_eq!(seller.presented(), vec![]);
    // Devnet by its v1 name allows the offer naming it by its CAIP-2 id.
    let allowed = on_networks(&payer, &["solana-devnet"]);
    assert_eq!(
        allowed.get(&seller.url).await.unwrap().response.status(),
        200
    );
    assert_eq!(seller.presented().len(), 1);
}

/// With a ledger, the offer must name the ledger's network. A local ledger (a validator
/// a stock seller announces as devnet) pays a devnet label only when the buyer allows
/// devnet explicitly; a public one never pays another network's label.
#[tokio::test]
async fn with_a_ledger_the_offer_names_the_ledgers_network() {
    let h = Harness::start().await;
    let payer = h.new_payer(10 * PRICE).await;
    let offer = |seed| {
        seller::exact_offer(
            DEVNET,
            &h.market.mint.to_string(),
            1000,
            &seller::reference(seed),
        )
    };
    let seller = Seller::start(vec![offer(6)], "", vec![]).await;
    let local = client_with_ledger(&h, &payer, SpendingPolicy::default());
    match local.get(&seller.url).await {
        Err(ClientError::Policy(refusal)) => {
            assert_eq!(refusal.rule, PolicyRule::NetworkMismatch);
            let ledger = x402_protocol::Ledger::network(h.market.ledger.as_ref());
            assert!(
                refusal.detail.contains(ledger.caip2()),
                "{}",
                refusal.detail
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(seller.presented(), vec![]);
    let consenting = SpendingPolicy {
        networks: vec!["solana-devnet".into()],
        ..units()
    };
    let local = client_with_ledger(&h, &payer, consenting.clone());
    assert_eq!(local.get(&seller.url).await.unwrap().response.status(), 200);
    assert_eq!(seller.presented().len(), 1);

    // A mainnet node: a devnet label is refused, allowed or not.
    let mainnet = X402Client::builder()
        .keypair(payer.insecure_clone())
        .policy(consenting)
        .ledger(std::sync::Arc::new(
            TestLedger::over(h.market.ledger.clone()).named(x402_protocol::Network::mainnet()),
        ))
        .build();
    let seller = Seller::start(vec![offer(7)], "", vec![]).await;
    match mainnet.get(&seller.url).await {
        Err(ClientError::Policy(refusal)) => assert_eq!(refusal.rule, PolicyRule::NetworkMismatch),
        other => panic!("{other:?}"),
    }
    assert_eq!(seller.presented(), vec![]);
    assert_eq!(mainnet.spent(), 0);
}

/// The seller answers the paid request 503 (retried), then 500 (it gives the grant
/// back): the client keeps the payment, and presents that same payment again, with the
/// payer's proof for the reference its Memo carries, on the retry and when the caller
/// presents the kept payment. Nothing is signed twice.
#[tokio::test]
async fn after_a_5xx_the_same_payment_is_kept_and_presented_again_with_the_payers_proof() {
    let payer = Keypair::new();
    let reference = seller::reference(8);
    let seller = Seller::start(
        vec![seller::exact_offer(DEVNET, DEVNET_USDC, 1000, &reference)],
        "",
        vec![
            Answer::status(503, "busy"),
            Answer::status(500, "upstream broke"),
        ],
    )
    .await;
    let client = on_networks(&payer, &["solana-devnet"]);

    let payment = match client.get(&seller.url).await {
        Err(ClientError::ServerError {
            status,
            body,
            payment,
        }) => {
            assert_eq!((status.as_u16(), body.as_str()), (500, "upstream broke"));
            payment
        }
        other => panic!("{other:?}"),
    };
    assert!(payment.presented);
    assert_eq!(payment.offer.reference(), Some(reference));

    // Kept as JSON (what `x402 fetch` writes), read back, presented again.
    let kept = x402_client::Payment::from_json(&payment.to_json()).unwrap();
    let paid = client
        .send_with(client.http().get(&seller.url), &kept)
        .await
        .unwrap();
    assert_eq!(paid.response.status(), 200);

    let presented = seller.presented();
    assert_eq!(presented.len(), 3, "{presented:?}");
    assert!(
        presented.iter().all(|p| p.payment == presented[0].payment),
        "the same signed payment each time"
    );
    assert_eq!(
        presented[0].proof, None,
        "a first presentation needs no proof"
    );
    for again in &presented[1..] {
        let proof = again
            .proof
            .as_deref()
            .expect("presented again with a proof");
        assert!(seller.proves(proof, &payer, &reference), "{proof}");
    }
    assert!(
        !seller.proves(
            presented[1].proof.as_deref().unwrap(),
            &Keypair::new(),
            &reference
        ),
        "the proof is the payer's"
    );
    assert_eq!(
        *seller.challenges.lock().unwrap(),
        1,
        "one challenge, one payment"
    );
    assert_eq!(client.spent(), 1000, "signed once");
}

/// The verifier's upstream fails (the grant is given back): the same payment, presented
/// again with its proof, buys the request; paid once.
#[tokio::test]
async fn a_payment_given_back_by_our_verifier_is_presented_again_and_paid_once() {
    let h = Harness::start().await;
    let payer = h.new_payer(10 * PRICE).await;
    h.api.set_mode(UpstreamMode::Fail);
    let client = client(&payer, capped(&h));
    let url = h.url("/api/given-back");
    let payment = match client.get(&url).await {
        Err(ClientError::ServerError {
            status, payment, ..
        }) => {
            assert_eq!(status, 500);
            payment
        }
        other => panic!("{other:?}"),
    };
    h.api.set_mode(UpstreamMode::Ok);
    let paid = client
        .send_with(client.http().get(&url), &payment)
        .await
        .unwrap();
    assert_eq!(paid.response.status(), 200);
    assert_eq!(
        paid.response.text().await.unwrap(),
        "served /api/given-back body="
    );
    assert_eq!(
        h.token_balance(&payer.pubkey()).await,
        9 * PRICE,
        "paid once"
    );
    assert_eq!(client.spent(), PRICE);
}

#[tokio::test]
async fn our_client_pays_our_metered_route_what_the_answer_cost_within_a_cap_on_its_ceiling() {
    let h = Harness::start().await;
    let payer = h.new_payer(METERED_MAX).await;
    let url = h.url("/metered?charge=0.0125");

    // The cap applies to the ceiling the buyer escrows, not to what it may be charged.
    let below = client_with_ledger(
        &h,
        &payer,
        SpendingPolicy {
            max_per_request: Some(Limit::Units(METERED_MAX - 1)),
            ..Default::default()
        },
    );
    match below.get(&url).await {
        Err(ClientError::Policy(refusal)) => assert_eq!(
            (refusal.rule, refusal.amount),
            (PolicyRule::MaxPerRequest, METERED_MAX)
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(h.ledger.submits.load(Ordering::SeqCst), 0, "nothing signed");

    let client = client_with_ledger(
        &h,
        &payer,
        SpendingPolicy {
            max_per_request: Some(Limit::Units(METERED_MAX)),
            ..Default::default()
        },
    );
    let paid = client.get(&url).await.unwrap();
    assert_eq!(paid.response.status(), 200);
    let settlement = paid.settlement.expect("a settlement");
    assert_eq!(settlement.scheme, "upto");
    assert_eq!(
        (settlement.amount, settlement.maximum),
        (12_500, Some(METERED_MAX))
    );
    assert_eq!(h.token_balance(&payer.pubkey()).await, METERED_MAX - 12_500);
    assert_eq!(h.token_balance(&h.market.merchant).await, 12_500);
    assert_eq!(h.api.hits(), 1);
}

/// A `batch-settlement` buyer: the harness's ledger (for the mint), a deposit of at most
/// ten requests, its channels kept in `book`.
fn batch_client(h: &Harness, payer: &Keypair, book: &std::path::Path) -> X402Client {
    X402Client::builder()
        .keypair(payer.insecure_clone())
        .policy(SpendingPolicy {
            max_deposit: Some(Limit::Units(10 * PRICE)),
            ..units()
        })
        .ledger(h.market.ledger.clone())
        .prefer(&["batch-settlement"])
        .channel_book(x402_client::ChannelBook::open(book).unwrap())
        .retries(3, Duration::from_millis(50))
        .build()
}

#[tokio::test]
async fn a_batch_buyer_deposits_once_pays_vouchers_without_challenges_restarts_and_closes() {
    let h = Harness::start().await;
    let payer = h.new_payer(20 * PRICE).await;
    let book = tempfile::tempdir().unwrap();
    let url = h.url("/batch");
    let before = h.challenges_issued().await;
    let client = batch_client(&h, &payer, book.path());
    for n in 1..=6u64 {
        let paid = client.get(&url).await.unwrap();
        assert_eq!(paid.response.status(), 200, "request {n}");
        let settlement = paid.settlement.unwrap();
        assert_eq!(settlement.scheme, "batch-settlement");
        assert_eq!(settlement.batch_charged, Some(n * PRICE));
    }
    assert_eq!(
        h.challenges_issued().await - before,
        1,
        "one 402, then vouchers sent at once"
    );
    assert_eq!(
        h.token_balance(&payer.pubkey()).await,
        10 * PRICE,
        "the policy's deposit, escrowed once"
    );
    assert_eq!(client.spent(), 6 * PRICE);

    // A buyer that restarts continues the same channel where the seller left it.
    drop(client);
    let client = batch_client(&h, &payer, book.path());
    let held = client.channel_book().channels();
    assert_eq!(held.len(), 1);
    assert_eq!((held[0].confirmed, held[0].signed), (6 * PRICE, 6 * PRICE));
    for _ in 7..=12 {
        assert_eq!(client.get(&url).await.unwrap().response.status(), 200);
    }
    let held = &client.channel_book().channels();
    assert_eq!(held.len(), 1, "the deposit ran out at ten: topped up");
    assert_eq!(
        (held[0].deposit, held[0].confirmed),
        (20 * PRICE, 12 * PRICE)
    );
    assert_eq!(h.api.hits(), 12);

    // Closing returns the rest at once; here after the last answer was lost (the book
    // one request behind the seller): the seller's correction, the buyer's own voucher,
    // is taken and the close sent again.
    client
        .channel_book()
        .update(&held[0].channel, |held| held.confirmed -= PRICE)
        .unwrap();
    let refunded = client.close_channel(&held[0].channel).await.unwrap();
    assert_eq!(refunded, 8 * PRICE);
    assert_eq!(
        h.token_balance(&payer.pubkey()).await,
        20 * PRICE - 12 * PRICE,
        "exactly the sum of the prices was paid"
    );
    assert!(client.channel_book().channels()[0].closed);
    assert_eq!(h.token_balance(&h.market.merchant).await, 12 * PRICE);
}

#[tokio::test]
async fn a_buyer_trusting_the_operator_pays_what_each_answer_cost_on_the_operators_receipts() {
    let h = Harness::start().await;
    // The route's price, 0.05, is a ceiling in the server mode.
    let ceiling = 50_000;
    let payer = h.new_payer(8 * ceiling).await;
    let book = tempfile::tempdir().unwrap();
    let trusting = |operator: Pubkey| {
        X402Client::builder()
            .keypair(payer.insecure_clone())
            .policy(SpendingPolicy {
                max_per_request: Some(Limit::Units(ceiling)),
                max_deposit: Some(Limit::Units(4 * ceiling)),
                trusted_operators: vec![TrustedOperator {
                    operator,
                    max_deposit: 3 * ceiling,
                }],
                ..Default::default()
            })
            .ledger(h.market.ledger.clone())
            .prefer(&["batch-settlement"])
            .channel_book(x402_client::ChannelBook::open(book.path()).unwrap())
            .retries(3, Duration::from_millis(50))
            .build()
    };
    let url = h.url("/batch/metered");
    // Trusting another operator, the buyer pays the client mode's offer: the price.
    let stranger = trusting(Keypair::new().pubkey());
    let paid = stranger.get(&format!("{url}?charge=0.01")).await.unwrap();
    let settlement = paid.settlement.unwrap();
    assert_eq!(
        (settlement.batch_charged, settlement.batch_voucher),
        (Some(ceiling), None)
    );
    let client_mode = stranger.channel_book().channels()[0].channel.clone();
    stranger.close_channel(&client_mode).await.unwrap();
    drop(stranger);

    // Trusting the seller's operator, it pays the server mode's offer: each answer what
    // it said it cost, the deposit capped at the operator's trust.
    let client = trusting(operator().pubkey());
    for (charge, total) in [("0.0125", 12_500), ("0.02", 32_500), ("0.005", 37_500)] {
        let paid = client.get(&format!("{url}?charge={charge}")).await.unwrap();
        assert_eq!(paid.response.status(), 200);
        let receipt = paid
            .settlement
            .unwrap()
            .batch_voucher
            .expect("the operator's voucher");
        assert_eq!(receipt.max_claimable_amount, total.to_string());
    }
    let held: Vec<_> = client
        .channel_book()
        .channels()
        .into_iter()
        .filter(|held| !held.closed)
        .collect();
    assert_eq!(held.len(), 1);
    assert_eq!(
        (held[0].deposit, held[0].confirmed),
        (3 * ceiling, 37_500),
        "the deposit at the operator's cap"
    );
    let before = h.token_balance(&payer.pubkey()).await;
    let refunded = client.close_channel(&held[0].channel).await.unwrap();
    assert_eq!(refunded, 3 * ceiling - 37_500);
    assert_eq!(h.token_balance(&payer.pubkey()).await, before + refunded);
}
