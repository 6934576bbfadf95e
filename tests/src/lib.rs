//! Test harness: a private local AWS per test (moto server with changegate's
//! Change Manager extension, `tests/localaws/server.py`), real SDK clients
//! pointed at it, helpers that play the people in the story, and the shared
//! fixtures (a request, a grant, the sample events in `events/`, scripted
//! HTTP responses).
//!
//! Time: the handlers take `now`, so a test that needs a window to be over
//! passes a later `now` ([`after`]) instead of waiting for it.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_sqs::types::QueueAttributeName;
use aws_sdk_sts::config::Credentials;
use chrono::{DateTime, Utc};
use serde_json::Value;

/// A Lambda invocation at `now`, as the functions' context gives it: its own
/// request id (every call is a new invocation; a Lambda retry of the same
/// event reuses one with [`retry_of`]) and grant's deadline (160 s).
pub fn invocation(now: DateTime<Utc>) -> changegate::protocol::Invocation {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    changegate::protocol::Invocation {
        id: format!("test-invocation-{}", NEXT.fetch_add(1, Ordering::Relaxed)),
        lease_until: now + chrono::TimeDelta::seconds(160),
        now,
    }
}

/// Lambda's retry of `first` at `now`: the same request id, a new deadline.
pub fn retry_of(
    first: &changegate::protocol::Invocation,
    now: DateTime<Utc>,
) -> changegate::protocol::Invocation {
    changegate::protocol::Invocation {
        id: first.id.clone(),
        lease_until: now + chrono::TimeDelta::seconds(160),
        now,
    }
}

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

/// Runs Python `code` with tests/localaws on `sys.path` as `sys.argv[1]`
/// (so `import localaws` works) and `args` after it, and parses the JSON it
/// prints; `what` names the reading in a failure.
pub fn localaws_json(code: &str, args: &[&std::ffi::OsStr], what: &str) -> Value {
    let out = Command::new(python())
        .args(["-c", code])
        .arg(workspace_root().join("tests/localaws"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{what}: python: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{what}: not JSON: {e}"))
}

/// Property `property` of resource `logical_id` of `template` (a path from
/// the workspace root), resolved as CloudFormation would deploy it with
/// `parameters`, by tests/localaws/localaws.py (the reader the lint and the
/// local world use). `logical_id` `"Outputs"` reads output `property`'s value.
pub fn resolved_property(
    template: &str,
    parameters: &Value,
    logical_id: &str,
    property: &str,
) -> Value {
    let code = r#"
import json, pathlib, sys
sys.path.insert(0, sys.argv[1])
import localaws
template = localaws.load_template(pathlib.Path(sys.argv[2]))
stack = localaws.Stack(template, json.loads(sys.argv[3]))
if sys.argv[4] == "Outputs":
    print(json.dumps(stack.resolve(template["Outputs"][sys.argv[5]]["Value"])))
else:
    print(json.dumps(stack.resolve(stack.resources[sys.argv[4]]["Properties"][sys.argv[5]])))
"#;
    let path = workspace_root().join(template);
    let parameters = parameters.to_string();
    localaws_json(
        code,
        &[
            path.as_os_str(),
            parameters.as_ref(),
            logical_id.as_ref(),
            property.as_ref(),
        ],
        &format!("resolving {template} {logical_id}.{property}"),
    )
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
/// With `log`, its stderr lines are collected there instead of passed through.
fn spawn_ready(
    script: &str,
    args: &[&str],
    log: Option<Arc<Mutex<Vec<String>>>>,
) -> (Child, String) {
    let mut child = Command::new(python())
        .arg(workspace_root().join("tests/localaws").join(script))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(if log.is_some() {
            Stdio::piped()
        } else {
            Stdio::inherit()
        })
        .spawn()
        .unwrap_or_else(|e| panic!("start tests/localaws/{script}: {e}"));
    if let (Some(log), Some(stderr)) = (log, child.stderr.take()) {
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(mut lines) = log.lock() {
                    lines.push(line);
                }
            }
        });
    }
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

/// The environment variable naming a running `tests/localaws/pool.py`'s
/// socket (`make test` starts one): servers forked from it start in
/// milliseconds instead of seconds of imports.
pub const POOL_ENV: &str = "CHANGEGATE_LOCALAWS_POOL";

/// Asks the pool at `socket` for a server (`pool.py`'s protocol: one JSON
/// line out, `READY <url>` back); the connection is the server's lifetime.
fn pool_server(socket: &Path) -> std::io::Result<(UnixStream, String)> {
    let mut conn = UnixStream::connect(socket)?;
    conn.set_read_timeout(Some(std::time::Duration::from_secs(120)))?;
    conn.write_all(b"{\"args\": []}\n")?;
    let mut line = String::new();
    BufReader::new(&conn).read_line(&mut line)?;
    conn.set_read_timeout(None)?;
    match line.trim().strip_prefix("READY ") {
        Some(url) => Ok((conn, url.to_owned())),
        None => Err(std::io::Error::other(format!(
            "pool at {} said {line:?}, not READY <url>",
            socket.display()
        ))),
    }
}

/// A server process: ours, or a pool's child whose life is the connection.
enum Server {
    Child(Child),
    Pool(UnixStream),
}

/// One moto server on a free loopback port, stopped when dropped.
pub struct LocalAws {
    server: Server,
    pub endpoint: String,
}

impl LocalAws {
    /// A fresh server: from the pool `$CHANGEGATE_LOCALAWS_POOL` names when
    /// it answers, otherwise `server.py` started here.
    pub fn start() -> Self {
        if let Some(socket) = std::env::var_os(POOL_ENV).filter(|s| !s.is_empty()) {
            match pool_server(Path::new(&socket)) {
                Ok((conn, endpoint)) => {
                    return Self {
                        server: Server::Pool(conn),
                        endpoint,
                    };
                }
                Err(e) => eprintln!(
                    "{POOL_ENV}={}: {e}; starting server.py instead",
                    Path::new(&socket).display()
                ),
            }
        }
        let (child, endpoint) =
            spawn_ready("server.py", &["--host", "127.0.0.1", "--port", "0"], None);
        Self {
            server: Server::Child(child),
            endpoint,
        }
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
            "--verbose",
        ];
        let log = Arc::new(Mutex::new(Vec::new()));
        let (child, endpoint) = spawn_ready("faultproxy.py", &args, Some(log.clone()));
        FaultProxy {
            child,
            endpoint,
            log,
        }
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

    /// The environment a function binary gets to reach this local AWS, with
    /// the world's bus, table and source (Change Manager).
    pub fn function_env(&self) -> Vec<(String, String)> {
        let approvers = approver_arns();
        [
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_REGION", REGION),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("CHANGEGATE_EVENT_BUS", EVENT_BUS),
            ("CHANGEGATE_DECISIONS_TABLE", DECISIONS_TABLE),
            ("CHANGEGATE_SOURCES", "change-manager"),
            // notify announces only change requests filed with this template.
            ("CHANGEGATE_CHANGE_TEMPLATE", CHANGE_TEMPLATE),
            ("CHANGEGATE_APPROVERS", approvers.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// Everything SNS published, raw (`GET /_localaws/sns/published`).
    pub fn sns_published(&self) -> Vec<Value> {
        get_json(&format!("{}/_localaws/sns/published", self.endpoint))
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

/// One request to an endpoint of the test tooling itself (`/_localaws/...`
/// on the local AWS, `/_faultproxy/...` on the fault proxy), which are plain
/// HTTP on loopback, not AWS APIs: the status and the body. HTTP/1.0, so the
/// answer is never chunked and ends when the connection closes.
pub fn plain_http(method: &str, url: &str, body: &str) -> (u16, String) {
    use std::io::Read;
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("{url}: not an http:// URL"));
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let mut conn = std::net::TcpStream::connect(host).unwrap_or_else(|e| panic!("{url}: {e}"));
    conn.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .expect("set a read timeout");
    write!(
        conn,
        "{method} {path} HTTP/1.0\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let mut answer = String::new();
    conn.read_to_string(&mut answer)
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{method} {url}: no HTTP status in {head:?}"));
    (status, body.to_owned())
}

/// A GET on one of the tooling's own endpoints (see [`plain_http`]), as JSON.
pub fn get_json(url: &str) -> Value {
    let (status, body) = plain_http("GET", url, "");
    assert_eq!(status, 200, "GET {url}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {url}: {e}: {body}"))
}

impl Drop for LocalAws {
    /// Stops the server and waits until it has: our child is killed and
    /// reaped; a pool's child is told to stop, and its end of the connection
    /// closes when it has exited.
    fn drop(&mut self) {
        match &mut self.server {
            Server::Child(child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
            Server::Pool(conn) => {
                let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(10)));
                let _ = conn.write_all(b"STOP\n");
                let _ = std::io::copy(conn, &mut std::io::sink());
            }
        }
    }
}

/// Throttling, 5xx, connection resets and latency for a share of calls.
pub struct FaultProxy {
    child: Child,
    pub endpoint: String,
    /// Its `--verbose` log: one line per request and its fate.
    log: Arc<Mutex<Vec<String>>>,
}

impl FaultProxy {
    /// SDK configuration as the functions get it (changegate's retries and
    /// timeouts), pointed at the proxy.
    pub async fn sdk(&self) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(aws_config::Region::new(REGION))
            .credentials_provider(Credentials::new("test", "test", None, None, "localaws"))
            .retry_config(changegate_aws::sdk::retry_config())
            .timeout_config(changegate_aws::sdk::timeout_config())
            .load()
            .await
    }

    /// Changes the proxy's behaviour (`POST /_faultproxy/config`), e.g.
    /// `{"rate": 1.0, "kinds": ["500"], "only": "UserName=alice"}`.
    pub fn configure(&self, change: Value) {
        let url = format!("{}/_faultproxy/config", self.endpoint);
        let (status, body) = plain_http("POST", &url, &change.to_string());
        assert_eq!(status, 200, "faultproxy refused {change}: {body}");
    }

    /// The proxy's counters (`GET /_faultproxy/stats`).
    pub fn stats(&self) -> Value {
        get_json(&format!("{}/_faultproxy/stats", self.endpoint))
    }

    /// How many faults each AWS operation got ("iam:PutUserPolicy" -> 2):
    /// the proxy's `faulted_actions` counter where it has one, otherwise its
    /// `--verbose` log ("<METHOD> <path> <service:Action> -> <kind|forward>").
    pub fn faulted_actions(&self) -> BTreeMap<String, u64> {
        if let Some(counted) = self
            .stats()
            .get("faulted_actions")
            .and_then(Value::as_object)
        {
            return counted
                .iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or_default()))
                .collect();
        }
        let mut faulted = BTreeMap::new();
        for line in self.log.lock().expect("proxy log").iter() {
            let Some((request, kind)) = line.rsplit_once(" -> ") else {
                continue;
            };
            let Some(name) = request.rsplit(' ').next() else {
                continue;
            };
            if kind.trim() != "forward" && name.contains(':') {
                *faulted.entry(name.to_owned()).or_insert(0) += 1;
            }
        }
        faulted
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

/// The Change Manager change template and the runbook it runs, as the stack
/// names them (design: `changegate-access`, `changegate-access-runbook`).
pub const CHANGE_TEMPLATE: &str = "changegate-access";
pub const ACCESS_RUNBOOK: &str = "changegate-access-runbook";
/// An IAM group every user a test makes is in (approving as a group member
/// does not count: the deployment's approvers are [`APPROVERS`]).
pub const APPROVERS_GROUP: &str = "changegate-approvers";
/// The deployment's approvers in the local world (its `ApproverArns`): IAM
/// users of [`HOME_ACCOUNT`] by name, at most five, as the stack's change
/// template lists them. A test makes each with [`World::user`] before they approve.
pub const APPROVERS: [&str; 5] = ["bob", "carol", "dave", "frank", "approver"];

/// [`APPROVERS`] as `CHANGEGATE_APPROVERS` takes them (comma-separated ARNs).
pub fn approver_arns() -> String {
    APPROVERS
        .iter()
        .map(|name| format!("arn:aws:iam::{HOME_ACCOUNT}:user/{name}"))
        .collect::<Vec<_>>()
        .join(",")
}
/// changegate's own event bus and decision table, as the local world names them.
pub const EVENT_BUS: &str = "changegate";
pub const DECISIONS_TABLE: &str = "changegate-decisions";

/// Where the functions run: moto's default account, from a Lambda function ARN.
pub fn home() -> changegate::ids::Home {
    changegate::ids::Home::from_function_arn(&format!(
        "arn:aws:lambda:{REGION}:{HOME_ACCOUNT}:function:grant"
    ))
    .expect("home")
}

/// The environment grant and revoke read, for this local world (Change
/// Manager only: the integration tests file change requests), with the
/// world's approvers as template.yaml passes `ApproverArns`.
pub fn grant_env(k: &str) -> Option<String> {
    use changegate::config::*;
    match k {
        VAR_ALLOWED_ACCOUNTS => Some(PROD_ACCOUNT.to_owned()),
        VAR_EVENT_BUS => Some(EVENT_BUS.to_owned()),
        VAR_DECISIONS_TABLE => Some(DECISIONS_TABLE.to_owned()),
        VAR_SOURCES => Some("change-manager".to_owned()),
        VAR_CHANGE_TEMPLATE => Some(CHANGE_TEMPLATE.to_owned()),
        VAR_APPROVERS => Some(approver_arns()),
        _ => None,
    }
}

/// One change template approval level as the stack writes it: the world's
/// [`APPROVERS`] by name (`IamUser`), one approval needed.
pub fn approval_level(name: &str) -> Value {
    let approvers: Vec<Value> = APPROVERS
        .iter()
        .map(|a| serde_json::json!({"approver": a, "type": "IamUser", "minRequiredApprovals": 0}))
        .collect();
    serde_json::json!({
        "name": name,
        "action": "aws:approve",
        "timeoutSeconds": 3600,
        "inputs": {"Message": "approve production access", "MinRequiredApprovals": 1,
            "EnhancedApprovals": {"Approvers": approvers}},
    })
}

/// The change template the tests file against: one approval level, the
/// world's [`APPROVERS`] approve.
fn change_template() -> Value {
    serde_json::json!({
        "schemaVersion": "0.3",
        "emergencyChange": false,
        "autoApprovable": false,
        "executableRunBooks": [{"name": ACCESS_RUNBOOK, "version": "$DEFAULT"}],
        "mainSteps": [approval_level("ApproveAccess")],
    })
}

/// The runbook with changegate's four parameters, as plain strings without
/// the stack's allowed patterns (so that hostile values reach changegate,
/// which must refuse them on its own), completing at once.
fn access_runbook() -> Value {
    let string = serde_json::json!({"type": "String"});
    serde_json::json!({
        "schemaVersion": "0.3",
        "parameters": {"IAMUserName": string, "AWSAccountId": string, "StartTime": string, "EndTime": string},
        "mainSteps": [{"name": "Done", "action": "aws:sleep", "inputs": {"Duration": "PT0S"}}],
    })
}

/// The parameters of a request for `user` to `account` from `start` to `end` (RFC 3339).
pub fn request(user: &str, account: &str, start: &str, end: &str) -> Params {
    [
        ("IAMUserName", user),
        ("AWSAccountId", account),
        ("StartTime", start),
        ("EndTime", end),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), vec![v.to_owned()]))
    .collect()
}

/// A runbook's parameters as SSM takes them.
pub type Params = HashMap<String, Vec<String>>;

impl World {
    /// A fresh local AWS with the change template, its runbook and the approvers group.
    pub async fn new() -> Self {
        let aws = LocalAws::start();
        let sdk = aws.sdk().await;
        let world = Self {
            iam: aws_sdk_iam::Client::new(&sdk),
            sqs: aws_sdk_sqs::Client::new(&sdk),
            sdk,
            aws,
        };
        aws_sdk_dynamodb::Client::new(&world.sdk)
            .create_table()
            .table_name(DECISIONS_TABLE)
            .key_schema(
                aws_sdk_dynamodb::types::KeySchemaElement::builder()
                    .attribute_name("change_request_id")
                    .key_type(aws_sdk_dynamodb::types::KeyType::Hash)
                    .build()
                    .expect("key"),
            )
            .attribute_definitions(
                aws_sdk_dynamodb::types::AttributeDefinition::builder()
                    .attribute_name("change_request_id")
                    .attribute_type(aws_sdk_dynamodb::types::ScalarAttributeType::S)
                    .build()
                    .expect("attribute"),
            )
            // template.yaml's sparse index of unannounced revocations.
            .attribute_definitions(
                aws_sdk_dynamodb::types::AttributeDefinition::builder()
                    .attribute_name(changegate::record::attr::PENDING)
                    .attribute_type(aws_sdk_dynamodb::types::ScalarAttributeType::S)
                    .build()
                    .expect("attribute"),
            )
            .global_secondary_indexes(
                aws_sdk_dynamodb::types::GlobalSecondaryIndex::builder()
                    .index_name(changegate::record::PENDING_INDEX)
                    .key_schema(
                        aws_sdk_dynamodb::types::KeySchemaElement::builder()
                            .attribute_name(changegate::record::attr::PENDING)
                            .key_type(aws_sdk_dynamodb::types::KeyType::Hash)
                            .build()
                            .expect("key"),
                    )
                    .projection(
                        aws_sdk_dynamodb::types::Projection::builder()
                            .projection_type(aws_sdk_dynamodb::types::ProjectionType::All)
                            .build(),
                    )
                    .build()
                    .expect("index"),
            )
            .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
            .send()
            .await
            .expect("decisions table");
        aws_sdk_eventbridge::Client::new(&world.sdk)
            .create_event_bus()
            .name(EVENT_BUS)
            .send()
            .await
            .expect("event bus");
        world
            .iam
            .create_group()
            .group_name(APPROVERS_GROUP)
            .send()
            .await
            .expect("approvers group");
        let ssm = aws_sdk_ssm::Client::new(&world.sdk);
        for (name, kind, content) in [
            (
                ACCESS_RUNBOOK,
                aws_sdk_ssm::types::DocumentType::Automation,
                access_runbook(),
            ),
            (
                CHANGE_TEMPLATE,
                aws_sdk_ssm::types::DocumentType::ChangeTemplate,
                change_template(),
            ),
        ] {
            ssm.create_document()
                .name(name)
                .document_type(kind)
                .document_format(aws_sdk_ssm::types::DocumentFormat::Json)
                .content(content.to_string())
                .send()
                .await
                .unwrap_or_else(|e| panic!("create document {name}: {e:?}"));
        }
        world
    }

    /// An IAM user with an access key, in the approvers group; returns the user's ARN and credentials.
    pub async fn user(&self, name: &str) -> (String, Creds) {
        let user = self
            .iam
            .create_user()
            .user_name(name)
            .send()
            .await
            .expect("create user");
        self.iam
            .add_user_to_group()
            .group_name(APPROVERS_GROUP)
            .user_name(name)
            .send()
            .await
            .expect("add to approvers");
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

    /// An SNS topic named `name`; its ARN.
    pub async fn topic(&self, name: &str) -> String {
        aws_sdk_sns::Client::new(&self.sdk)
            .create_topic()
            .name(name)
            .send()
            .await
            .expect("topic")
            .topic_arn()
            .expect("arn")
            .to_owned()
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

    /// An SQS queue receiving every event on the default bus that matches
    /// `pattern`; changegate's own events are captured on its bus.
    pub async fn capture(&self, name: &str, pattern: Value) -> String {
        let bus = if pattern == changegate_pattern() {
            EVENT_BUS
        } else {
            "default"
        };
        self.capture_on(bus, name, pattern).await
    }

    /// An SQS queue receiving every event on `bus` that matches `pattern`.
    pub async fn capture_on(&self, bus: &str, name: &str, pattern: Value) -> String {
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
            .event_bus_name(bus)
            .event_pattern(pattern.to_string())
            .send()
            .await
            .expect("rule");
        events
            .put_targets()
            .rule(name)
            .event_bus_name(bus)
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

    /// A change request filed by `creds` with the runbook's parameters,
    /// optionally scheduled to run later (approved, it then waits in
    /// `Scheduled` and can still be cancelled). Err: what SSM answered.
    pub async fn try_file(
        &self,
        creds: &Creds,
        params: Params,
        scheduled: Option<DateTime<Utc>>,
    ) -> Result<String, String> {
        let ssm = aws_sdk_ssm::Client::new(&self.aws.sdk_as(creds).await);
        let runbook = aws_sdk_ssm::types::Runbook::builder()
            .document_name(ACCESS_RUNBOOK)
            .set_parameters(Some(params))
            .build()
            .expect("runbook");
        let out = ssm
            .start_change_request_execution()
            .document_name(CHANGE_TEMPLATE)
            .change_request_name("prod access")
            .runbooks(runbook)
            .set_scheduled_time(
                scheduled.map(|t| aws_sdk_ssm::primitives::DateTime::from_secs(t.timestamp())),
            )
            .send()
            .await
            .map_err(|e| format!("{:?}", e.into_service_error()))?;
        Ok(out.automation_execution_id().expect("id").to_owned())
    }

    /// A change request filed by `creds` ([`request`] makes the parameters).
    pub async fn file_request(&self, creds: &Creds, params: Params) -> String {
        self.try_file(creds, params, None)
            .await
            .expect("start change request")
    }

    /// A grant: `user` is made eligible for [`PROD_ACCOUNT`] and files a request
    /// for `start..end` (scheduled to run at `scheduled`, if given),
    /// `approver` approves, and grant sees every status event caught in
    /// `ssm_events` at the real time. Returns the change request id and the
    /// user's credentials; panics unless the policy is attached.
    pub async fn grant(
        &self,
        grantor: &changegate_aws::grant::Grantor,
        ssm_events: &str,
        user: &str,
        approver: &Creds,
        window: (&str, &str),
        scheduled: Option<DateTime<Utc>>,
    ) -> (String, Creds) {
        let (_, creds) = self.eligible_user(user, PROD_ACCOUNT).await;
        let id = self
            .try_file(
                &creds,
                request(user, PROD_ACCOUNT, window.0, window.1),
                scheduled,
            )
            .await
            .expect("file");
        self.signal(approver, &id, true).await;
        for body in self.drain(ssm_events).await {
            grantor
                .handle(body, &home(), &invocation(Utc::now()))
                .await
                .expect("grant");
        }
        assert_eq!(
            self.policies(user).await,
            vec![format!("changegate-{id}")],
            "{user} must hold the grant"
        );
        (id, creds)
    }

    /// Puts `grant`'s policy on its user directly, as grant would have.
    pub async fn attach(&self, grant: &changegate::policy::Grant) {
        self.iam
            .put_user_policy()
            .user_name(grant.user.as_str())
            .policy_name(grant.policy_name())
            .policy_document(grant.document_json())
            .send()
            .await
            .expect("put user policy");
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

/// A moment `secs` after the RFC 3339 time `t` (e.g. one second after a
/// window's end): the `now` a handler gets instead of waiting for it.
pub fn after(t: &str, secs: i64) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(t)
        .expect("RFC 3339 time")
        .with_timezone(&Utc)
        + chrono::TimeDelta::seconds(secs)
}

/// A grant as grant writes it: `user` to [`PROD_ACCOUNT`]'s CM-Prd-role from `start` to `end`.
pub fn grant_of(id: &str, user: &str, start: &str, end: &str) -> changegate::policy::Grant {
    use changegate::ids::{AccountId, ChangeRequestId, IamUserName, RoleName};
    use changegate::window::{Window, parse_time};
    changegate::policy::Grant {
        change_request: ChangeRequestId::parse(id).expect("change request id"),
        user: IamUserName::parse(user).expect("user name"),
        session_name: IamUserName::parse(user).expect("user name"),
        user_id: None,
        account: AccountId::parse(PROD_ACCOUNT).expect("account"),
        role: RoleName::parse("CM-Prd-role").expect("role"),
        window: Window::new(
            parse_time(start).expect("start"),
            parse_time(end).expect("end"),
        )
        .expect("window"),
        named_sessions: true,
    }
}

/// revoke with the default configuration.
pub fn revoker(sdk: &SdkConfig) -> changegate_aws::revoke::Revoker {
    revoker_with(sdk, &grant_env)
}

/// revoke configured from `settings` (a test's variables, e.g. [`grant_env`] plus its own).
pub fn revoker_with(
    sdk: &SdkConfig,
    settings: &impl changegate::config::Source,
) -> changegate_aws::revoke::Revoker {
    let config = changegate::config::RevokeConfig::from_source(settings);
    changegate_aws::revoke::Revoker::new(config.expect("revoke config"), sdk)
}

/// notify publishing to `topic`, reading the world's table and Systems Manager.
pub fn notifier(sdk: &SdkConfig, topic: &str) -> changegate_aws::notify::Notifier {
    let topic = topic.to_owned();
    let settings = move |k: &str| match k {
        changegate::config::VAR_TOPIC_ARN => Some(topic.clone()),
        k => grant_env(k),
    };
    let config = changegate::config::NotifyConfig::from_source(&settings);
    changegate_aws::notify::Notifier::new(config.expect("notify config"), sdk)
}

/// grant allowing [`PROD_ACCOUNT`] only.
pub fn grantor(sdk: &SdkConfig) -> changegate_aws::grant::Grantor {
    grantor_with(sdk, &grant_env)
}

/// grant configured from `settings` (a test's variables, e.g. [`grant_env`] plus its own).
pub fn grantor_with(
    sdk: &SdkConfig,
    settings: &impl changegate::config::Source,
) -> changegate_aws::grant::Grantor {
    let config = changegate::config::GrantConfig::from_source(settings);
    changegate_aws::grant::Grantor::new(config.expect("grant config"), sdk)
}

/// A sample event from `events/` (also for `cargo lambda invoke --data-file`
/// and `sam local invoke -e`), e.g. `sample_event("changegate-request.json")`.
pub fn sample_event(name: &str) -> Value {
    let path = workspace_root().join("events").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `events/scheduled.json`: the one-minute sweep's EventBridge event.
pub fn scheduled_event() -> Value {
    sample_event("scheduled.json")
}

/// `events/change-request-approved.json` for change request `id` in `status`.
pub fn change_request_event(id: &str, status: &str) -> Value {
    let mut event = sample_event("change-request-approved.json");
    event["detail"]["change-request-id"] = id.into();
    event["detail"]["ops-item-status"] = status.into();
    event
}

/// Scripted HTTP answers for a real SDK client, in process: each request gets
/// the next [`Answer`], and the script counts the requests. The SDK's own
/// deserialisers, retry classifiers and timeouts see them as if AWS sent them.
pub mod scripted {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    use aws_smithy_runtime_api::client::http::{
        HttpConnector, HttpConnectorFuture, SharedHttpClient, SharedHttpConnector, http_client_fn,
    };
    use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
    use aws_smithy_runtime_api::client::result::ConnectorError;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;

    #[derive(Debug, Clone)]
    pub enum Answer {
        /// An HTTP response: status, `Content-Type`, body.
        Http(u16, &'static str, String),
        /// The connection drops before any answer (an I/O error).
        Reset,
    }

    /// IAM's (awsQuery) error document for `code`, e.g. `Throttling` or `AccessDenied`.
    pub fn iam_error(status: u16, code: &str) -> Answer {
        let kind = if status < 500 { "Sender" } else { "Receiver" };
        let body = format!(
            "<ErrorResponse><Error><Type>{kind}</Type><Code>{code}</Code><Message>{code}</Message></Error><RequestId>r</RequestId></ErrorResponse>"
        );
        Answer::Http(status, "text/xml", body)
    }

    /// IAM's answer to a successful `PutUserPolicy`.
    pub fn iam_put_user_policy_ok() -> Answer {
        Answer::Http(200, "text/xml", "<PutUserPolicyResponse><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></PutUserPolicyResponse>".to_owned())
    }

    /// SSM's (awsJson 1.1) error document for `code`, e.g. `ThrottlingException`.
    pub fn ssm_error(status: u16, code: &str) -> Answer {
        Answer::Http(
            status,
            "application/x-amz-json-1.1",
            format!(r#"{{"__type":"{code}","message":"{code}"}}"#),
        )
    }

    /// SSM's answer to `GetAutomationExecution` for execution `id`.
    pub fn ssm_execution(id: &str) -> Answer {
        Answer::Http(
            200,
            "application/x-amz-json-1.1",
            format!(r#"{{"AutomationExecution":{{"AutomationExecutionId":"{id}"}}}}"#),
        )
    }

    /// The answers still to give, and how many requests came.
    #[derive(Debug, Clone, Default)]
    pub struct Script {
        answers: Arc<Mutex<VecDeque<Answer>>>,
        requests: Arc<Mutex<usize>>,
    }

    impl Script {
        pub fn new(answers: impl IntoIterator<Item = Answer>) -> Self {
            Self {
                answers: Arc::new(Mutex::new(answers.into_iter().collect())),
                requests: Arc::default(),
            }
        }

        /// How many requests (attempts) reached the "network".
        pub fn requests(&self) -> usize {
            *self.requests.lock().expect("requests")
        }

        /// The HTTP client to put in an `SdkConfig`.
        pub fn client(&self) -> SharedHttpClient {
            let script = self.clone();
            http_client_fn(move |_, _| SharedHttpConnector::new(script.clone()))
        }
    }

    impl HttpConnector for Script {
        fn call(&self, _request: HttpRequest) -> HttpConnectorFuture {
            *self.requests.lock().expect("requests") += 1;
            let next = self.answers.lock().expect("answers").pop_front();
            HttpConnectorFuture::ready(match next {
                Some(Answer::Http(status, content_type, body)) => {
                    let mut response = HttpResponse::new(
                        StatusCode::try_from(status).expect("status"),
                        SdkBody::from(body),
                    );
                    response.headers_mut().insert("Content-Type", content_type);
                    Ok(response)
                }
                Some(Answer::Reset) => Err(ConnectorError::io("connection reset by peer".into())),
                None => Err(ConnectorError::other(
                    "the script has no more answers".into(),
                    None,
                )),
            })
        }
    }
}
pub mod iam;
pub mod operators;

// --- the built binaries, through the local Lambda Runtime API ---

/// One run of a function binary: one process, like a warm Lambda
/// environment, given each event in turn by `tests/localaws/lambda_runtime.py`.
pub struct Run {
    /// One record per invocation (`request_id`, `ok`, `response` or `error`).
    pub invocations: Vec<Value>,
    pub output: std::process::Output,
}

impl Run {
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// Each invocation's response (its `outcome` and the rest), in order.
    pub fn responses(&self) -> Vec<Value> {
        self.invocations
            .iter()
            .map(|i| i["response"].clone())
            .collect()
    }

    /// Each invocation's `outcome` (`error` for one that failed), in order.
    pub fn outcomes(&self) -> Vec<String> {
        self.invocations
            .iter()
            .map(|i| {
                i["response"]["outcome"]
                    .as_str()
                    .unwrap_or("error")
                    .to_owned()
            })
            .collect()
    }
}

/// Runs the built `function` once per event, configured only by `env`.
pub fn invoke(function: &str, events: &[Value], env: &[(String, String)]) -> Run {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let dir = std::env::temp_dir().join(format!(
        "changegate-{function}-{}-{stamp}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("event dir");
    let mut cmd = Command::new(python());
    cmd.arg(workspace_root().join("tests/localaws/lambda_runtime.py"))
        .arg("--binary")
        .arg(built_binary(function));
    for (i, e) in events.iter().enumerate() {
        let path = dir.join(format!("event-{i}.json"));
        std::fs::write(&path, e.to_string()).expect("write event");
        cmd.arg("--event").arg(path);
    }
    for (k, v) in env {
        cmd.arg("--env").arg(format!("{k}={v}"));
    }
    let output = cmd.output().expect("run lambda_runtime.py");
    let _ = std::fs::remove_dir_all(&dir);
    let invocations = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("request_id").is_some())
        .collect();
    Run {
        invocations,
        output,
    }
}
