//! Reading a payment from request headers: `PAYMENT-SIGNATURE` (x402 v2), `X-PAYMENT`
//! (v1), or the plain pair `X-Payment-Proof` / `X-Payment-TxId`.

use http::HeaderMap;
use solana_transaction::Transaction;
use x402_protocol::scheme::{decode_transaction, ReceiptPayload, SCHEME};
use x402_protocol::wire::{decode_header, v1, v2};
use x402_protocol::{Network, Reference};

pub const X_PAYMENT_PROOF: &str = "X-Payment-Proof";
pub const X_PAYMENT_TXID: &str = "X-Payment-TxId";

/// Headers that carry a payment; stripped before a request goes upstream.
pub const PAYMENT_HEADERS: [&str; 4] = [
    v2::PAYMENT_SIGNATURE,
    v1::X_PAYMENT,
    X_PAYMENT_PROOF,
    X_PAYMENT_TXID,
];

/// Which header the payment came in, so that the answer uses the matching one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire {
    V1,
    V2,
    Plain,
}

/// A payment as the request carries it.
#[derive(Debug)]
pub enum Payment {
    /// Way 1: a `pay` transaction for the fee payer to co-sign.
    Sponsored(Box<Transaction>),
    /// Way 2: the payer paid; the verifier checks the receipt.
    SelfSubmitted {
        reference: Reference,
        signature: Option<String>,
    },
}

/// Why the payment headers were refused.
#[derive(Debug, PartialEq, Eq)]
pub enum PaymentError {
    /// Not decodable at all (bad base64, JSON or field): a 400.
    Malformed(String),
    /// Well formed, but not something this verifier accepts: a 402 with this reason.
    Unsupported(&'static str),
}

/// The payment in `headers`, if any.
pub fn read_payment(
    headers: &HeaderMap,
    network: &Network,
) -> Result<Option<(Payment, Wire)>, PaymentError> {
    let text = |name: &str| {
        headers
            .get(name)
            .map(|value| {
                value
                    .to_str()
                    .map_err(|_| PaymentError::Malformed(format!("{name} is not ASCII")))
            })
            .transpose()
    };
    if let Some(value) = text(v2::PAYMENT_SIGNATURE)? {
        let payload: v2::PaymentPayload =
            decode_header(value).map_err(|e| malformed(v2::PAYMENT_SIGNATURE, e))?;
        check_offer(&payload.accepted.scheme, &payload.accepted.network, network)?;
        return Ok(Some((read_scheme_payload(payload.payload)?, Wire::V2)));
    }
    if let Some(value) = text(v1::X_PAYMENT)? {
        let payload: v1::PaymentPayload =
            decode_header(value).map_err(|e| malformed(v1::X_PAYMENT, e))?;
        check_offer(&payload.scheme, &payload.network, network)?;
        return Ok(Some((read_scheme_payload(payload.payload)?, Wire::V1)));
    }
    if let Some(value) = text(X_PAYMENT_PROOF)? {
        let reference = value
            .trim()
            .parse()
            .map_err(|e| malformed(X_PAYMENT_PROOF, e))?;
        let signature = text(X_PAYMENT_TXID)?.map(|s| s.trim().to_string());
        return Ok(Some((
            Payment::SelfSubmitted {
                reference,
                signature,
            },
            Wire::Plain,
        )));
    }
    Ok(None)
}

fn malformed(header: &str, error: impl std::fmt::Display) -> PaymentError {
    PaymentError::Malformed(format!("{header}: {error}"))
}

fn check_offer(scheme: &str, offered_network: &str, network: &Network) -> Result<(), PaymentError> {
    if scheme != SCHEME {
        return Err(PaymentError::Unsupported("unsupported_scheme"));
    }
    if !network.is_named(offered_network) {
        return Err(PaymentError::Unsupported("wrong_network"));
    }
    Ok(())
}

fn read_scheme_payload(payload: serde_json::Value) -> Result<Payment, PaymentError> {
    let payload: ReceiptPayload = serde_json::from_value(payload)
        .map_err(|_| PaymentError::Malformed("payload: not a receipt payment".into()))?;
    match payload {
        ReceiptPayload::Sponsored { transaction } => {
            let tx = decode_transaction(&transaction)
                .map_err(|e| malformed("payload.transaction", e))?;
            Ok(Payment::Sponsored(Box::new(tx)))
        }
        ReceiptPayload::SelfSubmitted {
            reference,
            signature,
        } => {
            let reference = reference
                .parse()
                .map_err(|e| malformed("payload.reference", e))?;
            Ok(Payment::SelfSubmitted {
                reference,
                signature,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use base64::{engine::general_purpose::STANDARD, Engine as _};
    use http::HeaderValue;
    use x402_protocol::wire::encode_header;

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

    #[test]
    fn reads_each_way_of_sending_a_reference() {
        let devnet = Network::devnet();
        let reference = Reference([7; 32]);
        let v1 = v1_payload(
            "receipt",
            "solana-devnet",
            serde_json::json!({"reference": reference.to_string()}),
        );
        match read_payment(&headers(&[(v1::X_PAYMENT, v1)]), &devnet) {
            Ok(Some((
                Payment::SelfSubmitted {
                    reference: r,
                    signature: None,
                },
                Wire::V1,
            ))) => assert_eq!(r, reference),
            other => panic!("{other:?}"),
        }
        let plain = headers(&[
            (X_PAYMENT_PROOF, reference.to_string()),
            (X_PAYMENT_TXID, "sig".into()),
        ]);
        match read_payment(&plain, &devnet) {
            Ok(Some((
                Payment::SelfSubmitted {
                    reference: r,
                    signature: Some(s),
                },
                Wire::Plain,
            ))) => {
                assert_eq!((r, s.as_str()), (reference, "sig"))
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(read_payment(&HeaderMap::new(), &devnet), Ok(None)));
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
            headers(&[(X_PAYMENT_PROOF, "short".into())]),
        ];
        for headers in bad {
            assert!(
                matches!(
                    read_payment(&headers, &devnet),
                    Err(PaymentError::Malformed(_))
                ),
                "{headers:?}"
            );
        }
        let exact = headers(&[(
            v1::X_PAYMENT,
            v1_payload("exact", "solana-devnet", serde_json::json!({})),
        )]);
        assert_eq!(
            read_payment(&exact, &devnet).err(),
            Some(PaymentError::Unsupported("unsupported_scheme"))
        );
        let mainnet = headers(&[(
            v1::X_PAYMENT,
            v1_payload("receipt", "solana", serde_json::json!({})),
        )]);
        assert_eq!(
            read_payment(&mainnet, &devnet).err(),
            Some(PaymentError::Unsupported("wrong_network"))
        );
    }
}
