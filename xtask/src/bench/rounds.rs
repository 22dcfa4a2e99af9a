//! A scenario's rounds against a running server (probe, then every phase, one table row
//! per measurement), then the means, the bounds, the ratios and the error details.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Result};
use tokio::runtime::Runtime;

use super::bound::{self, BoundReport};
use super::load::{self, Group, LoadConfig, RunStats};
use super::ratio::{self, Figures, RatioReport};
use super::report::{self, ProbeReport, RunReport, Settings, Summary};
use super::request::distinct_labels;
use super::scenario::Scenario;
use super::server::Server;

/// Pause before each probe, so work a flood left queued in the server (e.g. hashes of
/// logins whose connections the load generator dropped at the end) finishes first.
const PROBE_SETTLE: Duration = Duration::from_secs(1);

/// What every round recorded.
pub struct Measured {
    pub runs: Vec<(RunReport, RunStats)>,
    pub probes: Vec<ProbeReport>,
}

/// Runs `settings.rounds` rounds, printing the table header and a row per run.
/// `threads` is what the probe's rate assumes (nproc).
pub fn measure(
    runtime: &Runtime,
    server: &mut Server,
    scenario: &Scenario,
    settings: &Settings,
    load: LoadConfig,
    threads: usize,
) -> Result<Measured> {
    let rounds = settings.rounds;
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
            let groups: Vec<Group> = phase
                .measurements
                .iter()
                .map(|m| Group {
                    connections: m.connections.resolve(settings.connections),
                    specs: Arc::from(m.requests.as_slice()),
                })
                .collect();
            let stats = runtime
                .block_on(load::run(load, &groups))
                .map_err(|e| anyhow!("{e:#}\n{}", server.stderr_tail()))?;
            server.check_alive()?;
            for ((m, group), stats) in phase.measurements.iter().zip(&groups).zip(stats) {
                let labels = distinct_labels(&m.requests);
                let mut run = RunReport::new(m.name, round, labels, group.connections, &stats);
                run.concurrent_with = phase
                    .measurements
                    .iter()
                    .filter(|o| o.name != m.name)
                    .map(|o| o.name.to_owned())
                    .collect();
                println!("{}", report::run_row(&run, rounds));
                measured.runs.push((run, stats));
            }
        }
    }
    Ok(measured)
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
