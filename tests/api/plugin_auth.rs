//! Identity for plugins: routes declare who may call them; a plugin sees only
//! `identity { user-id, username, roles }`, never tokens or cookies.

use crate::helpers::{error_code, hostile_plugin, json, plugin_path, spawn_app};

fn hello_with_auth(name: &str, auth: &str) -> String {
    format!(
        "\n[[plugin]]\nname = \"{name}\"\nworld = \"http-plugin\"\nsource = \"{}\"\nauth = \"{auth}\"\n",
        plugin_path("hello")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_routes_get_the_identity_they_ask_for_and_never_the_token() {
    let plugins = [
        hello_with_auth("members", "required"),
        hello_with_auth("staff", "admin"),
        hello_with_auth("anyone", "optional"),
        hello_with_auth("public", "none"),
    ]
    .concat();
    let app = spawn_app(&plugins).await;
    app.register("nina").await;
    let token = app.login("nina").await;

    let body = error_code(app.get("/plugins/members/").await, 401).await;
    assert_eq!(body["error"]["code"], "unauthenticated");

    let resp = app
        .client
        .get(app.url("/plugins/members/"))
        .bearer_auth(&token)
        .header("cookie", format!("plinth_session={token}; theme=dark"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = json(resp).await;
    assert_eq!(body["caller"]["username"], "nina");
    assert_eq!(body["caller"]["roles"], serde_json::json!(["user"]));
    assert_eq!(body["caller"]["user_id"].as_str().unwrap().len(), 32);
    let seen = body.to_string();
    assert!(!seen.contains(&token[7..]), "the plugin saw the token: {seen}");
    assert!(
        !seen.contains("authorization") && !seen.contains("cookie"),
        "{seen}"
    );

    assert_eq!(
        error_code(app.get_as(&token, "/plugins/staff/").await, 403).await["error"]["code"],
        "forbidden"
    );
    assert_eq!(
        error_code(app.get("/plugins/staff/").await, 401).await["error"]["code"],
        "unauthenticated"
    );

    assert_eq!(
        json(app.get("/plugins/anyone/").await).await["caller"],
        serde_json::Value::Null
    );
    assert_eq!(
        json(app.get_as(&token, "/plugins/anyone/").await).await["caller"]["username"],
        "nina"
    );
    // An unknown or expired token on an optional route: anonymous, not an error.
    assert_eq!(
        json(app.get_as("plinth_nope", "/plugins/anyone/").await).await["caller"],
        serde_json::Value::Null
    );

    // `none` never passes an identity, even to a logged-in caller.
    assert_eq!(
        json(app.get_as(&token, "/plugins/public/").await).await["caller"],
        serde_json::Value::Null
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_cannot_set_any_cookie() {
    let app = spawn_app(&hostile_plugin("fixer", "")).await;
    let resp = app.get("/plugins/fixer/set-session-cookie").await;
    assert_eq!(resp.status(), 200);
    let cookies: Vec<&str> = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    // Not the session cookie, and no other either: a plugin's response is served on the
    // host's origin, where any cookie it sets is one the host's pages receive.
    assert!(cookies.is_empty(), "{cookies:?}");
    app.stop().await;
}
