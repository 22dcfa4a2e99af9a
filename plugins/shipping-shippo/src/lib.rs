//! `shipping-shippo`: the `shipping-plugin` world on Shippo's REST API
//! (<https://docs.goshippo.com/shippoapi/public-api/>).
//!
//! - `rates`: `POST /shipments/` with `async: false`; the shipment's rates, cheapest first.
//! - `buy-label`: `GET /rates/{id}` (carrier and price), `GET /transactions/?rate={id}`
//!   (an earlier purchase with this idempotency key), then `POST /transactions/`; at most
//!   one label per idempotency key (see [`label`]).
//! - `track`: `GET /tracks/{carrier}/{tracking_number}`.
//!
//! Config: `api_token` (required; sent as `Authorization: ShippoToken …`), `base_url`
//! (default `https://api.goshippo.com`, which must be on `allowed_hosts`),
//! `label_file_type` (default `PDF`; Shippo also takes `PNG`, `PDF_4x6`, `ZPLII`, …).
//! Buying a label with `async: false` can take Shippo several seconds: give the plugin a
//! `timeout_ms` well above the 5 s default.

mod api;
mod label;
mod model;
mod money;

use plinth_sdk::shipping::{config, kv, log, Address, Error, Guest, Label, Parcel, Rate, Tracking};

use api::{encode, Client};
use model::{Shipment, ShippoRate, Track, Transaction, TransactionList, TransactionRequest};

struct ShippoPlugin;

/// The live [`label::Backend`]: the plugin's kv store and Shippo.
struct Live(Client);

impl label::Backend for Live {
    fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        kv::get(key)
    }
    fn kv_set(&self, key: &str, value: &[u8]) -> Result<(), Error> {
        kv::set(key, value)
    }
    fn kv_swap(&self, key: &str, expected: Option<&[u8]>, new: Option<&[u8]>) -> Result<bool, Error> {
        kv::compare_and_swap(key, expected, new)
    }
    fn rate(&self, rate_id: &str) -> Result<ShippoRate, Error> {
        self.0
            .get(&format!("/rates/{}", encode(rate_id)))
            .map_err(|e| match e {
                Error::NotFound(_) => Error::NotFound(format!("Shippo has no rate {rate_id}")),
                other => other,
            })
    }
    fn transactions_of(&self, rate_id: &str) -> Result<Vec<Transaction>, Error> {
        let page: TransactionList = self
            .0
            .get(&format!("/transactions/?rate={}&results=100", encode(rate_id)))?;
        Ok(page.results)
    }
    fn create_transaction(&self, req: &TransactionRequest<'_>) -> Result<Transaction, Error> {
        self.0.post("/transactions/", req)
    }
    fn now(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}

impl Guest for ShippoPlugin {
    fn rates(origin: Address, destination: Address, parcels: Vec<Parcel>) -> Result<Vec<Rate>, Error> {
        let request = model::shipment_request(&origin, &destination, &parcels)?;
        let shipment: Shipment = Client::from_config()?.post("/shipments/", &request)?;
        let (rates, problems) = model::rates(shipment)?;
        for problem in problems {
            log::log(log::Level::Warn, &problem);
        }
        Ok(rates)
    }

    fn buy_label(rate_id: String, idempotency_key: String) -> Result<Label, Error> {
        let file_type = config::get("label_file_type")
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| "PDF".to_string());
        label::buy(
            &Live(Client::from_config()?),
            &rate_id,
            &idempotency_key,
            &file_type,
        )
    }

    fn track(carrier: String, tracking_number: String) -> Result<Tracking, Error> {
        let token = model::carrier_token(&carrier);
        let number = tracking_number.trim();
        if token.is_empty() || number.is_empty() {
            return Err(Error::Invalid("carrier and tracking number are required".into()));
        }
        let path = format!("/tracks/{}/{}", encode(&token), encode(number));
        let track: Track = Client::from_config()?.get(&path).map_err(|e| match e {
            Error::NotFound(_) => Error::NotFound(format!("Shippo knows no {carrier} shipment {number}")),
            other => other,
        })?;
        Ok(model::tracking(track, &carrier, number))
    }
}

plinth_sdk::shipping::export_shipping_plugin!(ShippoPlugin);
