//! `plinth store copy`: an install moves from sled to PostgreSQL with everything it held
//! (accounts and live sessions, contacts, catalog, plugin kv), the counts checked per
//! area, and a target that already holds data refused unless the operator says so.

use crate::helpers::{
    hello_plugin, json, on_postgres, spawn_app_with_admin, spawn_app_with_config, DATABASE_MARKER, PASSWORD,
};

async fn copy(from: &std::path::Path, to: &str, extra: &[&str]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_plinth"))
        .args(["store", "copy", "--from"])
        .arg(format!("sled:{}", from.display()))
        .arg("--to")
        .arg(to)
        .args(extra)
        .output()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_install_moves_from_sled_to_postgres_with_everything_and_counts_checked() {
    if on_postgres() {
        return; // the source is sled: runs once, in the default pass
    }
    let Some(url) = plinth::store::postgres::testing::fresh_schema_url().await else {
        return;
    };
    let (app, admin) = spawn_app_with_admin(&hello_plugin("hello")).await;
    app.register("mover").await;
    let token = app.login("mover").await;
    let resp = app
        .client
        .post(app.url("/contacts"))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "name": "Ada Lovelace", "email": "ada@example.com" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    app.create_product(&admin, "MOVE-1", "Moving box", 7).await;
    for _ in 0..2 {
        assert_eq!(app.bump_counter("hello").await, 200);
    }
    let dir = app.stop().await;

    let out = copy(&dir.path().join("db"), &url, &[]).await;
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for area in ["users", "sessions", "contacts", "plugin_kv", "products", "stock"] {
        assert!(report.contains(area), "{area} missing from the report: {report}");
    }
    let again = copy(&dir.path().join("db"), &format!("postgres:{url}"), &[]).await;
    assert!(
        !again.status.success(),
        "a second copy into the now full target is refused"
    );
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));

    // A server on the copy: same accounts, same live session, same data.
    let moved = tempfile::tempdir().unwrap();
    std::fs::write(moved.path().join(DATABASE_MARKER), &url).unwrap();
    let text = format!(
        "{}\n[storage]\nbackend = \"postgres\"\nurl = \"{url}\"\n",
        crate::helpers::config_text(&hello_plugin("hello"))
    );
    let app = spawn_app_with_config(&text, moved, None).await;
    let me = app.get_as(&token, "/auth/me").await;
    assert_eq!(me.status(), 200, "the session moved too");
    assert_eq!(app.login_with("mover", PASSWORD).await.status(), 200);
    let contacts = json(app.get_as(&token, "/contacts").await).await;
    assert_eq!(contacts["contacts"][0]["name"], "Ada Lovelace", "{contacts}");
    let found = json(app.get("/products/search?q=moving").await).await;
    assert!(
        found.to_string().contains("MOVE-1"),
        "the new replica indexed the copied catalog: {found}"
    );
    let product = json(app.get("/products/MOVE-1").await).await;
    assert_eq!(product["product"]["stock"], 7);
    let counter = json(app.get("/plugins/hello/counter").await).await;
    assert_eq!(counter["counter"], 2);
    app.stop().await;
}
