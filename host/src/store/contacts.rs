//! Contacts, one tree keyed by `owner/id`, so a user's contacts are one prefix scan and
//! another user's are unreachable by construction.

use serde::{Deserialize, Serialize};

use super::StoreError;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ContactRecord {
    pub id: String,
    pub owner_id: String,
    pub name: String,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub notes: Option<String>,
    pub tags: Vec<String>,
    /// Unix milliseconds.
    pub created_at: i64,
    pub updated_at: i64,
}

#[async_trait::async_trait]
pub trait ContactStore: Send + Sync {
    /// Inserts or replaces.
    async fn put(&self, contact: &ContactRecord) -> Result<(), StoreError>;
    async fn get(&self, owner_id: &str, id: &str) -> Result<Option<ContactRecord>, StoreError>;
    async fn delete(&self, owner_id: &str, id: &str) -> Result<bool, StoreError>;
    /// All of one owner's contacts.
    async fn list(&self, owner_id: &str) -> Result<Vec<ContactRecord>, StoreError>;
    async fn count(&self, owner_id: &str) -> Result<usize, StoreError>;
}

pub struct SledContacts {
    tree: sled::Tree,
}

impl SledContacts {
    pub fn open(db: &sled::Db) -> Result<Self, StoreError> {
        Ok(Self {
            tree: db.open_tree("contacts")?,
        })
    }
}

fn key(owner_id: &str, id: &str) -> Vec<u8> {
    format!("{owner_id}/{id}").into_bytes()
}

fn decode(bytes: &[u8]) -> Result<ContactRecord, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

#[async_trait::async_trait]
impl ContactStore for SledContacts {
    async fn put(&self, c: &ContactRecord) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(c).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.tree.insert(key(&c.owner_id, &c.id), bytes)?;
        Ok(())
    }

    async fn get(&self, owner_id: &str, id: &str) -> Result<Option<ContactRecord>, StoreError> {
        self.tree.get(key(owner_id, id))?.map(|v| decode(&v)).transpose()
    }

    async fn delete(&self, owner_id: &str, id: &str) -> Result<bool, StoreError> {
        Ok(self.tree.remove(key(owner_id, id))?.is_some())
    }

    async fn list(&self, owner_id: &str) -> Result<Vec<ContactRecord>, StoreError> {
        self.tree
            .scan_prefix(format!("{owner_id}/"))
            .map(|item| decode(&item?.1))
            .collect()
    }

    async fn count(&self, owner_id: &str) -> Result<usize, StoreError> {
        Ok(self.tree.scan_prefix(format!("{owner_id}/")).keys().count())
    }
}

#[cfg(test)]
#[path = "contacts_tests.rs"]
mod tests;
