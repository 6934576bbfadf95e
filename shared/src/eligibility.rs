//! Eligibility: which accounts (and, optionally, which role in each) a person
//! may ask for, read from a tag on their IAM user that the security team sets.
//! No tag, no access.
//!
//! Tag `changegate:eligible`, value: space-separated entries, each an account
//! id (the deployment's target role) or `account/role`, for example
//! `111122223333 444455556666/ReadOnlyProd`. IAM tag values cannot hold
//! commas, hence spaces.

use crate::ids::{AccountId, RoleName};

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

    /// The role this person may assume in `account`, if eligible at all.
    pub fn role_for(&self, account: &AccountId, default_role: &RoleName) -> Option<RoleName> {
        self.entries
            .iter()
            .find(|(a, _)| a == account)
            .map(|(_, role)| role.clone().unwrap_or_else(|| default_role.clone()))
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
}
