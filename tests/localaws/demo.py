#!/usr/bin/env python3
"""changegate, end to end, on a local AWS: ``make demo``.

    .venv/bin/python tests/localaws/demo.py [--source automation|change-manager] [--window 20]
        [--same-account] [--bin-dir DIR]

Run from the repository root after ``cargo build --workspace --bins`` (the
binaries, the functions and the tests crate's ``iam-evaluate``, are looked
for where cargo puts them, ``CARGO_TARGET_DIR`` included). Starts its own
local AWS (server.py on a free port; always stopped at the end), provisions
what template.yaml deploys (localaws.provision), then replays a just-in-time
access request as a timeline:

 1. accounts, users, the production role, the topic and the event rules
 2. alice cannot assume the production role
 3. alice asks for a short window written in +09:00: a Change Manager change
    request (``--source change-manager``) or the request runbook, a plain
    Automation execution (``--source automation``)
 4. bob approves it
 5. the events (and, for the runbook, its call to grant) reach the functions
    through a local Lambda Runtime API; alice now has the windowed policy and
    can assume the role
 6. alice's live session in production and the session cut grant wrote on
    the role ahead of the end: the session may call AWS inside the window
    and is denied right after its end, as IAM decides it (``iam-evaluate``,
    the integration tests' evaluator: moto evaluates no such condition);
    skipped with ``--same-account`` (no production-account stack there)
 7. revoke leaves the open window alone, then removes the policy once it
    ends; the live session is denied at the real time after the end
 8. the notifications: the email text and the Slack (Amazon Q) card
 9. the Systems Manager calls everyone made (counted by a pass-through
    faultproxy.py at rate 0): on the Automation path, none of Change
    Manager's, no change template deployed and no change request; on the
    Change Manager path, one change request on the stack's own change template

The default is the Automation path (any account can use it); the output's
first and last lines say how to run the other (``make demo SOURCE=change-manager``).

Exit 0 when every step did what it should, 1 with ``demo FAILED: <why>``
otherwise, 2 when the binaries are missing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml
from botocore.exceptions import ClientError

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lambda_runtime  # noqa: E402  (beside this file)
import localaws  # noqa: E402
from faultproxy import FaultProxy  # noqa: E402

SOURCES = ("change-manager", "automation")
# The path `make demo` takes without SOURCE=: the request runbook, which any
# account can use (Change Manager is closed to new customers since November
# 2025); `make demo SOURCE=change-manager` takes the other one.
DEFAULT_SOURCE = "automation"

JST = timezone(timedelta(hours=9))
# The Rust runtime's per-invocation tracing span, as printed before each log line.
SPAN = re.compile(r"Lambda runtime invoke\{[^}]*\}: ")

# The session cut (issue 10), with two accounts: the production-account
# stack's cutter role, read from its template, and the evaluator of IAM's
# documented semantics (tests/src/bin/iam-evaluate.rs) that judges what moto
# does not enforce (condition operators).
PRODUCTION_TEMPLATE = localaws.ROOT / "templates" / "production-account.yaml"
CUTTER_LOGICAL_ID = "SessionCutterRole"
EVALUATOR = "iam-evaluate"
# The changegate command (cli/): the demo's people ask and approve with it.
CLI = "changegate"
MAX_SESSION_S = 3600  # the target role's MaxSessionDuration, as the production template sets it
# What alice's session calls in production (the target role allows it).
SESSION_ACTION = "s3:ListAllMyBuckets"

# Systems Manager actions that are Change Manager's (change requests, their
# OpsItems, change calendars): the Automation path must make none of them.
CHANGE_MANAGER_ACTION = re.compile(r"ChangeRequest|OpsItem|Calendar")


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


def utc(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_ms(t: datetime) -> str:
    """An instant as IAM's request context writes it (milliseconds, ``Z``)."""
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def cutter_role(prod_account: str) -> dict[str, Any]:
    """The cutter role's properties exactly as templates/production-account.yaml
    defines them (its ``SessionCutterRole``: name, trust, inline policy),
    resolved for a stack deployed in ``prod_account`` for changegate in
    HOME_ACCOUNT."""
    functions = f"arn:aws:iam::{localaws.HOME_ACCOUNT}:role/{localaws.STACK_NAME}"
    stack = localaws.Stack(localaws.load_template(PRODUCTION_TEMPLATE), {
        "ChangegateAccountId": localaws.HOME_ACCOUNT,
        # The main stack's outputs RevokeRoleArn / GrantRoleArn (SAM names a
        # function's role <stack>-<Function>Role-<suffix>; moto checks neither).
        "RevokeRoleArn": f"{functions}-RevokeFunctionRole",
        "GrantRoleArn": f"{functions}-GrantFunctionRole",
        "TargetRoleName": localaws.ROLE_NAME,
    })
    stack.pseudo["AWS::AccountId"] = prod_account  # the stack's own account, not changegate's
    return stack.resolve(stack.resources[CUTTER_LOGICAL_ID]["Properties"])


# ---------------------------------------------------------------------------
# What both paths share
# ---------------------------------------------------------------------------


class Demo:
    def __init__(self, aws: localaws.Server, out: Timeline, bin_dir: Path, window_s: int, prod_account: str,
                 proxy: FaultProxy):
        self.aws, self.out, self.bin_dir, self.window_s = aws, out, bin_dir, window_s
        # Every AWS call (the people's, the functions', provisioning) goes
        # through a pass-through proxy that counts them by action, so that the
        # demo can show which Systems Manager calls each path makes.
        self.proxy = proxy
        self.prod_account = prod_account
        self.role_arn = f"arn:aws:iam::{prod_account}:role/{localaws.ROLE_NAME}"
        # Two accounts: the production-account stack's cutter role is there
        # and grant and revoke cut alice's sessions at the window's end.
        self.cuts = prod_account != localaws.HOME_ACCOUNT
        self.prod_iam: Any = None
        # alice's production session, once she assumed the role in the window.
        self.session_creds: dict[str, Any] | None = None
        self.session: dict[str, Any] = {}
        self.cut: Any = None  # the cut grant wrote, as first read
        self.iam = self.client("iam")
        self.sqs = self.client("sqs")
        self.window_end = datetime.now(timezone.utc)
        self.request_id = ""
        # What this path sets in a function's environment where the template
        # does not (a template.yaml from before the variable existed).
        self.env: dict[str, str] = {}

    # -- helpers -------------------------------------------------------------
    def client(self, service: str, creds: dict[str, str] | None = None) -> Any:
        """A boto3 client for the local AWS, through the counting proxy."""
        return localaws.client(self.proxy.url, service, creds)

    def ssm_actions(self) -> dict[str, int]:
        """Systems Manager actions called so far (anyone's), with counts."""
        actions = self.proxy.stats().get("actions", {})
        return {k.split(":", 1)[1]: v for k, v in sorted(actions.items()) if k.startswith("ssm:")}

    def user(self, name: str) -> dict[str, str]:
        arn = self.iam.create_user(UserName=name)["User"]["Arn"]
        key = self.iam.create_access_key(UserName=name)["AccessKey"]
        self.out.say(f"IAM user {name:<6} {arn}  (access key {key['AccessKeyId']})")
        return {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}

    def changegate(self, creds: dict[str, str], args: list[str], expect: int = 0) -> str:
        """Runs the changegate command as the person holding ``creds``
        (their keys in the environment, as a shell would have them), shows
        it and what it printed, and checks its exit code; returns stdout."""
        env = {"PATH": os.environ.get("PATH", ""), "AWS_ENDPOINT_URL": self.proxy.url, "AWS_REGION": localaws.REGION,
               "AWS_ACCESS_KEY_ID": creds["aws_access_key_id"], "AWS_SECRET_ACCESS_KEY": creds["aws_secret_access_key"],
               "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "AWS_EC2_METADATA_DISABLED": "true"}
        self.out.say("$ changegate " + " ".join(f"'{a}'" if " " in a else a for a in args))
        run = subprocess.run([str(self.bin_dir / CLI), *args], env=env, capture_output=True, text=True, timeout=60)
        self.out.block((run.stdout + run.stderr).rstrip())
        check(run.returncode == expect, f"changegate {args[0]} exited {run.returncode}, not {expect}: {run.stderr}")
        return run.stdout

    def try_assume_role(self, expect_ok: bool) -> dict[str, Any] | None:
        """alice's AssumeRole under her own name; the session's credentials."""
        sts = self.client("sts", self.alice)
        self.out.say(f"alice: sts:AssumeRole {self.role_arn} --role-session-name alice  (IAM enforcement on)")
        try:
            with self.aws.iam_enforced():
                creds = sts.assume_role(RoleArn=self.role_arn, RoleSessionName="alice", DurationSeconds=MAX_SESSION_S)
        except ClientError as e:
            err = e.response["Error"]
            self.out.say(f"  → refused: {err['Code']}: {err['Message']}")
            check(not expect_ok, f"alice should have been able to assume {localaws.ROLE_NAME}, got {err['Code']}")
            check(err["Code"] == "AccessDenied", f"expected AccessDenied, got {err['Code']}")
            return None
        self.out.say(f"  → allowed: now {creds['AssumedRoleUser']['Arn']}")
        check(expect_ok, f"alice assumed {localaws.ROLE_NAME} without a grant")
        return dict(creds["Credentials"])

    def call(self, function: str, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Runs one function for ``events`` through the local Runtime API, with
        the environment the template gives it, its logs shown indented; fails
        the demo on an error or crash."""
        self.out.say(f"λ {function} ← {len(events)} event(s)")

        def on_log(line: str) -> None:
            # The runtime's tracing span repeats ids already shown: drop it.
            line = SPAN.sub("", line).strip()
            self.out.block(f"│ {function}: {line}", indent=4)

        try:
            env = {**self.env, **self.world.function_env(function)}
            results = localaws.invoke(function, events, env, directory=self.bin_dir,
                                      timeout=self.world.function_timeout(function), on_log=on_log)
        except lambda_runtime.LambdaRunError as e:
            raise DemoFailure(f"{function}: {e}") from e
        for r in results:
            mark, body = ("✓", r["response"]) if r["ok"] else ("✗", r["error"])
            self.out.say(f"  {function} {mark} {r['ms']} ms → {compact(body)}")
        failed = [r for r in results if not r["ok"]]
        check(not failed, f"{function} returned an error: {compact(failed[0]['error'] if failed else None)}")
        return results

    @staticmethod
    def describe(event: dict[str, Any]) -> str:
        d = event.get("detail", {})
        if event.get("detail-type") == "Change Request Status Update":
            return f"{event['detail-type']}: {d.get('ops-item-status')} (by {d.get('ops-item-modified-by')})"
        if event.get("source") == "aws.ssm":
            step = f" step {d['StepName']} ({d.get('Action')})" if "StepName" in d else ""
            return f"{event['detail-type']}:{step} {d.get('Status')}"
        keys = ("user", "account", "role", "reason-code", "cause", "revoked-at")
        return f"{event['source']} · {event['detail-type']}: " + ", ".join(f"{k}={d[k]}" for k in keys if k in d)

    def deliver(self) -> dict[str, list[Any]]:
        """Hands what the template's rules caught to the functions they
        target (and what runbooks asked Lambda to run), grant first; repeats
        while the functions put new events on the bus (bounded). Returns
        each function's responses."""
        responses: dict[str, list[Any]] = {}
        for _ in range(6):
            pending = self.world.pending()
            # A synchronous (RequestResponse) step waits for its function's answer.
            waiting: dict[str, list[tuple[int, str]]] = {}
            for inv in self.aws.lambda_invocations(drain=True):
                function = self.world.function_named(inv.get("FunctionName") or "")
                check(function is not None, f"a runbook invoked an unknown function: {compact(inv)}")
                self.out.say(f"runbook {inv['StepName']} → lambda:Invoke {inv['FunctionName']} ({inv['InvocationType']})")
                events = pending.setdefault(str(function), [])
                if inv.get("InvocationType") == "RequestResponse":
                    waiting.setdefault(str(function), []).append((len(events), inv["InvocationId"]))
                events.append(json.loads(inv.get("Payload") or "{}"))
            if not pending:
                return responses
            seen: set[str] = set()
            for events in pending.values():
                for e in events:
                    if "detail-type" in e and e.get("id") not in seen:
                        seen.add(e.get("id", ""))
                        self.out.say(f"EventBridge → {self.describe(e)}")
            for function in sorted(pending, key=lambda f: (f != "grant", f)):
                results = self.call(function, pending[function])
                responses.setdefault(function, []).extend(r["response"] for r in results)
                for index, invocation_id in waiting.get(function, []):
                    self.aws.answer_invocation(invocation_id, results[index]["response"])
        raise DemoFailure("the functions kept putting events on the bus")

    def await_runbook_call(self, seconds: float = 10) -> None:
        """Waits (bounded) until a runbook step has asked Lambda to run a
        function: the runbooks' steps run on the local AWS's own timers."""
        deadline = time.monotonic() + seconds
        while not self.aws.lambda_invocations(drain=False) and time.monotonic() < deadline:
            time.sleep(0.1)

    def alice_policies(self) -> list[str]:
        return self.iam.list_user_policies(UserName="alice")["PolicyNames"]

    def window(self) -> dict[str, list[str]]:
        """alice's parameters: now … now + the window, written in +09:00."""
        start = datetime.now(JST).replace(microsecond=0)
        end = start + timedelta(seconds=self.window_s)
        self.window_end = end
        self.out.block(f"window in UTC: {utc(start)} … {utc(end)}")
        return {"IAMUserName": ["alice"], "AWSAccountId": [self.prod_account],
                "StartTime": [start.isoformat()], "EndTime": [end.isoformat()]}

    # -- steps both paths take -----------------------------------------------
    def setup(self, parameters: dict[str, str]) -> None:
        out = self.out
        self.alice = self.user("alice")
        self.bob = self.user("bob")
        # grant only serves people the security team made eligible, with this
        # tag on their IAM user (space-separated accounts, or account/role).
        self.iam.tag_user(UserName="alice", Tags=[{"Key": localaws.ELIGIBILITY_TAG, "Value": self.prod_account}])
        out.say(f"security team: tag alice {localaws.ELIGIBILITY_TAG}={self.prod_account}")

        trust = {
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                # moto compares principals literally: name alice's ARN (an
                # account-root principal would never match in moto).
                "Principal": {"AWS": f"arn:aws:iam::{localaws.HOME_ACCOUNT}:user/alice"},
                "Action": "sts:AssumeRole",
            }],
        }
        if self.prod_account == localaws.HOME_ACCOUNT:
            prod_iam = self.iam
        else:
            # moto makes a new account appear when someone assumes a role in it
            # (IAM auth is off here, so nothing checks the role exists).
            creds = self.client("sts").assume_role(
                RoleArn=f"arn:aws:iam::{self.prod_account}:role/OrganizationAccountAccessRole",
                RoleSessionName="demo-setup",
            )["Credentials"]
            prod_iam = self.client("iam", {
                "aws_access_key_id": creds["AccessKeyId"],
                "aws_secret_access_key": creds["SecretAccessKey"],
                "aws_session_token": creds["SessionToken"],
            })
        self.prod_iam = prod_iam
        arn = prod_iam.create_role(RoleName=localaws.ROLE_NAME, AssumeRolePolicyDocument=json.dumps(trust),
                                   MaxSessionDuration=MAX_SESSION_S)["Role"]["Arn"]
        check(arn == self.role_arn, f"role ARN {arn} is not {self.role_arn}")
        out.say(f"production role  {arn}  (trusts alice; sessions up to {MAX_SESSION_S} s)")
        if self.cuts:
            out.say(f"  people live in account {localaws.HOME_ACCOUNT}, production is account {self.prod_account}.\n"
                    "  moto note: for a cross-account AssumeRole moto decides on the caller's IAM\n"
                    "  policies alone (it does not evaluate the other account's trust policy);\n"
                    "  run with --same-account to have the trust policy checked as well.")
            # What the role may do in production (its sessions' permissions).
            operations = {"Version": "2012-10-17", "Statement": [
                {"Sid": "Operations", "Effect": "Allow", "Action": SESSION_ACTION, "Resource": "*"}]}
            prod_iam.put_role_policy(RoleName=localaws.ROLE_NAME, PolicyName="operations",
                                     PolicyDocument=json.dumps(operations))
            out.say(f"  its inline policy operations: Allow {SESSION_ACTION}")
            parameters = {"SessionCutterRoleName": self.cutter(prod_iam), **parameters}

        self.world = localaws.provision(self.proxy.url, parameters={"AllowedAccountIds": self.prod_account, **parameters})
        w = self.world
        if self.cuts:
            for function in ("grant", "revoke"):
                cutter = self.world.function_env(function).get("CHANGEGATE_SESSION_CUTTER_ROLE")
                check(cutter == parameters["SessionCutterRoleName"],
                      f"template.yaml gives {function} CHANGEGATE_SESSION_CUTTER_ROLE={cutter!r}")
            out.say(f"grant and revoke: CHANGEGATE_SESSION_CUTTER_ROLE={parameters['SessionCutterRoleName']} "
                    "(template.yaml's SessionCutterRoleName)")
        out.say(f"template.yaml, provisioned: table {w.table}, bus {w.bus}, topics {', '.join(w.topics)}")
        for doc in w.documents:
            state = "created" if doc.created else f"not created: {doc.skipped}"
            out.say(f"  SSM document {doc.name} ({doc.document_type}): {state}")
        for r in w.rules:
            what = json.dumps(r.pattern) if r.pattern else r.schedule
            out.say(f"  rule {r.name} on {r.bus}: {what} → {r.function}" + (" (via an SQS queue)" if r.queue_url else ""))

        sns = self.client("sns")
        self.email_queue, email_arn = localaws.queue(self.sqs, "alice-email")
        sns.subscribe(
            TopicArn=w.topic_arn, Protocol="sqs", Endpoint=email_arn,
            # Per-person routing: this subscriber gets only messages about alice.
            Attributes={"FilterPolicy": json.dumps({"user": ["alice"]})},
        )
        out.say(f"SNS topic        {w.topic_arn}\n"
                "  subscriber: SQS queue alice-email, filter policy {\"user\": [\"alice\"]} (stands in for alice's email)")

    def cutter(self, prod_iam: Any) -> str:
        """Creates in production the role templates/production-account.yaml
        deploys for changegate to cut sessions with; returns its name."""
        role = cutter_role(self.prod_account)
        name = role["RoleName"]
        arn = prod_iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(role["AssumeRolePolicyDocument"]),
                                   Description=role["Description"], MaxSessionDuration=role["MaxSessionDuration"],
                                   )["Role"]["Arn"]
        for policy in role.get("Policies") or []:
            prod_iam.put_role_policy(RoleName=name, PolicyName=policy["PolicyName"],
                                     PolicyDocument=json.dumps(policy["PolicyDocument"]))
        trust = role["AssumeRolePolicyDocument"]["Statement"][0]
        may = {a for st in role["Policies"][0]["PolicyDocument"]["Statement"] for a in st["Action"]}
        conditions = [f"    {op} {key}: {compact(v)}" for op, keys in trust["Condition"].items() for key, v in keys.items()]
        self.out.say(f"cutter role      {arn}  (templates/{PRODUCTION_TEMPLATE.name}'s {CUTTER_LOGICAL_ID})\n"
                     f"  trust: {trust['Principal']['AWS']}, if\n" + "\n".join(conditions) + "\n"
                     f"  may: {', '.join(sorted(may))} on role/{localaws.ROLE_NAME} only")
        return str(name)

    def role_policies(self) -> dict[str, Any]:
        """The production role's inline policies by name, as IAM holds them."""
        docs: dict[str, Any] = {}
        for name in self.prod_iam.list_role_policies(RoleName=localaws.ROLE_NAME)["PolicyNames"]:
            doc = self.prod_iam.get_role_policy(RoleName=localaws.ROLE_NAME, PolicyName=name)["PolicyDocument"]
            docs[name] = json.loads(doc) if isinstance(doc, str) else doc
        return docs

    def judge(self, at: datetime, label: str) -> tuple[str, list[str]]:
        """IAM's decision on alice's live session calling SESSION_ACTION at
        ``at`` (its aws:CurrentTime), over the role's inline policies as they
        are now: asks iam-evaluate, shows the answer and why."""
        s = self.session
        request = {"policies": self.role_policies(), "principal": s["arn"], "action": SESSION_ACTION, "resource": "*",
                   "context": {"aws:userid": s["userid"], "aws:TokenIssueTime": iso_ms(s["issued"]),
                               "aws:CurrentTime": iso_ms(at)}}
        try:
            run = subprocess.run([str(self.bin_dir / EVALUATOR)], input=json.dumps(request), capture_output=True,
                                 text=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise DemoFailure(f"{EVALUATOR}: {e}") from e
        lines = run.stdout.splitlines()
        check(run.returncode == 0 and bool(lines), f"{EVALUATOR} exited {run.returncode}: {run.stderr.strip()}")
        decision, why = lines[0], lines[1:]
        self.out.say(f"{EVALUATOR}: alice's session calls {SESSION_ACTION} at {iso_ms(at)} ({label}) → {decision}")
        self.out.block("\n".join(f"applies: {w}" for w in why) or "applies: nothing")
        return decision, why

    def live_session(self) -> None:
        """alice's live production session, the cut grant wrote ahead, and
        IAM's decision on the session just before and just after the end."""
        out = self.out
        if not self.cuts:
            out.say("skipped with --same-account: the session cut needs a production account (its\n"
                    "  production-account stack's cutter role); run without --same-account to see it.")
            return
        creds = self.session_creds
        check(creds is not None, "alice has no production session")
        me = self.client("sts", {"aws_access_key_id": creds["AccessKeyId"],
                                 "aws_secret_access_key": creds["SecretAccessKey"],
                                 "aws_session_token": creds["SessionToken"]}).get_caller_identity()
        issued = creds["Expiration"].astimezone(timezone.utc) - timedelta(seconds=MAX_SESSION_S)
        self.session = {"arn": me["Arn"], "userid": me["UserId"], "issued": issued}
        out.say(f"alice's live session (sts:GetCallerIdentity with its credentials): {me['Arn']}\n"
                f"  aws:userid {me['UserId']}, aws:TokenIssueTime {iso_ms(issued)} (its expiry − {MAX_SESSION_S} s)")
        check(me["Account"] == self.prod_account and me["UserId"].endswith(":alice"),
              f"alice's session is not hers in production: {compact(me)}")

        end = self.window_end.astimezone(timezone.utc)
        cut = self.role_policies().get("changegate-session-cut")
        before = (end - datetime.now(timezone.utc)).total_seconds()
        check(cut is not None, f"grant wrote no changegate-session-cut on {localaws.ROLE_NAME}")
        check(before > 0, "the window ended before the cut could be shown")
        out.say(f"iam:GetRolePolicy {localaws.ROLE_NAME} changegate-session-cut (in {self.prod_account}), "
                f"{before:.0f} s before the window's end:\n"
                f"  grant wrote it with the grant (through the cutter role), effective from the end on")
        out.block(pretty(cut))
        self.cut = cut
        out.say("moto evaluates no StringLike nor date condition, so IAM's documented semantics decide\n"
                "  here: the integration tests' evaluator (changegate_tests::iam), as the iam-evaluate binary")
        inside = max(end - timedelta(seconds=1), issued)
        decision, _ = self.judge(inside, "inside the window, 1 s before its end")
        check(decision == "Allow", f"alice's session is refused inside the window: {decision}")
        decision, why = self.judge(end + timedelta(milliseconds=1), "1 ms after the window's end")
        check(decision == "Deny (explicit)" and any(w.startswith("changegate-session-cut/") for w in why),
              f"alice's session is not cut at the window's end: {decision} {why}")
        out.say("  → the cut is already in place: the session is refused from the end on, whatever runs then")

    def granted(self, responses: dict[str, list[Any]]) -> None:
        grants = responses.get("grant", [])
        check(any(isinstance(o, dict) and o.get("outcome") == "granted" for o in grants),
              f"grant did not grant: {compact(grants)}")
        names = self.alice_policies()
        check(names == [f"changegate-{self.request_id}"], f"alice's inline policies: {names}")
        doc = self.iam.get_user_policy(UserName="alice", PolicyName=names[0])["PolicyDocument"]
        doc = json.loads(doc) if isinstance(doc, str) else doc
        self.out.say(f"iam:GetUserPolicy alice {names[0]}:")
        self.out.block(pretty(doc))
        self.session_creds = self.try_assume_role(expect_ok=True)
        self.out.say("  moto note: moto does not evaluate Date conditions, so locally the window's end is\n"
                     "  enforced by revoke alone; in AWS, IAM also refuses outside the window.")

    def revoke(self) -> None:
        self.out.say("the revoke sweep fires while the window is open")
        outcome = self.call("revoke", [self.world.scheduled_event(utc(datetime.now(timezone.utc)))])[0]["response"]
        check(self.alice_policies() == [f"changegate-{self.request_id}"],
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
        self.deliver()  # whatever the end of the window set off (the runbook ends)
        if self.alice_policies():
            self.out.say("the revoke sweep fires after the window")
            outcome = self.call("revoke", [self.world.scheduled_event(utc(datetime.now(timezone.utc)))])[0]["response"]
        names = self.alice_policies()
        check(names == [], f"revoke left alice's policies in place: {names} ({compact(outcome)})")
        self.out.say("iam:ListUserPolicies alice → []")
        self.try_assume_role(expect_ok=False)
        self.deliver()
        if self.session:
            now = datetime.now(timezone.utc)
            after = (now - end).total_seconds()
            kept = self.role_policies().get("changegate-session-cut") == self.cut
            self.out.say(f"alice's session from the window, still live ({after:.1f} s after the end), "
                         f"cut {'as grant wrote it' if kept else 'as revoke left it'}:")
            decision, why = self.judge(now, "now, after the window's end")
            check(decision == "Deny (explicit)" and any(w.startswith("changegate-session-cut/") for w in why),
                  f"alice's live session is not denied after the window's end: {decision} {why}")

    def notifications(self) -> None:
        published = self.aws.sns_published()
        by_id = {p["MessageId"]: p for p in published}
        emails = localaws.drain(self.sqs, self.email_queue)
        self.out.say(f"{len(published)} message(s) published; {len(emails)} delivered to alice's subscription")
        check(published, "notify published nothing")
        check(emails, "nothing reached alice's subscription")
        for envelope in emails:
            text = envelope.get("Message", "")
            variants = self._variants(by_id.get(envelope.get("MessageId"), {}))
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
            card = self._variants(record).get("https")
            if card is None:
                continue
            with contextlib.suppress(ValueError):  # else shown as text
                card = json.loads(card)
            self.out.say(f"💬 Slack card (https variant), subject {record.get('Subject')!r}")
            self.out.block(pretty(card))

    @staticmethod
    def _variants(record: dict[str, Any]) -> dict[str, str]:
        """The per-protocol variants of a MessageStructure=json message (its
        raw text, as moto recorded it, is a JSON object with ``default``)."""
        try:
            variants = json.loads(record["Message"])
        except (KeyError, ValueError):
            return {}
        return variants if isinstance(variants, dict) and "default" in variants else {}


# ---------------------------------------------------------------------------
# The two paths
# ---------------------------------------------------------------------------


def change_manager_path(demo: Demo) -> None:
    """A Change Manager change request on the change template, approved by bob."""
    out = demo.out
    out.step("A local AWS: people, the production role, what template.yaml deploys")
    bob = f"arn:aws:iam::{localaws.HOME_ACCOUNT}:user/bob"
    demo.env = {"CHANGEGATE_SOURCES": "change-manager"}
    demo.setup({"RequestSources": "ChangeManager", "ApproverArns": bob})
    stack_template = next((d for d in demo.world.documents if d.logical_id == "ChangeTemplate"), None)
    check(stack_template is not None and stack_template.created,
          "template.yaml's change template was not deployed: "
          f"{stack_template.skipped if stack_template else 'not in the template'}")
    assert stack_template is not None
    change_template, access_runbook = stack_template.name, demo.world.document_name("AccessRunbook")
    # What Change Manager holds is the stack's own document, as template.yaml resolves it.
    held = demo.client("ssm").get_document(Name=change_template)
    check(held["DocumentType"] == "Automation.ChangeTemplate" and yaml.safe_load(held["Content"]) == stack_template.content,
          f"{change_template} in SSM is not template.yaml's change template")
    out.say(f"the stack's change template {change_template} (version {held['DocumentVersion']}, "
            f"from template.yaml), runbooks {compact(stack_template.content.get('executableRunBooks'))}:")
    for st in stack_template.content.get("mainSteps", []):
        if st.get("action") == "aws:approve":
            enhanced = st["inputs"].get("EnhancedApprovals") or {}
            who = [a for a in enhanced.get("Approvers") or st["inputs"].get("Approvers") or [] if a]
            out.block(f"approval level {st['name']}: approvers {compact(who)}")

    out.step("Without a grant, alice cannot assume the production role")
    demo.try_assume_role(expect_ok=False)

    out.step("alice files a change request for a short window, written in +09:00")
    out.say(f"alice: ssm:StartChangeRequestExecution  template {change_template}, runbook {access_runbook}")
    params = demo.window()
    out.block("\n".join(f"{k:<12} = {v[0]}" for k, v in params.items()))
    demo.request_id = demo.client("ssm", demo.alice).start_change_request_execution(
        DocumentName=change_template,
        ChangeRequestName="alice: prod access for an incident",
        Runbooks=[{"DocumentName": access_runbook, "Parameters": params}],
    )["AutomationExecutionId"]
    out.say(f"  → change request {demo.request_id}")
    filed = demo.client("ssm").get_automation_execution(AutomationExecutionId=demo.request_id)["AutomationExecution"]
    out.say(f"  → Systems Manager: template {filed['DocumentName']} v{filed['DocumentVersion']}, "
            f"runbook {filed['Runbooks'][0]['DocumentName']}, status {filed['AutomationExecutionStatus']}")
    check(filed["DocumentName"] == change_template and filed["DocumentVersion"] == held["DocumentVersion"],
          f"the change request does not use the stack's change template: {filed['DocumentName']}")
    grants = demo.deliver().get("grant", [])
    check(all(o.get("outcome") != "granted" for o in grants), f"grant granted a request awaiting approval: {compact(grants)}")

    out.step("bob approves")
    ssm = demo.client("ssm", demo.bob)
    out.say("bob: ssm:SendAutomationSignal Approve")
    ssm.send_automation_signal(AutomationExecutionId=demo.request_id, SignalType="Approve",
                               Payload={"Comment": ["Approved for the incident."]})
    status = ssm.get_automation_execution(AutomationExecutionId=demo.request_id)
    out.say(f"  → status {status['AutomationExecution']['AutomationExecutionStatus']}")

    out.step("The events reach grant and notify; alice gets a windowed policy")
    demo.granted(demo.deliver())

    out.step("alice's live session in production, and the cut written ahead of the window's end")
    demo.live_session()

    out.step("revoke: nothing to do while the window is open; the policy goes once it ends")
    demo.revoke()

    out.step("Notifications")
    demo.notifications()

    out.step("Systems Manager calls (everyone's, counted by a pass-through proxy)")
    calls = demo.ssm_actions()
    out.block("\n".join(f"ssm:{k:<36} {v}" for k, v in calls.items()), indent=2)
    check(calls.get("StartChangeRequestExecution") == 1, f"expected one change request, got {calls}")


def automation_path(demo: Demo) -> None:
    """The request runbook (a plain Automation execution with an aws:approve
    step): bob approves, the runbook calls grant and ends, holding no
    concurrent-automation slot while the access lasts."""
    out = demo.out
    out.step("A local AWS: people, the production role, what template.yaml deploys")
    bob = f"arn:aws:iam::{localaws.HOME_ACCOUNT}:user/bob"
    demo.env = {"CHANGEGATE_SOURCES": "automation", "CHANGEGATE_APPROVERS": bob, "CHANGEGATE_MIN_APPROVALS": "1"}
    demo.setup({"RequestSources": "Automation", "ApproverArns": bob, "AccountAliases": f"prod={demo.prod_account}"})
    runbook = next((d for d in demo.world.documents if d.logical_id == "RequestRunbook"), None)
    check(runbook is not None, "template.yaml has no request runbook yet (run `make demo SOURCE=change-manager`)")
    check(bool(runbook and runbook.created), f"the request runbook could not be created locally: {runbook and runbook.skipped}")
    assert runbook is not None

    out.step("Without a grant, alice cannot assume the production role")
    demo.try_assume_role(expect_ok=False)

    out.step("alice asks with the changegate command, in her own time zone (+09:00)")
    check((demo.bin_dir / CLI).exists(), f"{demo.bin_dir / CLI} is missing: run `cargo build --workspace --bins` first")
    start = datetime.now(JST).replace(microsecond=0)
    demo.window_end = start + timedelta(seconds=demo.window_s)
    out.block(f"window in UTC: {utc(start)} … {utc(demo.window_end)}")
    ask = ["request", "prod", "--for", f"{demo.window_s}s", "--start", start.isoformat(), "--reason", "incident 4711"]
    # A window longer than the deployment allows: refused up front, saying why
    demo.changegate(demo.alice, ["request", "prod", "--for", "30d", "--dry-run"], expect=3)
    demo.changegate(demo.alice, [*ask, "--dry-run"])
    filed = json.loads(demo.changegate(demo.alice, ["--output", "json", *ask]))
    demo.request_id = filed["id"]
    ex = demo.client("ssm").get_automation_execution(AutomationExecutionId=demo.request_id)["AutomationExecution"]
    steps = ex.get("StepExecutions", [])
    failed = [f"{s['StepName']}: {s.get('FailureMessage')}" for s in steps if s.get("StepStatus") == "Failed"]
    out.say(f"  → execution {demo.request_id}, status {ex['AutomationExecutionStatus']}"
            + (f"; failed step {failed[0]}" if failed else ""))
    check(not failed, f"the request runbook failed before approval: {'; '.join(failed)}")
    grants = demo.deliver().get("grant", [])
    check(all(o.get("outcome") != "granted" for o in grants), f"grant granted a request awaiting approval: {compact(grants)}")
    demo.changegate(demo.alice, ["status", demo.request_id], expect=4)

    out.step("bob approves, as himself")
    demo.changegate(demo.bob, ["approve", demo.request_id, "--comment", "Approved for the incident."])
    ssm = demo.client("ssm", demo.bob)
    demo.await_runbook_call()
    status = ssm.get_automation_execution(AutomationExecutionId=demo.request_id)
    out.say(f"  → status {status['AutomationExecution']['AutomationExecutionStatus']}")

    out.step("The runbook calls grant, the events reach notify; alice gets a windowed policy")
    demo.granted(demo.deliver())

    demo.changegate(demo.alice, ["status", demo.request_id])
    # changegate assume: sts:AssumeRole as alice, with the session name the
    # grant requires, then one command run with that session's credentials
    # (here a Python one-liner asking STS who it is).
    whoami = demo.changegate(demo.alice, ["assume", demo.request_id, "--", sys.executable, "-c", WHOAMI])
    check(whoami.strip().endswith(f":assumed-role/{localaws.ROLE_NAME}/alice"),
          f"changegate assume did not run the command as alice's session: {whoami!r}")
    done = demo.client("ssm").get_automation_execution(AutomationExecutionId=demo.request_id)["AutomationExecution"]
    out.say(f"  → the request runbook's execution is {done['AutomationExecutionStatus']} while the access is live: "
            "it holds none of the account's concurrent automations during the window")
    check(done["AutomationExecutionStatus"] == "Success",
          f"the request runbook is still {done['AutomationExecutionStatus']} after the grant")

    out.step("alice's live session in production, and the cut written ahead of the window's end")
    demo.live_session()

    out.step("alice needs more time: she extends the request, bob approves, and nothing drops")
    extend(demo)

    out.step("revoke: nothing to do while the window is open; the policy goes once it ends")
    demo.revoke()
    demo.changegate(demo.alice, ["status", demo.request_id])

    out.step("alice asks once more, and ends it early herself")
    end_early(demo)

    out.step("Notifications")
    demo.notifications()

    out.step("No Change Manager at all")
    calls = demo.ssm_actions()
    out.say("Systems Manager calls (everyone's: alice, bob, the functions, provisioning), counted by a pass-through proxy:")
    out.block("\n".join(f"ssm:{k:<36} {v}" for k, v in calls.items()), indent=2)
    cm_calls = {k: v for k, v in calls.items() if CHANGE_MANAGER_ACTION.search(k)}
    check(not cm_calls, f"the Automation path called Change Manager: {cm_calls}")
    templates = [d.name for d in demo.world.documents if d.document_type == "Automation.ChangeTemplate"]
    check(not templates, f"the stack deployed a change template with RequestSources=Automation: {templates}")
    change_requests = demo.client("ssm").describe_automation_executions(
        Filters=[{"Key": "AutomationSubtype", "Values": ["ChangeRequest"]}])["AutomationExecutionMetadataList"]
    check(not change_requests, f"change requests exist: {compact(change_requests)}")
    out.say("  → no Change Manager action, no change template deployed, no change request in the account")


def extend(demo: Demo) -> None:
    """``changegate extend``: a linked request from the original start until
    the end plus another window, approved by bob; once granted, grant retires
    the first grant, and alice's live session goes on past the first end."""
    out = demo.out
    first, first_end = demo.request_id, demo.window_end.astimezone(timezone.utc)
    extended = json.loads(demo.changegate(demo.alice, ["--output", "json", "extend", first, "--by", f"{demo.window_s}s",
                                                       "--reason", "the fix needs longer"]))
    second = extended["id"]
    demo.changegate(demo.bob, ["approve", second, "--comment", "Go on."])
    demo.await_runbook_call()
    grants = demo.deliver().get("grant", [])
    check(any(isinstance(o, dict) and o.get("outcome") == "granted" for o in grants),
          f"grant did not grant the extension: {compact(grants)}")
    names = demo.alice_policies()
    check(names == [f"changegate-{second}"], f"alice's inline policies after the extension: {names}")
    out.say(f"iam:ListUserPolicies alice → {names}: the extension's policy alone; grant put it in place,\n"
            f"  then retired {first}'s (no gap)")
    demo.changegate(demo.alice, ["status", first])
    demo.changegate(demo.alice, ["status", second])
    demo.request_id = second
    demo.window_end = datetime.fromisoformat(extended["end"].replace("Z", "+00:00"))
    if demo.session:
        demo.cut = demo.role_policies().get("changegate-session-cut")
        decision, _ = demo.judge(first_end + timedelta(seconds=1), "1 s after the first window's end")
        check(decision == "Allow", f"alice's live session was cut at the first window's end: {decision}")
        out.say("  → the cut moved to the extension's end: the live session goes on")


def end_early(demo: Demo) -> None:
    """``changegate end``: the stack's end runbook, which revoke authenticates
    from Systems Manager's records (alice filed it), removes the access at once;
    ``status`` then says why it ended."""
    filed = json.loads(demo.changegate(demo.alice, ["--output", "json", "request", "prod", "--for", "10m",
                                                    "--reason", "one more check"]))
    third = filed["id"]
    demo.changegate(demo.bob, ["approve", third])
    demo.await_runbook_call()
    grants = demo.deliver().get("grant", [])
    check(any(isinstance(o, dict) and o.get("outcome") == "granted" for o in grants),
          f"grant did not grant {third}: {compact(grants)}")
    demo.changegate(demo.alice, ["end", third, "--reason", "done early"])
    demo.await_runbook_call()
    revoked = demo.deliver().get("revoke", [])
    check(any(isinstance(o, dict) and o.get("outcome") == "revoked" and o.get("cause") == "ended-on-request"
              for o in revoked), f"revoke did not end {third} on alice's request: {compact(revoked)}")
    names = demo.alice_policies()
    check(names == [], f"alice's inline policies after ending it: {names}")
    demo.out.say("iam:ListUserPolicies alice → []: removed at once, before its window's end")
    demo.changegate(demo.alice, ["status", third])


# What `changegate assume ID -- COMMAND` runs in the demo: STS's answer to
# "who am I" with the credentials the command hands it (its environment).
WHOAMI = "import boto3; print(boto3.client('sts').get_caller_identity()['Arn'])"


PATHS: dict[str, Callable[[Demo], None]] = {"change-manager": change_manager_path, "automation": automation_path}


def _interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="changegate end to end on a local AWS")
    parser.add_argument("--source", choices=SOURCES, default=DEFAULT_SOURCE,
                        help=f"how alice asks: a Change Manager change request or the request runbook (default {DEFAULT_SOURCE})")
    parser.add_argument("--bin-dir", type=Path, default=None,
                        help="where grant, revoke and notify are (default: cargo's target dir, debug)")
    parser.add_argument("--window", type=int, default=20, help="length of the access window in seconds (default 20)")
    parser.add_argument("--same-account", action="store_true",
                        help=f"put the production role in {localaws.HOME_ACCOUNT} too (moto then checks its trust policy)")
    args = parser.parse_args(argv)

    bin_dir = args.bin_dir or localaws.bin_dir()
    needed = localaws.FUNCTIONS if args.same_account else (*localaws.FUNCTIONS, EVALUATOR)
    missing = localaws.missing_binaries(bin_dir, needed)
    if missing:
        print(f"demo: {', '.join(missing)} not found in {bin_dir}: run `cargo build --workspace --bins` first",
              file=sys.stderr)
        return 2

    # SIGTERM (e.g. from make or CI) unwinds like Ctrl-C, so the server is stopped.
    signal.signal(signal.SIGTERM, _interrupt)

    other = next(s for s in SOURCES if s != args.source)
    out = Timeline()
    print(f"changegate demo, {args.source} path (the other one: make demo SOURCE={other})", flush=True)
    aws: localaws.Server | None = None
    try:
        aws = localaws.Server(localaws.ROOT / ".localaws" / "server.log")
        out.say(f"local AWS (moto + changegate's extension) at {aws.url}; binaries from {bin_dir}")
        prod = localaws.HOME_ACCOUNT if args.same_account else localaws.PROD_ACCOUNT
        with FaultProxy(aws.url, rate=0.0) as proxy:
            PATHS[args.source](Demo(aws, out, bin_dir, args.window, prod, proxy))
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
    cut = ("a live session cut at the window's end" if not args.same_account
           else "no session cut (--same-account)")
    print(f"\ndemo OK in {elapsed:.0f} s ({args.source}): denied before, granted inside the window, revoked after; "
          f"{cut}.\nThe other path: make demo SOURCE={other}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
