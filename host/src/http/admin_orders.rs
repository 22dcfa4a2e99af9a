//! `/admin/orders`: every customer's orders, for operators (admins only) — e.g. to find
//! the orders to refund, or the ones a payment provider has not settled yet.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use utoipa::IntoParams;

use super::error::{ApiError, ErrorBody};
use super::json::{check_limit, decode_cursor, ApiQuery};
use super::orders::{order_id, OrdersBody};
use super::orders_view::{OrderBody, OrderView};
use super::session_auth::AdminUser;
use super::AppState;
use crate::checkout::CheckoutError;
use crate::store::OrderStatus;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/orders", get(list))
        .route("/admin/orders/{id}", get(read))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AdminListParams {
    /// Only orders in this state.
    #[param(value_type = Option<String>, example = "pending")]
    status: Option<OrderStatus>,
    /// 1-100, default 20.
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// All orders, newest first, paginated. With `status`, a page may hold fewer than
/// `limit` orders and still have a `next_cursor` (each page looks at a bounded number of
/// orders); follow the cursor until it is absent.
#[utoipa::path(get, path = "/admin/orders", tag = "admin", security(("session" = [])), params(AdminListParams),
    responses((status = 200, body = OrdersBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    AdminUser(_admin): AdminUser,
    ApiQuery(params): ApiQuery<AdminListParams>,
) -> Result<Json<OrdersBody>, ApiError> {
    let limit = check_limit(params.limit)?;
    let before = decode_cursor(params.cursor)?;
    let (orders, next) = state
        .checkout
        .orders()
        .page_all(params.status, before.as_deref(), limit)
        .await?;
    Ok(Json(OrdersBody::new(
        orders.into_iter().map(OrderView::from).collect(),
        next.map(hex::encode),
    )))
}

/// Any customer's order.
#[utoipa::path(get, path = "/admin/orders/{id}", tag = "admin", security(("session" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = OrderBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn read(
    State(state): State<AppState>,
    AdminUser(_admin): AdminUser,
    Path(id): Path<String>,
) -> Result<Json<OrderBody>, ApiError> {
    let order = state
        .checkout
        .orders()
        .get(&order_id(&id)?)
        .await?
        .ok_or(CheckoutError::OrderNotFound)?;
    Ok(Json(OrderBody { order: order.into() }))
}
