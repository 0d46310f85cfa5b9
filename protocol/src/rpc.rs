//! The Solana JSON-RPC ledger (feature `rpc`), through solana-client's nonblocking client.
//!
//! The RPC URL often carries a provider's API key: it stays inside the client and never
//! reaches an error, a log line or `Debug`.

use std::time::Duration;

use anchor_lang::prelude::Pubkey;
use async_trait::async_trait;
use solana_account_decoder_client_types::UiAccountEncoding;
use solana_commitment_config::CommitmentConfig;
use solana_hash::Hash;
use solana_rpc_client::nonblocking::rpc_client::RpcClient;
use solana_rpc_client_api::client_error::{Error as ClientError, ErrorKind};
use solana_rpc_client_api::config::{RpcAccountInfoConfig, RpcProgramAccountsConfig};
use solana_rpc_client_api::filter::{Memcmp, RpcFilterType};
use solana_signature::Signature;
use solana_transaction::Transaction;

use crate::ledger::{AccountFilter, Ledger, LedgerError};
use crate::network::Network;
use crate::receipt::LedgerAccount;

/// `getMultipleAccounts` takes at most this many keys.
const MAX_KEYS_PER_CALL: usize = 100;

pub struct RpcLedger {
    client: RpcClient,
    network: Network,
}

impl std::fmt::Debug for RpcLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcLedger")
            .field("network", &self.network.caip2())
            .finish_non_exhaustive()
    }
}

impl RpcLedger {
    /// Connects to the node at `url` and names its network from its genesis hash.
    pub async fn connect(
        url: &str,
        commitment: CommitmentConfig,
        timeout: Duration,
    ) -> Result<Self, LedgerError> {
        let client =
            RpcClient::new_with_timeout_and_commitment(url.to_string(), timeout, commitment);
        let genesis = client.get_genesis_hash().await.map_err(unavailable)?;
        Ok(RpcLedger {
            client,
            network: Network::from_genesis_hash(&genesis.to_string()),
        })
    }
}

/// What may be said of a failed call without quoting the URL (reqwest's errors name it).
fn unavailable(error: ClientError) -> LedgerError {
    let what = match error.kind() {
        ErrorKind::Reqwest(e) if e.is_timeout() => {
            "the RPC node did not answer in time".to_string()
        }
        ErrorKind::Reqwest(_) | ErrorKind::Io(_) | ErrorKind::Middleware(_) => {
            "the RPC node could not be reached".to_string()
        }
        ErrorKind::RpcError(e) => format!("the RPC node answered with an error: {e}"),
        ErrorKind::SerdeJson(_) => "the RPC node's answer could not be read".to_string(),
        other => other.to_string(),
    };
    LedgerError::Unavailable(what)
}

fn rejected_or_unavailable(error: ClientError) -> LedgerError {
    match error.get_transaction_error() {
        Some(failure) => LedgerError::Rejected(failure.to_string()),
        None => unavailable(error),
    }
}

#[async_trait]
impl Ledger for RpcLedger {
    fn network(&self) -> &Network {
        &self.network
    }

    async fn accounts(
        &self,
        addresses: &[Pubkey],
    ) -> Result<Vec<Option<LedgerAccount>>, LedgerError> {
        let mut accounts = Vec::with_capacity(addresses.len());
        for chunk in addresses.chunks(MAX_KEYS_PER_CALL) {
            let answer = self
                .client
                .get_multiple_accounts_with_commitment(chunk, self.client.commitment())
                .await
                .map_err(unavailable)?;
            accounts.extend(answer.value.into_iter().map(|a| {
                a.map(|a| LedgerAccount {
                    owner: a.owner,
                    lamports: a.lamports,
                    data: a.data,
                })
            }));
        }
        Ok(accounts)
    }

    async fn latest_blockhash(&self) -> Result<Hash, LedgerError> {
        self.client
            .get_latest_blockhash()
            .await
            .map_err(unavailable)
    }

    async fn submit(&self, transaction: &Transaction) -> Result<Signature, LedgerError> {
        // Preflight is on: a transaction that would fail is refused without a fee.
        self.client
            .send_and_confirm_transaction(transaction)
            .await
            .map_err(rejected_or_unavailable)
    }

    async fn program_accounts(
        &self,
        program: &Pubkey,
        filters: &[AccountFilter],
    ) -> Result<Vec<(Pubkey, LedgerAccount)>, LedgerError> {
        let filters = filters
            .iter()
            .map(|filter| match filter {
                AccountFilter::DataSize(size) => RpcFilterType::DataSize(*size),
                AccountFilter::Memcmp { offset, bytes } => {
                    RpcFilterType::Memcmp(Memcmp::new_raw_bytes(*offset, bytes.clone()))
                }
            })
            .collect();
        let config = RpcProgramAccountsConfig {
            filters: Some(filters),
            account_config: RpcAccountInfoConfig {
                encoding: Some(UiAccountEncoding::Base64),
                commitment: Some(self.client.commitment()),
                ..RpcAccountInfoConfig::default()
            },
            ..RpcProgramAccountsConfig::default()
        };
        let accounts = self
            .client
            .get_program_ui_accounts_with_config(program, config)
            .await
            .map_err(unavailable)?;
        accounts
            .into_iter()
            .map(|(address, account)| {
                let data = account
                    .data
                    .decode()
                    .ok_or_else(|| LedgerError::Unavailable("undecodable account data".into()))?;
                let owner = account
                    .owner
                    .parse()
                    .map_err(|_| LedgerError::Unavailable("undecodable account owner".into()))?;
                Ok((
                    address,
                    LedgerAccount {
                        owner,
                        lamports: account.lamports,
                        data,
                    },
                ))
            })
            .collect()
    }
}
