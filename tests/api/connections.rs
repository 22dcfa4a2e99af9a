//! Clients that hold connections without sending a request worth serving: headers
//! trickled forever, idle keep-alive connections, more connections than the server
//! takes, requests slower than the whole-request deadline. Raw sockets, so the test
//! controls every byte and sees exactly what the server answers.

use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::{error_code, plugin_path, spawn_app_with_server};

const GET_HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: plinth.test\r\n\r\n";

/// Reads until the server closes the connection (or resets it) or `within` passes;
/// returns what was read and whether it closed.
async fn read_until_closed(stream: &mut (impl AsyncRead + Unpin), within: Duration) -> (Vec<u8>, bool) {
    let deadline = tokio::time::Instant::now() + within;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return (out, false),
            Ok(Ok(0)) | Ok(Err(_)) => return (out, true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads one response (head and a `content-length` body) within `within`; panics
/// with what arrived if it does not.
async fn read_response(stream: &mut TcpStream, within: Duration) -> (String, String) {
    let deadline = tokio::time::Instant::now() + within;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = out.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&out[..end]).to_string();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_string())
                })
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if out.len() >= end + 4 + length {
                let body = String::from_utf8_lossy(&out[end + 4..end + 4 + length]).to_string();
                return (head, body);
            }
        }
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => out.extend_from_slice(&buf[..n]),
            other => panic!(
                "no complete response within {within:?} ({other:?}); got: {:?}",
                String::from_utf8_lossy(&out)
            ),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_trickled_past_the_header_timeout_are_cut_off_unserved() {
    let app = spawn_app_with_server("header_read_timeout_ms = 1000", "").await;
    let (mut rd, mut wr) = TcpStream::connect(app.addr).await.unwrap().into_split();
    let started = Instant::now();
    let reader = tokio::spawn(async move {
        let (bytes, closed) = read_until_closed(&mut rd, Duration::from_secs(10)).await;
        (bytes, closed, started.elapsed())
    });
    wr.write_all(b"GET /healthz HTTP/1.1\r\nHost: plinth.test\r\n")
        .await
        .unwrap();
    // A header line every 200 ms for 6 s: bytes keep coming, the head never ends.
    while started.elapsed() < Duration::from_secs(6) && !reader.is_finished() {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if wr.write_all(b"X-Trickle: x\r\n").await.is_err() {
            break;
        }
    }
    // Complete the head: a server that kept the connection would serve it now.
    let _ = wr.write_all(b"\r\n").await;
    let (bytes, closed, at) = reader.await.unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        !text.contains(" 200 "),
        "the trickled request was served ({at:?} after connecting): {text}"
    );
    assert!(
        closed && at < Duration::from_secs(5),
        "closed: {closed}, {at:?} after connecting (timeout 1 s)"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    // The header timeout stays at its 10 s default: only the idle timeout can close
    // the connection within the 5 s the test waits.
    let app = spawn_app_with_server("keep_alive_idle_secs = 1", "").await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    for _ in 0..2 {
        stream.write_all(GET_HEALTHZ).await.unwrap();
        let (head, _) = read_response(&mut stream, Duration::from_secs(5)).await;
        assert!(
            head.starts_with("HTTP/1.1 200"),
            "kept alive while in use: {head}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let idle_from = Instant::now();
    let (bytes, closed) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(
        closed,
        "an idle connection was still open {:?} after its last response",
        idle_from.elapsed()
    );
    assert!(bytes.is_empty(), "{}", String::from_utf8_lossy(&bytes));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_connection_cap_a_client_gets_a_clean_503_and_healthz_recovers() {
    let app = spawn_app_with_server(
        "max_connections = 4\nheader_read_timeout_ms = 1000\nkeep_alive_idle_secs = 1",
        "",
    )
    .await;
    // Four half-sent requests hold every connection the server takes.
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut s = TcpStream::connect(app.addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: plinth.test\r\n")
            .await
            .unwrap();
        held.push(s);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut extra = TcpStream::connect(app.addr).await.unwrap();
    extra.write_all(GET_HEALTHZ).await.unwrap();
    let (bytes, closed) = read_until_closed(&mut extra, Duration::from_secs(5)).await;
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("HTTP/1.1 503 "), "one more connection: {text}");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    let head = head.to_ascii_lowercase();
    assert!(head.contains("connection: close"), "{head}");
    assert!(head.contains("content-type: application/json"), "{head}");
    let body: serde_json::Value = serde_json::from_str(body).expect("a JSON body");
    assert_eq!(body["error"]["code"], "too_many_connections");
    assert!(body["error"]["request_id"].is_string(), "{body}");
    assert!(closed, "the refused connection is closed after the answer");

    // The timeouts cut the half-sent requests off; /healthz answers again.
    for s in &mut held {
        let (bytes, closed) = read_until_closed(s, Duration::from_secs(5)).await;
        assert!(closed, "a half-sent request was still held");
        assert!(!String::from_utf8_lossy(&bytes).contains(" 200 "));
    }
    let resp = app.get("/healthz").await;
    assert_eq!(resp.status(), 200);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_slower_than_the_request_timeout_gets_a_json_503() {
    // An upstream that takes connections and never answers: the weather plugin waits
    // on it far longer (its own deadline is 12 s) than the request may take.
    let hole = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = hole.local_addr().unwrap().port();
    let hole = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = hole.accept().await {
            held.push(s);
        }
    });
    let weather = format!(
        r#"
[weather]
plugin = "weather"

[[plugin]]
name = "weather"
world = "weather-plugin"
source = "{source}"
allowed_hosts = ["127.0.0.1:{port}"]
limits = {{ timeout_ms = 12000 }}
config = {{ base_url = "http://127.0.0.1:{port}", geocoding_base_url = "http://127.0.0.1:{port}" }}
"#,
        source = plugin_path("weather_open_meteo")
    );
    let app = spawn_app_with_server("request_timeout_secs = 1", &weather).await;
    let started = Instant::now();
    let resp = app.get("/weather?lat=52.52&lon=13.40").await;
    let elapsed = started.elapsed();
    let body = error_code(resp, 503).await;
    assert_eq!(body["error"]["code"], "request_timeout", "{body}");
    assert!(elapsed < Duration::from_secs(5), "answered after {elapsed:?}");
    // Host-only routes still answer at once.
    assert_eq!(app.get("/healthz").await.status(), 200);
    hole.abort();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_sent_slower_than_the_request_timeout_gets_a_json_503() {
    let app = spawn_app_with_server("request_timeout_secs = 1", "").await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(
            b"POST /auth/login HTTP/1.1\r\nHost: plinth.test\r\ncontent-type: application/json\r\n\
              content-length: 64\r\n\r\n{\"username\":",
        )
        .await
        .unwrap();
    let started = Instant::now();
    let (head, body) = read_response(&mut stream, Duration::from_secs(5)).await;
    assert!(
        head.starts_with("HTTP/1.1 503"),
        "{head} after {:?}",
        started.elapsed()
    );
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["code"], "request_timeout", "{body}");
    assert!(body["error"]["request_id"].is_string(), "{body}");
    app.stop().await;
}
