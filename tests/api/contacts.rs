//! Contacts over HTTP: CRUD, validation, isolation between users, pagination.

use serde_json::json;

use crate::helpers::{error_code, json, spawn_app, TestApp};

async fn create(app: &TestApp, token: &str, body: serde_json::Value) -> reqwest::Response {
    app.client
        .post(app.url("/contacts"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_crud_with_validation() {
    let app = spawn_app("").await;
    app.register("quinn").await;
    let token = app.login("quinn").await;

    assert_eq!(app.get("/contacts").await.status(), 401);

    let resp = create(
        &app,
        &token,
        json!({ "name": " Ada Lovelace ", "phone": "+44 (20) 7946-0958", "email": "Ada@Example.COM",
                "notes": "met at the engine demo", "tags": ["Work", "math", "work"] }),
    )
    .await;
    assert_eq!(resp.status(), 201);
    let ada = json(resp).await["contact"].clone();
    assert_eq!(ada["name"], "Ada Lovelace");
    assert_eq!(ada["phone"], "+442079460958", "normalized to E.164");
    assert_eq!(ada["email"], "Ada@example.com");
    assert_eq!(ada["tags"], json!(["math", "work"]));
    let id = ada["id"].as_str().unwrap().to_string();

    let read = json(app.get_as(&token, &format!("/contacts/{id}")).await).await;
    assert_eq!(read["contact"], ada);

    for (body, needle) in [
        (json!({ "name": "" }), "name"),
        (json!({ "name": "x", "phone": "555 1234" }), "country code"),
        (json!({ "name": "x", "email": "not-an-email" }), "email"),
        (json!({ "name": "x", "tags": ["two words"] }), "tag"),
        (json!({ "name": "x", "extra": 1 }), "unknown field"),
        (json!({ "phone": "+14155552671" }), "name"),
    ] {
        let resp = create(&app, &token, body.clone()).await;
        let err = error_code(resp, 400).await;
        let message = err["error"]["message"].as_str().unwrap().to_string();
        assert!(message.contains(needle), "{body}: {message}");
    }

    let patch = |body: serde_json::Value| {
        app.client
            .patch(app.url(&format!("/contacts/{id}")))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let patched = json(
        patch(json!({ "phone": null, "notes": "updated", "tags": ["vip"] }))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(patched["contact"]["phone"], serde_json::Value::Null);
    assert_eq!(patched["contact"]["notes"], "updated");
    assert_eq!(patched["contact"]["tags"], json!(["vip"]));
    assert_eq!(
        patched["contact"]["email"], "Ada@example.com",
        "absent fields stay"
    );
    let bad = patch(json!({ "email": "nope" })).await.unwrap();
    assert_eq!(error_code(bad, 400).await["error"]["code"], "invalid_contact");
    let bad = patch(json!({ "name": null })).await.unwrap();
    assert_eq!(error_code(bad, 400).await["error"]["code"], "invalid_contact");
    // A rejected patch changed nothing.
    let still = json(app.get_as(&token, &format!("/contacts/{id}")).await).await;
    assert_eq!(still["contact"]["email"], "Ada@example.com");

    let del = app
        .client
        .delete(app.url(&format!("/contacts/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 204);
    let gone = app.get_as(&token, &format!("/contacts/{id}")).await;
    assert_eq!(error_code(gone, 404).await["error"]["code"], "contact_not_found");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_never_see_each_others_contacts() {
    let app = spawn_app("").await;
    app.register("rita").await;
    app.register("sam").await;
    let rita = app.login("rita").await;
    let sam = app.login("sam").await;
    let resp = create(&app, &rita, json!({ "name": "Rita's secret friend" })).await;
    let id = json(resp).await["contact"]["id"].as_str().unwrap().to_string();

    let path = format!("/contacts/{id}");
    assert_eq!(
        error_code(app.get_as(&sam, &path).await, 404).await["error"]["code"],
        "contact_not_found"
    );
    let patch = app
        .client
        .patch(app.url(&path))
        .bearer_auth(&sam)
        .json(&json!({ "name": "pwned" }))
        .send()
        .await
        .unwrap();
    assert_eq!(patch.status(), 404);
    let del = app
        .client
        .delete(app.url(&path))
        .bearer_auth(&sam)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 404);
    let list = json(app.get_as(&sam, "/contacts").await).await;
    assert_eq!(list["contacts"], json!([]));
    // Still there for Rita, unchanged.
    assert_eq!(
        json(app.get_as(&rita, &path).await).await["contact"]["name"],
        "Rita's secret friend"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_paginate_sort_and_filter_by_tag() {
    let app = spawn_app("").await;
    app.register("tess").await;
    let token = app.login("tess").await;
    let names = ["mike", "Alice", "zoe", "bob", "carl", "dana", "eve"];
    for (i, name) in names.iter().enumerate() {
        let tags = if i % 2 == 0 { json!(["even"]) } else { json!([]) };
        assert_eq!(
            create(&app, &token, json!({ "name": name, "tags": tags }))
                .await
                .status(),
            201
        );
    }
    let collect = |sort: &'static str, tag: Option<&'static str>| {
        let app = &app;
        let token = token.clone();
        async move {
            let mut seen = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let mut url = format!("/contacts?limit=3&sort={sort}");
                if let Some(t) = tag {
                    url.push_str(&format!("&tag={t}"));
                }
                if let Some(c) = &cursor {
                    url.push_str(&format!("&cursor={c}"));
                }
                let page = json(app.get_as(&token, &url).await).await;
                let items = page["contacts"].as_array().unwrap();
                assert!(items.len() <= 3);
                seen.extend(items.iter().map(|c| c["name"].as_str().unwrap().to_string()));
                match page["next_cursor"].as_str() {
                    Some(c) => cursor = Some(c.to_string()),
                    None => break seen,
                }
            }
        }
    };
    assert_eq!(
        collect("name", None).await,
        ["Alice", "bob", "carl", "dana", "eve", "mike", "zoe"]
    );
    assert_eq!(
        collect("-name", None).await,
        ["zoe", "mike", "eve", "dana", "carl", "bob", "Alice"]
    );
    assert_eq!(collect("created_at", None).await, names);
    assert_eq!(
        collect("name", Some("even")).await,
        ["carl", "eve", "mike", "zoe"]
    );

    for bad in [
        "/contacts?limit=0",
        "/contacts?limit=101",
        "/contacts?sort=age",
        "/contacts?cursor=zz",
    ] {
        let resp = app.get_as(&token, bad).await;
        assert_eq!(resp.status(), 400, "{bad}");
    }
    app.stop().await;
}
