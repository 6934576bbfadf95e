//! Eligibility: which accounts (and, optionally, which role in each) a person
//! may ask for, read from a tag on their IAM user that the security team sets.
//! No tag, no access.
//!
//! Tag `changegate:eligible`, value: space-separated entries, each an account
//! id (the deployment's target role) or `account/role`, for example
//! `111122223333 444455556666/ReadOnlyProd`. IAM tag values cannot hold
//! commas, hence spaces.

use std::collections::BTreeSet;

use crate::ids::{AccountId, IamUserName, RoleName};

pub const ELIGIBILITY_TAG: &str = "changegate:eligible";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Eligibility {
    entries: Vec<(AccountId, Option<RoleName>)>,
}

impl Eligibility {
    /// Reads the tag's value; malformed entries grant nothing and are reported.
    pub fn parse(tag_value: Option<&str>) -> (Self, Vec<String>) {
        let mut entries = Vec::new();
        let mut ignored = Vec::new();
        for entry in tag_value.unwrap_or_default().split_whitespace() {
            let (account, role) = match entry.split_once('/') {
                Some((a, r)) => (a, Some(r)),
                None => (entry, None),
            };
            let account = AccountId::parse(account);
            let role = role.map(RoleName::parse).transpose();
            match (account, role) {
                (Ok(a), Ok(r)) => entries.push((a, r)),
                _ => ignored.push(entry.to_owned()),
            }
        }
        (Self { entries }, ignored)
    }

    /// The role this person may assume in `account`, if eligible at all. An
    /// entry naming the deployment's role in another case names that role
    /// (IAM role names are unique regardless of case): it is given as the
    /// deployment spells it.
    pub fn role_for(&self, account: &AccountId, default_role: &RoleName) -> Option<RoleName> {
        self.entries
            .iter()
            .find(|(a, _)| a == account)
            .map(|(_, role)| match role {
                Some(r) if !r.same_role(default_role) => r.clone(),
                _ => default_role.clone(),
            })
    }

    /// For people: `111122223333, 444455556666 (ReadOnlyProd)`, or `none`.
    pub fn describe(&self) -> String {
        if self.entries.is_empty() {
            return "none".to_owned();
        }
        self.entries
            .iter()
            .map(|(a, r)| match r {
                Some(r) => format!("{a} ({r})"),
                None => a.to_string(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// What the deployment grants: the allowlisted accounts and the role an
/// entry without one means. The sweep holds every active grant to it, so that
/// access ends when the security team takes eligibility away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub target_role: RoleName,
    pub allowed_accounts: BTreeSet<AccountId>,
}

impl Scope {
    /// Why `user`, whose eligibility tag is `tag`, may no longer hold access
    /// to `account`/`role`; `None` while they still may. The same reading as
    /// grant's: an account off the allowlist, no entry for the account, or an
    /// entry that now names another role.
    pub fn lost(
        &self,
        user: &IamUserName,
        tag: Option<&str>,
        account: &AccountId,
        role: &RoleName,
    ) -> Option<String> {
        if !self.allowed_accounts.contains(account) {
            return Some(format!(
                "account {account} is no longer one of the deployment's allowed accounts"
            ));
        }
        let (eligibility, _) = Eligibility::parse(tag);
        match eligibility.role_for(account, &self.target_role) {
            None => Some(format!(
                "the {ELIGIBILITY_TAG} tag on {user} no longer lists account {account}"
            )),
            Some(now) if !now.same_role(role) => Some(format!(
                "the {ELIGIBILITY_TAG} tag on {user} now names role {now} in account {account}, not {role}"
            )),
            Some(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(r: &str) -> RoleName {
        RoleName::parse(r).unwrap()
    }

    #[test]
    fn given_a_tag_when_read_then_each_account_maps_to_its_role_or_the_default() {
        let (e, ignored) = Eligibility::parse(Some("111122223333  444455556666/ReadOnlyProd"));
        assert!(ignored.is_empty());
        let default = role("CM-Prd-role");
        assert_eq!(
            e.role_for(&AccountId::parse("111122223333").unwrap(), &default),
            Some(default.clone())
        );
        assert_eq!(
            e.role_for(&AccountId::parse("444455556666").unwrap(), &default),
            Some(role("ReadOnlyProd"))
        );
        assert_eq!(
            e.role_for(&AccountId::parse("999999999999").unwrap(), &default),
            None
        );
        assert_eq!(e.describe(), "111122223333, 444455556666 (ReadOnlyProd)");
        // The deployment's role named in another case is that role, as the deployment spells it.
        let (respelled, _) = Eligibility::parse(Some("111122223333/cm-prd-role"));
        assert_eq!(
            respelled.role_for(&AccountId::parse("111122223333").unwrap(), &default),
            Some(default.clone())
        );
    }

    #[test]
    fn given_no_tag_or_junk_when_read_then_nothing_is_eligible() {
        let (none, _) = Eligibility::parse(None);
        assert_eq!(none.describe(), "none");
        let (junk, ignored) = Eligibility::parse(Some(
            "* 11112222333 111122223333/role/x arn:aws:iam::111122223333:role/Admin",
        ));
        assert_eq!(junk.describe(), "none");
        assert_eq!(ignored.len(), 4);
    }

    fn scope() -> Scope {
        Scope {
            target_role: role("CM-Prd-role"),
            allowed_accounts: ["111122223333", "444455556666"]
                .into_iter()
                .map(|a| AccountId::parse(a).unwrap())
                .collect(),
        }
    }

    #[test]
    fn given_a_grant_still_covered_when_held_to_the_scope_then_nothing_is_lost() {
        let alice = IamUserName::parse("alice").unwrap();
        let a = AccountId::parse("111122223333").unwrap();
        let b = AccountId::parse("444455556666").unwrap();
        let tag = Some("111122223333 444455556666/ReadOnlyProd");
        assert_eq!(scope().lost(&alice, tag, &a, &role("CM-Prd-role")), None);
        assert_eq!(scope().lost(&alice, tag, &b, &role("ReadOnlyProd")), None);
    }

    #[test]
    fn given_eligibility_taken_away_when_held_to_the_scope_then_each_way_says_why() {
        let alice = IamUserName::parse("alice").unwrap();
        let a = AccountId::parse("111122223333").unwrap();
        let target = role("CM-Prd-role");
        // The tag no longer lists the account (or is gone).
        let untagged = scope().lost(&alice, Some("444455556666"), &a, &target);
        assert_eq!(
            untagged.as_deref(),
            Some("the changegate:eligible tag on alice no longer lists account 111122223333")
        );
        assert!(scope().lost(&alice, None, &a, &target).is_some());
        // The entry now names another role.
        let moved = scope().lost(&alice, Some("111122223333/ReadOnlyProd"), &a, &target);
        assert_eq!(
            moved.as_deref(),
            Some(
                "the changegate:eligible tag on alice now names role ReadOnlyProd in account 111122223333, not CM-Prd-role"
            )
        );
        // A tag that only spells the role in another case names the same role.
        let respelled = scope().lost(&alice, Some("111122223333/cm-prd-role"), &a, &target);
        assert_eq!(respelled, None);
        // The account left the allowlist, whatever the tag says.
        let mut narrowed = scope();
        narrowed.allowed_accounts.remove(&a);
        assert_eq!(
            narrowed
                .lost(&alice, Some("111122223333"), &a, &target)
                .as_deref(),
            Some("account 111122223333 is no longer one of the deployment's allowed accounts")
        );
    }
}
