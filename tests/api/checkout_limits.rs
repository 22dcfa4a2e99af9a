//! Limits that must hold against a customer who pushes: per-customer purchase limits
//! under parallel checkouts, and amounts too large to compute.

use crate::helpers::{error_code, json};
use crate::shop::{cart, shop, ShopOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purchase_limit_holds_under_parallel_checkouts() {
    // The shop's limits rule allows 2 units of LTD-1 per customer.
    let s = shop(ShopOptions {
        parallel_checkouts: Some(20),
        ..ShopOptions::default()
    })
    .await;
    s.add_product("LTD-1", 700, 50).await;
    let body = cart(&[("LTD-1", 1)], "pm_card_visa", None);
    let attempts: Vec<_> = (0..20)
        .map(|i| s.spawn_checkout(format!("rush-{i}"), &body))
        .collect();
    let mut placed = Vec::new();
    for a in attempts {
        let (status, body) = a.await.unwrap();
        match status {
            201 => placed.push(body["order"]["id"].as_str().unwrap().to_string()),
            422 => assert_eq!(body["error"]["code"], "quantity_limit", "{body}"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(placed.len(), 2, "the limit, no more: {placed:?}");
    assert_eq!(s.stock("LTD-1").await, 48);

    // A refunded order gives its units back to the customer's allowance.
    let refund = s
        .app
        .client
        .post(s.app.url(&format!("/orders/{}/refund", placed[0])))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(refund.status(), 200);
    // So does a failed one: a declined card's reservation is counted while it runs,
    // then given back.
    let declined = s
        .checkout(
            "declined",
            &cart(&[("LTD-1", 1)], "pm_card_chargeCustomerFail", None),
        )
        .await;
    assert_eq!(
        error_code(declined, 402).await["error"]["code"],
        "payment_declined"
    );
    assert_eq!(s.checkout("again", &body).await.status(), 201);
    let over = s.checkout("over", &body).await;
    assert_eq!(error_code(over, 422).await["error"]["code"], "quantity_limit");
    assert_eq!(s.stock("LTD-1").await, 48);
    s.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amounts_too_large_to_compute_are_refused_not_wrapped() {
    let s = shop(ShopOptions::default()).await;
    // Two products at 9,223,372,036,854.78 USD (within the price bound), 10,000 of
    // each: 2^64 + 8,384 cents in all, which wrapping arithmetic charges as 83.84 USD.
    let price: i64 = 922_337_203_685_478;
    for sku in ["HUGE-1", "HUGE-2"] {
        s.add_product(sku, price, 10_000).await;
    }
    let body = cart(&[("HUGE-1", 10_000), ("HUGE-2", 10_000)], "pm_card_visa", None);
    let resp = s.checkout("huge", &body).await;
    let status = resp.status();
    let answer = json(resp).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"]["code"], "amount_too_large", "{answer}");
    let quote = s.quote(&body).await;
    assert_eq!(error_code(quote, 422).await["error"]["code"], "amount_too_large");

    // Nothing reserved, no order, no charge.
    assert_eq!(
        (s.stock("HUGE-1").await, s.stock("HUGE-2").await),
        (10_000, 10_000)
    );
    let mine = json(s.app.get_as(&s.shopper, "/orders").await).await;
    assert_eq!(mine["orders"], serde_json::json!([]));
    assert!(s.intents_for_key("huge").await.is_empty());

    // One line that does not fit on its own (the largest price × the most units).
    s.add_product("HUGE-3", 1_000_000_000_000_000, 10_000).await;
    let one = cart(&[("HUGE-3", 10_000)], "pm_card_visa", None);
    let err = error_code(s.checkout("one-line", &one).await, 422).await;
    assert_eq!(err["error"]["code"], "amount_too_large");
    assert_eq!(s.stock("HUGE-3").await, 10_000);
    s.app.stop().await;
}
