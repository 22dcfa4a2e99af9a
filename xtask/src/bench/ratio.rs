//! Ratios between the figures of one scenario run (two throughputs, two p99 latencies,
//! a throughput and the probe's ceiling): these machines are noisy, so only figures
//! measured in the same run compare well.

use serde::Serialize;

use super::report::{format_latency_us, format_rate, Summary};

/// A figure a ratio compares.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Figure {
    /// Mean responses per second (any status) of a measurement: the table's req/s.
    Rate(&'static str),
    /// Mean 2xx responses per second of a measurement.
    OkRate(&'static str),
    /// p99 latency of a measurement over every round's samples.
    P99(&'static str),
    /// The mean rate of the scenario's probe (e.g. the argon2id ceiling).
    Probe,
}

impl Figure {
    /// The measurement it is a figure of (none for the probe).
    pub fn measurement(self) -> Option<&'static str> {
        match self {
            Self::Rate(m) | Self::OkRate(m) | Self::P99(m) => Some(m),
            Self::Probe => None,
        }
    }

    /// Per second (else a latency).
    pub fn is_rate(self) -> bool {
        !matches!(self, Self::P99(_))
    }

    fn name(self, probe: &str) -> String {
        match self {
            Self::Rate(m) | Self::P99(m) => m.to_owned(),
            Self::OkRate(m) => format!("{m}(2xx)"),
            Self::Probe => probe.to_owned(),
        }
    }
}

/// What a ratio should be; reported as met or not, never fatal.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    AtLeast(f64),
    AtMost(f64),
}

impl Target {
    pub fn met(self, value: f64) -> bool {
        match self {
            Self::AtLeast(bound) => value >= bound,
            Self::AtMost(bound) => value <= bound,
        }
    }

    fn describe(self) -> String {
        match self {
            Self::AtLeast(bound) => format!("≥ {bound:.2}"),
            Self::AtMost(bound) => format!("≤ {bound:.2}"),
        }
    }
}

/// `numerator / denominator`; both rates or both latencies.
#[derive(Debug, Clone)]
pub struct Ratio {
    pub numerator: Figure,
    pub denominator: Figure,
    pub target: Option<Target>,
}

/// The figures a scenario's runs produced.
pub struct Figures<'a> {
    pub summaries: &'a [Summary],
    /// The probe's name and mean rate, if the scenario has one.
    pub probe: Option<(&'a str, f64)>,
}

impl Figures<'_> {
    pub fn value(&self, figure: Figure) -> Option<f64> {
        let summary = |m: &str| self.summaries.iter().find(|s| s.measurement == m);
        match figure {
            Figure::Rate(m) => summary(m).map(|s| s.mean_rps),
            Figure::OkRate(m) => summary(m).map(|s| s.mean_ok_rps),
            Figure::P99(m) => summary(m)
                .filter(|s| s.latency.p99_us > 0)
                .map(|s| s.latency.p99_us as f64),
            Figure::Probe => self.probe.map(|(_, rate)| rate),
        }
    }

    pub fn name(&self, figure: Figure) -> String {
        figure.name(self.probe.map_or("probe", |(name, _)| name))
    }
}

/// A ratio as written to the results: `{"numerator": …, "denominator": …,
/// "throughput_ratio": 0.48, …}` (or `p99_ratio`).
#[derive(Debug, Clone, Serialize)]
pub struct RatioReport {
    pub numerator: String,
    pub denominator: String,
    #[serde(flatten)]
    pub value: RatioValue,
    /// Per second, or µs for p99.
    pub numerator_value: Option<f64>,
    pub denominator_value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<TargetReport>,
}

/// `None` when a figure is missing or the denominator is zero (e.g. no responses).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RatioValue {
    ThroughputRatio(Option<f64>),
    P99Ratio(Option<f64>),
}

impl RatioValue {
    pub fn get(self) -> Option<f64> {
        match self {
            Self::ThroughputRatio(v) | Self::P99Ratio(v) => v,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TargetReport {
    #[serde(flatten)]
    pub bound: Target,
    /// `None` when the ratio could not be computed.
    pub met: Option<bool>,
}

pub fn evaluate(ratio: &Ratio, figures: &Figures) -> RatioReport {
    let num = figures.value(ratio.numerator);
    let den = figures.value(ratio.denominator);
    let value = match (num, den) {
        (Some(n), Some(d)) if d > 0.0 => Some(n / d),
        _ => None,
    };
    RatioReport {
        numerator: figures.name(ratio.numerator),
        denominator: figures.name(ratio.denominator),
        value: if ratio.numerator.is_rate() {
            RatioValue::ThroughputRatio(value)
        } else {
            RatioValue::P99Ratio(value)
        },
        numerator_value: num,
        denominator_value: den,
        target: ratio.target.map(|bound| TargetReport {
            bound,
            met: value.map(|v| bound.met(v)),
        }),
    }
}

/// `throughput hello/healthz: 0.477`; ratios with a target also show both figures and
/// whether the target is met.
pub fn line(report: &RatioReport) -> String {
    let (quantity, format): (&str, fn(f64) -> String) = match report.value {
        RatioValue::ThroughputRatio(_) => ("throughput", format_per_s),
        RatioValue::P99Ratio(_) => ("p99", |us| format_latency_us(us.round() as u64)),
    };
    let head = format!("{quantity} {}/{}", report.numerator, report.denominator);
    let Some(value) = report.value.get() else {
        return format!("{head}: n/a (no responses)");
    };
    let mut out = format!("{head}: {value:.3}");
    if let Some(target) = report.target {
        let shown = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), format);
        let verdict = if target.met == Some(true) {
            "met"
        } else {
            "NOT met"
        };
        out.push_str(&format!(
            " ({} / {}; target {}: {verdict})",
            shown(report.numerator_value),
            shown(report.denominator_value),
            target.bound.describe()
        ));
    }
    out
}

/// `81.3/s` below 1,000 per second, else `12,345/s`.
pub fn format_per_s(rate: f64) -> String {
    if rate.is_finite() && (0.0..1_000.0).contains(&rate) {
        format!("{rate:.1}/s")
    } else {
        format!("{}/s", format_rate(rate))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::report::Latency;

    fn summary(name: &str, rps: f64, ok_rps: f64, p99_us: u64) -> Summary {
        Summary {
            measurement: name.into(),
            runs: 1,
            mean_rps: rps,
            mean_ok_rps: ok_rps,
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

    fn ratio(numerator: Figure, denominator: Figure, target: Option<Target>) -> Ratio {
        Ratio {
            numerator,
            denominator,
            target,
        }
    }

    #[test]
    fn throughput_ratio_keeps_the_plugin_format() {
        let summaries = [
            summary("hello", 50.0, 50.0, 900),
            summary("healthz", 200.0, 200.0, 300),
        ];
        let figures = Figures {
            summaries: &summaries,
            probe: None,
        };
        let r = evaluate(
            &ratio(Figure::Rate("hello"), Figure::Rate("healthz"), None),
            &figures,
        );
        assert_eq!(r.value, RatioValue::ThroughputRatio(Some(0.25)));
        assert_eq!(line(&r), "throughput hello/healthz: 0.250");
        let json = serde_json::to_value(&r).expect("serializes");
        assert_eq!(json["numerator"], "hello");
        assert_eq!(json["throughput_ratio"], 0.25);
        assert!(json.get("target").is_none());
    }

    #[test]
    fn zero_or_missing_denominators_give_no_ratio() {
        let summaries = [summary("a", 1.0, 1.0, 10), summary("b", 0.0, 0.0, 0)];
        let figures = Figures {
            summaries: &summaries,
            probe: None,
        };
        let r = evaluate(&ratio(Figure::Rate("a"), Figure::Rate("b"), None), &figures);
        assert_eq!(r.value.get(), None);
        assert_eq!(line(&r), "throughput a/b: n/a (no responses)");
        // A p99 of 0 means no samples, not an infinitely fast server.
        let r = evaluate(&ratio(Figure::P99("a"), Figure::P99("b"), None), &figures);
        assert_eq!(r.value, RatioValue::P99Ratio(None));
        let r = evaluate(&ratio(Figure::Rate("a"), Figure::Probe, None), &figures);
        assert_eq!(r.value.get(), None);
    }

    #[test]
    fn login_ratio_against_the_probe_uses_2xx_only() {
        // 100 responses/s of which 72 are 2xx (the rest 503 auth_busy); ceiling 80/s.
        let summaries = [summary("login", 100.0, 72.0, 400_000)];
        let figures = Figures {
            summaries: &summaries,
            probe: Some(("argon2id-ceiling", 80.0)),
        };
        let target = Some(Target::AtLeast(0.9));
        let r = evaluate(&ratio(Figure::OkRate("login"), Figure::Probe, target), &figures);
        assert_eq!(r.value, RatioValue::ThroughputRatio(Some(0.9)));
        assert_eq!(r.target.and_then(|t| t.met), Some(true));
        assert_eq!(
            line(&r),
            "throughput login(2xx)/argon2id-ceiling: 0.900 (72.0/s / 80.0/s; target ≥ 0.90: met)"
        );
        let json = serde_json::to_value(&r).expect("serializes");
        assert_eq!(json["target"], serde_json::json!({"at_least": 0.9, "met": true}));
    }

    #[test]
    fn p99_ratio_with_an_upper_target() {
        let summaries = [
            summary("healthz-idle", 40_000.0, 40_000.0, 1_000),
            summary("healthz-flood", 20_000.0, 20_000.0, 3_500),
        ];
        let figures = Figures {
            summaries: &summaries,
            probe: None,
        };
        let r = evaluate(
            &ratio(
                Figure::P99("healthz-flood"),
                Figure::P99("healthz-idle"),
                Some(Target::AtMost(3.0)),
            ),
            &figures,
        );
        assert_eq!(r.value, RatioValue::P99Ratio(Some(3.5)));
        assert_eq!(
            line(&r),
            "p99 healthz-flood/healthz-idle: 3.500 (3.50 ms / 1.00 ms; target ≤ 3.00: NOT met)"
        );
        let json = serde_json::to_value(&r).expect("serializes");
        assert_eq!(json["p99_ratio"], 3.5);
        assert_eq!(json["target"]["met"], false);
    }

    #[test]
    fn targets_and_rates() {
        assert!(Target::AtLeast(0.9).met(0.9) && !Target::AtLeast(0.9).met(0.89));
        assert!(Target::AtMost(3.0).met(3.0) && !Target::AtMost(3.0).met(3.01));
        assert_eq!(format_per_s(81.26), "81.3/s");
        assert_eq!(format_per_s(147.06), "147.1/s");
        assert_eq!(format_per_s(12_345.4), "12,345/s");
        assert!(Figure::Probe.is_rate() && Figure::OkRate("x").is_rate());
        assert!(!Figure::P99("x").is_rate());
    }
}
