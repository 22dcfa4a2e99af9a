//! [`ContactStore`] on PostgreSQL: one table keyed by (owner, id), so a user's contacts
//! are one index range and another user's are unreachable by construction.

use super::{from_json, to_json, Pg};
use crate::store::{ContactRecord, ContactStore, StoreError};

pub struct PgContacts {
    pg: Pg,
}

impl PgContacts {
    pub fn new(pg: &Pg) -> Self {
        Self { pg: pg.clone() }
    }
}

#[async_trait::async_trait]
impl ContactStore for PgContacts {
    async fn put(&self, c: &ContactRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO contacts (owner_id, id, record) VALUES ($1, $2, $3)
             ON CONFLICT (owner_id, id) DO UPDATE SET record = EXCLUDED.record",
        )
        .bind(&c.owner_id)
        .bind(&c.id)
        .bind(to_json(c)?)
        .execute(self.pg.pool())
        .await?;
        Ok(())
    }

    async fn get(&self, owner_id: &str, id: &str) -> Result<Option<ContactRecord>, StoreError> {
        let record: Option<serde_json::Value> =
            sqlx::query_scalar("SELECT record FROM contacts WHERE owner_id = $1 AND id = $2")
                .bind(owner_id)
                .bind(id)
                .fetch_optional(self.pg.pool())
                .await?;
        record.map(from_json).transpose()
    }

    async fn delete(&self, owner_id: &str, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM contacts WHERE owner_id = $1 AND id = $2")
            .bind(owner_id)
            .bind(id)
            .execute(self.pg.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn list(&self, owner_id: &str) -> Result<Vec<ContactRecord>, StoreError> {
        let rows: Vec<serde_json::Value> =
            sqlx::query_scalar("SELECT record FROM contacts WHERE owner_id = $1 ORDER BY id")
                .bind(owner_id)
                .fetch_all(self.pg.pool())
                .await?;
        rows.into_iter().map(from_json).collect()
    }

    async fn count(&self, owner_id: &str) -> Result<usize, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM contacts WHERE owner_id = $1")
            .bind(owner_id)
            .fetch_one(self.pg.pool())
            .await?;
        Ok(usize::try_from(n).unwrap_or(0))
    }
}
