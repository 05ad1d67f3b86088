//! One test per invariant: a valid history passes, and each violating edit is named exactly.

use std::path::{Path, PathBuf};

use git2::{Oid, Repository, Signature};
use herd_bus::KvRecord;
use herd_check::{Artifacts, HistoryEvent, HubFacts, Op, Phase, Verdict, check};
use serde_json::json;

/// A small valid run: two leaves (slot-0, slot-1), two tasks each, all closed.
struct Run {
    _dir: tempfile::TempDir,
    out: PathBuf,
    repo: Repository,
    events: Vec<HistoryEvent>,
    kv_tasks: Vec<KvRecord>,
    kv_claims: Vec<KvRecord>,
    hub: HubFacts,
    commits: Vec<(String, Oid)>, // (task, oid)
}

fn ev(op: Op, phase: Phase, leaf: &str, task: &str, t: u64) -> HistoryEvent {
    let mut e = HistoryEvent::new(op, phase, leaf, &format!("slot-{}", &leaf[5..]), t);
    e.task = Some(task.to_string());
    e
}

fn kv(
    key: &str,
    revision: u64,
    operation: &str,
    value: serde_json::Value,
    created_ms: u64,
) -> KvRecord {
    KvRecord {
        key: key.into(),
        revision,
        operation: operation.into(),
        value,
        created_ms,
        marker_reason: None,
    }
}

fn commit_file(
    repo: &Repository,
    author: &str,
    path: &str,
    body: &str,
    task: &str,
    parents: &[Oid],
) -> Oid {
    let mut builder = match parents.first() {
        Some(p) => repo
            .treebuilder(Some(&repo.find_commit(*p).unwrap().tree().unwrap()))
            .unwrap(),
        None => repo.treebuilder(None).unwrap(),
    };
    // Nested paths: build "dir/file" as a subtree.
    let (dir, file) = path.split_once('/').unwrap_or(("", path));
    let blob = repo.blob(body.as_bytes()).unwrap();
    if dir.is_empty() {
        builder.insert(file, blob, 0o100644).unwrap();
    } else {
        let existing = builder.get(dir).unwrap().map(|e| e.id());
        let mut sub = repo
            .treebuilder(existing.map(|id| repo.find_tree(id).unwrap()).as_ref())
            .unwrap();
        sub.insert(file, blob, 0o100644).unwrap();
        builder.insert(dir, sub.write().unwrap(), 0o040000).unwrap();
    }
    let tree = repo.find_tree(builder.write().unwrap()).unwrap();
    let sig = Signature::now(author, &format!("{author}@herd")).unwrap();
    let parents: Vec<_> = parents
        .iter()
        .map(|p| repo.find_commit(*p).unwrap())
        .collect();
    let parent_refs: Vec<_> = parents.iter().collect();
    let msg = format!("{author}: {task}\n\nHerd-Claim: {task}@1\n");
    repo.commit(None, &sig, &sig, &msg, &tree, &parent_refs)
        .unwrap()
}

impl Run {
    fn valid() -> Run {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().to_path_buf();
        let repo = Repository::init_bare(out.join("state/hub")).unwrap();
        let seed = commit_file(&repo, "hub", "README", "seed\n", "seed", &[]);
        let mut tip = seed;
        let (mut events, mut kv_tasks, mut kv_claims, mut commits) =
            (vec![], vec![], vec![], vec![]);
        let mut t = 0;
        let mut rev = 0;
        for k in 0..2 {
            for leaf in ["leaf-0", "leaf-1"] {
                let task = format!("{leaf}.t{k}");
                let slot = format!("slot-{}", &leaf[5..]);
                t += 10;
                rev += 1;
                events.push(ev(Op::Open, Phase::Ok, leaf, &task, t));
                kv_tasks.push(kv(
                    &task,
                    rev,
                    "put",
                    json!({"state": "open", "leaf": leaf}),
                    t,
                ));
                let mut claim = ev(Op::Claim, Phase::Ok, leaf, &task, t + 1);
                claim.claim_rev = Some(1);
                events.push(claim);
                kv_claims.push(kv(
                    &task,
                    rev,
                    "put",
                    json!({"leaf": leaf, "task": task, "ttl_secs": 60}),
                    t + 1,
                ));
                let oid = commit_file(
                    &repo,
                    leaf,
                    &format!("{slot}/{task}.txt"),
                    &task,
                    &task,
                    &[tip],
                );
                tip = oid;
                let mut push = ev(Op::Commit, Phase::Invoke, leaf, &task, t + 2);
                push.claim_rev = Some(1);
                events.push(push);
                let mut c = ev(Op::Commit, Phase::Ok, leaf, &task, t + 2);
                c.claim_rev = Some(1);
                c.oid = Some(oid.to_string());
                events.push(c);
                commits.push((task.clone(), oid));
                events.push(ev(Op::Close, Phase::Ok, leaf, &task, t + 3));
                rev += 1;
                kv_tasks.push(kv(
                    &task,
                    rev,
                    "put",
                    json!({"state": "closed", "leaf": leaf}),
                    t + 3,
                ));
                kv_claims.push(kv(&task, rev, "del", serde_json::Value::Null, t + 3));
                for observer in ["leaf-0", "leaf-1"] {
                    let mut p = HistoryEvent::new(
                        Op::Pull,
                        Phase::Ok,
                        observer,
                        &format!("slot-{}", &observer[5..]),
                        t + 4,
                    );
                    p.oid = Some(oid.to_string());
                    p.outcome = Some("pulled".into());
                    events.push(p);
                }
            }
        }
        repo.reference("refs/heads/main", tip, true, "trial")
            .unwrap();
        repo.set_head("refs/heads/main").unwrap();
        let hub = HubFacts {
            commits_landed: 4,
            seed_commits: 1,
        };
        Run {
            _dir: dir,
            out,
            repo,
            events,
            kv_tasks,
            kv_claims,
            hub,
            commits,
        }
    }

    /// A successful claim (epoch 1, as every fixture commit's trailer names) of `task` by
    /// `leaf`, so a commit added by a test is not also an I8 finding.
    fn claimed(&mut self, leaf: &str, task: &str) {
        let mut claim = ev(Op::Claim, Phase::Ok, leaf, task, 1);
        claim.claim_rev = Some(1);
        self.events.push(claim);
    }

    fn ledger_states(&self, leaf: &str) -> Vec<(String, String)> {
        (0..2)
            .map(|k| (format!("{leaf}.t{k}"), "closed".to_string()))
            .collect()
    }

    fn write(&self) -> Artifacts {
        let lines = |items: Vec<String>| items.join("\n") + "\n";
        let out = &self.out;
        std::fs::write(
            out.join("events.jsonl"),
            lines(
                self.events
                    .iter()
                    .map(|e| serde_json::to_string(e).unwrap())
                    .collect(),
            ),
        )
        .unwrap();
        std::fs::write(
            out.join("kv-tasks.jsonl"),
            lines(
                self.kv_tasks
                    .iter()
                    .map(|r| serde_json::to_string(r).unwrap())
                    .collect(),
            ),
        )
        .unwrap();
        std::fs::write(
            out.join("kv-claims.jsonl"),
            lines(
                self.kv_claims
                    .iter()
                    .map(|r| serde_json::to_string(r).unwrap())
                    .collect(),
            ),
        )
        .unwrap();
        std::fs::write(
            out.join("hub.json"),
            serde_json::to_string(&self.hub).unwrap(),
        )
        .unwrap();
        if !out.join("plan.json").exists() {
            std::fs::write(
                out.join("plan.json"),
                r#"{"tasks_per_leaf": {"leaf-0": 2, "leaf-1": 2}}"#,
            )
            .unwrap();
        }
        for leaf in ["leaf-0", "leaf-1"] {
            let dir = out.join("state/leaves").join(leaf);
            std::fs::create_dir_all(&dir).unwrap();
            if !dir.join("ledger.sqlite").exists() {
                write_ledger(&dir.join("ledger.sqlite"), &self.ledger_states(leaf));
            }
        }
        Artifacts::in_dir(out)
    }

    fn set_main(&self, oid: Oid) {
        self.repo
            .reference("refs/heads/main", oid, true, "test")
            .unwrap();
    }

    fn tip(&self) -> Oid {
        self.repo.refname_to_id("refs/heads/main").unwrap()
    }
}

fn write_ledger(path: &Path, states: &[(String, String)]) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS tasks (id TEXT PRIMARY KEY, state TEXT NOT NULL)",
    )
    .unwrap();
    for (id, state) in states {
        conn.execute(
            "INSERT OR REPLACE INTO tasks (id, state) VALUES (?1, ?2)",
            [id, state],
        )
        .unwrap();
    }
}

/// Runs the checker and returns the (invariant, message) pairs.
fn violations(run: &Run) -> Vec<(String, String)> {
    let report = check(&run.write());
    assert_ne!(
        report.verdict,
        Verdict::Inconclusive,
        "missing: {:?}",
        report.missing
    );
    report
        .violations
        .into_iter()
        .map(|v| (v.invariant, v.message))
        .collect()
}

fn only(run: &Run, invariant: &str, needle: &str) {
    let v = violations(run);
    assert!(!v.is_empty(), "expected a {invariant} violation");
    for (inv, msg) in &v {
        assert_eq!(inv, invariant, "unexpected extra violation: {msg}");
    }
    assert!(
        v.iter().any(|(_, m)| m.contains(needle)),
        "no {invariant} violation names {needle}: {v:?}"
    );
}

#[test]
fn a_valid_history_passes_every_invariant() {
    let run = Run::valid();
    let report = check(&run.write());
    assert_eq!(report.violations, vec![]);
    assert_eq!(report.verdict, Verdict::Pass);
    assert_eq!(report.summary_line(), "history check: PASS (13 invariants)");
}

#[test]
fn i1_a_close_recorded_twice() {
    let mut run = Run::valid();
    run.events
        .push(ev(Op::Close, Phase::Ok, "leaf-1", "leaf-1.t0", 999));
    only(&run, "I1", "task leaf-1.t0 was closed 2 times");
}

#[test]
fn i1_and_i7_a_task_never_closed() {
    let mut run = Run::valid();
    run.events
        .retain(|e| !(e.op == Op::Close && e.task.as_deref() == Some("leaf-0.t1")));
    let v = violations(&run);
    assert_eq!(v.len(), 2, "{v:?}");
    assert!(v.contains(&(
        "I1".to_string(),
        "task leaf-0.t1 was opened but never closed".to_string()
    )));
    // I7 says where it stopped: after its commit, with the bus holding it closed.
    assert!(
        v.iter().any(|(i, m)| i == "I7"
            && m.starts_with("task leaf-0.t1 is stuck: last step commit ok by leaf-0")
            && m.ends_with("the bus says closed")),
        "{v:?}"
    );
}

#[test]
fn i8_a_push_from_a_lapsed_holder() {
    // leaf-1 claimed leaf-0.t0 (epoch 2) before leaf-0's push under epoch 1 began: a fencing
    // hub refuses that push; one that landed is named.
    let mut run = Run::valid();
    let began = run
        .events
        .iter()
        .find(|e| e.op == Op::Commit && e.task.as_deref() == Some("leaf-0.t0"))
        .map(|e| e.t_ns)
        .unwrap();
    let mut reclaim = ev(Op::Claim, Phase::Ok, "leaf-1", "leaf-0.t0", began - 1);
    reclaim.claim_rev = Some(2);
    run.events.push(reclaim);
    only(&run, "I8", "leaf-1 held it with epoch 2");
}

#[test]
fn i8_an_epoch_the_author_never_held() {
    let mut run = Run::valid();
    for e in run.events.iter_mut().filter(|e| e.op == Op::Claim) {
        e.claim_rev = Some(7);
    }
    let v = violations(&run);
    assert_eq!(v.len(), 4, "one per trunk commit: {v:?}");
    assert!(
        v.iter()
            .all(|(i, m)| i == "I8" && m.contains("which no claim of")),
        "{v:?}"
    );
}

#[test]
fn i1b_overlapping_claims() {
    let mut run = Run::valid();
    run.kv_claims
        .retain(|r| !(r.key == "leaf-0.t0" && r.operation == "del"));
    run.kv_claims.push(kv(
        "leaf-0.t0",
        100,
        "put",
        json!({"leaf": "leaf-1", "task": "leaf-0.t0", "ttl_secs": 60}),
        12,
    ));
    only(&run, "I1b", "task leaf-0.t0");
}

#[test]
fn i2_a_merge_commit_on_the_trunk() {
    let mut run = Run::valid();
    let side = commit_file(
        &run.repo,
        "leaf-0",
        "slot-0/side.txt",
        "side",
        "leaf-0.side",
        &[run.commits[0].1],
    );
    let merge = commit_file(
        &run.repo,
        "leaf-0",
        "slot-0/merge.txt",
        "m",
        "leaf-0.merge",
        &[run.tip(), side],
    );
    run.set_main(merge);
    // Account for the two commits so only the merge itself is the finding.
    for (task, oid) in [("leaf-0.side", side), ("leaf-0.merge", merge)] {
        run.claimed("leaf-0", task);
        let mut c = ev(Op::Commit, Phase::Ok, "leaf-0", task, 500);
        c.oid = Some(oid.to_string());
        run.events.push(c);
    }
    run.hub.commits_landed = 6;
    only(&run, "I2", &format!("merge commit {merge}"));
}

#[test]
fn i2_an_extra_ref() {
    let run = Run::valid();
    run.repo
        .reference("refs/heads/side", run.tip(), true, "test")
        .unwrap();
    only(&run, "I2", "unexpected ref refs/heads/side");
}

#[test]
fn i3_a_commit_outside_its_slot() {
    let mut run = Run::valid();
    let oid = commit_file(
        &run.repo,
        "leaf-0",
        "slot-1/intruder.txt",
        "x",
        "leaf-0.t9",
        &[run.tip()],
    );
    run.set_main(oid);
    run.claimed("leaf-0", "leaf-0.t9");
    let mut c = ev(Op::Commit, Phase::Ok, "leaf-0", "leaf-0.t9", 900);
    c.oid = Some(oid.to_string());
    run.events.push(c);
    run.hub.commits_landed += 1;
    only(
        &run,
        "I3",
        "changes slot-1/intruder.txt outside its slot slot-0",
    );
}

#[test]
fn i4_a_reported_commit_missing_from_the_trunk() {
    let mut run = Run::valid();
    let lost = commit_file(
        &run.repo,
        "leaf-1",
        "slot-1/lost.txt",
        "x",
        "leaf-1.t7",
        &[run.tip()],
    );
    let mut c = ev(Op::Commit, Phase::Ok, "leaf-1", "leaf-1.t7", 900);
    c.oid = Some(lost.to_string());
    run.events.push(c);
    only(
        &run,
        "I4",
        &format!(
            "commit {lost} of task leaf-1.t7 (leaf leaf-1) was reported ok but is not on the trunk"
        ),
    );
}

#[test]
fn i4_an_extra_trunk_commit_nobody_reported() {
    let mut run = Run::valid();
    let extra = commit_file(
        &run.repo,
        "leaf-1",
        "slot-1/extra.txt",
        "x",
        "leaf-1.t8",
        &[run.tip()],
    );
    run.set_main(extra);
    run.claimed("leaf-1", "leaf-1.t8");
    run.hub.commits_landed += 1;
    only(
        &run,
        "I4",
        &format!("trunk commit {extra} by leaf-1 was reported by no leaf"),
    );
}

#[test]
fn i4b_a_task_in_two_trunk_commits() {
    let mut run = Run::valid();
    let dup = commit_file(
        &run.repo,
        "leaf-0",
        "slot-0/again.txt",
        "x",
        "leaf-0.t0",
        &[run.tip()],
    );
    run.set_main(dup);
    let mut c = ev(Op::Commit, Phase::Ok, "leaf-0", "leaf-0.t0", 900);
    c.oid = Some(dup.to_string());
    run.events.push(c);
    run.hub.commits_landed += 1;
    only(&run, "I4b", "task leaf-0.t0 appears in 2 trunk commits");
}

#[test]
fn i6_a_leftover_lock_file() {
    let run = Run::valid();
    let artifacts = run.write();
    std::fs::write(artifacts.hub_repo.join("refs/heads/main.lock"), b"").unwrap();
    only(&run, "I6", "main.lock");
}

#[test]
fn i9_a_tip_moving_backwards() {
    let mut run = Run::valid();
    let mut back = HistoryEvent::new(Op::Pull, Phase::Ok, "leaf-0", "slot-0", 10_000);
    back.oid = Some(run.commits[0].1.to_string());
    back.outcome = Some("pulled".into());
    run.events.push(back);
    only(&run, "I9", "leaf leaf-0 observed tip");
}

#[test]
fn i10_a_leaf_that_stopped_following_the_trunk() {
    let mut run = Run::valid();
    // leaf-0 never hears of leaf-1's last commit, and still runs a minute later.
    let last = run.commits[3].1.to_string();
    run.events
        .retain(|e| !(e.leaf == "leaf-0" && e.op == Op::Pull && e.oid.as_deref() == Some(&last)));
    let mut stale = HistoryEvent::new(Op::Pull, Phase::Ok, "leaf-0", "slot-0", 60_000_000_000);
    stale.oid = Some(run.commits[2].1.to_string());
    stale.outcome = Some("skipped_idempotent".into());
    run.events.push(stale);
    only(&run, "I10", "leaf leaf-0: tip");
}

#[test]
fn i11_a_ledger_that_disagrees_with_the_bus() {
    let run = Run::valid();
    let artifacts = run.write();
    write_ledger(
        &artifacts.leaves_dir.join("leaf-1/ledger.sqlite"),
        &[("leaf-1.t1".into(), "committed".into())],
    );
    only(
        &run,
        "I11",
        "task leaf-1.t1: ledger of leaf leaf-1 says committed, herd-tasks says closed",
    );
}

/// The other direction: the bus knows a task its owner's ledger lost.
#[test]
fn i11_a_bus_task_missing_from_its_owners_ledger() {
    let run = Run::valid();
    let artifacts = run.write();
    let ledger = artifacts.leaves_dir.join("leaf-1/ledger.sqlite");
    std::fs::remove_file(&ledger).unwrap();
    write_ledger(&ledger, &[("leaf-1.t0".into(), "closed".into())]);
    only(
        &run,
        "I11",
        "task leaf-1.t1: in herd-tasks (owner leaf-1) but not in that leaf's ledger",
    );
}

#[test]
fn i1_a_planned_task_never_opened() {
    let mut run = Run::valid();
    // leaf-1's second task left no trace at all (its open failed before the bus saw it).
    run.events
        .retain(|e| e.task.as_deref() != Some("leaf-1.t1"));
    run.kv_tasks.retain(|r| r.key != "leaf-1.t1");
    run.kv_claims.retain(|r| r.key != "leaf-1.t1");
    let v = violations(&run);
    assert!(
        v.iter()
            .any(|(i, m)| i == "I1" && m == "leaf leaf-1 opened 1 of its 2 planned tasks"),
        "{v:?}"
    );
}

/// The audit's hole: an empty history over a seed-only trunk used to pass.
#[test]
fn an_empty_history_fails_against_the_plan() {
    let mut run = Run::valid();
    run.events.clear();
    run.kv_tasks.clear();
    run.kv_claims.clear();
    run.hub.commits_landed = 0;
    let seed = run
        .repo
        .revwalk()
        .and_then(|mut w| {
            w.push(run.tip())?;
            w.last().unwrap()
        })
        .unwrap();
    run.set_main(seed);
    let report = check(&run.write());
    assert_eq!(report.verdict, Verdict::Fail);
    assert!(
        report
            .violations
            .iter()
            .any(|v| v.message == "leaf leaf-0 opened 0 of its 2 planned tasks"),
        "{:?}",
        report.violations
    );
}

#[test]
fn a_missing_plan_is_inconclusive() {
    let run = Run::valid();
    let artifacts = run.write();
    std::fs::remove_file(&artifacts.plan).unwrap();
    let report = check(&artifacts);
    assert_eq!(report.verdict, Verdict::Inconclusive);
    assert!(report.missing.iter().any(|m| m.contains("plan.json")));
}

#[test]
fn a_missing_artifact_is_inconclusive() {
    let run = Run::valid();
    let artifacts = run.write();
    std::fs::remove_file(&artifacts.kv_claims).unwrap();
    let report = check(&artifacts);
    assert_eq!(report.verdict, Verdict::Inconclusive);
    assert!(
        report.missing.iter().any(|m| m.contains("kv-claims.jsonl")),
        "{:?}",
        report.missing
    );
    assert_eq!(report.exit_code(), 2);
}
