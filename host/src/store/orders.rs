//! Orders, stock reservations and idempotency records. Stock and orders change together
//! in one sled transaction, so stock can never go below zero and every unit is either in
//! stock or in exactly one live order.

use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError as Abortable, TransactionError, Transactional};

use super::StoreError;
use crate::domain::Money;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OrderStatus {
    /// Stock reserved, payment not settled.
    Pending,
    /// Charged.
    Paid,
    /// Charged and the shipping label bought.
    Fulfilled,
    /// Money returned, stock restored.
    Refunded,
    /// Did not complete; stock restored (and any charge refunded).
    Failed,
}

impl OrderStatus {
    /// Whether the order's units count as sold.
    pub fn is_sold(self) -> bool {
        matches!(self, OrderStatus::Paid | OrderStatus::Fulfilled)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OrderLine {
    pub sku: String,
    pub name: String,
    pub quantity: u32,
    pub unit_price: Money,
    /// unit price × quantity, minor units.
    pub total: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OrderAdjustment {
    /// `discount`, `tax`, `fee` or `shipping`.
    pub kind: String,
    pub label: String,
    /// Signed minor units (negative for discounts).
    pub amount: i64,
    /// The plugin that made it.
    pub source: String,
    /// Index into `lines`, for line-level adjustments.
    pub line: Option<u32>,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Address {
    pub name: String,
    pub line1: String,
    pub line2: Option<String>,
    pub city: String,
    pub region: Option<String>,
    pub postal_code: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
    pub phone: Option<String>,
    pub email: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Shipment {
    pub rate_id: String,
    pub carrier: String,
    pub service: String,
    /// Minor units.
    pub amount: i64,
    pub shipment_id: Option<String>,
    pub tracking_number: Option<String>,
    pub label_url: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Payment {
    /// The payment plugin.
    pub provider: String,
    pub provider_id: String,
    pub refund_id: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Transition {
    pub status: OrderStatus,
    /// Unix milliseconds.
    pub at: i64,
    pub note: Option<String>,
}

/// Why an order save's transaction gave up.
enum SaveAbort {
    /// The stored order is not the version the caller read.
    Conflict,
    Corrupt(String),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OrderRecord {
    pub id: String,
    pub user_id: String,
    pub status: OrderStatus,
    pub lines: Vec<OrderLine>,
    pub adjustments: Vec<OrderAdjustment>,
    pub currency: String,
    pub subtotal: i64,
    pub total: i64,
    pub shipping_address: Address,
    pub shipment: Option<Shipment>,
    pub payment: Option<Payment>,
    pub history: Vec<Transition>,
    pub created_at: i64,
    /// Set once the reserved units went back to stock, so they never go back twice.
    pub stock_released: bool,
    /// How many earlier attempts of this order were charged and refunded; each new
    /// attempt charges under a new provider idempotency key (see `charge_key`).
    #[serde(default)]
    pub attempt: u32,
    /// The payment method reference the charge is made with (a provider's id such as
    /// `pm_…` or `pay_…`, never card data): after a crash, the charge is looked up by it.
    #[serde(default)]
    pub payment_method: Option<String>,
    /// Minor units refunded so far: partial refunds the provider reported, or the whole
    /// total once refunded. Only a full refund returns the stock.
    #[serde(default)]
    pub refunded: i64,
    /// Bumped by every save: a save of a copy read before another save is refused
    /// (`StoreError::Conflict`) instead of overwriting it.
    #[serde(default)]
    pub version: u64,
}

impl OrderRecord {
    pub fn transition(&mut self, status: OrderStatus, at: i64, note: Option<String>) {
        self.status = status;
        self.history.push(Transition { status, at, note });
    }

    /// The idempotency key the payment provider sees for this attempt: a re-drive of an
    /// interrupted attempt sends the same key (the provider replays the first charge
    /// instead of making a second), a new attempt after a refund a new one.
    pub fn charge_key(&self) -> String {
        match self.attempt {
            0 => format!("plinth-{}", self.id),
            n => format!("plinth-{}-a{n}", self.id),
        }
    }

    /// Whether the order still needs the host to act on it: pending (its charge is not
    /// settled), or paid with a shipping label still to buy. Such orders are indexed in
    /// `orders-unsettled` for the reconciler.
    pub fn is_unsettled(&self) -> bool {
        self.status == OrderStatus::Pending
            || (self.status == OrderStatus::Paid
                && self.shipment.as_ref().is_some_and(|s| s.label_url.is_none()))
    }

    /// Whether this order was paid through `plugin` with the provider's `provider_id`:
    /// the recorded payment is what decides which order a webhook may touch.
    pub fn paid_through(&self, plugin: &str, provider_id: &str) -> bool {
        self.payment
            .as_ref()
            .is_some_and(|p| p.provider == plugin && p.provider_id == provider_id)
    }

    /// The idempotency key of this attempt's refund: one per charge, so a second
    /// attempt's refund is never mistaken by the provider for the first one's.
    pub fn refund_key(&self) -> String {
        match self.attempt {
            0 => format!("plinth-refund-{}", self.id),
            n => format!("plinth-refund-{}-a{n}", self.id),
        }
    }
}

/// An idempotency key's record: the request's hash and, once done, the response.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    pub request_hash: String,
    pub order_id: String,
    /// `None` while the first request is in flight.
    pub response: Option<StoredResponse>,
    /// Unix milliseconds of the first request.
    pub created_at: i64,
    /// Unix milliseconds of the last claim (a retry may take over an abandoned one).
    pub claimed_at: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StoredResponse {
    pub status: u16,
    pub body: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ReserveError {
    #[error("only {available} of {sku} left")]
    OutOfStock { sku: String, available: u64 },
    #[error("order {0} already exists")]
    Exists(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The outcome of claiming an idempotency key.
pub enum Claim {
    /// New key (or an abandoned claim taken over): go ahead.
    Fresh,
    /// Same key, same request, finished: replay.
    Done(StoredResponse),
    /// Same key, same request, still running.
    InFlight,
    /// Same key, another request body.
    Mismatch,
}

/// Orders, stock reservations, purchase counters and idempotency records: what checkout
/// needs from storage. Each method is atomic on its own; the ones that move stock change
/// the stock, the order and the customer's counters together or not at all.
#[async_trait::async_trait]
pub trait OrderStore: Send + Sync {
    /// Units of each of `skus` the user bought or holds reserved (every order whose
    /// units are out of stock).
    async fn purchased(&self, user_id: &str, skus: &[&str]) -> Result<Vec<(String, u64)>, StoreError>;
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
    async fn get(&self, id: &str) -> Result<Option<OrderRecord>, StoreError>;
    /// The order paid through `plugin` with the provider's `provider_id`, or `None` (also
    /// when that id belongs to an order paid through another plugin).
    async fn by_payment(&self, plugin: &str, provider_id: &str) -> Result<Option<OrderRecord>, StoreError>;
    /// Ids of the unsettled orders created at or before `created_before` (Unix ms),
    /// oldest first, at most `limit`.
    async fn unsettled(&self, created_before: i64, limit: usize) -> Result<Vec<String>, StoreError> {
        self.unsettled_where(created_before, limit, &|_| true).await
    }
    /// As [`OrderStore::unsettled`], only the ones `wanted` keeps (skipped ones do not
    /// count against `limit`, so orders waiting for a retry do not hide newer ones).
    async fn unsettled_where(
        &self,
        created_before: i64,
        limit: usize,
        wanted: &(dyn for<'i> Fn(&'i str) -> bool + Send + Sync),
    ) -> Result<Vec<String>, StoreError>;
    /// A page of a user's orders, newest first: at most `limit` orders older than the
    /// `before` position (an opaque position returned by an earlier page of the same
    /// user), and the position to continue from when more remain.
    async fn page_for_user(
        &self,
        user_id: &str,
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
    /// Claims `key` for a request with `hash`. A claim older than `abandoned_after_ms`
    /// without a response is taken over (its request died with its process).
    async fn claim(
        &self,
        key: &str,
        hash: &str,
        order_id: &str,
        now: i64,
        abandoned_after_ms: i64,
    ) -> Result<Claim, StoreError>;
    /// Stores the response for a claimed key.
    async fn complete(&self, key: &str, response: StoredResponse) -> Result<(), StoreError>;
    /// Forgets a claim whose request ended without a response worth replaying.
    async fn release_claim(&self, key: &str) -> Result<(), StoreError>;
    /// Forgets every claim still waiting for its response. Returns how many.
    async fn release_unfinished_claims(&self) -> Result<usize, StoreError>;
    /// Drops answered idempotency records older than `max_age_ms`; returns how many.
    async fn expire_idempotency(&self, now: i64, max_age_ms: i64) -> Result<usize, StoreError>;
}

pub struct SledOrders {
    stock: sled::Tree,
    orders: sled::Tree,
    user_orders: sled::Tree,
    /// `{created_at:020}/{order_id}` → order id: every order, in time order (admin list).
    time_orders: sled::Tree,
    /// `{plugin}/{provider_id}` → order id: the order a payment plugin's charge belongs
    /// to (scoped by plugin, so one provider's webhook never finds another's order).
    by_payment: sled::Tree,
    idempotency: sled::Tree,
    /// `{user_id}/{sku}` → units of that sku the user holds: in orders whose units are
    /// out of stock (pending, paid, fulfilled). Changed in the same transactions as the
    /// stock, so parallel checkouts count each other's reservations (per-customer limits).
    purchases: sled::Tree,
    /// `{created_at:020}/{order_id}` → order id: orders that are
    /// [unsettled](OrderRecord::is_unsettled), oldest first, for the reconciler.
    unsettled: sled::Tree,
    /// Which one-time rebuilds of derived trees were done (see `open`).
    meta: sled::Tree,
}

/// `meta` keys: the purchase counters count reservations (not only sold orders), and the
/// unsettled index exists.
const META_PURCHASES: &[u8] = b"purchases-count-reserved";
const META_UNSETTLED: &[u8] = b"unsettled-index";

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn decode<T: for<'de> Deserialize<'de>>(b: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(b).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn stock_of(bytes: Option<sled::IVec>) -> u64 {
    bytes
        .and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok())
        .map_or(0, u64::from_be_bytes)
}

fn purchase_key(user_id: &str, sku: &str) -> String {
    format!("{user_id}/{sku}")
}

fn payment_key(plugin: &str, provider_id: &str) -> String {
    format!("{plugin}/{provider_id}")
}

/// Adds (or with `take`, takes back) an order's units to the user's counters, inside a
/// transaction; counters never go below zero.
fn count_units(
    purchases: &sled::transaction::TransactionalTree,
    user_id: &str,
    lines: &[(String, u64)],
    take: bool,
) -> Result<(), sled::transaction::UnabortableTransactionError> {
    for (sku, qty) in lines {
        let key = purchase_key(user_id, sku);
        let had = stock_of(purchases.get(key.as_bytes())?);
        let n = if take {
            had.saturating_sub(*qty)
        } else {
            had.saturating_add(*qty)
        };
        purchases.insert(key.as_bytes(), &n.to_be_bytes())?;
    }
    Ok(())
}

/// Puts an order's units back in stock and takes them off the user's counters, inside a
/// transaction.
fn return_units(
    stock: &sled::transaction::TransactionalTree,
    purchases: &sled::transaction::TransactionalTree,
    user_id: &str,
    lines: &[(String, u64)],
) -> Result<(), sled::transaction::UnabortableTransactionError> {
    for (sku, qty) in lines {
        let have = stock_of(stock.get(sku.as_bytes())?);
        stock.insert(sku.as_bytes(), &(have + qty).to_be_bytes())?;
    }
    count_units(purchases, user_id, lines, true)
}

fn units(order: &OrderRecord) -> Vec<(String, u64)> {
    order
        .lines
        .iter()
        .map(|l| (l.sku.clone(), u64::from(l.quantity)))
        .collect()
}

fn user_key(user_id: &str, created_at: i64, order_id: &str) -> Vec<u8> {
    format!("{user_id}/{created_at:020}/{order_id}").into_bytes()
}

fn time_key(created_at: i64, order_id: &str) -> Vec<u8> {
    format!("{created_at:020}/{order_id}").into_bytes()
}

/// How many index entries one admin page may look at before it returns (with a cursor),
/// so a filter that matches little cannot turn one request into a full scan.
const MAX_SCAN_PER_PAGE: usize = 10_000;

fn tx_error<E>(e: TransactionError<E>, abort: impl FnOnce(E) -> ReserveError) -> ReserveError {
    match e {
        TransactionError::Abort(a) => abort(a),
        TransactionError::Storage(s) => ReserveError::Store(StoreError::Sled(s)),
    }
}

impl SledOrders {
    pub fn open(db: &sled::Db) -> Result<Self, StoreError> {
        Ok(Self {
            stock: db.open_tree("stock")?,
            orders: db.open_tree("orders")?,
            user_orders: db.open_tree("user-orders")?,
            time_orders: db.open_tree("orders-by-time")?,
            by_payment: db.open_tree("orders-by-payment")?,
            idempotency: db.open_tree("idempotency")?,
            purchases: db.open_tree("user-purchases")?,
            unsettled: db.open_tree("orders-unsettled")?,
            meta: db.open_tree("orders-meta")?,
        })
        .and_then(|o| o.rebuild_purchases_if_missing().map(|()| o))
        .and_then(|o| o.rebuild_time_index_if_missing().map(|()| o))
        .and_then(|o| o.rebuild_unsettled_if_missing().map(|()| o))
    }

    /// Builds the unsettled index once for a database from before it (then it is kept in
    /// the same transactions as the orders).
    fn rebuild_unsettled_if_missing(&self) -> Result<(), StoreError> {
        if self.meta.contains_key(META_UNSETTLED)? {
            return Ok(());
        }
        self.unsettled.clear()?;
        for item in self.orders.iter() {
            let o: OrderRecord = decode(&item?.1)?;
            if o.is_unsettled() {
                self.unsettled
                    .insert(time_key(o.created_at, &o.id), o.id.as_bytes())?;
            }
        }
        self.meta.insert(META_UNSETTLED, b"1")?;
        Ok(())
    }

    /// Builds the time index of a database from before it existed. It is written in the
    /// same transactions as `orders`, so once built it cannot drift.
    fn rebuild_time_index_if_missing(&self) -> Result<(), StoreError> {
        if !self.time_orders.is_empty() || self.orders.is_empty() {
            return Ok(());
        }
        for item in self.orders.iter() {
            let o: OrderRecord = decode(&item?.1)?;
            self.time_orders
                .insert(time_key(o.created_at, &o.id), o.id.as_bytes())?;
        }
        Ok(())
    }

    /// Counts each user's units from the orders, once: for a database from before the
    /// counters, or from when they counted sold orders only.
    fn rebuild_purchases_if_missing(&self) -> Result<(), StoreError> {
        if self.meta.contains_key(META_PURCHASES)? {
            return Ok(());
        }
        let mut counts: std::collections::BTreeMap<String, u64> = Default::default();
        for item in self.orders.iter() {
            let o: OrderRecord = decode(&item?.1)?;
            if !o.stock_released {
                for l in &o.lines {
                    *counts.entry(purchase_key(&o.user_id, &l.sku)).or_default() += u64::from(l.quantity);
                }
            }
        }
        self.purchases.clear()?;
        for (k, n) in counts {
            self.purchases.insert(k.as_bytes(), &n.to_be_bytes())?;
        }
        self.meta.insert(META_PURCHASES, b"1")?;
        Ok(())
    }

    fn load(&self, id: &str) -> Result<Option<OrderRecord>, StoreError> {
        self.orders.get(id.as_bytes())?.map(|v| decode(&v)).transpose()
    }

    /// Every tree an order's reservation or discard changes, for one transaction.
    #[allow(clippy::type_complexity)]
    fn placement_trees(
        &self,
    ) -> (
        &sled::Tree,
        &sled::Tree,
        &sled::Tree,
        &sled::Tree,
        &sled::Tree,
        &sled::Tree,
    ) {
        (
            &self.stock,
            &self.orders,
            &self.user_orders,
            &self.time_orders,
            &self.purchases,
            &self.unsettled,
        )
    }
}

#[async_trait::async_trait]
impl OrderStore for SledOrders {
    /// Units of each of `skus` the user bought or holds reserved (every order whose units
    /// are out of stock).
    async fn purchased(&self, user_id: &str, skus: &[&str]) -> Result<Vec<(String, u64)>, StoreError> {
        skus.iter()
            .map(|sku| {
                let n = stock_of(self.purchases.get(purchase_key(user_id, sku).as_bytes())?);
                Ok((sku.to_string(), n))
            })
            .collect()
    }

    /// Takes the order's units out of stock and records it, atomically; nothing changes
    /// if any line is short.
    async fn reserve(&self, order: &OrderRecord) -> Result<(), ReserveError> {
        let mut wanted: std::collections::BTreeMap<&str, u64> = Default::default();
        for l in &order.lines {
            *wanted.entry(l.sku.as_str()).or_default() += u64::from(l.quantity);
        }
        let record = encode(order)?;
        let index = user_key(&order.user_id, order.created_at, &order.id);
        let by_time = time_key(order.created_at, &order.id);
        let lines = units(order);
        self.placement_trees()
            .transaction(
                |(stock, orders, user_orders, time_orders, purchases, unsettled)| {
                    if orders.get(order.id.as_bytes())?.is_some() {
                        return Err(Abortable::Abort(None));
                    }
                    for (sku, qty) in &wanted {
                        let have = stock_of(stock.get(sku.as_bytes())?);
                        if have < *qty {
                            return Err(Abortable::Abort(Some((sku.to_string(), have))));
                        }
                        stock.insert(sku.as_bytes(), &(have - qty).to_be_bytes())?;
                    }
                    count_units(purchases, &order.user_id, &lines, false)?;
                    orders.insert(order.id.as_bytes(), record.as_slice())?;
                    user_orders.insert(index.as_slice(), order.id.as_bytes())?;
                    time_orders.insert(by_time.as_slice(), order.id.as_bytes())?;
                    if order.is_unsettled() {
                        unsettled.insert(by_time.as_slice(), order.id.as_bytes())?;
                    }
                    Ok(())
                },
            )
            .map_err(|e| {
                tx_error(e, |short| match short {
                    Some((sku, available)) => ReserveError::OutOfStock { sku, available },
                    None => ReserveError::Exists(order.id.clone()),
                })
            })
    }

    /// Saves an order, returning its units to stock (and taking them off the user's
    /// counters) first when `release` is set and the *stored* order has not returned
    /// them yet. A compare-and-swap on `version`: when the stored order is not the one
    /// `order` was read as (another save came between), nothing is written and
    /// `StoreError::Conflict` says so. `order` takes the stored version and flag only
    /// once the transaction committed.
    async fn save(&self, order: &mut OrderRecord, release: bool) -> Result<(), StoreError> {
        let expected = order.version;
        let mut next = order.clone();
        next.version = expected + 1;
        let lines = units(order);
        let payment = order
            .payment
            .as_ref()
            .map(|p| payment_key(&p.provider, &p.provider_id));
        let by_time = time_key(order.created_at, &order.id);
        let unsettled_now = order.is_unsettled();
        let user_id = order.user_id.clone();
        let gave_back = (
            &self.stock,
            &self.orders,
            &self.by_payment,
            &self.purchases,
            &self.unsettled,
        )
            .transaction(|(stock, orders, by_payment, purchases, unsettled)| {
                let stored: OrderRecord = match orders.get(order.id.as_bytes())? {
                    Some(bytes) => {
                        decode(&bytes).map_err(|e| Abortable::Abort(SaveAbort::Corrupt(e.to_string())))?
                    }
                    None => return Err(Abortable::Abort(SaveAbort::Conflict)),
                };
                if stored.version != expected {
                    return Err(Abortable::Abort(SaveAbort::Conflict));
                }
                let give_back = release && !stored.stock_released;
                let mut record = next.clone();
                record.stock_released = stored.stock_released || give_back;
                let record =
                    encode(&record).map_err(|e| Abortable::Abort(SaveAbort::Corrupt(e.to_string())))?;
                if give_back {
                    return_units(stock, purchases, &user_id, &lines)?;
                }
                orders.insert(order.id.as_bytes(), record.as_slice())?;
                if let Some(p) = &payment {
                    by_payment.insert(p.as_bytes(), order.id.as_bytes())?;
                }
                if unsettled_now {
                    unsettled.insert(by_time.as_slice(), order.id.as_bytes())?;
                } else {
                    unsettled.remove(by_time.as_slice())?;
                }
                Ok::<bool, Abortable<SaveAbort>>(stored.stock_released || give_back)
            })
            .map_err(|e| match e {
                TransactionError::Storage(s) => StoreError::Sled(s),
                TransactionError::Abort(SaveAbort::Conflict) => {
                    StoreError::Conflict(format!("order {}", order.id))
                }
                TransactionError::Abort(SaveAbort::Corrupt(why)) => StoreError::Corrupt(why),
            })?;
        order.version = expected + 1;
        order.stock_released = gave_back;
        Ok(())
    }

    /// Deletes an order that never happened (its payment was declined), returning its
    /// units to stock. Like [`Self::save`], only the version the caller read:
    /// `StoreError::Conflict` otherwise, nothing changed.
    async fn discard(&self, order: &OrderRecord) -> Result<(), StoreError> {
        let lines = units(order);
        let index = user_key(&order.user_id, order.created_at, &order.id);
        let by_time = time_key(order.created_at, &order.id);
        self.placement_trees()
            .transaction(
                |(stock, orders, user_orders, time_orders, purchases, unsettled)| {
                    // Whether the units are still out is the stored order's to say, not
                    // the caller's copy's; and a copy older than the stored order (another
                    // save came between) discards nothing.
                    let held = match orders.get(order.id.as_bytes())? {
                        Some(bytes) => {
                            let stored = decode::<OrderRecord>(&bytes)
                                .map_err(|e| Abortable::Abort(SaveAbort::Corrupt(e.to_string())))?;
                            if stored.version != order.version {
                                return Err(Abortable::Abort(SaveAbort::Conflict));
                            }
                            orders.remove(order.id.as_bytes())?;
                            !stored.stock_released
                        }
                        None => false,
                    };
                    if held {
                        return_units(stock, purchases, &order.user_id, &lines)?;
                    }
                    user_orders.remove(index.as_slice())?;
                    time_orders.remove(by_time.as_slice())?;
                    unsettled.remove(by_time.as_slice())?;
                    Ok::<(), Abortable<SaveAbort>>(())
                },
            )
            .map_err(|e| match e {
                TransactionError::Storage(s) => StoreError::Sled(s),
                TransactionError::Abort(SaveAbort::Conflict) => {
                    StoreError::Conflict(format!("order {}", order.id))
                }
                TransactionError::Abort(SaveAbort::Corrupt(why)) => StoreError::Corrupt(why),
            })
    }

    async fn get(&self, id: &str) -> Result<Option<OrderRecord>, StoreError> {
        self.load(id)
    }

    /// The order paid through `plugin` with the provider's `provider_id`, or `None` (also
    /// when that id belongs to an order paid through another plugin).
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
            .load(&String::from_utf8_lossy(&id))?
            .filter(|o| o.paid_through(plugin, provider_id)))
    }

    /// As [`OrderStore::unsettled`], only the ones `wanted` keeps (skipped ones do not count
    /// against `limit`, so orders waiting for a retry do not hide newer ones).
    async fn unsettled_where(
        &self,
        created_before: i64,
        limit: usize,
        wanted: &(dyn for<'i> Fn(&'i str) -> bool + Send + Sync),
    ) -> Result<Vec<String>, StoreError> {
        let end = format!("{:020}~", created_before.max(0)).into_bytes();
        let mut out = Vec::new();
        for item in self.unsettled.range(..end) {
            if out.len() >= limit {
                break;
            }
            let id = String::from_utf8_lossy(&item?.1).into_owned();
            if wanted(&id) {
                out.push(id);
            }
        }
        Ok(out)
    }

    /// A page of a user's orders, newest first: at most `limit` orders older than the
    /// `before` position (a position returned by an earlier page), and the position to
    /// continue from when more remain.
    async fn page_for_user(
        &self,
        user_id: &str,
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
            if let Some(o) = self.load(&String::from_utf8_lossy(&id))? {
                out.push(o);
                last_key = Some(key.to_vec());
            }
        }
        Ok((out, None))
    }

    /// A page of all orders, newest first, optionally only those in `status`: like
    /// `page_for_user`, but a page also ends after [`MAX_SCAN_PER_PAGE`] index entries
    /// (with a position to go on from), so a rare status never means a full scan.
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
            if let Some(o) = self.load(&String::from_utf8_lossy(&id))? {
                if status.is_none_or(|s| o.status == s) {
                    out.push(o);
                }
            }
        }
        Ok((out, None))
    }

    async fn stock(&self, sku: &str) -> Result<u64, StoreError> {
        Ok(stock_of(self.stock.get(sku.as_bytes())?))
    }

    /// Claims `key` for a request with `hash`. A claim older than `abandoned_after_ms`
    /// without a response is taken over (its request died with the process).
    async fn claim(
        &self,
        key: &str,
        hash: &str,
        order_id: &str,
        now: i64,
        abandoned_after_ms: i64,
    ) -> Result<Claim, StoreError> {
        loop {
            let current = self.idempotency.get(key.as_bytes())?;
            let next = match &current {
                None => IdempotencyRecord {
                    request_hash: hash.to_string(),
                    order_id: order_id.to_string(),
                    response: None,
                    created_at: now,
                    claimed_at: now,
                },
                Some(bytes) => {
                    let rec: IdempotencyRecord = decode(bytes)?;
                    if rec.request_hash != hash {
                        return Ok(Claim::Mismatch);
                    }
                    if let Some(done) = rec.response {
                        return Ok(Claim::Done(done));
                    }
                    if now - rec.claimed_at < abandoned_after_ms {
                        return Ok(Claim::InFlight);
                    }
                    IdempotencyRecord {
                        claimed_at: now,
                        ..rec
                    }
                }
            };
            let swapped = self
                .idempotency
                .compare_and_swap(key.as_bytes(), current, Some(encode(&next)?))?;
            if swapped.is_ok() {
                return Ok(Claim::Fresh);
            }
        }
    }

    /// Stores the response for a claimed key.
    async fn complete(&self, key: &str, response: StoredResponse) -> Result<(), StoreError> {
        if let Some(bytes) = self.idempotency.get(key.as_bytes())? {
            let mut rec: IdempotencyRecord = decode(&bytes)?;
            rec.response = Some(response);
            self.idempotency.insert(key.as_bytes(), encode(&rec)?)?;
        }
        Ok(())
    }

    /// Forgets a claim whose request ended without a response worth replaying.
    async fn release_claim(&self, key: &str) -> Result<(), StoreError> {
        self.idempotency.remove(key.as_bytes())?;
        Ok(())
    }

    /// Forgets every claim still waiting for its response: at start-up these belong to
    /// requests that died with the previous process, and their retries may go ahead at
    /// once (their orders were recovered first). Returns how many.
    async fn release_unfinished_claims(&self) -> Result<usize, StoreError> {
        let mut released = 0;
        for item in self.idempotency.iter() {
            let (k, v) = item?;
            let rec: IdempotencyRecord = decode(&v)?;
            if rec.response.is_none() {
                self.idempotency.remove(k)?;
                released += 1;
            }
        }
        Ok(released)
    }

    /// Drops idempotency records older than `max_age_ms`; returns how many.
    async fn expire_idempotency(&self, now: i64, max_age_ms: i64) -> Result<usize, StoreError> {
        let mut removed = 0;
        for item in self.idempotency.iter() {
            let (k, v) = item?;
            let rec: IdempotencyRecord = decode(&v)?;
            if rec.response.is_some() && now - rec.created_at > max_age_ms {
                self.idempotency.remove(k)?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
#[path = "orders_tests.rs"]
mod tests;
