//! `POST /checkout` (exactly once per `Idempotency-Key`, run to its end whatever the
//! client does) and `POST /checkout/quote`.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Json, Router};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use super::error::{ApiError, ErrorBody};
use super::json::ApiJson;
use super::orders_view::{OrderBody, QuoteBody};
use super::request_context::with_request_id;
use super::session_auth::CurrentUser;
use super::AppState;
use crate::checkout::{Answer, CheckoutError, CheckoutRequest, Placed};
use crate::domain::{IdempotencyKey, RequestId};
use crate::store::{OrderRecord, StoredResponse};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/checkout", post(place))
        .route("/checkout/quote", post(quote))
}

/// Prices a cart (catalog prices, then the rules chain) and lists shipping rates.
/// Nothing is reserved or charged.
#[utoipa::path(post, path = "/checkout/quote", tag = "checkout", security(("session" = [])),
    request_body = CheckoutRequest,
    responses((status = 200, body = QuoteBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn quote(
    State(state): State<AppState>,
    Extension(rid): Extension<RequestId>,
    CurrentUser(p): CurrentUser,
    ApiJson(req): ApiJson<CheckoutRequest>,
) -> Result<Json<QuoteBody>, ApiError> {
    Ok(Json(state.checkout.quote(&p, req, &rid).await?.into()))
}

/// A body sent under an `Idempotency-Key`: the key, the hash that tells a retry (same
/// body) from a misuse of the key, and the parsed body. Checked in the order clients
/// have always seen: size, key, content type, JSON, shape.
pub struct Keyed<T> {
    key: IdempotencyKey,
    request_hash: String,
    body: T,
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Keyed<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        let headers = req.headers().clone();
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        Self::parse(&headers, &bytes).map_err(IntoResponse::into_response)
    }
}

impl<T: DeserializeOwned> Keyed<T> {
    fn parse(headers: &HeaderMap, bytes: &[u8]) -> Result<Self, ApiError> {
        let bad_key = |message: String| ApiError::BadRequest {
            code: "invalid_idempotency_key",
            message,
        };
        let raw = headers
            .get("idempotency-key")
            .ok_or_else(|| bad_key("the Idempotency-Key header is required".into()))?
            .to_str()
            .map_err(|_| bad_key("Idempotency-Key must be visible ASCII".into()))?;
        let key = IdempotencyKey::parse(raw).map_err(|e| bad_key(e.to_string()))?;
        let is_json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| ApiError::BadRequest {
            code: "invalid_json",
            message: format!("the body is not valid JSON: {e}"),
        })?;
        // serde_json's maps are sorted, so this is a canonical form of the request.
        let canonical = serde_json::to_vec(&value).unwrap_or_default();
        let request_hash = hex::encode(Sha256::digest(&canonical));
        let body = serde_json::from_value(value).map_err(|e| ApiError::BadRequest {
            code: "invalid_request",
            message: e.to_string(),
        })?;
        Ok(Self {
            key,
            request_hash,
            body,
        })
    }
}

fn replay(stored: StoredResponse) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, stored.body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert("idempotent-replayed", HeaderValue::from_static("true"));
    resp
}

/// The first answer to a key: rendered (with this request's id) in the checkout's own
/// task, and kept as stored for its retries.
impl Answer for Response {
    async fn render(outcome: Result<OrderRecord, CheckoutError>, rid: &RequestId) -> (Self, StoredResponse) {
        let response = with_request_id(rid, || match outcome {
            Ok(order) => (StatusCode::CREATED, Json(OrderBody { order: order.into() })).into_response(),
            Err(e) => ApiError::from(e).into_response(),
        });
        let (parts, body) = response.into_parts();
        // In-memory JSON bodies: collecting them cannot fail.
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
        let stored = StoredResponse {
            status: parts.status.as_u16(),
            body: String::from_utf8_lossy(&bytes).into_owned(),
        };
        (Response::from_parts(parts, axum::body::Body::from(bytes)), stored)
    }
}

/// Places an order: prices it, runs the rules, reserves stock, charges, records the
/// order (on disk before the answer) and buys a shipping label. Requires an
/// `Idempotency-Key`: a retry with the same key and body gets the first response
/// (waiting while the first is in flight) and never a second charge; the same key with
/// another body is 422 `idempotency_mismatch`. Once started, the checkout runs to its
/// end even if the client goes away; a retry then gets its order.
#[utoipa::path(post, path = "/checkout", tag = "checkout", security(("session" = [])),
    request_body = CheckoutRequest,
    params(("Idempotency-Key" = String, Header, description = "Unique per intended order; kept 24 h")),
    responses((status = 201, body = OrderBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 402, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
              (status = 502, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn place(
    State(state): State<AppState>,
    Extension(rid): Extension<RequestId>,
    CurrentUser(p): CurrentUser,
    keyed: Keyed<CheckoutRequest>,
) -> Result<Response, ApiError> {
    let placed = state
        .checkout
        .place_once::<Response>(p, keyed.body, &keyed.key, keyed.request_hash, rid)
        .await?;
    Ok(match placed {
        Placed::Ran(response) => response,
        Placed::Replay(stored) => replay(stored),
    })
}
