//! A user's id: what accounts, sessions and orders call their user by.

use std::fmt;

/// A user's id: a UUIDv7 in simple form for users made now (time-ordered, so listing by
/// id lists by creation). It is a prefix of storage keys (`{user_id}/{…}`), so an id
/// from outside is accepted only as 1–64 letters, digits, `-` and `_`.
///
/// Serde-transparent: stored records keep the plain string and decode without a check
/// (they were written by the host).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct UserId(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a user id")]
pub struct UserIdError;

impl UserId {
    /// A new, time-ordered id.
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().simple().to_string())
    }

    /// An id from outside (a path, a cursor).
    pub fn parse(raw: &str) -> Result<Self, UserIdError> {
        let ok = (1..=64).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| Self(raw.to_string())).ok_or(UserIdError)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_time_ordered_and_parse() {
        let (a, b) = (UserId::generate(), UserId::generate());
        assert!(a < b);
        assert_eq!(UserId::parse(a.as_str()).unwrap(), a);
        assert_eq!(serde_json::to_string(&a).unwrap(), format!("\"{a}\""));
    }

    #[test]
    fn ids_that_would_break_a_key_are_refused() {
        let long = "a".repeat(65);
        for bad in ["", "a/b", "a b", "é", "x\n", long.as_str()] {
            assert_eq!(UserId::parse(bad), Err(UserIdError), "{bad:?}");
        }
    }
}
