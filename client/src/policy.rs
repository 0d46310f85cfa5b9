//! The spending policy: checked before anything is signed, so that a refusal costs
//! nothing.

use crate::offer::{Offer, Terms};
use anchor_lang::prelude::Pubkey;
use x402_protocol::amount::{format_units, parse_units};
use x402_protocol::{Cluster, Network};

/// The per-request maximum of [`SpendingPolicy::default`]: 1.00 of a well-known
/// stablecoin (USDC), as the stock x402 clients cap a payment at $1
/// ([`Limit::Stablecoin`]). An offer in any other token is refused under it: the seller
/// picks the mint, and 1.00 of wSOL or wBTC is no dollar. Give a limit of your own (in
/// base units, or a decimal read with the ledger's decimals) or none to pay one.
pub const DEFAULT_MAX_PER_REQUEST: &str = "1";

/// The deposit limit of [`SpendingPolicy::default`]: 5.00 of a well-known stablecoin.
pub const DEFAULT_MAX_DEPOSIT: &str = "5";

/// The longest withdraw delay [`SpendingPolicy::default`] escrows under: a day.
pub const DEFAULT_MAX_WITHDRAW_DELAY: u32 = 86_400;

/// Testnet's CAIP-2 id (x402's third public Solana network; no [`Network`] of ours).
const TESTNET_CAIP2: &str = "solana:4uhcVJyU9pJkvQyS88uRDiswHXSCkY3z";

/// A public network's canonical name (its CAIP-2 id) from any of its names.
fn public_network(name: &str) -> Option<String> {
    match Network::public(name) {
        Some(network) => Some(network.caip2().to_string()),
        None => matches!(name, "solana-testnet" | "testnet" | TESTNET_CAIP2)
            .then(|| TESTNET_CAIP2.to_string()),
    }
}

/// Whether two names, as a user and a server wrote them, are one network: the same text,
/// or two names of one public network (`solana-devnet` and its CAIP-2 id). A local
/// network is known only by its exact name.
pub fn same_network(a: &str, b: &str) -> bool {
    a == b || public_network(a).is_some_and(|a| Some(a) == public_network(b))
}

/// An amount of the offer's token: base units, or a decimal string ("0.05") read with
/// the mint's decimals as the client knows them (never the server's word for them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Limit {
    Units(u64),
    /// Of any token whose decimals the client knows itself (its ledger, or the table of
    /// well-known mints): an explicit choice of the user's, whatever the token is worth.
    Decimal(String),
    /// Of a well-known stablecoin only (`x402_protocol::mint::KNOWN_MINTS`, with the
    /// table's decimals): an offer in any other token is refused
    /// ([`PolicyRule::NotAStablecoin`]). The default cap is one.
    Stablecoin(String),
}

impl Limit {
    /// The limit in base units of `mint`, whose decimals the client knows as `decimals`.
    fn units(&self, mint: &Pubkey, decimals: Option<u8>) -> Result<u64, PolicyRule> {
        let parse = |text: &str, decimals| {
            parse_units(text, decimals).map_err(|_| PolicyRule::MalformedLimit)
        };
        match (self, decimals) {
            (Limit::Units(units), _) => Ok(*units),
            (Limit::Decimal(text), Some(decimals)) => parse(text, decimals),
            (Limit::Decimal(_), None) => Err(PolicyRule::UnknownDecimals),
            (Limit::Stablecoin(text), _) => match x402_protocol::mint::known_stablecoin(mint) {
                Some(decimals) => parse(text, decimals),
                None => Err(PolicyRule::NotAStablecoin),
            },
        }
    }
}

/// Which rule refused a payment. Serialized as its name (`MaxPerRequest`), as the CLI's
/// `--json` output names it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub enum PolicyRule {
    MaxPerRequest,
    Budget,
    /// The offer's network is not one the policy allows; or, without a ledger to tell
    /// its cluster, an offer signed over the seller's blockhash (`exact`, or a sponsored
    /// `receipt`) on a network the user did not allow explicitly.
    Network,
    /// The offer's network is not where its money is: a well-known mint of another
    /// cluster (devnet's label on mainnet USDC), or another network than the client's
    /// ledger (by its genesis hash).
    NetworkMismatch,
    Mint,
    Payee,
    /// The offer's program is not one this client signs `pay` for.
    Program,
    /// A decimal limit that is not an exact amount of the offered token.
    MalformedLimit,
    /// A decimal limit for a mint whose decimals the client does not know (from its
    /// ledger or its table of well-known mints): a server could claim 18 for USDC and get
    /// a million times the limit approved. Limits in base units always apply.
    UnknownDecimals,
    /// A stablecoin limit (the default cap: 1.00 per request) for an offer in a mint that
    /// is no well-known stablecoin: the seller picks the mint, and 1.00 of another token
    /// (wSOL, wBTC, anything the buyer holds) may be worth any amount. Paid only under a
    /// limit of the user's own (base units, or a decimal limit) or none.
    NotAStablecoin,
    /// A `batch-settlement` offer whose deposit would wait longer than the policy's
    /// `max_withdraw_delay` after the buyer asks to close, should its seller vanish.
    WithdrawDelay,
    /// A `batch-settlement` offer of the server mode whose operator the policy does not
    /// trust: the operator would sign the vouchers and could take the whole deposit, so
    /// x402 lets a buyer enter it only for an operator it trusts out of band
    /// (`trusted_operators`). The client mode's offer beside it is paid instead.
    UntrustedOperator,
}

/// A payment the policy refused, with what was asked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the spending policy refused: {rule:?} ({detail})")]
pub struct PolicyRefusal {
    pub rule: PolicyRule,
    /// What the challenge asked for, for people.
    pub detail: String,
    /// Base units asked.
    pub amount: u64,
    pub mint: Pubkey,
    pub pay_to: Pubkey,
    pub network: String,
}

/// What a client may pay. Empty lists of networks, mints and payees allow everything
/// (except, without a ledger, an offer signed over the seller's blockhash, which needs its
/// network allowed explicitly).
#[derive(Clone, Debug)]
pub struct SpendingPolicy {
    /// The most one payment may be. By default 1.00 of a well-known stablecoin
    /// ([`DEFAULT_MAX_PER_REQUEST`], a [`Limit::Stablecoin`]), which refuses an offer in
    /// any other mint; `None` is no limit at all, only when set explicitly.
    pub max_per_request: Option<Limit>,
    /// The most all payments of this client may add up to.
    pub budget: Option<Limit>,
    /// The most one `batch-settlement` deposit may escrow (a new channel's, or a
    /// top-up): locked until the channel closes, and what a dishonest seller could keep
    /// waiting. By default 5.00 of a well-known stablecoin ([`DEFAULT_MAX_DEPOSIT`]);
    /// `None` is no limit.
    pub max_deposit: Option<Limit>,
    /// The longest a channel's deposit may wait after the buyer asks to close it, when its
    /// seller does not cooperate (an offer's `withdrawDelay`, which x402 allows up to 30
    /// days), in seconds. By default a day ([`DEFAULT_MAX_WITHDRAW_DELAY`]).
    pub max_withdraw_delay: u32,
    /// The networks payments may be made on (v1 names or CAIP-2 ids; two names of one
    /// public network are one). Naming a network here is also the explicit consent that
    /// an offer signed over the seller's blockhash (`exact`, or a sponsored `receipt`)
    /// needs when the client has no ledger to read its cluster from, and
    /// that a local ledger needs to pay an offer naming a public network (a local
    /// validator announcing devnet's id, as stock sellers do in development).
    pub networks: Vec<String>,
    pub mints: Vec<Pubkey>,
    pub payees: Vec<Pubkey>,
    /// The receipts programs the client signs `pay` for: the payer signs, and its token
    /// account is writable, so a program of the server's choosing could take the whole
    /// balance. This build's program by default; never empty-means-any.
    pub programs: Vec<Pubkey>,
    /// The `batch-settlement` operators the buyer trusts, out of band, to sign its
    /// vouchers (the server mode): each can take up to a channel's whole deposit, so each
    /// comes with its own deposit cap. None by default: a server mode's offer is refused.
    pub trusted_operators: Vec<TrustedOperator>,
}

/// A `batch-settlement` operator the buyer trusts to sign its vouchers for what each
/// answer cost, and the most a channel under it may escrow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrustedOperator {
    pub operator: Pubkey,
    /// Base units of the offer's mint: what a dishonest operator could take.
    pub max_deposit: u64,
}

impl Default for SpendingPolicy {
    fn default() -> Self {
        SpendingPolicy {
            max_per_request: Some(Limit::Stablecoin(DEFAULT_MAX_PER_REQUEST.into())),
            budget: None,
            max_deposit: Some(Limit::Stablecoin(DEFAULT_MAX_DEPOSIT.into())),
            max_withdraw_delay: DEFAULT_MAX_WITHDRAW_DELAY,
            networks: Vec::new(),
            mints: Vec::new(),
            payees: Vec::new(),
            programs: vec![x402_receipts::ID],
            trusted_operators: Vec::new(),
        }
    }
}

impl SpendingPolicy {
    /// Whether a limit is a decimal of any token, which needs the mint's decimals from the
    /// client's ledger (a stablecoin limit reads only the table of well-known mints).
    pub fn has_decimal_limits(&self) -> bool {
        [&self.max_per_request, &self.budget, &self.max_deposit]
            .into_iter()
            .any(|limit| matches!(limit, Some(Limit::Decimal(_))))
    }

    /// The most a `batch-settlement` deposit for `offer` may escrow, in base units of its
    /// mint (whose decimals the client knows as `decimals`); `None` without a limit.
    pub fn deposit_limit(
        &self,
        offer: &Offer,
        decimals: Option<u8>,
    ) -> Result<Option<u64>, Box<PolicyRefusal>> {
        // The server mode's operator could take the whole deposit: its own cap, too.
        let operators_cap = self.trusted(offer).map(|trusted| trusted.max_deposit);
        let Some(limit) = &self.max_deposit else {
            return Ok(operators_cap);
        };
        limit
            .units(&offer.mint(), decimals)
            .map(|units| Some(operators_cap.map_or(units, |cap| cap.min(units))))
            .map_err(|rule| {
                Box::new(PolicyRefusal {
                    rule,
                    detail: "the deposit limit cannot be read for this token".into(),
                    amount: offer.amount(),
                    mint: offer.mint(),
                    pay_to: offer.pay_to(),
                    network: offer.network().to_string(),
                })
            })
    }

    /// The trust `offer`'s operator has, when it is a `batch-settlement` offer of the
    /// server mode whose operator the buyer trusts.
    pub fn trusted(&self, offer: &Offer) -> Option<&TrustedOperator> {
        let Terms::Batch(batch) = &offer.terms else {
            return None;
        };
        let operator = batch.terms.operator?;
        self.trusted_operators
            .iter()
            .find(|trusted| trusted.operator == operator)
    }

    /// Whether `network` is one this policy names.
    fn allows_network(&self, network: &str) -> bool {
        self.networks
            .iter()
            .any(|allowed| same_network(allowed, network))
    }

    /// Whether `offer` may be paid, `spent` base units having been paid already;
    /// `decimals` are the mint's as the client knows them, `ledger` the network of the
    /// client's own ledger (from its genesis hash), when it has one.
    pub fn check(
        &self,
        offer: &Offer,
        spent: u64,
        decimals: Option<u8>,
        ledger: Option<&Network>,
    ) -> Result<(), Box<PolicyRefusal>> {
        let (amount, mint, pay_to) = (offer.amount(), offer.mint(), offer.pay_to());
        let asked = offer.shown_amount();
        // For people only: the trusted decimals when known, base units otherwise.
        let known = decimals.or_else(|| x402_protocol::mint::known_decimals(&mint));
        let shown = |units: u64| match known {
            Some(decimals) => format_units(units, decimals),
            None => format!("{units} base units"),
        };
        let refuse = |rule, detail: String| {
            Box::new(PolicyRefusal {
                rule,
                detail,
                amount,
                mint,
                pay_to,
                network: offer.network().to_string(),
            })
        };
        // Only a `receipt` payment calls a program of the server's naming.
        if let Some(program) = offer.program() {
            if !self.programs.contains(&program) {
                return Err(refuse(
                    PolicyRule::Program,
                    format!("program {program} is not one this client signs for"),
                ));
            }
        }
        let network = offer.network().to_string();
        // The network is where the money is: a well-known mint's own cluster...
        if let Some(cluster) = x402_protocol::mint::known_cluster(&mint) {
            let named = Network::public(&network).map(|n| n.cluster());
            if named != Some(cluster) {
                return Err(refuse(
                    PolicyRule::NetworkMismatch,
                    format!("mint {mint} is {cluster:?}'s, but the offer says {network}"),
                ));
            }
        }
        // ...and the client's ledger's, by its genesis hash. A local ledger pays an offer
        // naming another network only when the user allowed that network explicitly.
        if let Some(ledger) = ledger {
            let same = ledger.is_named(&network) || same_network(ledger.caip2(), &network);
            let local_consent =
                ledger.cluster() == Cluster::Localnet && self.allows_network(&network);
            if !same && !local_consent {
                return Err(refuse(
                    PolicyRule::NetworkMismatch,
                    format!("the offer says {network}, but the ledger is {ledger}"),
                ));
            }
        }
        if !self.networks.is_empty() && !self.allows_network(&network) {
            return Err(refuse(
                PolicyRule::Network,
                format!("network {network} is not allowed"),
            ));
        }
        // Without a ledger, an offer is signed over the seller's blockhash (an `exact`
        // offer's hint, a sponsored `receipt` offer's): nothing tells its cluster but the
        // seller's word. Paid only on a network the user named.
        if ledger.is_none() && self.networks.is_empty() && offer.sponsored() {
            return Err(refuse(
                PolicyRule::Network,
                format!(
                    "{} on {network} without a ledger (RPC URL) to check the cluster: \
                     allow the network explicitly (--allow-network {network})",
                    offer.scheme()
                ),
            ));
        }
        if let Terms::Batch(batch) = &offer.terms {
            if let Some(operator) = batch
                .terms
                .operator
                .filter(|_| self.trusted(offer).is_none())
            {
                return Err(refuse(
                    PolicyRule::UntrustedOperator,
                    format!("the server mode's operator {operator} could take the whole deposit, and is not trusted"),
                ));
            }
            let delay = batch.terms.withdraw_delay;
            if delay > self.max_withdraw_delay {
                return Err(refuse(
                    PolicyRule::WithdrawDelay,
                    format!(
                        "the deposit could wait {delay} s after asking to close, more than \
                         the {} s allowed",
                        self.max_withdraw_delay
                    ),
                ));
            }
        }
        if !self.mints.is_empty() && !self.mints.contains(&mint) {
            return Err(refuse(
                PolicyRule::Mint,
                format!("token {mint} is not allowed"),
            ));
        }
        if !self.payees.is_empty() && !self.payees.contains(&pay_to) {
            return Err(refuse(
                PolicyRule::Payee,
                format!("payee {pay_to} is not allowed"),
            ));
        }
        let units = |limit: &Limit| {
            limit.units(&mint, decimals).map_err(|rule| {
                let detail = match (&rule, limit) {
                    (PolicyRule::UnknownDecimals, Limit::Decimal(text)) => format!(
                        "a limit of {text} needs the decimals of mint {mint}, which only a \
                         ledger (RPC URL) or the table of well-known mints gives, never the \
                         server: give a limit in base units (--max-units) or none (--no-limit)"
                    ),
                    (PolicyRule::NotAStablecoin, Limit::Stablecoin(text)) => format!(
                        "mint {mint} is not a stablecoin this client knows (USDC), and a limit \
                         of {text} applies only to those (the default cap): to pay in it, give \
                         a limit of your own in its base units (--max-units N), or with \
                         --rpc-url in its decimals (--max-amount), or none (--no-limit)"
                    ),
                    _ => format!("{limit:?} for mint {mint}"),
                };
                refuse(rule, detail)
            })
        };
        if let Some(max) = &self.max_per_request {
            let max = units(max)?;
            if amount > max {
                let detail = format!("{asked} asked, at most {} per request", shown(max));
                return Err(refuse(PolicyRule::MaxPerRequest, detail));
            }
        }
        if let Some(budget) = &self.budget {
            let budget = units(budget)?;
            if spent.checked_add(amount).is_none_or(|total| total > budget) {
                let left = shown(budget.saturating_sub(spent));
                return Err(refuse(
                    PolicyRule::Budget,
                    format!("{asked} asked, {left} left of the budget"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offer::testing::{batch_offer, upto_offer, DEVNET};

    #[test]
    fn a_batch_offer_whose_deposit_could_wait_past_the_policys_delay_is_refused() {
        let mint = Pubkey::new_unique();
        let policy = SpendingPolicy {
            max_per_request: Some(Limit::Units(1_000)),
            networks: vec![DEVNET.into()],
            ..SpendingPolicy::default()
        };
        let check = |delay: u32| {
            policy
                .check(&batch_offer(1_000, mint, delay), 0, None, None)
                .map_err(|refusal| refusal.rule)
        };
        assert_eq!(check(3_600), Ok(()));
        assert_eq!(check(DEFAULT_MAX_WITHDRAW_DELAY), Ok(()));
        assert_eq!(
            check(2_592_000),
            Err(PolicyRule::WithdrawDelay),
            "30 days, as x402 allows: a vanished seller would hold the deposit that long"
        );
    }

    #[test]
    fn a_batch_offer_of_the_server_mode_is_paid_only_for_an_operator_trusted_and_capped() {
        let mint = Pubkey::new_unique();
        let policy = SpendingPolicy {
            max_per_request: Some(Limit::Units(1_000)),
            networks: vec![DEVNET.into()],
            ..SpendingPolicy::default()
        };
        let client_mode = batch_offer(1_000, mint, 3_600);
        let mut server_mode = client_mode.to_wire();
        server_mode
            .extra
            .insert("voucherSigner".into(), "server".into());
        server_mode
            .extra
            .insert("operator".into(), Pubkey::new_unique().to_string().into());
        let server_mode = Offer::read(&server_mode).unwrap();
        assert_eq!(
            policy
                .check(&client_mode, 0, None, None)
                .map_err(|r| r.rule),
            Ok(())
        );
        assert_eq!(
            policy
                .check(&server_mode, 0, None, None)
                .map_err(|r| r.rule),
            Err(PolicyRule::UntrustedOperator)
        );
        // Trusted out of band, with a deposit cap of its own.
        let Terms::Batch(batch) = &server_mode.terms else {
            panic!("a batch offer")
        };
        let trusting = SpendingPolicy {
            max_deposit: Some(Limit::Units(9_000)),
            trusted_operators: vec![TrustedOperator {
                operator: batch.terms.operator.unwrap(),
                max_deposit: 4_000,
            }],
            ..policy.clone()
        };
        assert_eq!(
            trusting
                .check(&server_mode, 0, None, None)
                .map_err(|r| r.rule),
            Ok(())
        );
        assert_eq!(
            trusting.deposit_limit(&server_mode, None).unwrap(),
            Some(4_000)
        );
        assert_eq!(
            trusting.deposit_limit(&client_mode, None).unwrap(),
            Some(9_000)
        );
    }

    #[test]
    fn an_upto_offer_is_capped_and_budgeted_at_its_maximum_not_what_it_may_settle() {
        let mint = Pubkey::new_unique();
        let policy = SpendingPolicy {
            max_per_request: Some(Limit::Units(10_000)),
            budget: Some(Limit::Units(15_000)),
            networks: vec![DEVNET.into()],
            ..SpendingPolicy::default()
        };
        let check = |max: u64, spent: u64| {
            policy
                .check(&upto_offer(max, mint), spent, None, None)
                .map_err(|refusal| refusal.rule)
        };
        assert_eq!(check(10_000, 0), Ok(()));
        assert_eq!(
            check(10_001, 0),
            Err(PolicyRule::MaxPerRequest),
            "a seller may settle less, but the whole maximum is escrowed"
        );
        assert_eq!(
            check(10_000, 10_000),
            Err(PolicyRule::Budget),
            "an earlier maximum counts whole against the budget"
        );
    }

    #[test]
    fn two_names_of_one_public_network_are_one_network_and_local_ones_only_by_name() {
        let devnet = "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1";
        assert!(same_network("solana-devnet", devnet));
        assert!(same_network(
            "solana",
            "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp"
        ));
        assert!(same_network(
            "solana-testnet",
            "solana:4uhcVJyU9pJkvQyS88uRDiswHXSCkY3z"
        ));
        assert!(!same_network("solana-devnet", "solana"));
        assert!(!same_network(
            "solana-localnet",
            "solana:abcdefghijklmnopqrstuvwxyz123456"
        ));
        assert!(same_network("solana-localnet", "solana-localnet"));
    }
}
