//! Accounts and sessions over real HTTP: registration, login, logout, expiry, rate
//! limits, password change, session management.

use std::time::Duration;

use crate::helpers::{error_code, json, spawn_app, PASSWORD};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_login_me_logout() {
    let app = spawn_app("").await;
    let body = app.register("Alice").await;
    assert_eq!(body["user"]["username"], "alice", "usernames are normalized");
    assert_eq!(body["user"]["roles"], serde_json::json!(["user"]));
    assert!(body.to_string().find(PASSWORD).is_none());

    let resp = app.login_with("ALICE", PASSWORD).await;
    assert_eq!(resp.status(), 200);
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.starts_with("plinth_session=plinth_"), "{cookie}");
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    let login = json(resp).await;
    let token = login["token"].as_str().unwrap().to_string();
    assert_eq!(login["token_type"], "Bearer");
    assert!(token.len() >= 64, "at least 256 bits: {token}");

    let me = json(app.get_as(&token, "/auth/me").await).await;
    assert_eq!(me["user"]["username"], "alice");
    assert_eq!(me["session"]["current"], true);
    // The cookie works too.
    let by_cookie = app
        .client
        .get(app.url("/auth/me"))
        .header("cookie", cookie.split(';').next().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(by_cookie.status(), 200);

    // A second login gets a new token.
    let other = app.login("alice").await;
    assert_ne!(other, token);

    let out = app
        .client
        .post(app.url("/auth/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 204);
    assert!(out.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let resp = app.get_as(&token, "/auth/me").await;
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    let body = error_code(resp, 401).await;
    assert_eq!(body["error"]["code"], "unauthenticated");
    // The other session is untouched.
    assert_eq!(app.get_as(&other, "/auth/me").await.status(), 200);
    // No token, a malformed one, or garbage: 401.
    assert_eq!(app.get("/auth/me").await.status(), 401);
    assert_eq!(app.get_as("plinth_0000", "/auth/me").await.status(), 401);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_and_unknown_user_get_the_same_answer() {
    let app = spawn_app("").await;
    app.register("bob").await;
    let strip = |mut v: serde_json::Value| {
        v["error"]["request_id"] = serde_json::Value::Null;
        v
    };
    let wrong = strip(error_code(app.login_with("bob", "not the password").await, 401).await);
    let unknown = strip(error_code(app.login_with("nobody-here", "not the password").await, 401).await);
    let malformed = strip(error_code(app.login_with("?!", "x").await, 401).await);
    assert_eq!(wrong, unknown);
    assert_eq!(wrong, malformed);
    assert_eq!(wrong["error"]["code"], "invalid_credentials");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_validates_and_rejects_duplicates() {
    let app = spawn_app("").await;
    app.register("carol").await;
    let post = |username: &str, password: &str| {
        app.client
            .post(app.url("/auth/register"))
            .json(&serde_json::json!({ "username": username, "password": password }))
            .send()
    };
    let cases = [
        ("CAROL", PASSWORD, 409, "username_taken"),
        ("x", PASSWORD, 400, "invalid_username"),
        ("dave", "password1", 400, "password_too_common"),
        ("dave", "iloveyou", 400, "password_too_common"),
        ("dave", "short", 400, "password_too_short"),
        ("dave", &"p".repeat(1025), 400, "password_too_long"),
        ("dave", "dave", 400, "password_too_short"),
        ("davedave", "davedave", 400, "password_is_username"),
    ];
    for (username, password, status, code) in cases {
        let body = error_code(post(username, password).await.unwrap(), status).await;
        assert_eq!(body["error"]["code"], code, "{username}/{password:.20}");
    }
    // Malformed bodies get JSON errors too.
    let no_type = app
        .client
        .post(app.url("/auth/register"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(no_type, 415).await["error"]["code"],
        "unsupported_media_type"
    );
    let bad_json = app
        .client
        .post(app.url("/auth/register"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(bad_json, 400).await["error"]["code"], "invalid_json");
    let missing = app
        .client
        .post(app.url("/auth/register"))
        .json(&serde_json::json!({ "username": "erin" }))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(missing, 400).await["error"]["code"], "invalid_request");
    // 64 characters are fine.
    assert_eq!(
        post("frank", &"long pass ".repeat(7)[..64])
            .await
            .unwrap()
            .status(),
        201
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_eleventh_failure_in_a_minute_is_throttled_but_others_log_in() {
    let app = spawn_app("").await;
    app.register("grace").await;
    app.register("heidi").await;
    for i in 0..10 {
        let resp = app.login_with("grace", &format!("wrong guess {i}")).await;
        assert_eq!(resp.status(), 401, "attempt {i}");
    }
    let resp = app.login_with("grace", "wrong guess 10").await;
    let retry: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(error_code(resp, 429).await["error"]["code"], "rate_limited");
    // Even the right password waits: the account cools down, it is not locked for good.
    assert_eq!(app.login_with("grace", PASSWORD).await.status(), 429);
    // Another user from the same address is fine.
    assert_eq!(app.login_with("heidi", PASSWORD).await.status(), 200);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_expire_when_idle_and_when_old() {
    let app = spawn_app("[auth]\nsession_idle_timeout_secs = 1\nsession_absolute_timeout_secs = 3\n").await;
    app.register("ivan").await;

    let idle = app.login("ivan").await;
    assert_eq!(app.get_as(&idle, "/auth/me").await.status(), 200);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(app.get_as(&idle, "/auth/me").await.status(), 401, "idle timeout");

    let busy = app.login("ivan").await;
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_millis(2700) {
        assert_eq!(
            app.get_as(&busy, "/auth/me").await.status(),
            200,
            "active session before the absolute limit"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        app.get_as(&busy, "/auth/me").await.status(),
        401,
        "absolute timeout"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_the_password_revokes_the_other_sessions() {
    let app = spawn_app("").await;
    app.register("judy").await;
    let laptop = app.login("judy").await;
    let phone = app.login("judy").await;
    let change = |current: &str, new: &str| {
        app.client
            .post(app.url("/auth/password"))
            .bearer_auth(&laptop)
            .json(&serde_json::json!({ "current_password": current, "new_password": new }))
            .send()
    };
    let body = error_code(change("not it", "a brand new passphrase").await.unwrap(), 403).await;
    assert_eq!(body["error"]["code"], "wrong_password");
    let body = error_code(change(PASSWORD, "password").await.unwrap(), 400).await;
    assert_eq!(body["error"]["code"], "password_too_common");
    let ok = change(PASSWORD, "a brand new passphrase").await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(json(ok).await["revoked_sessions"], 1);
    assert_eq!(app.get_as(&phone, "/auth/me").await.status(), 401);
    assert_eq!(app.get_as(&laptop, "/auth/me").await.status(), 200);
    assert_eq!(app.login_with("judy", PASSWORD).await.status(), 401);
    assert_eq!(
        app.login_with("judy", "a brand new passphrase").await.status(),
        200
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_list_and_revoke_only_their_own_sessions() {
    let app = spawn_app("").await;
    app.register("kim").await;
    app.register("leo").await;
    let first = app.login("kim").await;
    let second = app.login("kim").await;
    let leo = app.login("leo").await;

    let list = json(app.get_as(&first, "/auth/sessions").await).await;
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    assert!(!list.to_string().contains(&second), "tokens are never listed");
    let other_id = sessions.iter().find(|s| s["current"] == false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    // Leo cannot see or revoke Kim's session: 404, not 403.
    let leos = app
        .client
        .delete(app.url(&format!("/auth/sessions/{other_id}")))
        .bearer_auth(&leo)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(leos, 404).await["error"]["code"], "session_not_found");
    let revoke = app
        .client
        .delete(app.url(&format!("/auth/sessions/{other_id}")))
        .bearer_auth(&first)
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), 204);
    assert_eq!(app.get_as(&second, "/auth/me").await.status(), 401);
    assert_eq!(app.get_as(&first, "/auth/me").await.status(), 200);
    app.stop().await;
}
