//! Reading a payment from request headers: `PAYMENT-SIGNATURE` (x402 v2), `X-PAYMENT`
//! (v1), or the plain pair `X-Payment-Proof` / `X-Payment-TxId`.

use http::HeaderMap;
use x402_protocol::wire::{PaymentMessage, Version};
use x402_protocol::{Network, Reference};

use crate::error::{Reason, Refusal};
use crate::model::Scheme;
use crate::scheme::receipt::{ReceiptPayment, ReceiptScheme};
use crate::scheme::{Payment, PaymentScheme};

pub const X_PAYMENT_PROOF: &str = "X-Payment-Proof";
pub const X_PAYMENT_TXID: &str = "X-Payment-TxId";

/// Headers that carry a payment; stripped before a request goes upstream.
pub const PAYMENT_HEADERS: [&str; 4] = [
    Version::V2.payment_header(),
    Version::V1.payment_header(),
    X_PAYMENT_PROOF,
    X_PAYMENT_TXID,
];

/// A payment as a request presents it.
#[derive(Debug)]
pub struct Presented {
    pub payment: Payment,
    /// The version to answer in (the plain headers are answered as v1).
    pub version: Version,
    /// `X-Payment-Proof: <reference>:<proof>` beside a v1 or v2 payment: its payer
    /// presents it again, as a payment whose grant was given back must be.
    proof: Option<(Reference, String)>,
}

impl Presented {
    /// The payment as scheme `S` reads it, with its version; the presented payment
    /// otherwise.
    pub fn downcast<S: PaymentScheme>(self) -> Result<(S::Payment, Version), Presented> {
        let Presented {
            payment,
            version,
            proof,
        } = self;
        match payment.downcast::<S>() {
            Ok(payment) => Ok((payment, version)),
            Err(payment) => Err(Presented {
                payment,
                version,
                proof,
            }),
        }
    }

    /// The payer's proof for `reference`, if the request carries one: a self-submitted
    /// payment's own, or the header's.
    pub fn proof(&self, reference: &Reference) -> Option<&str> {
        if let Some(proof) = self.payment.payload_proof() {
            return proof;
        }
        self.proof
            .as_ref()
            .filter(|(proven, _)| proven == reference)
            .map(|(_, proof)| proof.as_str())
    }
}

/// `<reference>:<proof>`; a bare reference has no proof.
fn split_proof(value: &str) -> Result<(Reference, Option<String>), Refusal> {
    let (reference, proof) = match value.trim().split_once(':') {
        Some((reference, proof)) => (reference, Some(proof.to_string())),
        None => (value.trim(), None),
    };
    let reference = reference
        .parse()
        .map_err(|e| malformed(X_PAYMENT_PROOF, e))?;
    Ok((reference, proof))
}

/// The payment in `headers`, if any. A header that cannot be decoded is a 400; a
/// payment in a scheme or for a network this verifier does not take is a 402 with the
/// reason.
pub fn read_payment(
    headers: &HeaderMap,
    network: &Network,
    schemes: &[Scheme],
) -> Result<Option<Presented>, Refusal> {
    let text = |name: &str| {
        headers
            .get(name)
            .map(|value| value.to_str().map_err(|_| malformed(name, "not ASCII")))
            .transpose()
    };
    for version in Version::ALL {
        let header = version.payment_header();
        if let Some(value) = text(header)? {
            let message =
                PaymentMessage::decode(version, value).map_err(|e| malformed(header, e))?;
            let scheme = Scheme::named(&message.offer.scheme)
                .filter(|scheme| schemes.contains(scheme))
                .ok_or_else(|| Refusal::new(Reason::UnsupportedScheme))?;
            if !network.is_named(&message.offer.network) {
                return Err(Refusal::new(Reason::InvalidNetwork));
            }
            let proof = match text(X_PAYMENT_PROOF)? {
                Some(value) => match split_proof(value)? {
                    (reference, Some(proof)) => Some((reference, proof)),
                    (_, None) => None,
                },
                None => None,
            };
            return Ok(Some(Presented {
                payment: scheme.read(message.payload)?,
                version,
                proof,
            }));
        }
    }
    if let Some(value) = text(X_PAYMENT_PROOF)? {
        // A bare reference is read, and refused for want of its proof once its receipt
        // is found.
        let (reference, proof) = split_proof(value)?;
        let signature = text(X_PAYMENT_TXID)?
            .map(|s| {
                s.trim()
                    .parse::<solana_signature::Signature>()
                    .map(|s| s.to_string())
                    .map_err(|e| malformed(X_PAYMENT_TXID, e))
            })
            .transpose()?;
        let payment = ReceiptPayment::SelfSubmitted {
            reference,
            proof,
            signature,
        };
        return Ok(Some(Presented {
            payment: Payment::of::<ReceiptScheme>(payment),
            version: Version::V1,
            proof: None,
        }));
    }
    Ok(None)
}

fn malformed(header: &str, error: impl std::fmt::Display) -> Refusal {
    Refusal::new(Reason::InvalidPayload).message(format!("{header}: {error}"))
}

#[cfg(test)]
mod tests {
    use base64::{engine::general_purpose::STANDARD, Engine as _};
    use http::HeaderValue;
    use x402_protocol::wire::{encode_header, v1, v2};

    use super::*;

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn v1_payload(scheme: &str, network: &str, payload: serde_json::Value) -> String {
        encode_header(&v1::PaymentPayload {
            x402_version: 1,
            scheme: scheme.into(),
            network: network.into(),
            payload,
        })
    }

    fn self_submitted(found: Option<Presented>) -> (Reference, Option<String>, Version) {
        let Some(Presented {
            payment, version, ..
        }) = found
        else {
            panic!("no payment");
        };
        match payment.downcast_ref::<ReceiptScheme>() {
            Some(ReceiptPayment::SelfSubmitted {
                reference,
                signature,
                ..
            }) => (*reference, signature.clone(), version),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reads_each_way_of_sending_a_reference() {
        let devnet = Network::devnet();
        let reference = Reference([7; 32]);
        let v1 = v1_payload(
            "receipt",
            "solana-devnet",
            serde_json::json!({"reference": reference.to_string()}),
        );
        let found = read_payment(&headers(&[(v1::X_PAYMENT, v1)]), &devnet, &Scheme::ALL).unwrap();
        assert_eq!(self_submitted(found), (reference, None, Version::V1));
        let signature = solana_signature::Signature::from([3; 64]).to_string();
        let plain = headers(&[
            (X_PAYMENT_PROOF, format!("{reference}:proof")),
            (X_PAYMENT_TXID, signature.clone()),
        ]);
        let found = read_payment(&plain, &devnet, &Scheme::ALL).unwrap();
        assert_eq!(
            self_submitted(found),
            (reference, Some(signature), Version::V1)
        );
        let not_a_signature = headers(&[
            (X_PAYMENT_PROOF, reference.to_string()),
            (X_PAYMENT_TXID, "sig".into()),
        ]);
        assert_eq!(
            read_payment(&not_a_signature, &devnet, &Scheme::ALL)
                .err()
                .map(|r| r.reason()),
            Some(Reason::InvalidPayload),
            "a transaction signature is validated or refused"
        );
        assert!(matches!(
            read_payment(&HeaderMap::new(), &devnet, &Scheme::ALL),
            Ok(None)
        ));
    }

    #[test]
    fn malformed_headers_are_told_apart_from_unsupported_ones() {
        let devnet = Network::devnet();
        let bad = [
            headers(&[(v1::X_PAYMENT, "%%%".into())]),
            headers(&[(v1::X_PAYMENT, STANDARD.encode("not json"))]),
            headers(&[(v1::X_PAYMENT, "A".repeat(20_000))]),
            headers(&[(
                v1::X_PAYMENT,
                v1_payload("receipt", "solana-devnet", serde_json::json!({"x": 1})),
            )]),
            headers(&[(
                v1::X_PAYMENT,
                v1_payload(
                    "receipt",
                    "solana-devnet",
                    serde_json::json!({"transaction": "!!"}),
                ),
            )]),
            headers(&[(v2::PAYMENT_SIGNATURE, STANDARD.encode("{}"))]),
            headers(&[(
                v1::X_PAYMENT,
                v1_payload("exact", "solana-devnet", serde_json::json!({})),
            )]),
            headers(&[(
                v1::X_PAYMENT,
                v1_payload(
                    "exact",
                    "solana-devnet",
                    serde_json::json!({"transaction": "AAAA"}),
                ),
            )]),
            headers(&[(X_PAYMENT_PROOF, "short".into())]),
        ];
        let reason = |headers: &HeaderMap| {
            read_payment(headers, &devnet, &Scheme::ALL)
                .err()
                .map(|r| r.reason())
        };
        for headers in bad {
            assert_eq!(
                reason(&headers),
                Some(Reason::InvalidPayload),
                "{headers:?}"
            );
        }
        // A scheme this gate does not offer is unsupported, however well formed.
        let exact = headers(&[(
            v1::X_PAYMENT,
            v1_payload("exact", "solana-devnet", serde_json::json!({})),
        )]);
        let receipt_only = read_payment(&exact, &devnet, &[Scheme::Receipt]);
        assert_eq!(
            receipt_only.err().map(|r| r.reason()),
            Some(Reason::UnsupportedScheme)
        );
        let other = headers(&[(
            v1::X_PAYMENT,
            v1_payload("deferred", "solana-devnet", serde_json::json!({})),
        )]);
        assert_eq!(reason(&other), Some(Reason::UnsupportedScheme));
        let mainnet = headers(&[(
            v1::X_PAYMENT,
            v1_payload("receipt", "solana", serde_json::json!({})),
        )]);
        assert_eq!(reason(&mainnet), Some(Reason::InvalidNetwork));
    }
}
