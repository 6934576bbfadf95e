#!/usr/bin/env python3
"""Checks the local-AWS tooling itself, without the Rust functions.

    .venv/bin/python tests/localaws/selfcheck.py

Starts server.py on a free port and drives the Change Manager extension and
the SNS record with boto3, puts faultproxy.py in front of it and checks each
fault kind, then runs lambda_runtime.py against a stand-in function (a small
Python script written to a temporary directory). Prints one
line per check and closes with ``N passed, N failed``; exit status 0 only when
nothing failed. Takes about 15 seconds.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import faultproxy  # noqa: E402
import lambda_runtime  # noqa: E402
from demo import DUMMY, REGION, LocalAws, drain  # noqa: E402

RESULTS: list[tuple[str, bool]] = []


def check(name: str, fn: Callable[[], None]) -> None:
    try:
        fn()
    except Exception:  # report and go on: every check runs
        RESULTS.append((name, False))
        print(f"FAIL {name}\n{traceback.format_exc()}", flush=True)
    else:
        RESULTS.append((name, True))
        print(f"ok   {name}", flush=True)


def expect_error(code: str, call: Callable[[], Any]) -> None:
    try:
        call()
    except ClientError as e:
        got = e.response["Error"]["Code"]
        status = e.response["ResponseMetadata"]["HTTPStatusCode"]
        assert (got, status) == (code, 400), f"expected {code}/400, got {got}/{status}"
        return
    raise AssertionError(f"expected {code}, the call succeeded")


def wait_for(what: str, probe: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if probe():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {seconds} s")


# A stand-in function speaking the Runtime API; FAKE_MODE picks its behaviour.
FAKE_FUNCTION = r'''#!/usr/bin/env python3
import json, os, sys, time, urllib.request
api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime"
mode = os.environ.get("FAKE_MODE", "ok")
print("fake function starting in mode", mode, flush=True)
def post(path, body):
    urllib.request.urlopen(urllib.request.Request(api + path, data=json.dumps(body).encode(), method="POST"), timeout=10)
if mode == "init-error":
    post("/init/error", {"errorType": "Config", "errorMessage": "bad configuration"})
    sys.exit(1)
while True:
    r = urllib.request.urlopen(api + "/invocation/next")
    rid = r.headers["Lambda-Runtime-Aws-Request-Id"]
    event = json.loads(r.read())
    if mode == "crash":
        sys.exit(3)
    if mode == "hang":
        time.sleep(60)
    if event.get("fail"):
        post(f"/invocation/{rid}/error", {"errorType": "Asked", "errorMessage": "asked to fail"})
    else:
        env = {k: os.environ.get(k) for k in ("AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_VERSION", "EXTRA")}
        post(f"/invocation/{rid}/response", {"event": event, "env": env,
             "arn": r.headers["Lambda-Runtime-Invoked-Function-Arn"],
             "deadline": int(r.headers["Lambda-Runtime-Deadline-Ms"]),
             "trace": r.headers["Lambda-Runtime-Trace-Id"]})
'''


def server_checks(aws: LocalAws) -> None:
    iam, sqs, events, sns = (aws.client(s) for s in ("iam", "sqs", "events", "sns"))
    keys = {}
    for user in ("alice", "bob"):
        iam.create_user(UserName=user)
        k = iam.create_access_key(UserName=user)["AccessKey"]
        keys[user] = {"aws_access_key_id": k["AccessKeyId"], "aws_secret_access_key": k["SecretAccessKey"]}
    alice, bob = aws.client("ssm", keys["alice"]), aws.client("ssm", keys["bob"])

    queue = sqs.create_queue(QueueName="ssm-events")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="cr", EventPattern=json.dumps(
        {"source": ["aws.ssm"], "detail-type": ["Change Request Status Update"]}))
    events.put_targets(Rule="cr", Targets=[{"Id": "q", "Arn": queue_arn}])

    runbook = {"DocumentName": "changegate-access-runbook",
               "Parameters": {"IAMUserName": ["alice"], "AWSAccountId": ["111122223333"],
                              "StartTime": ["2026-12-01T18:00:00+09:00"], "EndTime": ["2026-12-01T19:00:00+09:00"]}}

    def start(**extra: Any) -> str:
        return alice.start_change_request_execution(
            DocumentName="changegate-access", ChangeRequestName="title", Runbooks=[runbook], **extra
        )["AutomationExecutionId"]

    def statuses() -> list[tuple[str, str]]:
        return [(e["detail"]["ops-item-status"], e["detail"]["ops-item-modified-by"]) for e in drain(sqs, queue)]

    alice_arn, bob_arn = "arn:aws:iam::123456789012:user/alice", "arn:aws:iam::123456789012:user/bob"
    state: dict[str, str] = {}

    def pending() -> None:
        state["id"] = start()
        ex = alice.get_automation_execution(AutomationExecutionId=state["id"])["AutomationExecution"]
        assert ex["AutomationExecutionStatus"] == "PendingApproval", ex
        assert ex["ExecutedBy"] == alice_arn and ex["AutomationSubtype"] == "ChangeRequest", ex
        assert ex["Runbooks"][0]["Parameters"] == runbook["Parameters"], ex["Runbooks"]
        step = ex["StepExecutions"][0]
        assert step["Action"] == "aws:approve" and step["Outputs"]["ApprovalStatus"] == ["Waiting"], step
        [event] = drain(sqs, queue)
        assert event["source"] == "aws.ssm" and event["detail-type"] == "Change Request Status Update", event
        d = event["detail"]
        assert set(d) == {"change-request-id", "change-request-title", "ops-item-id", "ops-item-created-by",
                          "ops-item-created-time", "ops-item-modified-by", "ops-item-modified-time",
                          "ops-item-status", "change-template-document-name", "runbook-document-arn",
                          "runbook-document-version", "auto-approve", "approvers"}, sorted(d)
        assert d["change-request-id"] == state["id"] and d["ops-item-status"] == "PendingApproval", d
        assert d["ops-item-id"] == ex["OpsItemId"] and d["ops-item-created-by"] == alice_arn, d
        assert d["runbook-document-arn"] == "arn:aws:ssm:us-east-1:123456789012:document/changegate-access-runbook"
        assert event["resources"] == [f"arn:aws:ssm:us-east-1:123456789012:opsitem/{d['ops-item-id']}",
                                      d["runbook-document-arn"]], event["resources"]

    def approve() -> None:
        bob.send_automation_signal(AutomationExecutionId=state["id"], SignalType="Approve",
                                   Payload={"Comment": ["fine"]})
        assert statuses() == [("Approved", bob_arn), ("RunbookInProgress", bob_arn),
                              ("CompletedWithSuccess", bob_arn)]
        ex = alice.get_automation_execution(AutomationExecutionId=state["id"])["AutomationExecution"]
        assert ex["AutomationExecutionStatus"] == "CompletedWithSuccess", ex
        outputs = ex["StepExecutions"][0]["Outputs"]
        [decision] = json.loads(outputs["ApproverDecisions"][0])
        assert outputs["ApprovalStatus"] == ["Approved"], outputs
        assert (decision["Approver"], decision["Decision"], decision["Comment"]) == (bob_arn, "Approve", "fine")

    def signal_errors() -> None:
        expect_error("InvalidAutomationSignalException",
                     lambda: bob.send_automation_signal(AutomationExecutionId=state["id"], SignalType="Approve"))
        expect_error("InvalidAutomationStatusUpdateException",
                     lambda: bob.stop_automation_execution(AutomationExecutionId=state["id"]))
        missing = "00000000-0000-0000-0000-000000000000"
        expect_error("AutomationExecutionNotFoundException",
                     lambda: bob.get_automation_execution(AutomationExecutionId=missing))
        expect_error("AutomationExecutionNotFoundException",
                     lambda: bob.send_automation_signal(AutomationExecutionId=missing, SignalType="Approve"))

    def reject() -> None:
        cid = start()
        bob.send_automation_signal(AutomationExecutionId=cid, SignalType="Reject", Payload={"Comment": ["no"]})
        assert statuses() == [("PendingApproval", alice_arn), ("Rejected", bob_arn)]
        ex = alice.get_automation_execution(AutomationExecutionId=cid)["AutomationExecution"]
        assert ex["AutomationExecutionStatus"] == "Rejected", ex
        assert ex["StepExecutions"][0]["Outputs"]["ApprovalStatus"] == ["Rejected"]

    def cancel() -> None:
        cid = start()
        alice.stop_automation_execution(AutomationExecutionId=cid, Type="Cancel")
        assert statuses() == [("PendingApproval", alice_arn), ("Cancelled", alice_arn)]
        assert alice.get_automation_execution(AutomationExecutionId=cid)["AutomationExecution"][
            "AutomationExecutionStatus"] == "Cancelled"

    def scheduled() -> None:
        at = datetime.now(timezone.utc) + timedelta(seconds=2)
        cid = start(ScheduledTime=at)
        bob.send_automation_signal(AutomationExecutionId=cid, SignalType="Approve")
        assert statuses() == [("PendingApproval", alice_arn), ("Approved", bob_arn), ("Scheduled", bob_arn)]
        ex = alice.get_automation_execution(AutomationExecutionId=cid)["AutomationExecution"]
        assert ex["AutomationExecutionStatus"] == "Scheduled" and abs(ex["ScheduledTime"] - at).total_seconds() < 1
        seen: list[tuple[str, str]] = []
        wait_for("the scheduled runbook", lambda: bool(seen.extend(statuses())) or len(seen) >= 2, 10)
        assert [s for s, _ in seen] == ["RunbookInProgress", "CompletedWithSuccess"], seen

    def auto_approve() -> None:
        cid = start(AutoApprove=True)
        seen = drain(sqs, queue)
        assert [(e["detail"]["ops-item-status"], e["detail"]["ops-item-modified-by"]) for e in seen] == [
            ("PendingApproval", alice_arn), ("Approved", alice_arn),
            ("RunbookInProgress", alice_arn), ("CompletedWithSuccess", alice_arn)], seen
        assert all(e["detail"]["auto-approve"] is True for e in seen)
        ex = alice.get_automation_execution(AutomationExecutionId=cid)["AutomationExecution"]
        assert ex["StepExecutions"][0]["Outputs"]["ApprovalStatus"] == ["Approved"], ex

    def client_token() -> None:
        a = start(ClientToken="same-token-0000000000000000000000000")
        b = start(ClientToken="same-token-0000000000000000000000000")
        assert a == b
        drain(sqs, queue)

    def validation() -> None:
        expect_error("ValidationException", lambda: alice.start_change_request_execution(
            DocumentName="changegate-access", Runbooks=[runbook, runbook]))

    def sns_record() -> None:
        topic = sns.create_topic(Name="changegate-notifications")["TopicArn"]
        q = sqs.create_queue(QueueName="alice-email")["QueueUrl"]
        q_arn = sqs.get_queue_attributes(QueueUrl=q, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=q_arn,
                      Attributes={"FilterPolicy": json.dumps({"user": ["alice"]})})
        message = json.dumps({"default": "plain", "email": "Dear alice", "https": json.dumps({"version": "1.0"})})
        for user in ("alice", "bob"):
            sns.publish(TopicArn=topic, Message=message, MessageStructure="json", Subject=f"for {user}",
                        MessageAttributes={"user": {"DataType": "String", "StringValue": user}})
        published = aws.sns_published()
        assert [p["Subject"] for p in published] == ["for alice", "for bob"], published
        assert published[0]["Message"] == message and published[0]["MessageStructure"] == "json"
        assert published[0]["TopicArn"] == topic
        assert published[0]["MessageAttributes"] == {"user": {"DataType": "String", "StringValue": "alice"}}
        [delivered] = drain(sqs, q)  # the filter policy kept bob's out
        assert delivered["Subject"] == "for alice" and delivered["Message"] == "plain", delivered
        with urllib.request.urlopen(aws.url + "/moto-api/reset", data=b"", timeout=10) as r:
            r.read()
        assert aws.sns_published() == []

    check("StartChangeRequestExecution: PendingApproval, requester, event shape", pending)
    check("Approve: Approved, RunbookInProgress, CompletedWithSuccess; approver recorded", approve)
    check("errors: signal twice, stop a finished one, unknown id", signal_errors)
    check("Reject: Rejected", reject)
    check("StopAutomationExecution: Cancelled", cancel)
    check("ScheduledTime ahead: Scheduled, then runs at that time", scheduled)
    check("AutoApprove: approved at once by the requester", auto_approve)
    check("ClientToken: an idempotent retry returns the same id", client_token)
    check("more than one runbook: ValidationException", validation)
    check("/_localaws/sns/published and filter-policy delivery; reset clears", sns_record)


def faultproxy_checks(aws: LocalAws) -> None:
    proxy = faultproxy.FaultProxy(aws.url, rate=0.0, latency=0.3, seed=1)
    proxy.start()

    def client(service: str, **config: Any) -> Any:
        config = {"retries": {"total_max_attempts": 1}, "connect_timeout": 5, "read_timeout": 10, **config}
        return boto3.client(service, endpoint_url=proxy.url, region_name=REGION, config=Config(**config), **DUMMY)

    iam, ssm, sns = client("iam"), client("ssm"), client("sns")

    def forwards() -> None:
        proxy.reset_stats()
        iam.create_user(UserName="fp-user")
        iam.put_user_policy(UserName="fp-user", PolicyName="p", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
        assert iam.get_user_policy(UserName="fp-user", PolicyName="p")["PolicyName"] == "p"
        ssm.start_change_request_execution(DocumentName="changegate-access", ChangeRequestName="t",
                                           Runbooks=[{"DocumentName": "changegate-access-runbook"}])
        sns.publish(TopicArn=sns.create_topic(Name="fp-topic")["TopicArn"], Message="hello")
        stats = proxy.stats()
        assert stats["actions"] == {"iam:CreateUser": 1, "iam:PutUserPolicy": 1, "iam:GetUserPolicy": 1,
                                    "ssm:StartChangeRequestExecution": 1, "sns:CreateTopic": 1,
                                    "sns:Publish": 1}, stats
        assert stats["requests"] == stats["forwarded"] == 6 and not any(stats["faults"].values()), stats

    def error_faults() -> None:
        expected = {"throttle": (("Throttling", 400), ("ThrottlingException", 400)),
                    "500": (("InternalFailure", 500),) * 2, "503": (("ServiceUnavailable", 503),) * 2}
        for kind, (query, json_) in expected.items():
            proxy.configure(rate=1.0, kinds=[kind])
            for (code, status), call in ((query, lambda: iam.get_user(UserName="fp-user")),
                                         (json_, lambda: ssm.get_automation_execution(AutomationExecutionId=str(uuid.uuid4())))):
                try:
                    call()
                except ClientError as e:
                    got = (e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"])
                    assert got == (code, status), f"{kind}: expected {code}/{status}, got {got}"
                else:
                    raise AssertionError(f"{kind}: the call succeeded")
        proxy.configure(rate=0.0)

    def reset_and_latency() -> None:
        proxy.configure(rate=1.0, kinds=["reset"])
        try:
            iam.get_user(UserName="fp-user")
        except ConnectionClosedError:
            pass
        else:
            raise AssertionError("reset: the call succeeded")
        proxy.configure(kinds=["latency"])
        started = time.monotonic()
        iam.get_user(UserName="fp-user")
        assert time.monotonic() - started >= 0.3
        # The client gives up before the answer; the call still reaches the upstream.
        try:
            client("iam", read_timeout=0.1).create_user(UserName="fp-lost-answer")
        except ReadTimeoutError:
            pass
        else:
            raise AssertionError("latency: the impatient call succeeded")
        proxy.configure(rate=0.0)
        wait_for("the delayed CreateUser", lambda: any(
            u["UserName"] == "fp-lost-answer" for u in iam.list_users()["Users"]), 5)

    def control() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)  # one keep-alive connection

        def call(method: str, path: str, body: Any = None) -> tuple[int, Any]:
            conn.request(method, path, body=None if body is None else json.dumps(body))
            r = conn.getresponse()
            return r.status, json.loads(r.read())

        assert call("POST", "/_faultproxy/config", {"rate": 1.0, "kinds": ["503"], "latency": 1}) == (
            200, {"rate": 1.0, "kinds": ["503"], "latency": 1.0, "only": None})
        assert call("POST", "/_faultproxy/config", {"rate": 2})[0] == 400
        assert call("POST", "/_faultproxy/config", {"kinds": ["flood"]})[0] == 400
        assert call("POST", "/_faultproxy/reset-stats")[1]["requests"] == 0
        status, stats = call("GET", "/_faultproxy/stats")  # control paths: never faulted nor counted
        assert status == 200 and stats["requests"] == 0, stats
        assert call("GET", "/_faultproxy/nothing")[0] == 404
        conn.request("GET", "/_localaws/sns/published")  # the harness's endpoints: not faulted
        r = conn.getresponse()
        assert r.status == 200, r.status
        r.read()
        assert call("POST", "/_faultproxy/config", {"rate": 0.0, "latency": 0.3})[0] == 200
        a, b = (faultproxy.State(0.5, faultproxy.KINDS, 0, seed=7) for _ in range(2))
        assert [a.decide("x") for _ in range(50)] == [b.decide("x") for _ in range(50)], "seeded runs differ"

    def cli() -> None:
        proc = subprocess.Popen([sys.executable, str(HERE / "faultproxy.py"), "--upstream", aws.url, "--rate", "0"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            assert line.startswith("READY http://127.0.0.1:"), line
            with urllib.request.urlopen(line.split(" ", 1)[1] + "/_faultproxy/stats", timeout=10) as r:
                assert json.loads(r.read())["requests"] == 0
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(5) == 0
            out, err = proc.communicate()
            assert out == "" and err == "", (out, err)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    try:
        check("faultproxy: rate 0 forwards; stats name each service:Action", forwards)
        check("faultproxy: throttle, 500, 503 as protocol-correct errors (query and JSON)", error_faults)
        check("faultproxy: reset drops the connection; latency delays, applied even if the client gave up",
              reset_and_latency)
        check("faultproxy: control API, keep-alive, seeded reproducibility", control)
        check("faultproxy: CLI READY line, clean exit on SIGTERM", cli)
    finally:
        proxy.stop()


def runtime_checks(tmp: Path) -> None:
    fake = tmp / "fake-function"
    fake.write_text(FAKE_FUNCTION)
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    quiet = {"on_log": lambda _line: None}

    def ok() -> None:
        outcome = lambda_runtime.run(str(fake), [{"n": 1}, {"fail": True}, {"n": 3}],
                                     {"FAKE_MODE": "ok", "EXTRA": "yes"}, function_name="fn", timeout=10, **quiet)
        assert outcome.failure is None and outcome.status == 1, outcome
        first, failed, third = outcome.results
        assert first["ok"] and first["response"]["event"] == {"n": 1}, first
        assert first["response"]["env"] == {"AWS_LAMBDA_FUNCTION_NAME": "fn", "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                                            "EXTRA": "yes"}, first
        assert first["response"]["arn"] == "arn:aws:lambda:us-east-1:123456789012:function:fn"
        assert first["response"]["deadline"] > time.time() * 1000
        assert first["response"]["trace"].startswith("Root=1-")
        assert not failed["ok"] and failed["error"]["errorType"] == "Asked", failed
        assert third["ok"] and outcome.cold_start_ms is not None

    def failing(mode: str, error_type: str | None) -> Callable[[], None]:
        def run() -> None:
            started = time.monotonic()
            outcome = lambda_runtime.run(str(fake), [{"n": 1}], {"FAKE_MODE": mode}, timeout=3, **quiet)
            assert outcome.status == 2 and outcome.failure, outcome
            assert time.monotonic() - started < 10
            if error_type:
                assert outcome.results[0]["error"]["errorType"] == error_type, outcome.results
            try:
                lambda_runtime.invoke(str(fake), [{"n": 1}], {"FAKE_MODE": mode}, timeout=3, **quiet)
            except lambda_runtime.LambdaRunError:
                return
            raise AssertionError("invoke() did not raise")
        return run

    def cli() -> None:
        event = tmp / "event.json"
        event.write_text('{"n": 1}')
        proc = subprocess.run(
            [sys.executable, str(HERE / "lambda_runtime.py"), "--binary", str(fake), "--event", str(event),
             "--event", str(event), "--env", "FAKE_MODE=ok", "--timeout", "10"],
            capture_output=True, text=True, timeout=60,
        )
        lines = [json.loads(line) for line in proc.stdout.splitlines()]
        assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
        assert [line.get("ok") for line in lines[:2]] == [True, True], lines
        assert lines[2]["summary"]["invocations"] == 2 and lines[2]["summary"]["errors"] == 0, lines
        assert "fake function starting" in proc.stderr, proc.stderr

    check("runtime: responses, errors, headers, environment", ok)
    check("runtime: init error → exit 2", failing("init-error", None))
    check("runtime: crash mid-invocation → exit 2", failing("crash", "Runtime.ExitError"))
    check("runtime: timeout → exit 2", failing("hang", "Sandbox.Timedout"))
    check("runtime: CLI output and exit status", cli)


def main() -> int:
    root = HERE.parents[1]
    aws = LocalAws(root / ".localaws" / "selfcheck-server.log")
    try:
        print(f"local AWS at {aws.url}", flush=True)
        server_checks(aws)
        faultproxy_checks(aws)
    finally:
        aws.close()
    with tempfile.TemporaryDirectory() as tmp:
        runtime_checks(Path(tmp))
    passed = sum(1 for _, ok in RESULTS if ok)
    failed = len(RESULTS) - passed
    print(f"{passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    os.chdir(HERE.parents[1])
    sys.exit(main())
