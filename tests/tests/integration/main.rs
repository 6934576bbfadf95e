//! changegate's integration tests, one module per subject, built as one test
//! binary: the SDK is linked once instead of once per subject, and libtest
//! runs every test side by side (`RUST_TEST_THREADS`, set for this repository
//! in `.cargo/config.toml`). Each test takes its own local AWS server, so
//! tests share nothing but the machine.
//!
//! Run one subject: `cargo test -p changegate-tests --test integration trust::`.

// The handlers' futures run here too (see functions/*/src/main.rs).
#![recursion_limit = "256"]

mod abuse;
mod automation;
mod cli;
mod delivery;
mod events;
mod expiry;
mod faults;
mod grant;
mod retries;
mod revoke_notify;
mod runtime_api;
mod session_cut;
mod sessions;
mod trust;
