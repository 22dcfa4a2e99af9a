//! Process-local bookkeeping for checkouts: which orders a task of this process is
//! driving (the reconciler leaves those alone, and their idempotency claims are never
//! taken over), and one lock per customer that serializes pricing and reservation, so a
//! per-customer limit sees the units of the customer's other checkouts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
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

/// One async lock per customer, created on demand and forgotten once nobody holds it.
pub(super) struct CustomerLocks {
    locks: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
    /// Dead entries are swept when the map reaches this size (then it doubles), so the
    /// map stays proportional to the customers checking out at once.
    sweep_at: Mutex<usize>,
}

const FIRST_SWEEP: usize = 256;

impl Default for CustomerLocks {
    fn default() -> Self {
        Self {
            locks: Mutex::default(),
            sweep_at: Mutex::new(FIRST_SWEEP),
        }
    }
}

impl CustomerLocks {
    /// Waits for the customer's lock; it is held until the guard is dropped.
    pub async fn lock(&self, user_id: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut map = locked(&self.locks);
            match map.get(user_id).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    let mut sweep_at = locked(&self.sweep_at);
                    if map.len() >= *sweep_at {
                        map.retain(|_, w| w.strong_count() > 0);
                        *sweep_at = (map.len() * 2).max(FIRST_SWEEP);
                    }
                    let lock = Arc::new(tokio::sync::Mutex::new(()));
                    map.insert(user_id.to_string(), Arc::downgrade(&lock));
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

    #[tokio::test]
    async fn a_customer_lock_serializes_that_customer_only_and_is_forgotten() {
        let locks = CustomerLocks::default();
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
