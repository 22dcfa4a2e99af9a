//! Session tokens: 256 bits from the OS CSPRNG, shown to the client once, stored only
//! as their SHA-256 (a fast hash is right for high-entropy secrets).

use std::fmt;

use rand::TryRngCore;
use sha2::{Digest, Sha256};

use crate::store::TokenHash;

/// Prefix that makes leaked tokens easy to recognize (secret scanners, logs).
const PREFIX: &str = "plinth_";

/// A session token as the client holds it. `Debug` is redacted.
pub struct SessionToken(String);

impl SessionToken {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng
            .try_fill_bytes(&mut bytes)
            .expect("the OS random number generator is available");
        Self(format!("{PREFIX}{}", hex::encode(bytes)))
    }

    /// Accepts only strings of the shape we issue; anything else cannot be a session.
    pub fn parse(raw: &str) -> Option<Self> {
        let hex_part = raw.strip_prefix(PREFIX)?;
        (hex_part.len() == 64 && hex_part.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| Self(raw.to_string()))
    }

    pub fn hash(&self) -> TokenHash {
        Sha256::digest(self.0.as_bytes()).into()
    }

    /// The token itself, for the one response that hands it out.
    pub fn reveal(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken(<redacted>)")
    }
}

/// A public, non-secret id for a session (to list and revoke it).
pub fn session_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .expect("the OS random number generator is available");
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_parse_back() {
        let a = SessionToken::generate();
        let b = SessionToken::generate();
        assert_ne!(a.reveal(), b.reveal());
        assert_eq!(a.reveal().len(), PREFIX.len() + 64);
        let again = SessionToken::parse(a.reveal()).unwrap();
        assert_eq!(again.hash(), a.hash());
        assert!(!format!("{a:?}").contains(&a.reveal()[PREFIX.len()..]));
        for bad in ["", "plinth_", "plinth_zz", "bearer", &a.reveal()[1..]] {
            assert!(SessionToken::parse(bad).is_none(), "{bad:?}");
        }
    }
}
