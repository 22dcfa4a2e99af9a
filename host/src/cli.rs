//! The `plinth` command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, Overrides};
use crate::domain::World;
use crate::runtime::check::check_component;
use crate::startup::{shutdown_signal, Application};

#[derive(Parser)]
#[command(
    name = "plinth",
    version,
    about = "A backend you can extend without trusting your extensions"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        /// The configuration file.
        #[arg(long, short, default_value = "plinth.toml")]
        config: PathBuf,
        /// Listen address (overrides [server].listen).
        #[arg(long, env = "PLINTH_LISTEN")]
        listen: Option<SocketAddr>,
        /// Data directory (overrides [server].data_dir).
        #[arg(long, env = "PLINTH_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Plugin tools.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Check that a component fits a world; list what it imports and exports.
    Check {
        /// The component (.wasm).
        file: PathBuf,
        /// The world: http-plugin, weather-plugin, payment-plugin, shipping-plugin, rules-plugin.
        #[arg(long)]
        world: World,
    },
}

/// Runs the CLI; errors are printed as one clear line and give a non-zero exit.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve {
            config,
            listen,
            data_dir,
        } => serve(config, Overrides { listen, data_dir }),
        Command::Plugin {
            command: PluginCommand::Check { file, world },
        } => check(file, world),
    }
}

fn serve(path: PathBuf, overrides: Overrides) -> ExitCode {
    crate::telemetry::init_tracing();
    let config = match Config::load(&path, &overrides) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    runtime.block_on(async {
        let app = match Application::build(&config).await {
            Ok(app) => app,
            Err(e) => return fail(&e),
        };
        // One line on stdout for scripts and the bench harness to wait for.
        println!("plinth listening on http://{}", app.local_addr());
        tracing::info!(addr = %app.local_addr(), plugins = config.plugins.len(), "serving");
        match app.run_until_stopped(shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        }
    })
}

fn check(file: PathBuf, world: World) -> ExitCode {
    let report = match check_component(&file, world) {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    println!("{}", file.display());
    println!("  imports:");
    for (name, kind) in &report.imports {
        println!("    {name} ({kind})");
    }
    println!("  exports:");
    for (name, kind) in &report.exports {
        println!("    {name} ({kind})");
    }
    match report.fits {
        Ok(()) => {
            println!("ok: fits world {world}");
            ExitCode::SUCCESS
        }
        Err(why) => {
            eprintln!("error: {} does not fit world {world}: {why}", file.display());
            ExitCode::FAILURE
        }
    }
}

fn fail(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::FAILURE
}
