//! A plugin's `log` calls, stdout and stderr reach the server log within the per-call
//! budget however they are sliced (100,000 empty lines cost what they write), followed by
//! exactly one line saying how much was dropped. The real binary runs with its stderr
//! captured, and the lines of each request are counted by its request id.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncBufReadExt;

use crate::helpers::{config_text, hostile_plugin, wait_listening};

/// `log_kib_per_call`'s default.
const BUDGET_BYTES: usize = 64 << 10;

/// The real `plinth serve` with its log (stderr, text format, `info`) captured line by line.
struct LoggedServer {
    base: String,
    log: Arc<Mutex<Vec<String>>>,
    _child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

impl LoggedServer {
    async fn start(plugins: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("plinth.toml");
        std::fs::write(&config, config_text(plugins)).unwrap();
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_plinth"))
            .args(["serve", "--config"])
            .arg(&config)
            .env("PLINTH_LISTEN", "127.0.0.1:0")
            .env("PLINTH_DATA_DIR", dir.path().join("data"))
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove("PLINTH_LOG_FORMAT")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut stderr = tokio::io::BufReader::new(child.stderr.take().unwrap());
        let sink = log.clone();
        tokio::spawn(async move {
            let mut line = Vec::new();
            while stderr.read_until(b'\n', &mut line).await.unwrap_or(0) > 0 {
                sink.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&line).into_owned());
                line.clear();
            }
        });
        let base = wait_listening(&mut child).await;
        Self {
            base,
            log,
            _child: child,
            _dir: dir,
        }
    }

    /// GETs `path` under a fresh request id; returns the status and that id.
    async fn get(&self, path: &str) -> (u16, String) {
        let id = format!("flood-{}", uuid::Uuid::new_v4().simple());
        let resp = reqwest::Client::new()
            .get(format!("{}{path}", self.base))
            .header("x-request-id", &id)
            .timeout(Duration::from_secs(120))
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), id)
    }

    /// The log lines of one request, once its truncation notice is in (or the log has
    /// been quiet for a second without one).
    async fn lines_of(&self, id: &str) -> Vec<String> {
        let started = Instant::now();
        let mut seen = (0, Instant::now());
        loop {
            let lines: Vec<String> = {
                let log = self.log.lock().unwrap();
                if log.len() != seen.0 {
                    seen = (log.len(), Instant::now());
                }
                log.iter().filter(|l| l.contains(id)).cloned().collect()
            };
            let quiet = seen.1.elapsed() > Duration::from_secs(1);
            if lines.iter().any(|l| l.contains("truncated"))
                || (quiet && started.elapsed() > Duration::from_secs(3))
            {
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Checks one flood's log: bounded bytes, one truncation notice, and (when `calls` is
/// given) that kept + dropped lines account for every call.
fn assert_bounded(what: &str, lines: &[String], calls: Option<u64>) {
    let bytes: usize = lines.iter().map(String::len).sum();
    assert!(
        bytes < 2 * BUDGET_BYTES,
        "{what}: {} lines, {bytes} bytes in the server log for one call (budget {BUDGET_BYTES})",
        lines.len()
    );
    let notices: Vec<&String> = lines.iter().filter(|l| l.contains("truncated")).collect();
    assert_eq!(notices.len(), 1, "{what}: truncation notices: {notices:?}");
    let dropped: u64 = notices[0]
        .split("truncated: ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{what}: no count in {}", notices[0]));
    let kept = lines.iter().filter(|l| l.contains("plinth::guest")).count() as u64;
    assert!(dropped > 0 && kept > 0, "{what}: kept {kept}, dropped {dropped}");
    if let Some(calls) = calls {
        assert_eq!(kept + dropped, calls, "{what}: kept {kept} + dropped {dropped}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_tiny_log_lines_stays_within_the_log_budget() {
    let server = LoggedServer::start(&hostile_plugin("hostile", "")).await;
    for (what, len) in [("100,000 empty log lines", 0), ("100,000 one-byte log lines", 1)] {
        let (status, id) = server
            .get(&format!("/plugins/hostile/log-flood?n=100000&len={len}"))
            .await;
        assert_eq!(status, 200, "{what}");
        assert_bounded(what, &server.lines_of(&id).await, Some(100_000));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_megabytes_of_stdout_without_newlines_stay_within_the_log_budget() {
    let server = LoggedServer::start(&hostile_plugin("hostile", "")).await;
    let (status, id) = server.get("/plugins/hostile/stdout-flood?mib=10").await;
    assert_eq!(status, 200);
    assert_bounded("10 MiB of stdout", &server.lines_of(&id).await, None);
}
