//! Paying a `receipt` offer: signed for the server's fee payer when it sponsors the
//! payment (way 1), else signed and submitted through the client's ledger (way 2).

use anchor_lang::prelude::Pubkey;
use solana_signer::Signer;
use x402_protocol::amount::format_units;
use x402_protocol::scheme::encode_transaction;
use x402_protocol::{LedgerError, ReceiptOffer, ReceiptPayload, Reference, SCHEME};

use super::{PayContext, PayScheme, Signed};
use crate::error::ClientError;
use crate::offer::Asks;
use crate::proof::proof;

impl Asks for ReceiptOffer {
    fn scheme(&self) -> &'static str {
        SCHEME
    }

    fn network(&self) -> &str {
        &self.network
    }

    fn amount(&self) -> u64 {
        self.requirement.amount
    }

    fn mint(&self) -> Pubkey {
        self.requirement.mint
    }

    fn pay_to(&self) -> Pubkey {
        self.requirement.pay_to
    }

    fn reference(&self) -> Option<Reference> {
        Some(self.requirement.reference)
    }

    fn key(&self) -> Option<String> {
        Some(self.requirement.reference.to_string())
    }

    fn sponsored(&self) -> bool {
        self.fee_payer.is_some() && self.recent_blockhash.is_some()
    }

    fn shown_amount(&self) -> String {
        format_units(self.requirement.amount, self.decimals)
    }

    fn description(&self) -> String {
        self.description.clone()
    }

    fn program(&self) -> Option<Pubkey> {
        Some(self.requirement.program)
    }

    fn receipt(&self) -> Option<Pubkey> {
        Some(self.requirement.receipt())
    }

    fn expires_at(&self) -> Option<i64> {
        Some(self.requirement.expires_at)
    }
}

impl PayScheme for ReceiptOffer {
    type Payload = ReceiptPayload;

    async fn pay(&self, context: &PayContext<'_>) -> Result<Signed<ReceiptPayload>, ClientError> {
        match (self.fee_payer, self.recent_blockhash) {
            (Some(fee_payer), Some(blockhash)) => {
                let payer = context.payer;
                let mut tx =
                    self.requirement
                        .pay_transaction(&payer.pubkey(), &fee_payer, blockhash);
                tx.try_partial_sign(&[payer], blockhash)
                    .map_err(|e| ClientError::MalformedChallenge(e.to_string()))?;
                Ok(Signed {
                    payload: ReceiptPayload::Sponsored {
                        transaction: encode_transaction(&tx),
                    },
                    signature: None,
                    unsettled: None,
                    batch: None,
                })
            }
            _ => pay_on_chain(self, context).await,
        }
    }
}

/// Way 2: signs and submits `pay` through the client's ledger, the payer paying fee and
/// rent. A submission that may still have landed (the ledger did not answer) is
/// returned with its error, to be kept, never made again.
async fn pay_on_chain(
    offer: &ReceiptOffer,
    context: &PayContext<'_>,
) -> Result<Signed<ReceiptPayload>, ClientError> {
    let ledger = context.ledger.ok_or(ClientError::NeedsLedger)?;
    let payer = context.payer;
    let requirement = &offer.requirement;
    let blockhash = ledger.latest_blockhash().await?;
    let mut tx = requirement.pay_transaction(&payer.pubkey(), &payer.pubkey(), blockhash);
    tx.try_sign(&[payer], blockhash)
        .map_err(|e| ClientError::MalformedChallenge(e.to_string()))?;
    let signature = tx.signatures[0].to_string();
    let unsettled = match ledger.submit(&tx.clone().into()).await {
        Ok(_) => None,
        Err(rejected @ LedgerError::Rejected(_)) => return Err(rejected.into()),
        Err(unavailable) => Some(unavailable),
    };
    // The payer's proof that it presents this reference, for this request: the
    // reference is public once `pay` lands.
    let proof = context
        .request
        .map(|(method, url)| proof(payer, &requirement.reference, method, url));
    Ok(Signed {
        payload: ReceiptPayload::SelfSubmitted {
            reference: requirement.reference.to_string(),
            proof,
            signature: Some(signature.clone()),
        },
        signature: Some(signature),
        unsettled,
        batch: None,
    })
}
