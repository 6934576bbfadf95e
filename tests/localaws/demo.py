#!/usr/bin/env python3
"""changegate, end to end, on a local AWS: ``make demo``.

    .venv/bin/python tests/localaws/demo.py [--bin-dir target/debug] [--window 20] [--same-account]

Run from the repository root after ``cargo build --workspace --bins``. Starts
its own local AWS (server.py, moto on a free port; always stopped at the
end), then replays a just-in-time access request as a timeline:

 1. accounts, users, the production role, the SNS topic and EventBridge rules
 2. alice cannot assume the production role
 3. alice files a change request for a short window written in +09:00
 4. bob approves it
 5. the events reach grant and notify through a local Lambda Runtime API;
    alice now has the windowed policy and can assume the role
 6. revoke leaves the open window alone, then removes the policy once it ends
 7. the notifications: the email text and the Slack (Amazon Q) card

Exit 0 when every step did what it should, non-zero with a message otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
import lambda_runtime  # noqa: E402  (beside this file)

REGION = "us-east-1"
IDENTITY_ACCOUNT = "123456789012"  # moto's default account: where the people are
PROD_ACCOUNT = "111122223333"  # where the production role lives
ROLE_NAME = "CM-Prd-role"
ELIGIBILITY_TAG = "changegate:eligible"
TOPIC_NAME = "changegate-notifications"
TEMPLATE = "changegate-access"
RUNBOOK = "changegate-access-runbook"
DUMMY = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
JST = timezone(timedelta(hours=9))

SSM_PATTERN = {"source": ["aws.ssm"], "detail-type": ["Change Request Status Update"]}
CHANGEGATE_PATTERN = {"source": ["changegate"]}

# The Rust runtime's per-invocation tracing span, as printed before each log line.
SPAN = re.compile(r"Lambda runtime invoke\{[^}]*\}: ")

SERVER_READY_S = 60  # moto imports take a few seconds on a cold cache
FUNCTION_TIMEOUT_S = 30


class DemoFailure(Exception):
    pass


def check(condition: bool, message: str) -> None:
    if not condition:
        raise DemoFailure(message)


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------


class Timeline:
    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.step_no = 0

    def step(self, title: str) -> None:
        self.step_no += 1
        head = f"━━ {self.step_no}. {title} "
        print(f"\n{head}{'━' * max(4, 78 - len(head))}", flush=True)

    def say(self, text: str) -> None:
        stamp = datetime.now(timezone.utc).strftime("%H:%M:%S.%f")[:10]
        elapsed = time.monotonic() - self.t0
        lines = text.splitlines() or [""]
        print(f"{stamp}Z +{elapsed:5.1f}s  {lines[0]}", flush=True)
        for line in lines[1:]:
            print(f"{'':19}  {line}", flush=True)

    def block(self, text: str, indent: int = 6) -> None:
        for line in text.splitlines():
            print(f"{'':19}{' ' * indent}{line}", flush=True)


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def compact(value: Any, limit: int = 160) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------------------
# The local AWS
# ---------------------------------------------------------------------------


class LocalAws:
    """server.py as a child process; stopped (and reaped) by close()."""

    def __init__(self, log_path: Path):
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "server.py"), "--port", "0"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self.log,
        )
        self.url = self._wait_ready()

    def _wait_ready(self) -> str:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], SERVER_READY_S)
        line = self.proc.stdout.readline().decode().strip() if ready else ""
        if not line.startswith("READY "):
            raise DemoFailure(f"local AWS did not start within {SERVER_READY_S} s (see {self.log.name}): {line!r}")
        return line.split(" ", 1)[1]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stdout:
            self.proc.stdout.close()
        self.log.close()

    # -- clients -------------------------------------------------------------
    def client(self, service: str, creds: dict[str, str] | None = None) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=REGION,
            config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30),
            **(creds or DUMMY),
        )

    # -- moto's test endpoints -----------------------------------------------
    def _post(self, path: str, body: str) -> None:
        req = urllib.request.Request(self.url + path, data=body.encode(), method="POST",
                                     headers={"Content-Type": "text/plain"})
        with urllib.request.urlopen(req, timeout=10) as r:
            r.read()

    @contextlib.contextmanager
    def iam_enforced(self) -> Iterator[None]:
        """moto checks IAM policies only while auth is on: ``reset-auth`` with
        the number of requests to let through unchecked (0 = none, inf = all)."""
        self._post("/moto-api/reset-auth", "0")
        try:
            yield
        finally:
            self._post("/moto-api/reset-auth", "inf")

    def sns_published(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(self.url + "/_localaws/sns/published", timeout=10) as r:
            return json.loads(r.read())


def drain(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    """Every message now in the queue, read and deleted (bounded)."""
    bodies: list[dict[str, Any]] = []
    for _ in range(50):
        msgs = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not msgs:
            break
        for m in msgs:
            bodies.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
    return bodies


# ---------------------------------------------------------------------------
# The demo
# ---------------------------------------------------------------------------


class Demo:
    def __init__(self, aws: LocalAws, out: Timeline, bin_dir: Path, window_s: int, prod_account: str):
        self.aws, self.out, self.bin_dir, self.window_s = aws, out, bin_dir, window_s
        self.prod_account = prod_account
        self.role_arn = f"arn:aws:iam::{prod_account}:role/{ROLE_NAME}"
        self.iam = aws.client("iam")
        self.sqs = aws.client("sqs")
        self.events = aws.client("events")
        self.sns = aws.client("sns")

    # -- helpers -------------------------------------------------------------
    def queue(self, name: str) -> tuple[str, str]:
        url = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return url, arn

    def user(self, name: str) -> dict[str, str]:
        arn = self.iam.create_user(UserName=name)["User"]["Arn"]
        key = self.iam.create_access_key(UserName=name)["AccessKey"]
        self.out.say(f"IAM user {name:<6} {arn}  (access key {key['AccessKeyId']})")
        return {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}

    def try_assume_role(self, expect_ok: bool) -> None:
        sts = self.aws.client("sts", self.alice)
        self.out.say(f"alice: sts:AssumeRole {self.role_arn}  (IAM enforcement on)")
        try:
            with self.aws.iam_enforced():
                creds = sts.assume_role(RoleArn=self.role_arn, RoleSessionName="alice-prod")
        except ClientError as e:
            err = e.response["Error"]
            self.out.say(f"  → refused: {err['Code']}: {err['Message']}")
            check(not expect_ok, f"alice should have been able to assume {ROLE_NAME}, got {err['Code']}")
            check(err["Code"] == "AccessDenied", f"expected AccessDenied, got {err['Code']}")
            return
        self.out.say(f"  → allowed: now {creds['AssumedRoleUser']['Arn']}")
        check(expect_ok, f"alice assumed {ROLE_NAME} without a grant")

    def function_env(self) -> dict[str, str | None]:
        env: dict[str, str | None] = {
            "AWS_ENDPOINT_URL": self.aws.url,
            "AWS_REGION": REGION,
            "AWS_ACCESS_KEY_ID": DUMMY["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": DUMMY["aws_secret_access_key"],
            "CHANGEGATE_ALLOWED_ACCOUNTS": self.prod_account,
            "CHANGEGATE_TARGET_ROLE": ROLE_NAME,
            "CHANGEGATE_MAX_DURATION_MINUTES": "480",
            "CHANGEGATE_EVENT_BUS": "default",
            "CHANGEGATE_TOPIC_ARN": self.topic_arn,
            "RUST_LOG": "info",
        }
        # Nothing from the caller's own AWS setup may leak into the functions.
        for var in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_DEFAULT_REGION"):
            env[var] = None
        for var in os.environ:
            if var.startswith("AWS_ENDPOINT_URL_"):
                env[var] = None
        return env

    def call(self, function: str, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Runs one function for ``events`` through the local Runtime API, its
        logs shown indented; fails the demo on an error or crash."""
        binary = self.bin_dir / function
        self.out.say(f"λ {function} ← {len(events)} event(s)")

        def on_log(line: str) -> None:
            # The runtime's tracing span repeats ids already shown: drop it.
            line = SPAN.sub("", line).strip()
            self.out.block(f"│ {function}: {line}", indent=4)

        try:
            results = lambda_runtime.invoke(str(binary), events, self.function_env(), function_name=f"changegate-{function}",
                                            timeout=FUNCTION_TIMEOUT_S, on_log=on_log)
        except lambda_runtime.LambdaRunError as e:
            raise DemoFailure(f"{function}: {e}") from e
        for r in results:
            if r["ok"]:
                self.out.say(f"  {function} ✓ {r['ms']} ms → {compact(r['response'])}")
            else:
                self.out.say(f"  {function} ✗ {r['ms']} ms → {compact(r['error'])}")
        failed = [r for r in results if not r["ok"]]
        check(not failed, f"{function} returned an error: {compact(failed[0]['error'] if failed else None)}")
        return results

    def as_delivered(self, body: dict[str, Any]) -> dict[str, Any]:
        """An event as read from a rule's SQS target, in the shape Lambda gets
        it from EventBridge. moto's default target template drops ``account``;
        AWS always sends it (the bus's account)."""
        event = dict(body)
        event.setdefault("account", IDENTITY_ACCOUNT)
        event.setdefault("version", "0")
        return event

    def describe(self, event: dict[str, Any]) -> str:
        d = event.get("detail", {})
        if event.get("source") == "aws.ssm":
            return f"{event['detail-type']}: {d.get('ops-item-status')} (by {d.get('ops-item-modified-by')})"
        keys = ("user", "account", "role", "reason-code", "revoked-at")
        return f"{event['source']} · {event['detail-type']}: " + ", ".join(f"{k}={d[k]}" for k in keys if k in d)

    def deliver(self) -> list[dict[str, Any]]:
        """Hands what the EventBridge rules caught to the functions the
        deployed rules target: Change Manager events to grant and notify,
        changegate's own events to notify. Repeats while the functions put
        new events on the bus (bounded)."""
        outcomes: list[dict[str, Any]] = []
        for _ in range(5):
            ssm_events = [self.as_delivered(b) for b in drain(self.sqs, self.ssm_queue)]
            own_events = [self.as_delivered(b) for b in drain(self.sqs, self.own_queue)]
            if not ssm_events and not own_events:
                break
            for e in ssm_events + own_events:
                self.out.say(f"EventBridge → {self.describe(e)}")
            if ssm_events:
                outcomes += [r["response"] for r in self.call("grant", ssm_events)]
            if ssm_events or own_events:
                self.call("notify", ssm_events + own_events)
        else:
            raise DemoFailure("the functions kept putting events on the bus")
        return outcomes

    def scheduled_event(self) -> dict[str, Any]:
        """What the revoke schedule's rule delivers, as AWS shapes it."""
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": IDENTITY_ACCOUNT,
            "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": REGION,
            "resources": [f"arn:aws:events:{REGION}:{IDENTITY_ACCOUNT}:rule/changegate-revoke-schedule"],
            "detail": {},
        }

    def alice_policies(self) -> list[str]:
        return self.iam.list_user_policies(UserName="alice")["PolicyNames"]

    # -- steps ---------------------------------------------------------------
    def setup(self) -> None:
        out = self.out
        self.alice = self.user("alice")
        self.bob = self.user("bob")
        # grant only serves people the security team made eligible, with this
        # tag on their IAM user (space-separated accounts, or account/role).
        self.iam.tag_user(UserName="alice", Tags=[{"Key": ELIGIBILITY_TAG, "Value": self.prod_account}])
        out.say(f"security team: tag alice {ELIGIBILITY_TAG}={self.prod_account}")

        trust = {
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                # moto compares principals literally: name alice's ARN (an
                # account-root principal would never match in moto).
                "Principal": {"AWS": f"arn:aws:iam::{IDENTITY_ACCOUNT}:user/alice"},
                "Action": "sts:AssumeRole",
            }],
        }
        if self.prod_account == IDENTITY_ACCOUNT:
            prod_iam = self.iam
        else:
            # moto makes a new account appear when someone assumes a role in it
            # (IAM auth is off here, so nothing checks the role exists).
            creds = self.aws.client("sts").assume_role(
                RoleArn=f"arn:aws:iam::{self.prod_account}:role/OrganizationAccountAccessRole",
                RoleSessionName="demo-setup",
            )["Credentials"]
            prod_iam = self.aws.client("iam", {
                "aws_access_key_id": creds["AccessKeyId"],
                "aws_secret_access_key": creds["SecretAccessKey"],
                "aws_session_token": creds["SessionToken"],
            })
        arn = prod_iam.create_role(RoleName=ROLE_NAME, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
        check(arn == self.role_arn, f"role ARN {arn} is not {self.role_arn}")
        out.say(f"production role  {arn}  (trusts alice)")
        if self.prod_account != IDENTITY_ACCOUNT:
            out.say(f"  people live in account {IDENTITY_ACCOUNT}, production is account {self.prod_account}.\n"
                    "  moto note: for a cross-account AssumeRole moto decides on the caller's IAM\n"
                    "  policies alone (it does not evaluate the other account's trust policy);\n"
                    "  run with --same-account to have the trust policy checked as well.")

        self.topic_arn = self.sns.create_topic(Name=TOPIC_NAME)["TopicArn"]
        self.email_queue, email_arn = self.queue("alice-email")
        self.sns.subscribe(
            TopicArn=self.topic_arn, Protocol="sqs", Endpoint=email_arn,
            # Per-person routing: this subscriber gets only messages about alice.
            Attributes={"FilterPolicy": json.dumps({"user": ["alice"]})},
        )
        out.say(f"SNS topic        {self.topic_arn}\n"
                "  subscriber: SQS queue alice-email, filter policy {\"user\": [\"alice\"]} (stands in for alice's email)")

        self.ssm_queue, ssm_arn = self.queue("changegate-ssm-events")
        self.own_queue, own_arn = self.queue("changegate-own-events")
        for rule, pattern, target in (
            ("changegate-change-requests", SSM_PATTERN, ssm_arn),
            ("changegate-events", CHANGEGATE_PATTERN, own_arn),
        ):
            self.events.put_rule(Name=rule, EventPattern=json.dumps(pattern))
            self.events.put_targets(Rule=rule, Targets=[{"Id": "queue", "Arn": target}])
            out.say(f"EventBridge rule {rule}: {json.dumps(pattern)} → SQS")

    def file_request(self) -> None:
        start = datetime.now(JST).replace(microsecond=0)
        end = start + timedelta(seconds=self.window_s)
        self.window_end = end
        params = {
            "IAMUserName": ["alice"],
            "AWSAccountId": [self.prod_account],
            "StartTime": [start.isoformat()],
            "EndTime": [end.isoformat()],
        }
        self.out.say(f"alice: ssm:StartChangeRequestExecution  template {TEMPLATE}, runbook {RUNBOOK}")
        self.out.block("\n".join(f"{k:<12} = {v[0]}" for k, v in params.items()))
        ssm = self.aws.client("ssm", self.alice)
        self.change_request_id = ssm.start_change_request_execution(
            DocumentName=TEMPLATE,
            ChangeRequestName="alice: prod access for an incident",
            Runbooks=[{"DocumentName": RUNBOOK, "Parameters": params}],
        )["AutomationExecutionId"]
        self.out.say(f"  → change request {self.change_request_id} (times in +09:00; "
                     f"UTC {start.astimezone(timezone.utc):%H:%M:%S}–{end.astimezone(timezone.utc):%H:%M:%S})")
        outcomes = self.deliver()
        check(all(o.get("outcome") == "ignored" for o in outcomes),
              f"grant acted on a request awaiting approval: {compact(outcomes)}")

    def approve(self) -> None:
        ssm = self.aws.client("ssm", self.bob)
        self.out.say("bob: ssm:SendAutomationSignal Approve")
        ssm.send_automation_signal(AutomationExecutionId=self.change_request_id, SignalType="Approve",
                                   Payload={"Comment": ["Approved for the incident."]})
        status = ssm.get_automation_execution(AutomationExecutionId=self.change_request_id)
        self.out.say(f"  → status {status['AutomationExecution']['AutomationExecutionStatus']}")

    def grant(self) -> None:
        outcomes = self.deliver()
        check(any(o.get("outcome") == "granted" for o in outcomes),
              f"grant did not grant: {compact(outcomes)}")
        names = self.alice_policies()
        check(names == [f"changegate-{self.change_request_id}"], f"alice's inline policies: {names}")
        doc = self.iam.get_user_policy(UserName="alice", PolicyName=names[0])["PolicyDocument"]
        doc = json.loads(doc) if isinstance(doc, str) else doc
        self.out.say(f"iam:GetUserPolicy alice {names[0]}:")
        self.out.block(pretty(doc))
        self.try_assume_role(expect_ok=True)
        self.out.say("  moto note: moto does not evaluate Date conditions, so locally the window's end is\n"
                     "  enforced by revoke alone; in AWS, IAM also refuses outside the window.")

    def revoke(self) -> None:
        self.out.say("revoke schedule fires while the window is open")
        outcome = self.call("revoke", [self.scheduled_event()])[0]["response"]
        check(self.alice_policies() == [f"changegate-{self.change_request_id}"],
              f"revoke removed a policy whose window is open: {compact(outcome)}")
        self.out.say("  → alice's policy is still there")

        # Bounded: the window is a few seconds long by construction.
        end = self.window_end.astimezone(timezone.utc)
        left = (end - datetime.now(timezone.utc)).total_seconds()
        self.out.say(f"waiting for the window to end at {end:%H:%M:%S}Z ({max(left, 0):.0f} s)…")
        while left > 0:
            time.sleep(min(left, 10.0))
            left = (end - datetime.now(timezone.utc)).total_seconds()
            if left >= 1:
                self.out.say(f"  {left:.0f} s left")
        time.sleep(1.0)  # clearly past the end, whatever the clock granularity
        self.out.say("revoke schedule fires after the window")
        outcome = self.call("revoke", [self.scheduled_event()])[0]["response"]
        names = self.alice_policies()
        check(names == [], f"revoke left alice's policies in place: {names} ({compact(outcome)})")
        self.out.say("iam:ListUserPolicies alice → []")
        self.try_assume_role(expect_ok=False)
        self.deliver()

    def notifications(self) -> None:
        published = self.aws.sns_published()
        by_id = {p["MessageId"]: p for p in published}
        emails = drain(self.sqs, self.email_queue)
        self.out.say(f"{len(published)} message(s) published to {TOPIC_NAME}; "
                     f"{len(emails)} delivered to alice's subscription")
        check(published, "notify published nothing")
        check(emails, "nothing reached alice's subscription")
        for envelope in emails:
            record = by_id.get(envelope.get("MessageId"), {})
            text = envelope.get("Message", "")
            variants = self._variants(record)
            # An SQS subscriber receives the "default" variant; an email
            # subscriber receives "email". Show the email one when they differ.
            note = ""
            if "email" in variants and variants["email"] != text:
                text, note = variants["email"], " (the email variant; SQS received the default one)"
            attrs = ", ".join(
                f"{k}={v.get('Value')}" + ("" if v.get("Type") == "String" else f" ({v.get('Type')})")
                for k, v in sorted((envelope.get("MessageAttributes") or {}).items())
            )
            self.out.say(f"✉  email{note}; message attributes: {attrs}")
            self.out.block(f"Subject: {envelope.get('Subject')}\n\n{text}")
        for record in published:
            variants = self._variants(record)
            card = variants.get("https")
            if card is None:
                continue
            try:
                card = json.loads(card)
            except ValueError:
                pass
            self.out.say(f"💬 Slack card (https variant), subject {record.get('Subject')!r}")
            self.out.block(pretty(card))

    @staticmethod
    def _variants(record: dict[str, Any]) -> dict[str, str]:
        if record.get("MessageStructure") != "json":
            return {}
        try:
            return json.loads(record["Message"])
        except (KeyError, ValueError):
            return {}


def _interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="changegate end to end on a local AWS")
    parser.add_argument("--bin-dir", type=Path, default=ROOT / "target" / "debug",
                        help="where grant, revoke and notify are (default target/debug)")
    parser.add_argument("--window", type=int, default=20, help="length of the access window in seconds (default 20)")
    parser.add_argument("--same-account", action="store_true",
                        help=f"put the production role in {IDENTITY_ACCOUNT} too (moto then checks its trust policy)")
    args = parser.parse_args(argv)

    missing = [f for f in ("grant", "revoke", "notify") if not os.access(args.bin_dir / f, os.X_OK)]
    if missing:
        print(f"demo: {', '.join(missing)} not found in {args.bin_dir}: run `cargo build --workspace --bins` first",
              file=sys.stderr)
        return 2

    # SIGTERM (e.g. from make or CI) unwinds like Ctrl-C, so the server is stopped.
    signal.signal(signal.SIGTERM, _interrupt)

    out = Timeline()
    aws: LocalAws | None = None
    try:
        out.step("A local AWS: people, the production role, notifications, event rules")
        aws = LocalAws(ROOT / ".localaws" / "server.log")
        out.say(f"local AWS (moto + Change Manager extension) at {aws.url}")
        demo = Demo(aws, out, args.bin_dir, args.window, IDENTITY_ACCOUNT if args.same_account else PROD_ACCOUNT)
        demo.setup()

        out.step("Without a grant, alice cannot assume the production role")
        demo.try_assume_role(expect_ok=False)

        out.step("alice files a change request for a short window, written in +09:00")
        demo.file_request()

        out.step("bob approves")
        demo.approve()

        out.step("The events reach grant and notify; alice gets a windowed policy")
        demo.grant()

        out.step("revoke: nothing to do while the window is open; the policy goes once it ends")
        demo.revoke()

        out.step("Notifications")
        demo.notifications()
    except DemoFailure as e:
        print(f"\ndemo FAILED: {e}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("\ndemo interrupted", file=sys.stderr, flush=True)
        return 130
    except Exception as e:  # a crash is a failure too, with the reason on one line
        print(f"\ndemo FAILED: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        raise
    finally:
        if aws is not None:
            aws.close()
    elapsed = time.monotonic() - out.t0
    print(f"\ndemo OK in {elapsed:.0f} s: denied before, granted inside the window, revoked after.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
