//! The spending policy: checked before anything is signed, so that a refusal costs
//! nothing.

use crate::offer::{Offer, Terms};
use anchor_lang::prelude::Pubkey;
use x402_protocol::amount::{format_units, parse_units};

/// An amount of the offer's token: base units, or a decimal string ("0.05") read with
/// the mint's decimals as the client knows them (never the server's word for them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Limit {
    Units(u64),
    Decimal(String),
}

impl Limit {
    fn units(&self, decimals: Option<u8>) -> Result<u64, PolicyRule> {
        match (self, decimals) {
            (Limit::Units(units), _) => Ok(*units),
            (Limit::Decimal(text), Some(decimals)) => {
                parse_units(text, decimals).map_err(|_| PolicyRule::MalformedLimit)
            }
            (Limit::Decimal(_), None) => Err(PolicyRule::UnknownDecimals),
        }
    }
}

/// Which rule refused a payment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicyRule {
    MaxPerRequest,
    Budget,
    Network,
    Mint,
    Payee,
    /// The offer's program is not one this client signs `pay` for.
    Program,
    /// A decimal limit that is not an exact amount of the offered token.
    MalformedLimit,
    /// A decimal limit for a mint whose decimals the client does not know (from its
    /// ledger or its table of well-known mints): a server could claim 18 for USDC and get
    /// a million times the limit approved. Limits in base units always apply.
    UnknownDecimals,
}

/// A payment the policy refused, with what was asked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the spending policy refused: {rule:?} ({detail})")]
pub struct PolicyRefusal {
    pub rule: PolicyRule,
    /// What the challenge asked for, for people.
    pub detail: String,
    /// Base units asked.
    pub amount: u64,
    pub mint: Pubkey,
    pub pay_to: Pubkey,
    pub network: String,
}

/// What a client may pay. Empty lists of networks, mints and payees allow everything.
#[derive(Clone, Debug)]
pub struct SpendingPolicy {
    pub max_per_request: Option<Limit>,
    /// The most all payments of this client may add up to.
    pub budget: Option<Limit>,
    pub networks: Vec<String>,
    pub mints: Vec<Pubkey>,
    pub payees: Vec<Pubkey>,
    /// The receipts programs the client signs `pay` for: the payer signs, and its token
    /// account is writable, so a program of the server's choosing could take the whole
    /// balance. This build's program by default; never empty-means-any.
    pub programs: Vec<Pubkey>,
}

impl Default for SpendingPolicy {
    fn default() -> Self {
        SpendingPolicy {
            max_per_request: None,
            budget: None,
            networks: Vec::new(),
            mints: Vec::new(),
            payees: Vec::new(),
            programs: vec![x402_receipts::ID],
        }
    }
}

impl SpendingPolicy {
    /// Whether a limit is a decimal, which needs the mint's decimals.
    pub fn has_decimal_limits(&self) -> bool {
        [&self.max_per_request, &self.budget]
            .into_iter()
            .any(|limit| matches!(limit, Some(Limit::Decimal(_))))
    }

    /// Whether `offer` may be paid, `spent` base units having been paid already;
    /// `decimals` are the mint's as the client knows them.
    pub fn check(
        &self,
        offer: &Offer,
        spent: u64,
        decimals: Option<u8>,
    ) -> Result<(), Box<PolicyRefusal>> {
        let (amount, mint, pay_to) = (offer.amount(), offer.mint(), offer.pay_to());
        let asked = offer.shown_amount();
        // For people only: the trusted decimals when known, base units otherwise.
        let shown = |units: u64| match decimals {
            Some(decimals) => format_units(units, decimals),
            None => format!("{units} base units"),
        };
        let refuse = |rule, detail: String| {
            Box::new(PolicyRefusal {
                rule,
                detail,
                amount,
                mint,
                pay_to,
                network: offer.network().to_string(),
            })
        };
        // Only a `receipt` payment calls a program of the server's naming.
        if let Terms::Receipt(receipt) = &offer.terms {
            let program = receipt.requirement.program;
            if !self.programs.contains(&program) {
                return Err(refuse(
                    PolicyRule::Program,
                    format!("program {program} is not one this client signs for"),
                ));
            }
        }
        let network = offer.network().to_string();
        if !self.networks.is_empty() && !self.networks.contains(&network) {
            return Err(refuse(
                PolicyRule::Network,
                format!("network {network} is not allowed"),
            ));
        }
        if !self.mints.is_empty() && !self.mints.contains(&mint) {
            return Err(refuse(
                PolicyRule::Mint,
                format!("token {mint} is not allowed"),
            ));
        }
        if !self.payees.is_empty() && !self.payees.contains(&pay_to) {
            return Err(refuse(
                PolicyRule::Payee,
                format!("payee {pay_to} is not allowed"),
            ));
        }
        let units = |limit: &Limit| {
            limit
                .units(decimals)
                .map_err(|rule| refuse(rule, format!("{limit:?} for mint {mint}")))
        };
        if let Some(max) = &self.max_per_request {
            let max = units(max)?;
            if amount > max {
                let detail = format!("{asked} asked, at most {} per request", shown(max));
                return Err(refuse(PolicyRule::MaxPerRequest, detail));
            }
        }
        if let Some(budget) = &self.budget {
            let budget = units(budget)?;
            if spent.checked_add(amount).is_none_or(|total| total > budget) {
                let left = shown(budget.saturating_sub(spent));
                return Err(refuse(
                    PolicyRule::Budget,
                    format!("{asked} asked, {left} left of the budget"),
                ));
            }
        }
        Ok(())
    }
}
