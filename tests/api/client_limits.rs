//! Per-client limits over real HTTP: the client's address behind the operator's proxies
//! (`X-Forwarded-For` read from the right, `[auth] trusted_proxies`), failed logins and
//! registrations per address.

use futures::StreamExt;

use crate::helpers::{error_code, json, spawn_app, TestApp, PASSWORD};

/// One proxy of the operator's in front, appending to `X-Forwarded-For`.
const BEHIND_ONE_PROXY: &str = "[auth]\ntrusted_proxies = 1\n";

/// POST /auth/login with the given `X-Forwarded-For` header lines, in order.
async fn login_via(app: &TestApp, username: &str, password: &str, xff_lines: &[&str]) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.url("/auth/login"))
        .json(&serde_json::json!({ "username": username, "password": password }));
    for line in xff_lines {
        req = req.header("x-forwarded-for", *line);
    }
    req.send().await.unwrap()
}

/// Asserts a 429 `rate_limited` with a Retry-After of 1..=`max` seconds.
async fn assert_rate_limited(resp: reqwest::Response, max: u64) {
    assert_eq!(resp.status(), 429, "not limited: {:?}", resp.text().await);
    let retry_after: u64 = resp
        .headers()
        .get("retry-after")
        .expect("Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=max).contains(&retry_after), "Retry-After {retry_after}");
    assert_eq!(error_code(resp, 429).await["error"]["code"], "rate_limited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_forwarded_entries_do_not_escape_the_per_address_login_limit() {
    let app = spawn_app(BEHIND_ONE_PROXY).await;
    // The client makes up the first entry each time; the proxy appends the address it
    // saw, either in a line of its own or at the end of the client's line.
    for (client, own_line) in [("203.0.113.7", true), ("203.0.113.8", false)] {
        for i in 0..60u32 {
            let spoofed = format!("198.18.{}.{}", i / 200, i % 200 + 1);
            let lines = if own_line {
                vec![spoofed, client.to_string()]
            } else {
                vec![format!("{spoofed}, {client}")]
            };
            let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
            // A new username each time: only the per-address limit (50 a minute) applies.
            let resp = login_via(&app, &format!("guess{i}"), "not the password", &lines).await;
            if i < 50 {
                assert_eq!(resp.status(), 401, "{client}: attempt {}", i + 1);
            } else {
                assert_eq!(
                    resp.status(),
                    429,
                    "{client}: attempt {} ({lines:?}) is over the per-address limit",
                    i + 1
                );
                if i == 50 {
                    assert_rate_limited(resp, 60).await;
                }
            }
        }
    }
    // Another address is not limited; neither is a request whose proxy entry is
    // garbage (it counts as the socket's address, and is never taken as 203.0.113.7).
    let resp = login_via(&app, "guess-other", "not the password", &["203.0.113.9"]).await;
    assert_eq!(resp.status(), 401);
    let resp = login_via(&app, "guess-junk", "not the password", &["203.0.113.7, junk"]).await;
    assert_eq!(resp.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_address_is_the_entry_the_outermost_trusted_proxy_added() {
    let one = spawn_app(BEHIND_ONE_PROXY).await;
    let two = spawn_app("[auth]\ntrusted_proxies = 2\n").await;
    let none = spawn_app("").await;
    let cases: &[(&TestApp, &[&str], &str)] = &[
        (&one, &["6.6.6.6, 198.51.100.1"], "198.51.100.1"),
        (&one, &["6.6.6.6", "198.51.100.2"], "198.51.100.2"),
        (&one, &["6.6.6.6,", "198.51.100.3:4711"], "198.51.100.3"),
        (&one, &["198.51.100.4, not-an-address"], "127.0.0.1"),
        (&one, &[], "127.0.0.1"),
        (&two, &["6.6.6.6, 198.51.100.5", "10.0.0.9"], "198.51.100.5"),
        (&two, &["198.51.100.6"], "127.0.0.1"),
        (&none, &["198.51.100.7"], "127.0.0.1"),
    ];
    for app in [&one, &two, &none] {
        app.register("ursula").await;
    }
    for (app, lines, expected) in cases {
        let resp = login_via(app, "ursula", PASSWORD, lines).await;
        assert_eq!(resp.status(), 200, "{lines:?}");
        let body = json(resp).await;
        assert_eq!(
            body["session"]["ip"], *expected,
            "X-Forwarded-For lines {lines:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_is_limited_per_address_before_the_password_is_hashed() {
    // A short hashing queue: were registrations hashed before the limit, the burst
    // below would overflow it (503 auth_busy) instead of getting 429s.
    let app = spawn_app("[auth]\nhash_queue = 4\n").await;
    // The documented default: 20 registrations per address per hour.
    for i in 0..20 {
        app.register(&format!("newbie{i}")).await;
    }
    let resp = app
        .client
        .post(app.url("/auth/register"))
        .json(&serde_json::json!({ "username": "newbie20", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_rate_limited(resp, 3600).await;
    let resp = app.login_with("newbie20", PASSWORD).await;
    assert_eq!(
        error_code(resp, 401).await["error"]["code"],
        "invalid_credentials",
        "the refused registration created no user"
    );

    let statuses: Vec<u16> = futures::stream::iter(0..200)
        .map(|i| {
            let req = app
                .client
                .post(app.url("/auth/register"))
                .json(&serde_json::json!({ "username": format!("flood{i}"), "password": PASSWORD }));
            async move { req.send().await.unwrap().status().as_u16() }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == 429), "{statuses:?}");
    let resp = app.login_with("flood0", PASSWORD).await;
    assert_eq!(resp.status(), 401);
}
