//! A scenario's rounds against a running server (probe, then every phase, one table row
//! per measurement), then the means, the bounds, the ratios and the error details.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use tokio::runtime::Runtime;

use super::backend::Backend;
use super::bound::{self, BoundReport};
use super::cpu;
use super::load::{self, Group, LoadConfig, RunStats};
use super::ratio::{self, Figures, RatioReport};
use super::report::{self, ProbeReport, RunReport, Settings, Summary};
use super::request::distinct_labels;
use super::scenario::{Phase, Scenario};
use super::server::Server;

/// Pause before each probe, so work a flood left queued in the server (e.g. hashes of
/// logins whose connections the load generator dropped at the end) finishes first.
const PROBE_SETTLE: Duration = Duration::from_secs(1);

/// What every round recorded.
pub struct Measured {
    pub runs: Vec<(RunReport, RunStats)>,
    pub probes: Vec<ProbeReport>,
}

/// The servers of a run, one per storage backend the scenario uses.
pub type Servers = [(Backend, Server)];

/// Runs `settings.rounds` rounds, printing the table header and a row per run.
/// `threads` is what the probe's rate assumes (nproc).
pub fn measure(
    runtime: &Runtime,
    servers: &mut Servers,
    scenario: &Scenario,
    settings: &Settings,
    load: LoadConfig,
    threads: usize,
) -> Result<Measured> {
    let rounds = settings.rounds;
    let hz = cpu::ticks_per_second();
    let mut measured = Measured {
        runs: Vec::new(),
        probes: Vec::new(),
    };
    println!("{}", report::TABLE_HEADER);
    for round in 1..=rounds {
        if let Some(probe) = &scenario.probe {
            std::thread::sleep(PROBE_SETTLE);
            let timing = probe.measure(round, threads)?;
            println!("{}", report::probe_row(&timing, rounds));
            measured.probes.push(timing);
        }
        for phase in &scenario.phases {
            let groups = phase
                .measurements
                .iter()
                .map(|m| {
                    Ok(Group {
                        addr: server_of(servers, m.backend)?.addr,
                        connections: m.connections.resolve(settings.connections),
                        specs: Arc::from(m.requests.as_slice()),
                    })
                })
                .collect::<Result<Vec<Group>>>()?;
            let watched = Watched::of(servers, phase);
            let (stats, cpu) = runtime.block_on(async {
                let window = tokio::spawn(cpu_window(watched, load));
                let stats = load::run(load, &groups).await;
                (stats, window.await.ok())
            });
            let stats = stats.map_err(|e| anyhow!("{e:#}\n{}", tails(servers)))?;
            for (_, server) in servers.iter_mut() {
                server.check_alive()?;
            }
            for ((m, group), stats) in phase.measurements.iter().zip(&groups).zip(stats) {
                let labels = distinct_labels(&m.requests);
                let mut run = RunReport::new(m.name, round, labels, group.connections, &stats);
                run.concurrent_with = phase
                    .measurements
                    .iter()
                    .filter(|o| o.name != m.name)
                    .map(|o| o.name.to_owned())
                    .collect();
                // CPU is per process, so it is only a per-request figure when one load ran.
                if let (Some(cpu), [_]) = (&cpu, phase.measurements.as_slice()) {
                    let responses = stats.responses();
                    run.server_cpu_us_per_request =
                        cpu::us_per_request(cpu.server.0, cpu.server.1, responses, hz);
                    run.database_cpu_us_per_request =
                        cpu::us_per_request(cpu.database.0, cpu.database.1, responses, hz);
                }
                println!("{}", report::run_row(&run, rounds));
                measured.runs.push((run, stats));
            }
        }
    }
    Ok(measured)
}

/// The server a measurement on `backend` loads.
pub fn server_of(servers: &Servers, backend: Backend) -> Result<&Server> {
    servers
        .iter()
        .find(|(b, _)| *b == backend)
        .map(|(_, s)| s)
        .with_context(|| format!("no {} server was started", backend.name()))
}

/// Every server's stderr tail, for an error.
pub fn tails(servers: &Servers) -> String {
    let tails: Vec<String> = servers
        .iter()
        .map(|(b, s)| format!("[{}] {}", b.name(), s.stderr_tail()))
        .collect();
    tails.join("\n")
}

/// Whose CPU a phase's window reads: the server its (first) load goes to, and
/// PostgreSQL's processes when that server is on PostgreSQL.
#[derive(Debug, Clone, Copy)]
struct Watched {
    server: Option<u32>,
    database: bool,
}

impl Watched {
    fn of(servers: &Servers, phase: &Phase) -> Self {
        let backend = phase.measurements.first().map(|m| m.backend);
        Self {
            server: backend.and_then(|b| server_of(servers, b).ok()).map(Server::pid),
            database: backend == Some(Backend::Postgres),
        }
    }
}

/// CPU readings at the start and at the end of the measured window.
struct CpuWindow {
    server: (Option<cpu::Ticks>, Option<cpu::Ticks>),
    database: (Option<cpu::Ticks>, Option<cpu::Ticks>),
}

/// Reads CPU when the warm-up ends and when the window ends (the load generator's
/// clock started at the same moment).
async fn cpu_window(watched: Watched, load: LoadConfig) -> CpuWindow {
    let read = move || async move {
        tokio::task::spawn_blocking(move || {
            (
                watched.server.and_then(cpu::of_pid),
                watched.database.then(|| cpu::of_name("postgres")).flatten(),
            )
        })
        .await
        .unwrap_or((None, None))
    };
    tokio::time::sleep(load.warmup).await;
    let before = read().await;
    tokio::time::sleep(load.duration).await;
    let after = read().await;
    CpuWindow {
        server: (before.0, after.0),
        database: (before.1, after.1),
    }
}

/// The figures of every round together.
pub struct Concluded {
    pub summary: Vec<Summary>,
    pub ratios: Vec<RatioReport>,
    pub bounds: Vec<BoundReport>,
}

/// Prints a mean row per measurement (and the probe's), the bounds, the ratios and the
/// errors.
pub fn conclude(scenario: &Scenario, measured: &Measured) -> Result<Concluded> {
    let mut summary = Vec::new();
    for m in scenario.measurements() {
        let of_m: Vec<(&RunReport, &RunStats)> = measured
            .runs
            .iter()
            .filter(|(r, _)| r.measurement == m.name)
            .map(|(r, s)| (r, s))
            .collect();
        if let Some(s) = report::summarize(m.name, &of_m)? {
            println!("{}", report::summary_row(&s));
            summary.push(s);
        }
    }
    let cpu_rows = report::cpu_rows(&summary);
    if !cpu_rows.is_empty() {
        println!("\nCPU per request (user + system, mean of the rounds):");
        for row in cpu_rows {
            println!("{row}");
        }
    }
    let probe = match (&scenario.probe, report::probe_mean(&measured.probes)) {
        (Some(probe), Some((rate, op_us))) => {
            println!("{}", report::probe_summary_row(probe.name(), rate, op_us));
            Some((probe.name(), rate))
        }
        _ => None,
    };

    let figures = Figures {
        summaries: &summary,
        probe,
    };
    let bounds: Vec<BoundReport> = scenario
        .bounds
        .iter()
        .map(|b| bound::evaluate(b, &figures))
        .collect();
    let ratios: Vec<RatioReport> = scenario
        .ratios
        .iter()
        .map(|r| ratio::evaluate(r, &figures))
        .collect();
    let lines = bounds
        .iter()
        .map(bound::line)
        .chain(ratios.iter().map(ratio::line));
    for (i, line) in lines.enumerate() {
        let gap = if i == 0 { "\n" } else { "" };
        println!("{gap}{line}");
    }

    let details: String = measured
        .runs
        .iter()
        .map(|(r, _)| report::error_details(r))
        .collect();
    if !details.is_empty() {
        println!(
            "\nerrors (non-2xx responses and I/O errors):\n{}",
            details.trim_end()
        );
    }
    Ok(Concluded {
        summary,
        ratios,
        bounds,
    })
}
