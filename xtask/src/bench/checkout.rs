//! The checkout scenario: `POST /checkout` end to end — catalog pricing, a rules plugin
//! (tax), an atomic stock reservation, a charge through the `payments-stripe` plugin
//! against a [`FakeGateway`](super::fake_gateway::FakeGateway) that answers at once, and
//! the order committed — next to the `hello` plugin route, in the same run.
//!
//! Durability is the server's default: the reservation, the paid order and the stored
//! idempotent response are each flushed to disk (sled, group commit) before the 201.
//! Every request carries a fresh `Idempotency-Key`, so each one is a real checkout;
//! the catalog is seeded with enough stock that none runs out.

use hyper::Method;

use super::scenario::{
    Capture, Expect, Figure, Measurement, Phase, PreStart, Ratio, RequestSpec, Scenario, SetupRequest, HELLO,
};

/// Connections of each measurement (the issue's figure).
pub const CHECKOUT_CONNECTIONS: usize = 32;
/// Products seeded, each with [`STOCK`] units; checkouts rotate over [`SKUS`] of them.
pub const PRODUCTS: usize = 1_200;
pub const STOCK: u64 = 100_000_000;
pub const SKUS: usize = 24;

const USER: &str = r#"{"username": "bench-shopper", "password": "correct-horse-battery-staple-shop"}"#;

/// The config the scenario appends: the payment plugin pointed at the fake gateway, the
/// tax rule, and `[checkout]` wiring them (no shipping plugin: labels are not timed).
pub const CONFIG: &str = r#"
[checkout]
payment = "stripe"
rules = ["tax"]
# One bench account checks out on every connection at once (the server allows 4 per
# customer by default).
max_in_flight_per_customer = 32

[[plugin]]
name = "stripe"
world = "payment-plugin"
source = "{plugins}/payments_stripe.wasm"
allowed_hosts = ["{gateway}"]
config = { base_url = "http://{gateway}", secret_key = "sk_test_bench", webhook_secret = "whsec_bench", send_description = "false" }

[[plugin]]
name = "tax"
world = "rules-plugin"
source = "{plugins}/rules_tax.wasm"
config = { rates = '{"US-CA": 725, "*": 0}' }
"#;

fn checkout_body(sku: &str) -> serde_json::Value {
    serde_json::json!({
        "lines": [{ "sku": sku, "quantity": 1 }],
        "shipping_address": { "name": "Ada Lovelace", "line1": "12 Analytical Way", "city": "Oakland",
                              "region": "CA", "postal_code": "94610", "country": "US" },
        "payment_method": "pm_card_visa",
    })
}

/// Registers the bench shopper (already there is fine) and logs in, keeping the
/// session token as `{token}`.
pub fn setup() -> Vec<SetupRequest> {
    let user: serde_json::Value = serde_json::from_str(USER).expect("valid JSON");
    vec![
        SetupRequest {
            request: RequestSpec::json(Method::POST, "/auth/register", &user),
            also_ok: vec![hyper::StatusCode::CONFLICT],
            capture: None,
        },
        SetupRequest {
            request: RequestSpec::json(Method::POST, "/auth/login", &user),
            also_ok: Vec::new(),
            capture: Some(Capture {
                field: "token",
                var: "token",
            }),
        },
    ]
}

/// One checkout of a unit per SKU, over [`SKUS`] SKUs of a catalog of `products`, as
/// the shopper of [`setup`], each with a new `Idempotency-Key`.
pub fn checkouts(products: usize) -> Vec<RequestSpec> {
    super::search::point_skus(products, SKUS)
        .iter()
        .map(|sku| {
            RequestSpec::json(Method::POST, "/checkout", &checkout_body(sku))
                .with_header("authorization", "Bearer {token}")
                .expect("valid header")
                .with_unique_header("idempotency-key")
        })
        .collect()
}

/// `plinth seed` with `products` products of [`STOCK`] units each.
pub fn seed(products: usize) -> PreStart {
    PreStart {
        args: vec![
            "seed".into(),
            "--count".into(),
            products.to_string(),
            "--stock".into(),
            STOCK.to_string(),
        ],
        expect_stdout: format!("seeded {products} products"),
    }
}

pub fn scenario() -> Scenario {
    Scenario {
        name: "checkout",
        description:
            "POST /checkout (catalog price, tax rule plugin, stock reservation, charge through \
                      payments-stripe against a fake gateway answering at once, order flushed to disk \
                      before the 201; a new Idempotency-Key each) vs GET /plugins/hello/, 32 connections each",
        plugins: vec![HELLO],
        pre_start: vec![seed(PRODUCTS)],
        setup: setup(),
        probe: None,
        phases: vec![
            Phase::single(
                Measurement::new("hello", vec![RequestSpec::get("/plugins/hello/")])
                    .on_connections(CHECKOUT_CONNECTIONS),
            ),
            Phase::single(
                Measurement::new("checkout", checkouts(PRODUCTS))
                    .on_connections(CHECKOUT_CONNECTIONS)
                    .expecting(Expect::NewOrders),
            ),
        ],
        ratios: vec![Ratio {
            numerator: Figure::Rate("checkout"),
            denominator: Figure::Rate("hello"),
            target: None,
        }],
        bounds: Vec::new(),
        extra_config: CONFIG,
        fake_gateway: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_is_valid_and_every_checkout_is_new() {
        let s = scenario();
        s.validate().expect("valid");
        assert!(s.fake_gateway);
        assert_eq!(s.setup[1].capture.map(|c| c.var), Some("token"));
        let checkouts = &s.phases[1].measurements[0].requests;
        assert_eq!(checkouts.len(), SKUS);
        let mut spec = checkouts[0].clone();
        spec.substitute("token", "t0k3n").unwrap();
        let a = spec.to_request("h").unwrap();
        let b = spec.to_request("h").unwrap();
        assert_eq!(a.headers()["authorization"], "Bearer t0k3n");
        assert_ne!(a.headers()["idempotency-key"], b.headers()["idempotency-key"]);
        assert_eq!(
            s.pre_start[0].args[3..],
            ["--stock".to_string(), STOCK.to_string()]
        );
    }

    #[test]
    fn config_names_the_gateway_and_plugins() {
        assert!(CONFIG.contains("allowed_hosts = [\"{gateway}\"]"));
        assert!(CONFIG.contains("{plugins}/payments_stripe.wasm"));
        assert!(CONFIG.contains("{plugins}/rules_tax.wasm"));
    }
}
