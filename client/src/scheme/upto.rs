//! Paying an `upto` offer: the `open` of a one-request channel escrowing the offer's
//! maximum, signed by the buyer for the seller's fee payer to co-sign. The seller then
//! settles what the answer cost, at most the deposit, and the rest comes back.

use anchor_lang::prelude::Pubkey;
use solana_signer::Signer;
use x402_protocol::scheme::upto::{build_upto, random_salt, Opening, UptoPayload, Window};
use x402_protocol::{Reference, UptoOffer, UPTO};

use super::{mint_facts, PayContext, PayScheme, Signed};
use crate::error::ClientError;
use crate::offer::Asks;
use x402_protocol::ChainClock;

impl Asks for UptoOffer {
    fn scheme(&self) -> &'static str {
        UPTO
    }

    fn network(&self) -> &str {
        &self.network
    }

    /// The maximum: what the buyer escrows, and what the spending policy caps.
    fn amount(&self) -> u64 {
        self.terms.max_amount
    }

    fn mint(&self) -> Pubkey {
        self.terms.mint
    }

    fn pay_to(&self) -> Pubkey {
        self.terms.pay_to
    }

    fn reference(&self) -> Option<Reference> {
        self.terms.memo.as_deref().and_then(Reference::from_memo)
    }

    fn key(&self) -> Option<String> {
        self.terms.memo.clone()
    }

    /// The seller's fee payer pays the fee and the channel's rent.
    fn sponsored(&self) -> bool {
        true
    }

    fn shown_amount(&self) -> String {
        format!("up to {} base units", self.terms.max_amount)
    }

    fn description(&self) -> String {
        self.resource.description.clone().unwrap_or_default()
    }
}

impl PayScheme for UptoOffer {
    type Payload = UptoPayload;

    /// The program is the canonical one (never the seller's word); the mint's token
    /// program and decimals come from the client's ledger or its table of well-known
    /// mints, and the offer's `tokenProgram` must be that one.
    async fn pay(&self, context: &PayContext<'_>) -> Result<Signed<UptoPayload>, ClientError> {
        let payer = context.payer;
        let terms = &self.terms;
        let malformed = |why: String| Err(ClientError::MalformedChallenge(why));
        // The payer as fee payer would pay the fee and the rent the seller offered to pay.
        if terms.fee_payer == payer.pubkey() {
            return malformed("the offer names the payer as its fee payer".into());
        }
        // The mint's own program is SPL Token or Token-2022 (a mint of any other is
        // refused as unknown): the offer's must be it.
        let facts = mint_facts(&terms.mint, context).await?;
        if facts.token_program != terms.token_program {
            return malformed(format!(
                "mint {} is of token program {}, not the offer's {}",
                terms.mint, facts.token_program, terms.token_program
            ));
        }
        if !facts.delivers_in_full {
            return Err(ClientError::WithholdingMint(terms.mint));
        }
        let now = x402_protocol::unix_now();
        let expires_at = i64::try_from(self.max_timeout_seconds)
            .ok()
            .filter(|&timeout| timeout > 0)
            .and_then(|timeout| now.checked_add(timeout));
        let Some(expires_at) = expires_at else {
            return malformed(format!(
                "maxTimeoutSeconds {} leaves the payment no time to be used",
                self.max_timeout_seconds
            ));
        };
        let (blockhash, open_slot) = match (context.ledger, self.recent_blockhash) {
            (Some(ledger), _) => {
                let open_slot = match self.recent_slot {
                    Some(slot) => slot,
                    None => ChainClock::read(ledger).await?.slot,
                };
                (ledger.latest_blockhash().await?, open_slot)
            }
            (None, Some(hint)) => (hint, self.recent_slot.ok_or(ClientError::NeedsLedger)?),
            (None, None) => return Err(ClientError::NeedsLedger),
        };
        let opening = Opening {
            payer: payer.pubkey(),
            salt: random_salt(),
            open_slot,
        };
        let window = Window {
            valid_after: now,
            expires_at,
        };
        Ok(Signed {
            payload: build_upto(payer, terms, &opening, window, blockhash),
            signature: None,
            unsettled: None,
            batch: None,
        })
    }
}
