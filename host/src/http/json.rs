//! `ApiJson<T>`: axum's `Json` extractor with our JSON errors instead of plain text.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::error::ApiError;

pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(match rejection {
                JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType,
                JsonRejection::JsonSyntaxError(e) => ApiError::BadRequest {
                    code: "invalid_json",
                    message: format!("the body is not valid JSON: {}", e.body_text()),
                },
                JsonRejection::JsonDataError(e) => ApiError::BadRequest {
                    code: "invalid_request",
                    message: e.body_text(),
                },
                other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                    ApiError::PayloadTooLarge { limit: 0 }
                }
                other => ApiError::BadRequest {
                    code: "bad_body",
                    message: other.body_text(),
                },
            }),
        }
    }
}

/// `ApiQuery<T>`: axum's `Query` extractor with our JSON errors instead of plain text.
pub struct ApiQuery<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => Err(ApiError::BadRequest {
                code: "invalid_query",
                message: rejection.body_text(),
            }),
        }
    }
}

/// A 400 `invalid_query`.
pub fn bad_query(message: impl Into<String>) -> ApiError {
    ApiError::BadRequest {
        code: "invalid_query",
        message: message.into(),
    }
}

/// A list's `cursor`: the hex a previous page returned as `next_cursor`.
pub fn decode_cursor(cursor: Option<String>) -> Result<Option<Vec<u8>>, ApiError> {
    cursor
        .map(|c| hex::decode(c).map_err(|_| bad_query("not a cursor from this API")))
        .transpose()
}

/// A list's `limit`: 1-100, 20 when absent.
pub fn check_limit(limit: Option<usize>) -> Result<usize, ApiError> {
    let limit = limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(bad_query("limit must be between 1 and 100"));
    }
    Ok(limit)
}
