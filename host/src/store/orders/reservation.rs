//! sled's writes that move stock: reserve, save, discard. Each is one transaction over
//! the stock, the order, its indexes and the customer's counters, so stock never goes
//! below zero and units go back exactly once (decided by the *stored* order's
//! `stock_released`, never the caller's copy).

use std::collections::BTreeMap;

use sled::transaction::{
    ConflictableTransactionError as Abortable, TransactionError, Transactional, TransactionalTree,
    UnabortableTransactionError,
};

use super::sled_orders::{payment_key, purchase_key, time_key, user_key, SledOrders};
use super::{OrderRecord, ReserveError};
use crate::domain::UserId;
use crate::store::codec::{count_of, decode, encode};
use crate::store::StoreError;

/// Why an order save's transaction gave up.
enum SaveAbort {
    /// The stored order is not the version the caller read.
    Conflict,
    Corrupt(String),
}

fn save_error(e: TransactionError<SaveAbort>, order: &OrderRecord) -> StoreError {
    match e {
        TransactionError::Storage(s) => StoreError::Sled(s),
        TransactionError::Abort(SaveAbort::Conflict) => StoreError::Conflict(format!("order {}", order.id)),
        TransactionError::Abort(SaveAbort::Corrupt(why)) => StoreError::Corrupt(why),
    }
}

fn corrupt(e: StoreError) -> Abortable<SaveAbort> {
    Abortable::Abort(SaveAbort::Corrupt(e.to_string()))
}

/// Each line's sku and units.
fn units(order: &OrderRecord) -> Vec<(String, u64)> {
    order.units().map(|(sku, n)| (sku.to_string(), n)).collect()
}

/// Adds (or with `take`, takes back) an order's units to the user's counters, inside a
/// transaction; counters never go below zero.
fn count_units(
    purchases: &TransactionalTree,
    user_id: &UserId,
    lines: &[(String, u64)],
    take: bool,
) -> Result<(), UnabortableTransactionError> {
    for (sku, qty) in lines {
        let key = purchase_key(user_id, sku);
        let had = count_of(purchases.get(key.as_bytes())?);
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
    stock: &TransactionalTree,
    purchases: &TransactionalTree,
    user_id: &UserId,
    lines: &[(String, u64)],
) -> Result<(), UnabortableTransactionError> {
    for (sku, qty) in lines {
        let have = count_of(stock.get(sku.as_bytes())?);
        stock.insert(sku.as_bytes(), &(have + qty).to_be_bytes())?;
    }
    count_units(purchases, user_id, lines, true)
}

impl SledOrders {
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

    /// Takes the order's units out of stock and records it, atomically; nothing changes
    /// if any line is short or the order exists.
    pub(super) fn reserve_now(&self, order: &OrderRecord) -> Result<(), ReserveError> {
        let mut wanted: BTreeMap<&str, u64> = BTreeMap::new();
        for (sku, n) in order.units() {
            *wanted.entry(sku).or_default() += n;
        }
        let record = encode(order)?;
        let id = order.id.as_str().as_bytes();
        let index = user_key(&order.user_id, order.created_at, &order.id);
        let by_time = time_key(order.created_at, &order.id);
        let lines = units(order);
        self.placement_trees()
            .transaction(
                |(stock, orders, user_orders, time_orders, purchases, unsettled)| {
                    if orders.get(id)?.is_some() {
                        return Err(Abortable::Abort(None));
                    }
                    for (sku, qty) in &wanted {
                        let have = count_of(stock.get(sku.as_bytes())?);
                        if have < *qty {
                            return Err(Abortable::Abort(Some((sku.to_string(), have))));
                        }
                        stock.insert(sku.as_bytes(), &(have - qty).to_be_bytes())?;
                    }
                    count_units(purchases, &order.user_id, &lines, false)?;
                    orders.insert(id, record.as_slice())?;
                    user_orders.insert(index.as_slice(), id)?;
                    time_orders.insert(by_time.as_slice(), id)?;
                    if order.is_unsettled() {
                        unsettled.insert(by_time.as_slice(), id)?;
                    }
                    Ok(())
                },
            )
            .map_err(|e| match e {
                TransactionError::Abort(Some((sku, available))) => {
                    ReserveError::OutOfStock { sku, available }
                }
                TransactionError::Abort(None) => ReserveError::Exists(order.id.clone()),
                TransactionError::Storage(s) => ReserveError::Store(StoreError::Sled(s)),
            })
    }

    /// See [`super::OrderStore::save`]: a compare-and-swap on `version` that returns the
    /// units when `release` is set and the stored order still holds them. `order` takes
    /// the stored version and flag only once the transaction committed.
    pub(super) fn save_now(&self, order: &mut OrderRecord, release: bool) -> Result<(), StoreError> {
        let expected = order.version;
        let mut next = order.clone();
        next.version = expected + 1;
        let lines = units(order);
        let id = order.id.as_str().as_bytes();
        let payment = order
            .payment
            .as_ref()
            .map(|p| payment_key(&p.provider, &p.provider_id));
        let by_time = time_key(order.created_at, &order.id);
        let unsettled_now = order.is_unsettled();
        let gave_back = (
            &self.stock,
            &self.orders,
            &self.by_payment,
            &self.purchases,
            &self.unsettled,
        )
            .transaction(|(stock, orders, by_payment, purchases, unsettled)| {
                let stored: OrderRecord = match orders.get(id)? {
                    Some(bytes) => decode(&bytes).map_err(corrupt)?,
                    None => return Err(Abortable::Abort(SaveAbort::Conflict)),
                };
                if stored.version != expected {
                    return Err(Abortable::Abort(SaveAbort::Conflict));
                }
                let give_back = release && !stored.stock_released;
                let mut record = next.clone();
                record.stock_released = stored.stock_released || give_back;
                let record = encode(&record).map_err(corrupt)?;
                if give_back {
                    return_units(stock, purchases, &next.user_id, &lines)?;
                }
                orders.insert(id, record.as_slice())?;
                if let Some(p) = &payment {
                    by_payment.insert(p.as_bytes(), id)?;
                }
                if unsettled_now {
                    unsettled.insert(by_time.as_slice(), id)?;
                } else {
                    unsettled.remove(by_time.as_slice())?;
                }
                Ok::<bool, Abortable<SaveAbort>>(stored.stock_released || give_back)
            })
            .map_err(|e| save_error(e, order))?;
        order.version = expected + 1;
        order.stock_released = gave_back;
        Ok(())
    }

    /// Deletes an order that never happened (its payment was declined), returning its
    /// units to stock. Like [`Self::save_now`], only the version the caller read:
    /// `StoreError::Conflict` otherwise, nothing changed.
    pub(super) fn discard_now(&self, order: &OrderRecord) -> Result<(), StoreError> {
        let lines = units(order);
        let id = order.id.as_str().as_bytes();
        let index = user_key(&order.user_id, order.created_at, &order.id);
        let by_time = time_key(order.created_at, &order.id);
        self.placement_trees()
            .transaction(
                |(stock, orders, user_orders, time_orders, purchases, unsettled)| {
                    // Whether the units are still out is the stored order's to say, not
                    // the caller's copy's; and a copy older than the stored order (another
                    // save came between) discards nothing.
                    let held = match orders.get(id)? {
                        Some(bytes) => {
                            let stored: OrderRecord = decode(&bytes).map_err(corrupt)?;
                            if stored.version != order.version {
                                return Err(Abortable::Abort(SaveAbort::Conflict));
                            }
                            orders.remove(id)?;
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
            .map_err(|e| save_error(e, order))
    }
}
