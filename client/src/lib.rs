//! The payer side: pay-and-retry for API buyers and agents, and the `x402` CLI.
//! Not built yet: see the open issue "The payer side".
