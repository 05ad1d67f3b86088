//! Crash hygiene: what a hub killed mid-write leaves in its repository, removed before the
//! hub serves again. The hub is the only writer of its directory, so anything temporary found
//! at start belongs to a dead process:
//!
//! - `objects/pack/.tmp-herd-*`: a pack or index this hub was writing (it writes under a
//!   temporary name and renames, so a half-written file never looks like a pack);
//! - `objects/incoming-*`, `objects/tmp_objdir-incoming-*`: quarantines of a stock
//!   `git receive-pack` run on the directory;
//! - `*.lock` under `refs/` and `packed-refs.lock`, `HEAD.lock`, `config.lock`: a ref update
//!   cut short. Left in place, a stale `refs/heads/main.lock` refuses every push for ever.
//!
//! A pack installed whose ref update then never happened is complete and harmless (its objects
//! are unreachable until a repack drops them); it is left alone.

use std::io;
use std::path::Path;

/// What [`sweep`] removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// Temporary pack and index files.
    pub temp_packs: u64,
    /// Quarantine directories.
    pub quarantines: u64,
    /// Lock files.
    pub locks: u64,
}

impl Swept {
    /// Anything at all?
    pub fn any(&self) -> bool {
        self.temp_packs + self.quarantines + self.locks > 0
    }
}

/// Removes a dead hub's leftovers from the bare repository at `dir` (missing `dir`: nothing).
pub fn sweep(dir: &Path) -> io::Result<Swept> {
    let mut swept = Swept::default();
    if !dir.join("HEAD").is_file() {
        return Ok(swept);
    }
    let objects = dir.join("objects");
    for entry in read_dir(&objects.join("pack"))? {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(".tmp-herd-")
        {
            std::fs::remove_file(entry.path())?;
            swept.temp_packs += 1;
        }
    }
    for entry in read_dir(&objects)? {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("incoming-") || name.starts_with("tmp_objdir-incoming-") {
            std::fs::remove_dir_all(entry.path())?;
            swept.quarantines += 1;
        }
    }
    for name in ["HEAD.lock", "packed-refs.lock", "config.lock"] {
        if std::fs::remove_file(dir.join(name)).is_ok() {
            swept.locks += 1;
        }
    }
    swept.locks += sweep_locks(&dir.join("refs"))?;
    Ok(swept)
}

fn sweep_locks(dir: &Path) -> io::Result<u64> {
    let mut n = 0;
    for entry in read_dir(dir)? {
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            n += sweep_locks(&path)?;
        } else if path.extension().is_some_and(|e| e == "lock") {
            std::fs::remove_file(&path)?;
            n += 1;
        }
    }
    Ok(n)
}

/// The entries of `dir` (none when it does not exist).
fn read_dir(dir: &Path) -> io::Result<Vec<std::fs::DirEntry>> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries.collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}
