//! A fault: an AWS call that did not succeed, or answered what it never
//! should. Unlike a refusal (an expected outcome, told to the people
//! involved), a fault fails the invocation so that Lambda retries it. The
//! ports ([`crate::ports`]) answer with it; the adapters build it from the
//! SDK's errors.

/// An AWS call that did not succeed: throttling, 5xx, timeouts, access denied.
/// A fault fails the invocation so that Lambda retries it.
#[derive(Debug, thiserror::Error)]
pub enum Fault {
    #[error("{operation} failed: {message}")]
    Aws {
        operation: &'static str,
        message: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{operation} returned an unexpected answer: {why}")]
    Unexpected {
        operation: &'static str,
        why: String,
    },
    #[error("the revocation sweep could not finish {} revocation(s): {}", .0.len(), .0.join("; "))]
    Sweep(Vec<String>),
}

impl Fault {
    pub fn unexpected<E: std::fmt::Display>(operation: &'static str) -> impl FnOnce(E) -> Self {
        move |why| Self::Unexpected {
            operation,
            why: why.to_string(),
        }
    }

    pub fn aws<E>(operation: &'static str) -> impl FnOnce(E) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        move |err| Self::Aws {
            operation,
            message: error_chain(&err),
            source: Box::new(err),
        }
    }

    /// A short name for the kind of fault, for metrics and Lambda's error type.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Aws { .. } => "changegate.AwsFault",
            Self::Unexpected { .. } => "changegate.UnexpectedAnswer",
            Self::Sweep(_) => "changegate.SweepIncomplete",
        }
    }
}

/// The error with its whole chain of causes, on one line.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}
