//! `kill -9` the real binary: every acknowledged kv write survives, and a kill at any
//! moment of start-up never leaves a data directory that cannot be opened.

use std::path::Path;
use std::time::Duration;

use tokio::process::Child;

use crate::helpers::{plugin_path, spawn_binary, wait_listening};

fn write_config(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("plinth.toml");
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"./data\"\n\n[[plugin]]\nname = \"hello\"\nworld = \"http-plugin\"\nsource = \"{}\"\n",
        plugin_path("hello")
    );
    std::fs::write(&path, text).unwrap();
    path
}

async fn spawn(config: &Path) -> Child {
    spawn_binary(config, None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_kv_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let client = reqwest::Client::new();
    let mut highest_acknowledged = 0i64;
    for round in 0..3 {
        let mut child = spawn(&config).await;
        let base = wait_listening(&mut child).await;
        let url = format!("{base}/plugins/hello/counter");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<i64>();
        let writers: Vec<_> = (0..8)
            .map(|_| {
                let (client, url, tx) = (client.clone(), url.clone(), tx.clone());
                tokio::spawn(async move {
                    while let Ok(resp) = client.post(&url).send().await {
                        if !resp.status().is_success() {
                            break;
                        }
                        let Ok(body) = resp.json::<serde_json::Value>().await else {
                            break;
                        };
                        let _ = tx.send(body["counter"].as_i64().unwrap());
                    }
                })
            })
            .collect();
        drop(tx);
        tokio::time::sleep(Duration::from_millis(300 + round * 200)).await;
        child.start_kill().unwrap();
        child.wait().await.unwrap();
        for w in writers {
            let _ = w.await;
        }
        while let Ok(v) = rx.try_recv() {
            highest_acknowledged = highest_acknowledged.max(v);
        }
        assert!(
            highest_acknowledged > 0,
            "the load acknowledged writes in round {round}"
        );

        let mut child = spawn(&config).await;
        let base = wait_listening(&mut child).await;
        let now: serde_json::Value = client
            .get(format!("{base}/plugins/hello/counter"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let stored = now["counter"].as_i64().unwrap();
        assert!(
            stored >= highest_acknowledged,
            "round {round}: acknowledged {highest_acknowledged} but only {stored} survived"
        );
        child.start_kill().unwrap();
        child.wait().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_during_start_up_never_breaks_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    for i in 0..12u64 {
        let mut child = spawn(&config).await;
        tokio::time::sleep(Duration::from_millis(3 + i * 7)).await;
        child.start_kill().unwrap();
        child.wait().await.unwrap();
    }
    let mut child = spawn(&config).await;
    let base = wait_listening(&mut child).await;
    let health = reqwest::get(format!("{base}/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
    child.start_kill().unwrap();
    child.wait().await.unwrap();
}
