//! `cargo xtask bench`: build, start `plinth serve` on a free port with a generated
//! config, drive it with the built-in load generator, print a table and write
//! `target/bench/results-<scenario>.json`.
//!
//! Measurements of a scenario alternate (A, B, A, B …, `--rounds` times) so drifting
//! background load on a shared machine affects all of them alike; the table shows each
//! run and the mean.

mod backend;
mod bound;
mod ceiling;
mod checkout;
mod cpu;
mod fake_gateway;
mod load;
mod machine;
mod pgwire;
mod postgres;
mod preflight;
mod ratio;
mod report;
mod request;
mod rounds;
mod scenario;
mod search;
mod server;
mod trips;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};

use crate::plugins;
use crate::workspace::{display_command, Workspace};
use backend::{Backend, Database};
use load::LoadConfig;
use machine::Machine;
use report::{Results, Settings};
use scenario::{Options, Scenario};
use server::Server;

/// How long the server may take to print its listening line (it compiles plugins).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Seconds each measurement is recorded for (after the warm-up).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    duration: u64,
    /// Concurrent keep-alive connections, each sending requests back to back (scenarios
    /// may fix their own counts: the login scenario uses 16 for logins, 4 for /healthz).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    connections: u64,
    /// Scenario to run (see --list), or `all` to run every one in turn.
    #[arg(long, default_value = "all")]
    scenario: String,
    /// Seconds of unrecorded load before each measurement.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(0..=600))]
    warmup: u64,
    /// How many times each measurement runs, alternating with the others.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=100))]
    rounds: u64,
    /// Threads of the load generator (the server competes with it for the CPUs).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    client_threads: u64,
    /// Products seeded (`plinth seed`) before the search scenario's server starts.
    #[arg(long, default_value_t = search::DEFAULT_PRODUCTS as u64,
          value_parser = clap::value_parser!(u64).range(1_000..=10_000_000))]
    products: u64,
    /// Reuse the plugins and host already built instead of building them.
    #[arg(long)]
    skip_build: bool,
    /// Benchmark this `plinth` binary instead of target/release/plinth (e.g. an older
    /// build, to compare); the host is then not built.
    #[arg(long, value_name = "PATH")]
    plinth_bin: Option<PathBuf>,
    /// `postgres` runs the storage comparison: the same loads on a PostgreSQL server
    /// and on a sled server side by side (scenario `postgres`). Other scenarios run on sled.
    #[arg(long, value_enum, default_value_t = Backend::Sled)]
    backend: Backend,
    /// The PostgreSQL database the `postgres` scenario makes its schema in (default:
    /// PLINTH_BENCH_DATABASE_URL, else PLINTH_TEST_DATABASE_URL, else
    /// postgres://postgres@127.0.0.1:5432/test).
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
    /// List the scenarios and exit.
    #[arg(long)]
    list: bool,
}

impl BenchArgs {
    fn settings(&self) -> Settings {
        Settings {
            duration_s: self.duration,
            warmup_s: self.warmup,
            connections: usize::try_from(self.connections).unwrap_or(usize::MAX),
            rounds: usize::try_from(self.rounds).unwrap_or(usize::MAX),
            client_threads: usize::try_from(self.client_threads).unwrap_or(1),
        }
    }

    fn options(&self) -> Options {
        Options {
            products: usize::try_from(self.products).unwrap_or(search::DEFAULT_PRODUCTS),
        }
    }

    /// The scenarios to run: `--scenario` among those of `--backend`.
    fn scenarios(&self) -> Result<Vec<Scenario>> {
        match (self.backend, self.scenario.as_str()) {
            (Backend::Postgres, "all" | "postgres") => Ok(vec![postgres::scenario()]),
            (Backend::Postgres, other) => bail!(
                "--backend postgres runs the storage comparison (scenario postgres), not {other:?}; \
                 the other scenarios run on sled"
            ),
            (Backend::Sled, name) => scenario::select(name, self.options()),
        }
    }

    /// The database URL for the `postgres` scenario: the flag, the environment, the
    /// default.
    fn database_url(&self) -> String {
        self.database_url
            .clone()
            .or_else(|| std::env::var("PLINTH_BENCH_DATABASE_URL").ok())
            .or_else(|| std::env::var("PLINTH_TEST_DATABASE_URL").ok())
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| backend::DEFAULT_DATABASE_URL.to_owned())
    }

    /// The command line that reproduces this run.
    fn command_line(&self) -> String {
        let mut cmd = String::from("cargo xtask bench");
        if self.backend != Backend::Sled {
            cmd.push_str(" --backend ");
            cmd.push_str(self.backend.name());
        }
        cmd.push_str(&format!(
            " --scenario {} --duration {} --connections {} --warmup {} --rounds {} --client-threads {}",
            crate::workspace::shell_quote(&self.scenario),
            self.duration,
            self.connections,
            self.warmup,
            self.rounds,
            self.client_threads
        ));
        if let Some(url) = &self.database_url {
            cmd.push_str(" --database-url ");
            cmd.push_str(&crate::workspace::shell_quote(&backend::redact(url)));
        }
        if self.products != search::DEFAULT_PRODUCTS as u64 {
            cmd.push_str(&format!(" --products {}", self.products));
        }
        if self.skip_build {
            cmd.push_str(" --skip-build");
        }
        if let Some(bin) = &self.plinth_bin {
            cmd.push_str(" --plinth-bin ");
            cmd.push_str(&crate::workspace::shell_quote(&bin.to_string_lossy()));
        }
        cmd
    }
}

pub fn run(ws: &Workspace, args: &BenchArgs) -> Result<()> {
    if args.list {
        for s in scenario::all(args.options()) {
            println!("{:<12} {}", s.name, s.description);
        }
        println!("{:<12} every scenario above, in turn (the default)", "all");
        let s = postgres::scenario();
        println!("{:<12} (--backend postgres) {}", s.name, s.description);
        return Ok(());
    }
    let scenarios = args.scenarios()?;
    for scenario in &scenarios {
        scenario.validate()?;
    }

    if !args.skip_build && scenarios.iter().any(|s| !s.plugins.is_empty()) {
        plugins::build(ws)?;
    }
    let bin = match (&args.plinth_bin, args.skip_build) {
        (Some(bin), _) => {
            std::path::absolute(bin).with_context(|| format!("invalid --plinth-bin {}", bin.display()))?
        }
        (None, true) => ws.release_bin("plinth"),
        (None, false) => ws.build_host()?,
    };
    if !bin.is_file() {
        bail!("{} does not exist; run without --skip-build", bin.display());
    }

    println!("command: {}", args.command_line());
    let bench_dir = ws.target_dir.join("bench");
    for (i, scenario) in scenarios.iter().enumerate() {
        if i > 0 {
            println!();
        }
        let run_dir = fresh_run_dir(&bench_dir)?;
        let outcome = bench_in(&Run {
            ws,
            args,
            scenario,
            bin: &bin,
            bench_dir: &bench_dir,
            run_dir: &run_dir,
        });
        match &outcome {
            Ok(()) => {
                if let Err(err) = std::fs::remove_dir_all(&run_dir) {
                    eprintln!("warning: could not remove {}: {err}", run_dir.display());
                }
            }
            Err(_) => eprintln!(
                "kept {} for inspection (until the next bench)",
                ws.display_path(&run_dir)
            ),
        }
        outcome.with_context(|| format!("scenario {} failed", scenario.name))?;
    }
    Ok(())
}

/// One scenario's run: what it measures, with which binary, where its files go.
struct Run<'a> {
    ws: &'a Workspace,
    args: &'a BenchArgs,
    scenario: &'a Scenario,
    bin: &'a Path,
    /// Where the results file goes.
    bench_dir: &'a Path,
    /// The servers' configs and data directories.
    run_dir: &'a Path,
}

/// Runs the scenario with its servers' files under `run_dir`; the servers are killed
/// and a PostgreSQL schema made for the run is dropped on return, error or not.
fn bench_in(run: &Run<'_>) -> Result<()> {
    let settings = run.args.settings();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(settings.client_threads)
        .enable_all()
        .build()
        .context("could not start the load generator's runtime")?;
    let database = match run.scenario.backends().contains(&Backend::Postgres) {
        true => Some(runtime.block_on(Database::create(&run.args.database_url()))?),
        false => None,
    };
    let outcome = bench_on(run, &runtime, database.as_ref());
    if let Some(db) = database {
        let shown = db.describe();
        if let Err(err) = runtime.block_on(db.drop_schema()) {
            eprintln!("warning: could not drop {shown}: {err:#}");
        }
    }
    outcome
}

/// What a server of the run is started from.
struct Launch<'a> {
    bin: &'a Path,
    run_dir: &'a Path,
    /// Plugins, scenario extras: the same for every server.
    config: &'a str,
}

impl Launch<'_> {
    /// Writes `plinth-<label>.toml` (the shared config plus `storage`) and makes
    /// `data-<label>/`; returns both.
    fn prepare(&self, label: &str, storage: &str) -> Result<(PathBuf, PathBuf)> {
        let config_path = self.run_dir.join(format!("plinth-{label}.toml"));
        std::fs::write(&config_path, format!("{}{storage}", self.config))
            .with_context(|| format!("could not write {}", config_path.display()))?;
        let data_dir = self.run_dir.join(format!("data-{label}"));
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("could not create {}", data_dir.display()))?;
        Ok((config_path, data_dir))
    }

    /// Starts `plinth serve` on the prepared config and data directory; returns it and
    /// the command line that reproduces it.
    fn start(&self, config_path: &Path, data_dir: &Path) -> Result<(Server, String)> {
        let mut cmd = Command::new(self.bin);
        cmd.current_dir(self.run_dir)
            .arg("serve")
            .arg("--config")
            .arg(config_path)
            .env("PLINTH_DATA_DIR", data_dir)
            .env("PLINTH_LISTEN", "127.0.0.1:0")
            .env("RUST_LOG", "warn");
        let shown = format!(
            "PLINTH_DATA_DIR={} PLINTH_LISTEN=127.0.0.1:0 RUST_LOG=warn {}",
            data_dir.display(),
            display_command(&cmd)
        );
        Ok((Server::start(cmd, STARTUP_TIMEOUT)?, shown))
    }
}

fn bench_on(run: &Run<'_>, runtime: &tokio::runtime::Runtime, database: Option<&Database>) -> Result<()> {
    let Run {
        ws,
        args,
        scenario,
        bin,
        bench_dir,
        run_dir,
    } = *run;
    let plugin_dir = plugins::output_dir(ws);
    let mut mounts = Vec::with_capacity(scenario.plugins.len());
    for plugin in &scenario.plugins {
        let path = plugin_dir.join(format!("{}.wasm", plugin.artifact));
        if !path.is_file() {
            bail!(
                "scenario {} needs {}; run `cargo xtask plugins`",
                scenario.name,
                path.display()
            );
        }
        mounts.push((plugin.name, plugin.world, path));
    }
    let config: Vec<(&str, &str, &Path)> = mounts
        .iter()
        .map(|(name, world, path)| (*name, *world, path.as_path()))
        .collect();
    // Lives until the end of the run.
    let gateway = match scenario.fake_gateway {
        true => Some(fake_gateway::FakeGateway::start()?),
        false => None,
    };
    let mut config_text = server::render_config(&config);
    config_text.push_str(
        &scenario
            .extra_config
            .replace("{plugins}", &plugin_dir.to_string_lossy())
            .replace(
                "{gateway}",
                &gateway.as_ref().map(|g| g.authority()).unwrap_or_default(),
            ),
    );
    let launch = Launch {
        bin,
        run_dir,
        config: &config_text,
    };
    let storage_of = |backend: Backend| -> Result<String> {
        Ok(match backend {
            Backend::Sled => String::new(),
            Backend::Postgres => {
                backend::storage_section(&database.context("no database for the postgres server")?.url())
            }
        })
    };

    let machine = Machine::detect(&ws.root);
    let settings = args.settings();
    println!("{}", machine.describe());
    if let Some(db) = database {
        println!("database: {}", db.describe());
    }
    println!("scenario {}: {}", scenario.name, scenario.description);
    if let Some(probe) = &scenario.probe {
        println!("probe {}: {}", probe.name(), probe.describe(machine.nproc));
    }
    let per_run = args.warmup + args.duration;
    let total = per_run * args.rounds * scenario.phases.len() as u64;
    println!(
        "{}, {} s warm-up + {} s per run, {} round(s): about {total} s\n",
        connections_summary(scenario, settings.connections),
        args.warmup,
        args.duration,
        args.rounds
    );

    let mut pre_start = Vec::new();
    let mut servers = Vec::new();
    let mut server_commands = Vec::new();
    for backend in scenario.backends() {
        let (config_path, data_dir) = launch.prepare(backend.name(), &storage_of(backend)?)?;
        pre_start.extend(run_pre_start(scenario, bin, run_dir, &config_path, &data_dir)?);
        let (server, shown) = launch.start(&config_path, &data_dir)?;
        println!("server ({}): {shown}", backend.name());
        servers.push((backend, server));
        server_commands.push(shown);
    }
    let addrs: Vec<(Backend, std::net::SocketAddr)> = servers.iter().map(|(b, s)| (*b, s.addr)).collect();
    let prepared = &runtime
        .block_on(preflight::prepare(&addrs, scenario))
        .map_err(|e| anyhow!("{e:#}\n{}", rounds::tails(&servers)))?;

    let load = LoadConfig {
        warmup: Duration::from_secs(args.warmup),
        duration: Duration::from_secs(args.duration),
    };
    let measured = rounds::measure(runtime, &mut servers, prepared, &settings, load, machine.nproc)?;
    drop(servers);
    if let Some(g) = &gateway {
        println!("fake gateway: {} charges", g.charges());
    }
    let concluded = rounds::conclude(prepared, &measured)?;
    let round_trips = match database {
        Some(db) => count_round_trips(runtime, &launch, db, scenario)?,
        None => Vec::new(),
    };

    let results = Results {
        scenario: scenario.name.to_owned(),
        description: scenario.description.to_owned(),
        command: args.command_line(),
        server_commands,
        database: database.map(Database::describe),
        pre_start,
        machine,
        settings,
        runs: measured.runs.into_iter().map(|(r, _)| r).collect(),
        probes: measured.probes,
        summary: concluded.summary,
        ratios: concluded.ratios,
        bounds: concluded.bounds,
        round_trips,
    };
    let path = bench_dir.join(format!("results-{}.json", scenario.name));
    let json = serde_json::to_string_pretty(&results).context("could not encode the results")?;
    std::fs::write(&path, json + "\n").with_context(|| format!("could not write {}", path.display()))?;
    println!("\nresults written to {}", ws.display_path(&path));
    Ok(())
}

/// Starts one more server on the run's schema with its database connections through a
/// [`pgwire::CountingProxy`] and counts round trips per request of every PostgreSQL load.
fn count_round_trips(
    runtime: &tokio::runtime::Runtime,
    launch: &Launch<'_>,
    db: &Database,
    scenario: &Scenario,
) -> Result<Vec<trips::TripReport>> {
    let upstream = runtime.block_on(db.server_addr())?;
    let proxy = runtime.block_on(async { pgwire::CountingProxy::start(upstream).await })?;
    let url = db.url_via(&proxy.addr.to_string())?;
    let (config_path, data_dir) = launch.prepare("counted", &backend::storage_section(&url))?;
    let (server, _) = launch.start(&config_path, &data_dir)?;
    let only = trips::postgres_only(scenario);
    let reports = runtime
        .block_on(async {
            let prepared = preflight::prepare(&[(Backend::Postgres, server.addr)], &only).await?;
            trips::count(&proxy, server.addr, &prepared).await
        })
        .map_err(|e| anyhow!("{e:#}\n{}", server.stderr_tail()))?;
    println!(
        "\ndatabase round trips per request ({} requests one at a time on a third server whose \
         connections pass a counting proxy; its idle traffic subtracted):",
        trips::REQUESTS
    );
    for report in &reports {
        println!("{}", trips::row(report));
    }
    Ok(reports)
}

/// `64 connections` when every measurement uses the same count alone, else each
/// phase's: `login 16, healthz-idle 4, healthz-flood 4 + login-flood 16 connections`.
fn connections_summary(scenario: &Scenario, from_args: usize) -> String {
    let counts: Vec<usize> = scenario
        .measurements()
        .map(|m| m.connections.resolve(from_args))
        .collect();
    let uniform =
        counts.windows(2).all(|w| w[0] == w[1]) && scenario.phases.iter().all(|p| p.measurements.len() == 1);
    if uniform {
        return format!("{} connections", counts.first().copied().unwrap_or(from_args));
    }
    let phases: Vec<String> = scenario
        .phases
        .iter()
        .map(|p| {
            let loads: Vec<String> = p
                .measurements
                .iter()
                .map(|m| format!("{} {}", m.name, m.connections.resolve(from_args)))
                .collect();
            loads.join(" + ")
        })
        .collect();
    format!("{} connections", phases.join(", "))
}

/// Runs the scenario's [`scenario::PreStart`] commands on its config and data directory,
/// printing each and its last line of output; returns them as shell commands.
fn run_pre_start(
    scenario: &Scenario,
    bin: &Path,
    run_dir: &Path,
    config_path: &Path,
    data_dir: &Path,
) -> Result<Vec<String>> {
    let mut shown = Vec::with_capacity(scenario.pre_start.len());
    for step in &scenario.pre_start {
        let mut cmd = Command::new(bin);
        cmd.current_dir(run_dir)
            .args(&step.args)
            .arg("--config")
            .arg(config_path)
            .env("PLINTH_DATA_DIR", data_dir)
            .env("RUST_LOG", "warn");
        let line = format!(
            "PLINTH_DATA_DIR={} RUST_LOG=warn {}",
            data_dir.display(),
            display_command(&cmd)
        );
        println!("before start: {line}");
        let started = Instant::now();
        let stdout = server::run_to_completion(cmd, &step.expect_stdout)?;
        let last = stdout.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
        println!("  {} [{:.1} s]", last.trim(), started.elapsed().as_secs_f64());
        shown.push(line);
    }
    if !shown.is_empty() {
        println!();
    }
    Ok(shown)
}

/// A new, empty directory `bench_dir/run-<unix time>-<pid>`. Directories of earlier runs
/// (kept when they failed, or of the previous scenario) are removed first.
fn fresh_run_dir(bench_dir: &Path) -> Result<PathBuf> {
    if let Ok(entries) = std::fs::read_dir(bench_dir) {
        for entry in entries.flatten() {
            let stale = entry.file_name().to_string_lossy().starts_with("run-")
                && entry.file_type().is_ok_and(|t| t.is_dir());
            if stale {
                if let Err(err) = std::fs::remove_dir_all(entry.path()) {
                    eprintln!("warning: could not remove {}: {err}", entry.path().display());
                }
            }
        }
    }
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let dir = bench_dir.join(format!("run-{secs}-{}", std::process::id()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("could not clear {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("could not create {}", dir.display()))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: BenchArgs,
    }

    #[test]
    fn defaults_and_command_line() {
        let args = Wrapper::try_parse_from(["bench"]).expect("parses").args;
        assert_eq!((args.duration, args.connections), (10, 64));
        assert_eq!(
            args.command_line(),
            "cargo xtask bench --scenario all --duration 10 --connections 64 --warmup 2 --rounds 2 --client-threads 1"
        );
        assert_eq!(args.options(), Options::default());
        let args = Wrapper::try_parse_from(["bench", "--scenario", "search", "--products", "5000"])
            .expect("parses")
            .args;
        assert_eq!(args.options().products, 5_000);
        assert!(args.command_line().contains("--client-threads 1 --products 5000"));
        assert!(Wrapper::try_parse_from(["bench", "--products", "10"]).is_err());
    }

    #[test]
    fn summarizes_connections() {
        let scenarios = scenario::all(Options::default());
        assert_eq!(connections_summary(&scenarios[0], 64), "64 connections");
        assert_eq!(
            connections_summary(&scenarios[1], 64),
            "login 16, healthz-idle 4, healthz-flood 4 + login-flood 16 connections"
        );
        assert_eq!(connections_summary(&scenarios[2], 64), "32 connections");
    }

    #[test]
    fn rejects_zero_connections_and_duration() {
        assert!(Wrapper::try_parse_from(["bench", "--connections", "0"]).is_err());
        assert!(Wrapper::try_parse_from(["bench", "--duration", "0"]).is_err());
        assert!(Wrapper::try_parse_from(["bench", "--duration", "ten"]).is_err());
    }
}
