//! Paying an `exact` offer: the transfer, signed by the payer for the server's fee payer
//! to co-sign.

use solana_signer::Signer;
use x402_protocol::exact::{build_exact, encode_versioned, ExactPayload};
use x402_protocol::ExactOffer;

use super::{PayContext, PayScheme, Signed};
use crate::error::ClientError;

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
        let facts = match context.ledger {
            Some(ledger) => {
                let account = ledger
                    .account(mint)
                    .await?
                    .ok_or(ClientError::UnknownMint(*mint))?;
                x402_protocol::read_mint(&account).map_err(|_| ClientError::UnknownMint(*mint))?
            }
            None => x402_protocol::mint::known_mint(mint).ok_or(ClientError::UnknownMint(*mint))?,
        };
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
                transaction: encode_versioned(&tx),
            },
            signature: None,
            unsettled: None,
        })
    }
}
