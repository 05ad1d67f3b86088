//! Fencing at the hub: with `fence_claims`, a commit lands only under its task's live claim.
//! These pushes bypass the leaf's own epoch check (they are plain git2 pushes), so what stops
//! a stale one here is the hub.

mod common;

use std::path::Path;
use std::time::Duration;

use git2::{Oid, Repository, Signature};
use herd_bus::ClaimOutcome;
use herd_hub::HubConfig;

fn commit_with(repo: &Repository, path: &str, message: &str) -> Oid {
    let parent = repo.head().unwrap().peel_to_commit().unwrap();
    let full = repo.workdir().unwrap().join(path);
    std::fs::create_dir_all(full.parent().unwrap()).unwrap();
    std::fs::write(&full, message).unwrap();
    let mut index = repo.index().unwrap();
    index.add_path(Path::new(path)).unwrap();
    index.write().unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let sig = Signature::now("tester", "t@herd").unwrap();
    repo.commit(Some("HEAD"), &sig, &sig, message, &tree, &[&parent])
        .unwrap()
}

fn reset_to(repo: &Repository, oid: &str) {
    let target = repo.find_object(Oid::from_str(oid).unwrap(), None).unwrap();
    repo.reset(&target, git2::ResetType::Hard, None).unwrap();
}

async fn won(bus: &herd_bus::Bus, task: &str, leaf: &str) -> u64 {
    match bus
        .try_claim(task, leaf, Duration::from_secs(1))
        .await
        .unwrap()
    {
        ClaimOutcome::Won { revision } => revision,
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_live_claim_lands() {
    let dir = tempfile::tempdir().unwrap();
    let s = common::hub_in(
        dir,
        HubConfig {
            fence_claims: true,
            ..HubConfig::default()
        },
    )
    .await;
    let first = won(&s.bus, "t1", "leaf-a").await;
    let (url, work) = (s.hub.url(), s.dir.path().to_path_buf());
    let repo = tokio::task::spawn_blocking(move || common::clone(&url, &work.join("a")))
        .await
        .unwrap();
    let repo = std::sync::Arc::new(std::sync::Mutex::new(repo));
    // Each push names a claim in the `x-herd-claim` header too (as leaves do): the hub reads
    // that claim as the push arrives. The header only says which claim to read; the trailer
    // decides. `hint` is the header's value.
    let push_hinted = |path: &'static str, message: String, hint: String| {
        let repo = repo.clone();
        tokio::task::spawn_blocking(move || {
            let repo = repo.lock().unwrap();
            let base = repo.head().unwrap().target().unwrap().to_string();
            commit_with(&repo, path, &message);
            let result = if hint.is_empty() {
                common::push(&repo)
            } else {
                common::push_with(&repo, &[(herd_hub::fence::CLAIM_HEADER, &hint)])
            };
            if result.is_err() {
                reset_to(&repo, &base);
            }
            result
        })
    };
    let push = |path: &'static str, message: String| push_hinted(path, message, String::new());

    let err = push("slot-0/a", "no trailer\n".into()).await.unwrap();
    assert!(err.unwrap_err().contains("no Herd-Claim"));
    let unclaimed = push("slot-0/a", "x\n\nHerd-Claim: t9@1\n".into())
        .await
        .unwrap();
    assert!(unclaimed.unwrap_err().contains("stale claim"));
    push("slot-0/a", format!("a\n\nHerd-Claim: t1@{first}\n"))
        .await
        .unwrap()
        .expect("the live claim lands");

    // The claim lapses (its holder stalled) and another leaf takes the task.
    let mut second = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let ClaimOutcome::Won { revision } = s
            .bus
            .try_claim("t1", "leaf-b", Duration::from_secs(30))
            .await
            .unwrap()
        {
            second = Some(revision);
            break;
        }
    }
    let second = second.expect("the lapsed claim was re-claimed");
    assert!(second > first);
    let late = push("slot-0/b", format!("late\n\nHerd-Claim: t1@{first}\n"))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        late.contains(&format!(
            "stale claim: task t1 epoch {first}, the live claim is epoch {second}"
        )),
        "{late}"
    );
    // The same stale push naming its claim in the header (read as the push arrives): refused.
    let hinted = push_hinted(
        "slot-0/b",
        format!("late\n\nHerd-Claim: t1@{first}\n"),
        format!("t1@{first}"),
    )
    .await
    .unwrap()
    .unwrap_err();
    assert!(hinted.contains("stale claim"), "{hinted}");
    // A header naming another task than the trailer: the trailer's task is read and decides.
    let other = push_hinted(
        "slot-0/b",
        format!("late\n\nHerd-Claim: t1@{first}\n"),
        format!("t9@{first}"),
    )
    .await
    .unwrap()
    .unwrap_err();
    assert!(other.contains("stale claim"), "{other}");
    push_hinted(
        "slot-0/b",
        format!("b\n\nHerd-Claim: t1@{second}\n"),
        format!("t1@{second}"),
    )
    .await
    .unwrap()
    .expect("the new holder lands");

    // A claim record naming an epoch it never had (anyone who may write claims can write
    // one): the hub takes the record's own revision as its epoch.
    s.bus
        .jetstream()
        .publish(
            "$KV.herd-claims.t5",
            r#"{"leaf":"leaf-x","task":"t5","at":0,"ttl_secs":30,"epoch":18446744073709551615}"#
                .into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let (_, forged) = s.bus.claim("t5").await.unwrap().unwrap();
    assert!(forged < u64::MAX, "a forged epoch was believed");
    let refused = push("slot-0/c", format!("c\n\nHerd-Claim: t5@{}\n", u64::MAX))
        .await
        .unwrap()
        .unwrap_err();
    assert!(refused.contains("stale claim"), "{refused}");
    // An honest renewal keeps its epoch.
    let first = won(&s.bus, "t6", "leaf-c").await;
    let renewed = s
        .bus
        .renew("t6", first, "leaf-c", Duration::from_secs(30))
        .await
        .unwrap()
        .expect("renewed");
    assert!(renewed > first);
    assert_eq!(
        s.bus.claim("t6").await.unwrap().map(|(_, e)| e),
        Some(first)
    );
    push("slot-0/c", format!("c\n\nHerd-Claim: t6@{first}\n"))
        .await
        .unwrap()
        .expect("a renewed claim's commit lands");

    assert_eq!(s.hub.trunk_len(), 4, "seed + three fenced-in commits");
    let stats = s.hub.stats();
    assert_eq!(
        stats.rejected_by_reason.get("no-claim"),
        Some(&1),
        "{stats:?}"
    );
    assert_eq!(
        stats.rejected_by_reason.get("stale-claim"),
        Some(&5),
        "{stats:?}"
    );
}
