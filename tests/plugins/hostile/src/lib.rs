//! `hostile`: a test plugin that misbehaves in every way we can think of, one per path.
//! The host must turn each into a clean JSON error and keep serving everyone else.

use plinth_sdk::http::{kv, outbound, Error, Guest, HttpRequest, HttpResponse, Identity, OutboundRequest};
use std::hint::black_box;

struct Hostile;

impl Guest for Hostile {
    fn handle(req: HttpRequest, _caller: Option<Identity>) -> Result<HttpResponse, Error> {
        match req.path.as_str() {
            "/loop" => spin_forever(),
            "/alloc" => allocate_forever(),
            "/panic" => panic!("hostile plugin panicked on purpose (secret=hunter2)"),
            "/recurse" => Ok(HttpResponse::text(200, recurse(1).to_string())),
            "/kv-huge" => kv_huge(&req),
            "/kv-flood" => kv_flood(),
            "/fetch" => fetch(&req),
            "/print" => {
                println!("hostile says hi on stdout");
                eprintln!("hostile says hi on stderr");
                Ok(HttpResponse::text(200, "printed"))
            }
            "/bad-status" => Ok(HttpResponse::text(1000, "not a status")),
            "/bad-header" => Ok(HttpResponse::text(200, "x").with_header("bad header", "\n")),
            "/set-session-cookie" => Ok(HttpResponse::text(200, "fixated?")
                .with_header("set-cookie", "plinth_session=plinth_evil; Path=/")
                .with_header("set-cookie", "theme=dark; Path=/")),
            // An upstream's words about credentials, which must not reach the client.
            "/upstream-error" => Err(Error::Upstream(
                "vendor answered 401: invalid api key sk_live_hostile_4242".into(),
            )),
            _ => Err(Error::NotFound(format!("no hostile behaviour at {}", req.path))),
        }
    }
}

fn spin_forever() -> ! {
    let mut n: u64 = 0;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

fn allocate_forever() -> Result<HttpResponse, Error> {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk = vec![0u8; 1 << 20];
        chunk[0] = 1;
        hoard.push(black_box(chunk));
    }
}

#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    let frame = black_box([depth; 64]);
    recurse(depth + 1) + frame[(depth % 64) as usize]
}

/// Tries to store a value of `?mib=N` MiB (default 8); reports what the host said.
fn kv_huge(req: &HttpRequest) -> Result<HttpResponse, Error> {
    let mib: usize = req.query_param("mib").and_then(|v| v.parse().ok()).unwrap_or(8);
    let value = vec![7u8; mib << 20];
    match kv::set("huge", &value) {
        Ok(()) => Ok(HttpResponse::text(200, "stored")),
        Err(e) => Ok(HttpResponse::text(507, format!("refused: {e}"))),
    }
}

/// Writes 64 KiB values under fresh keys until the host says no.
fn kv_flood() -> Result<HttpResponse, Error> {
    let value = vec![1u8; 64 << 10];
    for i in 0u64.. {
        if let Err(e) = kv::set(&format!("flood-{i:08}"), &value) {
            return Ok(HttpResponse::text(507, format!("refused after {i} writes: {e}")));
        }
    }
    unreachable!()
}

/// Fetches `?url=` through `outbound` and reports the result as JSON-ish text.
fn fetch(req: &HttpRequest) -> Result<HttpResponse, Error> {
    let url = req
        .query_param("url")
        .ok_or_else(|| Error::Invalid("missing url".into()))?;
    let result = outbound::send(&OutboundRequest {
        method: "GET".into(),
        url: url.to_string(),
        headers: vec![],
        body: vec![],
        timeout_ms: None,
    });
    Ok(match result {
        Ok(resp) => HttpResponse::text(
            200,
            format!("ok {} {}", resp.status, String::from_utf8_lossy(&resp.body)),
        ),
        Err(e) => HttpResponse::text(200, format!("err {e}")),
    })
}

plinth_sdk::http::export_http_plugin!(Hostile);
