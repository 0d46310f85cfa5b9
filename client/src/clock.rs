//! The chain's clock as the client's ledger reads it (the Clock sysvar): the slot a
//! channel opens at, and the time the program holds a channel's grace period against.

use anchor_lang::solana_program::clock;
use x402_protocol::{Ledger, LedgerError};

/// The Clock sysvar's slot and unix time.
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
            .account(&clock::sysvar::ID)
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
