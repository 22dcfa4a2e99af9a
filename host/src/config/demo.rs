//! Secrets the demo configuration publishes. `examples/plinth.toml` falls back to these
//! (`${STRIPE_WEBHOOK_SECRET:-whsec_plinth_demo}`, …) so the demo runs without any
//! setup; a server reachable by anyone else must not accept them: whoever read the
//! repository could sign webhooks (mark orders refunded) or use the keys. `plinth
//! serve` refuses them unless told this is a demo (`--demo` or `PLINTH_DEMO=1`).

use super::{Config, ConfigError};

/// Every secret value `examples/plinth.toml` publishes, in one place (a unit test keeps
/// the example file and this list in step).
pub const DEMO_SECRETS: &[&str] = &[
    "sk_test_plinth_demo",
    "whsec_plinth_demo",
    "rzp_test_plinth_demo",
    "plinth_demo",
    "shippo_test_plinth_demo",
];

impl Config {
    /// Fails on the first plugin setting that holds a published demo secret, naming the
    /// plugin and the field.
    pub fn refuse_demo_secrets(&self) -> Result<(), ConfigError> {
        for plugin in &self.plugins {
            for (key, value) in &plugin.values {
                if DEMO_SECRETS.contains(&value.trim()) {
                    return Err(ConfigError::invalid(
                        format!("plugin {:?}", plugin.name.as_str()),
                        &format!("config.{key}"),
                        "is a secret published with the demo configuration; set your own \
                         (or run `plinth serve --demo` / PLINTH_DEMO=1 for a demo)",
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Overrides;

    /// The `${VAR:-default}` fallbacks of the example config.
    fn fallbacks(text: &str) -> Vec<&str> {
        text.split("${")
            .skip(1)
            .filter_map(|rest| rest.split_once('}').map(|(inner, _)| inner))
            .filter_map(|inner| inner.split_once(":-").map(|(_, default)| default))
            .collect()
    }

    #[test]
    fn every_demo_secret_of_the_example_config_is_known() {
        let example = include_str!("../../../examples/plinth.toml");
        let demo: Vec<&str> = fallbacks(example)
            .into_iter()
            .filter(|d| d.contains("demo"))
            .collect();
        assert!(demo.len() >= 5, "{demo:?}");
        for value in demo {
            assert!(DEMO_SECRETS.contains(&value), "{value} is not in DEMO_SECRETS");
        }
    }

    #[test]
    fn demo_secrets_are_refused_naming_plugin_and_field() {
        let dir = std::env::temp_dir().join(format!("plinth-demo-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("p.wasm"), b"\0asm").unwrap();
        let text = |secret: &str| {
            format!(
                r#"
[server]
listen = "127.0.0.1:0"
data_dir = "./data"

[[plugin]]
name = "razorpay"
world = "payment-plugin"
source = "p.wasm"
config = {{ key_id = "rzp_live_1", webhook_secret = "${{RZP_WEBHOOK:-{secret}}}" }}
"#
            )
        };
        let parse = |t: &str| Config::parse(t, Path::new(&dir), &Overrides::default(), |_| None).unwrap();
        let e = parse(&text("plinth_demo"))
            .refuse_demo_secrets()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("plugin \"razorpay\"") && e.contains("config.webhook_secret") && e.contains("--demo"),
            "{e}"
        );
        assert!(parse(&text("a-real-secret")).refuse_demo_secrets().is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
