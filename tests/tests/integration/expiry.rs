//! The fast path of revocation: a one-time EventBridge Scheduler schedule at
//! each grant's end (moto keeps schedules but does not fire them, so the test
//! hands the schedule's own input to revoke, as the scheduler would, with the
//! `now` it would fire at).

use changegate::config::{
    VAR_ALLOWED_ACCOUNTS, VAR_EXPIRY_GROUP, VAR_EXPIRY_ROLE, VAR_EXPIRY_TARGET,
};
use changegate_aws::grant::Grantor;
use changegate_aws::revoke::{RevokeOutcome, Revoker};
use changegate_tests::*;
use chrono::Utc;
use serde_json::Value;

const TARGET: &str = "arn:aws:lambda:us-east-1:123456789012:function:changegate-revoke";
const ROLE: &str = "arn:aws:iam::123456789012:role/changegate-scheduler";

fn setting(k: &str) -> Option<String> {
    match k {
        VAR_ALLOWED_ACCOUNTS => Some(PROD_ACCOUNT.to_owned()),
        VAR_EXPIRY_GROUP => Some("changegate".to_owned()),
        VAR_EXPIRY_TARGET => Some(TARGET.to_owned()),
        VAR_EXPIRY_ROLE => Some(ROLE.to_owned()),
        k => grant_env(k),
    }
}

struct Scene {
    world: World,
    grantor: Grantor,
    revoker: Revoker,
    scheduler: aws_sdk_scheduler::Client,
    ssm_events: String,
    cg_events: String,
    bob: Creds,
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
    let grantor = grantor_with(&world.sdk, &setting);
    let revoker = revoker_with(&world.sdk, &setting);
    let (_, bob) = world.user("bob").await;
    Scene {
        world,
        grantor,
        revoker,
        scheduler,
        ssm_events,
        cg_events,
        bob,
    }
}

#[tokio::test]
async fn given_a_grant_when_it_is_attached_then_a_one_time_schedule_at_its_end_invokes_revoke_which_removes_it_and_reports_the_lag()
 {
    // Given alice's grant for a window ending in an hour
    let s = scene().await;
    let end = at(3600, "Z");
    let (id, _) = s
        .world
        .grant(
            &s.grantor,
            &s.ssm_events,
            "alice",
            &s.bob,
            (&at(-1, "Z"), &end),
            None,
        )
        .await;
    let name = format!("changegate-{id}");

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
    // (rounded up to the whole minute: EventBridge Scheduler fires anywhere inside it)
    let at_minute = changegate::expiry::expiry_at(after(&end, 0));
    assert!(at_minute >= after(&end, 0) && at_minute < after(&end, 60));
    assert_eq!(
        expression,
        format!("at({})", at_minute.format("%Y-%m-%dT%H:%M:%S"))
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
    // (naming alice as granted and by IAM's unique id, which a rename keeps)
    let alice = s
        .world
        .iam
        .get_user()
        .user_name("alice")
        .send()
        .await
        .unwrap();
    assert_eq!(input["changegate-expiry"]["user"], "alice");
    assert_eq!(
        input["changegate-expiry"]["user-id"],
        alice.user().unwrap().user_id()
    );

    // When it fires a second before the end (clock skew), nothing happens
    let early = s
        .revoker
        .handle(input.clone(), &invocation(after(&end, -1)), None)
        .await
        .unwrap();
    assert!(matches!(early, RevokeOutcome::Ignored { .. }), "{early:?}");
    assert_eq!(s.world.policies("alice").await, vec![name.clone()]);
    s.world.drain(&s.cg_events).await;

    // When it fires 1.5 s after the end, revoke removes the grant
    let outcome = s
        .revoker
        .handle(
            input,
            &invocation(after(&end, 0) + chrono::TimeDelta::milliseconds(1500)),
            None,
        )
        .await
        .unwrap();

    // Then it is gone, and the revocation carries its lag from the window's end
    let RevokeOutcome::Revoked {
        revocation_lag_ms,
        cause,
        ..
    } = outcome
    else {
        panic!("{outcome:?}")
    };
    assert_eq!(
        (revocation_lag_ms, cause.as_str()),
        (Some(1500), "window-ended")
    );
    assert!(s.world.policies("alice").await.is_empty());
    let events = s.world.drain(&s.cg_events).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["detail"]["revocation-lag-ms"], 1500);
    assert_eq!(events[0]["detail"]["cause"], "window-ended");
}

#[tokio::test]
async fn given_a_scheduled_grant_when_its_change_request_is_cancelled_then_the_schedule_goes_with_the_grant()
 {
    let s = scene().await;
    let later = Utc::now() + chrono::TimeDelta::hours(1);
    let (id, alice) = s
        .world
        .grant(
            &s.grantor,
            &s.ssm_events,
            "alice",
            &s.bob,
            (&at(-1, "Z"), &at(3600, "Z")),
            Some(later),
        )
        .await;
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
    assert_eq!(cancelled["detail"]["ops-item-status"], "Cancelled");
    let outcome = s
        .revoker
        .handle(cancelled, &invocation(Utc::now()), None)
        .await
        .unwrap();

    assert!(
        matches!(&outcome, RevokeOutcome::Revoked { cause, .. } if cause == "Cancelled"),
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
    // Given alice's grant ending in an hour, whose schedule is gone
    let s = scene().await;
    let end = at(3600, "Z");
    let (id, _) = s
        .world
        .grant(
            &s.grantor,
            &s.ssm_events,
            "alice",
            &s.bob,
            (&at(-1, "Z"), &end),
            None,
        )
        .await;
    s.scheduler
        .delete_schedule()
        .group_name("changegate")
        .name(format!("changegate-{id}"))
        .send()
        .await
        .unwrap();

    // When the sweep runs a second before the end, and then a second after it
    let before = s
        .revoker
        .handle(scheduled_event(), &invocation(after(&end, -1)), None)
        .await
        .unwrap();
    let outcome = s
        .revoker
        .handle(scheduled_event(), &invocation(after(&end, 1)), None)
        .await
        .unwrap();

    // Then the first leaves it, the second removes it
    let RevokeOutcome::Swept(before) = before else {
        panic!("{before:?}")
    };
    assert!(before.revoked.is_empty(), "{before:?}");
    let RevokeOutcome::Swept(report) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(report.revoked, vec![format!("changegate-{id}")]);
    assert!(s.world.policies("alice").await.is_empty());
}
