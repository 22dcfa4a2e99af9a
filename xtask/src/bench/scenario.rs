//! Benchmark scenarios: what to mount in the server and which requests to time.
//!
//! A [`Scenario`] names the plugins its generated config mounts, [`PreStart`] commands run
//! on its data directory before the server starts (e.g. seed the catalog), optional setup
//! requests sent once before any measurement (e.g. sign users up), an optional [`Probe`] timed in
//! this process before each round, and [`Phase`]s. A phase is one or more
//! [`Measurement`]s run at the same time on separate connections; a measurement is a
//! named load (its connections send its [`RequestSpec`]s round robin) and one table row
//! per round. Phases run alternately (A, B, A, B …) so that noise on a shared machine
//! hits all of them alike; [`Ratio`]s compare their figures, [`Bound`]s hold one against
//! an absolute target.
//!
//! To add a scenario, write a function returning one and list it in [`all`].

use anyhow::{bail, ensure, Context, Result};
use hyper::{Method, StatusCode};

pub use super::backend::Backend;
pub use super::bound::Bound;
use super::ceiling::{self, Argon2Cost};
pub use super::ratio::{Figure, Ratio, Target};
use super::report::ProbeReport;
pub use super::request::RequestSpec;
use super::{checkout, search};

/// What the scenarios are built from (command-line options).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Products the search scenario seeds.
    pub products: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            products: search::DEFAULT_PRODUCTS,
        }
    }
}

/// A `plinth` subcommand run to completion before the server starts, with the
/// scenario's config (`--config`) and data directory (`PLINTH_DATA_DIR`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreStart {
    /// Arguments after the binary, before `--config FILE`.
    pub args: Vec<String>,
    /// What its stdout must contain for it to count as done.
    pub expect_stdout: String,
}

impl PreStart {
    /// `plinth seed --count N`: the deterministic demo catalog.
    pub fn seed_catalog(products: usize) -> Self {
        Self {
            args: vec!["seed".into(), "--count".into(), products.to_string()],
            expect_stdout: format!("seeded {products} products"),
        }
    }
}

/// What the preflight checks in a measurement's responses besides a 2xx status.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Expect {
    /// JSON `{"products": [...]}`: at least this fraction of the distinct requests must
    /// find some product; those that find none are listed as a warning.
    Products { min_with_hits: f64 },
    /// `201 Created` with JSON `{"order": {"id": …}}`, a different order for every
    /// request: each one was carried out, none was an idempotent replay.
    NewOrders,
}

/// A plugin the scenario's server config mounts.
#[derive(Debug, Clone)]
pub struct PluginMount {
    /// Name in the config (and the `/plugins/<name>/` mount point).
    pub name: &'static str,
    /// WIT world it implements, e.g. `http-plugin`.
    pub world: &'static str,
    /// File stem of the component in `target/plugins/`.
    pub artifact: &'static str,
}

/// How many closed-loop connections a measurement uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connections {
    /// `--connections`.
    FromArgs,
    Fixed(usize),
}

impl Connections {
    pub fn resolve(self, from_args: usize) -> usize {
        match self {
            Self::FromArgs => from_args,
            Self::Fixed(n) => n,
        }
    }
}

/// A named load: every connection sends `requests` round robin, each connection
/// starting at a different one (so e.g. logins spread over several users).
#[derive(Debug, Clone)]
pub struct Measurement {
    pub name: &'static str,
    /// The server it loads: scenarios comparing storage backends run one of each.
    pub backend: Backend,
    pub connections: Connections,
    pub requests: Vec<RequestSpec>,
    pub expect: Option<Expect>,
}

impl Measurement {
    /// A load on `--connections` connections.
    pub fn new(name: &'static str, requests: Vec<RequestSpec>) -> Self {
        Self {
            name,
            backend: Backend::Sled,
            connections: Connections::FromArgs,
            requests,
            expect: None,
        }
    }

    /// The load goes to the server on `backend` (sled unless told).
    pub fn on(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    pub fn on_connections(mut self, n: usize) -> Self {
        self.connections = Connections::Fixed(n);
        self
    }

    pub fn expecting(mut self, expect: Expect) -> Self {
        self.expect = Some(expect);
        self
    }
}

/// Measurements recorded over the same window, at the same time.
#[derive(Debug, Clone)]
pub struct Phase {
    pub measurements: Vec<Measurement>,
}

impl Phase {
    pub fn single(measurement: Measurement) -> Self {
        Self {
            measurements: vec![measurement],
        }
    }

    pub fn concurrent(measurements: Vec<Measurement>) -> Self {
        Self { measurements }
    }
}

/// A request sent once before the first measurement.
#[derive(Debug, Clone)]
pub struct SetupRequest {
    pub request: RequestSpec,
    /// Statuses that count as done besides 2xx (e.g. 409: the user already exists).
    pub also_ok: Vec<StatusCode>,
    /// A string field of the JSON answer to keep, and the variable whose `{name}` it
    /// replaces in the measured requests' headers (e.g. a session token).
    pub capture: Option<Capture>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capture {
    pub field: &'static str,
    pub var: &'static str,
}

/// Timed in the xtask process before each round, with the server idle; its rate is
/// [`Figure::Probe`].
#[derive(Debug, Clone)]
pub enum Probe {
    /// One thread hashing with the server's argon2id cost: `warmup` untimed hashes, the
    /// median of `samples` timed ones is `t1`, the rate `nproc / t1`.
    Argon2Ceiling {
        cost: Argon2Cost,
        warmup: usize,
        samples: usize,
    },
}

impl Probe {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Argon2Ceiling { .. } => "argon2id-ceiling",
        }
    }

    /// What it times and how its rate follows, for the report header.
    pub fn describe(&self, threads: usize) -> String {
        match self {
            Self::Argon2Ceiling {
                cost,
                warmup,
                samples,
            } => format!(
                "{} ({}-byte hash, {}-byte salt, memory reused) on one thread of this process, {warmup} warm-up + \
                 {samples} timed hashes; t1 = median; ceiling = {threads} CPUs / t1",
                cost.describe(),
                cost.output_len,
                cost.salt_len
            ),
        }
    }

    /// Times the probe on the calling thread; its rate assumes `threads` CPUs at work.
    pub fn measure(&self, round: usize, threads: usize) -> Result<ProbeReport> {
        match self {
            Self::Argon2Ceiling {
                cost,
                warmup,
                samples,
            } => {
                let timing = ceiling::time_hashes(cost, *warmup, *samples)?;
                let rate = ceiling::ceiling_per_s(threads, timing.median).context("a hash took no time")?;
                let us = |d: std::time::Duration| d.as_secs_f64() * 1e6;
                Ok(ProbeReport {
                    probe: self.name().to_owned(),
                    round,
                    what: self.describe(threads),
                    samples: timing.samples,
                    op_median_us: us(timing.median),
                    op_min_us: us(timing.min),
                    op_max_us: us(timing.max),
                    threads,
                    rate_per_s: rate,
                })
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: &'static str,
    pub description: &'static str,
    pub plugins: Vec<PluginMount>,
    /// Run in order on the fresh data directory before the server starts.
    pub pre_start: Vec<PreStart>,
    /// Sent once, in order, before the first measurement.
    pub setup: Vec<SetupRequest>,
    pub probe: Option<Probe>,
    pub phases: Vec<Phase>,
    pub ratios: Vec<Ratio>,
    pub bounds: Vec<Bound>,
    /// TOML appended to the generated config; `{plugins}` is replaced with the plugin
    /// directory and `{gateway}` with the fake gateway's `host:port`.
    pub extra_config: &'static str,
    /// Start a [`FakeGateway`](super::fake_gateway::FakeGateway) for the run.
    pub fake_gateway: bool,
}

impl Scenario {
    /// Every measurement, phase by phase.
    pub fn measurements(&self) -> impl Iterator<Item = &Measurement> {
        self.phases.iter().flat_map(|p| &p.measurements)
    }

    /// The servers the scenario needs, one per storage backend its measurements name,
    /// in order of first use.
    pub fn backends(&self) -> Vec<Backend> {
        let mut out = Vec::new();
        for m in self.measurements() {
            if !out.contains(&m.backend) {
                out.push(m.backend);
            }
        }
        out
    }

    /// Checks names are unique, ratios and bounds refer to measurements, and every
    /// request builds.
    pub fn validate(&self) -> Result<()> {
        let name = self.name;
        ensure!(!self.phases.is_empty(), "scenario {name} has no measurement");
        for phase in &self.phases {
            ensure!(
                !phase.measurements.is_empty(),
                "scenario {name} has an empty phase"
            );
        }
        let measurements: Vec<&Measurement> = self.measurements().collect();
        for (i, m) in measurements.iter().enumerate() {
            if measurements[..i].iter().any(|o| o.name == m.name) {
                bail!("scenario {name}: duplicate measurement {}", m.name);
            }
            ensure!(
                !m.requests.is_empty(),
                "scenario {name}: measurement {} has no request",
                m.name
            );
            ensure!(
                m.connections != Connections::Fixed(0),
                "scenario {name}: measurement {} has no connection",
                m.name
            );
        }
        let figures = self
            .ratios
            .iter()
            .flat_map(|r| [r.numerator, r.denominator])
            .chain(self.bounds.iter().map(|b| b.figure));
        for figure in figures {
            if let Some(m) = figure.measurement() {
                ensure!(
                    measurements.iter().any(|o| o.name == m),
                    "scenario {name}: a ratio or bound names unknown measurement {m}"
                );
            } else {
                ensure!(
                    self.probe.is_some(),
                    "scenario {name}: a ratio or bound names a probe it lacks"
                );
            }
        }
        for ratio in &self.ratios {
            ensure!(
                ratio.numerator.is_rate() == ratio.denominator.is_rate(),
                "scenario {name}: ratio of a rate and a latency"
            );
        }
        let all_requests = self
            .setup
            .iter()
            .map(|s| &s.request)
            .chain(measurements.iter().flat_map(|m| &m.requests));
        for spec in all_requests {
            spec.to_request("127.0.0.1:1")
                .with_context(|| format!("scenario {name}"))?;
        }
        Ok(())
    }
}

/// Every scenario, in the order `--list` shows and `--scenario all` runs them.
pub fn all(options: Options) -> Vec<Scenario> {
    vec![
        plugin(),
        login(),
        search::scenario(options.products),
        checkout::scenario(),
        noisy(),
    ]
}

/// The scenarios `--scenario name` selects: one, or every one for `all`; an error
/// listing the known ones otherwise.
pub fn select(name: &str, options: Options) -> Result<Vec<Scenario>> {
    let scenarios = all(options);
    if name == "all" {
        return Ok(scenarios);
    }
    let names: Vec<&str> = scenarios.iter().map(|s| s.name).collect();
    let known = names.join(", ");
    scenarios
        .into_iter()
        .find(|s| s.name == name)
        .map(|s| vec![s])
        .with_context(|| format!("unknown scenario {name:?}; known scenarios: {known} (or all)"))
}

/// The cost of a plugin call: the host's own `/healthz` against the `hello` plugin's
/// echo endpoint, on the same server.
fn plugin() -> Scenario {
    Scenario {
        name: "plugin",
        description: "GET /healthz (host only) vs GET /plugins/hello/ (one plugin call)",
        plugins: vec![HELLO],
        pre_start: Vec::new(),
        setup: Vec::new(),
        probe: None,
        phases: vec![
            Phase::single(Measurement::new("healthz", vec![RequestSpec::get("/healthz")])),
            Phase::single(Measurement::new(
                "hello",
                vec![RequestSpec::get("/plugins/hello/")],
            )),
        ],
        ratios: vec![Ratio {
            numerator: Figure::Rate("hello"),
            denominator: Figure::Rate("healthz"),
            target: None,
        }],
        bounds: Vec::new(),
        extra_config: "",
        fake_gateway: false,
    }
}

pub const HELLO: PluginMount = PluginMount {
    name: "hello",
    world: "http-plugin",
    artifact: "hello",
};

/// Connections flooding `POST /auth/login`.
pub const LOGIN_CONNECTIONS: usize = 16;
/// Connections sending `GET /healthz`, alone and during a login flood.
pub const HEALTHZ_CONNECTIONS: usize = 4;
/// Accounts the logins are spread over (round robin per connection).
pub const LOGIN_USERS: usize = 8;

/// The `i`-th login benchmark account (1-based).
fn login_user(i: usize) -> serde_json::Value {
    serde_json::json!({
        "username": format!("bench-user-{i}"),
        "password": format!("correct-horse-battery-staple-{i}"),
    })
}

/// Registers the [`LOGIN_USERS`] accounts (already there is fine).
pub fn login_setup() -> Vec<SetupRequest> {
    (1..=LOGIN_USERS)
        .map(|i| SetupRequest {
            request: RequestSpec::json(Method::POST, "/auth/register", &login_user(i)),
            also_ok: vec![StatusCode::CONFLICT],
            capture: None,
        })
        .collect()
}

/// A correct-password login of each of the [`LOGIN_USERS`] accounts.
pub fn logins() -> Vec<RequestSpec> {
    (1..=LOGIN_USERS)
        .map(|i| RequestSpec::json(Method::POST, "/auth/login", &login_user(i)))
        .collect()
}

/// Logins against the argon2id ceiling, and what a login flood does to other routes.
fn login() -> Scenario {
    let setup = login_setup();
    let logins = logins();
    let healthz = vec![RequestSpec::get("/healthz")];
    Scenario {
        name: "login",
        description: "POST /auth/login (one argon2id verification each) vs the argon2id ceiling \
                      (nproc / single-thread hash time); GET /healthz p99 alone and during a login flood",
        plugins: Vec::new(),
        pre_start: Vec::new(),
        setup,
        probe: Some(Probe::Argon2Ceiling {
            cost: Argon2Cost::SERVER_DEFAULT,
            warmup: 3,
            samples: 15,
        }),
        phases: vec![
            Phase::single(Measurement::new("login", logins.clone()).on_connections(LOGIN_CONNECTIONS)),
            Phase::single(
                Measurement::new("healthz-idle", healthz.clone()).on_connections(HEALTHZ_CONNECTIONS),
            ),
            Phase::concurrent(vec![
                Measurement::new("healthz-flood", healthz).on_connections(HEALTHZ_CONNECTIONS),
                Measurement::new("login-flood", logins).on_connections(LOGIN_CONNECTIONS),
            ]),
        ],
        ratios: vec![
            Ratio {
                numerator: Figure::OkRate("login"),
                denominator: Figure::Probe,
                target: Some(Target::AtLeast(0.90)),
            },
            Ratio {
                numerator: Figure::P99("healthz-flood"),
                denominator: Figure::P99("healthz-idle"),
                target: Some(Target::AtMost(3.0)),
            },
        ],
        bounds: Vec::new(),
        extra_config: "",
        fake_gateway: false,
    }
}

/// Connections flooding the CPU-bound plugin: twice its default share of the pool
/// (25 % of 256 instances), so its cap and its queue both matter.
pub const SPIN_CONNECTIONS: usize = 128;
/// Connections sending `GET /plugins/hello/`, alone and during the flood.
pub const HELLO_CONNECTIONS: usize = 4;

/// A noisy neighbour: `hello`'s p99 alone, and while another plugin is flooded with
/// CPU-bound calls (10 million loop iterations each, ~15 ms of CPU alone), on the default `[runtime]`
/// settings.
fn noisy() -> Scenario {
    let hello = vec![RequestSpec::get("/plugins/hello/")];
    Scenario {
        name: "noisy",
        description: "GET /plugins/hello/ p99 alone and while another plugin (hostile, /spin?mega=10) \
                      is flooded with CPU-bound calls",
        plugins: vec![
            HELLO,
            PluginMount {
                name: "noisy",
                world: "http-plugin",
                artifact: "hostile",
            },
        ],
        pre_start: Vec::new(),
        setup: Vec::new(),
        probe: None,
        phases: vec![
            Phase::single(Measurement::new("hello-idle", hello.clone()).on_connections(HELLO_CONNECTIONS)),
            Phase::concurrent(vec![
                Measurement::new("hello-flood", hello).on_connections(HELLO_CONNECTIONS),
                Measurement::new(
                    "spin-flood",
                    vec![RequestSpec::get("/plugins/noisy/spin?mega=10")],
                )
                .on_connections(SPIN_CONNECTIONS),
            ]),
        ],
        ratios: vec![Ratio {
            numerator: Figure::P99("hello-flood"),
            denominator: Figure::P99("hello-idle"),
            target: Some(Target::AtMost(5.0)),
        }],
        bounds: Vec::new(),
        extra_config: "",
        fake_gateway: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_is_valid() {
        for scenario in all(Options::default()) {
            scenario.validate().expect(scenario.name);
        }
    }

    #[test]
    fn selects_by_name_or_all() {
        let names = |name: &str| {
            select(name, Options::default()).map(|v| v.iter().map(|s| s.name).collect::<Vec<_>>())
        };
        assert_eq!(names("plugin").ok(), Some(vec!["plugin"]));
        assert_eq!(names("login").ok(), Some(vec!["login"]));
        assert_eq!(names("search").ok(), Some(vec!["search"]));
        assert_eq!(names("checkout").ok(), Some(vec!["checkout"]));
        assert_eq!(names("noisy").ok(), Some(vec!["noisy"]));
        assert_eq!(
            names("all").ok(),
            Some(vec!["plugin", "login", "search", "checkout", "noisy"])
        );
        let err = names("nope").unwrap_err().to_string();
        assert!(
            err.contains("known scenarios: plugin, login, search, checkout, noisy (or all)"),
            "{err}"
        );
    }

    #[test]
    fn rejects_dangling_and_mixed_ratios() {
        let mut scenario = plugin();
        scenario.ratios.push(Ratio {
            numerator: Figure::Rate("missing"),
            denominator: Figure::Rate("healthz"),
            target: None,
        });
        assert!(scenario.validate().is_err());

        let mut scenario = plugin();
        scenario.ratios[0].denominator = Figure::P99("healthz");
        assert!(scenario.validate().is_err());

        let mut scenario = plugin();
        scenario.ratios[0].denominator = Figure::Probe;
        assert!(scenario.validate().is_err(), "plugin has no probe");

        let mut scenario = plugin();
        scenario.bounds.push(Bound {
            figure: Figure::P99("missing"),
            target: Target::AtMost(1_000.0),
        });
        assert!(scenario.validate().is_err());
        scenario.bounds[0].figure = Figure::P99("hello");
        assert!(scenario.validate().is_ok());
    }

    #[test]
    fn rejects_duplicates_across_phases_and_empty_loads() {
        let mut scenario = login();
        scenario.phases[2].measurements[1].name = "login";
        assert!(scenario.validate().is_err());
        let mut scenario = login();
        scenario.phases[0].measurements[0].connections = Connections::Fixed(0);
        assert!(scenario.validate().is_err());
    }

    #[test]
    fn login_spreads_users_and_floods_while_probing_healthz() {
        let scenario = login();
        assert_eq!(scenario.setup.len(), LOGIN_USERS);
        assert!(scenario.setup.iter().all(|s| s.also_ok == [StatusCode::CONFLICT]));
        let login = &scenario.phases[0].measurements[0];
        assert_eq!(login.connections.resolve(64), LOGIN_CONNECTIONS);
        assert_eq!(login.requests.len(), LOGIN_USERS);
        let bodies: Vec<&[u8]> = login.requests.iter().map(|r| r.body.as_ref()).collect();
        assert!(bodies[0] != bodies[1], "one body per user");
        let body: serde_json::Value = serde_json::from_slice(bodies[0]).expect("json");
        assert_eq!(body["username"], "bench-user-1");
        assert!(body["password"].as_str().is_some_and(|p| p.len() >= 20));
        let flood = &scenario.phases[2];
        let conns: Vec<usize> = flood
            .measurements
            .iter()
            .map(|m| m.connections.resolve(64))
            .collect();
        assert_eq!(conns, [HEALTHZ_CONNECTIONS, LOGIN_CONNECTIONS]);
        assert!(plugin()
            .measurements()
            .all(|m| m.connections == Connections::FromArgs));
    }

    #[test]
    fn probe_reports_a_ceiling() {
        let probe = Probe::Argon2Ceiling {
            cost: Argon2Cost {
                memory_kib: 64,
                iterations: 1,
                ..Argon2Cost::SERVER_DEFAULT
            },
            warmup: 1,
            samples: 3,
        };
        let report = probe.measure(2, 4).expect("measures");
        assert_eq!((report.round, report.samples, report.threads), (2, 3, 4));
        let expected = 4.0 / (report.op_median_us / 1e6);
        assert!(
            (report.rate_per_s - expected).abs() < 1e-6 * expected,
            "{report:?}"
        );
        assert!(report.op_min_us <= report.op_median_us && report.op_median_us <= report.op_max_us);
        assert!(report.what.contains("ceiling = 4 CPUs / t1"), "{}", report.what);
    }
}
