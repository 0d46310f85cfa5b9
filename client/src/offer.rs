//! What a 402 offers, as this client can pay it: our `receipt` scheme, or the
//! ecosystem's `exact` and `upto` on Solana (from any x402 server). Everything else in a challenge
//! is kept only to say why it could not be paid.

use anchor_lang::prelude::Pubkey;
use x402_protocol::scheme::SchemeError;
use x402_protocol::wire;
use x402_protocol::{
    BatchOffer, ExactOffer, ReceiptOffer, Reference, UptoOffer, BATCH_SETTLEMENT, EXACT, SCHEME,
    UPTO,
};

/// An offer this client can pay: what it asks, and the offer as the server wrote it (a
/// payment echoes it back unchanged: stock servers compare it whole).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offer {
    pub terms: Terms,
    wire: wire::Offer,
}

/// What an offer asks, in its scheme. Each scheme's module in `scheme/` reads its
/// offers ([`Asks`]) and pays them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Terms {
    Receipt(ReceiptOffer),
    Exact(ExactOffer),
    Upto(UptoOffer),
    Batch(BatchOffer),
}

impl Terms {
    /// Reads `offer` in the scheme it names: None for a scheme this client does not pay.
    fn read(offer: &wire::Offer) -> Option<Result<Terms, SchemeError>> {
        Some(match offer.scheme.as_str() {
            SCHEME => ReceiptOffer::from_offer(offer).map(Terms::Receipt),
            EXACT => ExactOffer::from_offer(offer).map(Terms::Exact),
            UPTO => UptoOffer::from_offer(offer).map(Terms::Upto),
            BATCH_SETTLEMENT => BatchOffer::from_offer(offer).map(Terms::Batch),
            _ => return None,
        })
    }

    /// What the offer asks, as its scheme reads it.
    fn asks(&self) -> &dyn Asks {
        match self {
            Terms::Receipt(offer) => offer,
            Terms::Exact(offer) => offer,
            Terms::Upto(offer) => offer,
            Terms::Batch(offer) => offer,
        }
    }
}

/// What an offer asks, as its scheme reads it: implemented by each scheme's module.
pub(crate) trait Asks {
    fn scheme(&self) -> &'static str;
    fn network(&self) -> &str;
    fn amount(&self) -> u64;
    fn mint(&self) -> Pubkey;
    fn pay_to(&self) -> Pubkey;
    fn reference(&self) -> Option<Reference>;
    fn key(&self) -> Option<String>;
    fn sponsored(&self) -> bool;
    fn shown_amount(&self) -> String;
    fn description(&self) -> String;
    fn program(&self) -> Option<Pubkey> {
        None
    }
    fn receipt(&self) -> Option<Pubkey> {
        None
    }
    fn expires_at(&self) -> Option<i64> {
        None
    }
}

impl Offer {
    /// Reads an offer of any server; why not, for an offer this client cannot pay.
    pub fn read(offer: &wire::Offer) -> Result<Self, String> {
        if !is_solana(&offer.network) {
            return Err(format!("network {} is not Solana", offer.network));
        }
        let Some(terms) = Terms::read(offer) else {
            return Err(format!(
                "scheme {} is not one this client pays",
                offer.scheme
            ));
        };
        Ok(Offer {
            terms: terms.map_err(|e| e.to_string())?,
            wire: offer.clone(),
        })
    }

    pub fn scheme(&self) -> &'static str {
        self.terms.asks().scheme()
    }

    /// The network as the offer names it.
    pub fn network(&self) -> &str {
        self.terms.asks().network()
    }

    /// Base units asked: for `upto`, the maximum (what is escrowed, and what the spending
    /// policy caps); the seller settles at most that.
    pub fn amount(&self) -> u64 {
        self.terms.asks().amount()
    }

    pub fn mint(&self) -> Pubkey {
        self.terms.asks().mint()
    }

    pub fn pay_to(&self) -> Pubkey {
        self.terms.asks().pay_to()
    }

    /// The challenge's reference: a `receipt` offer's, or the one an `exact` memo holds
    /// when the server is one of ours.
    pub fn reference(&self) -> Option<Reference> {
        self.terms.asks().reference()
    }

    /// What tells this challenge from another of the same server: the reference, or an
    /// `exact` offer's memo.
    pub fn key(&self) -> Option<String> {
        self.terms.asks().key()
    }

    /// Whether the server's fee payer pays the fee (no SOL needed).
    pub fn sponsored(&self) -> bool {
        self.terms.asks().sponsored()
    }

    /// The amount for people: with the decimals the server claims (display only, never a
    /// limit), in base units when it claims none.
    pub fn shown_amount(&self) -> String {
        self.terms.asks().shown_amount()
    }

    pub fn description(&self) -> String {
        self.terms.asks().description()
    }

    /// The program a payment calls, of the server's naming (`receipt`): one the policy
    /// must allow.
    pub fn program(&self) -> Option<Pubkey> {
        self.terms.asks().program()
    }

    /// The receipt account a payment creates (`receipt`).
    pub fn receipt(&self) -> Option<Pubkey> {
        self.terms.asks().receipt()
    }

    /// When the challenge expires, unix seconds, when the offer says (`receipt`).
    pub fn expires_at(&self) -> Option<i64> {
        self.terms.asks().expires_at()
    }

    /// The offer as the server wrote it, as the payment echoes it.
    pub fn to_wire(&self) -> wire::Offer {
        self.wire.clone()
    }
}

/// A 402 answer, or a payment kept from one, that cannot be read: why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the 402 answer cannot be read: {0}")]
pub struct Unreadable(pub String);

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

/// Offers for the unit tests of the client's modules.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use x402_protocol::wire::v2;

    /// Devnet, as an offer names it.
    pub const DEVNET: &str = "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1";

    /// A `batch-settlement` offer of `amount` a request of classic-Token `mint` on devnet,
    /// its deposit waiting `withdraw_delay` seconds after the buyer asks to close.
    pub fn batch_offer(amount: u64, mint: Pubkey, withdraw_delay: u32) -> Offer {
        let key = || Pubkey::new_unique().to_string();
        let accepted: v2::PaymentRequirements = serde_json::from_value(serde_json::json!({
            "scheme": "batch-settlement", "network": DEVNET, "amount": amount.to_string(),
            "asset": mint.to_string(), "payTo": key(), "maxTimeoutSeconds": 60,
            "extra": {
                "feePayer": key(), "receiverAuthorizer": key(),
                "withdrawDelay": withdraw_delay,
                "tokenProgram": "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA",
                "recentBlockhash": "AGRyLqLnV5bonvQcjMXrtbVw2xWnemmNPcSsfijGVpRR",
                "recentSlot": 341_000_000
            }
        }))
        .unwrap();
        let resource = v2::ResourceInfo {
            url: "https://seller.example/search".into(),
            description: None,
            mime_type: None,
        };
        Offer::read(&wire::Offer::from_v2(&accepted, &resource)).unwrap()
    }

    /// An `upto` offer of at most `max_amount` of classic-Token `mint` on devnet, with a
    /// blockhash and a slot to sign with.
    pub fn upto_offer(max_amount: u64, mint: Pubkey) -> Offer {
        let key = || Pubkey::new_unique().to_string();
        let accepted: v2::PaymentRequirements = serde_json::from_value(serde_json::json!({
            "scheme": "upto", "network": DEVNET, "amount": max_amount.to_string(),
            "asset": mint.to_string(), "payTo": key(), "maxTimeoutSeconds": 60,
            "extra": {
                "feePayer": key(), "receiverAuthorizer": key(), "withdrawDelay": 60,
                "tokenProgram": "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA",
                "recentBlockhash": "AGRyLqLnV5bonvQcjMXrtbVw2xWnemmNPcSsfijGVpRR",
                "recentSlot": 341_000_000
            }
        }))
        .unwrap();
        let resource = v2::ResourceInfo {
            url: "https://seller.example/metered".into(),
            description: None,
            mime_type: None,
        };
        Offer::read(&wire::Offer::from_v2(&accepted, &resource)).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payment_echoes_the_offer_as_the_server_wrote_it() {
        let fee_payer = Pubkey::new_unique().to_string();
        let offer = wire::Offer::from_v2(
            &serde_json::from_value(serde_json::json!({
                "scheme": "exact", "network": "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1",
                "amount": "1000", "asset": Pubkey::new_unique().to_string(),
                "payTo": Pubkey::new_unique().to_string(), "maxTimeoutSeconds": 60,
                // A key this client does not know: a stock server compares `accepted` whole.
                "extra": {"feePayer": fee_payer, "name": "USDC", "version": "2"}
            }))
            .unwrap(),
            &x402_protocol::wire::v2::ResourceInfo {
                url: "https://seller.example/paid".into(),
                description: None,
                mime_type: None,
            },
        );
        let read = Offer::read(&offer).unwrap();
        assert!(matches!(read.terms, Terms::Exact(_)));
        assert_eq!(read.to_wire(), offer);
        assert_eq!(read.to_wire().to_v2().extra.unwrap()["name"], "USDC");
    }
}
