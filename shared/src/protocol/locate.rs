//! Finding the user a grant was made to, as IAM knows them now. A user can
//! rename themselves (`iam:UpdateUser`): the inline policy moves with them,
//! the name recorded at grant time then names nobody (or, later, someone
//! else who took the name), and only IAM's unique id (`UserId`, kept by a
//! rename) still points at them. So the recorded name is tried first and
//! accepted only if its user has the recorded id; otherwise the user is
//! found by id. A user deleted altogether holds nothing to remove.
//!
//! (IAM has no lookup by id: [`crate::ports::UserGrants::user_named`] reads
//! the account's users page by page.)

use tracing::info;

use crate::ids::{IamUserId, IamUserName};
use crate::protocol::{Answer, Machine, Next, Step};

/// Where the user is now.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Located {
    /// Still called as recorded (or no id was recorded: the name is all there
    /// is, as before ids were recorded).
    Same(IamUserName),
    /// Renamed since the grant: IAM calls the user `now`.
    Renamed { was: IamUserName, now: IamUserName },
    /// No user has the recorded id any more: deleted, with its policies.
    Gone { was: IamUserName, id: IamUserId },
}

impl Located {
    /// The name to remove the policy from, if the user still exists.
    pub fn name(&self) -> Option<&IamUserName> {
        match self {
            Self::Same(name) | Self::Renamed { now: name, .. } => Some(name),
            Self::Gone { .. } => None,
        }
    }

    /// Why there is nothing to remove, for a user who is gone.
    pub fn gone_why(&self) -> Option<String> {
        match self {
            Self::Gone { was, id } => Some(format!(
                "{was} no longer exists in IAM (no user has the id {id} it was granted under): there is no policy to remove"
            )),
            _ => None,
        }
    }
}

/// One lookup, as a machine.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Locate {
    name: IamUserName,
    id: Option<IamUserId>,
    /// The id of the user called `name` now (`Some(None)`: nobody is).
    by_name: Option<Option<IamUserId>>,
    /// The name of the user with `id` now.
    by_id: Option<Option<IamUserName>>,
}

impl Locate {
    /// The user recorded as `name` with IAM's unique id `id` (`None` for a
    /// grant recorded before ids were).
    pub fn new(name: IamUserName, id: Option<IamUserId>) -> Self {
        Self {
            name,
            id,
            by_name: None,
            by_id: None,
        }
    }
}

impl Machine for Locate {
    type Outcome = Located;

    fn next(&mut self) -> Next<Located> {
        let Some(id) = self.id.clone() else {
            return Next::Done(Located::Same(self.name.clone()));
        };
        match &self.by_name {
            None => return Next::Do(Step::ReadUserId(self.name.clone())),
            Some(Some(found)) if *found == id => {
                return Next::Done(Located::Same(self.name.clone()));
            }
            Some(_) => {}
        }
        match &self.by_id {
            None => Next::Do(Step::FindUser(id)),
            Some(Some(now)) => {
                info!(user = %self.name, user_id = %id, now = %now, "the user was renamed since the grant");
                Next::Done(Located::Renamed {
                    was: self.name.clone(),
                    now: now.clone(),
                })
            }
            Some(None) => Next::Done(Located::Gone {
                was: self.name.clone(),
                id,
            }),
        }
    }

    fn learn(&mut self, answer: Answer) {
        match answer {
            Answer::UserId(found) if self.by_name.is_none() => self.by_name = Some(found),
            Answer::Named(found) if self.by_id.is_none() => self.by_id = Some(found),
            answer => debug_assert!(false, "locate answered by {answer:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{Memory, World, ready};
    use crate::protocol::run;

    fn name(raw: &str) -> IamUserName {
        IamUserName::parse(raw).unwrap()
    }

    fn locate(world: &World, recorded: &str, id: Option<IamUserId>) -> Located {
        let ports = Memory::new(world.clone());
        let now = "2026-12-01T10:00:00Z".parse().unwrap();
        ready(run(&mut Locate::new(name(recorded), id), &ports, now)).unwrap()
    }

    fn alice() -> (World, IamUserId) {
        let mut w = World::default();
        w.add_user("alice", Some("111122223333"));
        w.add_user("bob", None);
        let id = w.user_id("alice").unwrap();
        (w, id)
    }

    #[test]
    fn given_the_user_is_still_called_as_granted_when_located_then_it_is_the_recorded_name() {
        let (w, id) = alice();
        assert_eq!(locate(&w, "alice", Some(id)), Located::Same(name("alice")));
    }

    #[test]
    fn given_the_user_renamed_themselves_when_located_then_the_new_name_is_found_by_the_unique_id()
    {
        let (mut w, id) = alice();
        w.rename("alice", "alice2").unwrap();
        assert_eq!(
            locate(&w, "alice", Some(id)),
            Located::Renamed {
                was: name("alice"),
                now: name("alice2")
            }
        );
    }

    #[test]
    fn given_someone_else_took_the_old_name_when_located_then_the_name_is_refused_and_the_renamed_user_found()
     {
        let (mut w, id) = alice();
        w.rename("alice", "alice2").unwrap();
        w.add_user("alice", None);
        assert_ne!(w.user_id("alice"), Some(id.clone()));
        assert_eq!(
            locate(&w, "alice", Some(id)),
            Located::Renamed {
                was: name("alice"),
                now: name("alice2")
            }
        );
    }

    #[test]
    fn given_the_user_was_deleted_when_located_then_gone_and_it_says_there_is_nothing_to_remove() {
        let (mut w, id) = alice();
        w.rename("alice", "alice2").unwrap();
        w.add_user("alice", None);
        w.delete_user("alice2");
        let located = locate(&w, "alice", Some(id.clone()));
        assert_eq!(
            located,
            Located::Gone {
                was: name("alice"),
                id: id.clone()
            }
        );
        assert_eq!(located.name(), None);
        assert_eq!(
            located.gone_why().unwrap(),
            format!(
                "alice no longer exists in IAM (no user has the id {id} it was granted under): there is no policy to remove"
            )
        );
    }

    #[test]
    fn given_no_id_was_recorded_when_located_then_the_name_is_taken_as_it_is_without_asking_iam() {
        let (w, _) = alice();
        let mut machine = Locate::new(name("alice"), None);
        assert_eq!(machine.next(), Next::Done(Located::Same(name("alice"))));
        assert_eq!(locate(&w, "carol", None), Located::Same(name("carol")));
    }
}
