//! localstripe (the Stripe emulator from PyPI, installed by `cargo xtask test` into
//! target/venv-localstripe): one process for the whole test binary, on a free port.

use std::path::Path;
use std::time::Duration;

use tokio::sync::OnceCell;

pub struct LocalStripe {
    pub port: u16,
}

static LOCALSTRIPE: OnceCell<LocalStripe> = OnceCell::const_new();

pub const SECRET_KEY: &str = "sk_test_plinth";

/// The shared emulator, started on first use.
pub async fn localstripe() -> &'static LocalStripe {
    LOCALSTRIPE
        .get_or_init(|| async {
            let bin =
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/venv-localstripe/bin/localstripe");
            assert!(
                bin.is_file(),
                "{} is missing: run `cargo xtask test` (it installs localstripe from PyPI)",
                bin.display()
            );
            let port = {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                l.local_addr().unwrap().port()
            };
            // PR_SET_PDEATHSIG fires when the *thread* that spawned the child exits, so
            // the child is spawned from a thread that lives as long as the test binary.
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let mut cmd = std::process::Command::new(bin);
                cmd.args(["--port", &port.to_string(), "--from-scratch"])
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
            rx.recv().expect("spawner thread").expect("start localstripe");
            let client = reqwest::Client::new();
            let url = format!("http://127.0.0.1:{port}/v1/payment_intents");
            for _ in 0..200 {
                if client
                    .get(&url)
                    .basic_auth(SECRET_KEY, Some(""))
                    .send()
                    .await
                    .is_ok()
                {
                    return LocalStripe { port };
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("localstripe did not start on port {port}");
        })
        .await
}

impl LocalStripe {
    /// Every PaymentIntent localstripe holds.
    pub async fn payment_intents(&self) -> Vec<serde_json::Value> {
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut url = format!("http://127.0.0.1:{}/v1/payment_intents?limit=100", self.port);
            if let Some(a) = &after {
                url.push_str(&format!("&starting_after={a}"));
            }
            let page = self.get_json(&url).await;
            let data = page["data"].as_array().cloned().unwrap_or_default();
            after = data.last().and_then(|pi| pi["id"].as_str()).map(str::to_string);
            all.extend(data);
            if page["has_more"] != true || after.is_none() {
                return all;
            }
        }
    }

    /// `GET url` with the test secret key.
    async fn get_json(&self, url: &str) -> serde_json::Value {
        reqwest::Client::new()
            .get(url)
            .basic_auth(SECRET_KEY, Some(""))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The refunds of one PaymentIntent.
    pub async fn refunds_for(&self, payment_intent: &str) -> Vec<serde_json::Value> {
        let url = format!(
            "http://127.0.0.1:{}/v1/refunds?payment_intent={payment_intent}&limit=100",
            self.port
        );
        self.get_json(&url).await["data"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The PaymentIntents made for one order (by `metadata.order_id`).
    pub async fn intents_for(&self, order_id: &str) -> Vec<serde_json::Value> {
        self.payment_intents()
            .await
            .into_iter()
            .filter(|pi| pi["metadata"]["order_id"] == order_id)
            .collect()
    }

    /// The ids of the succeeded PaymentIntents of one order.
    pub async fn succeeded_for(&self, order_id: &str) -> Vec<String> {
        self.intents_for(order_id)
            .await
            .into_iter()
            .filter(|pi| pi["status"] == "succeeded")
            .map(|pi| pi["id"].as_str().unwrap().to_string())
            .collect()
    }
}
