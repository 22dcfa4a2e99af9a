//! Shippo's JSON (requests we send, responses we read) and its mapping to the WIT types.
//! Pure: no host calls, so it is unit-tested natively.
//!
//! Shippo writes numbers as strings (`"5.50"`, `"30.5"`); lists may be absent or `null`.

use plinth_sdk::shipping::{Address, Error, Money, Parcel, Rate, Tracking, TrackingEvent};
use serde::{Deserialize, Deserializer, Serialize};

use crate::money;

// ---------------------------------------------------------------- requests

/// `POST /shipments/`.
#[derive(Debug, Serialize)]
pub struct ShipmentRequest<'a> {
    pub address_from: ShippoAddress<'a>,
    pub address_to: ShippoAddress<'a>,
    pub parcels: Vec<ShippoParcel>,
    #[serde(rename = "async")]
    pub is_async: bool,
}

#[derive(Debug, Serialize)]
pub struct ShippoAddress<'a> {
    pub name: &'a str,
    pub street1: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub street2: Option<&'a str>,
    pub city: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<&'a str>,
    pub zip: &'a str,
    pub country: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<&'a str>,
}

#[derive(Debug, Serialize)]
pub struct ShippoParcel {
    pub length: String,
    pub width: String,
    pub height: String,
    pub distance_unit: &'static str,
    pub weight: String,
    pub mass_unit: &'static str,
}

/// `POST /transactions/`: buys the label of one rate.
#[derive(Debug, Serialize)]
pub struct TransactionRequest<'a> {
    pub rate: &'a str,
    pub label_file_type: &'a str,
    #[serde(rename = "async")]
    pub is_async: bool,
    /// The idempotency key (Shippo allows 100 characters), so a purchase can be found
    /// again with `GET /transactions/?rate=`.
    pub metadata: &'a str,
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn address(a: &Address) -> ShippoAddress<'_> {
    ShippoAddress {
        name: &a.name,
        street1: &a.line1,
        street2: non_empty(&a.line2),
        city: &a.city,
        state: non_empty(&a.region),
        zip: &a.postal_code,
        country: &a.country,
        phone: non_empty(&a.phone),
        email: non_empty(&a.email),
    }
}

/// Millimetres as a centimetre decimal string: 305 → "30.5", 300 → "30".
pub fn mm_to_cm(mm: u32) -> String {
    match mm % 10 {
        0 => (mm / 10).to_string(),
        tenth => format!("{}.{tenth}", mm / 10),
    }
}

pub fn shipment_request<'a>(
    origin: &'a Address,
    destination: &'a Address,
    parcels: &[Parcel],
) -> Result<ShipmentRequest<'a>, Error> {
    if parcels.is_empty() {
        return Err(Error::Invalid("a shipment needs at least one parcel".into()));
    }
    Ok(ShipmentRequest {
        address_from: address(origin),
        address_to: address(destination),
        parcels: parcels
            .iter()
            .map(|p| ShippoParcel {
                length: mm_to_cm(p.length_mm),
                width: mm_to_cm(p.width_mm),
                height: mm_to_cm(p.height_mm),
                distance_unit: "cm",
                weight: p.weight_grams.to_string(),
                mass_unit: "g",
            })
            .collect(),
        is_async: false,
    })
}

/// Shippo's `metadata` holds at most 100 characters.
pub fn metadata_for(idempotency_key: &str) -> &str {
    match idempotency_key.char_indices().nth(100) {
        Some((cut, _)) => &idempotency_key[..cut],
        None => idempotency_key,
    }
}

// ---------------------------------------------------------------- responses

/// `null` and absent both become the default (Shippo sends either for empty lists).
fn null_default<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A decimal Shippo documents as a string; a JSON number is accepted too (as written).
fn decimal_text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Decimal {
        Text(String),
        Number(serde_json::Number),
    }
    Ok(match Decimal::deserialize(d)? {
        Decimal::Text(s) => s,
        Decimal::Number(n) => n.to_string(),
    })
}

/// Messages are `{source, code, text}` objects on shipments, rates and transactions and
/// plain strings on tracks.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Message {
    Text(String),
    Object {
        source: Option<String>,
        code: Option<String>,
        text: Option<String>,
    },
}

impl Message {
    pub fn render(&self) -> Option<String> {
        match self {
            Message::Text(t) => Some(t.trim().to_string()).filter(|t| !t.is_empty()),
            Message::Object { source, code, text } => {
                let body = non_empty(text).or(non_empty(code))?;
                Some(match non_empty(source) {
                    Some(src) => format!("{src}: {body}"),
                    None => body.to_string(),
                })
            }
        }
    }
}

/// The messages joined with "; ", or `fallback` when there are none.
pub fn join_messages(messages: &[Message], fallback: &str) -> String {
    let parts: Vec<String> = messages.iter().filter_map(Message::render).collect();
    if parts.is_empty() {
        fallback.to_string()
    } else {
        parts.join("; ")
    }
}

/// A shipment as `POST /shipments/` returns it.
#[derive(Debug, Deserialize)]
pub struct Shipment {
    pub object_id: Option<String>,
    /// `SUCCESS` with `async: false`; `ERROR` when no rate could be fetched.
    pub status: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub rates: Vec<ShippoRate>,
    #[serde(default, deserialize_with = "null_default")]
    pub messages: Vec<Message>,
}

/// A rate, in a shipment's `rates` or from `GET /rates/{id}`.
#[derive(Debug, Deserialize)]
pub struct ShippoRate {
    pub object_id: String,
    #[serde(deserialize_with = "decimal_text")]
    pub amount: String,
    pub currency: String,
    pub provider: String,
    pub servicelevel: Option<ServiceLevel>,
    pub estimated_days: Option<serde_json::Number>,
}

#[derive(Debug, Deserialize)]
pub struct ServiceLevel {
    pub name: Option<String>,
    pub token: Option<String>,
}

impl ShippoRate {
    pub fn money(&self) -> Result<Money, String> {
        let currency = money::currency_code(&self.currency)?;
        let amount = money::to_minor(&self.amount, &currency)?;
        Ok(Money { amount, currency })
    }

    fn to_wit(&self) -> Result<Rate, String> {
        let service = self
            .servicelevel
            .as_ref()
            .and_then(|s| non_empty(&s.name).or(non_empty(&s.token)).map(str::to_string));
        Ok(Rate {
            rate_id: self.object_id.clone(),
            carrier: self.provider.clone(),
            service: service.unwrap_or_default(),
            amount: self.money()?,
            estimated_days: self
                .estimated_days
                .as_ref()
                .and_then(serde_json::Number::as_u64)
                .and_then(|d| u32::try_from(d).ok()),
        })
    }
}

/// The shipment's rates, cheapest first (then fastest), and what was wrong with any rate
/// that had to be left out (for the log).
pub fn rates(shipment: Shipment) -> Result<(Vec<Rate>, Vec<String>), Error> {
    if shipment.status.as_deref() == Some("ERROR") {
        return Err(Error::Upstream(join_messages(
            &shipment.messages,
            "Shippo could not rate this shipment",
        )));
    }
    let mut problems = Vec::new();
    let mut rates: Vec<Rate> = shipment
        .rates
        .iter()
        .filter_map(|r| {
            r.to_wit()
                .map_err(|e| problems.push(format!("rate {} left out: {e}", r.object_id)))
                .ok()
        })
        .collect();
    rates.sort_by(|a, b| {
        (
            a.amount.amount,
            a.estimated_days.unwrap_or(u32::MAX),
            &a.carrier,
            &a.service,
        )
            .cmp(&(
                b.amount.amount,
                b.estimated_days.unwrap_or(u32::MAX),
                &b.carrier,
                &b.service,
            ))
    });
    if rates.is_empty() && !shipment.messages.is_empty() {
        problems.push(format!(
            "shipment {} has no rates: {}",
            shipment.object_id.as_deref().unwrap_or("?"),
            join_messages(&shipment.messages, "")
        ));
    }
    Ok((rates, problems))
}

/// A label purchase as `POST /transactions/` and `GET /transactions/` return it.
#[derive(Debug, Deserialize)]
pub struct Transaction {
    pub object_id: Option<String>,
    /// `SUCCESS`, `ERROR`, `QUEUED`, `WAITING`, `REFUNDED`, `REFUNDPENDING`, `REFUNDREJECTED`.
    #[serde(alias = "object_status")]
    pub status: Option<String>,
    pub tracking_number: Option<String>,
    pub label_url: Option<String>,
    pub metadata: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub messages: Vec<Message>,
}

impl Transaction {
    pub fn status(&self) -> &str {
        self.status.as_deref().unwrap_or("")
    }

    /// Still being made: with `async: false` Shippo normally answers when it is done.
    pub fn is_pending(&self) -> bool {
        matches!(self.status(), "QUEUED" | "WAITING")
    }
}

/// `GET /transactions/?rate=…` (paginated; one page is plenty for one rate).
#[derive(Debug, Deserialize)]
pub struct TransactionList {
    #[serde(default, deserialize_with = "null_default")]
    pub results: Vec<Transaction>,
}

/// `GET /tracks/{carrier}/{tracking_number}`.
#[derive(Debug, Deserialize)]
pub struct Track {
    pub tracking_number: Option<String>,
    pub eta: Option<String>,
    pub tracking_status: Option<TrackingStatus>,
    /// Oldest first, as Shippo documents.
    #[serde(default, deserialize_with = "null_default")]
    pub tracking_history: Vec<TrackingStatus>,
}

#[derive(Debug, Deserialize)]
pub struct TrackingStatus {
    pub status: Option<String>,
    pub status_details: Option<String>,
    pub status_date: Option<String>,
    pub object_created: Option<String>,
    pub location: Option<TrackLocation>,
}

#[derive(Debug, Deserialize)]
pub struct TrackLocation {
    pub city: Option<String>,
    pub state: Option<String>,
    pub country: Option<String>,
}

impl TrackLocation {
    /// "city, state, country" with the missing parts left out; `None` when all are.
    fn render(&self) -> Option<String> {
        let parts: Vec<&str> = [&self.city, &self.state, &self.country]
            .into_iter()
            .filter_map(non_empty)
            .collect();
        (!parts.is_empty()).then(|| parts.join(", "))
    }
}

fn status_of(s: Option<&TrackingStatus>) -> String {
    s.and_then(|s| non_empty(&s.status))
        .unwrap_or("UNKNOWN")
        .to_string()
}

/// The WIT tracking for `carrier`/`tracking_number` as asked. Events without any date are
/// left out (`occurred-at` is required); `status_date` falls back to `object_created`.
pub fn tracking(track: Track, carrier: &str, tracking_number: &str) -> Tracking {
    let events = track
        .tracking_history
        .iter()
        .filter_map(|e| {
            let at = non_empty(&e.status_date).or(non_empty(&e.object_created))?;
            let status = status_of(Some(e));
            Some(TrackingEvent {
                description: non_empty(&e.status_details).unwrap_or(&status).to_string(),
                status,
                location: e.location.as_ref().and_then(TrackLocation::render),
                occurred_at: at.to_string(),
            })
        })
        .collect();
    Tracking {
        tracking_number: non_empty(&track.tracking_number)
            .unwrap_or(tracking_number)
            .to_string(),
        carrier: carrier.to_string(),
        status: status_of(track.tracking_status.as_ref()),
        events,
        eta: non_empty(&track.eta).map(str::to_string),
    }
}

/// Shippo's carrier token (`usps`, `dhl_express`) for a carrier as rates name it
/// (`USPS`, `DHL Express`) or as a token already.
pub fn carrier_token(carrier: &str) -> String {
    const ALIASES: &[(&str, &str)] = &[
        ("dpd germany", "dpd_de"),
        ("evri uk", "hermes_uk"),
        ("evri", "hermes_uk"),
        ("correiosbr", "correios_br"),
        ("correos españa", "correos_espana"),
        ("jitsu", "axlehire"),
        ("bettertrucks", "better_trucks"),
        ("collectplus", "collect_plus"),
        ("epost global", "rr_donnelley"),
        ("royal mail storefeeder", "royal_mail_sf"),
        ("united delivery service", "uds"),
    ];
    let lower = carrier.trim().to_lowercase();
    if let Some((_, token)) = ALIASES.iter().find(|(name, _)| *name == lower) {
        return (*token).to_string();
    }
    let mut token = String::with_capacity(lower.len());
    for c in lower.chars() {
        if c.is_ascii_alphanumeric() {
            token.push(c);
        } else if !token.is_empty() && !token.ends_with('_') {
            token.push('_');
        }
    }
    token.trim_end_matches('_').to_string()
}

#[cfg(test)]
#[path = "model_tests.rs"]
mod tests;
