//! The `plinth` binary: bad configs fail with one clear line, `plugin check`, and the
//! compiled-component cache across restarts.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;

use crate::helpers::plugin_path;

const PLINTH: &str = env!("CARGO_BIN_EXE_plinth");

/// Runs `plinth serve` on `config` and expects it to fail; returns stderr.
async fn serve_fails(config: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plinth.toml");
    std::fs::write(&path, config).unwrap();
    std::fs::write(dir.path().join("junk.wasm"), "this is not wasm").unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        Command::new(PLINTH)
            .args(["serve", "--config"])
            .arg(&path)
            .env("PLINTH_LISTEN", "127.0.0.1:0")
            .env("PLINTH_DATA_DIR", dir.path().join("data"))
            .env("RUST_LOG", "error")
            .output(),
    )
    .await
    .expect("plinth exits on a bad config")
    .unwrap();
    assert!(!out.status.success(), "plinth accepted a bad config");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn config(world: &str, source: &str, extra: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
data_dir = "./data"

[[plugin]]
name = "hello"
world = "{world}"
source = "{source}"
{extra}
"#
    )
}

#[tokio::test]
async fn bad_configs_fail_with_a_message_naming_plugin_and_field() {
    let hello = plugin_path("hello");
    let cases = [
        (
            config("http-plugin", "missing.wasm", ""),
            vec!["plugin \"hello\"", "`source`", "missing.wasm"],
        ),
        (
            config("http-plugin", "junk.wasm", ""),
            vec![
                "plugin \"hello\"",
                "`source`",
                "not a valid WebAssembly component",
            ],
        ),
        (
            config("rules-plugin", &hello, ""),
            vec!["plugin \"hello\"", "`world`", "does not fit world rules-plugin"],
        ),
        (
            config("http-plugin", &hello, "limits = { memory_mb = 3 }"),
            vec!["unknown field", "memory_mb"],
        ),
        (
            config(
                "http-plugin",
                &hello,
                "config = { key = \"${PLINTH_TEST_UNSET_VAR}\" }",
            ),
            vec!["plugin \"hello\"", "config.key", "PLINTH_TEST_UNSET_VAR"],
        ),
        (
            config(
                "http-plugin",
                &hello,
                "allowed_hosts = [\"https://api.example.com\"]",
            ),
            vec!["without a scheme"],
        ),
        (config("weather", &hello, ""), vec!["unknown world"]),
    ];
    for (text, expected) in cases {
        let stderr = serve_fails(&text).await;
        let first = stderr
            .lines()
            .find(|l| l.starts_with("error: "))
            .unwrap_or_else(|| panic!("no error line in {stderr}"));
        for needle in expected {
            assert!(
                stderr.contains(needle),
                "{needle:?} missing from: {first}\n{stderr}"
            );
        }
    }
    let missing = tokio::process::Command::new(PLINTH)
        .args(["serve", "--config", "/nonexistent/plinth.toml"])
        .output()
        .await
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read config file"));
}

#[tokio::test]
async fn plugin_check_lists_imports_and_exports_and_judges_the_world() {
    let out = Command::new(PLINTH)
        .args(["plugin", "check", &plugin_path("hello"), "--world", "http-plugin"])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "imports:",
        "plinth:plugin/kv@0.1.0",
        "exports:",
        "plinth:plugin/http-handler@0.1.0",
        "ok: fits world http-plugin",
    ] {
        assert!(stdout.contains(needle), "{needle:?} missing:\n{stdout}");
    }

    let out = Command::new(PLINTH)
        .args([
            "plugin",
            "check",
            &plugin_path("hello"),
            "--world",
            "weather-plugin",
        ])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not fit world weather-plugin"));
}

/// Starts `plinth serve`, waits until it listens, kills it; returns its stderr.
async fn start_and_kill(config: &Path, data_dir: &Path) -> String {
    let mut child = Command::new(PLINTH)
        .args(["serve", "--config"])
        .arg(config)
        .env("PLINTH_LISTEN", "127.0.0.1:0")
        .env("PLINTH_DATA_DIR", data_dir)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("plinth starts listening")
        .unwrap()
        .unwrap_or_default();
    assert!(
        line.starts_with("plinth listening on http://127.0.0.1:"),
        "{line}"
    );
    child.kill().await.unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await
        .unwrap();
    stderr
}

#[tokio::test]
async fn a_restart_with_unchanged_plugins_does_not_recompile() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plinth.toml");
    std::fs::write(&path, config("http-plugin", &plugin_path("hello"), "")).unwrap();
    let data = dir.path().join("data");
    let first = start_and_kill(&path, &data).await;
    assert!(first.contains("plugin compiled and cached"), "{first}");
    let second = start_and_kill(&path, &data).await;
    assert!(
        second.contains("plugin loaded from the compiled cache (not recompiled)"),
        "{second}"
    );
    assert!(!second.contains("plugin compiled and cached"), "{second}");
}
