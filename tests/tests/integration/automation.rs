//! The Automation path (issue 8: approval without Change Manager), end to
//! end through the built binaries (grant, revoke, notify through the local
//! Lambda Runtime API, `tests/localaws/lambda_runtime.py`), against the local
//! AWS. The request runbook is template.yaml's own document
//! (`changegate-access-request`, resolved by `tests/localaws/localaws.py`):
//! alice starts it, an approver signals, and the runbook's recorded
//! `aws:invokeLambdaFunction` call (`/_localaws/lambda/invocations`), its step
//! events and its execution events are what the functions get.
//!
//! The binaries read the real clock, so every request asks for an hour; the
//! window's end is checked with revoke in process, at a later `now`.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use changegate_tests::operators::OperatorRunbook;
use changegate_tests::*;

pub(crate) const REQUEST_RUNBOOK: &str = "changegate-access-request";
const CAROL: &str = "arn:aws:iam::123456789012:user/carol";
/// The approvers the stack is deployed with (its `ApproverArns`): the
/// runbook's aws:approve step and grant's `CHANGEGATE_APPROVERS` both get them.
const APPROVERS: &str = "arn:aws:iam::123456789012:user/alice,arn:aws:iam::123456789012:user/bob";

// ---------------------------------------------------------------------------
// The binaries, through the local Lambda Runtime API
// ---------------------------------------------------------------------------

/// Runs `function` once per event (changegate_tests::invoke); panics unless
/// every invocation returned a response.
pub(crate) fn invoke(function: &str, events: &[Value], env: &[(String, String)]) -> Run {
    let run = changegate_tests::invoke(function, events, env);
    assert!(
        run.output.status.success(),
        "{function} failed: {}",
        run.stderr()
    );
    assert_eq!(
        run.invocations.len(),
        events.len(),
        "{function}: one response per event: {:?}\n{}",
        run.invocations,
        run.stderr()
    );
    run
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

/// `items` in a random order (printed seed, so that a failure can be replayed
/// with `CHANGEGATE_SHUFFLE_SEED`).
fn shuffled(items: &[Value]) -> Vec<Value> {
    let seed = std::env::var("CHANGEGATE_SHUFFLE_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or_else(|| nanos() as u64);
    eprintln!("shuffle seed {seed}");
    let mut state = seed | 1;
    let mut next = move || {
        // xorshift64
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut out = items.to_vec();
    for i in (1..out.len()).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        out.swap(i, j);
    }
    out
}

/// template.yaml's request runbook, resolved as the stack deploys it with
/// [`APPROVERS`] (`ApproverArns`) and one approval, and the name of its
/// approvers' topic. localaws.py reads the YAML (short tags and all), once
/// per test run. Tests create it as YAML, as the template does (its inline
/// script is refused in a JSON document); its content's JSON text is YAML.
fn template_request_runbook() -> (Value, String) {
    let v = resolved_request_runbook();
    (
        v["content"].clone(),
        v["topic"].as_str().expect("topic").to_owned(),
    )
}

/// The role the request runbook runs as (its `assumeRole`), as the template
/// defines it: name, trust policy and inline policies. The runbook's steps
/// act as it, so it must exist with them.
fn template_runbook_role() -> Value {
    resolved_request_runbook()["role"].clone()
}

fn resolved_request_runbook() -> &'static Value {
    static RESOLVED: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    RESOLVED.get_or_init(resolve_request_runbook)
}

fn resolve_request_runbook() -> Value {
    let code = r#"
import json, sys
sys.path.insert(0, sys.argv[1])
import localaws
stack = localaws.Stack(localaws.load_template(), {"RequestSources": "Automation", "ApproverArns": sys.argv[2], "MinRequiredApprovals": "1"})
doc = next(d for d in localaws.template_documents(stack) if d.logical_id == "RequestRunbook")
assert not doc.skipped, doc.skipped
role = stack.resolve(stack.resources["RequestRunbookRole"]["Properties"])
print(json.dumps({"content": doc.content, "topic": stack.name("ApproversTopic"), "role": {
    "name": stack.name("RequestRunbookRole"), "trust": role["AssumeRolePolicyDocument"], "policies": role["Policies"]}}))
"#;
    localaws_json(
        code,
        &[APPROVERS.as_ref()],
        "reading template.yaml's request runbook",
    )
}

// ---------------------------------------------------------------------------
// The world of these tests
// ---------------------------------------------------------------------------

pub(crate) struct Auto {
    pub(crate) world: World,
    /// The functions' environment (the template's, with the local names).
    pub(crate) env: Vec<(String, String)>,
    /// Systems Manager's Automation step and execution events (default bus).
    ssm_q: String,
    /// changegate's own announcements (its bus).
    cg_q: String,
    pub(crate) alice: Creds,
    pub(crate) bob: Creds,
    pub(crate) carol: Creds,
    ssm_alice: aws_sdk_ssm::Client,
}

impl Auto {
    /// A local AWS with template.yaml's request runbook (approvers alice and
    /// bob, one approval), its approvers' topic, the notification topic,
    /// alice eligible for production, bob, and carol (not an approver).
    pub(crate) async fn new() -> Self {
        let world = World::new().await;
        let (_, alice) = world.eligible_user("alice", PROD_ACCOUNT).await;
        let (_, bob) = world.user("bob").await;
        let (_, carol) = world.user("carol").await;

        let (content, approvers_topic) = template_request_runbook();
        let sns = aws_sdk_sns::Client::new(&world.sdk);
        sns.create_topic()
            .name(approvers_topic)
            .send()
            .await
            .expect("approvers topic");
        let topic = world.topic("changegate-notifications").await;
        let role = template_runbook_role();
        let role_name = role["name"].as_str().expect("role name");
        world
            .iam
            .create_role()
            .role_name(role_name)
            .assume_role_policy_document(role["trust"].to_string())
            .send()
            .await
            .expect("the runbook's role");
        for policy in role["policies"].as_array().expect("policies") {
            world
                .iam
                .put_role_policy()
                .role_name(role_name)
                .policy_name(policy["PolicyName"].as_str().expect("policy name"))
                .policy_document(policy["PolicyDocument"].to_string())
                .send()
                .await
                .expect("the runbook role's policy");
        }
        aws_sdk_ssm::Client::new(&world.sdk)
            .create_document()
            .name(REQUEST_RUNBOOK)
            .document_type(aws_sdk_ssm::types::DocumentType::Automation)
            .document_format(aws_sdk_ssm::types::DocumentFormat::Yaml)
            .content(content.to_string())
            .send()
            .await
            .expect("create the request runbook");

        let ssm_q = world
            .capture(
                "automation-events",
                json!({"source": ["aws.ssm"], "detail-type": [
                    "EC2 Automation Step Status-change Notification",
                    "EC2 Automation Execution Status-change Notification"]}),
            )
            .await;
        let cg_q = world
            .capture("changegate-events", changegate_pattern())
            .await;

        let mut env: Vec<(String, String)> = world
            .aws
            .function_env()
            .into_iter()
            .filter(|(k, _)| k != "CHANGEGATE_SOURCES")
            .collect();
        for (k, v) in [
            ("CHANGEGATE_SOURCES", "automation"),
            ("CHANGEGATE_APPROVERS", APPROVERS),
            ("CHANGEGATE_MIN_APPROVALS", "1"),
            ("CHANGEGATE_REQUEST_RUNBOOK", REQUEST_RUNBOOK),
            ("CHANGEGATE_ALLOWED_ACCOUNTS", PROD_ACCOUNT),
            ("CHANGEGATE_TOPIC_ARN", topic.as_str()),
        ] {
            env.push((k.to_owned(), v.to_owned()));
        }
        let ssm_alice = aws_sdk_ssm::Client::new(&world.aws.sdk_as(&alice).await);
        Self {
            world,
            env,
            ssm_q,
            cg_q,
            alice,
            bob,
            carol,
            ssm_alice,
        }
    }

    /// alice starts `document` (version `version`, default `$DEFAULT`) for
    /// her own access from one second ago until `secs` from now, in +09:00.
    /// Returns the execution id and the window's end.
    async fn start(&self, document: &str, version: Option<&str>, secs: i64) -> (String, String) {
        let end = at(secs, "+09:00");
        let params = request("alice", PROD_ACCOUNT, &at(-1, "+09:00"), &end);
        let id = self
            .ssm_alice
            .start_automation_execution()
            .document_name(document)
            .set_document_version(version.map(str::to_owned))
            .set_parameters(Some(params))
            .send()
            .await
            .unwrap_or_else(|e| panic!("start {document}: {:?}", e.into_service_error()))
            .automation_execution_id()
            .expect("id")
            .to_owned();
        self.wait_status(&id, &["Waiting"]).await;
        (id, end)
    }

    async fn status(&self, id: &str) -> String {
        aws_sdk_ssm::Client::new(&self.world.sdk)
            .get_automation_execution()
            .automation_execution_id(id)
            .send()
            .await
            .expect("get automation execution")
            .automation_execution()
            .and_then(|e| e.automation_execution_status())
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default()
    }

    /// Waits (at most 15 s) until the execution is in one of `statuses`.
    pub(crate) async fn wait_status(&self, id: &str, statuses: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let now = self.status(id).await;
            if statuses.contains(&now.as_str()) {
                return now;
            }
            assert!(
                Instant::now() < deadline,
                "execution {id} is {now}, not {statuses:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The runbook's `aws:invokeLambdaFunction` calls so far (drained).
    fn lambda_invocations(&self) -> Vec<Value> {
        let url = format!(
            "{}/_localaws/lambda/invocations?drain=1",
            self.world.aws.endpoint
        );
        get_json(&url).as_array().cloned().unwrap_or_default()
    }

    /// Waits (at most 15 s) for the runbook's call to grant; returns its
    /// payload as grant receives it (the call's `Payload`, parsed).
    pub(crate) async fn runbook_call(&self) -> Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let calls = self.lambda_invocations();
            if let Some(call) = calls.first() {
                assert_eq!(calls.len(), 1, "one call per approval: {calls:?}");
                assert_eq!(call["StepName"], "Grant", "{call}");
                assert_eq!(call["InvocationType"], "Event", "{call}");
                assert!(
                    call["FunctionName"]
                        .as_str()
                        .is_some_and(|f| f.ends_with(":function:changegate-grant")),
                    "{call}"
                );
                let payload = call["Payload"].as_str().expect("payload");
                return serde_json::from_str(payload).expect("payload JSON");
            }
            assert!(Instant::now() < deadline, "the runbook never called grant");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Systems Manager's events about `id` caught so far.
    async fn ssm_events(&self, id: &str) -> Vec<Value> {
        self.world
            .drain(&self.ssm_q)
            .await
            .into_iter()
            .filter(|e| e["detail"]["ExecutionId"] == id)
            .collect()
    }

    /// changegate's own announcements so far, as EventBridge delivers them.
    pub(crate) async fn announcements(&self) -> Vec<Value> {
        self.world.drain(&self.cg_q).await
    }

    async fn signal(&self, creds: &Creds, id: &str, approve: bool) {
        self.world.signal(creds, id, approve).await;
    }

    pub(crate) fn grant(&self, events: &[Value]) -> Run {
        invoke("grant", events, &self.env)
    }

    fn revoke(&self, events: &[Value]) -> Run {
        invoke("revoke", events, &self.env)
    }
}

fn step_event<'a>(events: &'a [Value], step: &str, status: &str) -> Option<&'a Value> {
    events.iter().find(|e| {
        e["detail-type"] == "EC2 Automation Step Status-change Notification"
            && e["detail"]["StepName"] == step
            && e["detail"]["Status"] == status
    })
}

fn execution_events(events: &[Value]) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e["detail-type"] == "EC2 Automation Execution Status-change Notification")
        .cloned()
        .collect()
}

/// The detail-types of changegate's announcements.
fn kinds(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["detail-type"].as_str().unwrap_or_default())
        .collect()
}

fn direct(id: &str) -> Value {
    json!({"changegate-request": {"execution-id": id}})
}

/// The one refusal grant answered for `id`, by its code.
fn refusal_code(run: &Run) -> Vec<String> {
    run.responses()
        .iter()
        .filter(|r| r["outcome"] == "refused")
        .map(|r| r["reason_code"].as_str().unwrap_or_default().to_owned())
        .collect()
}

// ---------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------

#[tokio::test]
async fn given_the_request_runbook_when_bob_approves_and_every_trigger_arrives_in_any_order_then_one_grant_one_announcement_and_revoked_at_the_end()
 {
    // Given the stack's request runbook; alice starts it for an hour
    let auto = Auto::new().await;
    let (id, end) = auto.start(REQUEST_RUNBOOK, None, 3600).await;
    assert_eq!(auto.status(&id).await, "Waiting");
    assert!(
        auto.lambda_invocations().is_empty(),
        "nothing calls grant before approval"
    );

    // When bob (a configured approver) approves
    auto.signal(&auto.bob, &id, true).await;
    let payload = auto.runbook_call().await;
    assert_eq!(payload, direct(&id));

    // Then the runbook's own call grants, once
    let first = auto.grant(std::slice::from_ref(&payload));
    assert_eq!(first.outcomes(), ["granted"], "{:?}", first.invocations);
    assert_eq!(first.responses()[0]["change_request_id"], id.as_str());
    assert_eq!(
        auto.world.policies("alice").await,
        vec![format!("changegate-{id}")]
    );

    // And the policy allows the production role, in the window alice asked for
    let document = auto
        .world
        .iam
        .get_user_policy()
        .user_name("alice")
        .policy_name(format!("changegate-{id}"))
        .send()
        .await
        .expect("get user policy")
        .policy_document()
        .to_owned();
    let document = percent_encoding::percent_decode_str(&document).decode_utf8_lossy();
    let role = format!("arn:aws:iam::{PROD_ACCOUNT}:role/CM-Prd-role");
    assert!(document.contains("sts:AssumeRole"), "{document}");
    assert!(document.contains(&role), "{document}");
    assert!(
        document.contains(&after(&end, 0).format("%Y-%m-%dT%H:%M:%SZ").to_string()),
        "the window's end in UTC: {document}"
    );

    // And the step and execution events (and the call again), shuffled,
    // delivered twice, decide nothing more: every trigger converges on one decision
    let events = auto.ssm_events(&id).await;
    assert!(
        step_event(&events, "Approve", "Success").is_some(),
        "the approval step's event: {events:?}"
    );
    assert!(
        !execution_events(&events).is_empty(),
        "the execution's events: {events:?}"
    );
    let mut triggers = events.clone();
    triggers.push(payload.clone());
    let mut again = shuffled(&triggers);
    again.extend(shuffled(&triggers));
    let rest = auto.grant(&again);
    assert!(
        !rest
            .outcomes()
            .iter()
            .any(|o| o == "granted" || o == "refused"),
        "{:?}",
        rest.invocations
    );
    assert!(
        rest.outcomes().iter().any(|o| o == "already-decided"),
        "{:?}",
        rest.invocations
    );
    assert_eq!(
        auto.world.policies("alice").await,
        vec![format!("changegate-{id}")]
    );
    let granted = auto.announcements().await;
    assert_eq!(kinds(&granted), ["Access Granted"], "{granted:?}");
    assert_eq!(granted[0]["detail"]["user"], "alice");
    assert_eq!(granted[0]["detail"]["change-request-id"], id.as_str());
    assert_eq!(granted[0]["detail"]["source"], "automation");

    // And the built revoke's sweep, now, inside the window, removes nothing
    let early = auto.revoke(&[scheduled_event()]);
    assert_eq!(
        early.responses()[0]["revoked"],
        json!([]),
        "{:?}",
        early.invocations
    );
    assert_eq!(
        auto.world.policies("alice").await,
        vec![format!("changegate-{id}")]
    );

    // When the window has ended (revoke in process, at a `now` one second
    // after the end: the binaries read the real clock, and a window short
    // enough to wait for does not survive a loaded machine)
    let revoker = revoker(&auto.world.sdk);
    let swept = revoker
        .handle(scheduled_event(), &invocation(after(&end, 1)), None)
        .await
        .expect("sweep");
    let again = revoker
        .handle(scheduled_event(), &invocation(after(&end, 2)), None)
        .await
        .expect("sweep again");

    // Then the grant is removed once, window-ended, announced once
    let swept = serde_json::to_value(&swept).expect("JSON");
    assert_eq!(
        swept["revoked"],
        json!([format!("changegate-{id}")]),
        "{swept}"
    );
    assert_eq!(
        serde_json::to_value(&again).expect("JSON")["revoked"],
        json!([])
    );
    assert!(auto.world.policies("alice").await.is_empty());
    let revoked = auto.announcements().await;
    assert_eq!(kinds(&revoked), ["Access Revoked"], "{revoked:?}");
    assert_eq!(revoked[0]["detail"]["cause"], "window-ended");

    // And notify tells alice about the grant and the revocation, and skips
    // Systems Manager's Automation events (the approvers heard from aws:approve)
    let mut to_notify = vec![
        step_event(&events, "Approve", "Success")
            .cloned()
            .expect("step event"),
    ];
    to_notify.extend(granted);
    to_notify.extend(revoked);
    let notify = auto.notify(&to_notify);
    let sent: Vec<String> = notify
        .responses()
        .iter()
        .map(|r| {
            r["kind"]
                .as_str()
                .or_else(|| r["outcome"].as_str())
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(sent, ["skipped", "access-granted", "access-revoked"]);
}

impl Auto {
    fn notify(&self, events: &[Value]) -> Run {
        invoke("notify", events, &self.env)
    }
}

#[tokio::test]
async fn given_an_approved_request_when_no_step_event_ever_arrives_then_the_runbooks_own_call_grants()
 {
    // Given alice's request, approved by bob
    let auto = Auto::new().await;
    let (id, _) = auto.start(REQUEST_RUNBOOK, None, 3600).await;
    auto.signal(&auto.bob, &id, true).await;

    // When only the runbook's call reaches grant (EventBridge lost the events)
    let payload = auto.runbook_call().await;
    let run = auto.grant(&[payload]);

    // Then alice is granted, announced once
    assert_eq!(run.outcomes(), ["granted"], "{:?}", run.invocations);
    assert_eq!(
        auto.world.policies("alice").await,
        vec![format!("changegate-{id}")]
    );
    let announced = auto.announcements().await;
    assert_eq!(announced.len(), 1, "{announced:?}");
    assert_eq!(announced[0]["detail-type"], "Access Granted");
}

#[tokio::test]
async fn given_an_approved_request_when_only_the_approval_step_event_arrives_then_it_grants() {
    // Given alice's request, approved by bob
    let auto = Auto::new().await;
    let (id, _) = auto.start(REQUEST_RUNBOOK, None, 3600).await;
    auto.signal(&auto.bob, &id, true).await;
    let _ = auto.runbook_call().await; // the runbook's call is lost

    // When only the approval step's event reaches grant
    let events = auto.ssm_events(&id).await;
    let step = step_event(&events, "Approve", "Success")
        .cloned()
        .unwrap_or_else(|| panic!("no approval step event: {events:?}"));
    let run = auto.grant(&[step]);

    // Then alice is granted
    assert_eq!(run.outcomes(), ["granted"], "{:?}", run.invocations);
    assert_eq!(
        auto.world.policies("alice").await,
        vec![format!("changegate-{id}")]
    );
    let announced = auto.announcements().await;
    assert_eq!(announced.len(), 1, "{announced:?}");
    assert_eq!(announced[0]["detail-type"], "Access Granted");
}

#[tokio::test]
async fn given_a_request_when_bob_rejects_then_the_execution_ends_nothing_is_granted_and_revoke_removes_nothing()
 {
    // Given alice's request
    let auto = Auto::new().await;
    let (id, _) = auto.start(REQUEST_RUNBOOK, None, 3600).await;

    // When bob rejects it
    auto.signal(&auto.bob, &id, false).await;

    // Then the execution ends, and the runbook never calls grant
    let status = auto.wait_status(&id, &["Failed"]).await;
    assert_eq!(status, "Failed");
    assert!(auto.lambda_invocations().is_empty());

    // And grant, given every event and a (forged) runbook call, grants nothing
    let events = auto.ssm_events(&id).await;
    assert!(
        step_event(&events, "Approve", "Failed").is_some(),
        "{events:?}"
    );
    let mut triggers = events.clone();
    triggers.push(direct(&id));
    let run = auto.grant(&triggers);
    assert!(
        !run.outcomes().iter().any(|o| o == "granted"),
        "{:?}",
        run.invocations
    );
    assert_eq!(
        refusal_code(&run),
        ["not-approved"],
        "{:?}",
        run.invocations
    );
    assert!(auto.world.policies("alice").await.is_empty());

    // And revoke, given the execution's status event, removes nothing
    let ended: Vec<Value> = execution_events(&events)
        .into_iter()
        .filter(|e| e["detail"]["Status"] == "Failed")
        .collect();
    assert_eq!(ended.len(), 1, "{events:?}");
    let revoke = auto.revoke(&ended);
    assert_eq!(revoke.outcomes(), ["ignored"], "{:?}", revoke.invocations);
    let announced = auto.announcements().await;
    assert_eq!(kinds(&announced), ["Access Refused"], "{announced:?}");
    assert_eq!(announced[0]["detail"]["reason-code"], "not-approved");
}

#[tokio::test]
async fn given_a_granted_request_whose_execution_ended_when_carol_then_alice_end_it_with_the_end_runbook_then_only_alices_removes_the_grant_at_once()
 {
    // Given alice's request for an hour, approved by bob and granted, and
    // template.yaml's end runbook with no operators
    let auto = Auto::new().await;
    let ops = OperatorRunbook::create(&auto.world, "").await;
    let mut env = auto.env.clone();
    env.extend(ops.env());
    let (id, _) = auto.start(REQUEST_RUNBOOK, None, 3600).await;
    auto.signal(&auto.bob, &id, true).await;
    let payload = auto.runbook_call().await;
    assert_eq!(auto.grant(&[payload]).outcomes(), ["granted"]);
    // Then the request's execution has ended while the access is live: it
    // holds none of the account's concurrent automations during the window
    assert_eq!(auto.wait_status(&id, &["Success"]).await, "Success");
    assert_eq!(auto.world.policies("alice").await.len(), 1);
    let _ = auto.announcements().await;

    // When carol (neither its filer nor the person it is for) starts the end runbook for it
    let call = ops.start(&auto.world, &auto.carol, &id, "mine now").await;
    let run = invoke("revoke", std::slice::from_ref(&call.payload), &env);
    // Then nothing is removed, and the runbook's step says why
    assert_eq!(run.outcomes(), ["refused"], "{:?}", run.invocations);
    let answer = run.responses()[0].clone();
    assert_eq!(answer["reason_code"], "may-not-end", "{answer}");
    call.answer(&auto.world, &answer);
    assert_eq!(auto.world.policies("alice").await.len(), 1);

    // When alice ends it with the end runbook, giving a reason
    let call = ops.start(&auto.world, &auto.alice, &id, "done early").await;
    let run = invoke("revoke", std::slice::from_ref(&call.payload), &env);
    // Then revoke removes the grant at once, as ended on her request
    assert_eq!(run.outcomes(), ["revoked"], "{:?}", run.invocations);
    assert_eq!(run.responses()[0]["cause"], "ended-on-request");
    call.answer(&auto.world, &run.responses()[0]);
    assert!(auto.world.policies("alice").await.is_empty());

    // And Access Revoked is announced once, and its message names who ended
    // it and why (from the record's tombstone)
    let announced = auto.announcements().await;
    assert_eq!(kinds(&announced), ["Access Revoked"], "{announced:?}");
    assert_eq!(announced[0]["detail"]["cause"], "ended-on-request");
    let sent = auto.notify(&announced);
    assert_eq!(
        sent.responses()[0]["kind"],
        "access-revoked",
        "{:?}",
        sent.invocations
    );
    let email = auto
        .world
        .aws
        .sns_published()
        .iter()
        .filter_map(|p| p["Message"].as_str())
        .filter_map(|m| serde_json::from_str::<Value>(m).ok())
        .filter_map(|m| m["email"].as_str().map(str::to_owned))
        .find(|m| m.contains("Access revoked"))
        .expect("the revocation's email");
    assert!(
        email
            .lines()
            .any(|l| l.starts_with("Ended by:") && l.ends_with("user/alice")),
        "{email}"
    );
    assert!(
        email
            .lines()
            .any(|l| l.starts_with("Their reason:") && l.ends_with("done early")),
        "{email}"
    );

    // And a late trigger grants nothing again
    let late = auto.grant(&[direct(&id)]);
    assert!(
        !late.outcomes().iter().any(|o| o == "granted"),
        "{:?}",
        late.invocations
    );
    assert!(auto.world.policies("alice").await.is_empty());
}

#[tokio::test]
async fn given_alice_is_also_an_approver_when_she_approves_her_own_request_then_it_is_self_approved_and_nothing_attached()
 {
    // Given alice's request; alice is one of the configured approvers
    let auto = Auto::new().await;
    let (id, _) = auto.start(REQUEST_RUNBOOK, None, 3600).await;

    // When alice approves it herself (Systems Manager lets her)
    auto.signal(&auto.alice, &id, true).await;
    let payload = auto.runbook_call().await;
    let run = auto.grant(&[payload]);

    // Then grant refuses it as self-approved, and attaches nothing
    assert_eq!(
        refusal_code(&run),
        ["self-approved"],
        "{:?}",
        run.invocations
    );
    assert!(auto.world.policies("alice").await.is_empty());
    let announced = auto.announcements().await;
    assert_eq!(announced.len(), 1, "{announced:?}");
    assert_eq!(announced[0]["detail-type"], "Access Refused");
    assert_eq!(announced[0]["detail"]["reason-code"], "self-approved");
    // And the refused request's execution has ended (by itself once
    // approved, or stopped by grant): it holds none of the account's
    // concurrent executions
    auto.wait_status(&id, &["Success", "Cancelled"]).await;
}

#[tokio::test]
async fn given_a_look_alike_runbook_when_alice_starts_it_and_bob_approves_then_it_is_the_wrong_runbook()
 {
    // Given a copy of the request runbook under another name
    let auto = Auto::new().await;
    let (content, _) = template_request_runbook();
    aws_sdk_ssm::Client::new(&auto.world.aws.sdk_as(&auto.alice).await)
        .create_document()
        .name("changegate-access-request-copy")
        .document_type(aws_sdk_ssm::types::DocumentType::Automation)
        .document_format(aws_sdk_ssm::types::DocumentFormat::Yaml)
        .content(content.to_string())
        .send()
        .await
        .expect("create the look-alike");

    // When alice starts it and bob approves
    let (id, _) = auto
        .start("changegate-access-request-copy", None, 3600)
        .await;
    auto.signal(&auto.bob, &id, true).await;
    let payload = auto.runbook_call().await;
    let mut triggers = vec![payload];
    triggers.extend(auto.ssm_events(&id).await);
    let run = auto.grant(&triggers);

    // Then grant refuses it: not the deployment's runbook
    assert!(
        !run.outcomes().iter().any(|o| o == "granted"),
        "{:?}",
        run.invocations
    );
    assert_eq!(
        refusal_code(&run).first().map(String::as_str),
        Some("wrong-runbook"),
        "{:?}",
        run.invocations
    );
    assert!(auto.world.policies("alice").await.is_empty());
    // And grant leaves another document's execution alone: it stops only
    // executions of the deployment's own request runbook
    assert_ne!(auto.status(&id).await, "Cancelled");
}

#[tokio::test]
async fn given_a_tampered_runbook_version_with_other_approvers_when_its_approver_approves_then_approvers_tampered()
 {
    // Given a new version of the request runbook whose aws:approve step asks
    // carol (not a configured approver) instead of the stack's approvers
    let auto = Auto::new().await;
    let (mut content, _) = template_request_runbook();
    content["mainSteps"][0]["inputs"]["Approvers"] = json!([CAROL]);
    let updated = aws_sdk_ssm::Client::new(&auto.world.aws.sdk_as(&auto.alice).await)
        .update_document()
        .name(REQUEST_RUNBOOK)
        .document_version("$LATEST")
        .document_format(aws_sdk_ssm::types::DocumentFormat::Yaml)
        .content(content.to_string())
        .send()
        .await
        .expect("update the runbook");
    let version = updated
        .document_description()
        .and_then(|d| d.document_version())
        .expect("new version")
        .to_owned();
    // made the default, as whoever may write the stack's documents can (an
    // other version than the default is refused before its approvers count)
    aws_sdk_ssm::Client::new(&auto.world.sdk)
        .update_document_default_version()
        .name(REQUEST_RUNBOOK)
        .document_version(&version)
        .send()
        .await
        .expect("make it the default");

    // When alice starts that version and carol approves
    let (id, _) = auto.start(REQUEST_RUNBOOK, Some(&version), 3600).await;
    auto.signal(&auto.carol, &id, true).await;
    let payload = auto.runbook_call().await;
    let run = auto.grant(&[payload]);

    // Then grant refuses it: the step did not run with the configured approvers
    assert_eq!(
        refusal_code(&run),
        ["approvers-tampered"],
        "{:?}",
        run.invocations
    );
    assert!(auto.world.policies("alice").await.is_empty());
}

#[tokio::test]
async fn given_an_upgraded_stack_when_a_request_runs_the_previous_runbook_version_then_it_is_refused_as_an_old_document_version()
 {
    // Given the stack upgraded: its request runbook has a second version,
    // which CloudFormation made the default (UpdateMethod: NewVersion), and
    // version 1 is still there
    let auto = Auto::new().await;
    let (mut content, _) = template_request_runbook();
    content["description"] = json!("changegate's request runbook, release 2");
    let ssm = aws_sdk_ssm::Client::new(&auto.world.sdk);
    let updated = ssm
        .update_document()
        .name(REQUEST_RUNBOOK)
        .document_version("$LATEST")
        .document_format(aws_sdk_ssm::types::DocumentFormat::Yaml)
        .content(content.to_string())
        .send()
        .await
        .expect("the stack's update");
    let current = updated
        .document_description()
        .and_then(|d| d.document_version())
        .expect("new version")
        .to_owned();
    assert_eq!(current, "2");
    ssm.update_document_default_version()
        .name(REQUEST_RUNBOOK)
        .document_version(&current)
        .send()
        .await
        .expect("CloudFormation makes it the default");

    // When alice starts version 1 and bob approves
    let (id, _) = auto.start(REQUEST_RUNBOOK, Some("1"), 3600).await;
    auto.signal(&auto.bob, &id, true).await;
    let payload = auto.runbook_call().await;
    let run = auto.grant(&[payload]);

    // Then grant refuses it with its own code, saying which versions; nothing is attached
    assert_eq!(
        refusal_code(&run),
        ["old-document-version"],
        "{:?}",
        run.invocations
    );
    assert_eq!(
        run.responses()[0]["reason"],
        "This request ran version 1 of changegate-access-request, but the deployment's current version is 2; only the current version is the deployment's approval path. File a new request."
    );
    assert!(auto.world.policies("alice").await.is_empty());

    // And a request on the current version is granted
    let (id, _) = auto.start(REQUEST_RUNBOOK, None, 3600).await;
    auto.signal(&auto.bob, &id, true).await;
    let payload = auto.runbook_call().await;
    let run = auto.grant(&[payload]);
    assert_eq!(run.outcomes(), ["granted"], "{:?}", run.invocations);
}

#[tokio::test]
async fn given_automation_only_when_a_change_request_is_approved_then_the_source_is_not_enabled() {
    // Given a deployment with CHANGEGATE_SOURCES=automation, and Change Manager's
    // change template and runbook in the account anyway
    let auto = Auto::new().await;
    let cr_q = auto
        .world
        .capture("change-requests", change_request_pattern())
        .await;

    // When alice files a change request and bob approves it
    let id = auto
        .world
        .file_request(
            &auto.alice,
            request(
                "alice",
                PROD_ACCOUNT,
                &at(-1, "+09:00"),
                &at(3600, "+09:00"),
            ),
        )
        .await;
    auto.signal(&auto.bob, &id, true).await;
    let events = auto.world.drain(&cr_q).await;
    assert!(!events.is_empty());
    let run = auto.grant(&events);

    // Then grant refuses it: Change Manager is not a source of this deployment
    assert!(
        !run.outcomes().iter().any(|o| o == "granted"),
        "{:?}",
        run.invocations
    );
    assert_eq!(
        refusal_code(&run),
        ["source-not-enabled"],
        "{:?}",
        run.invocations
    );
    assert!(auto.world.policies("alice").await.is_empty());
}

#[tokio::test]
async fn given_alice_at_the_open_request_limit_when_she_files_one_more_then_it_is_refused_and_stopped_before_approval()
 {
    // Given a deployment allowing two open requests a person, and alice's two
    let mut auto = Auto::new().await;
    auto.env
        .push(("CHANGEGATE_MAX_OPEN_REQUESTS".to_owned(), "2".to_owned()));
    let (first, _) = auto.start(REQUEST_RUNBOOK, None, 3600).await;
    let (second, _) = auto.start(REQUEST_RUNBOOK, None, 3600).await;

    // When she files a third, and grant hears it start (its InProgress event)
    let (third, _) = auto.start(REQUEST_RUNBOOK, None, 3600).await;
    let started: Vec<Value> = execution_events(&auto.ssm_events(&third).await)
        .into_iter()
        .filter(|e| e["detail"]["Status"] == "InProgress")
        .collect();
    assert_eq!(started.len(), 1, "{started:?}");
    let run = auto.grant(&started);

    // Then it is refused for the limit, and its execution is stopped at once
    assert_eq!(
        refusal_code(&run),
        ["too-many-open-requests"],
        "{:?}",
        run.invocations
    );
    assert_eq!(auto.wait_status(&third, &["Cancelled"]).await, "Cancelled");
    let announced = auto.announcements().await;
    assert_eq!(kinds(&announced), ["Access Refused"], "{announced:?}");
    let reason = announced[0]["detail"]["reason"]
        .as_str()
        .unwrap_or_default();
    assert!(
        reason.contains(&first) && reason.contains(&second),
        "the refusal names the open requests: {reason}"
    );
    // And her two earlier requests still wait for approval, and are still admitted
    for id in [&first, &second] {
        assert_eq!(auto.status(id).await, "Waiting");
    }
    let again = auto.grant(&[direct(&first)]);
    assert_eq!(again.outcomes(), ["waiting"], "{:?}", again.invocations);
}

#[tokio::test]
async fn given_a_request_waiting_for_bob_when_notify_gets_its_approval_step_event_then_bob_gets_changegates_card_once_and_none_after_the_decision()
 {
    // Given alice's request, waiting at its approval step
    let auto = Auto::new().await;
    let (id, _) = auto.start(REQUEST_RUNBOOK, None, 3600).await;
    let events = auto.ssm_events(&id).await;
    let waiting = step_event(&events, "Approve", "Waiting")
        .cloned()
        .expect("the approval step's Waiting event");

    // When notify gets the step's event
    let sent = auto.notify(std::slice::from_ref(&waiting));
    // Then it publishes changegate's own card, addressed to bob, from
    // Systems Manager's record of the execution
    assert_eq!(
        sent.responses()[0]["kind"],
        "approval-requested",
        "{:?}",
        sent.invocations
    );
    let published = auto.world.aws.sns_published();
    let card = published
        .iter()
        .find(|p| {
            p["MessageAttributes"]["kind"]["Value"] == "approval-requested"
                || p["MessageAttributes"]["kind"]["StringValue"] == "approval-requested"
        })
        .unwrap_or_else(|| panic!("no approval card in {published:?}"));
    let text = card["Message"].as_str().unwrap_or_default();
    assert!(text.contains("Approval requested: alice"), "{text}");
    assert!(text.contains(&format!("changegate approve {id}")), "{text}");

    // When bob approves and the same event arrives late
    auto.signal(&auto.bob, &id, true).await;
    let _ = auto.runbook_call().await;
    let late = auto.notify(&[waiting]);
    // Then nothing is published: Systems Manager says it no longer waits
    assert_eq!(
        late.responses()[0]["outcome"],
        "skipped",
        "{:?}",
        late.invocations
    );
}
