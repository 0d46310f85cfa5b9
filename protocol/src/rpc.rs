//! The Solana JSON-RPC ledger (feature `rpc`), through solana-client's nonblocking client.
//!
//! The RPC URL often carries a provider's API key: it stays inside the client and never
//! reaches an error, a log line or `Debug`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anchor_lang::prelude::Pubkey;
use async_trait::async_trait;
use solana_account_decoder_client_types::{UiAccount, UiAccountEncoding};
use solana_commitment_config::CommitmentConfig;
use solana_hash::Hash;
use solana_rpc_client::nonblocking::rpc_client::RpcClient;
use solana_rpc_client_api::client_error::{Error as ClientError, ErrorKind};
use solana_rpc_client_api::config::{
    RpcAccountInfoConfig, RpcProgramAccountsConfig, RpcTransactionConfig,
};
use solana_rpc_client_api::filter::{Memcmp, RpcFilterType};
use solana_signature::Signature;
use solana_transaction::versioned::VersionedTransaction;
use solana_transaction_status_client_types::{
    option_serializer::OptionSerializer, UiTransactionEncoding,
};
use tokio::sync::{mpsc, oneshot};

use crate::ledger::LedgerAccount;
use crate::ledger::{AccountFilter, Landed, Ledger, LedgerError};
use crate::network::Network;

/// `getMultipleAccounts` takes at most this many keys.
const MAX_KEYS_PER_CALL: usize = 100;

/// How the ledger talks to its node.
#[derive(Clone, Debug)]
pub struct RpcOptions {
    /// `confirmed` by default; `finalized` on request.
    pub commitment: CommitmentConfig,
    /// The deadline of each call.
    pub deadline: Duration,
    /// The deadline of a submission, confirmation included.
    pub submit_deadline: Duration,
    /// How long a read that queued behind others waits for more to share its
    /// `getMultipleAccounts` (a read alone goes out at once).
    pub batch_window: Duration,
    /// Reads waiting for their batch at most: past it a read is refused at once as
    /// unavailable (a 503), instead of queueing without bound behind a slow node.
    pub max_queued_reads: usize,
}

impl Default for RpcOptions {
    fn default() -> Self {
        RpcOptions {
            commitment: CommitmentConfig::confirmed(),
            deadline: Duration::from_secs(3),
            submit_deadline: Duration::from_secs(60),
            batch_window: Duration::from_millis(20),
            max_queued_reads: 1024,
        }
    }
}

type AccountsReply = Result<Vec<Option<LedgerAccount>>, LedgerError>;

/// A read waiting for its batch.
struct Read {
    keys: Vec<Pubkey>,
    reply: oneshot::Sender<AccountsReply>,
}

pub struct RpcLedger {
    client: Arc<RpcClient>,
    network: Network,
    options: RpcOptions,
    /// The highest slot a submission was seen to land in: reads ask the node to be at
    /// least there (`minContextSlot`), so that a lagging node cannot answer "no receipt"
    /// for a receipt that landed.
    seen_slot: Arc<AtomicU64>,
    reads: mpsc::Sender<Read>,
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
    pub async fn connect(url: &str, options: RpcOptions) -> Result<Self, LedgerError> {
        let client = RpcClient::new_with_timeout_and_commitment(
            url.to_string(),
            options.deadline,
            options.commitment,
        );
        let genesis = deadline(options.deadline, client.get_genesis_hash()).await?;
        Ok(Self::start(
            client,
            Network::from_genesis_hash(&genesis.to_string()),
            options,
        ))
    }

    /// A ledger at `url` that answers to `network` without asking the node (a network
    /// named in configuration).
    pub fn with_network(url: &str, network: Network, options: RpcOptions) -> Self {
        let client = RpcClient::new_with_timeout_and_commitment(
            url.to_string(),
            options.deadline,
            options.commitment,
        );
        Self::start(client, network, options)
    }

    fn start(client: RpcClient, network: Network, options: RpcOptions) -> Self {
        let client = Arc::new(client);
        let seen_slot = Arc::new(AtomicU64::new(0));
        let (reads, queue) = mpsc::channel(options.max_queued_reads.max(1));
        tokio::spawn(coalesce(
            client.clone(),
            seen_slot.clone(),
            options.clone(),
            queue,
        ));
        RpcLedger {
            client,
            network,
            options,
            seen_slot,
            reads,
        }
    }
}

/// Runs `call` under `limit`; past it the node counts as unavailable.
async fn deadline<T>(
    limit: Duration,
    call: impl std::future::Future<Output = Result<T, ClientError>>,
) -> Result<T, LedgerError> {
    match tokio::time::timeout(limit, call).await {
        Ok(answer) => answer.map_err(unavailable),
        Err(_) => Err(LedgerError::Unavailable(
            "the RPC node did not answer in time".into(),
        )),
    }
}

/// Serves reads in batches of one `getMultipleAccounts` of at most 100 keys, a key asked
/// twice asked once. A read that finds no other waiting goes out at once: alone, it pays
/// one round trip and no window. Reads that queued behind others (a crowd) wait up to the
/// window for more to share their call.
async fn coalesce(
    client: Arc<RpcClient>,
    seen_slot: Arc<AtomicU64>,
    options: RpcOptions,
    mut queue: mpsc::Receiver<Read>,
) {
    let mut carried: Option<Read> = None;
    loop {
        let first = match carried.take() {
            Some(read) => read,
            None => match queue.recv().await {
                Some(read) => read,
                None => return,
            },
        };
        // A reader that gave up (its request timed out or went away) is not asked for.
        if first.reply.is_closed() {
            continue;
        }
        let mut keys: Vec<Pubkey> = Vec::new();
        let add = |keys: &mut Vec<Pubkey>, read: &Read| {
            for key in &read.keys {
                if !keys.contains(key) {
                    keys.push(*key);
                }
            }
        };
        add(&mut keys, &first);
        let mut batch = vec![first];
        let crowd = !queue.is_empty();
        let until = tokio::time::Instant::now() + options.batch_window;
        while keys.len() < MAX_KEYS_PER_CALL {
            let next = if crowd {
                tokio::time::timeout_at(until, queue.recv())
                    .await
                    .ok()
                    .flatten()
            } else {
                None
            };
            let Some(read) = next else {
                break;
            };
            if read.reply.is_closed() {
                continue;
            }
            let new = read.keys.iter().filter(|k| !keys.contains(k)).count();
            if keys.len() + new > MAX_KEYS_PER_CALL {
                carried = Some(read);
                break;
            }
            add(&mut keys, &read);
            batch.push(read);
        }
        let min_context_slot = Some(seen_slot.load(Ordering::SeqCst)).filter(|slot| *slot > 0);
        let config = RpcAccountInfoConfig {
            encoding: Some(UiAccountEncoding::Base64),
            commitment: Some(options.commitment),
            min_context_slot,
            ..RpcAccountInfoConfig::default()
        };
        let answer = deadline(
            options.deadline,
            client.get_multiple_ui_accounts_with_config(&keys, config),
        )
        .await;
        for read in batch {
            let reply = match &answer {
                Ok(response) => read
                    .keys
                    .iter()
                    .map(|key| {
                        let at = keys
                            .iter()
                            .position(|k| k == key)
                            .expect("every key was asked");
                        response
                            .value
                            .get(at)
                            .cloned()
                            .flatten()
                            .map(ledger_account)
                            .transpose()
                    })
                    .collect(),
                Err(error) => Err(error.clone()),
            };
            // The reader may have given up (its request timed out): nothing to do.
            let _ = read.reply.send(reply);
        }
    }
}

/// An account as the node encoded it (base64), read.
fn ledger_account(account: UiAccount) -> Result<LedgerAccount, LedgerError> {
    let data = account
        .data
        .decode()
        .ok_or_else(|| LedgerError::Unavailable("undecodable account data".into()))?;
    let owner = account
        .owner
        .parse()
        .map_err(|_| LedgerError::Unavailable("undecodable account owner".into()))?;
    Ok(LedgerAccount {
        owner,
        lamports: account.lamports,
        data,
    })
}

/// What may be said of a failed call without quoting the URL (reqwest's errors name it).
fn unavailable(error: ClientError) -> LedgerError {
    let what = match error.kind() {
        ErrorKind::Reqwest(e) if e.is_timeout() => {
            "the RPC node did not answer in time".to_string()
        }
        ErrorKind::Reqwest(e) if e.status().is_some() => {
            format!(
                "the RPC node answered HTTP {}",
                e.status().map(|s| s.as_u16()).unwrap_or_default()
            )
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
        let mut replies = Vec::new();
        for chunk in addresses.chunks(MAX_KEYS_PER_CALL) {
            let (reply, answer) = oneshot::channel();
            self.reads
                .try_send(Read {
                    keys: chunk.to_vec(),
                    reply,
                })
                .map_err(|error| match error {
                    mpsc::error::TrySendError::Full(_) => {
                        LedgerError::Unavailable("too many reads waiting for the RPC node".into())
                    }
                    mpsc::error::TrySendError::Closed(_) => {
                        LedgerError::Unavailable("the RPC reader stopped".into())
                    }
                })?;
            replies.push(answer);
        }
        let mut accounts = Vec::with_capacity(addresses.len());
        for answer in replies {
            let chunk = answer
                .await
                .map_err(|_| LedgerError::Unavailable("the RPC reader stopped".into()))??;
            accounts.extend(chunk);
        }
        Ok(accounts)
    }

    async fn latest_blockhash(&self) -> Result<Hash, LedgerError> {
        deadline(self.options.deadline, self.client.get_latest_blockhash()).await
    }

    async fn submit(&self, transaction: &VersionedTransaction) -> Result<Signature, LedgerError> {
        // Preflight is on: a transaction that would fail is refused without a fee.
        let sent = tokio::time::timeout(
            self.options.submit_deadline,
            self.client.send_and_confirm_transaction(transaction),
        );
        let signature = match sent.await {
            Ok(answer) => answer.map_err(rejected_or_unavailable)?,
            Err(_) => {
                return Err(LedgerError::Unavailable(
                    "the submission was not confirmed in time".into(),
                ))
            }
        };
        let statuses = deadline(
            self.options.deadline,
            self.client.get_signature_statuses(&[signature]),
        )
        .await?;
        if let Some(Some(status)) = statuses.value.first() {
            self.seen_slot.fetch_max(status.slot, Ordering::SeqCst);
        }
        Ok(signature)
    }

    async fn landed(
        &self,
        signature: &Signature,
        watched: &Pubkey,
    ) -> Result<Option<Landed>, LedgerError> {
        let statuses = deadline(
            self.options.deadline,
            self.client
                .get_signature_statuses_with_history(&[*signature]),
        )
        .await?;
        let Some(Some(status)) = statuses.value.first() else {
            return Ok(None);
        };
        if !status.satisfies_commitment(self.options.commitment) {
            return Ok(None);
        }
        let config = RpcTransactionConfig {
            encoding: Some(UiTransactionEncoding::Base64),
            commitment: Some(self.options.commitment),
            max_supported_transaction_version: Some(0),
        };
        let found = deadline(
            self.options.deadline,
            self.client.get_transaction_with_config(signature, config),
        )
        .await?;
        let meta = found.transaction.meta.ok_or_else(|| {
            LedgerError::Unavailable("the node keeps no transaction status".into())
        })?;
        let transaction = found.transaction.transaction.decode().ok_or_else(|| {
            LedgerError::Unavailable("the node's transaction cannot be decoded".into())
        })?;
        let index = transaction
            .message
            .static_account_keys()
            .iter()
            .position(|key| key == watched);
        let balance = |balances: OptionSerializer<Vec<_>>| -> u64 {
            let balances: Vec<solana_transaction_status_client_types::UiTransactionTokenBalance> =
                balances.unwrap_or(Vec::new());
            balances
                .iter()
                .find(|b| Some(usize::from(b.account_index)) == index)
                .and_then(|b| b.ui_token_amount.amount.parse().ok())
                .unwrap_or(0)
        };
        let before = balance(meta.pre_token_balances);
        let after = balance(meta.post_token_balances);
        Ok(Some(Landed {
            failure: meta.err.map(|e| format!("{e:?}")),
            received: after.saturating_sub(before),
        }))
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
                commitment: Some(self.options.commitment),
                ..RpcAccountInfoConfig::default()
            },
            ..RpcProgramAccountsConfig::default()
        };
        let accounts = deadline(
            self.options.deadline,
            self.client
                .get_program_ui_accounts_with_config(program, config),
        )
        .await?;
        accounts
            .into_iter()
            .map(|(address, account)| Ok((address, ledger_account(account)?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A node that accepts connections and never answers.
    async fn hanging_node() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        url
    }

    #[tokio::test]
    async fn reads_past_the_queue_bound_are_refused_at_once_not_queued() {
        let options = RpcOptions {
            deadline: Duration::from_secs(2),
            max_queued_reads: 2,
            ..RpcOptions::default()
        };
        let ledger = Arc::new(RpcLedger::with_network(
            &hanging_node().await,
            Network::devnet(),
            options,
        ));
        let started = std::time::Instant::now();
        let read = |ledger: Arc<RpcLedger>| {
            tokio::spawn(async move { ledger.accounts(&[Pubkey::new_unique()]).await })
        };
        // The first read's batch waits on the node; later reads queue behind it.
        let first = read(ledger.clone());
        tokio::time::sleep(Duration::from_millis(100)).await;
        let reads: Vec<_> = (0..10).map(|_| read(ledger.clone())).collect();
        let reads = std::iter::once(first).chain(reads);
        let mut refused_at_once = 0;
        for read in reads {
            if let Err(LedgerError::Unavailable(why)) = read.await.unwrap() {
                if why.contains("too many reads") {
                    refused_at_once += 1;
                }
            }
        }
        assert!(refused_at_once > 0, "the queue is bounded");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[tokio::test]
    async fn an_unreachable_node_is_unavailable_and_its_url_is_never_shown() {
        // Providers put API keys in the URL: nothing the ledger says may repeat it.
        let url = "http://127.0.0.1:9/v2/secret-api-key-1234";
        let options = RpcOptions {
            deadline: Duration::from_millis(500),
            ..RpcOptions::default()
        };
        let error = RpcLedger::connect(url, options.clone()).await.unwrap_err();
        let ledger = RpcLedger::with_network(url, Network::devnet(), options);
        let read = ledger.account(&Pubkey::new_unique()).await.unwrap_err();
        let blockhash = ledger.latest_blockhash().await.unwrap_err();
        for error in [error, read, blockhash] {
            assert!(matches!(error, LedgerError::Unavailable(_)), "{error:?}");
            let shown = format!("{error} {error:?}");
            assert!(
                !shown.contains("secret-api-key") && !shown.contains("127.0.0.1:9"),
                "{shown}"
            );
        }
        assert!(!format!("{ledger:?}").contains("secret-api-key"));
    }
}
