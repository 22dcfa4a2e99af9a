//! What every route shares: JSON errors, request ids, body limits, docs, metrics.

use crate::helpers::{error_code, hello_plugin, json, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_and_unknown_routes_and_plugins() {
    let app = spawn_app(&hello_plugin("hello")).await;
    let resp = app.get("/healthz").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(json(resp).await["status"], "ok");
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    assert_eq!(json(ready).await["storage"], "ok");

    let body = error_code(app.get("/no/such/route").await, 404).await;
    assert_eq!(body["error"]["code"], "not_found");

    let body = error_code(app.get("/plugins/nobody/").await, 404).await;
    assert_eq!(body["error"]["code"], "plugin_not_found");

    let body = error_code(app.post("/healthz", "").await, 405).await;
    assert_eq!(body["error"]["code"], "method_not_allowed");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_are_taken_or_made_and_echoed() {
    let app = spawn_app(&hello_plugin("hello")).await;
    let resp = app
        .client
        .get(app.url("/nope"))
        .header("x-request-id", "client-chosen-42")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "client-chosen-42");
    let body = json(resp).await;
    assert_eq!(body["error"]["request_id"], "client-chosen-42");

    // A malformed id is replaced, not echoed.
    let resp = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "bad id with spaces")
        .send()
        .await
        .unwrap();
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(id.len(), 32, "{id}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_get_413() {
    let app = spawn_app(&hello_plugin("hello")).await;
    // With a Content-Length header. The bodies are larger than the socket buffers, so
    // the client is still writing when the host decides: it must get the 413 all the
    // same, not a reset connection.
    let body = error_code(app.post("/plugins/hello/", vec![b'x'; 700_000]).await, 413).await;
    assert_eq!(body["error"]["code"], "payload_too_large");
    // Streamed without one (chunked).
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..700).map(|_| Ok(vec![b'y'; 1000])).collect();
    let stream = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    let body = error_code(app.post("/plugins/hello/", stream).await, 413).await;
    assert_eq!(body["error"]["code"], "payload_too_large");
    // Under the limit is fine.
    let resp = app
        .client
        .put(app.url("/plugins/hello/kv/blob"))
        .body(vec![b'z'; 60_000])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_and_metrics_are_served() {
    let app = spawn_app(&hello_plugin("hello")).await;
    let doc = json(app.get("/openapi.json").await).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert!(doc["components"]["securitySchemes"]["session"].is_object());
    for path in [
        "/healthz",
        "/readyz",
        "/plugins/{name}/{rest}",
        "/openapi.json",
        "/metrics",
        "/auth/login",
        "/auth/sessions/{id}",
        "/admin/users",
        "/contacts",
        "/contacts/{id}",
        "/products",
        "/products/search",
        "/products/{sku}",
        "/weather",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    app.get("/plugins/hello/").await;
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("plinth_http_requests_total"), "{metrics}");
    assert!(metrics.contains("route=\"/plugins/{name}/\""), "{metrics}");
    assert!(
        metrics.contains("plinth_plugin_invocations_total{plugin=\"hello\",outcome=\"ok\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("plinth_http_request_duration_seconds_bucket"),
        "{metrics}"
    );
    app.stop().await;
}
