//! Where the workspace is, how to call cargo, and how to run child commands loudly.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// The workspace as `cargo metadata --no-deps` describes it.
#[derive(Debug)]
pub struct Workspace {
    /// Absolute workspace root (the directory of the root `Cargo.toml`).
    pub root: PathBuf,
    /// Absolute target directory (honours `CARGO_TARGET_DIR` and `.cargo/config.toml`).
    pub target_dir: PathBuf,
    /// Workspace member packages.
    pub packages: Vec<Package>,
    cargo: OsString,
}

#[derive(Debug, Deserialize)]
struct Metadata {
    workspace_root: PathBuf,
    target_directory: PathBuf,
    packages: Vec<Package>,
}

#[derive(Debug, Deserialize)]
pub struct Package {
    pub name: String,
    pub manifest_path: PathBuf,
    pub targets: Vec<Target>,
}

#[derive(Debug, Deserialize)]
pub struct Target {
    pub name: String,
    pub kind: Vec<String>,
}

impl Workspace {
    /// Finds the workspace this xtask belongs to and reads its metadata.
    pub fn discover() -> Result<Self> {
        // `cargo run` sets CARGO to the cargo binary that launched us; prefer it so the same
        // toolchain builds everything.
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let root_guess = manifest_dir
            .parent()
            .context("xtask's manifest directory has no parent")?;
        let mut cmd = Command::new(&cargo);
        cmd.current_dir(root_guess)
            .args(["metadata", "--format-version", "1", "--no-deps"]);
        let output = cmd
            .output()
            .with_context(|| format!("failed to run `{}`", display_command(&cmd)))?;
        if !output.status.success() {
            bail!(
                "`{}` failed ({}):\n{}",
                display_command(&cmd),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim_end()
            );
        }
        let metadata: Metadata = serde_json::from_slice(&output.stdout)
            .context("could not parse the output of `cargo metadata`")?;
        Ok(Self {
            root: metadata.workspace_root,
            target_dir: metadata.target_directory,
            packages: metadata.packages,
            cargo,
        })
    }

    /// A `cargo` command running at the workspace root.
    pub fn cargo(&self) -> Command {
        let mut cmd = Command::new(&self.cargo);
        cmd.current_dir(&self.root);
        cmd
    }

    /// Path of a host binary built with the release profile.
    pub fn release_bin(&self, name: &str) -> PathBuf {
        self.target_dir
            .join("release")
            .join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
    }

    /// `cargo build --release -p plinth`.
    pub fn build_host(&self) -> Result<PathBuf> {
        run(self.cargo().args(["build", "--release", "-p", "plinth"]))?;
        let bin = self.release_bin("plinth");
        if !bin.is_file() {
            bail!(
                "`cargo build -p plinth` succeeded but {} does not exist",
                bin.display()
            );
        }
        Ok(bin)
    }

    /// `path` relative to the workspace root when it is inside it (for messages).
    pub fn display_path<'a>(&self, path: &'a Path) -> std::path::Display<'a> {
        path.strip_prefix(&self.root).unwrap_or(path).display()
    }
}

/// Runs `cmd` with inherited stdio after echoing it; a non-zero exit is an error.
pub fn run(cmd: &mut Command) -> Result<()> {
    let shown = display_command(cmd);
    eprintln!("$ {shown}");
    let status = cmd
        .status()
        .with_context(|| format!("failed to start `{shown}`"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status})");
    }
    Ok(())
}

/// A shell-like rendering of `cmd` (program and arguments, quoted where needed).
pub fn display_command(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|arg| shell_quote(&arg.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Quotes `arg` for a POSIX shell if it contains anything but plain characters.
pub fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_when_needed() {
        assert_eq!(shell_quote("--release"), "--release");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn displays_commands() {
        let mut cmd = Command::new("cargo");
        cmd.args(["test", "--", "name with space"]);
        assert_eq!(display_command(&cmd), "cargo test -- 'name with space'");
    }
}
