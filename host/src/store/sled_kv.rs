//! [`KvBackend`] on a sled tree. One process owns a sled directory, so the quota is kept
//! as an in-memory count of the tree's bytes (computed once when the tree is opened) and
//! checked before each write.

use std::sync::atomic::{AtomicU64, Ordering};

use super::kv::{entry_size, next_counter};
use super::{KvBackend, KvError};

pub struct SledKv {
    tree: sled::Tree,
    used: AtomicU64,
}

impl SledKv {
    pub fn new(tree: sled::Tree) -> Result<Self, sled::Error> {
        let mut total = 0u64;
        for item in tree.iter() {
            let (k, v) = item?;
            total += (k.len() + v.len()) as u64;
        }
        Ok(Self {
            tree,
            used: AtomicU64::new(total),
        })
    }

    fn check_quota(
        &self,
        key: &str,
        old: Option<&[u8]>,
        new: Option<&[u8]>,
        quota: u64,
    ) -> Result<(), KvError> {
        let used = self.used.load(Ordering::Relaxed);
        let projected = used - entry_size(key, old).min(used) + entry_size(key, new);
        if new.is_some() && projected > quota {
            return Err(KvError::QuotaExceeded { quota });
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

#[async_trait::async_trait]
impl KvBackend for SledKv {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self.tree.get(key)?.map(|v| v.to_vec()))
    }

    async fn set(&self, key: &str, value: &[u8], quota: u64) -> Result<(), KvError> {
        let old = self.tree.get(key)?;
        self.check_quota(key, old.as_deref(), Some(value), quota)?;
        let old = self.tree.insert(key, value)?;
        self.account(key, old.as_deref(), Some(value));
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<bool, KvError> {
        let old = self.tree.remove(key)?;
        self.account(key, old.as_deref(), None);
        Ok(old.is_some())
    }

    async fn keys(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, KvError> {
        let mut out = Vec::new();
        let iter = match start_after {
            Some(after) if after >= prefix => {
                let mut lower = after.as_bytes().to_vec();
                lower.push(0);
                self.tree.range(lower..)
            }
            _ => self.tree.range(prefix.as_bytes().to_vec()..),
        };
        for item in iter {
            let (key, _) = item?;
            if !key.starts_with(prefix.as_bytes()) || out.len() >= limit {
                break;
            }
            // Keys are only ever written from `&str`, so they are UTF-8.
            out.push(String::from_utf8_lossy(&key).into_owned());
        }
        Ok(out)
    }

    async fn increment(&self, key: &str, delta: i64, quota: u64) -> Result<i64, KvError> {
        for _ in 0..64 {
            let current = self.tree.get(key)?;
            let next = next_counter(key, current.as_deref(), delta)?;
            let encoded = next.to_string();
            self.check_quota(key, current.as_deref(), Some(encoded.as_bytes()), quota)?;
            if self
                .tree
                .compare_and_swap(key, current.as_deref(), Some(encoded.as_bytes()))?
                .is_ok()
            {
                self.account(key, current.as_deref(), Some(encoded.as_bytes()));
                return Ok(next);
            }
        }
        Err(KvError::Contention)
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
        quota: u64,
    ) -> Result<bool, KvError> {
        self.check_quota(key, expected, new, quota)?;
        let swapped = self.tree.compare_and_swap(key, expected, new)?.is_ok();
        if swapped {
            self.account(key, expected, new);
        }
        Ok(swapped)
    }

    async fn used_bytes(&self) -> Result<u64, KvError> {
        Ok(self.used.load(Ordering::Relaxed))
    }
}
