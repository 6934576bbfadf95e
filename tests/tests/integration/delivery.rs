//! EventBridge delivers at least once and in any order. The same lifecycles,
//! delivered once in order in one local AWS and three times shuffled in
//! another, must end in the same IAM state with the same grants and
//! revocations announced.

use std::collections::BTreeMap;

use changegate::status::Status;
use changegate_aws::grant::Grantor;
use changegate_aws::revoke::Revoker;
use changegate_tests::*;
use chrono::{DateTime, Utc};
use serde_json::Value;

struct Run {
    world: World,
    /// A second after alice's window ended: the `now` of every delivery after it.
    alice_done: DateTime<Utc>,
    grantor: Grantor,
    revoker: Revoker,
    cg_events: String,
}

/// What a delivery order must not change: each user's policies (how many),
/// and how many times each user's access was announced granted and revoked.
#[derive(Debug, PartialEq, Eq)]
struct End {
    policies: BTreeMap<String, usize>,
    announced: BTreeMap<(String, String), usize>,
}

const USERS: [&str; 4] = ["alice", "bob", "carol", "dave"];

/// Plays four lifecycles up to their final Change Manager status and returns
/// every status event they produced, in order. alice: granted, window ends
/// in half an hour. bob: granted for two hours. carol: asks for an account
/// that is not allowed. dave: rejected.
async fn lifecycles() -> (Run, Vec<Value>) {
    let world = World::new().await;
    let ssm_q = world.capture("ssm-events", change_request_pattern()).await;
    let cg_events = world
        .capture("changegate-events", changegate_pattern())
        .await;
    let (grantor, revoker) = (grantor(&world.sdk), revoker(&world.sdk));
    let (_, frank) = world.user("frank").await;
    let alice_end = at(1800, "Z");
    for (user, account, end, approve) in [
        ("alice", PROD_ACCOUNT, alice_end.clone(), true),
        ("bob", PROD_ACCOUNT, at(7200, "Z"), true),
        ("carol", "444455556666", at(7200, "Z"), true),
        ("dave", PROD_ACCOUNT, at(7200, "Z"), false),
    ] {
        let (_, creds) = world.eligible_user(user, PROD_ACCOUNT).await;
        let id = world
            .file_request(&creds, request(user, account, &at(-1, "Z"), &end))
            .await;
        world.signal(&frank, &id, approve).await;
    }
    let events = world.drain(&ssm_q).await;
    (
        Run {
            world,
            alice_done: after(&alice_end, 1),
            grantor,
            revoker,
            cg_events,
        },
        events,
    )
}

impl Run {
    /// Hands one event, at `now`, to every function the deployed rules route it to.
    async fn deliver(&self, event: &Value, now: DateTime<Utc>) {
        if event["source"] == "aws.events" {
            self.revoker
                .handle(event.clone(), &invocation(now), None)
                .await
                .expect("sweep");
            return;
        }
        self.grantor
            .handle(event.clone(), &home(), &invocation(now))
            .await
            .expect("grant");
        if event["detail"]["ops-item-status"]
            .as_str()
            .is_some_and(|s| Status::parse(s).ends_access())
        {
            self.revoker
                .handle(event.clone(), &invocation(now), None)
                .await
                .expect("early end");
        }
    }

    async fn end(&self) -> End {
        let mut policies = BTreeMap::new();
        for u in USERS {
            policies.insert(u.to_owned(), self.world.policies(u).await.len());
        }
        let mut announced = BTreeMap::new();
        for e in self.world.drain(&self.cg_events).await {
            let key = (
                e["detail"]["user"].as_str().unwrap_or("-").to_owned(),
                e["detail-type"].as_str().unwrap_or("-").to_owned(),
            );
            *announced.entry(key).or_insert(0) += 1;
        }
        End {
            policies,
            announced,
        }
    }
}

/// A fixed permutation (a small LCG), so that a failure can be replayed.
fn shuffle<T>(items: &mut [T], mut seed: u64) {
    for i in (1..items.len()).rev() {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        items.swap(i, (seed >> 33) as usize % (i + 1));
    }
}

#[tokio::test]
async fn given_lifecycles_when_every_event_arrives_three_times_shuffled_then_the_end_is_the_same_as_one_ordered_delivery()
 {
    // Given the same four lifecycles played in two local AWSes
    let ((ordered, in_order), (shuffled, events)) = tokio::join!(lifecycles(), lifecycles());

    // When one gets each event once, in order, with a sweep after; and the
    // other gets each event three times, shuffled, with sweeps in between
    for e in &in_order {
        ordered.deliver(e, Utc::now()).await;
    }
    ordered.deliver(&scheduled_event(), Utc::now()).await;
    let mut copies: Vec<Value> = events
        .iter()
        .chain(&events)
        .chain(&events)
        .cloned()
        .collect();
    copies.extend([scheduled_event(), scheduled_event(), scheduled_event()]);
    shuffle(&mut copies, 0x5eed);
    for e in &copies {
        shuffled.deliver(e, Utc::now()).await;
    }
    // (and, as the one-minute sweep keeps running, both sweep once alice's window is over)
    ordered
        .deliver(&scheduled_event(), ordered.alice_done)
        .await;
    shuffled
        .deliver(&scheduled_event(), shuffled.alice_done)
        .await;

    // Then both end alike: bob still holds his grant, nobody else anything;
    // alice and bob were announced granted once each, alice revoked once
    let (a, b) = (ordered.end().await, shuffled.end().await);
    assert_eq!(a, b);
    let want: BTreeMap<String, usize> = [("alice", 0), ("bob", 1), ("carol", 0), ("dave", 0)]
        .into_iter()
        .map(|(u, n)| (u.to_owned(), n))
        .collect();
    assert_eq!(a.policies, want);
    let count = |u: &str, t: &str| {
        a.announced
            .get(&(u.to_owned(), t.to_owned()))
            .copied()
            .unwrap_or(0)
    };
    assert_eq!(
        (
            count("alice", "Access Granted"),
            count("alice", "Access Revoked")
        ),
        (1, 1)
    );
    assert_eq!(
        (
            count("bob", "Access Granted"),
            count("bob", "Access Revoked")
        ),
        (1, 0)
    );
    assert_eq!(count("carol", "Access Refused"), 1);
    assert_eq!(
        count("dave", "Access Granted") + count("dave", "Access Refused"),
        0
    );
}

#[tokio::test]
async fn given_a_revoked_grant_when_its_approval_arrives_late_then_nothing_is_granted_again() {
    // Given alice's grant, revoked at the end of its window
    let (run, events) = lifecycles().await;
    for e in &events {
        run.deliver(e, Utc::now()).await;
    }
    assert_eq!(
        run.world.policies("alice").await.len(),
        1,
        "alice must be granted first"
    );
    run.deliver(&scheduled_event(), run.alice_done).await;
    assert_eq!(run.world.policies("alice").await.len(), 0);
    run.world.drain(&run.cg_events).await;

    // When every approval-or-later event arrives again, late (after the window)
    for e in events
        .iter()
        .filter(|e| e["detail"]["ops-item-status"] != "PendingApproval")
    {
        run.deliver(e, run.alice_done).await;
    }

    // Then the revocation stands and nobody is told anything new
    assert_eq!(run.world.policies("alice").await.len(), 0);
    assert!(run.world.drain(&run.cg_events).await.is_empty());
}
