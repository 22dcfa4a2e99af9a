//! SledOrders: reservations never oversell or duplicate, idempotency claims, pages.

use super::*;

fn open() -> (sled::Db, SledOrders) {
    let db = sled::Config::new().temporary(true).open().unwrap();
    let orders = SledOrders::open(&db).unwrap();
    (db, orders)
}

fn order(id: &str, user: &str, created_at: i64, sku: &str, quantity: u32) -> OrderRecord {
    serde_json::from_value(serde_json::json!({
        "id": id, "user_id": user, "status": "pending", "currency": "USD",
        "subtotal": 100 * i64::from(quantity), "total": 100 * i64::from(quantity),
        "lines": [{ "sku": sku, "name": "Thing", "quantity": quantity,
                    "unit_price": { "amount": 100, "currency": "USD" }, "total": 100 * i64::from(quantity) }],
        "adjustments": [],
        "shipping_address": { "name": "A", "line1": "B", "line2": null, "city": "C", "region": null,
                              "postal_code": "1", "country": "US", "phone": null, "email": null },
        "shipment": null, "payment": null, "history": [], "created_at": created_at, "stock_released": false
    }))
    .unwrap()
}

fn set_stock(db: &sled::Db, sku: &str, n: u64) {
    db.open_tree("stock")
        .unwrap()
        .insert(sku, &n.to_be_bytes())
        .unwrap();
}

#[test]
fn reserve_takes_stock_once_and_refuses_a_second_order_with_the_same_id() {
    let (db, orders) = open();
    set_stock(&db, "SKU", 3);
    orders.reserve(&order("o1", "u", 1, "SKU", 2)).unwrap();
    assert_eq!(orders.stock("SKU").unwrap(), 1);
    assert!(matches!(
        orders.reserve(&order("o1", "u", 2, "SKU", 1)),
        Err(ReserveError::Exists(id)) if id == "o1"
    ));
    assert!(matches!(
        orders.reserve(&order("o2", "u", 3, "SKU", 2)),
        Err(ReserveError::OutOfStock { available: 1, .. })
    ));
    assert_eq!(
        orders.stock("SKU").unwrap(),
        1,
        "failed reservations change nothing"
    );

    let mut o1 = orders.get("o1").unwrap().unwrap();
    o1.transition(OrderStatus::Failed, 5, None);
    orders.save(&mut o1, true).unwrap();
    orders.save(&mut o1, true).unwrap();
    assert_eq!(orders.stock("SKU").unwrap(), 3, "stock goes back exactly once");
    orders.discard(&o1).unwrap();
    assert_eq!(orders.stock("SKU").unwrap(), 3);
    assert!(orders.get("o1").unwrap().is_none());
}

#[test]
fn charge_keys_change_only_with_the_attempt() {
    let mut o = order("abc", "u", 1, "SKU", 1);
    assert_eq!(o.charge_key(), "plinth-abc");
    o.attempt = 2;
    assert_eq!(o.charge_key(), "plinth-abc-a2");
}

#[test]
fn claims_replay_mismatch_take_over_and_expire() {
    let (_db, orders) = open();
    assert!(matches!(
        orders.claim("k", "h1", "o", 1_000, 60_000).unwrap(),
        Claim::Fresh
    ));
    assert!(matches!(
        orders.claim("k", "h1", "o", 2_000, 60_000).unwrap(),
        Claim::InFlight
    ));
    assert!(matches!(
        orders.claim("k", "h2", "o", 2_000, 60_000).unwrap(),
        Claim::Mismatch
    ));
    // A claim with no answer for longer than the abandonment window is taken over.
    assert!(matches!(
        orders.claim("k", "h1", "o", 70_000, 60_000).unwrap(),
        Claim::Fresh
    ));
    // After a restart every unanswered claim is released at once.
    assert!(matches!(
        orders.claim("j", "h", "p", 1_000, 60_000).unwrap(),
        Claim::Fresh
    ));
    assert_eq!(orders.release_unfinished_claims().unwrap(), 2);
    assert!(matches!(
        orders.claim("j", "h", "p", 1_500, 60_000).unwrap(),
        Claim::Fresh
    ));
    let answer = StoredResponse {
        status: 201,
        body: "{}".into(),
    };
    orders.complete("j", answer).unwrap();
    assert_eq!(
        orders.release_unfinished_claims().unwrap(),
        0,
        "answered keys stay"
    );
    assert!(matches!(orders.claim("j", "h", "p", 2_000, 60_000).unwrap(), Claim::Done(r) if r.status == 201));
    assert_eq!(
        orders.expire_idempotency(10_000, 60_000).unwrap(),
        0,
        "younger than the TTL"
    );
    assert_eq!(orders.expire_idempotency(100_000, 60_000).unwrap(), 1);
    assert!(matches!(
        orders.claim("j", "h", "p", 100_000, 60_000).unwrap(),
        Claim::Fresh
    ));
}

#[test]
fn pages_list_a_users_orders_newest_first() {
    let (db, orders) = open();
    set_stock(&db, "SKU", 100);
    for i in 0..5 {
        orders
            .reserve(&order(&format!("a{i}"), "alice", 10 + i, "SKU", 1))
            .unwrap();
    }
    orders.reserve(&order("b0", "bob", 12, "SKU", 1)).unwrap();
    let ids = |v: &[OrderRecord]| v.iter().map(|o| o.id.clone()).collect::<Vec<_>>();
    let (first, next) = orders.page_for_user("alice", None, 2).unwrap();
    assert_eq!(ids(&first), ["a4", "a3"]);
    let (second, next) = orders.page_for_user("alice", next.as_deref(), 2).unwrap();
    assert_eq!(ids(&second), ["a2", "a1"]);
    let (last, next) = orders.page_for_user("alice", next.as_deref(), 2).unwrap();
    assert_eq!(ids(&last), ["a0"]);
    assert!(next.is_none());
    let (exact, next) = orders.page_for_user("bob", None, 1).unwrap();
    assert_eq!(ids(&exact), ["b0"]);
    assert!(next.is_none(), "no empty last page");
    // Another user's position gives nothing.
    let (_, alice_next) = orders.page_for_user("alice", None, 1).unwrap();
    let (stolen, _) = orders.page_for_user("bob", alice_next.as_deref(), 5).unwrap();
    assert!(stolen.is_empty());
}

#[test]
fn purchase_counters_follow_the_units_out_of_stock() {
    let (db, orders) = open();
    set_stock(&db, "SKU", 10);
    set_stock(&db, "OTHER", 10);
    let bought = |orders: &SledOrders| orders.purchased("u", &["SKU", "OTHER"]).unwrap();
    let mut a = order("a", "u", 1, "SKU", 2);
    orders.reserve(&a).unwrap();
    assert_eq!(
        bought(&orders),
        [("SKU".into(), 2), ("OTHER".into(), 0)],
        "a reservation counts at once (parallel checkouts see it)"
    );
    a.transition(OrderStatus::Paid, 2, None);
    orders.save(&mut a, false).unwrap();
    a.transition(OrderStatus::Fulfilled, 3, None);
    orders.save(&mut a, false).unwrap();
    assert_eq!(
        bought(&orders)[0],
        ("SKU".into(), 2),
        "counted once across states"
    );
    assert_eq!(orders.purchased("someone-else", &["SKU"]).unwrap()[0].1, 0);
    a.transition(OrderStatus::Refunded, 4, None);
    orders.save(&mut a, true).unwrap();
    orders.save(&mut a, true).unwrap();
    assert_eq!(
        bought(&orders)[0],
        ("SKU".into(), 0),
        "a refund takes it back, once"
    );

    // A declined order is discarded: its units go back to stock and off the counter.
    let c = order("c", "u", 7, "SKU", 3);
    orders.reserve(&c).unwrap();
    assert_eq!(bought(&orders)[0].1, 3);
    orders.discard(&c).unwrap();
    orders.discard(&c).unwrap();
    assert_eq!(bought(&orders)[0].1, 0);
    assert_eq!(orders.stock("SKU").unwrap(), 10);

    // A database from before the counters (or from when they counted sold orders only)
    // gets them rebuilt on open: pending and sold units, not released ones.
    let mut b = order("b", "u", 5, "OTHER", 3);
    orders.reserve(&b).unwrap();
    b.transition(OrderStatus::Paid, 6, None);
    orders.save(&mut b, false).unwrap();
    orders.reserve(&order("d", "u", 8, "SKU", 1)).unwrap();
    db.open_tree("user-purchases").unwrap().clear().unwrap();
    db.open_tree("orders-meta").unwrap().clear().unwrap();
    let reopened = SledOrders::open(&db).unwrap();
    assert_eq!(bought(&reopened), [("SKU".into(), 1), ("OTHER".into(), 3)]);
}

#[test]
fn payments_are_found_only_through_the_plugin_that_took_them() {
    let (db, orders) = open();
    set_stock(&db, "SKU", 10);
    let mut a = order("a", "u", 1, "SKU", 1);
    orders.reserve(&a).unwrap();
    a.payment = Some(Payment {
        provider: "stripe".into(),
        provider_id: "pi_1".into(),
        refund_id: None,
    });
    a.transition(OrderStatus::Paid, 2, None);
    orders.save(&mut a, false).unwrap();
    assert_eq!(orders.by_payment("stripe", "pi_1").unwrap().unwrap().id, "a");
    assert!(orders.by_payment("razorpay", "pi_1").unwrap().is_none());
    assert!(orders.by_payment("stripe", "pi_2").unwrap().is_none());

    // An index entry from before the scoping (a bare provider id) still finds the order,
    // for its own plugin only.
    let tree = db.open_tree("orders-by-payment").unwrap();
    tree.clear().unwrap();
    tree.insert("pi_1", "a").unwrap();
    assert_eq!(orders.by_payment("stripe", "pi_1").unwrap().unwrap().id, "a");
    assert!(orders.by_payment("razorpay", "pi_1").unwrap().is_none());
}

#[test]
fn unsettled_orders_are_indexed_oldest_first_until_settled() {
    let (db, orders) = open();
    set_stock(&db, "SKU", 10);
    for (id, at) in [("late", 30), ("early", 10), ("mid", 20)] {
        orders.reserve(&order(id, "u", at, "SKU", 1)).unwrap();
    }
    assert_eq!(orders.unsettled(i64::MAX, 10).unwrap(), ["early", "mid", "late"]);
    assert_eq!(
        orders.unsettled(20, 10).unwrap(),
        ["early", "mid"],
        "created at or before"
    );
    assert_eq!(orders.unsettled(i64::MAX, 1).unwrap(), ["early"]);

    let mut mid = orders.get("mid").unwrap().unwrap();
    mid.transition(OrderStatus::Failed, 40, None);
    orders.save(&mut mid, true).unwrap();
    orders.discard(&orders.get("late").unwrap().unwrap()).unwrap();
    assert_eq!(orders.unsettled(i64::MAX, 10).unwrap(), ["early"]);

    // Paid with a label still to buy stays unsettled; with its label it is settled.
    let mut early = orders.get("early").unwrap().unwrap();
    early.shipment = Some(Shipment {
        rate_id: "r".into(),
        carrier: "USPS".into(),
        service: "Priority".into(),
        amount: 550,
        shipment_id: None,
        tracking_number: None,
        label_url: None,
    });
    early.transition(OrderStatus::Paid, 50, None);
    orders.save(&mut early, false).unwrap();
    assert_eq!(orders.unsettled(i64::MAX, 10).unwrap(), ["early"]);
    early.shipment.as_mut().unwrap().label_url = Some("https://labels.example.com/1.pdf".into());
    early.transition(OrderStatus::Fulfilled, 60, None);
    orders.save(&mut early, false).unwrap();
    assert!(orders.unsettled(i64::MAX, 10).unwrap().is_empty());

    // A database from before the index: built once on open.
    orders.reserve(&order("new", "u", 70, "SKU", 1)).unwrap();
    db.open_tree("orders-unsettled").unwrap().clear().unwrap();
    db.open_tree("orders-meta")
        .unwrap()
        .remove("unsettled-index")
        .unwrap();
    let reopened = SledOrders::open(&db).unwrap();
    assert_eq!(reopened.unsettled(i64::MAX, 10).unwrap(), ["new"]);
}

#[test]
fn all_orders_page_newest_first_by_status_and_the_index_is_rebuilt_for_old_databases() {
    let (db, orders) = open();
    set_stock(&db, "SKU", 10);
    for (i, user) in ["u1", "u2", "u1"].iter().enumerate() {
        orders
            .reserve(&order(&format!("o{i}"), user, 10 + i as i64, "SKU", 1))
            .unwrap();
    }
    let mut paid = orders.get("o1").unwrap().unwrap();
    paid.transition(OrderStatus::Paid, 20, None);
    orders.save(&mut paid, false).unwrap();
    let ids = |page: &[OrderRecord]| page.iter().map(|o| o.id.clone()).collect::<Vec<_>>();

    let (first, next) = orders.page_all(None, None, 2).unwrap();
    assert_eq!(ids(&first), ["o2", "o1"]);
    let (rest, next) = orders.page_all(None, next.as_deref(), 2).unwrap();
    assert_eq!((ids(&rest), next), (vec!["o0".to_string()], None));
    let (only, _) = orders.page_all(Some(OrderStatus::Paid), None, 10).unwrap();
    assert_eq!(ids(&only), ["o1"]);

    // A discarded order leaves the index with it.
    orders.discard(&orders.get("o0").unwrap().unwrap()).unwrap();
    assert_eq!(ids(&orders.page_all(None, None, 10).unwrap().0), ["o2", "o1"]);

    // A database from before the index: rebuilt on open.
    db.open_tree("orders-by-time").unwrap().clear().unwrap();
    let reopened = SledOrders::open(&db).unwrap();
    assert_eq!(ids(&reopened.page_all(None, None, 10).unwrap().0), ["o2", "o1"]);
}
