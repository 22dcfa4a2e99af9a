//! `weather-open-meteo`: the `weather-plugin` world on Open-Meteo's public APIs.
//!
//! - Forecast API: `GET {base_url}/v1/forecast?latitude=&longitude=&current=…&daily=…`
//!   (<https://open-meteo.com/en/docs>), WMO weather codes, metric units.
//! - Geocoding API: `GET {geocoding_base_url}/v1/search?name=&count=1`
//!   (<https://open-meteo.com/en/docs/geocoding-api>).
//!
//! Config: `base_url` (default `https://api.open-meteo.com`), `geocoding_base_url`
//! (default `https://geocoding-api.open-meteo.com`). Both hosts must be on the plugin's
//! `allowed_hosts`.

mod wmo;

use plinth_sdk::weather::{config, outbound, Conditions, DailyForecast, Error, Guest, Location};
use serde::Deserialize;

struct OpenMeteo;

const CURRENT_FIELDS: &str = "temperature_2m,relative_humidity_2m,apparent_temperature,is_day,precipitation,weather_code,wind_speed_10m,wind_direction_10m";
const DAILY_FIELDS: &str = "weather_code,temperature_2m_max,temperature_2m_min,precipitation_sum";

fn base(key: &str, default: &str) -> String {
    config::get(key)
        .unwrap_or_else(|| default.to_string())
        .trim_end_matches('/')
        .to_string()
}

/// Percent-encodes a query value (RFC 3986 unreserved characters stay).
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Open-Meteo's error body: `{"error": true, "reason": "…"}`.
#[derive(Deserialize)]
struct ApiError {
    reason: Option<String>,
}

/// GETs `url` and parses the JSON body; maps transport and API errors to typed errors.
fn get_json<T: for<'de> Deserialize<'de>>(url: &str) -> Result<T, Error> {
    let resp = outbound::send(&plinth_sdk::weather::OutboundRequest {
        method: "GET".into(),
        url: url.to_string(),
        headers: vec![("accept".into(), "application/json".into())],
        body: vec![],
        timeout_ms: None,
    })?;
    match resp.status {
        200 => serde_json::from_slice(&resp.body)
            .map_err(|e| Error::Upstream(format!("Open-Meteo sent an unexpected body: {e}"))),
        400 => {
            let reason = serde_json::from_slice::<ApiError>(&resp.body)
                .ok()
                .and_then(|e| e.reason)
                .unwrap_or_else(|| "bad request".into());
            Err(Error::Invalid(reason))
        }
        429 => Err(Error::Unavailable("Open-Meteo rate limit reached".into())),
        status => Err(Error::Upstream(format!("Open-Meteo answered HTTP {status}"))),
    }
}

#[derive(Deserialize)]
struct GeocodingResponse {
    #[serde(default)]
    results: Vec<Place>,
}

#[derive(Deserialize)]
struct Place {
    name: String,
    latitude: f64,
    longitude: f64,
    country: Option<String>,
    admin1: Option<String>,
}

#[derive(Deserialize)]
struct ForecastResponse {
    current: Option<Current>,
    daily: Option<Daily>,
}

#[derive(Deserialize)]
struct Current {
    time: String,
    temperature_2m: f64,
    relative_humidity_2m: Option<f64>,
    apparent_temperature: Option<f64>,
    is_day: Option<u8>,
    precipitation: Option<f64>,
    weather_code: Option<u16>,
    wind_speed_10m: f64,
    wind_direction_10m: Option<f64>,
}

#[derive(Deserialize)]
struct Daily {
    time: Vec<String>,
    weather_code: Vec<Option<u16>>,
    temperature_2m_max: Vec<Option<f64>>,
    temperature_2m_min: Vec<Option<f64>>,
    precipitation_sum: Vec<Option<f64>>,
}

fn forecast_url(at: &Location, extra: &str) -> String {
    format!(
        "{}/v1/forecast?latitude={}&longitude={}&timezone=UTC&wind_speed_unit=kmh{extra}",
        base("base_url", "https://api.open-meteo.com"),
        at.latitude,
        at.longitude
    )
}

impl Guest for OpenMeteo {
    fn geocode(city: String) -> Result<Location, Error> {
        let url = format!(
            "{}/v1/search?name={}&count=1&language=en&format=json",
            base("geocoding_base_url", "https://geocoding-api.open-meteo.com"),
            encode(city.trim())
        );
        let found: GeocodingResponse = get_json(&url)?;
        let place = found
            .results
            .into_iter()
            .next()
            .ok_or_else(|| Error::NotFound(format!("no place called {city:?}")))?;
        let name = [Some(place.name), place.admin1, place.country]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(", ");
        Ok(Location {
            latitude: place.latitude,
            longitude: place.longitude,
            name: Some(name),
        })
    }

    fn current(at: Location) -> Result<Conditions, Error> {
        let url = forecast_url(&at, &format!("&current={CURRENT_FIELDS}"));
        let body: ForecastResponse = get_json(&url)?;
        let c = body
            .current
            .ok_or_else(|| Error::Upstream("Open-Meteo sent no current conditions".into()))?;
        let code = c.weather_code.unwrap_or(0);
        Ok(Conditions {
            // Open-Meteo's `time` is ISO 8601 local to `timezone` (UTC here), minutes only.
            observed_at: format!("{}:00Z", c.time),
            temperature_c: c.temperature_2m,
            apparent_temperature_c: c.apparent_temperature,
            relative_humidity_percent: c.relative_humidity_2m,
            wind_speed_kmh: c.wind_speed_10m,
            wind_direction_deg: c.wind_direction_10m,
            precipitation_mm: c.precipitation,
            weather_code: code,
            description: wmo::describe(code).to_string(),
            is_day: c.is_day.unwrap_or(1) == 1,
        })
    }

    fn forecast(at: Location, days: u8) -> Result<Vec<DailyForecast>, Error> {
        let days = days.clamp(1, 16);
        let url = forecast_url(&at, &format!("&daily={DAILY_FIELDS}&forecast_days={days}"));
        let body: ForecastResponse = get_json(&url)?;
        let d = body
            .daily
            .ok_or_else(|| Error::Upstream("Open-Meteo sent no daily forecast".into()))?;
        Ok(d.time
            .iter()
            .enumerate()
            .map(|(i, date)| {
                let code = d.weather_code.get(i).copied().flatten().unwrap_or(0);
                DailyForecast {
                    date: date.clone(),
                    temperature_max_c: d.temperature_2m_max.get(i).copied().flatten().unwrap_or(f64::NAN),
                    temperature_min_c: d.temperature_2m_min.get(i).copied().flatten().unwrap_or(f64::NAN),
                    precipitation_mm: d.precipitation_sum.get(i).copied().flatten().unwrap_or(0.0),
                    weather_code: code,
                    description: wmo::describe(code).to_string(),
                }
            })
            .collect())
    }
}

plinth_sdk::weather::export_weather_plugin!(OpenMeteo);

#[cfg(test)]
mod tests {
    use super::encode;

    #[test]
    fn encodes_query_values() {
        assert_eq!(encode("São Paulo"), "S%C3%A3o%20Paulo");
        assert_eq!(encode("a&b=c"), "a%26b%3Dc");
    }
}
