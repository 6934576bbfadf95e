//! The fast path of revocation: a one-time EventBridge Scheduler schedule at
//! each grant's end (moto keeps schedules but does not fire them, so the test
//! hands the schedule's own input to revoke, as the scheduler would).

use changegate::config::{
    GrantConfig, RevokeConfig, VAR_ALLOWED_ACCOUNTS, VAR_EXPIRY_GROUP, VAR_EXPIRY_ROLE,
    VAR_EXPIRY_TARGET,
};
use changegate::grant::Grantor;
use changegate::revoke::{RevokeOutcome, Revoker};
use changegate_tests::*;
use chrono::Utc;
use serde_json::Value;
use std::time::Duration;

const TARGET: &str = "arn:aws:lambda:us-east-1:123456789012:function:changegate-revoke";
const ROLE: &str = "arn:aws:iam::123456789012:role/changegate-scheduler";

fn setting(k: &str) -> Option<String> {
    match k {
        VAR_ALLOWED_ACCOUNTS => Some(PROD_ACCOUNT.to_owned()),
        VAR_EXPIRY_GROUP => Some("changegate".to_owned()),
        VAR_EXPIRY_TARGET => Some(TARGET.to_owned()),
        VAR_EXPIRY_ROLE => Some(ROLE.to_owned()),
        _ => None,
    }
}

struct Scene {
    world: World,
    grantor: Grantor,
    revoker: Revoker,
    scheduler: aws_sdk_scheduler::Client,
    ssm_events: String,
    cg_events: String,
}

async fn scene() -> Scene {
    let world = World::new().await;
    let scheduler = aws_sdk_scheduler::Client::new(&world.sdk);
    scheduler
        .create_schedule_group()
        .name("changegate")
        .send()
        .await
        .expect("schedule group");
    let ssm_events = world.capture("ssm-events", change_request_pattern()).await;
    let cg_events = world
        .capture("changegate-events", changegate_pattern())
        .await;
    let grantor = Grantor::new(GrantConfig::from_source(&setting).unwrap(), &world.sdk);
    let revoker = Revoker::new(RevokeConfig::from_source(&setting).unwrap(), &world.sdk);
    Scene {
        world,
        grantor,
        revoker,
        scheduler,
        ssm_events,
        cg_events,
    }
}

/// Waits until the window that `granted` made, ending `secs` after `from`, is over.
async fn until_over(from: chrono::DateTime<Utc>, secs: i64) {
    let end = from + chrono::TimeDelta::seconds(secs);
    wait(Duration::from_millis(
        (end - Utc::now()).num_milliseconds().max(0) as u64 + 1500,
    ))
    .await;
}

/// Files and approves a request for alice ending `secs` from now; grant sees its events.
async fn granted(s: &Scene, alice: &Creds, bob: &Creds, secs: i64, scheduled: bool) -> String {
    let ssm = aws_sdk_ssm::Client::new(&s.world.aws.sdk_as(alice).await);
    let params = [
        ("IAMUserName", "alice".to_owned()),
        ("AWSAccountId", PROD_ACCOUNT.to_owned()),
        ("StartTime", at(-1, "Z")),
        ("EndTime", at(secs, "Z")),
    ];
    let runbook = aws_sdk_ssm::types::Runbook::builder()
        .document_name("changegate-access-runbook")
        .set_parameters(Some(
            params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), vec![v.clone()]))
                .collect(),
        ))
        .build()
        .unwrap();
    let later = scheduled
        .then(|| aws_sdk_ssm::primitives::DateTime::from_secs(Utc::now().timestamp() + 3600));
    let id = ssm
        .start_change_request_execution()
        .document_name("changegate-access")
        .runbooks(runbook)
        .set_scheduled_time(later)
        .send()
        .await
        .unwrap();
    let id = id.automation_execution_id().unwrap().to_owned();
    s.world.signal(bob, &id, true).await;
    for body in s.world.drain(&s.ssm_events).await {
        s.grantor.handle(as_event(&body), Utc::now()).await.unwrap();
    }
    id
}

#[tokio::test]
async fn given_a_grant_when_it_is_attached_then_a_one_time_schedule_at_its_end_invokes_revoke_which_removes_it_and_reports_the_lag()
 {
    // Given alice's grant for a window ending in 20 seconds
    let s = scene().await;
    let (_, alice) = s.world.eligible_user("alice", PROD_ACCOUNT).await;
    let (_, bob) = s.world.user("bob").await;
    let filed = Utc::now();
    let id = granted(&s, &alice, &bob, 20, false).await;
    let name = format!("changegate-{id}");
    assert_eq!(s.world.policies("alice").await, vec![name.clone()]);

    // Then a one-time schedule at the window's end targets revoke, and deletes itself after
    let schedule = s
        .scheduler
        .get_schedule()
        .group_name("changegate")
        .name(&name)
        .send()
        .await
        .expect("schedule");
    let expression = schedule.schedule_expression().unwrap();
    assert!(
        expression.starts_with("at(") && expression.ends_with(')'),
        "{expression}"
    );
    assert_eq!(schedule.schedule_expression_timezone(), Some("UTC"));
    assert_eq!(
        schedule.action_after_completion().map(|a| a.as_str()),
        Some("DELETE")
    );
    let target = schedule.target().unwrap();
    assert_eq!(target.arn(), TARGET);
    assert_eq!(target.role_arn(), ROLE);
    let input: Value = serde_json::from_str(target.input().unwrap()).unwrap();

    // When it fires before the end (clock skew), nothing happens; after the end, revoke removes the grant
    let early = s
        .revoker
        .handle(input.clone(), Utc::now(), None)
        .await
        .unwrap();
    assert!(matches!(early, RevokeOutcome::Ignored { .. }), "{early:?}");
    s.world.drain(&s.cg_events).await;
    until_over(filed, 20).await;
    let outcome = s.revoker.handle(input, Utc::now(), None).await.unwrap();

    // Then it is gone, and the revocation carries its lag from the window's end
    let RevokeOutcome::Expired {
        revocation_lag_ms, ..
    } = outcome
    else {
        panic!("{outcome:?}")
    };
    assert!(
        (0..5_000).contains(&revocation_lag_ms),
        "{revocation_lag_ms}"
    );
    assert!(s.world.policies("alice").await.is_empty());
    let events = s.world.drain(&s.cg_events).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["detail"]["revocation-lag-ms"], revocation_lag_ms);
    assert_eq!(events[0]["detail"]["cause"], "window-ended");
}

#[tokio::test]
async fn given_a_scheduled_grant_when_its_change_request_is_cancelled_then_the_schedule_goes_with_the_grant()
 {
    let s = scene().await;
    let (_, alice) = s.world.eligible_user("alice", PROD_ACCOUNT).await;
    let (_, bob) = s.world.user("bob").await;
    let id = granted(&s, &alice, &bob, 3600, true).await;
    let name = format!("changegate-{id}");
    assert!(
        s.scheduler
            .get_schedule()
            .group_name("changegate")
            .name(&name)
            .send()
            .await
            .is_ok()
    );

    let ssm = aws_sdk_ssm::Client::new(&s.world.aws.sdk_as(&alice).await);
    ssm.stop_automation_execution()
        .automation_execution_id(&id)
        .send()
        .await
        .unwrap();
    let cancelled = s.world.drain(&s.ssm_events).await.pop().unwrap();
    let outcome = s.revoker.handle(cancelled, Utc::now(), None).await.unwrap();

    assert!(
        matches!(outcome, RevokeOutcome::EndedEarly { .. }),
        "{outcome:?}"
    );
    assert!(s.world.policies("alice").await.is_empty());
    let gone = s
        .scheduler
        .get_schedule()
        .group_name("changegate")
        .name(&name)
        .send()
        .await;
    assert!(gone.is_err_and(|e| {
        e.as_service_error()
            .is_some_and(|e| e.is_resource_not_found_exception())
    }));
}

#[tokio::test]
async fn given_a_grant_whose_schedule_was_lost_when_the_sweep_runs_after_the_end_then_the_safety_net_removes_it()
 {
    let s = scene().await;
    let (_, alice) = s.world.eligible_user("alice", PROD_ACCOUNT).await;
    let (_, bob) = s.world.user("bob").await;
    let filed = Utc::now();
    let id = granted(&s, &alice, &bob, 20, false).await;
    s.scheduler
        .delete_schedule()
        .group_name("changegate")
        .name(format!("changegate-{id}"))
        .send()
        .await
        .unwrap();
    until_over(filed, 20).await;

    let scheduled: Value =
        serde_json::from_str(include_str!("../../events/scheduled.json")).unwrap();
    let outcome = s.revoker.handle(scheduled, Utc::now(), None).await.unwrap();

    let RevokeOutcome::Swept(report) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(report.revoked, vec![format!("changegate-{id}")]);
}
