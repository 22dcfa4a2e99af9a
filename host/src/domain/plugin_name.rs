use std::fmt;

/// A plugin's name: 1–63 characters of `a-z`, `0-9`, `-` and `_`, starting with a letter
/// or digit. It is a URL path segment (`/plugins/{name}`), part of a storage tree name and
/// a log field, so it is kept boring on purpose.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PluginName(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid plugin name {0:?}: use 1-63 characters of a-z, 0-9, '-' and '_', starting with a letter or digit")]
pub struct PluginNameError(pub String);

impl PluginName {
    pub fn parse(raw: &str) -> Result<Self, PluginNameError> {
        let ok = !raw.is_empty()
            && raw.len() <= 63
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
            && raw
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if ok {
            Ok(Self(raw.to_string()))
        } else {
            Err(PluginNameError(raw.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PluginName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for PluginName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl<'de> serde::Deserialize<'de> for PluginName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        PluginName::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_names() {
        for ok in ["hello", "payments-stripe", "rules_tax", "a", "0day"] {
            assert_eq!(PluginName::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn rejects_names_that_are_not_path_safe() {
        let long = "a".repeat(64);
        for bad in ["", "Hello", "a/b", "../x", "-x", "a b", "é", long.as_str()] {
            assert!(PluginName::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
