//! The account store's contract, run on sled and on PostgreSQL alike.

use super::*;
use crate::store::postgres::{testing, PgAccounts};

async fn backends() -> Vec<(&'static str, Box<dyn AccountStore>)> {
    let db = sled::Config::new().temporary(true).open().unwrap();
    let mut out: Vec<(&'static str, Box<dyn AccountStore>)> =
        vec![("sled", Box::new(SledAccounts::open(&db).unwrap()))];
    if let Some(pg) = testing::fresh().await {
        out.push(("postgres", Box::new(PgAccounts::new(&pg))));
    }
    out
}

fn uid(raw: &str) -> UserId {
    UserId::parse(raw).unwrap()
}

fn user(raw_id: &str, name: &str) -> UserRecord {
    UserRecord {
        id: uid(raw_id),
        username: name.into(),
        password_hash: "$argon2id$x".into(),
        roles: vec![Role::User],
        disabled: false,
        created_at: 1,
        password_changed_at: 1,
        identities: Vec::new(),
    }
}

fn session(id: &str, user_id: &str) -> SessionRecord {
    SessionRecord {
        id: id.into(),
        user_id: uid(user_id),
        created_at: 10,
        last_seen_at: 10,
        user_agent: None,
        ip: None,
    }
}

fn identity(sub: &str) -> LinkedIdentity {
    LinkedIdentity {
        provider: "idp".into(),
        issuer: "https://idp.example".into(),
        subject: sub.into(),
        email: Some("a@example.com".into()),
        linked_at: 5,
    }
}

#[tokio::test]
async fn usernames_are_unique_and_users_list_in_id_order() {
    for (backend, store) in backends().await {
        store.create_user(&user("0001-b", "bob")).await.unwrap();
        store.create_user(&user("0001-a", "alice")).await.unwrap();
        assert!(
            matches!(
                store.create_user(&user("0002", "bob")).await,
                Err(AccountError::UsernameTaken)
            ),
            "{backend}"
        );
        assert!(
            store.user(&uid("0002")).await.unwrap().is_none(),
            "{backend}: nothing half-written"
        );
        let ids: Vec<String> = store
            .list_users(None, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|u| u.id.to_string())
            .collect();
        assert_eq!(ids, ["0001-a", "0001-b"], "{backend}");
        let after: Vec<String> = store
            .list_users(Some("0001-a"), 10)
            .await
            .unwrap()
            .into_iter()
            .map(|u| u.id.to_string())
            .collect();
        assert_eq!(after, ["0001-b"], "{backend}");
        let mut bob = store.user_by_username("bob").await.unwrap().unwrap();
        bob.disabled = true;
        store.update_user(&bob).await.unwrap();
        assert!(
            store.user(&uid("0001-b")).await.unwrap().unwrap().disabled,
            "{backend}"
        );
    }
}

#[tokio::test]
async fn sessions_are_found_touched_listed_and_deleted_once() {
    for (backend, store) in backends().await {
        store.create_user(&user("u1", "carol")).await.unwrap();
        let (h1, h2) = ([1u8; 32], [2u8; 32]);
        store.insert_session(&h1, &session("s1", "u1")).await.unwrap();
        store.insert_session(&h2, &session("s2", "u1")).await.unwrap();
        store.touch_session(&h1, 50).await.unwrap();
        store.touch_session(&h1, 40).await.unwrap();
        assert_eq!(
            store.session(&h1).await.unwrap().unwrap().last_seen_at,
            50,
            "{backend}: never back"
        );
        assert_eq!(
            store.user_sessions(&uid("u1")).await.unwrap().len(),
            2,
            "{backend}"
        );
        assert_eq!(store.all_sessions().await.unwrap().len(), 2, "{backend}");
        assert_eq!(
            store.delete_session(&h1).await.unwrap().unwrap().id,
            "s1",
            "{backend}"
        );
        assert!(store.delete_session(&h1).await.unwrap().is_none(), "{backend}");
        store.touch_session(&h1, 60).await.unwrap();
        assert!(
            store.session(&h1).await.unwrap().is_none(),
            "{backend}: a touch never resurrects"
        );
        assert_eq!(
            store.user_sessions(&uid("u1")).await.unwrap()[0].0,
            h2,
            "{backend}"
        );
    }
}

#[tokio::test]
async fn an_identity_belongs_to_one_account() {
    for (backend, store) in backends().await {
        let mut dora = user("u-dora", "dora");
        dora.identities.push(identity("sub-1"));
        store
            .create_user_with_identity(&dora, Some("a@example.com"))
            .await
            .unwrap();
        let mut eve = user("u-eve", "eve");
        eve.identities.push(identity("sub-1"));
        assert!(
            matches!(
                store.create_user_with_identity(&eve, None).await,
                Err(AccountError::IdentityTaken)
            ),
            "{backend}"
        );
        assert!(
            store.user_by_username("eve").await.unwrap().is_none(),
            "{backend}: all or nothing"
        );
        assert_eq!(
            store
                .user_by_identity("https://idp.example", "sub-1")
                .await
                .unwrap()
                .unwrap()
                .id
                .as_str(),
            "u-dora"
        );
        assert_eq!(
            store
                .user_by_verified_email("a@example.com")
                .await
                .unwrap()
                .unwrap()
                .id
                .as_str(),
            "u-dora"
        );

        store.create_user(&user("u-eve", "eve")).await.unwrap();
        assert!(
            matches!(
                store.link_identity(&uid("u-eve"), &identity("sub-1"), None).await,
                Err(AccountError::IdentityTaken)
            ),
            "{backend}"
        );
        let linked = store
            .link_identity(&uid("u-eve"), &identity("sub-2"), Some("a@example.com"))
            .await
            .unwrap();
        assert_eq!(linked.identities.len(), 1, "{backend}");
        let again = store
            .link_identity(&uid("u-eve"), &identity("sub-2"), None)
            .await
            .unwrap();
        assert_eq!(again.identities.len(), 1, "{backend}: linking twice is a no-op");
        assert_eq!(
            store
                .user_by_verified_email("a@example.com")
                .await
                .unwrap()
                .unwrap()
                .id
                .as_str(),
            "u-dora",
            "{backend}: a recorded email is not taken over"
        );
        assert!(matches!(
            store
                .link_identity(&uid("nobody"), &identity("sub-3"), None)
                .await,
            Err(AccountError::UserNotFound)
        ));
    }
}
