use std::fmt;

/// A username, normalized once: lower-case ASCII letters, digits, `.`, `_` and `-`,
/// 3–32 characters, starting with a letter or digit. Uniqueness is on this normalized
/// form, so `Alice` and `alice` are the same account.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct Username(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "a username is 3-32 characters of letters, digits, '.', '_' and '-', starting with a letter or digit"
)]
pub struct UsernameError;

impl Username {
    pub fn parse(raw: &str) -> Result<Self, UsernameError> {
        let lower = raw.to_ascii_lowercase();
        let ok = (3..=32).contains(&lower.len())
            && lower
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
            && lower.as_bytes()[0].is_ascii_alphanumeric();
        if ok {
            Ok(Self(lower))
        } else {
            Err(UsernameError)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Username {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Username::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_case_once() {
        assert_eq!(
            Username::parse("Alice").unwrap(),
            Username::parse("aLICE").unwrap()
        );
        assert_eq!(Username::parse("Bob.Smith-2").unwrap().as_str(), "bob.smith-2");
    }

    #[test]
    fn rejects_what_is_not_a_username() {
        for bad in [
            "ab",
            "",
            " alice",
            "alice ",
            "al ice",
            "_alice",
            "élodie",
            "a/b",
            &"a".repeat(33),
        ] {
            assert!(Username::parse(bad).is_err(), "{bad:?}");
        }
    }
}
