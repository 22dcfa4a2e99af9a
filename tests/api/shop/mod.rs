//! A whole shop for checkout tests: the server with rules, a payment plugin against
//! localstripe (or a fake Razorpay), the Shippo plugin against a fake Shippo, an admin
//! and a shopper.

pub mod binary;
pub mod fakes;
pub mod hold_proxy;
pub mod localstripe;

use std::sync::Arc;

use serde_json::{json, Value};

use crate::helpers::{json, plugin_path, spawn_app_with_admin, TestApp};
pub use localstripe::{localstripe, SECRET_KEY};

pub const WEBHOOK_SECRET: &str = "whsec_plinth_test";

pub enum Payments {
    /// payments-stripe against localstripe, or against `base_url` if given.
    Stripe {
        base_url: Option<String>,
        timeout_ms: u32,
    },
    /// payments-razorpay against a fake on this port.
    Razorpay { port: u16 },
}

pub struct ShopOptions {
    pub payments: Payments,
    pub rules: bool,
    /// Fuel budget for the tax rule (to make it run out).
    pub tax_fuel: Option<u64>,
    /// Reconcile every second, orders older than a second (default: every 30 s, 60 s).
    pub fast_reconciler: bool,
    /// Appended to the config (e.g. another payment plugin).
    pub extra: String,
    /// Let one customer run this many checkouts at once (and the process as many):
    /// for tests that rush one account with parallel checkouts. Default: the server's.
    pub parallel_checkouts: Option<u32>,
}

impl Default for ShopOptions {
    fn default() -> Self {
        Self {
            payments: Payments::Stripe {
                base_url: None,
                timeout_ms: 10_000,
            },
            rules: true,
            tax_fuel: None,
            fast_reconciler: false,
            extra: String::new(),
            parallel_checkouts: None,
        }
    }
}

pub struct Shop {
    pub app: TestApp,
    pub admin: String,
    pub shopper: String,
    pub shippo: Arc<fakes::Shippo>,
}

fn host_of(url: &str) -> String {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string()
}

pub async fn config(opts: &ShopOptions) -> (String, Arc<fakes::Shippo>) {
    let (shippo_port, shippo) = fakes::shippo().await;
    let payment = match &opts.payments {
        Payments::Stripe { base_url, timeout_ms } => {
            let base = match base_url {
                Some(b) => b.clone(),
                None => format!("http://127.0.0.1:{}", localstripe().await.port),
            };
            format!(
                r#"
[[plugin]]
name = "stripe"
world = "payment-plugin"
source = "{source}"
allowed_hosts = ["{host}"]
limits = {{ timeout_ms = {timeout_ms} }}
config = {{ base_url = "{base}", secret_key = "{SECRET_KEY}", webhook_secret = "{WEBHOOK_SECRET}", send_description = "false", created_filter = "false" }}
"#,
                source = plugin_path("payments_stripe"),
                host = host_of(&base),
            )
        }
        Payments::Razorpay { port } => format!(
            r#"
[[plugin]]
name = "razorpay"
world = "payment-plugin"
source = "{source}"
allowed_hosts = ["127.0.0.1:{port}"]
config = {{ base_url = "http://127.0.0.1:{port}", key_id = "rzp_test_x", key_secret = "secret", webhook_secret = "{WEBHOOK_SECRET}" }}
"#,
            source = plugin_path("payments_razorpay"),
        ),
    };
    let payment_name = match opts.payments {
        Payments::Stripe { .. } => "stripe",
        Payments::Razorpay { .. } => "razorpay",
    };
    let rules = if opts.rules {
        let fuel = opts
            .tax_fuel
            .map(|f| format!("limits = {{ fuel = {f} }}"))
            .unwrap_or_default();
        format!(
            r#"
[[plugin]]
name = "discounts"
world = "rules-plugin"
source = "{discounts}"
config = {{ codes = '{{"SUMMER10": {{"percent": 10}}, "BIGSPENDER": {{"fixed": 1000, "currency": "USD", "min_order": 100000}}, "OLDCODE": {{"percent": 50, "expires_at": 1}}}}' }}

[[plugin]]
name = "limits"
world = "rules-plugin"
source = "{limits}"
config = {{ max_per_customer = '{{"LTD-1": 2}}' }}

[[plugin]]
name = "tax"
world = "rules-plugin"
source = "{tax}"
{fuel}
config = {{ rates = '{{"US-CA": 725, "DE": 1900, "*": 0}}' }}
"#,
            discounts = plugin_path("rules_discounts"),
            limits = plugin_path("rules_limits"),
            tax = plugin_path("rules_tax"),
        )
    } else {
        String::new()
    };
    let rule_list = if opts.rules {
        r#"["discounts", "limits", "tax"]"#
    } else {
        "[]"
    };
    let mut reconciler = if opts.fast_reconciler {
        "reconcile_every_secs = 1\nreconcile_stale_secs = 1".to_string()
    } else {
        String::new()
    };
    if let Some(n) = opts.parallel_checkouts {
        reconciler.push_str(&format!(
            "\nmax_in_flight = {n}\nmax_in_flight_per_customer = {n}"
        ));
    }
    let text = format!(
        r#"
[checkout]
payment = "{payment_name}"
shipping = "shippo"
rules = {rule_list}
origin = {{ name = "Plinth Warehouse", line1 = "1 Dock Road", city = "Oakland", region = "CA", postal_code = "94607", country = "US" }}
{reconciler}

[[plugin]]
name = "shippo"
world = "shipping-plugin"
source = "{shippo}"
allowed_hosts = ["127.0.0.1:{shippo_port}"]
limits = {{ timeout_ms = 30000 }}
config = {{ base_url = "http://127.0.0.1:{shippo_port}", api_token = "shippo_test_token" }}
{payment}
{rules}
{extra}
"#,
        shippo = plugin_path("shipping_shippo"),
        extra = opts.extra,
    );
    (text, shippo)
}

/// A running shop with an admin (`root`) and a shopper (`shopper`).
pub async fn shop(opts: ShopOptions) -> Shop {
    let (text, shippo) = config(&opts).await;
    let (app, admin) = spawn_app_with_admin(&text).await;
    app.register("shopper").await;
    let shopper = app.login("shopper").await;
    Shop {
        app,
        admin,
        shopper,
        shippo,
    }
}

impl Shop {
    pub async fn add_product(&self, sku: &str, cents: i64, stock: u64) {
        let body = json!({ "sku": sku, "name": format!("Product {sku}"), "category": "Test",
                           "price": { "amount": cents, "currency": "USD" }, "stock": stock });
        let resp = self
            .app
            .client
            .post(self.app.url("/products"))
            .bearer_auth(&self.admin)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "create {sku}");
    }

    pub async fn stock(&self, sku: &str) -> u64 {
        json(self.app.get(&format!("/products/{sku}")).await).await["product"]["stock"]
            .as_u64()
            .unwrap()
    }

    pub async fn checkout_as(&self, token: &str, key: &str, body: &Value) -> reqwest::Response {
        self.app
            .client
            .post(self.app.url("/checkout"))
            .bearer_auth(token)
            .header("idempotency-key", key)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// `POST /checkout/quote` as the shopper.
    pub async fn quote(&self, body: &Value) -> reqwest::Response {
        self.app
            .client
            .post(self.app.url("/checkout/quote"))
            .bearer_auth(&self.shopper)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// The PaymentIntents localstripe holds for the shopper's checkout with `key` (the
    /// order id is derived from the user and the key, as the server does). Other tests
    /// share localstripe, so counting all intents would race with them.
    pub async fn intents_for_key(&self, key: &str) -> Vec<Value> {
        let me = json(self.app.get_as(&self.shopper, "/auth/me").await).await;
        let user_id = me["user"]["id"].as_str().unwrap().to_string();
        let order_id = {
            use sha2::{Digest, Sha256};
            hex::encode(&Sha256::digest(format!("{user_id}\u{0}{key}").as_bytes())[..16])
        };
        localstripe().await.intents_for(&order_id).await
    }

    pub async fn checkout(&self, key: &str, body: &Value) -> reqwest::Response {
        self.checkout_as(&self.shopper, key, body).await
    }

    /// The shopper's checkout, run in a task: its status and JSON body.
    pub fn spawn_checkout(&self, key: String, body: &Value) -> tokio::task::JoinHandle<(u16, Value)> {
        let (client, url, token, body) = (
            self.app.client.clone(),
            self.app.url("/checkout"),
            self.shopper.clone(),
            body.clone(),
        );
        tokio::spawn(async move {
            let resp = client
                .post(url)
                .bearer_auth(token)
                .header("idempotency-key", key)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            (status, json(resp).await)
        })
    }
}

/// A checkout body shipping to Oakland, CA.
pub fn cart(lines: &[(&str, u32)], payment_method: &str, discount: Option<&str>) -> Value {
    json!({
        "lines": lines.iter().map(|(sku, q)| json!({ "sku": sku, "quantity": q })).collect::<Vec<_>>(),
        "shipping_address": { "name": "Ada Lovelace", "line1": "12 Analytical Way", "city": "Oakland",
                              "region": "CA", "postal_code": "94610", "country": "US", "email": "ada@example.com" },
        "payment_method": payment_method,
        "discount_code": discount,
    })
}

/// A `Stripe-Signature` header for `body` signed at `at` (Unix seconds) with `secret`.
pub fn stripe_signature(body: &str, at: i64, secret: &str) -> String {
    format!("t={at},v1={}", hmac_hex(secret, &format!("{at}.{body}")))
}

/// An `X-Razorpay-Signature` header for `body` under `secret`.
pub fn razorpay_signature(body: &str, secret: &str) -> String {
    hmac_hex(secret, body)
}

fn hmac_hex(secret: &str, message: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(message.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Now, in Unix seconds (webhook timestamps).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Polls `probe` every 20 ms until it gives a value; fails the test after `limit`.
pub async fn wait_for<T, F, Fut>(what: &str, limit: std::time::Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
