//! How every AWS call is made: one SDK configuration with deliberate retries
//! and timeouts, so that the worst case of each function fits inside its
//! Lambda timeout (see `template.yaml`).
//!
//! Each call: at most 3 attempts (standard retry mode: throttling, 5xx,
//! timeouts and connection errors are retried with jittered exponential
//! backoff from 100 ms, at most 1 s), each attempt at most 1.5 s, connecting at
//! most 1 s, and the whole call, backoff included, at most 5 s.
//!
//! Worst cases: grant makes 12 + n calls (n = the user's inline policies: the
//! record, the execution and its steps, the user, the claim, the attach, the
//! re-read, the schedule, the grant recorded, announced and marked), plus
//! 4 + k with the session cut (k = the target role's inline policies): 160 s
//! covers n + k up to 16. notify makes 1 call (30 s). revoke stops starting
//! new revocations when its deadline is near, so its timeout (120 s) holds
//! whatever the number of grants; what it could not reach, the next sweep does.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};

pub const MAX_ATTEMPTS: u32 = 3;
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
pub const MAX_BACKOFF: Duration = Duration::from_secs(1);
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(1500);
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(5);

pub fn retry_config() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(MAX_ATTEMPTS)
        .with_initial_backoff(INITIAL_BACKOFF)
        .with_max_backoff(MAX_BACKOFF)
}

pub fn timeout_config() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build()
}

/// The SDK configuration from the environment (region, credentials,
/// `AWS_ENDPOINT_URL`), with changegate's retries and timeouts.
pub async fn load() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .retry_config(retry_config())
        .timeout_config(timeout_config())
        .load()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_the_retry_budget_when_every_attempt_times_out_then_the_call_still_ends_within_its_operation_timeout()
     {
        // Three attempts at their limit plus the largest two backoffs would be
        // 6.5 s; the operation timeout cuts the call at 5 s. The functions'
        // timeouts in template.yaml are sized on OPERATION_TIMEOUT.
        let worst = ATTEMPT_TIMEOUT * MAX_ATTEMPTS + MAX_BACKOFF * (MAX_ATTEMPTS - 1);
        assert!(worst > OPERATION_TIMEOUT);
        assert!(
            OPERATION_TIMEOUT >= ATTEMPT_TIMEOUT * 2,
            "room for at least one retry"
        );
        let grant_calls_with_sixteen_policies_and_the_cut = 12 + 4 + 16;
        assert!(
            OPERATION_TIMEOUT * grant_calls_with_sixteen_policies_and_the_cut
                <= Duration::from_secs(160)
        );
    }
}
