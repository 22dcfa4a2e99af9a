//! Floods of `GET /auth/oauth/{provider}/start`: throttled per address, the logins in
//! progress bounded (`plinth_oauth_pending_logins` in `/metrics`); at the cap a flooding
//! network's new starts are refused and its oldest logins make room for other networks,
//! never a login a browser elsewhere is in the middle of.

use futures::StreamExt;
use reqwest::StatusCode;

use super::{
    browser, free_addr, local_idp_entry, location, spawn_with, spawn_with_idp, start, through_provider,
};
use crate::helpers::{error_code, json, TestApp};

/// `plinth_oauth_pending_logins` from `/metrics`.
async fn pending_gauge(app: &TestApp) -> u64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("plinth_oauth_pending_logins "))
        .unwrap_or_else(|| panic!("no plinth_oauth_pending_logins gauge in /metrics"))
        .trim()
        .parse()
        .unwrap()
}

/// `count` starts at the `local` provider, `in_flight` at a time, the i-th with
/// `X-Forwarded-For: xff(i)` when given; the responses' statuses and one of each.
async fn starts(
    app: &TestApp,
    count: usize,
    xff: Option<fn(usize) -> String>,
) -> (Vec<StatusCode>, Vec<reqwest::Response>) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let url = app.url("/auth/oauth/local/start");
    let results: Vec<reqwest::Response> = futures::stream::iter(0..count)
        .map(|i| {
            let mut req = client.get(&url);
            if let Some(xff) = xff {
                req = req.header("x-forwarded-for", xff(i));
            }
            async move { req.send().await.unwrap() }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let statuses = results.iter().map(|r| r.status()).collect();
    let mut samples: Vec<reqwest::Response> = Vec::new();
    for r in results {
        if !samples.iter().any(|s| s.status() == r.status()) {
            samples.push(r);
        }
    }
    (statuses, samples)
}

fn take(samples: &mut Vec<reqwest::Response>, status: StatusCode) -> reqwest::Response {
    let at = samples
        .iter()
        .position(|r| r.status() == status)
        .unwrap_or_else(|| panic!("no {status} answer"));
    samples.swap_remove(at)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_starts_from_one_address_is_throttled_and_holds_no_state() {
    let app = spawn_with_idp().await;
    let began = std::time::Instant::now();
    let (statuses, mut samples) = starts(&app, 20_000, None).await;
    let minutes = began.elapsed().as_secs() / 60 + 1;
    let found = statuses.iter().filter(|s| **s == StatusCode::FOUND).count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(found + refused, statuses.len(), "only 302 and 429");
    // The default: 30 starts per address per minute.
    assert!(
        (1..=30 * minutes as usize).contains(&found),
        "{found} of 20000 starts from one address got through, {refused} were refused"
    );
    let resp = take(&mut samples, StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
    assert!(resp.headers().get("set-cookie").is_none());
    assert_eq!(error_code(resp, 429).await["error"]["code"], "rate_limited");
    assert_eq!(
        pending_gauge(&app).await,
        found as u64,
        "only the admitted starts are held"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_table_refuses_the_flooder_serves_everyone_else_and_a_login_under_way_completes() {
    const CAP: usize = 200;
    let addr = free_addr();
    let settings = format!(
        "trusted_proxies = 1\noauth_max_pending = {CAP}\n{}",
        local_idp_entry(addr).await
    );
    let app = spawn_with(addr, &settings).await;

    // A real login begins before the flood.
    let b = browser(&app);
    let authorize = start(&app, &b, "local", Some(&app.url("/auth/me"))).await;

    // Many addresses of one network (behind the trusted proxy, each with a spoofed
    // first entry, each under its own per-address limit) fill the table.
    let many: fn(usize) -> String = |i| format!("6.6.6.6, 10.0.0.{}", i & 255);
    let (statuses, _) = starts(&app, CAP - 1, Some(many)).await;
    assert!(statuses.iter().all(|s| *s == StatusCode::FOUND), "{statuses:?}");
    assert_eq!(pending_gauge(&app).await, CAP as u64);
    // More from that network are refused: it holds the most already.
    let flooder: fn(usize) -> String = |i| format!("10.0.0.{}", 200 + i);
    let (statuses, mut samples) = starts(&app, 50, Some(flooder)).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::SERVICE_UNAVAILABLE),
        "{statuses:?}"
    );
    let resp = take(&mut samples, StatusCode::SERVICE_UNAVAILABLE);
    assert!(resp.headers().get("retry-after").is_some());
    assert_eq!(error_code(resp, 503).await["error"]["code"], "oauth_busy");
    // Browsers from other networks still start, each in place of the flooder's oldest.
    let fresh: fn(usize) -> String = |i| format!("10.{}.7.1", 100 + i);
    let (statuses, _) = starts(&app, 50, Some(fresh)).await;
    assert!(statuses.iter().all(|s| *s == StatusCode::FOUND), "{statuses:?}");
    assert_eq!(pending_gauge(&app).await, CAP as u64);

    // The login that was under way was not evicted: it completes.
    let callback = through_provider(&app, &b, &authorize, "early-bird").await;
    let resp = b.get(&callback).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND, "{:?}", resp.text().await);
    assert_eq!(location(&resp), app.url("/auth/me"));
    let me = json(b.get(app.url("/auth/me")).send().await.unwrap()).await;
    assert_eq!(me["user"]["username"], "early-bird");

    // Its slot is free again.
    assert_eq!(pending_gauge(&app).await, CAP as u64 - 1);
    let another: fn(usize) -> String = |_| "10.201.0.1".to_string();
    let (statuses, _) = starts(&app, 1, Some(another)).await;
    assert_eq!(statuses, [StatusCode::FOUND]);
}
