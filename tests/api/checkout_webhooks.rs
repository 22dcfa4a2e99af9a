//! Provider webhooks touch only their own orders, and partial refunds stay partial.

use serde_json::{json, Value};

use crate::helpers::{json, plugin_path};
use crate::shop::{
    cart, razorpay_signature, shop, stripe_signature, unix_now, Shop, ShopOptions, WEBHOOK_SECRET,
};

/// Razorpay's webhook secret in the two-provider shop (not Stripe's).
const RAZORPAY_WEBHOOK_SECRET: &str = "rzp_webhook_secret_for_tests";

async fn order(s: &Shop, id: &str) -> Value {
    json(s.app.get_as(&s.shopper, &format!("/orders/{id}")).await).await["order"].clone()
}

/// A fulfilled order of `sku`: (id, PaymentIntent id, total).
async fn paid_order(s: &Shop, key: &str, sku: &str) -> (String, String, i64) {
    let resp = s.checkout(key, &cart(&[(sku, 1)], "pm_card_visa", None)).await;
    assert_eq!(resp.status(), 201);
    let o = json(resp).await["order"].clone();
    (
        o["id"].as_str().unwrap().to_string(),
        o["payment"]["provider_id"].as_str().unwrap().to_string(),
        o["total"].as_i64().unwrap(),
    )
}

async fn post_webhook(s: &Shop, plugin: &str, header: (&str, String), body: &str) -> Value {
    let resp = s
        .app
        .client
        .post(s.app.url(&format!("/webhooks/{plugin}")))
        .header(header.0, header.1)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    json(resp).await
}

/// Stripe's `charge.refunded` for `pi` with `amount_refunded` of `total` so far.
async fn stripe_refund(s: &Shop, pi: &str, total: i64, refunded: i64) -> Value {
    let event = json!({ "id": format!("evt_{refunded}"), "object": "event", "type": "charge.refunded",
        "data": { "object": { "id": "ch_1", "object": "charge", "payment_intent": pi, "amount": total,
                              "amount_refunded": refunded, "currency": "usd", "refunded": refunded == total } } })
    .to_string();
    let signature = stripe_signature(&event, unix_now(), WEBHOOK_SECRET);
    post_webhook(s, "stripe", ("stripe-signature", signature), &event).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_to_one_payment_plugin_cannot_touch_another_plugins_order() {
    // Stripe takes the payments; Razorpay is configured too (say, being switched to),
    // with its own webhook secret.
    let razorpay = format!(
        r#"
[[plugin]]
name = "razorpay"
world = "payment-plugin"
source = "{source}"
config = {{ key_id = "rzp_test_x", key_secret = "secret", webhook_secret = "{RAZORPAY_WEBHOOK_SECRET}" }}
"#,
        source = plugin_path("payments_razorpay"),
    );
    let s = shop(ShopOptions {
        rules: false,
        extra: razorpay,
        ..ShopOptions::default()
    })
    .await;
    s.add_product("CROSS-1", 2000, 4).await;
    let (id, pi, total) = paid_order(&s, "cross-1", "CROSS-1").await;

    // A validly signed Razorpay refund naming the Stripe order's payment id.
    let event = json!({ "entity": "event", "event": "refund.processed", "contains": ["refund", "payment"],
        "payload": { "refund": { "entity": { "id": "rfnd_x", "entity": "refund", "amount": total,
                                             "currency": "USD", "payment_id": pi, "status": "processed" } },
                     "payment": { "entity": { "id": pi, "entity": "payment", "amount": total, "currency": "USD",
                                              "amount_refunded": total, "refund_status": "full" } } } })
    .to_string();
    let signature = razorpay_signature(&event, RAZORPAY_WEBHOOK_SECRET);
    let answer = post_webhook(&s, "razorpay", ("x-razorpay-signature", signature), &event).await;
    assert_eq!(answer, json!({ "received": true, "applied": false }));
    let o = order(&s, &id).await;
    assert_eq!(o["status"], "fulfilled", "{o}");
    assert_eq!(o["refunded"], 0);
    assert_eq!(s.stock("CROSS-1").await, 3, "no stock returned");

    // A payment-failed event the same way changes nothing either.
    let failed = json!({ "entity": "event", "event": "payment.failed",
        "payload": { "payment": { "entity": { "id": pi, "entity": "payment", "status": "failed" } } } })
    .to_string();
    let signature = razorpay_signature(&failed, RAZORPAY_WEBHOOK_SECRET);
    let answer = post_webhook(&s, "razorpay", ("x-razorpay-signature", signature), &failed).await;
    assert_eq!(answer["applied"], false);

    // Through its own plugin the same refund applies.
    assert_eq!(stripe_refund(&s, &pi, total, total).await["applied"], true);
    assert_eq!(order(&s, &id).await["status"], "refunded");
    assert_eq!(s.stock("CROSS-1").await, 4);
    s.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_refund_webhook_keeps_the_order_and_its_stock() {
    let s = shop(ShopOptions {
        rules: false,
        ..ShopOptions::default()
    })
    .await;
    s.add_product("PART-1", 3000, 5).await;
    let (id, pi, total) = paid_order(&s, "part-1", "PART-1").await;
    assert_eq!(s.stock("PART-1").await, 4);

    // 10.00 USD of the total back: the order stays sold, the refund is on record.
    let partial = stripe_refund(&s, &pi, total, 1000).await;
    assert_eq!(partial["applied"], true);
    let o = order(&s, &id).await;
    assert_eq!(o["status"], "fulfilled", "{o}");
    assert_eq!(o["refunded"], 1000);
    let note = o["history"].as_array().unwrap().last().unwrap()["note"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        note.contains("partially refunded") && note.contains("10.00 USD"),
        "{note}"
    );
    assert_eq!(s.stock("PART-1").await, 4, "stock unchanged");
    // The same event again, or an older one arriving late, changes nothing.
    assert_eq!(stripe_refund(&s, &pi, total, 1000).await["applied"], false);
    assert_eq!(stripe_refund(&s, &pi, total, 500).await["applied"], false);
    assert_eq!(order(&s, &id).await["refunded"], 1000);

    // The rest of it: now the order is refunded and its unit goes back, once.
    assert_eq!(stripe_refund(&s, &pi, total, total).await["applied"], true);
    let o = order(&s, &id).await;
    assert_eq!(o["status"], "refunded", "{o}");
    assert_eq!(o["refunded"], total);
    assert_eq!(s.stock("PART-1").await, 5);
    assert_eq!(stripe_refund(&s, &pi, total, total).await["applied"], false);
    assert_eq!(s.stock("PART-1").await, 5, "stock back once");
    s.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_webhook_racing_an_admin_refund_returns_the_stock_once() {
    let s = shop(ShopOptions {
        rules: false,
        ..ShopOptions::default()
    })
    .await;
    const ROUNDS: u64 = 6;
    s.add_product("RACE-1", 1500, ROUNDS).await;
    let mut orders = Vec::new();
    for n in 0..ROUNDS {
        orders.push(paid_order(&s, &format!("race-{n}"), "RACE-1").await);
    }
    assert_eq!(s.stock("RACE-1").await, 0);

    // The admin refunds each order while the provider's refund webhook for it arrives:
    // both read the order as sold, both want to give its unit back.
    for (id, pi, total) in &orders {
        let admin = s
            .app
            .client
            .post(s.app.url(&format!("/orders/{id}/refund")))
            .bearer_auth(&s.admin)
            .send();
        let (admin, hook) = tokio::join!(admin, stripe_refund(&s, pi, *total, *total));
        let status = admin.unwrap().status().as_u16();
        // Whichever lands second finds the order refunded already.
        assert!(status == 200 || status == 409, "admin refund answered {status}");
        let _ = hook;
        let o = order(&s, id).await;
        assert_eq!(o["status"], "refunded", "{o}");
    }
    assert_eq!(
        s.stock("RACE-1").await,
        ROUNDS,
        "each refunded order returns its unit exactly once"
    );
    s.app.stop().await;
}
