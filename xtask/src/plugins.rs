//! `cargo xtask plugins`: build every plugin component and collect them in
//! `target/plugins/<crate_name>.wasm`.
//!
//! Plugins are the workspace members under `plugins/` and `tests/plugins/` that have a
//! `cdylib` target (so `plugins/sdk`, a plain library, is not one). They are built in one
//! cargo invocation for `wasm32-wasip2` with the `plugin` profile, which makes each one a
//! component at `target/wasm32-wasip2/plugin/<crate_name>.wasm`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::workspace::{run, Package, Workspace};

pub const WASM_TARGET: &str = "wasm32-wasip2";
pub const PROFILE: &str = "plugin";
/// Directories (relative to the workspace root) whose packages may be plugins.
const PLUGIN_DIRS: &[&str] = &["plugins", "tests/plugins"];

/// A plugin package of the workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plugin {
    /// Cargo package name, e.g. `hostile-loop`.
    pub package: String,
    /// File stem of the built component, e.g. `hostile_loop`.
    pub artifact: String,
}

/// Directory holding the collected components.
pub fn output_dir(ws: &Workspace) -> PathBuf {
    ws.target_dir.join("plugins")
}

/// The plugin packages of the workspace, sorted by package name.
pub fn discover(ws: &Workspace) -> Vec<Plugin> {
    let mut plugins: Vec<Plugin> = ws
        .packages
        .iter()
        .filter_map(|pkg| as_plugin(&ws.root, pkg))
        .collect();
    plugins.sort_by(|a, b| a.package.cmp(&b.package));
    plugins
}

/// `Some` when `pkg` lives under one of [`PLUGIN_DIRS`] and has a `cdylib` target.
fn as_plugin(root: &Path, pkg: &Package) -> Option<Plugin> {
    let dir = pkg.manifest_path.parent()?;
    let rel = dir.strip_prefix(root).ok()?;
    if !PLUGIN_DIRS
        .iter()
        .any(|d| rel.starts_with(d) && rel != Path::new(d))
    {
        return None;
    }
    let lib = pkg
        .targets
        .iter()
        .find(|t| t.kind.iter().any(|k| k == "cdylib"))?;
    Some(Plugin {
        package: pkg.name.clone(),
        artifact: lib.name.replace('-', "_"),
    })
}

/// Builds all plugins and copies them to [`output_dir`]; prints what it built and returns
/// the paths of the copies.
pub fn build(ws: &Workspace) -> Result<Vec<PathBuf>> {
    let plugins = discover(ws);
    if plugins.is_empty() {
        println!(
            "no plugin packages (cdylib crates under {}) in the workspace: nothing to build",
            PLUGIN_DIRS.join("/ or ")
        );
        return Ok(Vec::new());
    }
    ensure_target_installed()?;

    let mut cmd = ws.cargo();
    cmd.args(["build", "--profile", PROFILE, "--target", WASM_TARGET]);
    for plugin in &plugins {
        cmd.args(["-p", &plugin.package]);
    }
    run(&mut cmd)?;

    let build_dir = ws.target_dir.join(WASM_TARGET).join(PROFILE);
    let out_dir = output_dir(ws);
    fs::create_dir_all(&out_dir).with_context(|| format!("could not create {}", out_dir.display()))?;
    let mut built = Vec::with_capacity(plugins.len());
    for plugin in plugins {
        let file = format!("{}.wasm", plugin.artifact);
        let src = build_dir.join(&file);
        if !src.is_file() {
            bail!(
                "cargo built package `{}` but {} is missing (is its crate-type \"cdylib\"?)",
                plugin.package,
                src.display()
            );
        }
        let dst = out_dir.join(&file);
        copy_atomically(&src, &dst)?;
        let size = fs::metadata(&dst).map(|m| m.len()).unwrap_or(0);
        println!(
            "built plugin {:<20} -> {} ({})",
            plugin.package,
            ws.display_path(&dst),
            human_size(size)
        );
        built.push(dst);
    }
    Ok(built)
}

/// Copies through a temporary file and a rename, so a server reading `dst` never sees a
/// half-written component.
fn copy_atomically(src: &Path, dst: &Path) -> Result<()> {
    let tmp = dst.with_extension("wasm.tmp");
    fs::copy(src, &tmp).with_context(|| format!("could not copy {} to {}", src.display(), tmp.display()))?;
    fs::rename(&tmp, dst).with_context(|| format!("could not move {} to {}", tmp.display(), dst.display()))
}

/// Runs `rustup target add wasm32-wasip2` unless rustup lists it as installed. Without
/// rustup (a distro toolchain), says so and lets cargo report a missing target itself.
fn ensure_target_installed() -> Result<()> {
    let listed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    let output = match listed {
        Ok(output) if output.status.success() => output,
        Ok(output) => {
            eprintln!(
                "warning: `rustup target list --installed` failed ({}); assuming {WASM_TARGET} is available",
                output.status
            );
            return Ok(());
        }
        Err(err) => {
            eprintln!("warning: could not run rustup ({err}); assuming {WASM_TARGET} is available");
            return Ok(());
        }
    };
    let installed = String::from_utf8_lossy(&output.stdout);
    if installed.lines().any(|line| line.trim() == WASM_TARGET) {
        return Ok(());
    }
    run(Command::new("rustup").args(["target", "add", WASM_TARGET]))
}

fn human_size(bytes: u64) -> String {
    if bytes < 1024 {
        format!("{bytes} B")
    } else if bytes < 1024 * 1024 {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    } else {
        format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace::Target;

    fn package(name: &str, dir: &str, kinds: &[&str]) -> Package {
        Package {
            name: name.into(),
            manifest_path: PathBuf::from(format!("/ws/{dir}/Cargo.toml")),
            targets: vec![Target {
                name: name.into(),
                kind: kinds.iter().map(|k| k.to_string()).collect(),
            }],
        }
    }

    #[test]
    fn finds_cdylibs_under_plugin_dirs() {
        let root = Path::new("/ws");
        let hello = as_plugin(root, &package("hello", "plugins/hello", &["cdylib"]));
        assert_eq!(
            hello,
            Some(Plugin {
                package: "hello".into(),
                artifact: "hello".into()
            })
        );
        let hostile = as_plugin(
            root,
            &package("hostile-loop", "tests/plugins/hostile-loop", &["cdylib"]),
        );
        assert_eq!(hostile.map(|p| p.artifact), Some("hostile_loop".into()));
    }

    #[test]
    fn skips_libraries_and_other_members() {
        let root = Path::new("/ws");
        assert_eq!(
            as_plugin(root, &package("plinth-sdk", "plugins/sdk", &["lib"])),
            None
        );
        assert_eq!(as_plugin(root, &package("plinth", "host", &["cdylib"])), None);
        assert_eq!(as_plugin(root, &package("tests", "tests", &["lib"])), None);
        assert_eq!(
            as_plugin(root, &package("odd", "plugins-extra/odd", &["cdylib"])),
            None
        );
    }

    #[test]
    fn sizes_are_human() {
        assert_eq!(human_size(10), "10 B");
        assert_eq!(human_size(2048), "2.0 KiB");
        assert_eq!(human_size(3 * 1024 * 1024), "3.0 MiB");
    }
}
