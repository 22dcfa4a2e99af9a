//! An order's id, derived from the checkout that made it.

use std::fmt;

use sha2::{Digest, Sha256};

use super::{IdempotencyKey, UserId};

/// An order's id. The host makes them as 32 lower-case hex digits, a hash of (customer,
/// idempotency key), so a retry of a checkout can never make a second order and the
/// payment provider sees the same idempotency key every time. It is part of storage
/// keys (`{created_at}/{order_id}`), so one from outside is accepted only as 1–64
/// lower-case letters, digits, `-` and `_`.
///
/// Serde-transparent: stored records keep the plain string and decode without a check.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct OrderId(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not an order id")]
pub struct OrderIdError;

impl OrderId {
    /// The order of `user`'s checkout under `key`.
    pub fn for_key(user: &UserId, key: &IdempotencyKey) -> Self {
        let digest = Sha256::digest(format!("{user}\u{0}{key}").as_bytes());
        Self(hex::encode(&digest[..16]))
    }

    /// An id from outside (a path) or from a store's index.
    pub fn parse(raw: &str) -> Result<Self, OrderIdError> {
        let ok = (1..=64).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        ok.then(|| Self(raw.to_string())).ok_or(OrderIdError)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_hash_the_customer_and_the_key() {
        let (alice, bob) = (UserId::parse("alice").unwrap(), UserId::parse("bob").unwrap());
        let key = IdempotencyKey::parse("k-1").unwrap();
        let id = OrderId::for_key(&alice, &key);
        // The derivation orders have always had: a change would orphan every retry.
        assert_eq!(id.as_str(), &hex::encode(Sha256::digest(b"alice\0k-1"))[..32],);
        assert_eq!(OrderId::for_key(&alice, &key), id);
        assert_ne!(OrderId::for_key(&bob, &key), id);
        assert_eq!(OrderId::parse(id.as_str()).unwrap(), id);
    }

    #[test]
    fn ids_from_outside_must_be_key_safe() {
        assert_eq!(OrderId::parse("o1").unwrap().as_str(), "o1");
        let long = "a".repeat(65);
        for bad in ["", "0123456789ABCDEF", "a/b", "../x", "a b", long.as_str()] {
            assert_eq!(OrderId::parse(bad), Err(OrderIdError), "{bad:?}");
        }
    }
}
