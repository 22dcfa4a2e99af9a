//! Which storage backend a benchmark server runs on, and the PostgreSQL side of it: a
//! fresh schema per run (so a run never measures an earlier run's rows, and two runs on
//! one database never meet), the `[storage]` section pointing a server at it, dropped
//! when the run ends.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use serde::Serialize;

/// Where the PostgreSQL benchmarks find a database when neither `--database-url` nor an
/// environment variable names one: this project's machines run one there, trust auth.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A server's storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// The embedded default: a sled directory in the server's data directory.
    Sled,
    /// A shared PostgreSQL database (`[storage] backend = "postgres"`).
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Self::Sled => "sled",
            Self::Postgres => "postgres",
        }
    }
}

/// A schema of its own on a PostgreSQL server, made for one benchmark run.
pub struct Database {
    /// The URL the benchmark was given (no schema).
    base_url: String,
    schema: String,
}

impl Database {
    /// Creates `plinth_bench_<time>_<pid>` on the database at `base_url`.
    pub async fn create(base_url: &str) -> Result<Self> {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let schema = format!("plinth_bench_{secs}_{}", std::process::id());
        let db = Self {
            base_url: base_url.to_owned(),
            schema,
        };
        db.execute(&format!("CREATE SCHEMA {}", db.schema)).await?;
        Ok(db)
    }

    /// The URL a server uses: connections land in this run's schema.
    pub fn url(&self) -> String {
        with_search_path(&self.base_url, &self.schema)
    }

    /// The URL through a proxy at `authority` (`host:port`), without TLS so the proxy can
    /// read the protocol.
    pub fn url_via(&self, authority: &str) -> Result<String> {
        let url = with_authority(&self.url(), authority)?;
        Ok(format!("{url}&sslmode=disable"))
    }

    /// The database server's socket address (where a proxy forwards to).
    pub async fn server_addr(&self) -> Result<std::net::SocketAddr> {
        let authority = authority(&self.base_url)?;
        let mut addrs = tokio::net::lookup_host(&authority)
            .await
            .with_context(|| format!("could not resolve {authority}"))?;
        addrs
            .next()
            .with_context(|| format!("{authority} resolves to no address"))
    }

    /// Where a run's rows went, for the report (the password, if any, hidden).
    pub fn describe(&self) -> String {
        format!("schema {} at {}", self.schema, redact(&self.base_url))
    }

    /// Drops the schema and everything in it.
    pub async fn drop_schema(self) -> Result<()> {
        self.execute(&format!("DROP SCHEMA {} CASCADE", self.schema))
            .await
    }

    async fn execute(&self, sql: &str) -> Result<()> {
        let shown = redact(&self.base_url);
        let (client, connection) = tokio_postgres::connect(&self.base_url, tokio_postgres::NoTls)
            .await
            .with_context(|| {
                format!(
                    "could not connect to PostgreSQL at {shown} (set --database-url or \
                     PLINTH_BENCH_DATABASE_URL; the benchmark connects without TLS)"
                )
            })?;
        let driver = tokio::spawn(connection);
        let outcome = client
            .batch_execute(sql)
            .await
            .with_context(|| format!("`{sql}` failed at {shown}"));
        drop(client);
        let _ = driver.await;
        outcome
    }
}

/// `url` whose connections use `schema` (`options=-c search_path=…`, URL-encoded).
pub fn with_search_path(url: &str, schema: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-c%20search_path%3D{schema}")
}

/// `url` with its `host:port` replaced (user, password, database and parameters kept).
pub fn with_authority(url: &str, authority: &str) -> Result<String> {
    let (scheme, rest) = split_scheme(url)?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (userinfo_host, tail) = rest.split_at(end);
    let userinfo = userinfo_host.rsplit_once('@').map(|(u, _)| u);
    Ok(match userinfo {
        Some(user) => format!("{scheme}{user}@{authority}{tail}"),
        None => format!("{scheme}{authority}{tail}"),
    })
}

/// The `host:port` of `url` (port 5432 when it names none).
pub fn authority(url: &str) -> Result<String> {
    let (_, rest) = split_scheme(url)?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let host = rest[..end].rsplit_once('@').map_or(&rest[..end], |(_, h)| h);
    if host.is_empty() {
        bail!("the database URL names no host (a Unix socket cannot be proxied)");
    }
    let has_port = match host.rfind(']') {
        Some(bracket) => host[bracket..].contains(':'),
        None => host.contains(':'),
    };
    Ok(if has_port {
        host.to_owned()
    } else {
        format!("{host}:5432")
    })
}

/// `url` with any password replaced by `***`, for messages.
pub fn redact(url: &str) -> String {
    let Ok((scheme, rest)) = split_scheme(url) else {
        return "(not a postgres:// URL)".to_owned();
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (userinfo_host, tail) = rest.split_at(end);
    match userinfo_host.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

fn split_scheme(url: &str) -> Result<(&str, &str)> {
    for scheme in ["postgres://", "postgresql://"] {
        if let Some(rest) = url.strip_prefix(scheme) {
            return Ok((scheme, rest));
        }
    }
    bail!("not a postgres:// URL")
}

/// The config section that puts a server on `url` (a TOML string, escaped).
pub fn storage_section(url: &str) -> String {
    let quoted = serde_json::to_string(url).unwrap_or_default();
    format!("\n[storage]\nbackend = \"postgres\"\nurl = {quoted}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_get_a_schema_another_authority_and_no_password_in_messages() {
        assert_eq!(
            with_search_path("postgres://u@h:5432/db", "s1"),
            "postgres://u@h:5432/db?options=-c%20search_path%3Ds1"
        );
        assert_eq!(
            with_search_path("postgres://u@h/db?sslmode=prefer", "s1"),
            "postgres://u@h/db?sslmode=prefer&options=-c%20search_path%3Ds1"
        );
        assert_eq!(
            with_authority("postgres://u:pw@h:5432/db?x=1", "127.0.0.1:9").unwrap(),
            "postgres://u:pw@127.0.0.1:9/db?x=1"
        );
        assert_eq!(
            with_authority("postgresql://h:5432", "127.0.0.1:9").unwrap(),
            "postgresql://127.0.0.1:9"
        );
        assert!(with_authority("mysql://h/db", "a:1").is_err());
        assert_eq!(authority("postgres://u:p@h:6543/db").unwrap(), "h:6543");
        assert_eq!(authority("postgres://u@h/db").unwrap(), "h:5432");
        assert_eq!(authority("postgres://[::1]/db").unwrap(), "[::1]:5432");
        assert!(authority("postgres:///db").is_err());
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert!(!redact("garbage:secret").contains("secret"));
    }

    #[test]
    fn storage_section_is_toml_with_the_url_escaped() {
        let section = storage_section(r#"postgres://u@h/db?options=-c%20x"y"#);
        assert!(section.contains("backend = \"postgres\""));
        assert!(
            section.contains(r#"url = "postgres://u@h/db?options=-c%20x\"y""#),
            "{section}"
        );
    }
}
