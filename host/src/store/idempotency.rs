//! Idempotency keys of checkouts: a claim while the first request with a key runs, then
//! the answer its retries get. A store of its own, apart from the orders: no write here
//! shares a transaction with an order write (the claim is taken before its order exists
//! and the answer stored after the order was saved and flushed; the order's own id and
//! `version` compare-and-swap are what stop a second sale), so the two change
//! independently on both backends.

use serde::{Deserialize, Serialize};

use super::codec::{decode, encode};
use super::StoreError;
use crate::domain::{IdempotencyKey, OrderId, UserId};

/// The sled tree of the claims.
pub const TREE: &str = "idempotency";
/// The PostgreSQL table of the claims (named in its SQL, `postgres/idempotency.rs`).
pub const TABLE: &str = "idempotency";

/// Where a customer's key is kept: `{user_id}/{key}`, so two customers' keys never meet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimKey(String);

impl ClaimKey {
    pub fn new(user: &UserId, key: &IdempotencyKey) -> Self {
        Self(format!("{user}/{key}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A request that wants to run under a key: the body's hash tells a retry (same body)
/// from a misuse of the key (another body).
#[derive(Clone, Debug)]
pub struct Claim {
    pub key: ClaimKey,
    pub request_hash: String,
    /// The order the key makes (see `OrderId::for_key`).
    pub order_id: OrderId,
}

impl Claim {
    /// `user`'s request under `key`, whose body hashes to `request_hash`.
    pub fn new(user: &UserId, key: &IdempotencyKey, request_hash: String) -> Self {
        Self {
            key: ClaimKey::new(user, key),
            request_hash,
            order_id: OrderId::for_key(user, key),
        }
    }
}

/// An answer kept for the retries of its key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredResponse {
    pub status: u16,
    pub body: String,
}

/// A key's stored record (sled's value; PostgreSQL keeps the same as columns).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    pub request_hash: String,
    pub order_id: OrderId,
    /// `None` while the first request is in flight.
    pub response: Option<StoredResponse>,
    /// Unix milliseconds of the first request.
    pub created_at: i64,
    /// Unix milliseconds of the last claim (a retry may take over an abandoned one).
    pub claimed_at: i64,
}

/// What a request should do after [`IdempotencyStore::try_claim`].
#[derive(Debug, PartialEq, Eq)]
pub enum NextAction {
    /// The key is this request's (new, or an abandoned claim taken over): run it.
    Proceed,
    /// Same key, same body, answered: replay the answer.
    Replay(StoredResponse),
    /// Same key, same body, still running elsewhere: wait and ask again.
    Wait,
    /// Same key, another body.
    Mismatch,
}

/// Claims and answers of idempotency keys. Each method is atomic on its own.
#[async_trait::async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Claims `claim.key` for its request. A claim older than `abandoned_after_ms`
    /// without a response is taken over (its request died with its process).
    async fn try_claim(
        &self,
        claim: &Claim,
        now: i64,
        abandoned_after_ms: i64,
    ) -> Result<NextAction, StoreError>;
    /// Stores the answer of a claimed key for its retries.
    async fn save_response(&self, key: &ClaimKey, response: &StoredResponse) -> Result<(), StoreError>;
    /// Forgets a claim whose request ended without an answer worth replaying.
    async fn release(&self, key: &ClaimKey) -> Result<(), StoreError>;
    /// Forgets every claim still waiting for its answer. Returns how many.
    async fn release_unfinished(&self) -> Result<usize, StoreError>;
    /// Drops answered keys older than `max_age_ms`; returns how many.
    async fn expire(&self, now: i64, max_age_ms: i64) -> Result<usize, StoreError>;
}

/// [`IdempotencyStore`] on the sled tree [`TREE`]: key → [`IdempotencyRecord`] JSON.
pub struct SledIdempotency {
    tree: sled::Tree,
}

impl SledIdempotency {
    pub fn open(db: &sled::Db) -> Result<Self, StoreError> {
        Ok(Self {
            tree: db.open_tree(TREE)?,
        })
    }

    /// Removes the records `doomed` picks; returns how many.
    fn remove_where(&self, doomed: impl Fn(&IdempotencyRecord) -> bool) -> Result<usize, StoreError> {
        let mut removed = 0;
        for item in self.tree.iter() {
            let (k, v) = item?;
            if doomed(&decode(&v)?) {
                self.tree.remove(k)?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// What a claim finds in a stored record, and the record to write when it proceeds.
fn decide(
    current: Option<IdempotencyRecord>,
    claim: &Claim,
    now: i64,
    abandoned_after_ms: i64,
) -> Result<IdempotencyRecord, NextAction> {
    match current {
        None => Ok(IdempotencyRecord {
            request_hash: claim.request_hash.clone(),
            order_id: claim.order_id.clone(),
            response: None,
            created_at: now,
            claimed_at: now,
        }),
        Some(rec) if rec.request_hash != claim.request_hash => Err(NextAction::Mismatch),
        Some(IdempotencyRecord {
            response: Some(done), ..
        }) => Err(NextAction::Replay(done)),
        Some(rec) if now - rec.claimed_at < abandoned_after_ms => Err(NextAction::Wait),
        Some(rec) => Ok(IdempotencyRecord {
            claimed_at: now,
            ..rec
        }),
    }
}

#[async_trait::async_trait]
impl IdempotencyStore for SledIdempotency {
    /// A compare-and-swap on the key's record, retried until it lands.
    async fn try_claim(
        &self,
        claim: &Claim,
        now: i64,
        abandoned_after_ms: i64,
    ) -> Result<NextAction, StoreError> {
        let key = claim.key.as_str().as_bytes();
        loop {
            let current = self.tree.get(key)?;
            let found = current.as_deref().map(decode).transpose()?;
            let next = match decide(found, claim, now, abandoned_after_ms) {
                Ok(next) => next,
                Err(action) => return Ok(action),
            };
            if self
                .tree
                .compare_and_swap(key, current, Some(encode(&next)?))?
                .is_ok()
            {
                return Ok(NextAction::Proceed);
            }
        }
    }

    async fn save_response(&self, key: &ClaimKey, response: &StoredResponse) -> Result<(), StoreError> {
        let key = key.as_str().as_bytes();
        if let Some(bytes) = self.tree.get(key)? {
            let mut rec: IdempotencyRecord = decode(&bytes)?;
            rec.response = Some(response.clone());
            self.tree.insert(key, encode(&rec)?)?;
        }
        Ok(())
    }

    async fn release(&self, key: &ClaimKey) -> Result<(), StoreError> {
        self.tree.remove(key.as_str().as_bytes())?;
        Ok(())
    }

    /// At start-up the unanswered claims belong to requests that died with the previous
    /// process; their retries may go ahead at once (their orders were recovered first).
    async fn release_unfinished(&self) -> Result<usize, StoreError> {
        self.remove_where(|rec| rec.response.is_none())
    }

    async fn expire(&self, now: i64, max_age_ms: i64) -> Result<usize, StoreError> {
        self.remove_where(|rec| rec.response.is_some() && now - rec.created_at > max_age_ms)
    }
}

#[cfg(test)]
#[path = "idempotency_tests.rs"]
mod tests;
