//! `cargo xtask bench`: build, start `plinth serve` on a free port with a generated
//! config, drive it with the built-in load generator, print a table and write
//! `target/bench/results-<scenario>.json`.
//!
//! Measurements of a scenario alternate (A, B, A, B …, `--rounds` times) so drifting
//! background load on a shared machine affects all of them alike; the table shows each
//! run and the mean.

mod bound;
mod ceiling;
mod checkout;
mod fake_gateway;
mod load;
mod machine;
mod preflight;
mod ratio;
mod report;
mod request;
mod rounds;
mod scenario;
mod search;
mod server;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};

use crate::plugins;
use crate::workspace::{display_command, Workspace};
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

    /// The command line that reproduces this run.
    fn command_line(&self) -> String {
        let mut cmd = format!(
            "cargo xtask bench --scenario {} --duration {} --connections {} --warmup {} --rounds {} --client-threads {}",
            crate::workspace::shell_quote(&self.scenario),
            self.duration,
            self.connections,
            self.warmup,
            self.rounds,
            self.client_threads
        );
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
        return Ok(());
    }
    let scenarios = scenario::select(&args.scenario, args.options())?;
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
        let outcome = bench_in(ws, args, scenario, &bin, &bench_dir, &run_dir);
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

/// Runs the scenario with its server's files under `run_dir`; the server is killed on
/// return, error or not.
fn bench_in(
    ws: &Workspace,
    args: &BenchArgs,
    scenario: &Scenario,
    bin: &Path,
    bench_dir: &Path,
    run_dir: &Path,
) -> Result<()> {
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
    let config_path = run_dir.join("plinth.toml");
    std::fs::write(&config_path, config_text)
        .with_context(|| format!("could not write {}", config_path.display()))?;
    let data_dir = run_dir.join("data");
    std::fs::create_dir_all(&data_dir).with_context(|| format!("could not create {}", data_dir.display()))?;

    let mut cmd = Command::new(bin);
    cmd.current_dir(run_dir)
        .arg("serve")
        .arg("--config")
        .arg(&config_path)
        .env("PLINTH_DATA_DIR", &data_dir)
        .env("PLINTH_LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "warn");
    let server_command = format!(
        "PLINTH_DATA_DIR={} PLINTH_LISTEN=127.0.0.1:0 RUST_LOG=warn {}",
        data_dir.display(),
        display_command(&cmd)
    );

    let machine = Machine::detect(&ws.root);
    let settings = args.settings();
    println!("server:  {server_command}");
    println!("{}", machine.describe());
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

    let pre_start = run_pre_start(scenario, bin, run_dir, &config_path, &data_dir)?;
    let mut server = Server::start(cmd, STARTUP_TIMEOUT)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(settings.client_threads)
        .enable_all()
        .build()
        .context("could not start the load generator's runtime")?;
    let scenario = &runtime
        .block_on(preflight::prepare(server.addr, scenario))
        .map_err(|e| anyhow!("{e:#}\n{}", server.stderr_tail()))?;

    let load = LoadConfig {
        addr: server.addr,
        warmup: Duration::from_secs(args.warmup),
        duration: Duration::from_secs(args.duration),
    };
    let measured = rounds::measure(&runtime, &mut server, scenario, &settings, load, machine.nproc)?;
    drop(server);
    if let Some(g) = &gateway {
        println!("fake gateway: {} charges", g.charges());
    }
    let concluded = rounds::conclude(scenario, &measured)?;

    let results = Results {
        scenario: scenario.name.to_owned(),
        description: scenario.description.to_owned(),
        command: args.command_line(),
        server_command,
        pre_start,
        machine,
        settings,
        runs: measured.runs.into_iter().map(|(r, _)| r).collect(),
        probes: measured.probes,
        summary: concluded.summary,
        ratios: concluded.ratios,
        bounds: concluded.bounds,
    };
    let path = bench_dir.join(format!("results-{}.json", scenario.name));
    let json = serde_json::to_string_pretty(&results).context("could not encode the results")?;
    std::fs::write(&path, json + "\n").with_context(|| format!("could not write {}", path.display()))?;
    println!("\nresults written to {}", ws.display_path(&path));
    Ok(())
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
