//! KV writes whose replies are lost (F2: the server frozen past the request timeout, then
//! thawed) are settled by reading the key back: a write that landed is reported done, one that
//! did not is sent again — never reported failed while the key holds what it wrote, never
//! doubled, never turned into "already exists" or "claimed by someone" against its own copy.
//!
//! Every write here is sent into a frozen server, so each one times out at least once; without
//! the settling each would fail ("timed out").

mod common;

use common::record;

use std::time::Duration;

use herd_bus::{ClaimOutcome, TaskState};

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) on the fixture's own child process.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, sig) }, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_sent_into_a_frozen_server_settle_once_it_thaws() {
    let (server, bus) = common::bus().await;
    let pid = server.pid().expect("fixture child");
    let ttl = Duration::from_secs(30);

    // Keys the writes below change: a task to update, a claim to release.
    let rev = bus.create_task(&record("slot-0.update")).await.unwrap();
    let held = match bus
        .try_claim("slot-0.release", "leaf-0", ttl)
        .await
        .unwrap()
    {
        ClaimOutcome::Won { revision } => revision,
        other => panic!("{other:?}"),
    };

    signal(pid, libc::SIGSTOP);
    let mut updated = record("slot-0.update");
    updated.state = TaskState::Claimed;
    updated.epoch = Some(7);
    updated.updated = 2;
    let fresh = record("slot-0.create");
    let writes = async {
        tokio::join!(
            bus.create_task(&fresh),
            bus.update_task(&updated, rev),
            bus.try_claim("slot-0.claim", "leaf-0", ttl),
            bus.release_at("slot-0.release", held, held),
        )
    };
    let thaw = async {
        // Past the request timeout (2 s): every write above has timed out at least once.
        tokio::time::sleep(Duration::from_secs(6)).await;
        signal(pid, libc::SIGCONT);
    };
    let ((created, update, claim, released), ()) = tokio::join!(writes, thaw);

    let created = created.expect("create settles");
    let (now, at) = bus.task("slot-0.create").await.unwrap().unwrap();
    assert_eq!((now, at), (record("slot-0.create"), created));

    let update = update.expect("update settles");
    let (now, at) = bus.task("slot-0.update").await.unwrap().unwrap();
    assert_eq!((now, at), (updated, update));

    let epoch = match claim.expect("claim settles") {
        ClaimOutcome::Won { revision } => revision,
        other => panic!("the claim was ours alone: {other:?}"),
    };
    let (holder, live) = bus.claim("slot-0.claim").await.unwrap().unwrap();
    assert_eq!((holder.leaf.as_str(), live), ("leaf-0", epoch));

    assert!(released.expect("release settles"), "the claim was ours");
    assert!(bus.claim("slot-0.release").await.unwrap().is_none());
}
