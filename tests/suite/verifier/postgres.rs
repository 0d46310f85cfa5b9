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
    use x402_verifier::store::{BatchChannel, BatchStatus};
    let store = GrantStore::connect(&postgres_url()).await.unwrap();
    let channel = solana_keypair::Keypair::new().pubkey().to_string();
    let record = BatchChannel {
        channel: channel.clone(),
        config: "{}".into(),
        fee_payer: "fee payer".into(),
        token_program: "token".into(),
        deposit: 30,
        charged: 0,
        signature: None,
        claimed: 0,
        paid: 0,
        status: BatchStatus::Opening,
        requests: 0,
        active_at: 1,
        updated_at: 1,
    };
    assert!(store.begin_batch_channel(&record).await.unwrap());
    assert!(store
        .open_batch_channel(&channel, 30, 10, "first", 2)
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
