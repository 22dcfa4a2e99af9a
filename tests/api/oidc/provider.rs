//! node-oidc-provider (npm, pinned in tests/oidc/package.json, installed by
//! `cargo xtask test` into tests/oidc/node_modules): one process for the whole test
//! binary on a free loopback port; each test registers its own client.

use std::path::Path;
use std::time::Duration;

use tokio::sync::OnceCell;

pub struct Idp {
    pub port: u16,
}

static IDP: OnceCell<Idp> = OnceCell::const_new();

/// The shared OpenID Provider, started on first use.
pub async fn idp() -> &'static Idp {
    IDP.get_or_init(|| async {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/oidc");
        assert!(
            dir.join("node_modules/oidc-provider/package.json").is_file(),
            "{} is missing: run `cargo xtask test` (it runs `npm ci` there)",
            dir.join("node_modules/oidc-provider").display()
        );
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        // PR_SET_PDEATHSIG fires when the *thread* that spawned the child exits, so the
        // child is spawned from a thread that lives as long as the test binary.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut cmd = std::process::Command::new("node");
            cmd.current_dir(&dir)
                .arg("provider.mjs")
                .arg(port.to_string())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
            #[cfg(target_os = "linux")]
            // SAFETY: prctl in the child between fork and exec touches no shared state.
            unsafe {
                use std::os::unix::process::CommandExt;
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
            let _ = tx.send(cmd.spawn().map(|_| ()));
            loop {
                std::thread::park();
            }
        });
        rx.recv()
            .expect("spawner thread")
            .expect("start node (the OpenID Provider needs Node.js)");
        let client = reqwest::Client::new();
        let url = format!("http://127.0.0.1:{port}/.well-known/openid-configuration");
        for _ in 0..300 {
            if client
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Idp { port };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("oidc-provider did not start on port {port}");
    })
    .await
}

impl Idp {
    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Registers a confidential client (dynamic client registration) for `redirect_uri`;
    /// returns (client_id, client_secret).
    pub async fn register_client(&self, redirect_uri: &str) -> (String, String) {
        let resp = reqwest::Client::new()
            .post(format!("{}/reg", self.issuer()))
            .json(&serde_json::json!({
                "redirect_uris": [redirect_uri],
                "token_endpoint_auth_method": "client_secret_basic",
                "grant_types": ["authorization_code"],
                "response_types": ["code"],
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "client registration");
        let body: serde_json::Value = resp.json().await.unwrap();
        (
            body["client_id"].as_str().unwrap().to_string(),
            body["client_secret"].as_str().unwrap().to_string(),
        )
    }
}
