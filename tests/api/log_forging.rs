//! Log injection: text from clients (a username) and from plugins (a log call, stdout)
//! cannot start a line of its own in the server log, in the text format (escaped) or
//! the JSON format. The real binary, its stderr captured.

use crate::helpers::{config_text, hostile_plugin, serve_logging_to, wait_listening};

/// What an attacker would like to see as a line of its own in the log.
const FORGED: &str = "2026-01-01T00:00:00Z  INFO forged: admin logged in";

/// Runs `plinth serve` with the hostile plugin and `PLINTH_LOG_FORMAT=format`, sends
/// a login with a forged username and asks the plugin to log forged lines; returns
/// the server's stderr.
async fn log_of_an_attack(format: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("plinth.toml");
    std::fs::write(&config, config_text(&hostile_plugin("hostile", ""))).unwrap();
    let log_path = dir.path().join("server.log");
    let mut child = serve_logging_to(&config, &dir.path().join("data"), &log_path, format).await;
    let base = wait_listening(&mut child).await;
    let client = reqwest::Client::new();

    let resp = client
        .post(format!("{base}/auth/login"))
        .json(&serde_json::json!({ "username": format!("\n{FORGED}"), "password": "whatever it is" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = client
        .get(format!("{base}/plugins/hostile/log-forge"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);

    // Each event is written before the answer it belongs to is sent.
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    std::fs::read_to_string(&log_path).unwrap()
}

/// No line of `log` begins with the forged text (the username is lowercased on its way
/// into the log, so compare without case).
fn assert_no_forged_line(log: &str) {
    let forged = FORGED.to_ascii_lowercase();
    for line in log.lines() {
        assert!(
            !line.trim_start().to_ascii_lowercase().starts_with(&forged),
            "a forged log line:\n{line}\nin:\n{log}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_and_plugin_text_cannot_forge_log_lines() {
    let text = log_of_an_attack("text").await;
    assert_no_forged_line(&text);
    // The text is there, escaped on its line.
    let lowered = FORGED.to_ascii_lowercase();
    for escaped in [
        format!(r"username=\n{lowered}"),
        format!(r"hostile log\n{FORGED}"),
        r"hostile stdout\r2026-01-01T00:00:00Z  INFO forged: \u{1b}[2Kcarriage return".to_string(),
    ] {
        assert!(text.contains(&escaped), "{escaped} is not in:\n{text}");
    }
    assert!(
        !text.contains(['\r', '\u{1b}']),
        "raw control characters in:\n{text}"
    );

    // JSON lines are one event each, the text inside their strings.
    let json = log_of_an_attack("json").await;
    assert_no_forged_line(&json);
    let events: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON event ({e}): {l}")))
        .collect();
    let messages: Vec<&str> = events
        .iter()
        .filter_map(|e| e["fields"]["message"].as_str())
        .collect();
    assert!(
        messages.contains(&format!("hostile log\n{FORGED}").as_str()),
        "{messages:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["fields"]["username"] == format!("\n{lowered}")),
        "{json}"
    );
}
