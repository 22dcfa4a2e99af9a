//! `cargo xtask demo` and `cargo xtask test`.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result};

use crate::plugins;
use crate::workspace::{display_command, run, Workspace};

/// The demo's server configuration, relative to the workspace root.
const DEMO_CONFIG: &str = "examples/plinth.toml";

/// `cargo xtask demo [ARGS…]`: plugins, host, then `plinth serve --demo --config
/// examples/plinth.toml ARGS…` in the foreground (`--demo`: the example's published
/// fallback secrets are accepted). `PLINTH_DATA_DIR` defaults to `target/demo-data`.
pub fn demo(ws: &Workspace, args: &[String]) -> Result<()> {
    let config = ws.root.join(DEMO_CONFIG);
    if !config.is_file() {
        anyhow::bail!("the demo configuration {} does not exist", config.display());
    }
    plugins::build(ws)?;
    let bin = ws.build_host()?;

    let data_dir: Option<PathBuf> = match std::env::var_os("PLINTH_DATA_DIR") {
        Some(_) => None,
        None => {
            let dir = ws.target_dir.join("demo-data");
            std::fs::create_dir_all(&dir).with_context(|| format!("could not create {}", dir.display()))?;
            eprintln!("PLINTH_DATA_DIR={}", ws.display_path(&dir));
            Some(dir)
        }
    };
    // A catalog to search: the deterministic demo products, loaded once.
    let mut seed = Command::new(&bin);
    seed.current_dir(&ws.root)
        .args(["seed", "--if-empty", "--count", "1200", "--config", DEMO_CONFIG]);
    if let Some(dir) = &data_dir {
        seed.env("PLINTH_DATA_DIR", dir);
    }
    run(&mut seed)?;

    let mut cmd = Command::new(&bin);
    cmd.current_dir(&ws.root)
        .arg("serve")
        .arg("--demo")
        .arg("--config")
        .arg(DEMO_CONFIG)
        .args(args);
    if let Some(dir) = &data_dir {
        cmd.env("PLINTH_DATA_DIR", dir);
    }
    exec(cmd)
}

/// `cargo xtask test [ARGS…]`: plugins, [`setup`], then `cargo test --release ARGS…` at the
/// root (the default members).
pub fn test(ws: &Workspace, args: &[String]) -> Result<()> {
    plugins::build(ws)?;
    setup(ws)?;
    run(ws.cargo().args(["test", "--release"]).args(args))?;
    if args.is_empty() {
        // The black-box suite once more, on PostgreSQL: the same tests, one helper switch
        // (`tests/api/helpers.rs`). The store unit tests above already ran on both.
        if postgres_reachable() || std::env::var("PLINTH_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
            run(ws
                .cargo()
                .args(["test", "--release", "--test", "api"])
                .env("PLINTH_TEST_BACKEND", "postgres"))?;
        } else {
            eprintln!(
                "\n*** PostgreSQL not reachable: the black-box pass on PostgreSQL is SKIPPED \
                 (set PLINTH_TEST_DATABASE_URL; PLINTH_REQUIRE_POSTGRES=1 makes this a failure) ***\n"
            );
        }
        // The plugins' own unit tests (their pure request/response code), natively.
        let mut cmd = ws.cargo();
        cmd.args(["test", "--release"]);
        for plugin in plugins::discover(ws) {
            cmd.args(["-p", &plugin.package]);
        }
        run(&mut cmd)?;
    }
    Ok(())
}

/// Whether the tests' PostgreSQL (`PLINTH_TEST_DATABASE_URL`, else 127.0.0.1:5432)
/// accepts a connection.
fn postgres_reachable() -> bool {
    use std::net::ToSocketAddrs;
    let url = std::env::var("PLINTH_TEST_DATABASE_URL").unwrap_or_default();
    // postgres://user:password@host:port/database?… → host:port
    let rest = url.split_once("://").map_or("", |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let target = match host_port {
        "" => "127.0.0.1:5432".to_string(),
        h if h.contains(':') => h.to_string(),
        h => format!("{h}:5432"),
    };
    target
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .is_some_and(|addr| {
            std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(2)).is_ok()
        })
}

/// One preparation step of the test environment.
struct SetupStep {
    name: &'static str,
    run: fn(&Workspace) -> Result<()>,
}

/// Everything the tests need besides the plugins, in order. Add a step here (e.g. a
/// Python venv under `target/` for a fake payment API) and `cargo xtask test` runs it.
/// Steps should be idempotent and quick when there is nothing to do.
const SETUP_STEPS: &[SetupStep] = &[
    SetupStep {
        name: "localstripe (PyPI) in target/venv-localstripe",
        run: localstripe,
    },
    SetupStep {
        name: "oidc-provider (npm) in tests/oidc/node_modules",
        run: oidc_provider,
    },
];

/// The OpenID Provider the social-login tests run against (node-oidc-provider, pinned
/// in tests/oidc/package.json and package-lock.json): `npm ci` there, again only when
/// the lockfile is newer than the installed tree.
fn oidc_provider(ws: &Workspace) -> Result<()> {
    let dir = ws.root.join("tests").join("oidc");
    let lock = dir.join("package-lock.json");
    let installed = dir.join("node_modules").join(".package-lock.json");
    let modified = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if let (Some(done), Some(wanted)) = (modified(&installed), modified(&lock)) {
        if done >= wanted && dir.join("node_modules/oidc-provider/package.json").is_file() {
            return Ok(());
        }
    }
    for tool in ["node", "npm"] {
        let ok = Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        anyhow::ensure!(
            ok,
            "{tool} is needed to run the OpenID Provider of the social-login tests (Node.js 18+)"
        );
    }
    run(Command::new("npm")
        .current_dir(&dir)
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"]))?;
    Ok(())
}

/// The Stripe emulator the checkout tests charge against, pinned.
const LOCALSTRIPE: &str = "localstripe==1.15.10";

/// A Python venv under target/ with localstripe; kept between runs.
fn localstripe(ws: &Workspace) -> Result<()> {
    let venv = ws.target_dir.join("venv-localstripe");
    let bin = venv.join("bin").join("localstripe");
    if bin.is_file() {
        return Ok(());
    }
    let python = ["python3", "python"]
        .into_iter()
        .find(|p| {
            Command::new(p)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .context("python3 is needed to run localstripe (the Stripe emulator the tests use)")?;
    run(Command::new(python).args(["-m", "venv"]).arg(&venv))?;
    run(Command::new(venv.join("bin").join("pip")).args([
        "install",
        "--quiet",
        "--disable-pip-version-check",
        LOCALSTRIPE,
    ]))?;
    anyhow::ensure!(bin.is_file(), "{} was not installed", bin.display());
    Ok(())
}

/// Runs every [`SETUP_STEPS`] entry, naming the one that failed.
pub fn setup(ws: &Workspace) -> Result<()> {
    for step in SETUP_STEPS {
        eprintln!("setup: {}", step.name);
        (step.run)(ws).with_context(|| format!("test setup step `{}` failed", step.name))?;
    }
    Ok(())
}

/// Replaces this process with `cmd` (Unix), or runs it and exits with its status.
fn exec(mut cmd: Command) -> Result<()> {
    let shown = display_command(&cmd);
    eprintln!("$ {shown}");
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let err = cmd.exec();
        Err(err).with_context(|| format!("failed to exec `{shown}`"))
    }
    #[cfg(not(unix))]
    {
        let status = cmd
            .status()
            .with_context(|| format!("failed to start `{shown}`"))?;
        std::process::exit(status.code().unwrap_or(1));
    }
}
