//! The grant: one inline user policy per change request, built as data.
//!
//! ```json
//! {"Version":"2012-10-17","Statement":[{"Sid":"ChangegateP0900P0900","Effect":"Allow",
//!  "Action":"sts:AssumeRole","Resource":"arn:aws:iam::111122223333:role/CM-Prd-role",
//!  "Condition":{"DateGreaterThan":{"aws:CurrentTime":"2026-12-01T09:00:00Z"},
//!               "DateLessThan":{"aws:CurrentTime":"2026-12-01T10:00:00Z"},
//!               "StringEquals":{"sts:RoleSessionName":"alice"}}}]}
//! ```
//!
//! The `StringEquals` (on by default, `CHANGEGATE_REQUIRE_SESSION_NAME`) makes
//! every session in production carry the person's own name, so CloudTrail
//! there names them and a session cut can tell whose sessions are whose.
//!
//! **The name as granted, literally.** The condition names the user as IAM
//! called them when the grant was decided, not `${aws:username}`: a user who
//! renames themselves during the window (`iam:UpdateUser`; inline policies
//! move with the user) can then only assume with the *old* name, which the
//! session cut matches, and the production role's trust (which requires
//! `RoleSessionName` = `${aws:username}`, the new name) refuses that: a
//! renamed user cannot assume at all. Policies written before this read back
//! as before (`${aws:username}`: the session name is the holder's name).
//!
//! The `Sid` only records the offsets the requester wrote (for messages); a
//! policy is recognised as changegate's by its name and its exact shape.

use chrono::{DateTime, FixedOffset, Offset, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{AccountId, ChangeRequestId, IamUserId, IamUserName, RoleName};
use crate::window::{Window, parse_time, utc_string};

/// Every changegate policy name starts with this; nothing else is ever touched.
pub const POLICY_PREFIX: &str = "changegate-";
const SID_PREFIX: &str = "Changegate";
const VERSION: &str = "2012-10-17";
const ACTION: &str = "sts:AssumeRole";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct PolicyDocument {
    pub version: String,
    pub statement: Vec<Statement>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Statement {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    pub effect: String,
    pub action: String,
    pub resource: String,
    pub condition: Condition,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    #[serde(rename = "DateGreaterThan")]
    pub date_greater_than: CurrentTime,
    #[serde(rename = "DateLessThan")]
    pub date_less_than: CurrentTime,
    #[serde(
        rename = "StringEquals",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub string_equals: Option<SessionName>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionName {
    #[serde(rename = "sts:RoleSessionName")]
    pub role_session_name: String,
}

/// The policy variable IAM replaces with the calling user's name (grants
/// written before the literal name are still read back).
pub const OWN_NAME: &str = "${aws:username}";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CurrentTime {
    #[serde(rename = "aws:CurrentTime")]
    pub current_time: String,
}

/// An inline user policy as listed by `GetAccountAuthorizationDetails`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPolicy {
    pub user: String,
    pub name: String,
    /// The decoded JSON document.
    pub document: String,
    /// The value of the user's eligibility tag, listed with the user.
    pub eligibility: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyListing {
    pub pages: u32,
    pub users: u32,
    /// Only the policies whose name has changegate's prefix.
    pub policies: Vec<UserPolicy>,
}

/// Access for one user to one role, inside one window, for one change request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub change_request: ChangeRequestId,
    /// The user holding the policy, by the name IAM has for them now (where
    /// the policy is put and removed).
    pub user: IamUserName,
    /// The user's name when the grant was decided: the session name the
    /// policy requires, what the session cut matches and announcements name.
    /// A rename does not change it.
    pub session_name: IamUserName,
    /// IAM's unique id of the user (GetUser's `UserId`), when known: removal
    /// finds the user by it whatever they are called now.
    pub user_id: Option<IamUserId>,
    pub account: AccountId,
    pub role: RoleName,
    pub window: Window,
    /// Sessions must be named after the user (`sts:RoleSessionName` = [`Grant::session_name`]).
    pub named_sessions: bool,
}

/// Why an inline policy is not one of changegate's grants.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotAGrant {
    #[error("its name does not start with {POLICY_PREFIX}")]
    Name,
    #[error("its document is not changegate's grant shape: {0}")]
    Shape(String),
}

pub fn policy_name(id: &ChangeRequestId) -> String {
    format!("{POLICY_PREFIX}{id}")
}

/// The partition of the roles grants name (see docs/operations.md, Known limitations).
pub const PARTITION: &str = "aws";

pub fn role_arn(account: &AccountId, role: &RoleName) -> String {
    format!("arn:{PARTITION}:iam::{account}:role/{role}")
}

impl Grant {
    pub fn policy_name(&self) -> String {
        policy_name(&self.change_request)
    }

    pub fn role_arn(&self) -> String {
        role_arn(&self.account, &self.role)
    }

    pub fn document(&self) -> PolicyDocument {
        let time = |t: DateTime<Utc>| CurrentTime {
            current_time: utc_string(t),
        };
        PolicyDocument {
            version: VERSION.to_owned(),
            statement: vec![Statement {
                sid: Some(format!(
                    "{SID_PREFIX}{}{}",
                    offset_tag(*self.window.start().offset()),
                    offset_tag(*self.window.end().offset())
                )),
                effect: "Allow".to_owned(),
                action: ACTION.to_owned(),
                resource: self.role_arn(),
                condition: Condition {
                    date_greater_than: time(self.window.start_utc()),
                    date_less_than: time(self.window.end_utc()),
                    string_equals: self.named_sessions.then(|| SessionName {
                        role_session_name: self.session_name.to_string(),
                    }),
                },
            }],
        }
    }

    /// The document as IAM stores it: compact JSON, serialised from data.
    pub fn document_json(&self) -> String {
        serde_json::to_string(&self.document())
            .unwrap_or_else(|_| unreachable!("plain strings serialise"))
    }

    /// Reads a grant back from an inline policy found on `user` (its id is
    /// not in the policy: `user_id` is `None`).
    pub fn from_policy(
        user: &IamUserName,
        name: &str,
        document_json: &str,
    ) -> Result<Self, NotAGrant> {
        let id = name.strip_prefix(POLICY_PREFIX).ok_or(NotAGrant::Name)?;
        let change_request = ChangeRequestId::parse(id).map_err(|_| NotAGrant::Name)?;
        let shape = |why: &str| NotAGrant::Shape(why.to_owned());
        let doc: PolicyDocument =
            serde_json::from_str(document_json).map_err(|e| NotAGrant::Shape(e.to_string()))?;
        let [stmt] = doc.statement.as_slice() else {
            return Err(shape("not exactly one statement"));
        };
        if doc.version != VERSION || stmt.effect != "Allow" || stmt.action != ACTION {
            return Err(shape("not an Allow of sts:AssumeRole"));
        }
        let (account, role) =
            parse_role_arn(&stmt.resource).ok_or_else(|| shape("resource is not one role"))?;
        let (start_tag, end_tag) = stmt
            .sid
            .as_deref()
            .and_then(|sid| sid.strip_prefix(SID_PREFIX))
            .and_then(split_offset_tags)
            .unwrap_or((utc(), utc()));
        let at = |raw: &str, offset: FixedOffset| {
            parse_time(raw)
                .ok()
                .filter(|t| t.offset().local_minus_utc() == 0)
                .map(|t| t.with_timezone(&offset))
        };
        let start = at(&stmt.condition.date_greater_than.current_time, start_tag)
            .ok_or_else(|| shape("start is not a UTC time"))?;
        let end = at(&stmt.condition.date_less_than.current_time, end_tag)
            .ok_or_else(|| shape("end is not a UTC time"))?;
        let window = Window::new(start, end).map_err(|_| shape("window ends before it starts"))?;
        let (named_sessions, session_name) = match &stmt.condition.string_equals {
            None => (false, user.clone()),
            Some(SessionName { role_session_name }) if role_session_name == OWN_NAME => {
                (true, user.clone())
            }
            Some(SessionName { role_session_name }) => {
                match IamUserName::parse(role_session_name) {
                    Ok(name) => (true, name),
                    Err(_) => {
                        return Err(shape("the session name condition is not a user's name"));
                    }
                }
            }
        };
        Ok(Self {
            change_request,
            user: user.clone(),
            session_name,
            user_id: None,
            account,
            role,
            window,
            named_sessions,
        })
    }
}

fn parse_role_arn(arn: &str) -> Option<(AccountId, RoleName)> {
    let rest = arn.strip_prefix("arn:aws:iam::")?;
    let (account, role) = rest.split_once(":role/")?;
    Some((AccountId::parse(account).ok()?, RoleName::parse(role).ok()?))
}

fn utc() -> FixedOffset {
    Utc.fix()
}

/// `Utc`, `P0900` (+09:00) or `M0530` (-05:30): alphanumeric, as a `Sid` must be.
fn offset_tag(offset: FixedOffset) -> String {
    let secs = offset.local_minus_utc();
    if secs == 0 {
        return "Utc".to_owned();
    }
    let sign = if secs > 0 { 'P' } else { 'M' };
    let abs = secs.unsigned_abs();
    format!("{sign}{:02}{:02}", abs / 3600, abs % 3600 / 60)
}

fn parse_offset_tag(tag: &str) -> Option<FixedOffset> {
    if tag == "Utc" {
        return Some(utc());
    }
    let sign = match tag.as_bytes().first()? {
        b'P' => 1,
        b'M' => -1,
        _ => return None,
    };
    let digits = tag
        .get(1..5)
        .filter(|d| d.bytes().all(|b| b.is_ascii_digit()))?;
    let (h, m): (i32, i32) = (digits[..2].parse().ok()?, digits[2..].parse().ok()?);
    FixedOffset::east_opt(sign * (h * 3600 + m * 60))
}

fn split_offset_tags(tags: &str) -> Option<(FixedOffset, FixedOffset)> {
    let split = if tags.starts_with("Utc") { 3 } else { 5 };
    let (a, b) = (tags.get(..split)?, tags.get(split..)?);
    if b.len() != 3 && b.len() != 5 {
        return None;
    }
    Some((parse_offset_tag(a)?, parse_offset_tag(b)?))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::window::parse_time;

    pub(crate) fn grant(start: &str, end: &str) -> Grant {
        Grant {
            change_request: ChangeRequestId::parse("d0585556-80f6-4522-8dad-dada6d45b67d").unwrap(),
            user: IamUserName::parse("alice").unwrap(),
            session_name: IamUserName::parse("alice").unwrap(),
            user_id: None,
            account: AccountId::parse("111122223333").unwrap(),
            role: RoleName::parse("CM-Prd-role").unwrap(),
            window: Window::new(parse_time(start).unwrap(), parse_time(end).unwrap()).unwrap(),
            named_sessions: true,
        }
    }

    #[test]
    fn given_a_grant_when_rendered_then_the_document_is_exactly_the_windowed_assume_role() {
        let g = grant("2026-12-01T18:00:00+09:00", "2026-12-01T19:00:00+09:00");
        assert_eq!(
            g.policy_name(),
            "changegate-d0585556-80f6-4522-8dad-dada6d45b67d"
        );
        assert_eq!(
            g.document_json(),
            r#"{"Version":"2012-10-17","Statement":[{"Sid":"ChangegateP0900P0900","Effect":"Allow","Action":"sts:AssumeRole","Resource":"arn:aws:iam::111122223333:role/CM-Prd-role","Condition":{"DateGreaterThan":{"aws:CurrentTime":"2026-12-01T09:00:00Z"},"DateLessThan":{"aws:CurrentTime":"2026-12-01T10:00:00Z"},"StringEquals":{"sts:RoleSessionName":"alice"}}}]}"#
        );
        let unnamed = Grant {
            named_sessions: false,
            ..g.clone()
        };
        assert!(!unnamed.document_json().contains("RoleSessionName"));
        assert_eq!(
            Grant::from_policy(&g.user, &g.policy_name(), &unnamed.document_json()),
            Ok(unnamed)
        );
    }

    #[test]
    fn given_a_session_name_condition_that_is_no_user_name_when_read_then_it_is_not_a_grant() {
        let g = grant("2026-12-01T09:00:00Z", "2026-12-01T10:00:00Z");
        for bad in ["*", "al*ce", "${aws:userid}", ""] {
            let other = g.document_json().replace(
                r#""sts:RoleSessionName":"alice""#,
                &format!(r#""sts:RoleSessionName":"{bad}""#),
            );
            assert!(
                matches!(
                    Grant::from_policy(&g.user, &g.policy_name(), &other),
                    Err(NotAGrant::Shape(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn given_a_grant_when_rendered_then_the_session_name_condition_is_the_literal_name_as_granted_not_the_policy_variable()
     {
        let g = Grant {
            user: IamUserName::parse("Alice").unwrap(),
            session_name: IamUserName::parse("Alice").unwrap(),
            ..grant("2026-12-01T09:00:00Z", "2026-12-01T10:00:00Z")
        };
        let doc = g.document_json();
        assert!(
            doc.contains(r#""StringEquals":{"sts:RoleSessionName":"Alice"}"#),
            "{doc}"
        );
        assert!(!doc.contains("${aws:username}"), "{doc}");
    }

    #[test]
    fn given_a_grant_found_on_a_renamed_user_when_read_then_it_is_held_by_the_new_name_and_names_sessions_by_the_old()
     {
        let g = grant("2026-12-01T09:00:00Z", "2026-12-01T10:00:00Z");
        let alice2 = IamUserName::parse("alice2").unwrap();
        let back = Grant::from_policy(&alice2, &g.policy_name(), &g.document_json()).unwrap();
        assert_eq!(back.user, alice2, "removed from where it is now");
        assert_eq!(back.session_name.as_str(), "alice", "cut as granted");
        assert!(back.named_sessions);
    }

    #[test]
    fn given_a_grant_written_with_the_policy_variable_when_read_then_sessions_are_named_after_its_holder()
     {
        let g = grant("2026-12-01T09:00:00Z", "2026-12-01T10:00:00Z");
        let legacy = g.document_json().replace(
            r#""sts:RoleSessionName":"alice""#,
            r#""sts:RoleSessionName":"${aws:username}""#,
        );
        let bob = IamUserName::parse("bob").unwrap();
        let back = Grant::from_policy(&bob, &g.policy_name(), &legacy).unwrap();
        assert_eq!(
            (back.user.as_str(), back.session_name.as_str()),
            ("bob", "bob")
        );
        assert!(back.named_sessions);
    }

    #[test]
    fn given_a_stored_grant_when_read_back_then_the_same_grant_including_offsets_comes_out() {
        for (s, e) in [
            ("2026-12-01T18:00:00+09:00", "2026-12-01T19:30:00+09:00"),
            ("2026-12-01T09:00:00Z", "2026-12-01T04:00:00-05:30"),
            ("2026-12-01T09:00:00Z", "2026-12-01T10:00:00Z"),
        ] {
            let g = grant(s, e);
            let back = Grant::from_policy(&g.user, &g.policy_name(), &g.document_json()).unwrap();
            assert_eq!(back, g);
            assert_eq!(back.window.end().offset(), g.window.end().offset());
        }
    }

    #[test]
    fn given_policies_that_are_not_changegate_grants_when_read_then_they_are_not_recognised() {
        let g = grant("2026-12-01T09:00:00Z", "2026-12-01T10:00:00Z");
        let doc = g.document_json();
        assert_eq!(
            Grant::from_policy(&g.user, "DO-NOT-DELETE-CM-Policy", &doc),
            Err(NotAGrant::Name)
        );
        assert_eq!(
            Grant::from_policy(&g.user, "changegate-", &doc),
            Err(NotAGrant::Name)
        );
        let wider = doc.replace("sts:AssumeRole", "sts:*");
        assert!(matches!(
            Grant::from_policy(&g.user, &g.policy_name(), &wider),
            Err(NotAGrant::Shape(_))
        ));
        let two = r#"{"Version":"2012-10-17","Statement":[]}"#;
        assert!(matches!(
            Grant::from_policy(&g.user, &g.policy_name(), two),
            Err(NotAGrant::Shape(_))
        ));
        let extra = doc.replace(r#""Effect""#, r#""NotAction":"x","Effect""#);
        assert!(matches!(
            Grant::from_policy(&g.user, &g.policy_name(), &extra),
            Err(NotAGrant::Shape(_))
        ));
    }

    #[test]
    fn given_a_grant_without_sid_when_read_then_times_are_shown_in_utc() {
        let g = grant("2026-12-01T18:00:00+09:00", "2026-12-01T19:00:00+09:00");
        let doc = g
            .document_json()
            .replace(r#""Sid":"ChangegateP0900P0900","#, "");
        let back = Grant::from_policy(&g.user, &g.policy_name(), &doc).unwrap();
        assert_eq!(back.window.start_utc(), g.window.start_utc());
        assert_eq!(back.window.start().offset().local_minus_utc(), 0);
    }
}
