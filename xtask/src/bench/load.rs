//! The load generator: N HTTP/1.1 keep-alive connections, each sending requests back to
//! back (closed loop), every latency recorded in an HDR histogram.
//!
//! A run lasts `warmup + duration`. Only requests that start after the warm-up and
//! complete before the end are recorded; those cut off by the end are counted as
//! `unfinished`, and still awaited (unrecorded) before the run returns, so the server
//! is never left with requests its client hung up on. Latency covers sending the request
//! and reading the whole response body.
//! One run can drive several [`Group`]s of connections at once (e.g. a login flood and
//! health checks), over the same window, each with its own statistics.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::CONNECTION;
use hyper::StatusCode;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::{sleep, timeout, timeout_at, Instant};

use super::scenario::RequestSpec;

/// Highest latency the histograms track (larger values are clamped), in microseconds.
const MAX_LATENCY_US: u64 = 60_000_000;
/// Distinct I/O error messages kept per run; further ones are counted as "other".
const MAX_ERROR_KINDS: usize = 8;
/// Pause after a failed connect, so a dead server does not turn into a busy loop.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a request still in flight at the end of a run may take to complete (it is
/// not recorded) before its connection is dropped.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy)]
pub struct LoadConfig {
    pub warmup: Duration,
    pub duration: Duration,
}

/// Connections sending the same requests to the server at `addr`: each sends `specs`
/// round robin, connection `i` starting at `specs[i % len]`.
#[derive(Debug, Clone)]
pub struct Group {
    pub addr: SocketAddr,
    pub connections: usize,
    pub specs: Arc<[RequestSpec]>,
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct RunStats {
    /// Latency of every recorded response (any status), in microseconds.
    pub latency_us: Histogram<u64>,
    /// Responses with a 2xx status.
    pub ok: u64,
    /// Responses with any other status, by status code.
    pub statuses: BTreeMap<u16, u64>,
    /// Connect, write or read failures, by message.
    pub io_errors: BTreeMap<String, u64>,
    /// Requests still in flight when the run ended (not errors).
    pub unfinished: u64,
    /// Response body bytes received.
    pub body_bytes: u64,
    /// The measured window (the run's duration, warm-up excluded).
    pub elapsed: Duration,
}

impl RunStats {
    /// Empty statistics of a measured window `elapsed` long.
    pub fn new(elapsed: Duration) -> Result<Self> {
        Ok(Self {
            latency_us: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
                .map_err(|e| anyhow!("could not create a histogram: {e:?}"))?,
            ok: 0,
            statuses: BTreeMap::new(),
            io_errors: BTreeMap::new(),
            unfinished: 0,
            body_bytes: 0,
            elapsed,
        })
    }

    /// Responses of any status.
    pub fn responses(&self) -> u64 {
        self.latency_us.len()
    }

    /// Non-2xx responses plus I/O errors.
    pub fn errors(&self) -> u64 {
        self.statuses.values().sum::<u64>() + self.io_errors.values().sum::<u64>()
    }

    /// Responses (any status) per second of the measured window.
    pub fn rps(&self) -> f64 {
        self.per_s(self.responses())
    }

    /// 2xx responses per second of the measured window.
    pub fn ok_rps(&self) -> f64 {
        self.per_s(self.ok)
    }

    fn per_s(&self, n: u64) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            n as f64 / secs
        } else {
            0.0
        }
    }

    fn record_response(&mut self, status: StatusCode, latency: Duration, body_bytes: usize) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latency_us.saturating_record(us.max(1));
        if status.is_success() {
            self.ok += 1;
        } else {
            *self.statuses.entry(status.as_u16()).or_default() += 1;
        }
        self.body_bytes += body_bytes as u64;
    }

    fn record_io_error(&mut self, message: String) {
        self.add_io_errors(message, 1);
    }

    fn add_io_errors(&mut self, message: String, n: u64) {
        let key = if self.io_errors.len() < MAX_ERROR_KINDS || self.io_errors.contains_key(&message) {
            message
        } else {
            "other".to_owned()
        };
        *self.io_errors.entry(key).or_default() += n;
    }

    fn merge(&mut self, other: &Self) -> Result<()> {
        self.latency_us
            .add(&other.latency_us)
            .map_err(|e| anyhow!("could not merge histograms: {e:?}"))?;
        self.ok += other.ok;
        for (status, n) in &other.statuses {
            *self.statuses.entry(*status).or_default() += n;
        }
        for (message, n) in &other.io_errors {
            self.add_io_errors(message.clone(), *n);
        }
        self.unfinished += other.unfinished;
        self.body_bytes += other.body_bytes;
        Ok(())
    }
}

/// Runs every group at once, each against its server, over one window, and returns each
/// group's merged statistics, in order.
pub async fn run(config: LoadConfig, groups: &[Group]) -> Result<Vec<RunStats>> {
    anyhow::ensure!(!groups.is_empty(), "no load to run");
    for group in groups {
        anyhow::ensure!(!group.specs.is_empty(), "no request to send");
        anyhow::ensure!(group.connections > 0, "at least one connection is needed");
    }
    let start = Instant::now();
    let measure_from = start + config.warmup;
    let window = Window {
        measure_from,
        end: measure_from + config.duration,
        duration: config.duration,
    };

    // Spawn every connection of every group before awaiting any, so they start together.
    let tasks: Vec<Vec<_>> = groups
        .iter()
        .map(|group| {
            (0..group.connections)
                .map(|id| tokio::spawn(connection(id, group.addr, Arc::clone(&group.specs), window)))
                .collect()
        })
        .collect();
    let mut totals = Vec::with_capacity(groups.len());
    for group_tasks in tasks {
        let mut total = RunStats::new(config.duration)?;
        for task in group_tasks {
            let stats = task.await.context("a load connection task failed")??;
            total.merge(&stats)?;
        }
        totals.push(total);
    }
    Ok(totals)
}

#[derive(Debug, Clone, Copy)]
struct Window {
    measure_from: Instant,
    end: Instant,
    duration: Duration,
}

/// One closed-loop connection until `window.end`; reconnects after errors.
async fn connection(
    id: usize,
    addr: SocketAddr,
    specs: Arc<[RequestSpec]>,
    window: Window,
) -> Result<RunStats> {
    let mut stats = RunStats::new(window.duration)?;
    let authority = addr.to_string();
    let mut next = id % specs.len();
    let mut sender: Option<SendRequest<Full<Bytes>>> = None;

    while Instant::now() < window.end {
        let sending = match sender.take() {
            Some(s) if !s.is_closed() => s,
            _ => match timeout_at(window.end, connect(addr)).await {
                Err(_) => break,
                Ok(Ok(s)) => s,
                Ok(Err(err)) => {
                    if Instant::now() >= window.measure_from {
                        stats.record_io_error(format!("connect: {err:#}"));
                    }
                    sleep(RECONNECT_BACKOFF).await;
                    continue;
                }
            },
        };
        let spec = &specs[next];
        next = (next + 1) % specs.len();
        let request = spec.to_request(&authority)?;

        let started = Instant::now();
        let measured = started >= window.measure_from;
        let mut in_flight = std::pin::pin!(exchange(sending, request));
        match timeout_at(window.end, &mut in_flight).await {
            Err(_) => {
                if measured {
                    stats.unfinished += 1;
                }
                // Let the server finish it rather than hang up mid-request: a cancelled
                // request can leave state behind (e.g. a login attempt the server counts
                // as failed because it never completed), and the next run should start
                // on an idle server.
                let _ = timeout(DRAIN_TIMEOUT, in_flight).await;
                break;
            }
            Ok(Err(err)) => {
                if measured {
                    stats.record_io_error(format!("{} {}: {err:#}", spec.method, spec.path));
                }
                sleep(RECONNECT_BACKOFF).await;
            }
            Ok(Ok(reply)) => {
                if measured {
                    stats.record_response(reply.status, started.elapsed(), reply.body_bytes);
                }
                // Reuse the connection unless the server closes it.
                if !reply.close {
                    sender = Some(reply.sender);
                }
            }
        }
    }
    Ok(stats)
}

struct Reply {
    status: StatusCode,
    body_bytes: usize,
    close: bool,
    sender: SendRequest<Full<Bytes>>,
}

async fn exchange(
    mut sender: SendRequest<Full<Bytes>>,
    request: hyper::Request<Full<Bytes>>,
) -> Result<Reply> {
    sender.ready().await.context("connection not ready")?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let close = response
        .headers()
        .get(CONNECTION)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
    let body = response.into_body().collect().await?.to_bytes();
    Ok(Reply {
        status,
        body_bytes: body.len(),
        close,
        sender,
    })
}

async fn connect(addr: SocketAddr) -> Result<SendRequest<Full<Bytes>>> {
    let stream = timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .context("timed out")??;
    stream.set_nodelay(true)?;
    let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        // Ends when the sender is dropped or the server closes; errors then surface
        // through the sender.
        let _ = conn.await;
    });
    Ok(sender)
}

/// Sends `spec` once on a fresh connection; returns the status and body.
pub async fn send_once(addr: SocketAddr, spec: &RequestSpec) -> Result<(StatusCode, Bytes)> {
    let mut sender = connect(addr).await?;
    sender.ready().await?;
    let request = spec.to_request(&addr.to_string())?;
    let response = timeout(Duration::from_secs(30), sender.send_request(request))
        .await
        .context("no response within 30 s")??;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_statuses_and_errors() {
        let mut stats = RunStats::new(Duration::from_secs(2)).expect("histogram");
        stats.record_response(StatusCode::OK, Duration::from_micros(100), 10);
        stats.record_response(StatusCode::OK, Duration::from_micros(300), 10);
        stats.record_response(StatusCode::NOT_FOUND, Duration::from_micros(50), 0);
        stats.record_response(StatusCode::NOT_FOUND, Duration::from_micros(50), 0);
        stats.record_response(StatusCode::SERVICE_UNAVAILABLE, Duration::ZERO, 0);
        stats.record_io_error("reset".into());
        assert_eq!(stats.ok, 2);
        assert_eq!(stats.responses(), 5);
        assert_eq!(stats.statuses, BTreeMap::from([(404, 2), (503, 1)]));
        assert_eq!(stats.errors(), 4);
        assert!((stats.rps() - 2.5).abs() < 1e-9);
        assert!((stats.ok_rps() - 1.0).abs() < 1e-9);
        assert_eq!(stats.body_bytes, 20);
    }

    #[test]
    fn bounds_error_kinds_and_merges() {
        let mut a = RunStats::new(Duration::from_secs(1)).expect("histogram");
        for i in 0..MAX_ERROR_KINDS + 3 {
            a.record_io_error(format!("error {i}"));
        }
        assert_eq!(a.io_errors.len(), MAX_ERROR_KINDS + 1);
        assert_eq!(a.io_errors["other"], 3);

        let mut b = RunStats::new(Duration::from_secs(1)).expect("histogram");
        b.record_response(StatusCode::OK, Duration::from_millis(1), 1);
        b.record_response(StatusCode::BAD_GATEWAY, Duration::from_millis(2), 1);
        a.merge(&b).expect("merges");
        assert_eq!(a.responses(), 2);
        assert_eq!(a.statuses, BTreeMap::from([(502, 1)]));
        assert_eq!(a.errors(), MAX_ERROR_KINDS as u64 + 3 + 1);
    }
}

#[cfg(test)]
mod end_to_end {
    use super::*;
    use crate::bench::scenario::RequestSpec;
    use hyper::Method;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A tiny keep-alive HTTP/1.1 server: `/missing` is 404, anything else 200 with the
    /// request body's length as the response body; `/slow` answers after 300 ms and
    /// counts its answers in `slow_done`.
    async fn serve(listener: TcpListener) {
        serve_counting(listener, Arc::default()).await;
    }

    async fn serve_counting(listener: TcpListener, slow_done: Arc<AtomicUsize>) {
        while let Ok((mut stream, _)) = listener.accept().await {
            let slow_done = Arc::clone(&slow_done);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while buf.len() < head_end + 4 + length {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let status = if head.contains(" /missing ") {
                        "404 Not Found"
                    } else {
                        "200 OK"
                    };
                    let body = length.to_string();
                    let response = format!(
                        "HTTP/1.1 {status}\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    let slow = head.contains(" /slow ");
                    if slow {
                        sleep(Duration::from_millis(300)).await;
                    }
                    if stream.write_all(response.as_bytes()).await.is_err() {
                        return;
                    }
                    if slow {
                        slow_done.fetch_add(1, Ordering::SeqCst);
                    }
                    buf.drain(..head_end + 4 + length);
                }
            });
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn drives_a_keep_alive_server() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(serve(listener));

        let post = RequestSpec::json(Method::POST, "/echo", &serde_json::json!({"a": 1}))
            .with_header("x-bench", "1")
            .expect("header");
        let (status, body) = send_once(addr, &post).await.expect("one request");
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "7"); // {"a":1}

        let specs: Arc<[RequestSpec]> =
            vec![RequestSpec::get("/ok"), RequestSpec::get("/missing"), post].into();
        let config = LoadConfig {
            warmup: Duration::from_millis(100),
            duration: Duration::from_millis(400),
        };
        let group = Group {
            addr,
            connections: 4,
            specs,
        };
        let mut stats = run(config, &[group]).await.expect("load run");
        assert_eq!(stats.len(), 1);
        let stats = stats.remove(0);
        assert!(stats.responses() > 30, "{stats:?}");
        assert!(stats.ok > 0);
        assert!(stats.statuses.get(&404).is_some_and(|n| *n > 0));
        assert!(stats.io_errors.is_empty(), "{:?}", stats.io_errors);
        assert_eq!(stats.errors(), stats.statuses[&404]);
        assert!(stats.body_bytes > 0);
        assert!(stats.rps() > 0.0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_groups_concurrently_with_separate_stats() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(serve(listener));

        let config = LoadConfig {
            warmup: Duration::from_millis(50),
            duration: Duration::from_millis(300),
        };
        let groups = [
            Group {
                addr,
                connections: 1,
                specs: vec![RequestSpec::get("/ok")].into(),
            },
            Group {
                addr,
                connections: 3,
                specs: vec![RequestSpec::get("/missing")].into(),
            },
        ];
        let started = std::time::Instant::now();
        let stats = run(config, &groups).await.expect("load run");
        // Both groups share one window rather than running one after the other.
        assert!(
            started.elapsed() < Duration::from_millis(600),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(stats.len(), 2);
        assert!(stats[0].ok > 0 && stats[0].statuses.is_empty(), "{:?}", stats[0]);
        assert_eq!(stats[1].ok, 0);
        assert_eq!(stats[1].statuses.get(&404), Some(&stats[1].responses()));
        assert!(stats[1].responses() > 0);
        assert!(run(config, &[]).await.is_err());
        let empty = Group {
            addr,
            connections: 0,
            specs: vec![RequestSpec::get("/")].into(),
        };
        assert!(run(config, &[empty]).await.is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lets_requests_cut_off_by_the_end_complete_unrecorded() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let slow_done = Arc::new(AtomicUsize::new(0));
        tokio::spawn(serve_counting(listener, Arc::clone(&slow_done)));

        let config = LoadConfig {
            warmup: Duration::ZERO,
            duration: Duration::from_millis(100),
        };
        let group = Group {
            addr,
            connections: 3,
            specs: vec![RequestSpec::get("/slow")].into(),
        };
        let started = std::time::Instant::now();
        let stats = run(config, &[group]).await.expect("load run").remove(0);
        assert_eq!((stats.responses(), stats.unfinished), (0, 3), "{stats:?}");
        // The generator waited for the answers (300 ms) instead of hanging up at 100 ms.
        assert!(
            started.elapsed() >= Duration::from_millis(290),
            "{:?}",
            started.elapsed()
        );
        for _ in 0..100 {
            if slow_done.load(Ordering::SeqCst) == 3 {
                break;
            }
            sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(slow_done.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn counts_connect_failures_as_io_errors() {
        // Bind then drop, so nothing listens on the port.
        let addr = TcpListener::bind("127.0.0.1:0")
            .await
            .and_then(|l| l.local_addr())
            .expect("addr");
        let config = LoadConfig {
            warmup: Duration::ZERO,
            duration: Duration::from_millis(100),
        };
        let group = Group {
            addr,
            connections: 2,
            specs: vec![RequestSpec::get("/")].into(),
        };
        let stats = run(config, &[group]).await.expect("load run").remove(0);
        assert_eq!(stats.responses(), 0);
        assert!(stats.errors() > 0);
        assert!(stats.io_errors.keys().all(|k| k.starts_with("connect")));
    }
}
