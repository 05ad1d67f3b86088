//! Process-wide libgit2 settings herd runs with, applied once by [`crate::Hub::start`] and by
//! the leaves' transport registration ([`crate::client::register`]).
//!
//! - **No re-hash on read** (`strict_hash_verification(false)`): by default libgit2 hashes
//!   every object it reads back; profiling a 16-leaf trial put that at ~10 % of all CPU. Git
//!   itself does not re-hash on read: objects are verified when a pack is indexed (the hub's
//!   quarantine indexer, a leaf's payload reader) and are content-addressed from then on.
//! - **No existence check on object creation** (`strict_object_creation(false)`): trees and
//!   commits herd builds name objects it has just read or written.

use std::sync::Once;

/// Applies the settings (idempotent).
pub fn tune() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        git2::opts::strict_hash_verification(false);
        git2::opts::strict_object_creation(false);
    });
}
