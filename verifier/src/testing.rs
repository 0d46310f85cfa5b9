//! What the verifier's unit tests share: a ledger holding nothing, and a gate's settings
//! over a fresh SQLite grant store. (The integration tests have the test kit.)

use std::sync::Arc;
use std::time::Duration;

use anchor_lang::prelude::Pubkey;
use async_trait::async_trait;
use solana_hash::Hash;
use solana_signature::Signature;
use solana_transaction::versioned::VersionedTransaction;
use x402_protocol::{ChallengeKey, Ledger, LedgerAccount, LedgerError, Network};

use crate::context::PaymentSettings;
use crate::model::Scheme;
use crate::store::GrantStore;

/// Routing and answers that need no ledger: a ledger holding no accounts, whose reads
/// take `read_delay`.
pub struct EmptyLedger {
    network: Network,
    read_delay: Duration,
}

impl EmptyLedger {
    pub fn new(network: Network) -> Self {
        Self::slow(network, Duration::ZERO)
    }

    pub fn slow(network: Network, read_delay: Duration) -> Self {
        EmptyLedger {
            network,
            read_delay,
        }
    }
}

#[async_trait]
impl Ledger for EmptyLedger {
    fn network(&self) -> &Network {
        &self.network
    }
    async fn accounts(
        &self,
        addresses: &[Pubkey],
    ) -> Result<Vec<Option<LedgerAccount>>, LedgerError> {
        tokio::time::sleep(self.read_delay).await;
        Ok(vec![None; addresses.len()])
    }
    async fn latest_blockhash(&self) -> Result<Hash, LedgerError> {
        Ok(Hash::new_from_array([3; 32]))
    }
    async fn submit(&self, _: &VersionedTransaction) -> Result<Signature, LedgerError> {
        Err(LedgerError::Rejected(
            "nothing is submitted in these tests".into(),
        ))
    }
    async fn landed(
        &self,
        _: &Signature,
        _: &Pubkey,
    ) -> Result<Option<x402_protocol::Landed>, LedgerError> {
        Ok(None)
    }
    async fn program_accounts(
        &self,
        _: &Pubkey,
        _: &[x402_protocol::AccountFilter],
    ) -> Result<Vec<(Pubkey, LedgerAccount)>, LedgerError> {
        Ok(Vec::new())
    }
}

/// A sponsoring gate's settings on devnet, offering every scheme, and a grant store in a
/// temporary directory (kept alive by the returned handle).
pub async fn settings_and_store() -> (PaymentSettings, GrantStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = GrantStore::connect(&format!("sqlite://{}", dir.path().join("g.db").display()))
        .await
        .unwrap();
    let settings = PaymentSettings {
        network: Network::devnet(),
        program: x402_receipts::ID,
        mint: Pubkey::new_unique(),
        decimals: 6,
        token_program: anchor_spl::token::ID,
        currency: "USDC".into(),
        pay_to: Pubkey::new_unique(),
        challenge_keys: vec![ChallengeKey::random()],
        fee_payer: Some(Arc::new(solana_keypair::Keypair::new())),
        schemes: Scheme::ALL.to_vec(),
        sponsor_limits: Default::default(),
        max_compute_unit_price: 1,
        max_compute_unit_limit: 1,
        ledger_timeout: Duration::from_secs(5),
        public_url: Some("https://api.example.com/".into()),
        facilitator_url: None,
        batch: Default::default(),
    };
    (settings, store, dir)
}
