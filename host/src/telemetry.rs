//! Logs (tracing) and metrics (Prometheus text format at `/metrics`).

mod escape;

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Installs the global tracing subscriber: `RUST_LOG` filter (default `info`), JSON
/// lines when `PLINTH_LOG_FORMAT=json`, else text lines whose values are escaped so
/// client and plugin text cannot forge lines (colours only on a terminal). Safe to
/// call more than once.
pub fn init_tracing() {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if std::env::var("PLINTH_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().try_init()
    } else {
        builder
            .with_ansi(std::io::stderr().is_terminal())
            .fmt_fields(escape::EscapedFields)
            .try_init()
    };
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginOutcome {
    plugin: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabel {
    plugin: String,
}

fn outcome(plugin: &str, outcome: &str) -> PluginOutcome {
    PluginOutcome {
        plugin: plugin.to_string(),
        outcome: outcome.to_string(),
    }
}

/// One plugin's invocation metrics.
#[derive(Clone)]
pub struct PluginMetrics {
    ok: Counter,
    invocations: Family<PluginOutcome, Counter>,
    latency: Histogram,
    fuel: Counter,
    plugin: String,
}

impl PluginMetrics {
    /// Counts one invocation by outcome (`ok`, `timeout`, `trapped`, …) and its latency.
    pub fn invocation(&self, outcome_name: &str, elapsed: Duration) {
        if outcome_name == "ok" {
            self.ok.inc();
        } else {
            self.invocations
                .get_or_create(&outcome(&self.plugin, outcome_name))
                .inc();
        }
        self.latency.observe(elapsed.as_secs_f64());
    }

    pub fn fuel(&self, used: u64) {
        self.fuel.inc_by(used);
    }
}

fn latency_histogram() -> Histogram {
    Histogram::new([
        0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ])
}

/// The process's metrics; one per application instance (tests run several).
pub struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    plugin_invocations: Family<PluginOutcome, Counter>,
    plugin_latency: Family<PluginLabel, Histogram, fn() -> Histogram>,
    plugin_fuel: Family<PluginLabel, Counter>,
    oauth_pending: Gauge,
    db_retries: Counter,
    /// The retry count last added to `db_retries` (it is read from the pool at scrape).
    db_retries_seen: std::sync::atomic::AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("plinth");
        let http_requests = Family::<HttpLabels, Counter>::default();
        let http_latency =
            Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        let plugin_invocations = Family::<PluginOutcome, Counter>::default();
        let plugin_latency =
            Family::<PluginLabel, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        let plugin_fuel = Family::<PluginLabel, Counter>::default();
        let oauth_pending = Gauge::default();
        let db_retries = Counter::default();
        registry.register(
            "db_transaction_retries",
            "Database transactions run again after a serialization failure or deadlock (PostgreSQL backend)",
            db_retries.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency",
            http_latency.clone(),
        );
        registry.register(
            "plugin_invocations",
            "Plugin invocations by outcome (ok, guest_error, timeout, memory_limit, fuel_exhausted, trapped, busy)",
            plugin_invocations.clone(),
        );
        registry.register(
            "plugin_duration_seconds",
            "Plugin invocation latency",
            plugin_latency.clone(),
        );
        registry.register(
            "plugin_fuel_consumed",
            "Fuel consumed by plugins with a fuel budget",
            plugin_fuel.clone(),
        );
        registry.register(
            "oauth_pending_logins",
            "Social logins started and not yet finished or expired ([auth] oauth_max_pending caps it)",
            oauth_pending.clone(),
        );
        Self {
            registry,
            http_requests,
            http_latency,
            plugin_invocations,
            plugin_latency,
            plugin_fuel,
            oauth_pending,
            db_retries,
            db_retries_seen: Default::default(),
        }
    }

    pub fn http_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        self.http_requests
            .get_or_create(&HttpLabels {
                method: method.to_string(),
                route: route.to_string(),
                status,
            })
            .inc();
        self.http_latency
            .get_or_create(&RouteLabels {
                method: method.to_string(),
                route: route.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Pre-resolved metric handles for one plugin, so the hot path does no label
    /// lookups for the common outcome.
    pub fn plugin(&self, plugin: &str) -> PluginMetrics {
        let label = PluginLabel {
            plugin: plugin.to_string(),
        };
        PluginMetrics {
            ok: self
                .plugin_invocations
                .get_or_create(&outcome(plugin, "ok"))
                .clone(),
            invocations: self.plugin_invocations.clone(),
            latency: self.plugin_latency.get_or_create(&label).clone(),
            fuel: self.plugin_fuel.get_or_create(&label).clone(),
            plugin: plugin.to_string(),
        }
    }

    /// Sets the social-login gauge (read from the store at each scrape).
    pub fn set_oauth_pending(&self, logins: usize) {
        self.oauth_pending.set(logins.try_into().unwrap_or(i64::MAX));
    }

    /// Brings the retry counter up to the store's running total (read at each scrape).
    pub fn set_db_retries(&self, total: u64) {
        let seen = self
            .db_retries_seen
            .swap(total, std::sync::atomic::Ordering::Relaxed);
        self.db_retries.inc_by(total.saturating_sub(seen));
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
