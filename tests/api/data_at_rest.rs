//! Nothing secret at rest: after a full account workout, neither a password nor a raw
//! session token appears anywhere in the bytes of the data directory.

use std::path::Path;

use crate::helpers::{hello_plugin, json, spawn_app, PASSWORD};

fn all_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            all_files(&entry.path(), out);
        } else {
            out.push(entry.path());
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_password_or_raw_token_is_stored() {
    let app = spawn_app(&hello_plugin("hello")).await;
    let new_password = "an entirely different passphrase";
    let mut tokens = Vec::new();
    for user in ["olga", "pete"] {
        app.register(user).await;
        tokens.push(app.login(user).await);
        tokens.push(app.login(user).await);
    }
    // Failed attempts, a password change, a logout and a revocation on top.
    assert_eq!(app.login_with("olga", "wrong password!").await.status(), 401);
    let changed = app
        .client
        .post(app.url("/auth/password"))
        .bearer_auth(&tokens[0])
        .json(&serde_json::json!({ "current_password": PASSWORD, "new_password": new_password }))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 200);
    tokens.push(
        app.login_with("olga", new_password).await.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(['=', ';'])
            .nth(1)
            .unwrap()
            .to_string(),
    );
    let out = app
        .client
        .post(app.url("/auth/logout"))
        .bearer_auth(&tokens[2])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 204);
    assert_eq!(
        json(app.get_as(&tokens[3], "/auth/me").await).await["user"]["username"],
        "pete"
    );
    app.post("/plugins/hello/counter", "").await;

    let data_dir = app.stop().await;
    let mut files = Vec::new();
    all_files(data_dir.path(), &mut files);
    assert!(!files.is_empty());
    let mut scanned = 0;
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        scanned += bytes.len();
        for secret in [PASSWORD, new_password, "wrong password!"] {
            assert!(
                !contains(&bytes, secret.as_bytes()),
                "a password is in {}",
                file.display()
            );
        }
        for token in &tokens {
            assert!(
                !contains(&bytes, token.as_bytes()),
                "a raw token is in {}",
                file.display()
            );
            // Not even the random part without its prefix.
            assert!(
                !contains(&bytes, &token.as_bytes()[7..]),
                "a raw token is in {}",
                file.display()
            );
        }
    }
    assert!(scanned > 0);
}
