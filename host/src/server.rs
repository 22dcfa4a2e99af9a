//! Serving connections: the accept loop in front of the router, on hyper's HTTP/1.1
//! server (axum's default build speaks only HTTP/1 too).
//!
//! Every limit here is about a client holding server resources without sending a
//! request worth serving (`[server]` in plinth.toml):
//! - `header_read_timeout`: hyper's header timer. In hyper 1.x (`poll_read_head`) it
//!   starts whenever the connection waits for a request head — at accept and again as
//!   soon as the previous response is sent — and the whole head must arrive before it
//!   fires, however the bytes are trickled; then the connection is closed unanswered.
//! - `keep_alive_idle`: a connection with no request in progress and no byte moving
//!   either way for this long is shut down gracefully; one that is still open one idle
//!   period later (stuck writing to a client that does not read) is dropped.
//! - `max_connections`: a semaphore; one connection over it is answered a complete
//!   `503 too_many_connections` with `Connection: close` and closed after the client
//!   has had the chance to read it (never a reset, never a hang).
//! - `max_connections_per_ip`: the same answer to a client address (IPv6: its /64)
//!   holding that many already, so one client cannot take every slot.
//! - The whole-request deadline is a middleware (`http::deadline`), where the route and
//!   the JSON error envelope are known.
//!
//! On shutdown the listener closes, every connection is asked to finish its request in
//! progress and close, and `serve` returns when the last one has, or after
//! `ConnectionLimits::drain_limit`, when the ones still open are closed.

use std::future::Future;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tower::ServiceExt;

use crate::config::ConnectionLimits;
use crate::domain::RequestId;

/// Refused connections kept open at once for [`REFUSAL_LINGER`]; past this, a refused
/// connection is closed right after its answer.
const REFUSALS_LINGERING: usize = 256;

/// How long a refused connection is kept open for the client to read the 503.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// How often the log says how many connections were refused.
const REFUSAL_REPORT_EVERY: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until `shutdown` completes, then waits for the open
/// connections to finish (see the module comment for the limits).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let lingering = Arc::new(Semaphore::new(REFUSALS_LINGERING));
    let (stop, stopped) = watch::channel(false);
    let (kill, killed) = watch::channel(false);
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let mut refused = Refused::default();
    let peers = Peers::new(limits.max_connections_per_ip);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Some(peer_slot) = peers.enter(peer.ip()) else {
            refused.count(limits.max_connections);
            refuse(stream, &lingering);
            continue;
        };
        match slots.clone().try_acquire_owned() {
            Ok(slot) => {
                let conn = Connection {
                    http: http.clone(),
                    router: router.clone(),
                    peer,
                    idle: limits.keep_alive_idle,
                    stopped: stopped.clone(),
                    killed: killed.clone(),
                    _slot: slot,
                    _peer_slot: peer_slot,
                };
                tokio::spawn(conn.run(stream));
            }
            Err(_) => {
                refused.count(limits.max_connections);
                refuse(stream, &lingering);
            }
        }
    }
    drop(listener);
    let _ = stop.send(true);
    // Each connection holds a slot until its task ends: all slots back, all done.
    let all = limits.max_connections as u32;
    if tokio::time::timeout(limits.drain_limit(), slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(
            open = limits.max_connections - slots.available_permits(),
            "connections still open after the shutdown drain limit are closed"
        );
        let _ = kill.send(true);
        let _ = slots.acquire_many(all).await;
    }
}

/// Open connections per client address (IPv6: per /64).
#[derive(Clone)]
struct Peers {
    max: usize,
    open: Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>,
}

impl Peers {
    fn new(max: usize) -> Self {
        Self {
            max,
            open: Arc::default(),
        }
    }

    /// A slot for one more connection from `ip`, or `None` when it holds `max`.
    fn enter(&self, ip: std::net::IpAddr) -> Option<PeerSlot> {
        let key = crate::auth::rate_key(ip);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(key).or_default();
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(PeerSlot {
            peers: self.clone(),
            key,
        })
    }
}

/// One connection's place in its address's count, given back on drop.
struct PeerSlot {
    peers: Peers,
    key: std::net::IpAddr,
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut open = self.peers.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// Accept errors: a connection that died in the backlog is skipped; anything else
/// (out of file descriptors, typically) pauses accepting instead of spinning.
async fn accept_failed(e: io::Error) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accepting a connection failed; pausing for a second");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Counts refusals and logs them at most every [`REFUSAL_REPORT_EVERY`], so a flood
/// does not become a flood of log lines.
#[derive(Default)]
struct Refused {
    since_report: u64,
    last_report: Option<Instant>,
}

impl Refused {
    fn count(&mut self, max_connections: usize) {
        self.since_report += 1;
        if self
            .last_report
            .is_none_or(|at| at.elapsed() >= REFUSAL_REPORT_EVERY)
        {
            tracing::warn!(
                refused = self.since_report,
                max_connections,
                "at a connection limit (in all, or one address's): refusing new connections with 503"
            );
            self.since_report = 0;
            self.last_report = Some(Instant::now());
        }
    }
}

/// Answers a connection over the cap with a complete 503 and closes it. The answer is
/// written at once, in the accept loop, straight to the socket (a fresh socket's send
/// buffer takes it whole), so every refused client gets it even during a flood. The
/// request is not read; closing with unread bytes would reset the connection, which
/// can destroy the answer before the client reads it, so what has arrived is dropped
/// and, while a linger slot is free, the socket stays open for a moment to drop what
/// still comes.
fn refuse(stream: TcpStream, lingering: &Arc<Semaphore>) {
    let Ok(mut socket) = stream.into_std() else {
        return;
    };
    let _ = socket.write_all(refusal_response().as_bytes());
    let _ = socket.shutdown(std::net::Shutdown::Write);
    let mut sink = [0u8; 4096];
    // Non-blocking: stops at the first WouldBlock, at the client's end, or after 64 KiB.
    for _ in 0..16 {
        if !matches!(socket.read(&mut sink), Ok(n) if n > 0) {
            break;
        }
    }
    let Ok(permit) = lingering.clone().try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        let _permit = permit;
        let Ok(mut stream) = TcpStream::from_std(socket) else {
            return;
        };
        let _ = tokio::time::timeout(REFUSAL_LINGER, async {
            while stream.read(&mut sink).await? > 0 {}
            Ok::<_, io::Error>(())
        })
        .await;
    });
}

/// The raw `503 too_many_connections` in the standard error envelope.
fn refusal_response() -> String {
    let id = RequestId::generate();
    let body = serde_json::json!({
        "error": {
            "code": "too_many_connections",
            "message": "the server is at its connection limit; retry shortly",
            "request_id": id.as_str(),
        }
    })
    .to_string();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nretry-after: 1\r\nx-request-id: {}\r\nconnection: close\r\n\r\n{body}",
        body.len(),
        id.as_str()
    )
}

/// One accepted connection and what it needs to be served.
struct Connection {
    http: http1::Builder,
    router: Router,
    peer: SocketAddr,
    idle: Duration,
    stopped: watch::Receiver<bool>,
    /// Set when shutdown stops waiting: the connection is dropped where it stands.
    killed: watch::Receiver<bool>,
    /// Released when the task ends, after the connection (and its router) is dropped.
    _slot: OwnedSemaphorePermit,
    _peer_slot: PeerSlot,
}

impl Connection {
    async fn run(mut self, stream: TcpStream) {
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(Tracked {
            inner: stream,
            activity: activity.clone(),
        });
        let (router, peer, requests) = (self.router, self.peer, activity.clone());
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            // The handlers read the client address from here, as with axum::serve.
            req.extensions_mut().insert(ConnectInfo(peer));
            let in_progress = requests.begin();
            let call = router.clone().oneshot(req.map(axum::body::Body::new));
            async move {
                let response = call.await;
                drop(in_progress);
                response
            }
        });
        let conn = self.http.serve_connection(io, service);
        tokio::pin!(conn);
        let mut closing = false;
        loop {
            let check_at = activity.idle_check_at(self.idle);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        // Header timeouts, resets, malformed requests: the client's doing.
                        tracing::debug!(peer = %self.peer, error = %e, "connection ended with an error");
                    }
                    return;
                }
                _ = self.killed.wait_for(|kill| *kill) => return,
                _ = self.stopped.wait_for(|stop| *stop), if !closing => {
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
                _ = tokio::time::sleep_until(check_at) => {
                    if !activity.idle_for(self.idle) {
                        continue;
                    }
                    if closing {
                        // Asked to close one idle period ago and still stuck (a client
                        // that does not read its response): drop it.
                        return;
                    }
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
    }
}

/// When the connection last moved a byte, and how many of its requests are being
/// handled; shared by the socket wrapper, the service and the connection task.
struct Activity {
    born: Instant,
    /// Milliseconds after `born` of the last byte read or written (or request end).
    last_ms: AtomicU64,
    in_progress: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Self {
            born: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_progress: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let ms = self.born.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.born + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }

    /// A request is being handled until the guard drops (answered or abandoned).
    fn begin(self: &Arc<Self>) -> InProgress {
        self.in_progress.fetch_add(1, Ordering::Relaxed);
        InProgress(self.clone())
    }

    /// When to look again: one idle period after the last activity, or from now
    /// while a request is in progress (its end counts as activity).
    fn idle_check_at(&self, idle: Duration) -> Instant {
        if self.in_progress.load(Ordering::Relaxed) > 0 {
            Instant::now() + idle
        } else {
            self.last() + idle
        }
    }

    fn idle_for(&self, idle: Duration) -> bool {
        self.in_progress.load(Ordering::Relaxed) == 0 && self.last().elapsed() >= idle
    }
}

struct InProgress(Arc<Activity>);

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_progress.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The socket, noting every byte read or written in its connection's [`Activity`].
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl Tracked {
    fn moved<T>(&self, polled: Poll<io::Result<T>>, bytes: impl FnOnce(&T) -> bool) -> Poll<io::Result<T>> {
        if let Poll::Ready(Ok(n)) = &polled {
            if bytes(n) {
                self.activity.touch();
            }
        }
        polled
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = buf.filled().len() > before;
        self.moved(polled, |_| read)
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.moved(polled, |n| *n > 0)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.moved(polled, |n| *n > 0)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    fn limits() -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(1),
            keep_alive_idle: Duration::from_millis(200),
            request_timeout: Duration::from_secs(1),
            longest_request: Duration::from_secs(1),
            max_connections: 8,
            max_connections_per_ip: 3,
        }
    }

    /// A handler that never answers (no deadline middleware in this router) and a
    /// client that never reads cannot hold shutdown up past the drain limit.
    #[tokio::test]
    async fn shutdown_closes_what_is_still_open_after_the_drain_limit() {
        let router = Router::new().route("/hang", axum::routing::get(std::future::pending::<&'static str>));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, router, limits(), async {
            let _ = stopped.await;
        }));
        let mut client = TcpStream::connect(addr).await.unwrap();
        client
            .write_all(b"GET /hang HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let asked = Instant::now();
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("serve returned once the drain limit passed")
            .unwrap();
        let took = asked.elapsed();
        assert!(took >= limits().drain_limit(), "waited {took:?} only");
        // The hanging connection was closed, not left behind.
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(2), client.read_to_end(&mut rest)).await;
        assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
    }

    /// One address holding its share of connections gets the 503 on the next one; a
    /// closed connection frees its place.
    #[tokio::test]
    async fn one_address_cannot_hold_more_than_its_share_of_connections() {
        let router = Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, router, limits(), async {
            let _ = stopped.await;
        }));
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(TcpStream::connect(addr).await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut fourth = TcpStream::connect(addr).await.unwrap();
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(3), fourth.read_to_end(&mut answer)).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.starts_with("HTTP/1.1 503") && answer.contains("too_many_connections"),
            "{answer}"
        );
        drop(held.pop());
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut again = TcpStream::connect(addr).await.unwrap();
        again
            .write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(3), again.read_to_end(&mut answer)).await;
        assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
        drop(held);
        stop.send(()).unwrap();
        server.await.unwrap();
    }
}
