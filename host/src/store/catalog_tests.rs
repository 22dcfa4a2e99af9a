//! The catalog store's contract, on sled and on PostgreSQL alike: products with their
//! stock, and the change feed every write appends to in commit order.

use super::*;
use crate::domain::{Currency, Money};
use crate::store::postgres::{testing, PgCatalog};

async fn backends() -> Vec<(&'static str, Box<dyn CatalogStore>)> {
    let db = sled::Config::new().temporary(true).open().unwrap();
    let mut out: Vec<(&'static str, Box<dyn CatalogStore>)> =
        vec![("sled", Box::new(SledCatalog::open(&db).unwrap()))];
    if let Some(pg) = testing::fresh().await {
        out.push(("postgres", Box::new(PgCatalog::new(&pg))));
    }
    out
}

fn product(sku: &str, name: &str) -> ProductRecord {
    ProductRecord {
        sku: sku.into(),
        name: name.into(),
        description: String::new(),
        category: "kitchen".into(),
        price: Money {
            amount: 1200,
            currency: Currency::parse("EUR").unwrap(),
        },
        images: Vec::new(),
        created_at: 1,
        updated_at: 1,
    }
}

#[tokio::test]
async fn every_write_lands_in_the_feed_in_order_and_trims_from_the_old_end() {
    for (backend, store) in backends().await {
        assert_eq!(store.feed_head().await.unwrap(), 0, "{backend}");
        store.insert(&product("MUG-1", "Mug"), 3).await.unwrap();
        store.insert(&product("CUP-1", "Cup"), 1).await.unwrap();
        assert!(matches!(
            store.insert(&product("MUG-1", "Again"), 9).await,
            Err(CatalogStoreError::Exists)
        ));
        store
            .replace(&product("MUG-1", "Big mug"), Some(5))
            .await
            .unwrap();
        assert!(store.delete("CUP-1").await.unwrap(), "{backend}");
        assert!(
            !store.delete("CUP-1").await.unwrap(),
            "{backend}: gone already, no entry"
        );
        let feed = store.changes_after(0, 10).await.unwrap();
        let skus: Vec<&str> = feed.iter().map(|(_, s)| s.as_str()).collect();
        assert_eq!(skus, ["MUG-1", "CUP-1", "MUG-1", "CUP-1"], "{backend}");
        let seqs: Vec<u64> = feed.iter().map(|(n, _)| *n).collect();
        assert_eq!(seqs, [1, 2, 3, 4], "{backend}: no gaps");
        assert_eq!(store.feed_head().await.unwrap(), 4, "{backend}");
        assert_eq!(
            store.changes_after(3, 10).await.unwrap(),
            [(4, "CUP-1".to_string())]
        );
        assert_eq!(store.get("MUG-1").await.unwrap().unwrap().1, 5, "{backend}");
        assert_eq!(store.feed_floor().await.unwrap(), 0, "{backend}");
        store.trim_feed(2).await.unwrap();
        assert_eq!(store.feed_floor().await.unwrap(), 2, "{backend}");
        assert_eq!(store.changes_after(0, 10).await.unwrap().len(), 2, "{backend}");
        assert_eq!(store.count().await.unwrap(), 1, "{backend}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_get_distinct_positions() {
    for (backend, store) in backends().await {
        let store: std::sync::Arc<dyn CatalogStore> = store.into();
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move { store.insert(&product(&format!("SKU-{i:02}"), "Thing"), 1).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let feed = store.changes_after(0, 100).await.unwrap();
        let seqs: Vec<u64> = feed.iter().map(|(n, _)| *n).collect();
        assert_eq!(seqs, (1..=20).collect::<Vec<u64>>(), "{backend}");
    }
}

#[tokio::test]
async fn get_many_answers_in_the_order_asked_and_skips_the_missing() {
    for (backend, store) in backends().await {
        for (sku, stock) in [("A-1", 1), ("B-2", 2), ("C-3", 3)] {
            store.insert(&product(sku, sku), stock).await.unwrap();
        }
        let asked: Vec<String> = ["C-3", "GONE", "A-1", "B-2"].map(String::from).to_vec();
        let got: Vec<(String, u64)> = store
            .get_many(&asked)
            .await
            .unwrap()
            .into_iter()
            .map(|(p, stock)| (p.sku, stock))
            .collect();
        assert_eq!(
            got,
            [("C-3".into(), 3), ("A-1".into(), 1), ("B-2".into(), 2)],
            "{backend}"
        );
        assert!(store.get_many(&[]).await.unwrap().is_empty(), "{backend}");
    }
}
