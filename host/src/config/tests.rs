//! `plinth.toml` parsing: good files resolve, bad ones name the section and field.

use super::*;

fn base() -> (tempdir::Dir, PathBuf) {
    let dir = tempdir::Dir::new();
    std::fs::write(dir.path().join("hello.wasm"), b"\0asm").unwrap();
    let p = dir.path().to_path_buf();
    (dir, p)
}

/// A throwaway directory for config tests (removed on drop).
mod tempdir {
    pub struct Dir(std::path::PathBuf);
    impl Dir {
        pub fn new() -> Self {
            let p = std::env::temp_dir().join(format!("plinth-config-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
        pub fn path(&self) -> &std::path::Path {
            &self.0
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn parse(text: &str, base: &Path) -> Result<Config, ConfigError> {
    Config::parse(text, base, &Overrides::default(), |k| {
        (k == "SECRET").then(|| "s3cret".to_string())
    })
}

const GOOD: &str = r#"
[server]
listen = "127.0.0.1:8080"
data_dir = "./data"

[[plugin]]
name = "hello"
world = "http-plugin"
source = "hello.wasm"
allowed_hosts = ["api.example.com", "127.0.0.1:9000", "${API_HOST:-*.example.org}"]
limits = { timeout_ms = 250, memory_mib = 8 }
config = { greeting = "hi", key = "${SECRET}", port = 8080 }
"#;

#[test]
fn parses_a_good_file_and_resolves_paths_and_secrets() {
    let (_d, base) = base();
    let c = parse(GOOD, &base).unwrap();
    assert_eq!(c.server.listen.port(), 8080);
    assert_eq!(c.server.data_dir, base.join("./data"));
    assert_eq!(c.runtime.cache_dir, base.join("./data").join("compiled"));
    let p = &c.plugins[0];
    assert_eq!(p.source, base.join("hello.wasm"));
    assert_eq!(p.limits.timeout, std::time::Duration::from_millis(250));
    assert_eq!(p.limits.memory_bytes, 8 << 20);
    assert_eq!(p.values["key"], "s3cret");
    assert_eq!(p.values["port"], "8080");
    let hosts: Vec<String> = p.allowed_hosts.iter().map(|h| h.to_string()).collect();
    assert_eq!(hosts, ["api.example.com", "127.0.0.1:9000", "*.example.org"]);
}

#[test]
fn overrides_win_over_the_file() {
    let (_d, base) = base();
    let o = Overrides {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        data_dir: Some(PathBuf::from("/tmp/elsewhere")),
    };
    let c = Config::parse(GOOD, &base, &o, |_| Some("x".into())).unwrap();
    assert_eq!(c.server.listen.port(), 0);
    assert_eq!(c.server.data_dir, PathBuf::from("/tmp/elsewhere"));
}

fn error_of(text: &str) -> String {
    let (_d, base) = base();
    parse(text, &base).unwrap_err().to_string()
}

#[test]
fn bad_files_name_the_plugin_and_field() {
    let missing_env = GOOD.replace("${SECRET}", "${NOT_SET_ANYWHERE}");
    let e = error_of(&missing_env);
    assert!(
        e.contains("plugin \"hello\"") && e.contains("config.key") && e.contains("NOT_SET_ANYWHERE"),
        "{e}"
    );

    let e = error_of(&GOOD.replace("timeout_ms = 250", "timeout_ms = 0"));
    assert!(
        e.contains("plugin \"hello\"") && e.contains("limits.timeout_ms"),
        "{e}"
    );

    let e = error_of(&GOOD.replace("hello.wasm", "nope.wasm"));
    assert!(
        e.contains("plugin \"hello\"") && e.contains("source") && e.contains("nope.wasm"),
        "{e}"
    );

    let e = error_of(&GOOD.replace("http-plugin", "http"));
    assert!(e.contains("unknown world"), "{e}");

    let e = error_of(&GOOD.replace("name = \"hello\"", "name = \"Hello/\""));
    assert!(e.contains("invalid plugin name"), "{e}");

    let e = error_of(&GOOD.replace("timeout_ms", "timout_ms"));
    assert!(e.contains("unknown field") && e.contains("timout_ms"), "{e}");

    let e = error_of(&GOOD.replace("api.example.com", "https://api.example.com"));
    assert!(e.contains("without a scheme"), "{e}");

    let e = error_of(&GOOD.replace("127.0.0.1:8080", "nowhere"));
    assert!(e.contains("[server]") && e.contains("listen"), "{e}");

    let twice = format!("{GOOD}\n{}", &GOOD[GOOD.find("[[plugin]]").unwrap()..]);
    let e = error_of(&twice);
    assert!(e.contains("defined twice"), "{e}");

    let e = error_of(&GOOD.replace("127.0.0.1:9000", "http://x/"));
    assert!(e.contains("allowed_hosts") && e.contains("http://x/"), "{e}");

    let pure = GOOD.replace("http-plugin", "rules-plugin");
    let e = error_of(&pure);
    assert!(e.contains("allowed_hosts"), "{e}");
}

const SOCIAL: &str = r#"
[server]
listen = "127.0.0.1:8080"
data_dir = "./data"

[auth]
public_url = "https://shop.example"
oauth_return_urls = ["https://shop.example/app/"]

[[auth.oidc]]
name = "google"
issuer = "https://accounts.google.com"
client_id = "id.apps.googleusercontent.com"
client_secret = "${SECRET}"

[[auth.oidc]]
name = "github"
kind = "oauth2"
issuer = "https://github.com"
authorization_endpoint = "https://github.com/login/oauth/authorize"
token_endpoint = "https://github.com/login/oauth/access_token"
userinfo_endpoint = "https://api.github.com/user"
client_id = "gh"
client_secret = "${GITHUB_SECRET_UNSET}"
"#;

#[test]
fn social_login_providers_resolve_and_unset_secrets_skip_them() {
    let (_d, base) = base();
    let cfg = parse(SOCIAL, &base).unwrap();
    let oauth = &cfg.auth.oauth;
    assert_eq!(oauth.providers.len(), 1);
    let google = oauth.provider("google").unwrap();
    assert_eq!(google.client_secret.expose(), "s3cret");
    assert!(
        !format!("{google:?}").contains("s3cret"),
        "the secret is redacted"
    );
    assert_eq!(google.scopes, ["openid", "email", "profile"]);
    assert_eq!(oauth.skipped.len(), 1);
    assert_eq!(oauth.skipped[0].0, "github");
    assert_eq!(
        oauth.default_return_url.as_ref().unwrap().as_str(),
        "https://shop.example/app/"
    );
}

#[test]
fn social_login_settings_are_checked() {
    let (_d, base) = base();
    let cases = [
        (
            SOCIAL.replace("https://accounts.google.com", "http://accounts.google.com"),
            "issuer",
        ),
        (
            SOCIAL.replace("public_url = \"https://shop.example\"\n", ""),
            "public_url",
        ),
        (
            SOCIAL.replace("oauth_return_urls = [\"https://shop.example/app/\"]\n", ""),
            "oauth_return_urls",
        ),
        (
            SOCIAL.replace("name = \"google\"", "name = \"Google!\""),
            "provider name",
        ),
        (
            SOCIAL
                .replace("client_id = \"gh\"", "client_id = \"gh\"\nscopes = [\"a b\"]")
                .replace("${GITHUB_SECRET_UNSET}", "x"),
            "scopes",
        ),
        (
            SOCIAL.replace("name = \"github\"", "name = \"google\""),
            "defined twice",
        ),
    ];
    for (text, what) in cases {
        let err = parse(&text, &base).unwrap_err().to_string();
        assert!(err.contains(what), "{what}: {err}");
    }
}

#[test]
fn guest_log_lines_per_call_default_and_bounds() {
    let (_d, base) = base();
    assert_eq!(
        parse(GOOD, &base).unwrap().plugins[0].limits.log_lines_per_call,
        1_000
    );
    let lines = GOOD.replace("memory_mib = 8", "memory_mib = 8, log_lines_per_call = 20");
    assert_eq!(
        parse(&lines, &base).unwrap().plugins[0].limits.log_lines_per_call,
        20
    );
    let e = error_of(&GOOD.replace("memory_mib = 8", "memory_mib = 8, log_lines_per_call = 100001"));
    assert!(
        e.contains("plugin \"hello\"") && e.contains("limits.log_lines_per_call"),
        "{e}"
    );
}

#[test]
fn trusted_proxies_replace_trust_forwarded_for() {
    let (_d, base) = base();
    let with_auth = |lines: &str| {
        format!("[server]\nlisten = \"127.0.0.1:8080\"\ndata_dir = \"./data\"\n\n[auth]\n{lines}\n")
    };
    let proxies = |lines: &str| parse(&with_auth(lines), &base).map(|c| c.auth.trusted_proxies);
    assert_eq!(proxies("").unwrap(), 0);
    assert_eq!(proxies("trusted_proxies = 2").unwrap(), 2);
    assert_eq!(
        proxies("trust_forwarded_for = true").unwrap(),
        1,
        "the old flag is one proxy"
    );
    assert_eq!(proxies("trust_forwarded_for = false").unwrap(), 0);
    // Behind a proxy every connection comes from it: no per-address cap unless set.
    let per_ip = |lines: &str| {
        parse(&with_auth(lines), &base)
            .unwrap()
            .server
            .connections
            .max_connections_per_ip
    };
    assert_eq!(per_ip(""), 256);
    assert_eq!(per_ip("trusted_proxies = 1"), 1024);
    let e = proxies("trust_forwarded_for = true\ntrusted_proxies = 2")
        .unwrap_err()
        .to_string();
    assert!(e.contains("[auth]") && e.contains("trust_forwarded_for"), "{e}");
    let e = proxies("trusted_proxies = 17").unwrap_err().to_string();
    assert!(e.contains("[auth]") && e.contains("trusted_proxies"), "{e}");
    let e = proxies("rate_limit = { register_per_ip_per_hour = 0 }")
        .unwrap_err()
        .to_string();
    assert!(e.contains("rate_limit.register_per_ip_per_hour"), "{e}");
    let e = proxies("oauth_max_pending = 0").unwrap_err().to_string();
    assert!(e.contains("oauth_max_pending"), "{e}");
}

#[test]
fn connection_limits_default_safely_and_name_the_field_when_bad() {
    let (_d, base) = base();
    let c = parse(GOOD, &base).unwrap().server.connections;
    assert_eq!(c.header_read_timeout, std::time::Duration::from_secs(10));
    assert_eq!(c.keep_alive_idle, std::time::Duration::from_secs(5));
    assert_eq!(c.request_timeout, std::time::Duration::from_secs(60));
    assert_eq!(c.max_connections, 1024);
    assert_eq!(c.max_connections_per_ip, 256);
    let with = |lines: &str| {
        GOOD.replace(
            "data_dir = \"./data\"\n",
            &format!("data_dir = \"./data\"\n{lines}\n"),
        )
    };
    // An unset idle timeout follows a shorter header timeout; a set one may not exceed it.
    let short = parse(&with("header_read_timeout_ms = 2000"), &base).unwrap();
    assert_eq!(
        short.server.connections.keep_alive_idle,
        std::time::Duration::from_secs(2)
    );
    for (lines, field) in [
        (
            "header_read_timeout_ms = 2000\nkeep_alive_idle_secs = 3",
            "keep_alive_idle_secs",
        ),
        ("header_read_timeout_ms = 0", "header_read_timeout_ms"),
        ("keep_alive_idle_secs = 0", "keep_alive_idle_secs"),
        ("request_timeout_secs = 0", "request_timeout_secs"),
        ("max_connections = 0", "max_connections"),
        ("max_connections_per_ip = 0", "max_connections_per_ip"),
        (
            "max_connections = 10\nmax_connections_per_ip = 11",
            "max_connections_per_ip",
        ),
    ] {
        let e = error_of(&with(lines));
        assert!(e.contains("[server]") && e.contains(field), "{lines}: {e}");
    }
}

#[test]
fn cookies_are_secure_by_default_behind_an_https_public_url() {
    let (_d, base) = base();
    let auth = |lines: &str| format!("{GOOD}\n[auth]\n{lines}\n");
    let secure = |text: String| parse(&text, &base).unwrap().auth.cookie_secure;
    assert!(!secure(GOOD.to_string()));
    assert!(secure(auth("public_url = \"https://shop.example\"")));
    assert!(!secure(auth("public_url = \"http://127.0.0.1:8080\"")));
    assert!(!secure(auth(
        "public_url = \"https://shop.example\"\ncookie_secure = false"
    )));
    assert!(secure(auth("cookie_secure = true")));
}

#[test]
fn internal_hosts_are_exact_names_on_one_list_only() {
    let with = |line: &str| GOOD.replace("limits = {", &format!("{line}\nlimits = {{"));
    let (_d, base) = base();
    let c = parse(
        &with(r#"internal_hosts = ["billing.internal:8443", "10.0.0.7"]"#),
        &base,
    )
    .unwrap();
    let hosts: Vec<String> = c.plugins[0]
        .internal_hosts
        .iter()
        .map(|h| h.to_string())
        .collect();
    assert_eq!(hosts, ["billing.internal:8443", "10.0.0.7"]);
    assert!(parse(GOOD, &base).unwrap().plugins[0].internal_hosts.is_empty());

    let e = error_of(&with(r#"internal_hosts = ["*.internal"]"#));
    assert!(e.contains("internal_hosts") && e.contains("wildcard"), "{e}");
    let e = error_of(&with(r#"internal_hosts = ["api.example.com:8443"]"#));
    assert!(e.contains("internal_hosts") && e.contains("also matched"), "{e}");
    let e = error_of(&with(r#"internal_hosts = ["x.example.org"]"#));
    assert!(e.contains("*.example.org"), "{e}");
    let e = error_of(&with(r#"internal_hosts = ["http://x/"]"#));
    assert!(
        e.contains("internal_hosts") && e.contains("without a scheme"),
        "{e}"
    );
    let pure = with(r#"internal_hosts = ["billing.internal"]"#)
        .replace("http-plugin", "rules-plugin")
        .replace(
            r#"allowed_hosts = ["api.example.com", "127.0.0.1:9000", "${API_HOST:-*.example.org}"]"#,
            "",
        );
    let e = error_of(&pure);
    assert!(e.contains("internal_hosts") && e.contains("pure"), "{e}");
}

#[test]
fn plugin_share_and_busy_lanes_are_validated() {
    let (_d, base) = base();
    let c = parse(GOOD, &base).unwrap();
    assert_eq!((c.runtime.plugin_share_percent, c.runtime.busy_lanes), (25, None));
    assert_eq!(c.runtime.plugin_share(), 64, "25 % of 256");
    assert_eq!(c.plugins[0].limits.max_concurrent, None, "the share applies");

    let with = |runtime: &str| GOOD.replace("[[plugin]]", &format!("[runtime]\n{runtime}\n\n[[plugin]]"));
    let c = parse(
        &with("max_instances = 10\nplugin_share_percent = 25\nbusy_lanes = 3"),
        &base,
    )
    .unwrap();
    assert_eq!(c.runtime.plugin_share(), 3, "rounded up");
    assert_eq!(c.runtime.busy_lanes, Some(3));
    let c = parse(&with("max_instances = 1\nplugin_share_percent = 1"), &base).unwrap();
    assert_eq!(c.runtime.plugin_share(), 1, "never zero");
    for bad in [
        "plugin_share_percent = 0",
        "plugin_share_percent = 101",
        "busy_lanes = 5000",
    ] {
        let e = error_of(&with(bad));
        let field = bad.split(' ').next().unwrap();
        assert!(e.contains("[runtime]") && e.contains(field), "{bad}: {e}");
    }
    let c = parse(
        &GOOD.replace("memory_mib = 8", "memory_mib = 8, max_concurrent = 500"),
        &base,
    )
    .unwrap();
    assert_eq!(
        c.plugins[0].limits.max_concurrent,
        Some(500),
        "an explicit value wins"
    );
}

#[test]
fn the_reconciler_settings_have_safe_defaults_and_are_checked() {
    let (_d, base) = base();
    let c = parse(GOOD, &base).unwrap();
    assert_eq!(c.checkout.reconcile_every, std::time::Duration::from_secs(30));
    assert_eq!(c.checkout.reconcile_stale, std::time::Duration::from_secs(60));
    assert_eq!(
        (c.checkout.max_in_flight, c.checkout.max_in_flight_per_customer),
        (256, 4)
    );
    let with = |fields: &str| format!("{GOOD}\n[checkout]\n{fields}\n");
    let c = parse(&with("reconcile_every_secs = 5\nreconcile_stale_secs = 2"), &base).unwrap();
    assert_eq!(c.checkout.reconcile_every, std::time::Duration::from_secs(5));
    assert_eq!(c.checkout.reconcile_stale, std::time::Duration::from_secs(2));
    for (bad, field) in [
        ("reconcile_every_secs = 0", "reconcile_every_secs"),
        ("reconcile_every_secs = 3601", "reconcile_every_secs"),
        ("reconcile_stale_secs = 0", "reconcile_stale_secs"),
        ("max_in_flight = 0", "max_in_flight"),
        ("max_in_flight_per_customer = 0", "max_in_flight_per_customer"),
    ] {
        let e = error_of(&with(bad));
        assert!(e.contains("[checkout]") && e.contains(field), "{e}");
    }
}

#[test]
fn the_origin_is_an_address_parsed_at_load() {
    let (_d, base) = base();
    let with = |origin: &str| format!("{GOOD}\n[checkout]\norigin = {{ {origin} }}\n");
    let good = r#"name = " Warehouse ", line1 = "1 Dock Road", city = "Oakland", region = "ca", postal_code = "94607", country = "us""#;
    let c = parse(&with(good), &base).unwrap();
    let origin = c.checkout.origin.unwrap();
    assert_eq!(
        (origin.name(), origin.region(), origin.country()),
        ("Warehouse", Some("CA"), "US")
    );
    for (bad, field, why) in [
        (good.replace("\"us\"", "\"USA\""), "origin.country", "ISO 3166-1"),
        (
            good.replace("\" Warehouse \"", "\"\""),
            "origin.name",
            "1-100 characters",
        ),
        (
            format!("{good}, email = \"nope\""),
            "origin.email",
            "not an email",
        ),
    ] {
        let e = error_of(&with(&bad));
        assert!(
            e.contains("[checkout]") && e.contains(field) && e.contains(why),
            "{e}"
        );
    }
    let e = error_of(&with(&format!("{good}, zip = \"94607\"")));
    assert!(e.contains("zip"), "unknown fields are refused: {e}");
}
