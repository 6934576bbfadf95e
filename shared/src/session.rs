//! The session cut: no production session outlives its window.
//!
//! A grant only stops *new* `sts:AssumeRole` calls at its window's end; a
//! session already issued lives on until it expires (up to the role's
//! `MaxSessionDuration`). Credentials cannot be revoked, only denied, so
//! changegate keeps one inline policy on the target role in the production
//! account, [`POLICY_NAME`], holding Deny statements of this exact shape:
//!
//! ```json
//! {"Sid":"Cut616c696365From20261201T090000To20261201T100000","Effect":"Deny",
//!  "Action":"*","Resource":"*",
//!  "Condition":{"StringLike":{"aws:userid":"*:alice"},
//!               "DateLessThan":{"aws:TokenIssueTime":"2026-12-01T10:00:00Z"},
//!               "DateGreaterThan":{"aws:CurrentTime":"2026-12-01T10:00:00Z"}}}
//! ```
//!
//! In an assumed-role session `aws:userid` is `<role id>:<session name>`, and
//! the grant requires the session name to be the person's IAM user name *as
//! granted* (the literal name in its `sts:RoleSessionName` condition, see
//! [`crate::policy`]), so `*:alice` matches exactly alice's sessions (session
//! names cannot contain a colon). The cut matches that name, never the name
//! IAM has now: a user who renames themselves during the window can only
//! assume with the old name, which the cut still matches. The statement denies her sessions issued before the cut, from the
//! cut on: written at grant time, it cuts at the exact second of the end even
//! if no function runs then. Sessions issued after the cut (a later grant) are
//! not touched.
//!
//! **One statement per person and run of windows.** A person's windows that
//! overlap or touch form one run, cut at its last end, so overlapping and
//! back-to-back grants do not cut each other. Separate runs keep separate
//! cuts: a single cut moved to the later run's end would let a session of the
//! earlier window live on between the two. The `Sid` records the person (hex
//! of the lowercased name: a `Sid` is alphanumeric only) and the run (its
//! start and cut); IAM ignores it, changegate reads it back.
//!
//! **A cut in effect never moves.** Once its time has passed, a cut is denying
//! live sessions; moving or removing it would let them work again (a Deny
//! is evaluated at each call, nothing is invalidated). So cuts only ever
//! move later while still in the future, and are removed only when every
//! session they could deny has expired ([`SessionCut::collect`]).
//!
//! **Budget.** A role's inline policies count together against 10,240
//! characters, whitespace not counted. When the document would not fit,
//! [`SessionCut::render`] returns IAM's own "revoke active sessions" shape
//! instead: Deny all sessions of the role issued before now (`Sid`
//! [`ALL_BEFORE_SID`]), which subsumes every cut already in effect, plus the
//! future cuts that still fit; the caller raises the alarm and says so.
//!
//! **Case.** `StringLike` is case-sensitive and the grant names the user as
//! IAM stored them at grant time. Pass that spelling (GetUser's `UserName`). A person
//! is one person whatever the spelling (IAM user names are unique regardless
//! of case): every spelling seen is kept in the statement's `aws:userid`
//! values, which IAM ORs.

use std::collections::BTreeSet;

use chrono::{DateTime, DurationRound, NaiveDateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::budget::counted_chars;
use crate::ids::IamUserName;
use crate::window::utc_string;

/// The inline policy on the target role; nothing else on the role is touched.
pub const POLICY_NAME: &str = "changegate-session-cut";
/// IAM's budget for all inline policies of one role, whitespace not counted.
pub const ROLE_INLINE_POLICY_LIMIT: usize = 10_240;
/// How long a cut stays after its time, at least: the longest session STS
/// issues (12 hours, console sessions included; AWS: a console sign-in URL's
/// `SessionDuration` is at most 43,200 seconds, and MaxSessionDuration "does
/// not apply" to it).
pub const KEEP_CUTS_FOR: TimeDelta = TimeDelta::hours(12);
/// The `Sid` of the fallback statement (all sessions issued before a time).
pub const ALL_BEFORE_SID: &str = "CutAllBefore";

const VERSION: &str = "2012-10-17";
const SID_PREFIX: &str = "Cut";
const SID_FROM: &str = "From";
const SID_TO: &str = "To";
const SID_TIME: &str = "%Y%m%dT%H%M%S";

/// One person's cut: their sessions issued before `at` are denied from `at`
/// on. `from` is where the run of windows behind it starts (bookkeeping only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut {
    /// Every spelling of the person's name seen, at least one, same lowercase.
    spellings: BTreeSet<String>,
    pub from: DateTime<Utc>,
    pub at: DateTime<Utc>,
}

impl Cut {
    /// The person, lowercased (IAM user names are unique regardless of case).
    pub fn person(&self) -> String {
        self.spellings
            .first()
            .map(|s| s.to_ascii_lowercase())
            .unwrap_or_default()
    }

    pub fn spellings(&self) -> impl Iterator<Item = &str> {
        self.spellings.iter().map(String::as_str)
    }

    pub fn is_for(&self, user: &IamUserName) -> bool {
        self.person() == user.as_str().to_ascii_lowercase()
    }

    /// Whether the cut is denying already (it never moves again).
    pub fn in_effect(&self, now: DateTime<Utc>) -> bool {
        self.at <= now
    }

    fn sid(&self) -> String {
        let hex: String = self.person().bytes().map(|b| format!("{b:02x}")).collect();
        format!(
            "{SID_PREFIX}{hex}{SID_FROM}{}{SID_TO}{}",
            self.from.format(SID_TIME),
            self.at.format(SID_TIME)
        )
    }
}

/// The session-cut document, as data. Empty means: no policy on the role.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionCut {
    all_before: Option<DateTime<Utc>>,
    cuts: Vec<Cut>,
}

/// Why a document is not changegate's session cut. Never dropped silently:
/// the caller stops and alarms, a human looks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotASessionCut {
    #[error("it is not changegate's session-cut policy: {0}")]
    Shape(String),
}

fn shape(why: impl Into<String>) -> NotASessionCut {
    NotASessionCut::Shape(why.into())
}

/// What to do with the role's policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// `PutRolePolicy` of [`POLICY_NAME`] with this compact JSON.
    Put(String),
    /// No statement left: `DeleteRolePolicy` of [`POLICY_NAME`] (absent is fine).
    Delete,
}

/// The budget ran out: every session of the role issued before `all_before`
/// is denied (people inside their windows must assume the role again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fallback {
    pub all_before: DateTime<Utc>,
    /// People whose future cut did not fit either: their sessions are cut only
    /// when revoke runs at their window's end (call [`SessionCut::extend`]
    /// again then; it restores the cut).
    pub dropped: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub written: Written,
    /// Characters IAM counts for the written document (0 when deleted).
    pub chars: usize,
    /// Set when the budget forced the fallback: raise the alarm and say so.
    pub fallback: Option<Fallback>,
}

impl Rendered {
    /// How much of the role's inline-policy budget is used once this is
    /// written, in percent: the role's other inline policies (`others`
    /// characters) and the cut. An alarm watches it, well before a grant
    /// would have to fall back to cutting every session of the role.
    pub fn budget_used_percent(&self, others: usize) -> f64 {
        (others + self.chars) as f64 * 100.0 / ROLE_INLINE_POLICY_LIMIT as f64
    }
}

/// Not even the fallback statement fits beside the role's other inline policies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the role's other inline policies use {others} of {ROLE_INLINE_POLICY_LIMIT} characters; \
     the session cut needs {needed} and cannot be written"
)]
pub struct NoRoom {
    pub others: usize,
    pub needed: usize,
}

/// Cut times are whole seconds (as IAM's policy values), rounded up: a cut
/// never falls before the instant it stands for.
fn ceil_second(t: DateTime<Utc>) -> DateTime<Utc> {
    let second = TimeDelta::seconds(1);
    let floor = t.duration_trunc(second).unwrap_or(t);
    if floor == t { t } else { floor + second }
}

fn floor_second(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(TimeDelta::seconds(1)).unwrap_or(t)
}

impl SessionCut {
    pub fn empty() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.all_before.is_none() && self.cuts.is_empty()
    }

    pub fn cuts(&self) -> &[Cut] {
        &self.cuts
    }

    /// The fallback's time, when a fallback statement is in the document.
    pub fn all_before(&self) -> Option<DateTime<Utc>> {
        self.all_before
    }

    /// The document found on the role (`None`: no such policy yet).
    pub fn from_role(document: Option<&str>) -> Result<Self, NotASessionCut> {
        document.map_or_else(|| Ok(Self::empty()), Self::parse)
    }

    /// Reads a document back. Anything not exactly changegate's shape is an
    /// error, never silently dropped.
    pub fn parse(document: &str) -> Result<Self, NotASessionCut> {
        let doc: Document =
            serde_json::from_str(document).map_err(|e| shape(format!("not readable: {e}")))?;
        if doc.version != VERSION {
            return Err(shape(format!("version {:?}", doc.version)));
        }
        let mut out = Self::empty();
        let mut sids = BTreeSet::new();
        for stmt in doc.statement {
            if !sids.insert(stmt.sid.clone()) {
                return Err(shape(format!("Sid {} appears twice", stmt.sid)));
            }
            if stmt.effect != "Deny" || stmt.action != "*" || stmt.resource != "*" {
                return Err(shape(format!("{} is not a Deny of * on *", stmt.sid)));
            }
            match stmt.condition {
                Condition::AllBefore(c) if stmt.sid == ALL_BEFORE_SID => {
                    out.all_before = Some(parse_utc(&c.date_less_than.token_issue_time)?);
                }
                Condition::Person(c) => out.cuts.push(parse_cut(&stmt.sid, &c)?),
                Condition::AllBefore(_) => {
                    return Err(shape(format!("{} has the fallback's condition", stmt.sid)));
                }
            }
        }
        out.normalise();
        Ok(out)
    }

    /// A grant of `user` for the window `start`..`end`, at `now`. The person's
    /// cut that is not yet in effect and whose run overlaps or touches the
    /// window moves to the later end (overlapping and back-to-back grants do
    /// not cut each other); otherwise the window gets its own cut. A window
    /// already ended adds its cut only if nothing of the person's covers its
    /// end (idempotent: revoke may call this again at the end, which restores
    /// a cut lost to a failed write or a fallback).
    pub fn extend(
        &mut self,
        user: &IamUserName,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        now: DateTime<Utc>,
    ) {
        let (mut from, mut at) = (floor_second(start.min(end)), ceil_second(end));
        let mut spellings = BTreeSet::from([user.as_str().to_owned()]);
        if at <= now {
            let covered = self
                .cuts
                .iter()
                .any(|c| c.is_for(user) && c.from <= at && at <= c.at);
            if !covered {
                self.cuts.push(Cut {
                    spellings,
                    from,
                    at,
                });
                self.normalise();
            }
            return;
        }
        let mut kept = Vec::with_capacity(self.cuts.len() + 1);
        for cut in std::mem::take(&mut self.cuts) {
            let joins = cut.is_for(user) && !cut.in_effect(now) && cut.from <= at && from <= cut.at;
            if joins {
                from = from.min(cut.from);
                at = at.max(cut.at);
                spellings.extend(cut.spellings);
            } else {
                kept.push(cut);
            }
        }
        kept.push(Cut {
            spellings,
            from,
            at,
        });
        self.cuts = kept;
        self.normalise();
    }

    /// Ends `user`'s access now (early end, operator): every session of theirs
    /// issued before now is denied from now on. Their cuts still ahead stay
    /// (another grant of theirs may still run; a session issued in the few
    /// seconds IAM takes to drop the grant is still cut at that run's end).
    pub fn cut_now(&mut self, user: &IamUserName, now: DateTime<Utc>) {
        let at = ceil_second(now);
        let mut spellings = BTreeSet::from([user.as_str().to_owned()]);
        for cut in self.cuts.iter().filter(|c| c.is_for(user)) {
            spellings.extend(cut.spellings.iter().cloned());
        }
        // Same person, same time: normalise merges it with an identical Deny.
        self.cuts.push(Cut {
            spellings,
            from: at,
            at,
        });
        self.normalise();
    }

    /// Removes every statement whose sessions have all expired: those cut at
    /// least `max_session` (the role's MaxSessionDuration) ago, and never
    /// sooner than [`KEEP_CUTS_FOR`] after the cut, whatever the role allows
    /// now or allowed then (a console session lives up to 12 hours whatever
    /// the role's MaxSessionDuration, and the duration can be lowered after a
    /// session was issued). Returns how many statements went.
    pub fn collect(&mut self, now: DateTime<Utc>, max_session: TimeDelta) -> usize {
        let before = self.cuts.len() + usize::from(self.all_before.is_some());
        let keep = max_session.max(KEEP_CUTS_FOR);
        let expired = |at: DateTime<Utc>| at + keep <= now;
        self.cuts.retain(|c| !expired(c.at));
        if self.all_before.is_some_and(expired) {
            self.all_before = None;
        }
        before - self.cuts.len() - usize::from(self.all_before.is_some())
    }

    /// The compact JSON document; `None` when there is nothing to deny.
    pub fn document_json(&self) -> Option<String> {
        if self.is_empty() {
            return None;
        }
        let mut statement = Vec::with_capacity(self.cuts.len() + 1);
        if let Some(t) = self.all_before {
            statement.push(Statement {
                sid: ALL_BEFORE_SID.to_owned(),
                effect: "Deny".to_owned(),
                action: "*".to_owned(),
                resource: "*".to_owned(),
                condition: Condition::AllBefore(AllBefore {
                    date_less_than: TokenIssueTime {
                        token_issue_time: utc_string(t),
                    },
                }),
            });
        }
        for cut in &self.cuts {
            let patterns: Vec<String> = cut.spellings().map(|s| format!("*:{s}")).collect();
            let userid = match patterns.as_slice() {
                [one] => OneOrMany::One(one.clone()),
                _ => OneOrMany::Many(patterns),
            };
            statement.push(Statement {
                sid: cut.sid(),
                effect: "Deny".to_owned(),
                action: "*".to_owned(),
                resource: "*".to_owned(),
                condition: Condition::Person(PersonCut {
                    string_like: UserId { userid },
                    date_less_than: TokenIssueTime {
                        token_issue_time: utc_string(cut.at),
                    },
                    date_greater_than: CurrentTime {
                        current_time: utc_string(cut.at),
                    },
                }),
            });
        }
        let doc = Document {
            version: VERSION.to_owned(),
            statement,
        };
        Some(
            serde_json::to_string(&doc).unwrap_or_else(|_| unreachable!("plain strings serialise")),
        )
    }

    /// What to write, given the characters the role's *other* inline policies
    /// use. Call [`collect`](Self::collect) first. When the document does not
    /// fit, the fallback: deny every session issued before now (which subsumes
    /// every cut in effect), plus the cuts still ahead, soonest first, as many
    /// as fit.
    pub fn render(&self, others: usize, now: DateTime<Utc>) -> Result<Rendered, NoRoom> {
        let fits = |chars: usize| others + chars <= ROLE_INLINE_POLICY_LIMIT;
        let Some(json) = self.document_json() else {
            return Ok(Rendered {
                written: Written::Delete,
                chars: 0,
                fallback: None,
            });
        };
        let chars = counted_chars(&json);
        if fits(chars) {
            return Ok(Rendered {
                written: Written::Put(json),
                chars,
                fallback: None,
            });
        }
        let all_before = ceil_second(now).max(self.all_before.unwrap_or(now));
        let mut fallback = Self {
            all_before: Some(all_before),
            cuts: Vec::new(),
        };
        let minimal = fallback.document_json().unwrap_or_default();
        if !fits(counted_chars(&minimal)) {
            return Err(NoRoom {
                others,
                needed: counted_chars(&minimal),
            });
        }
        let mut ahead: Vec<&Cut> = self.cuts.iter().filter(|c| c.at > all_before).collect();
        ahead.sort_by_key(|c| (c.at, c.person()));
        let mut dropped = BTreeSet::new();
        for cut in ahead {
            fallback.cuts.push(cut.clone());
            let fits_now = fallback
                .document_json()
                .is_some_and(|j| fits(counted_chars(&j)));
            if !fits_now {
                fallback.cuts.pop();
                dropped.insert(cut.person());
            }
        }
        fallback.normalise();
        let json = fallback.document_json().unwrap_or_default();
        Ok(Rendered {
            chars: counted_chars(&json),
            written: Written::Put(json),
            fallback: Some(Fallback {
                all_before,
                dropped: dropped.into_iter().collect(),
            }),
        })
    }

    /// One order for everything, so equal documents are equal strings; cuts
    /// of one person at the same time (identical Denies) become one.
    fn normalise(&mut self) {
        self.cuts.sort_by_key(|c| (c.person(), c.at, c.from));
        let mut out: Vec<Cut> = Vec::with_capacity(self.cuts.len());
        for cut in std::mem::take(&mut self.cuts) {
            match out.last_mut() {
                Some(last) if last.person() == cut.person() && last.at == cut.at => {
                    last.from = last.from.min(cut.from);
                    last.spellings.extend(cut.spellings);
                }
                _ => out.push(cut),
            }
        }
        self.cuts = out;
    }
}

fn parse_utc(raw: &str) -> Result<DateTime<Utc>, NotASessionCut> {
    let naive = NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%SZ")
        .map_err(|_| shape(format!("{raw:?} is not a UTC time in whole seconds")))?;
    let t = naive.and_utc();
    // Round trip: rejects anything chrono accepted loosely.
    if utc_string(t) != raw {
        return Err(shape(format!("{raw:?} is not a UTC time in whole seconds")));
    }
    Ok(t)
}

fn parse_sid_time(raw: &str) -> Option<DateTime<Utc>> {
    let t = NaiveDateTime::parse_from_str(raw, SID_TIME).ok()?.and_utc();
    (t.format(SID_TIME).to_string() == raw).then_some(t)
}

fn parse_cut(sid: &str, c: &PersonCut) -> Result<Cut, NotASessionCut> {
    let bad = |why: &str| shape(format!("{sid}: {why}"));
    let at = parse_utc(&c.date_less_than.token_issue_time)?;
    if parse_utc(&c.date_greater_than.current_time)? != at {
        return Err(bad("its two times differ"));
    }
    let patterns = match &c.string_like.userid {
        OneOrMany::One(p) => vec![p.clone()],
        OneOrMany::Many(ps) if !ps.is_empty() => ps.clone(),
        OneOrMany::Many(_) => return Err(bad("no aws:userid pattern")),
    };
    let mut spellings = BTreeSet::new();
    for p in &patterns {
        let name = p
            .strip_prefix("*:")
            .ok_or_else(|| bad("aws:userid is not *:<user>"))?;
        let user = IamUserName::parse(name).map_err(|e| bad(&format!("user name {e}")))?;
        spellings.insert(user.as_str().to_owned());
    }
    let lower: BTreeSet<String> = spellings.iter().map(|s| s.to_ascii_lowercase()).collect();
    if lower.len() != 1 {
        return Err(bad("names more than one person"));
    }
    let rest = sid
        .strip_prefix(SID_PREFIX)
        .ok_or_else(|| bad("Sid does not start with Cut"))?;
    let (_hex, times) = rest
        .split_once(SID_FROM)
        .ok_or_else(|| bad("Sid has no From"))?;
    let (from, to) = times
        .split_once(SID_TO)
        .ok_or_else(|| bad("Sid has no To"))?;
    let from = parse_sid_time(from).ok_or_else(|| bad("Sid's From is not a time"))?;
    let to = parse_sid_time(to).ok_or_else(|| bad("Sid's To is not a time"))?;
    let cut = Cut {
        spellings,
        from,
        at,
    };
    if to != at || from > at || cut.sid() != sid {
        return Err(bad(&format!(
            "Sid does not match its condition (expected {})",
            cut.sid()
        )));
    }
    Ok(cut)
}

// The document's exact shape; unknown fields are refused.

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct Document {
    version: String,
    statement: Vec<Statement>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct Statement {
    sid: String,
    effect: String,
    action: String,
    resource: String,
    condition: Condition,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum Condition {
    Person(PersonCut),
    AllBefore(AllBefore),
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PersonCut {
    #[serde(rename = "StringLike")]
    string_like: UserId,
    #[serde(rename = "DateLessThan")]
    date_less_than: TokenIssueTime,
    #[serde(rename = "DateGreaterThan")]
    date_greater_than: CurrentTime,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AllBefore {
    #[serde(rename = "DateLessThan")]
    date_less_than: TokenIssueTime,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserId {
    #[serde(rename = "aws:userid")]
    userid: OneOrMany,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenIssueTime {
    #[serde(rename = "aws:TokenIssueTime")]
    token_issue_time: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CurrentTime {
    #[serde(rename = "aws:CurrentTime")]
    current_time: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(raw: &str) -> DateTime<Utc> {
        raw.parse().unwrap()
    }
    fn user(raw: &str) -> IamUserName {
        IamUserName::parse(raw).unwrap()
    }
    fn hours(h: i64) -> TimeDelta {
        TimeDelta::hours(h)
    }
    fn cuts_of(doc: &SessionCut, who: &str) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        doc.cuts()
            .iter()
            .filter(|c| c.is_for(&user(who)))
            .map(|c| (c.from, c.at))
            .collect()
    }
    const EARLY: &str = "2026-12-01T08:00:00Z";

    #[test]
    fn given_a_grant_when_extended_then_the_document_is_exactly_the_deny_of_the_persons_sessions() {
        let mut doc = SessionCut::empty();
        doc.extend(
            &user("alice"),
            t("2026-12-01T09:00:00Z"),
            t("2026-12-01T10:00:00Z"),
            t(EARLY),
        );
        assert_eq!(
            doc.document_json().unwrap(),
            r#"{"Version":"2012-10-17","Statement":[{"Sid":"Cut616c696365From20261201T090000To20261201T100000","Effect":"Deny","Action":"*","Resource":"*","Condition":{"StringLike":{"aws:userid":"*:alice"},"DateLessThan":{"aws:TokenIssueTime":"2026-12-01T10:00:00Z"},"DateGreaterThan":{"aws:CurrentTime":"2026-12-01T10:00:00Z"}}}]}"#
        );
    }

    #[test]
    fn given_any_document_we_wrote_when_parsed_then_the_same_cut_comes_back() {
        let mut doc = SessionCut::empty();
        doc.extend(
            &user("alice"),
            t("2026-12-01T09:00:00Z"),
            t("2026-12-01T10:00:00Z"),
            t(EARLY),
        );
        doc.extend(
            &user("Alice"),
            t("2026-12-01T09:30:00Z"),
            t("2026-12-01T11:00:00Z"),
            t(EARLY),
        );
        doc.extend(
            &user("bob.o+ops@x"),
            t("2026-12-02T09:00:00Z"),
            t("2026-12-02T10:00:00Z"),
            t(EARLY),
        );
        doc.cut_now(&user("bob.o+ops@x"), t("2026-12-01T08:30:00.2Z"));
        let fallback = doc.render(10_000, t(EARLY)).unwrap();
        let Written::Put(fb_json) = fallback.written else {
            panic!()
        };
        for json in [doc.document_json().unwrap(), fb_json] {
            let back = SessionCut::parse(&json).unwrap();
            assert_eq!(back.document_json().unwrap(), json);
        }
        assert_eq!(
            SessionCut::parse(&doc.document_json().unwrap()).unwrap(),
            doc
        );
    }

    #[test]
    fn given_documents_that_are_not_ours_when_parsed_then_each_is_an_error() {
        let mut doc = SessionCut::empty();
        doc.extend(
            &user("alice"),
            t("2026-12-01T09:00:00Z"),
            t("2026-12-01T10:00:00Z"),
            t(EARLY),
        );
        let ours = doc.document_json().unwrap();
        let broken = [
            ours.replace("Deny", "Allow"),
            ours.replace(r#""Action":"*""#, r#""Action":"s3:*""#),
            ours.replace(r#""Resource":"*""#, r#""Resource":"arn:aws:s3:::x""#),
            ours.replace("*:alice", "*alice"),
            ours.replace("*:alice", "*:al ice"),
            ours.replace("*:alice", "*:bob"),
            ours.replace(r#""aws:CurrentTime":"2026-12-01T10:00:00Z""#, r#""aws:CurrentTime":"2026-12-01T10:00:01Z""#),
            ours.replace("10:00:00Z", "10:00:00+00:00"),
            ours.replace("To20261201T100000", "To20261201T110000"),
            ours.replace("StringLike", "StringEquals"),
            ours.replace(r#""Effect""#, r#""NotAction":"x","Effect""#),
            ours.replace("2012-10-17", "2008-10-17"),
            format!("{}x", ours),
            {
                let mut v: serde_json::Value = serde_json::from_str(&ours).unwrap();
                let first = v["Statement"][0].clone();
                v["Statement"].as_array_mut().unwrap().push(first);
                v.to_string()
            },
            r#"{"Version":"2012-10-17","Statement":[{"Sid":"CutAllBefore","Effect":"Deny","Action":"*","Resource":"*","Condition":{"DateLessThan":{"aws:TokenIssueTime":"x"}}}]}"#.to_owned(),
            r#"{"Version":"2012-10-17","Statement":[{"Sid":"Other","Effect":"Deny","Action":"*","Resource":"*","Condition":{"DateLessThan":{"aws:TokenIssueTime":"2026-12-01T10:00:00Z"}}}]}"#.to_owned(),
        ];
        for b in broken {
            assert_ne!(b, ours);
            assert!(SessionCut::parse(&b).is_err(), "accepted {b}");
        }
        assert!(
            SessionCut::parse(r#"{"Version":"2012-10-17","Statement":[]}"#)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn given_overlapping_and_back_to_back_grants_when_extended_then_one_cut_at_the_last_end() {
        let mut doc = SessionCut::empty();
        let now = t(EARLY);
        doc.extend(
            &user("alice"),
            t("2026-12-01T09:00:00Z"),
            t("2026-12-01T10:00:00Z"),
            now,
        );
        doc.extend(
            &user("alice"),
            t("2026-12-01T10:00:00Z"),
            t("2026-12-01T11:00:00Z"),
            now,
        );
        doc.extend(
            &user("ALICE"),
            t("2026-12-01T09:30:00Z"),
            t("2026-12-01T10:30:00Z"),
            now,
        );
        assert_eq!(
            cuts_of(&doc, "alice"),
            vec![(t("2026-12-01T09:00:00Z"), t("2026-12-01T11:00:00Z"))]
        );
        let json = doc.document_json().unwrap();
        assert!(
            json.contains(r#""aws:userid":["*:ALICE","*:alice"]"#),
            "{json}"
        );
    }

    #[test]
    fn given_grants_with_a_gap_when_extended_then_each_run_keeps_its_own_cut() {
        let mut doc = SessionCut::empty();
        let now = t(EARLY);
        doc.extend(
            &user("alice"),
            t("2026-12-02T09:00:00Z"),
            t("2026-12-02T10:00:00Z"),
            now,
        );
        doc.extend(
            &user("alice"),
            t("2026-12-01T09:00:00Z"),
            t("2026-12-01T10:00:00Z"),
            now,
        );
        assert_eq!(
            cuts_of(&doc, "alice"),
            vec![
                (t("2026-12-01T09:00:00Z"), t("2026-12-01T10:00:00Z")),
                (t("2026-12-02T09:00:00Z"), t("2026-12-02T10:00:00Z")),
            ]
        );
        // A third window bridging both joins them into one run.
        doc.extend(
            &user("alice"),
            t("2026-12-01T10:00:00Z"),
            t("2026-12-02T09:00:00Z"),
            now,
        );
        assert_eq!(
            cuts_of(&doc, "alice"),
            vec![(t("2026-12-01T09:00:00Z"), t("2026-12-02T10:00:00Z"))]
        );
    }

    #[test]
    fn given_a_cut_in_effect_when_a_touching_grant_comes_later_then_the_cut_does_not_move() {
        let mut doc = SessionCut::empty();
        doc.extend(
            &user("alice"),
            t("2026-12-01T09:00:00Z"),
            t("2026-12-01T10:00:00Z"),
            t(EARLY),
        );
        doc.extend(
            &user("alice"),
            t("2026-12-01T10:00:00Z"),
            t("2026-12-01T11:00:00Z"),
            t("2026-12-01T10:05:00Z"),
        );
        assert_eq!(
            cuts_of(&doc, "alice"),
            vec![
                (t("2026-12-01T09:00:00Z"), t("2026-12-01T10:00:00Z")),
                (t("2026-12-01T10:00:00Z"), t("2026-12-01T11:00:00Z")),
            ]
        );
    }

    #[test]
    fn given_an_ended_window_when_extended_again_then_its_cut_is_restored_once_and_only_if_missing()
    {
        let now = t("2026-12-01T10:00:30Z");
        let (s, e) = (t("2026-12-01T09:00:00Z"), t("2026-12-01T10:00:00Z"));
        let mut doc = SessionCut::empty();
        doc.extend(&user("alice"), s, e, now);
        doc.extend(&user("alice"), s, e, now);
        assert_eq!(cuts_of(&doc, "alice"), vec![(s, e)]);
        // Inside a run still going (an overlapping grant): nothing is added.
        let mut doc = SessionCut::empty();
        doc.extend(&user("alice"), s, t("2026-12-01T12:00:00Z"), t(EARLY));
        doc.extend(&user("alice"), s, e, now);
        assert_eq!(cuts_of(&doc, "alice"), vec![(s, t("2026-12-01T12:00:00Z"))]);
    }

    #[test]
    fn given_an_early_end_when_cut_now_then_sessions_before_now_are_cut_and_future_cuts_stay() {
        let mut doc = SessionCut::empty();
        doc.extend(
            &user("alice"),
            t("2026-12-01T09:00:00Z"),
            t("2026-12-01T11:00:00Z"),
            t(EARLY),
        );
        doc.cut_now(&user("alice"), t("2026-12-01T09:40:00.250Z"));
        assert_eq!(
            cuts_of(&doc, "alice"),
            vec![
                (t("2026-12-01T09:40:01Z"), t("2026-12-01T09:40:01Z")),
                (t("2026-12-01T09:00:00Z"), t("2026-12-01T11:00:00Z")),
            ]
        );
        // Twice in the same second: one statement.
        let once = doc.clone();
        doc.cut_now(&user("alice"), t("2026-12-01T09:40:00.9Z"));
        assert_eq!(doc, once);
        // Someone with no grant at all can still be cut.
        doc.cut_now(&user("mallory"), t("2026-12-01T09:41:00Z"));
        assert_eq!(cuts_of(&doc, "mallory").len(), 1);
    }

    #[test]
    fn given_cuts_and_a_one_hour_role_when_collected_then_each_stays_12_hours_after_its_time() {
        let mut doc = SessionCut::empty();
        doc.extend(
            &user("alice"),
            t("2026-12-01T09:00:00Z"),
            t("2026-12-01T10:00:00Z"),
            t(EARLY),
        );
        doc.extend(
            &user("bob"),
            t("2026-12-01T09:00:00Z"),
            t("2026-12-01T10:30:00Z"),
            t(EARLY),
        );
        // A console session issued before the cut may live 12 hours, and the
        // role's MaxSessionDuration may have been higher when it was issued.
        assert_eq!(doc.collect(t("2026-12-01T21:59:59Z"), hours(1)), 0);
        assert_eq!(doc.collect(t("2026-12-01T22:00:00Z"), hours(1)), 1);
        assert!(cuts_of(&doc, "alice").is_empty());
        assert_eq!(doc.collect(t("2026-12-01T22:30:00Z"), hours(1)), 1);
        assert!(doc.is_empty());
        assert_eq!(doc.render(0, t(EARLY)).unwrap().written, Written::Delete);
    }

    fn crowd(n: usize, now: DateTime<Utc>) -> SessionCut {
        let mut doc = SessionCut::empty();
        for i in 0..n {
            let name = format!("person{i:03}");
            let end = t("2026-12-01T10:00:00Z") + TimeDelta::minutes(i as i64);
            doc.extend(&user(&name), end - hours(1), end, now);
        }
        doc
    }

    #[test]
    fn given_room_when_rendered_then_the_document_is_written_as_is_up_to_exactly_the_limit() {
        let doc = crowd(3, t(EARLY));
        let json = doc.document_json().unwrap();
        let chars = counted_chars(&json);
        let r = doc
            .render(ROLE_INLINE_POLICY_LIMIT - chars, t(EARLY))
            .unwrap();
        assert_eq!(
            (r.written, r.chars, r.fallback),
            (Written::Put(json), chars, None)
        );
        let r = doc
            .render(ROLE_INLINE_POLICY_LIMIT - chars + 1, t(EARLY))
            .unwrap();
        assert!(r.fallback.is_some());
    }

    #[test]
    fn given_a_rendered_cut_when_its_budget_is_measured_then_the_others_and_the_cut_count_against_10240()
     {
        let doc = crowd(3, t(EARLY));
        let r = doc.render(1_000, t(EARLY)).unwrap();
        let expected = (1_000 + r.chars) as f64 * 100.0 / 10_240.0;
        assert!((r.budget_used_percent(1_000) - expected).abs() < 1e-9);
        assert!(r.budget_used_percent(1_000) > r.budget_used_percent(0));
        // A full role is at 100 %, and a deleted cut counts the others only.
        let full = doc
            .render(ROLE_INLINE_POLICY_LIMIT - r.chars, t(EARLY))
            .unwrap();
        assert!(
            (full.budget_used_percent(ROLE_INLINE_POLICY_LIMIT - r.chars) - 100.0).abs() < 1e-9
        );
        let gone = SessionCut::empty().render(5_120, t(EARLY)).unwrap();
        assert!((gone.budget_used_percent(5_120) - 50.0).abs() < 1e-9);
    }

    #[test]
    fn given_an_overflow_when_rendered_then_the_fallback_denies_all_before_now_and_keeps_what_fits()
    {
        let now = t("2026-12-01T10:10:30.5Z");
        // Built early: the first ten cuts (10:00..10:09) are in effect at `now`.
        let doc = crowd(60, t(EARLY));
        assert!(counted_chars(&doc.document_json().unwrap()) > ROLE_INLINE_POLICY_LIMIT);
        let r = doc.render(0, now).unwrap();
        let fb = r.fallback.expect("fallback");
        assert_eq!(fb.all_before, t("2026-12-01T10:10:31Z"));
        assert!(r.chars <= ROLE_INLINE_POLICY_LIMIT);
        let Written::Put(json) = r.written else {
            panic!()
        };
        let back = SessionCut::parse(&json).unwrap();
        assert_eq!(back.all_before(), Some(t("2026-12-01T10:10:31Z")));
        // Every cut in effect is subsumed; the soonest future cuts are kept,
        // the latest are dropped and named.
        assert!(back.cuts().iter().all(|c| c.at > fb.all_before));
        assert_eq!(back.cuts()[0].person(), "person011");
        assert!(fb.dropped.contains(&"person059".to_owned()));
        assert_eq!(back.cuts().len() + fb.dropped.len(), 60 - 11);
        // Not even the fallback fits: an error, not a silent partial write.
        assert!(doc.render(ROLE_INLINE_POLICY_LIMIT - 50, now).is_err());
    }

    #[test]
    fn given_a_fallback_in_the_document_when_collected_then_it_goes_12_hours_after_its_time() {
        let r = crowd(60, t(EARLY))
            .render(0, t("2026-12-01T10:00:00Z"))
            .unwrap();
        let Written::Put(json) = r.written else {
            panic!()
        };
        let mut doc = SessionCut::parse(&json).unwrap();
        doc.collect(t("2026-12-01T21:59:59Z"), hours(2));
        assert!(doc.all_before().is_some());
        doc.collect(t("2026-12-01T22:00:00Z"), hours(2));
        assert_eq!(doc.all_before(), None);
    }
}
