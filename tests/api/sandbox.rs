//! The sandbox's own limits: internal addresses behind DNS names, the memory cap over all
//! of a component's memories, and one flooded plugin against everyone else.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use plinth::config::{Config, Overrides};
use plinth::Application;

use crate::helpers::{
    config_text, error_code, hello_plugin, hostile_plugin, spawn_app, spawn_app_with_config, TestApp,
};
use crate::plugins::{counting_upstream, Upstream};

/// What the hostile plugin's `/fetch` reports for `url`.
async fn fetch(app: &TestApp, plugin: &str, url: &str) -> String {
    let resp = app.get(&format!("/plugins/{plugin}/fetch?url={url}")).await;
    resp.text().await.unwrap()
}

/// `localhost` resolves to 127.0.0.1 here: it stands for a vendor's name whose DNS
/// answer someone pointed at an internal address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listed_name_resolving_to_an_internal_address_is_refused_unless_internal_hosts_names_it() {
    let (port, connections) = counting_upstream(Upstream::Small).await;
    let by_name = hostile_plugin("by-name", &format!(r#"allowed_hosts = ["localhost:{port}"]"#));
    let app = spawn_app(&by_name).await;
    let text = fetch(&app, "by-name", &format!("http://localhost:{port}/")).await;
    assert!(
        text.starts_with("err ") && text.contains("Denied") && text.contains("internal_hosts"),
        "{text}"
    );
    assert_eq!(connections.load(Ordering::SeqCst), 0, "nothing was dialled");
    app.stop().await;

    // The two ways in: the name on `internal_hosts`, or the address itself.
    let plugins = [
        hostile_plugin("opted-in", &format!(r#"internal_hosts = ["localhost:{port}"]"#)),
        hostile_plugin("by-ip", &format!(r#"allowed_hosts = ["127.0.0.1:{port}"]"#)),
    ]
    .concat();
    let app = spawn_app(&plugins).await;
    let text = fetch(&app, "opted-in", &format!("http://localhost:{port}/")).await;
    assert_eq!(text, "ok 200 upstream says hi");
    let text = fetch(&app, "by-ip", &format!("http://127.0.0.1:{port}/")).await;
    assert_eq!(text, "ok 200 upstream says hi");
    assert_eq!(connections.load(Ordering::SeqCst), 2);
    app.stop().await;
}

/// tests/plugins/multi_memory.wat as a component binary, with `extra` core instances of
/// its one-memory module (each one more memory).
fn multi_memory_component(dir: &Path, extra: usize) -> String {
    let wat_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/plugins/multi_memory.wat");
    let text = std::fs::read_to_string(&wat_path).unwrap();
    let marker = ";; more growers here";
    assert_eq!(text.matches(marker).count(), 1);
    let growers: String = (0..extra)
        .map(|i| format!("(core instance $extra{i} (instantiate $grower))\n"))
        .collect();
    let wasm = wat::parse_str(text.replace(marker, &growers)).expect("multi_memory.wat parses");
    let path = dir.join(format!("multi_memory_{extra}.wasm"));
    std::fs::write(&path, wasm).unwrap();
    path.display().to_string()
}

fn multi_memory_plugin(source: &str) -> String {
    format!(
        r#"
[[plugin]]
name = "multi"
world = "http-plugin"
source = "{source}"
limits = {{ memory_mib = 4 }}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_cap_holds_for_all_of_a_components_memories_together() {
    let dir = tempfile::tempdir().unwrap();
    // Four memories (the most the pool takes), each grown to 64 KiB short of the 4 MiB
    // cap: 16.5 MB in all.
    let app = spawn_app(&multi_memory_plugin(&multi_memory_component(dir.path(), 0))).await;
    let resp = app.get("/plugins/multi/").await;
    let body = error_code(resp, 503).await;
    assert_eq!(body["error"]["code"], "plugin_memory_limit");
    assert_eq!(body["error"]["plugin"], "multi");
    app.stop().await;

    // A fifth memory does not fit the pool: refused at start-up, naming the plugin.
    let five = multi_memory_plugin(&multi_memory_component(dir.path(), 1));
    let data = tempfile::tempdir().unwrap();
    let overrides = Overrides {
        listen: None,
        data_dir: Some(data.path().to_path_buf()),
    };
    let config = Config::parse(&config_text(&five), Path::new("."), &overrides, |_| None).unwrap();
    let err = match Application::build(&config).await {
        Ok(_) => panic!("a component with five memories was loaded"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("\"multi\"") && err.contains("5 Wasm linear memories") && err.contains("maximum of 4"),
        "{err}"
    );
    // `plinth plugin check` says the same before anyone deploys it.
    let out = plugin_check(&multi_memory_component(dir.path(), 1)).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("5 Wasm linear memories"),
        "{stderr}"
    );
    let out = plugin_check(&multi_memory_component(dir.path(), 0)).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `plinth plugin check FILE --world http-plugin` (the real binary).
async fn plugin_check(file: &str) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_plinth"))
        .args(["plugin", "check", file, "--world", "http-plugin"])
        .output()
        .await
        .unwrap()
}

/// With 8 instances in the pool, a plugin without its own `max_concurrent` holds at
/// most 2 (25 %): a flood of its spinning calls leaves the pool and a thread to others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooded_plugin_leaves_instances_and_cpu_to_the_others() {
    let plugins = format!(
        "{}limits = {{ timeout_ms = 1000 }}\n{}",
        hello_plugin("hello"),
        hostile_plugin("spinner", "limits = { timeout_ms = 4000 }")
    );
    let text = config_text(&plugins);
    assert!(text.contains("max_instances = 64"));
    let text = text.replace("max_instances = 64", "max_instances = 8");
    let app = spawn_app_with_config(&text, tempfile::tempdir().unwrap(), None).await;

    let flood: Vec<_> = (0..40)
        .map(|_| {
            let (client, url) = (app.client.clone(), app.url("/plugins/spinner/loop"));
            tokio::spawn(async move {
                let resp = client.get(url).send().await.unwrap();
                let status = resp.status().as_u16();
                let body: serde_json::Value = resp.json().await.unwrap();
                (status, body["error"]["code"].as_str().unwrap_or("").to_string())
            })
        })
        .collect();
    // Let the flood take what it can.
    tokio::time::sleep(Duration::from_millis(300)).await;
    // hello may wait for an instance for at most its own timeout (1 s) — while the
    // spinners hold theirs for 4 s.
    for i in 0..20 {
        let resp = app.get("/plugins/hello/").await;
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert_eq!(status, 200, "hello call {i} during the flood: {text}");
    }
    let mut busy = 0;
    let mut timed_out = 0;
    for call in flood {
        match call.await.unwrap() {
            (503, code) if code == "plugin_busy" => busy += 1,
            (504, code) if code == "plugin_timeout" => timed_out += 1,
            other => panic!("a flood call answered {other:?}"),
        }
    }
    // Two ran until their deadline (a freed slot may go to one more waiter before it
    // gives up); the rest were turned away as busy.
    assert!(busy >= 30 && timed_out >= 1, "{busy} busy, {timed_out} timed out");
    app.stop().await;
}

/// A guest that became busy and then sleeps in a host call (WASI's clock) holds no busy
/// lane while it sleeps: another plugin's CPU-bound call runs instead of waiting for
/// the sleep to end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sleeping_guest_leaves_the_busy_lane_to_others() {
    let plugins = format!(
        "{}{}",
        hostile_plugin("sleeper", "limits = { timeout_ms = 8000 }"),
        hostile_plugin("worker", "limits = { timeout_ms = 8000 }")
    );
    // One lane: whatever the sleeper holds, nobody else has.
    let text = config_text(&plugins).replace("max_instances = 64", "max_instances = 64\nbusy_lanes = 1");
    let app = spawn_app_with_config(&text, tempfile::tempdir().unwrap(), None).await;

    let sleeper = {
        let (client, url) = (
            app.client.clone(),
            app.url("/plugins/sleeper/spin-then-sleep?mega=100&ms=4000"),
        );
        tokio::spawn(async move { client.get(url).send().await.unwrap().status().as_u16() })
    };
    // Its spinning (a few ticks: a busy guest, on the lane) is over; it sleeps now.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let started = std::time::Instant::now();
    let resp = app.get("/plugins/worker/spin?mega=100").await;
    let took = started.elapsed();
    assert_eq!(resp.status(), 200);
    assert!(
        took < Duration::from_millis(2500),
        "a CPU-bound call waited {took:?} for the sleeping guest's lane"
    );
    assert_eq!(sleeper.await.unwrap(), 200);
    app.stop().await;
}
