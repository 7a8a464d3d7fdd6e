"""`reminders serve` under slow and idle clients, and the edges of every answer: timeouts, the connection cap, the
log under a flood, security headers on 400/404/405/413/500, one trusted host, ids out of range, masked URLs.

The slow-client trial runs a real `reminders serve` with its open-file limit at 1,024 (as on many servers) and opens
more connections than that, none of which ever finishes its headers.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import re
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import httpx2 as httpx
import pytest
import uvicorn
from sqlalchemy import Engine
from starlette.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send

from reminders.config import load
from reminders.store.db import make_engine, masked, session_scope
from reminders.tracking import links
from reminders.tracking.accounts import add_user
from reminders.web import create_app
from reminders.web.security import HEADERS
from reminders.web.server import HEADER_TIMEOUT, Guard, RateLimitFilter, server_config
from tests.conftest import Cli, write_config
from tests.smtpserver import free_port
from tests.websupport import PASSWORD, USER

SECRET = "hardening-test-secret-6a1f0c3e9b7d2a5f8e4c1b0a"  # 44 bytes
HOST = "reminders.example.org"
BASE_URL = f"https://{HOST}"
FILE_LIMIT = 1024
SLOW_CLIENTS = 1100
PARTIAL = f"GET /admin/login HTTP/1.1\r\nHost: {HOST}\r\nUser-Agent: slow".encode()


def secured(headers: httpx.Headers | dict[str, str]) -> bool:
    return all(name in headers for name in HEADERS)


@dataclass
class Served:
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def get(self, path: str, host: str = HOST, method: str = "GET") -> httpx.Response:
        with httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30) as client:
            return client.request(method, path, headers={"host": host})

    def raw(self, request: bytes) -> bytes:
        """Send bytes as they are and read the answer until the server closes the connection."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as sock:
            sock.sendall(request)
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        return data


def _limit_files() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (FILE_LIMIT, min(hard, FILE_LIMIT) if hard > 0 else FILE_LIMIT))


@contextmanager
def serving(loaded: Cli, tmp_path: Path) -> Iterator[Served]:
    port = free_port()
    with loaded.config.open("a", encoding="utf-8") as config:
        config.write(f'\n[web]\nbind = "127.0.0.1"\nport = {port}\nbase_url = "{BASE_URL}"\n')
    log = tmp_path / "serve.log"
    env = os.environ | {"REMINDERS_WEB_SECRET": SECRET}
    command = [sys.executable, "-m", "reminders", "--config", str(loaded.config), "serve"]
    with log.open("wb") as sink:
        process = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT, preexec_fn=_limit_files)
    served = Served(port, process, log)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if served.get("/healthz", host="127.0.0.1").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, "reminders serve did not start"
            time.sleep(0.1)
        yield served
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def served(loaded: Cli, tmp_path: Path) -> Iterator[Served]:
    with serving(loaded, tmp_path) as server:
        yield server


def _closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def test_slow_clients_beyond_the_open_file_limit_neither_stop_the_server_nor_flood_its_log(served: Served) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # this process needs a socket per slow client
    if soft < SLOW_CLIENTS + 100:
        if hard < SLOW_CLIENTS + 100:
            pytest.skip(f"the test process may open only {hard} files")
        resource.setrlimit(resource.RLIMIT_NOFILE, (SLOW_CLIENTS + 200, hard))
    log_before = served.log.stat().st_size
    slow: list[socket.socket] = []
    try:
        for _ in range(SLOW_CLIENTS):
            sock = socket.create_connection(("127.0.0.1", served.port), timeout=10)
            sock.sendall(PARTIAL)  # a request line and a header, never the blank line that ends them
            slow.append(sock)
        opened = time.monotonic()
        start = time.monotonic()
        health = served.get("/healthz", host="127.0.0.1")
        took_ms = (time.monotonic() - start) * 1000
        assert health.status_code == 200 and health.text == "ok"
        print(f"\n{SLOW_CLIENTS} slow clients at an open-file limit of {FILE_LIMIT}: /healthz answered in "
              f"{took_ms:.0f} ms")
        assert took_ms < 5000
        for sock in slow:
            sock.setblocking(False)
        evicted = sum(_closed(sock) for sock in slow)
        deadline = opened + HEADER_TIMEOUT + 10
        while time.monotonic() < deadline and not all(_closed(sock) for sock in slow):
            time.sleep(0.5)
        still_open = sum(not _closed(sock) for sock in slow)
        closed_after = time.monotonic() - opened
        print(f"closed at once to keep descriptors free: {evicted}; all closed {closed_after:.1f} s after the last "
              f"connection (header timeout {HEADER_TIMEOUT:.0f} s); still open: {still_open}")
        assert still_open == 0
    finally:
        for sock in slow:
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert served.get("/healthz", host="127.0.0.1").status_code == 200
    grown = served.log.stat().st_size - log_before
    print(f"log grew by {grown} bytes")
    assert grown < 64 * 1024, served.log.read_text(errors="replace")[-4000:]
    assert served.process.poll() is None


def test_every_error_answer_of_the_server_carries_the_security_headers(served: Served) -> None:
    missing = served.get("/nowhere")
    assert missing.status_code == 404 and secured(missing.headers) and "页面不存在" in missing.text

    wrong_method = served.get("/r/some.token", method="PUT")
    assert wrong_method.status_code == 405 and secured(wrong_method.headers)
    assert set(wrong_method.headers["allow"].split(", ")) == {"GET", "HEAD", "POST"}

    too_large = served.raw(f"POST /r/some.token HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 50000000\r\n"
                           "Content-Type: application/x-www-form-urlencoded\r\n\r\n".encode())
    head = too_large.split(b"\r\n\r\n", 1)[0].decode().lower()
    assert head.startswith("http/1.1 413") and all(f"\r\n{name}:" in head for name in HEADERS), head
    assert "提交内容过长" in too_large.decode()

    garbage = served.raw(b"\x16\x03\x01 nonsense\r\n\r\n")  # e.g. TLS spoken to the plain port
    head = garbage.split(b"\r\n\r\n", 1)[0].decode().lower()
    assert head.startswith("http/1.1 400") and all(f"\r\n{name}:" in head for name in HEADERS), head
    assert "请求无效" in garbage.decode()

    # Headers that never end and keep growing: refused once they pass 16 KiB, not buffered for ever.
    huge_headers = served.raw(f"GET /admin/login HTTP/1.1\r\nHost: {HOST}\r\nX-Pad: {'a' * 40000}".encode())
    head = huge_headers.split(b"\r\n\r\n", 1)[0].decode().lower()
    assert head.startswith("http/1.1 400") and all(f"\r\n{name}:" in head for name in HEADERS), head


def test_only_the_configured_host_is_served_and_redirects_use_the_base_url(served: Served) -> None:
    stranger = served.get("/admin/login", host="evil.example")
    assert stranger.status_code == 400 and secured(stranger.headers) and "请求无效" in stranger.text
    assert served.get("/admin/login", host="127.0.0.1").status_code == 400  # locally: only /healthz
    assert served.get("/healthz", host="localhost").status_code == 200
    assert served.get("/admin/login").status_code == 200
    redirect = served.get("/admin/tasks/12/?x=1")
    assert redirect.status_code == 307 and secured(redirect.headers)
    assert redirect.headers["location"] == f"{BASE_URL}/admin/tasks/12?x=1"


@contextmanager
def in_process(loaded: Cli, monkeypatch: pytest.MonkeyPatch,
               database_url: str | None = None) -> Iterator[tuple[TestClient, Engine]]:
    monkeypatch.setenv("REMINDERS_WEB_SECRET", SECRET)
    with loaded.config.open("a", encoding="utf-8") as file:
        file.write(f'\n[web]\nbase_url = "{BASE_URL}"\n')
    config = load(str(loaded.config))
    engine = make_engine(database_url or config.database_url)
    with TestClient(Guard(create_app(config, engine), config), base_url=BASE_URL) as client:
        yield client, engine
    engine.dispose()


def test_a_failure_inside_the_app_is_a_500_page_with_the_headers_and_one_logged_traceback(
        loaded: Cli, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    # The database goes away: nothing the app expects, so nothing handles it but the last resort.
    gone = f"postgresql://nobody@127.0.0.1:{free_port()}/gone"
    with in_process(loaded, monkeypatch, gone) as (client, _engine), caplog.at_level(logging.ERROR):
        response = client.get("/healthz")
    assert response.status_code == 500 and secured(response.headers)
    assert "服务器出错" in response.text and "Traceback" not in response.text
    tracebacks = [record for record in caplog.records if record.exc_info]
    assert len(tracebacks) == 1 and "/healthz" in tracebacks[0].getMessage()


def test_a_units_token_never_reaches_the_log_of_a_failure(
        loaded: Cli, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    gone = f"postgresql://nobody@127.0.0.1:{free_port()}/gone"
    token = links.make_token(SECRET.encode(), 1, "2021-06", date(2099, 1, 31))
    with in_process(loaded, monkeypatch, gone) as (client, _engine), caplog.at_level(logging.ERROR):
        response = client.get(f"/r/{token}")
    assert response.status_code == 500 and secured(response.headers)
    assert "/r/…" in caplog.text
    assert token not in caplog.text


def test_an_extension_id_beyond_the_databases_range_is_not_found(loaded: Cli,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    with in_process(loaded, monkeypatch) as (client, engine):
        with session_scope(engine) as session:
            add_user(session, USER, PASSWORD)
        token = re.search(r'name="csrf" value="([^"]+)"', client.get("/admin/login").text)
        assert token
        signed = client.post("/admin/login", data={"csrf": token[1], "username": USER, "password": PASSWORD},
                             follow_redirects=False)
        assert signed.status_code == 303, signed.text
        csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/admin").text)
        assert csrf
        for report_id in ("2147483648", "99999999999999999999", "0"):
            response = client.post(f"/admin/extensions/{report_id}", data={"csrf": csrf[1], "decision": "approve"})
            assert response.status_code == 404 and secured(response.headers), (report_id, response.text)


@pytest.mark.parametrize("url, secret", [
    ("postgresql://reminders:Hunter2-userinfo@127.0.0.1:{port}/db", "Hunter2-userinfo"),
    ("postgresql://reminders@127.0.0.1:{port}/db?password=Hunter2-query", "Hunter2-query"),
    ("postgresql://reminders@127.0.0.1:{port}/db?sslmode=disable&PASSWORD=Hunter2-upper", "Hunter2-upper"),
    ("postgresql://reminders:p%40ss-Hunter2@127.0.0.1:{port}/db", "ss-Hunter2"),
    ("postgresql+psycopg://reminders@127.0.0.1:{port}/db?sslpassword=Hunter2-ssl&sslmode=disable", "Hunter2-ssl"),
])
def test_a_database_password_never_shows_in_errors(tmp_path: Path, url: str, secret: str) -> None:
    database = url.format(port=free_port())
    result = Cli(write_config(tmp_path / "reminders.toml", database))("init", ok=False)
    assert result.exit_code != 0 and "127.0.0.1" in result.output, result.output
    assert secret not in result.output and "***" in result.output, result.output
    assert secret not in masked(database)


def test_requests_beyond_the_concurrency_limit_get_a_503_with_the_headers(loaded: Cli) -> None:
    release = asyncio.Event()

    async def slow_app(scope: Scope, receive: Receive, send: Send) -> None:
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def call(guard: Guard) -> tuple[int, dict[str, str]]:
        answer: dict[str, object] = {}

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
                answer["headers"] = {k.decode(): v.decode() for k, v in message["headers"]}

        async def receive() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        scope = {"type": "http", "method": "GET", "path": "/healthz", "headers": [(b"host", b"127.0.0.1:8025")]}
        await guard(scope, receive, send)
        return int(answer["status"]), answer["headers"]  # type: ignore[call-overload,return-value]

    async def trial() -> list[tuple[int, dict[str, str]]]:
        guard = Guard(slow_app, load(str(loaded.config)), max_active=2)
        first = [asyncio.create_task(call(guard)) for _ in range(2)]
        await asyncio.sleep(0.05)
        refused = await call(guard)
        release.set()
        return [refused, *await asyncio.gather(*first)]

    refused, *served = asyncio.run(trial())
    assert refused[0] == 503 and refused[1]["retry-after"] == "5" and secured(refused[1])
    assert [status for status, _headers in served] == [200, 200]


def test_identical_log_records_are_limited_per_minute_and_the_drop_is_counted(
        monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RateLimitFilter(per_minute=10))
    logger = logging.getLogger("test.hardening.flood")
    logger.addHandler(handler)
    logger.propagate = False
    clock = [1000.0]
    monkeypatch.setattr("reminders.web.server.time.monotonic", lambda: clock[0])

    def failed_accept() -> None:  # as asyncio logs one when the process is out of file descriptors
        try:
            raise OSError(24, "Too many open files")
        except OSError:
            logger.exception("socket.accept() out of system resource")

    try:
        for _ in range(5000):
            failed_accept()
        logger.error("another message")
        clock[0] += 61
        failed_accept()
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert text.count("[Errno 24]") == 11 and "another message" in text
    assert "4990 identical records dropped" in text
    assert len(text) < 10_000


@contextmanager
def quick_server(loaded: Cli, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """The app under uvicorn with the guarded protocol, in a thread, with 1-second header and body timeouts."""
    port = free_port()
    monkeypatch.setenv("REMINDERS_WEB_SECRET", SECRET)
    with loaded.config.open("a", encoding="utf-8") as file:
        file.write(f'\n[web]\nbind = "127.0.0.1"\nport = {port}\nbase_url = "{BASE_URL}"\n')
    config = load(str(loaded.config))
    engine = make_engine(config.database_url)
    server = uvicorn.Server(server_config(create_app(config, engine), config, header_timeout=1, body_timeout=1,
                                          keep_alive=30))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(15)
        engine.dispose()


def _closed_within(sock: socket.socket, seconds: float) -> tuple[bytes, float]:
    """What the server sent before it closed the connection, and how long that took."""
    start = time.monotonic()
    sock.settimeout(seconds)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except TimeoutError:
        pytest.fail(f"still open after {seconds} s; received {data[:200]!r}")
    except ConnectionResetError:
        pass
    return data, time.monotonic() - start


def test_a_body_that_never_arrives_and_a_kept_alive_connection_that_stalls_are_closed(
        loaded: Cli, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    token = links.make_token(SECRET.encode(), 1, "2021-06", date(2099, 1, 31))
    with quick_server(loaded, monkeypatch) as port, caplog.at_level(logging.WARNING):
        with socket.create_connection(("127.0.0.1", port)) as slow_body:
            slow_body.sendall(f"POST /r/{token} HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 500\r\n"
                              "Content-Type: application/x-www-form-urlencoded\r\n\r\n10.note=".encode())
            _data, took = _closed_within(slow_body, 10)
        assert took < 5

        with socket.create_connection(("127.0.0.1", port)) as kept:
            kept.sendall(f"GET /healthz HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
            first = b""
            while b"ok" not in first:
                first += kept.recv(65536)
            assert first.startswith(b"HTTP/1.1 200")
            kept.sendall(f"GET /healthz HTTP/1.1\r\nHost: {HOST}\r\n".encode())  # the next request never ends
            data, took = _closed_within(kept, 10)  # keep-alive is 30 s here: the header timeout closes it
        assert data == b"" and took < 5
    assert not [record for record in caplog.records if record.exc_info], caplog.text
