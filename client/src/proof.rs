//! The payer's proof that it presents a reference for one request (see
//! `x402_protocol::proof`).

use solana_keypair::Keypair;
use x402_protocol::{sign_proof, ProofTarget, Reference};

/// The payer's proof that it presents `reference` for `method url`: the method, the path,
/// and the host with its port when not the scheme's default, as the URL names it.
pub(crate) fn proof(
    payer: &Keypair,
    reference: &Reference,
    method: &reqwest::Method,
    url: &reqwest::Url,
) -> String {
    let host = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_string(),
    };
    let target = ProofTarget {
        method: method.as_str(),
        path: url.path(),
        host: &host,
    };
    sign_proof(payer, reference, &target)
}
