use std::fmt;
use std::str::FromStr;

/// The plugin worlds of `wit/worlds.wit`: what a plugin imports and exports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum World {
    Http,
    Weather,
    Payment,
    Shipping,
    Rules,
}

#[derive(Debug, thiserror::Error)]
#[error("unknown world {0:?}: expected one of http-plugin, weather-plugin, payment-plugin, shipping-plugin, rules-plugin")]
pub struct UnknownWorld(pub String);

impl World {
    pub const ALL: [World; 5] = [
        World::Http,
        World::Weather,
        World::Payment,
        World::Shipping,
        World::Rules,
    ];

    /// The world's name in WIT.
    pub fn wit_name(self) -> &'static str {
        match self {
            World::Http => "http-plugin",
            World::Weather => "weather-plugin",
            World::Payment => "payment-plugin",
            World::Shipping => "shipping-plugin",
            World::Rules => "rules-plugin",
        }
    }

    /// Whether plugins of this world get a key-value store.
    pub fn has_kv(self) -> bool {
        matches!(self, World::Http | World::Payment | World::Shipping)
    }

    /// Whether plugins of this world may make outbound HTTP calls.
    pub fn has_outbound(self) -> bool {
        !matches!(self, World::Rules)
    }
}

impl FromStr for World {
    type Err = UnknownWorld;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        World::ALL
            .into_iter()
            .find(|w| w.wit_name() == s)
            .ok_or_else(|| UnknownWorld(s.to_string()))
    }
}

impl fmt::Display for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.wit_name())
    }
}

impl<'de> serde::Deserialize<'de> for World {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_world() {
        for w in World::ALL {
            assert_eq!(w.wit_name().parse::<World>().unwrap(), w);
        }
        assert!("http".parse::<World>().is_err());
    }
}
