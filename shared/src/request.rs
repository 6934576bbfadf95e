//! The access request: the change request's runbook parameters, parsed into
//! types that cannot hold a bad value.

use std::collections::BTreeMap;

use crate::ids::{AccountId, ChangeRequestId, IamUserName};
use crate::refusal::Refusal;
use crate::text::{printable, shown};
use crate::window::{Window, human_time, parse_time};

pub const PARAM_USER: &str = "IAMUserName";
pub const PARAM_ACCOUNT: &str = "AWSAccountId";
pub const PARAM_START: &str = "StartTime";
pub const PARAM_END: &str = "EndTime";
/// The request runbook's optional free-text reason.
pub const PARAM_REASON: &str = "Reason";
/// The request runbook's optional link: the request this one extends
/// (`changegate extend`); empty for a request of its own.
pub const PARAM_EXTENDS: &str = "Extends";
pub const PARAMETERS: [&str; 4] = [PARAM_USER, PARAM_ACCOUNT, PARAM_START, PARAM_END];
/// The longest reason kept (it is shown to people, never interpreted).
pub const MAX_REASON_CHARS: usize = 500;

/// Runbook parameters as Systems Manager returns them: name to list of values.
pub type RawParameters = BTreeMap<String, Vec<String>>;

/// What a requester asked for, fully parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRequest {
    pub user: IamUserName,
    pub account: AccountId,
    pub window: Window,
    /// Why, in the requester's words (request runbook only), cleaned for display.
    pub reason: Option<String>,
    /// The request this one extends (request runbook only): once this one
    /// is granted, that one's grant is retired (see [`crate::extension`]).
    pub extends: Option<ChangeRequestId>,
}

fn single<'a>(params: &'a RawParameters, name: &'static str) -> Result<&'a str, Refusal> {
    match params.get(name).map(Vec::as_slice) {
        None | Some([]) => Err(Refusal::MissingParameter { name }),
        Some([one]) => Ok(one.as_str()),
        Some(many) => Err(Refusal::MultipleValues {
            name,
            count: many.len(),
        }),
    }
}

/// An optional parameter's one value; `None` when it is absent, has no
/// value, or only blanks (a runbook's `default: ''`).
fn optional<'a>(params: &'a RawParameters, name: &'static str) -> Result<Option<&'a str>, Refusal> {
    match params.get(name).map(Vec::as_slice) {
        None | Some([]) => Ok(None),
        Some([one]) if one.trim().is_empty() => Ok(None),
        Some([one]) => Ok(Some(one.as_str())),
        Some(many) => Err(Refusal::MultipleValues {
            name,
            count: many.len(),
        }),
    }
}

/// Parses the four runbook parameters (and, when `with_reason`, the request
/// runbook's optional `Reason` and `Extends`); anything missing, extra,
/// multi-valued or malformed is a refusal naming the parameter and what is
/// wrong with it.
pub fn parse_parameters(
    params: &RawParameters,
    with_reason: bool,
) -> Result<AccessRequest, Refusal> {
    let known = |k: &str| {
        PARAMETERS.contains(&k) || (with_reason && (k == PARAM_REASON || k == PARAM_EXTENDS))
    };
    if let Some(unknown) = params.keys().find(|k| !known(k)) {
        return Err(Refusal::UnknownParameter {
            name: shown(unknown),
        });
    }
    let reason = optional(params, PARAM_REASON)?
        .map(|one| printable(&one.chars().take(MAX_REASON_CHARS).collect::<String>()));
    let extends = optional(params, PARAM_EXTENDS)?
        .map(|one| {
            ChangeRequestId::parse(one.trim()).map_err(|why| Refusal::InvalidExtends { why })
        })
        .transpose()?;
    let user = IamUserName::parse(single(params, PARAM_USER)?)
        .map_err(|why| Refusal::InvalidUserName { why })?;
    let account = AccountId::parse(single(params, PARAM_ACCOUNT)?)
        .map_err(|why| Refusal::InvalidAccountId { why })?;
    let start = parse_time(single(params, PARAM_START)?).map_err(|why| Refusal::InvalidTime {
        name: PARAM_START,
        why,
    })?;
    let end = parse_time(single(params, PARAM_END)?).map_err(|why| Refusal::InvalidTime {
        name: PARAM_END,
        why,
    })?;
    let window = Window::new(start, end).map_err(|_| Refusal::EndNotAfterStart {
        start: human_time(start),
        end: human_time(end),
    })?;
    Ok(AccessRequest {
        user,
        account,
        window,
        reason,
        extends,
    })
}

#[cfg(test)]
pub(crate) fn params(pairs: &[(&str, &str)]) -> RawParameters {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), vec![(*v).to_owned()]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::IdError;
    use crate::window::TimeError;

    fn good() -> RawParameters {
        params(&[
            ("IAMUserName", "alice"),
            ("AWSAccountId", "111122223333"),
            ("StartTime", "2026-12-01T18:00:00+09:00"),
            ("EndTime", "2026-12-01T10:00:00Z"),
        ])
    }

    #[test]
    fn given_the_four_parameters_when_parsing_then_a_typed_request_comes_out() {
        let req = parse_parameters(&good(), false).unwrap();
        assert_eq!(req.user.as_str(), "alice");
        assert_eq!(req.account.as_str(), "111122223333");
        assert_eq!(req.window.duration().num_minutes(), 60);
    }

    #[test]
    fn given_bad_parameters_when_parsing_then_the_refusal_names_what_is_wrong() {
        let with = |k: &str, v: Vec<&str>| {
            let mut p = good();
            p.insert(k.to_owned(), v.into_iter().map(str::to_owned).collect());
            p
        };
        let without = |k: &str| {
            let mut p = good();
            p.remove(k);
            p
        };
        let cases = [
            (
                without("EndTime"),
                Refusal::MissingParameter { name: "EndTime" },
            ),
            (
                with("IAMUserName", vec![]),
                Refusal::MissingParameter {
                    name: "IAMUserName",
                },
            ),
            (
                with("AWSAccountId", vec!["111122223333", "444455556666"]),
                Refusal::MultipleValues {
                    name: "AWSAccountId",
                    count: 2,
                },
            ),
            (
                with("Extra", vec!["x"]),
                Refusal::UnknownParameter {
                    name: "Extra".into(),
                },
            ),
            (
                with("IAMUserName", vec!["alice\",\"Resource\":\"*"]),
                Refusal::InvalidUserName {
                    why: IdError::BadCharacter('"'),
                },
            ),
            (
                with("AWSAccountId", vec!["*"]),
                Refusal::InvalidAccountId {
                    why: IdError::NotTwelveDigits,
                },
            ),
            (
                with("StartTime", vec!["2026-12-01T18:00:00"]),
                Refusal::InvalidTime {
                    name: "StartTime",
                    why: TimeError::MissingOffset,
                },
            ),
            (
                with("EndTime", vec!["2026-12-01T09:00:00Z"]),
                Refusal::EndNotAfterStart {
                    start: "2026-12-01 09:00:00 UTC (2026-12-01 18:00:00 +09:00)".into(),
                    end: "2026-12-01 09:00:00 UTC".into(),
                },
            ),
        ];
        for (p, want) in cases {
            assert_eq!(parse_parameters(&p, false), Err(want));
        }
    }

    #[test]
    fn given_a_reason_when_parsing_then_only_the_request_runbook_accepts_it_and_it_is_cleaned() {
        let mut p = good();
        p.insert("Reason".into(), vec!["incident 4711\nfix the queue".into()]);
        assert_eq!(
            parse_parameters(&p, false),
            Err(Refusal::UnknownParameter {
                name: "Reason".into()
            })
        );
        let req = parse_parameters(&p, true).unwrap();
        assert_eq!(
            req.reason.as_deref(),
            Some("incident 4711\\u{a}fix the queue")
        );
        p.insert("Reason".into(), vec![" ".into()]);
        assert_eq!(parse_parameters(&p, true).unwrap().reason, None);
    }

    #[test]
    fn given_extends_when_parsing_then_the_runbook_takes_a_request_id_and_change_manager_none() {
        // Given the four parameters and Extends naming a request
        let mut p = good();
        p.insert(
            PARAM_EXTENDS.into(),
            vec!["d0585556-80f6-4522-8dad-dada6d45b67d".into()],
        );
        // Then the request runbook's request extends it
        let req = parse_parameters(&p, true).unwrap();
        assert_eq!(
            req.extends.map(|e| e.to_string()).as_deref(),
            Some("d0585556-80f6-4522-8dad-dada6d45b67d")
        );
        // And a change request cannot name it (its runbook has no such parameter)
        assert_eq!(
            parse_parameters(&p, false).unwrap_err().code(),
            "unknown-parameter"
        );
        // And anything but a request id is refused, saying so
        p.insert(PARAM_EXTENDS.into(), vec!["not an id".into()]);
        let refused = parse_parameters(&p, true).unwrap_err();
        assert_eq!(refused.code(), "invalid-extends");
        assert_eq!(
            refused.to_string(),
            format!(
                "Extends is not a request id: {}. Leave it empty, or name the request this one extends (changegate extend ID does).",
                IdError::NotAnExecutionId
            )
        );
    }
}
