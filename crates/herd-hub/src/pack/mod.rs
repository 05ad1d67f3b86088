//! Git packs in memory: [`read`] a pack into objects (resolving deltas, thin bases from a
//! lookup) and [`write`] objects as a delta-free pack. The hub stages pushed packs this way
//! (nothing touches the disk until an update is accepted) and leaves apply broadcast payloads
//! and flush their in-memory objects with them.

pub mod read;
pub mod write;

pub use read::{Object, PackError, read};
pub use write::write;
