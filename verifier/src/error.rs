//! The verifier's one error model: every reason code it sends ([`Reason`]), and the one
//! refusal type ([`Refusal`]), which carries what its answer needs. Writing the answer,
//! from a 402 with its challenge to a 503 with `Retry-After`, is [`crate::render`]'s.

use serde_json::{Map, Value};
use x402_protocol::scheme::SchemeError;
use x402_protocol::{LedgerError, ReceiptDefect, Reference, SponsoredDefect};

/// How long a client waits before retrying after a 503.
pub const RETRY_AFTER_SECONDS: u32 = 2;

macro_rules! reasons {
    ($($(#[doc = $doc:literal])* $variant:ident => $code:literal,)*) => {
        /// Every reason code the verifier sends, as `error` (or a facilitator answer's
        /// `invalidReason` / `errorReason`): a closed set, so that metrics labels stay
        /// bounded. The README's answer table documents each.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Reason {
            $($(#[doc = $doc])* $variant,)*
        }

        impl Reason {
            /// Every reason, in declaration order.
            pub const ALL: &'static [Reason] = &[$(Reason::$variant,)*];

            /// The code on the wire, in snake_case.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Reason::$variant => $code,)*
                }
            }
        }
    };
}

reasons! {
    /// No payment was sent.
    PaymentRequired => "payment_required",
    /// The payment headers or the facilitator request cannot be read.
    InvalidPayload => "invalid_payload",
    /// The path reads differently to the router and to an upstream.
    AmbiguousPath => "ambiguous_path",
    /// A payment in a scheme this verifier does not settle.
    UnsupportedScheme => "unsupported_scheme",
    /// A payment for another network.
    InvalidNetwork => "invalid_network",
    /// A facilitator request in an x402 version other than 1 and 2.
    InvalidX402Version => "invalid_x402_version",
    /// A facilitator request's requirements cannot be read or are not ours to settle.
    InvalidPaymentRequirements => "invalid_payment_requirements",
    /// The reference is not ours, or for another request or price.
    InvalidReference => "invalid_reference",
    /// A self-submitted payment without the payer's proof for this request, or with a
    /// proof that does not verify against the receipt's payer.
    InvalidProof => "invalid_proof",
    /// The reference expired and no payment landed in time.
    ExpiredReference => "expired_reference",
    /// The reference has bought a request already.
    ReferenceAlreadyUsed => "reference_already_used",
    /// A facilitator caller verifies a payment that was settled already (x402's code).
    DuplicateSettlement => "duplicate_settlement",
    /// A sponsored payment, and this verifier has no fee payer, or its fee payer has
    /// reached its spending ceiling.
    SponsorshipUnavailable => "sponsorship_unavailable",
    /// A sponsored payment too close to its challenge's expiry to submit safely.
    ExpiringReference => "expiring_reference",
    /// Too many sponsored payments in flight (overall, for this payer, or this very
    /// payment in another request): retry the same payment.
    SponsorshipBusy => "sponsorship_busy",
    /// The sponsored transaction's fee payer is not ours.
    TransactionWrongFeePayer => "transaction_wrong_fee_payer",
    /// The sponsored transaction is not signed by exactly the fee payer and the payer.
    TransactionWrongSigners => "transaction_wrong_signers",
    /// The payer's signature does not verify.
    TransactionBadSignature => "transaction_bad_signature",
    /// An instruction other than a compute budget and one `pay`.
    TransactionUnexpectedInstruction => "transaction_unexpected_instruction",
    /// A compute-unit price or limit above the fee payer's caps.
    TransactionComputeBudgetTooHigh => "transaction_compute_budget_too_high",
    /// The `pay` does not pay what the challenge asks.
    TransactionWrongPayment => "transaction_wrong_payment",
    /// The fee payer appears where it could lose money.
    TransactionFeePayerMisused => "transaction_fee_payer_misused",
    /// The ledger refused the sponsored transaction and no receipt exists.
    TransactionFailed => "transaction_failed",
    /// An `upto` payment carries a voucher: that is the seller's to sign, never the buyer's.
    UptoUnexpectedVoucher => "invalid_upto_svm_payload_unexpected_voucher",
    /// The `upto` payment's channel exists already: a channel pays for one request.
    UptoChannelAlreadyOpen => "invalid_upto_svm_channel_already_open",
    /// The channel that opened does not bind the challenge's terms, or a claim's channel
    /// is not the one its payment opened (or is settled already).
    UptoChannelState => "invalid_upto_svm_channel_state",
    /// A claim charges more than the ceiling its buyer signed.
    UptoSettlementExceedsAmount => "invalid_upto_svm_payload_settlement_exceeds_amount",
    /// A token account the settlement pays into (the payee's, the treasury's) is missing:
    /// the deposit would be escrowed with no way to pay the seller.
    UptoSettlementNotReady => "invalid_upto_svm_settlement_simulation",
    /// A `batch-settlement` payload that is not one of the client mode's (`deposit`,
    /// `voucher`, `refund`), or is malformed.
    BatchPayloadType => "invalid_batch_settlement_svm_payload_type",
    /// The channel is not one this seller has open, or its configuration or the channel
    /// on chain does not match the offer.
    BatchChannelState => "invalid_batch_settlement_svm_channel_state",
    /// The voucher's channel is not the one its configuration derives.
    BatchChannelIdMismatch => "invalid_batch_settlement_svm_channel_id_mismatch",
    /// The channel's payer or voucher signer is our fee payer.
    BatchFeePayerMismatch => "invalid_batch_settlement_svm_fee_payer_mismatch",
    /// The channel binds another receiver authorizer than the offer's.
    BatchReceiverAuthorizerMismatch => "invalid_batch_settlement_svm_receiver_authorizer_mismatch",
    /// The channel's grace period is not the offer's.
    BatchWithdrawDelayMismatch => "invalid_batch_settlement_svm_withdraw_delay_mismatch",
    /// A voucher with an expiry: this scheme's never expire.
    BatchVoucherExpiry => "invalid_batch_settlement_svm_voucher_expiry",
    /// The voucher is not signed by the channel's payer authorizer.
    BatchVoucherSignature => "invalid_batch_settlement_svm_voucher_signature",
    /// The voucher is not what was accepted plus this request's price (stale, replayed,
    /// lowered or raised): the challenge carries the seller's state to resynchronize.
    BatchCumulativeMismatch => "invalid_batch_settlement_svm_cumulative_amount_mismatch",
    /// The voucher exceeds the channel's deposit: top it up.
    BatchCumulativeExceedsDeposit => "invalid_batch_settlement_svm_cumulative_exceeds_deposit",
    /// The deposit's transaction fails the fee payer's checks.
    BatchSetupTransaction => "invalid_batch_settlement_svm_setup_transaction",
    /// A token account the claims pay into (the payee's, the treasury's) is missing.
    BatchSettlementNotReady => "invalid_batch_settlement_svm_settlement_simulation",
    /// The channel is closing or closed: no voucher is accepted; open a new one.
    BatchChannelClosing => "invalid_batch_settlement_svm_channel_closing",
    /// A refund's voucher is not what was accepted, or the channel cannot be closed.
    BatchCloseState => "invalid_batch_settlement_svm_close_state",
    /// A refund that names an amount: the whole unused deposit goes back.
    BatchCloseAmountUnsupported => "invalid_batch_settlement_svm_close_amount_unsupported",
    /// A seal or cooperative refund at the facilitator without a valid close authorization
    /// of the channel's bound receiver authorizer (missing, expired, too far ahead, signed
    /// by another key, or for another close).
    BatchCloseAuthorization => "invalid_batch_settlement_svm_close_authorization",
    /// A delegated open, seal or refund at the facilitator by a caller other than the one
    /// that opened the channel.
    BatchDelegatedUnauthenticated => "invalid_batch_settlement_svm_delegated_unauthenticated",
    /// The facilitator has no binding for the channel (it did not open it): it cannot
    /// close it cooperatively.
    BatchReceiverBindingUnavailable => "invalid_batch_settlement_svm_receiver_binding_unavailable",
    /// The requirements' `withdrawDelay` is outside 900 to 2,592,000 seconds, or shorter
    /// than their `maxTimeoutSeconds`.
    BatchWithdrawDelayOutOfRange => "invalid_batch_settlement_svm_withdraw_delay_out_of_range",
    /// Facilitator: a refund's `request_close` transaction is not the buyer's own close of
    /// the channel, or would have the fee payer pay more than its fee.
    BatchRefundTransaction => "invalid_batch_settlement_svm_refund_transaction",
    /// The offer's token program does not own its mint.
    BatchTokenProgram => "invalid_batch_settlement_svm_token_program",
    /// No receipt at the reference's address (yet).
    ReceiptNotFound => "receipt_not_found",
    /// The account at the receipt's address is not the program's.
    ReceiptWrongOwner => "receipt_wrong_owner",
    /// The account is not a receipt.
    ReceiptNotAReceipt => "receipt_not_a_receipt",
    /// The receipt is for another reference.
    ReceiptWrongReference => "receipt_wrong_reference",
    /// The receipt pays someone else.
    ReceiptWrongPayee => "receipt_wrong_payee",
    /// The receipt pays in another mint.
    ReceiptWrongMint => "receipt_wrong_mint",
    /// The receipt's expiry is not the challenge's.
    ReceiptWrongExpiry => "receipt_wrong_expiry",
    /// The payee received less than the price.
    ReceiptAmountBelowPrice => "receipt_amount_below_price",
    /// The merchant's own check refused the payment; the wire carries its own code.
    MerchantRefused => "merchant_refused",
    /// The ledger or the grant store could not answer in time.
    LedgerUnavailable => "ledger_unavailable",
    /// `/metrics`, `/verify` or `/settle` without the right bearer token.
    Unauthorized => "unauthorized",
    /// Too many receipt lookups at once: they spend the RPC provider's quota.
    RateLimited => "rate_limited",
    /// A facilitator caller's requirements are outside the facilitator's policy (a mint,
    /// payee, amount or expiry it does not sponsor).
    RequirementsNotAllowed => "requirements_not_allowed",
    /// A facilitator caller has spent its fee-and-rent budget for the window.
    BudgetExhausted => "budget_exhausted",
    /// The upstream did not answer in time.
    UpstreamTimeout => "upstream_timeout",
    /// The upstream could not be reached.
    UpstreamUnreachable => "upstream_unreachable",
    /// The upstream's answer is over the size limit.
    UpstreamResponseTooLarge => "upstream_response_too_large",
}

impl From<SponsoredDefect> for Reason {
    fn from(defect: SponsoredDefect) -> Self {
        match defect {
            SponsoredDefect::WrongFeePayer => Reason::TransactionWrongFeePayer,
            SponsoredDefect::WrongSigners => Reason::TransactionWrongSigners,
            SponsoredDefect::BadPayerSignature => Reason::TransactionBadSignature,
            SponsoredDefect::UnexpectedInstruction => Reason::TransactionUnexpectedInstruction,
            SponsoredDefect::ComputeBudgetTooHigh => Reason::TransactionComputeBudgetTooHigh,
            SponsoredDefect::WrongPayment("voucherSignature") => Reason::UptoUnexpectedVoucher,
            SponsoredDefect::WrongPayment(_) => Reason::TransactionWrongPayment,
            SponsoredDefect::FeePayerMisused => Reason::TransactionFeePayerMisused,
        }
    }
}

impl From<ReceiptDefect> for Reason {
    fn from(defect: ReceiptDefect) -> Self {
        match defect {
            ReceiptDefect::WrongOwner => Reason::ReceiptWrongOwner,
            ReceiptDefect::NotAReceipt => Reason::ReceiptNotAReceipt,
            ReceiptDefect::WrongReference => Reason::ReceiptWrongReference,
            ReceiptDefect::WrongPayee => Reason::ReceiptWrongPayee,
            ReceiptDefect::WrongMint => Reason::ReceiptWrongMint,
            ReceiptDefect::WrongExpiry => Reason::ReceiptWrongExpiry,
            ReceiptDefect::AmountBelowPrice { .. } => Reason::ReceiptAmountBelowPrice,
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a request was not served, and all its answer needs.
#[derive(Debug)]
pub struct Refusal {
    reason: Reason,
    /// A merchant check's own code, sent instead of [`Reason::MerchantRefused`].
    merchant_code: Option<String>,
    /// For people: what happened and what to do.
    message: Option<String>,
    /// More fields of the JSON body (the receipt's address, ...).
    detail: Map<String, Value>,
    /// The reference the client must keep presenting: its payment may still land, so a
    /// fresh challenge would invite it to pay twice.
    pending: Option<Reference>,
    /// Fields the challenge's `batch-settlement` offer carries besides its own: a
    /// corrective answer's channel and voucher state.
    correction: Option<Box<Map<String, Value>>>,
}

impl Refusal {
    pub fn new(reason: Reason) -> Self {
        Refusal {
            reason,
            merchant_code: None,
            message: None,
            detail: Map::new(),
            pending: None,
            correction: None,
        }
    }

    /// A refusal that repeats `reference` in its challenge.
    pub fn pending(reason: Reason, reference: Reference) -> Self {
        Refusal {
            pending: Some(reference),
            ..Refusal::new(reason)
        }
    }

    /// The merchant's check refused, with its own code.
    pub fn by_merchant(code: String) -> Self {
        Refusal {
            merchant_code: Some(code),
            ..Refusal::new(Reason::MerchantRefused)
        }
    }

    /// The ledger or the store did not answer: a 503, never a 200 or a new challenge.
    pub fn unavailable() -> Self {
        Refusal::new(Reason::LedgerUnavailable).message(
            "The payment could not be checked right now. Retry with the same payment; do not pay again.",
        )
    }

    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }

    pub fn detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.detail.insert(key.into(), value.into());
        self
    }

    /// Fields for the challenge's `batch-settlement` offer (`channelState`,
    /// `voucherState`).
    pub fn correction(mut self, fields: Map<String, Value>) -> Self {
        self.correction = Some(Box::new(fields));
        self
    }

    pub fn corrective_fields(&self) -> Option<&Map<String, Value>> {
        self.correction.as_deref()
    }

    pub fn reason(&self) -> Reason {
        self.reason
    }

    /// The code on the wire.
    pub fn code(&self) -> &str {
        self.merchant_code
            .as_deref()
            .unwrap_or(self.reason.as_str())
    }

    pub fn pending_reference(&self) -> Option<Reference> {
        self.pending
    }

    /// Whether a challenge answers this refusal: the payment is what is wrong, not the
    /// request, the ledger or the upstream.
    pub fn wants_challenge(&self) -> bool {
        use Reason::*;
        !matches!(
            self.reason,
            InvalidPayload
                | AmbiguousPath
                | InvalidX402Version
                | InvalidPaymentRequirements
                | LedgerUnavailable
                | SponsorshipBusy
                | RateLimited
                | Unauthorized
                | UpstreamTimeout
                | UpstreamUnreachable
                | UpstreamResponseTooLarge
        )
    }

    /// The message and the detail fields, for the answer's body.
    pub fn into_text(self) -> (Option<String>, Map<String, Value>) {
        (self.message, self.detail)
    }
}

/// An offer a facilitator caller sends, read in a scheme: another scheme's, or not one
/// this verifier can settle.
impl From<SchemeError> for Refusal {
    fn from(error: SchemeError) -> Self {
        match error {
            SchemeError::OtherScheme => Refusal::new(Reason::UnsupportedScheme),
            SchemeError::Malformed(_) => Refusal::new(Reason::InvalidPaymentRequirements),
        }
    }
}

impl From<LedgerError> for Refusal {
    fn from(_: LedgerError) -> Self {
        Refusal::unavailable()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_codes_are_distinct_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for reason in Reason::ALL {
            let code = reason.as_str();
            assert!(seen.insert(code), "{code} twice");
            assert!(
                code.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{code}"
            );
        }
    }

    #[test]
    fn every_defect_has_its_own_reason_with_the_protocol_code() {
        let sponsored = [
            SponsoredDefect::WrongFeePayer,
            SponsoredDefect::WrongSigners,
            SponsoredDefect::BadPayerSignature,
            SponsoredDefect::UnexpectedInstruction,
            SponsoredDefect::ComputeBudgetTooHigh,
            SponsoredDefect::WrongPayment("amount"),
            SponsoredDefect::FeePayerMisused,
        ];
        for defect in sponsored {
            assert_eq!(Reason::from(defect.clone()).as_str(), defect.reason());
        }
        let receipt = [
            ReceiptDefect::WrongOwner,
            ReceiptDefect::NotAReceipt,
            ReceiptDefect::WrongReference,
            ReceiptDefect::WrongPayee,
            ReceiptDefect::WrongMint,
            ReceiptDefect::WrongExpiry,
            ReceiptDefect::AmountBelowPrice { paid: 1, price: 2 },
        ];
        for defect in receipt {
            assert_eq!(Reason::from(defect.clone()).as_str(), defect.reason());
        }
    }

    #[test]
    fn a_merchant_code_goes_on_the_wire_but_the_reason_stays_closed() {
        let refusal = Refusal::by_merchant("payer_blocked".into());
        assert_eq!(refusal.code(), "payer_blocked");
        assert_eq!(refusal.reason(), Reason::MerchantRefused);
        assert!(refusal.wants_challenge());
        assert!(!Refusal::new(Reason::InvalidPayload).wants_challenge());
    }
}
