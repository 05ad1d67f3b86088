//! Claims are exclusive: of two concurrent claimers exactly one wins; a lease lapses after its TTL.

mod common;

use herd_bus::ClaimOutcome;
use std::time::Duration;

#[tokio::test]
async fn two_concurrent_claims_exactly_one_wins() {
    let (server, a) = common::bus().await;
    let b = herd_bus::Bus::connect(server.url()).await.unwrap();
    for round in 0..20 {
        let task = format!("task-{round}");
        let ttl = Duration::from_secs(30);
        let (ra, rb) = tokio::join!(
            a.try_claim(&task, "leaf-a", ttl),
            b.try_claim(&task, "leaf-b", ttl)
        );
        let outcomes = [ra.unwrap(), rb.unwrap()];
        let won: Vec<_> = outcomes
            .iter()
            .filter(|o| matches!(o, ClaimOutcome::Won { .. }))
            .collect();
        assert_eq!(won.len(), 1, "round {round}: {outcomes:?}");
        let holder = a.claim(&task).await.unwrap().expect("claim is live").0.leaf;
        for o in &outcomes {
            if let ClaimOutcome::Lost { holder: h } = o {
                assert_eq!(h, &holder, "loser names the winner");
            }
        }
    }
}

#[tokio::test]
async fn expired_claim_can_be_claimed_again_and_the_epoch_grows() {
    let (_server, bus) = common::bus().await;
    let ttl = Duration::from_secs(1);
    let ClaimOutcome::Won { revision: first } = bus.try_claim("t1", "leaf-a", ttl).await.unwrap()
    else {
        panic!("first claim must win");
    };
    assert_eq!(
        bus.try_claim("t1", "leaf-b", ttl).await.unwrap(),
        ClaimOutcome::Lost {
            holder: "leaf-a".into()
        }
    );

    // Poll (bounded) until the lease lapses; the server expires on its own clock.
    let mut second = None;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let ClaimOutcome::Won { revision } = bus.try_claim("t1", "leaf-b", ttl).await.unwrap() {
            second = Some(revision);
            break;
        }
    }
    let second = second.expect("claim not re-claimable within 6 s of a 1 s TTL");
    assert!(second > first, "epoch must grow: {first} -> {second}");
    assert_eq!(bus.claim("t1").await.unwrap().unwrap().0.leaf, "leaf-b");
    // The lapsed holder's release must not remove the new holder's claim.
    assert!(!bus.release("t1", first).await.unwrap());
    assert_eq!(bus.claim("t1").await.unwrap().unwrap().0.leaf, "leaf-b");
}

#[tokio::test]
async fn release_frees_the_task_and_a_reclaim_keeps_its_lease() {
    let (_server, bus) = common::bus().await;
    let ttl = Duration::from_secs(1);
    let ClaimOutcome::Won { revision } = bus
        .try_claim("t2", "leaf-a", Duration::from_secs(60))
        .await
        .unwrap()
    else {
        panic!("claim must win");
    };
    assert!(bus.release("t2", revision).await.unwrap());
    assert!(bus.claim("t2").await.unwrap().is_none());

    // Re-claim after a release goes through the delete marker; its TTL must still apply.
    assert!(matches!(
        bus.try_claim("t2", "leaf-b", ttl).await.unwrap(),
        ClaimOutcome::Won { .. }
    ));
    let mut lapsed = false;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if bus.claim("t2").await.unwrap().is_none() {
            lapsed = true;
            break;
        }
    }
    assert!(
        lapsed,
        "a claim re-created after release never expired: its TTL was lost"
    );
}

#[tokio::test]
async fn invalid_task_id_is_rejected_before_the_server() {
    let (_server, bus) = common::bus().await;
    let err = bus
        .try_claim("bad key", "leaf-a", Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, herd_bus::BusError::InvalidKey { .. }),
        "{err:?}"
    );
}
