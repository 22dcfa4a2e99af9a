//! Turning [`RunStats`] into a table on stdout and a JSON file.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::{anyhow, Result};
use hdrhistogram::Histogram;
use serde::Serialize;

use super::load::RunStats;
use super::machine::Machine;

/// Everything written to `target/bench/results-<scenario>.json`.
#[derive(Debug, Serialize)]
pub struct Results {
    pub scenario: String,
    pub description: String,
    pub command: String,
    pub server_command: String,
    pub machine: Machine,
    pub settings: Settings,
    pub runs: Vec<RunReport>,
    pub summary: Vec<Summary>,
    pub ratios: Vec<RatioReport>,
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
    pub responses: u64,
    pub ok: u64,
    pub rps: f64,
    pub latency: Latency,
    /// Errors = non-2xx responses + I/O errors.
    pub errors: u64,
    /// Non-2xx responses by status code.
    pub statuses: BTreeMap<u16, u64>,
    pub io_errors: BTreeMap<String, u64>,
    pub unfinished: u64,
    pub body_bytes: u64,
}

impl RunReport {
    pub fn new(measurement: &str, round: usize, requests: Vec<String>, stats: &RunStats) -> Self {
        Self {
            measurement: measurement.to_owned(),
            round,
            requests,
            responses: stats.responses(),
            ok: stats.ok,
            rps: stats.rps(),
            latency: Latency::of(&stats.latency_us),
            errors: stats.errors(),
            statuses: stats.statuses.clone(),
            io_errors: stats.io_errors.clone(),
            unfinished: stats.unfinished,
            body_bytes: stats.body_bytes,
        }
    }
}

/// All rounds of one measurement: mean throughput, latency over every recorded sample.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub measurement: String,
    pub runs: usize,
    pub mean_rps: f64,
    pub min_rps: f64,
    pub max_rps: f64,
    /// Percentiles of all rounds' samples together.
    pub latency: Latency,
    pub errors: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RatioReport {
    pub numerator: String,
    pub denominator: String,
    /// Mean throughput of `numerator` / mean throughput of `denominator`.
    pub throughput_ratio: Option<f64>,
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
    Ok(Some(Summary {
        measurement: measurement.to_owned(),
        runs: runs.len(),
        mean_rps: rps.iter().sum::<f64>() / rps.len() as f64,
        min_rps: rps.iter().copied().fold(f64::INFINITY, f64::min),
        max_rps: rps.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        latency: Latency::of(&all),
        errors: runs.iter().map(|(r, _)| r.errors).sum(),
    }))
}

pub fn ratio(numerator: &Summary, denominator: &Summary) -> RatioReport {
    RatioReport {
        numerator: numerator.measurement.clone(),
        denominator: denominator.measurement.clone(),
        throughput_ratio: (denominator.mean_rps > 0.0).then(|| numerator.mean_rps / denominator.mean_rps),
    }
}

pub const TABLE_HEADER: &str =
    "measurement        run        req/s        p50        p99      p99.9     errors";

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

fn row(name: &str, run: &str, rps: f64, latency: &Latency, errors: u64) -> String {
    format!(
        "{name:<16} {run:>5} {:>12} {:>10} {:>10} {:>10} {errors:>10}",
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

    #[test]
    fn ratio_handles_zero_throughput() {
        let summary = |name: &str, rps: f64| Summary {
            measurement: name.into(),
            runs: 1,
            mean_rps: rps,
            min_rps: rps,
            max_rps: rps,
            latency: Latency::of(&histogram(&[])),
            errors: 0,
        };
        let r = ratio(&summary("hello", 50.0), &summary("healthz", 200.0));
        assert_eq!(r.throughput_ratio, Some(0.25));
        assert_eq!(
            ratio(&summary("a", 1.0), &summary("b", 0.0)).throughput_ratio,
            None
        );
    }
}
