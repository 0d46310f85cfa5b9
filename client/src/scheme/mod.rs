//! The schemes this client pays, one module each: how it reads what an offer asks
//! ([`Asks`](crate::offer::Asks)) and how it turns an accepted offer into the signed
//! payment payload, as the protocol's type ([`PayScheme`]). Choosing the offer, the
//! spending policy and sending the payment are the client's, the same for every scheme.
//!
//! Adding a scheme: a module here implementing both for its offer type; registered by
//! its variant of [`Terms`] (and its arms in `Terms::read` and `Terms::asks`) and its
//! arm in [`pay`].

pub(crate) mod batch;
mod exact;
mod receipt;
mod upto;

use anchor_lang::prelude::Pubkey;
use serde::Serialize;
use solana_keypair::Keypair;
use x402_protocol::wire;
use x402_protocol::{Ledger, LedgerError, MintInfo};

use self::batch::BatchStep;
use crate::book::ChannelBook;
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
    /// The offer as the server wrote it.
    pub accepted: &'a wire::Offer,
    /// The buyer's `batch-settlement` channels.
    pub book: &'a ChannelBook,
    /// The URL paid for: a `batch-settlement` channel pays it at once next time.
    pub resource: Option<&'a str>,
    /// The most a `batch-settlement` deposit may escrow, in base units; `None`: no limit.
    pub max_deposit: Option<u64>,
    /// What a `batch-settlement` deposit escrows, in base units, when the buyer says;
    /// the seller's suggestion otherwise.
    pub deposit: Option<u64>,
    /// Mint facts the client was given, by mint: trusted as its ledger is.
    pub mints: &'a std::collections::HashMap<Pubkey, MintInfo>,
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
    /// What a `batch-settlement` payment does to its channel.
    pub batch: Option<BatchStep>,
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
        Terms::Upto(offer) => signed(offer, context).await,
        Terms::Batch(offer) => signed(offer, context).await,
    }
}

/// The token program and decimals of `mint`, from the facts the client was given, its
/// ledger or its table of well-known mints: never from the server.
async fn mint_facts(mint: &Pubkey, context: &PayContext<'_>) -> Result<MintInfo, ClientError> {
    if let Some(facts) = context.mints.get(mint) {
        return Ok(*facts);
    }
    match context.ledger {
        Some(ledger) => {
            let account = ledger
                .account(mint)
                .await?
                .ok_or(ClientError::UnknownMint(*mint))?;
            x402_protocol::read_mint(&account).map_err(|_| ClientError::UnknownMint(*mint))
        }
        None => x402_protocol::mint::known_mint(mint).ok_or(ClientError::UnknownMint(*mint)),
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
        batch,
    } = scheme.pay(context).await?;
    Ok(Signed {
        payload: serde_json::to_value(payload).expect("plain fields serialize"),
        signature,
        unsettled,
        batch,
    })
}

#[cfg(test)]
mod tests {
    use anchor_lang::prelude::Pubkey;
    use solana_hash::Hash;
    use solana_signer::Signer;
    use solana_transaction::versioned::VersionedTransaction;
    use solana_transaction::Transaction;
    use x402_protocol::scheme::decode_transaction;
    use x402_protocol::scheme::exact::ExactPayload;
    use x402_protocol::scheme::upto::{channel_address, ChannelSeeds, UptoPayload};
    use x402_protocol::wire::v2::ResourceInfo;
    use x402_protocol::{ExactOffer, ExactTerms, ReceiptOffer, ReceiptPayload, Reference};

    use super::*;
    use crate::offer::testing::upto_offer;

    const BLOCKHASH: Hash = Hash::new_from_array([9; 32]);

    fn receipt_offer(sponsor: Option<Pubkey>) -> ReceiptOffer {
        ReceiptOffer {
            network: "solana-devnet".into(),
            requirement: x402_protocol::Requirement {
                program: x402_receipts::ID,
                reference: Reference([3; 32]),
                amount: 10_000,
                expires_at: 1_700_000_000,
                mint: Pubkey::new_unique(),
                token_program: Pubkey::new_unique(),
                pay_to: Pubkey::new_unique(),
            },
            decimals: 6,
            fee_payer: sponsor,
            recent_blockhash: sponsor.map(|_| BLOCKHASH),
            resource: "https://seller.example/paid".into(),
            description: String::new(),
            mime_type: String::new(),
            max_timeout_seconds: 60,
        }
    }

    fn exact_offer(mint: Pubkey, fee_payer: Pubkey) -> ExactOffer {
        ExactOffer {
            network: "solana-devnet".into(),
            terms: ExactTerms {
                mint,
                pay_to: Pubkey::new_unique(),
                amount: 10_000,
                fee_payer,
                memo: None,
            },
            recent_blockhash: Some(BLOCKHASH),
            resource: ResourceInfo {
                url: "https://seller.example/paid".into(),
                description: None,
                mime_type: None,
            },
            max_timeout_seconds: 60,
        }
    }

    /// Pays `terms` as `payer`, without a ledger (and with an empty channel book).
    async fn pay_without_ledger(
        terms: &Terms,
        payer: &Keypair,
    ) -> Result<Signed<serde_json::Value>, ClientError> {
        let book = ChannelBook::default();
        let accepted = upto_offer(1, Pubkey::new_unique()).to_wire();
        let context = PayContext {
            payer,
            ledger: None,
            request: None,
            accepted: &accepted,
            book: &book,
            resource: None,
            max_deposit: None,
            deposit: None,
            mints: &Default::default(),
        };
        pay(terms, &context).await
    }

    #[tokio::test]
    async fn a_sponsored_receipt_is_signed_by_the_payer_for_the_servers_fee_payer() {
        let payer = Keypair::new();
        let fee_payer = Pubkey::new_unique();
        let terms = Terms::Receipt(receipt_offer(Some(fee_payer)));
        let signed = pay_without_ledger(&terms, &payer).await.unwrap();
        assert_eq!((signed.signature, signed.unsettled.is_none()), (None, true));
        let ReceiptPayload::Sponsored { transaction } =
            serde_json::from_value(signed.payload).unwrap()
        else {
            panic!("a sponsored payload");
        };
        let tx: Transaction = decode_transaction(&transaction).unwrap();
        assert_eq!(tx.message.account_keys[0], fee_payer);
        assert_eq!(tx.message.recent_blockhash, BLOCKHASH);
        let signer = tx
            .message
            .account_keys
            .iter()
            .position(|key| *key == payer.pubkey())
            .expect("the payer signs");
        assert!(tx.signatures[signer].verify(payer.pubkey().as_ref(), &tx.message_data()));
    }

    #[tokio::test]
    async fn an_unsponsored_receipt_needs_a_ledger_to_pay_through() {
        let payer = Keypair::new();
        let terms = Terms::Receipt(receipt_offer(None));
        let refused = pay_without_ledger(&terms, &payer).await;
        assert!(
            matches!(refused, Err(ClientError::NeedsLedger)),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn an_exact_transfer_of_a_known_mint_is_signed_over_the_offered_blockhash() {
        let payer = Keypair::new();
        let usdc_devnet: Pubkey = x402_protocol::mint::KNOWN_MINTS[1].address.parse().unwrap();
        let fee_payer = Pubkey::new_unique();
        let terms = Terms::Exact(exact_offer(usdc_devnet, fee_payer));
        let signed = pay_without_ledger(&terms, &payer).await.unwrap();
        let payload: ExactPayload = serde_json::from_value(signed.payload).unwrap();
        let tx: VersionedTransaction = decode_transaction(&payload.transaction).unwrap();
        assert_eq!(tx.message.static_account_keys()[0], fee_payer);
        assert_eq!(*tx.message.recent_blockhash(), BLOCKHASH);
    }

    #[tokio::test]
    async fn an_exact_offer_is_refused_for_an_unknown_mint_or_the_payer_as_fee_payer() {
        let payer = Keypair::new();
        let unknown = Pubkey::new_unique();
        let terms = Terms::Exact(exact_offer(unknown, Pubkey::new_unique()));
        let refused = pay_without_ledger(&terms, &payer).await;
        assert!(
            matches!(refused, Err(ClientError::UnknownMint(mint)) if mint == unknown),
            "{refused:?}"
        );
        let terms = Terms::Exact(exact_offer(unknown, payer.pubkey()));
        let refused = pay_without_ledger(&terms, &payer).await;
        assert!(
            matches!(&refused, Err(ClientError::MalformedChallenge(why)) if why.contains("fee payer")),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn an_upto_open_escrows_the_maximum_for_the_offered_slot_and_timeout() {
        let payer = Keypair::new();
        let usdc_devnet: Pubkey = x402_protocol::mint::KNOWN_MINTS[1].address.parse().unwrap();
        let Terms::Upto(offer) = upto_offer(10_000, usdc_devnet).terms else {
            panic!("an upto offer");
        };
        let signed = pay_without_ledger(&Terms::Upto(offer.clone()), &payer)
            .await
            .unwrap();
        let payload: UptoPayload = serde_json::from_value(signed.payload).unwrap();
        assert_eq!(payload.from, payer.pubkey().to_string());
        assert_eq!(
            (payload.max_amount.as_str(), payload.deposit.as_str()),
            ("10000", "10000")
        );
        assert_eq!(payload.open_slot, 341_000_000, "the offer's recentSlot");
        assert_eq!(
            payload.expires_at - payload.valid_after,
            60,
            "maxTimeoutSeconds"
        );
        let terms = &offer.terms;
        let seeds = ChannelSeeds {
            payer: payer.pubkey(),
            payee: terms.fee_payer,
            mint: terms.mint,
            authorized_signer: terms.receiver_authorizer,
            salt: payload.nonce.parse().unwrap(),
            open_slot: payload.open_slot,
        };
        assert_eq!(payload.channel_id, channel_address(&seeds).to_string());
        let tx: VersionedTransaction = decode_transaction(&payload.open_transaction).unwrap();
        assert_eq!(tx.message.static_account_keys()[0], terms.fee_payer);
    }

    #[tokio::test]
    async fn an_upto_offer_naming_another_token_program_than_the_mints_is_refused() {
        let payer = Keypair::new();
        let usdc_devnet: Pubkey = x402_protocol::mint::KNOWN_MINTS[1].address.parse().unwrap();
        let Terms::Upto(mut offer) = upto_offer(10_000, usdc_devnet).terms else {
            panic!("an upto offer");
        };
        // USDC is a classic-Token mint.
        offer.terms.token_program =
            anchor_lang::pubkey!("TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb");
        let refused = pay_without_ledger(&Terms::Upto(offer), &payer).await;
        assert!(
            matches!(&refused, Err(ClientError::MalformedChallenge(why)) if why.contains("token program")),
            "{refused:?}"
        );
    }
}
