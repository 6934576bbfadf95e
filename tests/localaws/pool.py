#!/usr/bin/env python3
"""A pre-forking launcher for server.py: moto's imports once, a server per ask.

    python tests/localaws/pool.py --socket PATH [--parent-pid PID]

Starting ``server.py`` costs seconds of CPU, nearly all of it importing moto,
boto3 and the extension; the test suites start one per test. The pool pays
that once: it imports ``server.py``'s machinery, warms the services the tests
use (then forgets them, as ``/moto-api/reset`` does), listens on a unix
socket at PATH and prints ``READY PATH``. Each connection gets a forked child
that builds a fresh app and a fresh server (``server.serve``) on a free
loopback port and answers ``READY http://127.0.0.1:<port>``; that server is
the client's alone (its own process, so its own moto backends), and it stops
when the client closes the connection or sends ``STOP``. The client sees EOF
once the server has stopped.

A request is one line of JSON, ``{"args": [...]}``: server.py's options
(``--verbose``, ``--max-inline-steps N``, ...; host and port are the pool's
choice). A file descriptor sent with it (SCM_RIGHTS) becomes the server's
stderr; otherwise it writes to the pool's. A refused request is answered
``ERROR <reason>``.

No orphans: a server dies with the pool (``PR_SET_PDEATHSIG``) and with its
client (the connection closes when the client exits); the pool stops its
servers and exits on SIGTERM/SIGINT, or when its parent (make, pytest, a
shell) goes away (``--parent-pid``, default the pool's parent at start).

Clients: ``request()`` below (localaws.py's ``Server``), and the Rust harness
(``tests/src/lib.rs``, ``LocalAws::start``): both use the pool when
``$CHANGEGATE_LOCALAWS_POOL`` names its socket, and start server.py otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

ENV = "CHANGEGATE_LOCALAWS_POOL"
HERE = Path(__file__).resolve().parent
PR_SET_PDEATHSIG = 1
MAX_REQUEST = 65536

# The services changegate and its tests call, warmed in the pool (imports,
# botocore's models, moto's response classes) so the first call in a server
# is as cheap as the second. A service missing here still works, at the cost
# of its imports in every server that calls it.
WARM: dict[str, dict[str, Any]] = {
    "iam": {"method": "POST", "data": "Action=ListUsers&Version=2010-05-08"},
    "sts": {"method": "POST", "data": "Action=GetCallerIdentity&Version=2011-06-15"},
    "ssm": {"target": "AmazonSSM.DescribeParameters"},
    "sns": {"method": "POST", "data": "Action=ListTopics&Version=2010-03-31"},
    "sqs": {"target": "AmazonSQS.ListQueues"},
    "events": {"target": "AWSEvents.ListRules"},
    "dynamodb": {"target": "DynamoDB_20120810.ListTables"},
    "scheduler": {"method": "GET", "path": "/schedules"},
}


# ---------------------------------------------------------------------------
# Client
# ---------------------------------------------------------------------------


def request(path: str, args: list[str] | None = None, stderr: Any = None, timeout: float = 60.0) -> tuple[socket.socket, str]:
    """Asks the pool at ``path`` for a server with server.py's ``args``;
    ``stderr`` (a file or fd) becomes its stderr. Returns the connection
    (close it, or ``release()`` it, to stop the server) and the server's URL.
    Raises ``OSError`` when no pool answers there."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.settimeout(timeout)
        conn.connect(path)
        line = (json.dumps({"args": list(args or [])}) + "\n").encode()
        if stderr is None:
            conn.sendall(line)
        else:
            fd = stderr if isinstance(stderr, int) else stderr.fileno()
            socket.send_fds(conn, [line], [fd])
        answer = _read_line(conn)
        if not answer.startswith("READY "):
            raise OSError(f"localaws pool at {path} answered {answer!r}")
        conn.settimeout(None)
        return conn, answer.removeprefix("READY ")
    except BaseException:
        conn.close()
        raise


def release(conn: socket.socket, timeout: float = 10.0) -> None:
    """Stops the server behind ``conn`` and waits until it has (EOF)."""
    with contextlib.suppress(OSError):
        conn.sendall(b"STOP\n")
        conn.settimeout(timeout)
        while conn.recv(4096):
            pass
    conn.close()


def _read_line(conn: socket.socket) -> str:
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace").strip()


# ---------------------------------------------------------------------------
# Pool
# ---------------------------------------------------------------------------


def _die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Linux: ``sig`` when the process that forked us exits."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)


def warm(server: Any) -> None:
    """Imports and loads everything the first calls to ``WARM``'s services
    need, through a throwaway app; then forgets every backend it made, as
    ``/moto-api/reset`` does, so the pool forks with no backend in it."""
    from moto.core.base_backend import BackendDict
    from moto.moto_api._internal.models import moto_api_backend
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.test import Client

    server.install()
    client = Client(server.LocalAwsApp(DomainDispatcherApplication(create_backend_app)))
    date = time.strftime("%Y%m%d", time.gmtime())
    for service, call in WARM.items():
        headers = {
            "Authorization": f"AWS4-HMAC-SHA256 Credential=test/{date}/us-east-1/{service}/aws4_request, "
            "SignedHeaders=host, Signature=0",
        }
        if "target" in call:
            headers["X-Amz-Target"] = call["target"]
            headers["Content-Type"] = (
                "application/x-amz-json-1.0" if service in ("dynamodb", "sqs") else "application/x-amz-json-1.1"
            )
            data = "{}"
        else:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            data = call.get("data", "")
        response = client.open(call.get("path", "/"), method=call.get("method", "POST"), headers=headers, data=data)
        if response.status_code >= 500:
            print(f"pool: warming {service} got HTTP {response.status_code}", file=sys.stderr)
    client.get("/_localaws/sns/published")
    moto_api_backend.reset()
    if BackendDict._instances:  # type: ignore[misc]
        raise RuntimeError("moto backends survived the reset; a forked server would not start empty")


def _child(conn: socket.socket, server: Any) -> int:
    """One server, in a forked child: read the request, serve, stop on STOP/EOF."""
    from moto.core.base_backend import BackendDict

    _die_with_parent()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    # stdout is the pool's READY line only; moto's odd print goes to stderr.
    sys.stdout = sys.stderr
    conn.settimeout(30)
    data, fds, _flags, _addr = socket.recv_fds(conn, MAX_REQUEST, 1)
    while data and not data.endswith(b"\n") and len(data) < MAX_REQUEST:
        chunk = conn.recv(MAX_REQUEST)
        if not chunk:
            break
        data += chunk
    for fd in fds:
        os.dup2(fd, 2)
        os.close(fd)
    try:
        given = json.loads(data or b"{}").get("args", [])
        if not isinstance(given, list) or not all(isinstance(a, str) for a in given):
            raise ValueError("args must be a list of strings")
        args = server.parse_args([*given, "--host", "127.0.0.1", "--port", "0"])
    except (ValueError, SystemExit) as e:
        conn.sendall(f"ERROR bad request {data[:200]!r}: {e}\n".encode())
        return 2
    # Fresh: the pool forked with no backend made (warm() reset them) and
    # nothing recorded; every backend this server uses is made here, lazily.
    if BackendDict._instances or server._LAMBDA_INVOCATIONS:  # type: ignore[misc]
        conn.sendall(b"ERROR the pool holds moto state; refusing to serve it\n")
        return 1
    httpd = server.serve(args)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    conn.settimeout(None)
    conn.sendall(f"READY http://{args.host}:{httpd.server_port}\n".encode())
    with contextlib.suppress(OSError):
        while True:
            chunk = conn.recv(4096)
            if not chunk or b"STOP" in chunk:
                break
    httpd.server_close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="pre-forking launcher for server.py")
    parser.add_argument("--socket", required=True, help="unix socket path to listen on")
    parser.add_argument(
        "--parent-pid", type=int, default=os.getppid(), help="exit when this process is gone (default: our parent)"
    )
    opts = parser.parse_args(argv)

    # Listen first: a client that connects during the imports waits for its answer.
    with contextlib.suppress(FileNotFoundError):
        os.unlink(opts.socket)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(opts.socket)
    listener.listen(128)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    sys.path.insert(0, str(HERE))
    import server

    warm(server)
    if threading.active_count() != 1:
        print(f"pool: {threading.active_count()} threads before forking; forked servers may deadlock", file=sys.stderr)
    print(f"READY {opts.socket}", flush=True)

    children: set[int] = set()
    try:
        while not stop.is_set():
            if not _alive(opts.parent_pid):
                break
            with contextlib.suppress(InterruptedError):
                readable, _, _ = select.select([listener], [], [], 0.5)
            while True:
                try:
                    pid, _status = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                if pid == 0:
                    break
                children.discard(pid)
            if not readable or stop.is_set():
                continue
            conn, _ = listener.accept()
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    listener.close()
                    code = _child(conn, server)
                finally:
                    sys.stderr.flush()
                    os._exit(code)
            children.add(pid)
            conn.close()
    finally:
        listener.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(opts.socket)
        _stop_children(children)
    return 0


_INITIAL_PPID = os.getppid()


def _alive(pid: int) -> bool:
    """Whether the watched process is still there (our parent: still our parent)."""
    if pid == _INITIAL_PPID:
        return os.getppid() == pid
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _stop_children(children: set[int], grace: float = 5.0) -> None:
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while children and time.monotonic() < deadline:
        for pid in list(children):
            with contextlib.suppress(ChildProcessError):
                done, _ = os.waitpid(pid, os.WNOHANG)
                if done == 0:
                    continue
            children.discard(pid)
        time.sleep(0.05)
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


if __name__ == "__main__":
    code = main()
    sys.stderr.flush()
    os._exit(code)
