//! `kill -9` the real binary in the middle of a checkout load, then restart it: every
//! order a client got 201 for is there, nothing is left pending, retries of the
//! interrupted requests complete, and stock + sold = initial stock.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::shop::binary::{Server, ShopDir};
use crate::shop::{localstripe, ShopOptions};

const SKU: &str = "CRASH-1";
const INITIAL_STOCK: u64 = 100_000;
const WORKERS: usize = 8;

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
                    match api.checkout(&token, SKU, &key).await {
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
    let shop = ShopDir::create(&ShopOptions {
        rules: false,
        parallel_checkouts: Some(64),
        ..ShopOptions::default()
    })
    .await;
    let server = shop.start().await;
    let admin = server.api.login("root").await;
    server.api.create_product(&admin, SKU, INITIAL_STOCK).await;

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

        server = shop.start().await;
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
        assert!(
            orders.iter().all(|o| o["status"] != "paid"),
            "recovery left paid orders without their label"
        );
        // Retrying an interrupted request completes it, at most once.
        for key in &outcomes.interrupted {
            let (status, body) = api.checkout(&token, SKU, key).await.unwrap();
            assert_eq!(status, 201, "retry of {key}: {body}");
            let again = api.checkout(&token, SKU, key).await.unwrap();
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

    // Money exactly once: every charge localstripe took for these orders belongs to a
    // sold order, one charge per order. A charge a kill cut off from its order was found
    // by recovery, not made a second time by the retry (localstripe ignores
    // Idempotency-Key, so only the host can prevent that).
    let sold_payments: HashSet<&str> = orders
        .iter()
        .filter(|o| o["status"] == "fulfilled" || o["status"] == "paid")
        .map(|o| {
            o["payment"]["provider_id"]
                .as_str()
                .expect("a sold order has its charge")
        })
        .collect();
    assert_eq!(sold_payments.len() as u64, sold, "one charge per sold order");
    let charges: Vec<String> = localstripe()
        .await
        .payment_intents()
        .await
        .into_iter()
        .filter(|pi| pi["status"] == "succeeded")
        .filter(|pi| {
            pi["metadata"]["order_id"]
                .as_str()
                .is_some_and(|o| ids.contains(o))
        })
        .map(|pi| pi["id"].as_str().unwrap().to_string())
        .collect();
    let orphans: Vec<&String> = charges
        .iter()
        .filter(|id| !sold_payments.contains(id.as_str()))
        .collect();
    assert!(
        orphans.is_empty(),
        "charges without a sold order (money taken twice or lost): {orphans:?}"
    );
    assert_eq!(charges.len() as u64, sold, "one charge per sold order");
    server.kill().await;
}
