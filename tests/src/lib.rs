//! Test harness: a private local AWS per test (moto server with changegate's
//! Change Manager extension, `tests/localaws/server.py`), real SDK clients
//! pointed at it, and helpers that play the people in the story.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_sqs::types::QueueAttributeName;
use aws_sdk_sts::config::Credentials;
use serde_json::Value;

pub const REGION: &str = "us-east-1";
/// moto's default account: where changegate and the IAM users live.
pub const HOME_ACCOUNT: &str = "123456789012";
/// The production account that requests ask for.
pub const PROD_ACCOUNT: &str = "111122223333";

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The project's Python (`.venv`, made by `make venv`), or `$CHANGEGATE_PYTHON`.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("CHANGEGATE_PYTHON") {
        return p.into();
    }
    let venv = workspace_root().join(".venv/bin/python");
    assert!(
        venv.exists(),
        "{} is missing: run `make venv` (make test does it)",
        venv.display()
    );
    venv
}

/// A function binary built by `cargo build --workspace --bins` (make test does it).
pub fn built_binary(name: &str) -> PathBuf {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let path = dir.join("debug").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` first (make test does it)",
        path.display()
    );
    path
}

/// Starts one of the local-AWS scripts and reads its `READY <url>` line.
fn spawn_ready(script: &str, args: &[&str]) -> (Child, String) {
    let mut child = Command::new(python())
        .arg(workspace_root().join("tests/localaws").join(script))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("start tests/localaws/{script}: {e}"));
    let stdout = child.stdout.take().expect("piped stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the READY line");
    let url = line
        .trim()
        .strip_prefix("READY ")
        .unwrap_or_else(|| panic!("{script} said {line:?}, not READY <url>"))
        .to_owned();
    (child, url)
}

/// One moto server on a free loopback port, stopped when dropped.
pub struct LocalAws {
    child: Child,
    pub endpoint: String,
}

impl LocalAws {
    pub fn start() -> Self {
        let (child, endpoint) = spawn_ready("server.py", &["--host", "127.0.0.1", "--port", "0"]);
        Self { child, endpoint }
    }

    /// A fault-injecting proxy in front of this local AWS (`faultproxy.py`).
    pub fn fault_proxy(&self, rate: f64, seed: u64) -> FaultProxy {
        let (rate, seed) = (rate.to_string(), seed.to_string());
        let args = [
            "--upstream",
            self.endpoint.as_str(),
            "--port",
            "0",
            "--rate",
            rate.as_str(),
            "--seed",
            seed.as_str(),
        ];
        let (child, endpoint) = spawn_ready("faultproxy.py", &args);
        FaultProxy { child, endpoint }
    }

    /// SDK configuration as changegate's functions get it, with anonymous test credentials.
    pub async fn sdk(&self) -> SdkConfig {
        self.sdk_as(&Creds {
            access_key: "test".into(),
            secret: "test".into(),
        })
        .await
    }

    /// SDK configuration acting as one IAM user (moto maps the key to the user).
    pub async fn sdk_as(&self, creds: &Creds) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(aws_config::Region::new(REGION))
            .credentials_provider(Credentials::new(
                &creds.access_key,
                &creds.secret,
                None,
                None,
                "localaws",
            ))
            .load()
            .await
    }

    /// The environment a function binary gets to reach this local AWS.
    pub fn function_env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_REGION", REGION),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// Everything SNS published, raw (`GET /_localaws/sns/published`).
    pub fn sns_published(&self) -> Vec<Value> {
        let out = Command::new(python())
            .args(["-c", "import sys,urllib.request;sys.stdout.write(urllib.request.urlopen(sys.argv[1]).read().decode())"])
            .arg(format!("{}/_localaws/sns/published", self.endpoint))
            .output()
            .expect("read /_localaws/sns/published");
        let body: Value = serde_json::from_slice(&out.stdout).expect("published list is JSON");
        body.as_array().cloned().unwrap_or_default()
    }
}

impl Drop for LocalAws {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Throttling, 5xx, connection resets and latency for a share of calls.
pub struct FaultProxy {
    child: Child,
    pub endpoint: String,
}

impl FaultProxy {
    /// SDK configuration as the functions get it (changegate's retries and
    /// timeouts), pointed at the proxy.
    pub async fn sdk(&self) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(aws_config::Region::new(REGION))
            .credentials_provider(Credentials::new("test", "test", None, None, "localaws"))
            .retry_config(changegate::sdk::retry_config())
            .timeout_config(changegate::sdk::timeout_config())
            .load()
            .await
    }

    /// Changes the proxy's behaviour (`POST /_faultproxy/config`), e.g.
    /// `{"rate": 1.0, "kinds": ["500"], "only": "UserName=alice"}`.
    pub fn configure(&self, change: Value) {
        let code = "import sys,urllib.request;urllib.request.urlopen(urllib.request.Request(sys.argv[1], data=sys.argv[2].encode(), method='POST')).read()";
        let status = Command::new(python())
            .args(["-c", code])
            .arg(format!("{}/_faultproxy/config", self.endpoint))
            .arg(change.to_string())
            .status()
            .expect("POST /_faultproxy/config");
        assert!(status.success(), "faultproxy refused {change}");
    }

    /// The proxy's counters (`GET /_faultproxy/stats`).
    pub fn stats(&self) -> Value {
        let out = Command::new(python())
            .args(["-c", "import sys,urllib.request;sys.stdout.write(urllib.request.urlopen(sys.argv[1]).read().decode())"])
            .arg(format!("{}/_faultproxy/stats", self.endpoint))
            .output()
            .expect("read /_faultproxy/stats");
        serde_json::from_slice(&out.stdout).expect("stats are JSON")
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug, Clone)]
pub struct Creds {
    pub access_key: String,
    pub secret: String,
}

/// The people and places of one test.
pub struct World {
    pub aws: LocalAws,
    pub sdk: SdkConfig,
    pub iam: aws_sdk_iam::Client,
    pub sqs: aws_sdk_sqs::Client,
}

impl World {
    pub async fn new() -> Self {
        let aws = LocalAws::start();
        let sdk = aws.sdk().await;
        Self {
            iam: aws_sdk_iam::Client::new(&sdk),
            sqs: aws_sdk_sqs::Client::new(&sdk),
            sdk,
            aws,
        }
    }

    /// An IAM user with an access key; returns the user's ARN and credentials.
    pub async fn user(&self, name: &str) -> (String, Creds) {
        let user = self
            .iam
            .create_user()
            .user_name(name)
            .send()
            .await
            .expect("create user");
        let arn = user.user().map(|u| u.arn().to_owned()).expect("user arn");
        let key = self
            .iam
            .create_access_key()
            .user_name(name)
            .send()
            .await
            .expect("create key");
        let key = key.access_key().expect("key");
        (
            arn,
            Creds {
                access_key: key.access_key_id().to_owned(),
                secret: key.secret_access_key().to_owned(),
            },
        )
    }

    /// An IAM user the security team made eligible for `accounts` (the
    /// `changegate:eligible` tag, e.g. "111122223333" or "111122223333/ReadOnly").
    pub async fn eligible_user(&self, name: &str, accounts: &str) -> (String, Creds) {
        let made = self.user(name).await;
        let tag = aws_sdk_iam::types::Tag::builder()
            .key(changegate::eligibility::ELIGIBILITY_TAG)
            .value(accounts)
            .build()
            .expect("tag");
        self.iam
            .tag_user()
            .user_name(name)
            .tags(tag)
            .send()
            .await
            .expect("tag user");
        made
    }

    /// An SQS queue receiving every event on the default bus that matches `pattern`.
    pub async fn capture(&self, name: &str, pattern: Value) -> String {
        let events = aws_sdk_eventbridge::Client::new(&self.sdk);
        let url = self
            .sqs
            .create_queue()
            .queue_name(name)
            .send()
            .await
            .expect("queue")
            .queue_url()
            .expect("url")
            .to_owned();
        let arn = self.queue_arn(&url).await;
        events
            .put_rule()
            .name(name)
            .event_pattern(pattern.to_string())
            .send()
            .await
            .expect("rule");
        events
            .put_targets()
            .rule(name)
            .targets(
                aws_sdk_eventbridge::types::Target::builder()
                    .id("q")
                    .arn(arn)
                    .build()
                    .expect("target"),
            )
            .send()
            .await
            .expect("targets");
        url
    }

    pub async fn queue_arn(&self, url: &str) -> String {
        let attrs = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("queue attributes");
        attrs
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn))
            .cloned()
            .expect("queue arn")
    }

    /// Every message now in the queue (bodies parsed as JSON), removing them.
    pub async fn drain(&self, url: &str) -> Vec<Value> {
        let mut all = Vec::new();
        for _ in 0..50 {
            let out = self
                .sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .send()
                .await
                .expect("receive");
            let msgs = out.messages();
            if msgs.is_empty() {
                break;
            }
            for m in msgs {
                all.push(serde_json::from_str(m.body().unwrap_or("null")).expect("JSON body"));
                self.sqs
                    .delete_message()
                    .queue_url(url)
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .send()
                    .await
                    .expect("delete");
            }
        }
        all
    }

    /// Names of the inline policies on `user`.
    pub async fn policies(&self, user: &str) -> Vec<String> {
        let out = self
            .iam
            .list_user_policies()
            .user_name(user)
            .send()
            .await
            .expect("list user policies");
        out.policy_names().to_vec()
    }

    /// A change request filed by `creds` with the changegate runbook's parameters.
    pub async fn file_request(&self, creds: &Creds, params: &[(&str, &str)]) -> String {
        let ssm = aws_sdk_ssm::Client::new(&self.aws.sdk_as(creds).await);
        let runbook = aws_sdk_ssm::types::Runbook::builder()
            .document_name("changegate-access-runbook")
            .set_parameters(Some(
                params
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), vec![(*v).to_owned()]))
                    .collect(),
            ))
            .build()
            .expect("runbook");
        let out = ssm
            .start_change_request_execution()
            .document_name("changegate-access")
            .change_request_name("prod access")
            .runbooks(runbook)
            .send()
            .await
            .expect("start change request");
        out.automation_execution_id().expect("id").to_owned()
    }

    /// `creds` approves (or rejects) the change request.
    pub async fn signal(&self, creds: &Creds, id: &str, approve: bool) {
        let ssm = aws_sdk_ssm::Client::new(&self.aws.sdk_as(creds).await);
        let kind = if approve {
            aws_sdk_ssm::types::SignalType::Approve
        } else {
            aws_sdk_ssm::types::SignalType::Reject
        };
        ssm.send_automation_signal()
            .automation_execution_id(id)
            .signal_type(kind)
            .send()
            .await
            .expect("signal");
    }
}

/// Change Manager's status events, as EventBridge would deliver them.
pub fn change_request_pattern() -> Value {
    serde_json::json!({"source": ["aws.ssm"], "detail-type": ["Change Request Status Update"]})
}

pub fn changegate_pattern() -> Value {
    serde_json::json!({"source": ["changegate"]})
}

/// An EventBridge event body (from an SQS target) as the Lambda payload type.
pub fn as_event(body: &Value) -> aws_lambda_events::event::eventbridge::EventBridgeEvent {
    serde_json::from_value(body.clone()).expect("an EventBridge event")
}

/// RFC 3339 time `secs` from now, written in `offset` (e.g. "+09:00" or "Z").
pub fn at(secs: i64, offset: &str) -> String {
    let t = chrono::Utc::now() + chrono::TimeDelta::seconds(secs);
    if offset == "Z" {
        return t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    }
    let off: chrono::FixedOffset = format!("2000-01-01T00:00:00{offset}")
        .parse::<chrono::DateTime<chrono::FixedOffset>>()
        .map(|d| *d.offset())
        .expect("offset");
    t.with_timezone(&off)
        .format("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

pub fn wait(d: Duration) -> impl std::future::Future<Output = ()> {
    tokio::time::sleep(d)
}
