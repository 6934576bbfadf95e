//! The access request: the change request's runbook parameters, parsed into
//! types that cannot hold a bad value.

use std::collections::BTreeMap;

use crate::ids::{AccountId, IamUserName};
use crate::refusal::Refusal;
use crate::window::{Window, human_time, parse_time};

pub const PARAM_USER: &str = "IAMUserName";
pub const PARAM_ACCOUNT: &str = "AWSAccountId";
pub const PARAM_START: &str = "StartTime";
pub const PARAM_END: &str = "EndTime";
pub const PARAMETERS: [&str; 4] = [PARAM_USER, PARAM_ACCOUNT, PARAM_START, PARAM_END];

/// Runbook parameters as Systems Manager returns them: name to list of values.
pub type RawParameters = BTreeMap<String, Vec<String>>;

/// What a requester asked for, fully parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRequest {
    pub user: IamUserName,
    pub account: AccountId,
    pub window: Window,
}

/// Text with control and invisible formatting characters escaped (`\u{a}`,
/// `\u{200b}`), so that what people read is what is there.
pub fn printable(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        if c.is_control() || matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{feff}') {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// Hostile text shown back to people: [`printable`], and at most 80 characters.
pub fn shown(raw: &str) -> String {
    const MAX: usize = 80;
    let mut out: String = printable(&raw.chars().take(MAX).collect::<String>());
    if raw.chars().count() > MAX {
        out.push('…');
    }
    out
}

fn single<'a>(params: &'a RawParameters, name: &'static str) -> Result<&'a str, Refusal> {
    match params.get(name).map(Vec::as_slice) {
        None | Some([]) => Err(Refusal::MissingParameter { name }),
        Some([one]) => Ok(one.as_str()),
        Some(many) => Err(Refusal::MultipleValues { name, count: many.len() }),
    }
}

/// Parses the four runbook parameters; anything missing, extra, multi-valued or
/// malformed is a refusal naming the parameter and what is wrong with it.
pub fn parse_parameters(params: &RawParameters) -> Result<AccessRequest, Refusal> {
    if let Some(unknown) = params.keys().find(|k| !PARAMETERS.contains(&k.as_str())) {
        return Err(Refusal::UnknownParameter { name: shown(unknown) });
    }
    let user = IamUserName::parse(single(params, PARAM_USER)?)
        .map_err(|why| Refusal::InvalidUserName { why })?;
    let account = AccountId::parse(single(params, PARAM_ACCOUNT)?)
        .map_err(|why| Refusal::InvalidAccountId { why })?;
    let start = parse_time(single(params, PARAM_START)?)
        .map_err(|why| Refusal::InvalidTime { name: PARAM_START, why })?;
    let end = parse_time(single(params, PARAM_END)?)
        .map_err(|why| Refusal::InvalidTime { name: PARAM_END, why })?;
    let window = Window::new(start, end).map_err(|_| Refusal::EndNotAfterStart {
        start: human_time(start),
        end: human_time(end),
    })?;
    Ok(AccessRequest { user, account, window })
}

#[cfg(test)]
pub(crate) fn params(pairs: &[(&str, &str)]) -> RawParameters {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), vec![(*v).to_owned()])).collect()
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
        let req = parse_parameters(&good()).unwrap();
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
            (without("EndTime"), Refusal::MissingParameter { name: "EndTime" }),
            (with("IAMUserName", vec![]), Refusal::MissingParameter { name: "IAMUserName" }),
            (with("AWSAccountId", vec!["111122223333", "444455556666"]), Refusal::MultipleValues { name: "AWSAccountId", count: 2 }),
            (with("Extra", vec!["x"]), Refusal::UnknownParameter { name: "Extra".into() }),
            (with("IAMUserName", vec!["alice\",\"Resource\":\"*"]), Refusal::InvalidUserName { why: IdError::BadCharacter('"') }),
            (with("AWSAccountId", vec!["*"]), Refusal::InvalidAccountId { why: IdError::NotTwelveDigits }),
            (with("StartTime", vec!["2026-12-01T18:00:00"]), Refusal::InvalidTime { name: "StartTime", why: TimeError::MissingOffset }),
            (
                with("EndTime", vec!["2026-12-01T09:00:00Z"]),
                Refusal::EndNotAfterStart {
                    start: "2026-12-01 09:00:00 UTC (2026-12-01 18:00:00 +09:00)".into(),
                    end: "2026-12-01 09:00:00 UTC".into(),
                },
            ),
        ];
        for (p, want) in cases {
            assert_eq!(parse_parameters(&p), Err(want));
        }
    }

    #[test]
    fn given_hostile_text_when_shown_back_then_control_characters_are_escaped_and_length_bounded() {
        assert_eq!(shown("a\nb\u{0}\u{200b}\"'"), "a\\u{a}b\\u{0}\\u{200b}\"'");
        let long = "x".repeat(500);
        assert_eq!(shown(&long).chars().count(), 81);
    }
}
