"""faultproxy.py between a client and the local AWS."""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError

import faultproxy
import localaws


@pytest.fixture
def proxy(aws: localaws.Server) -> Iterator[faultproxy.FaultProxy]:
    with faultproxy.FaultProxy(aws.url, rate=0.0, latency=0.3, seed=1) as p:
        yield p


def through(proxy: faultproxy.FaultProxy, service: str, **config: Any) -> Any:
    return localaws.client(proxy.url, service, **{"read_timeout": 10, **config})


def test_given_rate_zero_when_calls_pass_then_all_are_forwarded_and_counted_by_service_and_action(
    proxy: faultproxy.FaultProxy,
) -> None:
    iam, ssm, sns = (through(proxy, s) for s in ("iam", "ssm", "sns"))

    iam.create_user(UserName="fp-user")
    iam.put_user_policy(UserName="fp-user", PolicyName="p", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
    assert iam.get_user_policy(UserName="fp-user", PolicyName="p")["PolicyName"] == "p"
    ssm.put_parameter(Name="fp-parameter", Value="v", Type="String")
    sns.publish(TopicArn=sns.create_topic(Name="fp-topic")["TopicArn"], Message="hello")

    stats = proxy.stats()
    assert stats["actions"] == {"iam:CreateUser": 1, "iam:PutUserPolicy": 1, "iam:GetUserPolicy": 1,
                                "ssm:PutParameter": 1, "sns:CreateTopic": 1, "sns:Publish": 1}
    assert stats["requests"] == stats["forwarded"] == 6 and not any(stats["faults"].values())


@pytest.mark.parametrize(("kind", "query_error", "json_error"), [
    ("throttle", ("Throttling", 400), ("ThrottlingException", 400)),
    ("500", ("InternalFailure", 500), ("InternalFailure", 500)),
    ("503", ("ServiceUnavailable", 503), ("ServiceUnavailable", 503)),
])
def test_given_an_error_fault_when_calling_then_each_protocol_gets_its_own_error_shape(
    proxy: faultproxy.FaultProxy, kind: str, query_error: tuple[str, int], json_error: tuple[str, int],
) -> None:
    iam, ssm = through(proxy, "iam"), through(proxy, "ssm")
    proxy.configure(rate=1.0, kinds=[kind])

    for expected, call in ((query_error, lambda: iam.get_user(UserName="fp-user")),
                           (json_error, lambda: ssm.get_automation_execution(AutomationExecutionId=str(uuid.uuid4())))):
        with pytest.raises(ClientError) as caught:
            call()
        error = caught.value.response
        assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == expected


def test_given_a_reset_fault_when_calling_then_the_connection_drops(proxy: faultproxy.FaultProxy) -> None:
    proxy.configure(rate=1.0, kinds=["reset"])

    with pytest.raises(ConnectionClosedError):
        through(proxy, "iam").get_user(UserName="fp-user")


def test_given_latency_when_the_client_gives_up_then_the_call_is_slow_but_still_applied(
    aws: localaws.Server, proxy: faultproxy.FaultProxy,
) -> None:
    iam = through(proxy, "iam")
    iam.create_user(UserName="fp-user")
    proxy.configure(rate=1.0, kinds=["latency"])

    started = time.monotonic()
    iam.get_user(UserName="fp-user")
    assert time.monotonic() - started >= 0.3
    with pytest.raises(ReadTimeoutError):
        through(proxy, "iam", read_timeout=0.1).create_user(UserName="fp-lost-answer")

    users: list[str] = []
    deadline = time.monotonic() + 5
    while "fp-lost-answer" not in users and time.monotonic() < deadline:
        users = [u["UserName"] for u in aws.client("iam").list_users()["Users"]]
        time.sleep(0.1)
    assert "fp-lost-answer" in users


def test_given_the_control_api_when_configured_then_bad_values_are_refused_and_control_calls_are_not_counted(
    proxy: faultproxy.FaultProxy,
) -> None:
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
    status, stats = call("GET", "/_faultproxy/stats")
    assert status == 200 and stats["requests"] == 0
    assert call("GET", "/_faultproxy/nothing")[0] == 404
    assert call("GET", "/_localaws/sns/published") == (200, [])  # the harness's endpoints: not faulted


def test_given_a_seed_when_two_proxies_decide_then_they_decide_alike() -> None:
    a, b = (faultproxy.State(0.5, faultproxy.KINDS, 0, seed=7) for _ in range(2))

    assert [a.decide("x") for _ in range(50)] == [b.decide("x") for _ in range(50)]


def test_given_the_cli_when_started_and_terminated_then_it_prints_ready_and_exits_cleanly(
    aws: localaws.Server,
) -> None:
    proc = subprocess.Popen(
        [sys.executable, str(localaws.HERE / "faultproxy.py"), "--upstream", aws.url, "--rate", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("READY http://127.0.0.1:")
        with urllib.request.urlopen(line.split(" ", 1)[1] + "/_faultproxy/stats", timeout=10) as r:
            assert json.loads(r.read())["requests"] == 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(5) == 0
        assert proc.communicate() == ("", "")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
