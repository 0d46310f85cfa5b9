//! A metered payment after its answer: what the answer cost is committed to the grant
//! store first, then settled on chain (`upto`), or signed by our operator and committed
//! (`batch-settlement`'s server mode); the buyer gets the answer only once it is.

use x402_protocol::unix_now;

use super::Gate;
use crate::context::store_unavailable;
use crate::error::{Reason, Refusal};
use crate::model::SettledPayment;
use crate::scheme::batch::operator;
use crate::scheme::upto::settle_channel;
use crate::store::Stage;

/// How an answer to a metered payment ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Served: it cost what the handler said (`None`: it said nothing).
    Served(Option<u64>),
    /// It failed before anything was delivered: it costs nothing.
    Failed,
}

impl Gate {
    /// Settles the metered payment `settled` for `answer`: a charge above the ceiling
    /// is cut to it, an answer that says nothing costs the ceiling, a failed one nothing.
    /// The settled payment on success. When the settlement cannot be confirmed, the
    /// answer must be withheld (a 503): the channel is then closed at zero, so that the
    /// buyer pays nothing for what it did not get.
    pub async fn settle_metered(
        &self,
        settled: &SettledPayment,
        answer: Answer,
    ) -> Result<SettledPayment, Refusal> {
        if settled.is_held() {
            return match answer {
                Answer::Served(charge) => operator::complete(self, settled, charge).await,
                Answer::Failed => {
                    operator::release(self, settled).await;
                    Ok(settled.clone())
                }
            };
        }
        let metered = settled
            .metered
            .as_ref()
            .expect("a metered payment has its channel");
        let amount = match answer {
            Answer::Failed => 0,
            Answer::Served(None) => metered.max_amount,
            Answer::Served(Some(charge)) if charge > metered.max_amount => {
                tracing::warn!(reference = %settled.reference, charge, max = metered.max_amount, "a metered answer said it cost more than its ceiling: charged the ceiling");
                metered.max_amount
            }
            Answer::Served(Some(charge)) => charge,
        };
        let channel = metered.address.to_string();
        // Committed before it is settled: a crash from here resumes with this amount.
        self.store()
            .advance_channel(&channel, Stage::Served, Some(amount), None, unix_now())
            .await
            .map_err(store_unavailable)?;
        let record = self
            .store()
            .channel(&channel)
            .await
            .map_err(store_unavailable)?
            .ok_or_else(Refusal::unavailable)?;
        match settle_channel(self, &record, amount).await {
            Ok(distributed) => {
                let transaction = distributed.or(record.transaction);
                Ok(SettledPayment {
                    amount,
                    transaction,
                    ..settled.clone()
                })
            }
            Err(refusal) => {
                tracing::warn!(reference = %settled.reference, reason = refusal.code(), "a metered payment could not be settled: its answer is withheld and its channel will close at zero");
                // The answer is withheld: it costs nothing (the janitor closes it).
                if let Err(error) = self
                    .store()
                    .advance_channel(&channel, Stage::Served, Some(0), None, unix_now())
                    .await
                {
                    tracing::error!(%error, "could not record a withheld answer's zero charge");
                }
                Err(if refusal.reason() == Reason::LedgerUnavailable {
                    refusal
                } else {
                    Refusal::unavailable()
                })
            }
        }
    }
}
