//! `GET /weather`: current conditions (and a forecast) from the configured
//! weather-plugin, cached per place for a TTL. Concurrent misses for one place share a
//! single upstream fetch; when the provider fails, a stale result (within `stale_for`)
//! is served and marked as such.

mod cache;

use std::sync::Arc;
use std::time::Duration;

use futures::future::FutureExt;
use serde::Serialize;
use utoipa::ToSchema;

pub use cache::Freshness;
use cache::ReportCache;

use crate::config::WeatherConfig;
use crate::domain::RequestId;
use crate::runtime::bindings::weather::exports::plinth::plugin::weather_provider::Location;
use crate::runtime::{InvokeError, Plugin, Runtime};

/// Where to report on.
#[derive(Clone, Debug)]
pub enum Place {
    Coordinates { latitude: f64, longitude: f64 },
    City(String),
}

impl Place {
    /// Coordinates are rounded to 0.01° (about 1 km), so nearby requests share a result.
    pub fn coordinates(latitude: f64, longitude: f64) -> Result<Self, WeatherError> {
        if !(-90.0..=90.0).contains(&latitude) || !(-180.0..=180.0).contains(&longitude) {
            return Err(WeatherError::Invalid(
                "lat must be within -90..90 and lon within -180..180".into(),
            ));
        }
        let round = |v: f64| (v * 100.0).round() / 100.0;
        Ok(Place::Coordinates {
            latitude: round(latitude),
            longitude: round(longitude),
        })
    }

    pub fn city(name: &str) -> Result<Self, WeatherError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(WeatherError::Invalid("city must be 1-100 characters".into()));
        }
        Ok(Place::City(name.to_string()))
    }

    fn key(&self, days: u8) -> String {
        match self {
            Place::Coordinates { latitude, longitude } => format!("{latitude:.2},{longitude:.2}/{days}"),
            Place::City(name) => format!("city:{}/{days}", name.to_lowercase()),
        }
    }
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct PlaceView {
    pub latitude: f64,
    pub longitude: f64,
    pub name: Option<String>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ConditionsView {
    pub observed_at: String,
    pub temperature_c: f64,
    pub apparent_temperature_c: Option<f64>,
    pub relative_humidity_percent: Option<f64>,
    pub wind_speed_kmh: f64,
    pub wind_direction_deg: Option<f64>,
    pub precipitation_mm: Option<f64>,
    /// WMO weather interpretation code.
    pub weather_code: u16,
    pub description: String,
    pub is_day: bool,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct DayView {
    pub date: String,
    pub temperature_max_c: Option<f64>,
    pub temperature_min_c: Option<f64>,
    pub precipitation_mm: f64,
    pub weather_code: u16,
    pub description: String,
}

/// The normalized answer, whatever the provider.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct WeatherReport {
    pub location: PlaceView,
    pub current: ConditionsView,
    pub forecast: Vec<DayView>,
    /// The plugin that answered.
    pub provider: String,
}

#[derive(Debug, thiserror::Error)]
pub enum WeatherError {
    #[error("no weather provider is configured")]
    Disabled,
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Provider(#[from] InvokeError),
}

pub struct WeatherService {
    runtime: Arc<Runtime>,
    plugin: Option<Arc<Plugin>>,
    cache: ReportCache<Arc<WeatherReport>, Arc<WeatherError>>,
}

impl WeatherService {
    pub fn new(runtime: Arc<Runtime>, config: &WeatherConfig) -> Self {
        let plugin = config
            .plugin
            .as_ref()
            .and_then(|name| runtime.plugin(name.as_str()).cloned());
        Self {
            runtime,
            plugin,
            cache: ReportCache::new(config.ttl, config.stale_for),
        }
    }

    /// A report for `place`, from the cache when fresh; otherwise one shared fetch.
    pub async fn report(
        &self,
        place: Place,
        days: u8,
        request_id: &RequestId,
    ) -> Result<(Arc<WeatherReport>, Freshness, Duration), Arc<WeatherError>> {
        let plugin = self
            .plugin
            .clone()
            .ok_or_else(|| Arc::new(WeatherError::Disabled))?;
        let key = place.key(days);
        let fetch = || {
            let (runtime, request_id) = (self.runtime.clone(), request_id.clone());
            fetch(runtime, plugin, place, days, request_id).boxed().shared()
        };
        self.cache.get_or_fetch(&key, fetch).await
    }
}

async fn fetch(
    runtime: Arc<Runtime>,
    plugin: Arc<Plugin>,
    place: Place,
    days: u8,
    request_id: RequestId,
) -> Result<Arc<WeatherReport>, Arc<WeatherError>> {
    let run = async {
        let location = match place {
            Place::Coordinates { latitude, longitude } => Location {
                latitude,
                longitude,
                name: None,
            },
            Place::City(name) => runtime.weather_geocode(&plugin, name, &request_id).await?.value,
        };
        let current = runtime
            .weather_current(&plugin, location.clone(), &request_id)
            .await?
            .value;
        let forecast = if days > 0 {
            runtime
                .weather_forecast(&plugin, location.clone(), days, &request_id)
                .await?
                .value
        } else {
            Vec::new()
        };
        let finite = |v: f64| v.is_finite().then_some(v);
        Ok::<_, WeatherError>(WeatherReport {
            location: PlaceView {
                latitude: location.latitude,
                longitude: location.longitude,
                name: location.name,
            },
            current: ConditionsView {
                observed_at: current.observed_at,
                temperature_c: current.temperature_c,
                apparent_temperature_c: current.apparent_temperature_c,
                relative_humidity_percent: current.relative_humidity_percent,
                wind_speed_kmh: current.wind_speed_kmh,
                wind_direction_deg: current.wind_direction_deg,
                precipitation_mm: current.precipitation_mm,
                weather_code: current.weather_code,
                description: current.description,
                is_day: current.is_day,
            },
            forecast: forecast
                .into_iter()
                .map(|d| DayView {
                    date: d.date,
                    temperature_max_c: finite(d.temperature_max_c),
                    temperature_min_c: finite(d.temperature_min_c),
                    precipitation_mm: d.precipitation_mm,
                    weather_code: d.weather_code,
                    description: d.description,
                })
                .collect(),
            provider: plugin.name().to_string(),
        })
    };
    run.await.map(Arc::new).map_err(Arc::new)
}
