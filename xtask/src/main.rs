//! `cargo xtask …`: the build tasks cargo alone can't do (the cargo-xtask pattern).
//!
//! - `cargo xtask plugins` builds every plugin component into `target/plugins/`.
//! - `cargo xtask demo [ARGS…]` builds the plugins and the host, then runs the demo server.
//! - `cargo xtask test [ARGS…]` builds the plugins, prepares the test setup and runs
//!   `cargo test --release`.
//! - `cargo xtask bench [OPTIONS]` builds everything, starts the server and load-tests it.
//!
//! The alias lives in `.cargo/config.toml`; everything builds into the workspace's one
//! target directory with the release profile (guests with the `plugin` profile).

mod bench;
mod plugins;
mod tasks;
mod workspace;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", about, version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build every plugin (wasm32-wasip2 components) into target/plugins/.
    Plugins,
    /// Build plugins and host, then run `plinth serve --config examples/plinth.toml`.
    Demo {
        /// Extra arguments passed to `plinth serve`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Build plugins, run the test setup, then `cargo test --release` at the root.
    Test {
        /// Extra arguments passed to `cargo test` (use `--` before test-binary arguments).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Start the server and load-test it with the built-in HTTP/1.1 load generator.
    Bench(bench::BenchArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            // The chain, without the backtrace anyhow's Debug adds under RUST_BACKTRACE.
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let ws = workspace::Workspace::discover()?;
    match cli.command {
        Command::Plugins => plugins::build(&ws).map(drop),
        Command::Demo { args } => tasks::demo(&ws, &args),
        Command::Test { args } => tasks::test(&ws, &args),
        Command::Bench(args) => bench::run(&ws, &args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn passes_extra_args_through() {
        let cli =
            Cli::try_parse_from(["xtask", "test", "-p", "plinth", "--", "--nocapture"]).expect("parses");
        match cli.command {
            Command::Test { args } => assert_eq!(args, ["-p", "plinth", "--", "--nocapture"]),
            other => panic!("unexpected {other:?}"),
        }
    }
}
