//! What a plugin says about its upstream (refused keys, accounts, internal hosts) goes to
//! the server log under the request id; the client gets which plugin failed and that id.

use std::path::Path;
use std::time::Duration;

use crate::helpers::{plugin_path, serve_logging_to, wait_listening};
use crate::shop::binary::{Api, ShopDir};
use crate::shop::{cart, ShopOptions, SECRET_KEY};

/// The log line that holds both `needle` and the request id, if any.
fn logged_with(log: &Path, needle: &str, request_id: &str) -> Option<String> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .find(|l| l.contains(needle) && l.contains(request_id))
        .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_upstream_errors_reach_the_log_not_the_client() {
    let shop = ShopDir::create(&ShopOptions {
        rules: false,
        ..ShopOptions::default()
    })
    .await;
    // A Stripe plugin whose key localstripe refuses (HTTP 401), and an http-plugin
    // whose upstream complains about its key.
    let config = std::fs::read_to_string(&shop.config).unwrap();
    let config = config.replace(
        &format!("secret_key = \"{SECRET_KEY}\""),
        "secret_key = \"rk_not_a_secret_key\"",
    ) + &format!(
        "\n[[plugin]]\nname = \"leaky\"\nworld = \"http-plugin\"\nsource = \"{}\"\n",
        plugin_path("hostile")
    );
    std::fs::write(&shop.config, config).unwrap();
    let log = shop.data.parent().unwrap().join("server.log");
    let mut child = serve_logging_to(&shop.config, &shop.data, &log, "json").await;
    let api = Api {
        base: wait_listening(&mut child).await,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap(),
    };
    let admin = api.login("root").await;
    api.create_product(&admin, "KEY-1", 5).await;
    let shopper = api.login("shopper").await;

    let resp = api
        .client
        .post(format!("{}/checkout", api.base))
        .bearer_auth(&shopper)
        .header("idempotency-key", "bad-key")
        .json(&cart(&[("KEY-1", 1)], "pm_card_visa", None))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    let request_id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    let text = resp.text().await.unwrap();
    for secret in ["secret key", "401", "rk_not_a_secret_key", "internal:"] {
        assert!(!text.contains(secret), "{secret:?} reached the client: {text}");
    }
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["error"]["code"], "payment_failed");
    assert_eq!(body["error"]["plugin"], "stripe");
    assert_eq!(body["error"]["request_id"], request_id.as_str());
    assert!(
        body["error"]["message"].as_str().unwrap().contains(&request_id),
        "{body}"
    );
    assert_eq!(api.stock(&shopper, "KEY-1").await, 5);

    let resp = api
        .client
        .get(format!("{}/plugins/leaky/upstream-error", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    let leaky_id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    let text = resp.text().await.unwrap();
    assert!(!text.contains("sk_live_hostile"), "{text}");
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["error"]["code"], "upstream_error");
    assert_eq!(body["error"]["plugin"], "leaky");
    assert_eq!(body["error"]["request_id"], leaky_id.as_str());

    // The operator still has every word, under the request id.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let (payment, upstream) = loop {
        let found = (
            logged_with(&log, "Stripe refused the secret key (HTTP 401)", &request_id),
            logged_with(&log, "sk_live_hostile_4242", &leaky_id),
        );
        if let (Some(a), Some(b)) = found {
            break (a, b);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the details are not in the log:\n{}",
            std::fs::read_to_string(&log).unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(payment.contains("stripe"), "{payment}");
    assert!(upstream.contains("leaky"), "{upstream}");
    child.kill().await.unwrap();
}
