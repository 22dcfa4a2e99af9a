//! Rebuilds the SDK when the WIT contract changes: `wit_bindgen::generate!` reads
//! `../../wit` at compile time, but cargo does not track files a proc macro reads, so
//! without this a changed contract leaves stale bindings in every plugin.

fn main() {
    println!("cargo:rerun-if-changed=../../wit");
}
