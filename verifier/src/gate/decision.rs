//! The decision, the same for every scheme: read the payment, check its reference
//! (ours, for this request, not expired, not used; given back, presented by its payer),
//! verify it with its scheme, let the merchant's check refuse it, settle it, and record
//! the grant that serves exactly one request. Everything that needs no ledger call comes
//! first.

use anchor_lang::prelude::Pubkey;
use x402_protocol::wire::Version;
use x402_protocol::{Reference, ReferenceError};

use super::Gate;
use crate::context::store_unavailable;
use crate::error::{Reason, Refusal};
use crate::model::{PaymentAttempt, PaymentCheck, Price, SettledPayment, Target, Window};
use crate::payment::{read_payment, Presented};
use crate::scheme::batch::{admit_batch, Admitted, BatchScheme};
use crate::scheme::Landing;
use crate::store::Standing;
use crate::unix_now;

/// A payment the gate accepted.
#[derive(Debug)]
pub struct Admission {
    pub settled: SettledPayment,
    /// The version to answer in.
    pub version: Version,
    /// Whether the request is served: a `batch-settlement` refund closed its channel
    /// instead, and is answered with the settlement alone.
    pub serve: bool,
}

impl Gate {
    /// Decides whether the request in `headers` has paid `price` for `target`. On success
    /// the grant is recorded (a `batch-settlement` voucher committed): the caller serves
    /// the request, and calls [`Gate::release`] if serving it fails. A refusal is logged
    /// and counted here; its answer still needs its challenge ([`Gate::challenge`]).
    pub async fn admit(
        &self,
        price: &Price,
        target: &Target,
        headers: &http::HeaderMap,
        check: Option<&dyn PaymentCheck>,
    ) -> Result<Admission, Refusal> {
        let outcome = self.decide(price, target, headers, check).await;
        match &outcome {
            Ok(Admission { settled, .. }) => {
                self.metrics().granted();
                tracing::info!(reference = %settled.reference, payer = %settled.payer, amount = settled.amount, "granted");
            }
            Err(refusal) if refusal.reason() == Reason::PaymentRequired => {}
            Err(refusal) => {
                self.metrics().refused(refusal.reason());
                // Debug: anyone can send garbage, and the log is not theirs to fill.
                tracing::debug!(reason = refusal.code(), method = %target.method, path = %target.path, "payment refused");
            }
        }
        outcome
    }

    async fn decide(
        &self,
        price: &Price,
        target: &Target,
        headers: &http::HeaderMap,
        check: Option<&dyn PaymentCheck>,
    ) -> Result<Admission, Refusal> {
        let s = self.settings();
        let Some(presented) = read_payment(headers, &s.network, &price.schemes)? else {
            return Err(Refusal::new(Reason::PaymentRequired));
        };
        // A voucher pays no challenge: its channel decides.
        let presented = match presented.downcast::<BatchScheme>() {
            Ok((batch, version)) => {
                // The merchant's own check, on the buyer the payment states: one that is
                // not the voucher's signer is refused by the checks after it.
                if let Some((payer, key)) = batch.paying() {
                    run_check(check, key, payer, price.amount, target).await?;
                }
                return match admit_batch(self, price, batch).await? {
                    Admitted::Serve(settled) => Ok(Admission {
                        settled,
                        version,
                        serve: true,
                    }),
                    Admitted::Closed(settled) => Ok(Admission {
                        settled,
                        version,
                        serve: false,
                    }),
                };
            }
            Err(presented) => presented,
        };
        let reference = presented.payment.reference(self)?;
        let now = unix_now();
        match reference.check(&s.challenge_keys, &self.terms(price.amount, target), now) {
            Ok(()) | Err(ReferenceError::Expired) => {}
            Err(_) => return Err(Refusal::new(Reason::InvalidReference)),
        }
        // A payment given back is public on chain: only its payer may present it again.
        let proven_payer = match self.standing(&reference).await? {
            Standing::Open => None,
            Standing::Granted => return Err(Refusal::new(Reason::ReferenceAlreadyUsed)),
            Standing::Released { payer } => {
                let proven = payer.parse().is_ok_and(|payer| {
                    target.proven_by(&payer, presented.proof(&reference), &reference)
                });
                if !proven {
                    return Err(Refusal::new(Reason::InvalidProof));
                }
                Some(payer)
            }
        };
        let window = Window::at(reference.expires_at(), now);
        if window == Window::Closed {
            return Err(Refusal::new(Reason::ExpiredReference));
        }
        let proof = presented.proof(&reference).map(str::to_owned);
        let Presented {
            payment, version, ..
        } = presented;
        let demand = payment.scheme().at_gate(self, price, reference);
        let verified = payment.verify(self, &demand, window).await?;
        run_check(check, reference, verified.payer, verified.amount, target).await?;
        let (settled, landing) = verified.settle(self).await?;
        // A payment that landed before this request is on chain for anyone to copy: a
        // self-submitted one, one retried after a 503, one read in its grace. Only its
        // payer redeems it.
        if landing == Landing::Before
            && !target.proven_by(&settled.payer, proof.as_deref(), &reference)
        {
            // Its lease ends, so that its payer's retry settles it at once.
            self.end_lease(&reference).await;
            return Err(Refusal::new(Reason::InvalidProof));
        }
        self.grant(&settled, target, proven_payer.as_deref())
            .await?;
        Ok(Admission {
            settled,
            version,
            serve: true,
        })
    }

    async fn standing(&self, reference: &Reference) -> Result<Standing, Refusal> {
        self.store()
            .standing(&reference.to_string())
            .await
            .map_err(store_unavailable)
    }

    /// Records the grant; a reference granted meanwhile (a concurrent request with the
    /// same payment) is refused, and so is one given back unless `proven_payer` is its
    /// payer.
    async fn grant(
        &self,
        settled: &SettledPayment,
        target: &Target,
        proven_payer: Option<&str>,
    ) -> Result<(), Refusal> {
        let grant = settled.grant(&target.method, &target.path);
        match self.store().try_grant(&grant, proven_payer).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(Refusal::new(Reason::ReferenceAlreadyUsed)),
            Err(error) => Err(store_unavailable(error)),
        }
    }
}

async fn run_check(
    check: Option<&dyn PaymentCheck>,
    reference: Reference,
    payer: Pubkey,
    amount: u64,
    target: &Target,
) -> Result<(), Refusal> {
    let Some(check) = check else { return Ok(()) };
    let attempt = PaymentAttempt {
        reference,
        payer,
        amount,
        method: target.method.clone(),
        path: target.path.clone(),
    };
    check.check(&attempt).await.map_err(Refusal::by_merchant)
}
