//! The shared database goes away while the server runs (a network cut in front of the
//! real PostgreSQL, every open connection dropped): routes that need it answer 503 with
//! the JSON error, `/readyz` says so, and once it is back the same process serves fully
//! again, without having lost anything it acknowledged.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::{
    error_code, hello_plugin, json, on_postgres, spawn_app_with_config, DATABASE_MARKER, PASSWORD,
};

/// A TCP forwarder that can cut every connection and refuse new ones until restored.
struct Cut {
    port: u16,
    /// `Some(generation)` while passing; connections of an older generation are dropped.
    state: Arc<Mutex<Option<u64>>>,
    cuts: tokio::sync::watch::Sender<u64>,
}

impl Cut {
    async fn start(upstream: std::net::SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(Some(0u64)));
        let (cuts, _) = tokio::sync::watch::channel(0u64);
        let (shared, watch) = (state.clone(), cuts.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let Some(generation) = *shared.lock().unwrap() else {
                    drop(client);
                    continue;
                };
                let mut cut = watch.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.wait_for(|g| *g > generation) => {}
                    }
                });
            }
        });
        Self { port, state, cuts }
    }

    /// Drops every open connection and refuses new ones.
    fn cut(&self) {
        let mut state = self.state.lock().unwrap();
        let next = state.map_or(0, |g| g + 1);
        *state = None;
        self.cuts.send_replace(next);
    }

    fn restore(&self) {
        *self.state.lock().unwrap() = Some(*self.cuts.borrow());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_database_gives_503s_and_service_comes_back_by_itself_with_nothing_lost() {
    if on_postgres() {
        return; // runs once, in the default pass
    }
    let Some(url) = plinth::store::postgres::testing::fresh_schema_url().await else {
        return;
    };
    let mut via = url::Url::parse(&url).unwrap();
    let upstream = format!("{}:{}", via.host_str().unwrap(), via.port().unwrap_or(5432));
    let upstream = tokio::net::lookup_host(upstream).await.unwrap().next().unwrap();
    let cut = Cut::start(upstream).await;
    via.set_host(Some("127.0.0.1")).unwrap();
    via.set_port(Some(cut.port)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(DATABASE_MARKER), via.as_str()).unwrap();
    let text = format!(
        "{}\n[storage]\nbackend = \"postgres\"\nurl = \"{via}\"\npool_size = 4\nacquire_timeout_ms = 1000\n",
        crate::helpers::config_text(&hello_plugin("hello"))
    );
    let app = spawn_app_with_config(&text, dir, None).await;
    app.register("steady").await;
    let token = app.login("steady").await;
    let mut acknowledged = 0;
    for _ in 0..5 {
        assert_eq!(app.bump_counter("hello").await, 200);
        acknowledged += 1;
    }
    assert_eq!(app.get("/readyz").await.status(), 200);

    cut.cut();
    let resp = app.get_as(&token, "/auth/me").await;
    let body = error_code(resp, 503).await;
    assert!(
        body["error"]["code"].as_str().unwrap().starts_with("storage"),
        "{body}"
    );
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 503);
    assert_eq!(json(ready).await["storage"], "unavailable");
    let health = app.get("/healthz").await;
    assert_eq!(health.status(), 200, "alive, only not ready");
    assert_eq!(json(health).await["storage"], "unavailable");
    assert_eq!(
        app.bump_counter("hello").await,
        503,
        "a write that cannot be made is not acknowledged"
    );
    let resp = app
        .client
        .post(app.url("/auth/login"))
        .json(&serde_json::json!({ "username": "steady", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    error_code(resp, 503).await;

    cut.restore();
    let back = std::time::Instant::now();
    while app.get("/readyz").await.status() != 200 {
        assert!(
            back.elapsed() < Duration::from_secs(15),
            "not ready again 15 s after the database came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        app.get_as(&token, "/auth/me").await.status(),
        200,
        "the session survived"
    );
    let counter = json(app.get("/plugins/hello/counter").await).await;
    assert_eq!(
        counter["counter"], acknowledged,
        "nothing acknowledged was lost: {counter}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_at_start_is_named_without_its_password() {
    let dir = tempfile::tempdir().unwrap();
    // Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    let config = dir.path().join("plinth.toml");
    std::fs::write(
        &config,
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"./data\"\n\n[storage]\nbackend = \"postgres\"\nurl = \"postgres://plinth:hunter2@127.0.0.1:9/shop\"\nacquire_timeout_ms = 2000\n",
    )
    .unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_plinth"))
            .args(["serve", "--config"])
            .arg(&config)
            .env_remove("PLINTH_DATABASE_URL")
            .output(),
    )
    .await
    .expect("plinth gives up on its own")
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("postgres://plinth:***@127.0.0.1:9/shop"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
}
