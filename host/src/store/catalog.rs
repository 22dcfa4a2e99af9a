//! Products and stock. Stock lives in its own tree (sku → u64) so checkout can update
//! it atomically with orders. Every product write appends its sku to the change feed
//! (`catalog-feed`, position → sku; the newest position in `catalog-feed-head`) in the
//! same transaction: the search index follows the feed, so an index update cut short by
//! a crash is redone from the index's recorded position.

use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};

use super::codec::{count_of, decode, encode};
use super::StoreError;
use crate::domain::Money;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProductRecord {
    pub sku: String,
    pub name: String,
    pub description: String,
    pub category: String,
    pub price: Money,
    pub images: Vec<String>,
    /// Unix milliseconds.
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogStoreError {
    #[error("a product with this sku exists")]
    Exists,
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[async_trait::async_trait]
pub trait CatalogStore: Send + Sync {
    async fn get(&self, sku: &str) -> Result<Option<(ProductRecord, u64)>, StoreError>;
    /// The products of `skus` that exist, with stock, in the order asked. One lookup per
    /// sku is cheap in an embedded store; a shared database answers them in one round
    /// trip (a search page would otherwise cost one per hit).
    async fn get_many(&self, skus: &[String]) -> Result<Vec<(ProductRecord, u64)>, StoreError> {
        let mut out = Vec::with_capacity(skus.len());
        for sku in skus {
            out.extend(self.get(sku).await?);
        }
        Ok(out)
    }
    /// Inserts a new product with its stock; fails if the sku exists.
    async fn insert(&self, product: &ProductRecord, stock: u64) -> Result<(), CatalogStoreError>;
    /// Replaces a product (and its stock, when given).
    async fn replace(&self, product: &ProductRecord, stock: Option<u64>) -> Result<(), StoreError>;
    async fn delete(&self, sku: &str) -> Result<bool, StoreError>;
    /// Products by sku after `after`, with stock.
    async fn list(&self, after: Option<&str>, limit: usize) -> Result<Vec<(ProductRecord, u64)>, StoreError>;
    async fn count(&self) -> Result<usize, StoreError>;
    async fn all(&self) -> Result<Vec<ProductRecord>, StoreError>;
    /// Every sku (keys only, no decoding).
    async fn skus(&self) -> Result<Vec<String>, StoreError>;
    /// The change feed: `(position, sku)` of each product write after `seq`, in the
    /// order the writes committed, at most `limit`.
    async fn changes_after(&self, seq: u64, limit: usize) -> Result<Vec<(u64, String)>, StoreError>;
    /// The newest feed position (0 before the first write).
    async fn feed_head(&self) -> Result<u64, StoreError>;
    /// Changes after this position are all still in the feed (older ones may be trimmed).
    async fn feed_floor(&self) -> Result<u64, StoreError>;
    /// Forgets the changes at or before `seq`.
    async fn trim_feed(&self, seq: u64) -> Result<(), StoreError>;
}

pub struct SledCatalog {
    products: sled::Tree,
    stock: sled::Tree,
    feed: sled::Tree,
    feed_head: sled::Tree,
}

const HEAD: &[u8] = b"head";

impl SledCatalog {
    pub fn open(db: &sled::Db) -> Result<Self, StoreError> {
        Ok(Self {
            products: db.open_tree("products")?,
            stock: db.open_tree("stock")?,
            feed: db.open_tree("catalog-feed")?,
            feed_head: db.open_tree("catalog-feed-head")?,
        })
    }
}

/// Appends `sku` at the next feed position, inside a product write's transaction.
fn append(
    feed: &sled::transaction::TransactionalTree,
    head: &sled::transaction::TransactionalTree,
    sku: &[u8],
) -> Result<(), sled::transaction::UnabortableTransactionError> {
    let next = count_of(head.get(HEAD)?) + 1;
    head.insert(HEAD, &next.to_be_bytes())?;
    feed.insert(&next.to_be_bytes(), sku)?;
    Ok(())
}

fn position(key: &[u8]) -> u64 {
    <[u8; 8]>::try_from(key).map_or(0, u64::from_be_bytes)
}

fn storage_error(e: TransactionError<()>) -> StoreError {
    match e {
        TransactionError::Storage(e) => StoreError::Sled(e),
        TransactionError::Abort(()) => StoreError::Corrupt("transaction aborted".into()),
    }
}

#[async_trait::async_trait]
impl CatalogStore for SledCatalog {
    async fn get(&self, sku: &str) -> Result<Option<(ProductRecord, u64)>, StoreError> {
        match self.products.get(sku)? {
            Some(bytes) => Ok(Some((decode(&bytes)?, count_of(self.stock.get(sku)?)))),
            None => Ok(None),
        }
    }

    async fn insert(&self, product: &ProductRecord, stock: u64) -> Result<(), CatalogStoreError> {
        let record = encode(product)?;
        let sku = product.sku.as_bytes();
        let result = (&self.products, &self.stock, &self.feed, &self.feed_head).transaction(
            |(products, stocks, feed, head)| {
                if products.get(sku)?.is_some() {
                    return Err(ConflictableTransactionError::Abort(()));
                }
                products.insert(sku, record.as_slice())?;
                stocks.insert(sku, &stock.to_be_bytes())?;
                append(feed, head, sku)?;
                Ok(())
            },
        );
        match result {
            Ok(()) => Ok(()),
            Err(TransactionError::Abort(())) => Err(CatalogStoreError::Exists),
            Err(TransactionError::Storage(e)) => Err(StoreError::Sled(e).into()),
        }
    }

    async fn replace(&self, product: &ProductRecord, stock: Option<u64>) -> Result<(), StoreError> {
        let record = encode(product)?;
        let sku = product.sku.as_bytes();
        (&self.products, &self.stock, &self.feed, &self.feed_head)
            .transaction(|(products, stocks, feed, head)| {
                products.insert(sku, record.as_slice())?;
                if let Some(stock) = stock {
                    stocks.insert(sku, &stock.to_be_bytes())?;
                }
                append(feed, head, sku)?;
                Ok(())
            })
            .map_err(storage_error)
    }

    async fn delete(&self, sku: &str) -> Result<bool, StoreError> {
        (&self.products, &self.stock, &self.feed, &self.feed_head)
            .transaction(|(products, stocks, feed, head)| {
                let existed = products.remove(sku.as_bytes())?.is_some();
                stocks.remove(sku.as_bytes())?;
                if existed {
                    append(feed, head, sku.as_bytes())?;
                }
                Ok(existed)
            })
            .map_err(storage_error)
    }

    async fn list(&self, after: Option<&str>, limit: usize) -> Result<Vec<(ProductRecord, u64)>, StoreError> {
        let iter = match after {
            Some(sku) => {
                let mut start = sku.as_bytes().to_vec();
                start.push(0);
                self.products.range(start..)
            }
            None => self.products.iter(),
        };
        iter.take(limit)
            .map(|item| {
                let (k, v) = item?;
                Ok((decode(&v)?, count_of(self.stock.get(k)?)))
            })
            .collect()
    }

    async fn count(&self) -> Result<usize, StoreError> {
        Ok(self.products.len())
    }

    async fn all(&self) -> Result<Vec<ProductRecord>, StoreError> {
        self.products.iter().values().map(|v| decode(&v?)).collect()
    }

    async fn skus(&self) -> Result<Vec<String>, StoreError> {
        self.products
            .iter()
            .keys()
            .map(|k| Ok(String::from_utf8_lossy(&k?).into_owned()))
            .collect()
    }

    async fn changes_after(&self, seq: u64, limit: usize) -> Result<Vec<(u64, String)>, StoreError> {
        let from = seq.saturating_add(1).to_be_bytes();
        self.feed
            .range(from..)
            .take(limit)
            .map(|item| {
                let (k, v) = item?;
                Ok((position(&k), String::from_utf8_lossy(&v).into_owned()))
            })
            .collect()
    }

    async fn feed_head(&self) -> Result<u64, StoreError> {
        Ok(count_of(self.feed_head.get(HEAD)?))
    }

    async fn feed_floor(&self) -> Result<u64, StoreError> {
        match self.feed.first()? {
            Some((k, _)) => Ok(position(&k) - 1),
            None => self.feed_head().await,
        }
    }

    async fn trim_feed(&self, seq: u64) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for key in self.feed.range(..=seq.to_be_bytes()).keys() {
            batch.remove(key?);
        }
        self.feed.apply_batch(batch)?;
        Ok(())
    }
}

#[cfg(test)]
#[path = "catalog_tests.rs"]
mod tests;
