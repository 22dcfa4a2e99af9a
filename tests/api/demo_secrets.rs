//! `plinth serve` refuses the secrets published with the demo configuration unless told
//! this is a demo (`--demo` or `PLINTH_DEMO=1`).

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncBufReadExt;

use crate::helpers::{config_text, plugin_path};

/// A config whose Stripe plugin falls back to the demo webhook secret, as
/// examples/plinth.toml does.
fn demo_config(dir: &std::path::Path) -> std::path::PathBuf {
    let plugin = format!(
        r#"
[[plugin]]
name = "stripe"
world = "payment-plugin"
source = "{source}"
config = {{ secret_key = "sk_test_not_the_demo", webhook_secret = "${{PLINTH_TEST_UNSET_WEBHOOK_SECRET:-whsec_plinth_demo}}" }}
"#,
        source = plugin_path("payments_stripe")
    );
    let path = dir.join("plinth.toml");
    std::fs::write(&path, config_text(&plugin)).unwrap();
    path
}

fn serve(
    config: &std::path::Path,
    data: &std::path::Path,
    args: &[&str],
    demo_env: bool,
) -> tokio::process::Child {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_plinth"));
    cmd.args(["serve", "--config"])
        .arg(config)
        .args(args)
        .env("PLINTH_LISTEN", "127.0.0.1:0")
        .env("PLINTH_DATA_DIR", data)
        .env("RUST_LOG", "error")
        .env_remove("PLINTH_DEMO")
        .env_remove("PLINTH_TEST_UNSET_WEBHOOK_SECRET")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if demo_env {
        cmd.env("PLINTH_DEMO", "1");
    }
    cmd.spawn().unwrap()
}

/// The first stdout line (the listening line), or `None` when the process exits first.
async fn listening(child: &mut tokio::process::Child) -> Option<String> {
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("plinth starts or exits")
        .unwrap()
}

#[tokio::test]
async fn serve_refuses_published_demo_secrets_unless_in_demo_mode() {
    let dir = tempfile::tempdir().unwrap();
    let config = demo_config(dir.path());
    let data = dir.path().join("data");

    let refused = tokio::time::timeout(
        Duration::from_secs(30),
        serve(&config, &data, &[], false).wait_with_output(),
    )
    .await
    .expect("plinth keeps running with a published demo secret")
    .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "started with a demo secret: {stderr}");
    assert!(
        stderr.contains("plugin \"stripe\"") && stderr.contains("config.webhook_secret"),
        "{stderr}"
    );
    assert!(stderr.contains("--demo"), "says how to run a demo: {stderr}");

    for (args, env) in [(&["--demo"][..], false), (&[][..], true)] {
        let mut child = serve(&config, &data, args, env);
        let line = listening(&mut child).await;
        assert!(
            line.as_deref()
                .is_some_and(|l| l.starts_with("plinth listening on ")),
            "{args:?} PLINTH_DEMO={env}: {line:?}"
        );
        child.kill().await.unwrap();
    }
}
