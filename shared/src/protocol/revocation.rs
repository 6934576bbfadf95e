//! Removing a grant: the one path for every cause (its window ended, its
//! request ended early, an operator ended it, or grant undoes its own attach).
//! The policy goes first; then live sessions are cut (at the window's end for
//! an ended window, now for any other cause); the expiry schedule goes; the
//! revocation is recorded, and whoever records it first announces it, once.

use chrono::{DateTime, Timelike, Utc};

use crate::events::{AccessRevoked, Cause, ChangegateEvent};
use crate::policy::Grant;
use crate::ports::{CutAt, CutOutcome};
use crate::protocol::{Answer, Invocation, Machine, Next, Step};
use crate::record::{DecisionRecord, LedgerWrite};

/// Which parts of the deployment a revocation touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Reach {
    /// Live sessions are cut in the production accounts.
    pub cuts: bool,
    /// Grants have expiry schedules.
    pub expiry: bool,
}

/// What a revocation did.
// One value per step, moved once: boxing would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoked {
    /// This invocation recorded (and announced) the revocation.
    Revoked(AccessRevoked),
    /// Another invocation had already revoked it.
    AlreadyGone,
}

/// Where the live sessions of a revoked grant are cut: at the window's end
/// when the window ended (the cut written at grant time) or the grant was
/// extended (the extension's grant moved the person's cut to its own end, so
/// their live sessions go on), now for any other cause.
pub fn cut_for(cause: &Cause) -> CutAt {
    match cause {
        Cause::WindowEnded | Cause::Extended => CutAt::WindowEnd,
        Cause::EndedEarly(_)
        | Cause::Operator
        | Cause::EndedOnRequest
        | Cause::NoLongerEligible => CutAt::Now,
    }
}

/// What happened to live sessions, in words for the notification.
pub fn sessions_note(
    cut: CutOutcome,
    grant: &Grant,
    cause: &Cause,
    now: chrono::DateTime<chrono::Utc>,
) -> String {
    // A cut now is at the next whole second (see session.rs); at the end, the end.
    let at = match cut_for(cause) {
        CutAt::WindowEnd => grant.window.end_utc(),
        CutAt::Now => match now.with_nanosecond(0) {
            Some(s) if s != now => s + chrono::TimeDelta::seconds(1),
            _ => now,
        },
    };
    // Written as every message writes a time (window.rs, human_time).
    let at = at.format("%Y-%m-%d %H:%M:%S UTC");
    match cut {
        CutOutcome::Cut => format!(
            "sessions of {} in {}/{} issued before {at} are denied from then on",
            grant.session_name, grant.account, grant.role
        ),
        CutOutcome::AllSessionsCut => format!(
            "the role's inline-policy budget was full: every session of {}/{} issued before {at} is denied (operators were alerted)",
            grant.account, grant.role
        ),
        CutOutcome::NoSuchRole => format!(
            "{}/{} does not exist: no session to cut",
            grant.account, grant.role
        ),
    }
}

/// One revocation, as a machine.
///
/// The revocation is recorded first (first writer wins: the recorder is the
/// one that announces), so that whoever comes later can tell it is under way
/// even once the policy is gone: a retry of the recorder carries on, and once
/// the recorder's lease has run out another invocation takes the
/// announcement over (the sweep finds such records through the table's
/// index of unannounced revocations). Then every revoker, recorder or not,
/// removes the policy, cuts live sessions and drops the expiry schedule
/// (each idempotent), and only then is the revocation announced, once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    grant: Grant,
    cause: Cause,
    inv: Invocation,
    reach: Reach,
    /// Whether this invocation's record of the revocation landed.
    recorded: Option<bool>,
    /// Whether this invocation announces the revocation.
    mine: Option<bool>,
    record: Option<Option<DecisionRecord>>,
    took_over: Option<bool>,
    removed: Option<bool>,
    cut: Option<CutOutcome>,
    unscheduled: bool,
    /// Whether what happened to live sessions is in the record (notify reads it there).
    sessions_recorded: bool,
    /// When the revocation happened: now, or as an earlier recorder recorded it.
    at: DateTime<Utc>,
    announced: bool,
    settled: bool,
    pending: Option<Pending>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Pending {
    Record,
    Reread,
    TakeOver,
    Remove,
    Cut,
    Unschedule,
    Sessions,
    Announce,
    Settle,
}

impl Revocation {
    pub fn new(grant: Grant, cause: Cause, inv: Invocation, reach: Reach) -> Self {
        Self {
            at: inv.now,
            grant,
            cause,
            inv,
            reach,
            recorded: None,
            mine: None,
            record: None,
            took_over: None,
            removed: None,
            cut: None,
            unscheduled: false,
            sessions_recorded: false,
            announced: false,
            settled: false,
            pending: None,
        }
    }

    pub fn grant(&self) -> &Grant {
        &self.grant
    }

    fn event(&self) -> AccessRevoked {
        let mut revoked = AccessRevoked::of(&self.grant, self.at, &self.cause);
        revoked.sessions = self
            .cut
            .map(|c| sessions_note(c, &self.grant, &self.cause, self.inv.now));
        revoked
    }

    fn ask(&mut self, pending: Pending, step: Step) -> Next<Revoked> {
        self.pending = Some(pending);
        Next::Do(step)
    }

    /// Asks to take over the announcement of a revocation whose recorder's lease ran out.
    fn take_over(&mut self, id: crate::ids::ChangeRequestId) -> Next<Revoked> {
        let revoked = self
            .record
            .as_ref()
            .and_then(|r| r.as_ref())
            .and_then(|r| r.revoked.as_ref());
        let (from, lease_until) = match revoked {
            Some(r) => (r.by.clone().unwrap_or_default(), r.lease_until),
            None => (String::new(), None),
        };
        let write = LedgerWrite::TakeOverRevocation {
            id,
            from,
            lease_until,
            to: self.inv.holder(),
        };
        self.ask(Pending::TakeOver, Step::Write(write))
    }

    /// Whether the revocation is this invocation's to announce, from the
    /// record once another write got there first: recorded by an earlier
    /// attempt of this invocation (a retry carries on), or taken over.
    /// `None`: a takeover is to be tried first.
    fn decide_mine(&mut self) -> Option<bool> {
        let revoked = self
            .record
            .as_ref()
            .and_then(|r| r.as_ref())
            .and_then(|r| r.revoked.as_ref());
        let Some(revoked) = revoked else {
            // No revocation recorded, yet ours did not land: the record is gone.
            return Some(false);
        };
        if revoked.announced {
            return Some(false);
        }
        if revoked.by.as_deref() == Some(&self.inv.id) {
            // Ours: announce it as recorded.
            self.cause = revoked.cause.clone();
            self.at = revoked.at;
            return Some(true);
        }
        if !revoked.orphaned(self.inv.now) {
            return Some(false);
        }
        match self.took_over {
            None => None,
            Some(won) => {
                if won {
                    self.cause = revoked.cause.clone();
                    self.at = revoked.at;
                }
                Some(won)
            }
        }
    }
}

impl Machine for Revocation {
    type Outcome = Revoked;

    fn next(&mut self) -> Next<Revoked> {
        let id = self.grant.change_request.clone();
        if self.mine.is_none() {
            match (self.recorded, &self.record) {
                // First: record the revocation (first writer wins).
                (None, _) => {
                    let write = LedgerWrite::Revoked {
                        id,
                        cause: self.cause.clone(),
                        at: self.inv.now,
                        lag_ms: self.event().revocation_lag_ms,
                        by: self.inv.holder(),
                    };
                    return self.ask(Pending::Record, Step::Write(write));
                }
                (Some(true), _) => self.mine = Some(true),
                // Someone recorded it first (or an earlier attempt of ours): read whose.
                (Some(false), None) => return self.ask(Pending::Reread, Step::ReadRecord(id)),
                (Some(false), Some(_)) => match self.decide_mine() {
                    Some(mine) => self.mine = Some(mine),
                    None => return self.take_over(id),
                },
            }
        }
        if self.removed.is_none() {
            return self.ask(Pending::Remove, Step::Remove(self.grant.clone()));
        }
        if self.reach.cuts && self.cut.is_none() {
            let at = cut_for(&self.cause);
            return self.ask(Pending::Cut, Step::Cut(self.grant.clone(), at));
        }
        if self.reach.expiry && self.cause != Cause::WindowEnded && !self.unscheduled {
            return self.ask(
                Pending::Unschedule,
                Step::Unschedule(self.grant.policy_name()),
            );
        }
        if self.mine != Some(true) {
            return Next::Done(Revoked::AlreadyGone);
        }
        if let (Some(sessions), false) = (self.event().sessions, self.sessions_recorded) {
            let write = LedgerWrite::RecordSessions {
                id,
                by: self.inv.id.clone(),
                sessions,
            };
            return self.ask(Pending::Sessions, Step::Write(write));
        }
        if !self.announced {
            let event = ChangegateEvent::Revoked(self.event());
            return self.ask(Pending::Announce, Step::Announce(event));
        }
        if !self.settled {
            let write = LedgerWrite::MarkRevocationAnnounced {
                id,
                by: self.inv.id.clone(),
            };
            return self.ask(Pending::Settle, Step::Settle(write));
        }
        Next::Done(Revoked::Revoked(self.event()))
    }

    fn learn(&mut self, answer: Answer) {
        match (self.pending.take(), answer) {
            (Some(Pending::Record), Answer::Written(w)) => self.recorded = Some(w == Some(true)),
            (Some(Pending::Reread), Answer::Record(r)) => self.record = Some(r),
            (Some(Pending::TakeOver), Answer::Written(w)) => self.took_over = Some(w == Some(true)),
            (Some(Pending::Remove), Answer::Removed(r)) => self.removed = Some(r),
            (Some(Pending::Cut), Answer::Cut(c)) => self.cut = Some(c),
            (Some(Pending::Unschedule), _) => self.unscheduled = true,
            (Some(Pending::Sessions), Answer::Written(w)) => {
                self.sessions_recorded = true;
                // Taken over meanwhile (this invocation's lease ran out): the taker announces.
                if w != Some(true) {
                    self.mine = Some(false);
                }
            }
            (Some(Pending::Announce), _) => self.announced = true,
            (Some(Pending::Settle), _) => self.settled = true,
            (pending, answer) => {
                debug_assert!(false, "{pending:?} answered by {answer:?}");
            }
        }
    }
}
