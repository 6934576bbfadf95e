//! Typed configuration, read once at cold start. A missing or malformed value
//! stops the function with a message naming the variable; an empty value counts
//! as unset.

use std::collections::BTreeSet;

use chrono::TimeDelta;

use crate::approval::Approver;
use crate::eligibility::Scope;
use crate::ids::{AccountId, RoleName};
use crate::operator::Operators;

pub const VAR_TARGET_ROLE: &str = "CHANGEGATE_TARGET_ROLE";
pub const VAR_ALLOWED_ACCOUNTS: &str = "CHANGEGATE_ALLOWED_ACCOUNTS";
pub const VAR_MAX_DURATION: &str = "CHANGEGATE_MAX_DURATION_MINUTES";
pub const VAR_TOPIC_ARN: &str = "CHANGEGATE_TOPIC_ARN";
pub const VAR_EVENT_BUS: &str = "CHANGEGATE_EVENT_BUS";
pub const VAR_ALLOW_DELEGATED: &str = "CHANGEGATE_ALLOW_DELEGATED";
pub const VAR_MAX_START_AHEAD_DAYS: &str = "CHANGEGATE_MAX_START_AHEAD_DAYS";
pub const VAR_MAX_OPEN_REQUESTS: &str = "CHANGEGATE_MAX_OPEN_REQUESTS";
pub const VAR_REQUESTER_BOUNDARY: &str = "CHANGEGATE_REQUESTER_BOUNDARY";
pub const VAR_EXPIRY_GROUP: &str = "CHANGEGATE_EXPIRY_SCHEDULE_GROUP";
pub const VAR_EXPIRY_TARGET: &str = "CHANGEGATE_EXPIRY_TARGET_ARN";
pub const VAR_EXPIRY_ROLE: &str = "CHANGEGATE_EXPIRY_ROLE_ARN";
pub const VAR_DECISIONS_TABLE: &str = "CHANGEGATE_DECISIONS_TABLE";
pub const VAR_SOURCES: &str = "CHANGEGATE_SOURCES";
pub const VAR_CHANGE_TEMPLATE: &str = "CHANGEGATE_CHANGE_TEMPLATE";
pub const VAR_ACCESS_RUNBOOK: &str = "CHANGEGATE_ACCESS_RUNBOOK";
pub const VAR_REQUEST_RUNBOOK: &str = "CHANGEGATE_REQUEST_RUNBOOK";
pub const VAR_APPROVERS: &str = "CHANGEGATE_APPROVERS";
pub const VAR_MIN_APPROVALS: &str = "CHANGEGATE_MIN_APPROVALS";
pub const VAR_APPROVER_SESSIONS_ARE_PEOPLE: &str = "CHANGEGATE_APPROVER_SESSIONS_ARE_PEOPLE";
pub const VAR_REQUIRE_SESSION_NAME: &str = "CHANGEGATE_REQUIRE_SESSION_NAME";
pub const VAR_SESSION_CUTTER_ROLE: &str = "CHANGEGATE_SESSION_CUTTER_ROLE";
pub const VAR_OPERATORS: &str = "CHANGEGATE_OPERATORS";
pub const VAR_OPERATOR_RUNBOOK: &str = "CHANGEGATE_OPERATOR_RUNBOOK";

pub const DEFAULT_TARGET_ROLE: &str = "CM-Prd-role";
pub const DEFAULT_MAX_DURATION_MINUTES: i64 = 480;
pub const MAX_DURATION_LIMIT_MINUTES: i64 = 1440;
pub const DEFAULT_CHANGE_TEMPLATE: &str = "changegate-access";
pub const DEFAULT_ACCESS_RUNBOOK: &str = "changegate-access-runbook";
pub const DEFAULT_REQUEST_RUNBOOK: &str = "changegate-access-request";
pub const DEFAULT_OPERATOR_RUNBOOK: &str = "changegate-end-access";
pub const DEFAULT_MAX_START_AHEAD_DAYS: i64 = 30;
pub const MAX_START_AHEAD_LIMIT_DAYS: i64 = 365;
/// How many request runbook executions one person may hold open at once.
pub const DEFAULT_MAX_OPEN_REQUESTS: i64 = 5;
/// AWS's default quota of concurrent Automation executions per account.
pub const MAX_OPEN_REQUESTS_LIMIT: i64 = 100;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{var} is not set; it must be {expected}")]
    Missing {
        var: &'static str,
        expected: &'static str,
    },
    #[error("{var}={value:?} is not valid; it must be {expected}")]
    Invalid {
        var: &'static str,
        value: String,
        expected: &'static str,
    },
}

/// How configuration is looked up: the process environment in the functions.
pub trait Source {
    fn get(&self, var: &str) -> Option<String>;
}

impl<F: Fn(&str) -> Option<String>> Source for F {
    fn get(&self, var: &str) -> Option<String> {
        self(var)
    }
}

fn value(src: &impl Source, var: &str) -> Option<String> {
    src.get(var)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// A required name: 1 to `max` characters of letters, digits and `extra`.
fn name(
    src: &impl Source,
    var: &'static str,
    max: usize,
    extra: &[u8],
    expected: &'static str,
) -> Result<Option<String>, ConfigError> {
    match value(src, var) {
        None => Ok(None),
        Some(v)
            if v.len() <= max
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || extra.contains(&b)) =>
        {
            Ok(Some(v))
        }
        Some(v) => Err(ConfigError::Invalid {
            var,
            value: v,
            expected,
        }),
    }
}

fn required(
    found: Option<String>,
    var: &'static str,
    expected: &'static str,
) -> Result<String, ConfigError> {
    found.ok_or(ConfigError::Missing { var, expected })
}

/// changegate's own event bus (never `default`: notify listens there only).
fn event_bus(src: &impl Source) -> Result<String, ConfigError> {
    const EXPECTED: &str =
        "the name of changegate's own event bus (letters, digits, . - _ /), not default";
    let bus = required(
        name(src, VAR_EVENT_BUS, 256, b".-_/", EXPECTED)?,
        VAR_EVENT_BUS,
        EXPECTED,
    )?;
    if bus == "default" {
        return Err(ConfigError::Invalid {
            var: VAR_EVENT_BUS,
            value: bus,
            expected: EXPECTED,
        });
    }
    Ok(bus)
}

/// The DynamoDB table of decisions.
fn decisions_table(src: &impl Source) -> Result<String, ConfigError> {
    const EXPECTED: &str = "a DynamoDB table name (3-255 letters, digits, . - _)";
    let table = required(
        name(src, VAR_DECISIONS_TABLE, 255, b".-_", EXPECTED)?,
        VAR_DECISIONS_TABLE,
        EXPECTED,
    )?;
    if table.len() < 3 {
        return Err(ConfigError::Invalid {
            var: VAR_DECISIONS_TABLE,
            value: table,
            expected: EXPECTED,
        });
    }
    Ok(table)
}

/// An SSM document name, or its default.
fn document(src: &impl Source, var: &'static str, default: &str) -> Result<String, ConfigError> {
    const EXPECTED: &str = "an SSM document name (3-128 letters, digits, . - _)";
    Ok(name(src, var, 128, b".-_", EXPECTED)?.unwrap_or_else(|| default.to_owned()))
}

/// A whole number from `src`, or `default` when unset; out of range is an error.
fn number(
    src: &impl Source,
    var: &'static str,
    default: i64,
    range: std::ops::RangeInclusive<i64>,
    expected: &'static str,
) -> Result<i64, ConfigError> {
    match value(src, var) {
        None => Ok(default),
        Some(v) => {
            v.parse::<i64>()
                .ok()
                .filter(|n| range.contains(n))
                .ok_or(ConfigError::Invalid {
                    var,
                    value: v,
                    expected,
                })
        }
    }
}

/// The cutter role's name in the production accounts, if sessions are cut.
fn session_cutter(src: &impl Source) -> Result<Option<RoleName>, ConfigError> {
    match value(src, VAR_SESSION_CUTTER_ROLE) {
        None => Ok(None),
        Some(v) => RoleName::parse(&v)
            .map(Some)
            .map_err(|_| ConfigError::Invalid {
                var: VAR_SESSION_CUTTER_ROLE,
                value: v,
                expected: "an IAM role name (1-64 characters of letters, digits and + = , . @ _ -)",
            }),
    }
}

/// `true` or `false`, or `default` when unset.
fn flag(src: &impl Source, var: &'static str, default: bool) -> Result<bool, ConfigError> {
    match value(src, var).as_deref() {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(v) => Err(ConfigError::Invalid {
            var,
            value: v.to_owned(),
            expected: "true or false",
        }),
    }
}

/// Where grant puts the one-time EventBridge Scheduler schedule that removes
/// a grant at its window's end (the one-minute sweep stays as the safety net).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpirySchedules {
    pub group: String,
    /// The revoke function.
    pub target_arn: String,
    /// The role EventBridge Scheduler assumes to invoke it.
    pub role_arn: String,
}

fn schedule_group(src: &impl Source) -> Result<Option<String>, ConfigError> {
    const EXPECTED: &str = "an EventBridge Scheduler group name (1-64 letters, digits, - _ .)";
    match value(src, VAR_EXPIRY_GROUP) {
        None => Ok(None),
        Some(v)
            if v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) =>
        {
            Ok(Some(v))
        }
        Some(v) => Err(ConfigError::Invalid {
            var: VAR_EXPIRY_GROUP,
            value: v,
            expected: EXPECTED,
        }),
    }
}

/// All three expiry variables, or none (no schedules; the sweep alone revokes).
fn expiry_schedules(src: &impl Source) -> Result<Option<ExpirySchedules>, ConfigError> {
    let arn = |var: &'static str,
               service: &str,
               expected: &'static str|
     -> Result<Option<String>, ConfigError> {
        match value(src, var) {
            None => Ok(None),
            Some(v) if v.starts_with("arn:") && v.split(':').nth(2) == Some(service) => Ok(Some(v)),
            Some(v) => Err(ConfigError::Invalid {
                var,
                value: v,
                expected,
            }),
        }
    };
    let group = schedule_group(src)?;
    let target = arn(
        VAR_EXPIRY_TARGET,
        "lambda",
        "the revoke function's ARN (arn:aws:lambda:...)",
    )?;
    let role = arn(
        VAR_EXPIRY_ROLE,
        "iam",
        "an IAM role ARN (arn:aws:iam::...:role/...)",
    )?;
    const ALL: &str = "set together with CHANGEGATE_EXPIRY_SCHEDULE_GROUP, CHANGEGATE_EXPIRY_TARGET_ARN and CHANGEGATE_EXPIRY_ROLE_ARN (or none of them)";
    match (group, target, role) {
        (None, None, None) => Ok(None),
        (Some(group), Some(target_arn), Some(role_arn)) => Ok(Some(ExpirySchedules {
            group,
            target_arn,
            role_arn,
        })),
        (g, t, _) => Err(ConfigError::Missing {
            var: if g.is_none() {
                VAR_EXPIRY_GROUP
            } else if t.is_none() {
                VAR_EXPIRY_TARGET
            } else {
                VAR_EXPIRY_ROLE
            },
            expected: ALL,
        }),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantConfig {
    pub target_role: RoleName,
    pub allowed_accounts: BTreeSet<AccountId>,
    pub max_duration: TimeDelta,
    /// How far ahead of now a window may start.
    pub max_start_ahead: TimeDelta,
    /// How many requests one person may hold open at once (the request
    /// runbook's executions they started); one more is refused and stopped.
    pub max_open_requests: usize,
    /// Whether a request may ask access for someone other than its requester.
    pub allow_delegated: bool,
    /// Whether sessions must be named after the user (`sts:RoleSessionName`).
    pub require_session_name: bool,
    /// The permissions boundary (a managed policy's ARN) a user must have to
    /// receive a grant; `None`: any user may.
    pub requester_boundary: Option<String>,
    pub event_bus: String,
    pub decisions_table: String,
    pub expiry: Option<ExpirySchedules>,
    /// The role changegate assumes in each production account to cut sessions; `None`: no cut.
    pub session_cutter: Option<RoleName>,
    /// Change Manager requests, with changegate's own change template and runbook.
    pub change_manager: Option<ChangeManagerSource>,
    /// Plain Automation requests, with changegate's request runbook.
    pub automation: Option<AutomationSource>,
    /// Who approves, on both paths.
    pub approvals: Approvals,
}

/// The deployment's approvers (`ApproverArns`) and minimum, which every
/// approval step must have run with, and how their decisions are counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approvals {
    /// As configured, in order: a change template's level lists the first five.
    pub approvers: Vec<Approver>,
    pub min_approvals: usize,
    /// Whether a role session's name is bound to the person behind it (the
    /// role's trust policy requires `sts:RoleSessionName` = `${aws:username}`
    /// or a source identity), so that sessions count as the user they are
    /// named after; otherwise every session of a role counts as that one role.
    pub sessions_are_people: bool,
}

impl Approvals {
    /// The most approvers a change template's approval level holds.
    pub const CHANGE_MANAGER_LEVEL_MAX: usize = 5;

    /// The approvers the stack's change template lists: the first five.
    pub fn change_manager_level(&self) -> &[Approver] {
        &self.approvers[..self.approvers.len().min(Self::CHANGE_MANAGER_LEVEL_MAX)]
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeManagerSource {
    pub template: String,
    pub runbook: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutomationSource {
    pub runbook: String,
}

/// The deployment's approvers, required whatever the sources: both the
/// request runbook and the change template approve through them.
fn approvals(src: &impl Source) -> Result<Approvals, ConfigError> {
    const APPROVERS: &str =
        "a comma-separated list of IAM user or role ARNs (the deployment's approvers)";
    let list = value(src, VAR_APPROVERS).ok_or(ConfigError::Missing {
        var: VAR_APPROVERS,
        expected: APPROVERS,
    })?;
    let approvers = list
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(Approver::parse_arn)
        .collect::<Option<Vec<_>>>()
        .filter(|a| !a.is_empty())
        .ok_or_else(|| ConfigError::Invalid {
            var: VAR_APPROVERS,
            value: list.clone(),
            expected: APPROVERS,
        })?;
    let min = number(
        src,
        VAR_MIN_APPROVALS,
        1,
        1..=10,
        "a whole number of approvals from 1 to 10",
    )?;
    Ok(Approvals {
        approvers,
        min_approvals: usize::try_from(min).unwrap_or(1),
        sessions_are_people: flag(src, VAR_APPROVER_SESSIONS_ARE_PEOPLE, false)?,
    })
}

fn sources(
    src: &impl Source,
) -> Result<(Option<ChangeManagerSource>, Option<AutomationSource>), ConfigError> {
    const EXPECTED: &str = "automation, change-manager, or automation,change-manager";
    let raw = value(src, VAR_SOURCES).unwrap_or_else(|| "automation".to_owned());
    let (mut cm, mut auto) = (false, false);
    for part in raw.split(',').map(str::trim) {
        match part {
            "automation" => auto = true,
            "change-manager" => cm = true,
            _ => {
                return Err(ConfigError::Invalid {
                    var: VAR_SOURCES,
                    value: raw,
                    expected: EXPECTED,
                });
            }
        }
    }
    let change_manager = if cm {
        Some(ChangeManagerSource {
            template: document(src, VAR_CHANGE_TEMPLATE, DEFAULT_CHANGE_TEMPLATE)?,
            runbook: document(src, VAR_ACCESS_RUNBOOK, DEFAULT_ACCESS_RUNBOOK)?,
        })
    } else {
        None
    };
    let automation = if auto {
        Some(AutomationSource {
            runbook: document(src, VAR_REQUEST_RUNBOOK, DEFAULT_REQUEST_RUNBOOK)?,
        })
    } else {
        None
    };
    Ok((change_manager, automation))
}

/// Whether `arn` is shaped as an IAM managed policy's ARN.
fn is_policy_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    matches!(parts.as_slice(), ["arn", partition, "iam", "", account, resource]
        if partition.starts_with("aws")
            && (*account == "aws" || AccountId::parse(account).is_ok())
            && resource.strip_prefix("policy/").is_some_and(|n| !n.is_empty()))
}

fn target_role(src: &impl Source) -> Result<RoleName, ConfigError> {
    match value(src, VAR_TARGET_ROLE) {
        None => {
            RoleName::parse(DEFAULT_TARGET_ROLE).map_err(|_| unreachable!("the default is valid"))
        }
        Some(v) => RoleName::parse(&v).map_err(|_| ConfigError::Invalid {
            var: VAR_TARGET_ROLE,
            value: v,
            expected: "an IAM role name (1-64 characters of letters, digits and + = , . @ _ -)",
        }),
    }
}

const ACCOUNTS: &str = "a comma-separated list of 12-digit AWS account ids";

/// The allowlisted accounts; `None` when the variable is unset.
fn allowed_accounts(src: &impl Source) -> Result<Option<BTreeSet<AccountId>>, ConfigError> {
    let Some(raw) = value(src, VAR_ALLOWED_ACCOUNTS) else {
        return Ok(None);
    };
    raw.split(',')
        .map(|a| AccountId::parse(a.trim()))
        .collect::<Result<BTreeSet<_>, _>>()
        .map(Some)
        .map_err(|_| ConfigError::Invalid {
            var: VAR_ALLOWED_ACCOUNTS,
            value: raw.clone(),
            expected: ACCOUNTS,
        })
}

impl GrantConfig {
    pub fn from_source(src: &impl Source) -> Result<Self, ConfigError> {
        let target_role = target_role(src)?;
        let allowed_accounts = allowed_accounts(src)?.ok_or(ConfigError::Missing {
            var: VAR_ALLOWED_ACCOUNTS,
            expected: ACCOUNTS,
        })?;
        let max_minutes = number(
            src,
            VAR_MAX_DURATION,
            DEFAULT_MAX_DURATION_MINUTES,
            1..=MAX_DURATION_LIMIT_MINUTES,
            "a whole number of minutes from 1 to 1440",
        )?;
        let ahead_days = number(
            src,
            VAR_MAX_START_AHEAD_DAYS,
            DEFAULT_MAX_START_AHEAD_DAYS,
            0..=MAX_START_AHEAD_LIMIT_DAYS,
            "a whole number of days from 0 to 365",
        )?;
        let max_open = number(
            src,
            VAR_MAX_OPEN_REQUESTS,
            DEFAULT_MAX_OPEN_REQUESTS,
            1..=MAX_OPEN_REQUESTS_LIMIT,
            "a whole number of requests from 1 to 100",
        )?;
        let allow_delegated = flag(src, VAR_ALLOW_DELEGATED, false)?;
        let require_session_name = flag(src, VAR_REQUIRE_SESSION_NAME, true)?;
        let requester_boundary = match value(src, VAR_REQUESTER_BOUNDARY) {
            None => None,
            Some(arn) if is_policy_arn(&arn) => Some(arn),
            Some(arn) => {
                return Err(ConfigError::Invalid {
                    var: VAR_REQUESTER_BOUNDARY,
                    value: arn,
                    expected: "a managed policy's ARN (arn:<partition>:iam::<account id or aws>:policy/<name>)",
                });
            }
        };
        let session_cutter = session_cutter(src)?;
        // The cut denies a person's sessions by their name: sessions named
        // anything else would outlive it.
        if session_cutter.is_some() && !require_session_name {
            return Err(ConfigError::Invalid {
                var: VAR_REQUIRE_SESSION_NAME,
                value: "false".to_owned(),
                expected: "true while CHANGEGATE_SESSION_CUTTER_ROLE is set (the session cut matches sessions by their name)",
            });
        }
        let (change_manager, automation) = sources(src)?;
        Ok(Self {
            target_role,
            allowed_accounts,
            max_duration: TimeDelta::minutes(max_minutes),
            max_start_ahead: TimeDelta::days(ahead_days),
            max_open_requests: usize::try_from(max_open).unwrap_or(1),
            allow_delegated,
            require_session_name,
            requester_boundary,
            event_bus: event_bus(src)?,
            decisions_table: decisions_table(src)?,
            expiry: expiry_schedules(src)?,
            session_cutter,
            change_manager,
            automation,
            approvals: approvals(src)?,
        })
    }

    /// The allowlist as people read it: `111122223333, 444455556666`.
    pub fn allowed_accounts_list(&self) -> String {
        self.allowed_accounts
            .iter()
            .map(AccountId::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokeConfig {
    pub event_bus: String,
    pub decisions_table: String,
    /// Where grant's expiry schedules live, to delete one when a request ends early.
    pub expiry_group: Option<String>,
    /// The role changegate assumes in each production account to cut sessions; `None`: no cut.
    pub session_cutter: Option<RoleName>,
    /// The end runbook and the operators, who may end any request (unset: nobody but a request's own people).
    pub operators: Operators,
    /// What the deployment grants, which the sweep holds active grants to
    /// (grant's `CHANGEGATE_ALLOWED_ACCOUNTS` and `CHANGEGATE_TARGET_ROLE`);
    /// `None` when the allowlist is unset: eligibility is then not re-checked.
    pub eligibility: Option<Scope>,
}

impl RevokeConfig {
    pub fn from_source(src: &impl Source) -> Result<Self, ConfigError> {
        const OPERATORS: &str = "a comma-separated list of IAM user or role ARNs (the operators)";
        let operators = match value(src, VAR_OPERATORS) {
            None => Vec::new(),
            Some(list) => Operators::parse_list(&list).map_err(|_| ConfigError::Invalid {
                var: VAR_OPERATORS,
                value: list.clone(),
                expected: OPERATORS,
            })?,
        };
        Ok(Self {
            event_bus: event_bus(src)?,
            decisions_table: decisions_table(src)?,
            expiry_group: schedule_group(src)?,
            session_cutter: session_cutter(src)?,
            operators: Operators {
                runbook: document(src, VAR_OPERATOR_RUNBOOK, DEFAULT_OPERATOR_RUNBOOK)?,
                operators,
            },
            eligibility: match allowed_accounts(src)? {
                Some(allowed_accounts) => Some(Scope {
                    target_role: target_role(src)?,
                    allowed_accounts,
                }),
                None => None,
            },
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyConfig {
    pub topic_arn: String,
    /// The decision table: changegate's own events are rendered from its records.
    pub decisions_table: String,
    /// The deployment's change template (grant's); `None`: Change Manager is
    /// not a source, and no change request is announced.
    pub change_template: Option<String>,
    /// Whether the deployment cuts live sessions (grant's session cutter role is set).
    pub sessions_cut: bool,
    /// The deployment's request runbook (grant's), whose approval steps get
    /// changegate's own approval-request card; `None`: no such card.
    pub request_runbook: Option<String>,
}

impl NotifyConfig {
    pub fn from_source(src: &impl Source) -> Result<Self, ConfigError> {
        const EXPECTED: &str = "an SNS topic ARN (arn:aws:sns:<region>:<account>:<name>)";
        let topic_arn = value(src, VAR_TOPIC_ARN).ok_or(ConfigError::Missing {
            var: VAR_TOPIC_ARN,
            expected: EXPECTED,
        })?;
        let parts: Vec<&str> = topic_arn.split(':').collect();
        let valid = parts.len() == 6
            && parts[0] == "arn"
            && parts[2] == "sns"
            && AccountId::parse(parts[4]).is_ok()
            && !parts[5].is_empty();
        if !valid {
            return Err(ConfigError::Invalid {
                var: VAR_TOPIC_ARN,
                value: topic_arn,
                expected: EXPECTED,
            });
        }
        const TEMPLATE: &str = "an SSM document name (3-128 letters, digits, . - _)";
        Ok(Self {
            topic_arn,
            decisions_table: decisions_table(src)?,
            change_template: name(src, VAR_CHANGE_TEMPLATE, 128, b".-_", TEMPLATE)?,
            sessions_cut: session_cutter(src)?.is_some(),
            request_runbook: name(src, VAR_REQUEST_RUNBOOK, 128, b".-_", TEMPLATE)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    /// The variables a grant function needs, plus `extra` (which wins).
    fn grant_env(
        extra: &'static [(&'static str, &'static str)],
    ) -> impl Fn(&str) -> Option<String> {
        const BASE: [(&str, &str); 4] = [
            (VAR_ALLOWED_ACCOUNTS, "111122223333, 444455556666"),
            (VAR_EVENT_BUS, "changegate"),
            (VAR_DECISIONS_TABLE, "changegate-decisions"),
            (VAR_APPROVERS, "arn:aws:iam::123456789012:user/bob"),
        ];
        move |k| {
            extra
                .iter()
                .chain(BASE.iter())
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn given_grants_scope_when_reading_revoke_config_then_the_sweep_holds_grants_to_it() {
        const BASE: [(&str, &str); 2] = [
            (VAR_EVENT_BUS, "changegate"),
            (VAR_DECISIONS_TABLE, "changegate-decisions"),
        ];
        let unscoped = RevokeConfig::from_source(&env(&BASE)).unwrap();
        assert_eq!(unscoped.eligibility, None, "no allowlist: not re-checked");
        const SCOPED: [(&str, &str); 4] = [
            BASE[0],
            BASE[1],
            (VAR_ALLOWED_ACCOUNTS, "111122223333, 444455556666"),
            (VAR_TARGET_ROLE, "Prod"),
        ];
        let scope = RevokeConfig::from_source(&env(&SCOPED))
            .unwrap()
            .eligibility
            .unwrap();
        assert_eq!(scope.target_role.as_str(), "Prod");
        assert_eq!(scope.allowed_accounts.len(), 2);
        const BAD: [(&str, &str); 3] = [BASE[0], BASE[1], (VAR_ALLOWED_ACCOUNTS, "1111")];
        assert!(matches!(
            RevokeConfig::from_source(&env(&BAD)),
            Err(ConfigError::Invalid {
                var: VAR_ALLOWED_ACCOUNTS,
                ..
            })
        ));
    }

    #[test]
    fn given_only_the_required_values_when_reading_grant_config_then_defaults_fill_the_rest() {
        let c = GrantConfig::from_source(&grant_env(&[])).unwrap();
        assert_eq!(c.target_role.as_str(), "CM-Prd-role");
        assert_eq!(c.max_duration, TimeDelta::minutes(480));
        assert_eq!(c.event_bus, "changegate");
        assert_eq!(c.max_start_ahead, TimeDelta::days(30));
        assert_eq!(c.max_open_requests, 5);
        assert_eq!(
            c.requester_boundary, None,
            "no boundary required by default"
        );
        assert!(!c.allow_delegated);
        assert!(
            c.require_session_name,
            "sessions named after their person by default"
        );
        assert_eq!(c.allowed_accounts_list(), "111122223333, 444455556666");
        assert_eq!(c.change_manager, None, "Automation alone by default");
        let auto = c.automation.unwrap();
        assert_eq!(auto.runbook, "changegate-access-request");
        assert_eq!(c.approvals.min_approvals, 1);
        assert!(
            !c.approvals.sessions_are_people,
            "role sessions count as their role by default"
        );
        assert_eq!(
            c.approvals
                .approvers
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["arn:aws:iam::123456789012:user/bob"]
        );
        let both =
            GrantConfig::from_source(&grant_env(&[(VAR_SOURCES, "automation,change-manager")]))
                .unwrap();
        assert_eq!(both.change_manager.unwrap().template, "changegate-access");
        let cm = GrantConfig::from_source(&grant_env(&[(VAR_SOURCES, "change-manager")])).unwrap();
        assert!(cm.automation.is_none() && cm.change_manager.is_some());
        assert_eq!(
            GrantConfig::from_source(&grant_env(&[
                (VAR_SOURCES, "change-manager"),
                (VAR_APPROVERS, ""),
            ])),
            Err(ConfigError::Missing {
                var: VAR_APPROVERS,
                expected: "a comma-separated list of IAM user or role ARNs (the deployment's approvers)"
            }),
            "the change template approves through the same approvers"
        );
    }

    #[test]
    fn given_approver_settings_when_reading_then_order_is_kept_and_sessions_are_people_only_when_said()
     {
        let c = GrantConfig::from_source(&grant_env(&[
            (
                VAR_APPROVERS,
                "arn:aws:iam::123456789012:role/Approvers, arn:aws:iam::123456789012:user/ops/bob,arn:aws:iam::123456789012:user/carol,arn:aws:iam::123456789012:user/dave,arn:aws:iam::123456789012:user/erin,arn:aws:iam::123456789012:user/frank",
            ),
            (VAR_MIN_APPROVALS, "2"),
            (VAR_APPROVER_SESSIONS_ARE_PEOPLE, "true"),
        ]))
        .unwrap();
        assert!(c.approvals.sessions_are_people);
        assert_eq!(c.approvals.min_approvals, 2);
        let names = |a: &[Approver]| a.iter().map(ToString::to_string).collect::<Vec<_>>();
        assert_eq!(
            names(c.approvals.change_manager_level()),
            [
                "arn:aws:iam::123456789012:role/Approvers",
                "arn:aws:iam::123456789012:user/bob",
                "arn:aws:iam::123456789012:user/carol",
                "arn:aws:iam::123456789012:user/dave",
                "arn:aws:iam::123456789012:user/erin",
            ]
        );
        assert_eq!(c.approvals.approvers.len(), 6);
        let few =
            GrantConfig::from_source(&grant_env(&[(VAR_APPROVER_SESSIONS_ARE_PEOPLE, "false")]))
                .unwrap();
        assert_eq!(few.approvals.change_manager_level().len(), 1);
    }

    #[test]
    fn given_missing_or_malformed_values_when_reading_config_then_the_error_names_the_variable() {
        let err = GrantConfig::from_source(&env(&[])).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("CHANGEGATE_ALLOWED_ACCOUNTS is not set"),
            "{err}"
        );
        let err =
            GrantConfig::from_source(&grant_env(&[(VAR_ALLOWED_ACCOUNTS, "  ")])).unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Missing {
                var: VAR_ALLOWED_ACCOUNTS,
                ..
            }
        ));
        for var in [VAR_EVENT_BUS, VAR_DECISIONS_TABLE, VAR_APPROVERS] {
            let lookup = grant_env(&[]);
            let without = move |k: &str| if k == var { None } else { lookup(k) };
            let err = GrantConfig::from_source(&without).unwrap_err();
            assert!(
                matches!(&err, ConfigError::Missing { var: v, .. } if *v == var),
                "{err}"
            );
        }
        for (var, bad) in [
            (VAR_ALLOWED_ACCOUNTS, "111122223333,*"),
            (VAR_MAX_DURATION, "0"),
            (VAR_MAX_DURATION, "8h"),
            (VAR_MAX_DURATION, "1441"),
            (VAR_TARGET_ROLE, "role/admin"),
            (VAR_EVENT_BUS, "my bus"),
            (VAR_EVENT_BUS, "default"),
            (VAR_DECISIONS_TABLE, "x"),
            (VAR_ALLOW_DELEGATED, "yes"),
            (VAR_ALLOW_DELEGATED, "TRUE"),
            (VAR_REQUIRE_SESSION_NAME, "no"),
            (VAR_SESSION_CUTTER_ROLE, "role/cutter"),
            (VAR_MAX_START_AHEAD_DAYS, "-1"),
            (VAR_MAX_OPEN_REQUESTS, "0"),
            (VAR_MAX_OPEN_REQUESTS, "101"),
            (
                VAR_REQUESTER_BOUNDARY,
                "arn:aws:iam::123456789012:role/boundary",
            ),
            (VAR_REQUESTER_BOUNDARY, "arn:aws:iam::1234:policy/boundary"),
            (VAR_REQUESTER_BOUNDARY, "arn:aws:iam::aws:policy/"),
            (VAR_SOURCES, "email"),
            (VAR_APPROVERS, "bob"),
            (VAR_APPROVERS, "arn:aws:iam::123456789012:group/approvers"),
            (
                VAR_APPROVERS,
                "arn:aws:sts::123456789012:assumed-role/Approvers/bob",
            ),
            (VAR_APPROVER_SESSIONS_ARE_PEOPLE, "yes"),
            (VAR_MIN_APPROVALS, "0"),
            (VAR_REQUEST_RUNBOOK, "a b"),
        ] {
            let lookup = grant_env(&[]);
            let with = move |k: &str| {
                if k == var {
                    Some(bad.to_owned())
                } else {
                    lookup(k)
                }
            };
            let err = GrantConfig::from_source(&with).unwrap_err();
            assert!(
                matches!(&err, ConfigError::Invalid { var: v, value, .. } if *v == var && value == bad),
                "{err}"
            );
            assert!(err.to_string().starts_with(&format!("{var}=")), "{err}");
        }
    }

    #[test]
    fn given_the_session_cut_on_when_sessions_need_not_be_named_then_grant_refuses_to_start() {
        let cut_unnamed = GrantConfig::from_source(&grant_env(&[
            (VAR_SESSION_CUTTER_ROLE, "changegate-session-cutter"),
            (VAR_REQUIRE_SESSION_NAME, "false"),
        ]))
        .unwrap_err();
        assert!(
            matches!(&cut_unnamed, ConfigError::Invalid { var, .. } if *var == VAR_REQUIRE_SESSION_NAME),
            "{cut_unnamed}"
        );
        assert_eq!(
            cut_unnamed.to_string(),
            "CHANGEGATE_REQUIRE_SESSION_NAME=\"false\" is not valid; it must be true while \
             CHANGEGATE_SESSION_CUTTER_ROLE is set (the session cut matches sessions by their name)"
        );
        // Either alone is a valid deployment.
        for extra in [
            &[(VAR_SESSION_CUTTER_ROLE, "changegate-session-cutter")][..],
            &[(VAR_REQUIRE_SESSION_NAME, "false")][..],
        ] {
            let lookup = move |k: &str| {
                extra
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_owned())
                    .or_else(|| grant_env(&[])(k))
            };
            assert!(GrantConfig::from_source(&lookup).is_ok());
        }
    }

    #[test]
    fn given_expiry_schedule_settings_when_reading_then_all_three_or_none() {
        assert_eq!(
            GrantConfig::from_source(&grant_env(&[])).unwrap().expiry,
            None
        );
        let all = GrantConfig::from_source(&grant_env(&[
            (VAR_EXPIRY_GROUP, "changegate"),
            (
                VAR_EXPIRY_TARGET,
                "arn:aws:lambda:us-east-1:123456789012:function:revoke",
            ),
            (VAR_EXPIRY_ROLE, "arn:aws:iam::123456789012:role/scheduler"),
        ]))
        .unwrap();
        assert_eq!(all.expiry.unwrap().group, "changegate");
        let partial =
            GrantConfig::from_source(&grant_env(&[(VAR_EXPIRY_GROUP, "changegate")])).unwrap_err();
        assert!(
            matches!(
                partial,
                ConfigError::Missing {
                    var: VAR_EXPIRY_TARGET,
                    ..
                }
            ),
            "{partial}"
        );
        let wrong = GrantConfig::from_source(&grant_env(&[
            (VAR_EXPIRY_GROUP, "changegate"),
            (
                VAR_EXPIRY_TARGET,
                "arn:aws:sns:us-east-1:123456789012:topic",
            ),
            (VAR_EXPIRY_ROLE, "arn:aws:iam::123456789012:role/scheduler"),
        ]))
        .unwrap_err();
        assert!(
            matches!(
                wrong,
                ConfigError::Invalid {
                    var: VAR_EXPIRY_TARGET,
                    ..
                }
            ),
            "{wrong}"
        );
    }

    #[test]
    fn given_topic_arns_when_reading_notify_config_then_only_sns_arns_pass() {
        assert!(
            NotifyConfig::from_source(&env(&[
                (
                    VAR_TOPIC_ARN,
                    "arn:aws:sns:us-east-1:123456789012:changegate"
                ),
                (VAR_DECISIONS_TABLE, "changegate-decisions")
            ]))
            .is_ok()
        );
        assert!(matches!(
            NotifyConfig::from_source(&env(&[])),
            Err(ConfigError::Missing {
                var: VAR_TOPIC_ARN,
                ..
            })
        ));
        assert!(matches!(
            NotifyConfig::from_source(&env(&[(VAR_TOPIC_ARN, "changegate")])),
            Err(ConfigError::Invalid {
                var: VAR_TOPIC_ARN,
                ..
            })
        ));
    }

    #[test]
    fn given_notify_without_the_decision_table_when_configured_then_it_stops_naming_the_variable() {
        const TOPIC: (&str, &str) = (
            VAR_TOPIC_ARN,
            "arn:aws:sns:us-east-1:123456789012:changegate",
        );
        assert!(matches!(
            NotifyConfig::from_source(&env(&[TOPIC])),
            Err(ConfigError::Missing {
                var: VAR_DECISIONS_TABLE,
                ..
            })
        ));
        let config = NotifyConfig::from_source(&env(&[
            TOPIC,
            (VAR_DECISIONS_TABLE, "changegate-decisions"),
            (VAR_CHANGE_TEMPLATE, "stack-access"),
            (VAR_SESSION_CUTTER_ROLE, "changegate-session-cutter"),
        ]))
        .unwrap();
        assert_eq!(config.change_template.as_deref(), Some("stack-access"));
        assert!(config.sessions_cut);
        let plain = NotifyConfig::from_source(&env(&[
            TOPIC,
            (VAR_DECISIONS_TABLE, "changegate-decisions"),
        ]))
        .unwrap();
        assert_eq!(
            (plain.change_template, plain.sessions_cut),
            (None, false),
            "no template: no change request is announced"
        );
    }
}
