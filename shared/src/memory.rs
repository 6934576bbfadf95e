//! AWS in memory, as strict as AWS where the protocol depends on it: the
//! ledger applies each write only if its condition holds (the same
//! [`crate::record::Condition`] the DynamoDB adapter renders), IAM refuses an
//! inline policy over the user's 2,048-character budget and answers "no such
//! entity" as AWS does, and the session cut runs the real cut algebra. The
//! protocol's tests run on it; it has no fault injection of its own (the
//! tests choose which step fails).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeDelta, Utc};

use crate::admission::{OPEN_STATUSES, OpenRun};
use crate::budget;
use crate::check::UserRecord;
use crate::events::ChangegateEvent;
use crate::execution::{Execution, Origin};
use crate::fault::Fault;
use crate::ids::{ChangeRequestId, IamUserId, IamUserName};
use crate::policy::{Grant, PolicyListing, UserPolicy};
use crate::ports::{
    Bus, CutAt, CutOutcome, Ledger, Put, Requests, Schedules, SessionCuts, UserGrants,
};
use crate::record::{DecisionRecord, Item, LedgerWrite};
use crate::session::SessionCut;
use crate::status::Status;

/// IAM's budget for all inline policies of one user, whitespace not counted.
pub const USER_INLINE_POLICY_LIMIT: usize = 2_048;

/// A user as IAM holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemUser {
    pub name: IamUserName,
    /// IAM's unique id (`AIDA...`): given at creation, kept by a rename.
    pub id: IamUserId,
    pub tag: Option<String>,
    /// The ARN of its permissions boundary, if set.
    pub boundary: Option<String>,
    pub policies: BTreeMap<String, String>,
}

/// Everything the protocol can see, in memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct World {
    pub executions: BTreeMap<String, Execution>,
    /// When each execution started, by id (`ExecutionStartTime`; unknown if missing).
    pub started: BTreeMap<String, DateTime<Utc>>,
    /// Each SSM document's default version, by name (`DescribeDocument`).
    pub documents: BTreeMap<String, String>,
    pub ledger: BTreeMap<String, Item>,
    /// Keyed by the lowercase name (IAM user names are unique regardless of case).
    pub users: BTreeMap<String, MemUser>,
    /// The session cut on each target role, by `account/role`; a role listed
    /// in `roles` exists.
    pub cuts: BTreeMap<String, SessionCut>,
    pub roles: BTreeSet<String>,
    pub announcements: Vec<ChangegateEvent>,
    pub schedules: BTreeSet<String>,
    /// How many `PutUserPolicy` calls were made.
    pub policy_writes: usize,
    /// How many users were ever created (each gets the next unique id).
    pub users_created: usize,
}

/// Why IAM refused an `UpdateUser` (its error codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenameError {
    NoSuchEntity,
    EntityAlreadyExists,
}

impl World {
    pub fn add_user(&mut self, name: &str, tag: Option<&str>) {
        let Ok(user) = IamUserName::parse(name) else {
            return;
        };
        self.users_created += 1;
        let Ok(id) = IamUserId::parse(&format!("AIDA{:017}", self.users_created)) else {
            return;
        };
        self.users.insert(
            name.to_ascii_lowercase(),
            MemUser {
                name: user,
                id,
                tag: tag.map(str::to_owned),
                boundary: None,
                policies: BTreeMap::new(),
            },
        );
    }

    /// IAM's `UpdateUser` with `NewUserName`: the user keeps its unique id,
    /// and its inline policies and tags move with it to the new name.
    pub fn rename(&mut self, from: &str, to: &str) -> Result<(), RenameError> {
        let (from_key, to_key) = (from.to_ascii_lowercase(), to.to_ascii_lowercase());
        let new = IamUserName::parse(to).map_err(|_| RenameError::NoSuchEntity)?;
        if from_key != to_key && self.users.contains_key(&to_key) {
            return Err(RenameError::EntityAlreadyExists);
        }
        let mut user = self
            .users
            .remove(&from_key)
            .ok_or(RenameError::NoSuchEntity)?;
        user.name = new;
        self.users.insert(to_key, user);
        Ok(())
    }

    /// IAM's `DeleteUser` (its inline policies go with it).
    pub fn delete_user(&mut self, name: &str) -> bool {
        self.users.remove(&name.to_ascii_lowercase()).is_some()
    }

    /// The unique id of the user called `name`.
    pub fn user_id(&self, name: &str) -> Option<IamUserId> {
        self.users
            .get(&name.to_ascii_lowercase())
            .map(|u| u.id.clone())
    }

    pub fn record(&self, id: &ChangeRequestId) -> Option<DecisionRecord> {
        self.ledger
            .get(id.as_str())
            .map(|item| DecisionRecord::from_item(id, item))
    }

    /// Every (user, policy name) pair whose name is `name`.
    pub fn holders_of(&self, name: &str) -> Vec<String> {
        self.users
            .values()
            .filter(|u| u.policies.contains_key(name))
            .map(|u| u.name.to_string())
            .collect()
    }

    fn user(&self, user: &IamUserName) -> Option<&MemUser> {
        self.users.get(&user.as_str().to_ascii_lowercase())
    }

    fn user_mut(&mut self, user: &IamUserName) -> Option<&mut MemUser> {
        self.users.get_mut(&user.as_str().to_ascii_lowercase())
    }
}

/// The ports over a [`World`].
#[derive(Debug, Default)]
pub struct Memory {
    pub world: RefCell<World>,
}

impl Memory {
    pub fn new(world: World) -> Self {
        Self {
            world: RefCell::new(world),
        }
    }
}

impl Requests for Memory {
    /// As the adapter does: the current version of each document the
    /// execution ran is the world's (none for a document it does not have).
    async fn execution(&self, id: &ChangeRequestId) -> Result<Option<Execution>, Fault> {
        let world = self.world.borrow();
        Ok(world.executions.get(id.as_str()).cloned().map(|mut exec| {
            exec.versions.current = exec
                .versions
                .ran
                .keys()
                .filter_map(|d| world.documents.get(d).map(|v| (d.clone(), v.clone())))
                .collect();
            exec
        }))
    }

    async fn default_version(&self, document: &str) -> Result<Option<String>, Fault> {
        Ok(self.world.borrow().documents.get(document).cloned())
    }

    /// As `DescribeAutomationExecutions` filters: by name prefix and status.
    async fn open_runs(&self, document: &str) -> Result<Vec<OpenRun>, Fault> {
        let world = self.world.borrow();
        Ok(world
            .executions
            .iter()
            .filter(|(_, e)| OPEN_STATUSES.contains(&e.status.as_str()))
            .filter_map(|(id, e)| match &e.origin {
                Origin::Automation { document: d, .. } if d.starts_with(document) => {
                    Some(OpenRun {
                        id: id.clone(),
                        document: d.clone(),
                        executed_by: e.executed_by.clone(),
                        started: world.started.get(id).copied(),
                    })
                }
                _ => None,
            })
            .collect())
    }

    async fn stop(&self, id: &ChangeRequestId) -> Result<bool, Fault> {
        let mut world = self.world.borrow_mut();
        match world.executions.get_mut(id.as_str()) {
            Some(e) if OPEN_STATUSES.contains(&e.status.as_str()) => {
                e.status = Status::Cancelled;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

impl Ledger for Memory {
    async fn record(&self, id: &ChangeRequestId) -> Result<Option<DecisionRecord>, Fault> {
        Ok(self.world.borrow().record(id))
    }

    async fn write(&self, write: &LedgerWrite) -> Result<bool, Fault> {
        let mut world = self.world.borrow_mut();
        let key = write.id().as_str().to_owned();
        let item = world.ledger.get(&key);
        if !write.condition().holds(item) {
            return Ok(false);
        }
        let new = write.update().apply(write.id(), item);
        world.ledger.insert(key, new);
        Ok(true)
    }

    async fn unannounced_revocations(&self) -> Result<Vec<DecisionRecord>, Fault> {
        let world = self.world.borrow();
        Ok(world
            .ledger
            .iter()
            .filter(|(_, item)| item.contains_key(crate::record::attr::PENDING))
            .filter_map(|(key, item)| {
                let id = ChangeRequestId::parse(key).ok()?;
                Some(DecisionRecord::from_item(&id, item))
            })
            .collect())
    }
}

impl UserGrants for Memory {
    async fn user(&self, user: &IamUserName) -> Result<Option<UserRecord>, Fault> {
        let world = self.world.borrow();
        Ok(world.user(user).map(|u| UserRecord {
            name: Some(u.name.clone()),
            id: Some(u.id.clone()),
            tag: u.tag.clone(),
            boundary: u.boundary.clone(),
            inline_policies: u
                .policies
                .iter()
                .map(|(n, d)| (n.clone(), d.clone()))
                .collect(),
        }))
    }

    async fn policy(&self, user: &IamUserName, policy: &str) -> Result<Option<String>, Fault> {
        let world = self.world.borrow();
        Ok(world
            .user(user)
            .and_then(|u| u.policies.get(policy).cloned()))
    }

    async fn put_policy(
        &self,
        user: &IamUserName,
        policy: &str,
        document: &str,
    ) -> Result<Put, Fault> {
        let mut world = self.world.borrow_mut();
        world.policy_writes += 1;
        let Some(u) = world.user_mut(user) else {
            return Ok(Put::NoSuchUser);
        };
        let others = u
            .policies
            .iter()
            .filter(|(n, _)| *n != policy)
            .map(|(_, d)| d.as_str());
        let (_, fits) = budget::fits(others, document);
        if !fits {
            return Err(Fault::Unexpected {
                operation: "iam:PutUserPolicy",
                why: format!(
                    "LimitExceeded: the user's inline policies would exceed {USER_INLINE_POLICY_LIMIT} characters"
                ),
            });
        }
        u.policies.insert(policy.to_owned(), document.to_owned());
        Ok(Put::Done)
    }

    async fn delete_policy(&self, user: &IamUserName, policy: &str) -> Result<bool, Fault> {
        let mut world = self.world.borrow_mut();
        Ok(world
            .user_mut(user)
            .is_some_and(|u| u.policies.remove(policy).is_some()))
    }

    async fn policies_with_prefix(&self, prefix: &str) -> Result<PolicyListing, Fault> {
        let world = self.world.borrow();
        let mut listing = PolicyListing {
            pages: 1,
            ..PolicyListing::default()
        };
        for u in world.users.values() {
            listing.users += 1;
            for (name, document) in &u.policies {
                if name.starts_with(prefix) {
                    listing.policies.push(UserPolicy {
                        user: u.name.to_string(),
                        name: name.clone(),
                        document: document.clone(),
                        eligibility: u.tag.clone(),
                    });
                }
            }
        }
        Ok(listing)
    }

    async fn user_id(&self, user: &IamUserName) -> Result<Option<IamUserId>, Fault> {
        Ok(self.world.borrow().user(user).map(|u| u.id.clone()))
    }

    async fn user_named(&self, id: &IamUserId) -> Result<Option<IamUserName>, Fault> {
        let world = self.world.borrow();
        Ok(world
            .users
            .values()
            .find(|u| u.id == *id)
            .map(|u| u.name.clone()))
    }
}

impl SessionCuts for Memory {
    async fn cut(&self, grant: &Grant, at: CutAt, now: DateTime<Utc>) -> Result<CutOutcome, Fault> {
        let mut world = self.world.borrow_mut();
        let role = format!("{}/{}", grant.account, grant.role);
        if !world.roles.contains(&role) {
            return Ok(CutOutcome::NoSuchRole);
        }
        let cut = world.cuts.entry(role).or_insert_with(SessionCut::empty);
        match at {
            CutAt::WindowEnd => cut.extend(
                &grant.session_name,
                grant.window.start_utc(),
                grant.window.end_utc(),
                now,
            ),
            CutAt::Now => cut.cut_now(&grant.session_name, now),
        }
        cut.collect(now, TimeDelta::hours(1));
        Ok(CutOutcome::Cut)
    }
}

impl Bus for Memory {
    async fn announce(&self, event: &ChangegateEvent) -> Result<(), Fault> {
        self.world.borrow_mut().announcements.push(event.clone());
        Ok(())
    }
}

impl Schedules for Memory {
    async fn schedule_expiry(&self, grant: &Grant) -> Result<(), Fault> {
        self.world
            .borrow_mut()
            .schedules
            .insert(grant.policy_name());
        Ok(())
    }

    async fn unschedule(&self, name: &str) -> Result<bool, Fault> {
        Ok(self.world.borrow_mut().schedules.remove(name))
    }
}

/// Runs a future that never waits (the in-memory ports' futures are ready
/// at once) to its output.
pub fn ready<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(out) => out,
        std::task::Poll::Pending => unreachable!("the in-memory ports never wait"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_a_user_with_a_policy_and_the_tag_when_renamed_then_both_move_and_the_unique_id_stays()
    {
        let mut w = World::default();
        w.add_user("alice", Some("111122223333"));
        w.add_user("bob", None);
        let id = w.user_id("alice").unwrap();
        assert_ne!(w.user_id("bob"), Some(id.clone()), "ids are unique");
        w.users
            .get_mut("alice")
            .unwrap()
            .policies
            .insert("changegate-x".into(), "{}".into());

        assert_eq!(w.rename("alice", "alice2"), Ok(()));

        assert_eq!(w.user_id("alice"), None);
        let moved = &w.users["alice2"];
        assert_eq!(moved.id, id);
        assert_eq!(moved.name.as_str(), "alice2");
        assert_eq!(moved.tag.as_deref(), Some("111122223333"));
        assert_eq!(
            moved.policies.keys().collect::<Vec<_>>(),
            vec!["changegate-x"]
        );
        let ports = Memory::new(w);
        let found = ready(ports.user_named(&id)).unwrap();
        assert_eq!(found.as_ref().map(IamUserName::as_str), Some("alice2"));
    }

    #[test]
    fn given_a_taken_name_or_no_such_user_when_renaming_then_iam_refuses_and_nothing_changes() {
        let mut w = World::default();
        w.add_user("alice", None);
        w.add_user("bob", None);
        let before = w.clone();
        assert_eq!(
            w.rename("alice", "BOB"),
            Err(RenameError::EntityAlreadyExists)
        );
        assert_eq!(w.rename("carol", "carol2"), Err(RenameError::NoSuchEntity));
        assert_eq!(w, before);
        assert_eq!(
            w.rename("alice", "Alice"),
            Ok(()),
            "a change of case is allowed"
        );
    }
}
