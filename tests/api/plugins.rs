//! The hello plugin end to end, kv isolation, and outbound allow-listing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{hello_plugin, hostile_plugin, json, spawn_app, spawn_app_in};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_echoes_the_request_without_credentials() {
    let app = spawn_app(&hello_plugin("hello")).await;
    let resp = app
        .client
        .get(app.url("/plugins/hello/some/path?x=1&y=two"))
        .header("authorization", "Bearer secret-token")
        .header("cookie", "session=secret-cookie")
        .header("x-custom", "visible")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body = json(resp).await;
    assert_eq!(body["greeting"], "hello from hello");
    assert_eq!(body["method"], "GET");
    assert_eq!(body["path"], "/some/path");
    assert_eq!(body["query"], "x=1&y=two");
    assert_eq!(body["caller"], serde_json::Value::Null);
    let headers = body["headers"].as_array().unwrap();
    let names: Vec<&str> = headers.iter().map(|h| h[0].as_str().unwrap()).collect();
    assert!(names.contains(&"x-custom"), "{names:?}");
    assert!(
        !names.contains(&"authorization") && !names.contains(&"cookie"),
        "{names:?}"
    );
    let text = body.to_string();
    assert!(!text.contains("secret-token") && !text.contains("secret-cookie"));

    // The mount point itself, with and without the trailing slash.
    for path in ["/plugins/hello", "/plugins/hello/"] {
        let body = json(app.get(path).await).await;
        assert_eq!(body["path"], "/", "{path}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_counter_is_atomic_and_survives_a_restart() {
    let app = spawn_app(&hello_plugin("hello")).await;
    assert_eq!(json(app.get("/plugins/hello/counter").await).await["counter"], 0);
    let posts = (0..20).map(|_| app.post("/plugins/hello/counter", ""));
    let results = futures::future::join_all(posts).await;
    let mut seen: Vec<i64> = Vec::new();
    for r in results {
        assert_eq!(r.status(), 200);
        seen.push(json(r).await["counter"].as_i64().unwrap());
    }
    seen.sort();
    assert_eq!(
        seen,
        (1..=20).collect::<Vec<_>>(),
        "each increment is seen exactly once"
    );

    // A restart on the same data directory keeps every acknowledged write.
    let data_dir = app.stop().await;
    let app = spawn_app_in(&hello_plugin("hello"), data_dir).await;
    assert_eq!(json(app.get("/plugins/hello/counter").await).await["counter"], 20);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_plugins_cannot_see_each_others_kv() {
    let app = spawn_app(&format!("{}{}", hello_plugin("alpha"), hello_plugin("beta"))).await;
    let put = app
        .client
        .put(app.url("/plugins/alpha/kv/secret"))
        .body("alpha's data")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    let own = app.get("/plugins/alpha/kv/secret").await;
    assert_eq!(own.status(), 200);
    assert_eq!(own.text().await.unwrap(), "alpha's data");

    let other = app.get("/plugins/beta/kv/secret").await;
    assert_eq!(other.status(), 404);
    assert_eq!(json(other).await["error"]["code"], "not_found");
    let keys = json(app.get("/plugins/beta/kv?prefix=").await).await;
    assert_eq!(keys["keys"], serde_json::json!([]));

    app.post("/plugins/alpha/counter", "").await;
    app.post("/plugins/alpha/counter", "").await;
    assert_eq!(
        json(app.post("/plugins/beta/counter", "").await).await["counter"],
        1
    );
    app.stop().await;
}

/// How the test upstream answers.
#[derive(Clone, Copy)]
pub(crate) enum Upstream {
    /// A short text body.
    Small,
    /// A body of this many bytes.
    Large(usize),
    /// Never answers.
    Silent,
}

/// A minimal HTTP/1.1 server on loopback that counts the connections it accepts.
pub(crate) async fn counting_upstream(behaviour: Upstream) -> (u16, Arc<AtomicUsize>) {
    let connections = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let counter = connections.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut read = 0;
                while !buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf[read..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => read += n,
                    }
                }
                let body = match behaviour {
                    Upstream::Small => "upstream says hi".to_string(),
                    Upstream::Large(n) => "x".repeat(n),
                    Upstream::Silent => {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        return;
                    }
                };
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(body.as_bytes()).await;
            });
        }
    });
    (port, connections)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_reaches_listed_hosts_only() {
    let (allowed_port, allowed_conns) = counting_upstream(Upstream::Small).await;
    let (forbidden_port, forbidden_conns) = counting_upstream(Upstream::Small).await;
    let extra = format!(r#"allowed_hosts = ["127.0.0.1:{allowed_port}"]"#);
    let app = spawn_app(&hostile_plugin("fetcher", &extra)).await;

    let ok = app
        .get(&format!(
            "/plugins/fetcher/fetch?url=http://127.0.0.1:{allowed_port}/data"
        ))
        .await;
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.unwrap(), "ok 200 upstream says hi");
    assert_eq!(allowed_conns.load(Ordering::SeqCst), 1);

    // Not on the list: the plugin gets a `denied` error value; no connection is made.
    for url in [
        format!("http://127.0.0.1:{forbidden_port}/data"),
        format!("http://localhost:{forbidden_port}/data"),
        format!("http://[::1]:{forbidden_port}/data"),
        format!("http://127.0.0.1:{allowed_port}@127.0.0.1:{forbidden_port}/data"),
    ] {
        let resp = app.get(&format!("/plugins/fetcher/fetch?url={url}")).await;
        assert_eq!(resp.status(), 200, "{url}");
        let text = resp.text().await.unwrap();
        assert!(
            text.starts_with("err ") && text.contains("Denied"),
            "{url}: {text}"
        );
    }
    assert_eq!(
        forbidden_conns.load(Ordering::SeqCst),
        0,
        "no connection to a forbidden host"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_responses_are_capped_and_bounded_by_the_deadline() {
    let (big_port, _) = counting_upstream(Upstream::Large(256 << 10)).await;
    let (silent_port, silent_conns) = counting_upstream(Upstream::Silent).await;
    let extra = format!(
        r#"allowed_hosts = ["127.0.0.1:{big_port}", "127.0.0.1:{silent_port}"]
limits = {{ timeout_ms = 1000, max_outbound_response_kib = 64 }}"#
    );
    let app = spawn_app(&hostile_plugin("fetcher", &extra)).await;

    let text = app
        .get(&format!(
            "/plugins/fetcher/fetch?url=http://127.0.0.1:{big_port}/"
        ))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        text.starts_with("err ") && text.contains("LimitExceeded"),
        "{text}"
    );

    // The upstream never answers: the plugin gets `timeout` before its own deadline
    // and can still answer its client.
    let started = Instant::now();
    let resp = app
        .get(&format!(
            "/plugins/fetcher/fetch?url=http://127.0.0.1:{silent_port}/"
        ))
        .await;
    let elapsed = started.elapsed();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    assert_eq!(silent_conns.load(Ordering::SeqCst), 1);
    assert!(elapsed < Duration::from_millis(2000), "took {elapsed:?}");
    assert!(
        (status == 200 && text.contains("Timeout")) || status == 504,
        "{status} {text}"
    );
    app.stop().await;
}
