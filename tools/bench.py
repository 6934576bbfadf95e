#!/usr/bin/env python3
"""changegate's benchmarks: `make bench` runs this after building the release
binaries (target/release) and the Lambda zips (target/lambda).

Measures, on this machine, medians over repeated runs:
  1. cold start (process start until the first GET /next of the Lambda Runtime
     API) and peak memory (VmHWM) after one invocation, for each function, beside
     the smallest Python 3.11 + boto3 handler making revoke's IAM call;
  2. one grant and one notify end to end against the local AWS, and the
     functions' own time excluding AWS calls (cargo bench, pure logic);
  3. one sweep over 1,000 and 5,000 IAM users holding 500 grants, 100 of them
     expired: wall time and IAM calls, beside what a per-user listing needs;
  4. the size of each deployment zip.
Prints the results and writes docs/benchmarks.md. Nothing here is asserted:
the machines are shared and noisy, so it reports and leaves judging to people.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

KEEP_MARKER = "<!-- measured outside make bench: kept when make bench rewrites this file -->"
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "localaws"))

import localaws  # noqa: E402
from faultproxy import FaultProxy  # noqa: E402

PROD = localaws.PROD_ACCOUNT
QUIET = {"RUST_LOG": "warn", "AWS_LAMBDA_LOG_LEVEL": "warn"}

PYTHON_HANDLER = '''#!{python}
# The smallest Python 3.11 + boto3 Lambda function making revoke's IAM call,
# with its own minimal Runtime API loop (lighter than awslambdaric).
import json, os, urllib.request
import boto3
iam = boto3.client("iam")
api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime/invocation/"
while True:
    with urllib.request.urlopen(api + "next") as r:
        request_id = r.headers["Lambda-Runtime-Aws-Request-Id"]
        json.loads(r.read())
    users = 0
    pages = iam.get_paginator("get_account_authorization_details")
    for page in pages.paginate(Filter=["User"], PaginationConfig={{"PageSize": 1000}}):
        users += len(page["UserDetailList"])
    body = json.dumps({{"users": users}}).encode()
    urllib.request.urlopen(urllib.request.Request(api + request_id + "/response", data=body, method="POST")).read()
'''


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def utc(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def grant_doc(account: str, start: datetime, end: datetime) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "ChangegateUtcUtc", "Effect": "Allow", "Action": "sts:AssumeRole",
        "Resource": f"arn:aws:iam::{account}:role/CM-Prd-role",
        "Condition": {"DateGreaterThan": {"aws:CurrentTime": utc(start)},
                      "DateLessThan": {"aws:CurrentTime": utc(end)}}}]}, separators=(",", ":"))


def quiet(_line: str) -> None:
    pass


class Bench:
    def __init__(self, runs: int, bin_dir: Path):
        self.runs = runs
        self.bin_dir = bin_dir
        self.results: dict[str, object] = {}

    # -- 1 and 2: cold start, memory, end to end ------------------------------
    def functions(self) -> None:
        with localaws.Server() as aws:
            iam = aws.client("iam")
            iam.create_user(UserName="approver")
            approver_arn = f"arn:aws:iam::{localaws.HOME_ACCOUNT}:user/approver"
            world = localaws.provision(aws.url, parameters={"RequestSources": "ChangeManager", "ApproverArns": approver_arn})
            ak = iam.create_access_key(UserName="approver")["AccessKey"]
            approver = aws.client("ssm", {"aws_access_key_id": ak["AccessKeyId"], "aws_secret_access_key": ak["SecretAccessKey"]})
            now = datetime.now(timezone.utc)
            # One approved request per grant run, each by its own eligible user.
            for i in range(self.runs):
                user = f"req{i:03d}"
                iam.create_user(UserName=user, Tags=[{"Key": localaws.ELIGIBILITY_TAG, "Value": PROD}])
                k = iam.create_access_key(UserName=user)["AccessKey"]
                mine = aws.client("ssm", {"aws_access_key_id": k["AccessKeyId"], "aws_secret_access_key": k["SecretAccessKey"]})
                cid = mine.start_change_request_execution(DocumentName=world.document_name("ChangeTemplate"), Runbooks=[{
                    "DocumentName": world.document_name("AccessRunbook"), "Parameters": {
                        "IAMUserName": [user], "AWSAccountId": [PROD],
                        "StartTime": [utc(now)], "EndTime": [utc(now + timedelta(hours=1))]}}])["AutomationExecutionId"]
                approver.send_automation_signal(AutomationExecutionId=cid, SignalType="Approve")
            approved_events = [e for e in world.pending().get("grant", []) if e["detail"]["ops-item-status"] == "Approved"]
            if len(approved_events) != self.runs:
                raise SystemExit(f"expected {self.runs} approvals, the rules caught {len(approved_events)}")
            granted = {"version": "0", "id": "x", "detail-type": "Access Granted", "source": "changegate",
                       "account": localaws.HOME_ACCOUNT, "time": utc(now), "region": localaws.REGION, "resources": [],
                       "detail": {"change-request-id": "6f1c2e4a-9b7d-4c3e-8a21-5d0f3b9e7a64", "user": "alice",
                                  "requester": "alice", "approvers": [localaws.APPROVER],
                                  "account": PROD, "role": "CM-Prd-role",
                                  "role-arn": f"arn:aws:iam::{PROD}:role/CM-Prd-role",
                                  "policy-name": "changegate-6f1c2e4a-9b7d-4c3e-8a21-5d0f3b9e7a64",
                                  "window": {"start": utc(now), "end": utc(now + timedelta(hours=1)),
                                             "start-offset": "+09:00", "end-offset": "+09:00"}}}
            scheduled = json.loads((ROOT / "events/scheduled.json").read_text())
            plans = {
                "grant": lambda i: [approved_events[i]],
                "notify": lambda i: [granted],
                "revoke": lambda i: [scheduled],
            }
            with tempfile.TemporaryDirectory() as tmp:
                py = Path(tmp) / "python-boto3-handler"
                py.write_text(PYTHON_HANDLER.format(python=sys.executable))
                py.chmod(0o755)
                binaries = {name: str(localaws.binary(name, directory=self.bin_dir)) for name in plans}
                binaries["python-boto3"] = str(py)
                plans["python-boto3"] = lambda i: [scheduled]
                for name, binary in binaries.items():
                    # The Python stand-in makes revoke's call, so it gets revoke's environment.
                    env = {**world.function_env("revoke" if name == "python-boto3" else name), **QUIET}
                    cold, rss, ms = [], [], []
                    for i in range(self.runs):
                        r = localaws.lambda_runtime.run(binary, plans[name](i), env, function_name=name, on_log=quiet)
                        if r.failure or r.errors:
                            raise SystemExit(f"{name} failed: {r.failure or r.results}")
                        cold.append(r.cold_start_ms)
                        rss.append(r.peak_rss_kb / 1024)
                        ms.append(r.results[0]["ms"])
                    self.results[f"fn:{name}"] = {"cold_start_ms": median(cold), "peak_mb": median(rss),
                                                  "invocation_ms": median(ms), "runs": self.runs}
                    print(f"  {name:13} cold start {median(cold):6.1f} ms   peak {median(rss):5.1f} MB   "
                          f"one invocation {median(ms):6.1f} ms   ({self.runs} runs)", flush=True)

    # -- 3: the sweep -----------------------------------------------------------
    def sweep(self, users: int, grants: int = 500, expired: int = 100) -> None:
        with localaws.Server() as aws:
            world = localaws.provision(aws.url, capture=False)
            iam = aws.client("iam")
            now = datetime.now(timezone.utc)
            t0 = time.monotonic()
            for i in range(users):
                iam.create_user(UserName=f"u{i:05d}")
            step = users // grants
            holders = [f"u{i * step:05d}" for i in range(grants)]

            def put_expired() -> None:
                for n, user in enumerate(holders[:expired]):
                    iam.put_user_policy(UserName=user, PolicyName=f"changegate-e{n:07d}-0000-0000-0000-000000000000",
                                        PolicyDocument=grant_doc(PROD, now - timedelta(hours=2), now - timedelta(minutes=1)))

            for n, user in enumerate(holders[expired:]):
                iam.put_user_policy(UserName=user, PolicyName=f"changegate-a{n:07d}-0000-0000-0000-000000000000",
                                    PolicyDocument=grant_doc(PROD, now, now + timedelta(hours=6)))
            setup_s = time.monotonic() - t0
            scheduled = json.loads((ROOT / "events/scheduled.json").read_text())
            walls, calls = [], []
            with FaultProxy(aws.url, rate=0.0) as proxy:
                env = {**world.function_env("revoke"), **QUIET, "AWS_ENDPOINT_URL": proxy.url}
                for _ in range(self.sweep_runs):
                    put_expired()
                    proxy.reset_stats()
                    r = localaws.run("revoke", [scheduled], env, directory=self.bin_dir, function_name="revoke",
                                     timeout=300, on_log=quiet)
                    if r.failure or r.errors:
                        raise SystemExit(f"sweep failed: {r.failure or r.results}")
                    report = r.results[0]["response"]
                    if len(report["revoked"]) != expired:
                        raise SystemExit(f"sweep revoked {len(report['revoked'])}, not {expired}")
                    walls.append(r.results[0]["ms"])
                    calls.append({k: v for k, v in proxy.stats()["actions"].items() if k.startswith("iam:")})
            iam_calls = calls[0]
            pages = iam_calls.get("iam:GetAccountAuthorizationDetails", 0)
            deletes = iam_calls.get("iam:DeleteUserPolicy", 0)
            # A per-user listing: ListUsers pages (1,000 a page), ListUserPolicies for every
            # user, GetUserPolicy for every changegate policy, then the same deletions.
            per_user = math.ceil(users / 1000) + users + grants + expired
            self.results[f"sweep:{users}"] = {
                "users": users, "grants": grants, "expired": expired, "wall_ms": median(walls),
                "iam_calls": sum(iam_calls.values()), "pages": pages, "deletes": deletes,
                "per_user_listing_calls": per_user, "runs": self.sweep_runs, "setup_s": round(setup_s, 1),
                "calls_by_action": iam_calls,
            }
            print(f"  sweep over {users:5} users, {grants} grants ({expired} expired): {median(walls):7.1f} ms, "
                  f"{sum(iam_calls.values())} IAM calls ({pages} pages + {deletes} deletions); "
                  f"a per-user listing needs {per_user}", flush=True)

    # -- 2b: the functions' own time, without AWS ------------------------------
    def pure(self) -> None:
        out = subprocess.run(["cargo", "bench", "-q", "-p", "changegate", "--bench", "pure"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("{"):
                row = json.loads(line)
                self.results[f"pure:{row['name']}"] = row
                print(f"  own time, {row['name']:26} {row['median_us']:8.1f} µs (median of {row['runs']})", flush=True)

    # -- 4: zips ------------------------------------------------------------------
    def zips(self) -> None:
        for name in ("grant", "notify", "revoke"):
            z = ROOT / "target/lambda" / name / "bootstrap.zip"
            if z.exists():
                self.results[f"zip:{name}"] = z.stat().st_size
                print(f"  {name:7} bootstrap.zip {z.stat().st_size / 1e6:5.2f} MB", flush=True)

    def write(self, path: Path) -> None:
        """Rewrites ``path`` with these results, keeping what follows KEEP_MARKER."""
        r = self.results
        rust = [r[f"fn:{n}"] for n in ("grant", "notify", "revoke")]
        py = r["fn:python-boto3"]
        rev = r["fn:revoke"]
        lines = [
            "# Benchmarks",
            "",
            f"Measured by `make bench` on {datetime.now(timezone.utc).strftime('%Y-%m-%d')}, on this project's",
            f"machine kind ({os.cpu_count()} cores, {platform.machine()}, Linux), against the local AWS on",
            "127.0.0.1. Medians over repeated runs. The machine is shared, so read the ratios",
            "rather than the absolute numbers; nothing here is asserted in tests.",
            "",
            "Reproduce: `make bench` (builds the release binaries and zips, then runs",
            "`.venv/bin/python tools/bench.py`, which rewrites this file).",
            "",
            "## Cold start and memory",
            "",
            "Cold start: from process start until the function first asks the Lambda Runtime",
            "API for an event (`GET /next`), including loading the AWS configuration and",
            "building the clients. Peak memory: the process's VmHWM after one invocation.",
            "The Python row is the smallest Python 3.11 + boto3 function making revoke's IAM",
            "call (`tools/bench.py`, with a minimal Runtime API loop of its own).",
            "",
            "| function | cold start (ms) | peak memory (MB) | one invocation (ms) |",
            "|---|---:|---:|---:|",
        ]
        for name in ("grant", "notify", "revoke", "python-boto3"):
            f = r[f"fn:{name}"]
            lines.append(f"| {name} | {f['cold_start_ms']:.1f} | {f['peak_mb']:.1f} | {f['invocation_ms']:.1f} |")
        lines += [
            "",
            f"Python + boto3 against revoke: cold start {py['cold_start_ms'] / rev['cold_start_ms']:.0f}x longer, "
            f"peak memory {py['peak_mb'] / rev['peak_mb']:.1f}x larger.",
            f"Targets: cold start under 20 ms (worst here {max(f['cold_start_ms'] for f in rust):.1f} ms), "
            f"peak memory under 32 MB (worst here {max(f['peak_mb'] for f in rust):.1f} MB).",
            "",
            "## One grant and one notify",
            "",
            "End to end: one invocation through the Runtime API against the local AWS (the",
            "\"one invocation\" column above: grant reads the change request, the user and its",
            "policies, attaches the policy, records the outcome and announces; notify renders",
            "and publishes). The functions' own time, without any AWS call, is measured by",
            "`cargo bench -p changegate --bench pure`:",
            "",
            "| pure work | median (µs) |",
            "|---|---:|",
        ]
        for key, row in r.items():
            if key.startswith("pure:"):
                lines.append(f"| {row['name']} | {row['median_us']:.1f} |")
        lines += [
            "",
            "## The sweep",
            "",
            "One revoke invocation over all IAM users, 500 of whom hold a grant, 100 of them",
            "expired. IAM calls are counted by `faultproxy.py` (at a 0% fault rate) between",
            "revoke and the local AWS. A per-user listing would need `ListUsers` pages,",
            "`ListUserPolicies` for every user, and `GetUserPolicy` for every grant, plus the",
            "same deletions.",
            "",
            "| users | wall time (ms) | IAM calls | of which pages read | deletions | per-user listing |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for key, s in r.items():
            if key.startswith("sweep:"):
                lines.append(f"| {s['users']} | {s['wall_ms']:.0f} | {s['iam_calls']} | {s['pages']} | {s['deletes']} "
                             f"| {s['per_user_listing_calls']} |")
        lines += [
            "",
            "Target: no more IAM calls than the pages read plus the policies deleted.",
            "",
            "## Deployment zips",
            "",
            "`make build` (cargo-lambda, `--release --arm64`, stripped, `opt-level = \"z\"`, LTO):",
            "",
            "| function | bootstrap.zip (MB) |",
            "|---|---:|",
        ]
        for name in ("grant", "notify", "revoke"):
            if f"zip:{name}" in r:
                lines.append(f"| {name} | {r[f'zip:{name}'] / 1e6:.2f} |")
        lines += ["", "Target: each under 6 MB.", ""]
        # Sections measured by other means (make test, the session cut) follow
        # KEEP_MARKER and survive a rewrite.
        previous = path.read_text() if path.exists() else ""
        if KEEP_MARKER in previous:
            lines.append(previous[previous.index(KEEP_MARKER):].rstrip("\n") + "\n")
        path.write_text("\n".join(lines))
        (path.parent / "benchmarks.json").write_text(json.dumps(r, indent=2, default=str) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15, help="runs per function (default 15)")
    ap.add_argument("--sweep-runs", type=int, default=3, help="runs per sweep size (default 3)")
    ap.add_argument("--users", type=int, nargs="*", default=[1000, 5000], help="sweep sizes (default 1000 5000)")
    ap.add_argument("--bin-dir", type=Path, default=None,
                    help="where the release binaries are (default: cargo's target dir, release)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs/benchmarks.md")
    args = ap.parse_args()
    bench = Bench(args.runs, args.bin_dir or localaws.bin_dir("release"))
    bench.sweep_runs = args.sweep_runs
    print("functions (cold start, memory, one invocation):", flush=True)
    bench.functions()
    print("own time without AWS:", flush=True)
    bench.pure()
    print("sweeps:", flush=True)
    for n in args.users:
        bench.sweep(n)
    print("zips:", flush=True)
    bench.zips()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    bench.write(args.out)
    print(f"wrote {args.out.relative_to(ROOT)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
