//! changegate: just-in-time production access on AWS, approved through
//! Systems Manager (Change Manager, or a plain Automation runbook).
//!
//! This crate is the domain and the protocol, pure: no AWS SDK, no I/O, no
//! clock (`now` is an argument everywhere). The adapters that carry its steps
//! out against AWS live in `changegate-aws` (shared/aws), which implements
//! the ports ([`ports`]) this crate defines.
//!
//! - Identifiers ([`ids`]), windows ([`window`], [`expiry`]), statuses
//!   ([`status`]), the request as Systems Manager holds it ([`execution`],
//!   [`request`], [`approval`]), the checks and decisions ([`check`],
//!   [`eligibility`], [`budget`], [`refusal`]), policies ([`policy`]), the
//!   session cut ([`session`]), the decision record ([`record`]), events and
//!   triggers ([`events`], [`trigger`]), messages ([`message`], [`text`]),
//!   what notify may say ([`verify`]), configuration ([`config`]), faults
//!   ([`fault`]) and the operators' early end ([`operator`]).

pub mod admission;
pub mod approval;
pub mod budget;
pub mod check;
pub mod config;
pub mod eligibility;
pub mod events;
pub mod execution;
pub mod expiry;
pub mod extension;
pub mod fault;
pub mod ids;
pub mod memory;
pub mod message;
pub mod operator;
pub mod policy;
pub mod ports;
pub mod protocol;
pub mod record;
pub mod refusal;
pub mod request;
pub mod session;
pub mod status;
pub mod sweep;
pub mod text;
pub mod trigger;
pub mod verify;
pub mod versions;
pub mod window;
