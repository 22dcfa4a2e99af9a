//! A plugin's key-value store: a backend (sled or PostgreSQL) behind [`KvBackend`], with
//! the host's limits on top (key and value size, total quota) so a plugin cannot fill the
//! disk.

use std::sync::Arc;

/// Longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;
/// Most keys one `list_keys` call returns.
pub const MAX_LIST: u32 = 1000;

/// The storage operations a plugin namespace needs. Each is atomic on its own, and the
/// quota is the backend's to keep: with several replicas on one database only the
/// database can count a plugin's bytes exactly, so the check and the write happen in
/// one step there.
#[async_trait::async_trait]
pub trait KvBackend: Send + Sync {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError>;
    /// Stores `value` unless the namespace would then hold more than `quota` bytes.
    async fn set(&self, key: &str, value: &[u8], quota: u64) -> Result<(), KvError>;
    /// Removes `key`; whether it was there.
    async fn delete(&self, key: &str) -> Result<bool, KvError>;
    /// Keys with `prefix`, strictly after `start_after`, in byte order, at most `limit`.
    async fn keys(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, KvError>;
    /// Adds `delta` to the decimal counter at `key` (absent = 0) and returns the result.
    async fn increment(&self, key: &str, delta: i64, quota: u64) -> Result<i64, KvError>;
    /// Sets `key` to `new` (None = remove) iff it currently holds `expected`.
    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
        quota: u64,
    ) -> Result<bool, KvError>;
    /// Bytes of keys and values stored.
    async fn used_bytes(&self) -> Result<u64, KvError>;
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KvError {
    #[error("key is empty or longer than {MAX_KEY_BYTES} bytes")]
    BadKey,
    #[error("value of {size} bytes is over the limit of {limit} bytes")]
    ValueTooLarge { size: u64, limit: u64 },
    #[error("storage quota of {quota} bytes would be exceeded")]
    QuotaExceeded { quota: u64 },
    #[error("value at {0:?} is not a decimal integer counter")]
    NotACounter(String),
    #[error("counter overflow")]
    Overflow,
    #[error("too much contention on this key, retry")]
    Contention,
    #[error("storage error: {0}")]
    Storage(String),
}

impl From<sled::Error> for KvError {
    fn from(e: sled::Error) -> Self {
        KvError::Storage(e.to_string())
    }
}

impl From<super::StoreError> for KvError {
    fn from(e: super::StoreError) -> Self {
        match e {
            super::StoreError::Busy(_) => KvError::Contention,
            e => KvError::Storage(e.to_string()),
        }
    }
}

/// The counter after adding `delta` to the stored decimal text `current` (absent = 0).
pub fn next_counter(key: &str, current: Option<&[u8]>, delta: i64) -> Result<i64, KvError> {
    let value = match current {
        None => 0,
        Some(bytes) => std::str::from_utf8(bytes)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or_else(|| KvError::NotACounter(key.to_string()))?,
    };
    value.checked_add(delta).ok_or(KvError::Overflow)
}

/// What an entry counts against the quota.
pub fn entry_size(key: &str, value: Option<&[u8]>) -> u64 {
    value.map_or(0, |v| (key.len() + v.len()) as u64)
}

/// One plugin's namespace with its limits.
#[derive(Clone)]
pub struct PluginKv {
    backend: Arc<dyn KvBackend>,
    value_cap: u64,
    quota: u64,
}

impl PluginKv {
    pub fn new(backend: Arc<dyn KvBackend>, value_cap: u64, quota: u64) -> Self {
        Self {
            backend,
            value_cap,
            quota,
        }
    }

    pub async fn used_bytes(&self) -> Result<u64, KvError> {
        self.backend.used_bytes().await
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        check_key(key)?;
        self.backend.get(key).await
    }

    pub async fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        check_key(key)?;
        self.check_value(value)?;
        self.backend.set(key, value, self.quota).await
    }

    pub async fn delete(&self, key: &str) -> Result<bool, KvError> {
        check_key(key)?;
        self.backend.delete(key).await
    }

    pub async fn list_keys(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, KvError> {
        let limit = limit.min(MAX_LIST) as usize;
        self.backend.keys(prefix, start_after, limit).await
    }

    pub async fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        check_key(key)?;
        self.backend.increment(key, delta, self.quota).await
    }

    pub async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<bool, KvError> {
        check_key(key)?;
        if let Some(v) = new {
            self.check_value(v)?;
        }
        self.backend
            .compare_and_swap(key, expected, new, self.quota)
            .await
    }

    fn check_value(&self, value: &[u8]) -> Result<(), KvError> {
        if value.len() as u64 > self.value_cap {
            return Err(KvError::ValueTooLarge {
                size: value.len() as u64,
                limit: self.value_cap,
            });
        }
        Ok(())
    }
}

fn check_key(key: &str) -> Result<(), KvError> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(KvError::BadKey);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! One contract, both backends: every test runs on sled and on PostgreSQL.
    use super::*;
    use crate::store::postgres::{testing, PgKv};
    use crate::store::SledKv;

    async fn backends(value_cap: u64, quota: u64) -> Vec<(&'static str, PluginKv)> {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let sled = Arc::new(SledKv::new(db.open_tree("t").unwrap()).unwrap());
        let mut out = vec![("sled", PluginKv::new(sled, value_cap, quota))];
        if let Some(pg) = testing::fresh().await {
            let pg = Arc::new(PgKv::open(&pg, "plugin-a").await.unwrap());
            out.push(("postgres", PluginKv::new(pg, value_cap, quota)));
        }
        out
    }

    #[tokio::test]
    async fn set_get_delete_and_list() {
        for (backend, kv) in backends(1024, 1 << 20).await {
            kv.set("a/1", b"x").await.unwrap();
            kv.set("a/2", b"y").await.unwrap();
            kv.set("b/1", b"z").await.unwrap();
            assert_eq!(
                kv.get("a/1").await.unwrap().as_deref(),
                Some(&b"x"[..]),
                "{backend}"
            );
            assert_eq!(
                kv.list_keys("a/", None, 10).await.unwrap(),
                vec!["a/1", "a/2"],
                "{backend}"
            );
            assert_eq!(
                kv.list_keys("a/", Some("a/1"), 10).await.unwrap(),
                vec!["a/2"],
                "{backend}"
            );
            assert_eq!(kv.list_keys("", None, 2).await.unwrap().len(), 2, "{backend}");
            assert!(kv.delete("a/1").await.unwrap(), "{backend}");
            assert!(!kv.delete("a/1").await.unwrap(), "{backend}");
            assert_eq!(kv.get("a/1").await.unwrap(), None, "{backend}");
            assert_eq!(kv.used_bytes().await.unwrap(), 8, "{backend}"); // "a/2"+"y" and "b/1"+"z"
        }
    }

    #[tokio::test]
    async fn keys_are_listed_in_byte_order_within_their_prefix() {
        for (backend, kv) in backends(1024, 1 << 20).await {
            for k in ["a/é", "a/Z", "a/a", "a/-", "a0", "a/\u{10000}"] {
                kv.set(k, b"1").await.unwrap();
            }
            let listed = kv.list_keys("a/", None, 10).await.unwrap();
            let mut sorted = listed.clone();
            sorted.sort_by(|x, y| x.as_bytes().cmp(y.as_bytes()));
            assert_eq!(listed, sorted, "{backend}");
            assert_eq!(listed.len(), 5, "{backend}: a0 is outside a/");
        }
    }

    #[tokio::test]
    async fn increments_and_swaps_atomically() {
        for (backend, kv) in backends(1024, 1 << 20).await {
            assert_eq!(kv.increment("n", 5).await.unwrap(), 5, "{backend}");
            assert_eq!(kv.increment("n", -2).await.unwrap(), 3, "{backend}");
            kv.set("s", b"text").await.unwrap();
            assert_eq!(
                kv.increment("s", 1).await,
                Err(KvError::NotACounter("s".into())),
                "{backend}"
            );
            kv.set("max", i64::MAX.to_string().as_bytes()).await.unwrap();
            assert_eq!(kv.increment("max", 1).await, Err(KvError::Overflow), "{backend}");
            assert!(
                kv.compare_and_swap("c", None, Some(b"1")).await.unwrap(),
                "{backend}"
            );
            assert!(
                !kv.compare_and_swap("c", None, Some(b"2")).await.unwrap(),
                "{backend}"
            );
            assert!(
                kv.compare_and_swap("c", Some(b"1"), None).await.unwrap(),
                "{backend}"
            );
            assert_eq!(kv.get("c").await.unwrap(), None, "{backend}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_increments_of_one_new_key_all_count() {
        for (backend, kv) in backends(1024, 1 << 20).await {
            let tasks: Vec<_> = (0..16)
                .map(|_| {
                    let kv = kv.clone();
                    tokio::spawn(async move {
                        for _ in 0..20 {
                            kv.increment("hits", 1).await.unwrap();
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
            assert_eq!(
                kv.get("hits").await.unwrap().as_deref(),
                Some(&b"320"[..]),
                "{backend}"
            );
            assert_eq!(kv.used_bytes().await.unwrap(), 7, "{backend}");
        }
    }

    #[tokio::test]
    async fn enforces_key_value_and_quota_limits() {
        for (backend, kv) in backends(10, 30).await {
            assert_eq!(kv.set("", b"x").await, Err(KvError::BadKey), "{backend}");
            assert_eq!(
                kv.set(&"k".repeat(MAX_KEY_BYTES + 1), b"x").await,
                Err(KvError::BadKey)
            );
            assert_eq!(
                kv.set("k", &[0; 11]).await,
                Err(KvError::ValueTooLarge { size: 11, limit: 10 })
            );
            kv.set("k1", &[0; 10]).await.unwrap();
            kv.set("k2", &[0; 10]).await.unwrap();
            assert_eq!(
                kv.set("k3", &[0; 10]).await,
                Err(KvError::QuotaExceeded { quota: 30 }),
                "{backend}"
            );
            // Replacing a value in place counts the old one out.
            kv.set("k2", &[1; 10]).await.unwrap();
            kv.delete("k1").await.unwrap();
            kv.set("k3", &[0; 10]).await.unwrap();
            assert_eq!(kv.used_bytes().await.unwrap(), 24, "{backend}");
            assert_eq!(
                kv.increment("counter", 1).await,
                Err(KvError::QuotaExceeded { quota: 30 }),
                "{backend}: a counter counts too"
            );
            assert_eq!(
                kv.get("counter").await.unwrap(),
                None,
                "{backend}: nothing half-written"
            );
        }
    }
}
