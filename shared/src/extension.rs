//! An extension: a request (Y) that names, in the request runbook's
//! `Extends`, the request (X) whose access it extends (`changegate extend`).
//! Y is decided like any request: approved by the same rules, its window held
//! to the deployment's maximum duration from its own start, which the command
//! sets to X's start, so that an extension is bounded from the original
//! start. Once Y is granted, X's grant is retired (cause
//! [`Cause::Extended`](crate::events::Cause::Extended)): removed without a
//! cut, since Y's policy already covers the rest of X's window and Y's grant
//! moved the person's session cut to Y's end. So the access grows without a
//! gap (Y's policy is in place before X's goes) and live sessions go on.
//!
//! Retiring only ever removes, and only a grant to the same person in the
//! same account whose window Y covers from now (or X's start) to X's end, as
//! Systems Manager records X (never the decision table). Pure.

use chrono::{DateTime, Utc};

use crate::execution::Execution;
use crate::ids::{ChangeRequestId, IamUserName};
use crate::request::AccessRequest;
use crate::text::shown;
use crate::window::human_time;

/// The grant to retire: request `extended`'s, on `user`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retire {
    pub extended: ChangeRequestId,
    pub user: IamUserName,
}

/// Why an extension's grant retires nothing: the extended request's access
/// simply runs to its own end beside the extension's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotRetired {
    #[error("request {id} names itself in Extends")]
    Itself { id: String },
    #[error("Systems Manager has no request {extended}")]
    NoSuchRequest { extended: String },
    #[error("request {extended} is not an access request: {why}")]
    NotARequest { extended: String, why: String },
    #[error("request {extended} is for {theirs}, not {ours}")]
    OtherPerson {
        extended: String,
        theirs: String,
        ours: String,
    },
    #[error("request {extended} is for account {theirs}, not {ours}")]
    OtherAccount {
        extended: String,
        theirs: String,
        ours: String,
    },
    #[error(
        "the extension's window ({start} until {end}) does not cover the rest of request {extended}'s, which ends {extended_end}"
    )]
    DoesNotCover {
        extended: String,
        start: String,
        end: String,
        extended_end: String,
    },
}

/// What granting request `id` (`request`, as parsed from Systems Manager's
/// record of it) retires, given Systems Manager's record of the request it
/// extends (`extended`, read by the caller): `None` when it extends nothing.
pub fn retires(
    id: &ChangeRequestId,
    request: &AccessRequest,
    extended: Option<&Execution>,
    now: DateTime<Utc>,
) -> Result<Option<Retire>, NotRetired> {
    let Some(x) = &request.extends else {
        return Ok(None);
    };
    if x == id {
        return Err(NotRetired::Itself { id: id.to_string() });
    }
    let exec = extended.ok_or_else(|| NotRetired::NoSuchRequest {
        extended: x.to_string(),
    })?;
    let theirs = exec
        .access_request()
        .ok_or_else(|| "it names no parameters".to_owned())
        .and_then(|r| r.map_err(|r| r.to_string()))
        .map_err(|why| NotRetired::NotARequest {
            extended: x.to_string(),
            why,
        })?;
    if !theirs.user.same_name(&request.user) {
        return Err(NotRetired::OtherPerson {
            extended: x.to_string(),
            theirs: shown(theirs.user.as_str()),
            ours: request.user.to_string(),
        });
    }
    if theirs.account != request.account {
        return Err(NotRetired::OtherAccount {
            extended: x.to_string(),
            theirs: theirs.account.to_string(),
            ours: request.account.to_string(),
        });
    }
    let from = theirs.window.start_utc().max(now);
    if request.window.start_utc() > from || request.window.end_utc() < theirs.window.end_utc() {
        return Err(NotRetired::DoesNotCover {
            extended: x.to_string(),
            start: human_time(request.window.start()),
            end: human_time(request.window.end()),
            extended_end: human_time(theirs.window.end()),
        });
    }
    Ok(Some(Retire {
        extended: x.clone(),
        user: request.user.clone(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::execution::Origin;
    use crate::request::{PARAM_EXTENDS, params, parse_parameters};
    use crate::status::Status;

    const X: &str = "d0585556-80f6-4522-8dad-dada6d45b67d";
    const Y: &str = "0f4b1a5e-7c2d-4e8f-9a10-3b2c1d0e9f87";

    fn t(raw: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(raw).unwrap().to_utc()
    }

    /// Systems Manager's record of a request runbook execution (with the
    /// runbook's own `Reason`, which only a runbook request may carry).
    fn run(user: &str, account: &str, start: &str, end: &str) -> Execution {
        Execution {
            status: Status::Success,
            executed_by: Some("arn:aws:iam::123456789012:user/alice".into()),
            origin: Origin::Automation {
                document: "changegate-access-request".into(),
                parameters: params(&[
                    ("IAMUserName", user),
                    ("AWSAccountId", account),
                    ("StartTime", start),
                    ("EndTime", end),
                    ("Reason", "INC-4711"),
                ]),
            },
            approval_steps: vec![],
            versions: Default::default(),
        }
    }

    /// Request Y as parsed: alice, 111122223333, `start` until `end`, extending `x`.
    fn extension(start: &str, end: &str, x: &str) -> AccessRequest {
        let mut p = params(&[
            ("IAMUserName", "alice"),
            ("AWSAccountId", "111122223333"),
            ("StartTime", start),
            ("EndTime", end),
        ]);
        p.insert(PARAM_EXTENDS.into(), vec![x.into()]);
        parse_parameters(&p, true).unwrap()
    }

    fn retire(
        y: &AccessRequest,
        x: Option<&Execution>,
        now: &str,
    ) -> Result<Option<Retire>, NotRetired> {
        retires(&ChangeRequestId::parse(Y).unwrap(), y, x, t(now))
    }

    #[test]
    fn given_an_extension_covering_the_rest_of_alices_window_when_granted_then_her_earlier_grant_is_retired()
     {
        // Given X: alice 09:00-10:00 (in +09:00); Y: from X's start until 11:00
        let x = run(
            "alice",
            "111122223333",
            "2026-12-01T18:00:00+09:00",
            "2026-12-01T19:00:00+09:00",
        );
        let y = extension("2026-12-01T09:00:00Z", "2026-12-01T11:00:00Z", X);
        // Then X's grant, on alice, is retired (the name compared as IAM does)
        let expected = Some(Retire {
            extended: ChangeRequestId::parse(X).unwrap(),
            user: IamUserName::parse("alice").unwrap(),
        });
        assert_eq!(
            retire(&y, Some(&x), "2026-12-01T09:30:00Z"),
            Ok(expected.clone())
        );
        let shouted = run(
            "ALICE",
            "111122223333",
            "2026-12-01T09:00:00Z",
            "2026-12-01T10:00:00Z",
        );
        assert_eq!(
            retire(&y, Some(&shouted), "2026-12-01T09:30:00Z"),
            Ok(expected.clone())
        );
        // And one starting now, or exactly at X's end, still covers what is left
        let from_now = extension("2026-12-01T09:30:00Z", "2026-12-01T10:00:00Z", X);
        assert_eq!(
            retire(&from_now, Some(&x), "2026-12-01T09:30:00Z"),
            Ok(expected)
        );
    }

    #[test]
    fn given_a_request_that_extends_nothing_when_granted_then_nothing_is_retired() {
        let mut p = params(&[
            ("IAMUserName", "alice"),
            ("AWSAccountId", "111122223333"),
            ("StartTime", "2026-12-01T09:00:00Z"),
            ("EndTime", "2026-12-01T10:00:00Z"),
        ]);
        p.insert(PARAM_EXTENDS.into(), vec![String::new()]);
        let y = parse_parameters(&p, true).unwrap();
        assert_eq!(y.extends, None);
        assert_eq!(retire(&y, None, "2026-12-01T09:30:00Z"), Ok(None));
    }

    #[test]
    fn given_an_extension_that_does_not_match_or_cover_when_granted_then_nothing_is_retired_and_it_says_why()
     {
        let now = "2026-12-01T09:30:00Z";
        let y = extension("2026-12-01T09:00:00Z", "2026-12-01T11:00:00Z", X);
        let code = |r: Result<Option<Retire>, NotRetired>| format!("{r:?}");
        // Another person's, another account's, or no request at all
        let bob = run(
            "bob",
            "111122223333",
            "2026-12-01T09:00:00Z",
            "2026-12-01T10:00:00Z",
        );
        assert!(code(retire(&y, Some(&bob), now)).contains("OtherPerson"));
        let other = run(
            "alice",
            "444455556666",
            "2026-12-01T09:00:00Z",
            "2026-12-01T10:00:00Z",
        );
        assert!(code(retire(&y, Some(&other), now)).contains("OtherAccount"));
        assert_eq!(
            retire(&y, None, now).unwrap_err().to_string(),
            format!("Systems Manager has no request {X}")
        );
        let mut broken = run(
            "alice",
            "111122223333",
            "2026-12-01T09:00:00Z",
            "2026-12-01T10:00:00Z",
        );
        broken.origin = Origin::Automation {
            document: "x".into(),
            parameters: params(&[("IAMUserName", "alice")]),
        };
        assert!(code(retire(&y, Some(&broken), now)).contains("NotARequest"));
        // An extension that starts later than now and X's start, or ends before X
        let x = run(
            "alice",
            "111122223333",
            "2026-12-01T09:00:00Z",
            "2026-12-01T12:00:00Z",
        );
        assert!(
            code(retire(&y, Some(&x), now)).contains("DoesNotCover"),
            "ends before X"
        );
        let late = extension("2026-12-01T09:45:00Z", "2026-12-01T13:00:00Z", X);
        assert!(
            code(retire(&late, Some(&x), now)).contains("DoesNotCover"),
            "a gap until 09:45"
        );
        // And a request naming itself
        let itself = extension("2026-12-01T09:00:00Z", "2026-12-01T11:00:00Z", Y);
        assert!(code(retire(&itself, Some(&x), now)).contains("Itself"));
    }
}
