//! Roles: the admin bootstrap CLI, admin-only routes, disabling accounts.

use crate::helpers::{cli_create_user, error_code, json, spawn_app_in, PASSWORD};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_bootstrapped_from_the_cli_can_administer_users() {
    let dir = tempfile::tempdir().unwrap();
    let out = cli_create_user(dir.path(), "Boss", true, PASSWORD).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("created user boss") && stdout.contains("admin"),
        "{stdout}"
    );
    // The password never appears in what the command prints.
    assert!(!stdout.contains(PASSWORD));
    let weak = cli_create_user(dir.path(), "weakling", false, "123456789").await;
    assert!(!weak.status.success());
    assert!(String::from_utf8_lossy(&weak.stderr).contains("most common passwords"));

    let app = spawn_app_in("", dir).await;
    let boss = app.login("boss").await;
    app.register("mallory").await;
    let mallory = app.login("mallory").await;

    // Others: 401 without a session, 403 with one.
    assert_eq!(
        error_code(app.get("/admin/users").await, 401).await["error"]["code"],
        "unauthenticated"
    );
    let denied = app.get_as(&mallory, "/admin/users").await;
    assert_eq!(error_code(denied, 403).await["error"]["code"], "forbidden");

    let users = json(app.get_as(&boss, "/admin/users?limit=1").await).await;
    assert_eq!(users["users"][0]["username"], "boss");
    assert_eq!(users["users"][0]["roles"], serde_json::json!(["admin", "user"]));
    let cursor = users["next_cursor"].as_str().unwrap().to_string();
    let page2 = json(
        app.get_as(&boss, &format!("/admin/users?limit=1&cursor={cursor}"))
            .await,
    )
    .await;
    assert_eq!(page2["users"][0]["username"], "mallory");
    assert!(page2["next_cursor"].is_null());
    let mallory_id = page2["users"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        error_code(app.get_as(&boss, "/admin/users?limit=0").await, 400).await["error"]["code"],
        "invalid_limit"
    );

    let disable = |id: String, token: String| {
        let client = app.client.clone();
        let url = app.url(&format!("/admin/users/{id}/disable"));
        async move { client.post(url).bearer_auth(token).send().await.unwrap() }
    };
    assert_eq!(disable(mallory_id.clone(), mallory.clone()).await.status(), 403);
    let done = disable(mallory_id.clone(), boss.clone()).await;
    assert_eq!(done.status(), 200);
    assert_eq!(json(done).await["user"]["disabled"], true);
    assert_eq!(disable("nobody".into(), boss.clone()).await.status(), 404);
    // Her session ended at once, and she cannot log in again.
    assert_eq!(app.get_as(&mallory, "/auth/me").await.status(), 401);
    let again = app.login_with("mallory", PASSWORD).await;
    assert_eq!(error_code(again, 403).await["error"]["code"], "account_disabled");
    app.stop().await;
}
