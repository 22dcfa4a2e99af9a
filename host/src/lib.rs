//! Plinth: a backend whose business rules and integrations run as sandboxed
//! WebAssembly components. See ARCHITECTURE.md for the map.

pub mod auth;
pub mod catalog;
pub mod checkout;
pub mod cli;
pub mod config;
pub mod contacts;
pub mod data_dir;
pub mod domain;
pub mod http;
pub mod runtime;
pub mod search;
pub mod server;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod weather;

pub use startup::Application;
