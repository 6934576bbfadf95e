//! With 30% of AWS calls faulted (throttling, 500, 503, connection resets,
//! multi-second latency), nothing approved is silently dropped and nothing
//! granted outlives its window by more than three sweeps. The functions reach
//! the local AWS through `faultproxy.py`; the test plays Lambda, which retries
//! a failed asynchronous invocation twice and then hands the event and its
//! error to the failure destination.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use changegate::aws::Fault;
use changegate::config::{GrantConfig, RevokeConfig, VAR_ALLOWED_ACCOUNTS};
use changegate::grant::Grantor;
use changegate::revoke::Revoker;
use changegate_tests::*;
use chrono::Utc;
use serde_json::Value;

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

#[tokio::test]
async fn given_thirty_percent_of_calls_fault_when_requests_are_granted_and_expire_then_none_is_lost_and_none_outlives_three_sweeps()
 {
    let logs = Logs::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    // Given six approved requests (set up directly), and functions that reach
    // AWS through a proxy faulting 30% of calls
    let world = World::new().await;
    let ssm_q = world.capture("ssm-events", change_request_pattern()).await;
    let (_, approver) = world.user("approver").await;
    let users: Vec<String> = (0..6).map(|i| format!("user{i}")).collect();
    let end = Utc::now() + chrono::TimeDelta::seconds(40);
    let mut ids = Vec::new();
    for u in &users {
        let (_, creds) = world.eligible_user(u, PROD_ACCOUNT).await;
        let id = world
            .file_request(
                &creds,
                &[
                    ("IAMUserName", u),
                    ("AWSAccountId", PROD_ACCOUNT),
                    ("StartTime", &at(-1, "Z")),
                    ("EndTime", &at(40, "Z")),
                ],
            )
            .await;
        world.signal(&approver, &id, true).await;
        ids.push(id);
    }
    let events = world.drain(&ssm_q).await;
    let proxy = world.aws.fault_proxy(0.3, 7);
    let faulty = proxy.sdk().await;
    let config = GrantConfig::from_source(&|k: &str| {
        (k == VAR_ALLOWED_ACCOUNTS).then(|| PROD_ACCOUNT.to_owned())
    })
    .unwrap();
    let grantor = Grantor::new(config, &faulty);
    let revoker = Revoker::new(RevokeConfig::from_source(&|_: &str| None).unwrap(), &faulty);

    // When every event reaches grant, with Lambda's retries
    let mut failure_destination: Vec<(String, String)> = Vec::new();
    let mut failed_attempts = 0;
    for e in &events {
        let mut last: Option<Fault> = None;
        for _ in 0..ATTEMPTS {
            match grantor.handle(as_event(e), Utc::now()).await {
                Ok(_) => {
                    last = None;
                    break;
                }
                Err(fault) => {
                    failed_attempts += 1;
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

    // Then every request is granted, or its event waits in the failure destination with its reason
    for (u, id) in users.iter().zip(&ids) {
        let granted = world
            .policies(u)
            .await
            .contains(&format!("changegate-{id}"));
        let kept = failure_destination
            .iter()
            .any(|(fid, why)| fid == id && !why.is_empty());
        assert!(
            granted || kept,
            "{u}: neither granted nor kept ({failure_destination:?})"
        );
    }
    // And the faults were real: some attempts failed and were retried
    let stats = proxy.stats();
    let faults: u64 = stats["faults"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(Value::as_u64)
        .sum();
    assert!(faults > 10, "{stats}");
    assert!(failed_attempts > 0 || faults > 0, "{stats}");

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
    wait(Duration::from_millis(
        (end - Utc::now()).num_milliseconds().max(0) as u64 + 1500,
    ))
    .await;
    let scheduled: Value =
        serde_json::from_str(include_str!("../../events/scheduled.json")).unwrap();
    let mut sweeps = 0;
    let mut sweep_errors = Vec::new();
    while sweeps < 3 {
        sweeps += 1;
        if let Err(fault) = revoker.handle(scheduled.clone(), Utc::now(), None).await {
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

    // Then within three sweeps no grant is left, and a failed sweep said what it could not remove
    for u in &users {
        assert!(
            world.policies(u).await.is_empty(),
            "{u} still holds a grant after {sweeps} sweeps: {sweep_errors:?}"
        );
    }
    for e in &sweep_errors {
        assert!(e.contains("failed") || e.contains("could not"), "{e}");
    }
}

#[tokio::test]
async fn given_one_user_cannot_be_cleaned_when_sweeping_then_the_others_are_and_the_invocation_fails_naming_it()
 {
    // Given expired grants on alice and bob, and every AWS call about alice failing
    let world = World::new().await;
    let expired = |user: &str, id: &str| changegate::policy::Grant {
        change_request: changegate::ids::ChangeRequestId::parse(id).unwrap(),
        user: changegate::ids::IamUserName::parse(user).unwrap(),
        account: changegate::ids::AccountId::parse(PROD_ACCOUNT).unwrap(),
        role: changegate::ids::RoleName::parse("CM-Prd-role").unwrap(),
        window: changegate::window::Window::new(
            changegate::window::parse_time(&at(-7200, "Z")).unwrap(),
            changegate::window::parse_time(&at(-60, "Z")).unwrap(),
        )
        .unwrap(),
    };
    let (alices, bobs) = (
        expired("alice", "a0000000-0000-0000-0000-000000000001"),
        expired("bob", "b0000000-0000-0000-0000-000000000002"),
    );
    for g in [&alices, &bobs] {
        world.user(g.user.as_str()).await;
        world
            .iam
            .put_user_policy()
            .user_name(g.user.as_str())
            .policy_name(g.policy_name())
            .policy_document(g.document_json())
            .send()
            .await
            .unwrap();
    }
    let proxy = world.aws.fault_proxy(0.0, 1);
    proxy.configure(serde_json::json!({"rate": 1.0, "kinds": ["500"], "only": "UserName=alice"}));
    let revoker = Revoker::new(
        RevokeConfig::from_source(&|_: &str| None).unwrap(),
        &proxy.sdk().await,
    );

    // When the sweep runs
    let err = revoker
        .sweep(Utc::now(), None)
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
