//! The product catalog: the store holds the truth (products, stock), the search index
//! follows it through the store's change feed: every product write appends its sku at
//! the next feed position in the same transaction, and the index records in each commit
//! the position it reflects. A write here is made durable and indexed before it is
//! acknowledged (findable right after its 201, gone right after its delete); with
//! replicas on a shared database, each replica's follower polls the feed every
//! [`FOLLOW_EVERY`], so another replica's write is found within about that long.

mod input;
pub mod seed;

use std::sync::Arc;
use std::time::Duration;

pub use input::{NewProduct, ProductPatch};

use crate::auth::now_ms;
use crate::search::{SearchDoc, SearchError, SearchIndex, SearchQuery};
use crate::store::{CatalogStore, CatalogStoreError, ProductRecord, Storage, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    #[error("no such product")]
    NotFound,
    #[error("a product with this sku exists")]
    Exists,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Search(#[from] SearchError),
}

impl From<CatalogStoreError> for CatalogError {
    fn from(e: CatalogStoreError) -> Self {
        match e {
            CatalogStoreError::Exists => CatalogError::Exists,
            CatalogStoreError::Store(e) => CatalogError::Store(e),
        }
    }
}

/// A product with its current stock.
pub type Product = (ProductRecord, u64);

/// A page of search results.
pub struct SearchPage {
    pub hits: Vec<(Product, f32)>,
    pub more: bool,
}

pub struct Catalog {
    /// Searches running at once: two per core (one computing while the other is handed
    /// to or from the blocking pool). More would only thrash the CPU caches and stretch
    /// every search's latency; the rest wait their turn, in order.
    searching: Arc<tokio::sync::Semaphore>,
    store: Arc<dyn CatalogStore>,
    index: Arc<SearchIndex>,
    storage: Storage,
    /// Index updates run one at a time (this replica's writes and its follower).
    indexing: tokio::sync::Mutex<()>,
}

/// How often a replica on a shared database polls the change feed.
pub const FOLLOW_EVERY: Duration = Duration::from_millis(250);
/// Feed entries read per step.
const FEED_BATCH: usize = 1_000;
/// Feed entries kept behind the newest; a replica further behind rebuilds its index.
const FEED_KEEP: u64 = 100_000;

fn search_doc(p: &ProductRecord) -> SearchDoc<'_> {
    SearchDoc {
        sku: &p.sku,
        name: &p.name,
        description: &p.description,
        category: &p.category,
        price: p.price.amount,
    }
}

impl Catalog {
    /// Opens the catalog and brings the search index in line with the store: from the
    /// feed when the index knows its position and the feed still holds what came after
    /// it, else a full rebuild. Index work runs on the blocking pool.
    pub async fn open(storage: &Storage, index_dir: &std::path::Path) -> Result<Self, CatalogError> {
        let store: Arc<dyn CatalogStore> = storage.catalog()?;
        let dir = index_dir.to_path_buf();
        let index = Arc::new(blocking(move || SearchIndex::open(&dir).map_err(CatalogError::from)).await?);
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let catalog = Self {
            searching: Arc::new(tokio::sync::Semaphore::new(cores * 2)),
            store,
            index,
            storage: storage.clone(),
            indexing: tokio::sync::Mutex::new(()),
        };
        let skus = catalog.store.skus().await?;
        catalog.index.remember(skus.iter().map(String::as_str));
        let caught_up = catalog.catch_up().await?;
        if caught_up > 0 {
            tracing::info!(changes = caught_up, "search index caught up with the catalog");
        }
        Ok(catalog)
    }

    /// Applies the feed's changes after the index's position; rebuilds the index when
    /// it has no position, is ahead of the feed (another database) or behind what the
    /// feed still holds. Returns how many changes it applied.
    async fn catch_up(&self) -> Result<usize, CatalogError> {
        let _turn = self.indexing.lock().await;
        let head = self.store.feed_head().await?;
        // The common case of a poll: nothing new, one query.
        if self.index.applied_seq() == Some(head) {
            return Ok(0);
        }
        let floor = self.store.feed_floor().await?;
        let mut at = match self.index.applied_seq() {
            Some(at) if at >= floor && at <= head => at,
            _ => return self.rebuild(head).await,
        };
        let mut applied = 0;
        loop {
            let changes = self.store.changes_after(at, FEED_BATCH).await?;
            let Some(&(last, _)) = changes.last() else {
                return Ok(applied);
            };
            let mut skus: Vec<String> = changes.into_iter().map(|(_, sku)| sku).collect();
            skus.sort_unstable();
            skus.dedup();
            self.reindex(&skus, last).await?;
            applied += skus.len();
            at = last;
        }
    }

    /// Replaces the index with the whole catalog as of feed position `head` (read first:
    /// changes after it are applied again by the next catch-up, which is harmless).
    async fn rebuild(&self, head: u64) -> Result<usize, CatalogError> {
        let all = self.store.all().await?;
        let index = self.index.clone();
        let n = blocking(move || Ok(index.rebuild(all.iter().map(search_doc), head)?)).await?;
        tracing::info!(products = n, "search index rebuilt from the catalog");
        Ok(n as usize)
    }

    /// Brings the index entries of `skus` in line with the store, recording feed
    /// position `seq`: reads the products, then writes the index on the blocking pool.
    async fn reindex(&self, skus: &[String], seq: u64) -> Result<(), CatalogError> {
        // One read for the batch (a round trip per sku on a shared database otherwise).
        let present: Vec<ProductRecord> = self
            .store
            .get_many(skus)
            .await?
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        let found: std::collections::HashSet<&str> = present.iter().map(|p| p.sku.as_str()).collect();
        let gone: Vec<String> = skus
            .iter()
            .filter(|sku| !found.contains(sku.as_str()))
            .cloned()
            .collect();
        let index = self.index.clone();
        blocking(move || {
            let gone: Vec<&str> = gone.iter().map(String::as_str).collect();
            let docs: Vec<SearchDoc> = present.iter().map(search_doc).collect();
            index.apply(&docs, &gone, seq)?;
            Ok(())
        })
        .await
    }

    /// After a write: makes it durable, then indexes it (with whatever else the feed
    /// holds) before the write is acknowledged.
    async fn settle(self: &Arc<Self>) -> Result<(), CatalogError> {
        self.storage.flush().await?;
        self.catch_up().await?;
        Ok(())
    }

    /// Follows the change feed for as long as the process runs (replicas on a shared
    /// database: other replicas' writes), and keeps the feed from growing without end.
    pub async fn follow(self: Arc<Self>) {
        let mut every = tokio::time::interval(FOLLOW_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        for tick in 0u64.. {
            every.tick().await;
            if let Err(e) = self.catch_up().await {
                tracing::warn!(error = %e, "search index: following the catalog feed failed");
                continue;
            }
            // About once a minute: forget feed entries far behind the head.
            if tick % 240 == 0 {
                let trimmed = match self.store.feed_head().await {
                    Ok(head) if head > FEED_KEEP => self.store.trim_feed(head - FEED_KEEP).await,
                    Ok(_) => Ok(()),
                    Err(e) => Err(e),
                };
                if let Err(e) = trimmed {
                    tracing::warn!(error = %e, "trimming the catalog feed failed");
                }
            }
        }
    }

    pub async fn create(self: &Arc<Self>, new: NewProduct) -> Result<Product, CatalogError> {
        let (product, stock) = new.into_record(now_ms())?;
        self.store.insert(&product, stock).await?;
        self.settle().await?;
        Ok((product, stock))
    }

    /// Creates many products with one flush and one index commit (seeding).
    pub async fn create_many(self: &Arc<Self>, items: Vec<NewProduct>) -> Result<usize, CatalogError> {
        let now = now_ms();
        let mut skus = Vec::with_capacity(items.len());
        for new in items {
            let (product, stock) = new.into_record(now)?;
            match self.store.insert(&product, stock).await {
                Ok(()) => skus.push(product.sku),
                Err(CatalogStoreError::Exists) => {}
                Err(CatalogStoreError::Store(e)) => return Err(e.into()),
            }
        }
        let n = skus.len();
        self.settle().await?;
        Ok(n)
    }

    pub async fn get(&self, sku: &str) -> Result<Product, CatalogError> {
        self.store
            .get(&sku.to_ascii_uppercase())
            .await?
            .ok_or(CatalogError::NotFound)
    }

    pub async fn update(self: &Arc<Self>, sku: &str, patch: ProductPatch) -> Result<Product, CatalogError> {
        let (mut product, stock) = self.get(sku).await?;
        let new_stock = patch.apply(&mut product)?;
        product.updated_at = now_ms();
        self.store.replace(&product, new_stock).await?;
        self.settle().await?;
        Ok((product, new_stock.unwrap_or(stock)))
    }

    pub async fn delete(self: &Arc<Self>, sku: &str) -> Result<(), CatalogError> {
        let sku = sku.to_ascii_uppercase();
        if !self.store.delete(&sku).await? {
            return Err(CatalogError::NotFound);
        }
        self.settle().await
    }

    pub async fn list(&self, after: Option<&str>, limit: usize) -> Result<Vec<Product>, CatalogError> {
        Ok(self.store.list(after, limit).await?)
    }

    pub async fn count(&self) -> Result<usize, CatalogError> {
        Ok(self.store.count().await?)
    }

    /// Runs a search: the index query on the blocking pool, at most two per core at a
    /// time, then loads the products it found.
    pub async fn search(self: &Arc<Self>, q: SearchQuery) -> Result<SearchPage, CatalogError> {
        let permit = self
            .searching
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Flush("search is shutting down".into()))?;
        let index = self.index.clone();
        let (hits, more) = blocking(move || {
            let _permit = permit;
            Ok(index.search(&q)?)
        })
        .await?;
        // The index says which products match; the store says what they are now. A hit
        // deleted since the index last caught up is dropped.
        let skus: Vec<String> = hits.iter().map(|(sku, _)| sku.clone()).collect();
        let mut products = self.store.get_many(&skus).await?.into_iter().peekable();
        let mut out = Vec::with_capacity(hits.len());
        for (sku, score) in hits {
            if let Some(product) = products.next_if(|(p, _)| p.sku == sku) {
                out.push((product, score));
            }
        }
        Ok(SearchPage { hits: out, more })
    }
}

/// Runs index work (tantivy: CPU and file I/O) on the blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, CatalogError> + Send + 'static,
) -> Result<T, CatalogError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StoreError::Flush(format!("index task failed: {e}")))?
}
