//! A plugin's key-value store: a backend (sled today) behind [`KvBackend`], with the
//! host's limits on top (key and value size, total quota) so a plugin cannot fill the disk.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;
/// Most keys one `list_keys` call returns.
pub const MAX_LIST: u32 = 1000;

/// The storage operations a plugin namespace needs. Implementations must make each
/// operation atomic on its own.
pub trait KvBackend: Send + Sync {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, sled::Error>;
    /// Stores `value`, returning the previous value.
    fn insert(&self, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>, sled::Error>;
    /// Removes `key`, returning the previous value.
    fn remove(&self, key: &[u8]) -> Result<Option<Vec<u8>>, sled::Error>;
    /// Keys with `prefix`, strictly after `start_after`, in order, at most `limit`.
    fn keys(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, sled::Error>;
    /// Sets `key` to `new` (None = remove) iff it currently holds `expected`.
    fn compare_and_swap(
        &self,
        key: &[u8],
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<bool, sled::Error>;
    /// Bytes of keys and values stored (computed at start-up).
    fn stored_bytes(&self) -> Result<u64, sled::Error>;
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

/// One plugin's namespace with its limits.
#[derive(Clone)]
pub struct PluginKv {
    backend: Arc<dyn KvBackend>,
    value_cap: u64,
    quota: u64,
    used: Arc<AtomicU64>,
}

impl PluginKv {
    pub fn new(backend: Arc<dyn KvBackend>, value_cap: u64, quota: u64) -> Result<Self, sled::Error> {
        let used = backend.stored_bytes()?;
        Ok(Self {
            backend,
            value_cap,
            quota,
            used: Arc::new(AtomicU64::new(used)),
        })
    }

    pub fn used_bytes(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        check_key(key)?;
        Ok(self.backend.get(key.as_bytes())?)
    }

    pub fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        check_key(key)?;
        self.check_value(value)?;
        let old = self.backend.get(key.as_bytes())?;
        self.check_quota(key, old.as_deref(), Some(value))?;
        let old = self.backend.insert(key.as_bytes(), value)?;
        self.account(key, old.as_deref(), Some(value));
        Ok(())
    }

    pub fn delete(&self, key: &str) -> Result<bool, KvError> {
        check_key(key)?;
        let old = self.backend.remove(key.as_bytes())?;
        self.account(key, old.as_deref(), None);
        Ok(old.is_some())
    }

    pub fn list_keys(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, KvError> {
        let limit = limit.min(MAX_LIST) as usize;
        let keys = self
            .backend
            .keys(prefix.as_bytes(), start_after.map(str::as_bytes), limit)?;
        // Keys are only ever written from `&str`, so they are UTF-8.
        Ok(keys
            .into_iter()
            .map(|k| String::from_utf8_lossy(&k).into_owned())
            .collect())
    }

    pub fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        check_key(key)?;
        for _ in 0..64 {
            let current = self.backend.get(key.as_bytes())?;
            let value = match &current {
                None => 0,
                Some(bytes) => std::str::from_utf8(bytes)
                    .ok()
                    .and_then(|s| s.parse::<i64>().ok())
                    .ok_or_else(|| KvError::NotACounter(key.to_string()))?,
            };
            let next = value.checked_add(delta).ok_or(KvError::Overflow)?;
            let encoded = next.to_string();
            self.check_quota(key, current.as_deref(), Some(encoded.as_bytes()))?;
            if self
                .backend
                .compare_and_swap(key.as_bytes(), current.as_deref(), Some(encoded.as_bytes()))?
            {
                self.account(key, current.as_deref(), Some(encoded.as_bytes()));
                return Ok(next);
            }
        }
        Err(KvError::Contention)
    }

    pub fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<bool, KvError> {
        check_key(key)?;
        if let Some(v) = new {
            self.check_value(v)?;
        }
        self.check_quota(key, expected, new)?;
        let swapped = self.backend.compare_and_swap(key.as_bytes(), expected, new)?;
        if swapped {
            self.account(key, expected, new);
        }
        Ok(swapped)
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

    fn check_quota(&self, key: &str, old: Option<&[u8]>, new: Option<&[u8]>) -> Result<(), KvError> {
        let projected =
            self.used_bytes() - entry_size(key, old).min(self.used_bytes()) + entry_size(key, new);
        if new.is_some() && projected > self.quota {
            return Err(KvError::QuotaExceeded { quota: self.quota });
        }
        Ok(())
    }

    fn account(&self, key: &str, old: Option<&[u8]>, new: Option<&[u8]>) {
        let (remove, add) = (entry_size(key, old), entry_size(key, new));
        if add >= remove {
            self.used.fetch_add(add - remove, Ordering::Relaxed);
        } else {
            let _ = self.used.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                Some(u.saturating_sub(remove - add))
            });
        }
    }
}

fn entry_size(key: &str, value: Option<&[u8]>) -> u64 {
    value.map_or(0, |v| (key.len() + v.len()) as u64)
}

fn check_key(key: &str) -> Result<(), KvError> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(KvError::BadKey);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SledKv;

    fn kv(value_cap: u64, quota: u64) -> PluginKv {
        let db = sled::Config::new().temporary(true).open().unwrap();
        PluginKv::new(
            Arc::new(SledKv::new(db.open_tree("t").unwrap())),
            value_cap,
            quota,
        )
        .unwrap()
    }

    #[test]
    fn set_get_delete_and_list() {
        let kv = kv(1024, 1 << 20);
        kv.set("a/1", b"x").unwrap();
        kv.set("a/2", b"y").unwrap();
        kv.set("b/1", b"z").unwrap();
        assert_eq!(kv.get("a/1").unwrap().as_deref(), Some(&b"x"[..]));
        assert_eq!(kv.list_keys("a/", None, 10).unwrap(), vec!["a/1", "a/2"]);
        assert_eq!(kv.list_keys("a/", Some("a/1"), 10).unwrap(), vec!["a/2"]);
        assert_eq!(kv.list_keys("", None, 2).unwrap().len(), 2);
        assert!(kv.delete("a/1").unwrap());
        assert!(!kv.delete("a/1").unwrap());
        assert_eq!(kv.get("a/1").unwrap(), None);
        assert_eq!(kv.used_bytes(), 8); // "a/2"+"y" and "b/1"+"z"
    }

    #[test]
    fn increments_and_swaps_atomically() {
        let kv = kv(1024, 1 << 20);
        assert_eq!(kv.increment("n", 5).unwrap(), 5);
        assert_eq!(kv.increment("n", -2).unwrap(), 3);
        kv.set("s", b"text").unwrap();
        assert_eq!(kv.increment("s", 1), Err(KvError::NotACounter("s".into())));
        kv.set("max", i64::MAX.to_string().as_bytes()).unwrap();
        assert_eq!(kv.increment("max", 1), Err(KvError::Overflow));
        assert!(kv.compare_and_swap("c", None, Some(b"1")).unwrap());
        assert!(!kv.compare_and_swap("c", None, Some(b"2")).unwrap());
        assert!(kv.compare_and_swap("c", Some(b"1"), None).unwrap());
        assert_eq!(kv.get("c").unwrap(), None);
    }

    #[test]
    fn enforces_key_value_and_quota_limits() {
        let kv = kv(10, 30);
        assert_eq!(kv.set("", b"x"), Err(KvError::BadKey));
        assert_eq!(kv.set(&"k".repeat(MAX_KEY_BYTES + 1), b"x"), Err(KvError::BadKey));
        assert_eq!(
            kv.set("k", &[0; 11]),
            Err(KvError::ValueTooLarge { size: 11, limit: 10 })
        );
        kv.set("k1", &[0; 10]).unwrap();
        kv.set("k2", &[0; 10]).unwrap();
        assert_eq!(kv.set("k3", &[0; 10]), Err(KvError::QuotaExceeded { quota: 30 }));
        // Replacing a value in place counts the old one out.
        kv.set("k2", &[1; 10]).unwrap();
        kv.delete("k1").unwrap();
        kv.set("k3", &[0; 10]).unwrap();
        assert_eq!(kv.used_bytes(), 24);
    }
}
