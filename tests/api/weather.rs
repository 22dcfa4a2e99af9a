//! `GET /weather` through the Open-Meteo plugin against a fake Open-Meteo on loopback
//! that speaks the documented forecast and geocoding APIs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::helpers::{error_code, json, plugin_path, spawn_app, TestApp};

/// Modes of the fake (0 = answers normally).
const FAILING: u8 = 1;
const SILENT: u8 = 2;

#[derive(Default)]
struct Fake {
    forecast_calls: AtomicUsize,
    geocode_calls: AtomicUsize,
    mode: AtomicU8,
}

async fn forecast(State(fake): State<Arc<Fake>>, Query(q): Query<HashMap<String, String>>) -> Response {
    fake.forecast_calls.fetch_add(1, Ordering::SeqCst);
    match fake.mode.load(Ordering::SeqCst) {
        FAILING => return (StatusCode::INTERNAL_SERVER_ERROR, "upstream broke").into_response(),
        SILENT => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            return StatusCode::OK.into_response();
        }
        _ => {}
    }
    let lat: f64 = q["latitude"].parse().unwrap();
    let lon: f64 = q["longitude"].parse().unwrap();
    if !(-90.0..=90.0).contains(&lat) {
        let reason = format!("Latitude must be in range of -90 to 90°. Given: {lat}.");
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": true, "reason": reason })),
        )
            .into_response();
    }
    // Slow enough that concurrent requests overlap.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut body = json!({
        "latitude": lat, "longitude": lon, "generationtime_ms": 0.1, "utc_offset_seconds": 0,
        "timezone": "GMT", "timezone_abbreviation": "GMT", "elevation": 38.0,
    });
    if q.contains_key("current") {
        body["current_units"] = json!({ "time": "iso8601", "interval": "seconds", "temperature_2m": "°C" });
        body["current"] = json!({
            "time": "2026-11-28T12:00", "interval": 900, "temperature_2m": 3.4,
            "relative_humidity_2m": 87, "apparent_temperature": 0.2, "is_day": 1, "precipitation": 0.1,
            "weather_code": 3, "wind_speed_10m": 12.3, "wind_direction_10m": 250,
        });
    }
    if q.contains_key("daily") {
        let days: usize = q.get("forecast_days").map_or(7, |d| d.parse().unwrap());
        body["daily"] = json!({
            "time": (0..days).map(|i| format!("2026-11-{:02}", 28 + i)).collect::<Vec<_>>(),
            "weather_code": vec![61; days],
            "temperature_2m_max": vec![5.5; days],
            "temperature_2m_min": vec![-1.0; days],
            "precipitation_sum": vec![2.5; days],
        });
    }
    Json(body).into_response()
}

async fn geocode(State(fake): State<Arc<Fake>>, Query(q): Query<HashMap<String, String>>) -> Response {
    fake.geocode_calls.fetch_add(1, Ordering::SeqCst);
    if q["name"].eq_ignore_ascii_case("berlin") {
        Json(json!({ "results": [{ "id": 2950159, "name": "Berlin", "latitude": 52.52437, "longitude": 13.41053,
            "elevation": 74.0, "feature_code": "PPLC", "country_code": "DE", "timezone": "Europe/Berlin",
            "population": 3426354, "country": "Germany", "admin1": "Land Berlin" }], "generationtime_ms": 0.7 }))
        .into_response()
    } else {
        Json(json!({ "generationtime_ms": 0.5 })).into_response()
    }
}

async fn fake_open_meteo() -> (u16, Arc<Fake>) {
    let fake = Arc::new(Fake::default());
    let app = Router::new()
        .route("/v1/forecast", get(forecast))
        .route("/v1/search", get(geocode))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, fake)
}

fn weather_config(port: u16, allowed: &str, ttl_secs: u64) -> String {
    format!(
        r#"
[weather]
plugin = "weather"
cache_ttl_secs = {ttl_secs}
stale_for_secs = 3600

[[plugin]]
name = "weather"
world = "weather-plugin"
source = "{source}"
allowed_hosts = [{allowed}]
limits = {{ timeout_ms = 1500 }}
config = {{ base_url = "http://127.0.0.1:{port}", geocoding_base_url = "http://127.0.0.1:{port}" }}
"#,
        source = plugin_path("weather_open_meteo")
    )
}

async fn app_with_fake(ttl_secs: u64) -> (TestApp, Arc<Fake>) {
    let (port, fake) = fake_open_meteo().await;
    let app = spawn_app(&weather_config(port, &format!("\"127.0.0.1:{port}\""), ttl_secs)).await;
    (app, fake)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn normalized_conditions_and_a_cache_hit() {
    let (app, fake) = app_with_fake(600).await;
    let resp = app.get("/weather?lat=52.5201&lon=13.4049").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-cache"], "miss");
    let body = json(resp).await;
    assert_eq!(body["location"]["latitude"], 52.52, "rounded to 0.01°");
    assert_eq!(body["current"]["temperature_c"], 3.4);
    assert_eq!(body["current"]["relative_humidity_percent"], 87.0);
    assert_eq!(body["current"]["wind_speed_kmh"], 12.3);
    assert_eq!(body["current"]["weather_code"], 3);
    assert_eq!(body["current"]["description"], "overcast");
    assert_eq!(body["current"]["observed_at"], "2026-11-28T12:00:00Z");
    assert_eq!(body["current"]["is_day"], true);
    assert_eq!(body["provider"], "weather");
    assert_eq!(body["forecast"], json!([]));

    let again = app.get("/weather?lat=52.52&lon=13.40").await;
    assert_eq!(again.headers()["x-cache"], "hit");
    assert_eq!(fake.forecast_calls.load(Ordering::SeqCst), 1);

    let with_days = json(app.get("/weather?lat=52.52&lon=13.40&days=3").await).await;
    let days = with_days["forecast"].as_array().unwrap();
    assert_eq!(days.len(), 3);
    assert_eq!(days[0]["description"], "slight rain");
    assert_eq!(days[0]["temperature_max_c"], 5.5);

    let city = json(app.get("/weather?city=Berlin").await).await;
    assert_eq!(city["location"]["name"], "Berlin, Land Berlin, Germany");
    let nowhere = app.get("/weather?city=Atlantis").await;
    assert_eq!(error_code(nowhere, 404).await["error"]["code"], "place_not_found");

    for bad in [
        "/weather",
        "/weather?lat=100&lon=0",
        "/weather?lat=1",
        "/weather?lat=1&lon=2&city=x",
        "/weather?lat=1&lon=2&days=8",
    ] {
        assert_eq!(app.get(bad).await.status(), 400, "{bad}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_requests_make_one_upstream_call() {
    let (app, fake) = app_with_fake(600).await;
    let requests: Vec<_> = (0..100)
        .map(|_| {
            let (client, url) = (app.client.clone(), app.url("/weather?lat=48.85&lon=2.35"));
            tokio::spawn(async move { client.get(url).send().await.unwrap().status().as_u16() })
        })
        .collect();
    for r in requests {
        assert_eq!(r.await.unwrap(), 200);
    }
    assert_eq!(fake.forecast_calls.load(Ordering::SeqCst), 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_failures_give_502_504_or_stale_data() {
    let (app, fake) = app_with_fake(1).await;
    // Warm one place, let it expire.
    assert_eq!(app.get("/weather?lat=40.71&lon=-74.01").await.status(), 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;

    fake.mode.store(FAILING, Ordering::SeqCst);
    let body = error_code(app.get("/weather?lat=35.68&lon=139.69").await, 502).await;
    assert_eq!(body["error"]["code"], "weather_upstream");
    let stale = app.get("/weather?lat=40.71&lon=-74.01").await;
    assert_eq!(stale.status(), 200);
    assert_eq!(stale.headers()["x-cache"], "stale");
    assert_eq!(json(stale).await["current"]["temperature_c"], 3.4);

    fake.mode.store(SILENT, Ordering::SeqCst);
    let started = Instant::now();
    let body = error_code(app.get("/weather?lat=51.51&lon=-0.13").await, 504).await;
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "within the 1.5 s deadline (+1 s)"
    );
    assert!(
        body["error"]["code"].as_str().unwrap().contains("timeout"),
        "{body}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_not_allowed_to_reach_the_host_is_refused() {
    let (port, fake) = fake_open_meteo().await;
    let app = spawn_app(&weather_config(port, "\"api.open-meteo.com\"", 600)).await;
    let body = error_code(app.get("/weather?lat=52.52&lon=13.41").await, 502).await;
    assert_eq!(body["error"]["code"], "weather_upstream");
    assert_eq!(body["error"]["plugin"], "weather");
    // Why (a host not on `allowed_hosts`) is the operator's business: it is in the log.
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        !message.contains("allowed_hosts") && message.contains(body["error"]["request_id"].as_str().unwrap()),
        "{body}"
    );
    assert_eq!(
        fake.forecast_calls.load(Ordering::SeqCst),
        0,
        "no connection was made"
    );
    app.stop().await;

    let none = spawn_app("").await;
    assert_eq!(
        error_code(none.get("/weather?lat=1&lon=2").await, 503).await["error"]["code"],
        "weather_disabled"
    );
    none.stop().await;
}
