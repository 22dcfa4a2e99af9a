//! The data directory is private to the server's user: directories 0700, files 0600.
//! sled and tantivy create their files themselves, so the process umask (077, set by
//! [`prepare`]) is what keeps those private; an existing directory with looser
//! permissions (made by an older version, or by hand) is tightened at start-up.

use std::path::Path;

/// Makes every file and directory this process creates from now on private to its
/// user. Process-wide, which is what a server wants; set again by [`prepare`] so that a
/// server started in-process (tests, embedding) gets it without going through `main`.
pub fn restrict_umask() {
    #[cfg(unix)]
    // SAFETY: umask only swaps the process's file-creation mask and cannot fail.
    unsafe {
        libc::umask(0o077);
    }
}

/// Creates `dir` (0700, with any missing parents) or, when it exists, removes group
/// and other permissions from it and everything under it (symlinks are not followed),
/// logging how many entries were changed.
pub fn prepare(dir: &Path) -> std::io::Result<()> {
    restrict_umask();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let changed = tighten(dir)?;
        if changed > 0 {
            tracing::warn!(
                dir = %dir.display(),
                entries = changed,
                "the data directory was open to other users: group and other permissions removed"
            );
        }
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)?;
    Ok(())
}

/// Drops the group and other bits (and setuid/setgid/sticky) of `path` and, for a
/// directory, of everything under it; returns how many entries changed.
#[cfg(unix)]
fn tighten(path: &Path) -> std::io::Result<usize> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() {
        // Its target may be anywhere; the operator made it and owns that decision.
        return Ok(0);
    }
    let mode = meta.permissions().mode() & 0o7777;
    let mut changed = 0;
    if mode & !0o700 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o700))?;
        changed += 1;
    }
    if meta.is_dir() {
        for entry in std::fs::read_dir(path)? {
            changed += tighten(&entry?.path())?;
        }
    }
    Ok(changed)
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn tightens_an_existing_tree_and_creates_new_dirs_private() {
        let root = std::env::temp_dir().join(format!("plinth-datadir-{}", uuid::Uuid::new_v4()));
        let sub = root.join("db");
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join("conf"), b"x").unwrap();
        for (p, m) in [(&root, 0o755), (&sub, 0o775), (&sub.join("conf"), 0o644)] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
        }
        prepare(&root).unwrap();
        assert_eq!(mode(&root), 0o700);
        assert_eq!(mode(&sub), 0o700);
        assert_eq!(mode(&sub.join("conf")), 0o600);
        let fresh = root.join("a/b");
        prepare(&fresh).unwrap();
        assert_eq!(mode(&root.join("a")), 0o700);
        assert_eq!(mode(&fresh), 0o700);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
