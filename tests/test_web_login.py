"""Signing in to the dashboard under abuse (issue 11, findings 4 and 6): a growing delay per address and per name
instead of a lock a stranger can trigger, the same answers for known and unknown names, password checks on a bounded
pool, sessions that end (logout, a new password, a removed account), a web secret of at least 32 bytes with separate
keys for links and sessions, and no 500 for a NUL in a login name or a task path, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta

import httpx2 as httpx
import pytest
from starlette.testclient import TestClient

from reminders.config import ConfigError, load
from reminders.store.db import make_engine
from reminders.tracking import links
from reminders.tracking.accounts import address_key
from reminders.web import create_app
from reminders.web.security import COOKIE, PasswordPool, PoolBusy, Signer, WebSession
from tests.conftest import Cli
from tests.smtpserver import free_port
from tests.websupport import NOW, PASSWORD, SECRET, USER, Site, open_site

STRANGER, OWNER = "203.0.113.9", "198.51.100.20"


@pytest.fixture
def site(loaded: Cli, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    with open_site(loaded, monkeypatch) as site:
        yield site


def client_at(site: Site, address: str) -> TestClient:
    """Another browser, at another client address, on the same running app."""
    return TestClient(site.client.app, base_url="https://testserver", client=(address, 50000))


def attempt(client: TestClient, username: str, password: str) -> httpx.Response:
    page = client.get("/admin/login")
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert page.status_code == 200 and match, page.text
    return client.post("/admin/login", data={"csrf": match[1], "username": username, "password": password},
                       follow_redirects=False)


def test_a_strangers_failures_never_keep_the_owner_out(site: Site) -> None:
    stranger = client_at(site, STRANGER)
    answers = []
    for guess in range(12):  # 12 wrong passwords in 12 minutes: the old lock-out held the account for ever
        answers.append(attempt(stranger, USER, f"guess number {guess}").status_code)
        site.clock.now += timedelta(seconds=61)
    assert answers == [401] * 12
    burst = [attempt(stranger, USER, f"again {n}").status_code for n in range(3)]
    assert burst == [401, 429, 429]  # the stranger is slowed down (a minute between tries by now)...
    assert attempt(stranger, USER, PASSWORD).status_code == 429  # ...even with the right password
    owner = client_at(site, OWNER)
    signed_in = attempt(owner, USER, PASSWORD)  # ...but the owner, from another address, signs in at once
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/admin"
    assert owner.get("/admin").status_code == 200


def _answers(site: Site, address: str, username: str) -> list[tuple[int, str | None, str]]:
    """A fixed run of attempts (wrong passwords, at fixed moments): each answer's status, Retry-After and page."""
    client, start, seen = client_at(site, address), site.clock.now, []
    for step in (0, 0, 0, 0, 1, 1, 2, 61, 61, 61, 61, 61, 61, 61):
        site.clock.now += timedelta(seconds=step)
        response = attempt(client, username, "not the password")
        token = re.search(r'name="csrf" value="([^"]+)"', response.text)
        page = response.text.replace(f'value="{username}"', 'value="NAME"').replace(token[1] if token else "-", "TOKEN")
        seen.append((response.status_code, response.headers.get("retry-after"), page))
    site.clock.now = start + timedelta(hours=1)  # every record forgotten before the next run
    return seen


def test_known_and_unknown_names_get_the_same_answers(site: Site) -> None:
    known = _answers(site, "192.0.2.1", USER)
    unknown = _answers(site, "192.0.2.2", "nosuchuser")
    assert [status for status, _, _ in known] == [401, 401, 401, 429, 401, 429, 401, *[401] * 7]
    assert known == unknown
    assert "用户名或密码错误" in known[0][2] and "尝试次数过多，请 1 秒后再试" in known[3][2]


def test_a_known_and_an_unknown_name_take_about_as_long(site: Site) -> None:
    def timed(address: str, username: str) -> float:
        client, spent = client_at(site, address), []
        for _ in range(7):
            site.clock.now += timedelta(minutes=20)  # never delayed: every attempt reaches the password check
            client.get("/admin/login")
            started = time.perf_counter()
            assert attempt(client, username, "not the password").status_code == 401
            spent.append(time.perf_counter() - started)
        return statistics.median(spent)

    known, unknown = timed("192.0.2.3", USER), timed("192.0.2.4", "nosuchuser")
    assert 0.5 < known / unknown < 2.0, (known, unknown)  # both are one scrypt run, not a fast "no such user"


def test_the_delay_doubles_up_to_a_minute_and_is_forgotten(site: Site) -> None:
    client = client_at(site, STRANGER)
    for _ in range(3):
        assert attempt(client, "someone", "wrong password").status_code == 401
    waits = []
    for _ in range(9):
        slowed = attempt(client, "someone", "wrong password")
        assert slowed.status_code == 429
        waits.append(int(slowed.headers["retry-after"]))
        site.clock.now += timedelta(seconds=waits[-1])
        assert attempt(client, "someone", "wrong password").status_code == 401
    assert waits == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    site.clock.now += timedelta(minutes=15)
    assert [attempt(client, "someone", "wrong password").status_code for _ in range(4)] == [401, 401, 401, 429]


def test_a_names_delay_binds_the_addresses_that_failed_not_a_fresh_one(site: Site, loaded: Cli) -> None:
    guessers = [client_at(site, f"203.0.113.{n}") for n in range(1, 4)]
    for guesser in guessers:  # one guess each from three addresses: the name is delayed
        assert attempt(guesser, USER, "wrong password").status_code == 401
    assert attempt(guessers[0], USER, PASSWORD).status_code == 429  # its own address failed once only
    assert attempt(client_at(site, "203.0.113.50"), USER, "wrong password").status_code == 401  # a fresh one is checked
    loaded("admin", "unlock", USER)
    assert attempt(guessers[0], USER, PASSWORD).status_code == 303  # unlock lifts the name's delay at once
    assert "no such user" in loaded("admin", "unlock", "nosuchuser", ok=False).output


def test_an_ipv6_client_is_throttled_by_its_64() -> None:
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("::ffff:192.0.2.7") == address_key("192.0.2.7") == "192.0.2.7"
    assert address_key(None) == "?"


def test_the_password_pool_refuses_at_once_beyond_its_queue() -> None:
    pool, release = PasswordPool(workers=1, queue=1), threading.Event()

    def slow() -> bool:
        return release.wait(10)

    async def scenario() -> list[object]:
        first = asyncio.ensure_future(pool.check(slow))
        second = asyncio.ensure_future(pool.check(slow))
        await asyncio.sleep(0.05)
        started = time.perf_counter()
        with pytest.raises(PoolBusy):
            await pool.check(slow)
        assert time.perf_counter() - started < 0.5  # refused at once, not queued
        release.set()
        results: list[object] = list(await asyncio.gather(first, second))
        results.append(await pool.check(lambda: True))  # room again once the checks are done
        return results

    assert asyncio.run(scenario()) == [True, True, True]


def test_logins_never_starve_the_other_routes_of_a_running_server(loaded: Cli) -> None:
    """60 clients logging in back to back for 3 s, each login from another address (behind the local proxy),
    against `reminders serve` (below its limit of requests in progress): /healthz stays quick (1.2-1.3 s on 2 cores
    before the password checks got their own pool, ~0.2 s after; 4.6 s in the issue, with 100 clients), and a login
    beyond the pool's queue is answered at once."""
    port = free_port()
    with loaded.config.open("a", encoding="utf-8") as config:
        config.write(f'\n[web]\nbind = "127.0.0.1"\nport = {port}\n')
    env = os.environ | {"REMINDERS_WEB_SECRET": SECRET}
    command = [sys.executable, "-m", "reminders", "--config", str(loaded.config), "serve"]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30,
                          limits=httpx.Limits(max_connections=62)) as client:
            deadline = time.monotonic() + 30
            while True:
                try:
                    client.get("/healthz")
                    break
                except httpx.TransportError:
                    assert server.poll() is None and time.monotonic() < deadline, "reminders serve did not start"
                    time.sleep(0.1)
            page = client.get("/admin/login")
            cookie = page.headers["set-cookie"].split(";", 1)[0]  # Secure: sent by hand over plain http
            match = re.search(r'name="csrf" value="([^"]+)"', page.text)
            assert match
            stop, statuses, numbers = threading.Event(), [], iter(range(1_000_000))

            def logins() -> None:
                while not stop.is_set():
                    n = next(numbers)
                    headers = {"cookie": cookie, "x-forwarded-for": f"10.{n // 62500}.{n // 250 % 250}.{n % 250}"}
                    form = {"csrf": match[1], "username": f"user{n}", "password": "a wrong password"}
                    statuses.append(client.post("/admin/login", data=form, headers=headers).status_code)

            slowest = 0.0
            with ThreadPoolExecutor(60) as workers:
                running = [workers.submit(logins) for _ in range(60)]
                for _ in range(15):
                    time.sleep(0.2)
                    started = time.perf_counter()
                    assert client.get("/healthz").text == "ok"
                    slowest = max(slowest, time.perf_counter() - started)
                stop.set()
                for future in running:
                    future.result()
        assert slowest < 1.0, f"/healthz took {slowest:.2f} s during 60 clients' logins"
        assert set(statuses) <= {401, 429, 503}, statuses  # never a 500
        assert 503 in statuses, statuses  # beyond the queue: answered at once
        print(f"\n/healthz slowest {slowest * 1000:.0f} ms during 60 clients' logins; "
              f"answers {sorted((s, statuses.count(s)) for s in set(statuses))}")
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_logout_ends_the_session_even_for_a_captured_cookie(site: Site) -> None:
    token = site.login()
    captured = site.client.cookies.get(COOKIE, path="/admin")
    assert captured
    site.client.post("/admin/logout", data={"csrf": token})
    replay = client_at(site, STRANGER)
    replay.cookies.set(COOKIE, captured, domain="testserver.local", path="/admin")
    refused = replay.get("/admin", follow_redirects=False)
    assert refused.status_code == 303 and refused.headers["location"] == "/admin/login"
    assert replay.get("/admin/export.csv", follow_redirects=False).status_code == 303
    assert replay.get("/admin/login").status_code == 200  # the login page, not a redirect loop
    site.login()  # signing in again works


def test_a_session_for_a_user_who_does_not_exist_is_refused(site: Site) -> None:
    forged = Signer(SECRET.encode()).dumps(WebSession("ghost", "csrf-token", NOW, 0))  # signed with the real key
    visitor = client_at(site, STRANGER)
    visitor.cookies.set(COOKIE, forged, domain="testserver.local", path="/admin")
    for path in ("/admin", "/admin/export.xlsx"):
        response = visitor.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == "/admin/login"
    posted = visitor.post("/admin/chase", data={"csrf": "csrf-token"}, follow_redirects=False)
    assert posted.status_code == 403 and "请先登录" in posted.text


def test_a_new_password_or_removing_the_user_ends_its_sessions(site: Site, loaded: Cli,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    site.login()
    monkeypatch.setenv("NEW_PASSWORD", "a brand new password")
    output = loaded("admin", "passwd", USER, "--password-env", "NEW_PASSWORD").output
    assert "password changed" in output
    assert site.client.get("/admin", follow_redirects=False).status_code == 303
    fresh = client_at(site, OWNER)
    assert attempt(fresh, USER, PASSWORD).status_code == 401
    assert attempt(fresh, USER, "a brand new password").status_code == 303
    assert fresh.get("/admin").status_code == 200
    assert "user removed" in loaded("admin", "remove-user", USER).output
    assert fresh.get("/admin", follow_redirects=False).status_code == 303
    assert attempt(client_at(site, "198.51.100.21"), USER, "a brand new password").status_code == 401
    assert "no such user" in loaded("admin", "remove-user", USER, ok=False).output
    monkeypatch.setenv("NEW_PASSWORD", "short")
    assert "10" in loaded("admin", "passwd", "nosuchuser", "--password-env", "NEW_PASSWORD", ok=False).output


def test_it_refuses_a_web_secret_under_32_bytes(loaded: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMINDERS_WEB_SECRET", "x" * 31)
    for command in (("serve",), ("check-config",)):
        result = loaded(*command, ok=False)
        assert result.exit_code == 1, result.output
        assert "web.secret_env" in result.output and "31" in result.output and "32" in result.output
        assert "secrets.token_urlsafe(32)" in result.output
    config = load(str(loaded.config))
    engine = make_engine(config.database_url)
    with pytest.raises(ConfigError):
        create_app(config, engine)
    monkeypatch.setenv("REMINDERS_WEB_SECRET", "x" * 32)
    create_app(config, engine)
    assert "填报链接 report links: 已开启" in loaded("check-config").output
    engine.dispose()


def test_links_and_sessions_have_keys_of_their_own() -> None:
    secret = SECRET.encode()
    payload = b"7.2021-06.2021-07-31"
    raw = base64.urlsafe_b64encode(hmac.new(secret, payload, hashlib.sha256).digest()).rstrip(b"=").decode()
    encoded = base64.urlsafe_b64encode(payload).rstrip(b"=").decode()
    with pytest.raises(links.LinkError) as caught:  # signed with the bare secret: how links were signed before
        links.read_token(secret, f"{encoded}.{raw}", date(2021, 6, 20))
    assert caught.value.reason == "forged"
    token = links.make_token(secret, 7, "2021-06", date(2021, 7, 31))
    assert token.split(".")[1] == base64.urlsafe_b64encode(
        hmac.new(links.derive_key(secret, "reminders link v1"), payload, hashlib.sha256).digest()).rstrip(b"=").decode()
    # A cookie signed with the link key is no session, and a session's signature is no link's.
    now = datetime(2021, 6, 21, tzinfo=UTC)
    cookie = Signer(secret).dumps(WebSession(USER, "c", now, 0))
    body, mac = cookie.split(".")
    as_link = base64.urlsafe_b64encode(hmac.new(links.link_key(secret), base64.urlsafe_b64decode(body + "==="),
                                                hashlib.sha256).digest()).rstrip(b"=").decode()
    assert as_link != mac and Signer(secret).loads(f"{body}.{as_link}", now) is None
    assert Signer(secret).loads(cookie, now) is not None


@pytest.mark.parametrize("username", ["duc\x00ha", "\x00", "ducha\x07", "du\x1bcha"])
def test_a_control_character_in_the_login_name_answers_400(site: Site, username: str) -> None:
    response = attempt(site.client, username, PASSWORD)
    assert response.status_code == 400 and "用户名无效" in response.text


@pytest.mark.parametrize("number", ["12%00", "%00", "1%002", "12%07"])
def test_a_control_character_in_a_task_path_answers_404(site: Site, number: str) -> None:
    token = site.login()
    assert site.client.get(f"/admin/tasks/{number}").status_code == 404
    done = site.client.post(f"/admin/tasks/{number}/done", data={"csrf": token, "note": "x"})
    assert done.status_code == 404
    assert site.reports("12") == []
