//! Turning [`RunStats`] into a table on stdout and a JSON file.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::{anyhow, Result};
use hdrhistogram::Histogram;
use serde::Serialize;

use super::bound::BoundReport;
use super::load::RunStats;
use super::machine::Machine;
use super::ratio::RatioReport;

/// Everything written to `target/bench/results-<scenario>.json`.
#[derive(Debug, Serialize)]
pub struct Results {
    pub scenario: String,
    pub description: String,
    pub command: String,
    /// One per server (one per storage backend the scenario compares).
    pub server_commands: Vec<String>,
    /// Where a PostgreSQL server kept its rows (schema and URL, password hidden).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// Commands run on the data directory before the server started (e.g. the seed).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pre_start: Vec<String>,
    pub machine: Machine,
    pub settings: Settings,
    pub runs: Vec<RunReport>,
    /// The scenario's probe, timed before each round (e.g. the argon2id ceiling).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub probes: Vec<ProbeReport>,
    pub summary: Vec<Summary>,
    pub ratios: Vec<RatioReport>,
    /// Figures against absolute targets (e.g. search p99 ≤ 10 ms).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bounds: Vec<BoundReport>,
    /// Database round trips per request, counted on a separate server.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub round_trips: Vec<super::trips::TripReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub duration_s: u64,
    pub warmup_s: u64,
    pub connections: usize,
    pub rounds: usize,
    pub client_threads: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub mean_us: f64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self {
                p50_us: 0,
                p99_us: 0,
                p999_us: 0,
                max_us: 0,
                mean_us: 0.0,
            };
        }
        Self {
            p50_us: h.value_at_quantile(0.50),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
            mean_us: h.mean(),
        }
    }
}

/// One measurement of one round.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub measurement: String,
    pub round: usize,
    pub requests: Vec<String>,
    pub connections: usize,
    /// Measurements recorded at the same time, on other connections.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub concurrent_with: Vec<String>,
    pub responses: u64,
    pub ok: u64,
    pub rps: f64,
    /// 2xx responses per second.
    pub ok_rps: f64,
    pub latency: Latency,
    /// Errors = non-2xx responses + I/O errors.
    pub errors: u64,
    /// Non-2xx responses by status code.
    pub statuses: BTreeMap<u16, u64>,
    pub io_errors: BTreeMap<String, u64>,
    pub unfinished: u64,
    pub body_bytes: u64,
    /// CPU time the loaded server spent per response during the window (user + system;
    /// only when this was the phase's one load).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_cpu_us_per_request: Option<f64>,
    /// CPU time every PostgreSQL process spent per response during the window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_cpu_us_per_request: Option<f64>,
}

impl RunReport {
    pub fn new(
        measurement: &str,
        round: usize,
        requests: Vec<String>,
        connections: usize,
        stats: &RunStats,
    ) -> Self {
        Self {
            measurement: measurement.to_owned(),
            round,
            requests,
            connections,
            concurrent_with: Vec::new(),
            responses: stats.responses(),
            ok: stats.ok,
            rps: stats.rps(),
            ok_rps: stats.ok_rps(),
            latency: Latency::of(&stats.latency_us),
            errors: stats.errors(),
            statuses: stats.statuses.clone(),
            io_errors: stats.io_errors.clone(),
            unfinished: stats.unfinished,
            body_bytes: stats.body_bytes,
            server_cpu_us_per_request: None,
            database_cpu_us_per_request: None,
        }
    }
}

/// One timing of the scenario's probe (before one round).
#[derive(Debug, Clone, Serialize)]
pub struct ProbeReport {
    pub probe: String,
    pub round: usize,
    /// What was timed and how the rate follows, for the report header.
    pub what: String,
    /// Operations timed (after untimed warm-up ones).
    pub samples: usize,
    /// Median, fastest and slowest single operation.
    pub op_median_us: f64,
    pub op_min_us: f64,
    pub op_max_us: f64,
    /// Threads the rate assumes (nproc).
    pub threads: usize,
    /// `threads / op_median`, per second.
    pub rate_per_s: f64,
}

/// All rounds of one measurement: mean throughput, latency over every recorded sample.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub measurement: String,
    pub runs: usize,
    pub mean_rps: f64,
    /// Mean 2xx responses per second.
    pub mean_ok_rps: f64,
    pub min_rps: f64,
    pub max_rps: f64,
    /// Percentiles of all rounds' samples together.
    pub latency: Latency,
    pub errors: u64,
    /// Mean over the rounds that have the figure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_cpu_us_per_request: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_cpu_us_per_request: Option<f64>,
}

/// Summarises the runs of `measurement`; `None` if it has none.
pub fn summarize(measurement: &str, runs: &[(&RunReport, &RunStats)]) -> Result<Option<Summary>> {
    let Some((_, first)) = runs.first() else {
        return Ok(None);
    };
    let mut all = first.latency_us.clone();
    for (_, stats) in &runs[1..] {
        all.add(&stats.latency_us)
            .map_err(|e| anyhow!("could not merge histograms: {e:?}"))?;
    }
    let rps: Vec<f64> = runs.iter().map(|(r, _)| r.rps).collect();
    let ok_rps: Vec<f64> = runs.iter().map(|(r, _)| r.ok_rps).collect();
    Ok(Some(Summary {
        measurement: measurement.to_owned(),
        runs: runs.len(),
        mean_rps: mean(&rps),
        mean_ok_rps: mean(&ok_rps),
        min_rps: rps.iter().copied().fold(f64::INFINITY, f64::min),
        max_rps: rps.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        latency: Latency::of(&all),
        errors: runs.iter().map(|(r, _)| r.errors).sum(),
        server_cpu_us_per_request: mean_of_some(runs.iter().map(|(r, _)| r.server_cpu_us_per_request)),
        database_cpu_us_per_request: mean_of_some(runs.iter().map(|(r, _)| r.database_cpu_us_per_request)),
    }))
}

/// The mean of the values present; `None` if none is.
fn mean_of_some(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let present: Vec<f64> = values.flatten().collect();
    (!present.is_empty()).then(|| mean(&present))
}

/// `measurement  server 312 µs  postgres 140 µs` per summary with a CPU figure; empty
/// without any.
pub fn cpu_rows(summaries: &[Summary]) -> Vec<String> {
    summaries
        .iter()
        .filter_map(|s| {
            let server = s.server_cpu_us_per_request?;
            let mut row = format!(
                "{:<18} server {:>9}",
                s.measurement,
                format_latency_us(server.round() as u64)
            );
            if let Some(db) = s.database_cpu_us_per_request {
                row.push_str(&format!(
                    "   postgres {:>9}   together {:>9}",
                    format_latency_us(db.round() as u64),
                    format_latency_us((server + db).round() as u64)
                ));
            }
            Some(row)
        })
        .collect()
}

fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        0.0
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}

pub const TABLE_HEADER: &str =
    "measurement          run        req/s        p50        p99      p99.9     errors";

pub fn run_row(run: &RunReport, rounds: usize) -> String {
    row(
        &run.measurement,
        &format!("{}/{rounds}", run.round),
        run.rps,
        &run.latency,
        run.errors,
    )
}

pub fn summary_row(summary: &Summary) -> String {
    row(
        &summary.measurement,
        "mean",
        summary.mean_rps,
        &summary.latency,
        summary.errors,
    )
}

/// A probe timing as a table row: its rate under req/s, the median operation under p50.
pub fn probe_row(probe: &ProbeReport, rounds: usize) -> String {
    format!(
        "{:<18} {:>5} {:>12} {:>10}  median of {} ({} … {})",
        probe.probe,
        format!("{}/{rounds}", probe.round),
        format_small_rate(probe.rate_per_s),
        format_latency_us(probe.op_median_us.round() as u64),
        probe.samples,
        format_latency_us(probe.op_min_us.round() as u64),
        format_latency_us(probe.op_max_us.round() as u64),
    )
}

/// The mean rate and median operation time of all probe timings; `None` without any.
pub fn probe_mean(probes: &[ProbeReport]) -> Option<(f64, f64)> {
    if probes.is_empty() {
        return None;
    }
    let rates: Vec<f64> = probes.iter().map(|p| p.rate_per_s).collect();
    let ops: Vec<f64> = probes.iter().map(|p| p.op_median_us).collect();
    Some((mean(&rates), mean(&ops)))
}

pub fn probe_summary_row(name: &str, rate: f64, op_us: f64) -> String {
    format!(
        "{name:<18} {:>5} {:>12} {:>10}",
        "mean",
        format_small_rate(rate),
        format_latency_us(op_us.round() as u64)
    )
}

/// Like [`format_rate`], with one decimal below 1,000 (probe rates are small).
fn format_small_rate(rate: f64) -> String {
    if rate.is_finite() && (0.0..1_000.0).contains(&rate) {
        format!("{rate:.1}")
    } else {
        format_rate(rate)
    }
}

fn row(name: &str, run: &str, rps: f64, latency: &Latency, errors: u64) -> String {
    format!(
        "{name:<18} {run:>5} {:>12} {:>10} {:>10} {:>10} {errors:>10}",
        format_rate(rps),
        format_latency_us(latency.p50_us),
        format_latency_us(latency.p99_us),
        format_latency_us(latency.p999_us),
    )
}

/// Indented lines detailing the errors of a run (empty if none).
pub fn error_details(run: &RunReport) -> String {
    let mut out = String::new();
    for (status, n) in &run.statuses {
        let _ = writeln!(
            out,
            "    {} round {}: HTTP {status} x{n}",
            run.measurement, run.round
        );
    }
    for (message, n) in &run.io_errors {
        let _ = writeln!(out, "    {} round {}: {message} x{n}", run.measurement, run.round);
    }
    out
}

/// `850 µs`, `1.25 ms`, `2.50 s`.
pub fn format_latency_us(us: u64) -> String {
    if us < 1_000 {
        format!("{us} µs")
    } else if us < 1_000_000 {
        format!("{:.2} ms", us as f64 / 1e3)
    } else {
        format!("{:.2} s", us as f64 / 1e6)
    }
}

/// A rate rounded to whole units with thousands separators: `12,345`.
pub fn format_rate(rate: f64) -> String {
    if !rate.is_finite() || rate < 0.0 {
        return "-".to_owned();
    }
    let digits = format!("{:.0}", rate);
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_latencies() {
        assert_eq!(format_latency_us(0), "0 µs");
        assert_eq!(format_latency_us(999), "999 µs");
        assert_eq!(format_latency_us(1_000), "1.00 ms");
        assert_eq!(format_latency_us(12_345), "12.35 ms");
        assert_eq!(format_latency_us(2_500_000), "2.50 s");
    }

    #[test]
    fn formats_rates() {
        assert_eq!(format_rate(0.0), "0");
        assert_eq!(format_rate(999.4), "999");
        assert_eq!(format_rate(1_000.0), "1,000");
        assert_eq!(format_rate(1_234_567.8), "1,234,568");
        assert_eq!(format_rate(f64::NAN), "-");
    }

    fn histogram(values: &[u64]) -> Histogram<u64> {
        let mut h = Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram");
        for v in values {
            h.record(*v).expect("in range");
        }
        h
    }

    #[test]
    fn computes_percentiles() {
        let values: Vec<u64> = (1..=1000).collect();
        let latency = Latency::of(&histogram(&values));
        assert_eq!(latency.p50_us, 500);
        assert_eq!(latency.p99_us, 990);
        assert_eq!(latency.p999_us, 999);
        assert_eq!(latency.max_us, 1000);
        assert_eq!(Latency::of(&histogram(&[])).p99_us, 0);
    }

    #[test]
    fn rows_line_up_with_the_header() {
        let latency = Latency::of(&histogram(&[100, 2_000, 3_000_000]));
        let line = row("healthz", "1/2", 45_123.4, &latency, 0);
        assert_eq!(line.chars().count(), TABLE_HEADER.chars().count(), "{line}");
        assert!(line.contains("45,123"));
    }

    fn probe(round: usize, rate: f64, median_us: f64) -> ProbeReport {
        ProbeReport {
            probe: "argon2id-ceiling".into(),
            round,
            what: "argon2id".into(),
            samples: 15,
            op_median_us: median_us,
            op_min_us: median_us - 1_000.0,
            op_max_us: median_us + 5_000.0,
            threads: 2,
            rate_per_s: rate,
        }
    }

    #[test]
    fn probe_rows_use_the_table_columns() {
        let line = probe_row(&probe(1, 82.35, 24_290.0), 2);
        let columns = "measurement          run        req/s        p50".chars().count();
        assert_eq!(
            line,
            "argon2id-ceiling     1/2         82.3   24.29 ms  median of 15 (23.29 ms … 29.29 ms)"
        );
        let p50_end = line.find(" ms").expect("unit") + " ms".len();
        assert_eq!(line[..p50_end].chars().count(), columns);
        assert_eq!(probe_mean(&[]), None);
        let (rate, op) = probe_mean(&[probe(1, 80.0, 25_000.0), probe(2, 90.0, 22_000.0)]).expect("some");
        assert!((rate - 85.0).abs() < 1e-9 && (op - 23_500.0).abs() < 1e-9);
        assert_eq!(
            probe_summary_row("argon2id-ceiling", rate, op),
            "argon2id-ceiling    mean         85.0   23.50 ms"
        );
    }

    #[test]
    fn summaries_average_rates_and_2xx_rates() {
        let mut ok = RunStats::new(std::time::Duration::from_secs(1)).expect("stats");
        ok.latency_us = histogram(&[1_000, 2_000]);
        ok.ok = 2;
        let mut half = RunStats::new(std::time::Duration::from_secs(1)).expect("stats");
        half.latency_us = histogram(&[3_000, 4_000]);
        half.ok = 1;
        let a = RunReport::new("login", 1, vec!["POST /auth/login".into()], 16, &ok);
        let b = RunReport::new("login", 2, vec!["POST /auth/login".into()], 16, &half);
        let s = summarize("login", &[(&a, &ok), (&b, &half)])
            .expect("merges")
            .expect("runs");
        assert!((s.mean_rps - 2.0).abs() < 1e-9, "{s:?}");
        assert!((s.mean_ok_rps - 1.5).abs() < 1e-9, "{s:?}");
        // Latencies of both rounds, to the histogram's 3 significant digits.
        assert!((4_000..4_010).contains(&s.latency.max_us), "{s:?}");
        assert!(summarize("none", &[]).expect("ok").is_none());
    }
}
