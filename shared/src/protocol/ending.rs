//! revoke's paths, as machines: an expiry, an early end Systems Manager
//! confirms, and an operator's end.
