//! Every way around the approval, against the local AWS: each must end in a
//! refusal with its exact reason, no IAM change, and a message to the requester.

use std::collections::HashMap;

use changegate::config::{GrantConfig, VAR_ALLOW_DELEGATED, VAR_ALLOWED_ACCOUNTS};
use changegate::ids::IdError;
use changegate::refusal::Refusal;
use changegate::window::TimeError;
use changegate_aws::grant::{GrantOutcome, Grantor};
use changegate_aws::notify::Notifier;
use changegate_aws::revoke::RevokeOutcome;
use changegate_tests::*;
use chrono::Utc;
use serde_json::Value;

fn grant_config(delegated: bool) -> GrantConfig {
    let lookup = move |k: &str| match k {
        VAR_ALLOWED_ACCOUNTS => Some(format!("{PROD_ACCOUNT},999988887777")),
        VAR_ALLOW_DELEGATED => Some(delegated.to_string()),
        k => grant_env(k),
    };
    GrantConfig::from_source(&lookup).expect("config")
}

struct Scene {
    world: World,
    grantor: Grantor,
    notifier: Notifier,
    ssm_events: String,
    cg_events: String,
}

impl Scene {
    async fn new(delegated: bool) -> Self {
        let world = World::new().await;
        let ssm_events = world.capture("ssm-events", change_request_pattern()).await;
        let cg_events = world
            .capture("changegate-events", changegate_pattern())
            .await;
        let topic = world.topic("changegate").await;
        let notifier = notifier(&world.sdk, &topic);
        let grantor = Grantor::new(grant_config(delegated), &world.sdk);
        Self {
            world,
            grantor,
            notifier,
            ssm_events,
            cg_events,
        }
    }

    /// Every queued Change Manager event through grant; outcomes by change request id.
    async fn deliver(&self) -> HashMap<String, Vec<GrantOutcome>> {
        let mut by_id: HashMap<String, Vec<GrantOutcome>> = HashMap::new();
        for body in self.world.drain(&self.ssm_events).await {
            let id = body["detail"]["change-request-id"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let outcome = self
                .grantor
                .handle(body.clone(), &home(), &invocation(Utc::now()))
                .await
                .expect("no fault");
            by_id.entry(id).or_default().push(outcome);
        }
        by_id
    }

    /// changegate's events, each also handed to notify as the deployed rule would.
    async fn announce(&self) -> Vec<Value> {
        let events = self.world.drain(&self.cg_events).await;
        for e in &events {
            self.notifier.handle(as_event(e)).await.expect("notify");
        }
        events
    }
}

fn base() -> Params {
    request("alice", PROD_ACCOUNT, &at(0, "Z"), &at(3600, "Z"))
}

/// A change to a request's parameters.
type Edit = Box<dyn Fn(&mut Params)>;

fn set(k: &str, v: &str) -> Edit {
    let (k, v) = (k.to_owned(), v.to_owned());
    Box::new(move |p| {
        p.insert(k.clone(), vec![v.clone()]);
    })
}

/// The refusal a case must get: exactly, or (where the reason quotes a time
/// computed while the test runs) its code and a fixed part of its wording; or
/// SSM itself refuses to file it (the runbook's parameter definitions), so no
/// execution exists for changegate to see.
enum Want {
    Exact(Refusal),
    Like(&'static str, &'static str),
    SsmRefuses,
}

impl Want {
    fn code(&self) -> &'static str {
        match self {
            Want::Exact(r) => r.code(),
            Want::Like(code, _) => code,
            Want::SsmRefuses => "-",
        }
    }
}

fn exact(r: Refusal) -> Want {
    Want::Exact(r)
}

fn user_err(why: IdError) -> Want {
    exact(Refusal::InvalidUserName { why })
}

fn account_err() -> Want {
    exact(Refusal::InvalidAccountId {
        why: IdError::NotTwelveDigits,
    })
}

fn time_err(name: &'static str, why: TimeError) -> Want {
    exact(Refusal::InvalidTime { name, why })
}

#[tokio::test]
async fn given_hostile_requests_when_granting_then_each_is_refused_with_its_exact_reason_and_nothing_is_attached()
 {
    // Given alice (eligible), bob the approver, and a long list of requests that must not grant
    let s = Scene::new(false).await;
    let (_, alice) = s
        .world
        .eligible_user("alice", &format!("{PROD_ACCOUNT} 999988887777"))
        .await;
    let (_, bob) = s.world.user("bob").await;
    let long_ago = at(-7200, "Z");
    let now_plus = |secs| at(secs, "Z");
    let far = at(60 * 86400, "Z");
    let far_end = at(60 * 86400 + 3600, "Z");
    let start_now = at(0, "Z");
    let cases: Vec<(&str, Edit, Want)> = vec![
        // JSON and ARN injection through the user name
        (
            "quote",
            set("IAMUserName", "alice\""),
            user_err(IdError::BadCharacter('"')),
        ),
        (
            "json break-out",
            set("IAMUserName", "alice\",\"Resource\":\"*"),
            user_err(IdError::BadCharacter('"')),
        ),
        (
            "wildcard user",
            set("IAMUserName", "*"),
            user_err(IdError::BadCharacter('*')),
        ),
        (
            "brace",
            set("IAMUserName", "alice}"),
            user_err(IdError::BadCharacter('}')),
        ),
        (
            "arn in user",
            set("IAMUserName", "alice:role/Admin"),
            user_err(IdError::BadCharacter(':')),
        ),
        (
            "space",
            set("IAMUserName", "alice bob"),
            user_err(IdError::BadCharacter(' ')),
        ),
        (
            "newline",
            set("IAMUserName", "alice\n"),
            user_err(IdError::BadCharacter('\n')),
        ),
        (
            "nul",
            set("IAMUserName", "alice\u{0}"),
            user_err(IdError::BadCharacter('\u{0}')),
        ),
        (
            "cyrillic a",
            set("IAMUserName", "\u{430}lice"),
            user_err(IdError::BadCharacter('\u{430}')),
        ),
        (
            "zero-width space",
            set("IAMUserName", "alice\u{200b}"),
            user_err(IdError::BadCharacter('\u{200b}')),
        ),
        (
            "fullwidth a",
            set("IAMUserName", "\u{ff41}lice"),
            user_err(IdError::BadCharacter('\u{ff41}')),
        ),
        (
            "overlong user",
            set("IAMUserName", &"a".repeat(65)),
            user_err(IdError::TooLong { len: 65, max: 64 }),
        ),
        (
            "empty user",
            set("IAMUserName", ""),
            user_err(IdError::Empty),
        ),
        (
            "someone else",
            set("IAMUserName", "bob"),
            exact(Refusal::NotTheRequester {
                user: "bob".into(),
                requester: "alice".into(),
            }),
        ),
        // The account
        ("wildcard account", set("AWSAccountId", "*"), account_err()),
        (
            "11 digits",
            set("AWSAccountId", "11112222333"),
            account_err(),
        ),
        (
            "13 digits",
            set("AWSAccountId", "1111222233334"),
            account_err(),
        ),
        (
            "quoted account",
            set("AWSAccountId", "111122223333\""),
            account_err(),
        ),
        (
            "role arn as account",
            set("AWSAccountId", "arn:aws:iam::111122223333:role/Admin"),
            account_err(),
        ),
        (
            "padded account",
            set("AWSAccountId", " 111122223333"),
            account_err(),
        ),
        (
            "fullwidth digits",
            set(
                "AWSAccountId",
                "\u{ff11}\u{ff11}\u{ff11}\u{ff11}\u{ff12}\u{ff12}\u{ff12}\u{ff12}\u{ff13}\u{ff13}\u{ff13}\u{ff13}",
            ),
            account_err(),
        ),
        (
            "not allowlisted",
            set("AWSAccountId", "444455556666"),
            exact(Refusal::AccountNotAllowed {
                account: "444455556666".into(),
                allowed: format!("{PROD_ACCOUNT}, 999988887777"),
            }),
        ),
        // Impossible and edge dates
        (
            "feb 30",
            set("StartTime", "2026-02-30T09:00:00Z"),
            time_err(
                "StartTime",
                TimeError::NoSuchDate {
                    year: 2026,
                    month: 2,
                    day: 30,
                },
            ),
        ),
        (
            "hour 24",
            set("EndTime", "2026-12-01T24:00:00Z"),
            time_err("EndTime", TimeError::HourOutOfRange(24)),
        ),
        (
            "leap second",
            set("EndTime", "2026-12-31T23:59:60Z"),
            time_err("EndTime", TimeError::SecondOutOfRange(60)),
        ),
        (
            "offset +14:01",
            set("StartTime", "2026-12-01T09:00:00+14:01"),
            time_err("StartTime", TimeError::OffsetOutOfRange("+14:01".into())),
        ),
        (
            "offset -12:30",
            set("StartTime", "2026-12-01T09:00:00-12:30"),
            time_err("StartTime", TimeError::OffsetOutOfRange("-12:30".into())),
        ),
        (
            "no zone",
            set("StartTime", "2026-12-01T09:00:00"),
            time_err("StartTime", TimeError::MissingOffset),
        ),
        (
            "fraction",
            set("EndTime", "2026-12-01T09:00:00.5Z"),
            time_err("EndTime", TimeError::FractionalSeconds),
        ),
        (
            "space separator",
            set("StartTime", "2026-12-01 09:00:00Z"),
            time_err("StartTime", TimeError::BadFormat),
        ),
        (
            "unix seconds",
            set("StartTime", "1764579600"),
            time_err("StartTime", TimeError::BadFormat),
        ),
        (
            "json in time",
            set("EndTime", "2026-12-01T09:00:00Z\",\"Resource\":\"*"),
            time_err("EndTime", TimeError::BadFormat),
        ),
        (
            "nul in time",
            set("EndTime", "2026-12-01T09:00:00\u{0}Z"),
            time_err("EndTime", TimeError::BadFormat),
        ),
        (
            "overlong time",
            set("StartTime", &"9".repeat(10_000)),
            time_err("StartTime", TimeError::BadFormat),
        ),
        (
            "year 0000 end",
            set("EndTime", "0000-01-01T00:00:00Z"),
            Want::Like(
                "end-not-after-start",
                "(0000-01-01 00:00:00 UTC) is not after StartTime",
            ),
        ),
        (
            "end equals start",
            set("EndTime", &start_now),
            Want::Like(
                "end-not-after-start",
                "The window must end after it starts.",
            ),
        ),
        (
            "year 9999",
            Box::new(|p| {
                p.insert("StartTime".into(), vec!["9999-12-31T22:00:00Z".into()]);
                p.insert("EndTime".into(), vec!["9999-12-31T23:00:00Z".into()]);
            }),
            exact(Refusal::StartTooFarAhead {
                start: "9999-12-31 22:00:00 UTC".into(),
                max_days: 30,
            }),
        ),
        (
            "far future",
            Box::new(move |p| {
                p.insert("StartTime".into(), vec![far.clone()]);
                p.insert("EndTime".into(), vec![far_end.clone()]);
            }),
            Want::Like("start-too-far-ahead", "more than 30 days from now"),
        ),
        (
            "too long",
            set("EndTime", &now_plus(9 * 3600)),
            Want::Like(
                "window-too-long",
                "minutes long; the most allowed is 480 minutes",
            ),
        ),
        (
            "already over",
            Box::new(move |p| {
                p.insert("StartTime".into(), vec![at(-10800, "Z")]);
                p.insert("EndTime".into(), vec![long_ago.clone()]);
            }),
            Want::Like("window-ended", "before access could be granted"),
        ),
        // The shape of the parameters: SSM checks them against the runbook before
        // anything runs (changegate's own checks for them are unit tests)
        (
            "extra parameter",
            set(
                "AutomationAssumeRole",
                "arn:aws:iam::123456789012:role/Admin",
            ),
            Want::SsmRefuses,
        ),
        (
            "injected name",
            set("IAMUserName\"", "alice"),
            Want::SsmRefuses,
        ),
        (
            "missing end",
            Box::new(|p| {
                p.remove("EndTime");
            }),
            Want::SsmRefuses,
        ),
        (
            "empty list",
            Box::new(|p| {
                p.insert("StartTime".into(), vec![]);
            }),
            Want::SsmRefuses,
        ),
        (
            "two accounts",
            Box::new(|p| {
                p.insert(
                    "AWSAccountId".into(),
                    vec![PROD_ACCOUNT.into(), "999988887777".into()],
                );
            }),
            Want::SsmRefuses,
        ),
        (
            "two users",
            Box::new(|p| {
                p.insert("IAMUserName".into(), vec!["alice".into(), "bob".into()]);
            }),
            Want::SsmRefuses,
        ),
    ];
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let mut ids = Vec::new();
    let mut reaching = Vec::new();
    for (name, edit, want) in &cases {
        let mut params = base();
        edit(&mut params);
        let filed = s.world.try_file(&alice, params, None).await;
        if matches!(want, Want::SsmRefuses) {
            let err = filed.expect_err(name);
            assert!(
                err.contains("InvalidAutomationExecutionParametersException"),
                "{name}: {err}"
            );
            continue;
        }
        let id = filed.unwrap_or_else(|e| panic!("{name}: {e}"));
        s.world.signal(&bob, &id, true).await;
        ids.push((id, *name));
        reaching.push(want);
    }

    // When grant sees every event, and notify every refusal
    let outcomes = s.deliver().await;
    let events = s.announce().await;

    // Then each request is refused with exactly its reason
    for ((id, name), want) in ids.iter().zip(reaching) {
        let refusals: Vec<&GrantOutcome> = outcomes[id]
            .iter()
            .filter(|o| matches!(o, GrantOutcome::Refused { .. }))
            .collect();
        assert!(!refusals.is_empty(), "{name}: {:?}", outcomes[id]);
        for r in refusals {
            let GrantOutcome::Refused {
                reason_code,
                reason,
                ..
            } = r
            else {
                unreachable!()
            };
            assert_eq!(reason_code, want.code(), "{name}");
            match want {
                Want::Exact(r) => assert_eq!(reason, &r.to_string(), "{name}"),
                Want::Like(_, part) => assert!(reason.contains(part), "{name}: {reason}"),
                Want::SsmRefuses => unreachable!("{name} was not filed"),
            }
        }
        // And the requester's message carries the reason
        let refused = events
            .iter()
            .find(|e| e["detail"]["change-request-id"] == id.as_str())
            .unwrap_or_else(|| panic!("{name}: no event"));
        let reason = refused["detail"]["reason"].as_str().unwrap();
        let published = s.world.aws.sns_published();
        let msg = published
            .iter()
            .find(|p| {
                p["Message"]
                    .as_str()
                    .is_some_and(|m| m.contains(id.as_str()))
            })
            .unwrap_or_else(|| panic!("{name}: nothing published"));
        let body: Value = serde_json::from_str(msg["Message"].as_str().unwrap()).unwrap();
        assert!(
            body["email"].as_str().unwrap().contains(reason),
            "{name}: {}",
            body["email"]
        );
        assert_eq!(
            msg["MessageAttributes"]["user"]["StringValue"], "[\"alice\"]",
            "{name}"
        );
    }

    // And nobody holds any policy
    for user in ["alice", "bob"] {
        assert!(
            s.world.policies(user).await.is_empty(),
            "{user} has a policy"
        );
    }
    assert!(
        events.iter().all(|e| e["detail-type"] == "Access Refused"),
        "{events:?}"
    );
}

/// Files one request as `filer` for `params`, has `approver` approve it, and
/// runs grant on its events. Returns the id, grant's outcomes and changegate's events.
async fn run_one(
    s: &Scene,
    filer: &Creds,
    approver: &Creds,
    params: Params,
) -> (String, Vec<GrantOutcome>, Vec<Value>) {
    let id = s.world.file_request(filer, params).await;
    s.world.signal(approver, &id, true).await;
    let mut outcomes = s.deliver().await;
    (
        id.clone(),
        outcomes.remove(&id).unwrap_or_default(),
        s.announce().await,
    )
}

fn refused_with(outcomes: &[GrantOutcome], code: &str) -> bool {
    outcomes
        .iter()
        .any(|o| matches!(o, GrantOutcome::Refused { reason_code, .. } if reason_code == code))
        && !outcomes
            .iter()
            .any(|o| matches!(o, GrantOutcome::Granted { .. }))
}

#[tokio::test]
async fn given_the_requester_approved_their_own_request_when_granting_then_refused_as_self_approved()
 {
    // Given dave, one of the deployment's approvers, files a request and
    // approves it himself
    let s = Scene::new(false).await;
    let (_, dave) = s.world.eligible_user("dave", PROD_ACCOUNT).await;
    let mut params = base();
    params.insert("IAMUserName".into(), vec!["dave".into()]);

    // When grant sees it
    let (_, outcomes, events) = run_one(&s, &dave, &dave, params).await;

    // Then it is refused, dave is told why, and he holds nothing
    assert!(refused_with(&outcomes, "self-approved"), "{outcomes:?}");
    let reason = events[0]["detail"]["reason"].as_str().unwrap();
    assert_eq!(
        reason,
        Refusal::SelfApproved {
            requester: format!("arn:aws:iam::{HOME_ACCOUNT}:user/dave")
        }
        .to_string()
    );
    assert!(s.world.policies("dave").await.is_empty());
}

#[tokio::test]
async fn given_delegation_when_a_lead_asks_for_a_colleague_then_only_an_allowing_deployment_grants_and_names_both()
 {
    // Given lead files for carol (eligible) and bob approves
    for delegated in [false, true] {
        let s = Scene::new(delegated).await;
        let (_, lead) = s.world.user("lead").await;
        s.world.eligible_user("carol", PROD_ACCOUNT).await;
        let (_, bob) = s.world.user("bob").await;
        let mut params = base();
        params.insert("IAMUserName".into(), vec!["carol".into()]);

        let (id, outcomes, events) = run_one(&s, &lead, &bob, params).await;

        if delegated {
            // Then carol gets the grant, and the message names both and reaches both
            assert_eq!(
                s.world.policies("carol").await,
                vec![format!("changegate-{id}")]
            );
            assert!(s.world.policies("lead").await.is_empty());
            assert_eq!(events[0]["detail"]["requester"], "lead");
            let published = s.world.aws.sns_published();
            let granted = published
                .iter()
                .find(|p| {
                    p["Subject"]
                        .as_str()
                        .is_some_and(|t| t.contains("Access granted"))
                })
                .unwrap();
            assert_eq!(
                granted["MessageAttributes"]["user"]["StringValue"],
                "[\"carol\",\"lead\"]"
            );
            assert!(
                granted["Message"]
                    .as_str()
                    .unwrap()
                    .contains("Requested by:   lead")
            );
        } else {
            assert!(refused_with(&outcomes, "not-the-requester"), "{outcomes:?}");
            assert!(s.world.policies("carol").await.is_empty());
        }
    }
}

#[tokio::test]
async fn given_eligibility_tags_when_granting_then_untagged_users_and_other_accounts_are_refused_and_the_tag_picks_the_role()
 {
    let s = Scene::new(false).await;
    let (_, bob) = s.world.user("bob").await;
    let (_, dave) = s.world.user("dave").await; // no tag at all
    let (_, erin) = s.world.eligible_user("erin", "999988887777").await; // another account only
    let (_, fay) = s
        .world
        .eligible_user("fay", &format!("{PROD_ACCOUNT}/ReadOnlyProd"))
        .await;
    let for_user = |u: &str| {
        let mut p = base();
        p.insert("IAMUserName".into(), vec![u.to_owned()]);
        p
    };

    let (_, dave_out, dave_events) = run_one(&s, &dave, &bob, for_user("dave")).await;
    let (_, erin_out, _) = run_one(&s, &erin, &bob, for_user("erin")).await;
    let (fay_id, _, _) = run_one(&s, &fay, &bob, for_user("fay")).await;

    assert!(refused_with(&dave_out, "not-eligible"), "{dave_out:?}");
    assert_eq!(
        dave_events[0]["detail"]["reason"],
        Refusal::NotEligible {
            user: "dave".into(),
            account: PROD_ACCOUNT.into(),
            eligible: "none".into()
        }
        .to_string()
    );
    assert!(refused_with(&erin_out, "not-eligible"), "{erin_out:?}");
    assert!(s.world.policies("dave").await.is_empty() && s.world.policies("erin").await.is_empty());
    let doc = s
        .world
        .iam
        .get_user_policy()
        .user_name("fay")
        .policy_name(format!("changegate-{fay_id}"))
        .send()
        .await
        .unwrap();
    assert!(
        doc.policy_document().contains("ReadOnlyProd"),
        "{}",
        doc.policy_document()
    );
}

#[tokio::test]
async fn given_a_full_inline_policy_budget_when_granting_then_refused_naming_the_active_grants() {
    // Given alice already holds one grant and a large hand-made inline policy
    let s = Scene::new(false).await;
    let (_, alice) = s.world.eligible_user("alice", PROD_ACCOUNT).await;
    let (_, bob) = s.world.user("bob").await;
    let (first, _, _) = run_one(&s, &alice, &bob, base()).await;
    let resources: Vec<String> = (0..48)
        .map(|i| format!("arn:aws:s3:::team-bucket-{i:02}"))
        .collect();
    let big = serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": resources}]});
    s.world
        .iam
        .put_user_policy()
        .user_name("alice")
        .policy_name("team-tools")
        .policy_document(big.to_string())
        .send()
        .await
        .unwrap();

    // When she asks for a second window
    let (_, outcomes, events) = run_one(&s, &alice, &bob, base()).await;

    // Then it is refused, the reason lists her active grant, and nothing was added
    assert!(refused_with(&outcomes, "policy-budget"), "{outcomes:?}");
    let reason = events[0]["detail"]["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!(
            "Grants still active: {first} ({PROD_ACCOUNT}/CM-Prd-role until"
        )),
        "{reason}"
    );
    let mut have = s.world.policies("alice").await;
    have.sort();
    assert_eq!(
        have,
        vec![format!("changegate-{first}"), "team-tools".to_owned()]
    );
}

#[tokio::test]
async fn given_a_granted_request_when_ending_statuses_are_forged_then_nothing_goes_and_only_a_real_cancel_ends_access()
 {
    // Given a granted request, still open (scheduled to run in an hour)
    let s = Scene::new(false).await;
    let (_, alice) = s.world.eligible_user("alice", PROD_ACCOUNT).await;
    let (_, bob) = s.world.user("bob").await;
    let revoker = revoker(&s.world.sdk);
    let later = Utc::now() + chrono::TimeDelta::hours(1);
    let id = s
        .world
        .try_file(&alice, base(), Some(later))
        .await
        .expect("file");
    s.world.signal(&bob, &id, true).await;
    for b in &s.world.drain(&s.ssm_events).await {
        s.grantor
            .handle(b.clone(), &home(), &invocation(Utc::now()))
            .await
            .unwrap();
    }
    let name = format!("changegate-{id}");
    assert_eq!(s.world.policies("alice").await, vec![name.clone()]);
    s.world.drain(&s.cg_events).await;

    // When events claim every status that ends a request early, but Systems Manager disagrees
    for status in [
        "Cancelled",
        "Rejected",
        "Closed",
        "Failed",
        "TimedOut",
        "CompletedWithFailure",
        "ChangeCalendarOverrideRejected",
    ] {
        let outcome = revoker
            .handle(
                change_request_event(&id, status),
                &invocation(Utc::now()),
                None,
            )
            .await
            .unwrap();
        // Then nothing is removed
        assert!(
            matches!(&outcome, RevokeOutcome::Ignored { reason } if reason.contains("Scheduled")),
            "{status}: {outcome:?}"
        );
        assert_eq!(
            s.world.policies("alice").await,
            vec![name.clone()],
            "{status}: a forged event removed the grant"
        );
    }
    assert!(s.announce().await.is_empty());

    // When alice really cancels it
    let ssm = aws_sdk_ssm::Client::new(&s.world.aws.sdk_as(&alice).await);
    ssm.stop_automation_execution()
        .automation_execution_id(&id)
        .send()
        .await
        .unwrap();
    let ended = s
        .world
        .drain(&s.ssm_events)
        .await
        .pop()
        .expect("Cancelled event");
    assert_eq!(ended["detail"]["ops-item-status"], "Cancelled");
    let outcome = revoker
        .handle(ended, &invocation(Utc::now()), None)
        .await
        .unwrap();

    // Then the grant is gone before its window ends, and alice is told why
    assert!(
        matches!(&outcome, RevokeOutcome::Revoked { cause, .. } if cause == "Cancelled"),
        "{outcome:?}"
    );
    assert!(s.world.policies("alice").await.is_empty());
    let events = s.announce().await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["detail-type"], "Access Revoked");
    assert_eq!(events[0]["detail"]["cause"], "Cancelled");
    let published = s.world.aws.sns_published();
    assert!(
        published.last().unwrap()["Message"]
            .as_str()
            .unwrap()
            .contains("the request is Cancelled")
    );

    // And a late "Approved" for the cancelled request grants nothing again
    for b in [change_request_event(&id, "Approved")] {
        let outcome = s
            .grantor
            .handle(b, &home(), &invocation(Utc::now()))
            .await
            .unwrap();
        assert!(
            matches!(&outcome, GrantOutcome::AlreadyDecided { decision, .. } if decision.starts_with("ended")),
            "{outcome:?}"
        );
    }
    assert!(s.world.policies("alice").await.is_empty());
}

#[tokio::test]
async fn given_a_status_that_does_not_end_access_when_revoke_sees_it_then_the_grant_stays() {
    let s = Scene::new(false).await;
    let (_, alice) = s.world.eligible_user("alice", PROD_ACCOUNT).await;
    let (_, bob) = s.world.user("bob").await;
    let (id, _, _) = run_one(&s, &alice, &bob, base()).await;
    let revoker = revoker(&s.world.sdk);
    let mut event = change_request_event(&id, "Approved");
    for status in ["CompletedWithSuccess", "Resolved", "Approved"] {
        event["detail"]["ops-item-status"] = status.into();
        let outcome = revoker
            .handle(event.clone(), &invocation(Utc::now()), None)
            .await
            .unwrap();
        assert!(
            matches!(outcome, RevokeOutcome::Ignored { .. }),
            "{status}: {outcome:?}"
        );
    }
    assert_eq!(
        s.world.policies("alice").await,
        vec![format!("changegate-{id}")]
    );
}
