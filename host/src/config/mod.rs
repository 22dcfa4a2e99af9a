//! `plinth.toml`: parsed, validated and resolved once at start-up. A bad file names the
//! section or plugin and the field at fault.

mod auth;
mod checkout;
mod connections;
mod demo;
mod expand;
mod limits;
mod oauth;
mod storage;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::domain::{Address, AllowedHost, HostPattern, PluginName, World};
pub use auth::{Argon2Params, AuthConfig, RateLimits, RouteAuth};
pub use checkout::CheckoutConfig;
pub use connections::ConnectionLimits;
pub use expand::{expand, ExpandError};
pub use limits::{Limits, RawLimits};
pub use oauth::{ClientSecret, OAuthConfig, OAuthProvider, ProviderKind};
pub use storage::{Backend as StorageBackend, PostgresConfig, StorageConfig, DATABASE_URL_ENV};

/// The whole, validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub runtime: RuntimeConfig,
    pub auth: AuthConfig,
    pub weather: WeatherConfig,
    pub checkout: CheckoutConfig,
    pub plugins: Vec<PluginConfig>,
}

/// `[weather]`: which weather-plugin serves `GET /weather`, and its cache.
#[derive(Clone, Debug)]
pub struct WeatherConfig {
    /// The plugin's name; `None` turns `/weather` off (503).
    pub plugin: Option<PluginName>,
    /// How long a result is served from the cache.
    pub ttl: std::time::Duration,
    /// How long past its TTL a result may still be served when the provider fails.
    pub stale_for: std::time::Duration,
}

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Largest request body accepted; larger gets 413.
    pub max_body_bytes: usize,
    /// Header, idle and request timeouts and the connection cap.
    pub connections: ConnectionLimits,
}

#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Where compiled components are cached (default `{data_dir}/compiled`).
    pub cache_dir: PathBuf,
    /// Plugin instances alive at once across all plugins (the pooling allocator's size).
    pub max_instances: u32,
    /// Epoch tick: how often a running guest is checked against its deadline and made
    /// to yield to other requests.
    pub epoch_tick_ms: u64,
    /// Share of `max_instances` (percent) one plugin may hold at once unless its own
    /// `limits.max_concurrent` says otherwise.
    pub plugin_share_percent: u32,
    /// Guests that run through an epoch tick (CPU-bound) take turns on this many lanes;
    /// `None`: one fewer than the async runtime's worker threads, at least one.
    pub busy_lanes: Option<u32>,
}

impl RuntimeConfig {
    /// Instances a plugin without its own `max_concurrent` may hold: its share of the
    /// pool, at least one.
    pub fn plugin_share(&self) -> u32 {
        (self.max_instances * self.plugin_share_percent)
            .div_ceil(100)
            .max(1)
    }
}

/// One `[[plugin]]` entry.
#[derive(Clone, Debug)]
pub struct PluginConfig {
    pub name: PluginName,
    pub world: World,
    /// The component file, resolved against the config file's directory.
    pub source: PathBuf,
    pub allowed_hosts: Vec<AllowedHost>,
    /// Exact names the plugin may reach even when they resolve to internal addresses
    /// (loopback, private, link-local …); an `allowed_hosts` name never may.
    pub internal_hosts: Vec<AllowedHost>,
    pub limits: Limits,
    /// Who may call an http-plugin and whether it sees the caller's identity.
    pub auth: RouteAuth,
    /// The plugin's own values, `${ENV}` already expanded.
    pub values: BTreeMap<String, String>,
}

/// Values that override the file (CLI flags and `PLINTH_*` environment variables).
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config: {section}: field `{field}`: {message}")]
    Invalid {
        section: String,
        field: String,
        message: String,
    },
}

impl ConfigError {
    fn invalid(section: impl Into<String>, field: &str, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            section: section.into(),
            field: field.to_string(),
            message: message.into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    server: RawServer,
    #[serde(default)]
    storage: storage::RawStorage,
    #[serde(default)]
    runtime: RawRuntime,
    #[serde(default)]
    auth: auth::RawAuth,
    #[serde(default)]
    weather: RawWeather,
    #[serde(default)]
    checkout: checkout::RawCheckout,
    #[serde(default, rename = "plugin")]
    plugins: Vec<RawPlugin>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: String,
    data_dir: PathBuf,
    #[serde(default = "default_max_body_bytes")]
    max_body_bytes: usize,
    #[serde(default = "default_header_read_timeout_ms")]
    header_read_timeout_ms: u64,
    #[serde(default)]
    keep_alive_idle_secs: Option<u64>,
    #[serde(default = "default_request_timeout_secs")]
    request_timeout_secs: u64,
    #[serde(default = "default_max_connections")]
    max_connections: usize,
    #[serde(default)]
    max_connections_per_ip: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawRuntime {
    cache_dir: Option<PathBuf>,
    max_instances: u32,
    epoch_tick_ms: u64,
    plugin_share_percent: u32,
    /// 0 = automatic.
    busy_lanes: u32,
}

impl Default for RawRuntime {
    fn default() -> Self {
        Self {
            cache_dir: None,
            max_instances: 256,
            epoch_tick_ms: 5,
            plugin_share_percent: 25,
            busy_lanes: 0,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawWeather {
    plugin: Option<PluginName>,
    cache_ttl_secs: u64,
    stale_for_secs: u64,
}

impl Default for RawWeather {
    fn default() -> Self {
        Self {
            plugin: None,
            cache_ttl_secs: 600,
            stale_for_secs: 3600,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlugin {
    name: PluginName,
    world: World,
    source: PathBuf,
    /// Parsed after `${ENV}` expansion (a base URL from the environment needs its host
    /// allowed too).
    #[serde(default)]
    allowed_hosts: Vec<String>,
    /// Like `allowed_hosts`, for names that may resolve to internal addresses.
    #[serde(default)]
    internal_hosts: Vec<String>,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    auth: Option<RouteAuth>,
    #[serde(default)]
    config: BTreeMap<String, toml::Value>,
}

fn default_max_body_bytes() -> usize {
    1 << 20
}

fn default_header_read_timeout_ms() -> u64 {
    connections::DEFAULT_HEADER_READ_TIMEOUT_MS
}

fn default_request_timeout_secs() -> u64 {
    connections::DEFAULT_REQUEST_TIMEOUT_SECS
}

fn default_max_connections() -> usize {
    connections::DEFAULT_MAX_CONNECTIONS
}

impl Config {
    /// Reads and validates `path`, applying `overrides`, expanding `${ENV}` from the
    /// process environment.
    pub fn load(path: &Path, overrides: &Overrides) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base, overrides, |k| std::env::var(k).ok()).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })
    }

    /// Parses config text; relative paths resolve against `base`.
    pub fn parse(
        text: &str,
        base: &Path,
        overrides: &Overrides,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::new(),
            message: e.to_string(),
        })?;
        let listen = match overrides.listen {
            Some(addr) => addr,
            None => raw.server.listen.parse().map_err(|_| {
                ConfigError::invalid("[server]", "listen", "expected an address like 127.0.0.1:8080")
            })?,
        };
        let data_dir = match &overrides.data_dir {
            Some(dir) => dir.clone(),
            None => base.join(&raw.server.data_dir),
        };
        if raw.server.max_body_bytes == 0 || raw.server.max_body_bytes > 64 << 20 {
            return Err(ConfigError::invalid(
                "[server]",
                "max_body_bytes",
                "must be between 1 and 67108864",
            ));
        }
        let mut connections = connections::resolve(
            raw.server.header_read_timeout_ms,
            raw.server.keep_alive_idle_secs,
            raw.server.request_timeout_secs,
            raw.server.max_connections,
            raw.server.max_connections_per_ip,
        )?;
        let storage = storage::resolve(raw.storage, &env)?;
        let runtime = RuntimeConfig {
            cache_dir: match raw.runtime.cache_dir {
                Some(dir) => base.join(dir),
                None => data_dir.join("compiled"),
            },
            max_instances: in_range(
                "[runtime]",
                "max_instances",
                raw.runtime.max_instances.into(),
                1,
                10_000,
            )? as u32,
            epoch_tick_ms: in_range("[runtime]", "epoch_tick_ms", raw.runtime.epoch_tick_ms, 1, 1000)?,
            plugin_share_percent: in_range(
                "[runtime]",
                "plugin_share_percent",
                raw.runtime.plugin_share_percent.into(),
                1,
                100,
            )? as u32,
            busy_lanes: match in_range("[runtime]", "busy_lanes", raw.runtime.busy_lanes.into(), 0, 1024)? {
                0 => None,
                n => Some(n as u32),
            },
        };
        let mut raw_auth = raw.auth;
        let raw_oauth = raw_auth.take_oauth();
        let cookie_secure = raw_auth.cookie_secure();
        let mut auth = raw_auth
            .resolve()
            .map_err(|(field, message)| ConfigError::invalid("[auth]", field, message))?;
        auth.oauth = oauth::resolve(raw_oauth, &env)?;
        // Behind a proxy every connection comes from the proxy: a per-address cap would
        // cap everyone together, so unless set it is off (the proxy limits clients).
        if auth.trusted_proxies > 0 && raw.server.max_connections_per_ip.is_none() {
            connections.max_connections_per_ip = connections.max_connections;
        }
        // Browsers reach an https public URL over TLS: its cookies are Secure unless the
        // file says otherwise (plain http to a proxy behind it is fine, the browser sees
        // https).
        auth.cookie_secure = cookie_secure.unwrap_or_else(|| {
            auth.oauth
                .public_url
                .as_ref()
                .is_some_and(|u| u.scheme() == "https")
        });
        let mut plugins: Vec<PluginConfig> = Vec::with_capacity(raw.plugins.len());
        for p in raw.plugins {
            let plugin = resolve_plugin(p, base, &env)?;
            if plugins.iter().any(|q| q.name == plugin.name) {
                return Err(ConfigError::invalid(
                    format!("plugin {:?}", plugin.name.as_str()),
                    "name",
                    "defined twice",
                ));
            }
            plugins.push(plugin);
        }
        let weather = WeatherConfig {
            plugin: match raw.weather.plugin {
                Some(name) => match plugins.iter().find(|p| p.name == name) {
                    Some(p) if p.world == World::Weather => Some(name),
                    Some(p) => {
                        return Err(ConfigError::invalid(
                            "[weather]",
                            "plugin",
                            format!(
                                "plugin {:?} is a {}, not a weather-plugin",
                                name.as_str(),
                                p.world
                            ),
                        ))
                    }
                    None => {
                        return Err(ConfigError::invalid(
                            "[weather]",
                            "plugin",
                            format!("no [[plugin]] named {:?}", name.as_str()),
                        ))
                    }
                },
                None => None,
            },
            ttl: std::time::Duration::from_secs(in_range(
                "[weather]",
                "cache_ttl_secs",
                raw.weather.cache_ttl_secs,
                0,
                86_400,
            )?),
            stale_for: std::time::Duration::from_secs(in_range(
                "[weather]",
                "stale_for_secs",
                raw.weather.stale_for_secs,
                0,
                7 * 86_400,
            )?),
        };
        let checkout = resolve_checkout(raw.checkout, &plugins)?;
        Ok(Config {
            server: ServerConfig {
                listen,
                data_dir,
                max_body_bytes: raw.server.max_body_bytes,
                connections,
            },
            storage,
            runtime,
            auth,
            weather,
            checkout,
            plugins,
        })
    }

    pub fn plugin(&self, name: &str) -> Option<&PluginConfig> {
        self.plugins.iter().find(|p| p.name.as_str() == name)
    }
}

fn resolve_plugin(
    p: RawPlugin,
    base: &Path,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<PluginConfig, ConfigError> {
    let section = format!("plugin {:?}", p.name.as_str());
    let source = base.join(&p.source);
    if !source.is_file() {
        return Err(ConfigError::invalid(
            section,
            "source",
            format!(
                "no such file: {} (build plugins with `cargo xtask plugins`)",
                source.display()
            ),
        ));
    }
    for (field, list) in [
        ("allowed_hosts", &p.allowed_hosts),
        ("internal_hosts", &p.internal_hosts),
    ] {
        if !p.world.has_outbound() && !list.is_empty() {
            return Err(ConfigError::invalid(
                section,
                field,
                format!("{} plugins are pure and cannot make outbound calls", p.world),
            ));
        }
    }
    if p.auth.is_some() && p.world != World::Http {
        return Err(ConfigError::invalid(
            section,
            "auth",
            "only http-plugin routes are called by clients directly",
        ));
    }
    let allowed_hosts = host_list(&section, "allowed_hosts", &p.allowed_hosts, env)?;
    let internal_hosts = host_list(&section, "internal_hosts", &p.internal_hosts, env)?;
    check_internal_hosts(&section, &allowed_hosts, &internal_hosts)?;
    let limits = p
        .limits
        .resolve()
        .map_err(|(field, message)| ConfigError::invalid(&section, &format!("limits.{field}"), message))?;
    let mut values = BTreeMap::new();
    for (key, value) in p.config {
        let field = format!("config.{key}");
        let raw = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            _ => {
                return Err(ConfigError::invalid(
                    section,
                    &field,
                    "values must be strings, numbers or booleans",
                ))
            }
        };
        let expanded =
            expand(&raw, env).map_err(|e| ConfigError::invalid(&section, &field, e.to_string()))?;
        values.insert(key, expanded);
    }
    Ok(PluginConfig {
        name: p.name,
        world: p.world,
        source,
        allowed_hosts,
        internal_hosts,
        limits,
        auth: p.auth.unwrap_or_default(),
        values,
    })
}

/// Parses a list of host entries after `${ENV}` expansion (a base URL from the
/// environment needs its host listed too).
fn host_list(
    section: &str,
    field: &str,
    raw: &[String],
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Vec<AllowedHost>, ConfigError> {
    raw.iter()
        .map(|raw| {
            let expanded =
                expand(raw, env).map_err(|e| ConfigError::invalid(section, field, e.to_string()))?;
            AllowedHost::parse(&expanded)
                .map_err(|e| ConfigError::invalid(section, field, format!("{expanded}: {e}")))
        })
        .collect()
}

/// `internal_hosts` names hosts one by one (a wildcard would hand internal addresses
/// to whoever controls any subdomain's DNS), and a name is either internal or not: on
/// both lists, which of its ports may resolve internally would be ambiguous.
fn check_internal_hosts(
    section: &str,
    allowed: &[AllowedHost],
    internal: &[AllowedHost],
) -> Result<(), ConfigError> {
    for entry in internal {
        let HostPattern::Exact(host) = entry.pattern() else {
            return Err(ConfigError::invalid(
                section,
                "internal_hosts",
                format!("{entry}: name each internal host exactly, without a wildcard"),
            ));
        };
        if let Some(other) = allowed.iter().find(|a| a.matches_host(host)) {
            return Err(ConfigError::invalid(
                section,
                "internal_hosts",
                format!("{entry}: {host} is also matched by allowed_hosts entry {other}; list it once"),
            ));
        }
    }
    Ok(())
}

/// Checks that each named plugin exists and has the right world.
fn resolve_checkout(
    raw: checkout::RawCheckout,
    plugins: &[PluginConfig],
) -> Result<CheckoutConfig, ConfigError> {
    let need = |field: &str, name: &PluginName, world: World| -> Result<(), ConfigError> {
        match plugins.iter().find(|p| &p.name == name) {
            Some(p) if p.world == world => Ok(()),
            Some(p) => Err(ConfigError::invalid(
                "[checkout]",
                field,
                format!("plugin {:?} is a {}, not a {world}", name.as_str(), p.world),
            )),
            None => Err(ConfigError::invalid(
                "[checkout]",
                field,
                format!("no [[plugin]] named {:?}", name.as_str()),
            )),
        }
    };
    if let Some(p) = &raw.payment {
        need("payment", p, World::Payment)?;
    }
    if let Some(p) = &raw.shipping {
        need("shipping", p, World::Shipping)?;
        if raw.origin.is_none() {
            return Err(ConfigError::invalid(
                "[checkout]",
                "origin",
                "shipping needs the address parcels ship from",
            ));
        }
    }
    for r in &raw.rules {
        need("rules", r, World::Rules)?;
    }
    let origin =
        raw.origin.map(Address::parse).transpose().map_err(|e| {
            ConfigError::invalid("[checkout]", &format!("origin.{}", e.field()), e.to_string())
        })?;
    Ok(CheckoutConfig {
        payment: raw.payment,
        shipping: raw.shipping,
        rules: raw.rules,
        origin,
        grams_per_item: in_range(
            "[checkout]",
            "grams_per_item",
            raw.grams_per_item.into(),
            1,
            1_000_000,
        )? as u32,
        idempotency_ttl: std::time::Duration::from_secs(
            in_range(
                "[checkout]",
                "idempotency_ttl_hours",
                raw.idempotency_ttl_hours,
                24,
                24 * 365,
            )? * 3600,
        ),
        reconcile_every: std::time::Duration::from_secs(in_range(
            "[checkout]",
            "reconcile_every_secs",
            raw.reconcile_every_secs,
            1,
            3600,
        )?),
        reconcile_stale: std::time::Duration::from_secs(in_range(
            "[checkout]",
            "reconcile_stale_secs",
            raw.reconcile_stale_secs,
            1,
            86_400,
        )?),
        max_in_flight: in_range("[checkout]", "max_in_flight", raw.max_in_flight, 1, 100_000)? as usize,
        max_in_flight_per_customer: in_range(
            "[checkout]",
            "max_in_flight_per_customer",
            raw.max_in_flight_per_customer,
            1,
            1_000,
        )? as usize,
    })
}

fn in_range(section: &str, field: &str, v: u64, min: u64, max: u64) -> Result<u64, ConfigError> {
    if (min..=max).contains(&v) {
        Ok(v)
    } else {
        Err(ConfigError::invalid(
            section,
            field,
            format!("must be between {min} and {max}"),
        ))
    }
}

#[cfg(test)]
mod tests;
