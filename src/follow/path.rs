//! Which names `follow` may open: a plain name of a regular file directly
//! in the tail directory, after every symlink is resolved. Anything that
//! would reach outside (`..`, `/`, an absolute path, a symlink pointing
//! elsewhere, even one that dangles) is `bad_file`; a good name with no
//! file behind it is `not_found`.

use crate::wire::{ErrorCode, WireError};
use std::io::ErrorKind;
use std::path::{Component, Path, PathBuf};

fn bad_file(message: impl Into<String>) -> WireError {
    WireError::new(ErrorCode::BadFile, message)
}

/// The path to follow for `name` in `dir` (`None`: following is off).
/// The path is `dir/name`; it is re-checked with [`check`] whenever the
/// tailer reopens it.
pub fn resolve(dir: Option<&Path>, name: &str) -> Result<PathBuf, WireError> {
    let dir = dir.ok_or_else(|| bad_file("following is off: the server has no --tail-dir"))?;
    if name.contains('/') || name.contains('\0') || name == "." || name == ".." {
        return Err(bad_file(format!(
            "{name:?} is outside the tail directory; name a file in it"
        )));
    }
    if !crate::names::is_valid(name) {
        return Err(WireError::new(
            ErrorCode::BadName,
            "file names are 1-64 of A-Z a-z 0-9 _ . - (not starting with .)",
        ));
    }
    let path = dir.join(name);
    check(dir, &path, name)?;
    Ok(path)
}

/// Checks that `path` (`dir/name`) is, after symlinks, a regular file
/// directly in `dir`.
pub fn check(dir: &Path, path: &Path, name: &str) -> Result<(), WireError> {
    let not_found = || WireError::new(ErrorCode::NotFound, format!("no file {name:?}"));
    let link = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return Err(not_found()),
        Err(e) => return Err(bad_file(format!("{name:?} cannot be read: {e}"))),
    };
    let real = match std::fs::canonicalize(path) {
        Ok(real) => real,
        Err(_) if link.file_type().is_symlink() => {
            // A dangling link: refuse it outright if it points outside.
            let target = std::fs::read_link(path).map_err(|_| not_found())?;
            let mut parts = target.components();
            let inside = matches!(
                (parts.next(), parts.next()),
                (Some(Component::Normal(_)), None)
            );
            return Err(if inside {
                not_found()
            } else {
                bad_file(format!("{name:?} points outside the tail directory"))
            });
        }
        Err(_) => return Err(not_found()),
    };
    if real.parent() != Some(dir) {
        return Err(bad_file(format!(
            "{name:?} points outside the tail directory"
        )));
    }
    match std::fs::metadata(&real) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err(bad_file(format!("{name:?} is not a regular file"))),
        Err(_) => Err(not_found()),
    }
}

/// Opens `path` for reading and checks what was opened, not what the
/// name pointed to a moment before: a regular file (opened non-blocking,
/// so a FIFO swapped in cannot hang the tailer) whose real path, as the
/// kernel reports it for the descriptor, is directly in `dir`.
pub fn open_checked(dir: &Path, path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let outside = || std::io::Error::new(ErrorKind::PermissionDenied, "outside the tail directory");
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::new(
            ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let real = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))?;
    if real.parent() != Some(dir) {
        return Err(outside());
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn escapes_are_bad_files_and_missing_files_not_found() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("tail");
        std::fs::create_dir(&dir).unwrap();
        let dir = dir.canonicalize().unwrap();
        std::fs::write(base.path().join("secret"), "x").unwrap();
        std::fs::write(dir.join("app.log"), "x").unwrap();
        symlink("../secret", dir.join("out")).unwrap();
        symlink("/etc/passwd", dir.join("abs")).unwrap();
        symlink("/nonexistent/x", dir.join("dangling")).unwrap();
        symlink("app.log", dir.join("alias")).unwrap();
        std::fs::create_dir(dir.join("sub")).unwrap();
        let code = |name: &str| resolve(Some(&dir), name).map_err(|e| e.code);
        assert!(code("app.log").is_ok());
        assert!(code("alias").is_ok());
        for bad in [
            "../secret",
            "..",
            "/etc/passwd",
            "out",
            "abs",
            "dangling",
            "sub",
        ] {
            assert_eq!(code(bad), Err(ErrorCode::BadFile), "{bad}");
        }
        assert_eq!(code("missing.log"), Err(ErrorCode::NotFound));
        assert_eq!(code("a b"), Err(ErrorCode::BadName));
        assert_eq!(
            resolve(None, "app.log").map_err(|e| e.code),
            Err(ErrorCode::BadFile)
        );
    }

    #[test]
    fn open_checked_refuses_fifos_without_blocking_and_files_outside() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().canonicalize().unwrap().join("tail");
        std::fs::create_dir(&dir).unwrap();
        let fifo = dir.join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            assert!(open_checked(&dir, &fifo).is_err());
        }
        std::fs::write(base.path().join("secret"), "x").unwrap();
        symlink("../secret", dir.join("out")).unwrap();
        assert!(open_checked(&dir, &dir.join("out")).is_err());
        std::fs::write(dir.join("in.log"), "x").unwrap();
        assert!(open_checked(&dir, &dir.join("in.log")).is_ok());
    }
}
