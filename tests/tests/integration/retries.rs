//! changegate's SDK retries and timeouts (`changegate::sdk`), deterministic:
//! a real SDK client with changegate's retry and timeout configuration gets
//! scripted HTTP answers in process (or, for the timeout, a loopback server
//! that never answers), and the tests count the attempts that reached the wire.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_sts::config::Credentials;
use changegate_aws::sdk::{
    ATTEMPT_TIMEOUT, MAX_ATTEMPTS, OPERATION_TIMEOUT, retry_config, timeout_config,
};
use changegate_tests::REGION;
use changegate_tests::scripted::{
    Answer, Script, iam_error, iam_put_user_policy_ok, ssm_error, ssm_execution,
};

/// The configuration the functions get (`changegate_aws::sdk::load`), with fixed
/// region and credentials, sending every request to `http`.
fn configured() -> aws_config::ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new("test", "test", None, None, "retries"))
        .retry_config(retry_config())
        .timeout_config(timeout_config())
}

async fn scripted(script: &Script) -> SdkConfig {
    configured().http_client(script.client()).load().await
}

/// The call grant makes to attach a grant: an IAM write.
async fn put_user_policy(
    sdk: &SdkConfig,
) -> Result<
    (),
    aws_sdk_iam::error::SdkError<aws_sdk_iam::operation::put_user_policy::PutUserPolicyError>,
> {
    let iam = aws_sdk_iam::Client::new(sdk);
    iam.put_user_policy()
        .user_name("alice")
        .policy_name("changegate-x")
        .policy_document("{}")
        .send()
        .await
        .map(|_| ())
}

#[tokio::test]
async fn given_iam_throttles_once_when_attaching_a_policy_then_the_call_is_retried_and_succeeds() {
    let script = Script::new([iam_error(400, "Throttling"), iam_put_user_policy_ok()]);

    put_user_policy(&scripted(&script).await)
        .await
        .expect("the retry succeeds");

    assert_eq!(script.requests(), 2);
}

#[tokio::test]
async fn given_iam_fails_with_500_every_time_when_attaching_a_policy_then_the_call_gives_up_after_exactly_three_attempts()
 {
    // (a fourth attempt would have succeeded)
    let script = Script::new([
        iam_error(500, "InternalFailure"),
        iam_error(500, "InternalFailure"),
        iam_error(500, "InternalFailure"),
        iam_put_user_policy_ok(),
    ]);

    let err = put_user_policy(&scripted(&script).await)
        .await
        .expect_err("three 500s");

    assert_eq!(script.requests(), MAX_ATTEMPTS as usize);
    assert_eq!(MAX_ATTEMPTS, 3);
    assert_eq!(
        err.into_service_error().meta().code(),
        Some("InternalFailure")
    );
}

#[tokio::test]
async fn given_iam_denies_access_when_attaching_a_policy_then_the_call_fails_at_once_without_a_retry()
 {
    let script = Script::new([iam_error(403, "AccessDenied"), iam_put_user_policy_ok()]);

    let err = put_user_policy(&scripted(&script).await)
        .await
        .expect_err("access denied");

    assert_eq!(script.requests(), 1);
    assert_eq!(err.into_service_error().meta().code(), Some("AccessDenied"));
}

#[tokio::test]
async fn given_the_connection_drops_once_when_attaching_a_policy_then_the_call_is_retried_and_succeeds()
 {
    let script = Script::new([Answer::Reset, iam_put_user_policy_ok()]);

    put_user_policy(&scripted(&script).await)
        .await
        .expect("the retry succeeds");

    assert_eq!(script.requests(), 2);
}

#[tokio::test]
async fn given_ssm_throttles_then_is_unavailable_when_reading_an_execution_then_the_third_attempt_reads_it()
 {
    let id = "6f1c2e4a-9b7d-4c3e-8a21-5d0f3b9e7a64";
    let script = Script::new([
        ssm_error(400, "ThrottlingException"),
        ssm_error(503, "ServiceUnavailable"),
        ssm_execution(id),
    ]);
    let ssm = aws_sdk_ssm::Client::new(&scripted(&script).await);

    let out = ssm
        .get_automation_execution()
        .automation_execution_id(id)
        .send()
        .await
        .expect("the third attempt succeeds");

    assert_eq!(
        out.automation_execution()
            .and_then(|e| e.automation_execution_id()),
        Some(id)
    );
    assert_eq!(script.requests(), 3);
}

#[tokio::test]
async fn given_aws_never_answers_when_attaching_a_policy_then_each_attempt_times_out_and_the_call_fails_within_its_operation_timeout()
 {
    // Given a loopback server that accepts connections and never answers
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let endpoint = format!("http://{}", listener.local_addr().expect("address"));
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    let server = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            held.push(socket); // kept open, unanswered, until the test ends
        }
    });
    let sdk = configured().endpoint_url(endpoint).load().await;

    // When the call is made
    let started = Instant::now();
    let err = put_user_policy(&sdk).await.expect_err("nobody answers");
    let took = started.elapsed();
    server.abort();

    // Then it failed as a timeout, after retrying timed-out attempts, in
    // roughly its operation timeout (bounds at 2x: no tight timing)
    assert!(
        matches!(err, aws_sdk_iam::error::SdkError::TimeoutError(_)),
        "{err:?}"
    );
    let attempts = accepted.load(Ordering::SeqCst);
    assert!(
        (2..=MAX_ATTEMPTS as usize).contains(&attempts),
        "{attempts} attempts"
    );
    assert!(
        took >= ATTEMPT_TIMEOUT * 2,
        "{took:?}: at least two attempts ran to their timeout"
    );
    assert!(
        took <= OPERATION_TIMEOUT * 2,
        "{took:?}: the operation timeout bounds the call"
    );
}
