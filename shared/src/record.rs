//! The decision record: one per request, in changegate's own DynamoDB table
//! (nobody else may write it). It is a **lock, never evidence**: it says who
//! holds the request's decision (the claim, with its owner and lease), what
//! was decided, whether it was announced, and how the access ended. Nothing
//! is attached because of what a record says: every grant is decided from
//! Systems Manager's and IAM's record, read by the invocation that attaches.
//!
//! Every write is a [`LedgerWrite`]: an update with its condition, as data.
//! The DynamoDB adapter renders the condition as a condition expression and
//! the in-memory ledger evaluates it on the item; both read the one
//! definition here, so the protocol's guarantees (first writer wins, a live
//! claim is never taken, nothing is granted after an end) are tested where
//! they are defined.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::check::Checked;
use crate::events::{Cause, WindowDetail};
use crate::ids::ChangeRequestId;
use crate::policy::Grant;
use crate::refusal::Refusal;
use crate::window::{parse_time, utc_string};

/// The item's key attribute.
pub const KEY: &str = "change_request_id";

/// Attribute names, once.
pub mod attr {
    pub const STATE: &str = "state";
    pub const DECIDED_AT: &str = "decided_at";
    pub const GRANTED_AT: &str = "granted_at";
    pub const REQUESTER: &str = "requester";
    pub const OWNER: &str = "owner";
    pub const LEASE_UNTIL: &str = "lease_until";
    pub const ANNOUNCED: &str = "announced";
    pub const REASON_CODE: &str = "reason_code";
    pub const REASON: &str = "reason";
    pub const SOURCE: &str = "source";
    pub const BENEFICIARY: &str = "beneficiary";
    pub const BENEFICIARY_ID: &str = "beneficiary_id";
    pub const APPROVERS: &str = "approvers";
    pub const ACCOUNT: &str = "account";
    pub const ROLE: &str = "role";
    pub const WINDOW_START: &str = "window_start";
    pub const WINDOW_END: &str = "window_end";
    pub const START_OFFSET: &str = "start_offset";
    pub const END_OFFSET: &str = "end_offset";
    pub const REQUEST_REASON: &str = "request_reason";
    pub const NAMED_SESSIONS: &str = "named_sessions";
    pub const ENDED_AT: &str = "ended_at";
    pub const END_CAUSE: &str = "end_cause";
    /// Who ended it, and why, when an operator did (the operators' runbook's
    /// `ExecutedBy` and its `Reason`).
    pub const ENDED_BY: &str = "ended_by";
    pub const END_REASON: &str = "end_reason";
    pub const REVOKED_AT: &str = "revoked_at";
    pub const REVOCATION_CAUSE: &str = "revocation_cause";
    pub const REVOCATION_LAG_MS: &str = "revocation_lag_ms";
    /// What happened to live sessions, as the revocation's message says it.
    pub const REVOCATION_SESSIONS: &str = "revocation_sessions";
    pub const REVOKED_BY: &str = "revoked_by";
    pub const REVOCATION_ANNOUNCED: &str = "revocation_announced";
    /// The lease of the invocation that recorded the revocation.
    pub const REVOKED_LEASE_UNTIL: &str = "revoked_lease_until";
    /// Set while a decision is made but not announced yet: the key of the
    /// table's sparse index [`super::PENDING_INDEX`], which the sweep reads.
    pub const PENDING: &str = "pending_announcement";
}

/// The table's index of records whose revocation is not announced yet
/// (sparse: only items holding [`attr::PENDING`] are in it).
pub const PENDING_INDEX: &str = "pending-announcements";
/// [`attr::PENDING`]'s value while a revocation waits for its announcement.
pub const PENDING_REVOCATION: &str = "revocation";

/// Where the decision stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    /// Claimed: the policy is being attached by the claim's owner (or was,
    /// by an attempt that stopped: then its lease runs out).
    Granting,
    Granted,
    Refused,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Granting => "granting",
            Self::Granted => "granted",
            Self::Refused => "refused",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Granting, Self::Granted, Self::Refused]
            .into_iter()
            .find(|s| s.as_str() == raw)
    }
}

/// The invocation that holds (or would hold) a record: Lambda's request id,
/// which Lambda keeps when it retries the same event, and the lease: when
/// that invocation can no longer be running (its deadline).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Holder {
    pub owner: String,
    pub lease_until: DateTime<Utc>,
}

impl Holder {
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        now < self.lease_until
    }
}

/// The grant as decided: enough to rebuild the messages, and to compare
/// with what Systems Manager says (never to attach from).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Decided {
    pub source: String,
    pub beneficiary: String,
    /// IAM's unique id of the beneficiary when granted (a rename keeps it).
    pub beneficiary_id: Option<String>,
    pub approvers: Vec<String>,
    pub account: String,
    pub role: String,
    pub window: WindowDetail,
    pub request_reason: Option<String>,
    /// Whether the policy requires sessions named after the user.
    pub named_sessions: bool,
}

impl Decided {
    /// The grant this record names, **for removal only**: a policy is never
    /// attached from a record, but the one a record names may be removed
    /// (deleting a named policy from a named user grants nothing).
    pub fn to_removal(&self, id: &ChangeRequestId) -> Option<Grant> {
        let user = crate::ids::IamUserName::parse(&self.beneficiary).ok()?;
        Some(Grant {
            change_request: id.clone(),
            user: user.clone(),
            session_name: user,
            user_id: self
                .beneficiary_id
                .as_deref()
                .and_then(|i| crate::ids::IamUserId::parse(i).ok()),
            account: crate::ids::AccountId::parse(&self.account).ok()?,
            role: crate::ids::RoleName::parse(&self.role).ok()?,
            window: self.window.to_window()?,
            named_sessions: self.named_sessions,
        })
    }

    /// Whether this is the grant `grant` (same user, account, role, window).
    pub fn is(&self, grant: &Grant) -> bool {
        self.beneficiary.eq_ignore_ascii_case(grant.user.as_str())
            && self.account == grant.account.as_str()
            && self.role == grant.role.as_str()
            && self.window == WindowDetail::from(&grant.window)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ended {
    pub at: DateTime<Utc>,
    pub cause: Cause,
    /// Who ended it and why, when an operator did.
    pub by: Option<EndedBy>,
}

/// Who ended a request through the end runbook (an operator, its filer or
/// the person it is for), as Systems Manager recorded them, and the reason
/// they gave (may be empty).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EndedBy {
    pub who: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Revoked {
    pub at: DateTime<Utc>,
    pub cause: Cause,
    pub lag_ms: Option<i64>,
    /// The invocation that recorded the revocation first: the one that
    /// announces it (or took the announcement over once its lease ran out).
    pub by: Option<String>,
    /// Until when `by` may still be announcing it.
    pub lease_until: Option<DateTime<Utc>>,
    pub announced: bool,
    /// What happened to live sessions (when they are cut), in the message's words.
    pub sessions: Option<String>,
}

impl Revoked {
    /// Whether the revocation waits for an announcement that its recorder
    /// can no longer make (its lease ran out): another invocation may take it over.
    pub fn orphaned(&self, now: DateTime<Utc>) -> bool {
        !self.announced && self.lease_until.is_none_or(|l| l < now)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DecisionRecord {
    pub id: ChangeRequestId,
    /// `None` for a tombstone alone: the request ended before any decision.
    pub state: Option<State>,
    pub decided_at: Option<DateTime<Utc>>,
    /// Who filed the request (ARN), when known.
    pub requester: Option<String>,
    /// Who holds the decision: the invocation that claimed or refused it.
    pub holder: Option<Holder>,
    /// Whether the decision was announced (put on changegate's bus).
    pub announced: bool,
    pub grant: Option<Decided>,
    pub reason_code: Option<String>,
    pub reason: Option<String>,
    /// Set by an early end or an operator: no grant may start (or stay) after it.
    pub ended: Option<Ended>,
    pub revoked: Option<Revoked>,
}

impl DecisionRecord {
    fn new(id: &ChangeRequestId, state: State, holder: &Holder, now: DateTime<Utc>) -> Self {
        Self {
            id: id.clone(),
            state: Some(state),
            decided_at: Some(now),
            requester: None,
            holder: Some(holder.clone()),
            announced: false,
            grant: None,
            reason_code: None,
            reason: None,
            ended: None,
            revoked: None,
        }
    }

    /// The claim written before the policy is attached.
    pub fn granting(checked: &Checked, grant: &Grant, holder: &Holder, now: DateTime<Utc>) -> Self {
        Self {
            grant: Some(Decided {
                source: checked.source.as_str().to_owned(),
                beneficiary: grant.session_name.to_string(),
                beneficiary_id: grant.user_id.as_ref().map(ToString::to_string),
                approvers: checked.approvers.clone(),
                account: grant.account.to_string(),
                role: grant.role.to_string(),
                window: WindowDetail::from(&grant.window),
                request_reason: checked.request.reason.clone(),
                named_sessions: grant.named_sessions,
            }),
            requester: Some(checked.requester.to_string()),
            ..Self::new(&checked.id, State::Granting, holder, now)
        }
    }

    pub fn refused(
        id: &ChangeRequestId,
        refusal: &Refusal,
        requester: Option<String>,
        holder: &Holder,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            reason_code: Some(refusal.code().to_owned()),
            reason: Some(refusal.to_string()),
            requester,
            ..Self::new(id, State::Refused, holder, now)
        }
    }

    pub fn end_cause(&self) -> Option<Cause> {
        self.ended.as_ref().map(|e| e.cause.clone())
    }

    pub fn owner(&self) -> Option<&str> {
        self.holder.as_ref().map(|h| h.owner.as_str())
    }

    /// The record as its item (attribute name to value).
    pub fn to_item(&self) -> Item {
        let mut item = Item::new();
        item.insert(KEY.into(), Value::S(self.id.to_string()));
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v.filter(|v| !v.is_empty()) {
                item.insert(k.into(), Value::S(v));
            }
        };
        put(attr::STATE, self.state.map(|st| st.as_str().to_owned()));
        put(attr::DECIDED_AT, self.decided_at.map(utc_string));
        put(attr::REQUESTER, self.requester.clone());
        put(attr::REASON_CODE, self.reason_code.clone());
        put(attr::REASON, self.reason.clone());
        if let Some(h) = &self.holder {
            put(attr::OWNER, Some(h.owner.clone()));
            put(attr::LEASE_UNTIL, Some(utc_string(h.lease_until)));
        }
        if let Some(e) = &self.ended {
            put(attr::ENDED_AT, Some(utc_string(e.at)));
            put(attr::END_CAUSE, Some(e.cause.as_str().to_owned()));
            put(attr::ENDED_BY, e.by.as_ref().map(|b| b.who.clone()));
            put(attr::END_REASON, e.by.as_ref().map(|b| b.reason.clone()));
        }
        if let Some(g) = &self.grant {
            put(attr::SOURCE, Some(g.source.clone()));
            put(attr::BENEFICIARY, Some(g.beneficiary.clone()));
            put(attr::BENEFICIARY_ID, g.beneficiary_id.clone());
            put(attr::ACCOUNT, Some(g.account.clone()));
            put(attr::ROLE, Some(g.role.clone()));
            put(attr::WINDOW_START, Some(g.window.start.clone()));
            put(attr::WINDOW_END, Some(g.window.end.clone()));
            put(attr::START_OFFSET, Some(g.window.start_offset.clone()));
            put(attr::END_OFFSET, Some(g.window.end_offset.clone()));
            put(attr::REQUEST_REASON, g.request_reason.clone());
            item.insert(attr::NAMED_SESSIONS.into(), Value::Bool(g.named_sessions));
            if !g.approvers.is_empty() {
                item.insert(attr::APPROVERS.into(), Value::L(g.approvers.clone()));
            }
        }
        item.insert(attr::ANNOUNCED.into(), Value::Bool(self.announced));
        item
    }

    /// The record an item holds. Values that cannot be read are left out
    /// (a state that cannot be read is no decision, so nothing is trusted).
    pub fn from_item(id: &ChangeRequestId, item: &Item) -> Self {
        let text = |k: &str| match item.get(k) {
            Some(Value::S(s)) => Some(s.clone()),
            _ => None,
        };
        let time = |k: &str| {
            text(k)
                .and_then(|t| parse_time(&t).ok())
                .map(|t| t.to_utc())
        };
        let flag = |k: &str| matches!(item.get(k), Some(Value::Bool(true)));
        let grant = text(attr::BENEFICIARY).map(|beneficiary| Decided {
            source: text(attr::SOURCE).unwrap_or_default(),
            beneficiary,
            beneficiary_id: text(attr::BENEFICIARY_ID),
            approvers: match item.get(attr::APPROVERS) {
                Some(Value::L(l)) => l.clone(),
                _ => Vec::new(),
            },
            account: text(attr::ACCOUNT).unwrap_or_default(),
            role: text(attr::ROLE).unwrap_or_default(),
            window: WindowDetail {
                start: text(attr::WINDOW_START).unwrap_or_default(),
                end: text(attr::WINDOW_END).unwrap_or_default(),
                start_offset: text(attr::START_OFFSET).unwrap_or_default(),
                end_offset: text(attr::END_OFFSET).unwrap_or_default(),
            },
            request_reason: text(attr::REQUEST_REASON),
            named_sessions: flag(attr::NAMED_SESSIONS),
        });
        let holder = match (text(attr::OWNER), time(attr::LEASE_UNTIL)) {
            (Some(owner), Some(lease_until)) => Some(Holder { owner, lease_until }),
            // An owner without a readable lease holds nothing live.
            (Some(owner), None) => Some(Holder {
                owner,
                lease_until: DateTime::<Utc>::MIN_UTC,
            }),
            _ => None,
        };
        Self {
            id: id.clone(),
            state: text(attr::STATE).and_then(|st| State::parse(&st)),
            decided_at: time(attr::DECIDED_AT),
            requester: text(attr::REQUESTER),
            holder,
            announced: flag(attr::ANNOUNCED),
            grant,
            reason_code: text(attr::REASON_CODE),
            reason: text(attr::REASON),
            ended: time(attr::ENDED_AT).map(|at| Ended {
                at,
                cause: Cause::parse(&text(attr::END_CAUSE).unwrap_or_default()),
                by: text(attr::ENDED_BY).map(|who| EndedBy {
                    who,
                    reason: text(attr::END_REASON).unwrap_or_default(),
                }),
            }),
            revoked: time(attr::REVOKED_AT).map(|at| Revoked {
                at,
                cause: Cause::parse(&text(attr::REVOCATION_CAUSE).unwrap_or_default()),
                lag_ms: match item.get(attr::REVOCATION_LAG_MS) {
                    Some(Value::N(n)) => Some(*n),
                    _ => None,
                },
                by: text(attr::REVOKED_BY),
                lease_until: time(attr::REVOKED_LEASE_UNTIL),
                announced: flag(attr::REVOCATION_ANNOUNCED),
                sessions: text(attr::REVOCATION_SESSIONS),
            }),
        }
    }
}

/// An attribute's value, as the table holds it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Value {
    S(String),
    N(i64),
    Bool(bool),
    L(Vec<String>),
}

pub type Item = BTreeMap<String, Value>;

/// A write's condition, as data: rendered to a DynamoDB condition
/// expression by the adapter, evaluated on the item by the in-memory ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// No item at all (the key attribute does not exist).
    NoItem,
    Absent(&'static str),
    Exists(&'static str),
    Equals(&'static str, Value),
    In(&'static str, Vec<Value>),
    All(Vec<Condition>),
}

impl Condition {
    /// Whether the condition holds on `item` (`None`: there is no item).
    pub fn holds(&self, item: Option<&Item>) -> bool {
        let get = |k: &str| item.and_then(|i| i.get(k));
        match self {
            Self::NoItem => item.is_none(),
            Self::Absent(k) => get(k).is_none(),
            Self::Exists(k) => get(k).is_some(),
            Self::Equals(k, v) => get(k) == Some(v),
            Self::In(k, vs) => get(k).is_some_and(|x| vs.contains(x)),
            Self::All(cs) => cs.iter().all(|c| c.holds(item)),
        }
    }
}

/// How a write changes the item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// Replaces the whole item.
    Put(Item),
    /// Sets these attributes; `keep` ones only where they are not set yet;
    /// removes the `remove` ones.
    Set {
        set: Vec<(&'static str, Value)>,
        keep: Vec<(&'static str, Value)>,
        remove: Vec<&'static str>,
    },
}

impl Update {
    /// The item after the update (the in-memory ledger's semantics, and DynamoDB's).
    pub fn apply(&self, id: &ChangeRequestId, item: Option<&Item>) -> Item {
        match self {
            Self::Put(new) => new.clone(),
            Self::Set { set, keep, remove } => {
                let mut out = item
                    .cloned()
                    .unwrap_or_else(|| Item::from([(KEY.to_owned(), Value::S(id.to_string()))]));
                for (k, v) in set {
                    out.insert((*k).to_owned(), v.clone());
                }
                for (k, v) in keep {
                    out.entry((*k).to_owned()).or_insert_with(|| v.clone());
                }
                for k in remove {
                    out.remove(*k);
                }
                out
            }
        }
    }
}

/// Every write the protocol makes to the ledger, with its condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerWrite {
    /// The first decision (a claim, or a refusal): only if there is no record.
    Create(DecisionRecord),
    /// Takes over a claim whose holder's lease ran out: only if the record is
    /// still that claim (same owner, same lease) and the request has not ended.
    TakeOver {
        id: ChangeRequestId,
        from: Holder,
        to: Holder,
    },
    /// The claim's holder refuses instead (the user vanished, or IAM says no):
    /// only while it holds the claim and the request has not ended.
    Refuse {
        record: DecisionRecord,
        holder: String,
    },
    /// A request that ended before anything was decided, approved after: refused,
    /// only if it is still a tombstone alone.
    RefuseEnded { record: DecisionRecord },
    /// `granting` -> `granted`: only by the claim's holder, and not after an end.
    MarkGranted {
        id: ChangeRequestId,
        holder: String,
        at: DateTime<Utc>,
    },
    /// The decision was announced (by its holder).
    MarkAnnounced { id: ChangeRequestId, holder: String },
    /// The tombstone: the request ended (or an operator ended it) at `at`.
    /// The first end is kept; creates the record if there is none yet.
    End {
        id: ChangeRequestId,
        cause: Cause,
        at: DateTime<Utc>,
        /// The operator who ends it, and why (an operator's end only).
        by: Option<EndedBy>,
    },
    /// How the access ended: only the first revocation is recorded, and its
    /// writer announces it.
    Revoked {
        id: ChangeRequestId,
        cause: Cause,
        at: DateTime<Utc>,
        lag_ms: Option<i64>,
        by: Holder,
    },
    /// Takes over announcing a revocation whose recorder's lease ran out:
    /// only if it is still that recorder's and still unannounced.
    TakeOverRevocation {
        id: ChangeRequestId,
        from: String,
        lease_until: Option<DateTime<Utc>>,
        to: Holder,
    },
    /// What happened to live sessions, for the message notify renders from
    /// the record: written by the announcer, before it announces.
    RecordSessions {
        id: ChangeRequestId,
        by: String,
        sessions: String,
    },
    /// The revocation was announced (by the invocation that recorded it).
    MarkRevocationAnnounced { id: ChangeRequestId, by: String },
}

fn s(v: impl Into<String>) -> Value {
    Value::S(v.into())
}

impl LedgerWrite {
    pub fn id(&self) -> &ChangeRequestId {
        match self {
            Self::Create(r) | Self::Refuse { record: r, .. } | Self::RefuseEnded { record: r } => {
                &r.id
            }
            Self::TakeOver { id, .. }
            | Self::MarkGranted { id, .. }
            | Self::MarkAnnounced { id, .. }
            | Self::End { id, .. }
            | Self::Revoked { id, .. }
            | Self::TakeOverRevocation { id, .. }
            | Self::RecordSessions { id, .. }
            | Self::MarkRevocationAnnounced { id, .. } => id,
        }
    }

    /// The DynamoDB operation the write is (for faults and metrics).
    pub fn operation(&self) -> &'static str {
        match self.update() {
            Update::Put(_) => "dynamodb:PutItem",
            Update::Set { .. } => "dynamodb:UpdateItem",
        }
    }

    pub fn condition(&self) -> Condition {
        use Condition::*;
        let held_by = |owner: &str, states: &[State]| {
            All(vec![
                In(
                    attr::STATE,
                    states.iter().map(|st| s(st.as_str())).collect(),
                ),
                Equals(attr::OWNER, s(owner)),
                Absent(attr::ENDED_AT),
            ])
        };
        match self {
            Self::Create(_) => NoItem,
            Self::TakeOver { from, .. } => All(vec![
                Equals(attr::STATE, s(State::Granting.as_str())),
                Equals(attr::OWNER, s(from.owner.as_str())),
                Equals(attr::LEASE_UNTIL, s(utc_string(from.lease_until))),
                Absent(attr::ENDED_AT),
            ]),
            Self::Refuse { holder, .. } => held_by(holder, &[State::Granting]),
            Self::RefuseEnded { .. } => All(vec![Absent(attr::STATE), Exists(attr::ENDED_AT)]),
            Self::MarkGranted { holder, .. } => held_by(holder, &[State::Granting]),
            Self::MarkAnnounced { holder, .. } => Equals(attr::OWNER, s(holder.as_str())),
            Self::End { .. } => All(vec![]),
            Self::Revoked { .. } => Absent(attr::REVOKED_AT),
            Self::TakeOverRevocation {
                from, lease_until, ..
            } => All(vec![
                Equals(attr::REVOKED_BY, s(from.as_str())),
                match lease_until {
                    Some(l) => Equals(attr::REVOKED_LEASE_UNTIL, s(utc_string(*l))),
                    None => Absent(attr::REVOKED_LEASE_UNTIL),
                },
                Exists(attr::PENDING),
            ]),
            Self::RecordSessions { by, .. } => Equals(attr::REVOKED_BY, s(by.as_str())),
            Self::MarkRevocationAnnounced { by, .. } => Equals(attr::REVOKED_BY, s(by.as_str())),
        }
    }

    pub fn update(&self) -> Update {
        match self {
            Self::Create(r) | Self::Refuse { record: r, .. } => Update::Put(r.to_item()),
            Self::RefuseEnded { record } => {
                // Keeps the tombstone's end: the record is refused *because* it ended.
                let mut set: Vec<(&'static str, Value)> = Vec::new();
                for (k, v) in record.to_item() {
                    if let Some(name) = RECORD_ATTRS.iter().find(|a| **a == k) {
                        let tombstone = [
                            attr::ENDED_AT,
                            attr::END_CAUSE,
                            attr::ENDED_BY,
                            attr::END_REASON,
                        ];
                        if *name != KEY && !tombstone.contains(name) {
                            set.push((name, v));
                        }
                    }
                }
                Update::Set {
                    set,
                    keep: vec![],
                    remove: vec![],
                }
            }
            Self::TakeOver { to, .. } => Update::Set {
                set: vec![
                    (attr::OWNER, s(to.owner.as_str())),
                    (attr::LEASE_UNTIL, s(utc_string(to.lease_until))),
                ],
                keep: vec![],
                remove: vec![],
            },
            Self::MarkGranted { at, .. } => Update::Set {
                set: vec![
                    (attr::STATE, s(State::Granted.as_str())),
                    (attr::GRANTED_AT, s(utc_string(*at))),
                ],
                keep: vec![],
                remove: vec![],
            },
            Self::MarkAnnounced { .. } => Update::Set {
                set: vec![(attr::ANNOUNCED, Value::Bool(true))],
                keep: vec![],
                remove: vec![],
            },
            Self::End { cause, at, by, .. } => {
                let mut keep = vec![
                    (attr::ENDED_AT, s(utc_string(*at))),
                    (attr::END_CAUSE, s(cause.as_str())),
                ];
                if let Some(by) = by {
                    keep.push((attr::ENDED_BY, s(by.who.as_str())));
                    keep.push((attr::END_REASON, s(by.reason.as_str())));
                }
                Update::Set {
                    set: vec![],
                    keep,
                    remove: vec![],
                }
            }
            Self::Revoked {
                cause,
                at,
                lag_ms,
                by,
                ..
            } => {
                let mut set = vec![
                    (attr::REVOKED_AT, s(utc_string(*at))),
                    (attr::REVOCATION_CAUSE, s(cause.as_str())),
                    (attr::REVOKED_BY, s(by.owner.as_str())),
                    (attr::REVOKED_LEASE_UNTIL, s(utc_string(by.lease_until))),
                    (attr::PENDING, s(PENDING_REVOCATION)),
                ];
                if let Some(lag) = lag_ms {
                    set.push((attr::REVOCATION_LAG_MS, Value::N(*lag)));
                }
                Update::Set {
                    set,
                    keep: vec![],
                    remove: vec![],
                }
            }
            Self::TakeOverRevocation { to, .. } => Update::Set {
                set: vec![
                    (attr::REVOKED_BY, s(to.owner.as_str())),
                    (attr::REVOKED_LEASE_UNTIL, s(utc_string(to.lease_until))),
                ],
                keep: vec![],
                remove: vec![],
            },
            Self::RecordSessions { sessions, .. } => Update::Set {
                set: vec![(attr::REVOCATION_SESSIONS, s(sessions.as_str()))],
                keep: vec![],
                remove: vec![],
            },
            Self::MarkRevocationAnnounced { .. } => Update::Set {
                set: vec![(attr::REVOCATION_ANNOUNCED, Value::Bool(true))],
                keep: vec![],
                remove: vec![attr::PENDING],
            },
        }
    }
}

/// Every attribute a record writes, as `&'static str` (for [`Update::Set`]).
const RECORD_ATTRS: &[&str] = &[
    KEY,
    attr::ENDED_BY,
    attr::END_REASON,
    attr::STATE,
    attr::DECIDED_AT,
    attr::REQUESTER,
    attr::OWNER,
    attr::LEASE_UNTIL,
    attr::ANNOUNCED,
    attr::REASON_CODE,
    attr::REASON,
    attr::SOURCE,
    attr::BENEFICIARY,
    attr::BENEFICIARY_ID,
    attr::APPROVERS,
    attr::ACCOUNT,
    attr::ROLE,
    attr::WINDOW_START,
    attr::WINDOW_END,
    attr::START_OFFSET,
    attr::END_OFFSET,
    attr::REQUEST_REASON,
    attr::NAMED_SESSIONS,
    attr::ENDED_AT,
    attr::END_CAUSE,
];

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> ChangeRequestId {
        ChangeRequestId::parse("6f1c2e4a-9b7d-4c3e-8a21-5d0f3b9e7a64").unwrap()
    }

    fn t(raw: &str) -> DateTime<Utc> {
        raw.parse().unwrap()
    }

    fn holder(owner: &str) -> Holder {
        Holder {
            owner: owner.into(),
            lease_until: t("2026-12-01T10:02:40Z"),
        }
    }

    #[test]
    fn given_a_record_when_written_as_an_item_and_read_back_then_nothing_is_lost() {
        let mut r = DecisionRecord::refused(
            &id(),
            &Refusal::ChangeRequestNotFound,
            Some("arn:aws:iam::123456789012:user/alice".into()),
            &holder("req-1"),
            t("2026-12-01T10:00:00Z"),
        );
        r.announced = true;
        r.ended = Some(Ended {
            at: t("2026-12-01T10:00:05Z"),
            cause: Cause::Operator,
            by: Some(EndedBy {
                who: "arn:aws:iam::123456789012:user/carol".into(),
                reason: "INC-4711".into(),
            }),
        });
        assert_eq!(DecisionRecord::from_item(&id(), &r.to_item()), r);
    }

    #[test]
    fn given_a_decided_grant_with_the_users_unique_id_when_stored_and_read_back_then_removal_is_bound_to_that_id()
     {
        let mut r = DecisionRecord::refused(
            &id(),
            &Refusal::ApprovalUnknown,
            None,
            &holder("a"),
            t("2026-12-01T09:00:00Z"),
        );
        r.state = Some(State::Granted);
        r.grant = Some(Decided {
            source: "automation".into(),
            beneficiary: "alice".into(),
            beneficiary_id: Some("AIDACKCEVSQ6C2EXAMPLE".into()),
            approvers: vec![],
            account: "111122223333".into(),
            role: "CM-Prd-role".into(),
            window: WindowDetail {
                start: "2026-12-01T09:00:00Z".into(),
                end: "2026-12-01T10:00:00Z".into(),
                start_offset: "Z".into(),
                end_offset: "Z".into(),
            },
            request_reason: None,
            named_sessions: true,
        });
        let item = r.to_item();
        assert_eq!(
            item.get(attr::BENEFICIARY_ID),
            Some(&Value::S("AIDACKCEVSQ6C2EXAMPLE".into()))
        );
        let back = DecisionRecord::from_item(&id(), &item);
        assert_eq!(back, r);
        let removal = back.grant.unwrap().to_removal(&id()).unwrap();
        assert_eq!(
            removal.user_id.as_ref().map(|i| i.as_str()),
            Some("AIDACKCEVSQ6C2EXAMPLE")
        );
        assert_eq!(
            (removal.user.as_str(), removal.session_name.as_str()),
            ("alice", "alice")
        );
    }

    #[test]
    fn given_each_write_when_its_condition_is_checked_then_only_the_documented_state_passes() {
        let now = t("2026-12-01T10:00:00Z");
        let claim = DecisionRecord {
            state: Some(State::Granting),
            ..DecisionRecord::refused(&id(), &Refusal::ApprovalUnknown, None, &holder("a"), now)
        };
        let item = claim.to_item();
        let create = LedgerWrite::Create(claim.clone());
        assert!(create.condition().holds(None));
        assert!(!create.condition().holds(Some(&item)), "first writer wins");
        let mark = |h: &str| LedgerWrite::MarkGranted {
            id: id(),
            holder: h.into(),
            at: now,
        };
        assert!(mark("a").condition().holds(Some(&item)));
        assert!(!mark("b").condition().holds(Some(&item)), "only the holder");
        let ended = LedgerWrite::End {
            id: id(),
            cause: Cause::Operator,
            at: now,
            by: None,
        }
        .update()
        .apply(&id(), Some(&item));
        assert!(
            !mark("a").condition().holds(Some(&ended)),
            "not after an end"
        );
        let take = |from: Holder| LedgerWrite::TakeOver {
            id: id(),
            from,
            to: holder("b"),
        };
        assert!(take(holder("a")).condition().holds(Some(&item)));
        let other_lease = Holder {
            lease_until: t("2026-12-01T10:09:00Z"),
            ..holder("a")
        };
        assert!(!take(other_lease).condition().holds(Some(&item)));
        assert!(!take(holder("a")).condition().holds(Some(&ended)));
    }

    #[test]
    fn given_a_revocation_with_what_happened_to_sessions_when_written_then_the_record_holds_it_for_notify()
     {
        let revoked = LedgerWrite::Revoked {
            id: id(),
            cause: Cause::Operator,
            at: t("2026-12-01T10:00:00Z"),
            lag_ms: None,
            by: holder("req-2"),
        }
        .update()
        .apply(&id(), None);
        let note = LedgerWrite::RecordSessions {
            id: id(),
            by: "req-2".into(),
            sessions: "sessions of alice issued before 2026-12-01T10:00:01Z are denied".into(),
        };
        assert!(
            note.condition().holds(Some(&revoked)),
            "the recorder writes it"
        );
        let item = note.update().apply(&id(), Some(&revoked));
        let r = DecisionRecord::from_item(&id(), &item);
        assert_eq!(
            r.revoked.and_then(|v| v.sessions).as_deref(),
            Some("sessions of alice issued before 2026-12-01T10:00:01Z are denied")
        );
    }

    #[test]
    fn given_an_end_written_twice_when_applied_then_the_first_end_is_kept() {
        let carol = EndedBy {
            who: "arn:aws:iam::123456789012:user/carol".into(),
            reason: "INC-4711".into(),
        };
        let first = LedgerWrite::End {
            id: id(),
            cause: Cause::Operator,
            at: t("2026-12-01T10:00:00Z"),
            by: Some(carol.clone()),
        }
        .update()
        .apply(&id(), None);
        let second = LedgerWrite::End {
            id: id(),
            cause: Cause::Operator,
            at: t("2026-12-01T11:00:00Z"),
            by: Some(EndedBy {
                who: "arn:aws:iam::123456789012:user/dave".into(),
                reason: "later".into(),
            }),
        }
        .update()
        .apply(&id(), Some(&first));
        let r = DecisionRecord::from_item(&id(), &second);
        assert_eq!(r.end_cause(), Some(Cause::Operator));
        assert_eq!(
            r.ended.and_then(|e| e.by),
            Some(carol),
            "the first operator and reason are kept"
        );
        assert_eq!(r.state, None, "a tombstone alone");
    }
}
