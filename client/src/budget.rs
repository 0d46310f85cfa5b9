//! The base units a client has signed away, and the choice of the offer to pay under
//! its spending policy.

use std::sync::Mutex;

use x402_protocol::Network;

use crate::challenge::Challenge;
use crate::error::ClientError;
use crate::offer::Offer;
use crate::policy::SpendingPolicy;

/// Base units signed away so far, against the policy's budget.
#[derive(Debug, Default)]
pub(crate) struct Budget {
    spent: Mutex<u64>,
}

impl Budget {
    pub fn spent(&self) -> u64 {
        *self.spent.lock().expect("not poisoned")
    }

    /// Picks the first offer of `challenge` the policy allows and reserves its amount
    /// against the budget, under one lock: two payments at once cannot both pass it.
    /// `decimals` are the offers' mints' decimals as the client knows them; `ledger` the
    /// network of the client's ledger.
    pub fn reserve(
        &self,
        policy: &SpendingPolicy,
        challenge: &Challenge,
        decimals: &[Option<u8>],
        ledger: Option<&Network>,
    ) -> Result<Offer, ClientError> {
        let mut spent = self.spent.lock().expect("not poisoned");
        let mut refusal = None;
        // A server mode's offer whose operator the buyer trusts first, as x402 asks of a
        // buyer that trusts it; then the offers in the server's order.
        let offers = challenge.offers.iter().zip(decimals);
        let trusted = |(offer, _): &(&Offer, &Option<u8>)| policy.trusted(offer).is_some();
        let offer = offers
            .clone()
            .filter(trusted)
            .chain(offers.filter(|o| !trusted(o)))
            .find(
                |(offer, decimals)| match policy.check(offer, *spent, **decimals, ledger) {
                    Ok(()) => true,
                    Err(why) => {
                        refusal.get_or_insert(why);
                        false
                    }
                },
            )
            .map(|(offer, _)| offer)
            .ok_or_else(|| match refusal {
                Some(refusal) => ClientError::Policy(refusal),
                None => ClientError::NoPayableOffer {
                    offered: challenge.unpayable.clone(),
                },
            })?;
        *spent = spent.saturating_add(offer.amount());
        Ok(offer.clone())
    }

    /// Gives back what was reserved for a payment that spent nothing.
    pub fn release(&self, amount: u64) {
        let mut spent = self.spent.lock().expect("not poisoned");
        *spent = spent.saturating_sub(amount);
    }
}
