//! The access protocol as data. Each invocation is a machine: it is asked
//! for its next [`Step`] (read this, write that, attach, remove, announce),
//! a driver carries the step out over the [`crate::ports`], and the machine
//! learns the [`Answer`]. Every decision is made here, from what this
//! invocation read; the adapters only carry out (sans-I/O, like quinn-proto
//! or rustls).
//!
//! - [`grant`]: an approved request becomes exactly one windowed grant.
//! - [`revocation`]: the one way to remove a grant, for every cause.
//! - [`ending`]: revoke's paths: an expiry, an early end, an operator.
//! - [`locate`]: the user a grant was made to, by IAM's unique id, renamed or not.
//!
//! A fault stops the invocation where it is (Lambda retries it, with the same
//! request id, so the retry holds what the attempt held); the ledger's
//! conditions make whatever runs meanwhile safe.

pub mod ending;
pub mod grant;
pub mod locate;
pub mod revocation;

use chrono::{DateTime, Utc};
use tracing::warn;

use crate::admission::OpenRun;
use crate::check::UserRecord;
use crate::events::ChangegateEvent;
use crate::execution::Execution;
use crate::fault::Fault;
use crate::ids::{ChangeRequestId, IamUserId, IamUserName};
use crate::policy::Grant;
use crate::ports::{CutAt, CutOutcome, Ports, Put};
use crate::record::{DecisionRecord, Holder, LedgerWrite};

/// One invocation: who it is (Lambda's request id: the same on Lambda's
/// retries of one event), until when it can run, and when it started.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Invocation {
    pub id: String,
    /// The invocation's deadline: no claim it holds is live after it.
    pub lease_until: DateTime<Utc>,
    pub now: DateTime<Utc>,
}

impl Invocation {
    pub fn holder(&self) -> Holder {
        Holder {
            owner: self.id.clone(),
            lease_until: self.lease_until,
        }
    }
}

/// What a machine asks for next.
// One value per step, moved once: boxing would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Systems Manager's record of the request.
    ReadRequest(ChangeRequestId),
    /// The account's open executions of a document (admission).
    ReadOpenRuns(String),
    /// Stops the request's execution (a request refused at admission).
    Stop(ChangeRequestId),
    /// The decision record.
    ReadRecord(ChangeRequestId),
    /// IAM's record of the user.
    ReadUser(IamUserName),
    /// IAM's unique id of the user called this now.
    ReadUserId(IamUserName),
    /// The name IAM has now for the user with this unique id.
    FindUser(IamUserId),
    /// One inline policy of a user.
    ReadPolicy {
        user: IamUserName,
        policy: String,
    },
    /// A conditional write; the answer says whether its condition held.
    Write(LedgerWrite),
    /// A write that only records an effect already made (an announcement):
    /// a fault is logged, not retried, since a retry would repeat the effect.
    Settle(LedgerWrite),
    Cut(Grant, CutAt),
    Attach(Grant),
    Remove(Grant),
    Schedule(Grant),
    Unschedule(String),
    Announce(ChangegateEvent),
}

/// What a step found.
// One value per step, moved once: boxing would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Request(Option<Execution>),
    OpenRuns(Vec<OpenRun>),
    Record(Option<DecisionRecord>),
    User(Option<UserRecord>),
    UserId(Option<IamUserId>),
    /// The user's name now (`None`: no user has that id).
    Named(Option<IamUserName>),
    Policy(Option<String>),
    /// Whether a write's condition held (`None`: a settle that faulted).
    Written(Option<bool>),
    Cut(CutOutcome),
    Put(Put),
    Removed(bool),
    /// The step was done (schedule, unschedule, announce).
    Done,
}

/// Either the next step, or the invocation's outcome.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next<O> {
    Do(Step),
    Done(O),
}

/// An invocation's protocol.
pub trait Machine {
    type Outcome;
    fn next(&mut self) -> Next<Self::Outcome>;
    /// The answer to the step [`Machine::next`] returned last.
    fn learn(&mut self, answer: Answer);
}

/// Carries out one step over the ports.
pub async fn perform<P: Ports>(
    ports: &P,
    step: &Step,
    now: DateTime<Utc>,
) -> Result<Answer, Fault> {
    Ok(match step {
        Step::ReadRequest(id) => Answer::Request(ports.execution(id).await?),
        Step::ReadOpenRuns(document) => Answer::OpenRuns(ports.open_runs(document).await?),
        Step::Stop(id) => {
            ports.stop(id).await?;
            Answer::Done
        }
        Step::ReadRecord(id) => Answer::Record(ports.record(id).await?),
        Step::ReadUser(user) => Answer::User(ports.user(user).await?),
        Step::ReadUserId(user) => Answer::UserId(ports.user_id(user).await?),
        Step::FindUser(id) => Answer::Named(ports.user_named(id).await?),
        Step::ReadPolicy { user, policy } => Answer::Policy(ports.policy(user, policy).await?),
        Step::Write(w) | Step::Settle(w) => Answer::Written(Some(ports.write(w).await?)),
        Step::Cut(grant, at) => Answer::Cut(ports.cut(grant, *at, now).await?),
        Step::Attach(g) => Answer::Put(
            ports
                .put_policy(&g.user, &g.policy_name(), &g.document_json())
                .await?,
        ),
        Step::Remove(g) => Answer::Removed(ports.delete_policy(&g.user, &g.policy_name()).await?),
        Step::Schedule(g) => {
            ports.schedule_expiry(g).await?;
            Answer::Done
        }
        Step::Unschedule(name) => {
            ports.unschedule(name).await?;
            Answer::Done
        }
        Step::Announce(event) => {
            ports.announce(event).await?;
            Answer::Done
        }
    })
}

/// What a fault means for a step: the invocation stops, except for a
/// [`Step::Settle`], whose effect was already made (repeating it on a retry
/// would announce twice): then the machine learns `Written(None)` and goes on.
pub fn on_fault(step: &Step) -> Option<Answer> {
    matches!(step, Step::Settle(_)).then_some(Answer::Written(None))
}

/// Runs a machine to its outcome over the ports: the driver the functions use.
pub async fn run<M: Machine, P: Ports>(
    machine: &mut M,
    ports: &P,
    now: DateTime<Utc>,
) -> Result<M::Outcome, Fault> {
    loop {
        let step = match machine.next() {
            Next::Done(outcome) => return Ok(outcome),
            Next::Do(step) => step,
        };
        let answer = match perform(ports, &step, now).await {
            Ok(answer) => answer,
            Err(fault) => match on_fault(&step) {
                Some(answer) => {
                    warn!(error = %fault, "an announcement was made but could not be recorded; it is not repeated");
                    answer
                }
                None => return Err(fault),
            },
        };
        machine.learn(answer);
    }
}
