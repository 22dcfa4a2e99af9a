//! Process-local bookkeeping for checkouts: which orders a task of this process is
//! driving (the reconciler leaves those alone, and their idempotency claims are never
//! taken over); one lock per customer that serializes pricing and reservation, so a
//! per-customer limit sees the units of the customer's other checkouts; and one lock per
//! order, held by whatever reads, changes and saves it (its checkout, a provider webhook,
//! an admin refund, the reconciler), so two of them never work from the same stale copy.
//! The store's version check on every save backs these up across processes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use crate::store::postgres::driving::Driving;
use crate::store::StoreError;

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A replica's hold on an order it drives (see `store::postgres::driving`), given back
/// when dropped. Without replicas there is nothing to hold.
pub(super) struct Lease {
    driving: Option<Arc<Driving>>,
    id: String,
}

impl Lease {
    /// Takes the lease of `id`; `None` while another live replica drives that order.
    pub(super) async fn take(driving: &Option<Arc<Driving>>, id: &str) -> Result<Option<Self>, StoreError> {
        if let Some(d) = driving {
            if !d.take(id).await? {
                return Ok(None);
            }
        }
        Ok(Some(Self {
            driving: driving.clone(),
            id: id.to_string(),
        }))
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(d) = &self.driving {
            d.give_back(&self.id);
        }
    }
}

/// Order ids a task of this process is working on, with how many tasks (a checkout and
/// its retry's wait never overlap, but counting keeps `Drop` exact regardless).
#[derive(Default)]
pub(super) struct InFlight(Mutex<HashMap<String, usize>>);

impl InFlight {
    /// Marks `order_id` as driven until the guard is dropped (also on panic).
    pub fn enter(&self, order_id: &str) -> InFlightGuard<'_> {
        *locked(&self.0).entry(order_id.to_string()).or_default() += 1;
        InFlightGuard {
            set: self,
            order_id: order_id.to_string(),
        }
    }

    pub fn contains(&self, order_id: &str) -> bool {
        locked(&self.0).contains_key(order_id)
    }

    pub fn is_empty(&self) -> bool {
        locked(&self.0).is_empty()
    }
}

pub(super) struct InFlightGuard<'a> {
    set: &'a InFlight,
    order_id: String,
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        let mut map = locked(&self.set.0);
        if let Some(n) = map.get_mut(&self.order_id) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.order_id);
            }
        }
    }
}

/// When the reconciler may look at an order again after failing to settle it: the
/// wait doubles with each failure (from `first` up to `max`), so orders whose provider
/// cannot answer are not asked every pass, and newer orders get their turn.
pub(super) struct Backoff {
    first: std::time::Duration,
    max: std::time::Duration,
    orders: Mutex<HashMap<String, (u32, std::time::Instant)>>,
}

impl Backoff {
    pub fn new(first: std::time::Duration, max: std::time::Duration) -> Self {
        Self {
            first,
            max,
            orders: Mutex::default(),
        }
    }

    pub fn due(&self, order_id: &str, now: std::time::Instant) -> bool {
        locked(&self.orders)
            .get(order_id)
            .is_none_or(|(_, next)| *next <= now)
    }

    pub fn failed(&self, order_id: &str, now: std::time::Instant) {
        let mut orders = locked(&self.orders);
        let failures = orders.get(order_id).map_or(0, |(n, _)| *n).saturating_add(1);
        let wait = self
            .first
            .saturating_mul(1 << failures.min(16).saturating_sub(1))
            .min(self.max);
        orders.insert(order_id.to_string(), (failures, now + wait));
    }

    pub fn settled(&self, order_id: &str) {
        locked(&self.orders).remove(order_id);
    }

    /// Forgets orders due for longer than the longest wait: the reconciler would have
    /// taken them again had they still been unsettled (a webhook or an admin settled
    /// them), so their entries would otherwise stay for the life of the process.
    pub fn forget_stale(&self, now: std::time::Instant) {
        locked(&self.orders).retain(|_, (_, next)| now.saturating_duration_since(*next) < self.max);
    }
}

/// How many checkouts run at once, in all and per customer. Checkouts run in tasks of
/// their own that outlive their connections, so without this a client could close
/// connection after connection and leave an unbounded number of checkouts behind.
pub(super) struct Admission {
    max: usize,
    per_customer: usize,
    running: Mutex<(usize, HashMap<String, usize>)>,
}

/// Why a checkout was not admitted.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    /// The customer has `per_customer` checkouts running.
    Customer,
    /// The process has `max` checkouts running.
    Everyone,
}

impl Admission {
    pub fn new(max: usize, per_customer: usize) -> Self {
        Self {
            max,
            per_customer,
            running: Mutex::default(),
        }
    }

    /// A place for one more checkout of `user_id`, held until the ticket is dropped.
    pub fn admit(self: &Arc<Self>, user_id: &str) -> Result<Ticket, Refusal> {
        let mut running = locked(&self.running);
        let (total, customers) = &mut *running;
        let mine = customers.get(user_id).copied().unwrap_or(0);
        if mine >= self.per_customer {
            return Err(Refusal::Customer);
        }
        if *total >= self.max {
            return Err(Refusal::Everyone);
        }
        *total += 1;
        customers.insert(user_id.to_string(), mine + 1);
        Ok(Ticket {
            admission: self.clone(),
            user_id: user_id.to_string(),
        })
    }
}

pub(super) struct Ticket {
    admission: Arc<Admission>,
    user_id: String,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut running = locked(&self.admission.running);
        let (total, customers) = &mut *running;
        *total -= 1;
        if let Some(n) = customers.get_mut(&self.user_id) {
            *n -= 1;
            if *n == 0 {
                customers.remove(&self.user_id);
            }
        }
    }
}

/// One async lock per key (a customer, an order), created on demand and forgotten once
/// nobody holds it.
pub(super) struct KeyedLocks {
    locks: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
    /// Dead entries are swept when the map reaches this size (then it doubles), so the
    /// map stays proportional to the customers checking out at once.
    sweep_at: Mutex<usize>,
}

const FIRST_SWEEP: usize = 256;

impl Default for KeyedLocks {
    fn default() -> Self {
        Self {
            locks: Mutex::default(),
            sweep_at: Mutex::new(FIRST_SWEEP),
        }
    }
}

impl KeyedLocks {
    /// Waits for the key's lock; it is held until the guard is dropped.
    pub async fn lock(&self, key: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut map = locked(&self.locks);
            match map.get(key).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    let mut sweep_at = locked(&self.sweep_at);
                    if map.len() >= *sweep_at {
                        map.retain(|_, w| w.strong_count() > 0);
                        *sweep_at = (map.len() * 2).max(FIRST_SWEEP);
                    }
                    let lock = Arc::new(tokio::sync::Mutex::new(()));
                    map.insert(key.to_string(), Arc::downgrade(&lock));
                    lock
                }
            }
        };
        lock.lock_owned().await
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        locked(&self.locks).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_marks_end_with_their_guards() {
        let set = InFlight::default();
        let a = set.enter("o1");
        let b = set.enter("o1");
        assert!(set.contains("o1"));
        drop(a);
        assert!(set.contains("o1"), "still driven by the second");
        drop(b);
        assert!(!set.contains("o1"));
        assert!(set.is_empty());
    }

    #[test]
    fn backoff_doubles_up_to_its_cap_and_forgets_settled_orders() {
        let (s, now) = (std::time::Duration::from_secs(1), std::time::Instant::now());
        let b = Backoff::new(s, 4 * s);
        assert!(b.due("o", now));
        b.failed("o", now);
        assert!(!b.due("o", now) && b.due("o", now + s));
        b.failed("o", now);
        assert!(!b.due("o", now + s) && b.due("o", now + 2 * s));
        for _ in 0..40 {
            b.failed("o", now);
        }
        assert!(b.due("o", now + 4 * s), "capped");
        assert!(b.due("other", now));
        b.settled("o");
        assert!(b.due("o", now));
        b.failed("gone", now);
        b.forget_stale(now + 6 * s);
        assert!(locked(&b.orders).is_empty(), "settled elsewhere, forgotten");
    }

    #[test]
    fn admission_caps_each_customer_and_everyone_and_frees_on_drop() {
        let a = Arc::new(Admission::new(3, 2));
        let t1 = a.admit("alice").unwrap();
        let _t2 = a.admit("alice").unwrap();
        assert_eq!(a.admit("alice").err(), Some(Refusal::Customer));
        let _t3 = a.admit("bob").unwrap();
        assert_eq!(a.admit("carol").err(), Some(Refusal::Everyone));
        drop(t1);
        assert!(a.admit("alice").is_ok(), "a finished checkout frees its place");
        assert!(locked(&a.running).1.len() <= 2);
    }

    #[tokio::test]
    async fn a_customer_lock_serializes_that_customer_only_and_is_forgotten() {
        let locks = KeyedLocks::default();
        let held = locks.lock("alice").await;
        // Another customer is not blocked.
        let bob = tokio::time::timeout(std::time::Duration::from_millis(100), locks.lock("bob")).await;
        assert!(bob.is_ok());
        // Alice's second checkout waits for the first.
        let second = tokio::time::timeout(std::time::Duration::from_millis(100), locks.lock("alice")).await;
        assert!(second.is_err(), "waits while the first holds it");
        drop(held);
        let _again = locks.lock("alice").await;
        drop(bob);
        for i in 0..FIRST_SWEEP * 3 {
            drop(locks.lock(&format!("user-{i}")).await);
        }
        assert!(locks.len() <= FIRST_SWEEP + 1, "{} entries kept", locks.len());
    }
}
