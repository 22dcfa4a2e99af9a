//! A counting semaphore that is fair between plugins: a freed permit goes to the next
//! *plugin* in turn (round robin over the plugins that have waiters, first come first
//! served within one plugin), so a plugin with a long queue cannot make another
//! plugin's single waiter wait behind all of it. Used for the instance pool (who may
//! instantiate) and for the busy lanes (which CPU-bound guest may run next).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

/// Cheap to clone; clones share the permits.
#[derive(Clone)]
pub struct FairSemaphore {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Free permits. Never non-zero while anyone waits: a freed permit goes to a waiter
    /// first.
    available: usize,
    next_id: u64,
    /// Keys (plugins) with waiters, in the order they are served.
    turns: VecDeque<usize>,
    queues: HashMap<usize, VecDeque<Waiter>>,
}

struct Waiter {
    id: u64,
    tx: oneshot::Sender<FairPermit>,
}

/// One permit; dropping it hands it to the next waiter in turn (or frees it).
pub struct FairPermit {
    shared: Option<Arc<Shared>>,
}

impl FairSemaphore {
    pub fn new(permits: usize) -> Self {
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    available: permits,
                    ..State::default()
                }),
            }),
        }
    }

    /// Waits for a permit on behalf of `key`. Cancel-safe: dropping the future leaves
    /// the queue (or passes on a permit that was already on its way). `None` cannot
    /// happen while the semaphore exists (a queued waiter is always answered); callers
    /// treat it as "busy".
    pub async fn acquire(&self, key: usize) -> Option<FairPermit> {
        let (id, rx) = {
            let mut state = self.shared.lock();
            if state.available > 0 {
                state.available -= 1;
                return Some(FairPermit {
                    shared: Some(self.shared.clone()),
                });
            }
            let id = state.next_id;
            state.next_id += 1;
            let (tx, rx) = oneshot::channel();
            state.enqueue(key, Waiter { id, tx });
            (id, rx)
        };
        let queued = Queued {
            shared: &self.shared,
            key,
            id,
        };
        let permit = rx.await.ok();
        // Answered: there is nothing left to remove from the queue.
        std::mem::forget(queued);
        permit
    }

    /// Free permits right now (for tests and metrics).
    pub fn available(&self) -> usize {
        self.shared.lock().available
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    fn enqueue(&mut self, key: usize, waiter: Waiter) {
        let queue = self.queues.entry(key).or_default();
        if queue.is_empty() {
            self.turns.push_back(key);
        }
        queue.push_back(waiter);
    }

    /// The first waiter of the plugin whose turn it is; that plugin goes to the back.
    fn next_waiter(&mut self) -> Option<Waiter> {
        while let Some(key) = self.turns.pop_front() {
            let Some(queue) = self.queues.get_mut(&key) else {
                continue;
            };
            let waiter = queue.pop_front();
            if queue.is_empty() {
                self.queues.remove(&key);
            } else {
                self.turns.push_back(key);
            }
            if waiter.is_some() {
                return waiter;
            }
        }
        None
    }

    fn remove(&mut self, key: usize, id: u64) {
        let Some(queue) = self.queues.get_mut(&key) else {
            return;
        };
        queue.retain(|w| w.id != id);
        if queue.is_empty() {
            self.queues.remove(&key);
            self.turns.retain(|k| *k != key);
        }
    }
}

/// A waiter's place in the queue, given up if its future is dropped.
struct Queued<'a> {
    shared: &'a Arc<Shared>,
    key: usize,
    id: u64,
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.shared.lock().remove(self.key, self.id);
    }
}

impl Drop for FairPermit {
    fn drop(&mut self) {
        let Some(mut shared) = self.shared.take() else {
            return;
        };
        // Hand the permit over outside the lock. A waiter that went away between being
        // picked and being sent to gives it back, and the next one is tried.
        loop {
            // Picking a waiter and freeing the permit happen under one lock: between two
            // locks an acquirer could see no free permit, queue, and never be woken.
            let waiter = {
                let mut state = shared.lock();
                match state.next_waiter() {
                    Some(waiter) => waiter,
                    None => {
                        state.available += 1;
                        return;
                    }
                }
            };
            match waiter.tx.send(FairPermit { shared: Some(shared) }) {
                Ok(()) => return,
                Err(mut returned) => match returned.shared.take() {
                    Some(s) => shared = s,
                    None => return,
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Polls `f` once: whether it is ready.
    fn try_now<F: std::future::Future>(f: std::pin::Pin<&mut F>) -> Option<F::Output> {
        let waker = futures::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        match f.poll(&mut cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        }
    }

    #[tokio::test]
    async fn freed_permits_go_round_robin_between_keys() {
        let sem = FairSemaphore::new(1);
        let held = sem.acquire(0).await.unwrap();
        // Plugin 0 queues five waiters, then plugin 1 queues one.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut tasks = Vec::new();
        for (n, key) in [(0, 0), (1, 0), (2, 0), (3, 0), (4, 0), (5, 1)] {
            let (sem, tx) = (sem.clone(), tx.clone());
            tasks.push(tokio::spawn(async move {
                let permit = sem.acquire(key).await.unwrap();
                tx.send(n).unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
                drop(permit);
            }));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        drop(held);
        let mut order = Vec::new();
        for _ in 0..6 {
            order.push(rx.recv().await.unwrap());
        }
        // Plugin 1's only waiter is served second, not after all of plugin 0's.
        assert_eq!(order, [0, 5, 1, 2, 3, 4]);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(sem.available(), 1);
    }

    /// Release and acquire racing on two threads: every acquirer is eventually served
    /// (a permit freed while an acquirer queues must not be lost).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_waiter_is_forgotten_when_release_and_acquire_race() {
        let sem = FairSemaphore::new(1);
        let mut tasks = Vec::new();
        for key in 0..8 {
            let sem = sem.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..2_000 {
                    let permit = sem.acquire(key).await.unwrap();
                    drop(permit);
                }
            }));
        }
        for t in tasks {
            tokio::time::timeout(Duration::from_secs(30), t)
                .await
                .expect("an acquirer was never woken")
                .unwrap();
        }
        assert_eq!(sem.available(), 1);
    }

    #[tokio::test]
    async fn a_cancelled_waiter_leaves_the_queue_and_loses_no_permit() {
        let sem = FairSemaphore::new(1);
        let held = sem.acquire(0).await.unwrap();
        let mut gone = Box::pin(sem.acquire(1));
        assert!(try_now(gone.as_mut()).is_none());
        drop(gone);
        let mut next = Box::pin(sem.acquire(2));
        assert!(try_now(next.as_mut()).is_none());
        drop(held);
        assert!(
            try_now(next.as_mut()).is_some(),
            "the permit skipped the cancelled waiter"
        );
        assert_eq!(sem.available(), 1);

        // Cancelled after the permit was sent to it: the permit comes back.
        let held = sem.acquire(0).await.unwrap();
        let mut late = Box::pin(sem.acquire(1));
        assert!(try_now(late.as_mut()).is_none());
        drop(held);
        drop(late);
        assert_eq!(sem.available(), 1);
    }
}
