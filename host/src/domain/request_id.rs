use std::fmt;

/// The id of one HTTP request: taken from a well-formed `x-request-id` header or made
/// fresh. Carried into logs, plugin logs and error bodies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(String);

impl RequestId {
    /// A fresh random id.
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().simple().to_string())
    }

    /// Accepts a client-supplied id if it is 1–128 characters of `A-Za-z0-9._:-`;
    /// anything else (log injection, huge values) is ignored by the caller.
    pub fn parse(raw: &str) -> Option<Self> {
        let ok = !raw.is_empty()
            && raw.len() <= 128
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
        ok.then(|| Self(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_sane_ids_and_drops_the_rest() {
        assert_eq!(RequestId::parse("abc-123").unwrap().as_str(), "abc-123");
        assert!(RequestId::parse("").is_none());
        assert!(RequestId::parse("a\nb").is_none());
        assert!(RequestId::parse(&"x".repeat(129)).is_none());
        assert_eq!(RequestId::generate().as_str().len(), 32);
    }
}
