//! `/products`: the public catalog, admin-only writes, and full-text search.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::rfc3339;
use super::error::{ApiError, ErrorBody};
use super::json::{bad_query, check_limit, ApiJson, ApiQuery};
use super::session_auth::AdminUser;
use super::AppState;
use crate::catalog::{NewProduct, Product, ProductPatch};
use crate::domain::Money;
use crate::search::SearchQuery;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/products", get(list).post(create))
        .route("/products/search", get(search))
        .route("/products/{sku}", get(read).patch(update).delete(remove))
}

#[derive(Serialize, ToSchema)]
pub struct ProductView {
    sku: String,
    name: String,
    description: String,
    category: String,
    #[schema(value_type = Object)]
    price: Money,
    stock: u64,
    images: Vec<String>,
    created_at: String,
    updated_at: String,
    /// Relevance, in search results only.
    #[serde(skip_serializing_if = "Option::is_none")]
    score: Option<f32>,
}

fn view((p, stock): Product, score: Option<f32>) -> ProductView {
    ProductView {
        sku: p.sku,
        name: p.name,
        description: p.description,
        category: p.category,
        price: p.price,
        stock,
        images: p.images,
        created_at: rfc3339(p.created_at),
        updated_at: rfc3339(p.updated_at),
        score,
    }
}

#[derive(Serialize, ToSchema)]
pub struct ProductBody {
    product: ProductView,
}

#[derive(Serialize, ToSchema)]
pub struct ProductsBody {
    products: Vec<ProductView>,
    next_cursor: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// 1-100, default 20.
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// Products by sku.
#[utoipa::path(get, path = "/products", tag = "catalog", params(ListParams),
    responses((status = 200, body = ProductsBody), (status = 400, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<ListParams>,
) -> Result<Json<ProductsBody>, ApiError> {
    let limit = check_limit(p.limit)?;
    let mut items = state.catalog.list(p.cursor.as_deref(), limit + 1).await?;
    let next_cursor = (items.len() > limit).then(|| items[limit - 1].0.sku.clone());
    items.truncate(limit);
    Ok(Json(ProductsBody {
        products: items.into_iter().map(|p| view(p, None)).collect(),
        next_cursor,
    }))
}

/// One product with its stock.
#[utoipa::path(get, path = "/products/{sku}", tag = "catalog", params(("sku" = String, Path)),
    responses((status = 200, body = ProductBody), (status = 404, body = ErrorBody)))]
pub async fn read(
    State(state): State<AppState>,
    Path(sku): Path<String>,
) -> Result<Json<ProductBody>, ApiError> {
    Ok(Json(ProductBody {
        product: view(state.catalog.get(&sku).await?, None),
    }))
}

/// Adds a product (admin). It is searchable when this returns.
#[utoipa::path(post, path = "/products", tag = "catalog", security(("session" = [])), request_body = NewProduct,
    responses((status = 201, body = ProductBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    AdminUser(_admin): AdminUser,
    ApiJson(new): ApiJson<NewProduct>,
) -> Result<Response, ApiError> {
    let product = state.catalog.create(new).await?;
    Ok((
        StatusCode::CREATED,
        Json(ProductBody {
            product: view(product, None),
        }),
    )
        .into_response())
}

/// Changes a product (admin): absent fields stay.
#[utoipa::path(patch, path = "/products/{sku}", tag = "catalog", security(("session" = [])),
    params(("sku" = String, Path)), request_body = ProductPatch,
    responses((status = 200, body = ProductBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    AdminUser(_admin): AdminUser,
    Path(sku): Path<String>,
    ApiJson(patch): ApiJson<ProductPatch>,
) -> Result<Json<ProductBody>, ApiError> {
    let product = state.catalog.update(&sku, patch).await?;
    Ok(Json(ProductBody {
        product: view(product, None),
    }))
}

/// Removes a product (admin). It is gone from search when this returns.
#[utoipa::path(delete, path = "/products/{sku}", tag = "catalog", security(("session" = [])),
    params(("sku" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn remove(
    State(state): State<AppState>,
    AdminUser(_admin): AdminUser,
    Path(sku): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.catalog.delete(&sku).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    /// Words to find in name, description and category; the last word may be a prefix,
    /// words of 5+ letters may have one typo. Empty: everything (with the filters).
    q: Option<String>,
    /// Exact category (case-insensitive).
    category: Option<String>,
    /// Minimum price in minor units.
    min_price: Option<i64>,
    /// Maximum price in minor units.
    max_price: Option<i64>,
    /// 1-100, default 20.
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// Relevance-ranked full-text search (BM25), with filters and pagination.
#[utoipa::path(get, path = "/products/search", tag = "catalog", params(SearchParams),
    responses((status = 200, body = ProductsBody), (status = 400, body = ErrorBody)))]
pub async fn search(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<SearchParams>,
) -> Result<Json<ProductsBody>, ApiError> {
    let limit = check_limit(p.limit)?;
    let text = p.q.unwrap_or_default();
    if text.len() > 256 {
        return Err(bad_query("q is limited to 256 bytes"));
    }
    if let (Some(lo), Some(hi)) = (p.min_price, p.max_price) {
        if lo > hi {
            return Err(bad_query("min_price is above max_price"));
        }
    }
    let offset = match p.cursor.as_deref() {
        None => 0,
        Some(c) => c
            .strip_prefix("o")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n <= 10_000)
            .ok_or_else(|| bad_query("not a cursor from this API"))?,
    };
    let query = SearchQuery {
        text,
        category: p.category,
        min_price: p.min_price,
        max_price: p.max_price,
        limit,
        offset,
    };
    let page = state.catalog.search(query).await?;
    Ok(Json(ProductsBody {
        next_cursor: page.more.then(|| format!("o{}", offset + limit)),
        products: page
            .hits
            .into_iter()
            .map(|(p, score)| view(p, Some(score)))
            .collect(),
    }))
}
