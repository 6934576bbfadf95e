//! Identifiers that cannot hold a bad value. Each is parsed once, at the edge.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a string is not a valid identifier. The wording is read by requesters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("it is empty")]
    Empty,
    #[error("it is {len} characters long; the most allowed is {max}")]
    TooLong { len: usize, max: usize },
    #[error(
        "it contains {0:?}, which is not allowed (allowed: letters A-Z and a-z, digits, and + = , . @ _ -)"
    )]
    BadCharacter(char),
    #[error("it must be exactly 12 digits (0-9)")]
    NotTwelveDigits,
    #[error("it must be made of letters, digits and hyphens only")]
    NotAnExecutionId,
    #[error("it must be 16 to 128 letters, digits or underscores (IAM's unique id)")]
    NotAUniqueId,
}

/// An AWS account id: exactly twelve ASCII digits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccountId(String);

impl AccountId {
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        if raw.len() == 12 && raw.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(IdError::NotTwelveDigits)
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Characters IAM allows in user and role names: `[\w+=,.@-]`, ASCII only.
fn is_iam_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '=' | ',' | '.' | '@' | '-')
}

fn parse_iam_name(raw: &str, max: usize) -> Result<String, IdError> {
    if raw.is_empty() {
        return Err(IdError::Empty);
    }
    if let Some(bad) = raw.chars().find(|c| !is_iam_name_char(*c)) {
        return Err(IdError::BadCharacter(bad));
    }
    let len = raw.chars().count();
    if len > max {
        return Err(IdError::TooLong { len, max });
    }
    Ok(raw.to_owned())
}

/// An IAM user name (1-64 characters of `[\w+=,.@-]`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IamUserName(String);

impl IamUserName {
    pub const MAX_LEN: usize = 64;
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        parse_iam_name(raw, Self::MAX_LEN).map(Self)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// IAM user names are unique regardless of case: `Alice` is `alice`.
    pub fn same_name(&self, other: &Self) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}

/// IAM's unique id of a user (GetUser's `UserId`, `AIDA...`): unlike the
/// name, a rename keeps it (IAM: "Unique identifiers"; the API's pattern is
/// `[\w]+`, 16 to 128 characters).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IamUserId(String);

impl IamUserId {
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        let ok = (16..=128).contains(&raw.len())
            && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(IdError::NotAUniqueId)
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An IAM role name (1-64 characters of `[\w+=,.@-]`), without a path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RoleName(String);

impl RoleName {
    pub const MAX_LEN: usize = 64;
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        parse_iam_name(raw, Self::MAX_LEN).map(Self)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// Whether both name the same role: IAM role names are unique
    /// regardless of case (IAM User Guide, IAM identifiers: roles "are not
    /// distinguished by case").
    pub fn same_role(&self, other: &Self) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}

/// A change request id (the id of its Automation execution, a UUID on AWS).
/// Restricted so that `changegate-<id>` is always a valid IAM policy name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChangeRequestId(String);

impl ChangeRequestId {
    pub const MAX_LEN: usize = 100;
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        if raw.is_empty() {
            return Err(IdError::Empty);
        }
        if raw.len() > Self::MAX_LEN {
            return Err(IdError::TooLong {
                len: raw.chars().count(),
                max: Self::MAX_LEN,
            });
        }
        if !raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(IdError::NotAnExecutionId);
        }
        Ok(Self(raw.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An AWS partition (`aws`, `aws-cn`, `aws-us-gov`, ...): lowercase letters and hyphens.
fn is_partition(raw: &str) -> bool {
    !raw.is_empty() && raw.len() <= 32 && raw.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
}

/// Where changegate runs: its partition and account. Read from the function's
/// own ARN (Lambda's invocation context), so it costs no call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Home {
    pub partition: String,
    pub account: AccountId,
}

impl Home {
    /// From `arn:<partition>:lambda:<region>:<account>:function:<name>[:<qualifier>]`.
    pub fn from_function_arn(arn: &str) -> Option<Self> {
        let mut parts = arn.split(':');
        let (prefix, partition, service, _region, account, kind) = (
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
        );
        if prefix != "arn" || service != "lambda" || kind != "function" || !is_partition(partition)
        {
            return None;
        }
        Some(Self {
            partition: partition.to_owned(),
            account: AccountId::parse(account).ok()?,
        })
    }

    /// The IAM user `user` of this account.
    pub fn user(&self, user: &IamUserName) -> UserArn {
        UserArn {
            partition: self.partition.clone(),
            account: self.account.clone(),
            user: user.clone(),
        }
    }
}

/// An IAM user, whole: partition, account and name. Two users are the same
/// person only if all three match (names compared as IAM does, ignoring case).
#[derive(Debug, Clone, Eq)]
pub struct UserArn {
    pub partition: String,
    pub account: AccountId,
    pub user: IamUserName,
}

impl PartialEq for UserArn {
    fn eq(&self, other: &Self) -> bool {
        self.partition == other.partition
            && self.account == other.account
            && self.user.same_name(&other.user)
    }
}

impl fmt::Display for UserArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arn:{}:iam::{}:user/{}",
            self.partition, self.account, self.user
        )
    }
}

impl UserArn {
    /// Parses an IAM user ARN; `None` for anything else (roles, assumed roles, root, junk).
    pub fn parse(raw: &str) -> Option<Self> {
        match Principal::parse(raw)? {
            Principal::User(user) => Some(user),
            Principal::AssumedRole { .. } => None,
        }
    }

    pub fn is_in(&self, home: &Home) -> bool {
        self.partition == home.partition && self.account == home.account
    }
}

/// Who signed a call, as Systems Manager records it: an IAM user, or a
/// role session (`arn:<p>:sts::<account>:assumed-role/<role>/<session>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    User(UserArn),
    AssumedRole {
        partition: String,
        account: AccountId,
        role: RoleName,
        session: String,
    },
}

/// An ARN of a global service (IAM, STS): `arn:<partition>:<service>::<account>:<resource>`,
/// its partition and account checked.
pub(crate) struct GlobalArn<'a> {
    pub partition: &'a str,
    pub service: &'a str,
    pub account: AccountId,
    pub resource: &'a str,
}

impl<'a> GlobalArn<'a> {
    /// `None` unless it starts with `arn`, has a valid partition, no region
    /// and a valid account.
    pub(crate) fn parse(raw: &'a str) -> Option<Self> {
        let mut parts = raw.splitn(6, ':');
        let (arn, partition, service, region, account, resource) = (
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
        );
        if arn != "arn" || !is_partition(partition) || !region.is_empty() {
            return None;
        }
        Some(Self {
            partition,
            service,
            account: AccountId::parse(account).ok()?,
            resource,
        })
    }
}

impl Principal {
    pub fn parse(raw: &str) -> Option<Self> {
        let GlobalArn {
            partition,
            service,
            account,
            resource,
        } = GlobalArn::parse(raw)?;
        let partition = partition.to_owned();
        match service {
            "iam" => {
                let path_and_name = resource.strip_prefix("user/")?;
                let name = path_and_name.rsplit('/').next()?;
                Some(Self::User(UserArn {
                    partition,
                    account,
                    user: IamUserName::parse(name).ok()?,
                }))
            }
            "sts" => {
                let (role, session) = resource.strip_prefix("assumed-role/")?.split_once('/')?;
                let session_ok =
                    (2..=64).contains(&session.len()) && session.chars().all(is_iam_name_char);
                session_ok.then_some(())?;
                Some(Self::AssumedRole {
                    partition,
                    account,
                    role: RoleName::parse(role).ok()?,
                    session: session.to_owned(),
                })
            }
            _ => None,
        }
    }

    /// Whether this principal may be the person `user`: the same IAM user, or
    /// a role session named after them (session names are usually the
    /// person's name; a session named otherwise cannot be tied to anyone).
    pub fn may_be(&self, user: &UserArn) -> bool {
        match self {
            Self::User(u) => u == user,
            Self::AssumedRole { session, .. } => session.eq_ignore_ascii_case(user.user.as_str()),
        }
    }
}

macro_rules! string_newtype_traits {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                Self::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    )*};
}
string_newtype_traits!(AccountId, IamUserName, IamUserId, RoleName, ChangeRequestId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_twelve_digits_when_parsing_account_then_accepted_and_anything_else_refused() {
        assert_eq!(
            AccountId::parse("111122223333").unwrap().as_str(),
            "111122223333"
        );
        for bad in [
            "",
            "11112222333",
            "1111222233334",
            "11112222333a",
            "１１１１２２２２３３３３",
            " 111122223333",
            "*",
        ] {
            assert_eq!(
                AccountId::parse(bad),
                Err(IdError::NotTwelveDigits),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn given_iam_name_rules_when_parsing_user_then_only_valid_names_pass() {
        assert!(IamUserName::parse("alice.smith+ops@example.com").is_ok());
        assert_eq!(IamUserName::parse(""), Err(IdError::Empty));
        assert_eq!(
            IamUserName::parse("al ice"),
            Err(IdError::BadCharacter(' '))
        );
        assert_eq!(
            IamUserName::parse("alice\"}"),
            Err(IdError::BadCharacter('"'))
        );
        assert_eq!(IamUserName::parse("аlice"), Err(IdError::BadCharacter('а'))); // Cyrillic a
        assert_eq!(
            IamUserName::parse(&"a".repeat(65)),
            Err(IdError::TooLong { len: 65, max: 64 })
        );
    }

    #[test]
    fn given_iams_unique_id_pattern_when_parsing_a_user_id_then_only_16_to_128_word_characters_pass()
     {
        let id = IamUserId::parse("AIDACKCEVSQ6C2EXAMPLE").unwrap();
        assert_eq!(id.as_str(), "AIDACKCEVSQ6C2EXAMPLE");
        assert!(IamUserId::parse(&"A".repeat(16)).is_ok());
        assert!(IamUserId::parse(&"A".repeat(128)).is_ok());
        for bad in [
            "",
            "AIDA",
            &"A".repeat(15),
            &"A".repeat(129),
            "AIDACKCEVSQ6C2EXAMP-E",
            "AIDACKCEVSQ6C2EXAMPLÉ",
        ] {
            assert_eq!(IamUserId::parse(bad), Err(IdError::NotAUniqueId), "{bad}");
        }
    }

    #[test]
    fn given_user_arns_when_parsing_then_name_and_account_extracted_and_non_users_rejected() {
        let arn = UserArn::parse("arn:aws:iam::123456789012:user/ops/JohnDoe").unwrap();
        assert_eq!(arn.user.as_str(), "JohnDoe");
        assert_eq!(arn.partition, "aws");
        assert_eq!(arn.account.as_str(), "123456789012");
        assert!(UserArn::parse("arn:aws:sts::123456789012:assumed-role/Admin/john").is_none());
        assert!(UserArn::parse("arn:aws:iam::123456789012:root").is_none());
        assert!(UserArn::parse("arn:aws:iam::123456789012:role/Admin").is_none());
        assert!(UserArn::parse("JohnDoe").is_none());
    }

    #[test]
    fn given_users_of_the_same_name_when_compared_then_only_the_same_partition_and_account_is_the_same_person()
     {
        let alice = UserArn::parse("arn:aws:iam::123456789012:user/alice").unwrap();
        assert_eq!(
            alice,
            UserArn::parse("arn:aws:iam::123456789012:user/team/Alice").unwrap()
        );
        assert_ne!(
            alice,
            UserArn::parse("arn:aws:iam::999988887777:user/alice").unwrap()
        );
        assert_ne!(
            alice,
            UserArn::parse("arn:aws-cn:iam::123456789012:user/alice").unwrap()
        );
        let session =
            Principal::parse("arn:aws:sts::123456789012:assumed-role/Approvers/ALICE").unwrap();
        assert!(session.may_be(&alice));
        let other =
            Principal::parse("arn:aws:sts::123456789012:assumed-role/Approvers/bob").unwrap();
        assert!(!other.may_be(&alice));
        assert_eq!(
            Principal::parse("arn:aws:sts::123456789012:assumed-role/Approvers/x:y"),
            None
        );
    }

    #[test]
    fn given_the_functions_own_arn_when_reading_home_then_partition_and_account_come_out() {
        let home = Home::from_function_arn(
            "arn:aws-us-gov:lambda:us-gov-west-1:123456789012:function:grant:live",
        )
        .unwrap();
        assert_eq!(home.partition, "aws-us-gov");
        assert_eq!(home.account.as_str(), "123456789012");
        assert_eq!(
            Home::from_function_arn("arn:aws:iam::123456789012:role/x"),
            None
        );
        assert_eq!(Home::from_function_arn(""), None);
    }

    #[test]
    fn given_execution_ids_when_parsing_then_uuid_accepted_and_injection_refused() {
        assert!(ChangeRequestId::parse("d0585556-80f6-4522-8dad-dada6d45b67d").is_ok());
        assert_eq!(
            ChangeRequestId::parse("a/b"),
            Err(IdError::NotAnExecutionId)
        );
        assert_eq!(ChangeRequestId::parse(""), Err(IdError::Empty));
    }
}
