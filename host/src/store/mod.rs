//! Storage: sled behind small traits, one tree per area, and group-committed flushes.
//!
//! sled 0.34 only makes writes durable on `flush`; [`Storage::flush`] shares one flush
//! among every request waiting for durability at the same time (group commit), on the
//! blocking pool, never on the async runtime.

mod accounts;
mod catalog;
mod contacts;
mod group_commit;
mod kv;
mod orders;
mod sled_kv;

use std::path::Path;
use std::sync::Arc;

pub use accounts::{
    AccountError, AccountStore, LinkedIdentity, Role, SessionRecord, SledAccounts, TokenHash, UserRecord,
};
pub use catalog::{CatalogStore, CatalogStoreError, ProductRecord, SledCatalog};
pub use contacts::{ContactRecord, ContactStore, SledContacts};
pub use group_commit::GroupCommit;
pub use kv::{KvBackend, KvError, PluginKv};
pub use orders::{
    Address, Claim, IdempotencyRecord, OrderAdjustment, OrderLine, OrderRecord, OrderStatus, Payment,
    ReserveError, Shipment, SledOrders, StoredResponse, Transition,
};
pub use sled_kv::SledKv;

use crate::config::StorageConfig;
use crate::domain::PluginName;

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
}

/// The process's database.
#[derive(Clone)]
pub struct Storage {
    db: Arc<sled::Db>,
    commits: Arc<GroupCommit>,
}

impl Storage {
    /// Opens (or creates) the database under `dir`.
    ///
    /// A kill during sled start-up can leave a half-written `snap.*.generating` file
    /// that makes the next open fail with `Corruption` (fixed upstream after 0.34.7,
    /// never released); such files are never valid, so they are removed first.
    pub fn open(dir: &Path, cfg: &StorageConfig) -> Result<Self, StoreError> {
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
            commits: Arc::new(GroupCommit::new(&db)),
            db,
        })
    }

    /// The key-value store of one plugin: its own tree, nobody else's.
    pub fn plugin_kv(&self, plugin: &PluginName, value_cap: u64, quota: u64) -> Result<PluginKv, StoreError> {
        let tree = self.db.open_tree(format!("plugin-kv/{plugin}"))?;
        Ok(PluginKv::new(Arc::new(SledKv::new(tree)), value_cap, quota)?)
    }

    /// Users and sessions.
    pub fn accounts(&self) -> Result<SledAccounts, StoreError> {
        SledAccounts::open(&self.db)
    }

    /// Products and stock.
    pub fn catalog(&self) -> Result<SledCatalog, StoreError> {
        SledCatalog::open(&self.db)
    }

    /// Orders, stock reservations and idempotency records.
    pub fn orders(&self) -> Result<SledOrders, StoreError> {
        SledOrders::open(&self.db)
    }

    /// Everyone's contacts (each user sees only their own prefix).
    pub fn contacts(&self) -> Result<SledContacts, StoreError> {
        SledContacts::open(&self.db)
    }

    /// Waits until every write made before this call is on disk. Concurrent callers
    /// share flushes.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.commits.flush().await
    }

    /// Flushes synchronously; for shutdown and CLI commands, not for request handlers.
    pub fn flush_blocking(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    /// How many flushes the group commit has run (for metrics and tests).
    pub fn flushes(&self) -> u64 {
        self.commits.flushes()
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
