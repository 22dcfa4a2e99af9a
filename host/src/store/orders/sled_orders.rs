//! [`OrderStore`] on sled: the trees (see [`super::trees`]), opening them (with the
//! one-time rebuilds of `migration.rs`) and the reads. The writes that move stock are
//! in `reservation.rs`.

use super::{trees, OrderFilter, OrderRecord, OrderStatus, OrderStore, ReserveError};
use crate::domain::{OrderId, UserId};
use crate::store::codec::{count_of, decode};
use crate::store::StoreError;

pub struct SledOrders {
    pub(super) stock: sled::Tree,
    pub(super) orders: sled::Tree,
    pub(super) user_orders: sled::Tree,
    pub(super) time_orders: sled::Tree,
    pub(super) by_payment: sled::Tree,
    /// Changed in the same transactions as the stock, so parallel checkouts count each
    /// other's reservations (per-customer limits).
    pub(super) purchases: sled::Tree,
    pub(super) unsettled: sled::Tree,
    pub(super) meta: sled::Tree,
}

/// How many index entries one admin page may look at before it returns (with a cursor),
/// so a filter that matches little cannot turn one request into a full scan.
const MAX_SCAN_PER_PAGE: usize = 10_000;

pub(super) fn purchase_key(user_id: &UserId, sku: &str) -> String {
    format!("{user_id}/{sku}")
}

pub(super) fn payment_key(plugin: &str, provider_id: &str) -> String {
    format!("{plugin}/{provider_id}")
}

pub(super) fn user_key(user_id: &UserId, created_at: i64, order_id: &OrderId) -> Vec<u8> {
    format!("{user_id}/{created_at:020}/{order_id}").into_bytes()
}

pub(super) fn time_key(created_at: i64, order_id: &OrderId) -> Vec<u8> {
    format!("{created_at:020}/{order_id}").into_bytes()
}

/// An order id an index holds as its value.
fn stored_id(bytes: &[u8]) -> Result<OrderId, StoreError> {
    let text = std::str::from_utf8(bytes).map_err(|e| StoreError::Corrupt(format!("an order id: {e}")))?;
    OrderId::parse(text).map_err(|e| StoreError::Corrupt(format!("{e}: {text:?}")))
}

impl SledOrders {
    pub fn open(db: &sled::Db) -> Result<Self, StoreError> {
        let orders = Self {
            stock: db.open_tree(trees::STOCK)?,
            orders: db.open_tree(trees::ORDERS)?,
            user_orders: db.open_tree(trees::USER_ORDERS)?,
            time_orders: db.open_tree(trees::BY_TIME)?,
            by_payment: db.open_tree(trees::BY_PAYMENT)?,
            purchases: db.open_tree(trees::PURCHASES)?,
            unsettled: db.open_tree(trees::UNSETTLED)?,
            meta: db.open_tree(trees::META)?,
        };
        orders.migrate()?;
        Ok(orders)
    }

    pub(super) fn load(&self, id: &OrderId) -> Result<Option<OrderRecord>, StoreError> {
        self.orders
            .get(id.as_str().as_bytes())?
            .map(|v| decode(&v))
            .transpose()
    }

    fn load_stored(&self, id: &[u8]) -> Result<Option<OrderRecord>, StoreError> {
        self.load(&stored_id(id)?)
    }
}

#[async_trait::async_trait]
impl OrderStore for SledOrders {
    async fn purchased(&self, user_id: &UserId, skus: &[&str]) -> Result<Vec<(String, u64)>, StoreError> {
        skus.iter()
            .map(|sku| {
                let n = count_of(self.purchases.get(purchase_key(user_id, sku).as_bytes())?);
                Ok((sku.to_string(), n))
            })
            .collect()
    }

    async fn reserve(&self, order: &OrderRecord) -> Result<(), ReserveError> {
        self.reserve_now(order)
    }

    async fn save(&self, order: &mut OrderRecord, release: bool) -> Result<(), StoreError> {
        self.save_now(order, release)
    }

    async fn discard(&self, order: &OrderRecord) -> Result<(), StoreError> {
        self.discard_now(order)
    }

    async fn get(&self, id: &OrderId) -> Result<Option<OrderRecord>, StoreError> {
        self.load(id)
    }

    async fn by_payment(&self, plugin: &str, provider_id: &str) -> Result<Option<OrderRecord>, StoreError> {
        // Databases from before the index was scoped have bare provider ids as keys; the
        // order's recorded payment decides either way.
        let id = match self.by_payment.get(payment_key(plugin, provider_id).as_bytes())? {
            Some(id) => Some(id),
            None => self.by_payment.get(provider_id.as_bytes())?,
        };
        let Some(id) = id else {
            return Ok(None);
        };
        Ok(self
            .load_stored(&id)?
            .filter(|o| o.paid_through(plugin, provider_id)))
    }

    async fn unsettled_where(
        &self,
        created_before: i64,
        limit: usize,
        wanted: OrderFilter<'_>,
    ) -> Result<Vec<OrderId>, StoreError> {
        let end = format!("{:020}~", created_before.max(0)).into_bytes();
        let mut out = Vec::new();
        for item in self.unsettled.range(..end) {
            if out.len() >= limit {
                break;
            }
            let id = stored_id(&item?.1)?;
            if wanted(&id) {
                out.push(id);
            }
        }
        Ok(out)
    }

    async fn page_for_user(
        &self,
        user_id: &UserId,
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<(Vec<OrderRecord>, Option<Vec<u8>>), StoreError> {
        let prefix = format!("{user_id}/").into_bytes();
        let end = match before {
            Some(b) if b.starts_with(&prefix) => b.to_vec(),
            Some(_) => return Ok((Vec::new(), None)),
            None => {
                let mut end = prefix.clone();
                *end.last_mut().expect("non-empty") += 1;
                end
            }
        };
        let mut out = Vec::new();
        let mut last_key = None;
        for item in self.user_orders.range(prefix..end).rev() {
            let (key, id) = item?;
            if out.len() == limit {
                return Ok((out, last_key));
            }
            if let Some(o) = self.load_stored(&id)? {
                out.push(o);
                last_key = Some(key.to_vec());
            }
        }
        Ok((out, None))
    }

    /// Like `page_for_user`, but a page also ends after [`MAX_SCAN_PER_PAGE`] index
    /// entries (with a position to go on from), so a rare status never means a full scan.
    async fn page_all(
        &self,
        status: Option<OrderStatus>,
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<(Vec<OrderRecord>, Option<Vec<u8>>), StoreError> {
        let range = match before {
            Some(b) => self.time_orders.range(..b.to_vec()),
            None => self.time_orders.range::<Vec<u8>, _>(..),
        };
        let mut out = Vec::new();
        let mut last_key = None;
        for (scanned, item) in range.rev().enumerate() {
            let (key, id) = item?;
            if out.len() == limit || scanned == MAX_SCAN_PER_PAGE {
                return Ok((out, last_key));
            }
            last_key = Some(key.to_vec());
            if let Some(o) = self.load_stored(&id)? {
                if status.is_none_or(|s| o.status == s) {
                    out.push(o);
                }
            }
        }
        Ok((out, None))
    }

    async fn stock(&self, sku: &str) -> Result<u64, StoreError> {
        Ok(count_of(self.stock.get(sku.as_bytes())?))
    }
}
