//! The data directory is private to the server's user: after start-up and writes to
//! every store (accounts, catalog and its search index, plugin kv), every directory is
//! 0700 and every file 0600, including a directory an older version left open.
#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::helpers::{cli_create_user, hello_plugin, spawn_app_in, PASSWORD};

/// Every entry under `dir` (itself included) whose mode lets group or others in.
fn open_to_others(dir: &Path, out: &mut Vec<String>) {
    let meta = std::fs::symlink_metadata(dir).unwrap();
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        out.push(format!("{} {:o}", dir.display(), mode));
    }
    if meta.is_dir() {
        for entry in std::fs::read_dir(dir).unwrap() {
            open_to_others(&entry.unwrap().path(), out);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_directory_and_its_files_are_private_to_the_server_user() {
    let dir = tempfile::tempdir().unwrap();
    let out = cli_create_user(dir.path(), "root", true, PASSWORD).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // As an older version (or an operator's cp -r) left it: readable by everyone.
    let leftover = dir.path().join("notes.txt");
    std::fs::write(&leftover, b"left by hand").unwrap();
    for (path, mode) in [
        (dir.path(), 0o755),
        (&dir.path().join("db"), 0o755),
        (&leftover, 0o644),
    ] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    let app = spawn_app_in(&hello_plugin("hello"), dir).await;
    let admin = app.login("root").await;
    app.register("vic").await;
    let vic = app.login("vic").await;
    app.create_product(&admin, "MUG-1", "Mug", 3).await;
    let resp = app
        .client
        .post(app.url("/plugins/hello/counter"))
        .bearer_auth(&vic)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let data = app.stop().await;

    let mut open = Vec::new();
    open_to_others(data.path(), &mut open);
    assert!(open.is_empty(), "open to group or others:\n{}", open.join("\n"));
    // And the server did write where we looked.
    for sub in ["db", "search"] {
        assert!(data.path().join(sub).is_dir(), "{sub} missing");
    }
}
