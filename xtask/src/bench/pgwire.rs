//! A loopback TCP proxy in front of PostgreSQL that counts the client's round trips.
//!
//! A PostgreSQL client waits for the server at two kinds of messages only: `Sync`
//! (`S`, ending an extended-protocol exchange: Parse/Bind/Execute…) and `Query` (`Q`,
//! the simple protocol, which sqlx uses for `BEGIN`/`COMMIT`). Counting those in the
//! client-to-server stream counts round trips exactly, without the database's help
//! (`pg_stat_statements` needs a server restart to load). The proxy must see plain
//! text, so the server behind it is given `sslmode=disable`. It sits only in front of
//! the server the round trips are counted on, never in the measured path.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Request codes of the untyped messages a connection may open with.
const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;
/// Largest message the proxy forwards (PostgreSQL's own limit is 1 GiB).
const MAX_MESSAGE: usize = 1 << 30;

/// The proxy; it stops accepting when dropped (open connections end with their client).
pub struct CountingProxy {
    pub addr: SocketAddr,
    trips: Arc<AtomicU64>,
    accept: tokio::task::JoinHandle<()>,
}

impl CountingProxy {
    /// Listens on a free loopback port, forwarding every connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("could not bind the counting proxy")?;
        let addr = listener.local_addr()?;
        let trips = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&trips);
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let counter = Arc::clone(&counter);
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(upstream).await {
                        let _ = relay(client, server, &counter).await;
                    }
                });
            }
        });
        Ok(Self { addr, trips, accept })
    }

    /// Round trips every client has made so far.
    pub fn trips(&self) -> u64 {
        self.trips.load(Ordering::Relaxed)
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Copies server → client as bytes, and client → server message by message, counting.
async fn relay(client: TcpStream, server: TcpStream, trips: &AtomicU64) -> Result<()> {
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let down = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
        let _ = client_write.shutdown().await;
    });
    let up = forward_counting(&mut client_read, &mut server_write, trips).await;
    let _ = server_write.shutdown().await;
    let _ = down.await;
    up
}

async fn forward_counting(
    from: &mut (impl AsyncReadExt + Unpin),
    to: &mut (impl AsyncWriteExt + Unpin),
    trips: &AtomicU64,
) -> Result<()> {
    // Untyped start-up packets first: an SSL or GSS request (answered with one byte,
    // then the client goes on), then the startup message itself.
    loop {
        let len = from.read_u32().await? as usize;
        anyhow::ensure!(
            (8..=MAX_MESSAGE).contains(&len),
            "bad start-up packet length {len}"
        );
        let mut body = vec![0u8; len - 4];
        from.read_exact(&mut body).await?;
        to.write_u32(len as u32).await?;
        to.write_all(&body).await?;
        let code = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
        if code != SSL_REQUEST && code != GSSENC_REQUEST {
            break;
        }
    }
    // Then typed messages: one tag byte, a length that counts itself, the body.
    let mut body = Vec::new();
    loop {
        let tag = match from.read_u8().await {
            Ok(tag) => tag,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let len = from.read_u32().await? as usize;
        anyhow::ensure!((4..=MAX_MESSAGE).contains(&len), "bad message length {len}");
        body.resize(len - 4, 0);
        from.read_exact(&mut body).await?;
        if tag == b'S' || tag == b'Q' {
            trips.fetch_add(1, Ordering::Relaxed);
        }
        to.write_u8(tag).await?;
        to.write_u32(len as u32).await?;
        to.write_all(&body).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        out.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    #[tokio::test]
    async fn counts_syncs_and_simple_queries_and_forwards_every_byte() {
        let mut stream = Vec::new();
        // SSLRequest, then a startup message (protocol 3.0, user=u).
        stream.extend_from_slice(&8u32.to_be_bytes());
        stream.extend_from_slice(&SSL_REQUEST.to_be_bytes());
        let startup = [&196_608u32.to_be_bytes()[..], b"user\0u\0\0"].concat();
        stream.extend_from_slice(&(startup.len() as u32 + 4).to_be_bytes());
        stream.extend_from_slice(&startup);
        // BEGIN; then Parse/Bind/Execute/Sync twice; then COMMIT, a Flush, Terminate.
        stream.extend(message(b'Q', b"BEGIN\0"));
        for _ in 0..2 {
            stream.extend(message(b'P', b"\0SELECT 1\0\0\0"));
            stream.extend(message(b'B', b"\0\0\0\0\0\0\0\0"));
            stream.extend(message(b'E', b"\0\0\0\0\0"));
            stream.extend(message(b'S', b""));
        }
        stream.extend(message(b'Q', b"COMMIT\0"));
        stream.extend(message(b'H', b""));
        stream.extend(message(b'X', b""));

        let trips = AtomicU64::new(0);
        let mut out = Vec::new();
        forward_counting(&mut stream.as_slice(), &mut out, &trips)
            .await
            .expect("forwards");
        assert_eq!(trips.load(Ordering::Relaxed), 4, "2 Syncs + BEGIN + COMMIT");
        assert_eq!(out, stream);
    }

    #[tokio::test]
    async fn refuses_a_length_shorter_than_itself() {
        let mut stream = Vec::new();
        let startup = [&196_608u32.to_be_bytes()[..], b"\0"].concat();
        stream.extend_from_slice(&(startup.len() as u32 + 4).to_be_bytes());
        stream.extend_from_slice(&startup);
        stream.extend_from_slice(&[b'Q', 0, 0, 0, 2]);
        let trips = AtomicU64::new(0);
        let err = forward_counting(&mut stream.as_slice(), &mut Vec::new(), &trips)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("bad message length 2"), "{err}");
    }
}
