//! What a hostile http-plugin's response can carry onto the host's origin: only
//! allow-listed headers, always sandboxed and `nosniff`, and a bounded number and size
//! of headers (past the bound: 502 `plugin_bad_response`, never a crash).

use reqwest::header::HeaderMap;

use crate::helpers::{error_code, hello_plugin, hostile_plugin, spawn_app};

/// The plugin header cap (`MAX_HEADERS` in host/src/http/plugin_response.rs).
const MAX_PLUGIN_HEADERS: usize = 64;

fn values<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a str> {
    headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect()
}

/// The headers the host puts on every plugin response, exactly once each.
fn assert_sandboxed(headers: &HeaderMap) {
    assert_eq!(values(headers, "content-security-policy"), ["sandbox"]);
    assert_eq!(values(headers, "x-content-type-options"), ["nosniff"]);
    assert_eq!(values(headers, "cross-origin-resource-policy"), ["same-site"]);
    assert_eq!(values(headers, "referrer-policy"), ["no-referrer"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_html_with_scripts_is_sandboxed_and_never_sniffed() {
    let app = spawn_app(&hostile_plugin("hostile", "")).await;
    let resp = app.get("/plugins/hostile/html-script").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/html; charset=utf-8");
    assert_sandboxed(resp.headers());
    // The body is the plugin's own; the sandbox is what keeps its script off our origin.
    assert!(resp.text().await.unwrap().contains("<script>"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_cannot_set_cookies_or_security_headers() {
    let app = spawn_app(&hostile_plugin("hostile", "")).await;
    let resp = app.get("/plugins/hostile/hostile-headers").await;
    assert_eq!(resp.status(), 200);
    let headers = resp.headers().clone();
    for name in [
        "set-cookie",
        "set-cookie2",
        "clear-site-data",
        "strict-transport-security",
        "content-security-policy-report-only",
        "x-frame-options",
        "access-control-allow-origin",
        "access-control-allow-credentials",
        "location",
        "refresh",
        "link",
        "www-authenticate",
        "alt-svc",
        "permissions-policy",
        "cross-origin-opener-policy",
        "x-accel-redirect",
        "x-sendfile",
        "nel",
    ] {
        assert!(
            headers.get(name).is_none(),
            "a plugin set {name}: {:?}",
            values(&headers, name)
        );
    }
    // The host's own values win over the plugin's attempts to override them.
    assert_sandboxed(&headers);
    assert_ne!(headers["x-request-id"], "forged");
    // Harmless headers pass untouched.
    assert_eq!(values(&headers, "content-type"), ["text/plain; charset=utf-8"]);
    assert_eq!(values(&headers, "cache-control"), ["no-store"]);
    assert_eq!(values(&headers, "x-custom"), ["kept"]);
    assert_eq!(values(&headers, "etag"), ["\"v1\""]);
    // Framing stays the host's: the plugin's `Content-Length: 1` did not cut the body.
    assert_eq!(resp.text().await.unwrap(), "headers");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_redirects_stay_on_this_origin() {
    let app = spawn_app(&hostile_plugin("hostile", "")).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // `to` is percent-decoded by the plugin: %5C is `\`, %09 a tab.
    for (to, kept) in [
        (
            "/plugins/hostile/next%3Fpage%3D2",
            Some("/plugins/hostile/next?page=2"),
        ),
        ("https://evil.example/login", None),
        ("//evil.example/login", None),
        ("/%5Cevil.example/login", None),
        ("/%09/evil.example/login", None),
        ("javascript:alert(1)", None),
    ] {
        let resp = client
            .get(app.url(&format!("/plugins/hostile/redirect?to={to}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 302, "{to}");
        assert_eq!(
            resp.headers().get("location").map(|v| v.to_str().unwrap()),
            kept,
            "redirect to {to}"
        );
    }
    let resp = client
        .get(app.url("/plugins/hostile/redirect?to=/next"))
        .send()
        .await
        .unwrap();
    assert_sandboxed(resp.headers());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_or_too_large_plugin_headers_are_a_bad_gateway_not_a_crash() {
    let plugins = format!("{}{}", hostile_plugin("hostile", ""), hello_plugin("hello"));
    let app = spawn_app(&plugins).await;
    let too_many = format!("/plugins/hostile/many-headers?n={}", MAX_PLUGIN_HEADERS + 1);
    for path in [
        "/plugins/hostile/many-headers?n=30000",
        too_many.as_str(),
        "/plugins/hostile/big-header?kib=70",
    ] {
        let resp = app
            .client
            .get(app.url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: no answer: {e:?}"));
        let body = error_code(resp, 502).await;
        assert_eq!(body["error"]["code"], "plugin_bad_response", "{path}");
        assert_eq!(body["error"]["plugin"], "hostile");
    }
    // Up to the cap the response is served, every header intact.
    let resp = app
        .get(&format!("/plugins/hostile/many-headers?n={MAX_PLUGIN_HEADERS}"))
        .await;
    assert_eq!(resp.status(), 200);
    let last = format!("x-h{}", MAX_PLUGIN_HEADERS - 1);
    assert_eq!(values(resp.headers(), &last), ["v"]);
    assert_sandboxed(resp.headers());
    // And the server is unharmed.
    assert_eq!(app.get("/plugins/hello/").await.status(), 200);
    assert_eq!(app.get("/healthz").await.status(), 200);
    app.stop().await;
}
