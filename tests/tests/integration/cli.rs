//! The `changegate` command (cli/, docs/cli.md), built and run as a person
//! runs it: signed with their own keys (the standard credential chain, from
//! the environment), against the local AWS, over the stack's settings
//! parameter. The request it files is the request runbook's, so grant and
//! the runbook are the real ones (automation.rs's world).

use std::process::Output;

use serde_json::{Value, json};

use changegate_tests::*;

use changegate_tests::operators::OperatorRunbook;

use crate::automation::{Auto, REQUEST_RUNBOOK, invoke};

/// Writes the stack's settings parameter as template.yaml's `CliSettings`
/// holds them: the functions' own environment, and an alias for production.
async fn settings(auto: &Auto) {
    settings_with(auto, &[]).await;
}

/// The same, with revoke's variables `extra` (the end runbook's) too.
async fn settings_with(auto: &Auto, extra: &[(String, String)]) {
    let mut values: serde_json::Map<String, Value> = auto
        .env
        .iter()
        .chain(extra)
        .filter(|(k, _)| k.starts_with("CHANGEGATE_"))
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    values.insert(
        "CHANGEGATE_ACCOUNT_ALIASES".into(),
        json!(format!("prod={PROD_ACCOUNT}")),
    );
    aws_sdk_ssm::Client::new(&auto.world.sdk)
        .put_parameter()
        .name("/changegate/stacks/changegate/cli")
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .value(Value::Object(values).to_string())
        .send()
        .await
        .expect("the stack's settings");
}

/// Every execution of the request runbook so far.
async fn filed(auto: &Auto) -> Vec<String> {
    let filter = aws_sdk_ssm::types::AutomationExecutionFilter::builder()
        .key(aws_sdk_ssm::types::AutomationExecutionFilterKey::DocumentNamePrefix)
        .values(REQUEST_RUNBOOK)
        .build()
        .expect("filter");
    aws_sdk_ssm::Client::new(&auto.world.sdk)
        .describe_automation_executions()
        .filters(filter)
        .send()
        .await
        .expect("describe automation executions")
        .automation_execution_metadata_list()
        .iter()
        .filter_map(|m| m.automation_execution_id().map(str::to_owned))
        .collect()
}

/// The environment a person's shell gives the command: their keys, the local
/// AWS, and no profile files.
fn person(auto: &Auto, creds: &Creds) -> Vec<(String, String)> {
    [
        ("PATH", std::env::var("PATH").unwrap_or_default()),
        ("AWS_ENDPOINT_URL", auto.world.aws.endpoint.clone()),
        ("AWS_REGION", REGION.to_owned()),
        ("AWS_ACCESS_KEY_ID", creds.access_key.clone()),
        ("AWS_SECRET_ACCESS_KEY", creds.secret.clone()),
        (
            "AWS_CONFIG_FILE",
            "/nonexistent/changegate-test-config".to_owned(),
        ),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/changegate-test-credentials".to_owned(),
        ),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// `changegate ARGS` as the person holding `creds`.
fn changegate(auto: &Auto, creds: &Creds, args: &[&str]) -> Output {
    std::process::Command::new(built_binary("changegate"))
        .args(args)
        .env_clear()
        .envs(person(auto, creds))
        .output()
        .expect("run changegate")
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(out)))
}

#[tokio::test]
async fn given_the_command_when_alice_requests_bob_approves_and_alice_assumes_and_ends_then_each_step_is_what_changegate_does()
 {
    // Given the stack's settings and its end runbook, alice (eligible for
    // prod) and bob (an approver)
    let auto = Auto::new().await;
    let ops = OperatorRunbook::create(&auto.world, "").await;
    settings_with(&auto, &ops.env()).await;

    // When alice checks a request first: it would be accepted, nothing is filed
    let dry = changegate(
        &auto,
        &auto.alice,
        &[
            "--output",
            "json",
            "request",
            "prod",
            "--for",
            "1h",
            "--reason",
            "INC-4711",
            "--dry-run",
        ],
    );
    assert_eq!(code(&dry), 0, "{}", text(&dry));
    assert_eq!(json_of(&dry)["accepted"], true, "{}", text(&dry));
    assert!(filed(&auto).await.is_empty());

    // And files it: the request runbook's execution, waiting for approval
    let filed = changegate(
        &auto,
        &auto.alice,
        &[
            "--output", "json", "request", "prod", "--for", "1h", "--reason", "INC-4711",
        ],
    );
    assert_eq!(code(&filed), 0, "{}", text(&filed));
    let id = json_of(&filed)["id"].as_str().expect("id").to_owned();
    auto.wait_status(&id, &["Waiting"]).await;
    let waiting = changegate(&auto, &auto.alice, &["--output", "json", "status", &id]);
    assert_eq!(code(&waiting), 4, "waiting exits 4: {}", text(&waiting));
    assert_eq!(json_of(&waiting)["phase"], "waiting");
    assert_eq!(json_of(&waiting)["reason"], "INC-4711");

    // Then alice cannot approve her own request, though she is an approver
    let own = changegate(&auto, &auto.alice, &["approve", &id]);
    assert_eq!(code(&own), 3, "{}", text(&own));
    assert!(text(&own).contains("your own request"), "{}", text(&own));
    assert_eq!(auto.wait_status(&id, &["Waiting"]).await, "Waiting");

    // And nothing can be assumed before a decision
    let early = changegate(&auto, &auto.alice, &["assume", &id]);
    assert_eq!(code(&early), 4, "{}", text(&early));

    // When bob approves it, as himself, and grant decides on the runbook's call
    let approved = changegate(&auto, &auto.bob, &["approve", &id, "--comment", "ok"]);
    assert_eq!(code(&approved), 0, "{}", text(&approved));
    assert!(text(&approved).contains("user/bob"), "{}", text(&approved));
    let payload = auto.runbook_call().await;
    assert_eq!(auto.grant(&[payload]).outcomes(), ["granted"]);

    // Then alice sees it granted, and assumes the role named as the grant requires
    let granted = changegate(&auto, &auto.alice, &["status", &id]);
    assert_eq!(code(&granted), 0, "{}", text(&granted));
    assert!(
        text(&granted).contains("granted until"),
        "{}",
        text(&granted)
    );
    let exports = changegate(&auto, &auto.alice, &["assume", &id]);
    assert_eq!(code(&exports), 0, "{}", text(&exports));
    assert!(
        text(&exports).contains("export AWS_SESSION_TOKEN=")
            && text(&exports).contains(&format!("arn:aws:iam::{PROD_ACCOUNT}:role/"))
            && text(&exports).contains("as session alice"),
        "{}",
        text(&exports)
    );
    let process = changegate(&auto, &auto.alice, &["assume", &id, "--credential-process"]);
    assert_eq!(json_of(&process)["Version"], 1, "{}", text(&process));
    let run = changegate(
        &auto,
        &auto.alice,
        &[
            "assume",
            &id,
            "--",
            "sh",
            "-c",
            "test -n \"$AWS_SESSION_TOKEN\" && test \"$AWS_DEFAULT_REGION\" = \"$AWS_REGION\" && exit 7",
        ],
    );
    // (the command gets the session and the region under both names, as the
    // AWS CLI reads one and the SDKs the other)
    assert_eq!(code(&run), 7, "the command's own status: {}", text(&run));

    // And the request's execution has ended while her access is live
    assert_eq!(auto.wait_status(&id, &["Success"]).await, "Success");

    // And carol may not end alice's access (refused up front)
    let theirs = changegate(&auto, &auto.carol, &["end", &id]);
    assert_eq!(code(&theirs), 3, "{}", text(&theirs));
    // When alice ends it: the command starts the end runbook, whose call
    // revoke authenticates from Systems Manager's records
    let ended = changegate(
        &auto,
        &auto.alice,
        &["--output", "json", "end", &id, "--reason", "fixed"],
    );
    assert_eq!(code(&ended), 0, "{}", text(&ended));
    let run = json_of(&ended)["end_run"]
        .as_str()
        .expect("the end runbook's execution")
        .to_owned();
    let call = OperatorRunbook::call(&auto.world, &run).await;
    let mut env = auto.env.clone();
    env.extend(ops.env());
    let revoked = invoke("revoke", std::slice::from_ref(&call.payload), &env);
    assert_eq!(revoked.outcomes(), ["revoked"], "{:?}", revoked.invocations);
    call.answer(&auto.world, &revoked.responses()[0]);
    // Then the access is gone, and her status says who ended it and why
    assert!(auto.world.policies("alice").await.is_empty());
    let status = changegate(&auto, &auto.alice, &["status", &id]);
    assert_eq!(code(&status), 0, "{}", text(&status));
    assert!(
        text(&status).contains("ended early by its requester")
            && text(&status).contains("user/alice: fixed"),
        "{}",
        text(&status)
    );
}

#[tokio::test]
async fn given_requests_changegate_would_refuse_when_filed_with_the_command_then_each_is_refused_up_front_and_nothing_is_filed()
 {
    // Given the stack's settings; carol holds no eligibility tag
    let auto = Auto::new().await;
    settings(&auto).await;
    let cases: [(&Creds, &[&str], i32, &str); 6] = [
        (
            &auto.carol,
            &["request", "prod", "--for", "1h", "--dry-run"],
            3,
            "not eligible",
        ),
        (
            &auto.alice,
            &["request", "444455556666", "--for", "1h"],
            3,
            "account-not-allowed",
        ),
        (
            &auto.alice,
            &["request", "prod", "--for", "100d"],
            3,
            "window-too-long",
        ),
        (
            &auto.alice,
            &["request", "prod", "--for", "1h", "--user", "bob"],
            3,
            "not-the-requester",
        ),
        (
            &auto.alice,
            &["request", "staging", "--for", "1h"],
            2,
            "known aliases: prod (111122223333)",
        ),
        (
            &auto.alice,
            &["request", "prod", "--for", "soon"],
            2,
            "not a length of time",
        ),
    ];
    for (who, args, exit, says) in cases {
        // When each is filed
        let out = changegate(&auto, who, args);
        // Then it is refused (3) or misused (2), saying why
        assert_eq!(code(&out), exit, "{args:?}: {}", text(&out));
        assert!(text(&out).contains(says), "{args:?}: {}", text(&out));
    }
    // And nothing reached Systems Manager
    assert!(filed(&auto).await.is_empty());
    // And another stack's name is not found (5), saying how to name one
    let other = changegate(&auto, &auto.alice, &["--stack", "staging", "status"]);
    assert_eq!(code(&other), 5, "{}", text(&other));
    assert!(text(&other).contains("--stack"), "{}", text(&other));
}

#[tokio::test]
async fn given_alice_waits_on_her_request_when_bob_finds_it_pending_and_approves_then_her_wait_ends_granted_and_it_is_listed_active()
 {
    // Given the stack's settings; alice files a request and waits on it
    let auto = Auto::new().await;
    settings(&auto).await;
    let waiting = std::process::Command::new(built_binary("changegate"))
        .args([
            "--output", "json", "request", "prod", "--for", "1h", "--wait",
        ])
        .env_clear()
        .envs(person(&auto, &auto.alice))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("changegate request --wait");
    let id = loop {
        if let Some(id) = filed(&auto).await.into_iter().next() {
            break id;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    auto.wait_status(&id, &["Waiting"]).await;

    // When bob lists what waits for his decision: alice's request; alice's own list has none
    let pending = changegate(&auto, &auto.bob, &["--output", "json", "list", "--pending"]);
    assert_eq!(code(&pending), 0, "{}", text(&pending));
    let ids: Vec<String> = json_of(&pending)
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|v| v["id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(ids, [id.as_str()]);
    let hers = changegate(
        &auto,
        &auto.alice,
        &["--output", "json", "list", "--pending"],
    );
    assert_eq!(
        json_of(&hers),
        json!([]),
        "her own request is not hers to decide"
    );
    let none_active = changegate(
        &auto,
        &auto.carol,
        &["--output", "json", "list", "--active"],
    );
    assert_eq!(json_of(&none_active), json!([]));

    // And bob approves and grant decides
    let approved = changegate(&auto, &auto.bob, &["approve", &id]);
    assert_eq!(code(&approved), 0, "{}", text(&approved));
    let payload = auto.runbook_call().await;
    assert_eq!(auto.grant(&[payload]).outcomes(), ["granted"]);

    // Then alice's wait ends, granted, having said it waited for approval
    let out = waiting.wait_with_output().expect("the wait ends");
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(json_of(&out)["phase"], "granted", "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("waiting for approval"),
        "{}",
        text(&out)
    );

    // And the grant is listed as active, for anyone following the account
    let active = changegate(
        &auto,
        &auto.carol,
        &["--output", "json", "list", "--active"],
    );
    assert_eq!(json_of(&active)[0]["id"], id.as_str(), "{}", text(&active));
    assert_eq!(json_of(&active)[0]["phase"], "granted");
}

#[tokio::test]
async fn given_alices_granted_request_when_she_extends_it_and_bob_approves_then_one_policy_runs_to_the_new_end_and_the_old_one_is_retired()
 {
    // Given alice's request for an hour, approved by bob and granted
    let auto = Auto::new().await;
    settings(&auto).await;
    let filed = changegate(
        &auto,
        &auto.alice,
        &["--output", "json", "request", "prod", "--for", "1h"],
    );
    assert_eq!(code(&filed), 0, "{}", text(&filed));
    let first = json_of(&filed)["id"].as_str().expect("id").to_owned();
    auto.wait_status(&first, &["Waiting"]).await;
    let approved = changegate(&auto, &auto.bob, &["approve", &first]);
    assert_eq!(code(&approved), 0, "{}", text(&approved));
    let payload = auto.runbook_call().await;
    assert_eq!(auto.grant(&[payload]).outcomes(), ["granted"]);
    let _ = auto.announcements().await;

    // When carol tries to extend it, or alice asks for more than the
    // deployment's maximum (8 hours) counted from the original start
    let theirs = changegate(&auto, &auto.carol, &["extend", &first, "--by", "1h"]);
    assert_eq!(code(&theirs), 3, "{}", text(&theirs));
    assert!(text(&theirs).contains("not yours"), "{}", text(&theirs));
    let too_long = changegate(&auto, &auto.alice, &["extend", &first, "--by", "8h"]);
    assert_eq!(code(&too_long), 3, "{}", text(&too_long));
    assert!(
        text(&too_long).contains("counts from the original start"),
        "{}",
        text(&too_long)
    );

    // When alice extends it by an hour and bob approves the extension
    let extended = changegate(
        &auto,
        &auto.alice,
        &[
            "--output",
            "json",
            "extend",
            &first,
            "--by",
            "1h",
            "--reason",
            "migration overran",
        ],
    );
    assert_eq!(code(&extended), 0, "{}", text(&extended));
    let second = json_of(&extended)["id"].as_str().expect("id").to_owned();
    assert_eq!(json_of(&extended)["extends"], first.as_str());
    auto.wait_status(&second, &["Waiting"]).await;
    let approved = changegate(&auto, &auto.bob, &["approve", &second]);
    assert_eq!(code(&approved), 0, "{}", text(&approved));
    let payload = auto.runbook_call().await;
    let run = auto.grant(&[payload]);
    assert_eq!(run.outcomes(), ["granted"], "{:?}", run.invocations);

    // Then alice holds the extension's policy alone, from the original start
    // to an hour past the original end, and the first one is retired
    assert_eq!(
        auto.world.policies("alice").await,
        [format!("changegate-{second}")]
    );
    let (start, end) = (
        json_of(&filed)["start"].as_str().expect("start").to_owned(),
        json_of(&filed)["end"].as_str().expect("end").to_owned(),
    );
    assert_eq!(json_of(&extended)["start"], start.as_str());
    let end = chrono::DateTime::parse_from_rfc3339(&end).expect("end");
    let new_end =
        chrono::DateTime::parse_from_rfc3339(json_of(&extended)["end"].as_str().expect("end"))
            .expect("new end");
    assert_eq!(new_end - end, chrono::TimeDelta::hours(1));
    let announced = auto.announcements().await;
    let kinds: Vec<(&str, &str)> = announced
        .iter()
        .map(|e| {
            (
                e["detail-type"].as_str().unwrap_or_default(),
                e["detail"]["change-request-id"]
                    .as_str()
                    .unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("Access Granted", second.as_str()),
            ("Access Revoked", first.as_str())
        ],
        "{announced:?}"
    );
    assert_eq!(announced[1]["detail"]["cause"], "extended");

    // And a second delivery of the extension's approval retires nothing more
    let again = auto.grant(&[json!({"changegate-request": {"execution-id": second}})]);
    assert!(
        !again.outcomes().iter().any(|o| o == "granted"),
        "{:?}",
        again.invocations
    );
    assert!(auto.announcements().await.is_empty());
    assert_eq!(auto.world.policies("alice").await.len(), 1);

    // And the first request's status says why it ended
    let status = changegate(&auto, &auto.alice, &["status", &first]);
    assert!(
        text(&status).contains("its extension was granted"),
        "{}",
        text(&status)
    );
}
