//! `/admin/orders`: operators see every customer's orders, filter by state and page
//! through them; customers cannot.

use serde_json::Value;

use crate::helpers::{error_code, json};
use crate::shop::{cart, shop, ShopOptions};

const SKU: &str = "ADM-1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_list_filter_and_read_every_customers_orders() {
    let s = shop(ShopOptions {
        rules: false,
        ..ShopOptions::default()
    })
    .await;
    s.add_product(SKU, 1500, 20).await;
    s.app.register("second").await;
    let second = s.app.login("second").await;

    let mut ids = Vec::new();
    for (token, key) in [
        (&s.shopper, "a"),
        (&s.shopper, "b"),
        (&second, "c"),
        (&s.shopper, "d"),
    ] {
        let resp = s
            .checkout_as(token, key, &cart(&[(SKU, 1)], "pm_card_visa", None))
            .await;
        assert_eq!(resp.status(), 201);
        ids.push(json(resp).await["order"]["id"].as_str().unwrap().to_string());
    }
    let refunded = &ids[1];
    let resp = s
        .app
        .client
        .post(s.app.url(&format!("/orders/{refunded}/refund")))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // Pages of two, newest first, across both customers.
    let mut seen: Vec<Value> = Vec::new();
    let mut path = "/admin/orders?limit=2".to_string();
    loop {
        let page = json(s.app.get_as(&s.admin, &path).await).await;
        let orders = page["orders"].as_array().unwrap();
        assert!(orders.len() <= 2);
        seen.extend(orders.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/admin/orders?limit=2&cursor={c}"),
            None => break,
        }
    }
    let listed: Vec<&str> = seen.iter().map(|o| o["id"].as_str().unwrap()).collect();
    let newest_first: Vec<&str> = ids.iter().rev().map(String::as_str).collect();
    assert_eq!(listed, newest_first);
    let customers: std::collections::HashSet<&str> =
        seen.iter().map(|o| o["user_id"].as_str().unwrap()).collect();
    assert_eq!(customers.len(), 2, "both customers' orders");

    // Filtered by state.
    let page = json(s.app.get_as(&s.admin, "/admin/orders?status=refunded").await).await;
    let only: Vec<&str> = page["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(only, vec![refunded.as_str()]);
    let page = json(s.app.get_as(&s.admin, "/admin/orders?status=pending").await).await;
    assert_eq!(page["orders"].as_array().unwrap().len(), 0);

    // One order of another customer.
    let other = &ids[2];
    let body = json(s.app.get_as(&s.admin, &format!("/admin/orders/{other}")).await).await;
    assert_eq!(body["order"]["id"], other.as_str());
    error_code(s.app.get_as(&s.admin, "/admin/orders/nope").await, 404).await;

    // Bad queries, and no one else.
    for bad in ["status=lost", "limit=0", "cursor=zz", "colour=red"] {
        let body = error_code(s.app.get_as(&s.admin, &format!("/admin/orders?{bad}")).await, 400).await;
        assert_eq!(body["error"]["code"], "invalid_query", "{bad}: {body}");
    }
    error_code(s.app.get_as(&s.shopper, "/admin/orders").await, 403).await;
    error_code(
        s.app.get_as(&s.shopper, &format!("/admin/orders/{other}")).await,
        403,
    )
    .await;
    error_code(s.app.get("/admin/orders").await, 401).await;
    s.app.stop().await;
}
