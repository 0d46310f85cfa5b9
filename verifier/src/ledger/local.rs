//! The embedded local ledger: the receipts program run natively on solana-program-test's
//! bank, with the real SPL Token, Token-2022 and ATA programs, a local USDC-like mint and
//! a funded demo payer. One command on a fresh machine serves paid requests with it.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use anchor_lang::prelude::Pubkey;
use anchor_spl::associated_token::get_associated_token_address_with_program_id;
use anchor_spl::token::spl_token;
use async_trait::async_trait;
use solana_commitment_config::CommitmentLevel;
use solana_hash::Hash;
use solana_keypair::Keypair;
use solana_program_test::{BanksClient, BanksClientError, ProgramTestContext};
use solana_signature::Signature;
use solana_signer::Signer;
use solana_transaction::versioned::VersionedTransaction;
use tokio::sync::Mutex;
use x402_protocol::scheme::receipt::paid_reference;
use x402_protocol::scheme::upto::{opened_channel, TREASURY_OWNER};
use x402_protocol::{
    receipt_address, AccountFilter, Landed, Ledger, LedgerAccount, LedgerError, Network,
};

use super::bank;
use crate::unix_now;

/// Decimals of the local USDC-like mint, as USDC's.
pub const LOCAL_DECIMALS: u8 = 6;

/// solana-program-test's bank makes a blockhash every 6.4 ms and accepts the last 150,
/// so a blockhash lives about a second: sponsored challenges need a fresh one.
pub const LOCAL_BLOCKHASH_REFRESH: std::time::Duration = std::time::Duration::from_millis(100);

/// The embedded ledger. Its clock follows wall time: a submission first moves
/// `Clock::unix_timestamp` up to now. Its slot does not advance (warping the bank would
/// expire the blockhashes that challenges hand out), so receipts record one slot.
pub struct LocalLedger {
    context: Mutex<ProgramTestContext>,
    banks: BanksClient,
    network: Network,
    /// The bank's `Clock::unix_timestamp`, as last set here: a submission sets it only
    /// when wall time has passed it (once a second at most, not once a submission).
    clock: std::sync::atomic::AtomicI64,
    /// The receipts and `upto` channels created through `submit`: the bank cannot be
    /// scanned for a program's accounts, so `program_accounts` looks among these.
    created: std::sync::Mutex<std::collections::BTreeSet<Pubkey>>,
    /// The tokens each transaction submitted here moved, by destination: the bank keeps
    /// no token balances, so `landed` reads them from here.
    landed: std::sync::Mutex<std::collections::HashMap<Signature, Transfers>>,
}

/// The top-level token transfers of one transaction: destination account and amount.
/// On this ledger's own mint (SPL Token, no fee, no hook) that is what each destination
/// received when the transaction landed.
type Transfers = Vec<(Pubkey, u64)>;

/// What a fresh local ledger holds: a mint, a merchant with a token account, a funded
/// fee payer and a funded demo payer.
pub struct LocalMarket {
    pub ledger: Arc<LocalLedger>,
    pub mint: Pubkey,
    pub merchant: Pubkey,
    pub fee_payer: Keypair,
    pub demo_payer: Keypair,
}

/// Tokens the demo payer starts with: 100 of the local mint.
pub const DEMO_PAYER_TOKENS: u64 = 100 * 10u64.pow(LOCAL_DECIMALS as u32);
pub const WALLET_LAMPORTS: u64 = 10_000_000_000;

impl LocalLedger {
    /// Starts a bank with the program and sets its clock to now.
    pub async fn start() -> Self {
        let context = bank::program_test().start_with_context().await;
        let banks = context.banks_client.clone();
        let genesis = banks
            .get_latest_blockhash()
            .await
            .expect("a fresh bank answers");
        let ledger = LocalLedger {
            network: Network::localnet(&genesis.to_string()),
            context: Mutex::new(context),
            banks,
            clock: Default::default(),
            created: Default::default(),
            landed: Default::default(),
        };
        ledger.set_time(unix_now()).await;
        ledger
    }

    /// Starts a bank and sets up a market in it: a USDC-like mint, `merchant`'s token
    /// account (a new wallet if none is given), a funded fee payer, and a demo payer with
    /// SOL and [`DEMO_PAYER_TOKENS`].
    pub async fn start_market(merchant: Option<Pubkey>) -> LocalMarket {
        let ledger = Arc::new(Self::start().await);
        let mint = ledger.create_mint(spl_token::ID).await;
        let merchant = merchant.unwrap_or_else(|| Keypair::new().pubkey());
        ledger
            .create_token_account(&merchant, &mint, spl_token::ID)
            .await;
        let fee_payer = Keypair::new();
        ledger.airdrop(&fee_payer.pubkey(), WALLET_LAMPORTS).await;
        // `upto` settles into the payment-channels program's treasury account too, which
        // exists on mainnet for USDC.
        ledger
            .create_token_account(&TREASURY_OWNER, &mint, spl_token::ID)
            .await;
        let demo_payer = Keypair::new();
        ledger.airdrop(&demo_payer.pubkey(), WALLET_LAMPORTS).await;
        ledger
            .create_token_account(&demo_payer.pubkey(), &mint, spl_token::ID)
            .await;
        ledger
            .mint_to(&mint, &demo_payer.pubkey(), DEMO_PAYER_TOKENS)
            .await;
        LocalMarket {
            ledger,
            mint,
            merchant,
            fee_payer,
            demo_payer,
        }
    }

    /// Sets the bank's clock (tests move it to expire challenges).
    pub async fn set_time(&self, unix_timestamp: i64) {
        let context = self.context.lock().await;
        bank::set_time(&context, unix_timestamp)
            .await
            .expect("the bank answers");
        self.clock.store(unix_timestamp, Ordering::SeqCst);
    }

    /// Sends lamports from the bank's genesis payer.
    pub async fn airdrop(&self, to: &Pubkey, lamports: u64) {
        bank::fund(&mut *self.context.lock().await, to, lamports).await;
    }

    /// A new mint of `token_program` with [`LOCAL_DECIMALS`], minted by the authority.
    pub async fn create_mint(&self, token_program: Pubkey) -> Pubkey {
        let mut context = self.context.lock().await;
        bank::create_mint(&mut context, token_program, LOCAL_DECIMALS, None).await
    }

    /// Creates `owner`'s associated token account for `mint` through the ATA program.
    pub async fn create_token_account(
        &self,
        owner: &Pubkey,
        mint: &Pubkey,
        token_program: Pubkey,
    ) -> Pubkey {
        let mut context = self.context.lock().await;
        bank::create_ata(&mut context, owner, mint, token_program).await
    }

    /// Mints `amount` base units into `owner`'s associated token account.
    pub async fn mint_to(&self, mint: &Pubkey, owner: &Pubkey, amount: u64) {
        let account = get_associated_token_address_with_program_id(owner, mint, &spl_token::ID);
        let mut context = self.context.lock().await;
        bank::mint_to(&mut context, mint, &account, amount, spl_token::ID).await;
    }

    /// The token balance of `owner`'s associated token account for `mint`.
    pub async fn token_balance(&self, owner: &Pubkey, mint: &Pubkey) -> u64 {
        let account = get_associated_token_address_with_program_id(owner, mint, &spl_token::ID);
        bank::token_balance(&self.banks, &account).await
    }

    /// Writes `account` at `address` as it is, as a test validator's `--account` does.
    pub async fn set_account(&self, address: &Pubkey, account: &LedgerAccount) {
        let mut context = self.context.lock().await;
        let account = solana_account::Account {
            lamports: account.lamports,
            data: account.data.clone(),
            owner: account.owner,
            executable: false,
            rent_epoch: 0,
        };
        context.set_account(address, &account.into());
    }

    /// The bank's slot: it moves only when a test warps it.
    pub async fn slot(&self) -> u64 {
        self.banks.get_root_slot().await.expect("the bank answers")
    }

    /// Moves the bank `slots` ahead (the blockhashes handed out before expire).
    pub async fn warp_slots(&self, slots: u64) {
        let slot = self.slot().await;
        let mut context = self.context.lock().await;
        context
            .warp_to_slot(slot.saturating_add(slots))
            .expect("the bank warps ahead");
    }

    pub async fn lamports(&self, address: &Pubkey) -> u64 {
        self.banks
            .get_balance(*address)
            .await
            .expect("the bank answers")
    }
}

fn unavailable(error: BanksClientError) -> LedgerError {
    LedgerError::Unavailable(error.to_string())
}

#[async_trait]
impl Ledger for LocalLedger {
    fn network(&self) -> &Network {
        &self.network
    }

    async fn accounts(
        &self,
        addresses: &[Pubkey],
    ) -> Result<Vec<Option<LedgerAccount>>, LedgerError> {
        let mut accounts = Vec::with_capacity(addresses.len());
        for address in addresses {
            let account = self
                .banks
                .get_account(*address)
                .await
                .map_err(unavailable)?;
            accounts.push(account.map(|a| LedgerAccount {
                owner: a.owner,
                lamports: a.lamports,
                data: a.data,
            }));
        }
        Ok(accounts)
    }

    async fn latest_blockhash(&self) -> Result<Hash, LedgerError> {
        self.banks.get_latest_blockhash().await.map_err(unavailable)
    }

    /// Only the receipts and channels created through this ledger's `submit` are known.
    async fn program_accounts(
        &self,
        program: &Pubkey,
        filters: &[AccountFilter],
    ) -> Result<Vec<(Pubkey, LedgerAccount)>, LedgerError> {
        let known: Vec<Pubkey> = self
            .created
            .lock()
            .expect("not poisoned")
            .iter()
            .copied()
            .collect();
        let accounts = self.accounts(&known).await?;
        Ok(known
            .into_iter()
            .zip(accounts)
            .filter_map(|(address, account)| Some((address, account?)))
            .filter(|(_, account)| {
                account.owner == *program && filters.iter().all(|f| f.matches(&account.data))
            })
            .collect())
    }

    /// Submissions run side by side, as on a node: none waits for another's confirmation.
    async fn submit(&self, transaction: &VersionedTransaction) -> Result<Signature, LedgerError> {
        let now = unix_now();
        if now > self.clock.load(Ordering::SeqCst) {
            let context = self.context.lock().await;
            bank::set_time(&context, now).await.map_err(unavailable)?;
            self.clock.fetch_max(now, Ordering::SeqCst);
        }
        // Preflight, as an RPC node does: a transaction that would fail is refused
        // without being recorded, so the fee payer pays no fee for it.
        let simulation = self
            .banks
            .simulate_transaction(transaction.clone())
            .await
            .map_err(unavailable)?;
        if let Some(Err(error)) = simulation.result {
            return Err(LedgerError::Rejected(error.to_string()));
        }
        match self
            .banks
            .process_transaction_with_commitment(transaction.clone(), CommitmentLevel::Confirmed)
            .await
        {
            Ok(()) => {
                let legacy = transaction.clone().into_legacy_transaction();
                let receipt = legacy
                    .and_then(|tx| paid_reference(&tx, &x402_receipts::ID))
                    .map(|reference| receipt_address(&x402_receipts::ID, &reference));
                let keys = transaction.message.static_account_keys();
                let channels = transaction
                    .message
                    .instructions()
                    .iter()
                    .filter_map(|ix| opened_channel(ix, keys));
                self.created
                    .lock()
                    .expect("not poisoned")
                    .extend(receipt.into_iter().chain(channels));
                let signature = transaction.signatures[0];
                self.landed
                    .lock()
                    .expect("not poisoned")
                    .insert(signature, transfers(transaction));
                Ok(signature)
            }
            Err(BanksClientError::TransactionError(error)) => {
                Err(LedgerError::Rejected(error.to_string()))
            }
            Err(other) => Err(unavailable(other)),
        }
    }

    /// Only the transactions submitted through this ledger are known; those that failed
    /// in preflight were never processed.
    async fn landed(
        &self,
        signature: &Signature,
        watched: &Pubkey,
    ) -> Result<Option<Landed>, LedgerError> {
        let landed = self.landed.lock().expect("not poisoned");
        Ok(landed.get(signature).map(|transfers| Landed {
            failure: None,
            received: transfers
                .iter()
                .filter(|(destination, _)| destination == watched)
                .fold(0u64, |sum, (_, amount)| sum.saturating_add(*amount)),
        }))
    }
}

/// The top-level SPL Token and Token-2022 `TransferChecked`s of `transaction`.
fn transfers(transaction: &VersionedTransaction) -> Transfers {
    use anchor_spl::token_2022::spl_token_2022::instruction::TokenInstruction;
    let message = &transaction.message;
    let keys = message.static_account_keys();
    message
        .instructions()
        .iter()
        .filter(|ix| {
            let program = keys.get(ix.program_id_index as usize);
            program == Some(&spl_token::ID) || program == Some(&anchor_spl::token_2022::ID)
        })
        .filter_map(|ix| {
            // `exact` pays with TransferChecked only (validated before submission).
            let TokenInstruction::TransferChecked { amount, .. } =
                TokenInstruction::unpack(&ix.data).ok()?
            else {
                return None;
            };
            Some((*keys.get(*ix.accounts.get(2)? as usize)?, amount))
        })
        .collect()
}
