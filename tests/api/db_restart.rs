//! The database server itself restarts under load: a private PostgreSQL instance
//! (initdb into a temp dir, the machine's PostgreSQL binaries, run as the `postgres`
//! user) is stopped with `pg_ctl -m immediate` — the way a crash or a kill -9 of the
//! postmaster ends it: no checkpoint, crash recovery at the next start — while clients
//! keep writing, then started again on the same port. Writes fail cleanly while it is
//! down, the same server process serves fully once it is back, and every write it
//! acknowledged survived the crash. A private instance because restarting the shared
//! one would break every other test running at the same time.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::helpers::{hello_plugin, json, on_postgres, spawn_app_with_config, DATABASE_MARKER};

/// Where Debian puts the server binaries; other layouts skip the test (loudly).
const BIN_DIRS: &[&str] = &[
    "/usr/lib/postgresql/17/bin",
    "/usr/lib/postgresql/16/bin",
    "/usr/lib/postgresql/15/bin",
];

/// A PostgreSQL cluster of its own, owned by the `postgres` user; stopped on drop.
struct PrivatePostgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

impl PrivatePostgres {
    /// `initdb` and start, or `None` (with the reason printed) where this machine cannot.
    fn start() -> Option<Self> {
        let Some(bin) = BIN_DIRS
            .iter()
            .map(PathBuf::from)
            .find(|d| d.join("initdb").is_file())
        else {
            eprintln!("SKIPPED: no PostgreSQL server binaries in {BIN_DIRS:?}");
            return None;
        };
        // initdb refuses to run as root; as root, the postgres user runs it.
        if !is_root() {
            eprintln!("SKIPPED: a private PostgreSQL needs root (to run initdb as the postgres user)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let chown = std::process::Command::new("chown")
            .args(["-R", "postgres:"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(chown.success(), "chown the cluster directory to postgres");
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let db = Self { bin, dir, port };
        let data = db.data();
        db.as_postgres(
            "initdb",
            &[
                "-D",
                &data,
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        db.pg_ctl_start();
        Some(db)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").to_string_lossy().into_owned()
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Runs `tool` from the server's bin dir as the postgres user; panics on failure.
    fn as_postgres(&self, tool: &str, args: &[&str]) {
        let out = std::process::Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join(tool))
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{tool} {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn pg_ctl_start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log");
        self.as_postgres(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-o",
                &options,
                "-l",
                &log.to_string_lossy(),
                "-w",
                "start",
            ],
        );
    }

    /// Stops the server the way a crash does: every backend killed at once, nothing
    /// flushed beyond what commits already made durable.
    fn crash(&self) {
        self.as_postgres("pg_ctl", &["-D", &self.data(), "-m", "immediate", "-w", "stop"]);
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = std::process::Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", &self.data(), "-m", "immediate", "-w", "stop"])
            .output();
    }
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// What the writers saw.
#[derive(Default)]
struct Tally {
    /// Increments answered 200.
    acknowledged: AtomicU64,
    /// Increments answered anything else, or not at all: each may or may not have
    /// committed (the commit can land just before the connection dies).
    unsure: AtomicU64,
}

/// Increments the hello plugin's kv counter back to back until `stop`.
async fn writer(client: reqwest::Client, url: String, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    while !stop.load(Ordering::Relaxed) {
        match client.post(&url).send().await {
            Ok(resp) if resp.status() == 200 => {
                tally.acknowledged.fetch_add(1, Ordering::Relaxed);
            }
            Ok(resp) => {
                let status = resp.status();
                let body = resp.text().await.unwrap_or_default();
                // While the database is down: 503 with the JSON error, never a 500. (The
                // plugin sees its kv call fail and fails; the host answers for it.)
                assert_eq!(status, 503, "{body}");
                let error: serde_json::Value = serde_json::from_str(&body).unwrap();
                assert!(error["error"]["code"].is_string(), "{body}");
                assert!(error["error"]["request_id"].is_string(), "{body}");
                tally.unsure.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(_) => {
                tally.unsure.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

async fn wait_ready(app: &crate::helpers::TestApp, within: Duration) {
    let since = Instant::now();
    while app.get("/readyz").await.status() != 200 {
        assert!(
            since.elapsed() < within,
            "not ready {within:?} after the database came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_crash_and_restart_under_load_loses_no_acknowledged_write() {
    if on_postgres() {
        return; // runs once, in the default pass
    }
    let Some(db) = PrivatePostgres::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(DATABASE_MARKER), db.url()).unwrap();
    let text = format!(
        "{}\n[storage]\nbackend = \"postgres\"\nurl = \"{}\"\npool_size = 8\nacquire_timeout_ms = 1000\n",
        crate::helpers::config_text(&hello_plugin("hello")),
        db.url()
    );
    let app = spawn_app_with_config(&text, dir, None).await;
    app.register("through-the-crash").await;
    let token = app.login("through-the-crash").await;

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let writers: Vec<_> = (0..8)
        .map(|_| {
            tokio::spawn(writer(
                app.client.clone(),
                app.url("/plugins/hello/counter"),
                stop.clone(),
                tally.clone(),
            ))
        })
        .collect();
    // Load first, then the crash in the middle of it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before_crash = tally.acknowledged.load(Ordering::Relaxed);
    assert!(before_crash > 20, "the writers are writing ({before_crash})");
    db.crash();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        app.get("/readyz").await.status(),
        503,
        "not ready while the database is down"
    );
    let unsure_while_down = tally.unsure.load(Ordering::Relaxed);
    assert!(unsure_while_down > 0, "writes failed while the database was down");
    db.pg_ctl_start();
    wait_ready(&app, Duration::from_secs(20)).await;
    // Keep writing a while on the restarted database, then stop.
    let acknowledged_at_restart = tally.acknowledged.load(Ordering::Relaxed);
    let since = Instant::now();
    while tally.acknowledged.load(Ordering::Relaxed) < acknowledged_at_restart + 20 {
        assert!(
            since.elapsed() < Duration::from_secs(20),
            "writes succeed again after the restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }

    let acknowledged = tally.acknowledged.load(Ordering::Relaxed);
    let unsure = tally.unsure.load(Ordering::Relaxed);
    let counter = json(app.get("/plugins/hello/counter").await).await["counter"]
        .as_u64()
        .unwrap();
    assert!(
        counter >= acknowledged,
        "an acknowledged increment was lost: counter {counter} < {acknowledged} acknowledged"
    );
    assert!(
        counter <= acknowledged + unsure,
        "more increments than were sent: {counter} > {acknowledged} + {unsure}"
    );
    // The session made before the crash is still there (it was committed).
    assert_eq!(app.get_as(&token, "/auth/me").await.status(), 200);
    eprintln!(
        "database crash: {acknowledged} increments acknowledged, {unsure} failed or unanswered, counter {counter}"
    );
    app.stop().await;
    drop(db);
}
