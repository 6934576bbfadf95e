//! `iam-evaluate`: IAM's decision on one request, by the evaluator the
//! integration tests use ([`changegate_tests::iam`], IAM's documented
//! semantics), for what the local AWS does not enforce (`make demo` asks it
//! whether a live production session survives the window's end).
//!
//! Reads one JSON object on stdin:
//!
//! ```json
//! {"policies": {"operations": {...}, "changegate-session-cut": {...}},
//!  "trust": {...},
//!  "principal": "arn:aws:sts::111122223333:assumed-role/CM-Prd-role/alice",
//!  "action": "s3:ListAllMyBuckets", "resource": "*",
//!  "context": {"aws:userid": "AROA…:alice",
//!              "aws:TokenIssueTime": "2026-12-01T09:00:05.000Z",
//!              "aws:CurrentTime": "2026-12-01T09:00:21.000Z"}}
//! ```
//!
//! - `policies`: the caller's identity policies by name; for a call in a
//!   role session, the role's inline policies as its account holds them.
//! - `trust` (optional): a role's trust policy; the request is then a
//!   cross-account `sts:AssumeRole` into it, which both sides must allow.
//! - `principal` (optional, for `trust`), `resource` (default `*`), and the
//!   request context: `aws:userid`, `aws:username`, `aws:TokenIssueTime`,
//!   `aws:CurrentTime`, `sts:RoleSessionName`, ... (strings).
//!
//! Prints the decision on the first line, `Allow`, `Deny (explicit)` or
//! `Deny (implicit)`, then the statements that apply to the request, one a
//! line: `<policy>/<Sid or #index> Allow|Deny` (the trust policy is `trust`). Exits 0
//! whatever the decision, 2 on malformed input; an operator the evaluator
//! does not know panics (it refuses to guess).

use std::io::Read;
use std::process::ExitCode;

use changegate_tests::iam::{self, Decision, Request};
use serde_json::{Value, json};

fn main() -> ExitCode {
    let mut input = String::new();
    let parsed = std::io::stdin()
        .read_to_string(&mut input)
        .map_err(|e| e.to_string())
        .and_then(|_| serde_json::from_str::<Value>(&input).map_err(|e| e.to_string()));
    match parsed.and_then(|v| answer(&v)) {
        Ok(lines) => {
            println!("{}", lines.join("\n"));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("iam-evaluate: {e}");
            ExitCode::from(2)
        }
    }
}

fn text<'a>(input: &'a Value, key: &str, default: Option<&'a str>) -> Result<&'a str, String> {
    match input.get(key) {
        None => default.ok_or_else(|| format!("{key:?} is missing")),
        Some(v) => v.as_str().ok_or_else(|| format!("{key:?} is not a string")),
    }
}

/// The decision, then the statements that apply to the request.
fn answer(input: &Value) -> Result<Vec<String>, String> {
    let action = text(input, "action", None)?;
    let mut req = Request::new(
        text(input, "principal", Some(""))?,
        action,
        text(input, "resource", Some("*"))?,
    );
    for (key, value) in input
        .get("context")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let value = value
            .as_str()
            .ok_or(format!("context {key:?} is not a string"))?;
        req = req.with(key, value);
    }
    let policies: Vec<(&str, &Value)> = match input.get("policies") {
        Some(Value::Object(named)) => named.iter().map(|(n, d)| (n.as_str(), d)).collect(),
        None => Vec::new(),
        Some(_) => return Err("\"policies\" is not an object of policies by name".into()),
    };
    let identity: Vec<&Value> = policies.iter().map(|(_, d)| *d).collect();
    let trust = input.get("trust");
    let decision = match trust {
        Some(trust) => iam::assume_role(&identity, trust, &req),
        None => iam::evaluate(&identity, &req),
    };
    let mut lines = vec![
        match decision {
            Decision::Allow => "Allow",
            Decision::ExplicitDeny => "Deny (explicit)",
            Decision::ImplicitDeny => "Deny (implicit)",
        }
        .to_owned(),
    ];
    // Why: each statement evaluated on its own, by the same evaluator.
    for (name, doc) in policies.into_iter().chain(trust.map(|t| ("trust", t))) {
        let statements = match doc.get("Statement") {
            Some(Value::Array(all)) => all.clone(),
            Some(one) => vec![one.clone()],
            None => return Err(format!("policy {name:?} has no Statement")),
        };
        for (i, stmt) in statements.into_iter().enumerate() {
            let alone = json!({"Version": "2012-10-17", "Statement": [stmt]});
            let effect = match iam::evaluate(&[&alone], &req) {
                Decision::Allow => "Allow",
                Decision::ExplicitDeny => "Deny",
                Decision::ImplicitDeny => continue,
            };
            let sid = alone["Statement"][0]["Sid"]
                .as_str()
                .map_or_else(|| format!("#{i}"), str::to_owned);
            lines.push(format!("{name}/{sid} {effect}"));
        }
    }
    Ok(lines)
}
