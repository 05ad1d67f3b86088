//! Git packs in memory: [`read()`] a pack into objects (resolving deltas, thin bases from a
//! lookup) keeping where each entry sits, and build one pack ([`Writer`]) from spliced entries
//! and new objects, each object once, nothing compressed twice. The hub stages pushed packs this way
//! (nothing touches the disk until an update is accepted) and leaves apply broadcast payloads
//! and flush their in-memory objects with them; [`merge::merge`] joins a leaf's flushed packs.

pub mod merge;
pub mod read;
pub mod write;

pub use read::{Entry, Limits, Object, PackError, Stored, listed, read, read_limited};
pub use write::{Indexed, Writer, write};
