//! The ports: what the protocol asks of AWS, narrowly. The adapters in
//! `changegate-aws` implement them over the SDK; [`crate::memory`]
//! implements them in memory, as strictly as AWS (conditional writes, IAM's
//! size limits, not-found answers), for the protocol's tests. Nothing behind
//! a port decides: every decision is in [`crate::protocol`].
//!
//! "Not found" is an answer (`None`, `false`), never a fault; a fault is a
//! call that did not succeed, and fails the invocation so Lambda retries it.

#![allow(async_fn_in_trait)]

use chrono::{DateTime, Utc};

use crate::admission::OpenRun;
use crate::check::UserRecord;
use crate::events::ChangegateEvent;
use crate::execution::Execution;
use crate::fault::Fault;
use crate::ids::{ChangeRequestId, IamUserId, IamUserName};
use crate::policy::{Grant, PolicyListing};
use crate::record::{DecisionRecord, LedgerWrite};

/// Systems Manager: the request as its Automation execution records it.
pub trait Requests {
    /// The execution, with the current (default) version of each document it
    /// ran filled in ([`Execution::versions`], from [`Requests::default_version`]).
    async fn execution(&self, id: &ChangeRequestId) -> Result<Option<Execution>, Fault>;
    /// A document's current version (`DescribeDocument`'s `DefaultVersion`);
    /// `None` when Systems Manager has no such document.
    async fn default_version(&self, document: &str) -> Result<Option<String>, Fault>;
    /// The account's open executions of `document` (and of documents whose
    /// name it begins: `DescribeAutomationExecutions` filters by prefix), in
    /// [`crate::admission::OPEN_STATUSES`], all pages read.
    async fn open_runs(&self, document: &str) -> Result<Vec<OpenRun>, Fault>;
    /// Stops the request's execution (`StopAutomationExecution`, `Cancel`);
    /// `false` when it had ended already.
    async fn stop(&self, id: &ChangeRequestId) -> Result<bool, Fault>;
}

/// The decision table.
pub trait Ledger {
    /// The record of a request (strongly consistent); `None` if there is none.
    async fn record(&self, id: &ChangeRequestId) -> Result<Option<DecisionRecord>, Fault>;
    /// Applies `write` if its condition holds; `false` when it did not hold.
    async fn write(&self, write: &LedgerWrite) -> Result<bool, Fault>;
    /// Every record whose revocation is not announced yet (the table's
    /// sparse index: eventually consistent, so each is re-checked by a
    /// conditional write before anything is announced).
    async fn unannounced_revocations(&self) -> Result<Vec<DecisionRecord>, Fault>;
}

/// Whether a put reached its user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    Done,
    NoSuchUser,
}

/// IAM in changegate's account: the users who receive grants.
pub trait UserGrants {
    /// The user's eligibility tag and inline policies; `None`: no such user.
    async fn user(&self, user: &IamUserName) -> Result<Option<UserRecord>, Fault>;
    /// The decoded document of `policy` on `user`; `None` when either is missing.
    async fn policy(&self, user: &IamUserName, policy: &str) -> Result<Option<String>, Fault>;
    async fn put_policy(
        &self,
        user: &IamUserName,
        policy: &str,
        document: &str,
    ) -> Result<Put, Fault>;
    /// `false` when it was already gone.
    async fn delete_policy(&self, user: &IamUserName, policy: &str) -> Result<bool, Fault>;
    /// Every inline user policy whose name starts with `prefix`, all pages read.
    async fn policies_with_prefix(&self, prefix: &str) -> Result<PolicyListing, Fault>;
    /// IAM's unique id of the user called `user` now (`GetUser`); `None`: no such user.
    async fn user_id(&self, user: &IamUserName) -> Result<Option<IamUserId>, Fault>;
    /// The name IAM has now for the user whose unique id is `id` (IAM has no
    /// lookup by id: every page of the account's users is read until it is
    /// found); `None`: no user has it (deleted).
    async fn user_named(&self, id: &IamUserId) -> Result<Option<IamUserName>, Fault>;
}

/// Where a session cut takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CutAt {
    /// At the window's end (written when access is granted, restored at the end).
    WindowEnd,
    /// Now: an early end or an operator.
    Now,
}

/// What a session cut did in the production account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CutOutcome {
    /// The person's sessions are cut at the window's end (or now).
    Cut,
    /// The role's inline-policy budget was full: every session of the role
    /// issued before now is denied instead (IAM's "revoke active sessions").
    AllSessionsCut,
    /// The target role does not exist there: no session of it can be live.
    NoSuchRole,
}

/// The production accounts: the session cut on the target role.
pub trait SessionCuts {
    async fn cut(&self, grant: &Grant, at: CutAt, now: DateTime<Utc>) -> Result<CutOutcome, Fault>;
}

/// changegate's event bus: the announcements.
pub trait Bus {
    async fn announce(&self, event: &ChangegateEvent) -> Result<(), Fault>;
}

/// EventBridge Scheduler: a grant's one-time expiry schedule.
pub trait Schedules {
    /// Creates the grant's schedule (an existing one is kept).
    async fn schedule_expiry(&self, grant: &Grant) -> Result<(), Fault>;
    /// Deletes the schedule named `name`; `false` when it was already gone.
    async fn unschedule(&self, name: &str) -> Result<bool, Fault>;
}

/// Everything the protocol may ask for.
pub trait Ports: Requests + Ledger + UserGrants + SessionCuts + Bus + Schedules {}

impl<T: Requests + Ledger + UserGrants + SessionCuts + Bus + Schedules> Ports for T {}
