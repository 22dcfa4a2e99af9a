//! Checkout end to end: rules, stock, localstripe, Shippo (fake), idempotency, refunds,
//! webhooks, provider swap.

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use serde_json::json;

use crate::helpers::{error_code, json};
use crate::shop::{cart, fakes, localstripe, shop, stripe_signature, Payments, ShopOptions, WEBHOOK_SECRET};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_path_with_discount_tax_and_shipping() {
    let s = shop(ShopOptions::default()).await;
    s.add_product("WIDGET-1", 2500, 10).await;
    let body = cart(&[("widget-1", 2)], "pm_card_visa", Some("summer10"));

    let quote = json(s.quote(&body).await).await;
    assert_eq!(quote["subtotal"], 5000);
    assert_eq!(quote["total"], 4826, "5000 - 10% + 7.25% tax: {quote}");
    let rates = quote["shipping_rates"].as_array().unwrap();
    assert_eq!(rates.len(), 2);
    assert_eq!(rates[0]["amount"], 550, "cheapest first");

    let resp = s.checkout("order-1", &body).await;
    assert_eq!(resp.status(), 201);
    let order = json(resp).await["order"].clone();
    assert_eq!(order["status"], "fulfilled");
    assert_eq!(order["subtotal"], 5000);
    let adjustments: Vec<(String, i64)> = order["adjustments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["kind"].as_str().unwrap().to_string(),
                a["amount"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        adjustments,
        [
            ("discount".into(), -500),
            ("tax".into(), 326),
            ("shipping".into(), 550)
        ]
    );
    assert_eq!(order["total"], 5376);
    let history: Vec<&str> = order["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["status"].as_str().unwrap())
        .collect();
    assert_eq!(history, ["pending", "paid", "fulfilled"]);
    assert!(order["history"][0]["at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(order["shipment"]["carrier"], "USPS");
    assert!(order["shipment"]["tracking_number"]
        .as_str()
        .unwrap()
        .starts_with("9400"));
    assert_eq!(s.stock("WIDGET-1").await, 8);

    let id = order["id"].as_str().unwrap();
    let intents = localstripe().await.intents_for(id).await;
    assert_eq!(intents.len(), 1);
    assert_eq!(intents[0]["amount"], 5376);
    assert_eq!(intents[0]["status"], "succeeded");
    assert_eq!(order["payment"]["provider_id"], intents[0]["id"]);

    let mine = json(s.app.get_as(&s.shopper, "/orders").await).await;
    assert_eq!(mine["orders"][0]["id"], id);
    let tracking = json(s.app.get_as(&s.shopper, &format!("/orders/{id}/tracking")).await).await;
    assert_eq!(tracking["status"], "TRANSIT");
    assert_eq!(tracking["events"].as_array().unwrap().len(), 2);
    // Another user cannot see it.
    s.app.register("stranger").await;
    let stranger = s.app.login("stranger").await;
    assert_eq!(
        s.app.get_as(&stranger, &format!("/orders/{id}")).await.status(),
        404
    );
    s.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_card_is_402_with_stock_restored_and_no_order() {
    let s = shop(ShopOptions::default()).await;
    s.add_product("WIDGET-2", 1000, 5).await;
    let resp = s
        .checkout(
            "declined-1",
            &cart(&[("WIDGET-2", 2)], "pm_card_chargeCustomerFail", None),
        )
        .await;
    let body = error_code(resp, 402).await;
    assert_eq!(body["error"]["code"], "payment_declined");
    assert!(body["error"]["message"].as_str().unwrap().contains("declined"));
    assert_eq!(s.stock("WIDGET-2").await, 5);
    assert_eq!(
        json(s.app.get_as(&s.shopper, "/orders").await).await["orders"],
        json!([])
    );
    s.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_are_answered_once_and_charged_once() {
    let s = shop(ShopOptions::default()).await;
    s.add_product("WIDGET-3", 1500, 10).await;
    let body = cart(&[("WIDGET-3", 1)], "pm_card_visa", None);

    // Two at once with the same key: one runs, the other waits for it.
    let (a, b) = tokio::join!(s.checkout("same-key", &body), s.checkout("same-key", &body));
    let (sa, sb) = (a.status(), b.status());
    let (ta, tb) = (a.text().await.unwrap(), b.text().await.unwrap());
    assert_eq!((sa.as_u16(), sb.as_u16()), (201, 201));
    assert_eq!(ta, tb, "identical responses");
    // And once more later.
    let c = s.checkout("same-key", &body).await;
    assert_eq!(c.status(), 201);
    assert_eq!(c.headers()["idempotent-replayed"], "true");
    assert_eq!(c.text().await.unwrap(), ta);

    let id = serde_json::from_str::<serde_json::Value>(&ta).unwrap()["order"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        localstripe().await.intents_for(&id).await.len(),
        1,
        "one PaymentIntent"
    );
    assert_eq!(s.stock("WIDGET-3").await, 9);
    assert_eq!(s.shippo.labels_bought.load(Ordering::SeqCst), 1);

    let other = cart(&[("WIDGET-3", 2)], "pm_card_visa", None);
    let body = error_code(s.checkout("same-key", &other).await, 422).await;
    assert_eq!(body["error"]["code"], "idempotency_mismatch");

    let no_key = s
        .app
        .client
        .post(s.app.url("/checkout"))
        .bearer_auth(&s.shopper)
        .json(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(no_key, 400).await["error"]["code"],
        "invalid_idempotency_key"
    );
    // A declined first attempt is replayed too: the same key never charges again.
    let d = cart(&[("WIDGET-3", 1)], "pm_card_chargeCustomerFail", None);
    assert_eq!(s.checkout("declined-key", &d).await.status(), 402);
    assert_eq!(s.checkout("declined-key", &d).await.status(), 402);
    s.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_checkouts_never_oversell() {
    let s = shop(ShopOptions {
        rules: false,
        parallel_checkouts: Some(200),
        ..Default::default()
    })
    .await;
    s.add_product("HOT-1", 999, 50).await;
    let body = cart(&[("HOT-1", 1)], "pm_card_visa", None);
    let attempts: Vec<_> = (0..200)
        .map(|i| s.spawn_checkout(format!("rush-{i}"), &body))
        .collect();
    let mut orders = HashSet::new();
    let mut out_of_stock = 0;
    for a in attempts {
        let (status, body) = a.await.unwrap();
        match status {
            201 => {
                orders.insert(body["order"]["id"].as_str().unwrap().to_string());
            }
            409 => {
                assert_eq!(body["error"]["code"], "out_of_stock");
                out_of_stock += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(orders.len(), 50, "exactly the stock");
    assert_eq!(out_of_stock, 150);
    assert_eq!(s.stock("HOT-1").await, 0);
    let charged: Vec<_> = localstripe()
        .await
        .payment_intents()
        .await
        .into_iter()
        .filter(|pi| {
            pi["status"] == "succeeded"
                && pi["metadata"]["order_id"]
                    .as_str()
                    .is_some_and(|o| orders.contains(o))
        })
        .collect();
    assert_eq!(charged.len(), 50, "exactly 50 successful charges");
    s.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_provider_that_never_answers_keeps_the_order_pending_with_its_stock() {
    // A "Stripe" that accepts connections and never answers: neither the charge nor
    // the lookup after it tells whether money moved, so the order is not dropped (the
    // reconciler settles it once the provider answers; see checkout_abandoned).
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = silent.accept().await {
            held.push(conn);
        }
    });
    let s = shop(ShopOptions {
        payments: Payments::Stripe {
            base_url: Some(format!("http://127.0.0.1:{port}")),
            timeout_ms: 1000,
        },
        rules: false,
        ..Default::default()
    })
    .await;
    s.add_product("SLOW-1", 1000, 3).await;
    let body = cart(&[("SLOW-1", 2)], "pm_card_visa", None);
    let resp = s.checkout("slow-1", &body).await;
    assert_eq!(error_code(resp, 502).await["error"]["code"], "payment_failed");
    assert_eq!(s.stock("SLOW-1").await, 1, "held by the unsettled order");
    let orders = json(s.app.get_as(&s.shopper, "/orders").await).await;
    assert_eq!(orders["orders"][0]["status"], "pending", "{orders}");
    let retry = s.checkout("slow-1", &body).await;
    assert_eq!(
        error_code(retry, 409).await["error"]["code"],
        "request_in_progress"
    );
    s.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_verified_and_applied_once_and_refunds_restore_stock() {
    let s = shop(ShopOptions {
        rules: false,
        ..Default::default()
    })
    .await;
    s.add_product("HOOK-1", 2000, 4).await;
    s.add_product("REF-1", 3000, 4).await;
    let paid = json(
        s.checkout("hook-1", &cart(&[("HOOK-1", 1)], "pm_card_visa", None))
            .await,
    )
    .await;
    let id = paid["order"]["id"].as_str().unwrap().to_string();
    let pi = paid["order"]["payment"]["provider_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(s.stock("HOOK-1").await, 3);

    let total = paid["order"]["total"].as_i64().unwrap();
    let event = json!({ "id": "evt_1", "object": "event", "type": "charge.refunded",
                        "data": { "object": { "id": "ch_1", "object": "charge", "payment_intent": pi,
                                              "amount": total, "amount_refunded": total, "currency": "usd",
                                              "refunded": true } } })
    .to_string();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let post = |sig: String| {
        s.app
            .client
            .post(s.app.url("/webhooks/stripe"))
            .header("stripe-signature", sig)
            .header("content-type", "application/json")
            .body(event.clone())
            .send()
    };
    let bad = post(stripe_signature(&event, now, "whsec_wrong")).await.unwrap();
    assert_eq!(error_code(bad, 400).await["error"]["code"], "invalid_webhook");
    let old = post(stripe_signature(&event, now - 3600, WEBHOOK_SECRET))
        .await
        .unwrap();
    assert_eq!(old.status(), 400, "outside the 5-minute tolerance");
    assert_eq!(
        json(s.app.get_as(&s.shopper, &format!("/orders/{id}")).await).await["order"]["status"],
        "fulfilled"
    );

    let good = json(post(stripe_signature(&event, now, WEBHOOK_SECRET)).await.unwrap()).await;
    assert_eq!(good, json!({ "received": true, "applied": true }));
    let again = json(post(stripe_signature(&event, now, WEBHOOK_SECRET)).await.unwrap()).await;
    assert_eq!(again["applied"], false, "applied once");
    assert_eq!(
        json(s.app.get_as(&s.shopper, &format!("/orders/{id}")).await).await["order"]["status"],
        "refunded"
    );
    assert_eq!(s.stock("HOOK-1").await, 4);

    // An admin refund, through the payment plugin.
    let paid = json(
        s.checkout("ref-1", &cart(&[("REF-1", 2)], "pm_card_visa", None))
            .await,
    )
    .await;
    let id = paid["order"]["id"].as_str().unwrap().to_string();
    assert_eq!(s.stock("REF-1").await, 2);
    let refund = |token: String| {
        s.app
            .client
            .post(s.app.url(&format!("/orders/{id}/refund")))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(refund(s.shopper.clone()).await.unwrap().status(), 403);
    let done = json(refund(s.admin.clone()).await.unwrap()).await;
    assert_eq!(done["order"]["status"], "refunded");
    assert!(done["order"]["payment"]["refund_id"]
        .as_str()
        .unwrap()
        .starts_with("re_"));
    assert_eq!(s.stock("REF-1").await, 4);
    let twice = refund(s.admin.clone()).await.unwrap();
    assert_eq!(error_code(twice, 409).await["error"]["code"], "not_refundable");
    s.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_reject_and_misbehaving_rules_fail_cleanly() {
    let s = shop(ShopOptions::default()).await;
    s.add_product("LTD-1", 500, 10).await;

    let expired = s
        .checkout("r1", &cart(&[("LTD-1", 1)], "pm_card_visa", Some("OLDCODE")))
        .await;
    assert_eq!(
        error_code(expired, 422).await["error"]["code"],
        "discount_code_expired"
    );
    let unknown = s
        .checkout("r2", &cart(&[("LTD-1", 1)], "pm_card_visa", Some("NOPE")))
        .await;
    assert_eq!(
        error_code(unknown, 422).await["error"]["code"],
        "unknown_discount_code"
    );
    let minimum = s
        .checkout("r3", &cart(&[("LTD-1", 1)], "pm_card_visa", Some("BIGSPENDER")))
        .await;
    assert_eq!(
        error_code(minimum, 422).await["error"]["code"],
        "discount_minimum_not_met"
    );
    let too_many = s
        .checkout("r4", &cart(&[("LTD-1", 3)], "pm_card_visa", None))
        .await;
    let body = error_code(too_many, 422).await;
    assert_eq!(body["error"]["code"], "quantity_limit");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("limited to 2"));
    assert_eq!(s.stock("LTD-1").await, 10, "nothing reserved");
    for key in ["r1", "r2", "r3", "r4"] {
        assert!(s.intents_for_key(key).await.is_empty(), "{key}: nothing charged");
    }

    // The limit counts earlier purchases.
    assert_eq!(
        s.checkout("r5", &cart(&[("LTD-1", 2)], "pm_card_visa", None))
            .await
            .status(),
        201
    );
    let more = s
        .checkout("r6", &cart(&[("LTD-1", 1)], "pm_card_visa", None))
        .await;
    assert_eq!(error_code(more, 422).await["error"]["code"], "quantity_limit");
    s.app.stop().await;

    // A rule that runs out of fuel fails the checkout before anything is reserved.
    let s = shop(ShopOptions {
        tax_fuel: Some(1_000),
        ..Default::default()
    })
    .await;
    s.add_product("FUEL-1", 500, 10).await;
    let resp = s
        .checkout("f1", &cart(&[("FUEL-1", 1)], "pm_card_visa", None))
        .await;
    let body = error_code(resp, 503).await;
    assert_eq!(body["error"]["code"], "plugin_fuel_exhausted");
    assert_eq!(body["error"]["plugin"], "tax");
    assert_eq!(s.stock("FUEL-1").await, 10);
    s.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_label_refunds_the_charge_and_restores_stock() {
    let s = shop(ShopOptions {
        rules: false,
        ..Default::default()
    })
    .await;
    s.add_product("LBL-1", 1200, 6).await;
    s.shippo.fail_labels.store(true, Ordering::SeqCst);
    let resp = s
        .checkout("lbl-1", &cart(&[("LBL-1", 2)], "pm_card_visa", None))
        .await;
    assert_eq!(error_code(resp, 502).await["error"]["code"], "shipping_failed");
    assert_eq!(s.stock("LBL-1").await, 6);
    let orders = json(s.app.get_as(&s.shopper, "/orders").await).await;
    let order = &orders["orders"][0];
    assert_eq!(order["status"], "failed");
    assert!(order["payment"]["refund_id"].as_str().unwrap().starts_with("re_"));

    // A 502 is not final: the same key may be retried, and the new attempt charges
    // under a new provider idempotency key (the first charge was refunded).
    s.shippo.fail_labels.store(false, Ordering::SeqCst);
    let retry = s
        .checkout("lbl-1", &cart(&[("LBL-1", 2)], "pm_card_visa", None))
        .await;
    assert_eq!(retry.status(), 201);
    let retried = json(retry).await["order"].clone();
    assert_eq!(retried["id"], order["id"], "same key, same order");
    assert_eq!(retried["status"], "fulfilled");
    assert_eq!(s.stock("LBL-1").await, 4);
    let intents = localstripe()
        .await
        .intents_for(order["id"].as_str().unwrap())
        .await;
    assert_eq!(intents.len(), 2, "the refunded charge and the new one");

    // Orders come newest first, in pages.
    let other = s
        .checkout("lbl-2", &cart(&[("LBL-1", 1)], "pm_card_visa", None))
        .await;
    assert_eq!(other.status(), 201);
    let other = json(other).await["order"]["id"].clone();
    let first = json(s.app.get_as(&s.shopper, "/orders?limit=1").await).await;
    assert_eq!(first["orders"].as_array().unwrap().len(), 1);
    assert_eq!(first["orders"][0]["id"], other);
    let cursor = first["next_cursor"].as_str().expect("a second page").to_string();
    let second = json(
        s.app
            .get_as(&s.shopper, &format!("/orders?limit=1&cursor={cursor}"))
            .await,
    )
    .await;
    assert_eq!(second["orders"][0]["id"], order["id"]);
    assert!(second["next_cursor"].is_null(), "{second}");
    for bad in ["/orders?limit=0", "/orders?limit=abc", "/orders?cursor=zz"] {
        let resp = s.app.get_as(&s.shopper, bad).await;
        assert_eq!(
            error_code(resp, 400).await["error"]["code"],
            "invalid_query",
            "{bad}"
        );
    }
    s.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_payment_provider_by_configuration_alone() {
    let (port, razorpay) = fakes::razorpay().await;
    let s = shop(ShopOptions {
        payments: Payments::Razorpay { port },
        rules: false,
        ..Default::default()
    })
    .await;
    s.add_product("SWAP-1", 4200, 5).await;
    let resp = s
        .checkout("swap-1", &cart(&[("SWAP-1", 1)], "pay_OK123456", None))
        .await;
    assert_eq!(resp.status(), 201);
    let order = json(resp).await["order"].clone();
    assert_eq!(order["payment"]["provider"], "razorpay");
    assert_eq!(order["payment"]["provider_id"], "pay_OK123456");
    assert_eq!(razorpay.captures.load(Ordering::SeqCst), 1);
    let declined = s
        .checkout("swap-2", &cart(&[("SWAP-1", 1)], "pay_fail0001", None))
        .await;
    assert_eq!(
        error_code(declined, 402).await["error"]["code"],
        "payment_declined"
    );
    assert_eq!(s.stock("SWAP-1").await, 4);
    s.app.stop().await;
}
