//! Grants: one row per reference that has bought a request. The unique key on the
//! reference is what makes a payment serve exactly one request, however many requests
//! race with it. The table doubles as the merchant's revenue ledger.
//!
//! SQL through sqlx's `Any` driver: a SQLite file by default, PostgreSQL by URL.

use sqlx::any::{install_default_drivers, AnyPoolOptions};
use sqlx::AnyPool;

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
    scheme TEXT NOT NULL DEFAULT 'receipt'
)";

/// A grants table from before the `exact` scheme has no `scheme` column: every row in it
/// was paid in `receipt`.
const ADD_SCHEME: &str = "ALTER TABLE grants ADD COLUMN scheme TEXT NOT NULL DEFAULT 'receipt'";

/// Leases on submitting a sponsored payment: one submission per reference at a time,
/// across replicas.
const SUBMISSIONS: &str = "CREATE TABLE IF NOT EXISTS submissions (
    reference TEXT PRIMARY KEY,
    held_until BIGINT NOT NULL
)";

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
        }
        add_scheme_column(&pool, postgres).await?;
        Ok(GrantStore { pool })
    }

    /// Records `grant` unless its reference has one already. `true` when this call
    /// recorded it: the caller may serve the request.
    pub async fn try_grant(&self, grant: &Grant) -> Result<bool, StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO grants (reference, method, path, payer, amount, mint, receipt, transaction_signature, granted_at, scheme)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (reference) DO NOTHING",
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
        .execute(&self.pool)
        .await?;
        Ok(inserted.rows_affected() == 1)
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

    /// Whether `reference` has bought a request already.
    pub async fn is_granted(&self, reference: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT 1 FROM grants WHERE reference = $1")
            .bind(reference)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// Gives the reference back: the upstream failed, so the same receipt may be used
    /// again until it expires.
    pub async fn release(&self, reference: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM grants WHERE reference = $1")
            .bind(reference)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The grant of `reference`, if it has one.
    pub async fn grant(&self, reference: &str) -> Result<Option<Grant>, StoreError> {
        let row = sqlx::query(&format!("{SELECT_GRANTS} WHERE reference = $1"))
            .bind(reference)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(grant_of).transpose()
    }

    /// Every grant, newest first: the merchant's revenue ledger.
    pub async fn grants(&self) -> Result<Vec<Grant>, StoreError> {
        let rows = sqlx::query(&format!(
            "{SELECT_GRANTS} ORDER BY granted_at DESC, reference"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(grant_of).collect()
    }
}

/// Brings a grants table from before the `scheme` column up to date (under PostgreSQL's
/// lock, as the tables are made).
async fn add_scheme_column(pool: &AnyPool, postgres: bool) -> Result<(), StoreError> {
    if sqlx::query("SELECT scheme FROM grants WHERE 1 = 0")
        .fetch_optional(pool)
        .await
        .is_ok()
    {
        return Ok(());
    }
    let mut tx = pool.begin().await?;
    if postgres {
        sqlx::query("SELECT pg_advisory_xact_lock(402)")
            .execute(&mut *tx)
            .await?;
        sqlx::query(&ADD_SCHEME.replace("ADD COLUMN", "ADD COLUMN IF NOT EXISTS"))
            .execute(&mut *tx)
            .await?;
    } else {
        sqlx::query(ADD_SCHEME).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

const SELECT_GRANTS: &str = "SELECT reference, method, path, payer, amount, mint, receipt, transaction_signature, granted_at, scheme FROM grants";

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
        assert!(store.try_grant(&grant("r1")).await.unwrap());
        assert!(
            !store.try_grant(&grant("r1")).await.unwrap(),
            "second grant refused"
        );
        assert!(store.is_granted("r1").await.unwrap());
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
        assert!(
            reopened.is_granted("r1").await.unwrap(),
            "grants outlive the process"
        );
        assert_eq!(
            reopened.grants().await.unwrap(),
            [grant("r1")],
            "u64::MAX round-trips"
        );
        reopened.release("r1").await.unwrap();
        assert!(!reopened.is_granted("r1").await.unwrap());
        assert!(
            reopened.try_grant(&grant("r1")).await.unwrap(),
            "granted again after release"
        );
    }

    #[tokio::test]
    async fn a_table_from_before_exact_gains_its_scheme_column_and_exact_grants_have_no_receipt() {
        let (store, path) = temp_store().await;
        drop(store);
        std::fs::remove_file(&path).unwrap();
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let old = AnyPoolOptions::new().connect(&url).await.unwrap();
        sqlx::query(&SCHEMA.replace(",\n    scheme TEXT NOT NULL DEFAULT 'receipt'", ""))
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
        assert!(store.try_grant(&exact).await.unwrap());
        assert_eq!(store.grant("new").await.unwrap(), Some(exact));
    }

    #[tokio::test]
    async fn concurrent_grants_of_one_reference_give_exactly_one_winner() {
        let (store, _) = temp_store().await;
        let attempts = (0..50).map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.try_grant(&grant("race")).await.unwrap() })
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
