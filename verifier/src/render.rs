//! What the verifier writes on the wire for a price: the 402 challenge (the x402 v1 JSON
//! body, with plain fields for people with curl, and the v2 `PAYMENT-REQUIRED` header),
//! and the settlement header of a served request.

use axum::response::{IntoResponse, Response};
use axum::Json;
use http::{HeaderValue, StatusCode};
use serde_json::Map;
use solana_signer::Signer;
use x402_protocol::amount::format_units;
use x402_protocol::scheme::ReceiptOffer;
use x402_protocol::wire::{encode_header, v1, v2, Settlement, Version};
use x402_protocol::Reference;

use crate::error::{Reason, Refusal};
use crate::gate::{Gate, Price, SettledPayment, Target};
use crate::unix_now;

/// A 402 answer, ready to send.
#[derive(Debug)]
pub struct Challenge {
    body: v1::PaymentRequired,
    header: HeaderValue,
}

impl IntoResponse for Challenge {
    fn into_response(self) -> Response {
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
        let fee_payer = s.fee_payer.as_ref().map(|k| k.pubkey());
        let offer = ReceiptOffer {
            network: s.network.v1_name().into(),
            requirement: self.requirement(price.amount, reference),
            decimals: s.decimals,
            fee_payer,
            recent_blockhash: fee_payer.and(self.blockhash()),
            resource: target.resource.clone(),
            description: price.description.clone(),
            mime_type: price.mime_type.clone(),
            max_timeout_seconds: price.ttl.as_secs(),
        }
        .to_offer();
        let amount = format_units(price.amount, s.decimals);
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
            accepts: vec![offer.to_v1()],
            extra,
        };
        let mut v2_offer = offer.to_v2();
        v2_offer.network = s.network.caip2().to_string();
        let header = v2::PaymentRequired {
            x402_version: v2::VERSION,
            error: reason.map(str::to_string),
            resource: offer.resource.clone(),
            accepts: vec![v2_offer],
            extensions: None,
        };
        Challenge {
            body,
            header: header_value(encode_header(&header)),
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
        extra.insert("receipt".into(), settled.receipt.to_string().into());
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
