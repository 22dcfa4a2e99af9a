//! `POST /webhooks/{plugin}`: provider events, verified by the payment plugin (which
//! holds the signing secret) and applied to the order idempotently.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Extension, Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::AppState;
use crate::auth::now_ms;
use crate::domain::{RequestId, World};
use crate::runtime::bindings::payment::exports::plinth::plugin::payment_gateway as pay;

pub fn router() -> Router<AppState> {
    Router::new().route("/webhooks/{plugin}", post(receive))
}

#[derive(Serialize, ToSchema)]
pub struct WebhookBody {
    received: bool,
    /// Whether the event changed an order (false for duplicates and ignored types).
    applied: bool,
}

/// Receives a payment provider's webhook. A bad signature is 400 and changes nothing.
#[utoipa::path(post, path = "/webhooks/{plugin}", tag = "checkout",
    params(("plugin" = String, Path, description = "The payment plugin's name")),
    request_body(content = String, content_type = "application/json", description = "The provider's event, as signed"),
    responses((status = 200, body = WebhookBody), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn receive(
    State(state): State<AppState>,
    Extension(rid): Extension<RequestId>,
    Path(plugin): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<WebhookBody>, ApiError> {
    let plugin = state
        .runtime
        .plugin(&plugin)
        .filter(|p| p.world() == World::Payment)
        .ok_or_else(|| ApiError::PluginNotFound(plugin.clone()))?;
    let request = pay::WebhookRequest {
        headers: headers
            .iter()
            .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect(),
        body: body.to_vec(),
        received_at: now_ms() / 1000,
    };
    let event = state
        .runtime
        .payment_parse_webhook(plugin, request, &rid)
        .await?
        .value
        .map_err(|e| {
            tracing::warn!(plugin = %plugin.name(), reason = %crate::checkout::describe_payment_error(&e), "webhook refused");
            // Why a signature does not check out is for the sender; anything else (a
            // missing secret, a plugin fault) is for the log.
            let message = match e {
                pay::PaymentError::Invalid(m) => m,
                _ => format!("plugin {} could not verify the webhook; the cause is in the server log", plugin.name()),
            };
            ApiError::BadRequest {
                code: "invalid_webhook",
                message,
            }
        })?;
    // Only orders paid through this plugin: one provider's secret never settles
    // another provider's orders.
    let applied = state.checkout.apply_event(plugin.name().as_str(), &event).await?;
    tracing::info!(plugin = %plugin.name(), event = ?event, applied, "webhook");
    Ok(Json(WebhookBody {
        received: true,
        applied,
    }))
}
