//! `GET /weather`: normalized conditions from the configured weather-plugin, cached.

use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::Deserialize;
use utoipa::IntoParams;

use super::error::{ApiError, ErrorBody};
use super::json::ApiQuery;
use super::AppState;
use crate::domain::RequestId;
use crate::weather::{Place, WeatherReport};

pub fn router() -> Router<AppState> {
    Router::new().route("/weather", get(weather))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct WeatherParams {
    /// Latitude in degrees (with `lon`).
    lat: Option<f64>,
    /// Longitude in degrees (with `lat`).
    lon: Option<f64>,
    /// A place name, resolved by the provider (instead of `lat`/`lon`).
    city: Option<String>,
    /// Days of daily forecast, 0-7 (default 0).
    days: Option<u8>,
}

/// Current conditions (and optionally a daily forecast). Served from a per-place cache
/// for the configured TTL (`x-cache: hit|miss`, `age`); when the provider fails, a stale
/// result is served if there is one (`x-cache: stale`), else 502 or 504.
#[utoipa::path(get, path = "/weather", tag = "weather", params(WeatherParams),
    responses((status = 200, body = WeatherReport), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 502, body = ErrorBody), (status = 503, body = ErrorBody), (status = 504, body = ErrorBody)))]
pub async fn weather(
    State(state): State<AppState>,
    Extension(request_id): Extension<RequestId>,
    ApiQuery(p): ApiQuery<WeatherParams>,
) -> Result<Response, ApiError> {
    let place = match (p.lat, p.lon, p.city) {
        (Some(lat), Some(lon), None) => Place::coordinates(lat, lon)?,
        (None, None, Some(city)) => Place::city(&city)?,
        _ => {
            return Err(ApiError::BadRequest {
                code: "invalid_location",
                message: "give either lat and lon, or city".into(),
            })
        }
    };
    let days = p.days.unwrap_or(0);
    if days > 7 {
        return Err(ApiError::BadRequest {
            code: "invalid_days",
            message: "days must be between 0 and 7".into(),
        });
    }
    let (report, freshness, age) = state.weather.report(place, days, &request_id).await?;
    let mut response = Json((*report).clone()).into_response();
    let headers = response.headers_mut();
    headers.insert("x-cache", HeaderValue::from_static(freshness.as_str()));
    headers.insert("age", HeaderValue::from(age.as_secs()));
    Ok(response)
}
