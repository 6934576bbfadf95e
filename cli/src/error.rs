//! What can go wrong, each with its exit code and what to do next.

use std::process::ExitCode;

/// The documented exit codes (`changegate --help`, docs/cli.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Done.
    Ok = 0,
    /// AWS could not be reached or answered with an error: nothing was decided.
    Fault = 1,
    /// The command line is wrong (clap uses 2 too).
    Usage = 2,
    /// Refused: changegate would refuse it, or has, or the command will not
    /// do it for you (your own request, someone else's access).
    Refused = 3,
    /// Not decided yet, or not started yet: try again later.
    Waiting = 4,
    /// No such request, grant or stack.
    NotFound = 5,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e as u8)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Waiting(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{what}")]
    Fault { what: String, hint: String },
}

impl CliError {
    pub fn exit(&self) -> Exit {
        match self {
            Self::Usage(_) => Exit::Usage,
            Self::Refused(_) => Exit::Refused,
            Self::Waiting(_) => Exit::Waiting,
            Self::NotFound(_) => Exit::NotFound,
            Self::Fault { .. } => Exit::Fault,
        }
    }

    /// What to do next, when there is more to say than the message.
    pub fn hint(&self) -> Option<&str> {
        match self {
            Self::Fault { hint, .. } if !hint.is_empty() => Some(hint),
            _ => None,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Usage(_) => "usage",
            Self::Refused(_) => "refused",
            Self::Waiting(_) => "waiting",
            Self::NotFound(_) => "not-found",
            Self::Fault { .. } => "fault",
        }
    }
}

impl From<changegate::fault::Fault> for CliError {
    fn from(f: changegate::fault::Fault) -> Self {
        aws_fault(&f.to_string())
    }
}

/// An AWS error in words, with what to check: credentials and region for
/// anything unreachable, the stack's managed policies for a refusal.
pub fn aws_fault(message: &str) -> CliError {
    let denied = ["AccessDenied", "not authorized", "UnauthorizedOperation"]
        .iter()
        .any(|m| message.contains(m));
    let expired = [
        "ExpiredToken",
        "InvalidClientTokenId",
        "UnrecognizedClient",
        "credentials",
    ]
    .iter()
    .any(|m| message.contains(m));
    let hint = if denied {
        "AWS refused the call for your credentials: ask for the stack's managed policy for your part (outputs RequesterPolicyArn, ApproverPolicyArn, OperatorPolicyArn)"
    } else if expired {
        "check your AWS credentials (aws sts get-caller-identity; for IAM Identity Center, aws sso login)"
    } else {
        "check your network, AWS_REGION / --region and AWS_PROFILE, then try again: nothing was changed by a call that failed"
    };
    CliError::Fault {
        what: format!("AWS answered with an error: {message}"),
        hint: hint.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_each_kind_when_mapped_then_the_exit_codes_differ_as_documented() {
        let codes = [
            CliError::Fault {
                what: String::new(),
                hint: String::new(),
            }
            .exit() as u8,
            CliError::Usage(String::new()).exit() as u8,
            CliError::Refused(String::new()).exit() as u8,
            CliError::Waiting(String::new()).exit() as u8,
            CliError::NotFound(String::new()).exit() as u8,
        ];
        assert_eq!(codes, [1, 2, 3, 4, 5]);
    }

    #[test]
    fn given_an_access_denied_answer_when_explained_then_it_names_the_managed_policies() {
        let e = aws_fault("ssm:StartAutomationExecution: AccessDeniedException: no");
        assert!(
            e.hint().is_some_and(|h| h.contains("RequesterPolicyArn")),
            "{e:?}"
        );
        let e = aws_fault("sts:GetCallerIdentity: ExpiredToken: gone");
        assert!(
            e.hint().is_some_and(|h| h.contains("aws sso login")),
            "{e:?}"
        );
        let e = aws_fault("dispatch failure: connection refused");
        assert!(
            e.hint().is_some_and(|h| h.contains("nothing was changed")),
            "{e:?}"
        );
    }
}
