//! Buying a label at most once per idempotency key.
//!
//! Shippo has no idempotency header, so the plugin's own kv store keeps one record per key
//! under `label:{key}`:
//!
//! - `{"state":"buying","rate_id":…,"since":<unix secs>}` — a claim taken (with
//!   compare-and-swap) before `POST /transactions/`, so two concurrent calls with one key
//!   cannot both buy;
//! - `{"state":"bought","rate_id":…,"label":{…}}` — the label, returned to every retry.
//!
//! The key also goes into the transaction's `metadata`, and before buying the plugin looks
//! for an earlier purchase with `GET /transactions/?rate={rate_id}`: a purchase that
//! Shippo completed but whose answer was lost (a timeout) is found there, not bought again.
//!
//! A claim whose call failed without knowing whether Shippo bought (timeout, 5xx) stays
//! until it is [`STALE_CLAIM_SECS`] old; meanwhile retries find the purchase through
//! Shippo or get `unavailable`. A definite failure (Shippo said no) releases the claim.

use plinth_sdk::shipping::{Error, Label, Money};
use serde::{Deserialize, Serialize};

use crate::model::{join_messages, metadata_for, ShippoRate, Transaction, TransactionRequest};

/// Longer than any plugin deadline (the host caps `timeout_ms` at 10 minutes), so a claim
/// this old belongs to a call that is over.
pub const STALE_CLAIM_SECS: u64 = 600;

/// What buying needs from the host and from Shippo (a fake in the tests).
pub trait Backend {
    fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, Error>;
    fn kv_set(&self, key: &str, value: &[u8]) -> Result<(), Error>;
    fn kv_swap(&self, key: &str, expected: Option<&[u8]>, new: Option<&[u8]>) -> Result<bool, Error>;
    /// `GET /rates/{id}`.
    fn rate(&self, rate_id: &str) -> Result<ShippoRate, Error>;
    /// `GET /transactions/?rate={id}`.
    fn transactions_of(&self, rate_id: &str) -> Result<Vec<Transaction>, Error>;
    /// `POST /transactions/`.
    fn create_transaction(&self, req: &TransactionRequest<'_>) -> Result<Transaction, Error>;
    /// Seconds since the Unix epoch.
    fn now(&self) -> u64;
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
enum Record {
    Buying { rate_id: String, since: u64 },
    Bought { rate_id: String, label: StoredLabel },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredLabel {
    shipment_id: String,
    tracking_number: String,
    carrier: String,
    label_url: String,
    amount: i64,
    currency: String,
}

impl StoredLabel {
    fn to_wit(&self) -> Label {
        Label {
            shipment_id: self.shipment_id.clone(),
            tracking_number: self.tracking_number.clone(),
            carrier: self.carrier.clone(),
            label_url: self.label_url.clone(),
            amount: Money {
                amount: self.amount,
                currency: self.currency.clone(),
            },
        }
    }
}

fn encode(record: &Record) -> Vec<u8> {
    serde_json::to_vec(record).expect("a record always serializes")
}

fn decode(bytes: &[u8]) -> Result<Record, Error> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::Internal(format!("a stored label record is unreadable: {e}")))
}

fn same_rate(stored: &str, asked: &str) -> Result<(), Error> {
    if stored == asked {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "this idempotency key was already used to buy rate {stored}, not {asked}"
        )))
    }
}

fn in_progress() -> Error {
    Error::Unavailable("a label purchase with this idempotency key is in progress; retry later".into())
}

/// The kv key of an idempotency key's record.
pub fn kv_key(idempotency_key: &str) -> String {
    format!("label:{idempotency_key}")
}

/// Buys the label of `rate_id` once per `idempotency_key`; every later call with the same
/// key returns the same label.
pub fn buy(
    b: &impl Backend,
    rate_id: &str,
    idempotency_key: &str,
    label_file_type: &str,
) -> Result<Label, Error> {
    if rate_id.trim().is_empty() {
        return Err(Error::Invalid("rate-id is empty".into()));
    }
    if idempotency_key.trim().is_empty() {
        return Err(Error::Invalid("idempotency-key is empty".into()));
    }
    let key = kv_key(idempotency_key);
    let current = b.kv_get(&key)?;
    let fresh_claim = match current.as_deref().map(decode).transpose()? {
        Some(Record::Bought {
            rate_id: stored,
            label,
        }) => {
            same_rate(&stored, rate_id)?;
            return Ok(label.to_wit());
        }
        Some(Record::Buying {
            rate_id: stored,
            since,
        }) => {
            same_rate(&stored, rate_id)?;
            b.now().saturating_sub(since) < STALE_CLAIM_SECS
        }
        None => false,
    };

    // The rate's carrier and price; an unknown rate fails here, before anything is claimed.
    let rate = b.rate(rate_id)?;
    let amount = rate
        .money()
        .map_err(|e| Error::Upstream(format!("Shippo sent an unreadable rate: {e}")))?;
    let settle = |tx: Transaction| -> Result<Label, Error> {
        let label = label_of(&tx, &rate.provider, &amount)?;
        let record = Record::Bought {
            rate_id: rate_id.to_string(),
            label: label.clone(),
        };
        b.kv_set(&key, &encode(&record))?;
        Ok(label.to_wit())
    };
    let metadata = metadata_for(idempotency_key);

    if fresh_claim {
        // Another call holds the key (or held it and died within the window): take what
        // it bought if Shippo has it, otherwise wait.
        return match earlier_purchase(b, rate_id, metadata)? {
            Some(tx) if !tx.is_pending() => settle(tx),
            _ => Err(in_progress()),
        };
    }

    let claim = encode(&Record::Buying {
        rate_id: rate_id.to_string(),
        since: b.now(),
    });
    if !b.kv_swap(&key, current.as_deref(), Some(&claim))? {
        // Someone else moved first: their label, if they are done.
        return match b.kv_get(&key)?.as_deref().map(decode).transpose()? {
            Some(Record::Bought {
                rate_id: stored,
                label,
            }) => {
                same_rate(&stored, rate_id)?;
                Ok(label.to_wit())
            }
            _ => Err(in_progress()),
        };
    }
    let release = || b.kv_swap(&key, Some(&claim), None).map(|_| ());

    if let Some(tx) = earlier_purchase(b, rate_id, metadata)? {
        return if tx.is_pending() {
            Err(still_creating())
        } else {
            settle(tx)
        };
    }

    let bought = b.create_transaction(&TransactionRequest {
        rate: rate_id,
        label_file_type,
        is_async: false,
        metadata,
    });
    match bought {
        Ok(tx) if tx.status() == "SUCCESS" => settle(tx),
        Ok(tx) if tx.is_pending() => Err(still_creating()),
        Ok(tx) => {
            // ERROR (or a refund state): nothing was bought; a retry may try again.
            release()?;
            let why = join_messages(&tx.messages, "Shippo could not buy the label");
            Err(Error::Upstream(match tx.status() {
                "ERROR" | "" => why,
                other => format!("{why} (transaction status {other})"),
            }))
        }
        // Shippo refused the request, or it was never sent: nothing was bought.
        Err(e @ (Error::Invalid(_) | Error::NotFound(_) | Error::Denied(_))) => {
            release()?;
            Err(e)
        }
        // Timeout, 5xx, an answer over the size cap, an unreadable one: maybe bought. The
        // claim stays; a retry looks the purchase up at Shippo.
        Err(e) => Err(e),
    }
}

fn still_creating() -> Error {
    Error::Unavailable("Shippo is still creating the label; retry with the same idempotency key".into())
}

/// A live purchase (`SUCCESS`, `QUEUED`, `WAITING`) of `rate_id` made with this key.
fn earlier_purchase(b: &impl Backend, rate_id: &str, metadata: &str) -> Result<Option<Transaction>, Error> {
    Ok(b.transactions_of(rate_id)?
        .into_iter()
        .find(|tx| tx.metadata.as_deref() == Some(metadata) && (tx.status() == "SUCCESS" || tx.is_pending())))
}

fn label_of(tx: &Transaction, carrier: &str, amount: &Money) -> Result<StoredLabel, Error> {
    let field = |v: &Option<String>, name: &str| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .ok_or_else(|| Error::Upstream(format!("Shippo's successful transaction has no {name}")))
    };
    Ok(StoredLabel {
        shipment_id: field(&tx.object_id, "object_id")?,
        tracking_number: field(&tx.tracking_number, "tracking_number")?,
        carrier: carrier.to_string(),
        label_url: field(&tx.label_url, "label_url")?,
        amount: amount.amount,
        currency: amount.currency.clone(),
    })
}

#[cfg(test)]
#[path = "label_tests.rs"]
mod tests;
