//! changegate: just-in-time production access through AWS Systems Manager
//! Change Manager.
//!
//! Pure domain logic (parsing, checks, policy documents, expiry, messages) sits
//! in plain modules; [`aws`] holds the thin SDK adapters; [`grant`], [`revoke`]
//! and [`notify`] are the three functions' handlers.

pub mod approval;
pub mod aws;
pub mod budget;
pub mod config;
pub mod eligibility;
pub mod events;
pub mod grant;
pub mod ids;
pub mod message;
pub mod metrics;
pub mod notify;
pub mod policy;
pub mod refusal;
pub mod request;
pub mod revoke;
pub mod sdk;
pub mod status;
pub mod window;
