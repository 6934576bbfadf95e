//! The production accounts' side of the session cut: assume changegate's
//! narrowly scoped cutter role there (templates/production-account.yaml),
//! read the target role, and write or delete [`POLICY_NAME`] on it.
//!
//! Only the STS client lives across invocations; the production credentials
//! and the IAM client built on them are made afresh for each [`Sessions::open`].

use std::time::SystemTime;

use aws_config::SdkConfig;
use chrono::TimeDelta;

use crate::adapters::decode;
use changegate::budget::counted_chars;
use changegate::fault::Fault;
use changegate::ids::{AccountId, RoleName};
use changegate::session::{POLICY_NAME, Written};

/// IAM's default when a role does not say (one hour).
const DEFAULT_MAX_SESSION_SECONDS: i64 = 3600;

/// Opens the production accounts changegate may reach.
#[derive(Debug, Clone)]
pub struct Sessions {
    sts: aws_sdk_sts::Client,
    sdk: SdkConfig,
    partition: String,
    cutter_role: RoleName,
    session_name: String,
}

/// IAM in one production account, as the cutter role.
#[derive(Debug, Clone)]
pub struct ProductionIam {
    account: AccountId,
    iam: aws_sdk_iam::Client,
}

/// The target role as the cut needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetRole {
    pub name: RoleName,
    /// `AROA...`: the part of `aws:userid` before the colon in its sessions.
    pub role_id: String,
    /// The role's MaxSessionDuration: how long a session issued before a cut
    /// can live, so how long the cut must stay.
    pub max_session: TimeDelta,
    /// Every inline policy of the role: name and decoded document.
    pub inline_policies: Vec<(String, String)>,
}

impl TargetRole {
    /// The document of [`POLICY_NAME`], when the role has one.
    pub fn cut_document(&self) -> Option<&str> {
        self.inline_policies
            .iter()
            .find(|(name, _)| name == POLICY_NAME)
            .map(|(_, doc)| doc.as_str())
    }

    /// Characters IAM counts for the role's *other* inline policies.
    pub fn others_chars(&self) -> usize {
        self.inline_policies
            .iter()
            .filter(|(name, _)| name != POLICY_NAME)
            .map(|(_, doc)| counted_chars(doc))
            .sum()
    }
}

impl Sessions {
    /// `function` names the caller in production's CloudTrail
    /// (`changegate-<function>`, e.g. `changegate-revoke`).
    pub fn new(
        sdk: &SdkConfig,
        partition: impl Into<String>,
        cutter_role: RoleName,
        function: &str,
    ) -> Self {
        Self {
            sts: aws_sdk_sts::Client::new(sdk),
            sdk: sdk.clone(),
            partition: partition.into(),
            cutter_role,
            session_name: session_name(function),
        }
    }

    /// `arn:<partition>:iam::<account>:role/<cutter role>`.
    pub fn cutter_role_arn(&self, account: &AccountId) -> String {
        format!(
            "arn:{}:iam::{account}:role/{}",
            self.partition, self.cutter_role
        )
    }

    /// Assumes the cutter role in `account`. Unreachable or refused is a
    /// [`Fault`]: the revocation is retried and alarmed like any other.
    pub async fn open(&self, account: &AccountId) -> Result<ProductionIam, Fault> {
        const OP: &str = "sts:AssumeRole";
        let out = self
            .sts
            .assume_role()
            .role_arn(self.cutter_role_arn(account))
            .role_session_name(&self.session_name)
            .duration_seconds(900)
            .send()
            .await
            .map_err(Fault::aws(OP))?;
        let c = out.credentials().ok_or_else(|| Fault::Unexpected {
            operation: OP,
            why: "no credentials in the answer".to_owned(),
        })?;
        let expiry = SystemTime::try_from(*c.expiration()).ok();
        let credentials = aws_sdk_iam::config::Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_owned()),
            expiry,
            "changegate-session-cutter",
        );
        let config = aws_sdk_iam::config::Builder::from(&self.sdk)
            .credentials_provider(credentials)
            .build();
        Ok(ProductionIam {
            account: account.clone(),
            iam: aws_sdk_iam::Client::from_conf(config),
        })
    }
}

/// `changegate-<function>`, cut to STS's limits (2-64 of `[\w+=,.@-]`).
fn session_name(function: &str) -> String {
    let clean: String = function
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let mut name = format!("changegate-{clean}");
    name.truncate(64);
    name
}

impl ProductionIam {
    pub fn account(&self) -> &AccountId {
        &self.account
    }

    /// The target role with its inline policies; `None` when there is no such role.
    pub async fn target_role(&self, role: &RoleName) -> Result<Option<TargetRole>, Fault> {
        let found = match self.iam.get_role().role_name(role.as_str()).send().await {
            Ok(out) => out,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_no_such_entity_exception()) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(Fault::aws("iam:GetRole")(e)),
        };
        let r = found.role().ok_or_else(|| Fault::Unexpected {
            operation: "iam:GetRole",
            why: "no role in the answer".to_owned(),
        })?;
        let max_session = TimeDelta::seconds(
            r.max_session_duration()
                .map_or(DEFAULT_MAX_SESSION_SECONDS, i64::from),
        );
        let role_id = r.role_id().to_owned();
        let mut names = Vec::new();
        let mut pages = self
            .iam
            .list_role_policies()
            .role_name(role.as_str())
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(Fault::aws("iam:ListRolePolicies"))?;
            names.extend(page.policy_names().iter().cloned());
        }
        let mut inline_policies = Vec::with_capacity(names.len());
        for name in names {
            match self
                .iam
                .get_role_policy()
                .role_name(role.as_str())
                .policy_name(&name)
                .send()
                .await
            {
                Ok(out) => inline_policies.push((name, decode(out.policy_document())?)),
                // Deleted between the listing and the read: it no longer counts.
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_no_such_entity_exception()) => {}
                Err(e) => return Err(Fault::aws("iam:GetRolePolicy")(e)),
            }
        }
        Ok(Some(TargetRole {
            name: role.clone(),
            role_id,
            max_session,
            inline_policies,
        }))
    }

    /// Writes [`POLICY_NAME`] on the role.
    pub async fn put_cut(&self, role: &RoleName, document: &str) -> Result<(), Fault> {
        self.iam
            .put_role_policy()
            .role_name(role.as_str())
            .policy_name(POLICY_NAME)
            .policy_document(document)
            .send()
            .await
            .map(|_| ())
            .map_err(Fault::aws("iam:PutRolePolicy"))
    }

    /// Deletes [`POLICY_NAME`] from the role; `false` when it was already gone.
    pub async fn delete_cut(&self, role: &RoleName) -> Result<bool, Fault> {
        match self
            .iam
            .delete_role_policy()
            .role_name(role.as_str())
            .policy_name(POLICY_NAME)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_no_such_entity_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(Fault::aws("iam:DeleteRolePolicy")(e)),
        }
    }

    /// Applies what [`changegate::session::SessionCut::render`] decided.
    pub async fn write(&self, role: &RoleName, written: &Written) -> Result<(), Fault> {
        match written {
            Written::Put(document) => self.put_cut(role, document).await,
            Written::Delete => self.delete_cut(role).await.map(|_| ()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_function_names_when_naming_the_session_then_sts_limits_hold() {
        assert_eq!(session_name("revoke"), "changegate-revoke");
        assert_eq!(session_name("a b/c"), "changegate-a-b-c");
        assert_eq!(session_name(&"x".repeat(100)).len(), 64);
    }

    #[test]
    fn given_a_role_with_other_policies_when_budgeting_then_only_the_others_count() {
        let role = TargetRole {
            name: RoleName::parse("CM-Prd-role").unwrap(),
            role_id: "AROAEXAMPLE".to_owned(),
            max_session: TimeDelta::hours(1),
            inline_policies: vec![
                ("guardrail".to_owned(), "{ \"a\" : 1 }".to_owned()),
                (POLICY_NAME.to_owned(), "{\"cut\":1}".to_owned()),
            ],
        };
        assert_eq!(role.others_chars(), 7);
        assert_eq!(role.cut_document(), Some("{\"cut\":1}"));
    }

    #[test]
    fn given_a_partition_when_naming_the_cutter_then_the_arn_is_in_that_partition() {
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        let s = Sessions::new(
            &sdk,
            "aws-cn",
            RoleName::parse("changegate-session-cutter").unwrap(),
            "revoke",
        );
        assert_eq!(
            s.cutter_role_arn(&AccountId::parse("111122223333").unwrap()),
            "arn:aws-cn:iam::111122223333:role/changegate-session-cutter"
        );
    }
}
