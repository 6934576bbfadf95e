//! Granting, as a machine: on any sign that a request was approved, decide it
//! exactly once.
//!
//! 1. Read Systems Manager's record of the request and check it (every
//!    invocation, first: the decision record is never evidence).
//! 2. Read the decision record, and IAM's record of the user; decide.
//! 3. Nothing decided yet: claim it (first writer wins), naming this
//!    invocation and its lease. A live claim of another invocation is left
//!    alone; an expired one is taken over (its holder cannot be running) and
//!    re-decided from scratch. A record that disagrees with Systems Manager
//!    (other user, account, role or window) is refused and nothing is written.
//! 4. Holding the claim: write the session cut (effective at the window's
//!    end), attach, re-read Systems Manager (a cancel may have raced the
//!    attach: then undo), schedule the expiry, mark granted (only the holder,
//!    and never after an end: else undo), announce, record the announcement.
//! 5. Refusals are recorded first (first writer wins) and announced by their
//!    writer; an approval that comes after an early end is refused, and said so.
//!
//! Only the holder of a record announces its decision, so each decision is
//! announced once whatever runs at the same time; a fault before the
//! announcement is retried by Lambda (the same request id, so the same
//! holder), and a fault after it is not retried (see [`Step::Settle`]).

use serde::Serialize;
use tracing::{error, info};

use crate::admission::{OpenRun, admit};
use crate::check::{Checked, Checking, UserRecord, Verdict, check_request, decide};
use crate::config::GrantConfig;
use crate::events::{Cause, ChangegateEvent};
use crate::execution::{Execution, Origin};
use crate::expiry::wants_expiry_schedule;
use crate::ids::{ChangeRequestId, Home, IamUserName, UserArn};
use crate::policy::Grant;
use crate::ports::{CutAt, Put};
use crate::protocol::revocation::{Reach, Revocation};
use crate::protocol::{Answer, Invocation, Machine, Next, Step};
use crate::record::{DecisionRecord, LedgerWrite, State};
use crate::refusal::Refusal;
use crate::status::Status;
use crate::text::shown;

/// What one invocation did; returned to Lambda as the invocation's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum GrantOutcome {
    Granted {
        change_request_id: String,
        user: String,
        policy_name: String,
    },
    /// The decision was made earlier, by this invocation's earlier attempt, but not announced: announced now.
    Announced {
        change_request_id: String,
        decision: String,
    },
    Refused {
        change_request_id: String,
        reason_code: String,
        reason: String,
    },
    /// Decided earlier (or being decided by its holder); nothing to do.
    AlreadyDecided {
        change_request_id: String,
        decision: String,
    },
    /// Another invocation holds a live claim on the request: left alone.
    InProgress {
        change_request_id: String,
        holder: String,
    },
    /// The request ended while it was being granted: the grant was undone.
    Undone {
        change_request_id: String,
        cause: String,
    },
    /// Not approved yet and not ended: a later event brings it back.
    Waiting {
        change_request_id: String,
        why: String,
    },
    Ignored {
        reason: String,
    },
}

/// The requester's user name, from the ARN a record or Systems Manager holds.
fn user_of(arn: Option<&str>) -> Option<IamUserName> {
    arn.and_then(UserArn::parse).map(|a| a.user)
}

/// Where the holder is, between its steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Holding {
    cut: bool,
    attached: Option<Put>,
    reconfirmed: bool,
    scheduled: bool,
    marked: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Pending {
    Request,
    OpenRuns,
    Stop,
    Record,
    User,
    Claim,
    Cut,
    Attach,
    Reconfirm,
    Schedule,
    Mark,
    Announce,
    Settle,
    Refuse,
}

/// What this invocation is doing with the request.
// One value per step, moved once: boxing would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
enum Course {
    /// Reading and deciding.
    Deciding,
    /// Holding the claim on this grant.
    Holding(Grant, Holding),
    /// Refusing: the record is written (or needs none), the announcement follows.
    Refusing {
        refusal: Refusal,
        written: bool,
    },
    /// Announcing its own decision (the record says it is this invocation's).
    Announcing {
        event: ChangegateEvent,
        outcome: GrantOutcome,
    },
    /// Undoing a grant whose request ended meanwhile.
    Undoing {
        cause: Cause,
        ended: bool,
        revocation: Revocation,
    },
    Finished(GrantOutcome),
}

/// One grant invocation on one request.
#[derive(Clone, PartialEq, Eq)]
pub struct GrantRun<'a> {
    id: ChangeRequestId,
    inv: Invocation,
    config: &'a GrantConfig,
    home: &'a Home,
    exec: Option<Option<Execution>>,
    record: Option<Option<DecisionRecord>>,
    user: Option<Option<UserRecord>>,
    checked: Option<Box<Checked>>,
    /// The account's open executions of the request runbook (admission).
    open: Option<Vec<OpenRun>>,
    /// Whether this invocation stopped the request's execution.
    stopped: bool,
    course: Course,
    announced: bool,
    pending: Option<Pending>,
}

/// Admission's answer for this request (see [`crate::admission`]).
enum Admission {
    /// Admitted, or admission does not apply (a change request).
    Admitted,
    /// The open executions of this document are to be read first.
    Read(String),
    Refused(Refusal),
}

impl<'a> GrantRun<'a> {
    pub fn new(
        id: ChangeRequestId,
        inv: Invocation,
        config: &'a GrantConfig,
        home: &'a Home,
    ) -> Self {
        Self {
            id,
            inv,
            config,
            home,
            exec: None,
            record: None,
            user: None,
            checked: None,
            open: None,
            stopped: false,
            course: Course::Deciding,
            announced: false,
            pending: None,
        }
    }

    fn reach(&self) -> Reach {
        Reach {
            cuts: self.config.session_cutter.is_some(),
            expiry: self.config.expiry.is_some(),
        }
    }

    fn ask(&mut self, pending: Pending, step: Step) -> Next<GrantOutcome> {
        self.pending = Some(pending);
        Next::Do(step)
    }

    fn done(&mut self, outcome: GrantOutcome) -> Next<GrantOutcome> {
        self.course = Course::Finished(outcome.clone());
        Next::Done(outcome)
    }

    fn decided(&mut self, decision: &str) -> Next<GrantOutcome> {
        info!(change_request_id = %self.id, decision, outcome = "already-decided", "decided earlier; nothing to do");
        self.done(GrantOutcome::AlreadyDecided {
            change_request_id: self.id.to_string(),
            decision: decision.to_owned(),
        })
    }

    fn requester(&self) -> Option<String> {
        match &self.checked {
            Some(c) => Some(c.requester.to_string()),
            None => self
                .exec
                .as_ref()
                .and_then(|e| e.as_ref())
                .and_then(|e| e.executed_by.clone()),
        }
    }

    fn refused_event(&self, refusal: &Refusal) -> ChangegateEvent {
        let requester = self.requester();
        ChangegateEvent::refused(
            &self.id,
            user_of(requester.as_deref()),
            requester.as_deref().map(shown),
            refusal,
        )
    }

    fn refused_outcome(&self, refusal: &Refusal) -> GrantOutcome {
        GrantOutcome::Refused {
            change_request_id: self.id.to_string(),
            reason_code: refusal.code().to_owned(),
            reason: refusal.to_string(),
        }
    }

    /// The announcement of `grant`, from this invocation's checks of the request.
    fn granted_event(&self, grant: &Grant) -> ChangegateEvent {
        let checked = self.checked.as_deref();
        self.grant_announcement(
            grant,
            checked.map(|c| c.requester.user.clone()),
            checked.map(|c| c.approvers.clone()).unwrap_or_default(),
            checked.map(|c| c.source.as_str()).unwrap_or_default(),
            checked.and_then(|c| c.request.reason.clone()),
        )
    }

    /// The announcement of a grant as its record decided it.
    fn recorded_grant_event(&self, r: &DecisionRecord, grant: &Grant) -> ChangegateEvent {
        let decided = r.grant.as_ref();
        self.grant_announcement(
            grant,
            user_of(r.requester.as_deref()),
            decided.map(|d| d.approvers.clone()).unwrap_or_default(),
            decided.map(|d| d.source.as_str()).unwrap_or_default(),
            decided.and_then(|d| d.request_reason.clone()),
        )
    }

    fn grant_announcement(
        &self,
        grant: &Grant,
        requester: Option<IamUserName>,
        approvers: Vec<String>,
        source: &str,
        reason: Option<String>,
    ) -> ChangegateEvent {
        let requester = requester.unwrap_or_else(|| grant.user.clone());
        let mut event = ChangegateEvent::granted(grant, &requester, &approvers, source, reason);
        if let ChangegateEvent::Granted(g) = &mut event {
            g.sessions_cut = self.config.session_cutter.is_some();
        }
        event
    }

    /// The refused record this invocation would write.
    fn refused_record(&self, refusal: &Refusal) -> DecisionRecord {
        DecisionRecord::refused(
            &self.id,
            refusal,
            self.requester(),
            &self.inv.holder(),
            self.inv.now,
        )
    }

    /// The claim's holder refuses instead (the user vanished, or IAM or the
    /// checks now say no): the refusal replaces its claim, then is announced.
    fn refuse_held(&mut self, refusal: Refusal) -> Next<GrantOutcome> {
        let write = LedgerWrite::Refuse {
            record: self.refused_record(&refusal),
            holder: self.inv.id.clone(),
        };
        self.course = Course::Refusing {
            refusal,
            written: false,
        };
        self.ask(Pending::Refuse, Step::Write(write))
    }

    /// A refusal from Systems Manager's record alone: refused unless the
    /// decision record (read first) holds a decision already, which is
    /// followed instead.
    fn refuse_unless_recorded(&mut self, refusal: Refusal) -> Next<GrantOutcome> {
        let Some(record) = &self.record else {
            return self.ask(Pending::Record, Step::ReadRecord(self.id.clone()));
        };
        match record.clone() {
            Some(r) => self.follow(r, None),
            None => self.refuse(refusal),
        }
    }

    /// Starts refusing: a final refusal is recorded first (first writer wins).
    fn refuse(&mut self, refusal: Refusal) -> Next<GrantOutcome> {
        info!(change_request_id = %self.id, reason_code = refusal.code(), reason = %refusal, outcome = "refused", "grant decision");
        let final_ = refusal.is_final();
        self.course = Course::Refusing {
            refusal,
            written: !final_,
        };
        self.next()
    }

    /// The decision from what this invocation read: the grant, or why not.
    fn decision(&self, checked: &Checked) -> Result<Grant, Refusal> {
        let user = match self.user.as_ref().and_then(|u| u.as_ref()) {
            Some(user) => user,
            None => {
                return Err(Refusal::UserNotFound {
                    user: checked.request.user.to_string(),
                });
            }
        };
        match decide(checked, user, self.config)? {
            Verdict::Grant(g) => Ok(g),
            // Already on the user (an earlier attempt attached it): it must be
            // the grant Systems Manager's request asks for, else it is no evidence.
            Verdict::AlreadyGranted(g) => {
                let r = &checked.request;
                if g.account == r.account && g.window == r.window && g.user.same_name(&r.user) {
                    Ok(g)
                } else {
                    Err(Refusal::RecordDisagrees {
                        recorded: describe(&g),
                        requested: format!(
                            "{} on {} from {} to {}",
                            r.user,
                            r.account,
                            crate::window::utc_string(r.window.start_utc()),
                            crate::window::utc_string(r.window.end_utc())
                        ),
                    })
                }
            }
        }
    }

    fn next_holding(&mut self, grant: Grant, h: Holding) -> Next<GrantOutcome> {
        if self.config.session_cutter.is_some() && !h.cut {
            return self.ask(Pending::Cut, Step::Cut(grant, CutAt::WindowEnd));
        }
        match h.attached {
            // An earlier attempt attached it, as IAM's record that this
            // invocation read shows: it is not written again.
            None if self.on_user(&grant) => {
                self.holding(|h| h.attached = Some(Put::Done));
                return self.next();
            }
            None => {
                info!(change_request_id = %self.id, user = %grant.user, account = %grant.account, role = %grant.role, policy = %grant.policy_name(), outcome = "attaching", "attaching grant");
                return self.ask(Pending::Attach, Step::Attach(grant));
            }
            Some(Put::NoSuchUser) => {
                let refusal = Refusal::UserNotFound {
                    user: grant.user.to_string(),
                };
                return self.refuse_held(refusal);
            }
            Some(Put::Done) => {}
        }
        if !h.reconfirmed {
            return self.ask(Pending::Reconfirm, Step::ReadRequest(self.id.clone()));
        }
        if let Some(status) = self
            .exec
            .as_ref()
            .and_then(|e| e.as_ref())
            .map(|e| e.status.clone())
            .filter(|s| s.ends_access())
        {
            return self.undo(grant, Cause::EndedEarly(status));
        }
        if self.config.expiry.is_some()
            && !h.scheduled
            && wants_expiry_schedule(grant.window.end_utc(), self.inv.now)
        {
            return self.ask(Pending::Schedule, Step::Schedule(grant));
        }
        match h.marked {
            None => {
                let write = LedgerWrite::MarkGranted {
                    id: self.id.clone(),
                    holder: self.inv.id.clone(),
                    at: self.inv.now,
                };
                self.ask(Pending::Mark, Step::Write(write))
            }
            // Ended meanwhile, or taken over: the record says which (see learn).
            Some(false) => self.next_deciding(),
            Some(true) => {
                let event = self.granted_event(&grant);
                let outcome = GrantOutcome::Granted {
                    change_request_id: self.id.to_string(),
                    user: grant.user.to_string(),
                    policy_name: grant.policy_name(),
                };
                self.course = Course::Announcing { event, outcome };
                self.next()
            }
        }
    }

    fn undo(&mut self, grant: Grant, cause: Cause) -> Next<GrantOutcome> {
        info!(change_request_id = %self.id, cause = cause.as_str(), outcome = "undone", "the request ended while being granted");
        let revocation = Revocation::new(grant, cause.clone(), self.inv.clone(), self.reach());
        self.course = Course::Undoing {
            cause,
            ended: false,
            revocation,
        };
        self.next()
    }

    /// Deciding: what to do once Systems Manager, the record and IAM are read.
    fn next_deciding(&mut self) -> Next<GrantOutcome> {
        let Some(exec) = &self.exec else {
            return self.ask(Pending::Request, Step::ReadRequest(self.id.clone()));
        };
        let checked = match check_request(
            &self.id,
            exec.as_ref(),
            self.config,
            self.home,
            self.inv.now,
        ) {
            Ok(Checking::Checked(c)) => c,
            Ok(Checking::Waiting(why)) => {
                match self.admission() {
                    Admission::Admitted => {}
                    Admission::Read(document) => return self.read_open_runs(document),
                    // Refused while it waits for approval, so that it does not
                    // hold one of the account's executions until then.
                    Admission::Refused(refusal) => return self.refuse_unless_recorded(refusal),
                }
                info!(change_request_id = %self.id, outcome = "waiting", why = %why, "not approved yet");
                return self.done(GrantOutcome::Waiting {
                    change_request_id: self.id.to_string(),
                    why,
                });
            }
            Err(refusal) => return self.refuse_unless_recorded(refusal),
        };
        self.checked = Some(checked.clone());
        let Some(record) = self.record.clone() else {
            return self.ask(Pending::Record, Step::ReadRecord(self.id.clone()));
        };
        if self.user.is_none() {
            return self.ask(Pending::User, Step::ReadUser(checked.request.user.clone()));
        }
        let decision = self.decision(&checked);
        match record {
            Some(r) => self.follow(r, Some(decision)),
            None => match decision {
                Ok(grant) => {
                    match self.admission() {
                        Admission::Admitted => {}
                        Admission::Read(document) => return self.read_open_runs(document),
                        Admission::Refused(refusal) => return self.refuse(refusal),
                    }
                    info!(change_request_id = %self.id, requester = %checked.requester, approvers = %checked.approvers.join(" "), user = %grant.user, account = %grant.account, role = %grant.role, outcome = "claiming", "grant decision");
                    let claim = DecisionRecord::granting(
                        &checked,
                        &grant,
                        &self.inv.holder(),
                        self.inv.now,
                    );
                    self.course = Course::Holding(grant, Holding::default());
                    self.ask(Pending::Claim, Step::Write(LedgerWrite::Create(claim)))
                }
                Err(refusal) => self.refuse(refusal),
            },
        }
    }

    /// A record exists: follow it, or leave it to its holder. `decision` is
    /// this invocation's own (`None` when Systems Manager's record refused).
    fn follow(
        &mut self,
        r: DecisionRecord,
        decision: Option<Result<Grant, Refusal>>,
    ) -> Next<GrantOutcome> {
        let mine = r.owner() == Some(self.inv.id.as_str());
        // Refused, and its runbook execution still running: whoever sees it
        // stops it (the refuser's retry, or anyone after a fault between the two).
        if r.state == Some(State::Refused) {
            if let Some(next) = self.stop_if_open() {
                return next;
            }
        }
        if let Some(cause) = r.end_cause() {
            let resumes = r
                .revoked
                .as_ref()
                .is_some_and(|v| !v.announced && v.by.as_deref() == Some(self.inv.id.as_str()));
            return match (r.state, decision) {
                // Ended before anything was decided, approved after: refused, and said so.
                (None, Some(_)) => {
                    let refusal = Refusal::EndedBeforeGrant {
                        cause: cause.describe(),
                    };
                    let record = self.refused_record(&refusal);
                    self.course = Course::Refusing {
                        refusal,
                        written: false,
                    };
                    self.ask(
                        Pending::Refuse,
                        Step::Write(LedgerWrite::RefuseEnded { record }),
                    )
                }
                // A claim raced the end: its grant must not stay (the revocation
                // that ended it removes it too). The holder undoes it; another
                // invocation only if IAM shows the policy on the user.
                // (The holder removes even after another invocation recorded
                // the revocation: its own attach may have come after that removal.)
                // A retry of the invocation that recorded the revocation and
                // stopped before announcing it carries on with it.
                (Some(State::Granting | State::Granted), decision)
                    if mine || resumes || r.revoked.is_none() =>
                {
                    let grant = match decision {
                        Some(Ok(grant)) => Some(grant),
                        _ => r.grant.as_ref().and_then(|d| d.to_removal(&self.id)),
                    };
                    match grant {
                        Some(grant) if mine || resumes || self.holds(&grant) => {
                            self.undo(grant, cause)
                        }
                        Some(grant) if self.user.is_none() => {
                            self.ask(Pending::User, Step::ReadUser(grant.user))
                        }
                        _ => self.decided(&format!("ended ({})", cause.as_str())),
                    }
                }
                (Some(State::Refused), _) if mine && !r.announced => self.announce_record(&r),
                _ => self.decided(&format!("ended ({})", cause.as_str())),
            };
        }
        match r.state {
            None => self.decided("none"),
            Some(State::Refused) if mine && !r.announced => self.announce_record(&r),
            Some(State::Refused) => self.decided(State::Refused.as_str()),
            // This invocation's earlier attempt granted and stopped before
            // announcing: the decision it recorded is announced now.
            Some(State::Granted) if mine && !r.announced => {
                let grant = match decision {
                    Some(Ok(grant)) if r.grant.as_ref().is_some_and(|d| d.is(&grant)) => {
                        Some(grant)
                    }
                    _ => r.grant.as_ref().and_then(|d| d.to_removal(&self.id)),
                };
                let Some(grant) = grant else {
                    return self.decided(State::Granted.as_str());
                };
                let event = self.recorded_grant_event(&r, &grant);
                self.course = Course::Announcing {
                    event,
                    outcome: GrantOutcome::Announced {
                        change_request_id: self.id.to_string(),
                        decision: State::Granted.as_str().to_owned(),
                    },
                };
                self.next()
            }
            Some(State::Granted) => self.decided(State::Granted.as_str()),
            Some(State::Granting) => {
                let grant = match decision {
                    Some(Ok(grant)) => grant,
                    Some(Err(refusal)) if mine => {
                        // Holding the claim, and IAM or the checks now say no.
                        return self.refuse_held(refusal);
                    }
                    // Systems Manager says the request ended, and this invocation holds
                    // the claim (its earlier attempt may have attached): undo.
                    None if mine => {
                        let ended = self
                            .exec
                            .as_ref()
                            .and_then(|e| e.as_ref())
                            .map(|e| e.status.clone())
                            .filter(|s| s.ends_access());
                        let grant = r.grant.as_ref().and_then(|d| d.to_removal(&self.id));
                        return match (ended, grant) {
                            (Some(status), Some(grant)) => {
                                self.undo(grant, Cause::EndedEarly(status))
                            }
                            _ => self.leave_or_take(&r, None),
                        };
                    }
                    _ => return self.leave_or_take(&r, None),
                };
                if !r.grant.as_ref().is_some_and(|d| d.is(&grant)) {
                    let refusal = Refusal::RecordDisagrees {
                        recorded: r
                            .grant
                            .as_ref()
                            .map(describe_decided)
                            .unwrap_or_else(|| "nothing".to_owned()),
                        requested: describe(&grant),
                    };
                    error!(change_request_id = %self.id, recorded = ?r.grant, requested = %describe(&grant), outcome = "refused", reason_code = refusal.code(), "the decision record disagrees with Systems Manager; nothing is granted");
                    return self.done(self.refused_outcome(&refusal));
                }
                if mine {
                    self.course = Course::Holding(grant, Holding::default());
                    let holder = self.inv.holder();
                    return match r.holder {
                        // A retry of the holder (Lambda keeps the request id): its lease is renewed.
                        Some(from) if from != holder => {
                            let write = LedgerWrite::TakeOver {
                                id: self.id.clone(),
                                from,
                                to: holder,
                            };
                            self.ask(Pending::Claim, Step::Write(write))
                        }
                        _ => self.next(),
                    };
                }
                self.leave_or_take(&r, Some(grant))
            }
        }
    }

    /// Another invocation's claim: left alone while its lease runs, taken over after.
    fn leave_or_take(&mut self, r: &DecisionRecord, grant: Option<Grant>) -> Next<GrantOutcome> {
        let holder = r.holder.clone();
        match (holder, grant) {
            (Some(h), Some(grant)) if !h.is_live(self.inv.now) => {
                info!(change_request_id = %self.id, holder = %h.owner, outcome = "taking-over", "the claim's lease ran out; taking it over");
                self.course = Course::Holding(grant, Holding::default());
                let write = LedgerWrite::TakeOver {
                    id: self.id.clone(),
                    from: h,
                    to: self.inv.holder(),
                };
                self.ask(Pending::Claim, Step::Write(write))
            }
            (Some(h), _) => {
                info!(change_request_id = %self.id, holder = %h.owner, outcome = "in-progress", "another invocation holds the claim; left to it");
                self.done(GrantOutcome::InProgress {
                    change_request_id: self.id.to_string(),
                    holder: h.owner,
                })
            }
            (None, _) => self.decided("granting"),
        }
    }

    /// Announces a refusal this invocation recorded earlier (its retry).
    fn announce_record(&mut self, r: &DecisionRecord) -> Next<GrantOutcome> {
        let refusal_code = r.reason_code.clone().unwrap_or_default();
        let event = ChangegateEvent::Refused(crate::events::AccessRefused {
            change_request_id: self.id.clone(),
            user: user_of(r.requester.as_deref()),
            requester_arn: r.requester.as_deref().map(shown),
            reason_code: refusal_code,
            reason: r.reason.clone().unwrap_or_default(),
        });
        self.course = Course::Announcing {
            event,
            outcome: GrantOutcome::Announced {
                change_request_id: self.id.to_string(),
                decision: State::Refused.as_str().to_owned(),
            },
        };
        self.next()
    }
}

/// Everything but the settings (which every invocation shares). Every field
/// a step can change must be here: the interleavings explorer tells states
/// apart by this text, and a missing one makes it skip states it has not seen.
impl std::fmt::Debug for GrantRun<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrantRun")
            .field("inv", &self.inv)
            .field("exec", &self.exec)
            .field("record", &self.record)
            .field("user", &self.user)
            .field("open", &self.open)
            .field("stopped", &self.stopped)
            .field("course", &self.course)
            .field("announced", &self.announced)
            .field("pending", &self.pending)
            .finish()
    }
}

fn describe(g: &Grant) -> String {
    format!(
        "{} on {}/{} from {} to {}",
        g.user,
        g.account,
        g.role,
        crate::window::utc_string(g.window.start_utc()),
        crate::window::utc_string(g.window.end_utc())
    )
}

fn describe_decided(d: &crate::record::Decided) -> String {
    format!(
        "{} on {}/{} from {} to {}",
        d.beneficiary, d.account, d.role, d.window.start, d.window.end
    )
}

impl Machine for GrantRun<'_> {
    type Outcome = GrantOutcome;

    fn next(&mut self) -> Next<GrantOutcome> {
        match self.course.clone() {
            Course::Deciding => self.next_deciding(),
            Course::Holding(grant, h) => self.next_holding(grant, h),
            Course::Refusing { refusal, written } => {
                if !written {
                    let record = self.refused_record(&refusal);
                    return self.ask(Pending::Refuse, Step::Write(LedgerWrite::Create(record)));
                }
                if refusal.is_final() {
                    if let Some(next) = self.stop_if_open() {
                        self.course = Course::Refusing { refusal, written };
                        return next;
                    }
                }
                let event = self.refused_event(&refusal);
                let outcome = self.refused_outcome(&refusal);
                if !refusal.is_final() {
                    // Not recorded (it may change): announced on each look.
                    if self.announced {
                        return self.done(outcome);
                    }
                    return self.ask(Pending::Announce, Step::Announce(event));
                }
                self.course = Course::Announcing { event, outcome };
                self.next()
            }
            Course::Announcing { event, outcome } => {
                if !self.announced {
                    return self.ask(Pending::Announce, Step::Announce(event));
                }
                let write = LedgerWrite::MarkAnnounced {
                    id: self.id.clone(),
                    holder: self.inv.id.clone(),
                };
                self.course = Course::Finished(outcome);
                self.ask(Pending::Settle, Step::Settle(write))
            }
            Course::Undoing {
                cause,
                ended,
                mut revocation,
            } => {
                if !ended {
                    let write = LedgerWrite::End {
                        id: self.id.clone(),
                        cause,
                        at: self.inv.now,
                        by: None,
                    };
                    return self.ask(Pending::Refuse, Step::Write(write));
                }
                match revocation.next() {
                    Next::Do(step) => {
                        self.course = Course::Undoing {
                            cause,
                            ended,
                            revocation,
                        };
                        self.pending = None;
                        Next::Do(step)
                    }
                    Next::Done(_) => self.done(GrantOutcome::Undone {
                        change_request_id: self.id.to_string(),
                        cause: cause.as_str().to_owned(),
                    }),
                }
            }
            Course::Finished(outcome) => Next::Done(outcome),
        }
    }

    fn learn(&mut self, answer: Answer) {
        let pending = self.pending.take();
        if let Course::Undoing {
            ended, revocation, ..
        } = &mut self.course
        {
            if *ended {
                revocation.learn(answer);
            } else {
                *ended = true;
            }
            return;
        }
        match (pending, answer) {
            (Some(Pending::Request), Answer::Request(e)) => self.exec = Some(e),
            (Some(Pending::OpenRuns), Answer::OpenRuns(o)) => self.open = Some(o),
            (Some(Pending::Stop), _) => self.stopped = true,
            (Some(Pending::Record), Answer::Record(r)) => self.record = Some(r),
            (Some(Pending::User), Answer::User(u)) => self.user = Some(u),
            (Some(Pending::Claim), Answer::Written(w)) => {
                if w != Some(true) {
                    // Decided, ended or taken meanwhile: re-read the record and follow it.
                    self.course = Course::Deciding;
                    self.record = None;
                }
            }
            (Some(Pending::Cut), Answer::Cut(_)) => self.holding(|h| h.cut = true),
            (Some(Pending::Attach), Answer::Put(p)) => self.holding(|h| h.attached = Some(p)),
            (Some(Pending::Reconfirm), Answer::Request(e)) => {
                self.exec = Some(e);
                self.holding(|h| h.reconfirmed = true);
            }
            (Some(Pending::Schedule), _) => self.holding(|h| h.scheduled = true),
            (Some(Pending::Mark), Answer::Written(w)) => {
                if w == Some(true) {
                    self.holding(|h| h.marked = Some(true));
                } else {
                    // Ended meanwhile, or taken over: re-read the record and follow it.
                    self.course = Course::Deciding;
                    self.record = None;
                }
            }
            (Some(Pending::Record), _) => {}
            (Some(Pending::Announce), _) => self.announced = true,
            (Some(Pending::Settle), _) => {}
            (Some(Pending::Refuse), Answer::Written(w)) => {
                if let Course::Refusing { written, .. } = &mut self.course {
                    if w == Some(true) {
                        *written = true;
                    } else {
                        // Someone decided (or ended it) first: follow the record.
                        self.course = Course::Deciding;
                        self.record = None;
                    }
                }
            }
            (pending, answer) => debug_assert!(false, "{pending:?} answered by {answer:?}"),
        }
    }
}

impl GrantRun<'_> {
    /// Admission of a request runbook's execution: at most
    /// `max_open_requests` of its filer's may be open at once. Change
    /// requests, and executions Systems Manager names no IAM user filer for
    /// (check_request refuses those), are not counted here.
    fn admission(&mut self) -> Admission {
        let Some(Some(exec)) = &self.exec else {
            return Admission::Admitted;
        };
        let Origin::Automation { document, .. } = &exec.origin else {
            return Admission::Admitted;
        };
        let Some(requester) = exec.executed_by.as_deref().and_then(UserArn::parse) else {
            return Admission::Admitted;
        };
        let document = document.clone();
        let Some(open) = &self.open else {
            return Admission::Read(document);
        };
        let max = self.config.max_open_requests;
        match admit(self.id.as_str(), &document, &requester, open, max) {
            Ok(()) => Admission::Admitted,
            Err(refusal) => Admission::Refused(refusal),
        }
    }

    fn read_open_runs(&mut self, document: String) -> Next<GrantOutcome> {
        self.ask(Pending::OpenRuns, Step::ReadOpenRuns(document))
    }

    /// Stops a refused request's execution, so that it does not hold one of
    /// the account's concurrent Automation executions until its `EndTime`:
    /// only an execution of the deployment's own request runbook (never a
    /// change request, nor another document's execution an event named),
    /// unless this invocation stopped it or Systems Manager reports it
    /// ended; `None` when there is nothing to stop.
    fn stop_if_open(&mut self) -> Option<Next<GrantOutcome>> {
        let runbook = self.config.automation.as_ref().map(|a| a.runbook.as_str());
        let open = self.exec.as_ref().and_then(|e| e.as_ref()).is_some_and(|e| {
            let ours = matches!(&e.origin, Origin::Automation { document, .. } if Some(document.as_str()) == runbook);
            ours && e.status != Status::Success && !e.status.ends_access()
        });
        if self.stopped || !open {
            return None;
        }
        info!(change_request_id = %self.id, outcome = "stopping", "stopping a refused request's execution");
        Some(self.ask(Pending::Stop, Step::Stop(self.id.clone())))
    }

    /// Whether IAM's record (read by this invocation) shows the grant's policy on the user.
    fn holds(&self, grant: &Grant) -> bool {
        let name = grant.policy_name();
        self.user
            .as_ref()
            .and_then(|u| u.as_ref())
            .is_some_and(|u| u.inline_policies.iter().any(|(n, _)| *n == name))
    }

    /// Whether IAM's record of the user, as this invocation read it, holds
    /// exactly this grant's policy.
    fn on_user(&self, grant: &Grant) -> bool {
        let (name, document) = (grant.policy_name(), grant.document_json());
        self.user
            .as_ref()
            .and_then(|u| u.as_ref())
            .is_some_and(|u| {
                u.inline_policies
                    .iter()
                    .any(|(n, d)| *n == name && *d == document)
            })
    }

    fn holding(&mut self, change: impl FnOnce(&mut Holding)) {
        if let Course::Holding(_, h) = &mut self.course {
            change(h);
        }
    }

    /// Systems Manager's record of the request, as this invocation read it
    /// (every path reads it before it decides anything); `None` when it has
    /// not been read, or Systems Manager has no such request.
    pub fn request(&self) -> Option<&Execution> {
        self.exec.as_ref().and_then(Option::as_ref)
    }

    /// The outcome once finished.
    pub fn outcome(&self) -> Option<&GrantOutcome> {
        match &self.course {
            Course::Finished(o) => Some(o),
            _ => None,
        }
    }
}
