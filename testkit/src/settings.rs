//! A gate's settings for tests, instead of the whole struct written out in each suite.

use std::sync::Arc;
use std::time::Duration;

use anchor_lang::prelude::Pubkey;
use anchor_spl::token::spl_token;
use solana_keypair::Keypair;
use x402_protocol::{ChallengeKey, Network};
use x402_verifier::{PaymentSettings, Scheme};

/// Settings paying `pay_to` in `mint` (SPL Token, 6 decimals, "USDC") on `network`,
/// challenges signed with `key`. With a fee payer the gate sponsors and offers every
/// scheme; without one it offers `receipt` alone. A test changes the rest with
/// `PaymentSettings { field, ..settings(…) }`.
pub fn settings(
    network: Network,
    mint: Pubkey,
    pay_to: Pubkey,
    key: ChallengeKey,
    fee_payer: Option<Keypair>,
) -> PaymentSettings {
    PaymentSettings {
        network,
        program: x402_receipts::ID,
        mint,
        decimals: 6,
        token_program: spl_token::ID,
        currency: "USDC".into(),
        pay_to,
        challenge_keys: vec![key],
        schemes: match fee_payer {
            Some(_) => Scheme::ALL.to_vec(),
            None => vec![Scheme::Receipt],
        },
        fee_payer: fee_payer.map(Arc::new),
        sponsor_limits: Default::default(),
        max_compute_unit_price: 1_000,
        max_compute_unit_limit: 200_000,
        ledger_timeout: Duration::from_secs(10),
        public_url: None,
        facilitator_url: None,
        batch: Default::default(),
    }
}
