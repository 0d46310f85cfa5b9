//! What a 402 offers, as this client can pay it: our `receipt` scheme, or the
//! ecosystem's `exact` on Solana (from any x402 server). Everything else in a challenge
//! is kept only to say why it could not be paid.

use anchor_lang::prelude::Pubkey;
use x402_protocol::amount::format_units;
use x402_protocol::wire;
use x402_protocol::{ExactOffer, ReceiptOffer, Reference, EXACT, SCHEME};

/// An offer this client can pay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Offer {
    Receipt(ReceiptOffer),
    Exact(ExactOffer),
}

impl Offer {
    /// Reads an offer of any server; why not, for an offer this client cannot pay.
    pub fn read(offer: &wire::Offer) -> Result<Self, String> {
        if !is_solana(&offer.network) {
            return Err(format!("network {} is not Solana", offer.network));
        }
        match offer.scheme.as_str() {
            SCHEME => ReceiptOffer::from_offer(offer)
                .map(Offer::Receipt)
                .map_err(|e| e.to_string()),
            EXACT => ExactOffer::from_offer(offer)
                .map(Offer::Exact)
                .map_err(|e| e.to_string()),
            other => Err(format!("scheme {other} is not one this client pays")),
        }
    }

    pub fn scheme(&self) -> &'static str {
        match self {
            Offer::Receipt(_) => SCHEME,
            Offer::Exact(_) => EXACT,
        }
    }

    /// The network as the offer names it.
    pub fn network(&self) -> &str {
        match self {
            Offer::Receipt(o) => &o.network,
            Offer::Exact(o) => &o.network,
        }
    }

    /// Base units asked.
    pub fn amount(&self) -> u64 {
        match self {
            Offer::Receipt(o) => o.requirement.amount,
            Offer::Exact(o) => o.terms.amount,
        }
    }

    pub fn mint(&self) -> Pubkey {
        match self {
            Offer::Receipt(o) => o.requirement.mint,
            Offer::Exact(o) => o.terms.mint,
        }
    }

    pub fn pay_to(&self) -> Pubkey {
        match self {
            Offer::Receipt(o) => o.requirement.pay_to,
            Offer::Exact(o) => o.terms.pay_to,
        }
    }

    /// The challenge's reference: a `receipt` offer's, or the one an `exact` memo holds
    /// when the server is one of ours.
    pub fn reference(&self) -> Option<Reference> {
        match self {
            Offer::Receipt(o) => Some(o.requirement.reference),
            Offer::Exact(o) => o.terms.memo.as_deref().and_then(Reference::from_memo),
        }
    }

    /// What tells this challenge from another of the same server: the reference, or an
    /// `exact` offer's memo.
    pub fn key(&self) -> Option<String> {
        match self {
            Offer::Receipt(o) => Some(o.requirement.reference.to_string()),
            Offer::Exact(o) => o.terms.memo.clone(),
        }
    }

    /// Whether the server's fee payer pays the fee (no SOL needed).
    pub fn sponsored(&self) -> bool {
        match self {
            Offer::Receipt(o) => o.fee_payer.is_some() && o.recent_blockhash.is_some(),
            Offer::Exact(_) => true,
        }
    }

    /// The amount for people: with the decimals the server claims (display only, never a
    /// limit), in base units when it claims none.
    pub fn shown_amount(&self) -> String {
        match self {
            Offer::Receipt(o) => format_units(o.requirement.amount, o.decimals),
            Offer::Exact(o) => format!("{} base units", o.terms.amount),
        }
    }

    pub fn description(&self) -> String {
        match self {
            Offer::Receipt(o) => o.description.clone(),
            Offer::Exact(o) => o.resource.description.clone().unwrap_or_default(),
        }
    }

    /// The offer on the wire, as the payment echoes it.
    pub fn to_wire(&self) -> wire::Offer {
        match self {
            Offer::Receipt(o) => o.to_offer(),
            Offer::Exact(o) => o.to_offer(),
        }
    }
}

/// Solana's x402 network names: v1 (`solana`, `solana-devnet`, ...) and CAIP-2.
fn is_solana(network: &str) -> bool {
    network == "solana" || network.starts_with("solana-") || network.starts_with("solana:")
}

/// One line for an offer: scheme, network, price, and why it could not be paid.
pub(crate) fn describe(offer: &wire::Offer, why: &str) -> String {
    format!(
        "{} on {}: {} of {} ({why})",
        offer.scheme, offer.network, offer.amount, offer.asset
    )
}
