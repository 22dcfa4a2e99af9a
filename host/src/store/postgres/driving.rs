//! Orders being driven, shared by replicas: a lease row (`plinth_leases`, name
//! `order/{id}`) per order a replica's checkout or reconciler is working on, renewed by
//! one background task per process and deleted when the work ends. A replica that dies
//! stops renewing; its orders are free again [`LEASE`] later and another replica's
//! reconciler settles them. Nobody takes over an order whose lease is live, so one order
//! is never driven by two replicas at once.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::Pg;
use crate::store::StoreError;

/// How long a lease outlives its last renewal.
pub const LEASE: Duration = Duration::from_secs(20);
/// How often the held leases are renewed (well inside [`LEASE`]: two renewals may fail
/// before one lapses).
const RENEW_EVERY: Duration = Duration::from_secs(5);

const PREFIX: &str = "order/";

pub struct Driving {
    pg: Pg,
    /// This process, as a lease holder.
    holder: String,
    /// The leases held, with how many tasks of this process hold each (a retry waiting
    /// on a running checkout holds it too): the row goes when the last lets go.
    held: Mutex<HashMap<String, usize>>,
}

impl Driving {
    /// Starts the renewing task (it ends when the last `Arc` is dropped). `replica` is
    /// this replica's stable name (the holder of its leases).
    pub fn start(pg: &Pg, replica: &str) -> Arc<Self> {
        let this = Arc::new(Self {
            pg: pg.clone(),
            holder: replica.to_string(),
            held: Mutex::default(),
        });
        let weak = Arc::downgrade(&this);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(RENEW_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                let Some(this) = weak.upgrade() else { return };
                if let Err(e) = this.renew().await {
                    tracing::warn!(error = %e, "renewing order leases failed");
                }
            }
        });
        this
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the lease of `order_id` unless another live replica holds it.
    pub async fn take(&self, order_id: &str) -> Result<bool, StoreError> {
        let name = format!("{PREFIX}{order_id}");
        let taken = super::leases::take(&self.pg, &name, &self.holder, LEASE).await?;
        if taken {
            *self.held().entry(name).or_default() += 1;
        }
        Ok(taken)
    }

    /// Ends this process's lease of `order_id` (in a task of its own: callers may be
    /// unwinding). A failure only means it lapses after [`LEASE`].
    pub fn give_back(self: &Arc<Self>, order_id: &str) {
        let name = format!("{PREFIX}{order_id}");
        {
            let mut held = self.held();
            match held.get_mut(&name) {
                Some(n) if *n > 1 => {
                    *n -= 1;
                    return;
                }
                Some(_) => {
                    held.remove(&name);
                }
                None => return,
            }
        }
        let this = self.clone();
        tokio::spawn(async move {
            let done = sqlx::query("DELETE FROM plinth_leases WHERE name = $1 AND holder = $2")
                .bind(&name)
                .bind(&this.holder)
                .execute(this.pg.pool())
                .await;
            if let Err(e) = done {
                tracing::warn!(lease = %name, error = %e, "giving an order lease back failed; it will lapse");
            }
        });
    }

    /// The orders other live replicas drive now.
    pub async fn driven_elsewhere(&self) -> Result<HashSet<String>, StoreError> {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM plinth_leases WHERE name LIKE 'order/%' AND expires_at > now() AND holder <> $1",
        )
        .bind(&self.holder)
        .fetch_all(self.pg.pool())
        .await?;
        Ok(names
            .into_iter()
            .filter_map(|n| n.strip_prefix(PREFIX).map(str::to_string))
            .collect())
    }

    /// Drops the leases this replica's previous life held (it crashed holding them): its
    /// orders are free for the start-up pass at once instead of after [`LEASE`].
    pub async fn forget_previous_life(&self) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM plinth_leases WHERE holder = $1 AND name LIKE 'order/%'")
            .bind(&self.holder)
            .execute(self.pg.pool())
            .await?;
        Ok(done.rows_affected())
    }

    async fn renew(&self) -> Result<(), StoreError> {
        if self.held().is_empty() {
            return Ok(());
        }
        sqlx::query(
            "UPDATE plinth_leases SET expires_at = now() + $2 * interval '1 millisecond'
              WHERE holder = $1 AND name LIKE 'order/%'",
        )
        .bind(&self.holder)
        .bind(LEASE.as_millis() as i64)
        .execute(self.pg.pool())
        .await?;
        Ok(())
    }
}
