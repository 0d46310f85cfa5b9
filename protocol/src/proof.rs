//! Who presents a self-submitted payment: the payer's ed25519 signature over the
//! reference and the request. A reference is public as soon as its `pay` lands, so the
//! reference alone would let anyone who reads the chain redeem the buyer's payment first;
//! the proof lets only the receipt's payer redeem it, and only for this request.
//!
//! The signed message is `x402-receipt-proof\n<reference>\n<METHOD>\n<path>\n<host>`
//! (method upper-case, host lower-case with its port); the proof is the signature in
//! base58. In the plain header: `X-Payment-Proof: <reference>:<proof>`.

use anchor_lang::prelude::Pubkey;
use solana_keypair::Keypair;
use solana_signature::Signature;
use solana_signer::Signer;

use crate::Reference;

/// The request a proof is for.
#[derive(Clone, Copy, Debug)]
pub struct ProofTarget<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// `host[:port]`, as the resource URL names it.
    pub host: &'a str,
}

fn message(reference: &Reference, target: &ProofTarget) -> Vec<u8> {
    format!(
        "x402-receipt-proof\n{reference}\n{}\n{}\n{}",
        target.method.to_ascii_uppercase(),
        target.path,
        target.host.to_ascii_lowercase()
    )
    .into_bytes()
}

/// The payer's proof for `reference` at `target`, base58.
pub fn sign_proof(payer: &Keypair, reference: &Reference, target: &ProofTarget) -> String {
    payer.sign_message(&message(reference, target)).to_string()
}

/// Whether `proof` is `payer`'s signature for `reference` at `target`.
pub fn check_proof(
    payer: &Pubkey,
    proof: &str,
    reference: &Reference,
    target: &ProofTarget,
) -> bool {
    proof
        .parse::<Signature>()
        .is_ok_and(|signature| signature.verify(payer.as_ref(), &message(reference, target)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_payer_proves_and_only_for_its_request() {
        let payer = Keypair::new();
        let reference = Reference([5; 32]);
        let target = ProofTarget {
            method: "get",
            path: "/api/a",
            host: "API.example.com",
        };
        let proof = sign_proof(&payer, &reference, &target);
        assert!(check_proof(&payer.pubkey(), &proof, &reference, &target));
        let same = ProofTarget {
            method: "GET",
            host: "api.example.com",
            ..target
        };
        assert!(
            check_proof(&payer.pubkey(), &proof, &reference, &same),
            "case"
        );
        let observer = Keypair::new();
        let forged = sign_proof(&observer, &reference, &target);
        assert!(!check_proof(&payer.pubkey(), &forged, &reference, &target));
        let elsewhere = ProofTarget {
            path: "/api/b",
            ..target
        };
        assert!(!check_proof(
            &payer.pubkey(),
            &proof,
            &reference,
            &elsewhere
        ));
        assert!(!check_proof(
            &payer.pubkey(),
            &proof,
            &Reference([6; 32]),
            &target
        ));
        assert!(!check_proof(
            &payer.pubkey(),
            "not base58!",
            &reference,
            &target
        ));
    }
}
