"""The local-AWS plumbing that the demo, the benchmark and the tests share.

    import localaws
    with localaws.Server() as aws:                   # server.py on a free port
        world = localaws.provision(aws.url)          # what template.yaml deploys
        env = world.function_env("grant")            # the template's environment, locally
        results = localaws.invoke("grant", events, env)
        for function, events in world.pending().items(): ...   # what the rules caught

One copy of each thing the tools used to carry their own of:

* ``Server``: starts ``server.py`` (its ``READY <url>`` line), stops it, hands
  out boto3 clients pointed at it, toggles IAM enforcement, resets it, and
  reads what SNS published.
* ``drain``: every message in an SQS queue, read and deleted.
* ``provision``: the local world as ``template.yaml`` describes it: the
  decision table, the event bus, the SSM documents (runbooks, change
  template), the topics and schedule groups, and, for each EventBridge rule
  that targets a function, the same rule with an SQS queue as its target, so
  that what the rule catches can be handed to that function.
* ``World.function_env``: the environment a function gets in the template,
  with its references resolved to the local names, plus what points the SDK
  at the local AWS.
* ``binary`` / ``invoke``: the built function binaries (honouring
  ``CARGO_TARGET_DIR`` and cargo's own configuration) run through the local
  Lambda Runtime API (lambda_runtime.py).

Local names: the bus is ``changegate``, the table ``changegate-decisions``, the
stack ``changegate``, the notification topic ``changegate-notifications``.
See README.md beside this file.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import select
import socket
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import boto3
import yaml
from botocore.config import Config
from botocore.exceptions import ClientError

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
import lambda_runtime  # noqa: E402  (beside this file)
import pool  # noqa: E402  (beside this file)

REGION = "us-east-1"
PARTITION = "aws"
HOME_ACCOUNT = "123456789012"  # moto's default account: changegate and the people
PROD_ACCOUNT = "111122223333"  # the production account requests ask for
STACK_NAME = "changegate"
EVENT_BUS = "changegate"
DECISIONS_TABLE = "changegate-decisions"
TOPIC_NAME = "changegate-notifications"
ROLE_NAME = "CM-Prd-role"
ELIGIBILITY_TAG = "changegate:eligible"
FUNCTIONS = ("grant", "revoke", "notify")
TEMPLATE = ROOT / "template.yaml"
DUMMY_CREDS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}

SERVER_READY_S = 60.0  # moto's imports take a few seconds on a cold cache

# The longest name AWS takes for each kind of resource (and where it says
# so): the names the template gives, and those CloudFormation generates for
# the rest (stack name, logical id and a random suffix, cut to fit), must fit.
NAME_LIMITS: dict[str, tuple[int, str]] = {
    "AWS::DynamoDB::Table": (255, "DynamoDB: table names 3-255 characters"),
    "AWS::Events::EventBus": (256, "EventBridge CreateEventBus: Name 1-256"),
    "AWS::Events::Rule": (64, "EventBridge PutRule: Name 1-64"),
    "AWS::SNS::Topic": (256, "SNS CreateTopic: up to 256 characters"),
    "AWS::SQS::Queue": (80, "SQS CreateQueue: a queue name can have up to 80 characters"),
    "AWS::Scheduler::ScheduleGroup": (64, "AWS::Scheduler::ScheduleGroup Name: maximum 64"),
    "AWS::SSM::Document": (128, "SSM CreateDocument: Name ^[a-zA-Z0-9_\\-.]{3,128}$"),
    "AWS::SSM::Parameter": (1011, "SSM PutParameter: a parameter name is at most 1011 characters"),
    "AWS::IAM::Role": (64, "IAM CreateRole: RoleName 1-64"),
    "AWS::Serverless::Function": (64, "Lambda CreateFunction: a function name is 1-64 characters"),
    "AWS::Lambda::Function": (64, "Lambda CreateFunction: a function name is 1-64 characters"),
    "AWS::Logs::LogGroup": (512, "CloudWatch Logs CreateLogGroup: logGroupName 1-512"),
    "AWS::CloudWatch::Alarm": (255, "CloudWatch PutMetricAlarm: AlarmName 1-255"),
}
# The name property of each kind of resource, where it is not Name.
NAME_PROPERTIES = ("Name", "TopicName", "QueueName", "TableName", "RoleName", "FunctionName", "LogGroupName",
                   "AlarmName", "ScheduleGroupName")

# Resources with a fixed local name, whatever the template calls them
# (the default local stack only; a stack named in provision() has AWS's names).
LOCAL_NAMES_BY_TYPE = {
    "AWS::Events::EventBus": EVENT_BUS,
    "AWS::DynamoDB::Table": DECISIONS_TABLE,
}
LOCAL_NAMES_BY_ID = {"NotificationTopic": TOPIC_NAME}

# The template's parameters, as the local world sets them (over their
# defaults): production is PROD_ACCOUNT, bob approves.
APPROVER = f"arn:aws:iam::{HOME_ACCOUNT}:user/bob"
LOCAL_PARAMETERS = {"AllowedAccountIds": PROD_ACCOUNT, "ApproverArns": APPROVER}


class LocalAwsError(RuntimeError):
    """The local AWS or the world in it could not be set up."""


# ---------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------


def client(url: str, service: str, creds: Mapping[str, str] | None = None, **config: Any) -> Any:
    """A boto3 client for the local AWS: one attempt, short timeouts (a local
    call that fails should fail the test, not be retried into a pass)."""
    settings = {"retries": {"total_max_attempts": 1}, "connect_timeout": 5, "read_timeout": 30, **config}
    return boto3.client(
        service, endpoint_url=url, region_name=REGION, config=Config(**settings), **dict(creds or DUMMY_CREDS)
    )


def spawn_ready(args: list[str], *, stderr: Any = None, timeout: float = SERVER_READY_S) -> tuple[subprocess.Popen[bytes], str]:
    """Starts one of the local-AWS scripts and reads its ``READY <url>`` line."""
    proc = subprocess.Popen(
        [sys.executable, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr
    )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline().decode().strip() if ready else ""
    if not line.startswith("READY "):
        stop(proc)
        raise LocalAwsError(f"{args[0]} did not start within {timeout:g} s: {line!r}")
    return proc, line.split(" ", 1)[1]


def stop(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """SIGTERM, a grace period, then SIGKILL; always reaped."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(grace)
    if proc.stdout:
        proc.stdout.close()


class Server:
    """``server.py`` as a child process on a free loopback port; ``close()``
    (or leaving the ``with``) stops and reaps it. Its log goes to ``log_path``
    (default: inherited stderr)."""

    def __init__(self, log_path: Path | None = None, *, verbose: bool = False, args: Sequence[str] = ()):
        """``args``: more of server.py's options (``--max-inline-steps 1``).
        With ``$CHANGEGATE_LOCALAWS_POOL`` naming a running ``pool.py``, the
        server is forked from it (milliseconds, not seconds of imports)."""
        self.log = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.conn: socket.socket | None = None
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            self.log = open(log_path, "wb")  # noqa: SIM115  (closed in close())
        options = [*args] + (["--verbose"] if verbose else [])
        try:
            if os.environ.get(pool.ENV):
                with contextlib.suppress(OSError):
                    self.conn, self.url = pool.request(os.environ[pool.ENV], options, stderr=self.log)
            if self.conn is None:
                argv = [str(HERE / "server.py"), "--host", "127.0.0.1", "--port", "0", *options]
                self.proc, self.url = spawn_ready(argv, stderr=self.log)
        except Exception:
            if self.log:
                self.log.close()
            raise

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.conn is not None:
            pool.release(self.conn)
        if self.proc is not None:
            stop(self.proc)
        if self.log:
            self.log.close()

    def client(self, service: str, creds: Mapping[str, str] | None = None, **config: Any) -> Any:
        return client(self.url, service, creds, **config)

    # -- moto's and server.py's own endpoints ---------------------------------
    def _post(self, path: str, body: str = "") -> bytes:
        req = urllib.request.Request(
            self.url + path, data=body.encode(), method="POST", headers={"Content-Type": "text/plain"}
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.read()

    def get_json(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=10) as r:
            return json.loads(r.read())

    def reset(self) -> None:
        """Forgets everything (``/moto-api/reset``)."""
        self._post("/moto-api/reset")

    @contextlib.contextmanager
    def iam_enforced(self) -> Iterator[None]:
        """moto checks IAM policies only while auth is on: ``reset-auth`` with
        the number of requests to let through unchecked (0 = none, inf = all).
        Global: every request is checked meanwhile, the functions' too."""
        self._post("/moto-api/reset-auth", "0")
        try:
            yield
        finally:
            self._post("/moto-api/reset-auth", "inf")

    def sns_published(self) -> list[dict[str, Any]]:
        """Every SNS Publish moto recorded (``GET /_localaws/sns/published``)."""
        return self.get_json("/_localaws/sns/published")

    def lambda_invocations(self, drain: bool = True) -> list[dict[str, Any]]:
        """The Lambda invocations runbooks asked for (``aws:invokeLambdaFunction``
        steps), oldest first; ``drain`` forgets them once read."""
        return self.get_json("/_localaws/lambda/invocations" + ("?drain=1" if drain else ""))

    def answer_invocation(self, invocation_id: str, response: Any) -> None:
        """Hands a function's answer to a ``RequestResponse`` invocation back
        to its runbook step, which then ends with it as its payload."""
        self._post(f"/_localaws/lambda/invocations/{invocation_id}", json.dumps({"Payload": json.dumps(response)}))


def drain(sqs: Any, queue_url: str, limit: int = 500) -> list[dict[str, Any]]:
    """Every message now in the queue, bodies parsed as JSON, read and deleted
    (at most ``limit``)."""
    bodies: list[dict[str, Any]] = []
    while len(bodies) < limit:
        msgs = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not msgs:
            break
        for m in msgs:
            bodies.append(json.loads(m["Body"]))
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs)],
        )
    return bodies


def as_lambda_event(body: Mapping[str, Any], account: str = HOME_ACCOUNT) -> dict[str, Any]:
    """An event as an SQS target of a rule received it, in the shape Lambda
    gets it from EventBridge: moto's default target template drops
    ``account`` (AWS always sends the bus's account) and ``version``."""
    event = dict(body)
    event.setdefault("account", account)
    event.setdefault("version", "0")
    return event


def queue(sqs: Any, name: str) -> tuple[str, str]:
    """Creates (or finds) an SQS queue; returns its URL and ARN."""
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


# ---------------------------------------------------------------------------
# The function binaries
# ---------------------------------------------------------------------------


@lru_cache(maxsize=1)
def target_dir() -> Path:
    """Where cargo puts what it builds: ``cargo metadata`` knows every way
    that can be configured (``CARGO_TARGET_DIR``, ``.cargo/config.toml``);
    without cargo, ``$CARGO_TARGET_DIR`` or ``target/``."""
    try:
        out = subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--no-deps", "--offline"],
            cwd=ROOT, capture_output=True, text=True, timeout=60, check=True,
        ).stdout
        return Path(json.loads(out)["target_directory"])
    except (OSError, subprocess.SubprocessError, ValueError, KeyError):
        env = os.environ.get("CARGO_TARGET_DIR")
        return Path(env).resolve() if env else ROOT / "target"


def bin_dir(profile: str = "debug") -> Path:
    return target_dir() / profile


def binary(name: str, profile: str = "debug", directory: Path | None = None) -> Path:
    """The built binary of one function (``grant``, ``revoke``, ``notify``)."""
    return (directory or bin_dir(profile)) / name


def missing_binaries(directory: Path | None = None, names: tuple[str, ...] = FUNCTIONS) -> list[str]:
    d = directory or bin_dir()
    return [n for n in names if not os.access(d / n, os.X_OK)]


def invoke(
    function: str,
    events: list[Any],
    env: Mapping[str, str | None],
    *,
    directory: Path | None = None,
    **kwargs: Any,
) -> list[dict[str, Any]]:
    """Runs the built ``function`` for ``events`` through the local Runtime
    API (one cold start); raises ``lambda_runtime.LambdaRunError`` on init
    error, crash or timeout. ``kwargs`` go to ``lambda_runtime.run``."""
    kwargs.setdefault("function_name", f"{STACK_NAME}-{function}")
    return lambda_runtime.invoke(str(binary(function, directory=directory)), events, env, **kwargs)


def run(function: str, events: list[Any], env: Mapping[str, str | None], *, directory: Path | None = None,
        **kwargs: Any) -> lambda_runtime.Run:
    """``invoke`` without raising: the whole ``lambda_runtime.Run``."""
    kwargs.setdefault("function_name", f"{STACK_NAME}-{function}")
    return lambda_runtime.run(str(binary(function, directory=directory)), events, env, **kwargs)


def base_env(url: str) -> dict[str, str | None]:
    """What points a function's SDK at the local AWS, and removes whatever
    of the caller's own AWS set-up would leak into it."""
    env: dict[str, str | None] = {
        "AWS_ENDPOINT_URL": url,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,  # Lambda sets both
        "AWS_ACCESS_KEY_ID": DUMMY_CREDS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": DUMMY_CREDS["aws_secret_access_key"],
    }
    for var in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_CONFIG_FILE",
                "AWS_SHARED_CREDENTIALS_FILE"):
        env[var] = None
    for var in os.environ:
        if var.startswith("AWS_ENDPOINT_URL_"):
            env[var] = None
    return env


# ---------------------------------------------------------------------------
# template.yaml
# ---------------------------------------------------------------------------


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags: ``!Ref x`` becomes
    ``{"Ref": "x"}``, ``!GetAtt a.b`` ``{"Fn::GetAtt": ["a", "b"]}``,
    ``!Condition c`` ``{"Condition": "c"}``, any other ``!Name v``
    ``{"Fn::Name": v}``."""


def _cfn_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "Condition":
        return {"Condition": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _cfn_tag)


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=_CfnLoader)  # noqa: S506  (a SafeLoader subclass)


def _kebab(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


def function_short_name(logical_id: str) -> str:
    """``GrantFunction`` -> ``grant``: the binary's name."""
    return _kebab(logical_id.removesuffix("Function"))


class UnresolvedReference(LocalAwsError):
    pass


# What a template's Rules may use (CloudFormation template reference, "Rule
# functions": Fn::RefAll, Fn::ValueOf and Fn::ValueOfAll read AWS-specific
# parameter types, which this template has none of, and are not emulated).
RULE_FUNCTIONS = {"Ref", "Fn::And", "Fn::Or", "Fn::Not", "Fn::Equals", "Fn::Contains", "Fn::EachMemberEquals",
                  "Fn::EachMemberIn"}


def _parameter_problem(spec: Mapping[str, Any], value: str) -> str | None:
    """Why CloudFormation would refuse ``value`` for a parameter declared as
    ``spec`` (one entry of a list parameter), or None."""
    if "Number" in str(spec.get("Type", "")):
        try:
            number = float(value)
        except ValueError:
            return "must be a number"
        if "MinValue" in spec and number < float(spec["MinValue"]):
            return f"must be at least {spec['MinValue']}"
        if "MaxValue" in spec and number > float(spec["MaxValue"]):
            return f"must be at most {spec['MaxValue']}"
    if "AllowedValues" in spec and value not in [str(v) for v in spec["AllowedValues"]]:
        return f"must be one of {spec['AllowedValues']}"
    if "AllowedPattern" in spec and not re.fullmatch(str(spec["AllowedPattern"]), value):
        return f"must match pattern {spec['AllowedPattern']}"
    if "MinLength" in spec and len(value) < int(spec["MinLength"]):
        return f"must have at least {spec['MinLength']} characters"
    if "MaxLength" in spec and len(value) > int(spec["MaxLength"]):
        return f"must have at most {spec['MaxLength']} characters"
    return None


class Stack:
    """template.yaml with its references resolved to the local world's names:
    ``!Ref``, ``!GetAtt``, ``!Sub``, ``!Join``, ``!If`` and the condition
    functions, ``!Select``, ``!Split``."""

    def __init__(self, template: Mapping[str, Any], parameters: Mapping[str, str] | None = None,
                 stack_name: str | None = None):
        """``stack_name``: a stack as CloudFormation would deploy it under that
        name (its names generated as AWS would, none of the local world's
        fixed ones); without it, the local world's stack ``changegate``."""
        self.template = template
        self.local = stack_name is None
        self.stack_name = stack_name or STACK_NAME
        # A stack id ends in a UUID of its own; derived from the name here, so
        # that the local world's names are the same in every run.
        stack_uuid = uuid.uuid5(uuid.NAMESPACE_URL, f"{HOME_ACCOUNT}/{REGION}/{self.stack_name}")
        self.resources: dict[str, Any] = dict(template.get("Resources") or {})
        self.parameters: dict[str, Any] = {}
        for name, spec in (template.get("Parameters") or {}).items():
            given = (parameters or {}).get(name, LOCAL_PARAMETERS.get(name, spec.get("Default")))
            if given is None:
                continue  # a required parameter nobody set: an error only where it is used
            value = str(given) if not isinstance(given, list) else ",".join(given)
            self.parameters[name] = value.split(",") if "List" in str(spec.get("Type", "")) else value
        self.pseudo = {
            "AWS::Region": REGION,
            "AWS::AccountId": HOME_ACCOUNT,
            "AWS::Partition": PARTITION,
            "AWS::StackName": self.stack_name,
            "AWS::StackId": f"arn:{PARTITION}:cloudformation:{REGION}:{HOME_ACCOUNT}:stack/{self.stack_name}/{stack_uuid}",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": None,
        }
        self._names: dict[str, str] = {}

    # -- names and ARNs --------------------------------------------------------
    def type_of(self, logical_id: str) -> str:
        return str(self.resources[logical_id].get("Type", ""))

    def name(self, logical_id: str) -> str:
        """The physical name of a resource: the one the template gives, else
        (local world) a fixed local one, else one generated as CloudFormation
        does ("stack-LogicalId-RANDOM", cut to the kind's longest name)."""
        if logical_id in self._names:
            return self._names[logical_id]
        kind = self.type_of(logical_id)
        props = self.resources[logical_id].get("Properties") or {}
        key = next((k for k in NAME_PROPERTIES if k in props), None)
        if self.local and logical_id in LOCAL_NAMES_BY_ID:
            name = LOCAL_NAMES_BY_ID[logical_id]
        elif self.local and kind in LOCAL_NAMES_BY_TYPE:
            name = LOCAL_NAMES_BY_TYPE[kind]
        elif key:
            name = props[key]
        elif self.local and kind in ("AWS::Serverless::Function", "AWS::Lambda::Function"):
            name = f"{STACK_NAME}-{function_short_name(logical_id)}"
        elif self.local:
            name = f"{STACK_NAME}-{_kebab(logical_id)}"
        else:
            name = self.generated_name(logical_id)
        self._names[logical_id] = name = str(self.resolve(name))
        return name

    def generated_name(self, logical_id: str, kind: str | None = None) -> str:
        """A name as CloudFormation generates one for a resource the template
        leaves unnamed: stack name, logical id and a 12-character random
        suffix, the first two cut so that the whole fits the kind's limit
        ("CloudFormation resource custom naming", CloudFormation template
        reference)."""
        limit = NAME_LIMITS.get(kind or self.type_of(logical_id), (64, ""))[0]
        suffix = "".join(secrets.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") for _ in range(12))
        return f"{self.stack_name}-{logical_id}"[: limit - len(suffix) - 1] + "-" + suffix

    def physical_names(self) -> dict[str, tuple[str, str]]:
        """Every named resource the template deploys (conditions applied),
        with SAM's generated ones (function roles, function event rules):
        logical id -> (kind, physical name)."""
        out: dict[str, tuple[str, str]] = {}
        for logical, spec in self.resources.items():
            if not self._included(logical) or spec.get("Type") not in NAME_LIMITS:
                continue
            out[logical] = (str(spec["Type"]), self.name(logical))
        for logical in self.functions():
            role = f"{logical}Role"
            if role not in self.resources:
                out[role] = ("AWS::IAM::Role", self._names.setdefault(role, self.generated_name(role, "AWS::IAM::Role")))
        for rule in template_rules(self):
            out.setdefault(rule.name, ("AWS::Events::Rule", rule.physical))
        return out

    def dependencies(self, logical_id: str) -> set[str]:
        """The resources ``logical_id`` depends on: DependsOn, and every
        resource its properties Ref, GetAtt or Sub."""
        spec = self.resources[logical_id]
        found = {spec["DependsOn"]} if isinstance(spec.get("DependsOn"), str) else set(spec.get("DependsOn") or [])

        def walk(value: Any) -> None:
            if isinstance(value, dict):
                for key, arg in value.items():
                    if key == "Ref" and isinstance(arg, str):
                        found.add(arg)
                    elif key == "Fn::GetAtt":
                        found.add((arg if isinstance(arg, list) else str(arg).split("."))[0])
                    elif key == "Fn::Sub":
                        text = arg if isinstance(arg, str) else arg[0]
                        found.update(m.split(".")[0] for m in re.findall(r"\$\{([^!}][^}]*)\}", str(text)))
                    walk(arg)
            elif isinstance(value, list):
                for v in value:
                    walk(v)

        walk(spec.get("Properties") or {})
        return found & set(self.resources)

    def creation_order(self, logical_ids: list[str]) -> list[str]:
        """``logical_ids`` ordered so that each comes after what it depends on
        (as CloudFormation creates them), else in template order."""
        wanted, done, order = set(logical_ids), set(), []

        def visit(logical: str, path: tuple[str, ...]) -> None:
            if logical in done:
                return
            if logical in path:
                raise LocalAwsError(f"circular dependency: {' -> '.join((*path, logical))}")
            for dep in sorted(self.dependencies(logical) & wanted):
                visit(dep, (*path, logical))
            done.add(logical)
            order.append(logical)

        for logical in logical_ids:
            visit(logical, ())
        return order

    def arn(self, logical_id: str) -> str:
        kind, name = self.type_of(logical_id), self.name(logical_id)
        where = f"{REGION}:{HOME_ACCOUNT}"
        return {
            "AWS::Serverless::Function": f"arn:{PARTITION}:lambda:{where}:function:{name}",
            "AWS::Lambda::Function": f"arn:{PARTITION}:lambda:{where}:function:{name}",
            "AWS::SNS::Topic": f"arn:{PARTITION}:sns:{where}:{name}",
            "AWS::SQS::Queue": f"arn:{PARTITION}:sqs:{where}:{name}",
            "AWS::Events::EventBus": f"arn:{PARTITION}:events:{where}:event-bus/{name}",
            "AWS::Events::Rule": f"arn:{PARTITION}:events:{where}:rule/{name}",
            "AWS::DynamoDB::Table": f"arn:{PARTITION}:dynamodb:{where}:table/{name}",
            "AWS::SSM::Document": f"arn:{PARTITION}:ssm:{where}:document/{name}",
            "AWS::Scheduler::ScheduleGroup": f"arn:{PARTITION}:scheduler:{where}:schedule-group/{name}",
            "AWS::IAM::Role": f"arn:{PARTITION}:iam::{HOME_ACCOUNT}:role/{name}",
            "AWS::Logs::LogGroup": f"arn:{PARTITION}:logs:{where}:log-group:{name}",
        }.get(kind, f"arn:{PARTITION}:local:{where}:{_kebab(logical_id)}/{name}")

    def ref(self, target: str) -> Any:
        if target in self.pseudo:
            return self.pseudo[target]
        if target in self.parameters:
            return self.parameters[target]
        if target in (self.template.get("Parameters") or {}):
            raise UnresolvedReference(f"template parameter {target} has no default; pass it to provision(parameters=...)")
        if target not in self.resources:
            raise UnresolvedReference(f"!Ref {target}: no such parameter or resource")
        kind = self.type_of(target)
        if kind == "AWS::SNS::Topic":
            return self.arn(target)
        if kind == "AWS::SQS::Queue":
            return f"http://sqs.{REGION}.localhost.localstack.cloud/{HOME_ACCOUNT}/{self.name(target)}"
        return self.name(target)

    def get_att(self, target: str, attribute: str) -> Any:
        if target not in self.resources:
            # SAM's generated resources, e.g. GrantFunctionChangeRequestStatus (a rule).
            return f"arn:{PARTITION}:events:{REGION}:{HOME_ACCOUNT}:rule/{target}"
        if attribute == "Arn":
            return self.arn(target)
        if attribute in ("Name", "TopicName", "QueueName", "TableName", "RoleId"):
            return self.name(target)
        if attribute == "QueueUrl":
            return self.ref(target)
        if attribute == "Value" and self.type_of(target) == "AWS::SSM::Parameter":
            return self.resolve((self.resources[target].get("Properties") or {}).get("Value"))
        raise UnresolvedReference(f"!GetAtt {target}.{attribute}: not known locally")

    # -- intrinsic functions ---------------------------------------------------
    def condition(self, name: str) -> bool:
        return bool(self.resolve((self.template.get("Conditions") or {})[name]))

    def resolve(self, value: Any) -> Any:
        """``value`` with every intrinsic function evaluated."""
        if isinstance(value, list):
            # An item that resolves to AWS::NoValue (a bare !Ref or the branch
            # of an !If) is removed from the list, as CloudFormation does.
            resolved = (self.resolve(v) for v in value)
            return [v for v in resolved if v is not None]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Condition" and isinstance(arg, str):
                return self.condition(arg)
            if key == "Fn::GetAtt":
                target, attribute = arg if isinstance(arg, list) else str(arg).split(".", 1)
                return self.get_att(target, attribute)
            if key == "Fn::Sub":
                return self._sub(arg)
            if key == "Fn::Join":
                sep, items = arg
                return str(sep).join(str(x) for x in self.resolve(items))
            if key == "Fn::If":
                cond, yes, no = arg
                return self.resolve(yes if self.condition(cond) else no)
            if key == "Fn::Equals":
                a, b = self.resolve(arg)
                return str(a) == str(b)
            if key == "Fn::Not":
                return not self.resolve(arg[0])
            if key == "Fn::And":
                return all(self.resolve(arg))
            if key == "Fn::Or":
                return any(self.resolve(arg))
            if key == "Fn::Select":
                index, items = self.resolve(arg)
                return items[int(index)]
            if key == "Fn::Split":
                sep, text = self.resolve(arg)
                return str(text).split(sep)
            if key == "Fn::FindInMap":
                name, top, second = (str(x) for x in self.resolve(arg))
                try:
                    return self.template["Mappings"][name][top][second]
                except KeyError:
                    raise UnresolvedReference(f"Fn::FindInMap: {name}/{top}/{second} is not in the template's Mappings") from None
            if key == "Fn::ToJsonString":
                return json.dumps(self.resolve(arg), separators=(",", ":"))
            if key.startswith("Fn::"):
                raise UnresolvedReference(f"{key} is not supported locally")
        # A key whose value is AWS::NoValue is left out, as CloudFormation
        # removes such a property.
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not None}

    def _sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))

        def one(m: re.Match[str]) -> str:
            expr = m.group(1)
            if expr.startswith("!"):
                return "${" + expr[1:] + "}"
            if expr in variables:
                return str(variables[expr])
            if "." in expr and expr.split(".", 1)[0] in self.resources:
                return str(self.get_att(*expr.split(".", 1)))
            value = self.ref(expr)
            return ",".join(value) if isinstance(value, list) else str(value)

        return re.sub(r"\$\{([^}]+)\}", one, text)

    # -- what CloudFormation checks before it creates anything ----------------
    def validate_parameters(self) -> None:
        """Each parameter's value against its Type, AllowedValues,
        AllowedPattern (each entry of a list), MinValue/MaxValue and
        MinLength/MaxLength, as CloudFormation does before creating anything;
        a failure names the parameter and its ConstraintDescription."""
        for name, spec in (self.template.get("Parameters") or {}).items():
            if name not in self.parameters:
                raise LocalAwsError(f"Parameters: [{name}] must have values")
            value = self.parameters[name]
            for one in value if isinstance(value, list) else [value]:
                problem = _parameter_problem(spec, str(one))
                if problem:
                    why = spec.get("ConstraintDescription") or problem
                    raise LocalAwsError(f"Parameter '{name}' failed to satisfy constraint: {why} (value {one!r})")

    def check_rules(self) -> None:
        """The template's Rules, as CloudFormation evaluates them before a
        change set: only rule functions and Ref may appear ("Rule functions";
        anything else fails as CloudFormation fails it), and a false assertion
        refuses the stack with its AssertDescription."""
        for name, rule in (self.template.get("Rules") or {}).items():
            condition = rule.get("RuleCondition")
            if condition is not None and not self._rule_value(condition):
                continue
            for assertion in rule.get("Assertions") or []:
                if not self._rule_value(assertion.get("Assert")):
                    raise LocalAwsError(f"Rule {name}: {assertion.get('AssertDescription') or 'an assertion failed'}")

    def _rule_value(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self._rule_value(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) != 1:
            raise LocalAwsError(f"Template format error: not a rule function: {value!r}")
        (fn, arg), = value.items()
        if fn not in RULE_FUNCTIONS:
            raise LocalAwsError("Template format error: Following functions are not supported in the Rules block "
                                f"of the template: [{fn.removeprefix('Fn::')}]")
        if fn == "Ref":
            return self.ref(arg)
        args = self._rule_value(arg)
        if fn == "Fn::Not":
            return not args[0]
        if fn == "Fn::And":
            return all(args)
        if fn == "Fn::Or":
            return any(args)
        if fn == "Fn::Equals":
            return str(args[0]) == str(args[1])
        if fn == "Fn::Contains":
            return str(args[1]) in [str(v) for v in args[0]]
        if fn == "Fn::EachMemberEquals":
            return all(str(v) == str(args[1]) for v in args[0])
        return all(str(v) in [str(w) for w in args[1]] for v in args[0])  # Fn::EachMemberIn

    # -- what the local world mirrors -----------------------------------------
    def of_type(self, *kinds: str) -> list[str]:
        return [k for k, r in self.resources.items() if r.get("Type") in kinds and self._included(k)]

    def _included(self, logical_id: str) -> bool:
        cond = self.resources[logical_id].get("Condition")
        return cond is None or self.condition(cond)

    def functions(self) -> dict[str, str]:
        """Logical id -> binary name of every function."""
        return {k: function_short_name(k) for k in self.of_type("AWS::Serverless::Function", "AWS::Lambda::Function")}

    def function_timeout(self, logical_id: str) -> int:
        """The function's timeout in seconds (its own, else Globals', else Lambda's default 3)."""
        globals_fn = (self.template.get("Globals") or {}).get("Function") or {}
        own = self.resources[logical_id].get("Properties") or {}
        return int(self.resolve(own.get("Timeout", globals_fn.get("Timeout", 3))))

    def function_environment(self, logical_id: str) -> dict[str, str]:
        """The function's environment variables (Globals first), resolved. A
        variable whose value is AWS::NoValue is not set at all, as Lambda gets
        it from CloudFormation (not the string "None")."""
        globals_env = ((self.template.get("Globals") or {}).get("Function") or {}).get("Environment") or {}
        own = (self.resources[logical_id].get("Properties") or {}).get("Environment") or {}
        merged = {**(globals_env.get("Variables") or {}), **(own.get("Variables") or {})}
        resolved = {k: self.resolve(v) for k, v in merged.items()}
        return {k: str(v) for k, v in resolved.items() if v is not None}


@dataclass
class Rule:
    """An EventBridge rule of the template that targets a function, mirrored
    locally with an SQS queue as its target."""

    name: str  # SAM's generated name: <Function><Event>, or the rule's logical id
    function: str  # the binary: grant, revoke, notify
    bus: str
    pattern: dict[str, Any] | None  # None: a schedule
    schedule: str | None = None
    queue_url: str | None = None
    physical: str = ""  # its name in AWS: the local world's is ``name``, a named stack's generated

    def __post_init__(self) -> None:
        self.physical = self.physical or self.name

    @property
    def arn(self) -> str:
        return f"arn:{PARTITION}:events:{REGION}:{HOME_ACCOUNT}:rule/{self.physical}"


def template_rules(stack: Stack) -> list[Rule]:
    """Every EventBridge rule (pattern or schedule) that targets a function:
    SAM ``EventBridgeRule``/``Schedule``/``CloudWatchEvent`` events on the
    functions, and ``AWS::Events::Rule`` resources with a function target."""
    functions = stack.functions()
    rules: list[Rule] = []
    for logical, short in functions.items():
        events = (stack.resources[logical].get("Properties") or {}).get("Events") or {}
        for event_name, spec in events.items():
            kind, props = spec.get("Type"), stack.resolve(spec.get("Properties") or {})
            bus = str(props.get("EventBusName") or "default")
            name = f"{logical}{event_name}"
            physical = "" if stack.local else stack._names.setdefault(name, stack.generated_name(name, "AWS::Events::Rule"))
            if kind in ("EventBridgeRule", "CloudWatchEvent"):
                rules.append(Rule(name, short, bus, props.get("Pattern"), physical=physical))
            elif kind in ("Schedule", "ScheduleV2"):
                rules.append(Rule(name, short, bus, None,
                                  schedule=props.get("Schedule") or props.get("ScheduleExpression"), physical=physical))
    for logical in stack.of_type("AWS::Events::Rule"):
        props = stack.resources[logical].get("Properties") or {}
        for target in props.get("Targets") or []:
            arn = target.get("Arn")
            fn = (arn.get("Fn::GetAtt") or [None])[0] if isinstance(arn, dict) else None
            if fn in functions:
                p = stack.resolve(props)
                rules.append(Rule(logical, functions[fn], str(p.get("EventBusName") or "default"),
                                  p.get("EventPattern"), schedule=p.get("ScheduleExpression"),
                                  physical=str(p.get("Name") or ("" if stack.local else stack.name(logical)))))
    return rules


@dataclass
class Document:
    name: str
    document_type: str
    content: dict[str, Any]
    created: bool = False
    skipped: str | None = None  # why it could not be created locally
    logical_id: str = ""
    document_format: str = "JSON"  # the template's DocumentFormat (CloudFormation's default: JSON)
    text: str = ""  # the content as SSM gets it, in that format


def template_documents(stack: Stack) -> list[Document]:
    """The template's SSM documents, their content resolved, in the order
    CloudFormation may create them. A document whose content refers to what
    cannot be resolved locally is kept with ``skipped``. Content given as a
    string reaches SSM as written; given as a map, CloudFormation writes it
    in the document's format."""
    docs = []
    for logical in stack.creation_order(stack.of_type("AWS::SSM::Document")):
        props = stack.resources[logical].get("Properties") or {}
        name = stack.name(logical)
        kind = str(props.get("DocumentType") or "Command")
        fmt = str(props.get("DocumentFormat") or "JSON")
        try:
            content = stack.resolve(props.get("Content") or {})
        except LocalAwsError as e:
            docs.append(Document(name, kind, {}, skipped=str(e), logical_id=logical, document_format=fmt))
            continue
        if isinstance(content, str):
            text, content = content, yaml.safe_load(content)
        else:
            text = json.dumps(content) if fmt == "JSON" else yaml.safe_dump(content, sort_keys=False)
        docs.append(Document(name, kind, content, logical_id=logical, document_format=fmt, text=text))
    return docs


# ---------------------------------------------------------------------------
# Provisioning
# ---------------------------------------------------------------------------


@dataclass
class World:
    """What ``provision`` made in the local AWS, by local name."""

    url: str
    stack: Stack
    bus: str = EVENT_BUS
    table: str = DECISIONS_TABLE
    topics: dict[str, str] = field(default_factory=dict)  # logical id -> ARN
    documents: list[Document] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    schedule_groups: list[str] = field(default_factory=list)
    queues: dict[str, str] = field(default_factory=dict)  # logical id -> URL
    roles: dict[str, str] = field(default_factory=dict)  # logical id -> role name

    @property
    def topic_arn(self) -> str:
        return self.topics.get("NotificationTopic") or next(iter(self.topics.values()))

    def document(self, logical_id: str) -> Document:
        """The template's document ``logical_id`` (AccessRunbook, ChangeTemplate,
        RequestRunbook), as provisioned."""
        found = next((d for d in self.documents if d.logical_id == logical_id), None)
        if found is None:
            raise LocalAwsError(f"the stack deploys no document {logical_id} (with these parameters)")
        return found

    def document_name(self, logical_id: str) -> str:
        """The name the stack gives its document ``logical_id``."""
        return self.document(logical_id).name

    def client(self, service: str, creds: Mapping[str, str] | None = None, **config: Any) -> Any:
        return client(self.url, service, creds, **config)

    def function_timeout(self, function: str) -> int:
        """The timeout ``function`` has in the template, in seconds."""
        logical = next((k for k, v in self.stack.functions().items() if v == function), None)
        if logical is None:
            raise LocalAwsError(f"template.yaml has no function {function!r}")
        return self.stack.function_timeout(logical)

    def function_env(self, function: str, **overrides: str | None) -> dict[str, str | None]:
        """The environment ``function`` (grant, revoke, notify) has in the
        template, resolved to the local names, plus ``base_env`` and
        ``RUST_LOG=info``; ``overrides`` last (None removes a variable)."""
        logical = next((k for k, v in self.stack.functions().items() if v == function), None)
        if logical is None:
            raise LocalAwsError(f"template.yaml has no function {function!r}")
        env: dict[str, str | None] = {**base_env(self.url), "RUST_LOG": "info"}
        env.update(self.stack.function_environment(logical))
        # The local world always has the decision table; a template that
        # does not name it yet still gets functions that find it.
        env.setdefault("CHANGEGATE_DECISIONS_TABLE", self.table)
        env.update(overrides)
        return env

    def function_named(self, name_or_arn: str) -> str | None:
        """The binary (grant, revoke, notify) a runbook's ``FunctionName``
        (name or ARN, as the template resolves it) means; None if none."""
        name = str(name_or_arn).split(":function:")[-1].split(":")[0]
        for logical, short in self.stack.functions().items():
            if name in (self.stack.name(logical), short):
                return short
        return None

    def rule(self, name: str) -> Rule:
        return next(r for r in self.rules if r.name == name)

    def pending(self) -> dict[str, list[dict[str, Any]]]:
        """What the mirrored rules caught since the last call, per function,
        as Lambda would receive it (``as_lambda_event``). An event two rules
        of one function match is there twice, as AWS would invoke it twice."""
        sqs = self.client("sqs")
        out: dict[str, list[dict[str, Any]]] = {}
        for r in self.rules:
            if r.queue_url:
                events = [as_lambda_event(b) for b in drain(sqs, r.queue_url)]
                if events:
                    out.setdefault(r.function, []).extend(events)
        return out

    def scheduled_event(self, time: str, rule: str | None = None) -> dict[str, Any]:
        """What a schedule rule delivers, as AWS shapes it (the sweep's by default)."""
        schedules = [r for r in self.rules if r.schedule]
        arn = self.rule(rule).arn if rule else (schedules[0].arn if schedules else f"arn:{PARTITION}:events:"
                                                f"{REGION}:{HOME_ACCOUNT}:rule/{STACK_NAME}-sweep")
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": HOME_ACCOUNT,
            "time": time,
            "region": REGION,
            "resources": [arn],
            "detail": {},
        }


def provision(
    url: str,
    *,
    template: Path | Mapping[str, Any] = TEMPLATE,
    parameters: Mapping[str, str] | None = None,
    capture: bool = True,
    stack_name: str | None = None,
) -> World:
    """Creates in the local AWS at ``url`` what template.yaml deploys and
    changegate's functions talk to: the decision table (key
    ``change_request_id`` S), the event bus ``changegate``, the SNS topics,
    the schedule groups, the SSM documents (parameters substituted; a type
    moto refuses is recorded in ``Document.skipped``), and, with ``capture``,
    each rule that targets a function with an SQS queue of the rule's name
    as its target (``World.pending()`` reads them). With ``stack_name``, the
    stack is deployed under that name with the names AWS would give it, so
    that two stacks can stand side by side in one local account."""
    tpl = load_template(template) if isinstance(template, Path) else template
    stack = Stack(tpl, parameters, stack_name)
    stack.validate_parameters()
    stack.check_rules()
    world = World(url, stack)
    # SSM parameters first: the stack's checks are parameters that cannot be
    # created when a check fails, and then nothing else should be either.
    ssm = world.client("ssm")
    for logical in stack.creation_order(stack.of_type("AWS::SSM::Parameter")):
        props = stack.resolve(stack.resources[logical].get("Properties") or {})
        extra = {k: props[k] for k in ("Description", "AllowedPattern") if k in props}
        try:
            ssm.put_parameter(Name=stack.name(logical), Value=str(props.get("Value")), Type=str(props.get("Type", "String")),
                              **extra)
        except ClientError as e:
            raise LocalAwsError(f"{logical} CREATE_FAILED ({e.response['Error']['Code']}: "
                                f"{e.response['Error'].get('Message', '')}): {props.get('Value')}") from None
    buses = stack.of_type("AWS::Events::EventBus")
    tables = stack.of_type("AWS::DynamoDB::Table")
    if buses:
        world.bus = stack.name(buses[0])
    if tables:
        world.table = stack.name(tables[0])

    ddb = world.client("dynamodb")
    spec = (stack.resources[tables[0]].get("Properties") or {}) if tables else {}
    ddb.create_table(
        TableName=world.table,
        KeySchema=spec.get("KeySchema") or [{"AttributeName": "change_request_id", "KeyType": "HASH"}],
        AttributeDefinitions=spec.get("AttributeDefinitions")
        or [{"AttributeName": "change_request_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        **({"GlobalSecondaryIndexes": spec["GlobalSecondaryIndexes"]} if spec.get("GlobalSecondaryIndexes") else {}),
    )

    events = world.client("events")
    events.create_event_bus(Name=world.bus)

    sns = world.client("sns")
    for logical in stack.of_type("AWS::SNS::Topic"):
        world.topics[logical] = sns.create_topic(Name=stack.name(logical))["TopicArn"]
    if not world.topics:
        world.topics["NotificationTopic"] = sns.create_topic(Name=TOPIC_NAME)["TopicArn"]

    scheduler = world.client("scheduler")
    for logical in stack.of_type("AWS::Scheduler::ScheduleGroup"):
        scheduler.create_schedule_group(Name=stack.name(logical))
        world.schedule_groups.append(stack.name(logical))

    sqs = world.client("sqs")
    for logical in stack.of_type("AWS::SQS::Queue"):
        world.queues[logical] = sqs.create_queue(QueueName=stack.name(logical))["QueueUrl"]

    # The template's own roles (SAM's function roles are not in it), with
    # their trust and inline policies: a runbook acts as its assumeRole.
    iam = world.client("iam")
    for logical in stack.of_type("AWS::IAM::Role"):
        props = stack.resolve(stack.resources[logical].get("Properties") or {})
        name = stack.name(logical)
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(props["AssumeRolePolicyDocument"]),
                        Description=str(props.get("Description", "")), **({"Path": props["Path"]} if "Path" in props else {}))
        for policy in props.get("Policies") or []:
            iam.put_role_policy(RoleName=name, PolicyName=policy["PolicyName"],
                                PolicyDocument=json.dumps(policy["PolicyDocument"]))
        world.roles[logical] = name

    world.documents = template_documents(stack)
    for doc in world.documents:
        if doc.skipped:
            continue
        try:
            ssm.create_document(Name=doc.name, DocumentType=doc.document_type, DocumentFormat=doc.document_format,
                                Content=doc.text)
            doc.created = True
        except ClientError as e:
            doc.skipped = f"{e.response['Error']['Code']}: {e.response['Error'].get('Message', '')}"

    world.rules = template_rules(stack)
    if capture:
        for r in world.rules:
            if r.pattern is None:
                continue  # moto does not fire schedules: tests hand revoke the event
            r.queue_url, arn = queue(sqs, r.physical)
            events.put_rule(Name=r.physical, EventBusName=r.bus, EventPattern=json.dumps(r.pattern))
            events.put_targets(Rule=r.physical, EventBusName=r.bus, Targets=[{"Id": "capture", "Arn": arn}])
    return world


def main(argv: list[str] | None = None) -> int:
    """``python localaws.py``: starts a server, provisions the world, prints
    what it made and the functions' environments, and serves until Ctrl-C."""
    import argparse
    import signal

    ap = argparse.ArgumentParser(description="a local AWS with changegate's world in it")
    ap.add_argument("--print-only", action="store_true", help="provision, print, stop")
    args = ap.parse_args(argv)
    with Server() as aws:
        world = provision(aws.url)
        print(json.dumps({
            "url": aws.url,
            "bus": world.bus,
            "table": world.table,
            "topics": world.topics,
            "documents": {d.name: d.skipped or "created" for d in world.documents},
            "rules": {r.name: {"function": r.function, "bus": r.bus, "pattern": r.pattern, "schedule": r.schedule}
                      for r in world.rules},
            "env": {f: {k: v for k, v in world.function_env(f).items() if v is not None and k.startswith("CHANGEGATE_")}
                    for f in world.stack.functions().values()},
        }, indent=2), flush=True)
        if not args.print_only:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
    return 0


if __name__ == "__main__":
    sys.exit(main())
