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
