//! Validating product input: new products and merge patches.

use serde::Deserialize;

use super::CatalogError;
use crate::domain::{Money, Sku};
use crate::store::ProductRecord;

const MAX_NAME: usize = 200;
const MAX_DESCRIPTION: usize = 5_000;
const MAX_CATEGORY: usize = 64;
const MAX_IMAGES: usize = 10;
const MAX_URL: usize = 2_048;
/// Largest stock count accepted.
const MAX_STOCK: u64 = 1_000_000_000;

fn invalid(field: &'static str, message: impl ToString) -> CatalogError {
    CatalogError::Invalid {
        field,
        message: message.to_string(),
    }
}

fn text(field: &'static str, raw: &str, min: usize, max: usize) -> Result<String, CatalogError> {
    let t = raw.trim();
    let n = t.chars().count();
    if n < min || n > max || t.chars().any(|c| c.is_control() && c != '\n') {
        return Err(invalid(
            field,
            format!("{min}-{max} characters, no control characters"),
        ));
    }
    Ok(t.to_string())
}

fn price(m: Money) -> Result<Money, CatalogError> {
    Money::price(m.amount, m.currency).map_err(|e| invalid("price", e))
}

fn stock(n: u64) -> Result<u64, CatalogError> {
    if n > MAX_STOCK {
        return Err(invalid("stock", format!("at most {MAX_STOCK}")));
    }
    Ok(n)
}

fn images(urls: &[String]) -> Result<Vec<String>, CatalogError> {
    if urls.len() > MAX_IMAGES {
        return Err(invalid("images", format!("at most {MAX_IMAGES} images")));
    }
    urls.iter()
        .map(|u| {
            let parsed = url::Url::parse(u).map_err(|_| invalid("images", format!("{u:?} is not a URL")))?;
            if !matches!(parsed.scheme(), "http" | "https") || u.len() > MAX_URL || parsed.host().is_none() {
                return Err(invalid("images", format!("{u:?} must be an http(s) URL")));
            }
            Ok(parsed.to_string())
        })
        .collect()
}

/// A new product as an admin sends it.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProduct {
    /// 1-64 of letters, digits, `-_.`; stored upper-case.
    pub sku: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub category: String,
    /// Integer minor units and an ISO 4217 currency.
    #[schema(value_type = Object)]
    pub price: Money,
    /// Units in stock (an integer ≥ 0).
    #[serde(default)]
    pub stock: u64,
    /// http(s) image URLs.
    #[serde(default)]
    pub images: Vec<String>,
}

impl NewProduct {
    pub(super) fn into_record(self, now: i64) -> Result<(ProductRecord, u64), CatalogError> {
        let sku = Sku::parse(&self.sku).map_err(|e| invalid("sku", e))?;
        Ok((
            ProductRecord {
                sku: sku.as_str().to_string(),
                name: text("name", &self.name, 1, MAX_NAME)?,
                description: text("description", &self.description, 0, MAX_DESCRIPTION)?,
                category: text("category", &self.category, 1, MAX_CATEGORY)?,
                price: price(self.price)?,
                images: images(&self.images)?,
                created_at: now,
                updated_at: now,
            },
            stock(self.stock)?,
        ))
    }
}

/// A merge patch of a product: absent fields stay. The sku cannot change.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub category: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub price: Option<Money>,
    pub stock: Option<u64>,
    pub images: Option<Vec<String>>,
}

impl ProductPatch {
    /// Applies the patch; returns the new stock if the patch sets one.
    pub(super) fn apply(self, p: &mut ProductRecord) -> Result<Option<u64>, CatalogError> {
        if let Some(v) = self.name {
            p.name = text("name", &v, 1, MAX_NAME)?;
        }
        if let Some(v) = self.description {
            p.description = text("description", &v, 0, MAX_DESCRIPTION)?;
        }
        if let Some(v) = self.category {
            p.category = text("category", &v, 1, MAX_CATEGORY)?;
        }
        if let Some(v) = self.price {
            p.price = price(v)?;
        }
        if let Some(v) = self.images {
            p.images = images(&v)?;
        }
        self.stock.map(stock).transpose()
    }
}
