//! grant against the local AWS: real SDK, real wire protocol, events from the
//! Change Manager extension delivered through EventBridge.

use changegate::config::{GrantConfig, VAR_ALLOWED_ACCOUNTS, VAR_MAX_DURATION};
use changegate_aws::grant::{GrantOutcome, Grantor};
use changegate_tests::*;
use chrono::Utc;
use serde_json::{Value, json};

fn config(max_minutes: &str) -> GrantConfig {
    let max = max_minutes.to_owned();
    let lookup = move |k: &str| match k {
        VAR_ALLOWED_ACCOUNTS => Some(PROD_ACCOUNT.to_owned()),
        VAR_MAX_DURATION => Some(max.clone()),
        k => grant_env(k),
    };
    GrantConfig::from_source(&lookup).expect("config")
}

struct Scene {
    world: World,
    grantor: Grantor,
    ssm_events: String,
    cg_events: String,
}

impl Scene {
    async fn new() -> Self {
        let world = World::new().await;
        let ssm_events = world.capture("ssm-events", change_request_pattern()).await;
        let cg_events = world
            .capture("changegate-events", changegate_pattern())
            .await;
        let grantor = Grantor::new(config("480"), &world.sdk);
        Self {
            world,
            grantor,
            ssm_events,
            cg_events,
        }
    }

    /// Hands every queued Change Manager event to grant, in order.
    async fn deliver(&self) -> Vec<GrantOutcome> {
        let mut outcomes = Vec::new();
        for body in self.world.drain(&self.ssm_events).await {
            outcomes.push(
                self.grantor
                    .handle(body.clone(), &home(), &invocation(Utc::now()))
                    .await
                    .expect("no fault"),
            );
        }
        outcomes
    }

    async fn changegate_events(&self) -> Vec<Value> {
        self.world.drain(&self.cg_events).await
    }
}

#[tokio::test]
async fn given_an_approved_request_when_granting_then_one_windowed_policy_is_attached_and_announced()
 {
    // Given alice files a request written in +09:00 and bob approves it
    let s = Scene::new().await;
    let (_, alice) = s.world.eligible_user("alice", PROD_ACCOUNT).await;
    let (_, bob) = s.world.user("bob").await;
    let (start, end) = (at(-60, "+09:00"), at(3600, "+09:00"));
    let id = s
        .world
        .file_request(&alice, request("alice", PROD_ACCOUNT, &start, &end))
        .await;
    s.world.signal(&bob, &id, true).await;

    // When every status event Change Manager emitted reaches grant
    let outcomes = s.deliver().await;

    // Then exactly one delivery granted, the others changed nothing
    let granted = outcomes
        .iter()
        .filter(|o| matches!(o, GrantOutcome::Granted { .. }))
        .count();
    assert_eq!(granted, 1, "{outcomes:?}");
    assert!(
        outcomes
            .iter()
            .all(|o| !matches!(o, GrantOutcome::Refused { .. })),
        "{outcomes:?}"
    );

    // And the policy is the windowed AssumeRole on the production role, in UTC
    let name = format!("changegate-{id}");
    assert_eq!(s.world.policies("alice").await, vec![name.clone()]);
    let doc = s
        .world
        .iam
        .get_user_policy()
        .user_name("alice")
        .policy_name(&name)
        .send()
        .await
        .unwrap();
    let doc: Value = serde_json::from_str(&percent_decode(doc.policy_document())).unwrap();
    let stmt = &doc["Statement"][0];
    assert_eq!(doc["Statement"].as_array().unwrap().len(), 1);
    assert_eq!(stmt["Action"], "sts:AssumeRole");
    assert_eq!(
        stmt["Resource"],
        format!("arn:aws:iam::{PROD_ACCOUNT}:role/CM-Prd-role")
    );
    let utc = |t: &str| {
        chrono::DateTime::parse_from_rfc3339(t)
            .unwrap()
            .with_timezone(&Utc)
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    };
    assert_eq!(
        stmt["Condition"]["DateGreaterThan"]["aws:CurrentTime"],
        utc(&start)
    );
    assert_eq!(
        stmt["Condition"]["DateLessThan"]["aws:CurrentTime"],
        utc(&end)
    );

    // And exactly one Access Granted event went out, with the requester's offset
    let events = s.changegate_events().await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["detail-type"], "Access Granted");
    assert_eq!(events[0]["detail"]["user"], "alice");
    assert_eq!(events[0]["detail"]["window"]["start-offset"], "+09:00");
}

#[tokio::test]
async fn given_a_granted_request_when_its_events_are_redelivered_then_nothing_changes() {
    // Given a granted request and a copy of every event it produced
    let s = Scene::new().await;
    let (_, alice) = s.world.eligible_user("alice", PROD_ACCOUNT).await;
    let (_, bob) = s.world.user("bob").await;
    let id = s
        .world
        .file_request(
            &alice,
            request("alice", PROD_ACCOUNT, &at(0, "Z"), &at(600, "Z")),
        )
        .await;
    s.world.signal(&bob, &id, true).await;
    let bodies = s.world.drain(&s.ssm_events).await;
    for b in &bodies {
        s.grantor
            .handle(b.clone(), &home(), &invocation(Utc::now()))
            .await
            .unwrap();
    }
    let before = s
        .world
        .iam
        .get_user_policy()
        .user_name("alice")
        .policy_name(format!("changegate-{id}"))
        .send()
        .await
        .unwrap();
    s.changegate_events().await;

    // When all of them arrive again
    let mut again = Vec::new();
    for b in &bodies {
        again.push(
            s.grantor
                .handle(b.clone(), &home(), &invocation(Utc::now()))
                .await
                .unwrap(),
        );
    }

    // Then the policy is untouched and nothing new is announced
    let after = s
        .world
        .iam
        .get_user_policy()
        .user_name("alice")
        .policy_name(format!("changegate-{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(before.policy_document(), after.policy_document());
    assert!(
        again.iter().all(|o| matches!(
            o,
            GrantOutcome::AlreadyDecided { .. } | GrantOutcome::Ignored { .. }
        )),
        "{again:?}"
    );
    assert!(s.changegate_events().await.is_empty());
}

#[tokio::test]
async fn given_a_grant_attached_but_never_announced_when_an_event_is_redelivered_then_it_is_announced_once()
 {
    // Given an approved request whose policy is on alice, as if grant had
    // stopped between PutUserPolicy and PutEvents
    let s = Scene::new().await;
    let (_, alice) = s.world.eligible_user("alice", PROD_ACCOUNT).await;
    let (_, bob) = s.world.user("bob").await;
    let id = s
        .world
        .file_request(
            &alice,
            request("alice", PROD_ACCOUNT, &at(0, "Z"), &at(600, "Z")),
        )
        .await;
    s.world.signal(&bob, &id, true).await;
    let bodies = s.world.drain(&s.ssm_events).await;
    let cr = changegate::ids::ChangeRequestId::parse(&id).unwrap();
    let exec = changegate_aws::adapters::Ssm::new(aws_sdk_ssm::Client::new(&s.world.sdk))
        .execution(&id)
        .await
        .unwrap();
    let Ok(changegate::check::Checking::Checked(check)) =
        changegate::check::check_request(&cr, exec.as_ref(), &config("480"), &home(), Utc::now())
    else {
        panic!("not checked")
    };
    let record = changegate::check::UserRecord {
        name: changegate::ids::IamUserName::parse("alice").ok(),
        id: None,
        tag: Some(PROD_ACCOUNT.into()),
        boundary: None,
        inline_policies: vec![],
    };
    let Ok(changegate::check::Verdict::Grant(grant)) =
        changegate::check::decide(&check, &record, &config("480"))
    else {
        panic!()
    };
    let records = changegate_aws::adapters::Records::new(
        aws_sdk_dynamodb::Client::new(&s.world.sdk),
        DECISIONS_TABLE,
    );
    // An attempt that claimed and attached, then died: its lease has run out.
    let died = changegate::record::Holder {
        owner: "an-attempt-that-died".into(),
        lease_until: Utc::now() - chrono::TimeDelta::seconds(1),
    };
    let claim = changegate::record::DecisionRecord::granting(&check, &grant, &died, Utc::now());
    assert!(
        records
            .write(&changegate::record::LedgerWrite::Create(claim))
            .await
            .unwrap(),
        "the claim is the first decision"
    );
    s.world.attach(&grant).await;

    // When the events are delivered (again)
    let mut outcomes = Vec::new();
    for b in &bodies {
        outcomes.push(
            s.grantor
                .handle(b.clone(), &home(), &invocation(Utc::now()))
                .await
                .unwrap(),
        );
    }

    // Then the claimed grant is finished and announced exactly once, and the policy is unchanged
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| matches!(o, GrantOutcome::Granted { .. }))
            .count(),
        1,
        "{outcomes:?}"
    );
    assert!(
        outcomes.iter().all(|o| matches!(
            o,
            GrantOutcome::Granted { .. }
                | GrantOutcome::AlreadyDecided { .. }
                | GrantOutcome::Ignored { .. }
        )),
        "{outcomes:?}"
    );
    let decided = records.get(&cr).await.unwrap().unwrap();
    assert_eq!(
        (decided.state, decided.announced),
        (Some(changegate::record::State::Granted), true)
    );
    let events = s.changegate_events().await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["detail-type"], "Access Granted");
    assert_eq!(s.world.policies("alice").await, vec![grant.policy_name()]);
}

#[tokio::test]
async fn given_a_refused_request_when_every_status_event_arrives_then_the_requester_is_told_once() {
    let s = Scene::new().await;
    let (_, alice) = s.world.eligible_user("alice", PROD_ACCOUNT).await;
    let (_, bob) = s.world.user("bob").await;
    let id = s
        .world
        .file_request(
            &alice,
            request("alice", "444455556666", &at(0, "Z"), &at(600, "Z")),
        )
        .await;
    s.world.signal(&bob, &id, true).await;

    let outcomes = s.deliver().await;

    assert_eq!(
        outcomes
            .iter()
            .filter(|o| matches!(o, GrantOutcome::Refused { .. }))
            .count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| matches!(o, GrantOutcome::AlreadyDecided { .. }))
            .count(),
        2,
        "{outcomes:?}"
    );
    assert_eq!(s.changegate_events().await.len(), 1);
}

#[tokio::test]
async fn given_two_approved_requests_of_one_user_when_granting_then_both_policies_live_side_by_side()
 {
    let s = Scene::new().await;
    let (_, alice) = s.world.eligible_user("alice", PROD_ACCOUNT).await;
    let (_, bob) = s.world.user("bob").await;
    let first = s
        .world
        .file_request(
            &alice,
            request("alice", PROD_ACCOUNT, &at(0, "Z"), &at(600, "Z")),
        )
        .await;
    let second = s
        .world
        .file_request(
            &alice,
            request("alice", PROD_ACCOUNT, &at(3600, "Z"), &at(7200, "Z")),
        )
        .await;
    s.world.signal(&bob, &first, true).await;
    s.world.signal(&bob, &second, true).await;

    s.deliver().await;

    let mut want = vec![
        format!("changegate-{first}"),
        format!("changegate-{second}"),
    ];
    want.sort();
    let mut got = s.world.policies("alice").await;
    got.sort();
    assert_eq!(got, want);
}

/// Runs one request through approval and grant; returns grant's outcomes and
/// changegate's events.
async fn refused_case(s: &Scene, filer: &Creds, params: Params) -> (Vec<GrantOutcome>, Vec<Value>) {
    let (_, bob) = s.world.user("bob").await;
    let id = s.world.file_request(filer, params).await;
    s.world.signal(&bob, &id, true).await;
    (s.deliver().await, s.changegate_events().await)
}

#[tokio::test]
async fn given_requests_that_break_a_rule_when_granting_then_each_is_refused_with_its_reason_and_iam_is_untouched()
 {
    // (parameters to change, reason code, part of the reason)
    type Case<'a> = (Vec<(&'a str, String)>, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec![("AWSAccountId", "444455556666".into())],
            "account-not-allowed",
            "Account 444455556666 is not one changegate may grant access to",
        ),
        (
            vec![("IAMUserName", "carol".into())],
            "not-the-requester",
            "asks for access for carol, but it was filed by alice",
        ),
        (
            vec![("EndTime", at(9 * 3600, "Z"))],
            "window-too-long",
            "the most allowed is 480 minutes",
        ),
        (
            vec![("StartTime", at(-7200, "Z")), ("EndTime", at(-3600, "Z"))],
            "window-ended",
            "The window ended at",
        ),
        (
            vec![("StartTime", "2026-12-01T18:00:00".into())],
            "invalid-time",
            "StartTime has no time zone",
        ),
        (
            vec![("StartTime", at(600, "Z")), ("EndTime", at(60, "Z"))],
            "end-not-after-start",
            "is not after StartTime",
        ),
    ];
    for (overrides, code, reason) in cases {
        // Given alice files a request that breaks one rule, and it is approved
        let s = Scene::new().await;
        let (_, alice) = s.world.eligible_user("alice", PROD_ACCOUNT).await;
        s.world.user("carol").await;
        let mut params = request("alice", PROD_ACCOUNT, &at(0, "Z"), &at(3600, "Z"));
        for (k, v) in overrides.iter().cloned() {
            params.insert(k.to_owned(), vec![v]);
        }

        // When grant sees its events
        let (outcomes, events) = refused_case(&s, &alice, params).await;

        // Then it is refused with that reason, announced to alice, and no one got a policy
        assert!(
            outcomes.iter().any(
                |o| matches!(o, GrantOutcome::Refused { reason_code, .. } if reason_code == code)
            ),
            "{code}: {outcomes:?}"
        );
        assert!(
            !outcomes
                .iter()
                .any(|o| matches!(o, GrantOutcome::Granted { .. })),
            "{code}"
        );
        let refusal = events
            .iter()
            .find(|e| e["detail-type"] == "Access Refused")
            .unwrap_or_else(|| panic!("{code}: {events:?}"));
        assert_eq!(refusal["detail"]["reason-code"], code);
        assert_eq!(refusal["detail"]["user"], "alice");
        assert!(
            refusal["detail"]["reason"]
                .as_str()
                .unwrap()
                .contains(reason),
            "{code}: {}",
            refusal["detail"]["reason"]
        );
        for user in ["alice", "bob", "carol"] {
            assert!(
                s.world.policies(user).await.is_empty(),
                "{code}: {user} has a policy"
            );
        }
    }
}

#[tokio::test]
async fn given_an_event_claiming_approval_when_ssm_says_pending_then_nothing_is_granted_or_decided()
{
    // Given a request that nobody approved, and a forged "Approved" event for it
    let s = Scene::new().await;
    let (_, alice) = s.world.eligible_user("alice", PROD_ACCOUNT).await;
    let id = s
        .world
        .file_request(
            &alice,
            request("alice", PROD_ACCOUNT, &at(0, "Z"), &at(600, "Z")),
        )
        .await;
    let mut pending = s
        .world
        .drain(&s.ssm_events)
        .await
        .pop()
        .expect("PendingApproval event");
    assert_eq!(pending["detail"]["ops-item-status"], "PendingApproval");
    pending["detail"]["ops-item-status"] = "Approved".into();

    // When grant receives it
    let outcome = s
        .grantor
        .handle(pending.clone(), &home(), &invocation(Utc::now()))
        .await
        .unwrap();

    // Then SSM's word wins: nothing is attached, decided or announced; the
    // request waits for its real approval
    assert!(
        matches!(&outcome, GrantOutcome::Waiting { why, .. } if why.contains("PendingApproval")),
        "{outcome:?}"
    );
    assert!(s.world.policies("alice").await.is_empty());
    assert!(s.changegate_events().await.is_empty());
    let _ = id;
}

#[tokio::test]
async fn given_an_event_for_a_change_request_ssm_does_not_know_when_granting_then_refused() {
    let s = Scene::new().await;
    s.world.user("alice").await;
    let mut event = change_request_event("6f1c2e4a-9b7d-4c3e-8a21-5d0f3b9e7a64", "Approved");
    event["detail"]["ops-item-created-by"] =
        format!("arn:aws:iam::{HOME_ACCOUNT}:user/alice").into();
    let outcome = s
        .grantor
        .handle(event.clone(), &home(), &invocation(Utc::now()))
        .await
        .unwrap();
    assert!(
        matches!(&outcome, GrantOutcome::Refused { reason_code, .. } if reason_code == "change-request-not-found"),
        "{outcome:?}"
    );
    assert!(s.world.policies("alice").await.is_empty());
}

#[tokio::test]
async fn given_the_requester_was_deleted_before_approval_when_granting_then_refused_as_no_such_user()
 {
    let s = Scene::new().await;
    let (_, alice) = s.world.eligible_user("alice", PROD_ACCOUNT).await;
    let (_, bob) = s.world.user("bob").await;
    let id = s
        .world
        .file_request(
            &alice,
            request("alice", PROD_ACCOUNT, &at(0, "Z"), &at(600, "Z")),
        )
        .await;
    s.world
        .iam
        .remove_user_from_group()
        .group_name(APPROVERS_GROUP)
        .user_name("alice")
        .send()
        .await
        .unwrap();
    s.world
        .iam
        .delete_access_key()
        .user_name("alice")
        .access_key_id(&alice.access_key)
        .send()
        .await
        .unwrap();
    s.world
        .iam
        .delete_user()
        .user_name("alice")
        .send()
        .await
        .unwrap();
    s.world.signal(&bob, &id, true).await;

    let outcomes = s.deliver().await;

    assert!(outcomes.iter().any(|o| matches!(o, GrantOutcome::Refused { reason_code, .. } if reason_code == "user-not-found")), "{outcomes:?}");
}

#[tokio::test]
async fn given_pending_or_rejected_statuses_when_granting_then_ignored_without_calling_iam() {
    let s = Scene::new().await;
    let (_, alice) = s.world.eligible_user("alice", PROD_ACCOUNT).await;
    let (_, bob) = s.world.user("bob").await;
    let id = s
        .world
        .file_request(
            &alice,
            request("alice", PROD_ACCOUNT, &at(0, "Z"), &at(600, "Z")),
        )
        .await;
    s.world.signal(&bob, &id, false).await;

    let outcomes = s.deliver().await;

    assert_eq!(
        outcomes.len(),
        2,
        "PendingApproval and Rejected: {outcomes:?}"
    );
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, GrantOutcome::Ignored { .. })),
        "{outcomes:?}"
    );
    assert!(s.world.policies("alice").await.is_empty());
    assert!(s.changegate_events().await.is_empty());
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .expect("UTF-8 policy")
        .into_owned()
}

#[test]
fn given_a_required_permissions_boundary_when_grants_role_is_evaluated_then_it_writes_only_on_eligible_users_with_that_boundary()
 {
    use changegate_tests::iam::{self, Decision, Request};
    const BOUNDARY: &str = "arn:aws:iam::123456789012:policy/changegate-requester-boundary";
    let grant_role = "arn:aws:sts::123456789012:assumed-role/changegate-grant/grant";
    let alice = "arn:aws:iam::123456789012:user/alice";
    let put = |policies: &[Value], tag: Option<&str>, boundary: Option<&str>| {
        let mut req = Request::new(grant_role, "iam:PutUserPolicy", alice);
        if let Some(tag) = tag {
            req = req.with("aws:ResourceTag/changegate:eligible", tag);
        }
        if let Some(boundary) = boundary {
            req = req.with("iam:PermissionsBoundary", boundary);
        }
        iam::evaluate(&policies.iter().collect::<Vec<_>>(), &req)
    };
    let policies = |parameters: Value| {
        resolved_property("template.yaml", &parameters, "GrantFunction", "Policies")
            .as_array()
            .cloned()
            .expect("grant's policies")
    };
    let bounded = policies(json!({"ApproverArns": "arn:aws:iam::123456789012:user/bob",
        "RequesterPermissionsBoundaryArn": BOUNDARY}));
    // Given the boundary required: only an eligible user with exactly it.
    assert_eq!(
        put(&bounded, Some(PROD_ACCOUNT), Some(BOUNDARY)),
        Decision::Allow
    );
    assert_eq!(
        put(&bounded, Some(PROD_ACCOUNT), None),
        Decision::ImplicitDeny
    );
    let other = "arn:aws:iam::123456789012:policy/other";
    assert_eq!(
        put(&bounded, Some(PROD_ACCOUNT), Some(other)),
        Decision::ImplicitDeny
    );
    assert_eq!(put(&bounded, None, Some(BOUNDARY)), Decision::ImplicitDeny);
    // Given none required: any eligible user, and still no one untagged.
    let open = policies(json!({"ApproverArns": "arn:aws:iam::123456789012:user/bob"}));
    assert_eq!(put(&open, Some(PROD_ACCOUNT), None), Decision::Allow);
    assert_eq!(put(&open, None, None), Decision::ImplicitDeny);
    // And grant's undo (DeleteUserPolicy) needs the tag only, boundary or not.
    let delete = Request::new(grant_role, "iam:DeleteUserPolicy", alice)
        .with("aws:ResourceTag/changegate:eligible", PROD_ACCOUNT);
    assert_eq!(
        iam::evaluate(&bounded.iter().collect::<Vec<_>>(), &delete),
        Decision::Allow
    );
}

#[tokio::test]
async fn given_a_required_permissions_boundary_when_granting_then_a_user_without_it_is_refused_and_one_with_it_granted()
 {
    // Given a deployment that requires a permissions boundary, and alice and
    // carol eligible, alice without the boundary and carol with it
    let mut s = Scene::new().await;
    let boundary = s
        .world
        .iam
        .create_policy()
        .policy_name("changegate-requester-boundary")
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"*"}]}"#)
        .send()
        .await
        .unwrap()
        .policy()
        .and_then(|p| p.arn())
        .unwrap()
        .to_owned();
    let required = boundary.clone();
    let lookup = move |k: &str| match k {
        changegate::config::VAR_REQUESTER_BOUNDARY => Some(required.clone()),
        k => grant_env(k),
    };
    s.grantor = Grantor::new(GrantConfig::from_source(&lookup).unwrap(), &s.world.sdk);
    let (_, alice) = s.world.eligible_user("alice", PROD_ACCOUNT).await;
    let (_, carol) = s.world.eligible_user("carol", PROD_ACCOUNT).await;
    s.world
        .iam
        .put_user_permissions_boundary()
        .user_name("carol")
        .permissions_boundary(&boundary)
        .send()
        .await
        .unwrap();
    let (_, bob) = s.world.user("bob").await;

    // When both file a request and bob approves each
    let window = (at(-60, "Z"), at(3600, "Z"));
    for (who, creds) in [("alice", &alice), ("carol", &carol)] {
        let id = s
            .world
            .file_request(creds, request(who, PROD_ACCOUNT, &window.0, &window.1))
            .await;
        s.world.signal(&bob, &id, true).await;
    }
    let outcomes = s.deliver().await;

    // Then alice is refused, saying which boundary she lacks, and only carol holds a grant
    let refused: Vec<&GrantOutcome> = outcomes
        .iter()
        .filter(|o| matches!(o, GrantOutcome::Refused { reason_code, .. } if reason_code == "no-permissions-boundary"))
        .collect();
    assert_eq!(refused.len(), 1, "{outcomes:?}");
    let GrantOutcome::Refused { reason, .. } = refused[0] else {
        unreachable!()
    };
    assert!(
        reason.contains("alice") && reason.contains(&boundary),
        "{reason}"
    );
    assert!(s.world.policies("alice").await.is_empty());
    assert_eq!(s.world.policies("carol").await.len(), 1);
}
