#!/usr/bin/env python3
"""A fault-injecting reverse proxy in front of the local AWS (server.py).

    python tests/localaws/faultproxy.py --upstream http://127.0.0.1:PORT [--host 127.0.0.1] [--port 0]
        [--rate 0.3] [--kinds throttle,500,503,reset,latency] [--latency 2.0] [--seed N] [--verbose]

Point the functions (``AWS_ENDPOINT_URL``) or boto3 (``endpoint_url``) at it.
Prints exactly one line to stdout, ``READY http://127.0.0.1:<port>``, once the
socket is bound (port 0 picks a free one), then serves until SIGTERM/SIGINT
and exits 0. Logs go to stderr, quiet unless ``--verbose``.

Each AWS request, with probability ``rate`` (seeded RNG), gets one of
``kinds``, picked uniformly:

* ``throttle``  HTTP 400 ``Throttling`` (query protocol: IAM, SNS, STS) or
                ``ThrottlingException`` (JSON protocols: SSM, EventBridge, ...),
                not forwarded
* ``500``       HTTP 500 ``InternalFailure``, not forwarded
* ``503``       HTTP 503 ``ServiceUnavailable``, not forwarded
* ``reset``     the client connection is closed with a TCP RST, no response,
                not forwarded
* ``latency``   wait ``--latency`` seconds, then forward; if the client has
                given up by then, the call still reaches the upstream (applied,
                but the answer is lost)

Every other request is forwarded unchanged and its response relayed.
``/moto-api/...`` and ``/_localaws/...`` (the test harness's own endpoints)
are always forwarded and not counted. The proxy's own endpoints:

* ``GET  /_faultproxy/stats``        counters (JSON)
* ``POST /_faultproxy/reset-stats``  zero them
* ``GET|POST /_faultproxy/config``   read / change ``rate``, ``kinds``, ``latency``

From Python::

    from faultproxy import FaultProxy
    with FaultProxy(upstream_url, rate=0.0) as proxy:      # or start_proxy(...)
        ... proxy.url ... proxy.stats() ... proxy.configure(rate=1.0, kinds=["503"])

Standard library only. See README.md beside this file.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import logging
import random
import re
import signal
import socket
import struct
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger("faultproxy")

KINDS = ("throttle", "500", "503", "reset", "latency")
CONTROL_PREFIX = "/_faultproxy/"
# Forwarded untouched and uncounted: moto's and server.py's test endpoints.
HARNESS_PREFIXES = ("/moto-api/", "/_localaws/")
UPSTREAM_TIMEOUT_S = 60.0

# RFC 9110 §7.6.1 hop-by-hop headers, plus Expect (the 100-continue, if any,
# was answered here) and the framing headers (the body is re-framed here).
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
    "te", "trailer", "transfer-encoding", "upgrade", "expect", "content-length",
})

# (HTTP status, error code, message, SOAP fault type) of each error fault.
ERRORS = {
    "throttle": (400, None, "Rate exceeded", "Sender"),
    "500": (500, "InternalFailure", "We encountered an internal error. Please try again.", "Receiver"),
    "503": (503, "ServiceUnavailable", "Service is unavailable. Please try again.", "Receiver"),
}

_CREDENTIAL = re.compile(r"Credential=[^/,\s]+/\d{8}/[^/,\s]+/([^/,\s]+)/aws4_request")


# ---------------------------------------------------------------------------
# Requests: protocol, service, action
# ---------------------------------------------------------------------------


class AwsRequest:
    """What the proxy needs to know about one request."""

    def __init__(self, method: str, target: str, headers: Any, body: bytes):
        self.method, self.target, self.headers, self.body = method, target, headers, body
        parts = urlsplit(target)
        self.path, self.query = parts.path or "/", parts.query
        self.content_type = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
        self.amz_target = headers.get("X-Amz-Target")

    @property
    def is_query_protocol(self) -> bool:
        """awsQuery/ec2Query (IAM, SNS, STS, SQS-query): ``Action=`` in a form
        body (or, for a GET, in the query string); errors are XML."""
        if self.content_type == "application/x-www-form-urlencoded":
            return True
        return not self.amz_target and "Action" in parse_qs(self.query)

    @property
    def service(self) -> str:
        """The SigV4 signing name, from the credential scope
        (``Credential=AKID/<date>/<region>/<service>/aws4_request``), in the
        Authorization header or a presigned URL's X-Amz-Credential."""
        m = _CREDENTIAL.search(self.headers.get("Authorization") or "")
        if m:
            return m.group(1)
        cred = parse_qs(self.query).get("X-Amz-Credential")
        if cred:
            scope = cred[0].split("/")
            if len(scope) == 5:
                return scope[3]
        return "unknown"

    @property
    def action(self) -> str:
        if self.amz_target:  # AWS JSON 1.0/1.1: "AmazonSSM.GetAutomationExecution"
            return self.amz_target.rsplit(".", 1)[-1]
        if self.content_type == "application/x-www-form-urlencoded":
            form = parse_qs(self.body.decode("utf-8", "replace"))
            if "Action" in form:
                return form["Action"][0]
        query = parse_qs(self.query)
        if "Action" in query:
            return query["Action"][0]
        # REST protocols (S3, Scheduler, Lambda): method and first path segment.
        first = self.path.strip("/").split("/", 1)[0]
        return f"{self.method} /{first}"

    @property
    def name(self) -> str:
        return f"{self.service}:{self.action}"


def error_response(kind: str, req: AwsRequest) -> tuple[int, list[tuple[str, str]], bytes]:
    """A protocol-correct AWS error for an error fault: what the SDKs parse
    into the error code their retry classifiers look at."""
    status, code, message, fault_type = ERRORS[kind]
    request_id = str(uuid.uuid4())
    if req.is_query_protocol:
        code = code or "Throttling"
        body = (
            "<ErrorResponse><Error>"
            f"<Type>{fault_type}</Type><Code>{code}</Code><Message>{message}</Message>"
            f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
        headers = [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)]
    else:  # AWS JSON 1.0/1.1 and REST-JSON: x-amzn-ErrorType and __type
        code = code or "ThrottlingException"
        body = json.dumps({"__type": code, "message": message}).encode()
        content_type = req.content_type if req.content_type.startswith("application/x-amz-json") else "application/json"
        headers = [("Content-Type", content_type), ("x-amzn-ErrorType", code), ("x-amzn-RequestId", request_id)]
    return status, headers, body


# ---------------------------------------------------------------------------
# State: behaviour and counters, shared by the handler threads
# ---------------------------------------------------------------------------


def check_config(rate: Any = None, kinds: Any = None, latency: Any = None, only: Any = None) -> None:
    if only is not None and not isinstance(only, str):
        raise ValueError(f"only must be a string (or null), not {only!r}")
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate <= 1.0):
        raise ValueError(f"rate must be a number from 0 to 1, not {rate!r}")
    if kinds is not None:
        if isinstance(kinds, str) or not isinstance(kinds, Iterable):
            raise ValueError(f"kinds must be a list, not {kinds!r}")
        kinds = list(kinds)
        unknown = [k for k in kinds if k not in KINDS]
        if unknown or not kinds:
            raise ValueError(f"kinds must be a non-empty list of {', '.join(KINDS)}; got {kinds!r}")
    if latency is not None and (isinstance(latency, bool) or not isinstance(latency, (int, float)) or latency < 0):
        raise ValueError(f"latency must be a number of seconds >= 0, not {latency!r}")


class State:
    def __init__(self, rate: float, kinds: Iterable[str], latency: float, seed: int | None):
        check_config(rate, list(kinds), latency)
        self.lock = threading.Lock()
        self.rng = random.Random(seed)
        self.rate, self.kinds, self.latency = float(rate), list(kinds), float(latency)
        # When set, only requests whose action name or body contains this text
        # may be faulted (e.g. "UserName=alice"); the others are forwarded.
        self.only: str | None = None
        self._zero()

    def _zero(self) -> None:
        self.requests = self.forwarded = self.upstream_errors = 0
        self.faults: Counter[str] = Counter({k: 0 for k in KINDS})
        self.actions: Counter[str] = Counter()

    def decide(self, name: str, body: bytes = b"") -> str | None:
        """Counts the request and picks its fault (None: forward it). One
        draw per request, whatever the rate, so a seed gives one sequence."""
        with self.lock:
            self.requests += 1
            self.actions[name] += 1
            roll = self.rng.random()
            eligible = self.only is None or self.only in name or self.only.encode() in body
            kind = self.rng.choice(self.kinds) if roll < self.rate and eligible else None
            if kind:
                self.faults[kind] += 1
            return kind

    def count(self, field: str) -> None:
        with self.lock:
            setattr(self, field, getattr(self, field) + 1)

    def configure(self, rate: float | None = None, kinds: Iterable[str] | None = None,
                  latency: float | None = None, only: str | None = None) -> dict[str, Any]:
        kinds = list(kinds) if kinds is not None else None
        check_config(rate, kinds, latency, only)
        with self.lock:
            if only is not None:
                self.only = only or None
            if rate is not None:
                self.rate = float(rate)
            if kinds is not None:
                self.kinds = kinds
            if latency is not None:
                self.latency = float(latency)
        return self.config()

    def config(self) -> dict[str, Any]:
        with self.lock:
            return {"rate": self.rate, "kinds": list(self.kinds), "latency": self.latency, "only": self.only}

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {
                "requests": self.requests,
                "forwarded": self.forwarded,
                "upstream_errors": self.upstream_errors,
                "faults": dict(self.faults),
                "actions": dict(sorted(self.actions.items())),
            }

    def reset_stats(self) -> None:
        with self.lock:
            self._zero()


# ---------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, addr: tuple[str, int], upstream: str, state: State, verbose: bool):
        parts = urlsplit(upstream)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"upstream must be an http(s) URL, not {upstream!r}")
        self.upstream_scheme = parts.scheme
        self.upstream_host = parts.hostname
        self.upstream_port = parts.port or (443 if parts.scheme == "https" else 80)
        self.state, self.verbose = state, verbose
        self.stopping = threading.Event()
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(addr, _Handler)

    def upstream_connection(self) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self.upstream_scheme == "https" else http.client.HTTPConnection
        return cls(self.upstream_host, self.upstream_port, timeout=UPSTREAM_TIMEOUT_S)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        """Ends every open client connection (idle keep-alive ones included),
        so that their handler threads finish."""
        with self.connections_lock:
            conns = list(self.connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, OSError)) or self.stopping.is_set():
            log.debug("connection from %s ended: %r", client_address, exc)
            return
        log.exception("error serving %s", client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the Rust SDK (hyper) pools connections
    server: _Server

    # Every method goes through the same path.
    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = do_GET

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        if self.server.verbose:
            log.info("%s %s", self.address_string(), format % args)

    # -- reading -------------------------------------------------------------
    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size_line = self.rfile.readline(65537)
                if not size_line:
                    raise ConnectionError("client closed mid-body")
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers: dropped
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    # -- writing -------------------------------------------------------------
    def _respond(self, status: int, headers: list[tuple[str, str]], body: bytes, reason: str | None = None) -> None:
        self.send_response_only(status, reason)
        for name, value in headers:
            self.send_header(name, value)
        if not (self.command == "HEAD" or status in (204, 304) or 100 <= status < 200):
            self.send_header("Content-Length", str(len(body)))
        else:
            body = b""
        self.end_headers()
        if body:
            self.wfile.write(body)
        self.wfile.flush()

    def _json(self, status: int, value: Any) -> None:
        body = json.dumps(value, indent=2).encode()
        self._respond(status, [("Content-Type", "application/json")], body)

    def _reset(self) -> None:
        """Closes the client connection with a TCP RST and no response."""
        self.close_connection = True
        sock = self.connection
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # detach() + close the descriptor: sock.close() alone would wait for
        # rfile/wfile to let go of the socket. The objects left behind see a
        # closed socket (fd -1), so the base class's clean-up is harmless.
        with contextlib.suppress(OSError):
            socket.close(sock.detach())

    # -- the request ---------------------------------------------------------
    def _serve(self) -> None:
        try:
            body = self._read_body()
        except (ValueError, ConnectionError) as e:
            self.close_connection = True
            self.send_error(400, f"bad request body: {e}")
            return
        path = urlsplit(self.path).path
        if path.startswith(CONTROL_PREFIX):
            self._control(path, body)
            return
        req = AwsRequest(self.command, self.path, self.headers, body)
        if path.startswith(HARNESS_PREFIXES):
            self._forward(req, counted=False)
            return
        state = self.server.state
        name = req.name
        kind = state.decide(name, body or b"")
        if self.server.verbose:
            log.info("%s %s %s -> %s", self.command, self.path, name, kind or "forward")
        if kind is None:
            self._forward(req)
        elif kind in ERRORS:
            self._respond(*error_response(kind, req))
        elif kind == "reset":
            self._reset()
        elif kind == "latency":
            if self.server.stopping.wait(state.config()["latency"]):
                self._reset()  # shutting down: drop it
                return
            self._forward(req)

    def _forward(self, req: AwsRequest, counted: bool = True) -> None:
        headers = [(k, v) for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP]
        for token in (self.headers.get("Connection") or "").split(","):
            if token.strip():  # headers the Connection header names are hop-by-hop too
                headers = [(k, v) for k, v in headers if k.lower() != token.strip().lower()]
        had_body = req.body or "Content-Length" in self.headers or "Transfer-Encoding" in self.headers
        conn = self.server.upstream_connection()
        try:
            conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for k, v in headers:  # Host and Authorization unchanged: moto dispatches and checks on them
                conn.putheader(k, v)
            if had_body:
                conn.putheader("Content-Length", str(len(req.body)))
            conn.endheaders(req.body if req.body else None)
            resp = conn.getresponse()
            resp_body = resp.read()  # de-chunked; re-framed with Content-Length
            resp_headers = [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP_BY_HOP]
            if self.command == "HEAD" and resp.getheader("Content-Length"):
                resp_headers.append(("Content-Length", resp.getheader("Content-Length")))
        except (OSError, http.client.HTTPException) as e:
            if counted:
                self.server.state.count("upstream_errors")
            log.warning("upstream %s %s failed: %r", self.command, self.path, e)
            self.close_connection = True
            self._respond(502, [("Content-Type", "text/plain"), ("Connection", "close")],
                          f"faultproxy: upstream failed: {e!r}\n".encode())
            return
        finally:
            conn.close()
        if counted:
            self.server.state.count("forwarded")
        self._respond(resp.status, resp_headers, resp_body, resp.reason)

    def _control(self, path: str, body: bytes) -> None:
        state = self.server.state
        what = path[len(CONTROL_PREFIX):].strip("/")
        if what == "stats" and self.command in ("GET", "HEAD"):
            self._json(200, state.stats())
        elif what == "reset-stats" and self.command == "POST":
            state.reset_stats()
            self._json(200, state.stats())
        elif what == "config" and self.command in ("GET", "HEAD"):
            self._json(200, state.config())
        elif what == "config" and self.command == "POST":
            try:
                change = json.loads(body or b"{}")
                if not isinstance(change, dict):
                    raise ValueError("the body must be a JSON object")
                extra = set(change) - {"rate", "kinds", "latency", "only"}
                if extra:
                    raise ValueError(f"unknown settings: {sorted(extra)}")
                self._json(200, state.configure(**change))
            except ValueError as e:
                self._json(400, {"error": str(e)})
        elif what in ("stats", "reset-stats", "config"):
            self._json(405, {"error": f"{self.command} not allowed on {path}"})
        else:
            self._json(404, {"error": f"no such endpoint: {path}"})


# ---------------------------------------------------------------------------
# In-process use
# ---------------------------------------------------------------------------


class FaultProxy:
    """The proxy on a background thread.

    ``FaultProxy(upstream, rate=..., kinds=..., latency=..., seed=...)``;
    ``start()`` returns the URL (``proxy.url``), ``stop()`` ends it (also on
    leaving a ``with`` block). ``stats()``, ``reset_stats()``, ``configure()``
    and ``config()`` do what the control endpoints do, without HTTP.
    """

    def __init__(self, upstream: str, host: str = "127.0.0.1", port: int = 0, rate: float = 0.0,
                 kinds: Iterable[str] = KINDS, latency: float = 2.0, seed: int | None = None,
                 verbose: bool = False):
        self.state = State(rate, kinds, latency, seed)
        self._server = _Server((host, port), upstream, self.state, verbose)
        self.url = f"http://{host}:{self._server.server_port}"
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.server_port

    def start(self) -> str:
        if self._thread is None:
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                            name="faultproxy", daemon=True)
            self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._server.stopping.is_set():
            return
        self._server.stopping.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
        self._server.drop_connections()
        self._server.server_close()

    def stats(self) -> dict[str, Any]:
        return self.state.stats()

    def reset_stats(self) -> None:
        self.state.reset_stats()

    def configure(self, rate: float | None = None, kinds: Iterable[str] | None = None,
                  latency: float | None = None) -> dict[str, Any]:
        return self.state.configure(rate, kinds, latency)

    def config(self) -> dict[str, Any]:
        return self.state.config()

    def __enter__(self) -> FaultProxy:
        self.start()
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.stop()


def start_proxy(upstream: str, **options: Any) -> tuple[str, Callable[[], None]]:
    """Starts a FaultProxy (options as its constructor's); returns its URL and
    the function that stops it."""
    proxy = FaultProxy(upstream, **options)
    return proxy.start(), proxy.stop


# ---------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------


def _kinds(text: str) -> list[str]:
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    try:
        check_config(kinds=kinds)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return kinds


def _rate(text: str) -> float:
    try:
        rate = float(text)
        check_config(rate=rate)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return rate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="fault-injecting reverse proxy in front of the local AWS")
    parser.add_argument("--upstream", required=True, help="the local AWS, e.g. http://127.0.0.1:5000")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 = any free port (default)")
    parser.add_argument("--rate", type=_rate, default=0.3, help="probability of a fault per request (default 0.3)")
    parser.add_argument("--kinds", type=_kinds, default=list(KINDS),
                        help=f"comma-separated fault kinds (default {','.join(KINDS)})")
    parser.add_argument("--latency", type=float, default=2.0, help="seconds the latency fault waits (default 2.0)")
    parser.add_argument("--seed", type=int, default=None, help="RNG seed, for reproducible runs")
    parser.add_argument("--verbose", action="store_true", help="log every request and its fate to stderr")
    args = parser.parse_args(argv)

    logging.basicConfig(stream=sys.stderr, level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        proxy = FaultProxy(args.upstream, args.host, args.port, args.rate, args.kinds, args.latency,
                           args.seed, args.verbose)
    except (ValueError, OSError) as e:
        parser.error(str(e))

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    proxy.start()
    print(f"READY {proxy.url}", flush=True)
    log.info("forwarding to %s; %s", args.upstream, proxy.config())
    sys.stdout = sys.stderr  # stdout carries the READY line only

    while not stop.wait(1.0):
        if proxy._thread is None or not proxy._thread.is_alive():
            return 1
    proxy.stop()
    return 0


if __name__ == "__main__":
    code = main()
    sys.stderr.flush()
    sys.exit(code)
