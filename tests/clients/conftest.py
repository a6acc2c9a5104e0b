"""Fixtures for the official-SDK suite: `distill-guard serve` processes with the
built-in demo model, one per quota profile, on free loopback ports.

Nothing here skips: a missing SDK is an import error, a missing or broken binary is
a fixture error, and both fail the run.
"""

from __future__ import annotations

import os
import pathlib
import queue
import signal
import subprocess
import tempfile
import threading
import uuid
from dataclasses import dataclass, field

import anthropic
import openai
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0

SECRET = 'secret = "sdk-suite-secret-not-for-production"'

# Room for every functional test: each test uses fresh API keys (fresh accounts).
# The per-minute request bucket refills at one request a minute but holds 50, so
# `remaining` drops by exactly one per call during a test.
ROOMY = f"""
[identity]
{SECRET}
[tiers.default]
requests_per_minute = 1
burst_requests = 50
requests_per_day = 10000
tokens_per_minute = 1000000
tokens_per_day = 100000000
"""

# One request every two seconds (a bucket of one): short enough for the SDKs'
# automatic retry to wait for, long enough that a slow machine still gets its
# second request refused.
TIGHT = f"""
[identity]
{SECRET}
[tiers.default]
requests_per_minute = 30
burst_requests = 1
requests_per_day = 10000
tokens_per_minute = 1000000
tokens_per_day = 100000000
"""

# One request a minute (a bucket of one), and a token bucket of 3000 so that a
# request reserving more can never fit.
SLOW = f"""
[identity]
{SECRET}
[tiers.default]
requests_per_minute = 1
burst_requests = 1
requests_per_day = 10000
tokens_per_minute = 3000
tokens_per_day = 1000000
"""

# Plenty of requests, 3000 tokens a minute: two requests reserving 2000 tokens each
# cannot both pass within seconds.
TOKENS = f"""
[identity]
{SECRET}
[tiers.default]
requests_per_minute = 1000
tokens_per_minute = 3000
"""

# One request a day: the second one must wait about 24 hours.
DAILY = f"""
[identity]
{SECRET}
[tiers.default]
requests_per_minute = 60
requests_per_day = 1
tokens_per_minute = 1000000
tokens_per_day = 100000000
"""

# Request bodies over 8 KiB get 413.
SMALL_BODIES = f"""
[identity]
{SECRET}
[guard]
max_body_bytes = 8192
"""

# An upstream nobody listens on (the discard port on loopback): every admitted
# request gets 502.
NO_UPSTREAM = f"""
[identity]
{SECRET}
[server]
upstream = "http://127.0.0.1:9"
connect_timeout = "2s"
"""
# Every response tagged, with the invisible text mark in the prose.
TAGGED = f"""
[identity]
{SECRET}
[watermark]
tag = "always"
text_mark = true
[[watermark.keys]]
id = "k1"
secret = "sdk-suite-watermark-key-not-for-production"
"""

def binary() -> pathlib.Path:
    """The binary under test: `DISTILL_GUARD_BIN` (set by the cargo wrapper), else
    the debug build in the default target dir."""
    env = os.environ.get("DISTILL_GUARD_BIN")
    if env:
        path = pathlib.Path(env)
    else:
        target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
        path = target / "debug" / "distill-guard"
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(
            f"distill-guard binary not found at {path}: build it (`cargo build`) or set "
            "DISTILL_GUARD_BIN",
            pytrace=False,
        )
    return path


class GuardProcess:
    """A running `distill-guard serve --config FILE --listen 127.0.0.1:0`."""

    def __init__(self, name: str, config: str, workdir: pathlib.Path):
        self.name = name
        cfg = workdir / f"{name}.toml"
        cfg.write_text(config)
        self.config_path = cfg
        self.log_path = workdir / f"{name}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [str(binary()), "serve", "--config", str(cfg), "--listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE,
            stderr=self._log,
            stdin=subprocess.DEVNULL,
        )
        lines: queue.Queue[bytes] = queue.Queue()
        assert self.proc.stdout is not None
        stdout = self.proc.stdout
        threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
        try:
            first = lines.get(timeout=START_TIMEOUT_S).decode("utf-8", "replace").strip()
        except queue.Empty:
            self.stop()
            pytest.fail(f"{name}: no `listening on` line within {START_TIMEOUT_S}s", pytrace=False)
        prefix = "listening on "
        if not first.startswith(prefix):
            try:
                code = self.proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                code = None
            self.stop()
            pytest.fail(
                f"{name}: {binary()} printed {first!r} instead of `listening on ...` "
                f"(exit code {code}); stderr:\n{self.stderr()}",
                pytrace=False,
            )
        self.url = first[len(prefix) :]

    def stderr(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()


@pytest.fixture(scope="session")
def _workdir():
    with tempfile.TemporaryDirectory(prefix="distill-guard-sdk-") as d:
        yield pathlib.Path(d)


def _guard(name: str, config: str, workdir: pathlib.Path):
    g = GuardProcess(name, config, workdir)
    try:
        yield g
    finally:
        g.stop()
        # A server that died during the run (rather than on our SIGTERM) fails the run.
        code = g.proc.returncode
        if code not in (0, -signal.SIGTERM):
            pytest.fail(f"{name}: server exited with {code}; stderr:\n{g.stderr()}", pytrace=False)


@pytest.fixture(scope="session")
def roomy(_workdir):
    yield from _guard("roomy", ROOMY, _workdir)


@pytest.fixture(scope="session")
def tight(_workdir):
    yield from _guard("tight", TIGHT, _workdir)


@pytest.fixture(scope="session")
def slow(_workdir):
    yield from _guard("slow", SLOW, _workdir)


@pytest.fixture(scope="session")
def token_window(_workdir):
    yield from _guard("token_window", TOKENS, _workdir)


@pytest.fixture(scope="session")
def daily(_workdir):
    yield from _guard("daily", DAILY, _workdir)


@pytest.fixture(scope="session")
def small_bodies(_workdir):
    yield from _guard("small_bodies", SMALL_BODIES, _workdir)


@pytest.fixture(scope="session")
def no_upstream(_workdir):
    yield from _guard("no_upstream", NO_UPSTREAM, _workdir)


@pytest.fixture(scope="session")
def tagged(_workdir):
    yield from _guard("tagged", TAGGED, _workdir)


@dataclass
class Seen:
    """Every request the SDK's HTTP client sent, and every response it got."""

    requests: list = field(default_factory=list)
    responses: list = field(default_factory=list)

    def on_request(self, request) -> None:
        self.requests.append((request.method, str(request.url)))

    def on_response(self, response) -> None:
        self.responses.append((response.status_code, dict(response.headers)))

    async def aon_request(self, request) -> None:
        self.on_request(request)

    async def aon_response(self, response) -> None:
        self.on_response(response)

    def statuses(self) -> list[int]:
        return [s for s, _ in self.responses]


def new_key() -> str:
    """A fresh API key, hence a fresh account with full buckets."""
    return f"sk-sdk-{uuid.uuid4().hex}"


def openai_client(guard: GuardProcess, *, max_retries: int = 0, key: str | None = None):
    seen = Seen()
    http = openai.DefaultHttpxClient(
        event_hooks={"request": [seen.on_request], "response": [seen.on_response]}
    )
    client = openai.OpenAI(
        api_key=key or new_key(),
        base_url=f"{guard.url}/v1",
        max_retries=max_retries,
        http_client=http,
        timeout=30.0,
    )
    return client, seen


def anthropic_client(guard: GuardProcess, *, max_retries: int = 0, key: str | None = None):
    seen = Seen()
    http = anthropic.DefaultHttpxClient(
        event_hooks={"request": [seen.on_request], "response": [seen.on_response]}
    )
    client = anthropic.Anthropic(
        api_key=key or new_key(),
        base_url=guard.url,
        max_retries=max_retries,
        http_client=http,
        timeout=30.0,
    )
    return client, seen


def async_openai_client(guard: GuardProcess, *, max_retries: int = 0):
    seen = Seen()
    http = openai.DefaultAsyncHttpxClient(
        event_hooks={"request": [seen.aon_request], "response": [seen.aon_response]}
    )
    client = openai.AsyncOpenAI(
        api_key=new_key(),
        base_url=f"{guard.url}/v1",
        max_retries=max_retries,
        http_client=http,
        timeout=30.0,
    )
    return client, seen


def async_anthropic_client(guard: GuardProcess, *, max_retries: int = 0):
    seen = Seen()
    http = anthropic.DefaultAsyncHttpxClient(
        event_hooks={"request": [seen.aon_request], "response": [seen.aon_response]}
    )
    client = anthropic.AsyncAnthropic(
        api_key=new_key(),
        base_url=guard.url,
        max_retries=max_retries,
        http_client=http,
        timeout=30.0,
    )
    return client, seen


def call_with_deadline(fn, seconds: float):
    """Runs `fn()` on a daemon thread; returns its result or raises its exception.
    Fails the test if it has not finished after `seconds` (an SDK sleeping through
    a long Retry-After would otherwise hang the suite)."""
    out: queue.Queue = queue.Queue()

    def run():
        try:
            out.put((True, fn()))
        except BaseException as e:  # noqa: BLE001 - handed back to the caller
            out.put((False, e))

    threading.Thread(target=run, daemon=True).start()
    try:
        ok, value = out.get(timeout=seconds)
    except queue.Empty:
        pytest.fail(f"the SDK call did not return within {seconds}s", pytrace=False)
    if ok:
        return value
    raise value
