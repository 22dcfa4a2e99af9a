//! Black-box tests: the real server on port 0, real HTTP, real plugins compiled to
//! wasm32-wasip2. Run them with `cargo xtask test`.

mod admin;
mod admin_orders;
mod auth;
mod browser_sessions;
mod catalog;
mod checkout;
mod checkout_abandoned;
mod checkout_crash;
mod checkout_limits;
mod checkout_recovery;
mod checkout_webhooks;
mod cli;
mod client_limits;
mod connections;
mod contacts;
mod data_at_rest;
mod db_outage;
mod demo_secrets;
mod durability;
mod helpers;
mod hostile;
mod http_basics;
mod log_forging;
mod oidc;
mod plugin_auth;
mod plugin_errors;
mod plugin_output;
mod plugin_responses;
mod plugins;
mod private_files;
mod replicas;
mod sandbox;
mod shop;
mod store_copy;
mod weather;
