//! The time-window behaviour of the grant, proven without the emulator (moto
//! treats date conditions as always satisfied): the tests' evaluator of IAM's
//! documented semantics reads the document as plain JSON, and a property test
//! throws arbitrary parameters at `decide`.

use changegate::approval::{ApproverDecision, Decision};
use changegate::check::{Checking, UserRecord, Verdict, check_request, decide};
use changegate::config::{
    GrantConfig, VAR_ALLOWED_ACCOUNTS, VAR_APPROVERS, VAR_DECISIONS_TABLE, VAR_EVENT_BUS,
    VAR_SOURCES,
};
use changegate::execution::{ApprovalStep, Execution, Origin, RunbookRun, Versions};
use changegate::ids::ChangeRequestId;
use changegate::ids::Home;
use changegate::policy::Grant;
use changegate::refusal::Refusal;
use changegate::status::Status;
use chrono::{DateTime, TimeDelta, Utc};
use proptest::prelude::*;
use serde_json::Value;

/// The tests' evaluator of IAM's documented policy semantics
/// (`tests/src/iam.rs`), the same one the integration tests use; this crate
/// cannot depend on the tests crate, so it includes the file.
#[allow(
    dead_code,
    reason = "the evaluator serves both test crates; this one needs only `evaluate`"
)]
#[path = "../../tests/src/iam.rs"]
mod iam;

/// Whether IAM allows alice, with the identity policy `doc`, `action` on
/// `resource` at `now`.
fn allows(doc: &Value, action: &str, resource: &str, now: DateTime<Utc>) -> bool {
    allows_as(doc, action, resource, now, "alice", "alice")
}

/// As [`allows`], for IAM user `user` asking for a session named `session`
/// (`${aws:username}` resolves to the user's name; `StringEquals` is exact).
fn allows_as(
    doc: &Value,
    action: &str,
    resource: &str,
    now: DateTime<Utc>,
    user: &str,
    session: &str,
) -> bool {
    let req = iam::Request::new(
        &format!("arn:aws:iam::123456789012:user/{user}"),
        action,
        resource,
    )
    .with("aws:CurrentTime", iam::iso(now))
    .with("aws:username", user)
    .with("sts:RoleSessionName", session);
    iam::evaluate(&[doc], &req) == iam::Decision::Allow
}

const ROLE: &str = "arn:aws:iam::111122223333:role/CM-Prd-role";
const ALICE: &str = "arn:aws:iam::123456789012:user/alice";

fn config() -> GrantConfig {
    let lookup = |k: &str| match k {
        VAR_ALLOWED_ACCOUNTS => Some("111122223333,444455556666".to_owned()),
        VAR_EVENT_BUS => Some("changegate".to_owned()),
        VAR_DECISIONS_TABLE => Some("changegate-decisions".to_owned()),
        VAR_SOURCES => Some("change-manager".to_owned()),
        VAR_APPROVERS => Some("arn:aws:iam::123456789012:user/bob".to_owned()),
        _ => None,
    };
    GrantConfig::from_source(&lookup).unwrap()
}

fn home() -> Home {
    Home::from_function_arn("arn:aws:lambda:us-east-1:123456789012:function:grant").unwrap()
}

fn id() -> ChangeRequestId {
    ChangeRequestId::parse("d0585556-80f6-4522-8dad-dada6d45b67d").unwrap()
}

fn approved(params: &[(&str, &str)]) -> Execution {
    Execution {
        status: Status::Approved,
        executed_by: Some(ALICE.into()),
        origin: Origin::ChangeRequest {
            template: "changegate-access".into(),
            runbooks: vec![RunbookRun {
                document: "changegate-access-runbook".into(),
                parameters: params
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), vec![(*v).to_owned()]))
                    .collect(),
            }],
        },
        approval_steps: vec![ApprovalStep {
            name: "Level1".into(),
            status: Status::Success,
            approval_status: Some("Approved".into()),
            decisions: Some(vec![ApproverDecision {
                approver: "arn:aws:iam::123456789012:user/bob".into(),
                decision: Decision::Approve,
            }]),
            approvers: Some(vec!["bob".into()]),
            min_required: None,
        }],
        versions: Versions::current(&[
            ("changegate-access", "1"),
            ("changegate-access-runbook", "1"),
        ]),
    }
}

/// The whole decision for alice, eligible for both allowlisted accounts.
fn grant_for(cr: &Execution, now: DateTime<Utc>) -> Result<Grant, Refusal> {
    let Checking::Checked(checked) = check_request(&id(), Some(cr), &config(), &home(), now)?
    else {
        panic!("an approved request waits")
    };
    let alice = UserRecord {
        name: None,
        id: None,
        tag: Some("111122223333 444455556666".into()),
        boundary: None,
        inline_policies: vec![],
    };
    match decide(&checked, &alice, &config())? {
        Verdict::Grant(g) | Verdict::AlreadyGranted(g) => Ok(g),
    }
}

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

#[test]
fn given_a_grant_for_a_window_when_iam_evaluates_it_then_assume_role_is_allowed_only_strictly_inside()
 {
    // Given a grant for 18:00-19:00 +09:00 (09:00-10:00 UTC)
    let cr = approved(&[
        ("IAMUserName", "alice"),
        ("AWSAccountId", "111122223333"),
        ("StartTime", "2026-12-01T18:00:00+09:00"),
        ("EndTime", "2026-12-01T19:00:00+09:00"),
    ]);
    let grant = grant_for(&cr, t("2026-12-01T08:00:00Z")).unwrap();
    let doc: Value = serde_json::from_str(&grant.document_json()).unwrap();

    // When IAM evaluates sts:AssumeRole at instants around the window, then
    let cases = [
        ("2026-12-01T08:59:59Z", false),
        ("2026-12-01T09:00:00Z", false), // DateGreaterThan is strict
        ("2026-12-01T09:00:01Z", true),
        ("2026-12-01T09:59:59Z", true),
        ("2026-12-01T10:00:00Z", false), // DateLessThan is strict
        ("2026-12-02T09:30:00Z", false),
    ];
    for (at, want) in cases {
        assert_eq!(allows(&doc, "sts:AssumeRole", ROLE, t(at)), want, "at {at}");
    }
    // And nothing else is allowed even inside the window
    let inside = t("2026-12-01T09:30:00Z");
    assert!(!allows(
        &doc,
        "sts:AssumeRole",
        "arn:aws:iam::111122223333:role/Admin",
        inside
    ));
    assert!(!allows(
        &doc,
        "sts:AssumeRole",
        "arn:aws:iam::444455556666:role/CM-Prd-role",
        inside
    ));
    assert!(!allows(&doc, "sts:TagSession", ROLE, inside));
    // And only with a session named after the user
    assert!(allows_as(
        &doc,
        "sts:AssumeRole",
        ROLE,
        inside,
        "alice",
        "alice"
    ));
    assert!(!allows_as(
        &doc,
        "sts:AssumeRole",
        ROLE,
        inside,
        "alice",
        "bob"
    ));
    assert!(!allows_as(
        &doc,
        "sts:AssumeRole",
        ROLE,
        inside,
        "alice",
        "alice-admin"
    ));
    assert!(!allows(
        &doc,
        "iam:PutUserPolicy",
        "arn:aws:iam::123456789012:user/alice",
        inside
    ));
}

#[test]
fn given_the_evaluator_when_fed_a_policy_without_window_then_it_allows_at_any_time() {
    // A check on the checker: the seed's unconditioned grant would be allowed
    // long after any window, so the window test above can fail.
    let doc = serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": ROLE}]});
    assert!(allows(
        &doc,
        "sts:AssumeRole",
        ROLE,
        t("2099-01-01T00:00:00Z")
    ));
}

/// Text a requester might type into any parameter, mostly hostile.
fn hostile() -> impl Strategy<Value = String> {
    prop_oneof![
        "20[0-9]{2}-(0[0-9]|1[0-3])-[0-3][0-9]T[0-2][0-9]:[0-6][0-9]:[0-6][0-9](Z|[+-]1[0-5]:[0-5][0-9]|[+-]0[0-9]:[03]0)?",
        "alice[\"*:/{}, \n\t]{1,4}",
        "[a-z]{1,70}",
        ".{0,40}",
        Just("*".to_owned()),
        Just("arn:aws:iam::111122223333:role/*".to_owned()),
        Just("111122223333\"],\"Resource\":[\"*".to_owned()),
    ]
}

/// A time near "now" (2026-11-28T00:00:00Z), written in one of several offsets.
fn near_time() -> impl Strategy<Value = String> {
    (
        -600i64..900,
        prop::sample::select(vec!["Z", "+09:00", "-05:30", "+14:00", "-12:00"]),
    )
        .prop_map(|(minutes, offset)| {
            let at = t("2026-11-28T00:00:00Z") + TimeDelta::minutes(minutes);
            if offset == "Z" {
                at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
            } else {
                let off =
                    DateTime::parse_from_rfc3339(&format!("2000-01-01T00:00:00{offset}")).unwrap();
                at.with_timezone(off.offset())
                    .format("%Y-%m-%dT%H:%M:%S%:z")
                    .to_string()
            }
        })
}

fn user() -> impl Strategy<Value = String> {
    prop_oneof![3 => Just("alice".to_owned()), 1 => hostile()]
}

fn account() -> impl Strategy<Value = String> {
    prop_oneof![2 => Just("111122223333".to_owned()), 1 => Just("444455556666".to_owned()), 1 => Just("999999999999".to_owned()), 1 => hostile()]
}

fn time() -> impl Strategy<Value = String> {
    prop_oneof![3 => near_time(), 1 => hostile()]
}

#[test]
fn given_arbitrary_parameters_when_deciding_then_refused_or_exactly_one_windowed_assume_role() {
    let granted = std::cell::Cell::new(0u32);
    let settings = ProptestConfig {
        cases: 2000,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(settings);
    let result = runner.run(
        &(user(), account(), time(), time()),
        |(user, account, start, end)| {
            let now = t("2026-11-28T00:00:00Z");
            let cr = approved(&[
                ("IAMUserName", &user),
                ("AWSAccountId", &account),
                ("StartTime", &start),
                ("EndTime", &end),
            ]);
            let Ok(grant) = grant_for(&cr, now) else {
                return Ok(());
            };
            granted.set(granted.get() + 1);
            let doc: Value = serde_json::from_str(&grant.document_json()).unwrap();
            let stmts = doc["Statement"].as_array().unwrap();
            prop_assert_eq!(stmts.len(), 1);
            let s = &stmts[0];
            prop_assert_eq!(&s["Effect"], "Allow");
            prop_assert_eq!(&s["Action"], "sts:AssumeRole");
            prop_assert!(
                config()
                    .allowed_accounts
                    .iter()
                    .any(|a| a.as_str() == account)
            );
            let role = format!("arn:aws:iam::{account}:role/CM-Prd-role");
            prop_assert_eq!(s["Resource"].as_str().unwrap(), role.as_str());
            prop_assert_eq!(s.as_object().unwrap().len(), 5); // Sid, Effect, Action, Resource, Condition
            prop_assert_eq!(s["Condition"].as_object().unwrap().len(), 3);
            prop_assert_eq!(user.as_str(), "alice");
            // Exactly the parsed window, as IAM would evaluate it
            let (from, until) = (
                DateTime::parse_from_rfc3339(&start)
                    .unwrap()
                    .with_timezone(&Utc),
                DateTime::parse_from_rfc3339(&end)
                    .unwrap()
                    .with_timezone(&Utc),
            );
            prop_assert!(until > now && until > from && until - from <= TimeDelta::minutes(480));
            prop_assert!(!allows(&doc, "sts:AssumeRole", &role, from));
            prop_assert!(
                allows(&doc, "sts:AssumeRole", &role, from + (until - from) / 2)
                    || until - from < TimeDelta::seconds(2)
            );
            prop_assert!(!allows(&doc, "sts:AssumeRole", &role, until));
            prop_assert!(!allows(
                &doc,
                "sts:AssumeRole",
                &role,
                until + TimeDelta::days(365)
            ));
            Ok(())
        },
    );
    result.unwrap();
    // The property means little if nothing was ever granted: the generators aim
    // near valid requests, and about 1 case in 20 is granted (40 is far below that).
    assert!(
        granted.get() >= 40,
        "only {} of 2000 cases were granted",
        granted.get()
    );
}
