//! The ledger behind one trait: where receipts are read and payments submitted. The
//! verifier and the client both use it; the embedded local bank and Solana JSON-RPC
//! implement it.

use anchor_lang::prelude::Pubkey;
use async_trait::async_trait;
use solana_hash::Hash;
use solana_signature::Signature;
use solana_transaction::versioned::VersionedTransaction;

use crate::network::Network;

/// An account as a ledger returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerAccount {
    pub owner: Pubkey,
    pub lamports: u64,
    pub data: Vec<u8>,
}

/// Why a ledger call did not give an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    /// The ledger could not be asked (timeout, connection, node unhealthy): the answer is
    /// unknown, so nothing may be concluded from it. Never carries a URL.
    #[error("the ledger is unavailable: {0}")]
    Unavailable(String),
    /// The ledger processed the transaction and it failed; nothing was paid.
    #[error("the transaction failed: {0}")]
    Rejected(String),
}

/// A condition on the accounts `program_accounts` returns, as Solana JSON-RPC's
/// `getProgramAccounts` filters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccountFilter {
    DataSize(u64),
    /// The account's data holds `bytes` at `offset`.
    Memcmp {
        offset: usize,
        bytes: Vec<u8>,
    },
}

impl AccountFilter {
    pub fn matches(&self, data: &[u8]) -> bool {
        match self {
            AccountFilter::DataSize(size) => data.len() as u64 == *size,
            AccountFilter::Memcmp { offset, bytes } => {
                data.get(*offset..offset + bytes.len()) == Some(bytes.as_slice())
            }
        }
    }
}

/// What a processed transaction did, as far as settling a payment needs to know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Landed {
    /// Why it failed, when it did (its fee was charged all the same).
    pub failure: Option<String>,
    /// By how much the watched token account's balance grew, in base units.
    pub received: u64,
}

#[async_trait]
pub trait Ledger: Send + Sync {
    /// The network this ledger is.
    fn network(&self) -> &Network;

    /// The accounts at `addresses`, in order; `None` where no account exists.
    async fn accounts(
        &self,
        addresses: &[Pubkey],
    ) -> Result<Vec<Option<LedgerAccount>>, LedgerError>;

    /// A blockhash for a new transaction.
    async fn latest_blockhash(&self) -> Result<Hash, LedgerError>;

    /// Submits a fully signed transaction and waits until it reaches the ledger's
    /// commitment.
    async fn submit(&self, transaction: &VersionedTransaction) -> Result<Signature, LedgerError>;

    /// Whether the ledger processed the transaction `signature` at its commitment, and by
    /// how much it grew the token account `watched`; `None` when it has not (yet).
    async fn landed(
        &self,
        signature: &Signature,
        watched: &Pubkey,
    ) -> Result<Option<Landed>, LedgerError>;

    /// The accounts owned by `program` that pass every filter.
    async fn program_accounts(
        &self,
        program: &Pubkey,
        filters: &[AccountFilter],
    ) -> Result<Vec<(Pubkey, LedgerAccount)>, LedgerError>;

    /// The account at `address`, if any.
    async fn account(&self, address: &Pubkey) -> Result<Option<LedgerAccount>, LedgerError> {
        Ok(self
            .accounts(std::slice::from_ref(address))
            .await?
            .pop()
            .flatten())
    }
}

/// The chain's clock as a ledger reads it (the Clock sysvar): the slot a channel opens
/// at, and the time the program holds a channel's grace period against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainClock {
    pub slot: u64,
    /// Unix seconds, as the program's `Clock::get()` sees them.
    pub unix_timestamp: i64,
}

impl ChainClock {
    /// Reads the Clock sysvar: the slot, then epoch start, epoch and leader schedule
    /// epoch, then the unix time, little-endian.
    pub async fn read(ledger: &dyn Ledger) -> Result<ChainClock, LedgerError> {
        let account = ledger
            .account(&anchor_lang::solana_program::clock::sysvar::ID)
            .await?
            .ok_or_else(|| LedgerError::Unavailable("the ledger has no Clock sysvar".into()))?;
        let field = |at: usize| -> Result<[u8; 8], LedgerError> {
            account
                .data
                .get(at..at + 8)
                .and_then(|bytes| bytes.try_into().ok())
                .ok_or_else(|| LedgerError::Unavailable("the Clock sysvar is truncated".into()))
        };
        Ok(ChainClock {
            slot: u64::from_le_bytes(field(0)?),
            unix_timestamp: i64::from_le_bytes(field(32)?),
        })
    }
}
