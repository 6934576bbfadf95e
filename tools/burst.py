"""The burst for ``make bench`` (tools/bench.py calls ``burst()`` and ``sweep()``).

N people file the request runbook at once against the local AWS
(tests/localaws/server.py, with room for all of them:
``--max-concurrent-automations``), bob approves them all at once, and every
grant trigger of every request is delivered the way AWS delivers them: the
runbook's own call (``{"changegate-request": {"execution-id": ...}}``) and the
events the template's grant rules catch (the approval step's ``Success``, the
execution's ``InProgress``), each twice: first a request's triggers together
(one after another on a queue that K grant processes pull from, so they run
concurrently), then all of them again, shuffled. A fraction of the functions'
AWS calls fail (throttles, 500, 503 through faultproxy.py; never applied), and
a failed invocation is retried as Lambda retries an asynchronous invocation:
twice more, with the same request id (Lambda's retries keep the request id,
and grant uses it as its claim's holder), after a pause (Lambda waits 1 and
then 2 minutes; here 1 and 2 seconds).

What it counts comes from the wire and from the local AWS afterwards, never
from the functions' own answers: ``PutUserPolicy`` calls that reached IAM (by
user and policy name), ``Access Granted`` events that reached changegate's
bus (by change request), each user's policies, the decision records. Nothing
is asserted: bench.py reports; a count other than 1 is a finding.
"""

from __future__ import annotations

import json
import queue
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "localaws"))

import lambda_runtime  # noqa: E402
import localaws  # noqa: E402
from faultproxy import FaultProxy  # noqa: E402

PROD = localaws.PROD_ACCOUNT
API = "/2018-06-01/runtime"
# template.yaml: grant's Timeout and revoke's.
GRANT_TIMEOUT_S = 160.0
REVOKE_TIMEOUT_S = 120.0
# Lambda retries a failed asynchronous invocation twice, 1 and 2 minutes
# later ("How Lambda handles errors and retries with asynchronous
# invocation"); scaled down to seconds here.
RETRY_DELAYS_S = (1.0, 2.0)
FAULT_KINDS = ["throttle", "500", "503"]
QUIET = {"RUST_LOG": "info", "AWS_LAMBDA_LOG_LEVEL": "info"}


def utc(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


# -- a Runtime API per sandbox, fed from one queue ------------------------------


@dataclass
class Attempt:
    request_id: str  # Lambda's request id: the same for every attempt of one invocation
    payload: bytes
    key: tuple[str, str, int]  # (execution id, trigger, delivery) for the report
    attempt: int = 1
    worker: int | None = None
    started: float | None = None
    finished: float | None = None
    ok: bool | None = None
    response: Any = None
    error: Any = None


class Dispatcher:
    """Lambda's asynchronous queue for one function: attempts go out to
    whichever sandbox asks next; a failed one comes back after its pause,
    with the same request id, at most twice."""

    def __init__(self) -> None:
        self.q: queue.Queue[Attempt] = queue.Queue()
        self.lock = threading.Condition()
        self.outstanding = 0
        self.done: list[Attempt] = []
        self.stopping = threading.Event()
        self.timers: list[threading.Timer] = []

    def put(self, attempt: Attempt) -> None:
        with self.lock:
            self.outstanding += 1
        self.q.put(attempt)

    def finish(self, attempt: Attempt) -> None:
        retry = None
        if not attempt.ok and attempt.attempt <= len(RETRY_DELAYS_S):
            retry = Attempt(attempt.request_id, attempt.payload, attempt.key, attempt.attempt + 1)
        with self.lock:
            self.done.append(attempt)
            if retry is not None:
                t = threading.Timer(RETRY_DELAYS_S[attempt.attempt - 1], self.q.put, (retry,))
                t.daemon = True
                self.timers.append(t)
                t.start()
            else:
                self.outstanding -= 1
            self.lock.notify_all()

    def wait(self, timeout: float) -> bool:
        end = time.monotonic() + timeout
        with self.lock:
            while self.outstanding:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self.lock.wait(min(left, 0.5))
        return True

    def stop(self) -> None:
        self.stopping.set()
        for t in self.timers:
            t.cancel()


class Sandbox:
    """One execution environment: a Runtime API on its own port and the
    function's process behind it, started again if it dies (as Lambda
    starts a new environment)."""

    def __init__(self, index: int, binary: str, env: dict[str, str | None], dispatcher: Dispatcher,
                 log_path: Path, function_name: str, timeout_s: float):
        self.index, self.binary, self.dispatcher = index, binary, dispatcher
        self.env, self.timeout_s = env, timeout_s
        self.current: Attempt | None = None
        self.lock = threading.Lock()
        self.starts = 0
        self.arn = f"arn:aws:lambda:{localaws.REGION}:{localaws.HOME_ACCOUNT}:function:{function_name}"
        self.function_name = function_name
        # A stopped function resets its keep-alive connection: expected, not printed.
        self.server = lambda_runtime._QuietServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        self.log = open(log_path, "wb")  # noqa: SIM115  (closed in stop())
        self.proc: subprocess.Popen[bytes] | None = None
        self.watch = threading.Thread(target=self._watch, daemon=True)
        self._spawn()
        self.watch.start()

    def _spawn(self) -> None:
        import os

        child = dict(os.environ)
        child.update({
            "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{self.server.server_address[1]}",
            "AWS_LAMBDA_FUNCTION_NAME": self.function_name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{self.function_name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"sandbox-{self.index}-{self.starts}",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        })
        for k, v in self.env.items():
            if v is None:
                child.pop(k, None)
            else:
                child[k] = v
        self.starts += 1
        self.proc = subprocess.Popen([self.binary], env=child, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT)

    def _fail_current(self, why: str, kind: str) -> None:
        with self.lock:
            cur, self.current = self.current, None
        if cur is not None and cur.ok is None:
            cur.finished, cur.ok = time.monotonic(), False
            cur.error = {"errorType": kind, "errorMessage": why}
            self.dispatcher.finish(cur)

    def _watch(self) -> None:
        while not self.dispatcher.stopping.is_set():
            time.sleep(0.1)
            cur = self.current
            if cur is not None and cur.started is not None and time.monotonic() - cur.started > self.timeout_s:
                # Lambda stops a timed-out environment; the next invocation gets a new one.
                self._fail_current(f"Task timed out after {self.timeout_s:.2f} seconds", "Sandbox.Timedout")
                lambda_runtime._stop(self.proc)
            if self.proc is not None and self.proc.poll() is not None and not self.dispatcher.stopping.is_set():
                self._fail_current(f"exited with status {self.proc.returncode}", "Runtime.ExitError")
                self._spawn()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        sandbox = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: Any) -> None:
                pass

            def _reply(self, code: int, body: bytes = b"{}", headers: dict[str, str] | None = None) -> None:
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path != f"{API}/invocation/next":
                    self._reply(404)
                    return
                d = sandbox.dispatcher
                while True:
                    if d.stopping.is_set():
                        self.close_connection = True
                        return
                    try:
                        a = d.q.get(timeout=0.2)
                        break
                    except queue.Empty:
                        continue
                a.worker, a.started = sandbox.index, time.monotonic()
                with sandbox.lock:
                    sandbox.current = a
                deadline_ms = int(time.time() * 1000 + sandbox.timeout_s * 1000)
                self._reply(200, a.payload, {
                    "Lambda-Runtime-Aws-Request-Id": a.request_id,
                    "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
                    "Lambda-Runtime-Invoked-Function-Arn": sandbox.arn,
                    "Lambda-Runtime-Trace-Id": lambda_runtime._trace_id(),
                })

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = self.path.removeprefix(API + "/").split("/")
                if len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error"):
                    with sandbox.lock:
                        cur = sandbox.current
                        if cur is None or cur.request_id != parts[1]:
                            self._reply(400, b'{"errorType":"InvalidRequestID"}')
                            return
                        sandbox.current = None
                    cur.finished = time.monotonic()
                    cur.ok = parts[2] == "response"
                    decoded = lambda_runtime._decode(body)
                    if cur.ok:
                        cur.response = decoded
                    else:
                        cur.error = decoded
                    self._reply(202, b'{"status":"OK"}')
                    sandbox.dispatcher.finish(cur)
                    return
                if parts == ["init", "error"]:
                    self._reply(202, b'{"status":"OK"}')
                    return
                self._reply(404)

        return Handler

    def stop(self) -> None:
        if self.proc is not None:
            lambda_runtime._stop(self.proc)
        self.server.shutdown()
        self.server.server_close()
        self.log.close()


# -- counting what reached AWS ---------------------------------------------------


class Applied:
    """Wraps a FaultProxy's decision: counts, per action, the calls that
    went through to the local AWS (a faulted call is not applied), and which
    user and policy each PutUserPolicy wrote."""

    def __init__(self, proxy: FaultProxy):
        self.lock = threading.Lock()
        self.actions: Counter[str] = Counter()
        self.faulted: Counter[str] = Counter()
        self.policy_writes: Counter[tuple[str, str]] = Counter()
        decide = proxy.state.decide

        def counted(name: str, body: bytes = b"") -> str | None:
            kind = decide(name, body)
            with self.lock:
                if kind is None:
                    self.actions[name] += 1
                    if name == "iam:PutUserPolicy":
                        q = parse_qs(body.decode("utf-8", "replace"))
                        self.policy_writes[(q.get("UserName", [""])[0], q.get("PolicyName", [""])[0])] += 1
                else:
                    self.faulted[name] += 1
            return kind

        proxy.state.decide = counted  # type: ignore[method-assign]

    def reset(self) -> None:
        with self.lock:
            self.actions.clear()
            self.faulted.clear()
            self.policy_writes.clear()


def drain_all(world: localaws.World) -> dict[str, list[dict[str, Any]]]:
    """Every event each capture rule's queue holds, by rule name, without
    ``World.pending()``'s cap of 500 a queue; queues drained side by side."""
    sqs = world.client("sqs")
    rules = [r for r in world.rules if r.queue_url]
    with ThreadPoolExecutor(max_workers=max(1, len(rules))) as pool:
        drained = list(pool.map(lambda r: localaws.drain(sqs, r.queue_url, limit=10**7), rules))
    return {r.name: [localaws.as_lambda_event(b) for b in bodies] for r, bodies in zip(rules, drained, strict=True)}


# -- the burst -------------------------------------------------------------------


@dataclass
class BurstResult:
    seed: int
    size: int
    workers: int
    fault_rate: float
    numbers: dict[str, Any] = field(default_factory=dict)
    findings: list[str] = field(default_factory=list)


def _trigger_name(event: dict[str, Any]) -> tuple[str, str] | None:
    """(execution id, which trigger) of a grant trigger, None for others."""
    if "changegate-request" in event:
        return event["changegate-request"]["execution-id"], "runbook call"
    d = event.get("detail") or {}
    if event.get("source") == "aws.ssm" and "ExecutionId" in d:
        what = f"step {d['StepName']} {d.get('Status')}" if "StepName" in d else f"execution {d.get('Status')}"
        return d["ExecutionId"], what
    if "ops-item-id" in d or "change-request-id" in d:
        return str(d.get("change-request-id") or d.get("ops-item-id")), event.get("detail-type", "?")
    return None


def burst(bin_dir: Path, *, size: int = 200, workers: int = 4, fault_rate: float = 0.2, seed: int = 1,
          log_dir: Path, say: Callable[[str], None] = print, then: Callable[..., None] | None = None) -> BurstResult:
    """One burst; ``then(aws, world, proxy, applied, env)``, if given, runs on
    the same local AWS afterwards (the sweep with the grants active)."""
    rng = random.Random(seed)
    res = BurstResult(seed, size, workers, fault_rate)
    log_dir.mkdir(parents=True, exist_ok=True)
    n = res.numbers
    t_all = time.monotonic()
    quota = str(max(100, 2 * size))
    with localaws.Server(log_dir / "server.log", args=["--max-concurrent-automations", quota]) as aws:
        iam = aws.client("iam")
        iam.create_user(UserName="bob")
        bob_key = iam.create_access_key(UserName="bob")["AccessKey"]
        bob = aws.client("ssm", {"aws_access_key_id": bob_key["AccessKeyId"],
                                 "aws_secret_access_key": bob_key["SecretAccessKey"]})
        world = localaws.provision(aws.url, parameters={**localaws.LOCAL_PARAMETERS, "RequestSources": "Automation"})
        runbook = world.document("RequestRunbook")
        if not runbook.created:
            raise SystemExit(f"burst: the request runbook could not be created locally: {runbook.skipped}")

        users = [f"u{i:03d}" for i in range(size)]

        def person(user: str) -> Any:
            iam.create_user(UserName=user, Tags=[{"Key": localaws.ELIGIBILITY_TAG, "Value": PROD}])
            k = iam.create_access_key(UserName=user)["AccessKey"]
            return aws.client("ssm", {"aws_access_key_id": k["AccessKeyId"],
                                      "aws_secret_access_key": k["SecretAccessKey"]})

        with ThreadPoolExecutor(max_workers=8) as pool:
            clients = list(pool.map(person, users))
        now = datetime.now(timezone.utc).replace(microsecond=0)

        def file(i: int) -> str:
            params = {"IAMUserName": [users[i]], "AWSAccountId": [PROD], "StartTime": [utc(now)],
                      "EndTime": [utc(now + timedelta(hours=2))], "Reason": [f"burst {seed}/{i}"]}
            return clients[i].start_automation_execution(DocumentName=runbook.name, Parameters=params)[
                "AutomationExecutionId"]

        t0 = time.monotonic()
        with ThreadPoolExecutor(max_workers=8) as pool:
            executions = list(pool.map(file, range(size)))
        n["starts_s"] = round(time.monotonic() - t0, 1)
        by_exec = dict(zip(executions, users, strict=True))
        ssm = aws.client("ssm")

        def waiting(e: str) -> bool:
            steps = ssm.get_automation_execution(AutomationExecutionId=e)["AutomationExecution"].get(
                "StepExecutions", [])
            return any(s.get("StepName") == "Approve" and s.get("StepStatus") in ("Waiting", "InProgress") for s in steps)

        deadline = time.monotonic() + 60
        left = list(executions)
        while left and time.monotonic() < deadline:
            with ThreadPoolExecutor(max_workers=8) as pool:
                left = [e for e, w in zip(left, pool.map(waiting, left), strict=True) if not w]
            if left:
                time.sleep(0.5)
        n["reached_approval"] = size - len(left)
        before = drain_all(world)  # the events of the filing: grant saw these before approval
        n["events_before_approval"] = sum(len(v) for v in before.values())
        aws.lambda_invocations(drain=True)

        def approve(e: str) -> bool:
            try:
                bob.send_automation_signal(AutomationExecutionId=e, SignalType="Approve")
                return True
            except Exception:  # noqa: BLE001  (counted: an approval the local AWS refused)
                return False

        t0 = time.monotonic()
        with ThreadPoolExecutor(max_workers=8) as pool:
            approved_ok = list(pool.map(approve, executions))
        approved = [e for e, ok in zip(executions, approved_ok, strict=True) if ok]
        n["approved"] = len(approved)
        n["approvals_s"] = round(time.monotonic() - t0, 1)

        # The runbooks call grant once their approval step is done (server timers).
        calls: list[dict[str, Any]] = []
        deadline = time.monotonic() + 60
        while len(calls) < len(approved) and time.monotonic() < deadline:
            calls += aws.lambda_invocations(drain=True)
            if len(calls) < len(approved):
                time.sleep(0.2)
        triggers: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
        for c in calls:
            if world.function_named(c.get("FunctionName") or "") == "grant":
                ev = json.loads(c.get("Payload") or "{}")
                named = _trigger_name(ev)
                if named:
                    triggers[named[0]].append((named[1], ev))
        t0 = time.monotonic()
        caught = drain_all(world)
        n["collect_s"] = round(time.monotonic() - t0, 1)
        grant_rules = {r.name for r in world.rules if r.function == "grant"}
        for rule, events in caught.items():
            if rule not in grant_rules:
                continue
            for ev in events:
                named = _trigger_name(ev)
                if named:
                    triggers[named[0]].append((named[1], ev))
        kinds = Counter(k for ts in triggers.values() for k, _ in ts)
        n["triggers"] = sum(kinds.values())
        n["triggers_by_kind"] = dict(kinds)

        # Deliveries: each request's triggers together, then all of them again, shuffled.
        order = list(triggers)
        rng.shuffle(order)
        together = [(e, k, ev, 1) for e in order for k, ev in triggers[e]]
        later = [(e, k, ev, 2) for e in order for k, ev in triggers[e]]
        rng.shuffle(later)
        deliveries = together + later
        n["invocations"] = len(deliveries)

        with FaultProxy(aws.url, rate=fault_rate, kinds=FAULT_KINDS, seed=seed) as proxy:
            applied = Applied(proxy)
            env = {**world.function_env("grant"), **QUIET, "AWS_ENDPOINT_URL": proxy.url}
            dispatcher = Dispatcher()
            binary = str(localaws.binary("grant", directory=bin_dir))
            sandboxes = [Sandbox(i, binary, env, dispatcher, log_dir / f"grant-{i}.log",
                                 f"{localaws.STACK_NAME}-grant", GRANT_TIMEOUT_S) for i in range(workers)]
            t0 = time.monotonic()
            try:
                for e, k, ev, d in deliveries:
                    dispatcher.put(Attempt(str(uuid.uuid4()), json.dumps(ev).encode(), (e, k, d)))
                drained = dispatcher.wait(600)
                n["drain_s"] = round(time.monotonic() - t0, 1)
            finally:
                dispatcher.stop()
                for s in sandboxes:
                    s.stop()
            if not drained:
                res.findings.append("the deliveries did not drain within 600 s")
            attempts = dispatcher.done
            n["sandbox_starts"] = sum(s.starts for s in sandboxes)
            n["aws_calls"] = sum(applied.actions.values()) + sum(applied.faulted.values())
            n["aws_calls_faulted"] = sum(applied.faulted.values())
            n["calls_by_action"] = dict(sorted(applied.actions.items()))
            n["faulted_by_action"] = dict(sorted(applied.faulted.items()))
            policy_writes = dict(applied.policy_writes)
            put_user_policy = applied.actions.get("iam:PutUserPolicy", 0)

            # Outcomes per invocation (the last attempt of each request id).
            last: dict[str, Attempt] = {}
            for a in attempts:
                if a.request_id not in last or a.attempt > last[a.request_id].attempt:
                    last[a.request_id] = a
            first_failed = [a for a in attempts if a.attempt == 1 and not a.ok]
            n["failed_first_attempts"] = len(first_failed)
            n["failed_by_attempt"] = dict(Counter(a.attempt for a in attempts if not a.ok))
            still_failing = [a for a in last.values() if not a.ok]
            n["still_failing_after_retries"] = len(still_failing)
            outcomes = Counter(str((a.response or {}).get("outcome")) if a.ok else "error" for a in last.values())
            n["outcomes"] = dict(outcomes)
            ms = [(a.finished - a.started) * 1000 for a in attempts if a.finished and a.started]
            n["latency_ms_median"] = round(statistics.median(ms), 1) if ms else None
            n["latency_ms_p95"] = round(statistics.quantiles(ms, n=20)[-1], 1) if len(ms) >= 20 else None

            # What AWS holds afterwards.
            def held(user: str) -> list[str]:
                return [p for p in iam.list_user_policies(UserName=user)["PolicyNames"] if p.startswith("changegate-")]

            with ThreadPoolExecutor(max_workers=8) as pool:
                policies = dict(zip(users, pool.map(held, users), strict=True))
            events_after = drain_all(world)
            granted_events: Counter[str] = Counter()
            seen_ids: set[str] = set()
            for evs in events_after.values():
                for ev in evs:
                    if ev.get("detail-type") == "Access Granted" and ev.get("id") not in seen_ids:
                        seen_ids.add(ev.get("id", ""))
                        granted_events[str(ev["detail"].get("change-request-id"))] += 1
            failing_execs = {a.key[0] for a in still_failing}
            granted = [e for e in approved if f"changegate-{e}" in policies[by_exec[e]]]
            lost = [e for e in approved if e not in granted and e not in failing_execs]
            dup_users = [u for u, ps in policies.items() if len(ps) > 1]
            writes_per = Counter(policy_writes.get((by_exec[e], f"changegate-{e}"), 0) for e in approved)
            ann_per = Counter(granted_events.get(e, 0) for e in approved)
            n.update({
                "granted": len(granted), "lost": len(lost), "duplicate_policies": len(dup_users),
                "put_user_policy": put_user_policy, "access_granted_events": sum(granted_events.values()),
                "policy_writes_per_grant": dict(sorted(writes_per.items())),
                "announcements_per_grant": dict(sorted(ann_per.items())),
                "schedules_written": sum(v for k, v in applied.actions.items() if k.startswith("scheduler:POST")),
            })
            # Evidence for anything other than exactly one write and one announcement.
            odd = [e for e in approved if policy_writes.get((by_exec[e], f"changegate-{e}"), 0) != 1
                   or granted_events.get(e, 0) != 1]
            for e in odd[:5]:
                mine = sorted((a for a in attempts if a.key[0] == e), key=lambda a: a.started or 0)
                trail = "; ".join(f"{a.key[1]} #{a.key[2]} req {a.request_id} try {a.attempt} w{a.worker} → "
                                  f"{(a.response or {}).get('outcome') if a.ok else 'error'}" for a in mine)
                res.findings.append(
                    f"seed {seed}, request {e} (user {by_exec[e]}): "
                    f"{policy_writes.get((by_exec[e], f'changegate-{e}'), 0)} PutUserPolicy, "
                    f"{granted_events.get(e, 0)} Access Granted; invocations: {trail}")
            if len(odd) > 5:
                res.findings.append(f"seed {seed}: {len(odd) - 5} more requests like these")
            for e in lost[:5]:
                res.findings.append(f"seed {seed}: request {e} (user {by_exec[e]}) approved, no policy, no failure left")
            if then is not None:
                then(aws, world, proxy, applied, env)
    n["total_s"] = round(time.monotonic() - t_all, 1)
    say(f"  burst seed {seed}: {n['approved']} approved, {n['invocations']} invocations on {workers} processes, "
        f"{n['granted']} granted, lost {n['lost']}, PutUserPolicy {n['put_user_policy']}, "
        f"Access Granted {n['access_granted_events']}, failed first attempts {n['failed_first_attempts']}, "
        f"drain {n['drain_s']} s (whole run {n['total_s']} s)")
    return res


def sweep(aws: Any, world: localaws.World, proxy: FaultProxy, applied: Applied, env: dict[str, str | None],
          bin_dir: Path, rate: float, log_dir: Path) -> dict[str, Any]:
    """One sweep (the one-minute scheduled event) with the burst's grants
    active, at ``rate`` faults; its calls, outcome and what it removed."""
    iam = aws.client("iam")

    def count_policies() -> int:
        total = 0
        for page in iam.get_paginator("list_users").paginate():
            for u in page["Users"]:
                total += sum(1 for p in iam.list_user_policies(UserName=u["UserName"])["PolicyNames"]
                             if p.startswith("changegate-"))
        return total

    before = count_policies()
    proxy.configure(rate=rate, kinds=FAULT_KINDS)
    applied.reset()
    revoke_env = {**world.function_env("revoke"), **QUIET, "AWS_ENDPOINT_URL": proxy.url}
    event = world.scheduled_event(utc(datetime.now(timezone.utc)))
    logs: list[str] = []
    r = localaws.run("revoke", [event], revoke_env, directory=bin_dir, timeout=REVOKE_TIMEOUT_S, on_log=logs.append)
    (log_dir / f"sweep-{rate:g}.log").write_text("\n".join(logs) + "\n")
    out = r.results[0] if r.results else {}
    after = count_policies()
    metrics = Counter()
    for line in logs:
        if '"_aws"' in line:
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            for m in doc.get("_aws", {}).get("CloudWatchMetrics", [{}])[0].get("Metrics", []):
                metrics[m["Name"]] += doc.get(m["Name"], 0) or 0
    return {
        "fault_rate": rate, "ok": bool(out.get("ok")), "ms": out.get("ms"),
        "response": out.get("response"), "error": out.get("error"), "failure": r.failure,
        "calls": sum(applied.actions.values()) + sum(applied.faulted.values()),
        "faulted": sum(applied.faulted.values()),
        "calls_by_action": dict(sorted((applied.actions + applied.faulted).items())),
        "metrics": dict(metrics), "policies_before": before, "policies_after": after,
    }


def run_all(bin_dir: Path, *, size: int, workers: int, fault_rate: float, seeds: list[int],
            say: Callable[[str], None] = print, log_root: Path | None = None) -> dict[str, Any]:
    """The burst over ``seeds`` (the sweep after the first), for bench.py."""
    root = log_root or Path(tempfile.mkdtemp(prefix="changegate-burst-"))
    runs: list[BurstResult] = []
    sweeps: list[dict[str, Any]] = []

    def then(aws: Any, world: localaws.World, proxy: FaultProxy, applied: Applied, env: dict[str, str | None]) -> None:
        for rate in (0.0, fault_rate):
            s = sweep(aws, world, proxy, applied, env, bin_dir, rate, root / f"seed-{seeds[0]}")
            sweeps.append(s)
            say(f"  sweep with {s['policies_before']} grants active at {rate:.0%} faults: "
                f"{'ok' if s['ok'] else 'FAILED'} in {s['ms']} ms, {s['calls']} calls ({s['faulted']} faulted), "
                f"{s['policies_before']} → {s['policies_after']} policies, "
                f"outcome {json.dumps(s['response'] if s['ok'] else s['error'])[:300]}")

    for i, seed in enumerate(seeds):
        runs.append(burst(bin_dir, size=size, workers=workers, fault_rate=fault_rate, seed=seed,
                          log_dir=root / f"seed-{seed}", say=say, then=then if i == 0 else None))
    return {"runs": [{"seed": r.seed, **r.numbers, "findings": r.findings} for r in runs], "sweeps": sweeps,
            "size": size, "workers": workers, "fault_rate": fault_rate, "logs": str(root)}
