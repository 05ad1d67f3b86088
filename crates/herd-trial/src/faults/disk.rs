//! F11's disk: the target leaf's directory on its own small tmpfs (mounted before the leaf
//! opens), filled to the last byte while the fault holds and freed after it. Mounting needs
//! root; without it the leaf's ENOSPC fail point ([`herd_leaf::Leaf::fail_writes`]) stands in
//! (its task writes fail as on a full disk; its ledger and pack writes do not).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use herd_leaf::LeafError;

/// Can this process mount a tmpfs (root)? If not, F11 uses the leaf's fail point.
pub(crate) fn can_mount() -> bool {
    // SAFETY: geteuid(2) has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The tmpfs size: room for a leaf's clone and ledger through a long trial.
pub(crate) const TMPFS_MIB: u32 = 128;

/// A tmpfs mounted on a leaf's directory for the trial.
pub(crate) struct Tmpfs {
    dir: PathBuf,
    mounted: bool,
}

impl Tmpfs {
    /// Mounts a [`TMPFS_MIB`] MiB tmpfs on `dir` (created if missing).
    pub(crate) fn mount(dir: &Path) -> std::io::Result<Tmpfs> {
        std::fs::create_dir_all(dir)?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={TMPFS_MIB}m"), "tmpfs"])
            .arg(dir)
            .output()?;
        if !out.status.success() {
            return Err(std::io::Error::other(format!(
                "mount -t tmpfs on {}: {}",
                dir.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(Tmpfs {
            dir: dir.to_path_buf(),
            mounted: true,
        })
    }

    /// Unmounts it; with `keep`, its contents are copied into the directory underneath first
    /// (a kept run's state stays whole).
    pub(crate) fn release(mut self, keep: bool) -> std::io::Result<()> {
        let copy = self.dir.with_extension("tmpfs-copy");
        if keep {
            run(Command::new("cp").arg("-a").arg(&self.dir).arg(&copy))?;
        }
        run(Command::new("umount").arg("-l").arg(&self.dir))?;
        // Unmounted: nothing left for the drop to do (on any error above, it unmounts).
        self.mounted = false;
        if keep {
            // The mount point is a plain directory again: move the copy's contents in.
            for entry in std::fs::read_dir(&copy)? {
                let entry = entry?;
                std::fs::rename(entry.path(), self.dir.join(entry.file_name()))?;
            }
            std::fs::remove_dir(&copy)?;
        }
        Ok(())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

fn run(cmd: &mut Command) -> std::io::Result<()> {
    let out = cmd.output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Fills the filesystem holding `dir` to the last byte; returns the filler file.
pub(crate) fn fill(dir: &Path) -> std::io::Result<PathBuf> {
    let filler = dir.join("disk-full.filler");
    let mut f = std::fs::File::create(&filler)?;
    let chunk = vec![0u8; 64 << 10];
    while f.write_all(&chunk).is_ok() {}
    while f.write_all(&[0u8]).is_ok() {}
    Ok(filler)
}

/// Did `e` fail for want of space (ENOSPC from git, the filesystem, or SQLite)?
pub(crate) fn is_disk_full(e: &LeafError) -> bool {
    let text = e.to_string();
    text.contains("No space left on device") || text.contains("database or disk is full")
}
