#!/usr/bin/env python3
"""A local Lambda Runtime API (2018-06-01) that runs one function binary.

    python tests/localaws/lambda_runtime.py --binary target/debug/grant \\
        --event events/change-request-aws-sample.json [--event FILE2 ...] \\
        [--env K=V ...] [--function-name NAME] [--timeout 30]

Serves the Runtime API on 127.0.0.1 (a free port), starts the binary the way
Lambda starts a custom runtime (``provided.al2023``: the parent environment
plus ``AWS_LAMBDA_RUNTIME_API`` and friends), hands it each event in turn, and
collects what it answers. The binary's own output (its logs) goes to stderr.

stdout gets one JSON line per invocation,
``{"request_id", "ok", "response", "error", "ms"}``, then one summary line,
``{"summary": {"cold_start_ms", "invocations", "errors"}}`` (plus ``"failure"``
when the run could not finish). Exit status: 0 when every invocation
succeeded, 1 when any returned an error, 2 on init error, crash or timeout.

Importable: ``invoke(binary, events, env)`` returns the per-invocation
results and raises ``LambdaRunError`` where the CLI would exit 2; ``run()``
returns everything, failures included.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

API = "/2018-06-01/runtime"
ACCOUNT_ID = "123456789012"
# "The Init phase is limited to 10 seconds" (Lambda execution environment
# lifecycle, for on-demand functions).
INIT_TIMEOUT_S = 10.0

# How long a stopped binary gets between SIGTERM and SIGKILL.
TERM_GRACE_S = 2.0


class LambdaRunError(RuntimeError):
    """The function could not run to the end: init error, crash or timeout."""

    def __init__(self, message: str, run: Run):
        super().__init__(message)
        self.run = run


@dataclass
class Invocation:
    request_id: str
    payload: bytes
    handed_out: float | None = None  # monotonic
    finished: float | None = None
    ok: bool | None = None
    response: Any = None
    error: Any = None

    def result(self) -> dict[str, Any]:
        ms = None
        if self.handed_out is not None and self.finished is not None:
            ms = round((self.finished - self.handed_out) * 1000, 1)
        return {
            "request_id": self.request_id,
            "ok": bool(self.ok),
            "response": self.response,
            "error": self.error,
            "ms": ms,
        }


@dataclass
class Run:
    results: list[dict[str, Any]] = field(default_factory=list)
    cold_start_ms: float | None = None
    # The process's peak resident memory (VmHWM) once every event was answered.
    peak_rss_kb: int | None = None
    init_error: Any = None
    failure: str | None = None
    exit_code: int | None = None

    @property
    def errors(self) -> int:
        return sum(1 for r in self.results if not r["ok"])

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "cold_start_ms": self.cold_start_ms,
            "peak_rss_kb": self.peak_rss_kb,
            "invocations": len(self.results),
            "errors": self.errors,
        }
        if self.failure:
            out["failure"] = self.failure
        return {"summary": out}

    @property
    def status(self) -> int:
        """The CLI's exit status."""
        if self.failure:
            return 2
        return 1 if self.errors else 0


def _decode(body: bytes) -> Any:
    """A response or error body: JSON when it is JSON, else the text."""
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace")


def _trace_id() -> str:
    # X-Ray trace header format: Root=1-<epoch hex>-<96 random bits>.
    return f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)};Parent={secrets.token_hex(8)};Sampled=0"


class _RuntimeState:
    """What the Runtime API hands out and collects; shared with the handler
    threads under one condition variable."""

    def __init__(self, payloads: list[bytes], function_arn: str, timeout_s: float):
        self.cond = threading.Condition()
        self.invocations = [Invocation(str(uuid.uuid4()), p) for p in payloads]
        self.by_id = {i.request_id: i for i in self.invocations}
        self.next_index = 0
        self.function_arn = function_arn
        self.timeout_s = timeout_s
        self.first_next: float | None = None
        self.init_error: Any = None
        self.closing = threading.Event()

    def all_answered(self) -> bool:
        return all(i.ok is not None for i in self.invocations)

    def current(self) -> Invocation | None:
        """The invocation handed out and not yet answered, if any."""
        for inv in self.invocations[: self.next_index]:
            if inv.ok is None:
                return inv
        return None


def _handler_class(state: _RuntimeState, hold_s: float) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # The Rust runtime keeps its connection alive between calls.
        protocol_version = "HTTP/1.1"

        def log_message(self, *_args: Any) -> None:  # keep stderr for the function's logs
            pass

        def _reply(self, code: int, body: Any = None, headers: Mapping[str, str] | None = None) -> None:
            data = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def do_GET(self) -> None:
            if self.path != f"{API}/invocation/next":
                self._reply(404, {"errorType": "NotFound", "errorMessage": self.path})
                return
            with state.cond:
                if state.first_next is None:
                    state.first_next = time.monotonic()
                    state.cond.notify_all()
                if state.next_index < len(state.invocations):
                    inv = state.invocations[state.next_index]
                    state.next_index += 1
                    inv.handed_out = time.monotonic()
                    state.cond.notify_all()
                else:
                    inv = None
            if inv is None:
                # No more events: like an idle Lambda sandbox, the request is
                # held (bounded) until we shut the function down.
                state.closing.wait(hold_s)
                self.close_connection = True
                return
            deadline_ms = int(time.time() * 1000 + state.timeout_s * 1000)
            self._reply(
                200,
                inv.payload,
                {
                    "Lambda-Runtime-Aws-Request-Id": inv.request_id,
                    "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
                    "Lambda-Runtime-Invoked-Function-Arn": state.function_arn,
                    "Lambda-Runtime-Trace-Id": _trace_id(),
                },
            )

        def do_POST(self) -> None:
            body = self._body()
            parts = self.path.removeprefix(API + "/").split("/")
            if parts == ["init", "error"]:
                with state.cond:
                    state.init_error = _decode(body) or {"errorType": self.headers.get("Lambda-Runtime-Function-Error-Type")}
                    state.cond.notify_all()
                self._reply(202, {"status": "OK"})
                return
            if len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error"):
                with state.cond:
                    inv = state.by_id.get(parts[1])
                    if inv is None or inv.handed_out is None:
                        self._reply(400, {"errorType": "InvalidRequestID", "errorMessage": "unknown request id"})
                        return
                    if inv.ok is not None:
                        self._reply(400, {"errorType": "InvalidStateTransition", "errorMessage": "already answered"})
                        return
                    inv.finished = time.monotonic()
                    inv.ok = parts[2] == "response"
                    if inv.ok:
                        inv.response = _decode(body)
                    else:
                        inv.error = _decode(body) or {
                            "errorType": self.headers.get("Lambda-Runtime-Function-Error-Type", "Unknown")
                        }
                    state.cond.notify_all()
                self._reply(202, {"status": "OK"})
                return
            self._reply(404, {"errorType": "NotFound", "errorMessage": self.path})

    return Handler


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A binary stopped mid keep-alive resets its connection: expected.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


def _payload(event: Any) -> bytes:
    if isinstance(event, bytes):
        return event
    if isinstance(event, str):
        return event.encode()
    return json.dumps(event).encode()


def _forward(stream: Any, on_log: Callable[[str], None]) -> None:
    for raw in iter(stream.readline, b""):
        on_log(raw.decode("utf-8", "replace").rstrip("\n"))
    stream.close()


def _peak_rss_kb(pid: int) -> int | None:
    """VmHWM from /proc (Linux): the most memory the process has held."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, a short grace, then SIGKILL; always reaped."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(TERM_GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(TERM_GRACE_S)


def run(
    binary: str,
    events: Iterable[Any],
    env: Mapping[str, str | None] | None = None,
    *,
    function_name: str | None = None,
    timeout: float = 30.0,
    on_log: Callable[[str], None] | None = None,
) -> Run:
    """Runs ``binary`` under a fresh Runtime API for ``events`` (dicts, JSON
    text or bytes), one cold start, events in order. ``timeout`` bounds each
    invocation, as Lambda's function timeout does; init gets the longer of it
    and Lambda's init limit (``INIT_TIMEOUT_S``: past 10 s, Lambda retries
    init within the first invocation, under the function timeout). ``on_log`` gets
    each line the binary writes (default: to our stderr). ``env`` is added to
    our own environment; a None value removes that variable."""
    on_log = on_log or (lambda line: print(line, file=sys.stderr, flush=True))
    extra = dict(env or {})
    name = function_name or os.path.basename(binary)
    region = extra.get("AWS_REGION") or os.environ.get("AWS_REGION") or "us-east-1"
    state = _RuntimeState(
        [_payload(e) for e in events],
        f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{name}",
        timeout,
    )
    hold_s = timeout * (len(state.invocations) + 2)
    server = _QuietServer(("127.0.0.1", 0), _handler_class(state, hold_s))
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    port = server.server_address[1]

    # What Lambda sets for a custom runtime (provided.al2023).
    child_env = dict(os.environ)
    child_env.update(
        {
            "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}",
            "AWS_LAMBDA_FUNCTION_NAME": name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": time.strftime("%Y/%m/%d/[$LATEST]") + secrets.token_hex(16),
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        }
    )
    # A value of None removes the variable (e.g. a stray AWS_PROFILE).
    for key, value in extra.items():
        if value is None:
            child_env.pop(key, None)
        else:
            child_env[key] = value

    init_limit = max(INIT_TIMEOUT_S, timeout)
    result = Run()
    proc: subprocess.Popen[bytes] | None = None
    logs: threading.Thread | None = None
    try:
        spawned = time.monotonic()
        try:
            proc = subprocess.Popen([binary], env=child_env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        except OSError as e:
            result.failure = f"cannot start {binary}: {e}"
            return result
        assert proc.stdout is not None
        logs = threading.Thread(target=_forward, args=(proc.stdout, on_log), daemon=True)
        logs.start()

        with state.cond:
            while True:
                now = time.monotonic()
                if state.init_error is not None:
                    result.init_error = state.init_error
                    result.failure = f"init error: {json.dumps(state.init_error)}"
                    break
                if state.all_answered():
                    break
                current = state.current()
                if state.first_next is None and now - spawned > init_limit:
                    result.failure = f"no GET /next within {init_limit:g} s of start (init timeout)"
                    break
                if current and current.handed_out is not None and now - current.handed_out > timeout:
                    current.finished, current.ok = now, False
                    current.error = {"errorType": "Sandbox.Timedout",
                                     "errorMessage": f"Task timed out after {timeout:.2f} seconds"}
                    result.failure = f"invocation {current.request_id} timed out"
                    break
                if proc.poll() is not None:
                    why = f"{binary} exited with status {proc.returncode}"
                    if current:
                        current.finished, current.ok = now, False
                        current.error = {"errorType": "Runtime.ExitError", "errorMessage": why}
                    result.failure = why + (" during an invocation" if current else " before answering every event")
                    break
                state.cond.wait(0.05)
            if state.first_next is not None:
                result.cold_start_ms = round((state.first_next - spawned) * 1000, 1)
            result.results = [i.result() for i in state.invocations if i.handed_out is not None]
    finally:
        if proc is not None:
            result.peak_rss_kb = _peak_rss_kb(proc.pid)
            _stop(proc)
            result.exit_code = proc.returncode
        state.closing.set()
        server.shutdown()
        server.server_close()
        if logs is not None:
            logs.join(TERM_GRACE_S)
    return result


def invoke(
    binary: str,
    events: Iterable[Any],
    env: Mapping[str, str | None] | None = None,
    **kwargs: Any,
) -> list[dict[str, Any]]:
    """``run()`` for callers that only want the results: raises
    ``LambdaRunError`` (with ``.run``) on init error, crash or timeout."""
    outcome = run(binary, events, env, **kwargs)
    if outcome.failure:
        raise LambdaRunError(outcome.failure, outcome)
    return outcome.results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a Lambda binary against a local Runtime API")
    parser.add_argument("--binary", required=True, help="the function's executable (a custom runtime's bootstrap)")
    parser.add_argument("--event", action="append", required=True, metavar="FILE",
                        help="a JSON event file; repeat for several invocations, handed out in order")
    parser.add_argument("--env", action="append", default=[], metavar="K=V", help="extra environment for the binary")
    parser.add_argument("--function-name", help="AWS_LAMBDA_FUNCTION_NAME (default: the binary's file name)")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="seconds allowed for init and for each invocation (default 30)")
    args = parser.parse_args(argv)

    env = {}
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            parser.error(f"--env wants K=V, got {item!r}")
        env[key] = value
    events = []
    for path in args.event:
        with open(path, "rb") as f:
            events.append(f.read())

    outcome = run(args.binary, events, env, function_name=args.function_name, timeout=args.timeout)
    for line in outcome.results:
        print(json.dumps(line))
    print(json.dumps(outcome.summary()), flush=True)
    return outcome.status


if __name__ == "__main__":
    sys.exit(main())
