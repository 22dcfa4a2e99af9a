//! "Login with …": the full browser flow against a real OpenID Provider
//! (node-oidc-provider on loopback, its dev login and consent forms submitted by a
//! cookie-keeping client), plus a tiny fake issuer for tokens a real provider never
//! issues (another audience, unknown key, expired, unsigned).

mod fake;
mod flood;
mod provider;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::cookie::Jar;
use reqwest::header::{LOCATION, SET_COOKIE};
use reqwest::StatusCode;

use crate::helpers::{error_code, json, spawn_app_at, TestApp, PASSWORD};
use fake::{FakeIssuer, Issue, KID};
use provider::idp;

/// Where a browser reaches Plinth: a server in this process, or a replica's base URL
/// (`http://host:port`, as `wait_listening` gives it), so the flow helpers below drive
/// one server or several behind one public URL alike.
pub(crate) trait Site {
    /// The absolute URL of `path` there.
    fn url(&self, path: &str) -> String;
}

impl Site for TestApp {
    fn url(&self, path: &str) -> String {
        TestApp::url(self, path)
    }
}

impl Site for String {
    fn url(&self, path: &str) -> String {
        format!("{self}{path}")
    }
}

/// A free loopback port for the server (its redirect URI must be registered first).
pub(crate) fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// One `[[auth.oidc]]` entry.
fn provider_entry(name: &str, issuer: &str, client_id: &str, secret: &str) -> String {
    format!(
        r#"
[[auth.oidc]]
name = "{name}"
issuer = "{issuer}"
client_id = "{client_id}"
client_secret = "{secret}"
"#
    )
}

/// `[auth]` with public URL `http://{addr}` (return URLs under it) plus the given
/// provider entries.
pub(crate) fn auth_section(addr: SocketAddr, providers: &str) -> String {
    format!(
        r#"
[auth]
public_url = "http://{addr}"
oauth_return_urls = ["http://{addr}/auth/me", "http://{addr}/app/"]
{providers}
"#
    )
}

/// The server with social login: [`auth_section`] for `addr`, listening there.
async fn spawn_with(addr: SocketAddr, providers: &str) -> TestApp {
    spawn_app_at(
        &auth_section(addr, providers),
        tempfile::tempdir().unwrap(),
        Some(addr),
    )
    .await
}

/// Provider `local` = the real OpenID Provider, with a fresh client whose redirect URI
/// is the callback at public URL `http://{addr}`.
pub(crate) async fn local_idp_entry(addr: SocketAddr) -> String {
    let idp = idp().await;
    let (id, secret) = idp
        .register_client(&format!("http://{addr}/auth/oauth/local/callback"))
        .await;
    provider_entry("local", &idp.issuer(), &id, &secret)
}

/// The server with provider `local` (see [`local_idp_entry`]).
async fn spawn_with_idp() -> TestApp {
    let addr = free_addr();
    spawn_with(addr, &local_idp_entry(addr).await).await
}

/// A browser: keeps cookies, follows redirects except those from or to the server under
/// test (so the test sees the server's redirects and the callback URL).
fn browser(app: &TestApp) -> reqwest::Client {
    browser_stopping_at(&[app.addr.port()], Arc::default())
}

/// [`browser`] for servers on several loopback `ports` (replicas), keeping its cookies in
/// `jar` so a test can read them. Cookies ignore ports, so what one replica sets the
/// browser sends to all of them, as to one site behind a load balancer.
pub(crate) fn browser_stopping_at(ports: &[u16], jar: Arc<Jar>) -> reqwest::Client {
    let ports = ports.to_vec();
    let ours = move |u: &reqwest::Url| u.port().is_some_and(|p| ports.contains(&p));
    reqwest::Client::builder()
        .cookie_provider(jar)
        .redirect(reqwest::redirect::Policy::custom(move |attempt| {
            let from_app = attempt.previous().last().is_some_and(&ours);
            if from_app || ours(attempt.url()) {
                attempt.stop()
            } else if attempt.previous().len() > 20 {
                attempt.error("too many redirects")
            } else {
                attempt.follow()
            }
        }))
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get(LOCATION)
        .unwrap_or_else(|| panic!("no Location in a {} answer", resp.status()))
        .to_str()
        .unwrap()
        .to_string()
}

fn query_param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn with_query_param(url: &str, name: &str, value: &str) -> String {
    let mut u = url::Url::parse(url).unwrap();
    let pairs: Vec<(String, String)> = u
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == name {
                value.to_string()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    u.query_pairs_mut().clear().extend_pairs(pairs);
    u.to_string()
}

/// `action="…"` of the page's form, resolved against the page's URL.
fn form_action(page_url: &reqwest::Url, html: &str) -> Option<String> {
    let start = html.find("<form")?;
    let tag = &html[start..start + html[start..].find('>')?];
    let action = tag.split("action=\"").nth(1)?.split('"').next()?;
    Some(page_url.join(&action.replace("&amp;", "&")).ok()?.to_string())
}

/// GET `/auth/oauth/{provider}/start` → the provider's authorize URL.
pub(crate) async fn start(
    app: &impl Site,
    b: &reqwest::Client,
    provider: &str,
    return_to: Option<&str>,
) -> String {
    let mut url = app.url(&format!("/auth/oauth/{provider}/start"));
    if let Some(r) = return_to {
        url = format!("{url}?return_to={}", urlencode(r));
    }
    let resp = b.get(url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND, "start");
    let cookie = resp.headers()[SET_COOKIE].to_str().unwrap().to_string();
    for attr in ["plinth_oauth=", "HttpOnly", "SameSite=Lax", "Max-Age=600"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    location(&resp)
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Drives the provider from its authorize URL: dev login form (any `login`), then
/// consent, until it redirects to the server; returns that redirect (the callback URL).
pub(crate) async fn through_provider(
    app: &impl Site,
    b: &reqwest::Client,
    authorize: &str,
    login: &str,
) -> String {
    let mut resp = b.get(authorize).send().await.unwrap();
    for _ in 0..5 {
        if resp.status().is_redirection() {
            let to = location(&resp);
            assert!(
                to.starts_with(&app.url("/")),
                "provider redirected elsewhere: {to}"
            );
            return to;
        }
        assert_eq!(resp.status(), StatusCode::OK, "provider page");
        let page = resp.url().clone();
        let html = resp.text().await.unwrap();
        let action = form_action(&page, &html).unwrap_or_else(|| panic!("no form on {page}: {html}"));
        let form: Vec<(&str, &str)> = if html.contains("name=\"login\"") {
            vec![("prompt", "login"), ("login", login), ("password", "any")]
        } else {
            vec![("prompt", "consent")]
        };
        resp = b.post(action).form(&form).send().await.unwrap();
    }
    panic!("the provider never redirected back");
}

/// Start to callback URL (not yet visited).
async fn callback_url(app: &TestApp, b: &reqwest::Client, login: &str) -> String {
    let authorize = start(app, b, "local", Some(&app.url("/auth/me"))).await;
    through_provider(app, b, &authorize, login).await
}

/// A full login as `login` at the real provider; returns /auth/me.
async fn login_via_idp(app: &TestApp, b: &reqwest::Client, login: &str) -> serde_json::Value {
    let callback = callback_url(app, b, login).await;
    finish_login(app, b, &callback).await
}

/// Visits `callback` (a login that returns to `/auth/me` on `app`): a session cookie and
/// the login cookie cleared; returns /auth/me with that session.
pub(crate) async fn finish_login(app: &impl Site, b: &reqwest::Client, callback: &str) -> serde_json::Value {
    let resp = b.get(callback).send().await.unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::FOUND,
        "callback: {:?}",
        resp.text().await
    );
    assert_eq!(location(&resp), app.url("/auth/me"));
    let cookies: Vec<String> = resp
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|c| c.to_str().unwrap().to_string())
        .collect();
    let session = cookies
        .iter()
        .find(|c| c.starts_with("plinth_session=plinth_"))
        .unwrap_or_else(|| panic!("no session cookie in {cookies:?}"));
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(session.contains(attr), "{session}");
    }
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("plinth_oauth=;") && c.contains("Max-Age=0")),
        "the login cookie is cleared: {cookies:?}"
    );
    let me = b.get(app.url("/auth/me")).send().await.unwrap();
    assert_eq!(me.status(), 200);
    json(me).await
}

/// The response carries no session.
fn no_session(resp: &reqwest::Response) {
    for c in resp.headers().get_all(SET_COOKIE) {
        assert!(
            !c.to_str().unwrap().starts_with("plinth_session=plinth_"),
            "a session was set"
        );
    }
}

/// A callback refused as `oauth_state_invalid` (bad, replayed, expired or another
/// browser's state), without a session.
pub(crate) async fn state_refused(resp: reqwest::Response) {
    no_session(&resp);
    assert_eq!(
        error_code(resp, 400).await["error"]["code"],
        "oauth_state_invalid"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_login_creates_a_user_and_a_session_second_reuses_it() {
    let app = spawn_with_idp().await;
    let b = browser(&app);
    let me = login_via_idp(&app, &b, "alice").await;
    assert_eq!(me["user"]["username"], "alice");
    assert_eq!(me["user"]["roles"], serde_json::json!(["user"]));
    let ids = me["identities"].as_array().unwrap();
    assert_eq!(ids.len(), 1, "{me}");
    assert_eq!(ids[0]["provider"], "local");
    assert_eq!(ids[0]["issuer"], idp().await.issuer());
    assert_eq!(ids[0]["subject"], "alice");
    assert_eq!(ids[0]["email"], "alice@example.test");
    let user_id = me["user"]["id"].clone();

    // A second login (another browser, so the provider asks again) finds the same user.
    let b2 = browser(&app);
    let again = login_via_idp(&app, &b2, "alice").await;
    assert_eq!(again["user"]["id"], user_id);
    assert_ne!(again["session"]["id"], me["session"]["id"], "a new session");
    // And a third in the first browser (the provider remembers the consent).
    let third = login_via_idp(&app, &b, "alice").await;
    assert_eq!(third["user"]["id"], user_id);

    // The account has no password: password login fails cleanly.
    let resp = app.login_with("alice", PASSWORD).await;
    assert_eq!(
        error_code(resp, 401).await["error"]["code"],
        "invalid_credentials"
    );
    let resp = app.login_with("alice", "").await;
    assert_eq!(resp.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identities_are_keyed_by_issuer_and_sub_not_by_name() {
    let app = spawn_with_idp().await;
    app.register("bob").await;
    let b = browser(&app);
    let me = login_via_idp(&app, &b, "bob").await;
    let name = me["user"]["username"].as_str().unwrap();
    assert!(name.starts_with("bob-") && name != "bob", "{name}");
    // The password account is untouched and separate.
    let token = app.login("bob").await;
    let pw = json(app.get_as(&token, "/auth/me").await).await;
    assert_ne!(pw["user"]["id"], me["user"]["id"]);
    assert_eq!(pw["identities"], serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_callback_is_rejected() {
    let app = spawn_with_idp().await;
    let b = browser(&app);
    let callback = callback_url(&app, &b, "replay").await;
    let first = b.get(&callback).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::FOUND);
    let again = b.get(&callback).send().await.unwrap();
    state_refused(again).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_state_and_another_browser_are_rejected() {
    let app = spawn_with_idp().await;
    let b = browser(&app);
    let callback = callback_url(&app, &b, "tamper").await;
    let state = query_param(&callback, "state").unwrap();
    assert!(state.len() >= 43, "state has at least 256 bits: {state}");

    let mut tampered = state.clone();
    tampered.replace_range(0..1, if state.starts_with('A') { "B" } else { "A" });
    let resp = b
        .get(with_query_param(&callback, "state", &tampered))
        .send()
        .await
        .unwrap();
    state_refused(resp).await;

    let resp = b
        .get(with_query_param(&callback, "state", ""))
        .send()
        .await
        .unwrap();
    state_refused(resp).await;

    // The right state from another browser (no binding cookie) is refused, and burns it.
    let other = browser(&app);
    let resp = other.get(&callback).send().await.unwrap();
    state_refused(resp).await;
    let resp = b.get(&callback).send().await.unwrap();
    state_refused(resp).await;

    // Nobody got a session.
    let resp = b.get(app.url("/auth/me")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_nonce_is_rejected() {
    let app = spawn_with_idp().await;
    let b = browser(&app);
    let authorize = start(&app, &b, "local", None).await;
    assert!(query_param(&authorize, "nonce").unwrap().len() >= 43);
    assert_eq!(query_param(&authorize, "code_challenge_method").unwrap(), "S256");
    // An attacker swaps the nonce of the authorization request: the provider issues an
    // ID token with it, state and PKCE still match, the nonce does not.
    let forged = with_query_param(&authorize, "nonce", "attacker-chosen-nonce");
    let callback = through_provider(&app, &b, &forged, "nonce-victim").await;
    let resp = b.get(&callback).send().await.unwrap();
    no_session(&resp);
    let body = error_code(resp, 401).await;
    assert_eq!(body["error"]["code"], "oauth_token_invalid");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("nonce"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_consent_is_an_error_without_session() {
    let app = spawn_with_idp().await;
    let b = browser(&app);
    let authorize = start(&app, &b, "local", None).await;
    // Log in, then press "Cancel" on the consent page.
    let resp = b.get(&authorize).send().await.unwrap();
    let page = resp.url().clone();
    let html = resp.text().await.unwrap();
    let action = form_action(&page, &html).unwrap();
    let resp = b
        .post(action)
        .form(&[("prompt", "login"), ("login", "shy"), ("password", "x")])
        .send()
        .await
        .unwrap();
    let page = resp.url().clone();
    let html = resp.text().await.unwrap();
    let abort = html
        .split("href=\"")
        .filter_map(|s| s.split('"').next())
        .find(|h| h.contains("abort"))
        .unwrap_or_else(|| panic!("no cancel link: {html}"));
    let resp = b.get(page.join(abort).unwrap()).send().await.unwrap();
    let callback = location(&resp);
    assert_eq!(query_param(&callback, "error").as_deref(), Some("access_denied"));
    let resp = b.get(&callback).send().await.unwrap();
    no_session(&resp);
    assert_eq!(
        error_code(resp, 403).await["error"]["code"],
        "oauth_access_denied"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn return_url_must_be_on_the_allow_list() {
    let app = spawn_with_idp().await;
    let b = browser(&app);
    for bad in [
        "https://evil.example/",
        "http://evil.example/auth/me",
        "//evil.example/",
        "javascript:alert(1)",
        &app.url("/other"),
        &format!("http://user@{}/app/", app.addr),
    ] {
        let resp = b
            .get(app.url(&format!("/auth/oauth/local/start?return_to={}", urlencode(bad))))
            .send()
            .await
            .unwrap();
        assert!(resp.headers().get(LOCATION).is_none(), "{bad}");
        assert_eq!(
            error_code(resp, 400).await["error"]["code"],
            "oauth_return_url_not_allowed",
            "{bad}"
        );
    }
    // A path under an allow-listed prefix is fine, and is where the browser ends up.
    let target = app.url("/app/orders?tab=open");
    let authorize = start(&app, &b, "local", Some(&target)).await;
    let callback = through_provider(&app, &b, &authorize, "traveller").await;
    let resp = b.get(&callback).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(location(&resp), target);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linking_needs_the_account_session_then_logs_in_as_it() {
    let app = spawn_with_idp().await;
    app.register("carol").await;
    let b = browser(&app);
    // Not logged in: no link.
    let resp = b.post(app.url("/auth/oauth/local/link")).send().await.unwrap();
    assert_eq!(error_code(resp, 401).await["error"]["code"], "unauthenticated");

    // Logged in with the password (the cookie is in the browser), link the IdP account.
    let resp = b
        .post(app.url("/auth/login"))
        .json(&serde_json::json!({ "username": "carol", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = b
        .post(app.url(&format!(
            "/auth/oauth/local/link?return_to={}",
            urlencode(&app.url("/auth/me"))
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let callback = through_provider(&app, &b, &location(&resp), "carol-at-idp").await;
    let resp = b.get(&callback).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    no_session(&resp);
    let me = json(b.get(app.url("/auth/me")).send().await.unwrap()).await;
    assert_eq!(me["user"]["username"], "carol");
    assert_eq!(me["identities"][0]["subject"], "carol-at-idp");

    // Logging in at the IdP as that account now opens a session as carol.
    let b2 = browser(&app);
    let via_idp = login_via_idp(&app, &b2, "carol-at-idp").await;
    assert_eq!(via_idp["user"]["id"], me["user"]["id"]);
    assert_eq!(via_idp["user"]["username"], "carol");

    // Someone else cannot link the same IdP account: 409, and it stays carol's.
    app.register("mallory").await;
    let b3 = browser(&app);
    let resp = b3
        .post(app.url("/auth/login"))
        .json(&serde_json::json!({ "username": "mallory", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = b3.post(app.url("/auth/oauth/local/link")).send().await.unwrap();
    let callback = through_provider(&app, &b3, &location(&resp), "carol-at-idp").await;
    let resp = b3.get(&callback).send().await.unwrap();
    assert_eq!(
        error_code(resp, 409).await["error"]["code"],
        "identity_linked_elsewhere"
    );
    let mallory = json(b3.get(app.url("/auth/me")).send().await.unwrap()).await;
    assert_eq!(mallory["identities"], serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_unreachable_providers() {
    let addr = free_addr();
    let closed = free_addr();
    let app = spawn_with(
        addr,
        &provider_entry("down", &format!("http://{closed}"), "id", "secret"),
    )
    .await;
    let b = browser(&app);
    let resp = b.get(app.url("/auth/oauth/down/start")).send().await.unwrap();
    no_session(&resp);
    assert_eq!(
        error_code(resp, 502).await["error"]["code"],
        "oauth_provider_unreachable"
    );
    let resp = b.get(app.url("/auth/oauth/nope/start")).send().await.unwrap();
    assert_eq!(
        error_code(resp, 404).await["error"]["code"],
        "oauth_provider_not_found"
    );
    let list = json(b.get(app.url("/auth/oauth/providers")).send().await.unwrap()).await;
    assert_eq!(list["providers"], serde_json::json!(["down"]));
}

/// The server with provider `fake` = [`FakeIssuer`], client id `plinth-client`.
async fn spawn_with_fake() -> (TestApp, FakeIssuer) {
    let fake = FakeIssuer::start().await;
    let app = spawn_with(
        free_addr(),
        &provider_entry("fake", &fake.issuer, "plinth-client", "s3cret"),
    )
    .await;
    (app, fake)
}

/// Starts a login at the fake issuer and completes the callback with an ID token built
/// by `make` from (good claims for this login); returns the callback's response.
async fn fake_login(
    app: &TestApp,
    fake: &FakeIssuer,
    code: &str,
    make: impl FnOnce(serde_json::Value) -> Issue,
) -> reqwest::Response {
    let b = browser(app);
    let authorize = start(app, &b, "fake", None).await;
    let state = query_param(&authorize, "state").unwrap();
    let nonce = query_param(&authorize, "nonce").unwrap();
    fake.issue(code, make(fake.good_claims("plinth-client", &nonce, "fake-user")));
    b.get(app.url(&format!(
        "/auth/oauth/fake/callback?code={code}&state={}",
        urlencode(&state)
    )))
    .send()
    .await
    .unwrap()
}

fn signed(claims: serde_json::Value) -> Issue {
    Issue {
        claims,
        kid: KID.into(),
        unsigned: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_id_tokens_are_rejected() {
    let (app, fake) = spawn_with_fake().await;

    // The fake itself is sound: a good token logs in.
    let resp = fake_login(&app, &fake, "good", signed).await;
    assert_eq!(resp.status(), StatusCode::FOUND, "{:?}", resp.text().await);

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    type Case = (
        &'static str,
        Box<dyn FnOnce(serde_json::Value) -> Issue>,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            "another audience",
            Box::new(|mut c| {
                c["aud"] = "some-other-client".into();
                signed(c)
            }),
            "audience",
        ),
        (
            "another audience among several, no azp",
            Box::new(|mut c| {
                c["aud"] = serde_json::json!(["some-other-client", "plinth-client"]);
                signed(c)
            }),
            "audience",
        ),
        (
            "unknown key id",
            Box::new(|c| Issue {
                claims: c,
                kid: "rotated-away".into(),
                unsigned: false,
            }),
            "key",
        ),
        (
            "expired",
            Box::new(move |mut c| {
                c["iat"] = (now - 4000).into();
                c["exp"] = (now - 3600).into();
                signed(c)
            }),
            "expired",
        ),
        (
            "issued too long ago",
            Box::new(move |mut c| {
                c["iat"] = (now - 3000).into();
                signed(c)
            }),
            "long ago",
        ),
        (
            "wrong issuer",
            Box::new(|mut c| {
                c["iss"] = "https://accounts.example".into();
                signed(c)
            }),
            "issuer",
        ),
        (
            "unsigned (alg none)",
            Box::new(|c| Issue {
                claims: c,
                kid: KID.into(),
                unsigned: true,
            }),
            "algorithm",
        ),
        (
            "wrong nonce",
            Box::new(|mut c| {
                c["nonce"] = "other".into();
                signed(c)
            }),
            "nonce",
        ),
    ];
    for (i, (name, make, why)) in cases.into_iter().enumerate() {
        let resp = fake_login(&app, &fake, &format!("code-{i}"), make).await;
        no_session(&resp);
        let body = error_code(resp, 401).await;
        assert_eq!(body["error"]["code"], "oauth_token_invalid", "{name}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(why), "{name}: {message}");
    }
}
