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

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use aws_config::environment::{
    EnvironmentVariableCredentialsProvider, EnvironmentVariableRegionProvider,
};
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_runtime_api::client::connection::{CaptureSmithyConnection, ConnectionMetadata};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::retries::ErrorKind;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::{
    CaptureConnection, HttpConnector as TcpConnector, capture_connection,
};
use hyper_util::rt::{TokioExecutor, TokioTimer};

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

/// The SDK configuration from the environment, with changegate's retries,
/// timeouts and HTTP client.
///
/// Region and credentials come from the variables Lambda always sets
/// (`AWS_REGION`; `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_SESSION_TOKEN`: the execution role's credentials), named explicitly
/// rather than through aws-config's default chains: those build a web-identity
/// STS client, an ECS and an IMDS provider and read profile files at start-up
/// to find what Lambda puts in the environment anyway. `AWS_ENDPOINT_URL`
/// (and the other `AWS_*` settings) are still read as aws-config reads them.
pub async fn load() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(EnvironmentVariableRegionProvider::new())
        .credentials_provider(EnvironmentVariableCredentialsProvider::new())
        .http_client(https_client())
        .retry_config(retry_config())
        .timeout_config(timeout_config())
        .load()
        .await
}

/// The HTTP client every SDK client of a function shares: hyper over rustls
/// (aws-lc), HTTP/1.1, trusting the Mozilla root certificates compiled into
/// the binary (`webpki-roots`), one connection pool, built once.
///
/// Why not the SDK's default client: it loads the system's root certificates
/// (every file under `/etc/ssl/certs`) and builds a TLS configuration from
/// them each time an SDK client is created (each client "validates" its HTTP
/// client by building a connector) and once more on the first request, which
/// was most of the functions' start-up. The compiled-in roots cost nothing to
/// load; the TLS configuration is built here, once, so the first request does
/// not pay for it either. AWS's endpoints chain to Amazon Trust Services
/// roots, which are in Mozilla's list. What the default client does and this
/// one does not: an `HTTPS_PROXY`/`HTTP_PROXY` from the environment (Lambda
/// sets none) and HTTP/2 (the SDKs here speak HTTP/1.1).
pub fn https_client() -> SharedHttpClient {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("aws-lc supports rustls's default protocol versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let mut tcp = TcpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    tcp.set_connect_timeout(Some(CONNECT_TIMEOUT));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(tcp);
    let client = HyperClient::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .build(https);
    SharedHttpClient::new(Hyper(SharedHttpConnector::new(Connector(client))))
}

/// The client: whatever the settings, the one connector (its connect timeout
/// is [`CONNECT_TIMEOUT`], which is also what [`timeout_config`] says; the
/// attempt and operation timeouts are the SDK's, around every call).
#[derive(Debug, Clone)]
struct Hyper(SharedHttpConnector);

impl HttpClient for Hyper {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.0.clone()
    }
}

#[derive(Debug, Clone)]
struct Connector(HyperClient<HttpsConnector<TcpConnector>, SdkBody>);

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let mut request = match request.try_into_http1x() {
            Ok(request) => request,
            Err(e) => return HttpConnectorFuture::ready(Err(ConnectorError::user(e.into()))),
        };
        // As the SDK's client does: the orchestrator gets hold of the connection
        // a request used, to close it after a transient failure (the retry then
        // opens a fresh one).
        let captured = capture_connection(&mut request);
        if let Some(smithy) = request.extensions().get::<CaptureSmithyConnection>() {
            smithy.set_connection_retriever(move || connection_metadata(&captured));
        }
        let client = self.0.clone();
        HttpConnectorFuture::new(async move {
            let response = client.request(request).await.map_err(connector_error)?;
            HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
                .map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

fn connection_metadata(captured: &CaptureConnection) -> Option<ConnectionMetadata> {
    captured.connection_metadata().as_ref()?;
    let poison = captured.clone();
    Some(
        ConnectionMetadata::builder()
            .proxied(false)
            .poison_fn(move || {
                if let Some(connection) = poison.connection_metadata().as_ref() {
                    connection.poison();
                }
            })
            .build(),
    )
}

/// As the SDK's own client classifies hyper's errors, so that the same
/// failures are retried: connecting, a closed or reset connection, any I/O
/// error are transient; an incomplete message too.
fn connector_error(err: hyper_util::client::legacy::Error) -> ConnectorError {
    let io = err.is_connect() || find::<std::io::Error>(&err).is_some();
    let hyper = find::<hyper::Error>(&err);
    let closed = hyper.is_some_and(|h| h.is_closed() || h.is_canceled());
    let incomplete = hyper.is_some_and(|h| h.is_incomplete_message());
    let timeout = hyper.is_some_and(|h| h.is_timeout());
    if timeout {
        ConnectorError::timeout(err.into())
    } else if io || closed {
        ConnectorError::io(err.into())
    } else if incomplete {
        ConnectorError::other(err.into(), Some(ErrorKind::TransientError))
    } else {
        ConnectorError::other(err.into(), None)
    }
}

fn find<'a, E: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a E> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(found) = e.downcast_ref::<E>() {
            return Some(found);
        }
        next = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// A local endpoint that drops its first `drops` connections without an
    /// answer, then answers IAM's PutUserPolicy; returns its URL and a count
    /// of the connections it took.
    fn flaky_iam(drops: usize) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let taken = std::sync::Arc::new(AtomicUsize::new(0));
        let counter = taken.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let n = counter.fetch_add(1, Ordering::SeqCst);
                if n < drops {
                    drop(stream);
                    continue;
                }
                let mut buf = [0u8; 65536];
                let _ = stream.read(&mut buf);
                let body = "<PutUserPolicyResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\">\
                            <ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></PutUserPolicyResponse>";
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-type: text/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        (url, taken)
    }

    async fn put_user_policy_via(url: &str) -> Result<(), String> {
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_iam::config::Credentials::new(
                "k", "s", None, None, "t",
            ))
            .http_client(https_client())
            .retry_config(retry_config())
            .timeout_config(timeout_config())
            .endpoint_url(url)
            .load()
            .await;
        aws_sdk_iam::Client::new(&sdk)
            .put_user_policy()
            .user_name("alice")
            .policy_name("changegate-x")
            .policy_document("{}")
            .send()
            .await
            .map(|_| ())
            .map_err(|e| format!("{e:?}"))
    }

    #[tokio::test]
    async fn given_the_connection_drops_once_when_calling_through_the_functions_http_client_then_the_call_is_retried_and_succeeds()
     {
        let (url, taken) = flaky_iam(1);

        put_user_policy_via(&url).await.expect("the retry succeeds");

        assert_eq!(taken.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn given_the_connection_always_drops_when_calling_through_the_functions_http_client_then_the_call_gives_up_after_exactly_three_attempts()
     {
        let (url, taken) = flaky_iam(usize::MAX);

        let err = put_user_policy_via(&url).await.expect_err("no answer ever");

        assert_eq!(
            taken.load(std::sync::atomic::Ordering::SeqCst),
            MAX_ATTEMPTS as usize
        );
        assert!(err.contains("DispatchFailure"), "{err}");
    }

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
