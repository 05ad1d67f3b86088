//! Keeps a leaf's own packs few. Every flush writes one small pack ([`crate::worker`]); libgit2
//! keeps each pack it has read from open for as long as the repository is, so a leaf that only
//! ever added packs held one more open file (and mapped index) every few hundred KiB of trunk —
//! a 30-minute soak at N = 16 went from 177 to 417 open files.
//!
//! After each flush the newest packs are merged geometrically: while the packs newer than one
//! add up to at least half of it, they are merged into it ([`herd_hub::pack::merge`]: entries
//! streamed from file to file as they are, nothing inflated or compressed, no pack held in
//! memory). Each pack is then more than twice the
//! size of all newer ones together, so a leaf holds about log2(trunk / flush) packs of its own
//! and every byte is copied about that many times. The clone's pack is never merged (it may
//! hold offset deltas). The caller reopens the repository after a merge so libgit2 lets go of
//! the removed files.

use std::path::Path;

use herd_hub::pack::merge::{MergeError, merge};

/// A merged pack is not grown past this: beyond it a leaf adds one pack per this many bytes.
pub const MAX_MERGED: u64 = 64 << 20;

/// How many of the newest packs (sizes oldest first) to merge now: 0 or at least 2.
pub fn due(sizes: &[u64]) -> usize {
    let mut k = 1;
    let mut newer = match sizes.last() {
        Some(s) => *s,
        None => return 0,
    };
    while k < sizes.len() {
        let older = sizes[sizes.len() - 1 - k];
        if newer * 2 < older || newer + older > MAX_MERGED {
            break;
        }
        newer += older;
        k += 1;
    }
    if k >= 2 { k } else { 0 }
}

/// Merges what [`due`] names among `flushed` ((name, bytes), oldest first) in `dir`: installs
/// the merged pack, removes the merged ones and updates `flushed`. Returns whether anything was
/// merged (the repository must then be reopened). On error nothing was removed.
pub fn settle(dir: &Path, flushed: &mut Vec<(String, u64)>) -> Result<bool, MergeError> {
    let sizes: Vec<u64> = flushed.iter().map(|(_, s)| *s).collect();
    let k = due(&sizes);
    if k == 0 {
        return Ok(false);
    }
    let from = flushed.len() - k;
    let names: Vec<String> = flushed[from..].iter().map(|(n, _)| n.clone()).collect();
    let merged = merge(dir, &names)?;
    for name in names.iter().filter(|n| **n != merged.name) {
        // The index first: readers find a pack by its index.
        for ext in ["idx", "pack"] {
            let _ = std::fs::remove_file(dir.join(format!("pack-{name}.{ext}")));
        }
    }
    flushed.truncate(from);
    flushed.push((merged.name, merged.bytes));
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_newest_packs_geometrically() {
        assert_eq!(due(&[]), 0);
        assert_eq!(due(&[500]), 0);
        assert_eq!(due(&[500, 520]), 2);
        assert_eq!(due(&[1020, 500]), 0, "a half-size pack waits for the next");
        assert_eq!(due(&[1020, 500, 510]), 3);
        assert_eq!(due(&[5000, 1000, 500, 510]), 3, "the large pack stays");
        assert_eq!(due(&[MAX_MERGED, 600, 600]), 2, "never past the cap");
    }

    #[test]
    fn pack_count_stays_logarithmic() {
        let mut sizes: Vec<u64> = Vec::new();
        for _ in 0..1000 {
            sizes.push(512);
            let k = due(&sizes);
            if k > 0 {
                let merged = sizes.split_off(sizes.len() - k).iter().sum();
                sizes.push(merged);
            }
            assert!(sizes.len() <= 12, "{sizes:?}");
        }
        assert_eq!(sizes.iter().sum::<u64>(), 512 * 1000);
    }
}
