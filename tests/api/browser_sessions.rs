//! Cookie sessions as a browser uses them: an unsafe request authenticated by the
//! session cookie must come from the server's own origin (`Sec-Fetch-Site`, else
//! `Origin`), or it is refused with 403 `csrf_rejected` and changes nothing; bearer
//! clients and clients that are not browsers are unaffected. An https `public_url`
//! makes the cookies `Secure` by default.

use crate::helpers::{error_code, json, plugin_path, spawn_app, spawn_app_with_admin, TestApp};

const EVIL: &str = "https://evil.example";

fn cookie(token: &str) -> String {
    format!("plinth_session={token}")
}

/// POST `path` with the session cookie and extra headers.
async fn post_with_cookie(
    app: &TestApp,
    path: &str,
    token: &str,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = app.client.post(app.url(path)).header("cookie", cookie(token));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.send().await.unwrap()
}

async fn refused(resp: reqwest::Response) {
    let body = error_code(resp, 403).await;
    assert_eq!(body["error"]["code"], "csrf_rejected", "{body}");
}

async fn me_status(app: &TestApp, token: &str) -> u16 {
    let resp = app
        .client
        .get(app.url("/auth/me"))
        .header("cookie", cookie(token))
        .send()
        .await
        .unwrap();
    resp.status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cookie_logout_from_another_origin_is_refused_and_the_session_lives() {
    let app = spawn_app("").await;
    app.register("vic").await;
    let token = app.login("vic").await;
    let own = format!("http://{}", app.addr);

    refused(post_with_cookie(&app, "/auth/logout", &token, &[("origin", EVIL)]).await).await;
    for headers in [
        [("sec-fetch-site", "same-site")],
        [("sec-fetch-site", "cross-site")],
        [("origin", "null")],
        [("origin", "http://127.0.0.1:1")],
    ] {
        refused(post_with_cookie(&app, "/auth/logout", &token, &headers).await).await;
    }
    // A body-carrying write is refused the same way, and nothing is stored.
    let resp = app
        .client
        .post(app.url("/contacts"))
        .header("cookie", cookie(&token))
        .header("origin", EVIL)
        .json(&serde_json::json!({ "name": "Forged Entry" }))
        .send()
        .await
        .unwrap();
    refused(resp).await;
    assert_eq!(me_status(&app, &token).await, 200, "the session survived");
    let contacts = json(app.get_as(&token, "/contacts").await).await;
    assert_eq!(contacts["contacts"], serde_json::json!([]), "{contacts}");

    // Bearer clients are not checked, whatever the browser headers say.
    let other = app.login("vic").await;
    let resp = app
        .client
        .post(app.url("/auth/logout"))
        .bearer_auth(&other)
        .header("origin", EVIL)
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    // Logging in is not cookie-authenticated: not checked either.
    let resp = app
        .client
        .post(app.url("/auth/login"))
        .header("origin", EVIL)
        .json(&serde_json::json!({ "username": "vic", "password": crate::helpers::PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // Our own pages: Sec-Fetch-Site same-origin, or (older browsers) our Origin.
    let resp = post_with_cookie(&app, "/auth/logout", &token, &[("origin", &own)]).await;
    assert_eq!(resp.status(), 204);
    assert_eq!(me_status(&app, &token).await, 401, "logged out");
    let token = app.login("vic").await;
    let resp = post_with_cookie(&app, "/auth/logout", &token, &[("sec-fetch-site", "same-origin")]).await;
    assert_eq!(resp.status(), 204);
    // A client that is not a browser (neither header) keeps working with the cookie.
    let token = app.login("vic").await;
    assert_eq!(
        post_with_cookie(&app, "/auth/logout", &token, &[]).await.status(),
        204
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_cookie_cannot_disable_a_user_from_another_origin() {
    let (app, admin) = spawn_app_with_admin("").await;
    let vic = app.register("vic").await["user"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/admin/users/{vic}/disable");

    refused(post_with_cookie(&app, &path, &admin, &[("origin", EVIL)]).await).await;
    refused(post_with_cookie(&app, &path, &admin, &[("sec-fetch-site", "same-site")]).await).await;
    assert_eq!(
        app.login_with("vic", crate::helpers::PASSWORD).await.status(),
        200,
        "not disabled"
    );

    let own = format!("http://{}", app.addr);
    let resp = post_with_cookie(&app, &path, &admin, &[("origin", &own)]).await;
    assert_eq!(resp.status(), 200);
    let resp = app.login_with("vic", crate::helpers::PASSWORD).await;
    assert_eq!(error_code(resp, 403).await["error"]["code"], "account_disabled");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cookie_write_to_a_plugin_route_from_another_origin_never_reaches_the_plugin() {
    let plugins = format!(
        "\n[[plugin]]\nname = \"members\"\nworld = \"http-plugin\"\nsource = \"{}\"\nauth = \"required\"\n",
        plugin_path("hello")
    );
    let app = spawn_app(&plugins).await;
    app.register("vic").await;
    let token = app.login("vic").await;
    let counter = || async {
        let resp = app
            .client
            .get(app.url("/plugins/members/counter"))
            .header("cookie", cookie(&token))
            .send()
            .await
            .unwrap();
        json(resp).await["counter"].as_i64().unwrap()
    };

    refused(post_with_cookie(&app, "/plugins/members/counter", &token, &[("origin", EVIL)]).await).await;
    let headers = [("sec-fetch-site", "cross-site")];
    refused(post_with_cookie(&app, "/plugins/members/counter", &token, &headers).await).await;
    assert_eq!(counter().await, 0, "the plugin was not called");

    let headers = [("sec-fetch-site", "same-origin")];
    let resp = post_with_cookie(&app, "/plugins/members/counter", &token, &headers).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(counter().await, 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_public_url_makes_the_cookies_secure_by_default() {
    let auth = r#"
[auth]
public_url = "https://shop.example"
oauth_return_urls = ["https://shop.example/app/"]

[[auth.oidc]]
name = "github"
kind = "oauth2"
issuer = "https://github.com"
authorization_endpoint = "https://github.com/login/oauth/authorize"
token_endpoint = "https://github.com/login/oauth/access_token"
userinfo_endpoint = "https://api.github.com/user"
client_id = "gh"
client_secret = "not-a-real-secret"
"#;
    let app = spawn_app(auth).await;
    app.register("vic").await;
    let resp = app.login_with("vic", crate::helpers::PASSWORD).await;
    assert_eq!(resp.status(), 200);
    let set = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(set.starts_with("plinth_session="), "{set}");
    assert!(
        set.contains("; Secure"),
        "the session cookie is not Secure: {set}"
    );

    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = client
        .get(app.url("/auth/oauth/github/start"))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_redirection(), "{}", resp.status());
    let set = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(set.starts_with("plinth_oauth="), "{set}");
    assert!(
        set.contains("; Secure"),
        "the social-login cookie is not Secure: {set}"
    );
    app.stop().await;
}
