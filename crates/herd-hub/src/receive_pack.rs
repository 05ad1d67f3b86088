//! receive-pack, in process: parse the pushed commands, index the pack into a quarantine,
//! check each update, then move the pack in and move the trunk by compare-and-swap.
//!
//! Quarantine: the pack is indexed (`git2::Indexer`, verified, thin packs completed from the
//! object store) into `objects/incoming-*/pack/`. The checks read it through a second
//! repository handle that has the quarantine as an alternate. Only an accepted update moves
//! the pack into `objects/pack/` (`.pack` first, `.idx` last, so a reader never sees an index
//! without its pack); a refused or broken push leaves nothing behind.
//!
//! The trunk moves only by `reference_matching(main, new, old)`: a push whose `old` is not the
//! current tip is a fork and gets `ng refs/heads/main non-fast-forward`, as does a forced push
//! (`new` not descending from `old`). Deletes and other refs are refused.

use std::io::Write;
use std::path::Path;

use git2::{Oid, Repository};

use crate::error::RequestError;
use crate::pkt_line::{self, Pkt, PktReader};
use crate::repo::{self, MAIN};

/// One `<old> <new> <ref>` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The tip the pusher believes the ref has.
    pub old: Oid,
    /// The tip it wants.
    pub new: Oid,
    /// The ref.
    pub refname: String,
}

/// A parsed push request.
#[derive(Debug)]
pub struct PushRequest<'a> {
    /// The ref updates.
    pub commands: Vec<Command>,
    /// Capabilities named on the first command.
    pub caps: Vec<String>,
    /// The packfile (may be empty for deletes only).
    pub pack: &'a [u8],
}

impl PushRequest<'_> {
    /// Did the client ask for side-band-64k?
    pub fn sideband(&self) -> bool {
        self.caps.iter().any(|c| c == "side-band-64k")
    }
}

/// Parses the body of `POST /git-receive-pack`.
pub fn parse(body: &[u8]) -> Result<PushRequest<'_>, RequestError> {
    let mut reader = PktReader::new(body);
    let mut commands = Vec::new();
    let mut caps = Vec::new();
    loop {
        match reader
            .next_pkt()
            .map_err(|e| RequestError::bad(format!("receive-pack: {e}")))?
        {
            None => {
                return Err(RequestError::bad(
                    "receive-pack: command list not terminated by a flush",
                ));
            }
            Some(Pkt::Flush) => break,
            Some(Pkt::Data(line)) => {
                let (cmd, line_caps) = parse_command(line)?;
                if commands.is_empty() {
                    caps = line_caps;
                }
                commands.push(cmd);
            }
            Some(other) => {
                return Err(RequestError::bad(format!(
                    "receive-pack: unexpected {other:?} in command list"
                )));
            }
        }
    }
    if commands.is_empty() {
        return Err(RequestError::bad("receive-pack: no commands"));
    }
    let pack = reader.rest();
    let needs_pack = commands.iter().any(|c| !c.new.is_zero());
    if needs_pack && !pack.starts_with(b"PACK") {
        return Err(RequestError::bad(
            "receive-pack: missing or malformed PACK after the commands",
        ));
    }
    Ok(PushRequest {
        commands,
        caps,
        pack,
    })
}

fn parse_command(line: &[u8]) -> Result<(Command, Vec<String>), RequestError> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let (cmd, caps) = match line.iter().position(|b| *b == 0) {
        Some(nul) => (
            &line[..nul],
            String::from_utf8_lossy(&line[nul + 1..])
                .split(' ')
                .map(str::to_string)
                .collect(),
        ),
        None => (line, Vec::new()),
    };
    let text = std::str::from_utf8(cmd)
        .map_err(|_| RequestError::bad("receive-pack: command is not UTF-8"))?;
    let mut parts = text.splitn(3, ' ');
    let (old, new, refname) = match (parts.next(), parts.next(), parts.next()) {
        (Some(o), Some(n), Some(r)) if o.len() == 40 && n.len() == 40 && !r.is_empty() => (o, n, r),
        _ => {
            return Err(RequestError::bad(format!(
                "receive-pack: malformed command {text:?}"
            )));
        }
    };
    let oid = |s: &str| {
        Oid::from_str(s)
            .map_err(|_| RequestError::bad(format!("receive-pack: bad object id {s:?}")))
    };
    Ok((
        Command {
            old: oid(old)?,
            new: oid(new)?,
            refname: refname.to_string(),
        },
        caps,
    ))
}

/// The result of one push.
#[derive(Debug)]
pub struct PushOutcome {
    /// Per command: the ref and `Ok` or the `ng` reason.
    pub statuses: Vec<(String, Result<(), String>)>,
    /// The trunk move, if one was accepted: (previous tip, new tip).
    pub accepted: Option<(Oid, Oid)>,
}

impl PushOutcome {
    /// The report-status response body (side-band wrapped if asked).
    pub fn report(&self, sideband: bool) -> Vec<u8> {
        let mut status = Vec::new();
        pkt_line::write(&mut status, b"unpack ok\n");
        for (refname, result) in &self.statuses {
            let line = match result {
                Ok(()) => format!("ok {refname}\n"),
                Err(reason) => format!("ng {refname} {reason}\n"),
            };
            pkt_line::write(&mut status, line.as_bytes());
        }
        pkt_line::flush(&mut status);
        if !sideband {
            return status;
        }
        let mut out = Vec::new();
        pkt_line::write_sideband(&mut out, 1, &status);
        pkt_line::flush(&mut out);
        out
    }

    /// The first refusal reason, for stats and spans.
    pub fn reject_reason(&self) -> Option<&str> {
        self.statuses
            .iter()
            .find_map(|(_, r)| r.as_ref().err().map(String::as_str))
    }
}

/// Applies a parsed push to `repo`. The caller serializes pushes.
pub fn apply(
    repo: &Repository,
    dir: &Path,
    req: &PushRequest<'_>,
    slot: Option<&str>,
) -> Result<PushOutcome, RequestError> {
    let quarantine = index_pack(repo, dir, req.pack)?;
    let view = match &quarantine {
        Some(q) => Some(view_with(dir, q.path())?),
        None => None,
    };
    let check_repo = view.as_ref().unwrap_or(repo);
    let mut statuses = Vec::new();
    let mut accepted = None;
    for cmd in &req.commands {
        let verdict = if accepted.is_some() {
            Err("one update of main per push".to_string())
        } else {
            check(repo, check_repo, cmd, slot)
        };
        let verdict = verdict.and_then(|()| {
            if let Some(q) = &quarantine {
                move_pack_in(q.path(), dir).map_err(|e| format!("storing pack: {e}"))?;
            }
            repo.reference_matching(MAIN, cmd.new, true, cmd.old, "herd push")
                .map(|_| ())
                .map_err(|_| "non-fast-forward".to_string())
        });
        if verdict.is_ok() {
            accepted = Some((cmd.old, cmd.new));
        }
        statuses.push((cmd.refname.clone(), verdict));
    }
    Ok(PushOutcome { statuses, accepted })
}

/// The policy for one update: main only, no delete, old must be the tip, fast-forward only,
/// and (with a slot) every new commit stays inside the slot directory.
fn check(
    repo: &Repository,
    view: &Repository,
    cmd: &Command,
    slot: Option<&str>,
) -> Result<(), String> {
    if cmd.refname != MAIN {
        return Err("only refs/heads/main is accepted".into());
    }
    if cmd.new.is_zero() {
        return Err("deleting main is refused".into());
    }
    let tip = repo::tip(repo).map_err(|e| format!("reading main: {}", e.message()))?;
    if cmd.old != tip {
        return Err("non-fast-forward".into());
    }
    if view.find_commit(cmd.new).is_err() {
        return Err("missing necessary objects".into());
    }
    if cmd.new != tip && !view.graph_descendant_of(cmd.new, tip).unwrap_or(false) {
        return Err("non-fast-forward".into());
    }
    if let Some(slot) = slot {
        check_slot(view, tip, cmd.new, slot)?;
    }
    Ok(())
}

fn check_slot(view: &Repository, old: Oid, new: Oid, slot: &str) -> Result<(), String> {
    let prefix = format!("{}/", slot.trim_end_matches('/'));
    let err = |e: git2::Error| format!("reading pushed commits: {}", e.message());
    let mut walk = view.revwalk().map_err(err)?;
    walk.push(new).map_err(err)?;
    walk.hide(old).map_err(err)?;
    for oid in walk {
        let commit = view.find_commit(oid.map_err(err)?).map_err(err)?;
        let parent_tree = match commit.parent(0) {
            Ok(p) => Some(p.tree().map_err(err)?),
            Err(_) => None,
        };
        let diff = view
            .diff_tree_to_tree(
                parent_tree.as_ref(),
                Some(&commit.tree().map_err(err)?),
                None,
            )
            .map_err(err)?;
        for delta in diff.deltas() {
            for path in [delta.old_file().path(), delta.new_file().path()]
                .into_iter()
                .flatten()
            {
                let path = path.to_string_lossy();
                if !path.starts_with(&prefix) {
                    return Err(format!("outside slot {slot}: {path}"));
                }
            }
        }
    }
    Ok(())
}

/// Indexes `pack` into a fresh quarantine under `objects/`; `None` for an empty pack.
fn index_pack(
    repo: &Repository,
    dir: &Path,
    pack: &[u8],
) -> Result<Option<tempfile::TempDir>, RequestError> {
    // PACK header: "PACK", version (4 bytes), object count (4 bytes, big endian).
    if pack.len() < 12 {
        return if pack.is_empty() {
            Ok(None)
        } else {
            Err(RequestError::bad("receive-pack: truncated pack header"))
        };
    }
    if u32::from_be_bytes([pack[8], pack[9], pack[10], pack[11]]) == 0 {
        return Ok(None);
    }
    let quarantine = tempfile::Builder::new()
        .prefix("incoming-")
        .tempdir_in(dir.join("objects"))
        .map_err(|e| RequestError::internal(format!("creating quarantine: {e}")))?;
    let pack_dir = quarantine.path().join("pack");
    std::fs::create_dir(&pack_dir)
        .map_err(|e| RequestError::internal(format!("creating quarantine: {e}")))?;
    let odb = repo
        .odb()
        .map_err(|e| RequestError::internal(e.message().to_string()))?;
    let mut indexer = git2::Indexer::new(Some(&odb), &pack_dir, 0o444, true)
        .map_err(|e| RequestError::internal(format!("indexer: {}", e.message())))?;
    indexer
        .write_all(pack)
        .map_err(|e| RequestError::bad(format!("receive-pack: bad pack: {e}")))?;
    indexer.commit().map_err(|e| {
        RequestError::bad(format!(
            "receive-pack: bad or truncated pack: {}",
            e.message()
        ))
    })?;
    Ok(Some(quarantine))
}

/// A second handle on the repository that also sees the quarantined objects.
fn view_with(dir: &Path, quarantine: &Path) -> Result<Repository, RequestError> {
    let view =
        Repository::open_bare(dir).map_err(|e| RequestError::internal(e.message().to_string()))?;
    {
        let odb = view
            .odb()
            .map_err(|e| RequestError::internal(e.message().to_string()))?;
        odb.add_disk_alternate(&quarantine.to_string_lossy())
            .map_err(|e| {
                RequestError::internal(format!("quarantine alternate: {}", e.message()))
            })?;
    }
    Ok(view)
}

fn move_pack_in(quarantine: &Path, dir: &Path) -> std::io::Result<()> {
    let target = dir.join("objects").join("pack");
    std::fs::create_dir_all(&target)?;
    let mut files: Vec<_> = std::fs::read_dir(quarantine.join("pack"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    // .pack (and .rev) before .idx: libgit2 and git discover packs by their index.
    files.sort_by_key(|p| p.extension().is_some_and(|x| x == "idx"));
    for file in files {
        if let Some(name) = file.file_name() {
            std::fs::rename(&file, target.join(name))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(old: &str, new: &str, r: &str, caps: &str) -> Vec<u8> {
        let mut body = Vec::new();
        let text = if caps.is_empty() {
            format!("{old} {new} {r}\n")
        } else {
            format!("{old} {new} {r}\0{caps}\n")
        };
        pkt_line::write(&mut body, text.as_bytes());
        body
    }

    #[test]
    fn parses_commands_caps_and_pack() {
        let (a, b) = ("1".repeat(40), "2".repeat(40));
        let mut body = line(&a, &b, MAIN, "report-status side-band-64k");
        pkt_line::flush(&mut body);
        body.extend_from_slice(b"PACK\0\0\0\x02\0\0\0\0");
        let req = parse(&body).unwrap();
        assert_eq!(
            req.commands,
            vec![Command {
                old: Oid::from_str(&a).unwrap(),
                new: Oid::from_str(&b).unwrap(),
                refname: MAIN.into()
            }]
        );
        assert!(req.sideband());
        assert_eq!(req.pack.len(), 12);
    }

    #[test]
    fn malformed_requests_are_400_with_a_reason() {
        let (a, b) = ("1".repeat(40), "2".repeat(40));
        let unterminated = line(&a, &b, MAIN, "");
        let mut no_pack = line(&a, &b, MAIN, "");
        pkt_line::flush(&mut no_pack);
        let mut bad_oid = line("xyz", &b, MAIN, "");
        pkt_line::flush(&mut bad_oid);
        for (body, needle) in [
            (&b"00zz"[..], "malformed pkt-line"),
            (&unterminated[..], "not terminated"),
            (&no_pack[..], "missing or malformed PACK"),
            (&bad_oid[..], "malformed command"),
            (b"0000", "no commands"),
        ] {
            let err = parse(body).unwrap_err();
            assert_eq!(err.status, 400);
            assert!(err.reason.contains(needle), "{needle}: {}", err.reason);
        }
    }
}
