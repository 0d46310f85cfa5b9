//! `batch-settlement` channels, one row each from before the `open` is submitted until
//! the channel is closed. The row holds what the seller accepted (`charged`, the
//! cumulative amount, and the buyer's voucher signature for it): a voucher is accepted by
//! one conditional update that moves `charged` from exactly the previous amount, so two
//! requests (or two replicas sharing PostgreSQL) can never accept the same increment,
//! and a request is served only once its voucher is committed. Claims read the row, and
//! record what the chain settled (`claimed`) and paid out (`paid`).
//!
//! Amounts are `BIGINT` so that the conditions compare them as numbers: a deposit above
//! `i64::MAX` base units is refused before it is recorded.

use sqlx::Row;

use super::{inserted, GrantStore, StoreError};

pub(super) const BATCH_CHANNELS: &str = "CREATE TABLE IF NOT EXISTS batch_channels (
    channel TEXT PRIMARY KEY,
    config TEXT NOT NULL,
    fee_payer TEXT NOT NULL,
    token_program TEXT NOT NULL,
    deposit BIGINT NOT NULL,
    charged BIGINT NOT NULL,
    signature TEXT,
    previous_charged BIGINT NOT NULL,
    previous_signature TEXT,
    claimed BIGINT NOT NULL,
    paid BIGINT NOT NULL,
    status TEXT NOT NULL,
    requests BIGINT NOT NULL,
    active_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    reserved BIGINT NOT NULL DEFAULT 0
)";

/// The server mode's requests, one row each from its reservation (its ceiling held
/// against the deposit) until it completed (charged what the answer cost, and the
/// operator's voucher for the new total recorded in its channel's row) or was released:
/// a request identifier is accepted once per channel, running or done.
pub(super) const BATCH_OPERATIONS: &str = "CREATE TABLE IF NOT EXISTS batch_operations (
    channel TEXT NOT NULL,
    request_id TEXT NOT NULL,
    ceiling BIGINT NOT NULL,
    charged BIGINT,
    cumulative BIGINT,
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (channel, request_id)
)";

/// The channels this verifier opened as a facilitator for other sellers, each bound at
/// its `open` to the seller's receiver authorizer and to the caller that opened it (first
/// writer wins): a seal or cooperative refund must come from that key, or that caller.
/// The seller holds the vouchers; this row holds what the facilitator needs to close the
/// channel, and when a deposit, claim or payout last touched it (the idle clock).
pub(super) const BATCH_BINDINGS: &str = "CREATE TABLE IF NOT EXISTS batch_bindings (
    network TEXT NOT NULL,
    channel TEXT NOT NULL,
    receiver_authorizer TEXT NOT NULL,
    caller TEXT NOT NULL,
    config TEXT NOT NULL,
    fee_payer TEXT NOT NULL,
    token_program TEXT NOT NULL,
    closed BIGINT NOT NULL,
    active_at BIGINT NOT NULL,
    PRIMARY KEY (network, channel)
)";

/// A channel opened for a facilitator caller. Keys are base58.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchBinding {
    /// CAIP-2.
    pub network: String,
    pub channel: String,
    /// The key whose close authorizations close it.
    pub receiver_authorizer: String,
    /// Who opened it: a hash of the caller's API key, never the key.
    pub caller: String,
    /// The channel configuration, as JSON.
    pub config: String,
    pub fee_payer: String,
    pub token_program: String,
    /// Distributed (or gone): nothing more to do but take the rent back.
    pub closed: bool,
    /// Unix seconds of the latest deposit, claim or payout.
    pub active_at: i64,
}

/// Where a `batch-settlement` channel stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchStatus {
    /// Its `open` was (or is being) submitted; no voucher is accepted yet.
    Opening,
    /// Vouchers are accepted.
    Open,
    /// A close was asked for (by the buyer's refund, on chain, or for idleness): no
    /// voucher is accepted; the latest is being settled and the rest refunded.
    Closing,
    /// Settled, refunded, done (its rent is the janitor's).
    Closed,
}

impl BatchStatus {
    fn name(self) -> &'static str {
        match self {
            BatchStatus::Opening => "opening",
            BatchStatus::Open => "open",
            BatchStatus::Closing => "closing",
            BatchStatus::Closed => "closed",
        }
    }

    fn named(name: &str) -> Result<BatchStatus, StoreError> {
        match name {
            "opening" => Ok(BatchStatus::Opening),
            "open" => Ok(BatchStatus::Open),
            "closing" => Ok(BatchStatus::Closing),
            "closed" => Ok(BatchStatus::Closed),
            _ => Err(StoreError(format!(
                "corrupt status {name:?} in the batch_channels table"
            ))),
        }
    }
}

/// One `batch-settlement` channel. Keys are base58; amounts base units.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchChannel {
    pub channel: String,
    /// The channel configuration the buyer stated, as JSON.
    pub config: String,
    /// The fee payer it was opened with: its payee and rent payer.
    pub fee_payer: String,
    pub token_program: String,
    pub deposit: u64,
    /// What the seller accepted, cumulatively.
    pub charged: u64,
    /// The buyer's voucher signature for `charged`, base58; none before the first.
    pub signature: Option<String>,
    /// What the chain has settled, as last read.
    pub claimed: u64,
    /// What the chain has paid out to the seller, as last read.
    pub paid: u64,
    pub status: BatchStatus,
    /// Paid requests accepted.
    pub requests: u64,
    /// Unix seconds of the latest accepted voucher (or the open).
    pub active_at: i64,
    pub updated_at: i64,
    /// The server mode: the ceilings of the requests in flight, held against the deposit.
    pub reserved: u64,
}

/// What a server-mode request's reservation came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reservation {
    /// Its ceiling is held: the channel's accepted total, deposit and claimed amount then.
    Held {
        charged: u64,
        deposit: u64,
        claimed: u64,
    },
    /// Its request identifier was presented on this channel before.
    Duplicate,
    /// The channel is not open here, or its deposit cannot hold the ceiling.
    Refused,
}

/// A server-mode request completed: the channel's new total and its operator voucher.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completion {
    pub cumulative: u64,
    pub signature: String,
    pub deposit: u64,
    pub claimed: u64,
}

/// An amount as the table holds it: a `BIGINT`.
fn stored(amount: u64) -> Result<i64, StoreError> {
    i64::try_from(amount).map_err(|_| StoreError("an amount above i64::MAX base units".into()))
}

impl GrantStore {
    /// Records a channel before its `open` is submitted. `false` when it has a row
    /// already, or was opened for a facilitator caller (the two never share a channel).
    pub async fn begin_batch_channel(&self, record: &BatchChannel) -> Result<bool, StoreError> {
        let recorded = sqlx::query(
            "INSERT INTO batch_channels (channel, config, fee_payer, token_program, deposit, charged, signature, previous_charged, claimed, paid, status, requests, active_at, updated_at, reserved)
             SELECT $1, $2, $3, $4, $5, $6, $7, $6, $8, $9, $10, $11, $12, $13, 0
             WHERE NOT EXISTS (SELECT 1 FROM batch_bindings WHERE channel = $1)",
        )
        .bind(&record.channel)
        .bind(&record.config)
        .bind(&record.fee_payer)
        .bind(&record.token_program)
        .bind(stored(record.deposit)?)
        .bind(stored(record.charged)?)
        .bind(&record.signature)
        .bind(stored(record.claimed)?)
        .bind(stored(record.paid)?)
        .bind(record.status.name())
        .bind(stored(record.requests)?)
        .bind(record.active_at)
        .bind(record.updated_at)
        .execute(&self.pool)
        .await;
        inserted(recorded)
    }

    /// Marks a channel whose `open` landed open, holding `deposit`, with its first
    /// voucher (`charged`, `signature`) accepted; in the server mode none yet (the first
    /// request is reserved next). `false` unless it was opening.
    pub async fn open_batch_channel(
        &self,
        channel: &str,
        deposit: u64,
        first: Option<(u64, &str)>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let (charged, signature) = first.unzip();
        let done = sqlx::query(
            "UPDATE batch_channels SET status = 'open', deposit = $2, charged = $3, signature = $4,
               previous_charged = 0, requests = requests + $6, active_at = $5, updated_at = $5
             WHERE channel = $1 AND status = 'opening'",
        )
        .bind(channel)
        .bind(stored(deposit)?)
        .bind(stored(charged.unwrap_or(0))?)
        .bind(signature)
        .bind(now)
        .bind(i64::from(first.is_some()))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Accepts a voucher: moves `charged` from exactly `from` to `to` with its
    /// `signature`, on an open channel whose deposit covers `to`, and, for a top-up, its
    /// deposit from exactly `deposit.0` to `deposit.1` (which the caller checked covers
    /// `to`) in the same statement; the voucher it replaces is kept, for
    /// [`GrantStore::revert_voucher`]. The channel's deposit and claimed amount when
    /// accepted; `None` when the channel is not there, not open, holds another amount (a
    /// stale or replayed voucher, or a concurrent request that won) or too small a
    /// deposit: nothing changed.
    ///
    /// Vouchers that arrive together are committed together: one transaction, one sync,
    /// for as many requests as are waiting (each its own conditional update, in the
    /// order they came). Each caller's answer comes once that transaction committed.
    pub async fn accept_voucher(
        &self,
        channel: &str,
        from: u64,
        to: u64,
        signature: &str,
        deposit: Option<(u64, u64)>,
        now: i64,
    ) -> Result<Option<(u64, u64)>, StoreError> {
        let acceptance = Acceptance {
            channel: channel.to_string(),
            from: stored(from)?,
            to: stored(to)?,
            signature: signature.to_string(),
            deposit: match deposit {
                Some((before, after)) => Some((stored(before)?, stored(after)?)),
                None => None,
            },
            now,
        };
        let committer = self
            .committer
            .get_or_init(|| Committer::start(self.pool.clone(), self.voucher_commits.clone()));
        let (answer, answered) = tokio::sync::oneshot::channel();
        committer
            .queue
            .send((acceptance, answer))
            .map_err(|_| StoreError("the voucher committer stopped".into()))?;
        answered
            .await
            .map_err(|_| StoreError("the voucher committer stopped".into()))?
    }

    /// Transactions that committed accepted vouchers, for `/metrics`.
    pub fn voucher_commits(&self) -> prometheus_client::metrics::counter::Counter {
        self.voucher_commits.clone()
    }

    /// The server mode: raises an open channel's deposit to `deposit`, what the chain
    /// holds once a `top_up` landed (never lowers it: two top-ups may land in any order).
    pub async fn raise_batch_deposit(
        &self,
        channel: &str,
        deposit: u64,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE batch_channels SET deposit = $2, updated_at = $3
             WHERE channel = $1 AND status = 'open' AND deposit < $2",
        )
        .bind(channel)
        .bind(stored(deposit)?)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The server mode: holds `ceiling` of an open channel's deposit for request
    /// `request_id`, recorded once per channel. The operation's row and the hold commit
    /// together, or neither does.
    pub async fn reserve_operation(
        &self,
        channel: &str,
        request_id: &str,
        ceiling: u64,
        now: i64,
    ) -> Result<Reservation, StoreError> {
        let mut tx = self.pool.begin().await?;
        let recorded = sqlx::query(
            "INSERT INTO batch_operations (channel, request_id, ceiling, status, created_at)
             VALUES ($1, $2, $3, 'reserved', $4)",
        )
        .bind(channel)
        .bind(request_id)
        .bind(stored(ceiling)?)
        .bind(now)
        .execute(&mut *tx)
        .await;
        if !inserted(recorded)? {
            return Ok(Reservation::Duplicate);
        }
        let held = sqlx::query(
            "UPDATE batch_channels SET reserved = reserved + $2, active_at = $3, updated_at = $3
             WHERE channel = $1 AND status = 'open' AND deposit - charged - reserved >= $2
             RETURNING charged, deposit, claimed",
        )
        .bind(channel)
        .bind(stored(ceiling)?)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = held else {
            // Not recorded either: the request never ran, and may be presented again.
            tx.rollback().await?;
            return Ok(Reservation::Refused);
        };
        let reservation = Reservation::Held {
            charged: amount(&row, "charged")?,
            deposit: amount(&row, "deposit")?,
            claimed: amount(&row, "claimed")?,
        };
        tx.commit().await?;
        Ok(reservation)
    }

    /// The server mode: completes request `request_id`, which cost `charge` of its
    /// `ceiling`: the channel's total moves up by `charge`, with `sign`'s voucher for the
    /// new total, the hold is let go, and the operation is recorded done, all in one
    /// transaction. `None` when the operation is not reserved (completed or released
    /// before).
    pub async fn complete_operation(
        &self,
        channel: &str,
        request_id: &str,
        ceiling: u64,
        charge: u64,
        sign: &(dyn Fn(u64) -> String + Sync),
        now: i64,
    ) -> Result<Option<Completion>, StoreError> {
        loop {
            let mut tx = self.pool.begin().await?;
            let done = sqlx::query(
                "UPDATE batch_operations SET status = 'done', charged = $3
                 WHERE channel = $1 AND request_id = $2 AND status = 'reserved'",
            )
            .bind(channel)
            .bind(request_id)
            .bind(stored(charge)?)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() != 1 {
                return Ok(None);
            }
            let row = sqlx::query("SELECT charged, status FROM batch_channels WHERE channel = $1")
                .bind(channel)
                .fetch_one(&mut *tx)
                .await?;
            let status: String = row.try_get("status")?;
            if status != BatchStatus::Open.name() {
                // Closed meanwhile (the buyer's close, sealed at what was charged): this
                // answer cannot be charged, so it is not given; its hold is let go.
                tx.rollback().await?;
                self.release_operation(channel, request_id, ceiling, now)
                    .await?;
                return Ok(None);
            }
            let before = amount(&row, "charged")?;
            let cumulative = before
                .checked_add(charge)
                .ok_or_else(|| StoreError("a channel's total overflowed".into()))?;
            let signature = sign(cumulative);
            // Moved by another completion since it was read: read it again.
            let moved = sqlx::query(
                "UPDATE batch_channels SET previous_charged = charged, previous_signature = signature,
                   charged = $3, signature = $4, reserved = reserved - $5, requests = requests + 1,
                   active_at = $6, updated_at = $6
                 WHERE channel = $1 AND charged = $2 AND reserved >= $5 AND status = 'open'
                 RETURNING deposit, claimed",
            )
            .bind(channel)
            .bind(stored(before)?)
            .bind(stored(cumulative)?)
            .bind(&signature)
            .bind(stored(ceiling)?)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = moved else {
                tx.rollback().await?;
                continue;
            };
            sqlx::query(
                "UPDATE batch_operations SET cumulative = $3 WHERE channel = $1 AND request_id = $2",
            )
            .bind(channel)
            .bind(request_id)
            .bind(stored(cumulative)?)
            .execute(&mut *tx)
            .await?;
            let completion = Completion {
                cumulative,
                signature,
                deposit: amount(&row, "deposit")?,
                claimed: amount(&row, "claimed")?,
            };
            tx.commit().await?;
            return Ok(Some(completion));
        }
    }

    /// The server mode: lets go of request `request_id`'s hold unserved (its answer
    /// failed): nothing is charged. `false` when it was not reserved.
    pub async fn release_operation(
        &self,
        channel: &str,
        request_id: &str,
        ceiling: u64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let released = sqlx::query(
            "UPDATE batch_operations SET status = 'released', charged = 0
             WHERE channel = $1 AND request_id = $2 AND status = 'reserved'",
        )
        .bind(channel)
        .bind(request_id)
        .execute(&mut *tx)
        .await?;
        if released.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE batch_channels SET reserved = reserved - $2, updated_at = $3
             WHERE channel = $1 AND reserved >= $2",
        )
        .bind(channel)
        .bind(stored(ceiling)?)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The server mode's holds taken before `before` (unix seconds) and never completed
    /// or released (a crash between a request and its answer): channel, request, ceiling.
    pub async fn stale_operations(
        &self,
        before: i64,
    ) -> Result<Vec<(String, String, u64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT channel, request_id, ceiling FROM batch_operations
             WHERE status = 'reserved' AND created_at < $1",
        )
        .bind(before)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get("channel")?,
                    row.try_get("request_id")?,
                    amount(row, "ceiling")?,
                ))
            })
            .collect()
    }

    /// Starts a close by the seller (a refund's, an idle channel's): an open channel with
    /// no request in flight stops accepting. `false` when it is not open, or a request
    /// is still held.
    pub async fn stop_batch_channel(&self, channel: &str, now: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE batch_channels SET status = 'closing', updated_at = $2
             WHERE channel = $1 AND status = 'open' AND reserved = 0",
        )
        .bind(channel)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Takes back the voucher accepted for `to` whose request was not served: the one it
    /// replaced stands again. `false` when another voucher was accepted since: that one
    /// stands.
    pub async fn revert_voucher(
        &self,
        channel: &str,
        to: u64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE batch_channels SET charged = previous_charged, signature = previous_signature,
               requests = requests - 1, updated_at = $3
             WHERE channel = $1 AND charged = $2 AND previous_charged < $2 AND status = 'open'",
        )
        .bind(channel)
        .bind(stored(to)?)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Moves a channel on to `status` (never back), from any of `from`. `false` when it
    /// was in none of them.
    pub async fn move_batch_channel(
        &self,
        channel: &str,
        from: &[BatchStatus],
        status: BatchStatus,
        now: i64,
    ) -> Result<bool, StoreError> {
        // Fixed names, never input.
        let from = from
            .iter()
            .map(|s| format!("'{}'", s.name()))
            .collect::<Vec<_>>()
            .join(", ");
        let done = sqlx::query(&format!(
            "UPDATE batch_channels SET status = $2, updated_at = $3
             WHERE channel = $1 AND status IN ({from})"
        ))
        .bind(channel)
        .bind(status.name())
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records what the chain settled and paid out of a channel, as read after a claim;
    /// the watermarks only move up.
    pub async fn record_batch_claim(
        &self,
        channel: &str,
        claimed: u64,
        paid: u64,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE batch_channels SET claimed = $2, paid = $3, updated_at = $4
             WHERE channel = $1 AND claimed <= $2 AND paid <= $3",
        )
        .bind(channel)
        .bind(stored(claimed)?)
        .bind(stored(paid)?)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The channel recorded as `channel`, if any.
    pub async fn batch_channel(&self, channel: &str) -> Result<Option<BatchChannel>, StoreError> {
        let row = sqlx::query(&format!("{SELECT_BATCH} WHERE channel = $1"))
            .bind(channel)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(batch_of).transpose()
    }

    /// Every channel not closed yet, least recently moved first.
    pub async fn unfinished_batch_channels(&self) -> Result<Vec<BatchChannel>, StoreError> {
        let rows = sqlx::query(&format!(
            "{SELECT_BATCH} WHERE status <> 'closed' ORDER BY updated_at, channel"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(batch_of).collect()
    }
}

impl GrantStore {
    /// Binds a channel about to be opened for a facilitator caller, unless it is bound
    /// already: the binding that stands (the first writer's), read back. None when the
    /// gate opened the channel itself (the two never share a channel).
    pub async fn bind_batch_channel(
        &self,
        binding: &BatchBinding,
    ) -> Result<Option<BatchBinding>, StoreError> {
        let bound = sqlx::query(
            "INSERT INTO batch_bindings (network, channel, receiver_authorizer, caller, config, fee_payer, token_program, closed, active_at)
             SELECT $1, $2, $3, $4, $5, $6, $7, 0, $8
             WHERE NOT EXISTS (SELECT 1 FROM batch_channels WHERE channel = $2)",
        )
        .bind(&binding.network)
        .bind(&binding.channel)
        .bind(&binding.receiver_authorizer)
        .bind(&binding.caller)
        .bind(&binding.config)
        .bind(&binding.fee_payer)
        .bind(&binding.token_program)
        .bind(binding.active_at)
        .execute(&self.pool)
        .await;
        inserted(bound)?;
        self.batch_binding(&binding.network, &binding.channel).await
    }

    /// The binding of `channel` on `network`, if it was opened for a facilitator caller.
    pub async fn batch_binding(
        &self,
        network: &str,
        channel: &str,
    ) -> Result<Option<BatchBinding>, StoreError> {
        let row = sqlx::query(&format!(
            "{SELECT_BINDING} WHERE network = $1 AND channel = $2"
        ))
        .bind(network)
        .bind(channel)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(binding_of).transpose()
    }

    /// Records a deposit, claim or payout of a bound channel at `now`: its idle clock
    /// starts again.
    pub async fn touch_batch_binding(
        &self,
        network: &str,
        channel: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE batch_bindings SET active_at = $3 WHERE network = $1 AND channel = $2 AND active_at < $3",
        )
        .bind(network)
        .bind(channel)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Marks a bound channel distributed (or gone).
    pub async fn close_batch_binding(
        &self,
        network: &str,
        channel: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE batch_bindings SET closed = 1 WHERE network = $1 AND channel = $2")
            .bind(network)
            .bind(channel)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Every channel on `network` ever opened for a facilitator caller, closed or not.
    pub async fn bound_channels(&self, network: &str) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT channel FROM batch_bindings WHERE network = $1")
            .bind(network)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| row.try_get("channel").map_err(StoreError::from))
            .collect()
    }

    /// Every bound channel on `network` not closed yet.
    pub async fn open_batch_bindings(
        &self,
        network: &str,
    ) -> Result<Vec<BatchBinding>, StoreError> {
        let rows = sqlx::query(&format!(
            "{SELECT_BINDING} WHERE network = $1 AND closed = 0 ORDER BY active_at, channel"
        ))
        .bind(network)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(binding_of).collect()
    }
}

const SELECT_BINDING: &str = "SELECT network, channel, receiver_authorizer, caller, config, fee_payer, token_program, closed, active_at FROM batch_bindings";

fn binding_of(row: &sqlx::any::AnyRow) -> Result<BatchBinding, StoreError> {
    let closed: i64 = row.try_get("closed")?;
    Ok(BatchBinding {
        network: row.try_get("network")?,
        channel: row.try_get("channel")?,
        receiver_authorizer: row.try_get("receiver_authorizer")?,
        caller: row.try_get("caller")?,
        config: row.try_get("config")?,
        fee_payer: row.try_get("fee_payer")?,
        token_program: row.try_get("token_program")?,
        closed: closed != 0,
        active_at: row.try_get("active_at")?,
    })
}

const SELECT_BATCH: &str = "SELECT channel, config, fee_payer, token_program, deposit, charged, signature, claimed, paid, status, requests, active_at, updated_at, reserved FROM batch_channels";

/// An amount column of `row`.
fn amount(row: &sqlx::any::AnyRow, column: &str) -> Result<u64, StoreError> {
    let value: i64 = row.try_get(column)?;
    u64::try_from(value)
        .map_err(|_| StoreError("corrupt amount in the batch_channels table".into()))
}

fn batch_of(row: &sqlx::any::AnyRow) -> Result<BatchChannel, StoreError> {
    let units = |column: &str| amount(row, column);
    let status: String = row.try_get("status")?;
    Ok(BatchChannel {
        channel: row.try_get("channel")?,
        config: row.try_get("config")?,
        fee_payer: row.try_get("fee_payer")?,
        token_program: row.try_get("token_program")?,
        deposit: units("deposit")?,
        charged: units("charged")?,
        signature: row.try_get("signature")?,
        claimed: units("claimed")?,
        paid: units("paid")?,
        status: BatchStatus::named(&status)?,
        requests: units("requests")?,
        active_at: row.try_get("active_at")?,
        updated_at: row.try_get("updated_at")?,
        reserved: units("reserved")?,
    })
}

/// One voucher to accept, as [`GrantStore::accept_voucher`] was asked.
struct Acceptance {
    channel: String,
    from: i64,
    to: i64,
    signature: String,
    deposit: Option<(i64, i64)>,
    now: i64,
}

type Answer = tokio::sync::oneshot::Sender<Result<Option<(u64, u64)>, StoreError>>;

/// The most vouchers one transaction commits.
const GROUP: usize = 256;

/// The task that commits waiting vouchers together.
pub(super) struct Committer {
    queue: tokio::sync::mpsc::UnboundedSender<(Acceptance, Answer)>,
}

impl Committer {
    fn start(pool: sqlx::AnyPool, commits: prometheus_client::metrics::counter::Counter) -> Self {
        let (queue, mut waiting) = tokio::sync::mpsc::unbounded_channel::<(Acceptance, Answer)>();
        tokio::spawn(async move {
            let mut group = Vec::with_capacity(GROUP);
            while waiting.recv_many(&mut group, GROUP).await > 0 {
                let outcome = commit(&pool, &group).await;
                if outcome.is_ok() {
                    commits.inc();
                }
                match outcome {
                    Ok(accepted) => {
                        for ((_, answer), accepted) in group.drain(..).zip(accepted) {
                            let _ = answer.send(Ok(accepted));
                        }
                    }
                    Err(error) => {
                        let text = error.to_string();
                        for (_, answer) in group.drain(..) {
                            let _ = answer.send(Err(StoreError(text.clone())));
                        }
                    }
                }
            }
        });
        Committer { queue }
    }
}

/// Accepts `group` in one transaction: what each acceptance came to, in order.
async fn commit(
    pool: &sqlx::AnyPool,
    group: &[(Acceptance, Answer)],
) -> Result<Vec<Option<(u64, u64)>>, StoreError> {
    const SET: &str = "previous_charged = charged, previous_signature = signature,
           charged = $3, signature = $4, requests = requests + 1";
    let mut tx = pool.begin().await?;
    let mut accepted = Vec::with_capacity(group.len());
    for (a, _) in group {
        let row = match a.deposit {
            None => {
                sqlx::query(&format!(
                    "UPDATE batch_channels SET {SET}, active_at = $5, updated_at = $5
                     WHERE channel = $1 AND status = 'open' AND charged = $2 AND deposit >= $3
                     RETURNING deposit, claimed"
                ))
                .bind(&a.channel)
                .bind(a.from)
                .bind(a.to)
                .bind(&a.signature)
                .bind(a.now)
                .fetch_optional(&mut *tx)
                .await?
            }
            Some((before, after)) => {
                sqlx::query(&format!(
                    "UPDATE batch_channels SET {SET}, deposit = $6, active_at = $7, updated_at = $7
                     WHERE channel = $1 AND status = 'open' AND charged = $2 AND deposit = $5
                     RETURNING deposit, claimed"
                ))
                .bind(&a.channel)
                .bind(a.from)
                .bind(a.to)
                .bind(&a.signature)
                .bind(before)
                .bind(after)
                .bind(a.now)
                .fetch_optional(&mut *tx)
                .await?
            }
        };
        accepted.push(match row {
            Some(row) => Some((amount(&row, "deposit")?, amount(&row, "claimed")?)),
            None => None,
        });
    }
    tx.commit().await?;
    Ok(accepted)
}
