//! revoke's paths, as machines over the one [`Revocation`]:
//!
//! - [`Ending`]: a request ended early (Systems Manager confirms it, or someone
//!   ends it through the end runbook). The tombstone goes first, so that no grant can start
//!   after it; then the grant, if one was made, is removed.
//! - [`Expiry`]: a grant's expiry schedule fired; its grant goes if its window ended.
//! - [`SweepItem`]: the minute sweep's look at one grant it listed: an ended
//!   window goes; an active grant goes if its record or Systems Manager says
//!   its request ended, or if its user is no longer eligible for it.
//!
//! Each reads what it removes from IAM (the grant policy itself); a record only
//! ever names a grant for removal, which grants nothing.

use crate::events::{AccessRevoked, Cause};
use crate::execution::Source;
use crate::ids::{ChangeRequestId, IamUserId, IamUserName};
use crate::policy::{Grant, policy_name};
use crate::protocol::locate::{Locate, Located};
use crate::protocol::revocation::{Reach, Revocation, Revoked};
use crate::protocol::{Answer, Invocation, Machine, Next, Step};
use crate::record::{DecisionRecord, EndedBy, LedgerWrite, State};

/// What a revoke path did.
// One value per step, moved once: boxing would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// The grant was removed: `revoked` is the revocation when this
    /// invocation recorded it, `None` when another already had.
    Removed {
        grant: Grant,
        cause: Cause,
        revoked: Option<AccessRevoked>,
    },
    /// Nothing to remove, and why.
    Nothing(String),
}

/// The one revocation, once a path has found what to remove.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Removing {
    machine: Revocation,
    cause: Cause,
}

impl Removing {
    fn new(grant: Grant, cause: Cause, inv: &Invocation, reach: Reach) -> Self {
        Self {
            machine: Revocation::new(grant, cause.clone(), inv.clone(), reach),
            cause,
        }
    }

    /// The revocation's next step, or what the path did once it is done.
    fn next(&mut self) -> Next<Ended> {
        match self.machine.next() {
            Next::Do(step) => Next::Do(step),
            Next::Done(revoked) => Next::Done(Ended::Removed {
                grant: self.machine.grant().clone(),
                cause: self.cause.clone(),
                revoked: match revoked {
                    Revoked::Revoked(r) => Some(r),
                    Revoked::AlreadyGone => None,
                },
            }),
        }
    }
}

/// The changegate grant a user's inline policy holds, or why there is none.
fn held(
    user: &IamUserName,
    id: &ChangeRequestId,
    document: Option<String>,
) -> Result<Grant, String> {
    let name = policy_name(id);
    let Some(document) = document else {
        return Err(format!("{user} holds no grant for this request"));
    };
    Grant::from_policy(user, &name, &document)
        .map_err(|why| format!("{name} on {user} is not a changegate grant ({why}); left alone"))
}

/// Why there is nothing to remove for a user IAM no longer has.
fn gone(located: &Located) -> String {
    located.gone_why().unwrap_or_default()
}

/// The grant a record names for removal, if it was granted (or being
/// granted) and its revocation is not announced yet: a revocation that an
/// earlier attempt began (the policy may be gone already) is finished from it.
fn unfinished(record: Option<&DecisionRecord>, id: &ChangeRequestId) -> Option<Grant> {
    record
        .filter(|r| matches!(r.state, Some(State::Granting | State::Granted)))
        .filter(|r| unannounced(r))
        .and_then(|r| r.grant.as_ref())
        .and_then(|d| d.to_removal(id))
}

/// Whether the record's grant was decided for a request runbook's execution
/// (not a change request, whose early end the sweep still reads).
fn from_a_runbook(record: &DecisionRecord) -> bool {
    record
        .grant
        .as_ref()
        .is_some_and(|g| g.source == Source::Automation.as_str())
}

fn unannounced(record: &DecisionRecord) -> bool {
    record.revoked.as_ref().is_none_or(|v| !v.announced)
}

/// An early end of one request, as a machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ending {
    id: ChangeRequestId,
    cause: Cause,
    inv: Invocation,
    reach: Reach,
    /// The user Systems Manager's record of the request names, if known.
    user: Option<IamUserName>,
    /// Who ends it through the end runbook, and why.
    by: Option<EndedBy>,
    at: EndingAt,
}

// One value per step, moved once: boxing would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
enum EndingAt {
    Tombstone,
    ReadRecord,
    /// The user as granted is looked for in IAM (renamed, or deleted, since?);
    /// `recorded` is the grant the record names for removal, when its
    /// revocation is not announced yet.
    Locating {
        locate: Locate,
        user_id: Option<IamUserId>,
        recorded: Option<Grant>,
    },
    /// The user's grant policy is read, under the name IAM has now.
    ReadPolicy {
        user: IamUserName,
        user_id: Option<IamUserId>,
        recorded: Option<Grant>,
    },
    /// Nothing to remove: the expiry schedule goes (it may outlive an undo).
    Unschedule(String),
    Removing(Removing),
    Done(Ended),
}

impl Ending {
    pub fn new(
        id: ChangeRequestId,
        user: Option<IamUserName>,
        cause: Cause,
        inv: Invocation,
        reach: Reach,
    ) -> Self {
        Self {
            id,
            cause,
            inv,
            reach,
            user,
            by: None,
            at: EndingAt::Tombstone,
        }
    }

    /// An end through the end runbook: who ended it and why go into the tombstone, so that
    /// the revocation's message can say so.
    pub fn ended_by(mut self, by: EndedBy) -> Self {
        self.by = Some(by);
        self
    }

    fn after_record(&self, record: Option<DecisionRecord>) -> EndingAt {
        // The record names the grant for removal only (removing grants nothing).
        let recorded = record
            .as_ref()
            .filter(|r| matches!(r.state, Some(State::Granting | State::Granted)))
            .and_then(|r| r.grant.as_ref())
            .and_then(|d| d.to_removal(&self.id));
        let Some(user) = self
            .user
            .clone()
            .or_else(|| recorded.as_ref().map(|g| g.user.clone()))
        else {
            return EndingAt::Done(Ended::Nothing(
                "no grant was decided for this request; it is closed to grants".to_owned(),
            ));
        };
        // The user as granted, found by IAM's unique id if renamed since.
        let user_id = recorded
            .as_ref()
            .filter(|g| g.session_name.same_name(&user))
            .and_then(|g| g.user_id.clone());
        EndingAt::Locating {
            locate: Locate::new(user, user_id.clone()),
            user_id,
            recorded: unfinished(record.as_ref(), &self.id),
        }
    }
}

impl Machine for Ending {
    type Outcome = Ended;

    fn next(&mut self) -> Next<Ended> {
        match &mut self.at {
            EndingAt::Tombstone => Next::Do(Step::Write(LedgerWrite::End {
                id: self.id.clone(),
                cause: self.cause.clone(),
                at: self.inv.now,
                by: self.by.clone(),
            })),
            EndingAt::ReadRecord => Next::Do(Step::ReadRecord(self.id.clone())),
            EndingAt::Locating {
                locate,
                user_id,
                recorded,
            } => match locate.next() {
                Next::Do(step) => Next::Do(step),
                Next::Done(located) => {
                    let (user_id, recorded) = (user_id.clone(), recorded.take());
                    self.at = match located.name() {
                        Some(holder) => EndingAt::ReadPolicy {
                            user: holder.clone(),
                            user_id,
                            recorded: recorded.map(|g| Grant {
                                user: holder.clone(),
                                ..g
                            }),
                        },
                        None => match recorded {
                            Some(grant) => EndingAt::Removing(Removing::new(
                                grant,
                                self.cause.clone(),
                                &self.inv,
                                self.reach,
                            )),
                            None => EndingAt::Unschedule(gone(&located)),
                        },
                    };
                    self.next()
                }
            },
            EndingAt::ReadPolicy { user, .. } => Next::Do(Step::ReadPolicy {
                user: user.clone(),
                policy: policy_name(&self.id),
            }),
            EndingAt::Unschedule(_) => Next::Do(Step::Unschedule(policy_name(&self.id))),
            EndingAt::Removing(r) => r.next(),
            EndingAt::Done(ended) => Next::Done(ended.clone()),
        }
    }

    fn learn(&mut self, answer: Answer) {
        let at = std::mem::replace(&mut self.at, EndingAt::Tombstone);
        self.at = match (at, answer) {
            (EndingAt::Tombstone, Answer::Written(_)) => EndingAt::ReadRecord,
            (EndingAt::ReadRecord, Answer::Record(record)) => self.after_record(record),
            (
                EndingAt::Locating {
                    mut locate,
                    user_id,
                    recorded,
                },
                answer,
            ) => {
                locate.learn(answer);
                EndingAt::Locating {
                    locate,
                    user_id,
                    recorded,
                }
            }
            (
                EndingAt::ReadPolicy {
                    user,
                    user_id,
                    recorded,
                },
                Answer::Policy(document),
            ) => {
                match (held(&user, &self.id, document), recorded) {
                    (Ok(grant), _) => EndingAt::Removing(Removing::new(
                        Grant { user_id, ..grant },
                        self.cause.clone(),
                        &self.inv,
                        self.reach,
                    )),
                    // Removed by an earlier attempt that then failed (the
                    // production account out of reach): finish it, cut and announce.
                    (Err(_), Some(grant)) => EndingAt::Removing(Removing::new(
                        grant,
                        self.cause.clone(),
                        &self.inv,
                        self.reach,
                    )),
                    (Err(none), None) => EndingAt::Unschedule(none),
                }
            }
            (EndingAt::Unschedule(none), _) => EndingAt::Done(Ended::Nothing(none)),
            (EndingAt::Removing(mut r), answer) => {
                r.machine.learn(answer);
                EndingAt::Removing(r)
            }
            (at, answer) => {
                debug_assert!(false, "{at:?} answered by {answer:?}");
                at
            }
        };
    }
}

/// A grant's expiry schedule fired, as a machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiry {
    id: ChangeRequestId,
    /// The user as granted, and IAM's unique id of them when recorded.
    user: IamUserName,
    user_id: Option<IamUserId>,
    /// The name IAM has for the user now, once located.
    holder: Option<IamUserName>,
    inv: Invocation,
    reach: Reach,
    at: ExpiryAt,
}

// One value per step, moved once: boxing would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
enum ExpiryAt {
    Locating(Locate),
    ReadPolicy,
    /// The policy is gone: a revocation an earlier attempt began is finished.
    ReadRecord(String),
    Removing(Removing),
    Done(Ended),
}

impl Expiry {
    pub fn new(
        id: ChangeRequestId,
        user: IamUserName,
        user_id: Option<IamUserId>,
        inv: Invocation,
        reach: Reach,
    ) -> Self {
        Self {
            id,
            at: ExpiryAt::Locating(Locate::new(user.clone(), user_id.clone())),
            user,
            user_id,
            holder: None,
            inv,
            reach,
        }
    }
}

impl Machine for Expiry {
    type Outcome = Ended;

    fn next(&mut self) -> Next<Ended> {
        match &mut self.at {
            ExpiryAt::Locating(locate) => match locate.next() {
                Next::Do(step) => Next::Do(step),
                Next::Done(located) => {
                    self.at = match located.name() {
                        Some(holder) => {
                            self.holder = Some(holder.clone());
                            ExpiryAt::ReadPolicy
                        }
                        None => ExpiryAt::Done(Ended::Nothing(gone(&located))),
                    };
                    self.next()
                }
            },
            ExpiryAt::ReadPolicy => Next::Do(Step::ReadPolicy {
                user: self.holder.clone().unwrap_or_else(|| self.user.clone()),
                policy: policy_name(&self.id),
            }),
            ExpiryAt::ReadRecord(_) => Next::Do(Step::ReadRecord(self.id.clone())),
            ExpiryAt::Removing(r) => r.next(),
            ExpiryAt::Done(ended) => Next::Done(ended.clone()),
        }
    }

    fn learn(&mut self, answer: Answer) {
        let at = std::mem::replace(&mut self.at, ExpiryAt::ReadPolicy);
        let holder = self.holder.clone().unwrap_or_else(|| self.user.clone());
        self.at = match (at, answer) {
            (ExpiryAt::Locating(mut locate), answer) => {
                locate.learn(answer);
                ExpiryAt::Locating(locate)
            }
            (ExpiryAt::ReadPolicy, Answer::Policy(document)) => {
                match held(&holder, &self.id, document).map(|g| Grant {
                    user_id: self.user_id.clone(),
                    ..g
                }) {
                    Err(none) => ExpiryAt::ReadRecord(none),
                    Ok(grant) if !grant.window.has_ended(self.inv.now) => {
                        ExpiryAt::Done(Ended::Nothing(format!(
                            "the window ends at {}; the sweep removes it then",
                            grant.window.end_utc()
                        )))
                    }
                    Ok(grant) => ExpiryAt::Removing(Removing::new(
                        grant,
                        Cause::WindowEnded,
                        &self.inv,
                        self.reach,
                    )),
                }
            }
            (ExpiryAt::ReadRecord(none), Answer::Record(record)) => {
                match unfinished(record.as_ref(), &self.id)
                    .filter(|g| {
                        g.session_name.same_name(&self.user) && g.window.has_ended(self.inv.now)
                    })
                    .map(|g| Grant {
                        user: holder.clone(),
                        ..g
                    }) {
                    Some(grant) => ExpiryAt::Removing(Removing::new(
                        grant,
                        Cause::WindowEnded,
                        &self.inv,
                        self.reach,
                    )),
                    None => ExpiryAt::Done(Ended::Nothing(none)),
                }
            }
            (ExpiryAt::Removing(mut r), answer) => {
                r.machine.learn(answer);
                ExpiryAt::Removing(r)
            }
            (at, answer) => {
                debug_assert!(false, "{at:?} answered by {answer:?}");
                at
            }
        };
    }
}

/// The sweep's look at one grant it listed, as a machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepItem {
    grant: Grant,
    inv: Invocation,
    reach: Reach,
    at: SweepAt,
}

// One value per step, moved once: boxing would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
enum SweepAt {
    ReadRecord,
    ReadRequest,
    Tombstone(Cause),
    Removing(Removing),
    Done(Ended),
}

impl SweepItem {
    pub fn new(grant: Grant, inv: Invocation, reach: Reach) -> Self {
        let at = if grant.window.has_ended(inv.now) {
            SweepAt::Removing(Removing::new(
                grant.clone(),
                Cause::WindowEnded,
                &inv,
                reach,
            ))
        } else {
            SweepAt::ReadRecord
        };
        Self {
            grant,
            inv,
            reach,
            at,
        }
    }

    /// An active grant whose user is no longer eligible for it (the sweep
    /// found the eligibility tag or the allowlist changed): the request is
    /// ended, as for an early end, so that no retry can grant it again, and
    /// the grant goes now.
    pub fn lost(grant: Grant, inv: Invocation, reach: Reach) -> Self {
        Self {
            grant,
            inv,
            reach,
            at: SweepAt::Tombstone(Cause::NoLongerEligible),
        }
    }

    /// A revocation the table lists as unannounced, to finish when it is this
    /// invocation's own (a retry of the sweep that recorded it) or its
    /// recorder's lease ran out; `None` otherwise.
    pub fn resume(record: &DecisionRecord, inv: Invocation, reach: Reach) -> Option<Self> {
        let revoked = record.revoked.as_ref()?;
        let ours = revoked.by.as_deref() == Some(inv.id.as_str());
        if revoked.announced || !(ours || revoked.orphaned(inv.now)) {
            return None;
        }
        let grant = record.grant.as_ref()?.to_removal(&record.id)?;
        let at = SweepAt::Removing(Removing::new(
            grant.clone(),
            revoked.cause.clone(),
            &inv,
            reach,
        ));
        Some(Self {
            grant,
            inv,
            reach,
            at,
        })
    }

    /// Whether the sweep is still checking whether this active grant is due:
    /// a fault then is a deferred check, not a failed revocation.
    pub fn checking(&self) -> bool {
        matches!(self.at, SweepAt::ReadRecord | SweepAt::ReadRequest)
    }
}

impl Machine for SweepItem {
    type Outcome = Ended;

    fn next(&mut self) -> Next<Ended> {
        let id = self.grant.change_request.clone();
        match &mut self.at {
            SweepAt::ReadRecord => Next::Do(Step::ReadRecord(id)),
            SweepAt::ReadRequest => Next::Do(Step::ReadRequest(id)),
            SweepAt::Tombstone(cause) => Next::Do(Step::Write(LedgerWrite::End {
                id,
                cause: cause.clone(),
                at: self.inv.now,
                by: None,
            })),
            SweepAt::Removing(r) => r.next(),
            SweepAt::Done(ended) => Next::Done(ended.clone()),
        }
    }

    fn learn(&mut self, answer: Answer) {
        let at = std::mem::replace(&mut self.at, SweepAt::ReadRecord);
        self.at = match (at, answer) {
            (SweepAt::ReadRecord, Answer::Record(record)) => {
                match record.as_ref().and_then(DecisionRecord::end_cause) {
                    Some(cause) => SweepAt::Tombstone(cause),
                    // A request runbook's execution finishes once grant has
                    // decided, and an early end of it is an end runbook's own
                    // action, which reaches revoke directly: Systems Manager's
                    // record has nothing more to say, so it is not read (one
                    // call per active grant a minute, not two). A record
                    // claiming this falsely only spares the sweep a look; the
                    // window's end still removes the grant.
                    None if record.as_ref().is_some_and(from_a_runbook) => {
                        SweepAt::Done(Ended::Nothing("its request is still open".to_owned()))
                    }
                    None => SweepAt::ReadRequest,
                }
            }
            (SweepAt::ReadRequest, Answer::Request(exec)) => {
                match exec.filter(|e| e.status.ends_access()) {
                    Some(e) => SweepAt::Tombstone(Cause::EndedEarly(e.status)),
                    None => SweepAt::Done(Ended::Nothing("its request is still open".to_owned())),
                }
            }
            (SweepAt::Tombstone(cause), Answer::Written(_)) => SweepAt::Removing(Removing::new(
                self.grant.clone(),
                cause,
                &self.inv,
                self.reach,
            )),
            (SweepAt::Removing(mut r), answer) => {
                r.machine.learn(answer);
                SweepAt::Removing(r)
            }
            (at, answer) => {
                debug_assert!(false, "{at:?} answered by {answer:?}");
                at
            }
        };
    }
}
