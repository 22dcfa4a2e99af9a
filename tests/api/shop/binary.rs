//! The real `plinth` binary as a separate process, for tests that kill it with SIGKILL,
//! and a client for its checkout API.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::helpers::{cli_create_user, config_text, spawn_binary, wait_listening, PASSWORD};
use crate::shop::fakes::Shippo;
use crate::shop::{self, cart, ShopOptions};

/// A data directory with users `root` (admin) and `shopper`, and a config for the shop.
pub struct ShopDir {
    _dir: tempfile::TempDir,
    pub config: PathBuf,
    pub data: PathBuf,
    /// The fake Shippo the shop's shipping plugin talks to (it outlives the servers).
    pub shippo: Arc<Shippo>,
}

impl ShopDir {
    pub async fn create(opts: &ShopOptions) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        Self::create_in(dir, data, opts).await
    }

    /// As [`Self::create`], on a fresh PostgreSQL schema whatever the test backend (for
    /// replicas); `None` when no PostgreSQL answers and none is required.
    pub async fn create_on_postgres(opts: &ShopOptions) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        crate::helpers::postgres_section(&data).await?;
        Some(Self::create_in(dir, data, opts).await)
    }

    async fn create_in(dir: tempfile::TempDir, data: PathBuf, opts: &ShopOptions) -> Self {
        for (name, admin) in [("root", true), ("shopper", false)] {
            let out = cli_create_user(&data, name, admin, PASSWORD).await;
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        }
        let (plugins, shippo) = shop::config(opts).await;
        let config = dir.path().join("plinth.toml");
        std::fs::write(&config, config_text(&plugins)).unwrap();
        Self {
            _dir: dir,
            config,
            data,
            shippo,
        }
    }

    pub async fn start(&self) -> Server {
        Server::start(&self.config, &self.data).await
    }

    /// Replica `n` of the shop: a data directory of its own, the same database.
    pub async fn start_replica(&self, n: usize) -> Server {
        let data = self.data.with_file_name(format!("replica-{n}"));
        std::fs::create_dir_all(&data).unwrap();
        let marker = crate::helpers::DATABASE_MARKER;
        std::fs::copy(self.data.join(marker), data.join(marker)).unwrap();
        Server::start(&self.config, &data).await
    }
}

/// The real binary, killed with SIGKILL.
pub struct Server {
    child: tokio::process::Child,
    pub api: Api,
}

impl Server {
    pub async fn start(config: &Path, data: &Path) -> Self {
        let mut child = spawn_binary(config, Some(data)).await;
        let base = wait_listening(&mut child).await;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        Self {
            child,
            api: Api { base, client },
        }
    }

    pub async fn kill(mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
    }
}

/// Its HTTP API.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub client: reqwest::Client,
}

impl Api {
    pub async fn login(&self, username: &str) -> String {
        let resp = self
            .client
            .post(format!("{}/auth/login", self.base))
            .json(&serde_json::json!({ "username": username, "password": PASSWORD }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "login {username}");
        resp.json::<Value>().await.unwrap()["token"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub async fn get(&self, token: &str, path: &str) -> (u16, Value) {
        let resp = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }

    /// One checkout of one unit of `sku`; `Err` when the connection died (the server
    /// was killed).
    pub async fn checkout(&self, token: &str, sku: &str, key: &str) -> Result<(u16, Value), reqwest::Error> {
        let resp = self
            .client
            .post(format!("{}/checkout", self.base))
            .bearer_auth(token)
            .header("idempotency-key", key)
            .json(&cart(&[(sku, 1)], "pm_card_visa", None))
            .send()
            .await?;
        let status = resp.status().as_u16();
        Ok((status, resp.json().await?))
    }

    /// Every order of the caller, following the pages.
    pub async fn all_orders(&self, token: &str) -> Vec<Value> {
        let mut all = Vec::new();
        let mut path = "/orders?limit=100".to_string();
        loop {
            let (status, page) = self.get(token, &path).await;
            assert_eq!(status, 200, "{page}");
            all.extend(page["orders"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => path = format!("/orders?limit=100&cursor={c}"),
                None => return all,
            }
        }
    }

    /// Creates a product (as the admin `token`).
    pub async fn create_product(&self, token: &str, sku: &str, stock: u64) {
        let product = serde_json::json!({ "sku": sku, "name": format!("Test product {sku}"),
            "category": "Test", "price": { "amount": 1200, "currency": "USD" }, "stock": stock });
        let created = self
            .client
            .post(format!("{}/products", self.base))
            .bearer_auth(token)
            .json(&product)
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
    }

    /// The stock of `sku`.
    pub async fn stock(&self, token: &str, sku: &str) -> u64 {
        let (status, body) = self.get(token, &format!("/products/{sku}")).await;
        assert_eq!(status, 200, "{body}");
        body["product"]["stock"].as_u64().unwrap()
    }
}
