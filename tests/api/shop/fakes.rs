//! Small fakes of third-party APIs that have no emulator, speaking their documented
//! shapes: Shippo (shipments, rates, transactions, tracks) and Razorpay (orders,
//! payments capture/refund).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

async fn serve(app: Router) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

#[derive(Default)]
pub struct Shippo {
    pub labels_bought: AtomicUsize,
    pub fail_labels: AtomicBool,
    /// Label purchases never get an answer (to crash the host while it waits).
    pub stall_labels: AtomicBool,
}

fn rate(id: &str) -> Value {
    match id {
        "rate_ups" => {
            json!({ "object_id": "rate_ups", "amount": "24.10", "currency": "USD", "provider": "UPS",
                               "servicelevel": { "name": "Next Day Air", "token": "ups_next_day_air" }, "estimated_days": 1 })
        }
        _ => json!({ "object_id": "rate_usps", "amount": "5.50", "currency": "USD", "provider": "USPS",
                     "servicelevel": { "name": "Priority Mail", "token": "usps_priority" }, "estimated_days": 2 }),
    }
}

/// A fake Shippo on loopback; returns its port.
pub async fn shippo() -> (u16, Arc<Shippo>) {
    let state = Arc::new(Shippo::default());
    let app = Router::new()
        .route(
            "/shipments/",
            post(|Json(body): Json<Value>| async move {
                let ok = body["address_from"]["zip"].is_string() && body["address_to"]["country"].is_string()
                    && body["parcels"][0]["mass_unit"] == "g";
                if !ok {
                    return (StatusCode::BAD_REQUEST, Json(json!({ "detail": "bad shipment" }))).into_response();
                }
                Json(json!({ "object_id": "shp_1", "status": "SUCCESS", "messages": [],
                             "rates": [rate("rate_ups"), rate("rate_usps")] }))
                .into_response()
            }),
        )
        .route("/rates/{id}", get(|Path(id): Path<String>| async move { Json(rate(&id)) }))
        .route("/transactions/", get(|| async { Json(json!({ "results": [] })) }).post(buy_label))
        .route(
            "/tracks/{carrier}/{number}",
            get(|Path((carrier, number)): Path<(String, String)>| async move {
                Json(json!({
                    "carrier": carrier, "tracking_number": number, "eta": "2026-12-01T18:00:00Z",
                    "tracking_status": { "status": "TRANSIT", "status_details": "Departed facility",
                        "status_date": "2026-11-29T08:00:00Z", "location": { "city": "Oakland", "state": "CA", "country": "US" } },
                    "tracking_history": [
                        { "status": "PRE_TRANSIT", "status_details": "Label created", "status_date": "2026-11-28T12:00:00Z",
                          "location": { "city": "Oakland", "state": "CA", "country": "US" } },
                        { "status": "TRANSIT", "status_details": "Departed facility", "status_date": "2026-11-29T08:00:00Z",
                          "location": { "city": "Oakland", "state": "CA", "country": "US" } }
                    ]
                }))
            }),
        )
        .with_state(state.clone());
    (serve(app).await, state)
}

async fn buy_label(State(s): State<Arc<Shippo>>, Json(body): Json<Value>) -> Response {
    if s.stall_labels.load(Ordering::SeqCst) {
        std::future::pending::<()>().await;
    }
    if s.fail_labels.load(Ordering::SeqCst) {
        return Json(json!({ "object_id": "txn_err", "status": "ERROR", "messages": [{ "source": "USPS", "text": "Address invalid" }] }))
            .into_response();
    }
    let n = s.labels_bought.fetch_add(1, Ordering::SeqCst) + 1;
    Json(json!({ "object_id": format!("txn_{n}"), "status": "SUCCESS", "rate": body["rate"],
                 "tracking_number": format!("9400{n:06}"), "label_url": format!("https://labels.example.com/{n}.pdf"),
                 "metadata": body["metadata"], "messages": [] }))
    .into_response()
}

#[derive(Default)]
pub struct Razorpay {
    pub captures: AtomicUsize,
    pub refunds: AtomicUsize,
}

/// A fake Razorpay on loopback; returns its port. Payment ids starting with
/// `pay_fail` are declined at capture.
pub async fn razorpay() -> (u16, Arc<Razorpay>) {
    let state = Arc::new(Razorpay::default());
    let app = Router::new()
        .route(
            "/v1/orders",
            post(|Json(b): Json<Value>| async move {
                Json(json!({ "id": "order_fake", "entity": "order", "amount": b["amount"], "currency": b["currency"],
                             "receipt": b["receipt"], "status": "created" }))
            }),
        )
        .route(
            "/v1/payments/{id}/capture",
            post(|State(s): State<Arc<Razorpay>>, Path(id): Path<String>, Json(b): Json<Value>| async move {
                if id.starts_with("pay_fail") {
                    return (StatusCode::BAD_REQUEST, Json(json!({ "error": { "code": "BAD_REQUEST_ERROR",
                        "description": "Payment failed", "reason": "payment_failed" } })))
                    .into_response();
                }
                s.captures.fetch_add(1, Ordering::SeqCst);
                Json(json!({ "id": id, "entity": "payment", "amount": b["amount"], "currency": b["currency"], "status": "captured" }))
                    .into_response()
            }),
        )
        .route(
            "/v1/payments/{id}",
            get(|Path(id): Path<String>| async move {
                let status = if id.starts_with("pay_fail") { "failed" } else { "authorized" };
                Json(json!({ "id": id, "entity": "payment", "amount": 0, "currency": "USD", "status": status,
                             "error_description": "Payment failed" }))
            }),
        )
        .route(
            "/v1/payments/{id}/refund",
            post(|State(s): State<Arc<Razorpay>>, Path(id): Path<String>| async move {
                let n = s.refunds.fetch_add(1, Ordering::SeqCst) + 1;
                Json(json!({ "id": format!("rfnd_{n}"), "entity": "refund", "payment_id": id, "amount": 0, "currency": "USD", "status": "processed" }))
            }),
        )
        .with_state(state.clone());
    (serve(app).await, state)
}
