//! The trunk cannot be poisoned: every push that must never land is refused with an `ng` whose
//! reason a person can act on, the trunk is unchanged, and `git fsck --strict` of the hub stays
//! clean. Each case crafts its objects byte by byte (the stock tools refuse to make most of
//! them) and pushes them over the real protocol.

mod common;

use std::path::Path;

use git2::{ObjectType, Oid, Repository, Signature};

const RECEIVE: &str = "application/x-git-receive-pack-request";

/// A local repository holding the hub's trunk, to craft objects in.
struct Crafter {
    repo: Repository,
    tip: Oid,
    _dir: tempfile::TempDir,
}

impl Crafter {
    fn new(url: &str) -> Crafter {
        let dir = tempfile::tempdir().unwrap();
        let repo = common::clone(url, &dir.path().join("c"));
        let tip = repo.head().unwrap().target().unwrap();
        Crafter {
            repo,
            tip,
            _dir: dir,
        }
    }

    fn raw(&self, kind: ObjectType, data: &[u8]) -> Oid {
        self.repo.odb().unwrap().write(kind, data).unwrap()
    }

    fn blob(&self, data: &[u8]) -> Oid {
        self.raw(ObjectType::Blob, data)
    }

    /// A tree object from (mode, name, id) entries, written as given (no sorting, no checks).
    fn tree(&self, entries: &[(&str, &str, Oid)]) -> Oid {
        let mut raw = Vec::new();
        for (mode, name, id) in entries {
            raw.extend_from_slice(mode.as_bytes());
            raw.push(b' ');
            raw.extend_from_slice(name.as_bytes());
            raw.push(0);
            raw.extend_from_slice(id.as_bytes());
        }
        self.raw(ObjectType::Tree, &raw)
    }

    /// The tip's root tree with `slot-a` replaced by `subtree`.
    fn root_with_slot(&self, base: Oid, subtree: Oid) -> Oid {
        let base_tree = self.repo.find_commit(base).unwrap().tree().unwrap();
        let mut update = git2::build::TreeUpdateBuilder::new();
        update.upsert("slot-a", subtree, git2::FileMode::Tree);
        update.create_updated(&self.repo, &base_tree).unwrap()
    }

    fn commit(&self, tree: Oid, parents: &[Oid], message: &str) -> Oid {
        let sig = Signature::new("crafter", "c@herd", &git2::Time::new(1_000, 0)).unwrap();
        let tree = self.repo.find_tree(tree).unwrap();
        let parents: Vec<_> = parents
            .iter()
            .map(|p| self.repo.find_commit(*p).unwrap())
            .collect();
        let refs: Vec<&git2::Commit<'_>> = parents.iter().collect();
        self.repo
            .commit(None, &sig, &sig, message, &tree, &refs)
            .unwrap()
    }

    /// A receive-pack body moving main from the tip to `new`, with exactly `objects`.
    fn body(&self, new: Oid, objects: &[Oid]) -> Vec<u8> {
        let odb = self.repo.odb().unwrap();
        let mut writer = herd_hub::pack::Writer::new();
        for oid in objects {
            let o = odb.read(*oid).unwrap();
            writer.object(*oid, o.kind(), o.data());
        }
        let mut body = Vec::new();
        herd_hub::pkt_line::write(
            &mut body,
            format!("{} {new} refs/heads/main\0report-status\n", self.tip).as_bytes(),
        );
        herd_hub::pkt_line::flush(&mut body);
        body.extend_from_slice(&writer.finish());
        body
    }
}

/// Pushes `body` as slot-a; returns the report-status text.
fn push(addr: std::net::SocketAddr, body: &[u8]) -> String {
    let (status, report) = common::http(
        addr,
        "POST",
        "/herd.git/git-receive-pack",
        &[("Content-Type", RECEIVE), ("x-herd-slot", "slot-a")],
        body,
    );
    assert_eq!(status, 200, "{report}");
    report
}

fn fsck(dir: &Path) {
    let out = std::process::Command::new("git")
        .args(["fsck", "--full", "--strict"])
        .current_dir(dir)
        .output()
        .expect("git on PATH");
    assert!(
        out.status.success(),
        "fsck: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every poisoned push is refused with its reason; the trunk never moves; fsck stays clean.
#[tokio::test(flavor = "multi_thread")]
async fn poisoned_pushes_are_refused_and_the_trunk_stays_clean() {
    let s = common::hub().await;
    let (url, addr) = (s.hub.url(), s.hub.addr());
    // One ordinary commit in each of two slots, so there is other work a push could wipe.
    let work = s.dir.path().to_path_buf();
    let url2 = url.clone();
    tokio::task::spawn_blocking(move || {
        let r = common::clone(&url2, &work.join("w"));
        common::commit_file(&r, "slot-a/a.txt", "a\n");
        common::push_with(&r, &[("x-herd-slot", "slot-a")]).unwrap();
        common::commit_file(&r, "slot-b/b.txt", "b\n");
        common::push_with(&r, &[("x-herd-slot", "slot-b")]).unwrap();
    })
    .await
    .unwrap();
    let before = s.hub.tip().unwrap();
    let cases = tokio::task::spawn_blocking(move || {
        let c = Crafter::new(&url);
        let old = c.repo.find_commit(c.tip).unwrap().parent_id(0).unwrap();
        let seed = c.repo.find_commit(old).unwrap().parent_id(0).unwrap_or(old);
        let file = c.blob(b"x\n");
        let mut cases: Vec<(&str, Vec<u8>, &str)> = Vec::new();

        // A merge whose first parent is an old trunk commit: its first-parent diff stays in
        // slot-a, its net effect reverts slot-b.
        let tree = c.root_with_slot(seed, c.tree(&[("100644", "m.txt", file)]));
        let merge = c.commit(tree, &[seed, c.tip], "merge-revert");
        cases.push(("merge revert", c.body(merge, &[merge, tree]), "2 parents"));

        // A merge of a new root holding only slot-a with the tip: the trunk would hold only it.
        let only = c.tree(&[("40000", "slot-a", c.tree(&[("100644", "r.txt", file)]))]);
        let root = c.commit(only, &[], "root");
        let root_merge = c.commit(only, &[root, c.tip], "root merge");
        cases.push((
            "root merge",
            c.body(root_merge, &[root_merge, root, only]),
            "parents",
        ));

        // A lone new root commit.
        cases.push(("new root", c.body(root, &[root, only]), "parents"));

        let mut entry = |label: &'static str, sub: Oid, extra: &[Oid], reason: &'static str| {
            let tree = c.root_with_slot(c.tip, sub);
            let commit = c.commit(tree, &[c.tip], label);
            let mut objects = vec![commit, tree, sub];
            objects.extend_from_slice(extra);
            cases.push((label, c.body(commit, &objects), reason));
        };
        // A symlink pointing out of the worktree.
        let target = c.blob(b"../../../etc/passwd");
        let sub = c.tree(&[("100644", "a.txt", file), ("120000", "link", target)]);
        entry("symlink", sub, &[file, target], "symbolic link");
        // A gitlink (submodule).
        let sub = c.tree(&[("100644", "a.txt", file), ("160000", "sub", c.tip)]);
        entry("gitlink", sub, &[file], "gitlink");
        // A `.git` directory holding a config (git would run its hooks).
        let config = c.blob(b"[core]\n\tfsmonitor = evil\n");
        let dotgit = c.tree(&[("100644", "config", config)]);
        let sub = c.tree(&[("40000", ".git", dotgit), ("100644", "a.txt", file)]);
        entry(".git", sub, &[dotgit, config, file], ".git");
        let sub = c.tree(&[("40000", ".GiT", dotgit), ("100644", "a.txt", file)]);
        entry(".GiT", sub, &[dotgit, config, file], ".git");
        // `..` and `.` entries.
        let sub = c.tree(&[("40000", "..", dotgit), ("100644", "a.txt", file)]);
        entry("dotdot", sub, &[dotgit, config, file], "`..`");
        let sub = c.tree(&[("40000", ".", dotgit), ("100644", "a.txt", file)]);
        entry("dot", sub, &[dotgit, config, file], "`..`");
        // A slash inside a name, and entries out of git's order.
        let sub = c.tree(&[("100644", "a/b", file)]);
        entry("slash", sub, &[file], "`/`");
        let sub = c.tree(&[("100644", "b.txt", file), ("100644", "a.txt", file)]);
        entry("unsorted", sub, &[file], "order");
        // A file entry naming an object the push does not carry (and the hub lacks), and one
        // naming a tree under a file mode.
        let ghost = Oid::from_str(&"7".repeat(40)).unwrap();
        let sub = c.tree(&[("100644", "ghost.txt", ghost)]);
        entry("missing blob", sub, &[], "missing or not a file");
        let inner = c.tree(&[("100644", "a.txt", file)]);
        let sub = c.tree(&[("100644", "x.txt", inner)]);
        entry(
            "tree as a file",
            sub,
            &[inner, file],
            "missing or not a file",
        );
        // Directories nested 300 deep (a recursion bomb for any tree walk).
        let mut deep = c.tree(&[("100644", "f", file)]);
        let mut nested = vec![deep, file];
        for _ in 0..300 {
            deep = c.tree(&[("40000", "d", deep)]);
            nested.push(deep);
        }
        entry("deep", deep, &nested, "nested deeper");
        cases
    })
    .await
    .unwrap();

    for (label, body, reason) in cases {
        let report = tokio::task::spawn_blocking(move || push(addr, &body))
            .await
            .unwrap();
        assert!(
            report.contains("ng refs/heads/main") && report.contains(reason),
            "{label}: {report:?}"
        );
        assert_eq!(s.hub.tip().unwrap(), before, "{label} moved the trunk");
    }
    let stats = s.hub.stats();
    assert_eq!(stats.rejected_by_reason.get("not-linear"), Some(&3));
    assert_eq!(stats.rejected_by_reason.get("bad-tree"), Some(&11));
    fsck(s.hub.dir());
}

/// A pack bomb — a blob declaring a terabyte in a few bytes — is refused before it is inflated.
#[tokio::test(flavor = "multi_thread")]
async fn a_pack_bomb_is_refused_before_it_is_inflated() {
    let s = common::hub().await;
    let tip = s.hub.tip().unwrap();
    let mut entry = vec![0xb0 | 0x0f]; // blob, low size bits all set, more follow
    entry.extend([0xff, 0xff, 0xff, 0xff, 0x7f]); // ≈ 2^39 bytes declared
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut z, b"tiny").unwrap();
    entry.extend(z.finish().unwrap());
    let mut pack = b"PACK\0\0\0\x02\0\0\0\x01".to_vec();
    pack.extend(entry);
    let sum = <sha1::Sha1 as sha1::Digest>::digest(&pack);
    pack.extend_from_slice(&sum);
    let new = "1".repeat(40);
    let mut body = Vec::new();
    herd_hub::pkt_line::write(
        &mut body,
        format!("{tip} {new} refs/heads/main\0report-status\n").as_bytes(),
    );
    herd_hub::pkt_line::flush(&mut body);
    body.extend(pack);
    let addr = s.hub.addr();
    let report = tokio::task::spawn_blocking(move || push(addr, &body))
        .await
        .unwrap();
    assert!(
        report.contains("ng refs/heads/main push too large") && report.contains("per-object"),
        "{report:?}"
    );
    assert_eq!(s.hub.tip().unwrap(), tip);
    assert_eq!(s.hub.stats().rejected_by_reason.get("too-large"), Some(&1));
}
