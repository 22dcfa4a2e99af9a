//! The contact store's contract, run on sled and on PostgreSQL alike.

use super::*;
use crate::store::postgres::{testing, PgContacts};

async fn backends() -> Vec<(&'static str, Box<dyn ContactStore>)> {
    let db = sled::Config::new().temporary(true).open().unwrap();
    let mut out: Vec<(&'static str, Box<dyn ContactStore>)> =
        vec![("sled", Box::new(SledContacts::open(&db).unwrap()))];
    if let Some(pg) = testing::fresh().await {
        out.push(("postgres", Box::new(PgContacts::new(&pg))));
    }
    out
}

fn contact(owner: &str, id: &str, name: &str) -> ContactRecord {
    ContactRecord {
        id: id.into(),
        owner_id: owner.into(),
        name: name.into(),
        phone: None,
        email: None,
        notes: None,
        tags: vec!["x".into()],
        created_at: 1,
        updated_at: 1,
    }
}

#[tokio::test]
async fn each_owner_sees_only_their_own_contacts() {
    for (backend, store) in backends().await {
        store.put(&contact("ann", "c2", "Two")).await.unwrap();
        store.put(&contact("ann", "c1", "One")).await.unwrap();
        store.put(&contact("ben", "c1", "Ben's")).await.unwrap();
        store.put(&contact("ann", "c1", "One again")).await.unwrap();
        let names: Vec<String> = store
            .list("ann")
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(names, ["One again", "Two"], "{backend}");
        assert_eq!(store.count("ann").await.unwrap(), 2, "{backend}");
        assert_eq!(
            store.get("ben", "c1").await.unwrap().unwrap().name,
            "Ben's",
            "{backend}"
        );
        assert!(store.get("ben", "c2").await.unwrap().is_none(), "{backend}");
        assert!(!store.delete("ben", "c2").await.unwrap(), "{backend}: not ben's");
        assert!(store.delete("ann", "c2").await.unwrap(), "{backend}");
        assert_eq!(store.count("ann").await.unwrap(), 1, "{backend}");
    }
}
