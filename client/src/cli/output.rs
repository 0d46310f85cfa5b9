//! What `x402` prints: `--json`'s documents, and the escaping of a server's words for
//! people.
//!
//! Each document's fields are declared in alphabetical order: the order its keys have
//! always had (serde_json's map sorts them), kept now that they are structs.

use std::collections::BTreeMap;

use serde::Serialize;
use x402_protocol::wire::receipts::ReceiptView;

/// Prints `document` as one line of JSON on stdout.
pub fn print_json(document: &impl Serialize) {
    println!(
        "{}",
        serde_json::to_string(document).expect("plain fields serialize")
    );
}

/// `x402 fetch --json`: the answer, and what was paid for it.
#[derive(Serialize)]
pub struct Fetched {
    /// The body, as text (invalid UTF-8 replaced).
    pub body: String,
    pub settlement: Option<SettlementView>,
    pub status: u16,
}

/// What a paid request bought, with its explorer link.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SettlementView {
    /// For people: with the server's decimals.
    pub amount: String,
    pub amount_base_units: String,
    pub explorer: String,
    /// `upto`: the maximum escrowed, of which `amountBaseUnits` was settled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum_base_units: Option<String>,
    pub network: String,
    pub payer: String,
    pub receipt: Option<String>,
    pub reference: Option<String>,
    pub scheme: String,
    pub transaction: String,
}

/// `x402 quote --json`: whether the URL asks for payment, and its offers when it does.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Quote {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offers: Option<Vec<OfferView>>,
    pub payment_required: bool,
    pub status: u16,
    /// The offers this client cannot pay, each with why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unpayable: Option<Vec<String>>,
}

/// One payable offer.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OfferView {
    /// For people: with the decimals the server claims.
    pub amount: String,
    pub amount_base_units: String,
    pub asset: String,
    pub description: String,
    /// A `receipt` offer's expiry, unix seconds.
    pub expires_at: Option<i64>,
    pub network: String,
    pub pay_to: String,
    pub reference: Option<String>,
    pub scheme: &'static str,
    pub sponsored: bool,
}

/// `x402 receipts --json`: a payee's receipts, newest first, and the totals per mint.
#[derive(Serialize)]
pub struct Receipts {
    pub count: usize,
    pub payee: String,
    pub receipts: Vec<ReceiptView>,
    /// Base units per mint.
    pub totals: BTreeMap<String, String>,
}

/// `x402 close-expired --json`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Closed {
    /// The receipt accounts closed.
    pub closed: Vec<String>,
    /// Lamports.
    pub rent_returned: u64,
    pub transactions: Vec<String>,
}

/// `x402 channels --json`: the wallet's `upto` channels.
#[derive(Serialize)]
pub struct Channels {
    pub channels: Vec<ChannelView>,
    pub payer: String,
}

/// One channel the wallet deposited in. Amounts in base units.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelView {
    pub address: String,
    pub deposit: String,
    /// Seconds.
    pub grace_period: u32,
    pub mint: String,
    /// The seller's fee payer.
    pub payee: String,
    pub settled: String,
    /// `open`, `closing`, `sealed`, `withdrawn` or `distributed`.
    pub status: &'static str,
    /// When the deposit can be withdrawn (unix seconds, chain time); none while open
    /// (its grace period starts with `x402 channels recover`) or when nothing is left.
    pub withdrawable_at: Option<i64>,
}

/// `x402 channels recover --json`: what was done to each channel.
#[derive(Serialize)]
pub struct Recovered {
    pub channels: Vec<RecoveryView>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecoveryView {
    /// `requestClose`, `wait` (nothing sent), `withdraw` or `none`.
    pub action: &'static str,
    pub channel: String,
    /// Base units back to the wallet.
    pub refund: Option<String>,
    pub transaction: Option<String>,
    /// Unix seconds, chain time: when to run again (`wait`).
    pub withdrawable_at: Option<i64>,
}

/// Text a server chose, for a terminal: every control character (Unicode Cc: escape
/// sequences, carriage returns, newlines, C1 controls) and every bidirectional-text
/// control shown escaped (`\u{1b}`, `\u{202e}`), so that a seller cannot move the cursor,
/// retitle the window or clear the screen, forge a line of ours, or reorder what is shown
/// (an amount or an address read backwards). Human output only: `--json` prints the text
/// exactly, JSON-escaped.
pub fn shown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() || is_bidi_control(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The controls of the Unicode bidirectional algorithm (Bidi_Control): the embeddings
/// and overrides (U+202A..U+202E), the isolates (U+2066..U+2069), the marks (U+200E,
/// U+200F) and the Arabic letter mark (U+061C).
fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `document` prints its keys in the order a `serde_json` map would: as it always
    /// did.
    fn printed_as_before(document: &impl Serialize) -> serde_json::Value {
        let printed = serde_json::to_string(document).unwrap();
        let value: serde_json::Value = serde_json::from_str(&printed).unwrap();
        assert_eq!(printed, value.to_string());
        value
    }

    #[test]
    fn every_document_keeps_its_keys_and_their_order() {
        let settlement = SettlementView {
            amount: "0.01".into(),
            amount_base_units: "10000".into(),
            explorer: "link".into(),
            maximum_base_units: None,
            network: "solana".into(),
            payer: "payer".into(),
            receipt: None,
            reference: Some("reference".into()),
            scheme: "exact".into(),
            transaction: "tx".into(),
        };
        let fetched = printed_as_before(&Fetched {
            body: "ok".into(),
            settlement: Some(settlement),
            status: 200,
        });
        assert_eq!(fetched["settlement"]["receipt"], serde_json::Value::Null);
        assert_eq!(fetched["settlement"]["amountBaseUnits"], "10000");
        let offer = OfferView {
            amount: "0.01".into(),
            amount_base_units: "10000".into(),
            asset: "mint".into(),
            description: "data".into(),
            expires_at: None,
            network: "solana".into(),
            pay_to: "payee".into(),
            reference: None,
            scheme: "exact",
            sponsored: true,
        };
        let quote = printed_as_before(&Quote {
            offers: Some(vec![offer]),
            payment_required: true,
            status: 402,
            unpayable: Some(vec![]),
        });
        assert_eq!(quote["offers"][0]["payTo"], "payee");
        let free = Quote {
            offers: None,
            payment_required: false,
            status: 200,
            unpayable: None,
        };
        assert_eq!(
            printed_as_before(&free).to_string(),
            r#"{"paymentRequired":false,"status":200}"#
        );
        let listed = printed_as_before(&Receipts {
            count: 0,
            payee: "payee".into(),
            receipts: vec![],
            totals: BTreeMap::from([("mint".into(), "10".into())]),
        });
        assert_eq!(listed["totals"]["mint"], "10");
        let closed = printed_as_before(&Closed {
            closed: vec!["receipt".into()],
            rent_returned: 5,
            transactions: vec!["tx".into()],
        });
        assert_eq!(
            closed.to_string(),
            r#"{"closed":["receipt"],"rentReturned":5,"transactions":["tx"]}"#
        );
        let channels = printed_as_before(&Channels {
            channels: vec![ChannelView {
                address: "channel".into(),
                deposit: "50000".into(),
                grace_period: 4,
                mint: "mint".into(),
                payee: "fee payer".into(),
                settled: "0".into(),
                status: "closing",
                withdrawable_at: Some(1_900_000_000),
            }],
            payer: "payer".into(),
        });
        assert_eq!(channels["channels"][0]["gracePeriod"], 4);
        let recovered = printed_as_before(&Recovered {
            channels: vec![RecoveryView {
                action: "withdraw",
                channel: "channel".into(),
                refund: Some("50000".into()),
                transaction: Some("tx".into()),
                withdrawable_at: None,
            }],
        });
        assert_eq!(recovered["channels"][0]["refund"], "50000");
    }

    #[test]
    fn every_control_character_is_shown_escaped_and_nothing_else_changes() {
        assert_eq!(
            shown("\x1b]0;pwned\x07 \x1b[2J\r\n\t\u{9b}31m"),
            "\\u{1b}]0;pwned\\u{7} \\u{1b}[2J\\r\\n\\t\\u{9b}31m"
        );
        assert_eq!(shown("0,01 € à Zürich"), "0,01 € à Zürich");
    }

    #[test]
    fn every_bidirectional_control_is_shown_escaped() {
        // "pay 1.00" that a terminal would show reordered, an address spelled backwards.
        assert_eq!(
            shown("pay \u{202e}00.1\u{202c} to \u{2066}abc\u{2069}"),
            "pay \\u{202e}00.1\\u{202c} to \\u{2066}abc\\u{2069}"
        );
        let controls = [
            '\u{061c}', '\u{200e}', '\u{200f}', '\u{202a}', '\u{202b}', '\u{202c}', '\u{202d}',
            '\u{202e}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}',
        ];
        for c in controls {
            assert_eq!(
                shown(&c.to_string()),
                format!("\\u{{{:x}}}", c as u32),
                "{c:?}"
            );
        }
        // Their neighbours, and right-to-left text itself, are shown as they are.
        for kept in [
            '\u{061b}', '\u{200d}', '\u{2029}', '\u{202f}', '\u{2065}', '\u{206a}', 'ש', 'ع',
        ] {
            assert_eq!(shown(&kept.to_string()), kept.to_string(), "{kept:?}");
        }
    }
}

/// `x402 channels close --json`: the channels closed, and what came back.
#[derive(Serialize)]
pub struct ClosedChannels {
    pub closed: Vec<ClosedView>,
}

#[derive(Serialize)]
pub struct ClosedView {
    pub channel: String,
    /// Base units back to the buyer.
    pub refunded: String,
}
