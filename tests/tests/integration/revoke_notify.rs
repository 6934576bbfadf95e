//! revoke and notify against the local AWS.

use changegate::events::{ChangegateEvent, WindowDetail};
use changegate::fault::Fault;
use changegate::policy::Grant;
use changegate::record::{Decided, DecisionRecord, Holder, LedgerWrite, State};
use changegate_aws::notify::{Notifier, NotifyOutcome};
use changegate_aws::records::Records;
use changegate_aws::revoke::RevokeOutcome;
use changegate_tests::*;
use chrono::Utc;
use serde_json::{Value, json};

#[tokio::test]
async fn given_ended_active_and_foreign_policies_when_sweeping_then_only_ended_grants_are_removed_and_announced()
 {
    // Given alice holds an ended grant and an active one, bob an ended grant written
    // in +09:00, and carol a hand-made policy and a look-alike that is not a grant
    let world = World::new().await;
    let events = world
        .capture("changegate-events", changegate_pattern())
        .await;
    world.eligible_user("alice", PROD_ACCOUNT).await;
    for u in ["bob", "carol"] {
        world.user(u).await;
    }
    let ended = grant_of(
        "a0000000-0000-0000-0000-000000000001",
        "alice",
        &at(-7200, "Z"),
        &at(-60, "Z"),
    );
    let active = grant_of(
        "a0000000-0000-0000-0000-000000000002",
        "alice",
        &at(-60, "Z"),
        &at(3600, "Z"),
    );
    let bobs = grant_of(
        "b0000000-0000-0000-0000-000000000003",
        "bob",
        &at(-7200, "+09:00"),
        &at(-1, "+09:00"),
    );
    for g in [&ended, &active, &bobs] {
        world.attach(g).await;
    }
    let foreign = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:ListAllMyBuckets","Resource":"*"}]}"#;
    world
        .iam
        .put_user_policy()
        .user_name("carol")
        .policy_name("DO-NOT-DELETE-CM-Policy")
        .policy_document(foreign)
        .send()
        .await
        .unwrap();
    world
        .iam
        .put_user_policy()
        .user_name("carol")
        .policy_name("changegate-handmade")
        .policy_document(foreign)
        .send()
        .await
        .unwrap();

    // When the sweep runs
    let RevokeOutcome::Swept(report) = revoker(&world.sdk)
        .handle(scheduled_event(), &invocation(Utc::now()), None)
        .await
        .expect("sweep")
    else {
        panic!("a scheduled event must sweep")
    };

    // Then the two ended grants are gone, everything else stays
    assert_eq!(world.policies("alice").await, vec![active.policy_name()]);
    assert!(world.policies("bob").await.is_empty());
    let mut carol = world.policies("carol").await;
    carol.sort();
    assert_eq!(
        carol,
        vec![
            "DO-NOT-DELETE-CM-Policy".to_owned(),
            "changegate-handmade".to_owned()
        ]
    );
    assert_eq!(report.revoked.len(), 2, "{report:?}");
    assert_eq!(report.active_grants, 1);
    assert_eq!(report.users_scanned, 3);

    // And each removal is announced with its window, in the requester's offset too
    let got = world.drain(&events).await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got.iter().all(|e| e["detail-type"] == "Access Revoked"));
    let bob_event = got
        .iter()
        .find(|e| e["detail"]["user"] == "bob")
        .expect("bob's revocation");
    assert_eq!(bob_event["detail"]["window"]["end-offset"], "+09:00");

    // And a second sweep finds nothing more to do
    let again = revoker(&world.sdk)
        .sweep(&invocation(Utc::now()), None)
        .await
        .unwrap();
    assert!(
        again.revoked.is_empty() && again.already_gone.is_empty(),
        "{again:?}"
    );
    assert!(world.drain(&events).await.is_empty());
}

#[tokio::test]
async fn given_eligibility_taken_away_during_a_window_when_sweeping_then_the_grant_goes_now_and_the_message_says_why()
 {
    // Given alice was granted an hour, approved by bob, and is still inside it
    let world = World::new().await;
    let ssm_events = world.capture("ssm-events", change_request_pattern()).await;
    let events = world
        .capture("changegate-events", changegate_pattern())
        .await;
    let (_, bob) = world.user("bob").await;
    let (id, _) = world
        .grant(
            &grantor(&world.sdk),
            &ssm_events,
            "alice",
            &bob,
            (&at(-60, "Z"), &at(3600, "Z")),
            None,
        )
        .await;
    world.drain(&events).await;

    // When the security team removes her eligibility tag, and the sweep runs
    world
        .iam
        .untag_user()
        .user_name("alice")
        .tag_keys(changegate::eligibility::ELIGIBILITY_TAG)
        .send()
        .await
        .unwrap();
    let report = revoker(&world.sdk)
        .sweep(&invocation(Utc::now()), None)
        .await
        .unwrap();

    // Then her grant is gone although its window has not ended
    assert_eq!(
        report.revoked,
        vec![format!("changegate-{id}")],
        "{report:?}"
    );
    assert!(world.policies("alice").await.is_empty());
    // And the revocation says why, in words
    let got = world.drain(&events).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["detail-type"], "Access Revoked");
    assert_eq!(got[0]["detail"]["cause"], "no-longer-eligible");
    // And the request is over: its record is ended, so no retry grants it again
    let record = Records::new(aws_sdk_dynamodb::Client::new(&world.sdk), DECISIONS_TABLE)
        .get(&changegate::ids::ChangeRequestId::parse(&id).unwrap())
        .await
        .unwrap()
        .expect("record");
    assert_eq!(
        record.end_cause(),
        Some(changegate::events::Cause::NoLongerEligible)
    );
}

#[tokio::test]
async fn given_an_account_taken_off_the_allowlist_when_sweeping_then_its_active_grants_go() {
    // Given alice holds an active grant in PROD_ACCOUNT, eligible by her tag
    let world = World::new().await;
    world.eligible_user("alice", PROD_ACCOUNT).await;
    let active = grant_of(
        "a0000000-0000-0000-0000-000000000002",
        "alice",
        &at(-60, "Z"),
        &at(3600, "Z"),
    );
    world.attach(&active).await;

    // When the deployment no longer allows PROD_ACCOUNT, and the sweep runs
    let narrowed = |k: &str| match k {
        changegate::config::VAR_ALLOWED_ACCOUNTS => Some("444455556666".to_owned()),
        k => grant_env(k),
    };
    let report = revoker_with(&world.sdk, &narrowed)
        .sweep(&invocation(Utc::now()), None)
        .await
        .unwrap();

    // Then the grant is gone
    assert_eq!(report.revoked, vec![active.policy_name()], "{report:?}");
    assert!(world.policies("alice").await.is_empty());
}

#[tokio::test]
async fn given_more_users_than_one_page_when_sweeping_then_every_page_is_read_and_grants_on_later_pages_go_too()
 {
    // Given 1,050 users (two pages of 1,000) with an expired grant on the last one
    let world = World::new().await;
    for i in 0..1050 {
        world
            .iam
            .create_user()
            .user_name(format!("user{i:04}"))
            .send()
            .await
            .unwrap();
    }
    let ended = grant_of(
        "a0000000-0000-0000-0000-000000000001",
        "user1049",
        &at(-7200, "Z"),
        &at(-60, "Z"),
    );
    world.attach(&ended).await;

    let report = revoker(&world.sdk)
        .sweep(&invocation(Utc::now()), None)
        .await
        .unwrap();

    assert_eq!(
        (report.pages_read, report.users_scanned),
        (2, 1050),
        "{report:?}"
    );
    assert_eq!(report.revoked, vec![ended.policy_name()]);
    assert!(world.policies("user1049").await.is_empty());
}

#[tokio::test]
async fn given_the_deadline_is_near_when_sweeping_then_nothing_is_started_and_the_invocation_fails_naming_what_is_left()
 {
    let world = World::new().await;
    world.user("alice").await;
    let ended = grant_of(
        "a0000000-0000-0000-0000-000000000001",
        "alice",
        &at(-7200, "Z"),
        &at(-60, "Z"),
    );
    world.attach(&ended).await;

    let soon = std::time::SystemTime::now() + std::time::Duration::from_secs(3);
    let err = revoker(&world.sdk)
        .sweep(&invocation(Utc::now()), Some(soon))
        .await
        .expect_err("no time for a revocation");

    let Fault::Sweep(failures) = &err else {
        panic!("{err}")
    };
    assert!(
        failures[0].contains("deadline") && failures[0].contains(&ended.policy_name()),
        "{failures:?}"
    );
    assert_eq!(world.policies("alice").await, vec![ended.policy_name()]);
}

#[tokio::test]
async fn given_the_local_aws_is_down_when_sweeping_then_the_invocation_fails_with_a_fault() {
    let world = World::new().await;
    let sweeper = revoker(&world.sdk);
    drop(world.aws);
    let err = sweeper
        .sweep(&invocation(Utc::now()), None)
        .await
        .expect_err("no AWS, no sweep");
    assert!(
        matches!(
            err,
            Fault::Aws {
                operation: "iam:GetAccountAuthorizationDetails",
                ..
            }
        ),
        "{err}"
    );
}

async fn notifier_with_subscriptions(world: &World) -> (Notifier, String, String) {
    let sns = aws_sdk_sns::Client::new(&world.sdk);
    let topic = world.topic("changegate-notifications").await;
    let subscribe = |name: &'static str, filter: Option<Value>| {
        let (sns, topic) = (sns.clone(), topic.clone());
        async move {
            let url = world
                .sqs
                .create_queue()
                .queue_name(name)
                .send()
                .await
                .unwrap()
                .queue_url()
                .unwrap()
                .to_owned();
            let arn = world.queue_arn(&url).await;
            let mut sub = sns
                .subscribe()
                .topic_arn(topic)
                .protocol("sqs")
                .endpoint(arn);
            if let Some(f) = filter {
                sub = sub.attributes("FilterPolicy", f.to_string());
            }
            sub.send().await.unwrap();
            url
        }
    };
    let everything = subscribe("security-team", None).await;
    let alices = subscribe("alice-only", Some(json!({"user": ["alice"]}))).await;
    (notifier(&world.sdk, &topic), everything, alices)
}

/// Writes `grant`'s decision record as grant does (the claim, then granted),
/// through the table's own adapter, and returns grant's announcement of it.
async fn recorded_grant(world: &World, grant: &Grant, approvers: &[String]) -> Value {
    let records = Records::new(aws_sdk_dynamodb::Client::new(&world.sdk), DECISIONS_TABLE);
    let now = Utc::now();
    let holder = Holder {
        owner: "req-1".into(),
        lease_until: now + chrono::TimeDelta::seconds(160),
    };
    let claim = DecisionRecord {
        id: grant.change_request.clone(),
        state: Some(State::Granting),
        decided_at: Some(now),
        requester: Some(format!("arn:aws:iam::{HOME_ACCOUNT}:user/{}", grant.user)),
        holder: Some(holder.clone()),
        announced: false,
        grant: Some(Decided {
            source: "change-manager".into(),
            beneficiary: grant.user.to_string(),
            beneficiary_id: grant.user_id.as_ref().map(|i| i.to_string()),
            approvers: approvers.to_vec(),
            account: grant.account.to_string(),
            role: grant.role.to_string(),
            window: WindowDetail::from(&grant.window),
            request_reason: None,
            named_sessions: grant.named_sessions,
        }),
        reason_code: None,
        reason: None,
        ended: None,
        revoked: None,
    };
    assert!(records.write(&LedgerWrite::Create(claim)).await.unwrap());
    let mark = LedgerWrite::MarkGranted {
        id: grant.change_request.clone(),
        holder: holder.owner,
        at: now,
    };
    assert!(records.write(&mark).await.unwrap());
    let granted = ChangegateEvent::granted(grant, &grant.user, approvers, "change-manager", None);
    json!({"detail-type": granted.detail_type(), "source": "changegate", "detail": serde_json::from_str::<Value>(&granted.detail_json()).unwrap()})
}

#[tokio::test]
async fn given_changegate_and_change_manager_events_when_notifying_then_each_person_gets_their_own_messages()
 {
    // Given a topic with a security-team subscription and one filtered to alice
    let world = World::new().await;
    let (notifier, everything, alices) = notifier_with_subscriptions(&world).await;

    // When alice's grant and bob's pending request are notified
    let alice = grant_of(
        "a0000000-0000-0000-0000-000000000001",
        "alice",
        "2026-12-01T18:00:00+09:00",
        "2026-12-01T19:00:00+09:00",
    );
    let body = recorded_grant(
        &world,
        &alice,
        &[format!("arn:aws:iam::{HOME_ACCOUNT}:user/bob")],
    )
    .await;
    let out = notifier.handle(as_event(&body)).await.unwrap();
    assert!(
        matches!(&out, NotifyOutcome::Published { kind, .. } if kind == "access-granted"),
        "{out:?}"
    );
    let (_, bob) = world.user("bob").await;
    let bobs = world
        .file_request(
            &bob,
            request("bob", PROD_ACCOUNT, &at(60, "Z"), &at(3600, "Z")),
        )
        .await;
    let pending = change_request_event(&bobs, "PendingApproval");
    let out = notifier.handle(as_event(&pending)).await.unwrap();
    assert!(
        matches!(&out, NotifyOutcome::Published { kind, .. } if kind == "request-pending-approval"),
        "{out:?}"
    );

    // Then the security team sees both, alice only hers, with subject and attributes
    let all = world.drain(&everything).await;
    assert_eq!(all.len(), 2, "{all:?}");
    let mine = world.drain(&alices).await;
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert_eq!(
        mine[0]["Subject"],
        "[changegate] Access granted: alice to 111122223333/CM-Prd-role"
    );
    assert_eq!(
        mine[0]["MessageAttributes"]["kind"]["Value"],
        "access-granted"
    );
    let text = mine[0]["Message"].as_str().unwrap();
    assert!(
        text.contains("2026-12-01 09:00:00 UTC (2026-12-01 18:00:00 +09:00)"),
        "{text}"
    );

    // And the Slack (https) variant of what was published is a custom-notification card
    let published = world.aws.sns_published();
    let raw = published
        .iter()
        .find(|p| {
            p["Subject"]
                .as_str()
                .is_some_and(|s| s.contains("Access granted"))
        })
        .expect("published");
    let structure: Value = serde_json::from_str(raw["Message"].as_str().unwrap()).unwrap();
    let card: Value = serde_json::from_str(structure["https"].as_str().unwrap()).unwrap();
    assert_eq!(card["source"], "custom");
    assert_eq!(card["content"]["textType"], "client-markdown");
    assert_eq!(structure["email"].as_str().unwrap(), text);
}

#[tokio::test]
async fn given_statuses_that_need_no_message_when_notifying_then_nothing_is_published() {
    let world = World::new().await;
    let (notifier, everything, _) = notifier_with_subscriptions(&world).await;
    let mut ev = change_request_event("6f1c2e4a-9b7d-4c3e-8a21-5d0f3b9e7a64", "Approved");
    for status in ["RunbookInProgress", "CompletedWithSuccess", "NoSuchStatus"] {
        ev["detail"]["ops-item-status"] = status.into();
        let out = notifier.handle(as_event(&ev)).await.unwrap();
        assert!(
            matches!(out, NotifyOutcome::Skipped { .. }),
            "{status}: {out:?}"
        );
    }
    assert!(matches!(
        notifier.handle(as_event(&scheduled_event())).await.unwrap(),
        NotifyOutcome::Skipped { .. }
    ));
    assert!(world.drain(&everything).await.is_empty());
}
