//! Before the first measurement: the scenario's setup requests, then each distinct
//! measured request once. A benchmark of error pages would mean nothing, so every one
//! must answer 2xx (or a status its setup request allows), and a measurement with an
//! [`Expect`] has its responses checked too (e.g. that searches find products).

use std::net::SocketAddr;

use anyhow::{bail, Context, Result};
use bytes::Bytes;

use super::load;
use super::scenario::{Backend, Expect, RequestSpec, Scenario};

/// How much of an unexpected response body an error message shows.
const BODY_SNIPPET: usize = 300;

/// Sends the setup requests to every server, fills the variables they capture into the
/// measured requests of that server, and checks each distinct measured request once.
/// Returns the scenario with its variables filled in.
pub async fn prepare(servers: &[(Backend, SocketAddr)], scenario: &Scenario) -> Result<Scenario> {
    let mut scenario = scenario.clone();
    for &(backend, addr) in servers {
        for setup in &scenario.setup {
            let (_, body) = send_checked(addr, "setup", &setup.request, &setup.also_ok).await?;
            if let Some(capture) = setup.capture {
                let value = captured(&body, capture.field)
                    .with_context(|| format!("setup request {}", setup.request.label()))?;
                let on_this_server = scenario
                    .phases
                    .iter_mut()
                    .flat_map(|p| &mut p.measurements)
                    .filter(|m| m.backend == backend);
                for m in on_this_server {
                    for spec in &mut m.requests {
                        spec.substitute(capture.var, &value)?;
                    }
                }
            }
        }
    }
    check_measured(servers, &scenario).await?;
    Ok(scenario)
}

/// The string field `field` of a JSON body.
pub fn captured(body: &[u8], field: &str) -> Result<String> {
    let value: serde_json::Value =
        serde_json::from_slice(body).context("answered something else than JSON")?;
    value
        .get(field)
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
        .with_context(|| format!("answered JSON without a string `{field}`"))
}

async fn check_measured(servers: &[(Backend, SocketAddr)], scenario: &Scenario) -> Result<()> {
    let mut sent: Vec<(Backend, &RequestSpec)> = Vec::new();
    for m in scenario.measurements() {
        let addr = servers
            .iter()
            .find(|(b, _)| *b == m.backend)
            .map(|(_, a)| *a)
            .with_context(|| format!("no {} server for {}", m.backend.name(), m.name))?;
        let mut answers: Vec<(String, Bytes)> = Vec::new();
        let mut statuses: Vec<hyper::StatusCode> = Vec::new();
        for spec in &m.requests {
            let seen = sent.iter().any(|(b, o)| {
                *b == m.backend
                    && o.method == spec.method
                    && o.path == spec.path
                    && o.body == spec.body
                    && o.headers == spec.headers
            });
            if seen {
                continue;
            }
            sent.push((m.backend, spec));
            let (status, body) = send_checked(addr, "preflight", spec, &[]).await?;
            statuses.push(status);
            answers.push((spec.label(), body));
        }
        if m.expect == Some(Expect::NewOrders) {
            let line = check_new_orders(m.name, &statuses, &answers)?;
            println!("{line}\n");
        }
        if let Some(Expect::Products { min_with_hits }) = m.expect {
            let hits = answers
                .iter()
                .map(|(label, body)| {
                    product_hits(body)
                        .map(|n| (label.clone(), n))
                        .with_context(|| format!("preflight request {label}"))
                })
                .collect::<Result<Vec<_>>>()?;
            let check = check_hits(m.name, &hits, min_with_hits);
            println!("{}", check.line);
            if let Some(warning) = &check.warning {
                eprintln!("{warning}");
            }
            if !check.ok {
                bail!("{}", check.line);
            }
            println!();
        }
    }
    Ok(())
}

/// Sends `spec` once; its body if it answers 2xx or a status in `also_ok`.
async fn send_checked(
    addr: SocketAddr,
    kind: &str,
    spec: &RequestSpec,
    also_ok: &[hyper::StatusCode],
) -> Result<(hyper::StatusCode, Bytes)> {
    let (status, body) = load::send_once(addr, spec)
        .await
        .with_context(|| format!("{kind} request {} failed", spec.label()))?;
    if !status.is_success() && !also_ok.contains(&status) {
        let shown = &body[..body.len().min(BODY_SNIPPET)];
        bail!(
            "{kind} request {} answered {status}: {}",
            spec.label(),
            String::from_utf8_lossy(shown)
        );
    }
    Ok((status, body))
}

/// Every answer is `201` with an order id no other answer has (a replay would repeat
/// one); the summary line, or what is wrong.
pub fn check_new_orders(
    measurement: &str,
    statuses: &[hyper::StatusCode],
    answers: &[(String, Bytes)],
) -> Result<String> {
    let mut ids = std::collections::HashSet::new();
    for (status, (label, body)) in statuses.iter().zip(answers) {
        if *status != hyper::StatusCode::CREATED {
            bail!("preflight {measurement}: {label} answered {status}, not 201 Created");
        }
        let id = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v["order"]["id"].as_str().map(str::to_owned))
            .with_context(|| format!("preflight {measurement}: {label} answered no order id"))?;
        if !ids.insert(id.clone()) {
            bail!("preflight {measurement}: order {id} came back twice (an idempotent replay)");
        }
    }
    Ok(format!(
        "preflight {measurement}: {} requests made {} new orders",
        answers.len(),
        ids.len()
    ))
}

/// The length of the `products` array of a JSON body.
pub fn product_hits(body: &[u8]) -> Result<usize> {
    let value: serde_json::Value = serde_json::from_slice(body).with_context(|| {
        let shown = &body[..body.len().min(BODY_SNIPPET)];
        format!(
            "answered something else than JSON: {}",
            String::from_utf8_lossy(shown)
        )
    })?;
    value
        .get("products")
        .and_then(serde_json::Value::as_array)
        .map(Vec::len)
        .context("answered JSON without a `products` array")
}

/// The verdict on how many requests of a measurement found products.
#[derive(Debug, PartialEq)]
pub struct HitsCheck {
    /// `preflight search: 35/36 requests find products (median 20 per page)`.
    pub line: String,
    /// The requests that found nothing, if any.
    pub warning: Option<String>,
    /// At least `min_with_hits` of the requests found something.
    pub ok: bool,
}

pub fn check_hits(measurement: &str, hits: &[(String, usize)], min_with_hits: f64) -> HitsCheck {
    let total = hits.len();
    let empty: Vec<&str> = hits
        .iter()
        .filter(|(_, n)| *n == 0)
        .map(|(label, _)| label.as_str())
        .collect();
    let with_hits = total - empty.len();
    let mut counts: Vec<usize> = hits.iter().map(|(_, n)| *n).collect();
    counts.sort_unstable();
    let median = counts.get(total / 2).copied().unwrap_or(0);
    let ok = total > 0 && with_hits as f64 >= min_with_hits * total as f64;
    let mut line = format!(
        "preflight {measurement}: {with_hits}/{total} requests find products (median {median} per page)"
    );
    if !ok {
        line.push_str(&format!("; at least {:.0} % must", min_with_hits * 100.0));
    }
    let warning = (!empty.is_empty()).then(|| {
        format!(
            "warning: preflight {measurement}: no product found by\n    {}",
            empty.join("\n    ")
        )
    });
    HitsCheck { line, warning, ok }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_orders_must_be_created_and_distinct() {
        let answer = |id: &str| {
            (
                "POST /checkout".to_string(),
                Bytes::from(format!(r#"{{"order":{{"id":"{id}"}}}}"#)),
            )
        };
        let created = hyper::StatusCode::CREATED;
        let line = check_new_orders("checkout", &[created, created], &[answer("a"), answer("b")]).unwrap();
        assert_eq!(line, "preflight checkout: 2 requests made 2 new orders");
        assert!(check_new_orders("checkout", &[created, created], &[answer("a"), answer("a")]).is_err());
        assert!(check_new_orders("checkout", &[hyper::StatusCode::OK], &[answer("a")]).is_err());
        let bare = ("POST /checkout".to_string(), Bytes::from_static(b"{}"));
        assert!(check_new_orders("checkout", &[created], &[bare]).is_err());
    }

    #[test]
    fn captures_string_fields() {
        assert_eq!(captured(br#"{"token":"abc","user":{}}"#, "token").unwrap(), "abc");
        assert!(captured(br#"{"token":7}"#, "token").is_err());
        assert!(captured(b"<html>", "token").is_err());
    }

    #[test]
    fn counts_products_in_json() {
        let body = br#"{"products":[{"sku":"KIT-000001"},{"sku":"LGT-000002"}],"next_cursor":"o20"}"#;
        assert_eq!(product_hits(body).expect("json"), 2);
        assert_eq!(
            product_hits(br#"{"products":[],"next_cursor":null}"#).expect("json"),
            0
        );
        let err = product_hits(b"<html>").expect_err("not json");
        assert!(format!("{err:#}").contains("<html>"), "{err:#}");
        assert!(product_hits(br#"{"items":[]}"#).is_err());
    }

    fn hits(counts: &[usize]) -> Vec<(String, usize)> {
        counts
            .iter()
            .enumerate()
            .map(|(i, n)| (format!("GET /products/search?q={i}"), *n))
            .collect()
    }

    #[test]
    fn all_queries_with_hits() {
        let check = check_hits("search", &hits(&[20, 20, 3, 20]), 0.75);
        assert_eq!(
            check,
            HitsCheck {
                line: "preflight search: 4/4 requests find products (median 20 per page)".into(),
                warning: None,
                ok: true,
            }
        );
    }

    #[test]
    fn warns_about_empty_queries_and_fails_below_the_share() {
        let check = check_hits("search", &hits(&[20, 0, 5, 20]), 0.75);
        assert!(check.ok);
        assert_eq!(
            check.warning.as_deref(),
            Some("warning: preflight search: no product found by\n    GET /products/search?q=1")
        );
        let check = check_hits("search", &hits(&[20, 0, 0, 20]), 0.75);
        assert!(!check.ok);
        assert!(
            check.line.starts_with("preflight search: 2/4 requests"),
            "{}",
            check.line
        );
        assert!(check.line.ends_with("at least 75 % must"), "{}", check.line);
        assert!(!check_hits("search", &[], 0.75).ok);
    }
}
