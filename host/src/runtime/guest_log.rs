//! Guest output into the host log: `log` calls, stdout and stderr, tagged with the
//! plugin and request id, within a per-invocation byte budget.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

use crate::domain::{PluginName, RequestId};

/// One invocation's log sink. Cloning shares the budget.
#[derive(Clone)]
pub struct GuestLog {
    plugin: PluginName,
    request_id: RequestId,
    budget: Arc<AtomicI64>,
}

#[derive(Clone, Copy, Debug)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl GuestLog {
    pub fn new(plugin: PluginName, request_id: RequestId, budget_bytes: u64) -> Self {
        Self {
            plugin,
            request_id,
            budget: Arc::new(AtomicI64::new(budget_bytes.min(i64::MAX as u64) as i64)),
        }
    }

    /// Logs one message if the budget allows; says once when the budget runs out.
    pub fn emit(&self, level: Level, stream: &str, message: &str) {
        let before = self.budget.fetch_sub(message.len() as i64, Ordering::Relaxed);
        if before < message.len() as i64 {
            if before >= 0 {
                tracing::warn!(plugin = %self.plugin, request_id = %self.request_id, "plugin log budget exhausted; dropping further output");
                self.budget.store(-1, Ordering::Relaxed);
            }
            return;
        }
        let (plugin, request_id) = (self.plugin.as_str(), self.request_id.as_str());
        match level {
            Level::Trace => tracing::trace!(target: "plinth::guest", plugin, request_id, stream, "{message}"),
            Level::Debug => tracing::debug!(target: "plinth::guest", plugin, request_id, stream, "{message}"),
            Level::Info => tracing::info!(target: "plinth::guest", plugin, request_id, stream, "{message}"),
            Level::Warn => tracing::warn!(target: "plinth::guest", plugin, request_id, stream, "{message}"),
            Level::Error => tracing::error!(target: "plinth::guest", plugin, request_id, stream, "{message}"),
        }
    }

    /// A WASI output stream that logs each line (`stdout` at info, `stderr` at warn).
    pub fn stream(&self, name: &'static str) -> GuestStream {
        GuestStream {
            log: self.clone(),
            name,
        }
    }
}

/// Guest stdout or stderr.
pub struct GuestStream {
    log: GuestLog,
    name: &'static str,
}

impl IsTerminal for GuestStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestStream {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(LineWriter {
            log: self.log.clone(),
            name: self.name,
            line: Vec::new(),
        })
    }
}

/// Splits writes into lines; a line longer than 4 KiB is logged in pieces.
struct LineWriter {
    log: GuestLog,
    name: &'static str,
    line: Vec<u8>,
}

const MAX_LINE: usize = 4096;

impl LineWriter {
    fn emit_line(&mut self) {
        let text = String::from_utf8_lossy(&self.line);
        let text = text.trim_end_matches(['\n', '\r']);
        let level = if self.name == "stderr" {
            Level::Warn
        } else {
            Level::Info
        };
        if !text.is_empty() {
            self.log.emit(level, self.name, text);
        }
        self.line.clear();
    }
}

impl AsyncWrite for LineWriter {
    fn poll_write(mut self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        for &b in buf {
            self.line.push(b);
            if b == b'\n' || self.line.len() >= MAX_LINE {
                self.emit_line();
            }
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.line.is_empty() {
            self.emit_line();
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.line.is_empty() {
            self.emit_line();
        }
    }
}
