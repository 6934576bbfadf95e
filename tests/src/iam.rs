//! An evaluator of IAM's documented policy semantics, for what the local AWS
//! does not enforce.
//!
//! moto evaluates only `StringEquals` (and only under IAM enforcement, and
//! never a cross-account trust policy), so what changegate's policies *mean*
//! is checked here, with the rules AWS documents for the operators
//! changegate uses:
//!
//! - A statement applies when its Action and Resource match (`*` and `?`
//!   wildcards; actions ignore case), its Principal matches (trust policies)
//!   and every condition holds: operators are ANDed, keys within an operator
//!   are ANDed, values of one key are ORed.
//! - A key absent from the request context makes its condition false.
//! - `StringEquals`: exact, case-sensitive. `StringLike`: case-sensitive, `*`
//!   matches any run of characters (also none), `?` one character. Both are
//!   what changegate uses on `aws:userid` (the session cut: `*:<user>`) and
//!   on `sts:RoleSessionName` (the grant: the user's name as granted; the
//!   target role's trust: `${aws:username}`).
//! - `ArnEquals` / `ArnLike` (the same): each of an ARN's six colon-separated
//!   parts matched on its own, case-sensitively, with `*` and `?`
//!   (`aws:PrincipalArn` in the session cutter's trust).
//! - `DateLessThan` / `DateGreaterThan`: strictly before / strictly after,
//!   compared as instants (any RFC 3339 offset). changegate uses them on
//!   `aws:CurrentTime` (the window, the cut taking effect) and on
//!   `aws:TokenIssueTime` (sessions issued before the cut).
//! - `Null`: `"true"` holds when the key is absent from the request
//!   context, `"false"` when it is present (whatever its value).
//! - A policy variable `${key}` in a condition value or a Resource takes the
//!   key's value from the request context; if the key is absent the value
//!   (or the resource) matches nothing
//!   (`aws:username` is absent for role sessions).
//! - An explicit Deny in any applicable policy wins; otherwise an Allow is
//!   needed; otherwise the request is implicitly denied.
//! - Cross-account `sts:AssumeRole`: the caller's identity policies *and* the
//!   role's trust policy must both allow it ([`assume_role`]).
//! - In a role session, `aws:userid` is `<role id>:<session name>` and
//!   `aws:TokenIssueTime` is when the session was issued ([`session_call`]).
//!
//! Anything else (another operator, a non-string value) panics: the
//! evaluator refuses to guess. Its own tests are below.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

/// IAM's answer to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// An Allow applies and no Deny does.
    Allow,
    /// A Deny applies: it wins over every Allow.
    ExplicitDeny,
    /// Nothing allows it.
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

/// `ArnEquals` and `ArnLike` (the same, documented): each of the six
/// colon-separated parts matches on its own, case-sensitively, with `*`/`?`.
pub fn arn_like(pattern: &str, arn: &str) -> bool {
    let (p, a): (Vec<&str>, Vec<&str>) = (
        pattern.splitn(6, ':').collect(),
        arn.splitn(6, ':').collect(),
    );
    p.len() == 6 && a.len() == 6 && p.iter().zip(&a).all(|(p, a)| glob(p, a))
}

/// One operator on one key: true when the context value matches any of
/// the policy's values; false when the key is absent.
pub fn operator(op: &str, actual: Option<&str>, wanted: &[&str], req: &Request) -> bool {
    if op == "Null" {
        return wanted.iter().any(|w| match *w {
            "true" => actual.is_none(),
            "false" => actual.is_some(),
            other => panic!("Null takes \"true\" or \"false\", not {other:?}"),
        });
    }
    let Some(actual) = actual else { return false };
    wanted.iter().any(|w| match op {
        "StringEquals" => substitute(w, req).is_some_and(|w| w == actual),
        "StringLike" => substitute(w, req).is_some_and(|w| glob(&w, actual)),
        "ArnEquals" | "ArnLike" => substitute(w, req).is_some_and(|w| arn_like(&w, actual)),
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
        && resource
            .iter()
            .any(|r| substitute(r, req).is_some_and(|r| glob(&r, &req.resource)))
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

/// A call by a role session: `userid` is its `aws:userid`
/// (`<role id>:<session name>`, as STS `GetCallerIdentity` gives it),
/// `issued` its `aws:TokenIssueTime`, `now` the call's `aws:CurrentTime`.
pub fn session_call(
    session_arn: &str,
    userid: &str,
    issued: DateTime<Utc>,
    now: DateTime<Utc>,
    action: &str,
) -> Request {
    Request::new(session_arn, action, "*")
        .with("aws:userid", userid)
        .with("aws:TokenIssueTime", iso(issued))
        .with("aws:CurrentTime", iso(now))
}

/// An instant as IAM's request context writes it (RFC 3339, milliseconds, `Z`).
pub fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::{Decision, Request};
    use serde_json::json;

    #[test]
    fn given_glob_patterns_when_matched_then_star_spans_any_run_and_question_mark_one_character() {
        assert!(super::glob("*:alice", "AROAX:alice"));
        assert!(super::glob("*:alice", ":alice"));
        assert!(!super::glob("*:alice", "AROAX:malice"));
        assert!(!super::glob("*:alice", "AROAX:alice2"));
        assert!(!super::glob("*:alice", "AROAX:Alice"), "case-sensitive");
        assert!(super::glob("a?c", "abc"));
        assert!(!super::glob("a?c", "ac"));
        assert!(super::glob("*", ""));
        assert!(super::glob("a*b*c", "a-b-b-c"));
        assert!(!super::glob("a*b*c", "a-c-b"));
    }

    #[test]
    fn given_each_operator_when_evaluated_then_true_and_false_cases_follow_the_documentation() {
        let req = Request::new("p", "a", "r")
            .with("aws:userid", "AROAX:alice")
            .with("aws:username", "alice")
            .with("aws:CurrentTime", "2026-12-01T10:00:00.000Z");
        let op =
            |o: &str, key: &str, wanted: &[&str]| super::operator(o, req.get(key), wanted, &req);
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
        assert!(!super::operator(
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
        // Null: whether the key is absent ("true") or present ("false").
        assert!(op("Null", "sts:RoleSessionName", &["true"]));
        assert!(!op("Null", "sts:RoleSessionName", &["false"]));
        assert!(op("Null", "aws:username", &["false"]));
        assert!(!op("Null", "aws:username", &["true"]));
    }

    #[test]
    fn given_date_operators_when_at_the_boundary_then_both_are_strict() {
        let at = |now: &str| Request::new("p", "a", "r").with("aws:CurrentTime", now);
        let less = |now: &str, v: &str| {
            let r = at(now);
            super::operator("DateLessThan", r.get("aws:CurrentTime"), &[v], &r)
        };
        let greater = |now: &str, v: &str| {
            let r = at(now);
            super::operator("DateGreaterThan", r.get("aws:CurrentTime"), &[v], &r)
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
    fn given_allow_and_deny_when_both_apply_then_the_explicit_deny_wins_and_nothing_is_implicit_deny()
     {
        let allow = json!({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]});
        let deny = json!({"Version":"2012-10-17","Statement":{"Effect":"Deny","Action":"s3:*","Resource":"*"}});
        let req = Request::new("p", "S3:GetObject", "arn:aws:s3:::b/k");
        assert_eq!(super::evaluate(&[&allow], &req), Decision::Allow);
        assert_eq!(
            super::evaluate(&[&allow, &deny], &req),
            Decision::ExplicitDeny
        );
        assert_eq!(
            super::evaluate(&[&deny], &Request::new("p", "ec2:Run", "*")),
            Decision::ImplicitDeny
        );
        assert_eq!(super::evaluate(&[], &req), Decision::ImplicitDeny);
    }

    #[test]
    fn given_arn_patterns_when_matched_then_each_part_matches_on_its_own() {
        let role = "arn:aws:iam::123456789012:role/changegate-revoke";
        assert!(super::arn_like(role, role));
        assert!(super::arn_like("arn:aws:iam::*:role/changegate-*", role));
        assert!(!super::arn_like(
            "arn:aws:iam::123456789012:role/changegate-grant",
            role
        ));
        assert!(
            !super::arn_like("arn:aws:iam::*:role/Changegate-revoke", role),
            "case-sensitive"
        );
        assert!(
            !super::arn_like("arn:aws:iam::123456789012:*", "arn:aws:iam::123456789012"),
            "not an ARN"
        );
        assert!(
            !super::arn_like("arn:aws:iam::*:role/x", "arn:aws:iam::1:2:role/x"),
            "a wildcard does not cross a part"
        );
    }
}
