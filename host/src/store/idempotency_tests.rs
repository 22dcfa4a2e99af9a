//! The idempotency store's contract, on sled and on PostgreSQL alike: claims, replays,
//! mismatches, take-overs of abandoned claims, releases and expiry; and the stored
//! record's layout.

use super::*;
use crate::store::codec::{from_json, to_json};
use crate::store::postgres::{testing, PgIdempotency};

async fn stores() -> Vec<(&'static str, Box<dyn IdempotencyStore>)> {
    let db = sled::Config::new().temporary(true).open().unwrap();
    let mut out: Vec<(&'static str, Box<dyn IdempotencyStore>)> =
        vec![("sled", Box::new(SledIdempotency::open(&db).unwrap()))];
    if let Some(pg) = testing::fresh().await {
        out.push(("postgres", Box::new(PgIdempotency::new(&pg))));
    }
    out
}

fn claim(key: &str, hash: &str) -> Claim {
    let user = UserId::parse("u").unwrap();
    Claim::new(&user, &IdempotencyKey::parse(key).unwrap(), hash.to_string())
}

#[tokio::test]
async fn claims_replay_mismatch_take_over_and_expire() {
    for (backend, store) in stores().await {
        eprintln!("backend: {backend}");
        let store = &*store;
        let (k, j) = (claim("k", "h1"), claim("j", "h"));
        assert_eq!(
            store.try_claim(&k, 1_000, 60_000).await.unwrap(),
            NextAction::Proceed
        );
        assert_eq!(
            store.try_claim(&k, 2_000, 60_000).await.unwrap(),
            NextAction::Wait
        );
        assert_eq!(
            store.try_claim(&claim("k", "h2"), 2_000, 60_000).await.unwrap(),
            NextAction::Mismatch
        );
        // A claim with no answer for longer than the abandonment window is taken over.
        assert_eq!(
            store.try_claim(&k, 70_000, 60_000).await.unwrap(),
            NextAction::Proceed
        );
        // After a restart every unanswered claim is released at once.
        assert_eq!(
            store.try_claim(&j, 1_000, 60_000).await.unwrap(),
            NextAction::Proceed
        );
        assert_eq!(store.release_unfinished().await.unwrap(), 2);
        assert_eq!(
            store.try_claim(&j, 1_500, 60_000).await.unwrap(),
            NextAction::Proceed
        );
        let answer = StoredResponse {
            status: 201,
            body: "{}".into(),
        };
        store.save_response(&j.key, &answer).await.unwrap();
        assert_eq!(store.release_unfinished().await.unwrap(), 0, "answered keys stay");
        assert_eq!(
            store.try_claim(&j, 2_000, 60_000).await.unwrap(),
            NextAction::Replay(answer)
        );
        assert_eq!(
            store.expire(10_000, 60_000).await.unwrap(),
            0,
            "younger than the TTL"
        );
        assert_eq!(store.expire(100_000, 60_000).await.unwrap(), 1);
        assert_eq!(
            store.try_claim(&j, 100_000, 60_000).await.unwrap(),
            NextAction::Proceed
        );
        // A released claim is free at once.
        store.release(&j.key).await.unwrap();
        assert_eq!(
            store.try_claim(&j, 100_001, 60_000).await.unwrap(),
            NextAction::Proceed
        );
    }
}

#[test]
fn keys_are_scoped_by_customer_and_name_their_order() {
    let key = IdempotencyKey::parse("k").unwrap();
    let (alice, bob) = (UserId::parse("alice").unwrap(), UserId::parse("bob").unwrap());
    let c = Claim::new(&alice, &key, "h".into());
    assert_eq!(c.key.as_str(), "alice/k");
    assert_eq!(c.order_id, OrderId::for_key(&alice, &key));
    assert_ne!(Claim::new(&bob, &key, "h".into()).key, c.key);
}

/// Idempotency records exactly as the store wrote them before this module existed
/// (sled's values; PostgreSQL keeps the same fields as columns and the answer as JSONB).
const STORED_CLAIMS: [&str; 2] = [
    concat!(
        r#"{"request_hash":"9f86d081884c7d65","order_id":"0123456789abcdef0123456789abcdef","#,
        r#""response":{"status":201,"body":"{\"order\":{\"id\":\"0123456789abcdef0123456789abcdef\"}}"},"#,
        r#""created_at":1764480000000,"claimed_at":1764480000500}"#
    ),
    concat!(
        r#"{"request_hash":"9f86d081884c7d65","order_id":"0123456789abcdef0123456789abcdef","#,
        r#""response":null,"created_at":1764480000000,"claimed_at":1764480000000}"#
    ),
];

#[test]
fn stored_idempotency_records_decode_and_encode_byte_for_byte() {
    for stored in STORED_CLAIMS {
        let record: IdempotencyRecord = decode(stored.as_bytes()).unwrap();
        assert_eq!(String::from_utf8(encode(&record).unwrap()).unwrap(), stored);
    }
    let answered: IdempotencyRecord = decode(STORED_CLAIMS[0].as_bytes()).unwrap();
    let response = answered.response.unwrap();
    assert_eq!(response.status, 201);
    assert_eq!(
        from_json::<StoredResponse>(to_json(&response).unwrap()).unwrap(),
        response
    );
}
