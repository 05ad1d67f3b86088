//! Which paths a leaf may write: relative, inside its slot directory, no `..`, at most
//! [`MAX_PATHS`] per task. Checked before anything is recorded or written.

use std::path::Path;

use crate::error::LeafError;

/// Most paths one task may write.
pub const MAX_PATHS: usize = 16;

/// Validates `paths` for a leaf whose slot directory is `slot`.
pub fn validate(slot: &str, paths: &[String]) -> Result<(), LeafError> {
    let invalid = |path: &str, reason: String| {
        Err(LeafError::InvalidPath {
            path: path.to_string(),
            reason,
        })
    };
    if paths.is_empty() {
        return invalid("", "a task writes at least one path".into());
    }
    if paths.len() > MAX_PATHS {
        return invalid(
            &paths[MAX_PATHS],
            format!("{} paths, at most {MAX_PATHS} per task", paths.len()),
        );
    }
    for path in paths {
        let p = Path::new(path);
        if path.is_empty() || p.is_absolute() || path.starts_with('/') {
            return invalid(path, "must be a relative path".into());
        }
        if path.contains('\\') || path.contains('\0') {
            return invalid(path, "must not contain '\\' or NUL".into());
        }
        // Split the text itself: `Path::components` silently drops `.` segments.
        if path
            .split('/')
            .any(|seg| seg.is_empty() || seg == "." || seg == "..")
        {
            return invalid(path, "must not contain '..', '.' or empty segments".into());
        }
        let mut parts = p.components();
        let first = parts
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .unwrap_or_default();
        if first != slot || parts.next().is_none() {
            return invalid(path, format!("must lie inside this leaf's slot {slot}/"));
        }
        if p.components().any(|c| c.as_os_str() == ".git") {
            return invalid(path, "must not touch .git".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(paths: &[&str]) -> Result<(), String> {
        validate(
            "slot-1",
            &paths.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn accepts_paths_inside_the_slot() {
        assert!(check(&["slot-1/a.txt", "slot-1/deep/b.txt"]).is_ok());
    }

    #[test]
    fn refuses_escapes_absolute_foreign_and_too_many() {
        for bad in [
            "../x",
            "/abs",
            "slot-2/a.txt",
            "slot-1/../slot-2/a",
            "slot-1",
            "slot-1/./a",
            "slot-1/.git/config",
            "",
        ] {
            assert!(check(&[bad]).is_err(), "{bad:?} accepted");
        }
        let many: Vec<String> = (0..17).map(|i| format!("slot-1/f{i}")).collect();
        let err = validate("slot-1", &many).unwrap_err().to_string();
        assert!(err.contains("17 paths"), "{err}");
    }
}
