//! Paying an `exact` offer: the transfer, signed by the payer for the server's fee payer
//! to co-sign.

use anchor_lang::prelude::Pubkey;
use solana_signer::Signer;
use x402_protocol::scheme::encode_transaction;
use x402_protocol::scheme::exact::{build_exact, ExactPayload};
use x402_protocol::{ExactOffer, Reference, EXACT};

use super::{mint_facts, PayContext, PayScheme, Signed};
use crate::error::ClientError;
use crate::offer::Asks;

impl Asks for ExactOffer {
    fn scheme(&self) -> &'static str {
        EXACT
    }

    fn network(&self) -> &str {
        &self.network
    }

    fn amount(&self) -> u64 {
        self.terms.amount
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

    /// The server's fee payer always pays the fee.
    fn sponsored(&self) -> bool {
        true
    }

    fn shown_amount(&self) -> String {
        format!("{} base units", self.terms.amount)
    }

    fn description(&self) -> String {
        self.resource.description.clone().unwrap_or_default()
    }
}

impl PayScheme for ExactOffer {
    type Payload = ExactPayload;

    /// The mint's token program and decimals come from the client's ledger or its table
    /// of well-known mints, never from the server.
    async fn pay(&self, context: &PayContext<'_>) -> Result<Signed<ExactPayload>, ClientError> {
        let payer = context.payer;
        // The payer as fee payer would pay the network fee the seller offered to pay.
        if self.terms.fee_payer == payer.pubkey() {
            return Err(ClientError::MalformedChallenge(
                "the offer names the payer as its fee payer".into(),
            ));
        }
        let mint = &self.terms.mint;
        let facts = mint_facts(mint, context).await?;
        if !facts.delivers_in_full {
            return Err(ClientError::WithholdingMint(*mint));
        }
        let blockhash = match (self.recent_blockhash, context.ledger) {
            (_, Some(ledger)) => ledger.latest_blockhash().await?,
            (Some(hint), None) => hint,
            (None, None) => return Err(ClientError::NeedsLedger),
        };
        let tx = build_exact(payer, &self.terms, &facts, blockhash);
        Ok(Signed {
            payload: ExactPayload {
                transaction: encode_transaction(&tx),
            },
            signature: None,
            unsettled: None,
            batch: None,
        })
    }
}
