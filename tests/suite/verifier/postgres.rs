//! Grants in PostgreSQL, shared by replicas: a real server, as `scripts/start-postgres`
//! (run by `.ci/run`) starts it.

use futures_util::future::join_all;
use solana_signer::Signer;
use x402_verifier::{Grant, GrantStore, Standing};

use super::support::*;

/// The test server's URL. The tests need one: they do not pass silently without it.
fn postgres_url() -> String {
    std::env::var("X402_TEST_POSTGRES_URL").expect(
        "X402_TEST_POSTGRES_URL names the PostgreSQL server for these tests: \
         `export X402_TEST_POSTGRES_URL=$(scripts/start-postgres)` (as .ci/run does)",
    )
}

fn grant(reference: &str) -> Grant {
    Grant {
        reference: reference.into(),
        method: "GET".into(),
        path: "/api/pg".into(),
        payer: "payer".into(),
        amount: u64::MAX,
        mint: "mint".into(),
        scheme: "receipt".into(),
        receipt: Some("receipt".into()),
        transaction: None,
        granted_at: 7,
    }
}

#[tokio::test]
async fn a_postgres_store_grants_a_reference_once_until_released() {
    let store = GrantStore::connect(&postgres_url()).await.unwrap();
    let reference =
        x402_protocol::Reference(solana_keypair::Keypair::new().pubkey().to_bytes()).to_string();

    let attempts = (0..50).map(|_| {
        let store = store.clone();
        let grant = grant(&reference);
        tokio::spawn(async move { store.try_grant(&grant, None).await.unwrap() })
    });
    let winners = join_all(attempts)
        .await
        .into_iter()
        .filter(|won| *won.as_ref().unwrap())
        .count();
    assert_eq!(winners, 1, "one winner among concurrent grants");

    let stored = store
        .grants()
        .await
        .unwrap()
        .into_iter()
        .find(|g| g.reference == reference)
        .unwrap();
    assert_eq!(
        stored,
        grant(&reference),
        "u64::MAX and every field round-trip"
    );
    store.release(&reference, 8).await.unwrap();
    assert_eq!(
        store.standing(&reference).await.unwrap(),
        Standing::Released {
            payer: "payer".into()
        }
    );
    assert!(
        !store.try_grant(&grant(&reference), None).await.unwrap(),
        "given back, it is taken by its payer only"
    );
    assert!(
        store
            .try_grant(&grant(&reference), Some("payer"))
            .await
            .unwrap(),
        "granted again to its payer after release"
    );
}

#[tokio::test]
async fn two_replicas_sharing_postgres_serve_one_paid_reference_once() {
    let h = Harness::start_on(true, Some(postgres_url())).await;
    let replica = h.replica().await;
    let payer = h.new_payer(PRICE).await;
    let (offer, _) = h.challenge("GET", "/api/shared").await;
    h.pay_on_chain(&offer.requirement, &payer).await;
    // The payer's proof names the host it presents to: each replica has its own here
    // (behind a load balancer they share one).
    let signed = |base: &str| {
        let host = base.trim_start_matches("http://");
        let target = x402_protocol::ProofTarget {
            method: "GET",
            path: "/api/shared",
            host,
        };
        let proof = x402_protocol::sign_proof(&payer, &offer.requirement.reference, &target);
        format!("{}:{proof}", offer.requirement.reference)
    };
    let proofs = [signed(&h.url), signed(&replica)];

    let requests = (0..100).map(|i| {
        let base = if i % 2 == 0 {
            h.url.clone()
        } else {
            replica.clone()
        };
        let http = h.http.clone();
        let proof = proofs[i % 2].clone();
        async move {
            let response = http
                .get(format!("{base}/api/shared"))
                .header("X-Payment-Proof", proof)
                .send()
                .await;
            response.unwrap().status().as_u16()
        }
    });
    let statuses = join_all(requests).await;

    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(statuses.iter().filter(|s| **s == 402).count(), 99);
    assert_eq!(h.api.hits(), 1);
}

#[tokio::test]
async fn replicas_sharing_postgres_take_one_submission_lease_per_reference() {
    let store = GrantStore::connect(&postgres_url()).await.unwrap();
    let reference =
        x402_protocol::Reference(solana_keypair::Keypair::new().pubkey().to_bytes()).to_string();
    let attempts = (0..20).map(|_| {
        let store = store.clone();
        let reference = reference.clone();
        async move { store.lease_submission(&reference, 100, 160).await.unwrap() }
    });
    let taken = join_all(attempts).await;
    assert_eq!(taken.iter().filter(|t| **t).count(), 1, "one lease");
    assert!(
        store.lease_submission(&reference, 161, 220).await.unwrap(),
        "lapsed"
    );
    store.end_submission(&reference).await.unwrap();
    assert!(
        store.lease_submission(&reference, 162, 222).await.unwrap(),
        "ended"
    );
}

#[tokio::test]
async fn concurrent_settles_on_postgres_succeed_once() {
    let h = Harness::start_on(true, Some(postgres_url())).await;
    super::facilitator::concurrent_settles_of_one_payment_succeed_once(&h).await;
}

/// A `batch-settlement` channel's row: replicas sharing PostgreSQL (its pool's
/// connections here, racing) accept one voucher increment once, and never one the
/// deposit does not cover.
#[tokio::test]
async fn replicas_on_postgres_accept_a_voucher_increment_once() {
    let store = GrantStore::connect(&postgres_url()).await.unwrap();
    let channel = solana_keypair::Keypair::new().pubkey().to_string();
    assert!(store
        .begin_batch_channel(&opening(&channel, 30))
        .await
        .unwrap());
    assert!(store
        .open_batch_channel(&channel, 30, Some((10, "first")), 2)
        .await
        .unwrap());
    let attempts = (0..50).map(|i| {
        let store = store.clone();
        let channel = channel.clone();
        tokio::spawn(async move {
            store
                .accept_voucher(&channel, 10, 20, &format!("copy {i}"), None, 3)
                .await
                .unwrap()
        })
    });
    let winners = join_all(attempts)
        .await
        .into_iter()
        .filter(|accepted| accepted.as_ref().unwrap().is_some())
        .count();
    assert_eq!(winners, 1, "one increment, accepted once");
    let row = store.batch_channel(&channel).await.unwrap().unwrap();
    assert_eq!((row.charged, row.requests), (20, 2));
    assert_eq!(
        store
            .accept_voucher(&channel, 20, 40, "over", None, 4)
            .await
            .unwrap(),
        None,
        "past the deposit"
    );
    assert_eq!(
        store
            .accept_voucher(&channel, 20, 40, "topped up", Some((30, 50)), 4)
            .await
            .unwrap(),
        Some((50, 0)),
        "a top-up and its voucher together"
    );
    assert!(store.revert_voucher(&channel, 40, 5).await.unwrap());
    let row = store.batch_channel(&channel).await.unwrap().unwrap();
    assert_eq!(
        (row.charged, row.deposit),
        (20, 50),
        "the earlier voucher stands again"
    );
    assert!(
        row.signature
            .as_deref()
            .is_some_and(|s| s.starts_with("copy")),
        "with its own signature: {:?}",
        row.signature
    );
}

/// The server mode's holds on PostgreSQL: replicas racing hold no more of a channel's
/// deposit than is left, take each request identifier once, and charge each completed
/// request once on top of the others.
#[tokio::test]
async fn replicas_on_postgres_hold_a_deposit_once_and_charge_each_request_once() {
    use x402_verifier::store::Reservation;
    let store = GrantStore::connect(&postgres_url()).await.unwrap();
    let channel = solana_keypair::Keypair::new().pubkey().to_string();
    assert!(store
        .begin_batch_channel(&opening(&channel, 30))
        .await
        .unwrap());
    assert!(store
        .open_batch_channel(&channel, 30, None, 2)
        .await
        .unwrap());
    // Fifty requests of ceiling 10 race for a deposit of 30, five of them twice.
    let attempts = (0..55).map(|i| {
        let store = store.clone();
        let channel = channel.clone();
        tokio::spawn(async move {
            let id = format!("request {}", i % 50);
            let held = store.reserve_operation(&channel, &id, 10, 3).await.unwrap();
            (id, held)
        })
    });
    let outcomes: Vec<_> = join_all(attempts)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let held: Vec<&String> = outcomes
        .iter()
        .filter(|(_, held)| matches!(held, Reservation::Held { .. }))
        .map(|(id, _)| id)
        .collect();
    assert_eq!(held.len(), 3, "the deposit holds three ceilings");
    let row = store.batch_channel(&channel).await.unwrap().unwrap();
    assert_eq!(row.reserved, 30);
    // Completed together, each adds its own charge: 4, 10 and 0 of their ceilings.
    let completions = held.iter().zip([4, 10, 0]).map(|(id, charge)| {
        let store = store.clone();
        let channel = channel.clone();
        let id = id.to_string();
        tokio::spawn(async move {
            let sign = |total: u64| format!("operator voucher for {total}");
            store
                .complete_operation(&channel, &id, 10, charge, &sign, 4)
                .await
                .unwrap()
                .expect("held")
        })
    });
    let mut totals: Vec<u64> = join_all(completions)
        .await
        .into_iter()
        .map(|c| c.unwrap().cumulative)
        .collect();
    totals.sort();
    let row = store.batch_channel(&channel).await.unwrap().unwrap();
    assert_eq!((row.charged, row.reserved, row.requests), (14, 0, 3));
    assert_eq!(totals.last(), Some(&14));
    assert_eq!(
        row.signature.as_deref(),
        Some("operator voucher for 14"),
        "the latest total's voucher"
    );
    // A request completes once, and a used identifier is not held again.
    assert_eq!(
        store
            .complete_operation(&channel, held[0], 10, 10, &|t| t.to_string(), 5)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .reserve_operation(&channel, held[0], 10, 5)
            .await
            .unwrap(),
        Reservation::Duplicate
    );
}

/// A `batch-settlement` channel's row before its `open` lands, holding `deposit`.
fn opening(channel: &str, deposit: u64) -> x402_verifier::store::BatchChannel {
    x402_verifier::store::BatchChannel {
        channel: channel.into(),
        config: "{}".into(),
        fee_payer: "fee payer".into(),
        token_program: "token".into(),
        deposit,
        charged: 0,
        signature: None,
        claimed: 0,
        paid: 0,
        status: x402_verifier::store::BatchStatus::Opening,
        requests: 0,
        active_at: 1,
        updated_at: 1,
        reserved: 0,
    }
}
