//! Storage: one async trait per area, each with two backends. sled (the default) is
//! embedded, one tree per area, for one process; PostgreSQL (`postgres/`) is shared by
//! any number of replicas. [`Storage`] opens the configured one and hands out the
//! stores.
//!
//! sled 0.34 only makes writes durable on `flush`; [`Storage::flush`] shares one flush
//! among every request waiting for durability at the same time (group commit), on the
//! blocking pool, never on the async runtime. On PostgreSQL every store call commits
//! its own transaction, so there is nothing left to flush.

mod accounts;
mod catalog;
mod codec;
mod contacts;
pub mod copy;
mod group_commit;
mod idempotency;
mod kv;
mod orders;
pub mod postgres;
mod sled_kv;

use std::path::Path;
use std::sync::Arc;

pub use accounts::{
    AccountError, AccountStore, LinkedIdentity, Role, SessionRecord, SledAccounts, TokenHash, UserRecord,
};
pub use catalog::{CatalogStore, CatalogStoreError, ProductRecord, SledCatalog};
pub use contacts::{ContactRecord, ContactStore, SledContacts};
pub use group_commit::GroupCommit;
pub use idempotency::{
    Claim, ClaimKey, IdempotencyRecord, IdempotencyStore, NextAction, SledIdempotency, StoredResponse,
};
pub use kv::{KvBackend, KvError, PluginKv};
pub use orders::{
    OrderAdjustment, OrderFilter, OrderLine, OrderRecord, OrderStatus, OrderStore, Payment, ReserveError,
    Shipment, SledOrders, Transition,
};
pub use sled_kv::SledKv;

use crate::auth::oidc::pending::{MemoryPending, PendingStore};
use crate::auth::{LoginAttempts, LoginLimiter};
use crate::config::{RateLimits, StorageBackend, StorageConfig};
use crate::domain::PluginName;
use postgres::{
    Pg, PgAccounts, PgCatalog, PgContacts, PgIdempotency, PgKv, PgLoginAttempts, PgOrders, PgPending,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the database in {path}: {source}")]
    Open { path: String, source: sled::Error },
    #[error("storage I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("database error: {0}")]
    Sled(#[from] sled::Error),
    #[error("flush failed: {0}")]
    Flush(String),
    #[error("a stored record is unreadable: {0}")]
    Corrupt(String),
    /// A read-modify-write lost: the record changed (or went) since it was read. The
    /// caller reads it again; nothing was written.
    #[error("{0} changed meanwhile; nothing was written")]
    Conflict(String),
    /// The database kept refusing a transaction for contention (serialization failures,
    /// deadlocks) past the retry budget; nothing was written. Worth a retry later.
    #[error("the database is busy: {0}")]
    Busy(String),
    /// The database cannot be reached (connection refused or lost, pool timed out).
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// Any other error the database reported.
    #[error("database error: {0}")]
    Database(String),
}

/// The process's database.
#[derive(Clone)]
pub struct Storage {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Sled {
        db: Arc<sled::Db>,
        commits: Arc<GroupCommit>,
    },
    /// The shared database, and this replica's stable name (see [`replica_id`]).
    Postgres(Pg, String),
}

impl Storage {
    /// Opens the configured backend: sled under `dir` (created if need be), or the
    /// PostgreSQL database, whose migrations are applied first (one replica at a time).
    pub async fn open(dir: &Path, cfg: &StorageConfig) -> Result<Self, StoreError> {
        match &cfg.backend {
            StorageBackend::Sled => {
                let (dir, cfg) = (dir.to_path_buf(), cfg.clone());
                tokio::task::spawn_blocking(move || Self::open_sled(&dir, &cfg))
                    .await
                    .map_err(|e| StoreError::Flush(format!("open task failed: {e}")))?
            }
            StorageBackend::Postgres(pg) => {
                let replica = replica_id(dir)?;
                let pg = Pg::connect(pg).await?;
                postgres::migrate(&pg, Some(&replica)).await?;
                Ok(Self {
                    backend: Backend::Postgres(pg, replica),
                })
            }
        }
    }

    /// Opens (or creates) the sled database under `dir`.
    ///
    /// A kill during sled start-up can leave a half-written `snap.*.generating` file
    /// that makes the next open fail with `Corruption` (fixed upstream after 0.34.7,
    /// never released); such files are never valid, so they are removed first.
    pub fn open_sled(dir: &Path, cfg: &StorageConfig) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir)?;
        remove_unfinished_snapshots(dir)?;
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cfg.cache_mib << 20)
            .flush_every_ms(Some(cfg.flush_every_ms))
            .open()
            .map_err(|source| StoreError::Open {
                path: dir.display().to_string(),
                source,
            })?;
        let db = Arc::new(db);
        Ok(Self {
            backend: Backend::Sled {
                commits: Arc::new(GroupCommit::new(&db)),
                db,
            },
        })
    }

    /// Whether other processes may share this database (replicas): then what one
    /// process holds in memory (in-flight checkouts, claims) is not the whole truth.
    pub fn is_shared(&self) -> bool {
        matches!(self.backend, Backend::Postgres(..))
    }

    /// The shared database, if that is the backend.
    pub fn postgres(&self) -> Option<&Pg> {
        match &self.backend {
            Backend::Postgres(pg, _) => Some(pg),
            Backend::Sled { .. } => None,
        }
    }

    /// This replica's stable name on a shared database (the holder of its leases).
    pub fn replica(&self) -> Option<&str> {
        match &self.backend {
            Backend::Postgres(_, replica) => Some(replica),
            Backend::Sled { .. } => None,
        }
    }

    /// The key-value store of one plugin: its own namespace, nobody else's.
    pub async fn plugin_kv(
        &self,
        plugin: &PluginName,
        value_cap: u64,
        quota: u64,
    ) -> Result<PluginKv, StoreError> {
        let backend: Arc<dyn KvBackend> = match &self.backend {
            Backend::Sled { db, .. } => Arc::new(SledKv::new(db.open_tree(format!("plugin-kv/{plugin}"))?)?),
            Backend::Postgres(pg, _) => Arc::new(PgKv::open(pg, plugin.as_str()).await?),
        };
        Ok(PluginKv::new(backend, value_cap, quota))
    }

    /// Users and sessions.
    pub fn accounts(&self) -> Result<Arc<dyn AccountStore>, StoreError> {
        Ok(match &self.backend {
            Backend::Sled { db, .. } => Arc::new(SledAccounts::open(db)?),
            Backend::Postgres(pg, _) => Arc::new(PgAccounts::new(pg)),
        })
    }

    /// Products and stock.
    pub fn catalog(&self) -> Result<Arc<dyn CatalogStore>, StoreError> {
        Ok(match &self.backend {
            Backend::Sled { db, .. } => Arc::new(SledCatalog::open(db)?),
            Backend::Postgres(pg, _) => Arc::new(PgCatalog::new(pg)),
        })
    }

    /// Orders and stock reservations.
    pub fn orders(&self) -> Result<Arc<dyn OrderStore>, StoreError> {
        Ok(match &self.backend {
            Backend::Sled { db, .. } => Arc::new(SledOrders::open(db)?),
            Backend::Postgres(pg, _) => Arc::new(PgOrders::new(pg)),
        })
    }

    /// Checkouts' idempotency keys: claims and stored answers.
    pub fn idempotency(&self) -> Result<Arc<dyn IdempotencyStore>, StoreError> {
        Ok(match &self.backend {
            Backend::Sled { db, .. } => Arc::new(SledIdempotency::open(db)?),
            Backend::Postgres(pg, _) => Arc::new(PgIdempotency::new(pg)),
        })
    }

    /// Everyone's contacts (each user sees only their own prefix).
    pub fn contacts(&self) -> Result<Arc<dyn ContactStore>, StoreError> {
        Ok(match &self.backend {
            Backend::Sled { db, .. } => Arc::new(SledContacts::open(db)?),
            Backend::Postgres(pg, _) => Arc::new(PgContacts::new(pg)),
        })
    }

    /// Social logins in progress, at most `cap`: in this process's memory with sled
    /// (a restart forgets them), in the database with PostgreSQL (shared by replicas).
    pub fn pending_logins(&self, cap: usize) -> Box<dyn PendingStore> {
        match &self.backend {
            Backend::Sled { .. } => Box::new(MemoryPending::new(cap)),
            Backend::Postgres(pg, _) => Box::new(PgPending::new(pg, cap)),
        }
    }

    /// Where failed logins are counted: in this process with sled, in the database
    /// with PostgreSQL (replicas limit as one).
    pub fn login_attempts(&self, limits: RateLimits) -> Box<dyn LoginAttempts> {
        match &self.backend {
            Backend::Sled { .. } => Box::new(LoginLimiter::new(limits)),
            Backend::Postgres(pg, _) => Box::new(PgLoginAttempts::new(pg, limits)),
        }
    }

    /// Waits until every write made before this call is durable. Concurrent callers
    /// share sled flushes.
    pub async fn flush(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sled { commits, .. } => commits.flush().await,
            Backend::Postgres(..) => Ok(()),
        }
    }

    /// Flushes synchronously; for shutdown and CLI commands, not for request handlers.
    pub fn flush_blocking(&self) -> Result<(), StoreError> {
        if let Backend::Sled { db, .. } = &self.backend {
            db.flush()?;
        }
        Ok(())
    }

    /// How many flushes the group commit has run (for metrics and tests).
    pub fn flushes(&self) -> u64 {
        match &self.backend {
            Backend::Sled { commits, .. } => commits.flushes(),
            Backend::Postgres(..) => 0,
        }
    }

    /// Transactions the database made run again (contention), since start.
    pub fn retries(&self) -> u64 {
        self.postgres().map_or(0, Pg::retries)
    }
}

/// This replica's name as a lease holder, kept in `dir` (the data directory's `db`) so
/// that a replica restarted after a crash knows the leases its previous life held are
/// its own to take back at once, rather than waiting for them to lapse.
fn replica_id(dir: &Path) -> Result<String, StoreError> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("replica-id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_string()),
        _ => {
            let id = uuid::Uuid::new_v4().to_string();
            std::fs::write(&path, &id)?;
            Ok(id)
        }
    }
}

fn remove_unfinished_snapshots(dir: &Path) -> Result<(), std::io::Error> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            tracing::warn!(file = %name, "removing unfinished sled snapshot left by a crash");
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}
