//! The session cut, proven against IAM's documented policy semantics.
//!
//! The local AWS (moto) treats every condition operator other than
//! StringEquals as satisfied, so what the Deny statements *mean* is checked
//! here, by a small evaluator of IAM's documented rules for the operators
//! changegate uses:
//!
//! - A statement applies when its Action and Resource match (`*` and `?`
//!   wildcards; actions ignore case) and every condition holds: operators are
//!   ANDed, keys within an operator are ANDed, values of one key are ORed.
//! - A key absent from the request context makes its condition false.
//! - `StringEquals`: exact, case-sensitive. `StringLike`: case-sensitive, `*`
//!   matches any run of characters (also none), `?` one character.
//! - `DateLessThan` / `DateGreaterThan`: strictly before / strictly after.
//! - A policy variable `${key}` in a condition value takes the key's value
//!   from the request context; if the key is absent the value matches nothing
//!   (`aws:username` is absent for role sessions).
//! - An explicit Deny in any applicable policy wins; otherwise an Allow is
//!   needed; otherwise the request is implicitly denied.
//! - Cross-account `sts:AssumeRole`: the caller's identity policies *and* the
//!   role's trust policy must both allow it.
//! - In a role session, `aws:userid` is `<role id>:<session name>` and
//!   `aws:TokenIssueTime` is when the session was issued.
//!
//! The evaluator has its own tests; then the cut is checked scenario by
//! scenario and as a property over random grants.

use changegate::ids::IamUserName;
use changegate::session::{SessionCut, Written};
use chrono::{DateTime, TimeDelta, Utc};
use proptest::prelude::*;
use serde_json::{Value, json};

mod iam {
    use std::collections::BTreeMap;

    use chrono::{DateTime, Utc};
    use serde_json::Value;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Decision {
        Allow,
        ExplicitDeny,
        ImplicitDeny,
    }

    /// One request: the action, the resource, and the request context.
    #[derive(Debug, Clone)]
    pub struct Request {
        pub principal: String,
        pub action: String,
        pub resource: String,
        context: BTreeMap<String, String>,
    }

    impl Request {
        pub fn new(principal: &str, action: &str, resource: &str) -> Self {
            Self {
                principal: principal.to_owned(),
                action: action.to_owned(),
                resource: resource.to_owned(),
                context: BTreeMap::new(),
            }
        }
        /// Condition keys are case-insensitive.
        pub fn with(mut self, key: &str, value: impl Into<String>) -> Self {
            self.context.insert(key.to_ascii_lowercase(), value.into());
            self
        }
        pub fn get(&self, key: &str) -> Option<&str> {
            self.context
                .get(&key.to_ascii_lowercase())
                .map(String::as_str)
        }
    }

    /// `*` any run of characters (also none), `?` exactly one.
    pub fn glob(pattern: &str, text: &str) -> bool {
        let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
        // Classic two-pointer wildcard match with backtracking to the last `*`.
        let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
        while ti < t.len() {
            if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
                pi += 1;
                ti += 1;
            } else if pi < p.len() && p[pi] == '*' {
                star = Some(pi);
                mark = ti;
                pi += 1;
            } else if let Some(s) = star {
                pi = s + 1;
                mark += 1;
                ti = mark;
            } else {
                return false;
            }
        }
        p[pi..].iter().all(|c| *c == '*')
    }

    fn values(v: &Value) -> Vec<&str> {
        match v {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a
                .iter()
                .map(|x| x.as_str().expect("policy values are strings"))
                .collect(),
            other => panic!("unexpected policy value {other}"),
        }
    }

    /// `${key}` replaced from the context; `None` when a key is absent.
    fn substitute(value: &str, req: &Request) -> Option<String> {
        let mut out = String::new();
        let mut rest = value;
        while let Some(i) = rest.find("${") {
            out.push_str(&rest[..i]);
            let end = rest[i..].find('}').expect("closed policy variable") + i;
            out.push_str(req.get(&rest[i + 2..end])?);
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        Some(out)
    }

    fn date(raw: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(raw)
            .unwrap_or_else(|e| panic!("{raw:?} is not a date: {e}"))
            .with_timezone(&Utc)
    }

    /// One operator on one key: true when the context value matches any of
    /// the policy's values; false when the key is absent.
    pub fn operator(op: &str, actual: Option<&str>, wanted: &[&str], req: &Request) -> bool {
        let Some(actual) = actual else { return false };
        wanted.iter().any(|w| match op {
            "StringEquals" => substitute(w, req).is_some_and(|w| w == actual),
            "StringLike" => substitute(w, req).is_some_and(|w| glob(&w, actual)),
            "DateLessThan" => date(actual) < date(w),
            "DateGreaterThan" => date(actual) > date(w),
            other => panic!("the evaluator does not know {other}"),
        })
    }

    fn conditions_hold(condition: Option<&Value>, req: &Request) -> bool {
        let Some(condition) = condition else {
            return true;
        };
        condition
            .as_object()
            .expect("Condition is an object")
            .iter()
            .all(|(op, keys)| {
                keys.as_object()
                    .expect("operator block is an object")
                    .iter()
                    .all(|(key, wanted)| operator(op, req.get(key), &values(wanted), req))
            })
    }

    fn principal_matches(stmt: &Value, req: &Request) -> bool {
        let Some(principal) = stmt.get("Principal") else {
            return true; // identity policy: the principal is its holder
        };
        let aws = principal.get("AWS").expect("AWS principal");
        values(aws).iter().any(|p| {
            p == &req.principal
                || p.strip_suffix(":root").is_some_and(|account_root| {
                    let account = account_root.rsplit(':').next().unwrap_or_default();
                    req.principal.split(':').nth(4) == Some(account)
                })
        })
    }

    fn statement_applies(stmt: &Value, req: &Request) -> bool {
        let action = values(stmt.get("Action").expect("Action"));
        let resource = stmt
            .get("Resource")
            .map(values)
            .unwrap_or_else(|| vec!["*"]);
        action
            .iter()
            .any(|a| glob(&a.to_ascii_lowercase(), &req.action.to_ascii_lowercase()))
            && resource.iter().any(|r| glob(r, &req.resource))
            && principal_matches(stmt, req)
            && conditions_hold(stmt.get("Condition"), req)
    }

    fn statements(policy: &Value) -> Vec<&Value> {
        match policy.get("Statement").expect("Statement") {
            Value::Array(a) => a.iter().collect(),
            one => vec![one],
        }
    }

    /// IAM's decision over the policies that apply to one principal.
    pub fn evaluate(policies: &[&Value], req: &Request) -> Decision {
        let applying: Vec<&Value> = policies
            .iter()
            .flat_map(|p| statements(p))
            .filter(|s| statement_applies(s, req))
            .collect();
        if applying.iter().any(|s| s["Effect"] == "Deny") {
            Decision::ExplicitDeny
        } else if applying.iter().any(|s| s["Effect"] == "Allow") {
            Decision::Allow
        } else {
            Decision::ImplicitDeny
        }
    }

    /// Cross-account AssumeRole: both sides must allow, and neither deny.
    pub fn assume_role(identity: &[&Value], trust: &Value, req: &Request) -> Decision {
        match (evaluate(identity, req), evaluate(&[trust], req)) {
            (Decision::ExplicitDeny, _) | (_, Decision::ExplicitDeny) => Decision::ExplicitDeny,
            (Decision::Allow, Decision::Allow) => Decision::Allow,
            _ => Decision::ImplicitDeny,
        }
    }
}

use iam::{Decision, Request};

const ROLE_ID: &str = "AROAEXAMPLEROLEID0001";
const ROLE_ARN: &str = "arn:aws:iam::111122223333:role/CM-Prd-role";
const HOME: &str = "444455556666";

fn t(raw: &str) -> DateTime<Utc> {
    raw.parse().unwrap()
}
fn user(raw: &str) -> IamUserName {
    IamUserName::parse(raw).unwrap()
}
fn iso(x: DateTime<Utc>) -> String {
    x.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

// ---------------------------------------------------------------- evaluator

#[test]
fn given_glob_patterns_when_matched_then_star_spans_any_run_and_question_mark_one_character() {
    assert!(iam::glob("*:alice", "AROAX:alice"));
    assert!(iam::glob("*:alice", ":alice"));
    assert!(!iam::glob("*:alice", "AROAX:malice"));
    assert!(!iam::glob("*:alice", "AROAX:alice2"));
    assert!(!iam::glob("*:alice", "AROAX:Alice"), "case-sensitive");
    assert!(iam::glob("a?c", "abc"));
    assert!(!iam::glob("a?c", "ac"));
    assert!(iam::glob("*", ""));
    assert!(iam::glob("a*b*c", "a-b-b-c"));
    assert!(!iam::glob("a*b*c", "a-c-b"));
}

#[test]
fn given_each_operator_when_evaluated_then_true_and_false_cases_follow_the_documentation() {
    let req = Request::new("p", "a", "r")
        .with("aws:userid", "AROAX:alice")
        .with("aws:username", "alice")
        .with("aws:CurrentTime", "2026-12-01T10:00:00.000Z");
    let op = |o: &str, key: &str, wanted: &[&str]| iam::operator(o, req.get(key), wanted, &req);
    assert!(op("StringEquals", "aws:username", &["alice"]));
    assert!(!op("StringEquals", "aws:username", &["Alice"]));
    assert!(
        op("StringEquals", "aws:username", &["bob", "alice"]),
        "values are ORed"
    );
    assert!(op("StringLike", "aws:userid", &["*:alice"]));
    assert!(!op("StringLike", "aws:userid", &["*:bob"]));
    assert!(op("StringEquals", "aws:username", &["${aws:username}"]));
    assert!(!op("StringEquals", "aws:userid", &["${aws:username}"]));
    // Absent keys: false, also through a policy variable.
    assert!(!op("StringEquals", "sts:RoleSessionName", &["alice"]));
    let role_session = Request::new("p", "a", "r").with("sts:RoleSessionName", "alice");
    assert!(!iam::operator(
        "StringEquals",
        role_session.get("sts:RoleSessionName"),
        &["${aws:username}"],
        &role_session
    ));
    assert!(!op(
        "DateLessThan",
        "aws:TokenIssueTime",
        &["2030-01-01T00:00:00Z"]
    ));
}

#[test]
fn given_date_operators_when_at_the_boundary_then_both_are_strict() {
    let at = |now: &str| Request::new("p", "a", "r").with("aws:CurrentTime", now);
    let less = |now: &str, v: &str| {
        let r = at(now);
        iam::operator("DateLessThan", r.get("aws:CurrentTime"), &[v], &r)
    };
    let greater = |now: &str, v: &str| {
        let r = at(now);
        iam::operator("DateGreaterThan", r.get("aws:CurrentTime"), &[v], &r)
    };
    let v = "2026-12-01T10:00:00Z";
    assert!(less("2026-12-01T09:59:59.999Z", v));
    assert!(!less("2026-12-01T10:00:00.000Z", v));
    assert!(!less("2026-12-01T10:00:00.001Z", v));
    assert!(!greater("2026-12-01T09:59:59.999Z", v));
    assert!(!greater("2026-12-01T10:00:00.000Z", v));
    assert!(greater("2026-12-01T10:00:00.001Z", v));
    // Offsets are instants: 19:00+09:00 is 10:00Z.
    assert!(!greater("2026-12-01T19:00:00+09:00", v));
}

#[test]
fn given_allow_and_deny_when_both_apply_then_the_explicit_deny_wins_and_nothing_is_implicit_deny() {
    let allow = json!({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]});
    let deny = json!({"Version":"2012-10-17","Statement":{"Effect":"Deny","Action":"s3:*","Resource":"*"}});
    let req = Request::new("p", "S3:GetObject", "arn:aws:s3:::b/k");
    assert_eq!(iam::evaluate(&[&allow], &req), Decision::Allow);
    assert_eq!(
        iam::evaluate(&[&allow, &deny], &req),
        Decision::ExplicitDeny
    );
    assert_eq!(
        iam::evaluate(&[&deny], &Request::new("p", "ec2:Run", "*")),
        Decision::ImplicitDeny
    );
    assert_eq!(iam::evaluate(&[], &req), Decision::ImplicitDeny);
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
        let req = Request::new(
            &format!(
                "arn:aws:sts::111122223333:assumed-role/CM-Prd-role/{}",
                s.name
            ),
            "ec2:DescribeInstances",
            "*",
        )
        .with("aws:userid", format!("{ROLE_ID}:{}", s.name))
        .with("aws:TokenIssueTime", iso(s.issued))
        .with("aws:CurrentTime", iso(now));
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

/// What the grant policy becomes with the session-name requirement (to be
/// switched to `Grant::document_json()`).
const GRANT: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"ChangegateUtcUtc","Effect":"Allow","Action":"sts:AssumeRole","Resource":"arn:aws:iam::111122223333:role/CM-Prd-role","Condition":{"DateGreaterThan":{"aws:CurrentTime":"2026-12-01T09:00:00Z"},"DateLessThan":{"aws:CurrentTime":"2026-12-01T10:00:00Z"},"StringEquals":{"sts:RoleSessionName":"${aws:username}"}}}]}"#;

/// The target role's trust policy from templates/production-account.yaml.
fn trust() -> Value {
    json!({"Version":"2012-10-17","Statement":[{"Effect":"Allow",
        "Principal":{"AWS":format!("arn:aws:iam::{HOME}:root")},
        "Action":"sts:AssumeRole",
        "Condition":{"StringEquals":{"sts:RoleSessionName":"${aws:username}"}}}]})
}

fn assume(caller_user: Option<&str>, session_name: &str, now: &str) -> Decision {
    let grant: Value = serde_json::from_str(GRANT).unwrap();
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
