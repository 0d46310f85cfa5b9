//! The challenge reference: 32 bytes that authenticate themselves, so that issuing a
//! challenge stores nothing.
//!
//! `reference = expires_at (i64 BE) || nonce (8 bytes) ||
//! HMAC-SHA256(key, terms, expires_at, nonce)[..16]`, where the terms are the network,
//! program, mint, payTo, amount, HTTP method and path the challenge was issued for.
//!
//! An `exact` payment carries the reference in its Memo, and the Memo program costs
//! about 350 compute units a character: stock clients give the whole transaction 20,000,
//! which leaves room for 32. So a reference is issued with 4 random nonce bytes (the
//! other 4 zero), and while its expiry fits 32 bits its memo form is the 24 meaningful
//! bytes in unpadded base64url: 32 characters ([`Reference::memo`]).

use std::{fmt, str::FromStr};

use anchor_lang::prelude::Pubkey;
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// What a challenge asks for; a reference is valid only for the terms it was issued for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Terms<'a> {
    /// CAIP-2 network id.
    pub network: &'a str,
    pub program: Pubkey,
    pub mint: Pubkey,
    pub pay_to: Pubkey,
    /// Price in base units.
    pub amount: u64,
    pub method: &'a str,
    /// The request path, without the query.
    pub path: &'a str,
}

/// The HMAC key challenges are signed with. Its bytes never reach `Debug` or logs.
#[derive(Clone)]
pub struct ChallengeKey(Vec<u8>);

impl ChallengeKey {
    /// At least 32 bytes of secret.
    pub fn new(secret: Vec<u8>) -> Result<Self, ReferenceError> {
        if secret.len() < 32 {
            return Err(ReferenceError::WeakKey);
        }
        Ok(ChallengeKey(secret))
    }

    /// A fresh random key, for a verifier that runs alone and may forget its challenges
    /// on restart.
    pub fn random() -> Self {
        let mut secret = vec![0u8; 32];
        getrandom::getrandom(&mut secret).expect("the OS provides randomness");
        ChallengeKey(secret)
    }

    fn tag(&self, terms: &Terms, expires_at: i64, nonce: &[u8; 8]) -> [u8; 16] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        // Length-prefixed, so that no two different term lists hash alike.
        for field in [
            terms.network.as_bytes(),
            terms.method.as_bytes(),
            terms.path.as_bytes(),
        ] {
            mac.update(&(field.len() as u64).to_be_bytes());
            mac.update(field);
        }
        mac.update(terms.program.as_ref());
        mac.update(terms.mint.as_ref());
        mac.update(terms.pay_to.as_ref());
        mac.update(&terms.amount.to_be_bytes());
        mac.update(&expires_at.to_be_bytes());
        mac.update(nonce);
        let mut tag = [0u8; 16];
        tag.copy_from_slice(&mac.finalize().into_bytes()[..16]);
        tag
    }
}

impl fmt::Debug for ChallengeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChallengeKey(<redacted>)")
    }
}

/// Why a reference was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("the reference was not issued by this server for this route, method and price")]
    NotOurs,
    #[error("the payment challenge expired")]
    Expired,
    #[error("a reference is 32 bytes in base58")]
    Malformed,
    #[error("a challenge key needs at least 32 bytes")]
    WeakKey,
}

/// A challenge reference, shown on the wire in base58.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Reference(pub [u8; 32]);

impl Reference {
    /// Issues the reference for `terms`, valid until `expires_at` (unix seconds).
    pub fn issue(key: &ChallengeKey, terms: &Terms, expires_at: i64) -> Self {
        let mut nonce = [0u8; 8];
        getrandom::getrandom(&mut nonce[..4]).expect("the OS provides randomness");
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&expires_at.to_be_bytes());
        bytes[8..16].copy_from_slice(&nonce);
        bytes[16..].copy_from_slice(&key.tag(terms, expires_at, &nonce));
        Reference(bytes)
    }

    /// The expiry the reference carries (authentic only once `check` has passed).
    pub fn expires_at(&self) -> i64 {
        i64::from_be_bytes(self.0[..8].try_into().expect("8 bytes"))
    }

    /// Accepts the reference if one of `keys` issued it for exactly `terms` and it has
    /// not expired at `now`. Several keys let the key rotate without refusing challenges
    /// issued under the previous one.
    pub fn check(
        &self,
        keys: &[ChallengeKey],
        terms: &Terms,
        now: i64,
    ) -> Result<(), ReferenceError> {
        let nonce: [u8; 8] = self.0[8..16].try_into().expect("8 bytes");
        let ours = keys.iter().any(|key| {
            let tag = key.tag(terms, self.expires_at(), &nonce);
            // Constant time: the comparison must not reveal how much of a forgery matched.
            tag.iter()
                .zip(&self.0[16..])
                .fold(0u8, |diff, (a, b)| diff | (a ^ b))
                == 0
        });
        if !ours {
            return Err(ReferenceError::NotOurs);
        }
        if now > self.expires_at() {
            return Err(ReferenceError::Expired);
        }
        Ok(())
    }
}

impl Reference {
    /// The reference as an `exact` payment's Memo carries it: 32 characters for the
    /// references [`Reference::issue`] makes, its base58 form for any other.
    pub fn memo(&self) -> String {
        match self.compact() {
            Some(compact) => URL_SAFE_NO_PAD.encode(compact),
            None => self.to_string(),
        }
    }

    /// Reads a Memo written by [`Reference::memo`].
    pub fn from_memo(memo: &str) -> Option<Self> {
        if memo.len() == 32 {
            let compact: [u8; 24] = URL_SAFE_NO_PAD.decode(memo).ok()?.try_into().ok()?;
            let mut bytes = [0u8; 32];
            bytes[4..12].copy_from_slice(&compact[..8]);
            bytes[16..].copy_from_slice(&compact[8..]);
            return Some(Reference(bytes));
        }
        memo.parse().ok()
    }

    /// The 24 bytes that are not always zero: expiry's low half, 4 nonce bytes, the tag.
    fn compact(&self) -> Option<[u8; 24]> {
        let zero = |range: std::ops::Range<usize>| self.0[range].iter().all(|b| *b == 0);
        if !zero(0..4) || !zero(12..16) {
            return None;
        }
        let mut compact = [0u8; 24];
        compact[..8].copy_from_slice(&self.0[4..12]);
        compact[8..].copy_from_slice(&self.0[16..]);
        Some(compact)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&bs58::encode(self.0).into_string())
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reference({self})")
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        // 32 bytes are at most 44 base58 characters: refuse longer input before decoding.
        if text.len() > 44 {
            return Err(ReferenceError::Malformed);
        }
        let mut bytes = [0u8; 32];
        match bs58::decode(text).onto(&mut bytes) {
            Ok(32) => Ok(Reference(bytes)),
            _ => Err(ReferenceError::Malformed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms() -> Terms<'static> {
        Terms {
            network: "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1",
            program: Pubkey::new_from_array([1; 32]),
            mint: Pubkey::new_from_array([2; 32]),
            pay_to: Pubkey::new_from_array([3; 32]),
            amount: 10_000,
            method: "GET",
            path: "/api/generate",
        }
    }

    fn key(byte: u8) -> ChallengeKey {
        ChallengeKey::new(vec![byte; 32]).unwrap()
    }

    #[test]
    fn an_issued_reference_fits_a_memo_of_32_characters_and_reads_back() {
        let reference = Reference::issue(&key(7), &terms(), 1_800_000_000);
        let memo = reference.memo();
        assert_eq!(memo.len(), 32, "{memo}");
        assert_eq!(Reference::from_memo(&memo), Some(reference));
        assert_eq!(reference.check(&[key(7)], &terms(), 1_000), Ok(()));
        // Any other reference keeps its base58 form.
        let wide = Reference([9; 32]);
        assert_eq!(wide.memo(), wide.to_string());
        assert_eq!(Reference::from_memo(&wide.memo()), Some(wide));
        assert_eq!(Reference::from_memo("hello"), None);
    }

    #[test]
    fn a_reference_is_accepted_for_its_own_terms_until_it_expires() {
        let reference = Reference::issue(&key(7), &terms(), 1_000);
        assert_eq!(reference.expires_at(), 1_000);
        assert_eq!(reference.check(&[key(7)], &terms(), 1_000), Ok(()));
        assert_eq!(
            reference.check(&[key(7)], &terms(), 1_001),
            Err(ReferenceError::Expired)
        );
    }

    #[test]
    fn a_reference_is_refused_for_any_other_term() {
        let reference = Reference::issue(&key(7), &terms(), 1_000);
        let other = Pubkey::new_from_array([9; 32]);
        let variants = [
            Terms {
                network: "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp",
                ..terms()
            },
            Terms {
                program: other,
                ..terms()
            },
            Terms {
                mint: other,
                ..terms()
            },
            Terms {
                pay_to: other,
                ..terms()
            },
            Terms {
                amount: 9_999,
                ..terms()
            },
            Terms {
                method: "POST",
                ..terms()
            },
            Terms {
                path: "/api/other",
                ..terms()
            },
        ];
        for variant in variants {
            assert_eq!(
                reference.check(&[key(7)], &variant, 0),
                Err(ReferenceError::NotOurs),
                "{variant:?}"
            );
        }
    }

    #[test]
    fn a_forged_or_rekeyed_reference_is_refused_and_key_rotation_works() {
        let reference = Reference::issue(&key(7), &terms(), 1_000);
        assert_eq!(
            reference.check(&[key(8)], &terms(), 0),
            Err(ReferenceError::NotOurs)
        );
        assert_eq!(
            reference.check(&[key(8), key(7)], &terms(), 0),
            Ok(()),
            "previous key still accepted"
        );
        // Moving the expiry forward breaks the tag.
        let mut extended = reference;
        extended.0[..8].copy_from_slice(&5_000i64.to_be_bytes());
        assert_eq!(
            extended.check(&[key(7)], &terms(), 2_000),
            Err(ReferenceError::NotOurs)
        );
        let mut flipped = reference;
        flipped.0[31] ^= 1;
        assert_eq!(
            flipped.check(&[key(7)], &terms(), 0),
            Err(ReferenceError::NotOurs)
        );
    }

    #[test]
    fn two_challenges_for_the_same_terms_differ() {
        let a = Reference::issue(&key(7), &terms(), 1_000);
        let b = Reference::issue(&key(7), &terms(), 1_000);
        assert_ne!(a, b);
    }

    #[test]
    fn base58_round_trip_and_malformed_input() {
        let reference = Reference::issue(&key(7), &terms(), 1_000);
        assert_eq!(reference.to_string().parse::<Reference>(), Ok(reference));
        for bad in [
            "",
            "0OIl",
            "abc",
            &"1".repeat(45),
            &bs58::encode([1u8; 31]).into_string(),
        ] {
            assert_eq!(
                bad.parse::<Reference>(),
                Err(ReferenceError::Malformed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn keys_are_strong_and_never_printed() {
        assert_eq!(
            ChallengeKey::new(vec![1; 31]).err(),
            Some(ReferenceError::WeakKey)
        );
        assert_eq!(format!("{:?}", key(0x41)), "ChallengeKey(<redacted>)");
    }
}
