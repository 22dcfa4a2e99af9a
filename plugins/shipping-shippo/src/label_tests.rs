use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use serde_json::json;

use super::*;

/// kv in a map; Shippo as a list of transactions and a scripted answer to the next POST.
struct Fake {
    kv: RefCell<BTreeMap<String, Vec<u8>>>,
    transactions: RefCell<Vec<Transaction>>,
    next_post: RefCell<Option<Result<Transaction, Error>>>,
    posts: Cell<u32>,
    now: Cell<u64>,
}

fn tx(id: &str, status: &str, metadata: &str) -> Transaction {
    serde_json::from_value(json!({
        "object_id": id, "status": status, "metadata": metadata,
        "tracking_number": format!("TRACK-{id}"),
        "label_url": format!("https://labels.example/{id}.pdf"),
        "messages": if status == "ERROR" { json!([{"source": "USPS", "text": "Address invalid"}]) } else { json!([]) }
    }))
    .unwrap()
}

impl Fake {
    fn new() -> Self {
        Fake {
            kv: RefCell::default(),
            transactions: RefCell::default(),
            next_post: RefCell::new(None),
            posts: Cell::new(0),
            now: Cell::new(1_700_000_000),
        }
    }

    /// The next POST answers `status`; SUCCESS/QUEUED ones are also listed afterwards.
    fn answer(&self, status: &str) {
        let n = self.posts.get() + 1;
        *self.next_post.borrow_mut() = Some(Ok(tx(&format!("t{n}"), status, "")));
    }

    fn fail_next(&self, e: Error) {
        *self.next_post.borrow_mut() = Some(Err(e));
    }

    fn record(&self, key: &str) -> Option<serde_json::Value> {
        self.kv
            .borrow()
            .get(&kv_key(key))
            .map(|v| serde_json::from_slice(v).unwrap())
    }
}

impl Backend for Fake {
    fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.kv.borrow().get(key).cloned())
    }
    fn kv_set(&self, key: &str, value: &[u8]) -> Result<(), Error> {
        self.kv.borrow_mut().insert(key.into(), value.to_vec());
        Ok(())
    }
    fn kv_swap(&self, key: &str, expected: Option<&[u8]>, new: Option<&[u8]>) -> Result<bool, Error> {
        let mut kv = self.kv.borrow_mut();
        if kv.get(key).map(Vec::as_slice) != expected {
            return Ok(false);
        }
        match new {
            Some(v) => kv.insert(key.into(), v.to_vec()),
            None => kv.remove(key),
        };
        Ok(true)
    }
    fn rate(&self, rate_id: &str) -> Result<ShippoRate, Error> {
        if rate_id == "missing" {
            return Err(Error::NotFound("Not found.".into()));
        }
        Ok(serde_json::from_value(json!({
            "object_id": rate_id, "amount": "7.25", "currency": "USD", "provider": "USPS",
            "servicelevel": {"name": "Priority Mail", "token": "usps_priority"}
        }))
        .unwrap())
    }
    fn transactions_of(&self, _rate_id: &str) -> Result<Vec<Transaction>, Error> {
        Ok(self
            .transactions
            .borrow()
            .iter()
            .map(|t| {
                serde_json::from_value(json!({
                    "object_id": t.object_id, "status": t.status, "metadata": t.metadata,
                    "tracking_number": t.tracking_number, "label_url": t.label_url
                }))
                .unwrap()
            })
            .collect())
    }
    fn create_transaction(&self, req: &TransactionRequest<'_>) -> Result<Transaction, Error> {
        assert_eq!((req.label_file_type, req.is_async), ("PDF", false));
        self.posts.set(self.posts.get() + 1);
        let answer = self
            .next_post
            .borrow_mut()
            .take()
            .expect("an unexpected POST /transactions/");
        let mut t = answer?;
        t.metadata = Some(req.metadata.to_string());
        if t.status() != "ERROR" {
            self.transactions.borrow_mut().push(tx(
                t.object_id.as_deref().unwrap(),
                t.status(),
                req.metadata,
            ));
        }
        Ok(t)
    }
    fn now(&self) -> u64 {
        self.now.get()
    }
}

#[test]
fn buys_once_and_returns_the_same_label_to_retries() {
    let f = Fake::new();
    f.answer("SUCCESS");
    let label = buy(&f, "rate1", "plinth-o1", "PDF").unwrap();
    assert_eq!(label.shipment_id, "t1");
    assert_eq!(label.tracking_number, "TRACK-t1");
    assert_eq!(label.carrier, "USPS");
    assert_eq!(label.label_url, "https://labels.example/t1.pdf");
    assert_eq!(
        (label.amount.amount, label.amount.currency.as_str()),
        (725, "USD")
    );
    assert_eq!(f.record("plinth-o1").unwrap()["state"], "bought");

    let again = buy(&f, "rate1", "plinth-o1", "PDF").unwrap();
    assert_eq!(
        (again.shipment_id, again.tracking_number),
        (label.shipment_id, label.tracking_number)
    );
    assert_eq!(f.posts.get(), 1, "no second purchase");

    assert!(
        matches!(buy(&f, "rate2", "plinth-o1", "PDF"), Err(Error::Invalid(_))),
        "another rate, same key"
    );
}

#[test]
fn a_purchase_whose_answer_was_lost_is_found_at_shippo() {
    let f = Fake::new();
    // Shippo bought, but the plugin's call timed out.
    f.transactions.borrow_mut().push(tx("t9", "SUCCESS", "plinth-o2"));
    f.fail_next(Error::Timeout("deadline".into()));
    // A fresh claim from the timed-out call.
    let claim = json!({"state": "buying", "rate_id": "rate1", "since": f.now.get() - 30});
    f.kv.borrow_mut()
        .insert(kv_key("plinth-o2"), serde_json::to_vec(&claim).unwrap());
    let label = buy(&f, "rate1", "plinth-o2", "PDF").unwrap();
    assert_eq!(label.shipment_id, "t9");
    assert_eq!(f.posts.get(), 0);
    assert_eq!(f.record("plinth-o2").unwrap()["state"], "bought");

    // Same without any claim (the kv write was lost too).
    let g = Fake::new();
    g.transactions.borrow_mut().push(tx("t8", "SUCCESS", "plinth-o3"));
    g.transactions.borrow_mut().push(tx("t7", "ERROR", "plinth-o3"));
    g.transactions
        .borrow_mut()
        .push(tx("t6", "SUCCESS", "someone-else"));
    assert_eq!(buy(&g, "rate1", "plinth-o3", "PDF").unwrap().shipment_id, "t8");
    assert_eq!(g.posts.get(), 0);
}

#[test]
fn a_timeout_keeps_the_claim_until_it_is_stale() {
    let f = Fake::new();
    f.fail_next(Error::Timeout("deadline".into()));
    assert!(matches!(buy(&f, "rate1", "k", "PDF"), Err(Error::Timeout(_))));
    assert_eq!(f.record("k").unwrap()["state"], "buying");

    // Within the window, with nothing at Shippo: wait, never buy.
    f.now.set(f.now.get() + STALE_CLAIM_SECS - 1);
    assert!(matches!(buy(&f, "rate1", "k", "PDF"), Err(Error::Unavailable(_))));
    assert_eq!(f.posts.get(), 1);

    // Past it, the call that held it is over and Shippo has nothing: buy.
    f.now.set(f.now.get() + 1);
    f.answer("SUCCESS");
    assert_eq!(buy(&f, "rate1", "k", "PDF").unwrap().shipment_id, "t2");
    assert_eq!(f.posts.get(), 2);
}

#[test]
fn a_refusal_releases_the_key() {
    let f = Fake::new();
    f.answer("ERROR");
    match buy(&f, "rate1", "k", "PDF") {
        Err(Error::Upstream(m)) => assert_eq!(m, "USPS: Address invalid"),
        other => panic!("{other:?}"),
    }
    assert!(f.record("k").is_none());
    f.fail_next(Error::Invalid("rate expired".into()));
    assert!(matches!(buy(&f, "rate1", "k", "PDF"), Err(Error::Invalid(_))));
    assert!(f.record("k").is_none());
    f.answer("SUCCESS");
    assert_eq!(buy(&f, "rate1", "k", "PDF").unwrap().shipment_id, "t3");
}

#[test]
fn a_queued_purchase_is_waited_for() {
    let f = Fake::new();
    f.answer("QUEUED");
    assert!(matches!(buy(&f, "rate1", "k", "PDF"), Err(Error::Unavailable(_))));
    // Even past the window a queued purchase is never repeated.
    f.now.set(f.now.get() + STALE_CLAIM_SECS * 2);
    assert!(matches!(buy(&f, "rate1", "k", "PDF"), Err(Error::Unavailable(_))));
    // Shippo finishes it.
    f.transactions.borrow_mut()[0].status = Some("SUCCESS".into());
    assert_eq!(buy(&f, "rate1", "k", "PDF").unwrap().shipment_id, "t1");
    assert_eq!(f.posts.get(), 1);
}

#[test]
fn checks_its_input_and_the_rate_first() {
    let f = Fake::new();
    assert!(matches!(buy(&f, "", "k", "PDF"), Err(Error::Invalid(_))));
    assert!(matches!(buy(&f, "r", " ", "PDF"), Err(Error::Invalid(_))));
    assert!(matches!(buy(&f, "missing", "k", "PDF"), Err(Error::NotFound(_))));
    assert!(f.kv.borrow().is_empty(), "nothing claimed for an unknown rate");
}

#[test]
fn a_lost_race_returns_the_winner_or_waits() {
    /// Another call claims the key between our read and our swap.
    struct Racing(Fake);
    impl Backend for Racing {
        fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
            self.0.kv_get(key)
        }
        fn kv_set(&self, key: &str, value: &[u8]) -> Result<(), Error> {
            self.0.kv_set(key, value)
        }
        fn kv_swap(&self, key: &str, expected: Option<&[u8]>, new: Option<&[u8]>) -> Result<bool, Error> {
            if expected.is_none() {
                let winner = json!({"state": "buying", "rate_id": "rate1", "since": self.0.now()});
                self.0.kv_set(key, &serde_json::to_vec(&winner).unwrap())?;
            }
            self.0.kv_swap(key, expected, new)
        }
        fn rate(&self, rate_id: &str) -> Result<ShippoRate, Error> {
            self.0.rate(rate_id)
        }
        fn transactions_of(&self, rate_id: &str) -> Result<Vec<Transaction>, Error> {
            self.0.transactions_of(rate_id)
        }
        fn create_transaction(&self, req: &TransactionRequest<'_>) -> Result<Transaction, Error> {
            self.0.create_transaction(req)
        }
        fn now(&self) -> u64 {
            self.0.now()
        }
    }
    let r = Racing(Fake::new());
    assert!(matches!(buy(&r, "rate1", "k", "PDF"), Err(Error::Unavailable(_))));
    assert_eq!(r.0.posts.get(), 0);
}

#[test]
fn an_unreadable_record_is_an_internal_error() {
    let f = Fake::new();
    f.kv.borrow_mut().insert(kv_key("k"), b"garbage".to_vec());
    assert!(matches!(buy(&f, "rate1", "k", "PDF"), Err(Error::Internal(_))));
}
