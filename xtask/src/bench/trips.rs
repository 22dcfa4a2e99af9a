//! Database round trips per request: after the measured rounds, a third server on the
//! same schema, reaching PostgreSQL through a [`CountingProxy`], is sent each
//! PostgreSQL measurement's requests one at a time; the proxy's count over the requests,
//! less what the server does on its own meanwhile (the search follower's poll, lease
//! renewals: measured idle just before), divided by the requests, is the figure. The
//! proxy never sits in a measured path, so it costs the throughput figures nothing.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Serialize;
use tokio::time::Instant;

use super::load;
use super::pgwire::CountingProxy;
use super::scenario::{Backend, Scenario};

/// Requests sent one after another per measurement.
pub const REQUESTS: usize = 60;
/// How long the server's own database traffic is watched before each measurement.
const IDLE_WINDOW: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Serialize)]
pub struct TripReport {
    pub measurement: String,
    pub requests: usize,
    /// Round trips counted while the requests ran.
    pub counted: u64,
    /// Round trips per second the idle server made on its own.
    pub background_per_s: f64,
    /// `(counted − background × elapsed) / requests`.
    pub per_request: f64,
}

/// The scenario's PostgreSQL measurements alone (what the counting server is sent).
pub fn postgres_only(scenario: &Scenario) -> Scenario {
    let mut only = scenario.clone();
    for phase in &mut only.phases {
        phase.measurements.retain(|m| m.backend == Backend::Postgres);
    }
    only.phases.retain(|p| !p.measurements.is_empty());
    only
}

/// Counts round trips per request of every measurement of `scenario` (prepared for the
/// server at `addr`, whose database connections go through `proxy`).
pub async fn count(proxy: &CountingProxy, addr: SocketAddr, scenario: &Scenario) -> Result<Vec<TripReport>> {
    let mut reports = Vec::new();
    for m in scenario.measurements() {
        let idle_from = proxy.trips();
        tokio::time::sleep(IDLE_WINDOW).await;
        let background_per_s = (proxy.trips() - idle_from) as f64 / IDLE_WINDOW.as_secs_f64();

        let from = proxy.trips();
        let started = Instant::now();
        for spec in m.requests.iter().cycle().take(REQUESTS) {
            let (status, _) = load::send_once(addr, spec)
                .await
                .with_context(|| format!("round-trip count of {}: {}", m.name, spec.label()))?;
            if !status.is_success() {
                bail!(
                    "round-trip count of {}: {} answered {status}",
                    m.name,
                    spec.label()
                );
            }
        }
        let counted = proxy.trips() - from;
        let background = background_per_s * started.elapsed().as_secs_f64();
        let per_request = ((counted as f64 - background) / REQUESTS as f64).max(0.0);
        reports.push(TripReport {
            measurement: m.name.to_owned(),
            requests: REQUESTS,
            counted,
            background_per_s,
            per_request,
        });
    }
    Ok(reports)
}

/// `checkout-postgres   9.0 round trips per request (540 counted, 4.0/s idle)`.
pub fn row(report: &TripReport) -> String {
    format!(
        "{:<18} {:>5.1} round trips per request ({} counted over {} requests, {:.1}/s idle)",
        report.measurement, report.per_request, report.counted, report.requests, report.background_per_s
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_postgres_loads() {
        let s = postgres_only(&super::super::postgres::scenario());
        assert_eq!(s.phases.len(), 5);
        assert!(s.measurements().all(|m| m.backend == Backend::Postgres));
        assert_eq!(s.backends(), [Backend::Postgres]);
    }
}
