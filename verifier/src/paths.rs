//! The path filter: before a request is routed or paid for, its path is brought to the
//! one form the router and an upstream both read alike, or refused. Otherwise a path that
//! an upstream reads as a dear endpoint could match a cheap route here
//! (`/api/%2e%2e/premium`, `/api/Premium`, `/api/premium/`, `/api/premium;x` beside a
//! cheap `/api/*` and a dear `/api/premium`).
//!
//! - Percent-encoded unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded:
//!   `/api/%70remium` is `/api/premium`.
//! - Refused (400 `ambiguous_path`): `;` (path parameters), backslashes and encoded
//!   slashes or backslashes, empty segments (`//`), dot segments (`.`, `..`), and a path
//!   that is a priced route's path, or falls under a priced prefix, only up to ASCII case
//!   or trailing slashes (`/api/Premium`, `/API/x`, `/api/premium/`).

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{Reason, Refusal};

/// The priced routes' paths, to refuse look-alikes of them.
#[derive(Clone, Debug, Default)]
pub struct PathRules {
    /// Exact paths (`/api/premium`).
    exact: Vec<String>,
    /// Prefixes (`/api` of `/api/*`), without the trailing slash.
    prefixes: Vec<String>,
}

impl PathRules {
    /// The rules for routes configured as `patterns` (`/exact` or `/prefix/*`).
    pub fn new<'a>(patterns: impl IntoIterator<Item = &'a str>) -> Self {
        let mut rules = PathRules::default();
        for pattern in patterns {
            match pattern.strip_suffix("/*") {
                Some(prefix) => rules.prefixes.push(prefix.to_string()),
                None => rules.exact.push(pattern.to_string()),
            }
        }
        rules
    }

    /// `path` in its one form, or `None` when it must be refused.
    pub fn normalize(&self, path: &str) -> Option<String> {
        let path = decode_unreserved(path)?;
        let lower = path.to_ascii_lowercase();
        if lower.contains([';', '\\'])
            || lower.contains("%2f")
            || lower.contains("%5c")
            || lower.contains("//")
            || lower
                .split('/')
                .any(|segment| segment == "." || segment == "..")
        {
            return None;
        }
        let trimmed = lower.trim_end_matches('/');
        let looks_like_exact = self
            .exact
            .iter()
            .any(|exact| trimmed == exact.to_ascii_lowercase() && path != *exact);
        let looks_like_prefix = self.prefixes.iter().any(|prefix| {
            lower
                .strip_prefix(prefix.to_ascii_lowercase().as_str())
                .is_some_and(|rest| rest.starts_with('/'))
                && !path.starts_with(prefix.as_str())
        });
        if looks_like_exact || looks_like_prefix {
            return None;
        }
        Some(path)
    }
}

/// Decodes `%XX` escapes of unreserved characters; others stay as they are (upper-cased
/// hex would change nothing that matters here). `None` for a malformed escape.
fn decode_unreserved(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = path.get(i + 1..i + 3)?;
            let byte = u8::from_str_radix(hex, 16).ok()?;
            if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
                out.push(byte as char);
            } else {
                out.push_str(&path[i..i + 3]);
            }
            i += 3;
        } else {
            let c = path[i..].chars().next()?;
            out.push(c);
            i += c.len_utf8();
        }
    }
    Some(out)
}

/// The middleware: routes the normalized path, or answers 400 `ambiguous_path`.
pub async fn normalize_paths(
    State(rules): State<PathRules>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(path) = rules.normalize(request.uri().path()) else {
        return Refusal::new(Reason::AmbiguousPath).into_response();
    };
    if path != request.uri().path() {
        let uri = match request.uri().query() {
            Some(query) => format!("{path}?{query}"),
            None => path,
        };
        match uri.parse() {
            Ok(uri) => *request.uri_mut() = uri,
            Err(_) => return Refusal::new(Reason::AmbiguousPath).into_response(),
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> PathRules {
        PathRules::new(["/api/*", "/api/premium", "/demo", "/Reports/Q1"])
    }

    #[test]
    fn look_alikes_of_a_dear_route_never_get_the_cheap_price() {
        let rules = rules();
        for path in [
            "/api/Premium",
            "/api/premium/",
            "/api/premium;x",
            "/api/..;/premium",
            "/API/anything",
            "/Demo",
            "/demo/",
            "/demo/%2e%2e/admin",
            "/demo/../demo",
            "/x/%2E%2e/demo",
            "/demo/%2fetc",
            "//demo",
            "/demo/.",
            "/a\\b",
            "/api/%zz",
            "/reports/q1",
        ] {
            assert_eq!(rules.normalize(path), None, "{path}");
        }
        assert_eq!(
            rules.normalize("/api/%70remium").as_deref(),
            Some("/api/premium"),
            "decoded, it gets the dear route"
        );
    }

    #[test]
    fn ordinary_paths_pass_as_they_are() {
        let rules = rules();
        for path in [
            "/api/premium",
            "/api/v1.2/report..final",
            "/api/x/",
            "/demo",
            "/healthz",
            "/api/caf%C3%A9",
            "/Reports/Q1",
        ] {
            assert_eq!(rules.normalize(path).as_deref(), Some(path), "{path}");
        }
    }
}
