//! Hostile plugins: loops, memory hogs, stack overflows, panics, kv abuse. Each becomes
//! a clean JSON error and everyone else keeps being served.

use std::time::{Duration, Instant};

use crate::helpers::{error_code, hello_plugin, hostile_plugin, json, spawn_app};

/// Words that would reveal guest internals if they leaked into a response.
const INTERNALS: &[&str] = &["wasm", "backtrace", "hunter2", "panicked", "unreachable", "0x"];

fn assert_no_internals(body: &serde_json::Value) {
    let text = body.to_string().to_lowercase();
    for word in INTERNALS {
        assert!(!text.contains(word), "response leaks {word:?}: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infinite_loops_time_out_while_others_are_served() {
    let plugins = format!(
        "{}{}",
        hello_plugin("hello"),
        hostile_plugin("spinner", "limits = { timeout_ms = 1000 }")
    );
    let app = spawn_app(&plugins).await;
    // Two spinning guests: as many as this machine has cores.
    let spinners: Vec<_> = (0..2)
        .map(|_| {
            let (client, url) = (app.client.clone(), app.url("/plugins/spinner/loop"));
            tokio::spawn(async move {
                let started = Instant::now();
                let resp = client.get(url).send().await.unwrap();
                (started.elapsed(), resp)
            })
        })
        .collect();
    // Meanwhile hello answers promptly, again and again.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let until = Instant::now() + Duration::from_millis(700);
    let mut served = 0;
    while Instant::now() < until {
        let started = Instant::now();
        let resp = app.get("/plugins/hello/").await;
        assert_eq!(resp.status(), 200);
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "hello stalled for {:?}",
            started.elapsed()
        );
        served += 1;
    }
    assert!(
        served >= 20,
        "only {served} hello requests while the spinners ran"
    );
    for s in spinners {
        let (elapsed, resp) = s.await.unwrap();
        assert!(
            elapsed < Duration::from_millis(2000),
            "timeout took {elapsed:?} (deadline 1 s)"
        );
        let body = error_code(resp, 504).await;
        assert_eq!(body["error"]["code"], "plugin_timeout");
        assert_eq!(body["error"]["plugin"], "spinner");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_hogs_stack_overflows_and_panics_become_clean_errors() {
    let app = spawn_app(&hostile_plugin("hostile", "limits = { memory_mib = 16 }")).await;

    let body = error_code(app.get("/plugins/hostile/alloc").await, 503).await;
    assert_eq!(body["error"]["code"], "plugin_memory_limit");
    assert_eq!(body["error"]["plugin"], "hostile");
    assert_no_internals(&body);

    for path in ["/plugins/hostile/recurse", "/plugins/hostile/panic"] {
        let body = error_code(app.get(path).await, 500).await;
        assert_eq!(body["error"]["code"], "plugin_failed", "{path}");
        assert_eq!(body["error"]["plugin"], "hostile");
        assert_no_internals(&body);
    }

    for path in ["/plugins/hostile/bad-status", "/plugins/hostile/bad-header"] {
        let body = error_code(app.get(path).await, 502).await;
        assert_eq!(body["error"]["code"], "plugin_bad_response", "{path}");
    }

    // Guest stdout and stderr go to the log, not to the client or the host's stdout.
    let resp = app.get("/plugins/hostile/print").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "printed");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_kv_values_and_floods_are_refused_and_not_stored() {
    let app = spawn_app(&hostile_plugin(
        "hoarder",
        "limits = { kv_max_value_kib = 64, kv_quota_mib = 1 }",
    ))
    .await;
    let resp = app.get("/plugins/hoarder/kv-huge?mib=8").await;
    assert_eq!(resp.status(), 507);
    let text = resp.text().await.unwrap();
    assert!(
        text.contains("LimitExceeded") && text.contains("over the limit"),
        "{text}"
    );

    let resp = app.get("/plugins/hoarder/kv-flood").await;
    assert_eq!(resp.status(), 507);
    let text = resp.text().await.unwrap();
    assert!(text.contains("quota"), "{text}");
    let writes: u64 = text
        .split_whitespace()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected reply {text}"));
    assert!(
        writes > 0 && writes * (64 << 10) <= 1 << 20,
        "{writes} writes of 64 KiB fit a 1 MiB quota"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_survives_500_hostile_requests() {
    let plugins = format!(
        "{}{}",
        hello_plugin("hello"),
        hostile_plugin("hostile", "limits = { timeout_ms = 100, memory_mib = 16 }")
    );
    let app = spawn_app(&plugins).await;
    let behaviours = [
        "loop",
        "alloc",
        "panic",
        "recurse",
        "bad-status",
        "kv-huge",
        "nothing-here",
    ];
    let mut tasks = Vec::new();
    for i in 0..500 {
        let (client, url) = (
            app.client.clone(),
            app.url(&format!("/plugins/hostile/{}", behaviours[i % behaviours.len()])),
        );
        tasks.push(tokio::spawn(async move {
            let resp = client.get(url).send().await.expect("the server answers");
            resp.status().as_u16()
        }));
        if tasks.len() >= 16 {
            for t in tasks.drain(..) {
                let status = t.await.unwrap();
                assert!(status >= 400, "hostile request got {status}");
            }
        }
    }
    for t in tasks {
        assert!(t.await.unwrap() >= 400);
    }
    let health = app.get("/healthz").await;
    assert_eq!(health.status(), 200);
    assert_eq!(json(health).await["status"], "ok");
    assert_eq!(
        json(app.post("/plugins/hello/counter", "").await).await["counter"],
        1
    );
    assert_eq!(
        json(app.get("/plugins/hello/").await).await["greeting"],
        "hello from hello"
    );

    let metrics = app.get("/metrics").await.text().await.unwrap();
    for outcome in ["timeout", "memory_limit", "trapped", "ok"] {
        assert!(
            metrics.contains(&format!("outcome=\"{outcome}\"")),
            "no {outcome} in metrics:\n{metrics}"
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fuel_budget_stops_a_spinning_guest_and_spares_unmetered_plugins() {
    let plugins = format!(
        "{}{}",
        hello_plugin("hello"),
        hostile_plugin("metered", "limits = { fuel = 5000000, timeout_ms = 10000 }")
    );
    let app = spawn_app(&plugins).await;
    let started = Instant::now();
    let body = error_code(app.get("/plugins/metered/loop").await, 503).await;
    assert_eq!(body["error"]["code"], "plugin_fuel_exhausted");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "fuel ran out only after {:?}",
        started.elapsed()
    );
    // Plugins without a budget are not metered out.
    assert_eq!(app.get("/plugins/hello/").await.status(), 200);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("plinth_plugin_fuel_consumed_total{plugin=\"metered\"}"),
        "{metrics}"
    );
    app.stop().await;
}
