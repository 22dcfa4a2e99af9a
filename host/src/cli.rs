//! The `plinth` command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::auth::Auth;
use crate::catalog::Catalog;
use crate::config::{Config, Overrides};
use crate::domain::World;
use crate::runtime::check::check_component;
use crate::startup::{shutdown_signal, Application};
use crate::store::{Role, Storage};

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
        /// This is a demo: accept the secrets published with the demo configuration
        /// (refused otherwise). Also `PLINTH_DEMO=1`.
        #[arg(long, env = "PLINTH_DEMO", value_parser = clap::builder::BoolishValueParser::new())]
        demo: bool,
    },
    /// Plugin tools.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// Load the demo catalog: realistic, deterministic products (server stopped).
    Seed {
        /// The configuration file.
        #[arg(long, short, default_value = "plinth.toml")]
        config: PathBuf,
        /// Data directory (overrides [server].data_dir).
        #[arg(long, env = "PLINTH_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// How many products.
        #[arg(long, default_value_t = 1200)]
        count: usize,
        /// Do nothing if the catalog already has products.
        #[arg(long)]
        if_empty: bool,
        /// Give every product this stock instead of the demo's 0-250 (e.g. for load tests).
        #[arg(long)]
        stock: Option<u64>,
    },
    /// Apply the PostgreSQL schema migrations this binary carries, then exit (`plinth
    /// serve` applies them too; this runs them alone, e.g. before a rolling deploy).
    Migrate {
        /// The configuration file.
        #[arg(long, short, default_value = "plinth.toml")]
        config: PathBuf,
    },
    /// Storage tools.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// Account administration (with the server stopped: the database is single-process).
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create an account; the password is read from stdin (never from the command line).
    Create {
        /// The username.
        name: String,
        /// Give the account the admin role.
        #[arg(long)]
        admin: bool,
        /// The configuration file (for the data directory and argon2 parameters).
        #[arg(long, short, default_value = "plinth.toml")]
        config: PathBuf,
        /// Data directory (overrides [server].data_dir).
        #[arg(long, env = "PLINTH_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Copy an install's data from sled to PostgreSQL (the server stopped), checking the
    /// counts of each area: `--from sled:DATA_DIR/db --to postgres://user@host/db`.
    Copy {
        /// `sled:DIR`: the sled database (the data directory's `db`).
        #[arg(long)]
        from: String,
        /// The PostgreSQL URL (`postgres://…`; a `postgres:` prefix is allowed too).
        #[arg(long)]
        to: String,
        /// Write into a target that already holds data (rows already there are kept).
        #[arg(long)]
        into_non_empty: bool,
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
    // Everything any command writes (database, index, cache) is private to this user.
    crate::data_dir::restrict_umask();
    match cli.command {
        Command::Serve {
            config,
            listen,
            data_dir,
            demo,
        } => serve(config, Overrides { listen, data_dir }, demo),
        Command::Plugin {
            command: PluginCommand::Check { file, world },
        } => check(file, world),
        Command::Seed {
            config,
            data_dir,
            count,
            if_empty,
            stock,
        } => seed(
            config,
            data_dir,
            SeedOptions {
                count,
                if_empty,
                stock,
            },
        ),
        Command::Migrate { config } => migrate(config),
        Command::Store {
            command:
                StoreCommand::Copy {
                    from,
                    to,
                    into_non_empty,
                },
        } => store_copy(&from, &to, into_non_empty),
        Command::User {
            command:
                UserCommand::Create {
                    name,
                    admin,
                    config,
                    data_dir,
                },
        } => create_user(config, data_dir, name, admin),
    }
}

fn store_copy(from: &str, to: &str, into_non_empty: bool) -> ExitCode {
    let Some(dir) = from.strip_prefix("sled:") else {
        return fail(&"--from must be sled:DIR (the data directory's db)");
    };
    // `postgres:postgres://…` (as the issue spells it) or the URL itself.
    let url = to
        .strip_prefix("postgres:")
        .filter(|u| u.starts_with("postgres"))
        .unwrap_or(to)
        .to_string();
    if !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
        return fail(&"--to must be a postgres:// URL");
    }
    let dir = PathBuf::from(dir);
    if !dir.is_dir() {
        return fail(&format!("{} is not a directory", dir.display()));
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    runtime.block_on(async {
        let target = crate::config::PostgresConfig {
            url,
            pool_size: 2,
            acquire_timeout: std::time::Duration::from_secs(10),
        };
        let pg = match crate::store::postgres::Pg::connect(&target).await {
            Ok(pg) => pg,
            Err(e) => return fail(&e),
        };
        let report = match crate::store::copy::sled_to_postgres(&dir, &pg, into_non_empty).await {
            Ok(report) => report,
            Err(e) => return fail(&format!("{e} (is the server running? stop it first)")),
        };
        println!("{:<16} {:>10} {:>10}", "area", "sled", "postgres");
        let mut short = Vec::new();
        for c in &report {
            println!("{:<16} {:>10} {:>10}", c.area, c.source, c.target);
            if c.target < c.source {
                short.push(c.area);
            }
        }
        if !short.is_empty() {
            return fail(&format!(
                "the target holds fewer rows than the source in: {}",
                short.join(", ")
            ));
        }
        println!("copied to {}", crate::store::postgres::redact(&target.url));
        ExitCode::SUCCESS
    })
}

fn migrate(path: PathBuf) -> ExitCode {
    let overrides = Overrides {
        listen: None,
        data_dir: None,
    };
    let config = match Config::load(&path, &overrides) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let crate::config::StorageBackend::Postgres(pg) = &config.storage.backend else {
        return fail(&"[storage] backend is sled, which needs no migrations");
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    runtime.block_on(async {
        let db = match crate::store::postgres::Pg::connect(pg).await {
            Ok(db) => db,
            Err(e) => return fail(&e),
        };
        match crate::store::postgres::migrate(&db, None).await {
            Ok(applied) if applied.is_empty() => {
                println!(
                    "the database schema is up to date (version {})",
                    crate::store::postgres::schema_version()
                );
                ExitCode::SUCCESS
            }
            Ok(applied) => {
                println!("applied migrations {applied:?}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        }
    })
}

fn create_user(path: PathBuf, data_dir: Option<PathBuf>, name: String, admin: bool) -> ExitCode {
    let overrides = Overrides {
        listen: None,
        data_dir,
    };
    let config = match Config::load(&path, &overrides) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let password = match read_password() {
        Ok(p) => p,
        Err(e) => return fail(&format!("cannot read the password from stdin: {e}")),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    if let Err(e) = crate::data_dir::prepare(&config.server.data_dir) {
        return fail(&format!(
            "data directory {}: {e}",
            config.server.data_dir.display()
        ));
    }
    runtime.block_on(async {
        let storage = match Storage::open(&config.server.data_dir.join("db"), &config.storage).await {
            Ok(s) => s,
            Err(e) => {
                return fail(&format!(
                    "{e} (is the server running? stop it first: the database is single-process)"
                ))
            }
        };
        let auth = match Auth::new(&storage, &config.auth) {
            Ok(a) => a,
            Err(e) => return fail(&e),
        };
        let roles = if admin {
            vec![Role::Admin, Role::User]
        } else {
            vec![Role::User]
        };
        match auth.create_user(&name, password, roles).await {
            Ok(user) => {
                let roles: Vec<&str> = user.roles.iter().map(|r| r.as_str()).collect();
                println!(
                    "created user {} (id {}) with roles {}",
                    user.username,
                    user.id,
                    roles.join(", ")
                );
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        }
    })
}

struct SeedOptions {
    count: usize,
    if_empty: bool,
    stock: Option<u64>,
}

fn seed(path: PathBuf, data_dir: Option<PathBuf>, opts: SeedOptions) -> ExitCode {
    let SeedOptions {
        count,
        if_empty,
        stock,
    } = opts;
    let overrides = Overrides {
        listen: None,
        data_dir,
    };
    let config = match Config::load(&path, &overrides) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    if let Err(e) = crate::data_dir::prepare(&config.server.data_dir) {
        return fail(&format!(
            "data directory {}: {e}",
            config.server.data_dir.display()
        ));
    }
    runtime.block_on(async {
        let storage = match Storage::open(&config.server.data_dir.join("db"), &config.storage).await {
            Ok(s) => s,
            Err(e) => return fail(&format!("{e} (is the server running? stop it first)")),
        };
        let dir = config.server.data_dir.join("search");
        let catalog = match Catalog::open(&storage, &dir).await {
            Ok(c) => std::sync::Arc::new(c),
            Err(e) => return fail(&e),
        };
        let total = |catalog: std::sync::Arc<Catalog>| async move { catalog.count().await.unwrap_or(0) };
        let had = total(catalog.clone()).await;
        if if_empty && had > 0 {
            println!("catalog already has {had} products; not seeding");
            return ExitCode::SUCCESS;
        }
        let mut added = 0;
        let mut products = crate::catalog::seed::demo_products(count);
        if let Some(stock) = stock {
            products.iter_mut().for_each(|p| p.stock = stock);
        }
        let mut chunks = products.into_iter().peekable();
        while chunks.peek().is_some() {
            let chunk: Vec<_> = chunks.by_ref().take(5_000).collect();
            match catalog.create_many(chunk).await {
                Ok(n) => added += n,
                Err(e) => return fail(&e),
            }
        }
        println!(
            "seeded {added} products ({} in the catalog)",
            total(catalog).await
        );
        ExitCode::SUCCESS
    })
}

/// One line from stdin; hidden when stdin is a terminal.
fn read_password() -> std::io::Result<String> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        return rpassword::prompt_password("password: ");
    }
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

fn serve(path: PathBuf, overrides: Overrides, demo: bool) -> ExitCode {
    crate::telemetry::init_tracing();
    let config = match Config::load(&path, &overrides) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    if demo {
        tracing::warn!("demo mode: the secrets published with the demo configuration are accepted");
    } else if let Err(e) = config.refuse_demo_secrets() {
        return fail(&e);
    }
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
