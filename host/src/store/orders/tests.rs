//! The order store's contract, on sled and on PostgreSQL alike: reservations never
//! oversell or duplicate, saves are compare-and-swaps that return stock once, pages.
//! Rebuilds of sled databases from older versions are sled's own.

use super::*;
use crate::store::postgres::{testing, Pg, PgOrders};

struct Fixture {
    backend: &'static str,
    orders: Box<dyn OrderStore>,
    sled: Option<sled::Db>,
    pg: Option<Pg>,
}

impl Fixture {
    async fn set_stock(&self, sku: &str, n: u64) {
        if let Some(db) = &self.sled {
            set_stock(db, sku, n);
        }
        if let Some(pg) = &self.pg {
            sqlx::query(
                "INSERT INTO stock (sku, units) VALUES ($1, $2) ON CONFLICT (sku) DO UPDATE SET units = $2",
            )
            .bind(sku)
            .bind(n as i64)
            .execute(pg.pool())
            .await
            .unwrap();
        }
    }
}

async fn fixtures() -> Vec<Fixture> {
    let db = sled::Config::new().temporary(true).open().unwrap();
    let mut out = vec![Fixture {
        backend: "sled",
        orders: Box::new(SledOrders::open(&db).unwrap()),
        sled: Some(db),
        pg: None,
    }];
    if let Some(pg) = testing::fresh().await {
        out.push(Fixture {
            backend: "postgres",
            orders: Box::new(PgOrders::new(&pg)),
            sled: None,
            pg: Some(pg),
        });
    }
    out
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

fn id(raw: &str) -> OrderId {
    OrderId::parse(raw).unwrap()
}

fn user(raw: &str) -> UserId {
    UserId::parse(raw).unwrap()
}

fn names(ids: Vec<OrderId>) -> Vec<String> {
    ids.into_iter().map(|i| i.to_string()).collect()
}

/// The id of the order `plugin`'s charge `provider_id` belongs to.
async fn paid_by(orders: &dyn OrderStore, plugin: &str, provider_id: &str) -> Option<String> {
    let order = orders.by_payment(plugin, provider_id).await.unwrap();
    order.map(|o| o.id.to_string())
}

fn set_stock(db: &sled::Db, sku: &str, n: u64) {
    db.open_tree(trees::STOCK)
        .unwrap()
        .insert(sku, &n.to_be_bytes())
        .unwrap();
}

#[tokio::test]
async fn reserve_takes_stock_once_and_refuses_a_second_order_with_the_same_id() {
    for f in fixtures().await {
        let orders = &*f.orders;
        let backend = f.backend;
        eprintln!("backend: {backend}");
        f.set_stock("SKU", 3).await;
        orders.reserve(&order("o1", "u", 1, "SKU", 2)).await.unwrap();
        assert_eq!(orders.stock("SKU").await.unwrap(), 1);
        assert!(matches!(
            orders.reserve(&order("o1", "u", 2, "SKU", 1)).await,
            Err(ReserveError::Exists(id)) if id.as_str() == "o1"
        ));
        assert!(matches!(
            orders.reserve(&order("o2", "u", 3, "SKU", 2)).await,
            Err(ReserveError::OutOfStock { available: 1, .. })
        ));
        assert_eq!(
            orders.stock("SKU").await.unwrap(),
            1,
            "failed reservations change nothing"
        );

        let mut o1 = orders.get(&id("o1")).await.unwrap().unwrap();
        o1.transition(OrderStatus::Failed, 5, None);
        orders.save(&mut o1, true).await.unwrap();
        orders.save(&mut o1, true).await.unwrap();
        assert_eq!(
            orders.stock("SKU").await.unwrap(),
            3,
            "stock goes back exactly once"
        );
        orders.discard(&o1).await.unwrap();
        assert_eq!(orders.stock("SKU").await.unwrap(), 3);
        assert!(orders.get(&id("o1")).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn charge_keys_change_only_with_the_attempt() {
    let mut o = order("abc", "u", 1, "SKU", 1);
    assert_eq!(o.charge_key(), "plinth-abc");
    o.attempt = 2;
    assert_eq!(o.charge_key(), "plinth-abc-a2");
}

#[tokio::test]
async fn pages_list_a_users_orders_newest_first() {
    for f in fixtures().await {
        let orders = &*f.orders;
        let backend = f.backend;
        eprintln!("backend: {backend}");
        f.set_stock("SKU", 100).await;
        for i in 0..5 {
            orders
                .reserve(&order(&format!("a{i}"), "alice", 10 + i, "SKU", 1))
                .await
                .unwrap();
        }
        orders.reserve(&order("b0", "bob", 12, "SKU", 1)).await.unwrap();
        let ids = |v: &[OrderRecord]| v.iter().map(|o| o.id.to_string()).collect::<Vec<_>>();
        let (first, next) = orders.page_for_user(&user("alice"), None, 2).await.unwrap();
        assert_eq!(ids(&first), ["a4", "a3"]);
        let (second, next) = orders
            .page_for_user(&user("alice"), next.as_deref(), 2)
            .await
            .unwrap();
        assert_eq!(ids(&second), ["a2", "a1"]);
        let (last, next) = orders
            .page_for_user(&user("alice"), next.as_deref(), 2)
            .await
            .unwrap();
        assert_eq!(ids(&last), ["a0"]);
        assert!(next.is_none());
        let (exact, next) = orders.page_for_user(&user("bob"), None, 1).await.unwrap();
        assert_eq!(ids(&exact), ["b0"]);
        assert!(next.is_none(), "no empty last page");
        // Another user's position gives nothing.
        let (_, alice_next) = orders.page_for_user(&user("alice"), None, 1).await.unwrap();
        let (stolen, _) = orders
            .page_for_user(&user("bob"), alice_next.as_deref(), 5)
            .await
            .unwrap();
        assert!(stolen.is_empty());
    }
}

#[tokio::test]
async fn purchase_counters_follow_the_units_out_of_stock() {
    for f in fixtures().await {
        let orders = &*f.orders;
        let backend = f.backend;
        eprintln!("backend: {backend}");
        f.set_stock("SKU", 10).await;
        f.set_stock("OTHER", 10).await;
        async fn bought(orders: &dyn OrderStore) -> Vec<(String, u64)> {
            orders.purchased(&user("u"), &["SKU", "OTHER"]).await.unwrap()
        }
        let mut a = order("a", "u", 1, "SKU", 2);
        orders.reserve(&a).await.unwrap();
        assert_eq!(
            bought(orders).await,
            [("SKU".into(), 2), ("OTHER".into(), 0)],
            "a reservation counts at once (parallel checkouts see it)"
        );
        a.transition(OrderStatus::Paid, 2, None);
        orders.save(&mut a, false).await.unwrap();
        a.transition(OrderStatus::Fulfilled, 3, None);
        orders.save(&mut a, false).await.unwrap();
        assert_eq!(
            bought(orders).await[0],
            ("SKU".into(), 2),
            "counted once across states"
        );
        assert_eq!(
            orders.purchased(&user("someone-else"), &["SKU"]).await.unwrap()[0].1,
            0
        );
        a.transition(OrderStatus::Refunded, 4, None);
        orders.save(&mut a, true).await.unwrap();
        orders.save(&mut a, true).await.unwrap();
        assert_eq!(
            bought(orders).await[0],
            ("SKU".into(), 0),
            "a refund takes it back, once"
        );

        // A declined order is discarded: its units go back to stock and off the counter.
        let c = order("c", "u", 7, "SKU", 3);
        orders.reserve(&c).await.unwrap();
        assert_eq!(bought(orders).await[0].1, 3);
        orders.discard(&c).await.unwrap();
        orders.discard(&c).await.unwrap();
        assert_eq!(bought(orders).await[0].1, 0);
        assert_eq!(orders.stock("SKU").await.unwrap(), 10);

        // A database from before the counters (or from when they counted sold orders only)
        // gets them rebuilt on open: pending and sold units, not released ones.
        let mut b = order("b", "u", 5, "OTHER", 3);
        orders.reserve(&b).await.unwrap();
        b.transition(OrderStatus::Paid, 6, None);
        orders.save(&mut b, false).await.unwrap();
        orders.reserve(&order("d", "u", 8, "SKU", 1)).await.unwrap();
        let Some(db) = &f.sled else { continue };
        db.open_tree(trees::PURCHASES).unwrap().clear().unwrap();
        db.open_tree(trees::META).unwrap().clear().unwrap();
        let reopened = SledOrders::open(db).unwrap();
        assert_eq!(bought(&reopened).await, [("SKU".into(), 1), ("OTHER".into(), 3)]);
    }
}

#[tokio::test]
async fn payments_are_found_only_through_the_plugin_that_took_them() {
    for f in fixtures().await {
        let orders = &*f.orders;
        let backend = f.backend;
        eprintln!("backend: {backend}");
        f.set_stock("SKU", 10).await;
        let mut a = order("a", "u", 1, "SKU", 1);
        orders.reserve(&a).await.unwrap();
        a.payment = Some(Payment {
            provider: "stripe".into(),
            provider_id: "pi_1".into(),
            refund_id: None,
        });
        a.transition(OrderStatus::Paid, 2, None);
        orders.save(&mut a, false).await.unwrap();
        assert_eq!(paid_by(orders, "stripe", "pi_1").await.as_deref(), Some("a"));
        assert_eq!(paid_by(orders, "razorpay", "pi_1").await, None);
        assert_eq!(paid_by(orders, "stripe", "pi_2").await, None);

        // An index entry from before the scoping (a bare provider id) still finds the order,
        // for its own plugin only.
        let Some(db) = &f.sled else { continue };
        let tree = db.open_tree(trees::BY_PAYMENT).unwrap();
        tree.clear().unwrap();
        tree.insert("pi_1", "a").unwrap();
        assert_eq!(paid_by(orders, "stripe", "pi_1").await.as_deref(), Some("a"));
        assert_eq!(paid_by(orders, "razorpay", "pi_1").await, None);
    }
}

#[tokio::test]
async fn unsettled_orders_are_indexed_oldest_first_until_settled() {
    for f in fixtures().await {
        let orders = &*f.orders;
        let backend = f.backend;
        eprintln!("backend: {backend}");
        f.set_stock("SKU", 10).await;
        for (id, at) in [("late", 30), ("early", 10), ("mid", 20)] {
            orders.reserve(&order(id, "u", at, "SKU", 1)).await.unwrap();
        }
        assert_eq!(
            names(orders.unsettled(i64::MAX, 10).await.unwrap()),
            ["early", "mid", "late"]
        );
        assert_eq!(
            names(orders.unsettled(20, 10).await.unwrap()),
            ["early", "mid"],
            "created at or before"
        );
        assert_eq!(names(orders.unsettled(i64::MAX, 1).await.unwrap()), ["early"]);

        let mut mid = orders.get(&id("mid")).await.unwrap().unwrap();
        mid.transition(OrderStatus::Failed, 40, None);
        orders.save(&mut mid, true).await.unwrap();
        orders
            .discard(&orders.get(&id("late")).await.unwrap().unwrap())
            .await
            .unwrap();
        assert_eq!(names(orders.unsettled(i64::MAX, 10).await.unwrap()), ["early"]);

        // Paid with a label still to buy stays unsettled; with its label it is settled.
        let mut early = orders.get(&id("early")).await.unwrap().unwrap();
        early.shipment = Some(Shipment {
            rate_id: "r".into(),
            carrier: "USPS".into(),
            service: "Priority".into(),
            amount: early.money(550),
            shipment_id: None,
            tracking_number: None,
            label_url: None,
        });
        early.transition(OrderStatus::Paid, 50, None);
        orders.save(&mut early, false).await.unwrap();
        assert_eq!(names(orders.unsettled(i64::MAX, 10).await.unwrap()), ["early"]);
        early.shipment.as_mut().unwrap().label_url = Some("https://labels.example.com/1.pdf".into());
        early.transition(OrderStatus::Fulfilled, 60, None);
        orders.save(&mut early, false).await.unwrap();
        assert!(names(orders.unsettled(i64::MAX, 10).await.unwrap()).is_empty());

        // A database from before the index: built once on open.
        orders.reserve(&order("new", "u", 70, "SKU", 1)).await.unwrap();
        let Some(db) = &f.sled else { continue };
        db.open_tree(trees::UNSETTLED).unwrap().clear().unwrap();
        db.open_tree(trees::META)
            .unwrap()
            .remove("unsettled-index")
            .unwrap();
        let reopened = SledOrders::open(db).unwrap();
        assert_eq!(names(reopened.unsettled(i64::MAX, 10).await.unwrap()), ["new"]);
    }
}

#[tokio::test]
async fn all_orders_page_newest_first_by_status_and_the_index_is_rebuilt_for_old_databases() {
    for f in fixtures().await {
        let orders = &*f.orders;
        let backend = f.backend;
        eprintln!("backend: {backend}");
        f.set_stock("SKU", 10).await;
        for (i, user) in ["u1", "u2", "u1"].iter().enumerate() {
            orders
                .reserve(&order(&format!("o{i}"), user, 10 + i as i64, "SKU", 1))
                .await
                .unwrap();
        }
        let mut paid = orders.get(&id("o1")).await.unwrap().unwrap();
        paid.transition(OrderStatus::Paid, 20, None);
        orders.save(&mut paid, false).await.unwrap();
        let ids = |page: &[OrderRecord]| page.iter().map(|o| o.id.to_string()).collect::<Vec<_>>();

        let (first, next) = orders.page_all(None, None, 2).await.unwrap();
        assert_eq!(ids(&first), ["o2", "o1"]);
        let (rest, next) = orders.page_all(None, next.as_deref(), 2).await.unwrap();
        assert_eq!((ids(&rest), next), (vec!["o0".to_string()], None));
        let (only, _) = orders.page_all(Some(OrderStatus::Paid), None, 10).await.unwrap();
        assert_eq!(ids(&only), ["o1"]);

        // A discarded order leaves the index with it.
        orders
            .discard(&orders.get(&id("o0")).await.unwrap().unwrap())
            .await
            .unwrap();
        assert_eq!(
            ids(&orders.page_all(None, None, 10).await.unwrap().0),
            ["o2", "o1"]
        );

        // A database from before the index: rebuilt on open.
        let Some(db) = &f.sled else { continue };
        db.open_tree(trees::BY_TIME).unwrap().clear().unwrap();
        let reopened = SledOrders::open(db).unwrap();
        assert_eq!(
            ids(&reopened.page_all(None, None, 10).await.unwrap().0),
            ["o2", "o1"]
        );
    }
}
