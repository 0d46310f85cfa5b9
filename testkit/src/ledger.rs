//! One fake ledger for every test: a real ledger (the embedded one, mostly) or none at
//! all, with knobs a test turns: calls counted, an outage, reads or submissions that
//! fail, submissions that land and fail on chain, submissions that land only when the
//! test says so, slow reads, another network's name.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anchor_lang::prelude::Pubkey;
use async_trait::async_trait;
use solana_hash::Hash;
use solana_signature::Signature;
use solana_transaction::versioned::VersionedTransaction;
use x402_protocol::{AccountFilter, Landed, Ledger, LedgerAccount, LedgerError, Network};

/// A ledger with knobs. Calls go to `inner`; without one it is an empty ledger: no
/// accounts, a fixed blockhash, every submission refused.
pub struct TestLedger {
    inner: Option<Arc<dyn Ledger>>,
    network: Network,
    /// Account reads (`accounts`) asked of it.
    pub reads: AtomicUsize,
    /// Submissions asked of it.
    pub submits: AtomicUsize,
    /// `getProgramAccounts`: the rent gauge's recount and the janitor, never a request's.
    pub scans: AtomicUsize,
    /// Every call fails: an outage.
    pub down: AtomicBool,
    /// Reads still to fail, one by one: an outage of a moment.
    pub failing_reads: Mutex<usize>,
    /// Submissions fail unanswered while the rest works (blockhashes keep coming).
    pub failing_submits: AtomicBool,
    /// Submissions land and fail on chain, their fee charged, as a payer that empties
    /// its account between the checks and the landing makes them on a cluster (the
    /// embedded ledger preflights: it never lands a failing transaction).
    pub failing_on_chain: AtomicBool,
    /// What landed and failed while `failing_on_chain`.
    failed_on_chain: Mutex<Vec<Signature>>,
    /// Submissions are accepted at once and wait in `pending` for [`TestLedger::land`],
    /// as on a cluster where confirmation takes a while.
    late: bool,
    pending: tokio::sync::Mutex<Option<VersionedTransaction>>,
    /// How long each read takes, as a busy RPC provider's do.
    read_delay: Option<Duration>,
}

impl TestLedger {
    /// `inner` with its calls counted and every knob off.
    pub fn over(inner: Arc<dyn Ledger>) -> Self {
        let network = inner.network().clone();
        Self::with(Some(inner), network)
    }

    /// A ledger of `network` holding no accounts: for routing and answers that need none.
    pub fn empty(network: Network) -> Self {
        Self::with(None, network)
    }

    fn with(inner: Option<Arc<dyn Ledger>>, network: Network) -> Self {
        TestLedger {
            inner,
            network,
            reads: AtomicUsize::new(0),
            submits: AtomicUsize::new(0),
            scans: AtomicUsize::new(0),
            down: AtomicBool::new(false),
            failing_reads: Mutex::new(0),
            failing_submits: AtomicBool::new(false),
            failing_on_chain: AtomicBool::new(false),
            failed_on_chain: Mutex::default(),
            late: false,
            pending: Default::default(),
            read_delay: None,
        }
    }

    /// Submissions land only at [`TestLedger::land`].
    pub fn late(mut self) -> Self {
        self.late = true;
        self
    }

    /// Named `network` (as a mainnet RPC node would be), whatever `inner` is.
    pub fn named(mut self, network: Network) -> Self {
        self.network = network;
        self
    }

    /// Each read takes `delay` first.
    pub fn slow(mut self, delay: Duration) -> Self {
        self.read_delay = Some(delay);
        self
    }

    /// Reads and submissions asked of it so far.
    pub fn calls(&self) -> usize {
        self.reads.load(Ordering::SeqCst) + self.submits.load(Ordering::SeqCst)
    }

    /// Lands the submission waiting since a [`TestLedger::late`] ledger accepted it.
    pub async fn land(&self) {
        let transaction = self
            .pending
            .lock()
            .await
            .take()
            .expect("a payment was submitted");
        self.inner()
            .submit(&transaction)
            .await
            .expect("the payment lands");
    }

    fn inner(&self) -> &dyn Ledger {
        self.inner.as_deref().expect("a ledger under the test's")
    }

    fn check_up(&self) -> Result<(), LedgerError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(LedgerError::Unavailable("outage".into()));
        }
        Ok(())
    }

    /// Takes one of the reads still to fail, if any.
    fn read_fails(&self) -> bool {
        let mut failing = self.failing_reads.lock().unwrap();
        let fail = *failing > 0;
        *failing = failing.saturating_sub(1);
        fail
    }
}

#[async_trait]
impl Ledger for TestLedger {
    fn network(&self) -> &Network {
        &self.network
    }

    async fn accounts(
        &self,
        addresses: &[Pubkey],
    ) -> Result<Vec<Option<LedgerAccount>>, LedgerError> {
        self.check_up()?;
        // The Clock sysvar is read in the background with the blockhash (the slot `upto`
        // offers carry), not per request: it is neither counted nor failed.
        let background = addresses == [anchor_lang::solana_program::clock::sysvar::ID];
        if background {
            return match &self.inner {
                Some(inner) => inner.accounts(addresses).await,
                None => Ok(vec![None]),
            };
        }
        self.reads.fetch_add(1, Ordering::SeqCst);
        if self.read_fails() {
            return Err(LedgerError::Unavailable("a moment's outage".into()));
        }
        if let Some(delay) = self.read_delay {
            tokio::time::sleep(delay).await;
        }
        match &self.inner {
            Some(inner) => inner.accounts(addresses).await,
            None => Ok(vec![None; addresses.len()]),
        }
    }

    // Refreshing the sponsored challenges' blockhash runs in the background, not per
    // request: it is not counted.
    async fn latest_blockhash(&self) -> Result<Hash, LedgerError> {
        self.check_up()?;
        match &self.inner {
            Some(inner) => inner.latest_blockhash().await,
            None => Ok(Hash::new_from_array([3; 32])),
        }
    }

    async fn submit(&self, transaction: &VersionedTransaction) -> Result<Signature, LedgerError> {
        self.check_up()?;
        self.submits.fetch_add(1, Ordering::SeqCst);
        if self.failing_submits.load(Ordering::SeqCst) {
            return Err(LedgerError::Unavailable(
                "the submission went unanswered".into(),
            ));
        }
        let signature = transaction.signatures[0];
        if self.failing_on_chain.load(Ordering::SeqCst) {
            self.failed_on_chain.lock().unwrap().push(signature);
            return Err(LedgerError::Rejected("failed on chain".into()));
        }
        if self.late {
            *self.pending.lock().await = Some(transaction.clone());
            return Ok(signature);
        }
        match &self.inner {
            Some(inner) => inner.submit(transaction).await,
            None => Err(LedgerError::Rejected(
                "an empty ledger takes no submission".into(),
            )),
        }
    }

    async fn landed(
        &self,
        signature: &Signature,
        watched: &Pubkey,
    ) -> Result<Option<Landed>, LedgerError> {
        self.check_up()?;
        if self.failed_on_chain.lock().unwrap().contains(signature) {
            return Ok(Some(Landed {
                failure: Some("failed on chain".into()),
                received: 0,
            }));
        }
        match &self.inner {
            Some(inner) => inner.landed(signature, watched).await,
            None => Ok(None),
        }
    }

    async fn program_accounts(
        &self,
        program: &Pubkey,
        filters: &[AccountFilter],
    ) -> Result<Vec<(Pubkey, LedgerAccount)>, LedgerError> {
        self.check_up()?;
        self.scans.fetch_add(1, Ordering::SeqCst);
        match &self.inner {
            Some(inner) => inner.program_accounts(program, filters).await,
            None => Ok(Vec::new()),
        }
    }
}
