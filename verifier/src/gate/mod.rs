//! The gate: one seller's payment rules over its [`Context`], cheap to clone. It decides
//! whether a request has paid ([`decision`]) and gives a grant back when serving failed.
//! The challenge it answers with is [`crate::render`]'s; its background tasks are
//! [`crate::tasks`]'.

pub mod decision;
pub mod metered;

use std::sync::Arc;

use x402_protocol::Ledger;

use crate::context::{Context, PaymentSettings};
use crate::model::{Scheme, SettledPayment};
use crate::scheme::batch::revert_voucher;
use crate::store::GrantStore;

/// The gate, cheap to clone; it reads as its [`Context`].
#[derive(Clone)]
pub struct Gate(Arc<Context>);

/// A gate that does not keep itself alive: background tasks end with it.
pub(crate) struct WeakGate(std::sync::Weak<Context>);

impl WeakGate {
    pub(crate) fn upgrade(&self) -> Option<Gate> {
        self.0.upgrade().map(Gate)
    }
}

impl std::ops::Deref for Gate {
    type Target = Context;

    fn deref(&self) -> &Context {
        &self.0
    }
}

impl Gate {
    /// A gate over `ledger` and `store`. Its background tasks are started apart
    /// ([`crate::tasks::start`]); without them sponsored challenges carry no blockhash.
    pub fn new(settings: PaymentSettings, ledger: Arc<dyn Ledger>, store: GrantStore) -> Self {
        assert!(
            !settings.challenge_keys.is_empty(),
            "a gate needs a challenge key"
        );
        assert!(
            settings.fee_payer.is_some()
                || !(settings.schemes.contains(&Scheme::Exact)
                    || settings.schemes.iter().any(|s| s.on_channels())),
            "exact, upto and batch-settlement need a fee payer: the seller pays their fees"
        );
        Gate(Arc::new(Context::new(settings, ledger, store)))
    }

    /// A handle that does not keep the gate alive, for background tasks.
    pub(crate) fn downgrade(&self) -> WeakGate {
        WeakGate(Arc::downgrade(&self.0))
    }

    /// Gives the grant back after serving failed: the payment may be presented again by
    /// its payer, with the payer's proof (its submission lease ends too, so that the
    /// retry settles it at once). A `batch-settlement` voucher is taken back instead: the
    /// buyer is not charged for the request.
    pub async fn release(&self, settled: &SettledPayment) {
        self.metrics().released();
        if let Some(commit) = &settled.batch {
            revert_voucher(self, commit).await;
            return;
        }
        let reference = settled.reference.to_string();
        if let Err(error) = self
            .store()
            .release(&reference, x402_protocol::unix_now())
            .await
        {
            tracing::error!(%error, reference = %settled.reference, "could not release a grant");
        }
        self.end_lease(&settled.reference).await;
    }
}
