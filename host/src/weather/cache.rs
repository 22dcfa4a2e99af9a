//! A TTL cache whose misses are coalesced: the first request for a key starts the fetch,
//! everyone arriving before it finishes awaits the same fetch.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::future::{BoxFuture, Shared};

/// Most places kept; past this, expired entries are dropped first, then the oldest.
const MAX_ENTRIES: usize = 10_000;

/// How a result was obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    /// From the cache, within its TTL.
    Hit,
    /// Fetched for this request (or for a concurrent one it joined).
    Miss,
    /// The provider failed; an older result is served.
    Stale,
}

impl Freshness {
    pub fn as_str(self) -> &'static str {
        match self {
            Freshness::Hit => "hit",
            Freshness::Miss => "miss",
            Freshness::Stale => "stale",
        }
    }
}

struct Entry<V> {
    value: V,
    at: Instant,
}

/// A fetch many requests can await at once.
pub type SharedFetch<V, E> = Shared<BoxFuture<'static, Result<V, E>>>;

pub struct ReportCache<V, E> {
    ttl: Duration,
    stale_for: Duration,
    entries: Mutex<HashMap<String, Entry<V>>>,
    inflight: Mutex<HashMap<String, SharedFetch<V, E>>>,
}

impl<V: Clone, E: Clone> ReportCache<V, E> {
    pub fn new(ttl: Duration, stale_for: Duration) -> Self {
        Self {
            ttl,
            stale_for,
            entries: Mutex::new(HashMap::new()),
            inflight: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, key: &str, max_age: Duration) -> Option<(V, Duration)> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let e = entries.get(key)?;
        let age = e.at.elapsed();
        (age < max_age).then(|| (e.value.clone(), age))
    }

    /// The value for `key`: cached if fresh, else from one shared `start()`ed fetch; on
    /// failure a stale value if one is young enough, else the error.
    pub async fn get_or_fetch(
        &self,
        key: &str,
        start: impl FnOnce() -> SharedFetch<V, E>,
    ) -> Result<(V, Freshness, Duration), E> {
        if let Some((value, age)) = self.cached(key, self.ttl) {
            return Ok((value, Freshness::Hit, age));
        }
        let fetch = {
            let mut inflight = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
            inflight.entry(key.to_string()).or_insert_with(start).clone()
        };
        let outcome = fetch.await;
        self.inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
        match outcome {
            Ok(value) => {
                self.store(key, value.clone());
                Ok((value, Freshness::Miss, Duration::ZERO))
            }
            Err(e) => match self.cached(key, self.ttl + self.stale_for) {
                Some((value, age)) => Ok((value, Freshness::Stale, age)),
                None => Err(e),
            },
        }
    }

    fn store(&self, key: &str, value: V) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(key) {
            let keep = self.ttl + self.stale_for;
            entries.retain(|_, e| e.at.elapsed() < keep);
            if entries.len() >= MAX_ENTRIES {
                if let Some(oldest) = entries.iter().min_by_key(|(_, e)| e.at).map(|(k, _)| k.clone()) {
                    entries.remove(&oldest);
                }
            }
        }
        entries.insert(
            key.to_string(),
            Entry {
                value,
                at: Instant::now(),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::future::FutureExt;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    type F = SharedFetch<u32, String>;

    fn slow(value: Result<u32, String>, calls: &Arc<AtomicUsize>) -> F {
        let calls = calls.clone();
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            value
        }
        .boxed()
        .shared()
    }

    #[tokio::test]
    async fn concurrent_misses_share_one_fetch_then_hit() {
        let cache: Arc<ReportCache<u32, String>> =
            Arc::new(ReportCache::new(Duration::from_secs(60), Duration::ZERO));
        let calls = Arc::new(AtomicUsize::new(0));
        let waiters: Vec<_> = (0..100)
            .map(|_| {
                let (cache, calls) = (cache.clone(), calls.clone());
                tokio::spawn(async move { cache.get_or_fetch("k", || slow(Ok(7), &calls)).await })
            })
            .collect();
        for w in waiters {
            assert_eq!(w.await.unwrap().unwrap().0, 7);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let (v, f, _) = cache.get_or_fetch("k", || slow(Ok(8), &calls)).await.unwrap();
        assert_eq!((v, f), (7, Freshness::Hit));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn failures_serve_stale_values_within_the_window() {
        let cache: ReportCache<u32, String> = ReportCache::new(Duration::ZERO, Duration::from_secs(60));
        let calls = Arc::new(AtomicUsize::new(0));
        assert!(cache
            .get_or_fetch("k", || slow(Err("down".into()), &calls))
            .await
            .is_err());
        cache.get_or_fetch("k", || slow(Ok(1), &calls)).await.unwrap();
        let (v, f, _) = cache
            .get_or_fetch("k", || slow(Err("down".into()), &calls))
            .await
            .unwrap();
        assert_eq!((v, f), (1, Freshness::Stale));
    }
}
