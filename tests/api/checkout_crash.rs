//! `kill -9` the real binary in the middle of a checkout load, then restart it: every
//! order a client got 201 for is there, nothing is left pending, retries of the
//! interrupted requests complete, and stock + sold = initial stock.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::helpers::{cli_create_user, config_text, spawn_binary, wait_listening, PASSWORD};
use crate::shop::{self, cart, ShopOptions};

const SKU: &str = "CRASH-1";
const INITIAL_STOCK: u64 = 100_000;
const WORKERS: usize = 8;

/// The real binary, killed with SIGKILL.
struct Server {
    child: tokio::process::Child,
    api: Api,
}

impl Server {
    async fn start(config: &Path, data: &Path) -> Self {
        let mut child = spawn_binary(config, Some(data));
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

    async fn kill(mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
    }
}

/// Its HTTP API.
#[derive(Clone)]
struct Api {
    base: String,
    client: reqwest::Client,
}

impl Api {
    async fn login(&self, username: &str) -> String {
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

    async fn get(&self, token: &str, path: &str) -> (u16, Value) {
        let resp = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }

    /// One checkout of one unit; `Err` when the connection died (the server was killed).
    async fn checkout(&self, token: &str, key: &str) -> Result<(u16, Value), reqwest::Error> {
        let resp = self
            .client
            .post(format!("{}/checkout", self.base))
            .bearer_auth(token)
            .header("idempotency-key", key)
            .json(&cart(&[(SKU, 1)], "pm_card_visa", None))
            .send()
            .await?;
        let status = resp.status().as_u16();
        Ok((status, resp.json().await?))
    }

    /// Every order of the caller, following the pages.
    async fn all_orders(&self, token: &str) -> Vec<Value> {
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
}

#[derive(Default)]
struct Outcomes {
    /// key → order id, for every 201.
    acknowledged: HashMap<String, String>,
    /// Keys whose request died with the server.
    interrupted: Vec<String>,
    /// Any other answer (there should be none).
    other: Vec<(u16, Value)>,
}

/// Runs checkouts from `WORKERS` clients until the server dies; kills it once `before_kill`
/// orders were acknowledged (plus a little, so the kill lands mid-request).
async fn load_then_kill(server: Server, token: &str, round: usize, before_kill: usize) -> Outcomes {
    let api = server.api.clone();
    let outcomes = Arc::new(Mutex::new(Outcomes::default()));
    let acked = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (api, outcomes, acked) = (api.clone(), outcomes.clone(), acked.clone());
            let token = token.to_string();
            tokio::spawn(async move {
                for n in 0.. {
                    let key = format!("r{round}-w{w}-{n}");
                    match api.checkout(&token, &key).await {
                        Ok((201, body)) => {
                            let id = body["order"]["id"].as_str().unwrap().to_string();
                            outcomes.lock().unwrap().acknowledged.insert(key, id);
                            acked.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(other) => outcomes.lock().unwrap().other.push(other),
                        Err(_) => {
                            outcomes.lock().unwrap().interrupted.push(key);
                            return;
                        }
                    }
                }
            })
        })
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while acked.load(Ordering::SeqCst) < before_kill {
        assert!(
            tokio::time::Instant::now() < deadline,
            "checkouts too slow to load the server"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(37 * round as u64)).await;
    server.kill().await;
    for w in workers {
        w.await.unwrap();
    }
    Arc::try_unwrap(outcomes)
        .unwrap_or_else(|_| panic!("workers done"))
        .into_inner()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_during_checkout_load_loses_no_acknowledged_order_and_no_stock() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    for (name, admin) in [("root", true), ("shopper", false)] {
        let out = cli_create_user(&data, name, admin, PASSWORD).await;
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let opts = ShopOptions {
        rules: false,
        ..ShopOptions::default()
    };
    let (plugins, _shippo) = shop::config(&opts).await;
    let config = dir.path().join("plinth.toml");
    std::fs::write(&config, config_text(&plugins)).unwrap();

    let server = Server::start(&config, &data).await;
    let admin = server.api.login("root").await;
    let product = serde_json::json!({ "sku": SKU, "name": "Crash test dummy", "category": "Test",
        "price": { "amount": 1200, "currency": "USD" }, "stock": INITIAL_STOCK });
    let created = server
        .api
        .client
        .post(format!("{}/products", server.api.base))
        .bearer_auth(&admin)
        .json(&product)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);

    let mut server = server;
    let mut acknowledged: HashMap<String, String> = HashMap::new();
    for round in 1..=2 {
        let token = server.api.login("shopper").await;
        let outcomes = load_then_kill(server, &token, round, 12 * round).await;
        assert!(
            outcomes.other.is_empty(),
            "unexpected answers: {:?}",
            outcomes.other
        );
        assert_eq!(
            outcomes.interrupted.len(),
            WORKERS,
            "every worker was cut off mid-request"
        );

        server = Server::start(&config, &data).await;
        let api = &server.api;
        let token = api.login("shopper").await;
        for (key, id) in &outcomes.acknowledged {
            let (status, body) = api.get(&token, &format!("/orders/{id}")).await;
            assert_eq!(status, 200, "acknowledged order {id} (key {key}) lost: {body}");
            assert_eq!(body["order"]["status"], "fulfilled", "{body}");
        }
        let orders = api.all_orders(&token).await;
        let failed = orders.iter().filter(|o| o["status"] == "failed").count();
        eprintln!(
            "round {round}: {} acknowledged, {} interrupted, {failed} failed by recovery",
            outcomes.acknowledged.len(),
            outcomes.interrupted.len()
        );
        assert!(
            orders.iter().all(|o| o["status"] != "pending"),
            "recovery left pending orders"
        );
        // Retrying an interrupted request completes it, at most once.
        for key in &outcomes.interrupted {
            let (status, body) = api.checkout(&token, key).await.unwrap();
            assert_eq!(status, 201, "retry of {key}: {body}");
            let again = api.checkout(&token, key).await.unwrap();
            assert_eq!(again, (status, body.clone()), "second retry of {key} replays");
            acknowledged.insert(key.clone(), body["order"]["id"].as_str().unwrap().to_string());
        }
        acknowledged.extend(outcomes.acknowledged);
    }

    let token = server.api.login("shopper").await;
    let orders = server.api.all_orders(&token).await;
    let ids: HashSet<&str> = orders.iter().map(|o| o["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), orders.len(), "an order is listed twice");
    for id in acknowledged.values() {
        assert!(
            ids.contains(id.as_str()),
            "acknowledged order {id} missing from the list"
        );
    }
    let sold: u64 = orders
        .iter()
        .filter(|o| o["status"] == "fulfilled" || o["status"] == "paid")
        .map(|o| o["lines"][0]["quantity"].as_u64().unwrap())
        .sum();
    assert!(sold >= acknowledged.len() as u64);
    let (_, product) = server.api.get(&token, &format!("/products/{SKU}")).await;
    let stock = product["product"]["stock"].as_u64().unwrap();
    assert_eq!(stock + sold, INITIAL_STOCK, "stock {stock} + sold {sold}");
    server.kill().await;
}
