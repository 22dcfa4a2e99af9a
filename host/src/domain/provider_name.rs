use std::fmt;

/// The name of a social-login provider (`[[auth.oidc]] name`): 1–32 characters of
/// `a-z`, `0-9` and `-`, starting with a letter. It is a URL path segment
/// (`/auth/oauth/{name}/start`) and a log field.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProviderName(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid provider name {0:?}: use 1-32 characters of a-z, 0-9 and '-', starting with a letter")]
pub struct ProviderNameError(pub String);

impl ProviderName {
    pub fn parse(raw: &str) -> Result<Self, ProviderNameError> {
        let ok = (1..=32).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && raw.as_bytes()[0].is_ascii_lowercase();
        if ok {
            Ok(Self(raw.to_string()))
        } else {
            Err(ProviderNameError(raw.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProviderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for ProviderName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        ProviderName::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_path_safe_names_only() {
        for ok in ["google", "microsoft", "my-idp", "a1"] {
            assert_eq!(ProviderName::parse(ok).unwrap().as_str(), ok);
        }
        let long = "a".repeat(33);
        for bad in ["", "Google", "1x", "-x", "a_b", "a/b", "..", long.as_str()] {
            assert!(ProviderName::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
