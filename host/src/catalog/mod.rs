//! The product catalog: sled holds the truth (products, stock), the search index follows
//! it. Every write is flushed and indexed before it is acknowledged, so a product is
//! findable right after its 201 and gone right after its delete.

mod input;
pub mod seed;

use std::sync::Arc;

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
}

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
    /// Opens the catalog and brings the search index in line with the store: a full
    /// rebuild when the document counts differ, else a re-index of products whose last
    /// index update was cut short. Blocking: call it from a blocking context.
    pub fn open(storage: &Storage, index_dir: &std::path::Path) -> Result<Self, CatalogError> {
        let store: Arc<dyn CatalogStore> = Arc::new(storage.catalog()?);
        let index = Arc::new(SearchIndex::open(index_dir)?);
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let catalog = Self {
            searching: Arc::new(tokio::sync::Semaphore::new(cores * 2)),
            store,
            index,
            storage: storage.clone(),
        };
        catalog.reconcile()?;
        Ok(catalog)
    }

    fn reconcile(&self) -> Result<(), CatalogError> {
        let skus = self.store.skus()?;
        self.index.remember(skus.iter().map(String::as_str));
        let pending = self.store.pending()?;
        if self.index.num_docs() != self.store.count() as u64 {
            let all = self.store.all()?;
            let n = self.index.rebuild(all.iter().map(search_doc))?;
            tracing::info!(products = n, "search index rebuilt from the catalog");
        } else if !pending.is_empty() {
            let refs: Vec<&str> = pending.iter().map(String::as_str).collect();
            self.reindex(&refs)?;
            tracing::info!(
                products = pending.len(),
                "search index caught up after an interrupted write"
            );
        }
        let refs: Vec<&str> = pending.iter().map(String::as_str).collect();
        self.store.clear_pending(&refs)?;
        Ok(())
    }

    /// Brings the index entries of `skus` in line with the store.
    fn reindex(&self, skus: &[&str]) -> Result<(), CatalogError> {
        let mut present = Vec::new();
        let mut gone = Vec::new();
        for sku in skus {
            match self.store.get(sku)? {
                Some((p, _)) => present.push(p),
                None => gone.push(*sku),
            }
        }
        if !gone.is_empty() {
            self.index.delete(&gone)?;
        }
        if !present.is_empty() {
            let docs: Vec<SearchDoc> = present.iter().map(search_doc).collect();
            self.index.upsert(&docs)?;
        }
        Ok(())
    }

    /// Flushes, updates the index off the async runtime, then clears the pending marks.
    async fn settle(self: &Arc<Self>, skus: Vec<String>) -> Result<(), CatalogError> {
        self.storage.flush().await?;
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = skus.iter().map(String::as_str).collect();
            this.reindex(&refs)?;
            this.store.clear_pending(&refs)?;
            Ok::<(), CatalogError>(())
        })
        .await
        .map_err(|e| StoreError::Flush(format!("index task failed: {e}")))??;
        Ok(())
    }

    pub async fn create(self: &Arc<Self>, new: NewProduct) -> Result<Product, CatalogError> {
        let (product, stock) = new.into_record(now_ms())?;
        self.store.insert(&product, stock)?;
        self.settle(vec![product.sku.clone()]).await?;
        Ok((product, stock))
    }

    /// Creates many products with one flush and one index commit (seeding).
    pub async fn create_many(self: &Arc<Self>, items: Vec<NewProduct>) -> Result<usize, CatalogError> {
        let now = now_ms();
        let mut skus = Vec::with_capacity(items.len());
        for new in items {
            let (product, stock) = new.into_record(now)?;
            match self.store.insert(&product, stock) {
                Ok(()) => skus.push(product.sku),
                Err(CatalogStoreError::Exists) => {}
                Err(CatalogStoreError::Store(e)) => return Err(e.into()),
            }
        }
        let n = skus.len();
        self.settle(skus).await?;
        Ok(n)
    }

    pub fn get(&self, sku: &str) -> Result<Product, CatalogError> {
        self.store
            .get(&sku.to_ascii_uppercase())?
            .ok_or(CatalogError::NotFound)
    }

    pub async fn update(self: &Arc<Self>, sku: &str, patch: ProductPatch) -> Result<Product, CatalogError> {
        let (mut product, stock) = self.get(sku)?;
        let new_stock = patch.apply(&mut product)?;
        product.updated_at = now_ms();
        self.store.replace(&product, new_stock)?;
        self.settle(vec![product.sku.clone()]).await?;
        Ok((product, new_stock.unwrap_or(stock)))
    }

    pub async fn delete(self: &Arc<Self>, sku: &str) -> Result<(), CatalogError> {
        let sku = sku.to_ascii_uppercase();
        if !self.store.delete(&sku)? {
            return Err(CatalogError::NotFound);
        }
        self.settle(vec![sku]).await
    }

    pub fn list(&self, after: Option<&str>, limit: usize) -> Result<Vec<Product>, CatalogError> {
        Ok(self.store.list(after, limit)?)
    }

    pub fn count(&self) -> usize {
        self.store.count()
    }

    /// Runs a search on the blocking pool, at most two per core at a time.
    pub async fn search_off_runtime(self: &Arc<Self>, q: SearchQuery) -> Result<SearchPage, CatalogError> {
        let permit = self
            .searching
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Flush("search is shutting down".into()))?;
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            this.search(&q)
        })
        .await
        .map_err(|e| StoreError::Flush(format!("search task failed: {e}")))?
    }

    /// Runs a search (CPU-bound: call from a blocking context) and loads the products.
    pub fn search(&self, q: &SearchQuery) -> Result<SearchPage, CatalogError> {
        let (hits, more) = self.index.search(q)?;
        let mut out = Vec::with_capacity(hits.len());
        for (sku, score) in hits {
            if let Some(product) = self.store.get(&sku)? {
                out.push((product, score));
            }
        }
        Ok(SearchPage { hits: out, more })
    }
}
