//! The server under test as a child process: start it, learn its address, kill it; and
//! the commands run to completion on its data directory before it starts.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::workspace::display_command;

/// What the server prints on stdout once it accepts connections.
const LISTENING_PREFIX: &str = "plinth listening on http://";
/// How many trailing lines of the server's stderr are kept for error messages.
const STDERR_TAIL: usize = 60;

/// A running server; dropping it kills the process.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    stderr: Arc<Mutex<VecDeque<String>>>,
}

enum StdoutEvent {
    Listening(SocketAddr),
    Closed,
}

impl Server {
    /// Spawns `cmd` with piped stdout/stderr and waits up to `timeout` for its
    /// listening line. On failure the error carries the tail of the server's stderr.
    pub fn start(mut cmd: Command, timeout: Duration) -> Result<Self> {
        let shown = display_command(&cmd);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .with_context(|| format!("failed to start the server: `{shown}`"))?;

        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(pipe) = child.stderr.take() {
            let tail = Arc::clone(&stderr);
            thread::spawn(move || keep_tail(pipe, &tail));
        }
        let (tx, rx) = mpsc::channel();
        if let Some(pipe) = child.stdout.take() {
            thread::spawn(move || watch_stdout(pipe, &tx));
        }

        let mut server = Self {
            child,
            // Placeholder until the listening line arrives; never used before that.
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            stderr,
        };
        match rx.recv_timeout(timeout) {
            Ok(StdoutEvent::Listening(addr)) => {
                server.addr = addr;
                Ok(server)
            }
            Ok(StdoutEvent::Closed) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                // Give the process a moment to exit so its status and stderr are complete.
                thread::sleep(Duration::from_millis(200));
                let status = match server.child.try_wait() {
                    Ok(Some(status)) => status.to_string(),
                    _ => "still running".to_owned(),
                };
                bail!(
                    "the server closed its stdout without printing `{LISTENING_PREFIX}…` ({status})\n\
                     command: {shown}\n{}",
                    server.stderr_tail()
                )
            }
            Err(mpsc::RecvTimeoutError::Timeout) => bail!(
                "the server did not print `{LISTENING_PREFIX}…` within {} s\ncommand: {shown}\n{}",
                timeout.as_secs(),
                server.stderr_tail()
            ),
        }
    }

    /// Its process id (to read its CPU time).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails if the server has exited (e.g. crashed during a run).
    pub fn check_alive(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => bail!(
                "the server exited during the benchmark ({status})\n{}",
                self.stderr_tail()
            ),
            Err(err) => Err(err).context("could not query the server process"),
        }
    }

    /// The last lines the server wrote to stderr, ready to append to an error.
    pub fn stderr_tail(&self) -> String {
        let lines = match self.stderr.lock() {
            Ok(lines) => lines.iter().cloned().collect::<Vec<_>>(),
            Err(poisoned) => poisoned.into_inner().iter().cloned().collect(),
        };
        if lines.is_empty() {
            "server stderr: (empty)".to_owned()
        } else {
            format!(
                "server stderr (last {} lines):\n{}",
                lines.len(),
                lines.join("\n")
            )
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Already exited is fine; kill() then fails with InvalidInput, which we ignore.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `cmd` to completion (e.g. `plinth seed` before the server starts); fails unless
/// it exits successfully and its stdout contains `expect_stdout`. Returns its stdout.
pub fn run_to_completion(mut cmd: Command, expect_stdout: &str) -> Result<String> {
    let shown = display_command(&cmd);
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("failed to run `{shown}`"))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() || !stdout.contains(expect_stdout) {
        let tail = |text: &str| {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(STDERR_TAIL)..].join("\n")
        };
        bail!(
            "`{shown}` {} without printing `{expect_stdout}`\nstdout:\n{}\nstderr:\n{}",
            output.status,
            tail(&stdout),
            tail(&String::from_utf8_lossy(&output.stderr))
        );
    }
    Ok(stdout)
}

/// Reads stdout lines until the listening line, reports it, then drains the rest so
/// the server never blocks on a full pipe.
fn watch_stdout(pipe: impl Read, tx: &mpsc::Sender<StdoutEvent>) {
    let mut lines = BufReader::new(pipe).lines();
    for line in lines.by_ref() {
        let Ok(line) = line else { break };
        if let Some(addr) = parse_listening_line(&line) {
            let _ = tx.send(StdoutEvent::Listening(addr));
            break;
        }
    }
    for _ in lines {}
    let _ = tx.send(StdoutEvent::Closed);
}

fn keep_tail(pipe: impl Read, tail: &Mutex<VecDeque<String>>) {
    for line in BufReader::new(pipe).lines() {
        let Ok(line) = line else { break };
        let Ok(mut tail) = tail.lock() else { break };
        if tail.len() == STDERR_TAIL {
            tail.pop_front();
        }
        tail.push_back(line);
    }
}

/// The address in `plinth listening on http://127.0.0.1:PORT` (text may surround it, and
/// a trailing `/` is accepted).
pub fn parse_listening_line(line: &str) -> Option<SocketAddr> {
    let start = line.find(LISTENING_PREFIX)? + LISTENING_PREFIX.len();
    let rest = &line[start..];
    let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    rest[..end].trim_end_matches('/').parse().ok()
}

/// The `[server]` and `[[plugin]]` config of a benchmark run. Every bench connection
/// comes from one address, so the per-address connection cap (256 by default) is lifted
/// to the total: `--connections` above it measures the server, not the cap.
pub fn render_config(plugins: &[(&str, &str, &Path)]) -> String {
    let mut out = String::from(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"./data\"\nmax_connections_per_ip = 1024\n",
    );
    for (name, world, source) in plugins {
        out.push_str(&format!(
            "\n[[plugin]]\nname = {}\nworld = {}\nsource = {}\n",
            toml_string(name),
            toml_string(world),
            toml_string(&source.to_string_lossy())
        ));
    }
    out
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_listening_line() {
        let addr = parse_listening_line("plinth listening on http://127.0.0.1:43123");
        assert_eq!(addr, Some(SocketAddr::from(([127, 0, 0, 1], 43123))));
        let addr = parse_listening_line("  plinth listening on http://127.0.0.1:8080/ (ready)");
        assert_eq!(addr, Some(SocketAddr::from(([127, 0, 0, 1], 8080))));
        let addr = parse_listening_line("plinth listening on http://[::1]:9000");
        assert_eq!(addr.map(|a| a.port()), Some(9000));
    }

    #[test]
    fn ignores_other_lines() {
        assert_eq!(parse_listening_line(""), None);
        assert_eq!(parse_listening_line("compiling plugin hello"), None);
        assert_eq!(parse_listening_line("plinth listening on http://"), None);
        assert_eq!(
            parse_listening_line("plinth listening on http://localhost:80"),
            None
        );
        assert_eq!(
            parse_listening_line("plinth listening on http://127.0.0.1:99999"),
            None
        );
    }

    #[test]
    fn renders_the_config() {
        let source = Path::new("/work/main/target/plugins/hello.wasm");
        let config = render_config(&[("hello", "http-plugin", source)]);
        assert_eq!(
            config,
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"./data\"\nmax_connections_per_ip = 1024\n\n\
             [[plugin]]\nname = \"hello\"\nworld = \"http-plugin\"\n\
             source = \"/work/main/target/plugins/hello.wasm\"\n"
        );
    }

    #[test]
    fn escapes_toml_strings() {
        assert_eq!(toml_string(r#"C:\a "b""#), r#""C:\\a \"b\"""#);
        assert_eq!(toml_string("x\u{1}"), r#""x\u0001""#);
    }
}

#[cfg(all(test, unix))]
mod process_tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]);
        cmd
    }

    #[test]
    fn learns_the_address_and_kills_on_drop() {
        let server = Server::start(
            sh("echo starting; echo 'plinth listening on http://127.0.0.1:4321'; exec sleep 30"),
            Duration::from_secs(10),
        )
        .expect("starts");
        assert_eq!(server.addr.port(), 4321);
        let pid = server.child.id();
        drop(server);
        // The process is gone (reaped by Drop), so signalling it fails.
        let alive = Command::new("kill")
            .args(["-0", &pid.to_string()])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(!alive);
    }

    #[test]
    fn reports_stderr_when_the_server_dies() {
        let err = Server::start(sh("echo 'bad config' >&2; exit 3"), Duration::from_secs(10))
            .map(|s| s.addr)
            .expect_err("fails");
        let message = format!("{err:#}");
        assert!(message.contains("bad config"), "{message}");
        assert!(message.contains("exit status: 3"), "{message}");
    }

    #[test]
    fn runs_commands_to_completion() {
        let out = run_to_completion(
            sh("echo 'seeded 5 products (5 in the catalog)'"),
            "seeded 5 products",
        )
        .expect("succeeds");
        assert_eq!(out, "seeded 5 products (5 in the catalog)\n");
        let err = run_to_completion(sh("echo 'seeded 4 products'"), "seeded 5 products").expect_err("short");
        assert!(format!("{err:#}").contains("seeded 4 products"), "{err:#}");
        let err = run_to_completion(
            sh("echo 'seeded 5 products'; echo 'disk full' >&2; exit 1"),
            "seeded",
        )
        .expect_err("fails");
        let message = format!("{err:#}");
        assert!(
            message.contains("exit status: 1") && message.contains("disk full"),
            "{message}"
        );
    }

    #[test]
    fn times_out_without_a_listening_line() {
        let err = Server::start(sh("echo 'slow' >&2; exec sleep 30"), Duration::from_millis(500))
            .map(|s| s.addr)
            .expect_err("times out");
        assert!(format!("{err:#}").contains("slow"), "{err:#}");
    }
}
