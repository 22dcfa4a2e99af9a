//! `spawn_app`: the real server on port 0 with a temp data dir and real plugins.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use plinth::config::{Config, Overrides};
use plinth::Application;
use tokio::sync::oneshot;

/// Where `cargo xtask plugins` puts the compiled plugins.
pub fn plugins_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/plugins");
    assert!(
        ["hello", "hostile", "weather_open_meteo"]
            .iter()
            .all(|p| dir.join(format!("{p}.wasm")).is_file()),
        "plugins are missing in {}: run `cargo xtask plugins` (or `cargo xtask test`)",
        dir.display()
    );
    dir
}

pub fn plugin_path(name: &str) -> String {
    plugins_dir().join(format!("{name}.wasm")).display().to_string()
}

/// Compiled components are cached across tests so each plugin compiles once a run.
pub fn shared_cache_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-cache/compiled")
}

/// Which backend the black-box tests run on: sled, or PostgreSQL when
/// `PLINTH_TEST_BACKEND=postgres` (`cargo xtask test` runs this suite once on each).
pub fn on_postgres() -> bool {
    std::env::var("PLINTH_TEST_BACKEND").is_ok_and(|b| b == "postgres")
}

/// The file in a test's data directory naming the database schema its servers share
/// (a directory holding one is on PostgreSQL whatever the test backend).
pub const DATABASE_MARKER: &str = ".test-database-url";

/// The `[storage]` section of a server whose data lives in `data_dir`: nothing on sled;
/// on PostgreSQL a schema of its own, the same for every server and CLI command on that
/// directory (remembered in a file there), so a restart finds its data.
pub async fn storage_section(data_dir: &Path) -> String {
    if !on_postgres() && !data_dir.join(DATABASE_MARKER).exists() {
        return String::new();
    }
    postgres_section(data_dir)
        .await
        .expect("PLINTH_TEST_BACKEND=postgres needs a reachable PostgreSQL")
}

/// The PostgreSQL `[storage]` section for `data_dir` whatever the test backend (for
/// tests about sharing the database); `None` when no PostgreSQL answers and none is
/// required (the test then skips, loudly).
pub async fn postgres_section(data_dir: &Path) -> Option<String> {
    let marker = data_dir.join(DATABASE_MARKER);
    let url = match std::fs::read_to_string(&marker) {
        Ok(url) => url,
        Err(_) => {
            let url = plinth::store::postgres::testing::fresh_schema_url().await?;
            std::fs::create_dir_all(data_dir).unwrap();
            std::fs::write(&marker, &url).unwrap();
            url
        }
    };
    Some(format!(
        "\n[storage]\nbackend = \"postgres\"\nurl = \"{url}\"\npool_size = 8\n"
    ))
}

/// Makes the schema `data_dir` names (see [`postgres_section`]) run every transaction
/// serializable, as CockroachDB does.
pub fn make_serializable(data_dir: &Path) {
    let marker = data_dir.join(DATABASE_MARKER);
    let url = std::fs::read_to_string(&marker).unwrap();
    std::fs::write(&marker, plinth::store::postgres::testing::serializable(&url)).unwrap();
}

/// Adds [`storage_section`] to a config file that has no `[storage]` of its own.
pub async fn use_test_storage(config: &Path, data_dir: &Path) {
    let text = std::fs::read_to_string(config).unwrap();
    if !text.contains("[storage]") {
        let section = storage_section(data_dir).await;
        std::fs::write(config, format!("{text}{section}")).unwrap();
    }
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub data_dir: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request failed")
    }

    pub async fn post(&self, path: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .body(body)
            .send()
            .await
            .expect("request failed")
    }

    /// Stops the server gracefully and waits for it (storage flushed); returns the data
    /// directory so a test can start the server again on it.
    pub async fn stop(self) -> tempfile::TempDir {
        let TestApp {
            data_dir,
            shutdown,
            server,
            ..
        } = self;
        if let Some(tx) = shutdown {
            let _ = tx.send(());
        }
        if let Some(handle) = server {
            handle
                .await
                .expect("server task")
                .expect("server stopped cleanly");
        }
        data_dir
    }
}

/// The `[server]` part every test config starts with; `plugins` is appended.
pub fn config_text(plugins: &str) -> String {
    config_text_with_server("", plugins)
}

/// [`config_text`] with extra `[server]` settings (TOML lines).
pub fn config_text_with_server(server: &str, plugins: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
data_dir = "./unused"
max_body_bytes = 65536
{server}

[runtime]
cache_dir = "{cache}"
max_instances = 64

{plugins}
"#,
        cache = shared_cache_dir().display()
    )
}

/// A short-password-free, valid password for test accounts.
pub const PASSWORD: &str = "correct horse battery staple";

impl TestApp {
    /// Registers `username` with [`PASSWORD`].
    pub async fn register(&self, username: &str) -> serde_json::Value {
        let resp = self
            .client
            .post(self.url("/auth/register"))
            .json(&serde_json::json!({ "username": username, "password": PASSWORD }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "register {username}");
        json(resp).await
    }

    /// Logs in and returns the raw response.
    pub async fn login_with(&self, username: &str, password: &str) -> reqwest::Response {
        self.client
            .post(self.url("/auth/login"))
            .json(&serde_json::json!({ "username": username, "password": password }))
            .send()
            .await
            .unwrap()
    }

    /// Logs in with [`PASSWORD`] and returns the session token.
    pub async fn login(&self, username: &str) -> String {
        let resp = self.login_with(username, PASSWORD).await;
        assert_eq!(resp.status(), 200, "login {username}");
        json(resp).await["token"].as_str().unwrap().to_string()
    }

    /// Creates a product as the admin `token` (201 asserted).
    pub async fn create_product(&self, token: &str, sku: &str, name: &str, stock: u64) {
        let resp = self
            .client
            .post(self.url("/products"))
            .bearer_auth(token)
            .json(&serde_json::json!({
                "sku": sku, "name": name, "description": format!("{name}, described"), "category": "kitchen",
                "price": { "amount": 1200, "currency": "EUR" }, "stock": stock
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    }

    /// `POST /plugins/{plugin}/counter` (the hello plugin's kv counter); its status.
    pub async fn bump_counter(&self, plugin: &str) -> u16 {
        self.client
            .post(self.url(&format!("/plugins/{plugin}/counter")))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// GET with a bearer token.
    pub async fn get_as(&self, token: &str, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }
}

/// The hello plugin mounted under `name`.
pub fn hello_plugin(name: &str) -> String {
    format!(
        r#"
[[plugin]]
name = "{name}"
world = "http-plugin"
source = "{source}"
config = {{ greeting = "hello from {name}" }}
"#,
        source = plugin_path("hello")
    )
}

/// The hostile plugin mounted under `name` with extra settings (TOML lines).
pub fn hostile_plugin(name: &str, extra: &str) -> String {
    format!(
        r#"
[[plugin]]
name = "{name}"
world = "http-plugin"
source = "{source}"
{extra}
"#,
        source = plugin_path("hostile")
    )
}

/// Starts the server with the given plugin sections in a fresh data directory.
pub async fn spawn_app(plugins: &str) -> TestApp {
    let data_dir = tempfile::tempdir().expect("temp dir");
    spawn_app_in(plugins, data_dir).await
}

pub async fn spawn_app_in(plugins: &str, data_dir: tempfile::TempDir) -> TestApp {
    spawn_app_at(plugins, data_dir, None).await
}

/// [`spawn_app_in`] on a given address (for tests that must know the port up front).
pub async fn spawn_app_at(plugins: &str, data_dir: tempfile::TempDir, listen: Option<SocketAddr>) -> TestApp {
    spawn_app_with_config(&config_text(plugins), data_dir, listen).await
}

/// [`spawn_app`] with extra `[server]` settings (TOML lines).
pub async fn spawn_app_with_server(server: &str, plugins: &str) -> TestApp {
    let text = config_text_with_server(server, plugins);
    spawn_app_with_config(&text, tempfile::tempdir().expect("temp dir"), None).await
}

/// [`spawn_app_at`] with a whole config file (start from [`config_text`], e.g. to change
/// `[runtime]` settings).
pub async fn spawn_app_with_config(
    text: &str,
    data_dir: tempfile::TempDir,
    listen: Option<SocketAddr>,
) -> TestApp {
    let overrides = Overrides {
        listen,
        data_dir: Some(data_dir.path().to_path_buf()),
    };
    let text = match text.contains("[storage]") {
        true => text.to_string(),
        false => format!("{text}{}", storage_section(data_dir.path()).await),
    };
    let config = Config::parse(&text, Path::new("."), &overrides, |k| std::env::var(k).ok())
        .expect("test config is valid");
    let app = Application::build(&config).await.expect("server builds");
    let addr = app.local_addr();
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = rx.await;
    }));
    TestApp {
        addr,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client"),
        data_dir,
        shutdown: Some(tx),
        server: Some(server),
    }
}

/// Reads a JSON body, failing the test with the raw text if it is not JSON.
pub async fn json(resp: reqwest::Response) -> serde_json::Value {
    let text = resp.text().await.expect("body");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Asserts the standard error envelope and returns its code.
pub async fn error_code(resp: reqwest::Response, status: u16) -> serde_json::Value {
    assert_eq!(resp.status().as_u16(), status, "unexpected status");
    let request_id = resp
        .headers()
        .get("x-request-id")
        .expect("x-request-id header")
        .to_str()
        .unwrap()
        .to_string();
    let body = json(resp).await;
    let err = &body["error"];
    assert!(err["code"].is_string(), "no error.code in {body}");
    assert!(err["message"].is_string(), "no error.message in {body}");
    assert_eq!(
        err["request_id"],
        request_id.as_str(),
        "request id in body and header differ"
    );
    body
}

/// `plinth user create [--admin] NAME` (the real binary) with the password on stdin.
pub async fn cli_create_user(
    data_dir: &Path,
    name: &str,
    admin: bool,
    password: &str,
) -> std::process::Output {
    use tokio::io::AsyncWriteExt;
    let config = data_dir.join("cli.toml");
    std::fs::write(
        &config,
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"./data\"\n",
    )
    .unwrap();
    use_test_storage(&config, data_dir).await;
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_plinth"));
    cmd.args(["user", "create", name, "--config"]).arg(&config);
    if admin {
        cmd.arg("--admin");
    }
    let mut child = cmd
        .env("PLINTH_DATA_DIR", data_dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(format!("{password}\n").as_bytes()).await.unwrap();
    drop(stdin);
    child.wait_with_output().await.unwrap()
}

/// A server whose data directory already holds an admin `root` (made with the CLI);
/// returns it with the admin's session token.
pub async fn spawn_app_with_admin(plugins: &str) -> (TestApp, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = cli_create_user(dir.path(), "root", true, PASSWORD).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let app = spawn_app_in(plugins, dir).await;
    let token = app.login("root").await;
    (app, token)
}

/// Runs the real `plinth serve` binary on port 0 (stdout piped for the listening line),
/// in `data_dir` when given; killed when dropped.
pub async fn spawn_binary(config: &Path, data_dir: Option<&Path>) -> tokio::process::Child {
    spawn_binary_at(config, data_dir, None).await
}

/// [`spawn_binary`] on a given address (for tests that must know the port up front).
pub async fn spawn_binary_at(
    config: &Path,
    data_dir: Option<&Path>,
    listen: Option<SocketAddr>,
) -> tokio::process::Child {
    let home = data_dir.or(config.parent()).expect("a config in a directory");
    use_test_storage(config, home).await;
    let listen = listen.map_or_else(|| "127.0.0.1:0".to_string(), |a| a.to_string());
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_plinth"));
    cmd.args(["serve", "--config"])
        .arg(config)
        .env("PLINTH_LISTEN", listen)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true);
    // `PLINTH_TEST_SERVER_LOG=info cargo test …` shows the servers' logs.
    match std::env::var("PLINTH_TEST_SERVER_LOG") {
        Ok(level) => cmd.env("RUST_LOG", level).stderr(std::process::Stdio::inherit()),
        Err(_) => cmd.env("RUST_LOG", "error").stderr(std::process::Stdio::null()),
    };
    if let Some(dir) = data_dir {
        cmd.env("PLINTH_DATA_DIR", dir);
    }
    cmd.spawn().unwrap()
}

/// Waits for a spawned binary's listening line; returns its base URL.
pub async fn wait_listening(child: &mut tokio::process::Child) -> String {
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("plinth starts")
        .unwrap()
        .expect("a listening line");
    line.strip_prefix("plinth listening on ").unwrap().to_string()
}

/// `plinth serve --config config` on a free port with its data in `data`, its log (in
/// `format`: `json` or `text`) written to the file `log`, so a test can read what the
/// server logged; killed when the handle drops.
pub async fn serve_logging_to(config: &Path, data: &Path, log: &Path, format: &str) -> tokio::process::Child {
    use_test_storage(config, data).await;
    tokio::process::Command::new(env!("CARGO_BIN_EXE_plinth"))
        .args(["serve", "--config"])
        .arg(config)
        .env("PLINTH_LISTEN", "127.0.0.1:0")
        .env("PLINTH_DATA_DIR", data)
        .env("PLINTH_LOG_FORMAT", format)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}
