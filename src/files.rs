//! Files the plugin writes for the user: saved plans (`plan --out`) and imported specs
//! (`import -o`). Both may hold secrets (a saved plan keeps the values apply sends), so each is
//! written the same way: never through a symbolic link (refused, nothing written), into a
//! temporary file of the same directory created owner-only (0600) and renamed over the target
//! once it is whole, so a reader sees the old file or the new one and never a part, and an
//! existing file's looser mode is not kept.

use std::io::Write;
use std::path::{Path, PathBuf};

/// A file that cannot or must not be written, with the flag that named it.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("{flag} {}: {message}", path.display())]
pub struct FileError {
    /// `--out`, `-o`.
    pub flag: &'static str,
    pub path: PathBuf,
    pub message: String,
    #[help]
    pub help: Option<String>,
}

/// Refuses a target that is a symbolic link (dangling or not) or a directory; a missing file is
/// fine. Checked before any work, and again by [`write_private`] right before the rename.
pub fn check_target(flag: &'static str, path: &Path) -> Result<(), FileError> {
    let err = |message: String, help: &str| FileError {
        flag,
        path: path.to_path_buf(),
        message,
        help: Some(help.to_string()),
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            let to = std::fs::read_link(path)
                .map(|t| format!(" (to {})", t.display()))
                .unwrap_or_default();
            Err(err(
                format!(
                    "is a symbolic link{to}: refusing to write through it, nothing was written"
                ),
                "give the path of a regular file (the link's target, if that is where it should go), or remove the link",
            ))
        }
        Ok(meta) if meta.is_dir() => Err(err(
            "is a directory, nothing was written".into(),
            "give the path of a file",
        )),
        _ => Ok(()),
    }
}

/// Writes `contents` to `path` atomically and owner-only: a temporary file created in the same
/// directory with mode 0600 (never following a link: it must not exist yet), synced, then
/// renamed over `path`. A link at `path` is refused; on any failure the temporary file is
/// removed and `path` is left as it was.
pub fn write_private(flag: &'static str, path: &Path, contents: &[u8]) -> Result<(), FileError> {
    check_target(flag, path)?;
    let io_err = |what: &str, e: std::io::Error| FileError {
        flag,
        path: path.to_path_buf(),
        message: format!(
            "cannot {what}: {}, nothing was written",
            crate::spec::io_text(&e)
        ),
        help: None,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let (tmp, mut file) = create_temporary(&dir, &name).map_err(|e| io_err("create it", e))?;
    let written = (|| -> std::io::Result<()> {
        file.write_all(contents)?;
        file.sync_all()?;
        drop(file);
        // Re-checked right before the rename: a link that appeared meanwhile is refused
        // (the rename would replace the link itself, never write through it, all the same).
        if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(std::io::Error::other("symlink"));
        }
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return match check_target(flag, path) {
            Err(refusal) => Err(refusal),
            Ok(()) => Err(io_err("write it", e)),
        };
    }
    // The rename is durable once the directory is synced; best effort.
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// A new file `.NAME.tmp-PID-N` in `dir`, mode 0600, created exclusively (`O_EXCL` never
/// follows a link).
fn create_temporary(dir: &Path, name: &str) -> std::io::Result<(PathBuf, std::fs::File)> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let mut last = None;
    for _ in 0..100 {
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let tmp = dir.join(format!(".{name}.tmp-{}-{n}-{nanos}", std::process::id()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
        {
            Ok(file) => {
                // The umask can only take bits away; make sure of 0600 all the same.
                file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
                return Ok((tmp, file));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no temporary file name was free")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_new_file_is_owner_only_and_no_temporary_file_stays() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        write_private("--out", &path, b"{}\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"{}\n");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(entries(dir.path()), vec!["plan.json"]);
    }

    #[test]
    fn an_existing_0644_file_is_replaced_by_a_0600_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        std::fs::write(&path, "old contents, longer than the new ones").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let before = std::fs::metadata(&path).unwrap();
        write_private("--out", &path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(mode(&path), 0o600);
        // Renamed over, not rewritten in place: another inode.
        use std::os::unix::fs::MetadataExt;
        assert_ne!(std::fs::metadata(&path).unwrap().ino(), before.ino());
        assert_eq!(entries(dir.path()), vec!["plan.json"]);
    }

    #[test]
    fn a_symbolic_link_is_refused_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, "keep").unwrap();
        let link = dir.path().join("plan.json");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = write_private("--out", &link, b"secret").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("--out "), "{text}");
        assert!(
            text.contains("plan.json: is a symbolic link (to "),
            "{text}"
        );
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
        assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
        // A dangling link (its target would be created) is refused too.
        let dangling = dir.path().join("dangling.json");
        std::os::unix::fs::symlink(dir.path().join("created"), &dangling).unwrap();
        assert!(write_private("-o", &dangling, b"secret").is_err());
        assert!(!dir.path().join("created").exists());
        assert_eq!(
            entries(dir.path()),
            vec!["dangling.json", "elsewhere", "plan.json"]
        );
    }

    #[test]
    fn a_directory_or_a_missing_directory_is_an_error_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let err = write_private("--out", dir.path(), b"x").unwrap_err();
        assert!(err.to_string().contains("is a directory"), "{err}");
        let missing = dir.path().join("no/such/plan.json");
        let err = write_private("--out", &missing, b"x").unwrap_err();
        assert!(err.to_string().contains("cannot create it"), "{err}");
        assert!(entries(dir.path()).is_empty());
    }
}
