//! [`KvBackend`] on PostgreSQL: one table for every plugin's entries, keyed by (plugin,
//! key bytes), and a usage row per plugin changed in the same transaction as each
//! write, so the quota holds for all replicas together. Each write locks its entry
//! (`FOR UPDATE`) and then the usage row, always in that order, so two writes never
//! deadlock each other; two first writes of one key (no row to lock yet) meet at the
//! primary key (`ON CONFLICT DO NOTHING` inserts nothing) and the loser runs again.

use super::{is_unique_violation, Contended, Pg};
use crate::store::kv::{entry_size, next_counter};
use crate::store::{KvBackend, KvError, StoreError};

pub struct PgKv {
    pg: Pg,
    plugin: String,
}

impl PgKv {
    pub async fn open(pg: &Pg, plugin: &str) -> Result<Self, StoreError> {
        sqlx::query("INSERT INTO plugin_kv_usage (plugin, bytes) VALUES ($1, 0) ON CONFLICT DO NOTHING")
            .bind(plugin)
            .execute(pg.pool())
            .await?;
        Ok(Self {
            pg: pg.clone(),
            plugin: plugin.to_string(),
        })
    }

    /// One attempt of a write: reads the entry under a lock, lets `decide` say what the
    /// new value is (or that nothing changes), checks the quota and writes both rows.
    async fn write<T>(
        &self,
        key: &str,
        quota: u64,
        decide: impl Fn(Option<&[u8]>) -> Result<Change<T>, KvError>,
    ) -> Result<T, KvError> {
        let mut tx = self.pg.pool().begin().await.map_err(db)?;
        let current: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT value FROM plugin_kv WHERE plugin = $1 AND key = $2 FOR UPDATE")
                .bind(&self.plugin)
                .bind(key.as_bytes())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
        let (new, answer) = match decide(current.as_deref())? {
            Change::Keep(answer) => return Ok(answer),
            Change::Write(new, answer) => (new, answer),
        };
        let delta = entry_size(key, new.as_deref()) as i64 - entry_size(key, current.as_deref()) as i64;
        if delta != 0 {
            let within: Option<i64> = sqlx::query_scalar(
                "UPDATE plugin_kv_usage SET bytes = GREATEST(bytes + $2, 0)
                  WHERE plugin = $1 AND ($2 <= 0 OR bytes + $2 <= $3) RETURNING bytes",
            )
            .bind(&self.plugin)
            .bind(delta)
            .bind(i64::try_from(quota).unwrap_or(i64::MAX))
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
            if within.is_none() && new.is_some() {
                return Err(KvError::QuotaExceeded { quota });
            }
        }
        match (&current, &new) {
            // A first write: another may be making the same key right now, and the lock
            // above locked no row. Only one insert wins; the other runs again and then
            // reads the winner's value.
            (None, Some(value)) => {
                let inserted = sqlx::query(
                    "INSERT INTO plugin_kv (plugin, key, value) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                )
                .bind(&self.plugin)
                .bind(key.as_bytes())
                .bind(value)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
                if inserted.rows_affected() == 0 {
                    return Err(KvError::Contention);
                }
            }
            (Some(_), Some(value)) => {
                sqlx::query("UPDATE plugin_kv SET value = $3 WHERE plugin = $1 AND key = $2")
                    .bind(&self.plugin)
                    .bind(key.as_bytes())
                    .bind(value)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
            }
            (Some(_), None) => {
                sqlx::query("DELETE FROM plugin_kv WHERE plugin = $1 AND key = $2")
                    .bind(&self.plugin)
                    .bind(key.as_bytes())
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
            }
            (None, None) => {}
        }
        tx.commit().await.map_err(db)?;
        Ok(answer)
    }

    async fn retrying_write<T>(
        &self,
        what: &str,
        key: &str,
        quota: u64,
        decide: impl Fn(Option<&[u8]>) -> Result<Change<T>, KvError>,
    ) -> Result<T, KvError> {
        self.pg.retrying(what, || self.write(key, quota, &decide)).await
    }
}

/// What a write does with the entry it read.
enum Change<T> {
    /// Nothing to write; answer `T`.
    Keep(T),
    /// Store this value (`None`: remove the entry) and answer `T`.
    Write(Option<Vec<u8>>, T),
}

/// A database error as the kv layer reports it: contention (including two first writes
/// of one key meeting at the primary key) is retried, the rest is a storage error.
fn db(e: sqlx::Error) -> KvError {
    if is_unique_violation(&e) {
        return KvError::Contention;
    }
    StoreError::from(e).into()
}

impl Contended for KvError {
    fn contended(&self) -> bool {
        matches!(self, KvError::Contention)
    }
}

/// The smallest byte string greater than every string starting with `prefix`, if any.
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[async_trait::async_trait]
impl KvBackend for PgKv {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        sqlx::query_scalar("SELECT value FROM plugin_kv WHERE plugin = $1 AND key = $2")
            .bind(&self.plugin)
            .bind(key.as_bytes())
            .fetch_optional(self.pg.pool())
            .await
            .map_err(db)
    }

    async fn set(&self, key: &str, value: &[u8], quota: u64) -> Result<(), KvError> {
        self.retrying_write("kv set", key, quota, |_| {
            Ok(Change::Write(Some(value.to_vec()), ()))
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<bool, KvError> {
        self.retrying_write("kv delete", key, u64::MAX, |current| {
            Ok(match current {
                Some(_) => Change::Write(None, true),
                None => Change::Keep(false),
            })
        })
        .await
    }

    async fn keys(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, KvError> {
        // Strictly after `start_after`: its successor in byte order is itself + 0x00.
        let lower = match start_after {
            Some(after) if after >= prefix => {
                let mut lower = after.as_bytes().to_vec();
                lower.push(0);
                lower
            }
            _ => prefix.as_bytes().to_vec(),
        };
        let keys: Vec<Vec<u8>> = sqlx::query_scalar(
            "SELECT key FROM plugin_kv
              WHERE plugin = $1 AND key >= $2 AND ($3::BYTEA IS NULL OR key < $3)
              ORDER BY key LIMIT $4",
        )
        .bind(&self.plugin)
        .bind(lower)
        .bind(prefix_end(prefix.as_bytes()))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.pg.pool())
        .await
        .map_err(db)?;
        // Keys are only ever written from `&str`, so they are UTF-8.
        Ok(keys
            .into_iter()
            .map(|k| String::from_utf8_lossy(&k).into_owned())
            .collect())
    }

    async fn increment(&self, key: &str, delta: i64, quota: u64) -> Result<i64, KvError> {
        self.retrying_write("kv increment", key, quota, |current| {
            let next = next_counter(key, current, delta)?;
            Ok(Change::Write(Some(next.to_string().into_bytes()), next))
        })
        .await
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
        quota: u64,
    ) -> Result<bool, KvError> {
        self.retrying_write("kv compare-and-swap", key, quota, |current| {
            Ok(match current == expected {
                true => Change::Write(new.map(<[u8]>::to_vec), true),
                false => Change::Keep(false),
            })
        })
        .await
    }

    async fn used_bytes(&self) -> Result<u64, KvError> {
        let bytes: Option<i64> = sqlx::query_scalar("SELECT bytes FROM plugin_kv_usage WHERE plugin = $1")
            .bind(&self.plugin)
            .fetch_optional(self.pg.pool())
            .await
            .map_err(db)?;
        Ok(bytes.map_or(0, |b| u64::try_from(b).unwrap_or(0)))
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_ends_are_the_next_byte_string() {
        assert_eq!(prefix_end(b"a/"), Some(b"a0".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }
}
