//! [`KvBackend`] on a sled tree.

use super::KvBackend;

pub struct SledKv {
    tree: sled::Tree,
}

impl SledKv {
    pub fn new(tree: sled::Tree) -> Self {
        Self { tree }
    }
}

impl KvBackend for SledKv {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, sled::Error> {
        Ok(self.tree.get(key)?.map(|v| v.to_vec()))
    }

    fn insert(&self, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>, sled::Error> {
        Ok(self.tree.insert(key, value)?.map(|v| v.to_vec()))
    }

    fn remove(&self, key: &[u8]) -> Result<Option<Vec<u8>>, sled::Error> {
        Ok(self.tree.remove(key)?.map(|v| v.to_vec()))
    }

    fn keys(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, sled::Error> {
        let mut out = Vec::new();
        let iter = match start_after {
            Some(after) if after >= prefix => {
                let mut lower = after.to_vec();
                lower.push(0);
                self.tree.range(lower..)
            }
            _ => self.tree.range(prefix.to_vec()..),
        };
        for item in iter {
            let (key, _) = item?;
            if !key.starts_with(prefix) || out.len() >= limit {
                break;
            }
            out.push(key.to_vec());
        }
        Ok(out)
    }

    fn compare_and_swap(
        &self,
        key: &[u8],
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<bool, sled::Error> {
        Ok(self.tree.compare_and_swap(key, expected, new)?.is_ok())
    }

    fn stored_bytes(&self) -> Result<u64, sled::Error> {
        let mut total = 0u64;
        for item in self.tree.iter() {
            let (k, v) = item?;
            total += (k.len() + v.len()) as u64;
        }
        Ok(total)
    }
}
