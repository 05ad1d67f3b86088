//! I6: nothing half-done is left behind — no lock files, temporary packs or quarantine
//! directories in the hub repository or in any leaf's clone.

use std::path::Path;

use super::violation;
use crate::report::Violation;

/// Names that mean an operation did not finish or clean up.
fn leftover(name: &str, is_dir: bool) -> bool {
    if is_dir {
        return name.starts_with("incoming-")
            || name.starts_with("quarantine")
            || name.starts_with("tmp_objdir");
    }
    name.ends_with(".lock")
        || name.starts_with("tmp_pack_")
        || name.starts_with("tmp_idx_")
        || name.starts_with(".tmp-pack")
}

/// I6 over every given root (hub repo, leaf dirs).
pub fn no_leftovers<'a>(roots: impl IntoIterator<Item = &'a Path>) -> Vec<Violation> {
    let mut out = Vec::new();
    for root in roots {
        walk(root, &mut out);
    }
    out
}

fn walk(dir: &Path, out: &mut Vec<Violation>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in rd.flatten() {
        let path = entry.path();
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        let name = entry.file_name().to_string_lossy().into_owned();
        if leftover(&name, is_dir) {
            out.push(violation("I6", format!("leftover {}", path.display())));
        }
        if is_dir {
            walk(&path, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_files_and_temp_packs_are_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("objects/pack")).unwrap();
        std::fs::write(dir.path().join("objects/pack/pack-1.pack"), b"").unwrap();
        assert!(no_leftovers([dir.path()]).is_empty());
        std::fs::write(dir.path().join("objects/pack/tmp_pack_abc"), b"").unwrap();
        std::fs::write(dir.path().join("index.lock"), b"").unwrap();
        let v = no_leftovers([dir.path()]);
        assert_eq!(v.len(), 2, "{v:?}");
    }
}
