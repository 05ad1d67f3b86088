//! What a tree on the trunk may hold — git fsck's rules, stricter where a herd needs it. Checked
//! on the raw bytes of every tree a push adds (libgit2 normalises modes when it parses, so the
//! raw object is read here), before the ref moves:
//!
//! - modes: regular files (`100644`, `100755`) and directories (`40000`) only — no symlink
//!   (`120000`: a link out of the worktree), no gitlink (`160000`), no zero-padded or legacy
//!   mode;
//! - names: not empty, not `.` or `..`, no `/`, `\` or NUL, and not `.git` in any spelling a
//!   checkout could resolve to it — any case, with trailing dots or spaces or an NTFS stream
//!   (`.git.`, `.git::$INDEX_ALLOCATION`), the 8.3 short name `git~1`, or with characters HFS+
//!   ignores (`.g\u{200c}it`);
//! - order: entries sorted as git sorts them (a directory's name compares as `name/`), no name
//!   twice.

use std::collections::HashSet;

/// Why a tree was refused: the entry's name (lossy UTF-8) and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeFault {
    /// The offending entry's name.
    pub name: String,
    /// What is wrong, in words a person can act on.
    pub why: &'static str,
}

const MODES: [&[u8]; 3] = [b"100644", b"100755", b"40000"];

/// Deepest directory nesting a pushed tree may have. Git itself caps it (`core.maxTreeDepth`);
/// here it also bounds the recursion of every tree walk on the hub's 2 MiB-stack threads.
pub const MAX_TREE_DEPTH: usize = 256;

/// How deep `path` (a `/`-separated directory path, `""` for the root) sits.
pub fn depth(path: &str) -> usize {
    if path.is_empty() {
        0
    } else {
        path.matches('/').count() + 1
    }
}

/// Checks one tree object's content. `Ok` lists the entries that are subtrees (name, id).
pub fn check(data: &[u8]) -> Result<(), TreeFault> {
    let mut at = 0;
    let mut previous: Option<Vec<u8>> = None;
    let mut seen: HashSet<&[u8]> = HashSet::new();
    while at < data.len() {
        let fault = |name: &[u8], why| TreeFault {
            name: String::from_utf8_lossy(name).into_owned(),
            why,
        };
        let space = data[at..]
            .iter()
            .position(|&b| b == b' ')
            .ok_or_else(|| fault(b"", "malformed tree: no mode"))?;
        let mode = &data[at..at + space];
        at += space + 1;
        let nul = data[at..]
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| fault(b"", "malformed tree: no name end"))?;
        let name = &data[at..at + nul];
        at += nul + 1;
        if data.len() < at + 20 {
            return Err(fault(name, "malformed tree: truncated object id"));
        }
        at += 20;
        if !MODES.contains(&mode) {
            return Err(fault(name, mode_reason(mode)));
        }
        if let Some(why) = name_fault(name) {
            return Err(fault(name, why));
        }
        if !seen.insert(name) {
            return Err(fault(name, "the name appears twice in one tree"));
        }
        let mut key = name.to_vec();
        if mode == b"40000" {
            key.push(b'/');
        }
        if previous.as_ref().is_some_and(|p| *p >= key) {
            return Err(fault(name, "tree entries are not in git's order"));
        }
        previous = Some(key);
    }
    Ok(())
}

fn mode_reason(mode: &[u8]) -> &'static str {
    match mode {
        b"120000" => "symbolic links are refused (mode 120000): commit the file itself",
        b"160000" => "submodules (gitlinks, mode 160000) are refused",
        b"040000" => "zero-padded tree mode 040000 (git writes 40000)",
        _ => "unsupported file mode: only 100644, 100755 and directories",
    }
}

/// Why `name` may not be a tree entry, if it may not.
pub fn name_fault(name: &[u8]) -> Option<&'static str> {
    if name.is_empty() {
        return Some("empty name");
    }
    if name == b"." || name == b".." {
        return Some("`.` and `..` are not names");
    }
    if name.contains(&b'/') || name.contains(&b'\\') || name.contains(&0) {
        return Some("a name may not hold `/`, `\\` or NUL");
    }
    if is_dotgit(name) {
        return Some("`.git` (in any spelling a checkout resolves to it) is refused");
    }
    None
}

/// `.git` as NTFS, HFS+ or a case-insensitive filesystem would see it.
fn is_dotgit(name: &[u8]) -> bool {
    let lower = name.to_ascii_lowercase();
    // NTFS: trailing dots and spaces are dropped, and `name:stream` names a stream of `name`
    // — so the stem, then any dots and spaces, then the end or a `:` (as git's fsck sees it).
    let ntfs_base = |n: &[u8], stem: &[u8]| {
        n.strip_prefix(stem).is_some_and(|rest| {
            let tail = rest.iter().position(|&b| b != b'.' && b != b' ');
            tail.is_none_or(|at| rest[at] == b':')
        })
    };
    if ntfs_base(&lower, b".git") || ntfs_base(&lower, b"git~1") {
        return true;
    }
    // HFS+: ignorable code points are dropped before comparing.
    match std::str::from_utf8(name) {
        Ok(text) => {
            let folded: String = text
                .chars()
                .filter(|c| !hfs_ignorable(*c))
                .collect::<String>()
                .to_lowercase();
            folded == ".git"
        }
        Err(_) => false,
    }
}

fn hfs_ignorable(c: char) -> bool {
    matches!(
        c,
        '\u{200c}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{206a}'..='\u{206f}' | '\u{feff}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (mode, name) in entries {
            out.extend_from_slice(mode.as_bytes());
            out.push(b' ');
            out.extend_from_slice(name);
            out.push(0);
            out.extend_from_slice(&[7; 20]);
        }
        out
    }

    #[test]
    fn ordinary_trees_pass() {
        let t = tree(&[("100644", b"a.txt"), ("40000", b"a"), ("100755", b"b")]);
        assert_eq!(check(&t), Ok(()));
        assert_eq!(check(b""), Ok(()));
    }

    #[test]
    fn links_and_odd_modes_are_refused() {
        for mode in ["120000", "160000", "040000", "100664", "644"] {
            let err = check(&tree(&[(mode, b"x")])).unwrap_err();
            assert_eq!(err.name, "x", "{mode}");
        }
    }

    #[test]
    fn dot_git_in_every_spelling_is_refused() {
        let names: [&[u8]; 15] = [
            b".git",
            b".GIT",
            b".Git",
            b".git.",
            b".git ",
            b".git. .",
            b".git::$INDEX_ALLOCATION",
            b".git.::$INDEX_ALLOCATION",
            b".git :x",
            b"git~1.:y",
            b"git~1",
            b"GIT~1",
            ".g\u{200c}it".as_bytes(),
            "\u{feff}.git".as_bytes(),
            ".gi\u{206f}T".as_bytes(),
        ];
        for n in names {
            assert!(is_dotgit(n), "{}", String::from_utf8_lossy(n));
            assert!(check(&tree(&[("40000", n)])).is_err());
        }
        for ok in [
            &b".gitignore"[..],
            b"git",
            b".github",
            b"x.git",
            b"git~2",
            b".git.x",
            b".git x:",
        ] {
            assert!(!is_dotgit(ok), "{}", String::from_utf8_lossy(ok));
        }
    }

    #[test]
    fn dots_separators_and_empty_names_are_refused() {
        for n in [&b"."[..], b"..", b"", b"a/b", b"a\\b"] {
            assert!(name_fault(n).is_some(), "{}", String::from_utf8_lossy(n));
        }
    }

    #[test]
    fn unsorted_and_duplicate_entries_are_refused() {
        let unsorted = tree(&[("100644", b"b"), ("100644", b"a")]);
        assert!(check(&unsorted).unwrap_err().why.contains("order"));
        let twice = tree(&[("100644", b"a"), ("100644", b"a")]);
        assert!(check(&twice).unwrap_err().why.contains("twice"));
        // A file and a directory of one name: different sort keys, still one name twice.
        let both = tree(&[("100644", b"a"), ("40000", b"a")]);
        assert!(check(&both).unwrap_err().why.contains("twice"));
    }

    #[test]
    fn truncated_trees_are_refused_not_panics() {
        let t = tree(&[("100644", b"a")]);
        for cut in 1..t.len() {
            assert!(check(&t[..cut]).is_err(), "cut at {cut}");
        }
    }
}
