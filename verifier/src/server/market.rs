//! Where payments go and are read, as configuration names it: a Solana JSON-RPC node, or
//! the embedded local ledger without an RPC URL. Start-up code: it reads the mint and the
//! keys once, before the gate exists.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anchor_lang::prelude::Pubkey;
use solana_commitment_config::CommitmentConfig;
use solana_keypair::Keypair;
use x402_protocol::keypair::read_keypair_file;
use x402_protocol::rpc::{RpcLedger, RpcOptions};
use x402_protocol::{read_mint, Cluster, Ledger, LedgerError, Network};

use super::{invalid, StartError};
use crate::config::{Commitment, Config, RpcUrl};

/// Where payments go and are read: a ledger, its network, the token and the payee.
pub(super) struct Market {
    pub ledger: Arc<dyn Ledger>,
    /// For the banner.
    pub kind: &'static str,
    pub network: Network,
    pub mint: Pubkey,
    pub decimals: u8,
    pub token_program: Pubkey,
    /// Whether a transfer of the mint delivers its whole amount (no fee, no hook).
    pub delivers_in_full: bool,
    pub pay_to: Pubkey,
    pub fee_payer: Option<Keypair>,
    /// Well inside the ledger's blockhash lifetime.
    pub blockhash_refresh: Duration,
    /// A funded payer's keypair file, to try the API with.
    pub demo_payer: Option<PathBuf>,
}

/// The market `config` names: JSON-RPC with an RPC URL, the embedded ledger without.
pub(super) async fn open_market(config: &Config) -> Result<Market, StartError> {
    match &config.payment.rpc_url {
        Some(url) => rpc_market(config, url).await,
        #[cfg(feature = "embedded-ledger")]
        None => embedded_market(config).await,
        #[cfg(not(feature = "embedded-ledger"))]
        None => Err(invalid(
            "payment.rpc_url",
            "required: this build has no embedded ledger (cargo feature embedded-ledger)",
        )),
    }
}

/// A local validator's ledger that announces `announced` (a public network) to clients:
/// refused on any node that is not local, and said loudly, since payments on it are not
/// worth what the announced network's are.
async fn announcing(
    url: &RpcUrl,
    options: RpcOptions,
    announced: &str,
) -> Result<RpcLedger, StartError> {
    let network =
        Network::public(announced).ok_or_else(|| invalid("payment.announce_network", announced))?;
    let node = RpcLedger::connect(url.expose(), options.clone())
        .await
        .map_err(|e| StartError::Io(format!("the RPC node: {e}")))?;
    if node.network().cluster() != Cluster::Localnet {
        return Err(invalid(
            "payment.announce_network",
            format!(
                "only for a local validator; the RPC node is on {}",
                node.network()
            ),
        ));
    }
    tracing::warn!(
        announced = %network,
        node = %node.network(),
        "DEVELOPMENT: announcing a public network while paying on a local validator"
    );
    Ok(RpcLedger::with_network(url.expose(), network, options))
}

/// A Solana JSON-RPC node. The network named in configuration must be the node's; the
/// mint's decimals and token program are read from the mint itself.
async fn rpc_market(config: &Config, url: &RpcUrl) -> Result<Market, StartError> {
    let p = &config.payment;
    let options = RpcOptions {
        commitment: match p.commitment {
            Commitment::Confirmed => CommitmentConfig::confirmed(),
            Commitment::Finalized => CommitmentConfig::finalized(),
        },
        ..RpcOptions::default()
    };
    let unreachable = |e: LedgerError| StartError::Io(format!("the RPC node: {e}"));
    let named = p.network.as_str();
    let ledger = match &p.announce_network {
        Some(announced) => announcing(url, options, announced).await?,
        None => match Network::public(named) {
            // A network named by its CAIP-2 id alone (a local validator): taken as given.
            None if named.starts_with("solana:") => RpcLedger::with_network(
                url.expose(),
                Network::localnet(named.trim_start_matches("solana:")),
                options,
            ),
            None if named == "solana-localnet" => RpcLedger::connect(url.expose(), options)
                .await
                .map_err(unreachable)?,
            None => return Err(invalid("payment.network", named)),
            Some(expected) => {
                let ledger = RpcLedger::connect(url.expose(), options)
                    .await
                    .map_err(unreachable)?;
                if ledger.network() != &expected {
                    let on = ledger.network().caip2().to_string();
                    return Err(invalid(
                        "payment.network",
                        format!("the RPC node is on {on}, not {expected}"),
                    ));
                }
                ledger
            }
        },
    };
    let mint = p.asset.ok_or_else(|| {
        invalid(
            "payment.asset",
            "the mint to be paid in (USDC's on devnet or mainnet)",
        )
    })?;
    let pay_to = p.pay_to.ok_or_else(|| {
        invalid(
            "payment.pay_to",
            "the merchant's wallet (X402_MERCHANT_WALLET)",
        )
    })?;
    let account = ledger.account(&mint).await.map_err(unreachable)?;
    let account = account.ok_or_else(|| invalid("payment.asset", format!("no mint at {mint}")))?;
    let facts = read_mint(&account).map_err(|e| invalid("payment.asset", e))?;
    let fee_payer = p
        .fee_payer_keypair
        .as_deref()
        .map(read_keypair_file)
        .transpose()
        .map_err(StartError::Io)?;
    Ok(Market {
        kind: "JSON-RPC ledger",
        network: ledger.network().clone(),
        ledger: Arc::new(ledger),
        mint,
        decimals: facts.decimals,
        token_program: facts.token_program,
        delivers_in_full: facts.delivers_in_full,
        pay_to,
        fee_payer,
        blockhash_refresh: crate::tasks::Schedule::default().blockhash_refresh,
        demo_payer: None,
    })
}

/// The embedded ledger's market: its own mint, a funded fee payer (the configured one,
/// funded here) and a demo payer written to the state directory.
#[cfg(feature = "embedded-ledger")]
async fn embedded_market(config: &Config) -> Result<Market, StartError> {
    let p = &config.payment;
    if p.network != "solana-localnet" {
        return Err(invalid(
            "payment.network",
            format!("{} needs an RPC URL (X402_RPC_URL)", p.network),
        ));
    }
    if p.asset.is_some() {
        return Err(invalid(
            "payment.asset",
            "the embedded ledger pays in its own local mint",
        ));
    }
    if p.program_id != x402_receipts::ID {
        return Err(invalid(
            "payment.program_id",
            "the embedded ledger runs this build's program",
        ));
    }
    use crate::ledger::local::{
        LocalLedger, LOCAL_BLOCKHASH_REFRESH, LOCAL_DECIMALS, WALLET_LAMPORTS,
    };
    use anchor_spl::token::spl_token;
    use solana_signer::Signer;
    use x402_protocol::keypair::write_keypair_file;

    let market = LocalLedger::start_market(p.pay_to).await;
    let fee_payer = match &p.fee_payer_keypair {
        Some(path) => {
            let keypair = read_keypair_file(path).map_err(StartError::Io)?;
            market
                .ledger
                .airdrop(&keypair.pubkey(), WALLET_LAMPORTS)
                .await;
            keypair
        }
        None => market.fee_payer.insecure_clone(),
    };
    let demo_payer = std::path::Path::new(&config.state_dir).join("demo-payer.json");
    write_keypair_file(&market.demo_payer, &demo_payer)
        .map_err(|e| StartError::Io(format!("cannot write {}: {e}", demo_payer.display())))?;
    Ok(Market {
        kind: "embedded ledger",
        network: market.ledger.network().clone(),
        ledger: market.ledger,
        mint: market.mint,
        decimals: LOCAL_DECIMALS,
        token_program: spl_token::ID,
        delivers_in_full: true,
        pay_to: market.merchant,
        fee_payer: Some(fee_payer),
        blockhash_refresh: LOCAL_BLOCKHASH_REFRESH,
        demo_payer: Some(demo_payer),
    })
}
