//! The paywall: a person's browser asking for a paid route (`Accept: text/html`) gets the
//! 402 as a page (still status 402, with the same `PAYMENT-REQUIRED` header) saying what
//! the request costs, to whom, for what and until when, with a button that pays from a
//! Wallet Standard wallet. The page's script is built from `js/` and served by the
//! verifier itself at [`SCRIPT_PATH`]: no CDN at run time.

use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};
use x402_protocol::wire::v2;

/// Where the page's script is served.
pub const SCRIPT_PATH: &str = "/x402/paywall.js";

/// The page's script, bundled by `npm run build` in `js/` (committed: the verifier
/// builds without Node).
const SCRIPT: &str = include_str!("../assets/paywall.js");

/// Only the verifier's own script runs on the page; it talks to this origin only.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// `GET /x402/paywall.js`.
pub async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        SCRIPT,
    )
        .into_response()
}

/// Whether the request is a browser navigation that would rather read a page than JSON.
pub fn wants_page(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|accept| accept.contains("text/html"))
}

/// What the page says, for people.
pub struct Summary<'a> {
    /// "0.01 USDC"
    pub price: &'a str,
    pub payee: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub description: &'a str,
    /// RFC 3339, UTC.
    pub expires: &'a str,
    pub network: &'a str,
    /// Why a payment was refused, when one was.
    pub reason: Option<&'a str>,
}

/// The 402 page for `challenge`.
pub fn page(summary: &Summary, challenge: &v2::PaymentRequired) -> String {
    let json = serde_json::to_string(challenge).expect("a challenge serializes");
    let e = escape;
    let reason = summary
        .reason
        .map(|r| {
            format!(
                r#"<p class="reason">The last payment was refused: {}.</p>"#,
                e(r)
            )
        })
        .unwrap_or_default();
    let description = match summary.description {
        "" => String::new(),
        text => format!("<p>{}</p>", e(text)),
    };
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Payment required: {price}</title>
<style>
body {{ font: 16px/1.5 system-ui, sans-serif; max-width: 36rem; margin: 3rem auto; padding: 0 1rem; color: #1b1b1f; }}
h1 {{ font-size: 1.4rem; }}
dl {{ display: grid; grid-template-columns: max-content 1fr; gap: .3rem 1rem; }}
dt {{ color: #60606a; }} dd {{ margin: 0; overflow-wrap: anywhere; }}
button {{ font: inherit; padding: .6rem 1.4rem; border: 0; border-radius: .4rem; background: #5b3fd9; color: #fff; cursor: pointer; }}
button:disabled {{ opacity: .6; }}
#x402-status {{ min-height: 1.5rem; }} #x402-status[data-state=paid] {{ color: #12733a; }}
.reason, #x402-status[data-state]:not([data-state=paid]):not([data-state=working]) {{ color: #a3261b; }}
pre {{ background: #f4f4f6; padding: 1rem; white-space: pre-wrap; overflow-wrap: anywhere; }}
</style>
</head>
<body>
<h1>Payment required</h1>
{description}<dl>
<dt>Price</dt><dd id="x402-price">{price}</dd>
<dt>Pay to</dt><dd id="x402-payee">{payee}</dd>
<dt>For</dt><dd id="x402-resource">{method} {path}</dd>
<dt>Until</dt><dd id="x402-expires">{expires}</dd>
<dt>Network</dt><dd>{network}</dd>
</dl>
{reason}<p><button id="x402-pay" type="button">Pay {price} with a Solana wallet</button></p>
<p id="x402-status" role="status"></p>
<pre id="x402-content" hidden></pre>
<p><a id="x402-explorer" hidden target="_blank" rel="noopener"></a></p>
<script type="application/json" id="x402-challenge">{json}</script>
<script src="{SCRIPT_PATH}" defer></script>
</body>
</html>
"#,
        price = e(summary.price),
        payee = e(summary.payee),
        method = e(summary.method),
        path = e(summary.path),
        expires = e(summary.expires),
        network = e(summary.network),
        json = script_safe(&json),
    )
}

/// The page as the 402 answer, with `header` (the challenge's `PAYMENT-REQUIRED`).
pub fn respond(html: String, header: HeaderValue) -> Response {
    let mut response = (StatusCode::PAYMENT_REQUIRED, html).into_response();
    let headers = response.headers_mut();
    headers.insert(v2::PAYMENT_REQUIRED, header);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::VARY, HeaderValue::from_static("Accept"));
    response
}

/// Text for HTML: the path and the host come from the request.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// JSON inside `<script>`: nothing in it can close the element.
fn script_safe(json: &str) -> String {
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn nothing_from_the_request_can_break_out_of_the_page() {
        let hostile = "/api/</script><script>alert(1)</script>\"'&";
        let challenge = v2::PaymentRequired {
            x402_version: 2,
            error: None,
            resource: v2::ResourceInfo {
                url: format!("http://evil{hostile}"),
                description: None,
                mime_type: None,
            },
            accepts: Vec::new(),
            extensions: None,
        };
        let summary = Summary {
            price: "0.01 USDC",
            payee: "payee",
            method: "GET",
            path: hostile,
            description: "<b>bold</b>",
            expires: "2026-11-22T05:00:00Z",
            network: "solana-devnet",
            reason: Some("<img src=x>"),
        };
        let response = respond(page(&summary, &challenge), HeaderValue::from_static("e30="));
        assert_eq!(response.status(), StatusCode::PAYMENT_REQUIRED);
        assert_eq!(response.headers()[v2::PAYMENT_REQUIRED], "e30=");
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let html = String::from_utf8(body.to_vec()).unwrap();
        assert_eq!(html.matches("<script").count(), 2, "{html}");
        assert!(!html.contains("<b>") && !html.contains("<img"), "{html}");
        assert!(html.contains("&lt;/script&gt;"));
    }

    #[test]
    fn only_requests_accepting_html_get_the_page() {
        let mut headers = http::HeaderMap::new();
        assert!(!wants_page(&headers));
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        assert!(!wants_page(&headers));
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("text/html,application/xhtml+xml,*/*;q=0.8"),
        );
        assert!(wants_page(&headers));
    }
}
