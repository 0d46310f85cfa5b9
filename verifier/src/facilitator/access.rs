//! Who may use the facilitator, and what its fee payer sponsors for them. The facilitator
//! takes the payment requirements from its caller, so without these rules a stranger
//! could have the fee payer co-sign payments of the stranger's own choosing (its own
//! mint, its own payee, one base unit, an expiry far away): each costs the fee and parks
//! a receipt's rent. Off by default; when on, callers present an API key, and only
//! requirements within the policy are verified or settled, within a fee-and-rent budget
//! per key and time window.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anchor_lang::prelude::Pubkey;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use crate::error::{Reason, Refusal};
use crate::scheme::Terms;

/// What the fee payer sponsors for facilitator callers.
#[derive(Clone, Debug)]
pub struct SponsorshipPolicy {
    /// The mints paid in (the merchant's own by default).
    pub mints: Vec<Pubkey>,
    /// The payees paid (the merchant's own by default).
    pub payees: Vec<Pubkey>,
    /// The latest expiry, from now: a receipt's rent stays parked until it expires.
    pub max_horizon: Duration,
    /// The least amount, in base units.
    pub min_amount: u64,
    /// Lamports of fees and rent each key may cost the fee payer per window.
    pub budget_lamports: u64,
    pub window: Duration,
}

/// The API keys and the policy, with each key's spending in its current window.
#[derive(Clone)]
pub struct FacilitatorAccess {
    keys: Arc<Vec<SecretString>>,
    policy: Arc<SponsorshipPolicy>,
    spent: Arc<Mutex<HashMap<usize, (Instant, u64)>>>,
}

/// A caller that presented a valid key: the key's index, never the key.
#[derive(Clone, Copy, Debug)]
pub struct Caller(usize);

/// Middleware: a request without a valid key is refused before its body is read; a
/// valid one carries its [`Caller`] to the handler.
pub async fn authorize(
    axum::extract::State(access): axum::extract::State<FacilitatorAccess>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match access.caller(request.headers()) {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(refusal) => refusal.into_response(),
    }
}

impl FacilitatorAccess {
    pub fn new(keys: Vec<SecretString>, policy: SponsorshipPolicy) -> Self {
        FacilitatorAccess {
            keys: Arc::new(keys),
            policy: Arc::new(policy),
            spent: Arc::default(),
        }
    }

    /// The caller of a request carrying `Authorization: Bearer <key>`. Every key is
    /// compared, in constant time.
    pub fn caller(&self, headers: &http::HeaderMap) -> Result<Caller, Refusal> {
        let presented = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .unwrap_or_default()
            .as_bytes();
        let mut found = None;
        for (index, key) in self.keys.iter().enumerate() {
            if bool::from(presented.ct_eq(key.expose_secret().as_bytes())) {
                found = Some(Caller(index));
            }
        }
        found.ok_or_else(|| Refusal::new(Reason::Unauthorized))
    }

    /// Who `caller` is, lastingly (across restarts and a reordered key list) yet without
    /// its key: the SHA-256 of its key, hex. A channel opened for a caller is bound to
    /// it, so only it may close the channel cooperatively.
    pub fn identity(&self, caller: Caller) -> String {
        use sha2::{Digest, Sha256};
        let key = self.keys[caller.0].expose_secret();
        hex::encode(
            Sha256::new()
                .chain_update(b"x402 facilitator caller\0")
                .chain_update(key.as_bytes())
                .finalize(),
        )
    }

    /// Whether a demand's `terms` are within the policy, `now` being unix seconds.
    pub fn allows(&self, terms: Terms, now: i64) -> Result<(), Refusal> {
        let p = &self.policy;
        let horizon = now.saturating_add(p.max_horizon.as_secs() as i64);
        if !p.mints.contains(&terms.mint)
            || !p.payees.contains(&terms.pay_to)
            || terms.amount < p.min_amount
            || terms
                .expires_at
                .is_some_and(|expires_at| expires_at > horizon)
        {
            return Err(Refusal::new(Reason::RequirementsNotAllowed));
        }
        Ok(())
    }

    /// Charges `lamports` the fee payer may spend for `caller`, or refuses when its
    /// budget for the window would be passed.
    pub fn charge(&self, caller: Caller, lamports: u64) -> Result<(), Refusal> {
        let mut spent = self.spent.lock().expect("not poisoned");
        let now = Instant::now();
        let (started, used) = spent.entry(caller.0).or_insert((now, 0));
        if now.duration_since(*started) >= self.policy.window {
            (*started, *used) = (now, 0);
        }
        match used.checked_add(lamports) {
            Some(total) if total <= self.policy.budget_lamports => {
                *used = total;
                Ok(())
            }
            _ => Err(Refusal::new(Reason::BudgetExhausted)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheme::exact::{ExactDemand, ExactScheme};
    use crate::scheme::receipt::ReceiptScheme;
    use crate::scheme::PaymentScheme;
    use x402_protocol::Requirement;

    fn access(budget_lamports: u64) -> FacilitatorAccess {
        FacilitatorAccess::new(
            vec![
                "key-one-0123456789".to_string().into(),
                "key-two-0123456789".to_string().into(),
            ],
            SponsorshipPolicy {
                mints: vec![Pubkey::new_from_array([1; 32])],
                payees: vec![Pubkey::new_from_array([2; 32])],
                max_horizon: Duration::from_secs(900),
                min_amount: 100,
                budget_lamports,
                window: Duration::from_secs(3600),
            },
        )
    }

    #[test]
    fn only_a_configured_key_is_a_caller() {
        let access = access(0);
        let headers = |value: &str| {
            let mut headers = http::HeaderMap::new();
            headers.insert(http::header::AUTHORIZATION, value.parse().unwrap());
            headers
        };
        assert!(access.caller(&http::HeaderMap::new()).is_err());
        assert!(access.caller(&headers("Bearer key-one")).is_err());
        assert!(access.caller(&headers("key-two-0123456789")).is_err());
        assert_eq!(
            access
                .caller(&headers("Bearer key-two-0123456789"))
                .unwrap()
                .0,
            1
        );
    }

    #[test]
    fn requirements_outside_the_policy_are_refused() {
        let access = access(0);
        let now = 1_000;
        let good = Requirement {
            program: x402_receipts::ID,
            reference: x402_protocol::Reference([0; 32]),
            amount: 100,
            expires_at: now + 900,
            mint: Pubkey::new_from_array([1; 32]),
            token_program: anchor_lang::prelude::Pubkey::default(),
            pay_to: Pubkey::new_from_array([2; 32]),
        };
        let receipt = |requirement| ReceiptScheme::terms(&requirement);
        assert!(access.allows(receipt(good.clone()), now).is_ok());
        let stranger = Pubkey::new_unique();
        for bad in [
            Requirement {
                mint: stranger,
                ..good.clone()
            },
            Requirement {
                pay_to: stranger,
                ..good.clone()
            },
            Requirement {
                amount: 99,
                ..good.clone()
            },
            Requirement {
                expires_at: now + 901,
                ..good.clone()
            },
        ] {
            assert_eq!(
                access.allows(receipt(bad), now).unwrap_err().reason(),
                Reason::RequirementsNotAllowed
            );
        }
        // `exact`: the same mints, payees and minimum; its blockhash bounds its time.
        let exact = |mint, pay_to, amount| {
            ExactScheme::terms(&ExactDemand {
                terms: x402_protocol::ExactTerms {
                    mint,
                    pay_to,
                    amount,
                    fee_payer: Pubkey::new_unique(),
                    memo: None,
                },
                reference: None,
            })
        };
        assert!(access
            .allows(exact(good.mint, good.pay_to, 100), now)
            .is_ok());
        for bad in [
            exact(stranger, good.pay_to, 100),
            exact(good.mint, stranger, 100),
            exact(good.mint, good.pay_to, 99),
        ] {
            assert!(access.allows(bad, now).is_err());
        }
    }

    #[test]
    fn each_key_spends_its_own_budget() {
        let access = access(10);
        let (one, two) = (Caller(0), Caller(1));
        assert!(access.charge(one, 6).is_ok());
        assert_eq!(
            access.charge(one, 5).unwrap_err().reason(),
            Reason::BudgetExhausted
        );
        assert!(access.charge(one, 4).is_ok());
        assert!(access.charge(two, 10).is_ok());
        assert!(access.charge(two, u64::MAX).is_err());
    }
}
