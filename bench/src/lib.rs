//! What the benchmark programs share: a market on a test validator with the verifier
//! selling on it, and the figures of a set of latencies.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anchor_lang::prelude::Pubkey;
use anchor_lang::solana_program::instruction::Instruction;
use anchor_spl::associated_token::get_associated_token_address;
use anchor_spl::associated_token::spl_associated_token_account::instruction::create_associated_token_account;
use anchor_spl::token::spl_token;
use solana_keypair::Keypair;
use solana_signer::Signer;
use solana_system_interface::instruction as system_instruction;
use x402_client::X402Client;
use x402_protocol::rpc::{RpcLedger, RpcOptions};
use x402_protocol::Ledger;
use x402_testkit::process::Launch;
use x402_testkit::{Validator, VerifierProcess};

/// The arguments of a benchmark on a test validator.
#[derive(clap::Args)]
pub struct OnValidator {
    /// The verifier binary (a release build).
    #[arg(long)]
    pub verifier: PathBuf,
    /// The x402-test-validator binary (scripts/build-validator).
    #[arg(long)]
    pub validator: PathBuf,
    /// The receipts program built for SBF (x402_receipts.so).
    #[arg(long)]
    pub program: PathBuf,
    /// Where the verifier's log, state and configuration go.
    #[arg(long)]
    pub work: PathBuf,
}

/// A validator with the receipts program (and the vendored ones), and a market on it.
pub struct Market {
    pub validator: Validator,
    /// Straight to the validator.
    pub node: Arc<RpcLedger>,
    /// The validator's funded keypair: the mint's authority, and the buyer.
    pub authority: Keypair,
    pub mint: Pubkey,
    /// The seller's wallet (`payTo`).
    pub merchant: Pubkey,
}

impl Market {
    /// The buyer (the authority) paying through the node, at most `max_per_request` base
    /// units a request: the validator's mint is no stablecoin the client knows.
    pub fn buyer(&self, max_per_request: u64) -> X402Client {
        let policy = x402_client::SpendingPolicy {
            max_per_request: Some(x402_client::Limit::Units(max_per_request)),
            ..Default::default()
        };
        X402Client::builder()
            .keypair(self.authority.insecure_clone())
            .ledger(self.node.clone())
            .policy(policy)
            .build()
    }
}

impl OnValidator {
    /// Starts the validator and makes a market on it: a mint, the buyer's tokens, a token
    /// account for the merchant and each of `holders`.
    pub async fn market(&self, holders: &[Pubkey]) -> Market {
        std::fs::create_dir_all(&self.work).expect("the work directory");
        let validator = Validator::start(&self.validator, &[], Some(&self.program)).await;
        let node = Arc::new(
            RpcLedger::connect(&validator.url, RpcOptions::default())
                .await
                .expect("the node"),
        );
        let authority = validator.payer();
        let merchant = Keypair::new().pubkey();
        let owners: Vec<Pubkey> = std::iter::once(merchant)
            .chain(holders.iter().copied())
            .collect();
        let mint = create_market(&node, &authority, &owners).await;
        Market {
            validator,
            node,
            authority,
            mint,
            merchant,
        }
    }

    /// The verifier as a seller runs it, listening on `listen`: its configuration file
    /// (`verifier.toml` in the work directory, beside its log), the JSON-RPC ledger
    /// through `rpc_url`, `market`'s mint and merchant, `/metrics` on the main listener;
    /// `payment` adds to its `[payment]` table, and `routes` are its `[[routes]]`.
    pub fn verifier(
        &self,
        listen: &str,
        rpc_url: &str,
        market: &Market,
        payment: &str,
        routes: &str,
    ) -> VerifierProcess {
        let config = format!(
            r#"public_url = "http://{listen}"
state_dir = "{state}"

[metrics]
listen = "main"

[payment]
network = "solana-localnet"
rpc_url = "{rpc_url}"
asset = "{mint}"
pay_to = "{merchant}"
{payment}
{routes}"#,
            state = self.work.join("verifier-state").display(),
            mint = market.mint,
            merchant = market.merchant,
        );
        Launch::new(&self.verifier)
            .env("X402_LISTEN", listen)
            .config(&config)
            .in_dir(&self.work)
            .start()
    }
}

/// A 6-decimal SPL Token mint of `authority`'s, a token account for each of `holders`
/// and the buyer's (the authority's own) holding enough for every payment: one
/// transaction.
async fn create_market(node: &RpcLedger, authority: &Keypair, holders: &[Pubkey]) -> Pubkey {
    let mint = Keypair::new();
    let owner = authority.pubkey();
    let rent = 1_461_600; // rent exemption of an 82-byte mint
    let mut instructions = vec![
        system_instruction::create_account(&owner, &mint.pubkey(), rent, 82, &spl_token::ID),
        spl_token::instruction::initialize_mint2(&spl_token::ID, &mint.pubkey(), &owner, None, 6)
            .expect("a valid mint"),
        create_associated_token_account(&owner, &owner, &mint.pubkey(), &spl_token::ID),
    ];
    for holder in holders {
        instructions.push(create_associated_token_account(
            &owner,
            holder,
            &mint.pubkey(),
            &spl_token::ID,
        ));
    }
    instructions.push(
        spl_token::instruction::mint_to(
            &spl_token::ID,
            &mint.pubkey(),
            &get_associated_token_address(&owner, &mint.pubkey()),
            &owner,
            &[],
            u64::MAX / 2,
        )
        .expect("a valid mint_to"),
    );
    submit(node, authority, &instructions, &[authority, &mint]).await;
    mint.pubkey()
}

/// Sends `instructions`, paid by `payer`, signed by `signers` (the payer among them).
/// Just after start the validator may still refuse SPL Token ("Unsupported program id"):
/// tried again for a few seconds.
pub async fn submit(
    node: &RpcLedger,
    payer: &Keypair,
    instructions: &[Instruction],
    signers: &[&Keypair],
) {
    for attempt in 1.. {
        let blockhash = node.latest_blockhash().await.expect("a blockhash");
        let transaction = solana_transaction::Transaction::new_signed_with_payer(
            instructions,
            Some(&payer.pubkey()),
            signers,
            blockhash,
        );
        match node.submit(&transaction.into()).await {
            Ok(_) => break,
            Err(error) if attempt < 20 => {
                eprintln!("bench: set-up, attempt {attempt}: {error}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(error) => panic!("bench: set-up: {error}"),
        }
    }
}

/// The `p`th percentile of `samples`.
pub fn percentile(samples: &[Duration], p: usize) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

/// Milliseconds, for printing.
pub fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
