//! Several real `plinth serve` processes on one PostgreSQL database: what one replica
//! writes, the others see; limits hold across them; a social login may start on one and
//! finish on another; no acknowledged write is lost.
//! These always run on PostgreSQL (they are about sharing it), in the default pass.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use reqwest::cookie::{CookieStore, Jar};
use reqwest::header::COOKIE;
use serde_json::Value;

use crate::oidc::{
    auth_section, browser_stopping_at, finish_login, free_addr, local_idp_entry, start, state_refused,
    through_provider, Site,
};
use crate::shop::binary::{Server, ShopDir};
use crate::shop::localstripe::localstripe;
use crate::shop::ShopOptions;

use crate::helpers::{
    cli_create_user, hello_plugin, json, make_serializable, on_postgres, postgres_section, spawn_binary_at,
    wait_listening, DATABASE_MARKER, PASSWORD,
};

/// `n` replicas of one config, each with its own data directory (search index,
/// compiled code), all on one fresh database schema.
struct Replicas {
    _dir: tempfile::TempDir,
    children: Vec<tokio::process::Child>,
    urls: Vec<String>,
    client: reqwest::Client,
}

impl Replicas {
    /// `n` replicas; the first data directory also gets an admin `root` (made with the
    /// CLI, on the shared database).
    async fn start(n: usize, plugins: &str) -> Option<Self> {
        Self::start_at(&vec![None; n], plugins, Isolation::ReadCommitted).await
    }

    /// One replica per entry of `listen`, on that address (for a config naming it, such
    /// as a public URL) or on any free port (`None`).
    async fn start_at(listen: &[Option<SocketAddr>], plugins: &str, isolation: Isolation) -> Option<Self> {
        if on_postgres() {
            // The PostgreSQL pass runs everything else; these ran in the default pass.
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        if isolation == Isolation::Serializable {
            // make_serializable rewrites the file naming the schema, so the schema (and
            // that file) must exist first; the section below then names it serializable.
            postgres_section(dir.path()).await?;
            make_serializable(dir.path());
        }
        let storage = postgres_section(dir.path()).await?;
        let config = dir.path().join("plinth.toml");
        let text = crate::helpers::config_text(plugins);
        std::fs::write(&config, format!("{text}{storage}")).unwrap();
        let mut children = Vec::new();
        let mut urls = Vec::new();
        for (i, addr) in listen.iter().enumerate() {
            let data: PathBuf = dir.path().join(format!("replica-{i}"));
            std::fs::create_dir_all(&data).unwrap();
            std::fs::copy(dir.path().join(DATABASE_MARKER), data.join(DATABASE_MARKER)).unwrap();
            if i == 0 {
                let out = cli_create_user(&data, "root", true, PASSWORD).await;
                assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            }
            let mut child = spawn_binary_at(&config, Some(&data), *addr).await;
            urls.push(wait_listening(&mut child).await);
            children.push(child);
        }
        Some(Self {
            _dir: dir,
            children,
            urls,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        })
    }

    fn url(&self, replica: usize, path: &str) -> String {
        format!("{}{path}", self.urls[replica])
    }

    /// Transactions the replicas ran again after contention, from their `/metrics`.
    async fn retries(&self) -> u64 {
        let mut total = 0;
        for i in 0..self.urls.len() {
            let text = self
                .client
                .get(self.url(i, "/metrics"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            total += text
                .lines()
                .find_map(|l| l.strip_prefix("plinth_db_transaction_retries_total "))
                .map_or(0, |n| n.trim().parse::<u64>().unwrap());
        }
        total
    }
}

/// The database's default isolation for the replicas' transactions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Isolation {
    /// PostgreSQL's default.
    ReadCommitted,
    /// CockroachDB's only level.
    Serializable,
}

impl Drop for Replicas {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.start_kill();
        }
    }
}

async fn register_and_login(r: &Replicas, replica: usize, name: &str) -> String {
    let resp = r
        .client
        .post(r.url(replica, "/auth/register"))
        .json(&serde_json::json!({ "username": name, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let resp = r
        .client
        .post(r.url(replica, "/auth/login"))
        .json(&serde_json::json!({ "username": name, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    json(resp).await["token"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_made_on_one_replica_works_on_the_others_and_logout_anywhere_ends_it() {
    let Some(r) = Replicas::start(3, "").await else {
        return;
    };
    let token = register_and_login(&r, 0, "wanderer").await;
    for replica in 0..3 {
        let me = r
            .client
            .get(r.url(replica, "/auth/me"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(me.status(), 200, "replica {replica}");
        assert_eq!(json(me).await["user"]["username"], "wanderer");
    }
    let out = r
        .client
        .post(r.url(1, "/auth/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 204);
    let me = r
        .client
        .get(r.url(2, "/auth/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 401, "revoked on B, refused on C");
}

/// The login in progress (state, nonce, PKCE verifier, browser binding) is a row of the
/// shared `oidc_pending` table, so behind a load balancer the callback may reach another
/// replica than the start did; it is still taken once, and only by its own browser.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_social_login_started_on_one_replica_finishes_on_another_once_and_in_its_own_browser() {
    // The provider knows one redirect URI, so both replicas have one public URL: here
    // replica B's address, picked before B starts. Starts go to A, callbacks to B.
    let public = free_addr();
    let auth = auth_section(public, &local_idp_entry(public).await);
    let Some(r) = Replicas::start_at(&[None, Some(public)], &auth, Isolation::ReadCommitted).await else {
        return;
    };
    let (a, b) = (&r.urls[0], &r.urls[1]);
    assert_eq!(*b, format!("http://{public}"));
    let ports: Vec<u16> = r
        .urls
        .iter()
        .map(|u| reqwest::Url::parse(u).unwrap().port().unwrap())
        .collect();
    let on_a = |callback: &str| callback.replacen(b.as_str(), a, 1);

    let jar = Arc::new(Jar::default());
    let browser = browser_stopping_at(&ports, jar.clone());
    let authorize = start(a, &browser, "local", Some(&b.url("/auth/me"))).await;
    let callback = through_provider(b, &browser, &authorize, "roamer").await;
    // The binding cookie A set, kept to replay the callback with it after B clears it.
    let cookies = jar.cookies(&callback.parse().unwrap()).unwrap();
    assert!(cookies.to_str().unwrap().contains("plinth_oauth="), "{cookies:?}");
    let me = finish_login(b, &browser, &callback).await;
    assert_eq!(me["user"]["username"], "roamer");
    let resp = browser.get(a.url("/auth/me")).send().await.unwrap();
    assert_eq!(resp.status(), 200, "the session works on A too");
    assert_eq!(json(resp).await["session"]["id"], me["session"]["id"]);

    // Replayed on A, binding cookie and all: B took the login from the shared table.
    let resp = r
        .client
        .get(on_a(&callback))
        .header(COOKIE, cookies)
        .send()
        .await
        .unwrap();
    state_refused(resp).await;

    // Another browser, with a login of its own under way on A (so a binding cookie, not
    // this login's), brings a victim's callback to B: refused, and the login is spent,
    // so the victim's own browser cannot finish it on A either.
    let victim = browser_stopping_at(&ports, Arc::default());
    let authorize = start(a, &victim, "local", Some(&b.url("/auth/me"))).await;
    let callback = through_provider(b, &victim, &authorize, "victim").await;
    let other = browser_stopping_at(&ports, Arc::default());
    start(a, &other, "local", None).await;
    let resp = other.get(&callback).send().await.unwrap();
    state_refused(resp).await;
    let resp = victim.get(on_a(&callback)).send().await.unwrap();
    state_refused(resp).await;
    for site in [a, b] {
        let resp = victim.get(site.url("/auth/me")).send().await.unwrap();
        assert_eq!(resp.status(), 401, "no session on {site}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_increments_from_three_replicas_add_up_exactly() {
    kv_increments_add_up(Isolation::ReadCommitted).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_increments_add_up_under_serializable_isolation_too_and_the_retries_show() {
    kv_increments_add_up(Isolation::Serializable).await;
}

async fn kv_increments_add_up(isolation: Isolation) {
    let Some(r) = Replicas::start_at(&[None; 3], &hello_plugin("hello"), isolation).await else {
        return;
    };
    let tasks: Vec<_> = (0..300)
        .map(|i| {
            let (client, url) = (r.client.clone(), r.url(i % 3, "/plugins/hello/counter"));
            tokio::spawn(async move { client.post(url).send().await.unwrap().status().as_u16() })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        let status = t.await.unwrap();
        assert!(status == 200 || status == 503, "unexpected {status}");
        ok += usize::from(status == 200);
    }
    let resp = r
        .client
        .get(r.url(2, "/plugins/hello/counter"))
        .send()
        .await
        .unwrap();
    let body = json(resp).await;
    assert_eq!(
        body["counter"].as_u64(),
        Some(ok as u64),
        "every acknowledged increment counted once: {body}"
    );
    let retries = r.retries().await;
    eprintln!("{isolation:?}: {ok} of 300 acknowledged, {retries} transactions retried");
    match isolation {
        Isolation::ReadCommitted => assert!(ok >= 290, "contention may refuse a few ({ok} of 300)"),
        // Every increment of the one key conflicts with the others: the retry wrapper
        // reruns them; past its attempts a few get 503 (not acknowledged, not counted).
        Isolation::Serializable => {
            assert!(retries > 0, "the retry wrapper never ran");
            assert!(ok >= 150, "most get through ({ok} of 300)");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_spread_over_the_replicas_are_limited_as_one() {
    let Some(r) = Replicas::start(3, "").await else {
        return;
    };
    register_and_login(&r, 0, "target").await;
    // per_username_per_minute is 10: the 11th wrong password, on whichever replica,
    // waits.
    let mut statuses = Vec::new();
    for i in 0..12 {
        let resp = r
            .client
            .post(r.url(i % 3, "/auth/login"))
            .json(&serde_json::json!({ "username": "target", "password": format!("wrong {i}") }))
            .send()
            .await
            .unwrap();
        statuses.push(resp.status().as_u16());
    }
    assert_eq!(&statuses[..10], &[401; 10], "{statuses:?}");
    assert_eq!(&statuses[10..], &[429, 429], "{statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_product_created_on_one_replica_is_found_on_another_within_a_second() {
    let Some(r) = Replicas::start(2, "").await else {
        return;
    };
    let resp = r
        .client
        .post(r.url(0, "/auth/login"))
        .json(&serde_json::json!({ "username": "root", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    let admin = json(resp).await["token"].as_str().unwrap().to_string();
    let created = r
        .client
        .post(r.url(0, "/products"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({
            "sku": "ZEPHYR-1", "name": "Zephyr kettle", "description": "Whistles", "category": "kitchen",
            "price": { "amount": 4200, "currency": "EUR" }, "stock": 5
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let written = std::time::Instant::now();
    loop {
        let found = r
            .client
            .get(r.url(1, "/products/search?q=zephyr"))
            .send()
            .await
            .unwrap();
        let body = json(found).await;
        if body.to_string().contains("ZEPHYR-1") {
            break;
        }
        assert!(
            written.elapsed() < Duration::from_secs(1),
            "not found on B within 1 s: {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("found on B after {:?}", written.elapsed());
}

/// A shop on a fresh PostgreSQL schema: three replicas, one customer rushing them.
async fn shop_replicas(n: usize, opts: &ShopOptions, isolation: Isolation) -> Option<(ShopDir, Vec<Server>)> {
    if on_postgres() {
        return None;
    }
    let shop = ShopDir::create_on_postgres(opts).await?;
    if isolation == Isolation::Serializable {
        make_serializable(&shop.data);
    }
    let mut servers = vec![shop.start().await];
    for i in 1..n {
        servers.push(shop.start_replica(i).await);
    }
    Some((shop, servers))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_checkouts_over_three_replicas_sell_fifty_units_exactly_once() {
    rush(Isolation::ReadCommitted).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checkout_rush_sells_exactly_the_stock_under_serializable_isolation_too() {
    rush(Isolation::Serializable).await;
}

async fn rush(isolation: Isolation) {
    let opts = ShopOptions {
        rules: false,
        parallel_checkouts: Some(256),
        ..Default::default()
    };
    let Some((_shop, servers)) = shop_replicas(3, &opts, isolation).await else {
        return;
    };
    let admin = servers[0].api.login("root").await;
    servers[0].api.create_product(&admin, "RUSH-1", 50).await;
    let shopper = servers[1].api.login("shopper").await;
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let (api, token) = (servers[i % 3].api.clone(), shopper.clone());
            tokio::spawn(async move {
                api.checkout(&token, "RUSH-1", &format!("rush-{i}"))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut sold = Vec::new();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        match status {
            201 => sold.push(body["order"]["id"].as_str().unwrap().to_string()),
            409 => assert_eq!(body["error"]["code"], "out_of_stock", "{body}"),
            // Contention past the retry budget: nothing was sold, and it says so.
            503 if isolation == Isolation::Serializable => {
                assert_eq!(body["error"]["code"], "storage_busy", "{body}")
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(sold.len(), 50, "exactly the stock was sold");
    assert_eq!(servers[2].api.stock(&shopper, "RUSH-1").await, 0);
    let orders = servers[2].api.all_orders(&shopper).await;
    let live: Vec<&Value> = orders
        .iter()
        .filter(|o| matches!(o["status"].as_str(), Some("paid" | "fulfilled")))
        .collect();
    assert_eq!(live.len(), 50, "one order per sold unit");
    for id in &sold {
        assert_eq!(
            localstripe().await.succeeded_for(id).await.len(),
            1,
            "one charge for {id}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_under_checkout_load_has_its_orders_settled_by_the_others() {
    let opts = ShopOptions {
        rules: false,
        parallel_checkouts: Some(256),
        fast_reconciler: true,
        ..Default::default()
    };
    let Some((shop, mut servers)) = shop_replicas(3, &opts, Isolation::ReadCommitted).await else {
        return;
    };
    const STOCK: u64 = 40;
    let admin = servers[0].api.login("root").await;
    servers[0].api.create_product(&admin, "KILL-1", STOCK).await;
    let shopper = servers[1].api.login("shopper").await;
    // The charges of the replica about to die stall at the provider, so some of its
    // orders are mid-charge when it dies.
    let tasks: Vec<_> = (0..60)
        .map(|i| {
            let (api, token) = (servers[i % 3].api.clone(), shopper.clone());
            tokio::spawn(async move { api.checkout(&token, "KILL-1", &format!("kill-{i}")).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let victim = servers.remove(0);
    victim.kill().await;
    let mut acknowledged = Vec::new();
    for t in tasks {
        if let Ok((201, body)) = t.await.unwrap() {
            acknowledged.push(body["order"]["id"].as_str().unwrap().to_string());
        }
    }
    // Its leases lapse (20 s), then a survivor's reconciler (every second) settles what
    // it left.
    let api = &servers[0].api;
    let until = std::time::Instant::now() + Duration::from_secs(60);
    let orders = loop {
        let orders = api.all_orders(&shopper).await;
        if orders.iter().all(|o| o["status"] != "pending") {
            break orders;
        }
        assert!(
            std::time::Instant::now() < until,
            "orders still pending a minute later"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let mut units_sold = 0;
    for o in &orders {
        let id = o["id"].as_str().unwrap();
        let charges = localstripe().await.succeeded_for(id).await;
        let kept: Vec<&String> = {
            let mut kept = Vec::new();
            for pi in &charges {
                if localstripe().await.refunds_for(pi).await.is_empty() {
                    kept.push(pi);
                }
            }
            kept
        };
        match o["status"].as_str().unwrap() {
            "paid" | "fulfilled" => {
                units_sold += 1;
                assert_eq!(kept.len(), 1, "a sold order keeps exactly one charge: {o}");
            }
            _ => assert!(kept.is_empty(), "no orphan charge on an unsold order: {o}"),
        }
    }
    for id in &acknowledged {
        let o = orders
            .iter()
            .find(|o| o["id"] == id.as_str())
            .expect("acknowledged orders exist");
        assert!(matches!(o["status"].as_str(), Some("paid" | "fulfilled")), "{o}");
    }
    assert_eq!(
        api.stock(&shopper, "KILL-1").await + units_sold,
        STOCK,
        "every unit counted once"
    );
    drop(shop);
}
