//! Products and stock. Stock lives in its own tree (sku → u64) so checkout can update
//! it atomically with orders; `search-pending` records products whose search-index
//! update is not yet committed, so a crash in between is repaired at start-up.

use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};

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

pub trait CatalogStore: Send + Sync {
    fn get(&self, sku: &str) -> Result<Option<(ProductRecord, u64)>, StoreError>;
    /// Inserts a new product with its stock; fails if the sku exists.
    fn insert(&self, product: &ProductRecord, stock: u64) -> Result<(), CatalogStoreError>;
    /// Replaces a product (and its stock, when given).
    fn replace(&self, product: &ProductRecord, stock: Option<u64>) -> Result<(), StoreError>;
    fn delete(&self, sku: &str) -> Result<bool, StoreError>;
    /// Products by sku after `after`, with stock.
    fn list(&self, after: Option<&str>, limit: usize) -> Result<Vec<(ProductRecord, u64)>, StoreError>;
    fn count(&self) -> usize;
    fn all(&self) -> Result<Vec<ProductRecord>, StoreError>;
    /// Every sku (keys only, no decoding).
    fn skus(&self) -> Result<Vec<String>, StoreError>;
    fn pending(&self) -> Result<Vec<String>, StoreError>;
    fn clear_pending(&self, skus: &[&str]) -> Result<(), StoreError>;
}

pub struct SledCatalog {
    products: sled::Tree,
    stock: sled::Tree,
    pending: sled::Tree,
}

impl SledCatalog {
    pub fn open(db: &sled::Db) -> Result<Self, StoreError> {
        Ok(Self {
            products: db.open_tree("products")?,
            stock: db.open_tree("stock")?,
            pending: db.open_tree("search-pending")?,
        })
    }
}

fn encode(p: &ProductRecord) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(p).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn decode(bytes: &[u8]) -> Result<ProductRecord, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn stock_value(bytes: Option<sled::IVec>) -> u64 {
    bytes
        .and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok())
        .map_or(0, u64::from_be_bytes)
}

fn storage_error(e: TransactionError<()>) -> StoreError {
    match e {
        TransactionError::Storage(e) => StoreError::Sled(e),
        TransactionError::Abort(()) => StoreError::Corrupt("transaction aborted".into()),
    }
}

impl CatalogStore for SledCatalog {
    fn get(&self, sku: &str) -> Result<Option<(ProductRecord, u64)>, StoreError> {
        match self.products.get(sku)? {
            Some(bytes) => Ok(Some((decode(&bytes)?, stock_value(self.stock.get(sku)?)))),
            None => Ok(None),
        }
    }

    fn insert(&self, product: &ProductRecord, stock: u64) -> Result<(), CatalogStoreError> {
        let record = encode(product)?;
        let sku = product.sku.as_bytes();
        let result =
            (&self.products, &self.stock, &self.pending).transaction(|(products, stocks, pending)| {
                if products.get(sku)?.is_some() {
                    return Err(ConflictableTransactionError::Abort(()));
                }
                products.insert(sku, record.as_slice())?;
                stocks.insert(sku, &stock.to_be_bytes())?;
                pending.insert(sku, &[])?;
                Ok(())
            });
        match result {
            Ok(()) => Ok(()),
            Err(TransactionError::Abort(())) => Err(CatalogStoreError::Exists),
            Err(TransactionError::Storage(e)) => Err(StoreError::Sled(e).into()),
        }
    }

    fn replace(&self, product: &ProductRecord, stock: Option<u64>) -> Result<(), StoreError> {
        let record = encode(product)?;
        let sku = product.sku.as_bytes();
        (&self.products, &self.stock, &self.pending)
            .transaction(|(products, stocks, pending)| {
                products.insert(sku, record.as_slice())?;
                if let Some(stock) = stock {
                    stocks.insert(sku, &stock.to_be_bytes())?;
                }
                pending.insert(sku, &[])?;
                Ok(())
            })
            .map_err(storage_error)
    }

    fn delete(&self, sku: &str) -> Result<bool, StoreError> {
        (&self.products, &self.stock, &self.pending)
            .transaction(|(products, stocks, pending)| {
                let existed = products.remove(sku.as_bytes())?.is_some();
                stocks.remove(sku.as_bytes())?;
                if existed {
                    pending.insert(sku.as_bytes(), &[])?;
                }
                Ok(existed)
            })
            .map_err(storage_error)
    }

    fn list(&self, after: Option<&str>, limit: usize) -> Result<Vec<(ProductRecord, u64)>, StoreError> {
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
                Ok((decode(&v)?, stock_value(self.stock.get(k)?)))
            })
            .collect()
    }

    fn count(&self) -> usize {
        self.products.len()
    }

    fn all(&self) -> Result<Vec<ProductRecord>, StoreError> {
        self.products.iter().values().map(|v| decode(&v?)).collect()
    }

    fn skus(&self) -> Result<Vec<String>, StoreError> {
        self.products
            .iter()
            .keys()
            .map(|k| Ok(String::from_utf8_lossy(&k?).into_owned()))
            .collect()
    }

    fn pending(&self) -> Result<Vec<String>, StoreError> {
        self.pending
            .iter()
            .keys()
            .map(|k| Ok(String::from_utf8_lossy(&k?).into_owned()))
            .collect()
    }

    fn clear_pending(&self, skus: &[&str]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for sku in skus {
            batch.remove(sku.as_bytes());
        }
        self.pending.apply_batch(batch)?;
        Ok(())
    }
}
