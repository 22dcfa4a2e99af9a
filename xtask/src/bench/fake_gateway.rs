//! A payment gateway that answers at once, for the checkout benchmark: it speaks the
//! part of Stripe's API the `payments-stripe` plugin uses to charge
//! (`POST /v1/payment_intents`, form-encoded, `confirm=true`) and answers a succeeded
//! PaymentIntent for the requested amount and currency. Everything else is a Stripe
//! style 404. It runs on its own thread and runtime, so it never competes with the
//! load generator's.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

/// A running fake gateway; it stops with the process.
pub struct FakeGateway {
    pub addr: SocketAddr,
    charges: Arc<AtomicU64>,
}

impl FakeGateway {
    /// Binds 127.0.0.1 on a free port and serves on a thread of its own.
    pub fn start() -> Result<Self> {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").context("the fake gateway could not bind")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let charges = Arc::new(AtomicU64::new(0));
        let counter = charges.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("the fake gateway's runtime")?;
        std::thread::Builder::new()
            .name("fake-gateway".into())
            .spawn(move || runtime.block_on(serve(listener, counter)))
            .context("the fake gateway's thread")?;
        Ok(Self { addr, charges })
    }

    /// PaymentIntents made so far.
    pub fn charges(&self) -> u64 {
        self.charges.load(Ordering::Relaxed)
    }

    /// `127.0.0.1:PORT`.
    pub fn authority(&self) -> String {
        self.addr.to_string()
    }
}

async fn serve(listener: std::net::TcpListener, charges: Arc<AtomicU64>) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    while let Ok((stream, _)) = listener.accept().await {
        let charges = charges.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| answer(req, charges.clone()));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(
    req: Request<Incoming>,
    charges: Arc<AtomicU64>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let is_charge = req.method() == Method::POST && req.uri().path() == "/v1/payment_intents";
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let (status, json) = if is_charge {
        let n = charges.fetch_add(1, Ordering::Relaxed) + 1;
        payment_intent(n, &body)
    } else {
        (
            StatusCode::NOT_FOUND,
            serde_json::json!({ "error": { "type": "invalid_request_error", "message": "Unrecognized request URL" } }),
        )
    };
    let mut resp = Response::new(Full::new(Bytes::from(json.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

/// The answer to the `n`-th `POST /v1/payment_intents` with this form body.
pub fn payment_intent(n: u64, form: &[u8]) -> (StatusCode, serde_json::Value) {
    let field = |name: &str| {
        std::str::from_utf8(form).ok().and_then(|text| {
            text.split('&')
                .filter_map(|pair| pair.split_once('='))
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    };
    let amount = field("amount").and_then(|a| a.parse::<i64>().ok());
    let currency = field("currency");
    match (amount, currency) {
        (Some(amount), Some(currency)) if amount > 0 => (
            StatusCode::OK,
            serde_json::json!({
                "id": format!("pi_bench{n:016}"),
                "object": "payment_intent",
                "amount": amount,
                "currency": currency,
                "status": "succeeded",
                "confirm": true,
                "livemode": false,
            }),
        ),
        _ => (
            StatusCode::BAD_REQUEST,
            serde_json::json!({ "error": { "type": "invalid_request_error",
                "message": "Missing required param: amount or currency." } }),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_a_succeeded_intent_for_the_requested_amount() {
        let (status, pi) = payment_intent(
            7,
            b"amount=5376&currency=usd&confirm=true&payment_method=pm_card_visa",
        );
        assert_eq!(status, StatusCode::OK);
        assert_eq!(pi["id"], "pi_bench0000000000000007");
        assert_eq!(pi["amount"], 5376);
        assert_eq!(pi["currency"], "usd");
        assert_eq!(pi["status"], "succeeded");
        let (status, _) = payment_intent(1, b"currency=usd");
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn serves_over_http() {
        let gateway = FakeGateway::start().expect("starts");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let spec = super::super::request::RequestSpec::new(Method::POST, "/v1/payment_intents")
            .with_header("content-type", "application/x-www-form-urlencoded")
            .unwrap()
            .with_body("amount=100&currency=usd");
        let (status, body) = runtime
            .block_on(super::super::load::send_once(gateway.addr, &spec))
            .expect("answers");
        assert_eq!(status, StatusCode::OK);
        let pi: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(pi["amount"], 100);
        assert_eq!(gateway.charges(), 1);
        let other = super::super::request::RequestSpec::get("/v1/customers");
        let (status, _) = runtime
            .block_on(super::super::load::send_once(gateway.addr, &other))
            .unwrap();
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}
