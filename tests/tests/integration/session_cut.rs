//! The session cut, proven against IAM's documented policy semantics.
//!
//! The local AWS (moto) treats every condition operator other than
//! StringEquals as satisfied, so what the Deny statements *mean* is checked
//! here with the evaluator of IAM's documented rules in
//! [`changegate_tests::iam`] (which has its own tests): scenario by scenario
//! and as a property over random grants. `tests/sessions.rs` does the same
//! against the documents changegate actually writes in the emulated
//! production account.

use changegate::ids::IamUserName;
use changegate::session::{SessionCut, Written};
use chrono::{DateTime, TimeDelta, Utc};
use proptest::prelude::*;
use serde_json::{Value, json};

use changegate_tests::iam::{self, Decision, Request};
use changegate_tests::{grant_of, resolved_property};

const ROLE_ID: &str = "AROAEXAMPLEROLEID0001";
const ROLE_ARN: &str = "arn:aws:iam::111122223333:role/CM-Prd-role";
const HOME: &str = "444455556666";

fn t(raw: &str) -> DateTime<Utc> {
    raw.parse().unwrap()
}
fn user(raw: &str) -> IamUserName {
    IamUserName::parse(raw).unwrap()
}

// ------------------------------------------------------- sessions and the cut

/// A role session in the production account.
#[derive(Debug, Clone)]
struct Session {
    name: String,
    issued: DateTime<Utc>,
}

fn session(name: &str, issued: &str) -> Session {
    Session {
        name: name.to_owned(),
        issued: t(issued),
    }
}

/// The target role's permissions: everything, plus changegate's cut.
struct Role {
    permissions: Value,
    cut: Option<Value>,
}

impl Role {
    fn with(doc: &SessionCut) -> Self {
        Self {
            permissions: json!({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}),
            cut: doc
                .document_json()
                .map(|j| serde_json::from_str(&j).unwrap()),
        }
    }
    fn with_json(json: &str) -> Self {
        Self {
            cut: Some(serde_json::from_str(json).unwrap()),
            ..Self::with(&SessionCut::empty())
        }
    }

    /// Whether `s` can call an API at `now`.
    fn works(&self, s: &Session, now: DateTime<Utc>) -> bool {
        let req = iam::session_call(
            &format!(
                "arn:aws:sts::111122223333:assumed-role/CM-Prd-role/{}",
                s.name
            ),
            &format!("{ROLE_ID}:{}", s.name),
            s.issued,
            now,
            "ec2:DescribeInstances",
        );
        let mut policies = vec![&self.permissions];
        policies.extend(self.cut.as_ref());
        iam::evaluate(&policies, &req) == Decision::Allow
    }
}

const EARLY: &str = "2026-12-01T08:00:00Z";

fn granted(grants: &[(&str, &str, &str)], now: &str) -> SessionCut {
    let mut doc = SessionCut::empty();
    for (who, start, end) in grants {
        doc.extend(&user(who), t(start), t(end), t(now));
    }
    doc
}

#[test]
fn given_a_session_assumed_inside_the_window_when_the_end_passes_then_it_works_until_the_end_and_not_after()
 {
    let role = Role::with(&granted(
        &[("alice", "2026-12-01T09:00:00Z", "2026-12-01T10:00:00Z")],
        EARLY,
    ));
    let s = session("alice", "2026-12-01T09:59:59Z");
    assert!(role.works(&s, t("2026-12-01T09:59:59.5Z")));
    assert!(
        role.works(&s, t("2026-12-01T10:00:00Z")),
        "strict: the end itself"
    );
    assert!(
        !role.works(&s, t("2026-12-01T10:00:00.001Z")),
        "zero lag after the end"
    );
    assert!(!role.works(&s, t("2026-12-01T13:00:00Z")));
}

#[test]
fn given_a_later_grant_when_its_session_is_used_then_it_works_and_is_cut_at_its_own_end() {
    let role = Role::with(&granted(
        &[
            ("alice", "2026-12-01T09:00:00Z", "2026-12-01T10:00:00Z"),
            ("alice", "2026-12-01T14:00:00Z", "2026-12-01T15:00:00Z"),
        ],
        EARLY,
    ));
    let first = session("alice", "2026-12-01T09:30:00Z");
    let later = session("alice", "2026-12-01T14:10:00Z");
    assert!(
        !role.works(&first, t("2026-12-01T10:30:00Z")),
        "the gap does not keep the first alive"
    );
    assert!(role.works(&later, t("2026-12-01T14:59:00Z")));
    assert!(!role.works(&later, t("2026-12-01T15:00:01Z")));
    // Also when the later grant was granted after the first cut took effect.
    let mut doc = granted(
        &[("alice", "2026-12-01T09:00:00Z", "2026-12-01T10:00:00Z")],
        EARLY,
    );
    doc.extend(
        &user("alice"),
        t("2026-12-01T10:00:00Z"),
        t("2026-12-01T11:00:00Z"),
        t("2026-12-01T10:05:00Z"),
    );
    let role = Role::with(&doc);
    assert!(
        !role.works(&first, t("2026-12-01T10:06:00Z")),
        "a cut in effect stays"
    );
    assert!(role.works(
        &session("alice", "2026-12-01T10:06:00Z"),
        t("2026-12-01T10:59:00Z")
    ));
}

#[test]
fn given_back_to_back_and_overlapping_grants_when_used_then_sessions_are_cut_at_the_end_of_the_last()
 {
    let role = Role::with(&granted(
        &[
            ("alice", "2026-12-01T09:00:00Z", "2026-12-01T10:00:00Z"),
            ("alice", "2026-12-01T10:00:00Z", "2026-12-01T11:00:00Z"),
            ("alice", "2026-12-01T10:30:00Z", "2026-12-01T11:30:00Z"),
        ],
        EARLY,
    ));
    let first = session("alice", "2026-12-01T09:10:00Z");
    assert!(
        role.works(&first, t("2026-12-01T10:00:01Z")),
        "back-to-back: not cut at the first end"
    );
    assert!(
        role.works(&first, t("2026-12-01T11:29:59Z")),
        "overlapping: not cut at the second end"
    );
    assert!(!role.works(&first, t("2026-12-01T11:30:00.001Z")));
    assert!(!role.works(
        &session("alice", "2026-12-01T11:20:00Z"),
        t("2026-12-01T11:31:00Z")
    ));
}

#[test]
fn given_an_early_end_when_cut_now_then_live_sessions_stop_now_and_a_new_grant_still_works() {
    let mut doc = granted(
        &[("alice", "2026-12-01T09:00:00Z", "2026-12-01T11:00:00Z")],
        EARLY,
    );
    let now = t("2026-12-01T09:30:00.400Z");
    doc.cut_now(&user("alice"), now);
    let role = Role::with(&doc);
    let live = session("alice", "2026-12-01T09:29:00Z");
    assert!(
        !role.works(&live, t("2026-12-01T09:30:01.001Z")),
        "cut within a second of now"
    );
    assert!(
        role.works(&live, t("2026-12-01T09:30:00.999Z")),
        "rounded up to the whole second"
    );
    // A session issued after the cut (another grant of hers) still works,
    // and is still cut at the end of the run it belongs to.
    let after = session("alice", "2026-12-01T09:31:00Z");
    assert!(role.works(&after, t("2026-12-01T10:59:00Z")));
    assert!(!role.works(&after, t("2026-12-01T11:00:01Z")));
}

#[test]
fn given_alices_cuts_when_others_use_the_role_then_their_sessions_are_never_cut() {
    let mut doc = granted(
        &[("alice", "2026-12-01T09:00:00Z", "2026-12-01T10:00:00Z")],
        EARLY,
    );
    doc.cut_now(&user("alice"), t("2026-12-01T09:10:00Z"));
    let role = Role::with(&doc);
    for name in ["bob", "malice", "alice2", "Alice", "xalice", "alice.smith"] {
        let s = session(name, "2026-12-01T09:05:00Z");
        for now in [
            "2026-12-01T09:20:00Z",
            "2026-12-01T10:00:01Z",
            "2026-12-01T20:00:00Z",
        ] {
            assert!(role.works(&s, t(now)), "{name} at {now}");
        }
    }
}

#[test]
fn given_a_person_spelled_two_ways_when_cut_then_both_spellings_are_cut() {
    let role = Role::with(&granted(
        &[
            ("alice", "2026-12-01T09:00:00Z", "2026-12-01T10:00:00Z"),
            ("Alice", "2026-12-01T09:00:00Z", "2026-12-01T10:00:00Z"),
        ],
        EARLY,
    ));
    for name in ["alice", "Alice"] {
        assert!(!role.works(
            &session(name, "2026-12-01T09:05:00Z"),
            t("2026-12-01T10:00:01Z")
        ));
    }
}

#[test]
fn given_an_overflow_when_the_fallback_is_written_then_everyone_issued_before_now_is_denied_and_new_sessions_work()
 {
    let mut grants = Vec::new();
    let names: Vec<String> = (0..60).map(|i| format!("person{i:02}")).collect();
    for n in &names {
        grants.push((n.as_str(), "2026-12-01T09:00:00Z", "2026-12-01T18:00:00Z"));
    }
    let doc = granted(&grants, EARLY);
    let now = t("2026-12-01T12:00:00Z");
    let rendered = doc.render(0, now).unwrap();
    assert!(rendered.fallback.is_some());
    let Written::Put(json) = rendered.written else {
        panic!("a fallback is written")
    };
    let role = Role::with_json(&json);
    for name in ["person00", "person59", "bob"] {
        assert!(
            !role.works(
                &session(name, "2026-12-01T11:59:59Z"),
                t("2026-12-01T12:00:01Z")
            ),
            "{name}"
        );
        assert!(
            role.works(
                &session(name, "2026-12-01T12:00:01Z"),
                t("2026-12-01T12:30:00Z")
            ),
            "{name}"
        );
    }
}

// ---------------------------------------------- the grant's session-name rule

/// The grant policy exactly as grant writes it (sessions named after the user).
fn grant_document() -> String {
    grant_of(
        "6f1c2e4a-9b7d-4c3e-8a21-5d0f3b9e7a64",
        "alice",
        "2026-12-01T09:00:00Z",
        "2026-12-01T10:00:00Z",
    )
    .document_json()
}

/// The target role's trust policy from templates/production-account.yaml.
fn trust() -> Value {
    json!({"Version":"2012-10-17","Statement":[{"Effect":"Allow",
        "Principal":{"AWS":format!("arn:aws:iam::{HOME}:root")},
        "Action":"sts:AssumeRole",
        "Condition":{"StringEquals":{"sts:RoleSessionName":"${aws:username}"}}}]})
}

fn assume(caller_user: Option<&str>, session_name: &str, now: &str) -> Decision {
    let grant: Value = serde_json::from_str(&grant_document()).unwrap();
    let principal = match caller_user {
        Some(u) => format!("arn:aws:iam::{HOME}:user/{u}"),
        None => format!("arn:aws:sts::{HOME}:assumed-role/Admin/alice"),
    };
    let mut req = Request::new(&principal, "sts:AssumeRole", ROLE_ARN)
        .with("sts:RoleSessionName", session_name)
        .with("aws:CurrentTime", now);
    if let Some(u) = caller_user {
        req = req.with("aws:username", u);
    }
    iam::assume_role(&[&grant], &trust(), &req)
}

#[test]
fn given_the_grant_when_assuming_the_role_then_only_the_users_own_name_in_the_window_is_allowed() {
    let inside = "2026-12-01T09:30:00Z";
    assert_eq!(assume(Some("alice"), "alice", inside), Decision::Allow);
    for other in ["bob", "Alice", "alice2", "admin", "x"] {
        assert_eq!(
            assume(Some("alice"), other, inside),
            Decision::ImplicitDeny,
            "{other}"
        );
    }
    assert_eq!(
        assume(Some("alice"), "alice", "2026-12-01T09:00:00Z"),
        Decision::ImplicitDeny
    );
    assert_eq!(
        assume(Some("alice"), "alice", "2026-12-01T10:00:00Z"),
        Decision::ImplicitDeny
    );
    // A role session has no aws:username: the variable matches nothing.
    assert_eq!(assume(None, "alice", inside), Decision::ImplicitDeny);
}

// --------------------------------------------------------------- properties

/// Windows as (start, length) in minutes after 09:00; sessions as (window
/// index, minutes into it, minutes of use after issue).
fn windows() -> impl Strategy<Value = Vec<(i64, i64)>> {
    prop::collection::vec((0i64..600, 1i64..180), 1..5)
}

fn at(minutes: i64) -> DateTime<Utc> {
    t("2026-12-01T09:00:00Z") + TimeDelta::minutes(minutes)
}

/// The end of the run of touching or overlapping windows holding `issued`.
fn run_end(windows: &[(i64, i64)], issued: i64) -> i64 {
    let mut spans: Vec<(i64, i64)> = windows.iter().map(|(s, l)| (*s, s + l)).collect();
    spans.sort();
    let mut runs: Vec<(i64, i64)> = Vec::new();
    for (s, e) in spans {
        match runs.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => runs.push((s, e)),
        }
    }
    runs.iter()
        .find(|(s, e)| *s <= issued && issued < *e)
        .map(|r| r.1)
        .expect("issued inside a window")
}

proptest! {
    #[test]
    fn given_random_grants_granted_ahead_when_sessions_are_used_then_each_works_exactly_until_the_end_of_its_run(
        alice in windows(),
        bob in windows(),
        pick in (0usize..5, 0i64..180, 0i64..720),
        order in any::<bool>(),
    ) {
        let mut doc = SessionCut::empty();
        let mut grants: Vec<(&str, &(i64, i64))> =
            alice.iter().map(|w| ("alice", w)).chain(bob.iter().map(|w| ("bob", w))).collect();
        if order { grants.reverse(); }
        for (who, (s, l)) in &grants {
            doc.extend(&user(who), at(*s), at(s + l), t(EARLY));
        }
        let role = Role::with(&doc);
        for (who, ws) in [("alice", &alice), ("bob", &bob)] {
            let (i, into, used) = pick;
            let (s, l) = ws[i % ws.len()];
            let issued = s + into % l;
            let sess = Session { name: who.to_owned(), issued: at(issued) };
            let end = run_end(ws, issued);
            let now = at(issued + used) + TimeDelta::milliseconds(1);
            prop_assert_eq!(role.works(&sess, now), issued + used < end,
                "{} issued {} used {} run end {}", who, issued, used, end);
        }
    }

    #[test]
    fn given_any_document_when_collected_after_the_max_session_then_no_live_session_is_let_back_in(
        alice in windows(),
        issued_pick in (0usize..5, 0i64..180),
        later in 0i64..600,
    ) {
        let max_session = TimeDelta::hours(1);
        let mut doc = SessionCut::empty();
        for (s, l) in &alice { doc.extend(&user("alice"), at(*s), at(s + l), t(EARLY)); }
        let (i, into) = issued_pick;
        let (s, l) = alice[i % alice.len()];
        let issued = s + into % l;
        let sess = Session { name: "alice".to_owned(), issued: at(issued) };
        let now = at(issued + later) + TimeDelta::milliseconds(1);
        let before = Role::with(&doc).works(&sess, now);
        doc.collect(now, max_session);
        let after = Role::with(&doc).works(&sess, now);
        // A session still alive (issued less than max_session ago) is judged the same.
        if now - at(issued) < max_session {
            prop_assert_eq!(before, after);
        }
    }
}

#[test]
fn given_a_target_role_boundary_when_the_cutters_policy_is_evaluated_then_it_writes_only_on_the_bounded_target_role()
 {
    // (The local reader deploys the stack in account 123456789012.)
    const BOUNDARY: &str = "arn:aws:iam::123456789012:policy/prod-role-boundary";
    let cutter =
        "arn:aws:sts::123456789012:assumed-role/changegate-session-cutter/changegate-revoke";
    let target = "arn:aws:iam::123456789012:role/CM-Prd-role";
    let policies = |boundary: &str| {
        let parameters = json!({"ChangegateAccountId": "123456789012",
            "RevokeRoleArn": "arn:aws:iam::123456789012:role/changegate-revoke",
            "GrantRoleArn": "arn:aws:iam::123456789012:role/changegate-grant",
            "TargetRoleBoundaryArn": boundary});
        let resolved = resolved_property(
            "templates/production-account.yaml",
            &parameters,
            "SessionCutterRole",
            "Policies",
        );
        resolved
            .as_array()
            .expect("policies")
            .iter()
            .map(|p| p["PolicyDocument"].clone())
            .collect::<Vec<Value>>()
    };
    let call = |policies: &[Value], action: &str, resource: &str, boundary: Option<&str>| {
        let mut req = Request::new(cutter, action, resource);
        if let Some(b) = boundary {
            req = req.with("iam:PermissionsBoundary", b);
        }
        iam::evaluate(&policies.iter().collect::<Vec<_>>(), &req)
    };
    // Given the boundary required: the cut is written only while the role has exactly it.
    let bounded = policies(BOUNDARY);
    assert_eq!(
        call(&bounded, "iam:PutRolePolicy", target, Some(BOUNDARY)),
        Decision::Allow
    );
    assert_eq!(
        call(&bounded, "iam:PutRolePolicy", target, None),
        Decision::ImplicitDeny
    );
    let other = "arn:aws:iam::aws:policy/AdministratorAccess";
    assert_eq!(
        call(&bounded, "iam:PutRolePolicy", target, Some(other)),
        Decision::ImplicitDeny
    );
    // And removing a cut needs no boundary (it only takes away).
    assert_eq!(
        call(&bounded, "iam:DeleteRolePolicy", target, None),
        Decision::Allow
    );
    // Never on another role.
    let admin = "arn:aws:iam::123456789012:role/Admin";
    assert_eq!(
        call(&bounded, "iam:PutRolePolicy", admin, Some(BOUNDARY)),
        Decision::ImplicitDeny
    );
    // Given none required: the target role, boundary or not.
    let open = policies("");
    assert_eq!(
        call(&open, "iam:PutRolePolicy", target, None),
        Decision::Allow
    );
}
