//! Guest output into the host log: `log` calls, stdout and stderr, tagged with the
//! plugin and request id, within one per-invocation budget of bytes and lines. Every
//! line costs its text plus [`LINE_OVERHEAD_BYTES`] (an empty line still writes a
//! timestamp, level, span and fields), so 100,000 empty lines cost what they write, not
//! nothing. The first line that does not fit ends the output: it and everything after it
//! are dropped, and when the invocation ends one warning says how much was dropped.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use crate::domain::{PluginName, RequestId};

/// What one log line costs beyond its text: about what the text log format writes around
/// it (timestamp, level, the request span, target and fields).
pub const LINE_OVERHEAD_BYTES: u64 = 256;

/// One invocation's log sink. Cloning shares the budget; the truncation notice is
/// written when the last clone (the Store's, or a stdout stream's) goes away.
#[derive(Clone)]
pub struct GuestLog {
    shared: Arc<Shared>,
}

struct Shared {
    plugin: PluginName,
    request_id: RequestId,
    budget: Mutex<Budget>,
}

/// What is left of one invocation's budget, and what was dropped.
#[derive(Debug)]
struct Budget {
    bytes_left: u64,
    lines_left: u32,
    full: bool,
    dropped_lines: u64,
    dropped_bytes: u64,
}

impl Budget {
    /// Charges one line of `len` bytes of text; false once it (or an earlier line) did
    /// not fit, so the log never has silent holes in the middle.
    fn charge(&mut self, len: usize) -> bool {
        let cost = LINE_OVERHEAD_BYTES.saturating_add(len as u64);
        if !self.full && self.lines_left > 0 && cost <= self.bytes_left {
            self.lines_left -= 1;
            self.bytes_left -= cost;
            return true;
        }
        self.full = true;
        self.dropped_lines += 1;
        self.dropped_bytes = self.dropped_bytes.saturating_add(len as u64);
        false
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let budget = self.budget.get_mut().unwrap_or_else(PoisonError::into_inner);
        if budget.dropped_lines > 0 {
            tracing::warn!(
                plugin = %self.plugin,
                request_id = %self.request_id,
                dropped_lines = budget.dropped_lines,
                dropped_bytes = budget.dropped_bytes,
                "plugin output truncated: {} lines ({} bytes of text) dropped over the per-call log budget",
                budget.dropped_lines,
                budget.dropped_bytes,
            );
        }
    }
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
    pub fn new(plugin: PluginName, request_id: RequestId, budget_bytes: u64, budget_lines: u32) -> Self {
        Self {
            shared: Arc::new(Shared {
                plugin,
                request_id,
                budget: Mutex::new(Budget {
                    bytes_left: budget_bytes,
                    lines_left: budget_lines,
                    full: false,
                    dropped_lines: 0,
                    dropped_bytes: 0,
                }),
            }),
        }
    }

    /// Logs one line if the budget allows; otherwise counts it as dropped.
    pub fn emit(&self, level: Level, stream: &str, message: &str) {
        let admitted = self
            .shared
            .budget
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .charge(message.len());
        if !admitted {
            return;
        }
        let (plugin, request_id) = (self.shared.plugin.as_str(), self.shared.request_id.as_str());
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

impl GuestStream {
    fn writer(&self) -> LineWriter {
        LineWriter {
            log: self.log.clone(),
            name: self.name,
            line: Vec::new(),
        }
    }
}

impl IsTerminal for GuestStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestStream {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.writer())
    }

    /// Written synchronously in the guest's own host call (wasmtime's default adapter
    /// would spawn a task per stream): lines are logged in the request's span, and all of
    /// them are in before the invocation ends.
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.writer())
    }
}

/// Splits writes into lines; a line longer than [`MAX_LINE`] is logged in pieces, so a
/// write without newlines is charged piece by piece like any other output.
struct LineWriter {
    log: GuestLog,
    name: &'static str,
    line: Vec<u8>,
}

const MAX_LINE: usize = 4096;

/// How much one `write` may carry (the guest loops for more).
const WRITE_PERMIT: usize = 64 << 10;

impl LineWriter {
    fn take(&mut self, mut buf: &[u8]) {
        while !buf.is_empty() {
            let room = MAX_LINE - self.line.len();
            let window = &buf[..room.min(buf.len())];
            let (piece, ends_line) = match window.iter().position(|&b| b == b'\n') {
                Some(i) => (&window[..=i], true),
                None => (window, window.len() == room),
            };
            self.line.extend_from_slice(piece);
            buf = &buf[piece.len()..];
            if ends_line {
                self.emit_line();
            }
        }
    }

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
        self.take(buf);
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

/// Always ready: writing to the log never blocks. (The trait is `#[async_trait]`; this is
/// its expansion, to avoid a dependency for one empty future.)
impl Pollable for LineWriter {
    fn ready<'a, 'b>(&'a mut self) -> Pin<Box<dyn Future<Output = ()> + Send + 'b>>
    where
        'a: 'b,
        Self: 'b,
    {
        Box::pin(std::future::ready(()))
    }
}

impl OutputStream for LineWriter {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.take(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.line.is_empty() {
            self.emit_line();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(bytes: u64, lines: u32) -> Budget {
        Budget {
            bytes_left: bytes,
            lines_left: lines,
            full: false,
            dropped_lines: 0,
            dropped_bytes: 0,
        }
    }

    #[test]
    fn empty_lines_are_charged_their_overhead() {
        let mut b = budget(10 * LINE_OVERHEAD_BYTES, 1_000);
        let kept = (0..100_000).filter(|_| b.charge(0)).count();
        assert_eq!(kept, 10);
        assert_eq!(b.dropped_lines, 100_000 - 10);
    }

    #[test]
    fn the_line_cap_holds_with_bytes_to_spare() {
        let mut b = budget(u64::MAX, 3);
        assert_eq!((0..10).filter(|_| b.charge(1)).count(), 3);
        assert_eq!((b.dropped_lines, b.dropped_bytes), (7, 7));
    }

    #[test]
    fn nothing_is_kept_after_the_first_drop() {
        let mut b = budget(LINE_OVERHEAD_BYTES + 10, 100);
        assert!(!b.charge(11));
        assert!(
            !b.charge(0),
            "a small line after a dropped one would hide the gap"
        );
    }
}
