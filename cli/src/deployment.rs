//! What the command knows about a deployment: the settings grant checks
//! requests against, read from the stack's own SSM parameter
//! (`/changegate/stacks/<stack>/cli`, template.yaml `CliSettings`), whose
//! keys are the functions' environment variables. Parsed once, at the edge,
//! by the same code the functions read their environment with.

use std::collections::BTreeMap;

use changegate::config::{GrantConfig, RevokeConfig, VAR_REQUEST_RUNBOOK};
use changegate::ids::AccountId;
use changegate::operator::Operators;

use crate::error::CliError;

/// The account aliases' key in the settings (template.yaml `AccountAliases`).
pub const VAR_ACCOUNT_ALIASES: &str = "CHANGEGATE_ACCOUNT_ALIASES";

/// The SSM parameter holding stack `stack`'s settings for this command.
pub fn parameter_name(stack: &str) -> String {
    format!("/changegate/stacks/{stack}/cli")
}

#[derive(Debug, Clone)]
pub struct Deployment {
    pub stack: String,
    pub grant: GrantConfig,
    /// The request runbook's name (`RequestSources` includes Automation).
    pub request_runbook: Option<String>,
    /// The end runbook and the operators.
    pub operators: Operators,
    /// Short names for accounts, as the deployment gives them.
    pub aliases: BTreeMap<String, AccountId>,
}

impl Deployment {
    /// The settings as the parameter holds them (a JSON object of strings).
    pub fn parse(stack: &str, text: &str) -> Result<Self, CliError> {
        let broken = |why: String| CliError::Fault {
            what: format!(
                "the settings of stack {stack} ({}) are unreadable: {why}",
                parameter_name(stack)
            ),
            hint: "redeploy the stack, or ask whoever runs changegate".into(),
        };
        let map: BTreeMap<String, String> =
            serde_json::from_str(text).map_err(|e| broken(e.to_string()))?;
        let get = |k: &str| map.get(k).cloned();
        let grant = GrantConfig::from_source(&get).map_err(|e| broken(e.to_string()))?;
        let revoke = RevokeConfig::from_source(&get).map_err(|e| broken(e.to_string()))?;
        let value = |k: &str| {
            map.get(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let aliases =
            parse_aliases(value(VAR_ACCOUNT_ALIASES).as_deref().unwrap_or("")).map_err(broken)?;
        Ok(Self {
            stack: stack.to_owned(),
            request_runbook: value(VAR_REQUEST_RUNBOOK).filter(|_| grant.automation.is_some()),
            operators: revoke.operators,
            aliases,
            grant,
        })
    }

    /// An account by its id or its alias.
    pub fn account(&self, raw: &str) -> Result<AccountId, CliError> {
        if let Ok(id) = AccountId::parse(raw) {
            return Ok(id);
        }
        if let Some(id) = self.aliases.get(&raw.to_ascii_lowercase()) {
            return Ok(id.clone());
        }
        let known = if self.aliases.is_empty() {
            format!(
                "this deployment names no aliases; use a 12-digit account id ({})",
                self.grant.allowed_accounts_list()
            )
        } else {
            format!("known aliases: {}", self.aliases_list())
        };
        Err(CliError::Usage(format!(
            "'{raw}' is neither an account id nor an alias of stack {}: {known}",
            self.stack
        )))
    }

    /// `prod (111122223333), staging (444455556666)`.
    pub fn aliases_list(&self) -> String {
        self.aliases
            .iter()
            .map(|(alias, id)| format!("{alias} ({id})"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The alias of an account, if it has one.
    pub fn alias_of(&self, account: &str) -> Option<&str> {
        self.aliases
            .iter()
            .find(|(_, id)| id.as_str() == account)
            .map(|(alias, _)| alias.as_str())
    }

    /// The request runbook, or why there is none.
    pub fn request_runbook(&self) -> Result<&str, CliError> {
        self.request_runbook.as_deref().ok_or_else(|| {
            CliError::Usage(format!(
                "stack {} takes requests through Change Manager only (RequestSources); file a change request with its change template",
                self.stack
            ))
        })
    }
}

/// `prod=111122223333,staging=444455556666`: lower-case aliases, each once.
pub fn parse_aliases(raw: &str) -> Result<BTreeMap<String, AccountId>, String> {
    let mut out = BTreeMap::new();
    for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (alias, id) = entry
            .split_once('=')
            .ok_or_else(|| format!("alias '{entry}' is not name=account id"))?;
        let alias = alias.trim().to_ascii_lowercase();
        let id = AccountId::parse(id.trim())
            .map_err(|_| format!("alias '{entry}' does not name a 12-digit account id"))?;
        if alias.is_empty() || out.insert(alias.clone(), id).is_some() {
            return Err(format!("alias '{alias}' is empty or named twice"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(extra: &[(&str, &str)]) -> String {
        let mut map: BTreeMap<&str, &str> = [
            ("CHANGEGATE_ALLOWED_ACCOUNTS", "111122223333,444455556666"),
            ("CHANGEGATE_APPROVERS", "arn:aws:iam::123456789012:user/bob"),
            ("CHANGEGATE_EVENT_BUS", "changegate"),
            ("CHANGEGATE_DECISIONS_TABLE", "changegate-decisions"),
            ("CHANGEGATE_SOURCES", "automation"),
            ("CHANGEGATE_REQUEST_RUNBOOK", "changegate-access-request-x"),
            ("CHANGEGATE_OPERATOR_RUNBOOK", "changegate-end-access-x"),
            ("CHANGEGATE_CHANGE_TEMPLATE", ""),
        ]
        .into_iter()
        .collect();
        map.extend(extra.iter().copied());
        serde_json::to_string(&map).expect("json")
    }

    #[test]
    fn given_the_stacks_settings_when_parsed_then_they_are_the_grant_functions_configuration() {
        let d = Deployment::parse(
            "changegate",
            &settings(&[("CHANGEGATE_ACCOUNT_ALIASES", "Prod=111122223333")]),
        )
        .expect("parsed");
        assert_eq!(d.grant.allowed_accounts.len(), 2);
        assert_eq!(
            d.request_runbook.as_deref(),
            Some("changegate-access-request-x")
        );
        assert_eq!(d.operators.runbook, "changegate-end-access-x");
        assert_eq!(d.account("prod").expect("alias").as_str(), "111122223333");
        assert_eq!(
            d.account("444455556666").expect("id").as_str(),
            "444455556666"
        );
        assert_eq!(d.alias_of("111122223333"), Some("prod"));
    }

    #[test]
    fn given_an_unknown_alias_when_resolved_then_the_error_lists_the_known_ones() {
        let d = Deployment::parse(
            "cg",
            &settings(&[("CHANGEGATE_ACCOUNT_ALIASES", "prod=111122223333")]),
        )
        .expect("parsed");
        let e = d.account("staging").expect_err("unknown").to_string();
        assert!(e.contains("prod (111122223333)"), "{e}");
        let bare = Deployment::parse("cg", &settings(&[])).expect("parsed");
        let e = bare.account("prod").expect_err("no aliases").to_string();
        assert!(e.contains("111122223333, 444455556666"), "{e}");
    }

    #[test]
    fn given_settings_grant_would_refuse_to_start_with_when_parsed_then_the_command_says_they_are_unreadable()
     {
        let e = Deployment::parse(
            "cg",
            &settings(&[("CHANGEGATE_MAX_DURATION_MINUTES", "lots")]),
        )
        .expect_err("bad");
        assert!(
            e.to_string().contains("CHANGEGATE_MAX_DURATION_MINUTES"),
            "{e}"
        );
        assert!(Deployment::parse("cg", "not json").is_err());
    }

    #[test]
    fn given_change_manager_only_when_asked_for_the_request_runbook_then_it_says_to_file_a_change_request()
     {
        let d = Deployment::parse(
            "cg",
            &settings(&[
                ("CHANGEGATE_SOURCES", "change-manager"),
                ("CHANGEGATE_CHANGE_TEMPLATE", "t"),
            ]),
        )
        .expect("parsed");
        let e = d.request_runbook().expect_err("none").to_string();
        assert!(e.contains("Change Manager only"), "{e}");
    }

    #[test]
    fn given_malformed_aliases_when_parsed_then_each_is_refused_with_what_is_wrong() {
        assert!(
            parse_aliases("prod")
                .unwrap_err()
                .contains("name=account id")
        );
        assert!(parse_aliases("prod=123").unwrap_err().contains("12-digit"));
        assert!(
            parse_aliases("prod=111122223333,PROD=444455556666")
                .unwrap_err()
                .contains("twice")
        );
        assert_eq!(parse_aliases("").expect("none").len(), 0);
    }
}
