//! Solana networks as x402 names them: v1 names (`solana-devnet`) and v2 CAIP-2 ids
//! (`solana:<first 32 characters of the genesis hash>`).

use std::fmt;

/// Which cluster a network is; decides explorer links and defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cluster {
    Mainnet,
    Devnet,
    /// A local ledger: the embedded bank or a local validator.
    Localnet,
}

/// A Solana network with both of its x402 names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Network {
    cluster: Cluster,
    caip2: String,
}

const MAINNET_CAIP2: &str = "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp";
const DEVNET_CAIP2: &str = "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1";

impl Network {
    pub fn mainnet() -> Self {
        Network {
            cluster: Cluster::Mainnet,
            caip2: MAINNET_CAIP2.into(),
        }
    }

    pub fn devnet() -> Self {
        Network {
            cluster: Cluster::Devnet,
            caip2: DEVNET_CAIP2.into(),
        }
    }

    /// A local ledger, whose CAIP-2 id comes from its own genesis hash (base58).
    pub fn localnet(genesis_hash: &str) -> Self {
        let prefix: String = genesis_hash.chars().take(32).collect();
        Network {
            cluster: Cluster::Localnet,
            caip2: format!("solana:{prefix}"),
        }
    }

    /// Mainnet or devnet by either of their names; `solana-localnet` is not here,
    /// because a local network's id depends on its genesis.
    pub fn public(name: &str) -> Option<Self> {
        match name {
            "solana" | "solana-mainnet" | "mainnet-beta" | MAINNET_CAIP2 => Some(Self::mainnet()),
            "solana-devnet" | "devnet" | DEVNET_CAIP2 => Some(Self::devnet()),
            _ => None,
        }
    }

    /// The network a node with this genesis hash (base58) belongs to.
    pub fn from_genesis_hash(genesis_hash: &str) -> Self {
        let local = Self::localnet(genesis_hash);
        match local.caip2.as_str() {
            MAINNET_CAIP2 => Self::mainnet(),
            DEVNET_CAIP2 => Self::devnet(),
            _ => local,
        }
    }

    pub fn cluster(&self) -> Cluster {
        self.cluster
    }

    /// The x402 v1 network name.
    pub fn v1_name(&self) -> &'static str {
        match self.cluster {
            Cluster::Mainnet => "solana",
            Cluster::Devnet => "solana-devnet",
            Cluster::Localnet => "solana-localnet",
        }
    }

    /// The x402 v2 (CAIP-2) network id.
    pub fn caip2(&self) -> &str {
        &self.caip2
    }

    /// Whether `name`, as a client or another server wrote it, is this network.
    pub fn is_named(&self, name: &str) -> bool {
        name == self.v1_name() || name == self.caip2
    }

    /// An explorer.solana.com link to `path` (`address/<key>` or `tx/<signature>`).
    /// `local_rpc` is the RPC URL the explorer should read a local ledger from.
    pub fn explorer_url(&self, path: &str, local_rpc: Option<&str>) -> String {
        let base = format!("https://explorer.solana.com/{path}");
        match (self.cluster, local_rpc) {
            (Cluster::Mainnet, _) => base,
            (Cluster::Devnet, _) => format!("{base}?cluster=devnet"),
            (Cluster::Localnet, Some(rpc)) => format!("{base}?cluster=custom&customUrl={rpc}"),
            (Cluster::Localnet, None) => format!("{base}?cluster=custom"),
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.caip2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_networks_answer_to_both_names() {
        let devnet = Network::public("solana-devnet").unwrap();
        assert_eq!(devnet, Network::public(DEVNET_CAIP2).unwrap());
        assert!(devnet.is_named("solana-devnet") && devnet.is_named(DEVNET_CAIP2));
        assert!(!devnet.is_named("solana"));
        assert_eq!(Network::public("solana").unwrap().caip2(), MAINNET_CAIP2);
        assert_eq!(Network::public("solana-localnet"), None);
    }

    #[test]
    fn a_local_network_is_named_by_its_genesis() {
        let local = Network::localnet("4uhcVJyU9pJkvQyS88uRDiswHXSCkY3zQawwpjk2NsNYabcdef");
        assert_eq!(local.caip2(), "solana:4uhcVJyU9pJkvQyS88uRDiswHXSCkY3z");
        assert_eq!(local.v1_name(), "solana-localnet");
    }

    #[test]
    fn a_node_is_named_by_its_genesis_hash() {
        let devnet_genesis = "EtWTRABZaYq6iMfeYKouRu166VU2xqa1wcaWoxPkrZBG";
        assert_eq!(
            Network::from_genesis_hash(devnet_genesis),
            Network::devnet()
        );
        let other = Network::from_genesis_hash("4uhcVJyU9pJkvQyS88uRDiswHXSCkY3zQawwpjk2NsNY");
        assert_eq!(other.cluster(), Cluster::Localnet);
    }

    #[test]
    fn explorer_links_name_the_cluster() {
        assert_eq!(
            Network::devnet().explorer_url("tx/abc", None),
            "https://explorer.solana.com/tx/abc?cluster=devnet"
        );
        assert_eq!(
            Network::mainnet().explorer_url("address/k", None),
            "https://explorer.solana.com/address/k"
        );
        let local = Network::localnet("x");
        assert_eq!(
            local.explorer_url("address/k", Some("http://127.0.0.1:8899")),
            "https://explorer.solana.com/address/k?cluster=custom&customUrl=http://127.0.0.1:8899"
        );
    }
}
