//! A TCP proxy in front of a real service (localstripe) that can stall traffic, to put a
//! crash at an exact point of a checkout: before the charge reaches the provider, or
//! after the provider made it but before its answer got back. Fault injection in the
//! network, in the spirit of toxiproxy; the provider behind it is the real emulator.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What a new connection gets. Each connection keeps the mode it was accepted in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Both directions forwarded.
    Pass,
    /// The request is read and never forwarded: the provider never sees it.
    HoldRequests,
    /// The request is forwarded, the provider's answer is never passed back.
    HoldResponses,
    /// The connection is closed at once: the provider is unreachable.
    Refuse,
    /// Nothing is forwarded until [`HoldProxy::release`]; then the connection goes
    /// through as in `Pass` (a slow network, not a lost one).
    Stall,
}

pub struct HoldProxy {
    pub port: u16,
    mode: Arc<Mutex<Mode>>,
    /// Bumped by `release`: stalled connections wait for it to change.
    released: Arc<tokio::sync::watch::Sender<u64>>,
    stalled: Arc<AtomicUsize>,
}

impl HoldProxy {
    /// Listens on a free loopback port, forwarding to `upstream_port`.
    pub async fn start(upstream_port: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(Mutex::new(Mode::Pass));
        let released = Arc::new(tokio::sync::watch::channel(0u64).0);
        let stalled = Arc::new(AtomicUsize::new(0));
        let (shared, release, count) = (mode.clone(), released.clone(), stalled.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let mode = *shared.lock().unwrap();
                let (mut release, count) = (release.subscribe(), count.clone());
                tokio::spawn(async move {
                    if mode == Mode::Stall {
                        count.fetch_add(1, Ordering::SeqCst);
                        let _ = release.changed().await;
                        count.fetch_sub(1, Ordering::SeqCst);
                        return serve(client, upstream_port, Mode::Pass).await;
                    }
                    serve(client, upstream_port, mode).await
                });
            }
        });
        Self {
            port,
            mode,
            released,
            stalled,
        }
    }

    pub fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// Lets every stalled connection through (new ones still get the current mode).
    pub fn release(&self) {
        self.released.send_modify(|n| *n += 1);
    }

    /// Connections waiting in `Stall` mode.
    pub fn stalled(&self) -> usize {
        self.stalled.load(Ordering::SeqCst)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

async fn serve(mut client: TcpStream, upstream_port: u16, mode: Mode) {
    match mode {
        Mode::Refuse | Mode::Stall => drop(client),
        Mode::HoldRequests => {
            let mut sink = [0u8; 4096];
            while matches!(client.read(&mut sink).await, Ok(n) if n > 0) {}
        }
        Mode::Pass | Mode::HoldResponses => {
            let Ok(upstream) = TcpStream::connect(("127.0.0.1", upstream_port)).await else {
                return;
            };
            let (mut client_read, mut client_write) = client.into_split();
            let (mut upstream_read, mut upstream_write) = upstream.into_split();
            let requests = tokio::spawn(async move {
                let _ = tokio::io::copy(&mut client_read, &mut upstream_write).await;
                let _ = upstream_write.shutdown().await;
            });
            if mode == Mode::Pass {
                let _ = tokio::io::copy(&mut upstream_read, &mut client_write).await;
                let _ = client_write.shutdown().await;
            } else {
                let mut sink = [0u8; 4096];
                while matches!(upstream_read.read(&mut sink).await, Ok(n) if n > 0) {}
                // The client's side stays open, answerless, until the client goes away.
                let _ = requests.await;
                drop(client_write);
                return;
            }
            let _ = requests.await;
        }
    }
}
