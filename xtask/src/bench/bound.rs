//! Bounds: one figure of a scenario run against an absolute target (e.g. search p99 ≤
//! 10 ms), where a [`Ratio`](super::ratio::Ratio) compares two figures of the run.

use serde::Serialize;

use super::ratio::{format_per_s, Figure, Figures, Target};
use super::report::format_latency_us;

/// `figure` should meet `target`: µs for a p99, per second for a rate.
#[derive(Debug, Clone)]
pub struct Bound {
    pub figure: Figure,
    pub target: Target,
}

/// A bound as written to the results: `{"figure": "search", "quantity": "p99_us",
/// "value": 4210.0, "target": {"at_most": 10000.0, "met": true}}`.
#[derive(Debug, Clone, Serialize)]
pub struct BoundReport {
    pub figure: String,
    /// `p99_us` or `per_s`.
    pub quantity: &'static str,
    /// `None` when the figure is missing (e.g. no responses).
    pub value: Option<f64>,
    pub target: BoundTarget,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BoundTarget {
    #[serde(flatten)]
    pub bound: Target,
    /// `None` when the figure is missing.
    pub met: Option<bool>,
}

pub fn evaluate(bound: &Bound, figures: &Figures) -> BoundReport {
    let value = figures.value(bound.figure);
    BoundReport {
        figure: figures.name(bound.figure),
        quantity: if bound.figure.is_rate() { "per_s" } else { "p99_us" },
        value,
        target: BoundTarget {
            bound: bound.target,
            met: value.map(|v| bound.target.met(v)),
        },
    }
}

/// `p99 search: 4.21 ms (target ≤ 10.00 ms: met)`.
pub fn line(report: &BoundReport) -> String {
    let (quantity, format): (&str, fn(f64) -> String) = if report.quantity == "per_s" {
        ("throughput", format_per_s)
    } else {
        ("p99", |us| format_latency_us(us.round() as u64))
    };
    let head = format!("{quantity} {}", report.figure);
    let (relation, limit) = match report.target.bound {
        Target::AtLeast(v) => ("≥", v),
        Target::AtMost(v) => ("≤", v),
    };
    let Some(value) = report.value else {
        return format!("{head}: n/a (no responses; target {relation} {})", format(limit));
    };
    let verdict = if report.target.met == Some(true) {
        "met"
    } else {
        "NOT met"
    };
    format!(
        "{head}: {} (target {relation} {}: {verdict})",
        format(value),
        format(limit)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::report::{Latency, Summary};

    fn summary(name: &str, rps: f64, p99_us: u64) -> Summary {
        Summary {
            measurement: name.into(),
            runs: 2,
            mean_rps: rps,
            mean_ok_rps: rps,
            min_rps: rps,
            max_rps: rps,
            latency: Latency {
                p50_us: p99_us / 2,
                p99_us,
                p999_us: p99_us,
                max_us: p99_us,
                mean_us: p99_us as f64 / 2.0,
            },
            errors: 0,
            server_cpu_us_per_request: None,
            database_cpu_us_per_request: None,
        }
    }

    #[test]
    fn p99_bounds_in_milliseconds() {
        let summaries = [summary("search", 3_000.0, 4_210)];
        let figures = Figures {
            summaries: &summaries,
            probe: None,
        };
        let bound = Bound {
            figure: Figure::P99("search"),
            target: Target::AtMost(10_000.0),
        };
        let r = evaluate(&bound, &figures);
        assert_eq!((r.value, r.target.met), (Some(4_210.0), Some(true)));
        assert_eq!(line(&r), "p99 search: 4.21 ms (target ≤ 10.00 ms: met)");
        let json = serde_json::to_value(&r).expect("serializes");
        assert_eq!(
            json,
            serde_json::json!({"figure": "search", "quantity": "p99_us", "value": 4210.0,
                               "target": {"at_most": 10000.0, "met": true}})
        );

        let slow = [summary("search", 3_000.0, 12_500)];
        let figures = Figures {
            summaries: &slow,
            probe: None,
        };
        let r = evaluate(&bound, &figures);
        assert_eq!(line(&r), "p99 search: 12.50 ms (target ≤ 10.00 ms: NOT met)");
    }

    #[test]
    fn rate_bounds_and_missing_figures() {
        let summaries = [summary("search", 2_500.0, 1_000)];
        let figures = Figures {
            summaries: &summaries,
            probe: None,
        };
        let bound = Bound {
            figure: Figure::Rate("search"),
            target: Target::AtLeast(3_000.0),
        };
        let r = evaluate(&bound, &figures);
        assert_eq!(r.target.met, Some(false));
        assert_eq!(line(&r), "throughput search: 2,500/s (target ≥ 3,000/s: NOT met)");
        let none = Figures {
            summaries: &[],
            probe: None,
        };
        let r = evaluate(&bound, &none);
        assert_eq!((r.value, r.target.met), (None, None));
        assert_eq!(
            line(&r),
            "throughput search: n/a (no responses; target ≥ 3,000/s)"
        );
    }
}
