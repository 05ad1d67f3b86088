//! Process-wide libgit2 settings herd runs with, applied once by [`crate::Hub::start`] and by
//! the leaves' transport registration ([`crate::client::register`]).
//!
//! - **No re-hash on read** (`strict_hash_verification(false)`): by default libgit2 hashes
//!   every object it reads back; profiling a 16-leaf trial put that at ~10 % of all CPU. Git
//!   itself does not re-hash on read: objects are verified when a pack is indexed (the hub's
//!   quarantine indexer, a leaf's payload reader) and are content-addressed from then on.
//! - **No existence check on object creation** (`strict_object_creation(false)`): trees and
//!   commits herd builds name objects it has just read or written.
//! - **Bounded caches and mappings**, since one process may hold hundreds of repositories (a
//!   trial's leaves): the parsed-object cache (shared by every repository of the process) is
//!   capped at 64 MiB, pack windows mapped into memory at 256 MiB in total, and open pack files
//!   at 1024 (libgit2's 64-bit defaults are 256 MiB, 8 GiB and unlimited: 256 leaves with
//!   dozens of packs each would pass a 20,000-descriptor limit).

use std::sync::Once;

/// Applies the settings (idempotent).
pub fn tune() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        git2::opts::strict_hash_verification(false);
        git2::opts::strict_object_creation(false);
        // SAFETY: these only set libgit2's global limits; called once, before this process opens
        // a repository through herd.
        unsafe {
            let _ = git2::opts::set_cache_max_size(64 << 20);
            let _ = git2::opts::set_mwindow_mapped_limit(256 << 20);
            let _ = git2::opts::set_mwindow_file_limit(1024);
        }
    });
}
