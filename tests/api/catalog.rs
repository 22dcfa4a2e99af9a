//! The catalog over HTTP: admin-only writes, validation, and search that stays in step
//! with every write and across restarts.

use serde_json::json;

use crate::helpers::{error_code, json, spawn_app_in, spawn_app_with_admin, TestApp};

async fn post_product(app: &TestApp, token: &str, body: serde_json::Value) -> reqwest::Response {
    app.client
        .post(app.url("/products"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn product(sku: &str, name: &str, description: &str, category: &str, cents: i64) -> serde_json::Value {
    json!({ "sku": sku, "name": name, "description": description, "category": category,
            "price": { "amount": cents, "currency": "USD" }, "stock": 5,
            "images": ["https://images.example.com/a.jpg"] })
}

async fn search(app: &TestApp, query: &str) -> Vec<String> {
    let body = json(app.get(&format!("/products/search?{query}")).await).await;
    body["products"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|p| p["sku"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_admins_write_and_input_is_validated() {
    let (app, admin) = spawn_app_with_admin("").await;
    app.register("shopper").await;
    let shopper = app.login("shopper").await;
    let lamp = product("lamp-1", "Brass desk lamp", "Warm light", "Lighting", 4500);

    assert_eq!(
        app.client
            .post(app.url("/products"))
            .json(&lamp)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        error_code(post_product(&app, &shopper, lamp.clone()).await, 403).await["error"]["code"],
        "forbidden"
    );
    let created = post_product(&app, &admin, lamp.clone()).await;
    assert_eq!(created.status(), 201);
    let body = json(created).await;
    assert_eq!(body["product"]["sku"], "LAMP-1");
    assert_eq!(
        body["product"]["price"],
        json!({ "amount": 4500, "currency": "USD" })
    );
    assert_eq!(
        error_code(post_product(&app, &admin, lamp).await, 409).await["error"]["code"],
        "sku_taken"
    );

    let bad = [
        json!({ "sku": "x", "name": "n", "category": "c", "price": { "amount": 9.99, "currency": "USD" } }),
        json!({ "sku": "x", "name": "n", "category": "c", "price": { "amount": -1, "currency": "USD" } }),
        json!({ "sku": "x", "name": "n", "category": "c", "price": { "amount": 1, "currency": "DOLLARS" } }),
        json!({ "sku": "x y", "name": "n", "category": "c", "price": { "amount": 1, "currency": "USD" } }),
        json!({ "sku": "x", "name": "", "category": "c", "price": { "amount": 1, "currency": "USD" } }),
        json!({ "sku": "x", "name": "n", "category": "c", "price": { "amount": 1, "currency": "USD" }, "stock": -3 }),
        json!({ "sku": "x", "name": "n", "category": "c", "price": { "amount": 1, "currency": "USD" }, "images": ["ftp://x/y"] }),
    ];
    for body in bad {
        let resp = post_product(&app, &admin, body.clone()).await;
        assert_eq!(resp.status(), 400, "{body}");
    }
    // Public reads.
    let read = json(app.get("/products/lamp-1").await).await;
    assert_eq!(read["product"]["stock"], 5);
    assert_eq!(
        error_code(app.get("/products/NOPE").await, 404).await["error"]["code"],
        "product_not_found"
    );

    let patch = |token: &str, body: serde_json::Value| {
        app.client
            .patch(app.url("/products/LAMP-1"))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    assert_eq!(
        patch(&shopper, json!({ "stock": 0 })).await.unwrap().status(),
        403
    );
    let patched = json(
        patch(
            &admin,
            json!({ "stock": 12, "price": { "amount": 3900, "currency": "usd" } }),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(patched["product"]["stock"], 12);
    assert_eq!(patched["product"]["price"]["amount"], 3900);
    assert_eq!(patched["product"]["name"], "Brass desk lamp");
    assert_eq!(
        patch(&admin, json!({ "sku": "OTHER" })).await.unwrap().status(),
        400
    );

    let del = |token: &str| {
        app.client
            .delete(app.url("/products/LAMP-1"))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(del(&shopper).await.unwrap().status(), 403);
    assert_eq!(del(&admin).await.unwrap().status(), 204);
    assert_eq!(app.get("/products/LAMP-1").await.status(), 404);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_ranks_matches_tolerates_typos_and_stays_consistent() {
    let (app, admin) = spawn_app_with_admin("").await;
    for p in [
        product(
            "LAMP-1",
            "Brass desk lamp",
            "A warm light for late evenings",
            "Lighting",
            4500,
        ),
        product(
            "KETTLE-1",
            "Copper kettle",
            "Looks lovely next to a brass lamp",
            "Kitchen",
            3900,
        ),
        product(
            "MUG-1",
            "Stoneware mug",
            "Holds 350 ml of coffee",
            "Kitchen",
            1200,
        ),
        product(
            "CHAIR-1",
            "Walnut lounge chair",
            "Mid-century comfort",
            "Furniture",
            89000,
        ),
    ] {
        assert_eq!(post_product(&app, &admin, p).await.status(), 201);
    }
    // Findable right after its 201; exact name beats a description mention.
    assert_eq!(search(&app, "q=brass+lamp").await, ["LAMP-1", "KETTLE-1"]);
    assert_eq!(search(&app, "q=stonew").await, ["MUG-1"], "prefix");
    assert_eq!(
        search(&app, "q=walnut+lou").await,
        ["CHAIR-1"],
        "search as you type"
    );
    assert_eq!(
        search(&app, "q=coper").await,
        ["KETTLE-1"],
        "typo in a 5-letter word"
    );
    assert_eq!(search(&app, "q=lamp&max_price=4000").await, ["KETTLE-1"]);
    let mut kitchen = search(&app, "category=kitchen").await;
    kitchen.sort();
    assert_eq!(kitchen, ["KETTLE-1", "MUG-1"]);
    assert_eq!(
        search(&app, "q=coffee&category=Furniture").await,
        Vec::<String>::new()
    );

    // Pages.
    let first = json(app.get("/products/search?limit=3").await).await;
    assert_eq!(first["products"].as_array().unwrap().len(), 3);
    let cursor = first["next_cursor"].as_str().unwrap().to_string();
    let second = json(
        app.get(&format!("/products/search?limit=3&cursor={cursor}"))
            .await,
    )
    .await;
    assert_eq!(second["products"].as_array().unwrap().len(), 1);
    assert!(second["next_cursor"].is_null());
    for bad in ["limit=0", "min_price=10&max_price=1", "cursor=zzz", "unknown=1"] {
        assert_eq!(
            app.get(&format!("/products/search?{bad}")).await.status(),
            400,
            "{bad}"
        );
    }

    // Updates and deletes show at once.
    let renamed = app
        .client
        .patch(app.url("/products/MUG-1"))
        .bearer_auth(&admin)
        .json(&json!({ "name": "Porcelain cup" }))
        .send()
        .await
        .unwrap();
    assert_eq!(renamed.status(), 200);
    assert_eq!(search(&app, "q=stoneware").await, Vec::<String>::new());
    assert_eq!(search(&app, "q=porcelain").await, ["MUG-1"]);
    let del = app
        .client
        .delete(app.url("/products/CHAIR-1"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 204);
    assert_eq!(search(&app, "q=walnut").await, Vec::<String>::new());

    // And after a restart.
    let dir = app.stop().await;
    let app = spawn_app_in("", dir).await;
    assert_eq!(search(&app, "q=porcelain").await, ["MUG-1"]);
    assert_eq!(search(&app, "q=walnut").await, Vec::<String>::new());
    assert_eq!(search(&app, "q=brass+lamp").await, ["LAMP-1", "KETTLE-1"]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_seed_loads_a_searchable_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("seed.toml");
    std::fs::write(
        &config,
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"./data\"\n",
    )
    .unwrap();
    crate::helpers::use_test_storage(&config, dir.path()).await;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_plinth"))
        .args(["seed", "--count", "1500", "--config"])
        .arg(&config)
        .env("PLINTH_DATA_DIR", dir.path())
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("seeded 1500 products"));
    let app = spawn_app_in("", dir).await;
    let mut count = 0;
    let mut cursor = String::new();
    loop {
        let page = json(app.get(&format!("/products?limit=100{cursor}")).await).await;
        count += page["products"].as_array().unwrap().len();
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(count, 1500);
    let hits = json(app.get("/products/search?q=walnut&limit=5").await).await;
    assert_eq!(hits["products"].as_array().unwrap().len(), 5);
    app.stop().await;
}
