//! The connection limits of `[server]`: how long a client may take to send a request
//! head, keep an idle connection, or take over a whole request, and how many
//! connections are served at once. The defaults are safe for a server on the internet.

use std::time::Duration;

use super::ConfigError;

/// Validated connection limits (see README, "Connections").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// A request head must be complete this long after the connection is ready for it
    /// (accepted, or its previous response sent); otherwise the connection is closed.
    pub header_read_timeout: Duration,
    /// A connection with no request in progress and no bytes moving for this long is
    /// closed.
    pub keep_alive_idle: Duration,
    /// Reading the body, handling and producing the response head of one request
    /// (plugin routes: at least the plugin's own deadline); past it, 503
    /// `request_timeout`.
    pub request_timeout: Duration,
    /// Connections served at once; one more gets a 503 `too_many_connections` and is
    /// closed.
    pub max_connections: usize,
    /// The longest whole-request deadline of any route (a plugin route may exceed
    /// `request_timeout`); set at start-up once the plugins are known.
    pub longest_request: Duration,
    /// Connections one client address (an IPv6 client: its /64) may hold at once; one
    /// more gets the same 503. Off (= `max_connections`) behind trusted proxies unless set.
    pub max_connections_per_ip: usize,
}

impl ConnectionLimits {
    /// How long shutdown waits for open connections: long enough for a request that
    /// started just before it to reach its deadline and for its response to be written
    /// (two idle periods: asked to close, then dropped if stuck). Connections still
    /// open after it are closed, so a client cannot hold shutdown up.
    pub fn drain_limit(&self) -> Duration {
        self.longest_request.max(self.request_timeout) + 2 * self.keep_alive_idle + Duration::from_secs(1)
    }
}

pub const DEFAULT_HEADER_READ_TIMEOUT_MS: u64 = 10_000;
const DEFAULT_KEEP_ALIVE_IDLE_SECS: u64 = 5;
pub const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 60;
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// A quarter of the default total: one address cannot take every slot, and a browser
/// (6 per host) or a load test (64) stays far below it.
const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 256;

/// The raw `[server]` values, checked: each error names its field. An unset
/// `keep_alive_idle_secs` is the default or the header timeout, whichever is shorter.
pub fn resolve(
    header_read_timeout_ms: u64,
    keep_alive_idle_secs: Option<u64>,
    request_timeout_secs: u64,
    max_connections: usize,
    max_connections_per_ip: Option<usize>,
) -> Result<ConnectionLimits, ConfigError> {
    let check = |field: &str, v: u64, min: u64, max: u64| super::in_range("[server]", field, v, min, max);
    let header = Duration::from_millis(check(
        "header_read_timeout_ms",
        header_read_timeout_ms,
        100,
        300_000,
    )?);
    let idle = match keep_alive_idle_secs {
        None => Duration::from_secs(DEFAULT_KEEP_ALIVE_IDLE_SECS).min(header),
        Some(secs) => Duration::from_secs(check("keep_alive_idle_secs", secs, 1, 3_600)?),
    };
    // hyper starts the header timer as soon as a kept-alive connection turns idle (read
    // in hyper 1.x's `poll_read_head`), so a connection never stays idle longer than
    // the header timeout: a longer idle setting would silently never apply.
    if idle > header {
        return Err(ConfigError::invalid(
            "[server]",
            "keep_alive_idle_secs",
            "must not be longer than header_read_timeout_ms (the wait for the next request \
             on a kept-alive connection counts against the header timeout)",
        ));
    }
    let request = check("request_timeout_secs", request_timeout_secs, 1, 3_600)?;
    let max = check("max_connections", max_connections as u64, 1, 1_000_000)?;
    let per_ip = match max_connections_per_ip {
        None => (DEFAULT_MAX_CONNECTIONS_PER_IP as u64).min(max),
        Some(n) => check("max_connections_per_ip", n as u64, 1, max)?,
    };
    Ok(ConnectionLimits {
        header_read_timeout: header,
        keep_alive_idle: idle,
        request_timeout: Duration::from_secs(request),
        longest_request: Duration::from_secs(request),
        max_connections: max as usize,
        max_connections_per_ip: per_ip as usize,
    })
}
