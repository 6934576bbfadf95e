"""lambda_runtime.py against a stand-in function speaking the Runtime API."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

import lambda_runtime
import localaws

# FAKE_MODE picks the stand-in's behaviour.
FAKE_FUNCTION = r'''#!{python}
import json, os, sys, time, urllib.request
api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime"
mode = os.environ.get("FAKE_MODE", "ok")
print("fake function starting in mode", mode, flush=True)
def post(path, body):
    req = urllib.request.Request(api + path, data=json.dumps(body).encode(), method="POST")
    urllib.request.urlopen(req, timeout=10)
if mode == "init-error":
    post("/init/error", {{"errorType": "Config", "errorMessage": "bad configuration"}})
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
        post(f"/invocation/{{rid}}/error", {{"errorType": "Asked", "errorMessage": "asked to fail"}})
    else:
        env = {{k: os.environ.get(k) for k in ("AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_VERSION", "EXTRA")}}
        post(f"/invocation/{{rid}}/response", {{"event": event, "env": env,
             "arn": r.headers["Lambda-Runtime-Invoked-Function-Arn"],
             "deadline": int(r.headers["Lambda-Runtime-Deadline-Ms"]),
             "trace": r.headers["Lambda-Runtime-Trace-Id"]}})
'''


def quiet(_line: str) -> None:
    pass


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("runtime") / "fake-function"
    path.write_text(FAKE_FUNCTION.format(python=sys.executable))
    path.chmod(0o755)
    return path


def test_given_three_events_when_run_then_responses_errors_headers_and_environment_are_as_lambda_gives_them(
    fake: Path,
) -> None:
    outcome = lambda_runtime.run(str(fake), [{"n": 1}, {"fail": True}, {"n": 3}],
                                 {"FAKE_MODE": "ok", "EXTRA": "yes"}, function_name="fn", timeout=10, on_log=quiet)

    assert outcome.failure is None and outcome.status == 1
    first, failed, third = outcome.results
    assert first["ok"] and first["response"]["event"] == {"n": 1}
    assert first["response"]["env"] == {"AWS_LAMBDA_FUNCTION_NAME": "fn", "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                                        "EXTRA": "yes"}
    assert first["response"]["arn"] == "arn:aws:lambda:us-east-1:123456789012:function:fn"
    assert first["response"]["deadline"] > time.time() * 1000
    assert first["response"]["trace"].startswith("Root=1-")
    assert not failed["ok"] and failed["error"]["errorType"] == "Asked"
    assert third["ok"] and outcome.cold_start_ms is not None and outcome.peak_rss_kb


# The timeout is the subject only for "hang" (the stand-in sleeps 60 s: the
# run must end long before); an init error or a crash must end the run by
# itself, well before a timeout that a loaded machine cannot reach by accident.
@pytest.mark.parametrize(("mode", "error_type", "timeout"), [
    ("init-error", None, 20), ("crash", "Runtime.ExitError", 20), ("hang", "Sandbox.Timedout", 1),
])
def test_given_a_function_that_cannot_finish_when_run_then_the_run_fails_with_status_2_and_invoke_raises(
    fake: Path, mode: str, error_type: str | None, timeout: float,
) -> None:
    started = time.monotonic()
    outcome = lambda_runtime.run(str(fake), [{"n": 1}], {"FAKE_MODE": mode}, timeout=timeout, on_log=quiet)

    assert outcome.status == 2 and outcome.failure
    assert time.monotonic() - started < (30 if mode == "hang" else timeout)
    if error_type:
        assert outcome.results[0]["error"]["errorType"] == error_type
    with pytest.raises(lambda_runtime.LambdaRunError):
        lambda_runtime.invoke(str(fake), [{"n": 1}], {"FAKE_MODE": mode}, timeout=timeout, on_log=quiet)


def test_given_the_cli_when_run_with_two_event_files_then_it_prints_one_line_each_and_a_summary(
    fake: Path, tmp_path: Path,
) -> None:
    event = tmp_path / "event.json"
    event.write_text('{"n": 1}')

    proc = subprocess.run(
        [sys.executable, str(localaws.HERE / "lambda_runtime.py"), "--binary", str(fake), "--event", str(event),
         "--event", str(event), "--env", "FAKE_MODE=ok", "--timeout", "10"],
        capture_output=True, text=True, timeout=60,
    )

    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert proc.returncode == 0, proc.stderr
    assert [line.get("ok") for line in lines[:2]] == [True, True]
    assert lines[2]["summary"]["invocations"] == 2 and lines[2]["summary"]["errors"] == 0
    assert "fake function starting" in proc.stderr
