//! The x402 HTTP wire format: the JSON messages of protocol versions 1 and 2 and the
//! base64 header codec that carries them.
//!
//! Both versions move the same three messages, in different shapes and headers:
//!
//! | message | v1 ([`v1`]) | v2 ([`v2`]) |
//! | --- | --- | --- |
//! | payment required (server to client) | JSON body of the 402 response | `PAYMENT-REQUIRED` header |
//! | payment payload (client to server) | `X-PAYMENT` header | `PAYMENT-SIGNATURE` header |
//! | settlement response (server to client) | `X-PAYMENT-RESPONSE` header | `PAYMENT-RESPONSE` header |
//!
//! Every header value is the message's JSON, base64-encoded: [`encode_header`] writes
//! one and [`decode_header`] reads one. To accept either version, decode into a
//! [`serde_json::Value`] first and dispatch on [`version_of`].

pub mod facilitator;
pub mod message;
pub mod receipts;
pub mod v1;
pub mod v2;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::error::Category;

pub use message::{Offer, PaymentMessage, Settlement, Version};

/// The largest x402 header value [`decode_header`] accepts, in bytes of base64 text.
///
/// Longer values are refused before any decoding work, so a hostile client cannot make
/// the server allocate or parse more than this.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Why an x402 header value (`X-PAYMENT`, `PAYMENT-SIGNATURE`, `PAYMENT-RESPONSE`, ...)
/// could not be decoded.
///
/// The messages describe the failure without repeating the header value, which may be
/// large or hostile.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The header value is longer than [`MAX_HEADER_BYTES`]; it was not decoded.
    #[error("x402 header value is {len} bytes long, over the {limit}-byte limit")]
    TooLarge {
        /// Length of the refused value, in bytes.
        len: usize,
        /// The limit it exceeded ([`MAX_HEADER_BYTES`]).
        limit: usize,
    },
    /// The header value is not base64 (standard or URL-safe alphabet, padded or not).
    #[error("x402 header value is not valid base64 ({0})")]
    Base64(base64::DecodeError),
    /// The decoded bytes are not JSON, or not JSON of the expected x402 message.
    #[error(
        "x402 header value does not hold the expected JSON message \
         ({} at line {line}, column {column})",
        describe_category(*.category)
    )]
    Json {
        /// What kind of JSON failure it was (syntax, data shape, truncated input).
        category: Category,
        /// Line of the decoded JSON where parsing stopped (1-based).
        line: usize,
        /// Column of the decoded JSON where parsing stopped (1-based).
        column: usize,
    },
}

/// Names a JSON failure for [`WireError::Json`] without quoting the input.
fn describe_category(category: Category) -> &'static str {
    match category {
        Category::Syntax => "invalid JSON syntax",
        Category::Data => "JSON of the wrong shape",
        Category::Eof => "JSON cut short",
        Category::Io => "I/O error",
    }
}

/// Standard alphabet (`+`, `/`); writes padding, accepts input with or without it.
const STANDARD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// URL-safe alphabet (`-`, `_`), with or without padding: some clients send this.
const URL_SAFE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Encodes an x402 message as a header value: its compact JSON in standard, padded
/// base64, as the x402 HTTP transport specifies for every x402 header.
///
/// # Panics
///
/// Panics if `value`'s `Serialize` implementation fails, which cannot happen for the
/// types in [`v1`] and [`v2`] (their maps have string keys).
#[must_use]
pub fn encode_header<T: Serialize>(value: &T) -> String {
    let json = serde_json::to_vec(value).expect("x402 wire messages serialize to JSON");
    STANDARD.encode(json)
}

/// Decodes an x402 header value into a message: refuses values longer than
/// [`MAX_HEADER_BYTES`] before any decoding, then reads base64 (standard or URL-safe
/// alphabet, padding optional, surrounding whitespace ignored), then parses the JSON.
///
/// # Errors
///
/// [`WireError::TooLarge`] for a value over [`MAX_HEADER_BYTES`], [`WireError::Base64`]
/// when it is not base64, [`WireError::Json`] when the decoded bytes are not JSON of
/// type `T`.
pub fn decode_header<T: DeserializeOwned>(value: &str) -> Result<T, WireError> {
    if value.len() > MAX_HEADER_BYTES {
        return Err(WireError::TooLarge {
            len: value.len(),
            limit: MAX_HEADER_BYTES,
        });
    }
    let text = value.trim();
    let engine = if text.contains(['-', '_']) {
        &URL_SAFE
    } else {
        &STANDARD
    };
    let json = engine.decode(text).map_err(WireError::Base64)?;
    serde_json::from_slice(&json).map_err(|error| WireError::Json {
        category: error.classify(),
        line: error.line(),
        column: error.column(),
    })
}

/// Reads the `x402Version` field of a decoded x402 message (payment required, payment
/// payload), so that a caller can pick [`v1`] or [`v2`] types for it.
///
/// Returns `None` when the field is missing or not a non-negative integer that fits in
/// a `u32`.
#[must_use]
pub fn version_of(value: &serde_json::Value) -> Option<u32> {
    let version = value.get("x402Version")?.as_u64()?;
    u32::try_from(version).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn header_round_trip() {
        let message = json!({
            "x402Version": 2,
            "accepted": {"scheme": "receipt", "amount": "10000"},
            "payload": {"note": "ünïcödé and + / = characters"},
        });
        let header = encode_header(&message);
        assert_eq!(header.len() % 4, 0, "padded base64: {header}");
        let back: Value = decode_header(&header).unwrap();
        assert_eq!(back, message);
    }

    #[test]
    fn encoding_is_standard_padded_base64_of_compact_json() {
        // "{\"a\":1}" is 7 bytes: standard base64 needs one padding character.
        assert_eq!(encode_header(&json!({"a": 1})), "eyJhIjoxfQ==");
    }

    #[test]
    fn oversize_value_is_refused_before_decoding() {
        // Not base64 at all: decoding it would give a Base64 error, so TooLarge shows
        // that the length was checked first.
        let hostile = "!".repeat(MAX_HEADER_BYTES + 1);
        let error = decode_header::<Value>(&hostile).unwrap_err();
        assert!(
            matches!(error, WireError::TooLarge { len, limit }
                if len == MAX_HEADER_BYTES + 1 && limit == MAX_HEADER_BYTES),
            "{error:?}"
        );
        assert!(!error.to_string().contains('!'));
    }

    #[test]
    fn value_of_exactly_the_limit_is_decoded() {
        // A JSON string of 12_288 bytes encodes to exactly 16_384 base64 characters.
        let message = "a".repeat(12_286);
        let header = encode_header(&message);
        assert_eq!(header.len(), MAX_HEADER_BYTES);
        let back: String = decode_header(&header).unwrap();
        assert_eq!(back, message);
    }

    #[test]
    fn garbage_is_a_base64_error() {
        let error = decode_header::<Value>("not base64 at all!").unwrap_err();
        assert!(matches!(error, WireError::Base64(_)), "{error:?}");
        // Five symbols: one too many for a 4-symbol group, one too few for the next.
        let error = decode_header::<Value>("eyJhI").unwrap_err();
        assert!(matches!(error, WireError::Base64(_)), "{error:?}");
        // Padding in the middle.
        let error = decode_header::<Value>("eyJh=joxfQ==").unwrap_err();
        assert!(matches!(error, WireError::Base64(_)), "{error:?}");
        // Mixing the two alphabets is not base64 in either.
        let error = decode_header::<Value>("ab+-").unwrap_err();
        assert!(matches!(error, WireError::Base64(_)), "{error:?}");
    }

    #[test]
    fn base64_of_non_json_is_a_json_error() {
        let header = STANDARD.encode("hello, this is not JSON");
        let error = decode_header::<Value>(&header).unwrap_err();
        assert!(
            matches!(
                error,
                WireError::Json {
                    category: Category::Syntax,
                    line: 1,
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(!error.to_string().contains("hello"), "{error}");

        // An empty value is valid (empty) base64 and empty JSON input.
        let error = decode_header::<Value>("").unwrap_err();
        assert!(
            matches!(
                error,
                WireError::Json {
                    category: Category::Eof,
                    ..
                }
            ),
            "{error:?}"
        );
    }

    #[test]
    fn json_of_the_wrong_shape_is_a_json_error_that_does_not_echo_it() {
        let secret = "hostile\ncontent";
        let header = encode_header(&json!({"x402Version": secret}));
        let error = decode_header::<v1::PaymentPayload>(&header).unwrap_err();
        assert!(
            matches!(
                error,
                WireError::Json {
                    category: Category::Data,
                    ..
                }
            ),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(!message.contains("hostile"), "{message}");
        assert!(message.contains("wrong shape"), "{message}");
    }

    #[test]
    fn truncated_json_is_a_json_error() {
        let header = STANDARD.encode(r#"{"x402Version": 1, "scheme""#);
        let error = decode_header::<Value>(&header).unwrap_err();
        assert!(
            matches!(
                error,
                WireError::Json {
                    category: Category::Eof,
                    ..
                }
            ),
            "{error:?}"
        );
    }

    #[test]
    fn url_safe_and_unpadded_values_are_accepted() {
        // Bytes chosen so that the standard encoding holds both '+' and '/', which the
        // URL-safe alphabet writes as '-' and '_'.
        let message = json!({"k": "\u{fb}\u{ff}\u{bf}>?"});
        let standard = encode_header(&message);
        assert!(standard.contains(['+', '/']), "{standard}");
        assert!(standard.ends_with('='), "{standard}");

        let url_safe = standard.replace('+', "-").replace('/', "_");
        let unpadded = standard.trim_end_matches('=');
        let url_safe_unpadded = url_safe.trim_end_matches('=');
        for header in [&standard[..], &url_safe, unpadded, url_safe_unpadded] {
            let back: Value = decode_header(header).unwrap();
            assert_eq!(back, message, "{header}");
        }
    }

    #[test]
    fn surrounding_whitespace_is_ignored() {
        let header = format!("  {} \t", encode_header(&json!({"x402Version": 1})));
        let back: Value = decode_header(&header).unwrap();
        assert_eq!(back, json!({"x402Version": 1}));
    }

    #[test]
    fn version_of_reads_x402_version() {
        assert_eq!(version_of(&json!({"x402Version": 1})), Some(1));
        assert_eq!(
            version_of(&json!({"x402Version": 2, "accepted": {}})),
            Some(2)
        );
        assert_eq!(version_of(&json!({"scheme": "receipt"})), None);
        assert_eq!(version_of(&json!({"x402Version": "2"})), None);
        assert_eq!(version_of(&json!({"x402Version": -1})), None);
        assert_eq!(version_of(&json!({"x402Version": 1.5})), None);
        assert_eq!(version_of(&json!({"x402Version": u64::MAX})), None);
        assert_eq!(version_of(&json!([1, 2])), None);
    }

    #[test]
    fn dispatch_on_version() {
        let header = encode_header(&json!({
            "x402Version": 1,
            "scheme": "receipt",
            "network": "solana-devnet",
            "payload": {},
        }));
        let value: Value = decode_header(&header).unwrap();
        assert_eq!(version_of(&value), Some(v1::VERSION));
        let payload: v1::PaymentPayload = serde_json::from_value(value).unwrap();
        assert_eq!(payload.scheme, "receipt");
    }
}
