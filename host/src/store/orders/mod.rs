//! Orders and stock reservations. Stock, the order and the customer's purchase counters
//! change together in one transaction, so stock can never go below zero and every unit
//! is either in stock or in exactly one live order.
//!
//! - `model.rs` — the order as the host works with it (typed ids, `Money`, `Address`);
//! - `wire.rs` — its stored layout, the same on both backends;
//! - `sled_orders.rs` — [`SledOrders`]: the trees and the reads;
//! - `reservation.rs` — sled's reserve / save / discard transactions;
//! - `migration.rs` — sled's one-time rebuilds of derived trees for older databases.
//!
//! Idempotency keys are a store of their own (`store/idempotency.rs`).

mod migration;
mod model;
mod reservation;
mod sled_orders;
mod wire;

pub use model::{OrderAdjustment, OrderLine, OrderRecord, OrderStatus, Payment, Shipment, Transition};
pub use sled_orders::SledOrders;

use super::StoreError;
use crate::domain::{OrderId, UserId};

/// The sled trees of orders.
pub mod trees {
    /// Units in stock per sku; shared with the catalog.
    pub const STOCK: &str = "stock";
    /// Order id → order.
    pub const ORDERS: &str = "orders";
    /// `{user_id}/{created_at:020}/{order_id}` → order id: each customer's orders.
    pub const USER_ORDERS: &str = "user-orders";
    /// `{created_at:020}/{order_id}` → order id: every order, in time order (admin list).
    pub const BY_TIME: &str = "orders-by-time";
    /// `{plugin}/{provider_id}` → order id: the order a payment plugin's charge belongs
    /// to (scoped by plugin, so one provider's webhook never finds another's order).
    pub const BY_PAYMENT: &str = "orders-by-payment";
    /// `{user_id}/{sku}` → units of that sku the user holds in orders whose units are
    /// out of stock (pending, paid, fulfilled).
    pub const PURCHASES: &str = "user-purchases";
    /// `{created_at:020}/{order_id}` → order id: the unsettled orders, for the reconciler.
    pub const UNSETTLED: &str = "orders-unsettled";
    /// Which one-time rebuilds of derived trees were done.
    pub const META: &str = "orders-meta";
}

/// The PostgreSQL tables of orders (named in the SQL of `postgres/orders.rs`; these are
/// for code that lists tables, such as `plinth store copy`).
pub mod tables {
    pub const STOCK: &str = "stock";
    pub const ORDERS: &str = "orders";
    pub const PURCHASES: &str = "user_purchases";
}

#[derive(Debug, thiserror::Error)]
pub enum ReserveError {
    #[error("only {available} of {sku} left")]
    OutOfStock { sku: String, available: u64 },
    #[error("order {0} already exists")]
    Exists(OrderId),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Which unsettled orders a caller wants (the reconciler skips the ones it or another
/// replica drives).
pub type OrderFilter<'a> = &'a (dyn for<'i> Fn(&'i OrderId) -> bool + Send + Sync);

/// Orders, stock reservations and purchase counters: what checkout needs from storage.
/// Each method is atomic on its own; the ones that move stock change the stock, the
/// order and the customer's counters together or not at all.
#[async_trait::async_trait]
pub trait OrderStore: Send + Sync {
    /// Units of each of `skus` the user bought or holds reserved (every order whose
    /// units are out of stock).
    async fn purchased(&self, user_id: &UserId, skus: &[&str]) -> Result<Vec<(String, u64)>, StoreError>;
    /// Takes the order's units out of stock and records it, atomically; nothing changes
    /// if any line is short or the order id exists.
    async fn reserve(&self, order: &OrderRecord) -> Result<(), ReserveError>;
    /// Saves an order, returning its units to stock (and taking them off the user's
    /// counters) first when `release` is set and the *stored* order has not returned
    /// them yet. A compare-and-swap on `version`: when the stored order is not the one
    /// `order` was read as, nothing is written and `StoreError::Conflict` says so.
    /// `order` takes the stored version and flag only once the write committed.
    async fn save(&self, order: &mut OrderRecord, release: bool) -> Result<(), StoreError>;
    /// Deletes an order that never happened, returning its units to stock; only the
    /// version the caller read (`StoreError::Conflict` otherwise, nothing changed).
    async fn discard(&self, order: &OrderRecord) -> Result<(), StoreError>;
    async fn get(&self, id: &OrderId) -> Result<Option<OrderRecord>, StoreError>;
    /// The order paid through `plugin` with the provider's `provider_id`, or `None` (also
    /// when that id belongs to an order paid through another plugin).
    async fn by_payment(&self, plugin: &str, provider_id: &str) -> Result<Option<OrderRecord>, StoreError>;
    /// Ids of the unsettled orders created at or before `created_before` (Unix ms),
    /// oldest first, at most `limit`.
    async fn unsettled(&self, created_before: i64, limit: usize) -> Result<Vec<OrderId>, StoreError> {
        self.unsettled_where(created_before, limit, &|_| true).await
    }
    /// As [`OrderStore::unsettled`], only the ones `wanted` keeps (skipped ones do not
    /// count against `limit`, so orders waiting for a retry do not hide newer ones).
    async fn unsettled_where(
        &self,
        created_before: i64,
        limit: usize,
        wanted: OrderFilter<'_>,
    ) -> Result<Vec<OrderId>, StoreError>;
    /// A page of a user's orders, newest first: at most `limit` orders older than the
    /// `before` position (an opaque position returned by an earlier page of the same
    /// user), and the position to continue from when more remain.
    async fn page_for_user(
        &self,
        user_id: &UserId,
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<(Vec<OrderRecord>, Option<Vec<u8>>), StoreError>;
    /// A page of all orders, newest first, optionally only those in `status`; a page may
    /// also end early (with a position) so a rare status never means a full scan.
    async fn page_all(
        &self,
        status: Option<OrderStatus>,
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<(Vec<OrderRecord>, Option<Vec<u8>>), StoreError>;
    /// Units of `sku` in stock.
    async fn stock(&self, sku: &str) -> Result<u64, StoreError>;
}

#[cfg(test)]
mod tests;
