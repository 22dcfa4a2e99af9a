//! Black-box tests: the real server on port 0, real HTTP, real plugins compiled to
//! wasm32-wasip2. Run them with `cargo xtask test`.

mod admin;
mod admin_orders;
mod auth;
mod catalog;
mod checkout;
mod checkout_abandoned;
mod checkout_crash;
mod checkout_limits;
mod checkout_recovery;
mod checkout_webhooks;
mod cli;
mod contacts;
mod data_at_rest;
mod demo_secrets;
mod durability;
mod helpers;
mod hostile;
mod http_basics;
mod oidc;
mod plugin_auth;
mod plugin_errors;
mod plugins;
mod shop;
mod weather;
