//! Grants: one row per reference that has bought a request. The unique key on the
//! reference is what makes a payment serve exactly one request, however many requests
//! race with it; an `exact` transaction is unique too, whatever key it was recorded
//! under (the gate's reference or the facilitator's message hash), so one transfer never
//! buys two requests. A grant given back (the upstream failed) stays, marked released:
//! only its payer may present the payment again. The table doubles as the merchant's
//! revenue ledger.
//!
//! SQL through sqlx's `Any` driver: a SQLite file by default, PostgreSQL by URL.

mod batch;

use sqlx::any::{install_default_drivers, AnyPoolOptions};
use sqlx::AnyPool;

pub use batch::{BatchBinding, BatchChannel, BatchStatus, Completion, Reservation};

/// The store could not be reached or answered with an error. Its text never holds the
/// store URL.
#[derive(Debug, thiserror::Error)]
#[error("the grant store is unavailable: {0}")]
pub struct StoreError(String);

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        // sqlx's configuration errors can quote the URL; keep only the kind of failure.
        let text = match error {
            sqlx::Error::Configuration(_) => {
                "the store URL is not valid (not shown: it may hold a password)".to_string()
            }
            sqlx::Error::Database(db) => db.message().to_string(),
            other => other.to_string(),
        };
        StoreError(text)
    }
}

/// One paid request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// The challenge reference, base58.
    pub reference: String,
    pub method: String,
    pub path: String,
    pub payer: String,
    /// Base units received, as the receipt records them.
    pub amount: u64,
    pub mint: String,
    /// The x402 scheme it was paid in (`receipt` or `exact`).
    pub scheme: String,
    /// The receipt account; an `exact` payment has none.
    pub receipt: Option<String>,
    /// The payment's transaction signature, when known.
    pub transaction: Option<String>,
    pub granted_at: i64,
}

#[derive(Clone)]
pub struct GrantStore {
    pool: AnyPool,
    /// Accepts `batch-settlement` vouchers in groups: started with the first.
    committer: std::sync::Arc<std::sync::OnceLock<batch::Committer>>,
    /// Transactions that committed accepted vouchers.
    voucher_commits: prometheus_client::metrics::counter::Counter,
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS grants (
    reference TEXT PRIMARY KEY,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    payer TEXT NOT NULL,
    amount TEXT NOT NULL,
    mint TEXT NOT NULL,
    receipt TEXT NOT NULL,
    transaction_signature TEXT,
    granted_at BIGINT NOT NULL,
    scheme TEXT NOT NULL DEFAULT 'receipt',
    released_at BIGINT
)";

/// Columns tables made by an older version lack: the grants' `scheme` (every row of a
/// table from before `exact` was paid in `receipt`) and `released_at` (NULL while the
/// grant serves; set when it was given back); a `batch-settlement` channel's `reserved`
/// (the server mode's requests in flight, none before it).
const ADDED_COLUMNS: [(&str, &str, &str); 3] = [
    ("grants", "scheme", "scheme TEXT NOT NULL DEFAULT 'receipt'"),
    ("grants", "released_at", "released_at BIGINT"),
    (
        "batch_channels",
        "reserved",
        "reserved BIGINT NOT NULL DEFAULT 0",
    ),
];

/// One `exact` transaction, one grant: the gate records it under the reference in its
/// Memo, the facilitator under its message hash, and both keys must not buy twice.
const EXACT_TRANSACTIONS: &str = "CREATE UNIQUE INDEX IF NOT EXISTS grants_exact_transaction
    ON grants (transaction_signature) WHERE scheme = 'exact'";

/// Where a reference stands in the grants table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Standing {
    /// It has bought nothing yet.
    Open,
    /// It has bought a request.
    Granted,
    /// Its grant was given back: its payment may buy the request again, presented by
    /// `payer` (with the payer's proof), since anyone can read the payment on chain.
    Released { payer: String },
}

/// Leases on submitting a sponsored payment: one submission per reference at a time,
/// across replicas.
const SUBMISSIONS: &str = "CREATE TABLE IF NOT EXISTS submissions (
    reference TEXT PRIMARY KEY,
    held_until BIGINT NOT NULL
)";

/// The channels of metered payments, one row each from before its `open` is submitted
/// until its rent is back: what the answer cost is committed here before it is settled,
/// so a crash at any step resumes from the row (the janitor, [`crate::tasks`]).
const CHANNELS: &str = "CREATE TABLE IF NOT EXISTS channels (
    channel TEXT PRIMARY KEY,
    reference TEXT NOT NULL UNIQUE,
    payer TEXT NOT NULL,
    mint TEXT NOT NULL,
    token_program TEXT NOT NULL,
    pay_to TEXT NOT NULL,
    max_amount TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    stage TEXT NOT NULL,
    amount TEXT,
    transaction_signature TEXT,
    updated_at BIGINT NOT NULL
)";

/// Where a metered payment's channel stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Its `open` was (or is being) submitted: the request is being served, or the
    /// server stopped before it said what the answer cost.
    Opened,
    /// What the answer cost is known (`amount`): settle it.
    Served,
    /// The seller was paid and the buyer refunded: only the channel's rent is left.
    Distributed,
    /// The rent is back (or the channel never opened): nothing is left.
    Closed,
}

impl Stage {
    fn name(self) -> &'static str {
        match self {
            Stage::Opened => "opened",
            Stage::Served => "served",
            Stage::Distributed => "distributed",
            Stage::Closed => "closed",
        }
    }

    fn named(name: &str) -> Result<Stage, StoreError> {
        match name {
            "opened" => Ok(Stage::Opened),
            "served" => Ok(Stage::Served),
            "distributed" => Ok(Stage::Distributed),
            "closed" => Ok(Stage::Closed),
            _ => Err(StoreError(format!(
                "corrupt stage {name:?} in the channels table"
            ))),
        }
    }
}

/// One metered payment's channel. Keys are base58; amounts base units.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelRecord {
    pub channel: String,
    pub reference: String,
    pub payer: String,
    pub mint: String,
    pub token_program: String,
    pub pay_to: String,
    pub max_amount: u64,
    /// The buyer's `expiresAt`: the voucher's expiry, and before it nobody may close
    /// the channel as abandoned.
    pub expires_at: i64,
    pub stage: Stage,
    /// What the answer cost, once known.
    pub amount: Option<u64>,
    /// The `distribute` that settled it.
    pub transaction: Option<String>,
    pub updated_at: i64,
}

impl GrantStore {
    /// Opens the store at `url` (`sqlite://path` creates the file; `postgres://…` for
    /// replicas sharing one store) and creates the table.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        install_default_drivers();
        let url = match url.strip_prefix("sqlite://") {
            Some(path) if !path.contains('?') => format!("sqlite://{path}?mode=rwc"),
            _ => url.to_string(),
        };
        let postgres = url.starts_with("postgres");
        let pool = AnyPoolOptions::new()
            // SQLite writes one transaction at a time, and a connection that finds the
            // file locked retries in sleeps of up to 100 ms: with one connection, requests
            // queue in order instead (a query takes well under a millisecond).
            .max_connections(if postgres { 8 } else { 1 })
            .connect(&url)
            .await?;
        if postgres {
            // Replicas starting together would race on CREATE TABLE: one at a time.
            let mut tx = pool.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock(402)")
                .execute(&mut *tx)
                .await?;
            sqlx::query(SCHEMA).execute(&mut *tx).await?;
            sqlx::query(SUBMISSIONS).execute(&mut *tx).await?;
            sqlx::query(CHANNELS).execute(&mut *tx).await?;
            sqlx::query(batch::BATCH_CHANNELS).execute(&mut *tx).await?;
            sqlx::query(batch::BATCH_BINDINGS).execute(&mut *tx).await?;
            sqlx::query(batch::BATCH_OPERATIONS)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        } else {
            // The write-ahead log: a commit is one append and one fsync (synchronous stays
            // FULL, so a grant that was answered survives a crash), not a journal file
            // written, synced and deleted each time.
            sqlx::query("PRAGMA journal_mode=WAL")
                .execute(&pool)
                .await?;
            sqlx::query(SCHEMA).execute(&pool).await?;
            sqlx::query(SUBMISSIONS).execute(&pool).await?;
            sqlx::query(CHANNELS).execute(&pool).await?;
            sqlx::query(batch::BATCH_CHANNELS).execute(&pool).await?;
            sqlx::query(batch::BATCH_BINDINGS).execute(&pool).await?;
            sqlx::query(batch::BATCH_OPERATIONS).execute(&pool).await?;
        }
        add_columns(&pool, postgres).await?;
        index_exact_transactions(&pool, postgres).await?;
        Ok(GrantStore {
            pool,
            committer: Default::default(),
            voucher_commits: Default::default(),
        })
    }

    /// Records `grant` unless its reference has one already, or its `exact` transaction
    /// bought a request under another key. A grant that was given back is taken again
    /// only by `proven_payer`, its payer, whose proof the caller checked. `true` when this
    /// call recorded it: the caller may serve the request.
    pub async fn try_grant(
        &self,
        grant: &Grant,
        proven_payer: Option<&str>,
    ) -> Result<bool, StoreError> {
        let recorded = sqlx::query(
            "INSERT INTO grants (reference, method, path, payer, amount, mint, receipt, transaction_signature, granted_at, scheme)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (reference) DO UPDATE SET method = excluded.method, path = excluded.path,
               payer = excluded.payer, amount = excluded.amount, mint = excluded.mint,
               receipt = excluded.receipt, transaction_signature = excluded.transaction_signature,
               granted_at = excluded.granted_at, scheme = excluded.scheme, released_at = NULL
             WHERE grants.released_at IS NOT NULL AND grants.payer = $11",
        )
        .bind(&grant.reference)
        .bind(&grant.method)
        .bind(&grant.path)
        .bind(&grant.payer)
        // u64 does not fit every SQL integer type: stored exactly as text.
        .bind(grant.amount.to_string())
        .bind(&grant.mint)
        // NOT NULL in tables made before `exact`: empty for none.
        .bind(grant.receipt.clone().unwrap_or_default())
        .bind(&grant.transaction)
        .bind(grant.granted_at)
        .bind(&grant.scheme)
        .bind(proven_payer)
        .execute(&self.pool)
        .await;
        // A conflict: the same `exact` transaction holds a grant under another key.
        inserted(recorded)
    }

    /// Whether the `exact` transaction `signature` bought a request under a key other than
    /// `key` (checked before it is settled again).
    pub async fn exact_settled_elsewhere(
        &self,
        signature: &str,
        key: &str,
    ) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT 1 FROM grants WHERE scheme = 'exact' AND transaction_signature = $1 AND reference <> $2",
        )
        .bind(signature)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// Takes the lease on submitting `reference`'s payment until `held_until` (unix
    /// seconds), unless another request holds it at `now`. `true` when taken: only then
    /// may the fee payer co-sign.
    pub async fn lease_submission(
        &self,
        reference: &str,
        now: i64,
        held_until: i64,
    ) -> Result<bool, StoreError> {
        let taken = sqlx::query(
            "INSERT INTO submissions (reference, held_until) VALUES ($1, $2)
             ON CONFLICT (reference) DO UPDATE SET held_until = excluded.held_until
             WHERE submissions.held_until < $3",
        )
        .bind(reference)
        .bind(held_until)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(taken.rows_affected() == 1)
    }

    /// Ends a lease taken with [`GrantStore::lease_submission`].
    pub async fn end_submission(&self, reference: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM submissions WHERE reference = $1")
            .bind(reference)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Whether `reference` has bought a request, or had its grant given back.
    pub async fn standing(&self, reference: &str) -> Result<Standing, StoreError> {
        use sqlx::Row;
        let row = sqlx::query("SELECT payer, released_at FROM grants WHERE reference = $1")
            .bind(reference)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else {
            return Ok(Standing::Open);
        };
        let released_at: Option<i64> = row.try_get("released_at")?;
        Ok(match released_at {
            None => Standing::Granted,
            Some(_) => Standing::Released {
                payer: row.try_get("payer")?,
            },
        })
    }

    /// Gives the grant of `reference` back at `now`: the upstream failed, so its payer may
    /// present the same payment again until it expires.
    pub async fn release(&self, reference: &str, now: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE grants SET released_at = $2 WHERE reference = $1")
            .bind(reference)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The grant of `reference`, given back or not, if it has one.
    pub async fn grant(&self, reference: &str) -> Result<Option<Grant>, StoreError> {
        let row = sqlx::query(&format!("{SELECT_GRANTS} WHERE reference = $1"))
            .bind(reference)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(grant_of).transpose()
    }

    /// Records what a metered payment settled for in its grant: the amount charged and
    /// the `distribute` transaction.
    pub async fn settle_grant(
        &self,
        reference: &str,
        amount: u64,
        transaction: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE grants SET amount = $2, transaction_signature = $3 WHERE reference = $1",
        )
        .bind(reference)
        .bind(amount.to_string())
        .bind(transaction)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records a channel before its `open` is submitted. `false` when the channel or its
    /// reference has a row already: a channel serves one request.
    pub async fn open_channel(&self, record: &ChannelRecord) -> Result<bool, StoreError> {
        let recorded = sqlx::query(
            "INSERT INTO channels (channel, reference, payer, mint, token_program, pay_to, max_amount, expires_at, stage, amount, transaction_signature, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&record.channel)
        .bind(&record.reference)
        .bind(&record.payer)
        .bind(&record.mint)
        .bind(&record.token_program)
        .bind(&record.pay_to)
        .bind(record.max_amount.to_string())
        .bind(record.expires_at)
        .bind(record.stage.name())
        .bind(record.amount.map(|a| a.to_string()))
        .bind(&record.transaction)
        .bind(record.updated_at)
        .execute(&self.pool)
        .await;
        inserted(recorded)
    }

    /// Moves `channel` on to `stage` at `now`, with what the answer cost and the
    /// transaction that settled it when known; a channel never moves back.
    pub async fn advance_channel(
        &self,
        channel: &str,
        stage: Stage,
        amount: Option<u64>,
        transaction: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        // Fixed names, never input: the stages a channel may move on from.
        let from = match stage {
            Stage::Opened => "'opened'",
            Stage::Served => "'opened', 'served'",
            Stage::Distributed => "'opened', 'served', 'distributed'",
            Stage::Closed => "'opened', 'served', 'distributed', 'closed'",
        };
        sqlx::query(&format!(
            "UPDATE channels SET stage = $2, amount = COALESCE($3, amount),
               transaction_signature = COALESCE($4, transaction_signature), updated_at = $5
             WHERE channel = $1 AND stage IN ({from})"
        ))
        .bind(channel)
        .bind(stage.name())
        .bind(amount.map(|a| a.to_string()))
        .bind(transaction)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The channel recorded as `channel`, if any.
    pub async fn channel(&self, channel: &str) -> Result<Option<ChannelRecord>, StoreError> {
        let row = sqlx::query(&format!("{SELECT_CHANNELS} WHERE channel = $1"))
            .bind(channel)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(channel_of).transpose()
    }

    /// Every channel whose rent is not back yet, oldest first.
    pub async fn unclosed_channels(&self) -> Result<Vec<ChannelRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "{SELECT_CHANNELS} WHERE stage <> 'closed' ORDER BY updated_at, channel"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(channel_of).collect()
    }

    /// Every grant that serves a request (none given back), newest first: the
    /// merchant's revenue ledger.
    pub async fn grants(&self) -> Result<Vec<Grant>, StoreError> {
        let rows = sqlx::query(&format!(
            "{SELECT_GRANTS} WHERE released_at IS NULL ORDER BY granted_at DESC, reference"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(grant_of).collect()
    }
}

/// Whether an insert took its row: `false` when it changed nothing or a unique key
/// already held another row.
fn inserted(result: Result<sqlx::any::AnyQueryResult, sqlx::Error>) -> Result<bool, StoreError> {
    match result {
        Ok(done) => Ok(done.rows_affected() == 1),
        Err(sqlx::Error::Database(error)) if error.is_unique_violation() => Ok(false),
        Err(error) => Err(error.into()),
    }
}

/// Brings tables made by an older version up to date (under PostgreSQL's lock, as the
/// tables are made).
async fn add_columns(pool: &AnyPool, postgres: bool) -> Result<(), StoreError> {
    for (table, column, definition) in ADDED_COLUMNS {
        if sqlx::query(&format!("SELECT {column} FROM {table} WHERE 1 = 0"))
            .fetch_optional(pool)
            .await
            .is_ok()
        {
            continue;
        }
        let mut tx = pool.begin().await?;
        let add = if postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(402)")
                .execute(&mut *tx)
                .await?;
            format!("ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {definition}")
        } else {
            format!("ALTER TABLE {table} ADD COLUMN {definition}")
        };
        sqlx::query(&add).execute(&mut *tx).await?;
        tx.commit().await?;
    }
    Ok(())
}

/// Makes the index that keeps an `exact` transaction to one grant (under PostgreSQL's
/// lock, as the tables are made). A table in which a transaction bought two requests
/// already (possible before this index) cannot have it: the store refuses to open,
/// saying why, rather than run without the guard.
async fn index_exact_transactions(pool: &AnyPool, postgres: bool) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    if postgres {
        sqlx::query("SELECT pg_advisory_xact_lock(402)")
            .execute(&mut *tx)
            .await?;
    }
    match sqlx::query(EXACT_TRANSACTIONS).execute(&mut *tx).await {
        Ok(_) => {}
        Err(sqlx::Error::Database(error)) if error.is_unique_violation() => {
            return Err(StoreError(
                "the grants table has an exact transaction granted under two references: \
                 SELECT transaction_signature, COUNT(*) FROM grants WHERE scheme = 'exact' \
                 GROUP BY transaction_signature HAVING COUNT(*) > 1 lists them; keep one row \
                 of each"
                    .into(),
            ))
        }
        Err(error) => return Err(error.into()),
    }
    tx.commit().await?;
    Ok(())
}

const SELECT_GRANTS: &str = "SELECT reference, method, path, payer, amount, mint, receipt, transaction_signature, granted_at, scheme FROM grants";

const SELECT_CHANNELS: &str = "SELECT channel, reference, payer, mint, token_program, pay_to, max_amount, expires_at, stage, amount, transaction_signature, updated_at FROM channels";

fn channel_of(row: &sqlx::any::AnyRow) -> Result<ChannelRecord, StoreError> {
    use sqlx::Row;
    let units = |text: String| {
        text.parse()
            .map_err(|_| StoreError("corrupt amount in the channels table".into()))
    };
    let amount: Option<String> = row.try_get("amount")?;
    let stage: String = row.try_get("stage")?;
    Ok(ChannelRecord {
        channel: row.try_get("channel")?,
        reference: row.try_get("reference")?,
        payer: row.try_get("payer")?,
        mint: row.try_get("mint")?,
        token_program: row.try_get("token_program")?,
        pay_to: row.try_get("pay_to")?,
        max_amount: units(row.try_get("max_amount")?)?,
        expires_at: row.try_get("expires_at")?,
        stage: Stage::named(&stage)?,
        amount: amount.map(units).transpose()?,
        transaction: row.try_get("transaction_signature")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn grant_of(row: &sqlx::any::AnyRow) -> Result<Grant, StoreError> {
    use sqlx::Row;
    let amount: String = row.try_get("amount")?;
    let receipt: String = row.try_get("receipt")?;
    Ok(Grant {
        reference: row.try_get("reference")?,
        method: row.try_get("method")?,
        path: row.try_get("path")?,
        payer: row.try_get("payer")?,
        amount: amount
            .parse()
            .map_err(|_| StoreError("corrupt amount in the grants table".into()))?,
        mint: row.try_get("mint")?,
        scheme: row.try_get("scheme")?,
        receipt: Some(receipt).filter(|r| !r.is_empty()),
        transaction: row.try_get("transaction_signature")?,
        granted_at: row.try_get("granted_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(reference: &str) -> Grant {
        Grant {
            reference: reference.into(),
            method: "GET".into(),
            path: "/demo".into(),
            payer: "payer".into(),
            amount: u64::MAX,
            mint: "mint".into(),
            scheme: "receipt".into(),
            receipt: Some("receipt".into()),
            transaction: Some("sig".into()),
            granted_at: 1,
        }
    }

    async fn temp_store() -> (GrantStore, std::path::PathBuf) {
        let mut nonce = [0u8; 8];
        getrandom::getrandom(&mut nonce).unwrap();
        let dir = std::env::temp_dir().join(format!("x402-store-{}", hex::encode(nonce)));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("grants.db");
        (
            GrantStore::connect(&format!("sqlite://{}", path.display()))
                .await
                .unwrap(),
            path,
        )
    }

    #[tokio::test]
    async fn a_reference_is_granted_once_until_released_and_survives_a_reopen() {
        let (store, path) = temp_store().await;
        assert!(store.try_grant(&grant("r1"), None).await.unwrap());
        assert!(
            !store.try_grant(&grant("r1"), None).await.unwrap(),
            "second grant refused"
        );
        assert_eq!(store.standing("r1").await.unwrap(), Standing::Granted);
        assert!(
            std::path::Path::new(&format!("{}-wal", path.display())).exists(),
            "commits go to the write-ahead log"
        );
        let (synchronous,): (i64,) = sqlx::query_as("PRAGMA synchronous")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(synchronous, 2, "FULL: each commit is synced");
        drop(store);

        let reopened = GrantStore::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        assert_eq!(
            reopened.standing("r1").await.unwrap(),
            Standing::Granted,
            "grants outlive the process"
        );
        assert_eq!(
            reopened.grants().await.unwrap(),
            [grant("r1")],
            "u64::MAX round-trips"
        );
        reopened.release("r1", 2).await.unwrap();
        assert_eq!(
            reopened.standing("r1").await.unwrap(),
            Standing::Released {
                payer: "payer".into()
            }
        );
        assert!(
            reopened.grants().await.unwrap().is_empty(),
            "serves nothing"
        );
        assert!(
            !reopened.try_grant(&grant("r1"), None).await.unwrap(),
            "given back, it is taken again by its payer only"
        );
        assert!(!reopened
            .try_grant(&grant("r1"), Some("observer"))
            .await
            .unwrap());
        assert!(
            reopened
                .try_grant(&grant("r1"), Some("payer"))
                .await
                .unwrap(),
            "granted again to its payer after release"
        );
        assert_eq!(reopened.standing("r1").await.unwrap(), Standing::Granted);
        assert!(!reopened
            .try_grant(&grant("r1"), Some("payer"))
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn an_exact_transaction_buys_one_request_whatever_its_key() {
        let (store, _) = temp_store().await;
        let exact = |reference: &str, transaction: &str| Grant {
            scheme: "exact".into(),
            receipt: None,
            transaction: Some(transaction.into()),
            ..grant(reference)
        };
        assert!(store.try_grant(&exact("memo", "tx"), None).await.unwrap());
        assert!(store.exact_settled_elsewhere("tx", "hash").await.unwrap());
        assert!(!store.exact_settled_elsewhere("tx", "memo").await.unwrap());
        assert!(
            !store.try_grant(&exact("hash", "tx"), None).await.unwrap(),
            "the same transaction under the facilitator's key"
        );
        assert!(store.try_grant(&exact("other", "tx2"), None).await.unwrap());
        // `receipt` rows are not bound by their (buyer-supplied) signature.
        assert!(store.try_grant(&grant("a"), None).await.unwrap());
        assert!(store.try_grant(&grant("b"), None).await.unwrap());
    }

    #[tokio::test]
    async fn a_table_from_before_exact_gains_its_scheme_column_and_exact_grants_have_no_receipt() {
        let (store, path) = temp_store().await;
        drop(store);
        std::fs::remove_file(&path).unwrap();
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let old = AnyPoolOptions::new().connect(&url).await.unwrap();
        sqlx::query(&SCHEMA.replace(
            ",\n    scheme TEXT NOT NULL DEFAULT 'receipt',\n    released_at BIGINT",
            "",
        ))
        .execute(&old)
        .await
        .unwrap();
        sqlx::query("INSERT INTO grants VALUES ('old', 'GET', '/demo', 'payer', '18446744073709551615', 'mint', 'receipt', 'sig', 1)")
            .execute(&old)
            .await
            .unwrap();
        old.close().await;

        let store = GrantStore::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        assert_eq!(store.grant("old").await.unwrap(), Some(grant("old")));
        let exact = Grant {
            scheme: "exact".into(),
            receipt: None,
            ..grant("new")
        };
        assert!(store.try_grant(&exact, None).await.unwrap());
        assert_eq!(store.grant("new").await.unwrap(), Some(exact));
    }

    #[tokio::test]
    async fn a_table_where_one_exact_transaction_bought_twice_is_refused_with_the_reason() {
        let (store, path) = temp_store().await;
        sqlx::query("DROP INDEX grants_exact_transaction")
            .execute(&store.pool)
            .await
            .unwrap();
        for reference in ["memo", "hash"] {
            let twice = Grant {
                scheme: "exact".into(),
                receipt: None,
                transaction: Some("tx".into()),
                ..grant(reference)
            };
            assert!(store.try_grant(&twice, None).await.unwrap());
        }
        drop(store);
        let refused = GrantStore::connect(&format!("sqlite://{}", path.display()))
            .await
            .err()
            .expect("refused to open without the guard");
        assert!(
            refused.to_string().contains("granted under two references"),
            "{refused}"
        );
    }

    #[tokio::test]
    async fn concurrent_grants_of_one_reference_give_exactly_one_winner() {
        let (store, _) = temp_store().await;
        let attempts = (0..50).map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.try_grant(&grant("race"), None).await.unwrap() })
        });
        let winners = futures_util::future::join_all(attempts)
            .await
            .into_iter()
            .filter(|won| *won.as_ref().unwrap())
            .count();
        assert_eq!(winners, 1);
    }

    #[tokio::test]
    async fn one_submission_lease_per_reference_until_it_ends_or_lapses() {
        let (store, _path) = temp_store().await;
        assert!(store.lease_submission("r", 100, 160).await.unwrap());
        assert!(
            !store.lease_submission("r", 120, 180).await.unwrap(),
            "held"
        );
        assert!(store.lease_submission("other", 120, 180).await.unwrap());
        assert!(
            store.lease_submission("r", 161, 220).await.unwrap(),
            "lapsed"
        );
        store.end_submission("r").await.unwrap();
        assert!(
            store.lease_submission("r", 162, 222).await.unwrap(),
            "ended"
        );
    }

    #[tokio::test]
    async fn an_unreachable_store_is_an_error_that_hides_its_url() {
        let error = GrantStore::connect("sqlite:///nonexistent-dir/secret-name/grants.db")
            .await
            .err()
            .unwrap();
        assert!(!error.to_string().contains("secret-name"), "{error}");
    }
}
