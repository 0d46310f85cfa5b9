//! What the verifier writes on the wire for a price: the 402 challenge (the x402 v1 JSON
//! body, with plain fields for people with curl, and the v2 `PAYMENT-REQUIRED` header),
//! and the settlement header of a served request.

use axum::response::{IntoResponse, Response};
use axum::Json;
use http::{HeaderValue, StatusCode};
use serde_json::Map;
use x402_protocol::amount::format_units;
use x402_protocol::wire::{encode_header, v1, v2, Settlement, Version};
use x402_protocol::Reference;

use crate::error::{Reason, Refusal};
use crate::gate::{Gate, Price, SettledPayment, Target};
use crate::paywall;
use crate::unix_now;

/// A 402 answer, ready to send: JSON, or the paywall page for a browser.
#[derive(Debug)]
pub struct Challenge {
    body: v1::PaymentRequired,
    header: HeaderValue,
    page: Option<String>,
}

impl IntoResponse for Challenge {
    fn into_response(self) -> Response {
        if let Some(page) = self.page {
            return paywall::respond(page, self.header);
        }
        let mut response = (StatusCode::PAYMENT_REQUIRED, Json(self.body)).into_response();
        response
            .headers_mut()
            .insert(v2::PAYMENT_REQUIRED, self.header);
        response
    }
}

impl Gate {
    /// `refusal` ready to answer: a refused payment gets a 402 offering the reference it
    /// must keep paying (when its payment may still land) or a fresh one.
    pub fn refuse(&self, refusal: Refusal, price: &Price, target: &Target) -> Refusal {
        if !refusal.wants_challenge() {
            return refusal;
        }
        let reference = refusal
            .pending_reference()
            .unwrap_or_else(|| self.issue(price, target));
        let reason = Some(refusal.code()).filter(|_| refusal.reason() != Reason::PaymentRequired);
        let challenge = self.challenge(price, target, reference, reason);
        refusal.with_challenge(challenge)
    }

    /// A 402 offering `reference` for `price` at `target`.
    fn challenge(
        &self,
        price: &Price,
        target: &Target,
        reference: Reference,
        reason: Option<&str>,
    ) -> Challenge {
        self.metrics().challenge_issued();
        let s = self.settings();
        let offers: Vec<_> = price
            .schemes
            .iter()
            .map(|scheme| scheme.offer(self, price, target, reference))
            .collect();
        let amount = format_units(price.amount, s.decimals);
        let price_description = price.description.clone();
        let shown_price = format!("{amount} {}", s.currency);
        let ttl = (reference.expires_at() - unix_now()).max(0);
        let message = format!(
            "Pay {amount} {} to {} on {} for {} {}{}",
            s.currency,
            s.pay_to,
            s.network.v1_name(),
            target.method,
            target.path,
            reason.map(|r| format!(" ({r})")).unwrap_or_default()
        );
        let mut extra = Map::new();
        extra.insert("amount".into(), amount.into());
        extra.insert("currency".into(), s.currency.clone().into());
        extra.insert("payee".into(), s.pay_to.to_string().into());
        extra.insert("reference".into(), reference.to_string().into());
        extra.insert("ttl".into(), ttl.into());
        extra.insert("message".into(), message.into());
        if let Some(url) = &s.facilitator_url {
            extra.insert("facilitatorUrl".into(), url.clone().into());
        }
        let body = v1::PaymentRequired {
            x402_version: v1::VERSION,
            error: reason
                .unwrap_or(Reason::PaymentRequired.as_str())
                .to_string(),
            accepts: offers
                .iter()
                .map(|offer| {
                    let mut v1 = offer.to_v1();
                    v1.network = s.network.v1_name().to_string();
                    v1
                })
                .collect(),
            extra,
        };
        let header = v2::PaymentRequired {
            x402_version: v2::VERSION,
            error: reason.map(str::to_string),
            resource: v2::ResourceInfo {
                url: target.resource.clone(),
                description: Some(price.description.clone()),
                mime_type: Some(price.mime_type.clone()),
            },
            accepts: offers.iter().map(|offer| offer.to_v2()).collect(),
            extensions: None,
        };
        let page = target.wants_page.then(|| {
            let expires = std::time::UNIX_EPOCH
                + std::time::Duration::from_secs(reference.expires_at().max(0) as u64);
            let summary = paywall::Summary {
                price: &shown_price,
                payee: &s.pay_to.to_string(),
                method: &target.method,
                path: &target.path,
                description: &price_description,
                expires: &humantime::format_rfc3339_seconds(expires).to_string(),
                network: s.network.v1_name(),
                reason,
            };
            paywall::page(&summary, &header)
        });
        Challenge {
            body,
            header: header_value(encode_header(&header)),
            page,
        }
    }

    /// The settlement header of a served request, in the version the payment came in.
    pub fn settlement_header(
        &self,
        settled: &SettledPayment,
        version: Version,
    ) -> (&'static str, HeaderValue) {
        let mut extra = Map::new();
        extra.insert("reference".into(), settled.reference.to_string().into());
        extra.insert("scheme".into(), settled.scheme.name().into());
        if let Some(receipt) = settled.receipt {
            extra.insert("receipt".into(), receipt.to_string().into());
        }
        let network = match version {
            Version::V1 => self.settings().network.v1_name().to_string(),
            Version::V2 => settled.network.clone(),
        };
        let settlement = Settlement {
            success: true,
            error_reason: None,
            payer: settled.payer.to_string(),
            transaction: settled.transaction.clone().unwrap_or_default(),
            network,
            amount: Some(settled.amount.to_string()),
            extra,
        };
        let (name, value) = settlement.header(version);
        (name, header_value(value))
    }
}

fn header_value(base64: String) -> HeaderValue {
    HeaderValue::from_str(&base64).expect("base64 is a valid header value")
}
