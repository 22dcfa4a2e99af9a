//! sled's one-time rebuilds of derived trees, for databases from before they existed.
//! Once built, each is written in the same transactions as the orders, so it cannot
//! drift; `orders-meta` records which rebuilds were done.

use std::collections::BTreeMap;

use super::sled_orders::{purchase_key, time_key, SledOrders};
use super::OrderRecord;
use crate::store::codec::decode;
use crate::store::StoreError;

/// `orders-meta` keys: the purchase counters count reservations (not only sold orders),
/// and the unsettled index exists.
const META_PURCHASES: &[u8] = b"purchases-count-reserved";
const META_UNSETTLED: &[u8] = b"unsettled-index";

impl SledOrders {
    /// Runs the rebuilds a database still needs (at open).
    pub(super) fn migrate(&self) -> Result<(), StoreError> {
        self.rebuild_purchases_if_missing()?;
        self.rebuild_time_index_if_missing()?;
        self.rebuild_unsettled_if_missing()
    }

    fn each_order(&self, mut f: impl FnMut(OrderRecord) -> Result<(), StoreError>) -> Result<(), StoreError> {
        for item in self.orders.iter() {
            f(decode(&item?.1)?)?;
        }
        Ok(())
    }

    /// Builds the unsettled index once.
    fn rebuild_unsettled_if_missing(&self) -> Result<(), StoreError> {
        if self.meta.contains_key(META_UNSETTLED)? {
            return Ok(());
        }
        self.unsettled.clear()?;
        self.each_order(|o| {
            if o.is_unsettled() {
                self.unsettled
                    .insert(time_key(o.created_at, &o.id), o.id.as_str().as_bytes())?;
            }
            Ok(())
        })?;
        self.meta.insert(META_UNSETTLED, b"1")?;
        Ok(())
    }

    /// Builds the time index (the admin list's) of a database from before it.
    fn rebuild_time_index_if_missing(&self) -> Result<(), StoreError> {
        if !self.time_orders.is_empty() || self.orders.is_empty() {
            return Ok(());
        }
        self.each_order(|o| {
            self.time_orders
                .insert(time_key(o.created_at, &o.id), o.id.as_str().as_bytes())?;
            Ok(())
        })
    }

    /// Counts each user's units from the orders, once: for a database from before the
    /// counters, or from when they counted sold orders only.
    fn rebuild_purchases_if_missing(&self) -> Result<(), StoreError> {
        if self.meta.contains_key(META_PURCHASES)? {
            return Ok(());
        }
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        self.each_order(|o| {
            if !o.stock_released {
                for (sku, n) in o.units() {
                    *counts.entry(purchase_key(&o.user_id, sku)).or_default() += n;
                }
            }
            Ok(())
        })?;
        self.purchases.clear()?;
        for (k, n) in counts {
            self.purchases.insert(k.as_bytes(), &n.to_be_bytes())?;
        }
        self.meta.insert(META_PURCHASES, b"1")?;
        Ok(())
    }
}
