//! `[storage]`: which backend keeps the state. `sled` (the default) is an embedded
//! database in the data directory, for one process; `postgres` is a shared database
//! that several `plinth serve` replicas use together.

use std::time::Duration;

use serde::Deserialize;

use super::{expand, in_range, ConfigError};

/// The environment variable that overrides `[storage] url` (so the URL, which may
/// carry a password, need not be in the file).
pub const DATABASE_URL_ENV: &str = "PLINTH_DATABASE_URL";

/// Validated `[storage]`.
#[derive(Clone, Debug)]
pub struct StorageConfig {
    /// sled's page cache; real memory use can reach several times this.
    pub cache_mib: u64,
    /// Background flush period for writes that are not acknowledged individually.
    pub flush_every_ms: u64,
    pub backend: Backend,
}

#[derive(Clone, Debug)]
pub enum Backend {
    Sled,
    Postgres(PostgresConfig),
}

/// How to reach the shared database.
#[derive(Clone, Debug)]
pub struct PostgresConfig {
    /// `postgres://user:password@host:port/database?sslmode=…`; never logged with its
    /// password.
    pub url: String,
    /// Connections this process keeps at most.
    pub pool_size: u32,
    /// How long a request waits for a connection before it fails as unavailable (503).
    pub acquire_timeout: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawStorage {
    backend: String,
    url: Option<String>,
    pool_size: u64,
    acquire_timeout_ms: u64,
    cache_mib: u64,
    flush_every_ms: u64,
}

impl Default for RawStorage {
    fn default() -> Self {
        Self {
            backend: "sled".into(),
            url: None,
            pool_size: 16,
            acquire_timeout_ms: 5_000,
            cache_mib: 64,
            flush_every_ms: 500,
        }
    }
}

pub(super) fn resolve(
    raw: RawStorage,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<StorageConfig, ConfigError> {
    let section = "[storage]";
    let backend = match raw.backend.as_str() {
        "sled" => Backend::Sled,
        "postgres" => {
            let url = match env(DATABASE_URL_ENV).filter(|u| !u.is_empty()) {
                Some(url) => url,
                None => {
                    let raw_url = raw.url.as_deref().ok_or_else(|| {
                        ConfigError::invalid(
                            section,
                            "url",
                            format!("backend = \"postgres\" needs a url (or {DATABASE_URL_ENV} in the environment)"),
                        )
                    })?;
                    expand(raw_url, env).map_err(|e| ConfigError::invalid(section, "url", e.to_string()))?
                }
            };
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return Err(ConfigError::invalid(
                    section,
                    "url",
                    "expected postgres://user@host:port/database",
                ));
            }
            Backend::Postgres(PostgresConfig {
                url,
                pool_size: in_range(section, "pool_size", raw.pool_size, 1, 1_000)? as u32,
                acquire_timeout: Duration::from_millis(in_range(
                    section,
                    "acquire_timeout_ms",
                    raw.acquire_timeout_ms,
                    10,
                    600_000,
                )?),
            })
        }
        other => {
            return Err(ConfigError::invalid(
                section,
                "backend",
                format!("unknown backend {other:?}: \"sled\" or \"postgres\""),
            ))
        }
    };
    if matches!(backend, Backend::Sled) && raw.url.is_some() {
        return Err(ConfigError::invalid(
            section,
            "url",
            "only for backend = \"postgres\"",
        ));
    }
    Ok(StorageConfig {
        cache_mib: in_range(section, "cache_mib", raw.cache_mib, 1, 65536)?,
        flush_every_ms: in_range(section, "flush_every_ms", raw.flush_every_ms, 1, 60_000)?,
        backend,
    })
}
