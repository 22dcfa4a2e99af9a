//! The one codec of stored records: serde JSON, bytes for sled, a JSONB document for
//! PostgreSQL, so a record reads the same from either backend (and `plinth store copy`
//! moves it unchanged). A record that does not decode is `StoreError::Corrupt`. Counts
//! are sled's 8 big-endian bytes.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::StoreError;

/// JSON bytes of a record (sled).
pub fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// The JSON document of a record (PostgreSQL's JSONB columns).
pub fn to_json<T: Serialize>(v: &T) -> Result<serde_json::Value, StoreError> {
    serde_json::to_value(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub fn from_json<T: DeserializeOwned>(v: serde_json::Value) -> Result<T, StoreError> {
    serde_json::from_value(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// A count sled keeps as 8 big-endian bytes (stock, purchase counters, feed positions);
/// absent is 0.
pub fn count_of(bytes: Option<sled::IVec>) -> u64 {
    bytes
        .and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok())
        .map_or(0, u64::from_be_bytes)
}
