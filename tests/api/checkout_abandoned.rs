//! A checkout runs to its end whatever its client does, and an order nobody drives is
//! settled with the payment provider while the server keeps serving (no restart).

use std::time::Duration;

use serde_json::Value;

use crate::helpers::{error_code, json};
use crate::shop::hold_proxy::{HoldProxy, Mode};
use crate::shop::{cart, localstripe, shop, wait_for, Payments, Shop, ShopOptions};

const SKU: &str = "ABANDON-1";
const STOCK: u64 = 5;

/// A shop whose Stripe plugin reaches localstripe through `proxy`.
async fn shop_behind(proxy: &HoldProxy, timeout_ms: u32) -> Shop {
    let s = shop(ShopOptions {
        payments: Payments::Stripe {
            base_url: Some(proxy.url()),
            timeout_ms,
        },
        rules: false,
        fast_reconciler: true,
        ..ShopOptions::default()
    })
    .await;
    s.add_product(SKU, 1500, STOCK).await;
    s
}

async fn order(s: &Shop, id: &str) -> Value {
    json(s.app.get_as(&s.shopper, &format!("/orders/{id}")).await).await["order"].clone()
}

/// The only order of the shopper, once there is one.
async fn the_order(s: &Shop) -> Value {
    wait_for("the order", Duration::from_secs(20), || async {
        let page = json(s.app.get_as(&s.shopper, "/orders").await).await;
        page["orders"].get(0).cloned()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_checkout_still_settles() {
    let proxy = HoldProxy::start(localstripe().await.port).await;
    let s = shop_behind(&proxy, 30_000).await;
    let body = cart(&[(SKU, 1)], "pm_card_visa", None);

    // The charge is on its way to the provider (stalled in the network) when the
    // customer closes the connection.
    proxy.set(Mode::Stall);
    let request = s.spawn_checkout("walk-away".into(), &body);
    let pending = the_order(&s).await;
    assert_eq!(pending["status"], "pending");
    let id = pending["id"].as_str().unwrap().to_string();
    wait_for("the stalled charge", Duration::from_secs(20), || async {
        (proxy.stalled() > 0).then_some(())
    })
    .await;
    request.abort();
    assert!(request.await.unwrap_err().is_cancelled());
    // Give the server time to see the connection go.
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.set(Mode::Pass);
    proxy.release();

    let done = wait_for("the order to be settled", Duration::from_secs(30), || async {
        let o = order(&s, &id).await;
        (o["status"] != "pending" && o["status"] != "paid").then_some(o)
    })
    .await;
    assert_eq!(done["status"], "fulfilled", "{done}");
    let charges = localstripe().await.succeeded_for(&id).await;
    assert_eq!(charges.len(), 1, "exactly one PaymentIntent: {charges:?}");
    assert_eq!(done["payment"]["provider_id"], charges[0].as_str());
    assert_eq!(s.stock(SKU).await, STOCK - 1);

    // The retry gets that order, from the answer the checkout stored on its own.
    let retry = s.checkout("walk-away", &body).await;
    assert_eq!(retry.status(), 201);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    let retried = json(retry).await;
    assert_eq!(retried["order"]["id"], id.as_str());
    assert_eq!(retried["order"]["status"], "fulfilled");
    assert_eq!(localstripe().await.succeeded_for(&id).await.len(), 1);
    assert_eq!(s.stock(SKU).await, STOCK - 1);
    s.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_order_nobody_drives_is_settled_while_serving() {
    let proxy = HoldProxy::start(localstripe().await.port).await;
    let s = shop_behind(&proxy, 2_000).await;
    let body = cart(&[(SKU, 1)], "pm_card_visa", None);

    // The provider takes the money but its answer never comes back, and when the host
    // asks about the charge the provider is unreachable: nobody can tell yet.
    proxy.set(Mode::HoldResponses);
    let request = s.spawn_checkout("unknown".into(), &body);
    let id = the_order(&s).await["id"].as_str().unwrap().to_string();
    let charge = wait_for("the charge at localstripe", Duration::from_secs(20), || async {
        localstripe().await.succeeded_for(&id).await.pop()
    })
    .await;
    proxy.set(Mode::Refuse);
    let (status, answer) = request.await.unwrap();
    assert_eq!(status, 502, "{answer}");
    assert_eq!(answer["error"]["code"], "payment_failed");

    // The order keeps its stock, pending; its key is busy until the provider answers.
    let kept = order(&s, &id).await;
    assert_eq!(kept["status"], "pending", "{kept}");
    assert_eq!(s.stock(SKU).await, STOCK - 1);
    let busy = error_code(s.checkout("unknown", &body).await, 409).await;
    assert_eq!(busy["error"]["code"], "request_in_progress");
    // Passes of the reconciler meanwhile cannot settle it.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(order(&s, &id).await["status"], "pending");

    // The provider is back: the periodic reconciler finds the charge, the order
    // completes, without a restart.
    proxy.set(Mode::Pass);
    let done = wait_for("the reconciler", Duration::from_secs(20), || async {
        let o = order(&s, &id).await;
        (o["status"] == "fulfilled" || o["status"] == "failed").then_some(o)
    })
    .await;
    assert_eq!(done["status"], "fulfilled", "{done}");
    assert_eq!(done["payment"]["provider_id"], charge.as_str());
    let retry = s.checkout("unknown", &body).await;
    assert_eq!(retry.status(), 201);
    assert_eq!(json(retry).await["order"]["id"], id.as_str());
    assert_eq!(
        localstripe().await.succeeded_for(&id).await,
        vec![charge],
        "charged once"
    );
    assert_eq!(s.stock(SKU).await, STOCK - 1);
    // The server kept serving throughout.
    assert_eq!(s.app.get("/healthz").await.status(), 200);
    s.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walking_away_from_checkouts_cannot_pile_up_tasks() {
    let proxy = HoldProxy::start(localstripe().await.port).await;
    let s = shop_behind(&proxy, 30_000).await;
    let body = cart(&[(SKU, 1)], "pm_card_visa", None);

    // Four checkouts stall at the provider and their clients walk away: each keeps
    // running in its own task (the default per-customer cap is four).
    proxy.set(Mode::Stall);
    let walked: Vec<_> = (0..4)
        .map(|n| s.spawn_checkout(format!("pile-{n}"), &body))
        .collect();
    wait_for("four stalled charges", Duration::from_secs(30), || async {
        (proxy.stalled() >= 4).then_some(())
    })
    .await;
    for request in walked {
        request.abort();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    // A fifth is refused at once, before its key is claimed, instead of adding a task.
    let fifth = tokio::time::timeout(Duration::from_secs(10), s.checkout("pile-4", &body))
        .await
        .expect("refused at once, not queued behind the stalled ones");
    let error = error_code(fifth, 429).await;
    assert_eq!(error["error"]["code"], "too_many_checkouts", "{error}");

    // Once the provider answers the four finish on their own, and the refused key is
    // free to use: nothing was stored for it.
    proxy.set(Mode::Pass);
    proxy.release();
    wait_for(
        "the four checkouts to finish",
        Duration::from_secs(30),
        || async {
            let page = json(s.app.get_as(&s.shopper, "/orders").await).await;
            let orders = page["orders"].as_array().cloned().unwrap_or_default();
            (orders.len() == 4 && orders.iter().all(|o| o["status"] == "fulfilled")).then_some(())
        },
    )
    .await;
    let retry = s.checkout("pile-4", &body).await;
    assert_eq!(retry.status(), 201);
    assert_eq!(s.stock(SKU).await, STOCK - 5);
    s.app.stop().await;
}
