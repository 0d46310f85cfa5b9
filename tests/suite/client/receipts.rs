//! The receipt functions behind `x402 receipt`, `receipts` and `close-expired`, on the
//! embedded ledger in-process (over JSON-RPC in the real-clusters tests).

use solana_signer::Signer;
use x402_protocol::janitor::{close_expired, find_receipt, receipts_for_payee};
use x402_protocol::{Ledger, Reference};
use x402_verifier::unix_now;

use crate::verifier::support::*;

#[tokio::test]
async fn receipts_are_found_listed_for_their_payee_and_closed_for_their_rent_once_expired() {
    let h = Harness::start_with(false).await;
    let payer = h.new_payer(10 * PRICE).await;
    let ledger = &*h.market.ledger;
    let program = x402_receipts::ID;
    let mut references = Vec::new();
    for path in ["/api/r1", "/api/r2", "/api/r3"] {
        let (offer, _) = h.challenge("GET", path).await;
        h.pay_on_chain(&offer.requirement, &payer).await;
        references.push(offer.requirement.reference);
    }

    let found = find_receipt(ledger, &program, &references[0])
        .await
        .unwrap()
        .expect("paid");
    assert_eq!(
        (
            found.receipt.payer,
            found.receipt.payee,
            found.receipt.amount
        ),
        (payer.pubkey(), h.market.merchant, PRICE)
    );
    assert_eq!(
        find_receipt(ledger, &program, &Reference([1; 32]))
            .await
            .unwrap(),
        None
    );

    let listed = receipts_for_payee(ledger, &program, &h.market.merchant)
        .await
        .unwrap();
    assert_eq!(listed.len(), 3);
    assert!(
        listed
            .windows(2)
            .all(|w| w[0].receipt.paid_at >= w[1].receipt.paid_at),
        "newest first"
    );
    assert_eq!(
        listed.iter().map(|f| f.receipt.amount).sum::<u64>(),
        3 * PRICE
    );
    assert!(receipts_for_payee(ledger, &program, &payer.pubkey())
        .await
        .unwrap()
        .is_empty());

    // Nothing has expired yet.
    let report = close_expired(ledger, &program, &payer, unix_now())
        .await
        .unwrap();
    assert!(report.closed.is_empty());

    let later = references.iter().map(|r| r.expires_at()).max().unwrap() + 1;
    ledger.set_time(later).await;
    let deposits: u64 = listed.iter().map(|f| f.lamports).sum();
    let before = ledger.lamports(&payer.pubkey()).await;
    let report = close_expired(ledger, &program, &payer, later)
        .await
        .unwrap();
    assert_eq!(report.closed.len(), 3);
    assert_eq!(report.rent_returned, deposits);
    assert_eq!(report.transactions.len(), 1, "one batch");
    assert_eq!(
        ledger.lamports(&payer.pubkey()).await,
        before + deposits - 5_000,
        "rent back, less one fee"
    );
    for reference in &references {
        assert_eq!(
            find_receipt(ledger, &program, reference).await.unwrap(),
            None
        );
    }
    assert!(ledger.account(&found.address).await.unwrap().is_none());
}
