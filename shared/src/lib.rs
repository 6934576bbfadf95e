//! changegate: just-in-time production access on AWS, approved through
//! Systems Manager (Change Manager, or a plain Automation runbook).
//!
//! - The domain, pure and without AWS calls: identifiers ([`ids`]), windows
//!   ([`window`]), statuses ([`status`]), the request as Systems Manager holds
//!   it ([`execution`], [`request`], [`approval`]), the checks and decisions
//!   ([`check`], [`eligibility`], [`budget`], [`refusal`]), policies
//!   ([`policy`]), the decision record ([`record`]), events ([`events`]),
//!   messages ([`message`], [`text`]), configuration ([`config`]) and metrics.
//! - [`aws`]: thin SDK adapters that read AWS into the domain's types; they
//!   depend on the domain, never the reverse. [`sdk`]: retries and timeouts.
//! - The three functions' handlers, which call the adapters and the decisions:
//!   [`grant`], [`revoke`] (with the one way to remove a grant) and [`notify`].

pub mod approval;
pub mod aws;
pub mod budget;
pub mod check;
pub mod config;
pub mod eligibility;
pub mod events;
pub mod execution;
pub mod grant;
pub mod ids;
pub mod message;
pub mod metrics;
pub mod notify;
pub mod policy;
pub mod record;
pub mod refusal;
pub mod request;
pub mod revoke;
pub mod sdk;
pub mod session;
pub mod status;
pub mod text;
pub mod window;
