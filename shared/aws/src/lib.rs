//! changegate's AWS side: the adapters that carry out the core's steps over
//! the AWS SDK ([`adapters`], [`records`], [`sessions`], [`ssm`]), the SDK's
//! retries and timeouts ([`sdk`]), metrics ([`metrics`]), the environment
//! ([`env`]), and the three functions' handlers ([`grant`], [`revoke`],
//! [`notify`]). The decisions live in the `changegate` crate; nothing here
//! decides.

pub mod adapters;
pub mod env;
pub mod grant;
pub mod metrics;
pub mod notify;
pub mod ports;
pub mod records;
pub mod revoke;
pub mod sdk;
pub mod sessions;
pub mod ssm;

pub use changegate::fault::Fault;

/// A fault as Lambda reports it: the error type (`changegate.AwsFault`, ...)
/// and the message. The functions' handlers fail with it, so that Lambda
/// retries the invocation.
#[derive(Debug)]
pub struct Failure(pub Fault);

impl From<Fault> for Failure {
    fn from(fault: Fault) -> Self {
        Self(fault)
    }
}

impl From<Failure> for lambda_runtime::Diagnostic {
    fn from(Failure(fault): Failure) -> Self {
        Self {
            error_type: fault.kind().to_owned(),
            error_message: fault.to_string(),
        }
    }
}

/// The invocation Lambda's context describes: its request id (the same on
/// Lambda's retries of one event), its deadline, and `now`.
pub fn invocation(
    context: &lambda_runtime::Context,
    now: chrono::DateTime<chrono::Utc>,
) -> changegate::protocol::Invocation {
    let deadline = i64::try_from(context.deadline)
        .ok()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .unwrap_or(now);
    changegate::protocol::Invocation {
        id: context.request_id.clone(),
        lease_until: deadline,
        now,
    }
}
