//! `/orders`: the caller's orders, tracking, and admin refunds.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ErrorBody};
use super::json::{check_limit, decode_cursor, ApiQuery};
use super::orders_view::{OrderBody, OrderView};
use super::session_auth::{AdminUser, CurrentUser};
use super::AppState;
use crate::checkout::CheckoutError;
use crate::domain::{OrderId, RequestId, UserId};
use crate::store::OrderRecord;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/orders", get(list))
        .route("/orders/{id}", get(read))
        .route("/orders/{id}/tracking", get(tracking))
        .route("/orders/{id}/refund", post(refund))
}

#[derive(Serialize, ToSchema)]
pub struct OrdersBody {
    orders: Vec<OrderView>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    next_cursor: Option<String>,
}

impl OrdersBody {
    pub fn new(orders: Vec<OrderView>, next_cursor: Option<String>) -> Self {
        Self { orders, next_cursor }
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// 1-100, default 20.
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// The caller's orders, newest first, paginated.
#[utoipa::path(get, path = "/orders", tag = "orders", security(("session" = [])), params(ListParams),
    responses((status = 200, body = OrdersBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    CurrentUser(p): CurrentUser,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<OrdersBody>, ApiError> {
    let limit = check_limit(params.limit)?;
    let before = decode_cursor(params.cursor)?;
    let (orders, next) = state
        .checkout
        .orders()
        .page_for_user(&p.user.id, before.as_deref(), limit)
        .await?;
    Ok(Json(OrdersBody {
        orders: orders.into_iter().map(OrderView::from).collect(),
        next_cursor: next.map(hex::encode),
    }))
}

/// An order id from a path: one that cannot be an order's is just not found.
pub fn order_id(raw: &str) -> Result<OrderId, CheckoutError> {
    OrderId::parse(raw).map_err(|_| CheckoutError::OrderNotFound)
}

async fn own(state: &AppState, user_id: &UserId, id: &str) -> Result<OrderRecord, ApiError> {
    match state.checkout.orders().get(&order_id(id)?).await? {
        Some(o) if o.user_id == *user_id => Ok(o),
        _ => Err(CheckoutError::OrderNotFound.into()),
    }
}

/// One of the caller's orders.
#[utoipa::path(get, path = "/orders/{id}", tag = "orders", security(("session" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = OrderBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn read(
    State(state): State<AppState>,
    CurrentUser(p): CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<OrderBody>, ApiError> {
    Ok(Json(OrderBody {
        order: own(&state, &p.user.id, &id).await?.into(),
    }))
}

#[derive(Serialize, ToSchema)]
pub struct TrackingEventView {
    status: String,
    description: String,
    location: Option<String>,
    occurred_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct TrackingBody {
    carrier: String,
    tracking_number: String,
    status: String,
    eta: Option<String>,
    events: Vec<TrackingEventView>,
}

/// Where the parcel is, from the shipping plugin.
#[utoipa::path(get, path = "/orders/{id}/tracking", tag = "orders", security(("session" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = TrackingBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn tracking(
    State(state): State<AppState>,
    Extension(rid): Extension<RequestId>,
    CurrentUser(p): CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<TrackingBody>, ApiError> {
    let order = own(&state, &p.user.id, &id).await?;
    let t = state.checkout.track(&order, &rid).await?;
    Ok(Json(TrackingBody {
        carrier: t.carrier,
        tracking_number: t.tracking_number,
        status: t.status,
        eta: t.eta,
        events: t
            .events
            .into_iter()
            .map(|e| TrackingEventView {
                status: e.status,
                description: e.description,
                location: e.location,
                occurred_at: e.occurred_at,
            })
            .collect(),
    }))
}

/// Refunds a paid order through its payment plugin and restores its stock (admin).
#[utoipa::path(post, path = "/orders/{id}/refund", tag = "orders", security(("session" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = OrderBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn refund(
    State(state): State<AppState>,
    Extension(rid): Extension<RequestId>,
    AdminUser(_admin): AdminUser,
    Path(id): Path<String>,
) -> Result<Json<OrderBody>, ApiError> {
    let order = state.checkout.refund(&order_id(&id)?, &rid).await?;
    Ok(Json(OrderBody { order: order.into() }))
}
