//! A claim settle at the facilitator: after serving, the delegating server sends the
//! buyer's payment again with `paymentRequirements.amount` set to what the answer cost
//! and its receiver authorizer's voucher for that amount (`voucherSignature`). The
//! voucher is the only proof the claim is the server's (`/settle` callers are anyone
//! with a key): it must verify, the channel on chain must be the one the payment opened
//! with our fee payer as payee, and then our fee payer seals and distributes it.

use async_trait::async_trait;
use solana_signature::Signature;
use x402_protocol::scheme::upto::{
    distribute_instruction, fee_payer_transaction, read_payload, settle_and_seal_instructions,
    treasury_owner, voucher_message, ChannelStatus, UptoTerms, Voucher,
};
use x402_protocol::{LedgerError, Reference};

use super::{token_account, UptoDemand, UptoPayment, CLOCK_SKEW_SECONDS};
use crate::context::Context;
use crate::error::{Reason, Refusal};
use crate::metrics::LedgerCall;
use crate::model::{MeteredChannel, Scheme, SettledPayment};
use crate::scheme::channel::read_channel;
use crate::scheme::{fee_cost, Landing, Submission, Submitted, Verified};
use crate::sponsorship::Parties;
use crate::store::Stage;

/// Whether `payment` is a claim settle: a facilitator caller's, carrying a voucher. At
/// the gate a voucher is the buyer's forgery, refused with the deposit's checks.
pub(super) fn is_claim(payment: &UptoPayment, demand: &UptoDemand) -> bool {
    demand.reference.is_none() && matches!(payment.payload.voucher_signature, Some(Some(_)))
}

/// What a facilitator records a channel's deposit, or its claim, under: each settles once.
pub(super) fn channel_key(channel: &str, claim: bool) -> Reference {
    use sha2::{Digest, Sha256};
    let tag: &[u8] = if claim {
        b"upto-claim"
    } else {
        b"upto-deposit"
    };
    Reference(
        Sha256::new()
            .chain_update(tag)
            .chain_update(channel)
            .finalize()
            .into(),
    )
}

/// Checks a claim: the charge within the buyer's signed ceiling, the payload's statements
/// (its window too: the voucher expires with it), the voucher by the receiver
/// authorizer, and the channel on chain as the payment opened it.
pub(super) async fn verify_claim(
    cx: &Context,
    payment: UptoPayment,
    demand: &UptoDemand,
) -> Result<Verified, Refusal> {
    let malformed = |what: &str| Refusal::new(Reason::InvalidPayload).message(what.to_string());
    let payload = payment.payload;
    let charge = demand.terms.max_amount;
    let ceiling: u64 = payload
        .max_amount
        .parse()
        .map_err(|_| malformed("payload.maxAmount"))?;
    if charge > ceiling {
        return Err(Refusal::new(Reason::UptoSettlementExceedsAmount));
    }
    let terms = UptoTerms {
        max_amount: ceiling,
        ..demand.terms.clone()
    };
    let statements = x402_protocol::scheme::upto::UptoPayload {
        voucher_signature: None,
        ..payload.clone()
    };
    let claimed = read_payload(
        &statements,
        &terms,
        demand
            .max_timeout_seconds
            .saturating_add(CLOCK_SKEW_SECONDS),
        x402_protocol::unix_now(),
    )
    .map_err(|defect| Refusal::new(defect.into()))?;
    let signature: Signature = payload
        .voucher_signature
        .flatten()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| malformed("payload.voucherSignature"))?;
    let message = voucher_message(&claimed.channel, charge, claimed.expires_at);
    if !signature.verify(terms.receiver_authorizer.as_ref(), &message) {
        return Err(malformed(
            "payload.voucherSignature: not the receiver authorizer's voucher for this amount",
        ));
    }
    let (channel, _) = read_channel(cx, &claimed.channel)
        .await?
        .ok_or_else(|| Refusal::new(Reason::UptoChannelState))?;
    let opened_as_paid = matches!(channel.status, ChannelStatus::Open | ChannelStatus::Closing)
        && channel.deposit == ceiling
        && channel.payer == claimed.opening.payer
        && channel.payee == terms.fee_payer
        && channel.authorized_signer == terms.receiver_authorizer
        && channel.mint == terms.mint;
    if !opened_as_paid {
        return Err(Refusal::new(Reason::UptoChannelState));
    }
    let payer = claimed.opening.payer;
    let submission = ClaimSubmission {
        key: channel_key(&claimed.channel.to_string(), true),
        parties: Parties {
            payer,
            source: token_account(&terms.plan(), &payer),
        },
        voucher: Voucher {
            channel: claimed.channel,
            cumulative_amount: charge,
            expires_at: claimed.expires_at,
            signer: terms.receiver_authorizer,
            signature: signature.into(),
        },
        terms,
    };
    Ok(Verified::to_submit(payer, charge, submission))
}

/// A checked claim, waiting for our fee payer to seal and distribute its channel.
#[derive(Debug)]
struct ClaimSubmission {
    key: Reference,
    parties: Parties,
    voucher: Voucher,
    /// The channel's terms, its ceiling as `max_amount`.
    terms: UptoTerms,
}

#[async_trait]
impl Submission for ClaimSubmission {
    fn parties(&self) -> Parties {
        self.parties
    }

    fn key(&self) -> Reference {
        self.key
    }

    /// Fees only: our signature, and the voucher's when it is applied on chain.
    fn cost(&self, cx: &Context) -> u64 {
        let signatures = if self.voucher.cumulative_amount > 0 {
            2
        } else {
            1
        };
        fee_cost(cx, signatures)
    }

    async fn submit(&self, cx: &Context) -> Submitted {
        let Some(fee_payer) = cx.settings().fee_payer.clone() else {
            return Submitted::refused(Refusal::new(Reason::SponsorshipUnavailable), false);
        };
        let channel = self.voucher.channel;
        let mut instructions =
            settle_and_seal_instructions(&self.terms.fee_payer, &channel, Some(&self.voucher));
        instructions.push(distribute_instruction(
            &self.terms.plan(),
            &channel,
            &self.parties.payer,
            &treasury_owner(cx.settings().network.cluster()),
        ));
        let blockhash = match cx
            .ledger_call(LedgerCall::LatestBlockhash, cx.ledger().latest_blockhash())
            .await
        {
            Ok(blockhash) => blockhash,
            Err(error) => return Submitted::refused(error.into(), false),
        };
        let transaction = fee_payer_transaction(&fee_payer, &instructions, blockhash);
        let signature = transaction.signatures[0].to_string();
        match cx
            .ledger_call(LedgerCall::Submit, cx.ledger().submit(&transaction))
            .await
        {
            Ok(_) => {}
            Err(LedgerError::Rejected(why)) => {
                tracing::info!(%channel, %why, "upto claim rejected");
                return Submitted::refused(Refusal::new(Reason::TransactionFailed), false);
            }
            Err(LedgerError::Unavailable(_)) => {
                return Submitted::refused(Refusal::unavailable(), false)
            }
        }
        let charge = self.voucher.cumulative_amount;
        // A channel this verifier opened is done but for its rent, which the janitor
        // reclaims.
        if let Err(error) = cx
            .store()
            .advance_channel(
                &channel.to_string(),
                Stage::Distributed,
                Some(charge),
                Some(&signature),
                x402_protocol::unix_now(),
            )
            .await
        {
            tracing::warn!(%error, "could not record a claimed channel: the janitor finds it");
        }
        let settled = SettledPayment {
            scheme: Scheme::Upto,
            reference: self.key,
            receipt: None,
            payer: self.parties.payer,
            amount: charge,
            mint: self.terms.mint,
            transaction: Some(signature),
            network: cx.settings().network.caip2().to_string(),
            metered: Some(MeteredChannel {
                address: channel,
                max_amount: self.terms.max_amount,
                opened_by: String::new(),
            }),
            batch: None,
        };
        Submitted {
            outcome: Ok((settled, Landing::Here)),
            deposited: None,
            charged: true,
        }
    }
}
