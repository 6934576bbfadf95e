//! With 30% of AWS calls faulted (throttling, 500, 503, connection resets,
//! multi-second latency), retries get nearly every approved request through,
//! what fails says which AWS call failed, and nothing granted outlives its
//! window by more than three sweeps. The functions reach
//! the local AWS through `faultproxy.py`; the test plays Lambda, which retries
//! a failed asynchronous invocation twice and then hands the event and its
//! error to the failure destination.

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::{Arc, Mutex};

use changegate::fault::Fault;
use changegate_tests::*;
use chrono::Utc;

/// Lambda's asynchronous invocation: the first attempt and two retries.
const ATTEMPTS: usize = 3;

/// The log records written during the test, as the functions write them.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("logs")).into_owned()
    }
}

/// tracing caches each log statement's interest once for the whole process,
/// judged by the first thread to reach it: a sibling test without a
/// subscriber would make it "never", and this test's own subscriber would
/// see nothing (tokio-rs/tracing#3611). A global subscriber that takes every
/// event (and keeps none) keeps every statement live for the scoped one.
fn always_interested() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err only if a global subscriber exists already, which serves as well.
        let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry());
    });
}

/// Whether `text` names the AWS call that failed, as "iam:PutUserPolicy failed"
/// (or "... returned an unexpected answer") does.
fn names_the_operation(text: &str) -> bool {
    text.split_whitespace()
        .zip(text.split_whitespace().skip(1))
        .any(|(op, verb)| {
            let Some((service, action)) = op.split_once(':') else {
                return false;
            };
            // an AWS signing name (iam, ssm, dynamodb, ...) and an action name
            !service.is_empty()
                && service
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && action.starts_with(|c: char| c.is_ascii_uppercase())
                && action.chars().all(|c| c.is_ascii_alphanumeric())
                && (verb.starts_with("failed") || verb == "returned")
        })
}

#[test]
fn given_failure_texts_when_checked_then_only_those_naming_an_aws_operation_pass() {
    assert!(names_the_operation("dynamodb:PutItem failed: throttled"));
    assert!(!names_the_operation("change_request_id=x: failed"));
    assert!(names_the_operation(
        "iam:PutUserPolicy failed: dispatch failure"
    ));
    assert!(names_the_operation(
        "the revocation sweep could not finish 1 revocation(s): changegate-x on alice: iam:DeleteUserPolicy failed: 500"
    ));
    assert!(!names_the_operation(
        "the revocation sweep could not finish 1 revocation(s)"
    ));
    assert!(!names_the_operation("failed: service error"));
}

#[tokio::test]
async fn given_thirty_percent_of_calls_fault_when_requests_are_granted_and_expire_then_retries_get_them_through_and_none_outlives_three_sweeps()
 {
    let logs = Logs::default();
    let sink = logs.clone();
    always_interested();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    // Given six approved requests for windows ending in an hour (set up
    // directly), and functions that reach AWS through a proxy faulting 30% of calls
    let world = World::new().await;
    let ssm_q = world.capture("ssm-events", change_request_pattern()).await;
    let (_, approver) = world.user("approver").await;
    let users: Vec<String> = (0..6).map(|i| format!("user{i}")).collect();
    let end = at(3600, "Z");
    let mut ids = Vec::new();
    for u in &users {
        let (_, creds) = world.eligible_user(u, PROD_ACCOUNT).await;
        let id = world
            .file_request(&creds, request(u, PROD_ACCOUNT, &at(-1, "Z"), &end))
            .await;
        world.signal(&approver, &id, true).await;
        ids.push(id);
    }
    let events = world.drain(&ssm_q).await;
    let proxy = world.aws.fault_proxy(0.3, 13);
    let faulty = proxy.sdk().await;
    let (grantor, revoker) = (grantor(&faulty), revoker(&faulty));

    // When every event reaches grant, with Lambda's retries
    let mut failure_destination: Vec<(String, String)> = Vec::new();
    let mut failed_invocations: Vec<String> = Vec::new();
    for e in &events {
        let mut last: Option<Fault> = None;
        // One invocation per event; Lambda's retries keep its request id.
        let first = invocation(Utc::now());
        for attempt in 0..ATTEMPTS {
            let inv = match attempt {
                0 => first.clone(),
                _ => retry_of(&first, Utc::now()),
            };
            match grantor.handle(e.clone(), &home(), &inv).await {
                Ok(_) => {
                    last = None;
                    break;
                }
                Err(fault) => {
                    failed_invocations.push(fault.to_string());
                    last = Some(fault);
                }
            }
        }
        if let Some(fault) = last {
            failure_destination.push((
                e["detail"]["change-request-id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                fault.to_string(),
            ));
        }
    }

    // Then retries get almost every request through: at most one of the six
    // ends in the failure destination, and each failure names the AWS call that failed
    let lost: BTreeSet<&str> = failure_destination
        .iter()
        .map(|(id, _)| id.as_str())
        .collect();
    assert!(
        lost.len() <= 1,
        "{} of 6 requests in the failure destination: {failure_destination:?}",
        lost.len()
    );
    // (Lambda's retries were needed: some invocations failed, and each
    // failure, retried or kept, names the AWS call that failed)
    assert!(
        !failed_invocations.is_empty(),
        "no invocation failed: the faults proved nothing"
    );
    for why in failed_invocations
        .iter()
        .chain(failure_destination.iter().map(|(_, why)| why))
    {
        assert!(names_the_operation(why), "{why}");
    }
    // And every request is granted, or its event waits in the failure destination
    for (u, id) in users.iter().zip(&ids) {
        let granted = world
            .policies(u)
            .await
            .contains(&format!("changegate-{id}"));
        assert!(
            granted || lost.contains(id.as_str()),
            "{u}: neither granted nor kept ({failure_destination:?})"
        );
    }
    // And the faults hit the calls that matter: IAM writes and SSM reads
    let faulted = proxy.faulted_actions();
    let hits = |prefixes: &[&str]| {
        faulted
            .iter()
            .filter(|(op, _)| prefixes.iter().any(|p| op.starts_with(p)))
            .map(|(_, n)| n)
            .sum::<u64>()
    };
    assert!(
        hits(&["iam:PutUserPolicy"]) > 0,
        "no IAM write was faulted: {faulted:?}"
    );
    assert!(
        hits(&[
            "ssm:GetAutomationExecution",
            "ssm:DescribeAutomationStepExecutions"
        ]) > 0,
        "no SSM read was faulted: {faulted:?}"
    );

    // And every policy in IAM has its record in the logs, written before it was attached
    let text = logs.text();
    for (u, id) in users.iter().zip(&ids) {
        if world
            .policies(u)
            .await
            .contains(&format!("changegate-{id}"))
        {
            let record = text.lines().find(|l| {
                l.contains(&format!("change_request_id={id}"))
                    && l.contains("outcome=\"attaching\"")
            });
            assert!(record.is_some(), "{u}: no log record for its policy");
        }
    }

    // When the windows have ended and the one-minute sweep runs (each sweep one invocation)
    let mut sweeps = 0;
    let mut sweep_errors = Vec::new();
    while sweeps < 3 {
        sweeps += 1;
        if let Err(fault) = revoker
            .handle(
                scheduled_event(),
                &invocation(after(&end, 60 * sweeps)),
                None,
            )
            .await
        {
            sweep_errors.push(fault.to_string());
        }
        let mut left = 0;
        for u in &users {
            left += world.policies(u).await.len();
        }
        if left == 0 {
            break;
        }
    }

    // Then within three sweeps no grant is left (what a failed sweep says is
    // the next test's subject: at this seed no sweep fails outright)
    for u in &users {
        assert!(
            world.policies(u).await.is_empty(),
            "{u} still holds a grant after {sweeps} sweeps: {sweep_errors:?}"
        );
    }
}

#[tokio::test]
async fn given_one_user_cannot_be_cleaned_when_sweeping_then_the_others_are_and_the_invocation_fails_naming_it()
 {
    // Given expired grants on alice and bob, and every AWS call about alice failing
    let world = World::new().await;
    let expired = |user: &str, id: &str| grant_of(id, user, &at(-7200, "Z"), &at(-60, "Z"));
    let (alices, bobs) = (
        expired("alice", "a0000000-0000-0000-0000-000000000001"),
        expired("bob", "b0000000-0000-0000-0000-000000000002"),
    );
    for g in [&alices, &bobs] {
        world.user(g.user.as_str()).await;
        world.attach(g).await;
    }
    let proxy = world.aws.fault_proxy(0.0, 1);
    proxy.configure(serde_json::json!({"rate": 1.0, "kinds": ["500"], "only": "UserName=alice"}));
    let revoker = revoker(&proxy.sdk().await);

    // When the sweep runs
    let err = revoker
        .sweep(&invocation(Utc::now()), None)
        .await
        .expect_err("alice's grant could not be removed");

    // Then bob's grant is gone, alice's stays, and the failure names it so that an alarm can fire
    assert!(world.policies("bob").await.is_empty());
    assert_eq!(world.policies("alice").await, vec![alices.policy_name()]);
    let Fault::Sweep(failures) = &err else {
        panic!("{err}")
    };
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        failures[0].starts_with(&format!(
            "{} on alice: iam:DeleteUserPolicy failed",
            alices.policy_name()
        )),
        "{failures:?}"
    );
}
