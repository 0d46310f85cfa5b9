//! Paying, one module per scheme: each turns an accepted offer into the signed payment
//! payload, as the protocol's type. Choosing the offer, the spending policy and sending
//! the payment are the client's, the same for every scheme.
//!
//! Adding a scheme: a module here implementing [`PayScheme`] for its offer, and its arm
//! in [`pay`].

mod exact;
mod receipt;

use serde::Serialize;
use solana_keypair::Keypair;
use x402_protocol::{Ledger, LedgerError};

use crate::error::ClientError;
use crate::offer::Terms;

/// What a scheme's payer has besides the offer.
pub(crate) struct PayContext<'a> {
    /// The token authority that signs.
    pub payer: &'a Keypair,
    /// The client's ledger, when it has one: to pay on chain, and to read mints.
    pub ledger: Option<&'a dyn Ledger>,
    /// The request the challenge answered: a payment made on chain carries the payer's
    /// proof for it.
    pub request: Option<&'a (reqwest::Method, reqwest::Url)>,
}

/// A payment signed (and, in some schemes, submitted by the payer).
#[derive(Debug)]
pub(crate) struct Signed<P> {
    /// The scheme's `payload`.
    pub payload: P,
    /// The transaction's signature, when the payer submitted it.
    pub signature: Option<String>,
    /// The submission's error, when it may still have landed (the ledger did not
    /// answer): the payment is then kept, never made again.
    pub unsettled: Option<LedgerError>,
}

/// Paying in one scheme.
pub(crate) trait PayScheme {
    /// The scheme's `payload`, as the protocol types it.
    type Payload: Serialize;

    /// Signs a payment of this offer. An error means nothing was spent: nothing left
    /// the client, or the ledger refused it.
    async fn pay(&self, context: &PayContext<'_>) -> Result<Signed<Self::Payload>, ClientError>;
}

/// Pays `terms` in its scheme: the signed payment, its payload as the JSON it travels in.
pub(crate) async fn pay(
    terms: &Terms,
    context: &PayContext<'_>,
) -> Result<Signed<serde_json::Value>, ClientError> {
    match terms {
        Terms::Receipt(offer) => signed(offer, context).await,
        Terms::Exact(offer) => signed(offer, context).await,
    }
}

async fn signed<S: PayScheme>(
    scheme: &S,
    context: &PayContext<'_>,
) -> Result<Signed<serde_json::Value>, ClientError> {
    let Signed {
        payload,
        signature,
        unsettled,
    } = scheme.pay(context).await?;
    Ok(Signed {
        payload: serde_json::to_value(payload).expect("plain fields serialize"),
        signature,
        unsettled,
    })
}
