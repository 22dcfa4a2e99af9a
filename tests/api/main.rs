//! Black-box tests: the real server on port 0, real HTTP, real plugins compiled to
//! wasm32-wasip2. Run them with `cargo xtask test`.

mod admin;
mod admin_orders;
mod auth;
mod catalog;
mod checkout;
mod checkout_crash;
mod checkout_recovery;
mod cli;
mod contacts;
mod data_at_rest;
mod durability;
mod helpers;
mod hostile;
mod http_basics;
mod oidc;
mod plugin_auth;
mod plugins;
mod sandbox;
mod shop;
mod weather;
