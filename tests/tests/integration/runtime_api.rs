//! The built function binaries, driven through the Lambda Runtime API
//! (`tests/localaws/lambda_runtime.py`), configured only by environment
//! variables, against the local AWS: the whole lifecycle as Lambda runs it.

use std::time::Duration;

use chrono::Utc;

use changegate_tests::*;

fn outcomes(run: &Run) -> Vec<String> {
    run.outcomes()
}

#[tokio::test]
async fn given_the_built_functions_when_a_request_is_filed_approved_and_its_window_ends_then_access_is_granted_notified_and_revoked()
 {
    // Given the local AWS, alice and bob, the topic, and EventBridge rules feeding queues
    let world = World::new().await;
    let (_, alice) = world.eligible_user("alice", PROD_ACCOUNT).await;
    let (_, bob) = world.user("bob").await;
    let ssm_q = world.capture("ssm-events", change_request_pattern()).await;
    let cg_q = world
        .capture("changegate-events", changegate_pattern())
        .await;
    let topic = world.topic("changegate-notifications").await;
    let mut env = world.aws.function_env();
    env.push(("CHANGEGATE_ALLOWED_ACCOUNTS".into(), PROD_ACCOUNT.into()));
    env.push(("CHANGEGATE_TOPIC_ARN".into(), topic));

    // When alice asks for an 8-second window written in +09:00 and bob approves
    // (the binaries read the real clock: this is the suite's one real wait,
    // long enough for grant to run inside it while the other tests load the
    // machine, and spent while they run)
    let end = at(8, "+09:00");
    let id = world
        .file_request(
            &alice,
            request("alice", PROD_ACCOUNT, &at(-1, "+09:00"), &end),
        )
        .await;
    world.signal(&bob, &id, true).await;
    let ssm_events = world.drain(&ssm_q).await;

    // Then grant (every status event, one warm process) grants exactly once
    let grant = invoke("grant", &ssm_events, &env);
    assert!(
        grant.output.status.success(),
        "grant failed: {}",
        grant.stderr()
    );
    let got = outcomes(&grant);
    assert_eq!(got.iter().filter(|o| *o == "granted").count(), 1, "{got:?}");
    assert_eq!(
        world.policies("alice").await,
        vec![format!("changegate-{id}")]
    );

    // And a sweep before the end leaves it (checked when the machine got here
    // a second before the end: the binaries read the real clock)
    if Utc::now() < after(&end, -1) {
        let early = invoke("revoke", &[scheduled_event()], &env);
        assert!(
            early.invocations[0]["response"]["revoked"]
                .as_array()
                .is_some_and(Vec::is_empty),
            "{:?}",
            early.invocations
        );
    }

    // And once the window has ended, the scheduled sweep removes and announces it
    let left = (after(&end, 1) - Utc::now()).to_std().unwrap_or_default();
    assert!(
        left <= Duration::from_secs(9),
        "the window ends within seconds: {left:?}"
    );
    tokio::time::sleep(left).await;
    let revoke = invoke("revoke", &[scheduled_event()], &env);
    assert!(
        revoke.output.status.success(),
        "revoke failed: {}",
        revoke.stderr()
    );
    assert_eq!(
        revoke.invocations[0]["response"]["revoked"],
        serde_json::json!([format!("changegate-{id}")])
    );
    assert!(world.policies("alice").await.is_empty());
    let announced = world.drain(&cg_q).await;
    let types: Vec<&str> = announced
        .iter()
        .filter_map(|e| e["detail-type"].as_str())
        .collect();
    assert_eq!(types, ["Access Granted", "Access Revoked"]);

    // And notify tells people about the request, the grant and the revocation
    let mut to_notify = ssm_events.clone();
    to_notify.extend(announced);
    let notify = invoke("notify", &to_notify, &env);
    assert!(
        notify.output.status.success(),
        "notify failed: {}",
        notify.stderr()
    );
    let kinds: Vec<String> = notify
        .invocations
        .iter()
        .filter_map(|i| i["response"]["kind"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        kinds,
        [
            "request-pending-approval",
            "request-approved",
            "access-granted",
            "access-revoked"
        ],
        "{:?}",
        notify.invocations
    );
}

#[test]
fn given_no_allowlist_when_grant_starts_then_it_stops_naming_the_missing_variable() {
    let env = vec![
        ("AWS_REGION".to_owned(), REGION.to_owned()),
        ("CHANGEGATE_ALLOWED_ACCOUNTS".to_owned(), String::new()),
    ];
    let run = invoke("grant", &[scheduled_event()], &env);
    assert!(!run.output.status.success());
    assert!(
        run.stderr()
            .contains("CHANGEGATE_ALLOWED_ACCOUNTS is not set"),
        "{}",
        run.stderr()
    );
}

#[test]
fn given_a_malformed_topic_arn_when_notify_starts_then_it_stops_naming_the_variable() {
    let env = vec![
        ("AWS_REGION".to_owned(), REGION.to_owned()),
        ("CHANGEGATE_TOPIC_ARN".to_owned(), "changegate".to_owned()),
    ];
    let run = invoke("notify", &[scheduled_event()], &env);
    assert!(!run.output.status.success());
    assert!(
        run.stderr()
            .contains("CHANGEGATE_TOPIC_ARN=\"changegate\" is not valid"),
        "{}",
        run.stderr()
    );
}
