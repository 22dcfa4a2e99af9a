use std::fmt;

/// A stock keeping unit: 1–64 characters of `A-Z`, `0-9`, `-`, `_`, `.`, normalized to
/// upper case (so `abc-1` and `ABC-1` are the same product). Safe in a URL path.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct Sku(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a SKU is 1-64 characters of letters, digits, '-', '_' and '.'")]
pub struct SkuError;

impl Sku {
    pub fn parse(raw: &str) -> Result<Self, SkuError> {
        let upper = raw.to_ascii_uppercase();
        let ok = (1..=64).contains(&upper.len())
            && upper
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.'));
        if ok {
            Ok(Self(upper))
        } else {
            Err(SkuError)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Sku {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Sku {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Sku::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_and_validates() {
        assert_eq!(Sku::parse("tee-blk.m_1").unwrap().as_str(), "TEE-BLK.M_1");
        for bad in ["", "a b", "a/b", "é", &"A".repeat(65)] {
            assert!(Sku::parse(bad).is_err(), "{bad:?}");
        }
    }
}
