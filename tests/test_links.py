"""Signed unit links: tokens that read back, refuse forgery, alteration, expiry and garbage; reminders carry them."""

from __future__ import annotations

import base64
import re
from datetime import date
from pathlib import Path

import pytest

from reminders import config as config_module
from reminders.config import ConfigError
from reminders.tracking.links import LinkError, default_expiry, link_key, make_token, read_token, report_url
from tests.conftest import Cli, write_config
from tests.smtpserver import RecordingServer
from tests.webenv import SECRET, library, parsed, text_of

KEY = SECRET.encode()


def test_it_reads_back_the_unit_and_cycle_of_a_token() -> None:
    token = make_token(KEY, 7, "2021-06", date(2021, 7, 31))
    assert re.fullmatch(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", token)
    assert read_token(KEY, token, date(2021, 6, 20)) == (7, "2021-06")
    assert read_token(KEY, token, date(2021, 7, 31)) == (7, "2021-06")  # valid through its expiry day


def test_it_refuses_a_token_signed_with_another_secret() -> None:
    token = make_token(b"another secret", 7, "2021-06", date(2021, 7, 31))
    with pytest.raises(LinkError) as caught:
        read_token(KEY, token, date(2021, 6, 20))
    assert caught.value.reason == "forged"


def test_it_refuses_a_token_whose_payload_was_altered() -> None:
    token = make_token(KEY, 7, "2021-06", date(2021, 7, 31))
    signature = token.split(".")[1]
    for payload in ("8.2021-06.2021-07-31", "7.2021-07.2021-07-31", "7.2021-06.2029-12-31"):
        altered = base64.urlsafe_b64encode(payload.encode()).rstrip(b"=").decode() + "." + signature
        with pytest.raises(LinkError) as caught:
            read_token(KEY, altered, date(2021, 6, 20))
        assert caught.value.reason == "forged"


def test_it_refuses_an_expired_token() -> None:
    token = make_token(KEY, 7, "2021-06", date(2021, 7, 31))
    with pytest.raises(LinkError) as caught:
        read_token(KEY, token, date(2021, 8, 1))
    assert caught.value.reason == "expired"


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "!!!.???", "x" * 300, "YWJj.", ".YWJj", "a b.c"])
def test_it_refuses_a_malformed_token(token: str) -> None:
    with pytest.raises(LinkError) as caught:
        read_token(KEY, token, date(2021, 6, 20))
    assert caught.value.reason == "malformed"


def test_it_refuses_a_well_signed_token_with_a_payload_it_does_not_know() -> None:
    import hashlib
    import hmac

    payload = b"7.2021-13.2021-07-31"
    signature = hmac.new(link_key(KEY), payload, hashlib.sha256).digest()
    token = ".".join(base64.urlsafe_b64encode(part).rstrip(b"=").decode() for part in (payload, signature))
    with pytest.raises(LinkError) as caught:
        read_token(KEY, token, date(2021, 6, 20))
    assert caught.value.reason == "malformed"


def test_it_expires_at_the_end_of_the_next_month_and_builds_the_url() -> None:
    assert default_expiry("2021-06") == date(2021, 7, 31)
    assert default_expiry("2021-12") == date(2022, 1, 31)
    assert default_expiry("2024-01") == date(2024, 2, 29)
    assert report_url("https://ducha.example.org/", "abc.def") == "https://ducha.example.org/r/abc.def"


def test_it_puts_a_link_in_each_reminder_that_reads_back_to_its_unit_and_cycle(
    loaded: Cli, smtp: RecordingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REMINDERS_WEB_SECRET", SECRET)
    loaded("send", "--cycle", "2021-06", "--kind", "reminders")
    env = library(loaded)
    message = next(m for m in smtp.messages if m.recipients == ("minzu@example.org",))
    found = re.search(r"点击填报：(\S+)", text_of(message.data))
    assert found and found[1].startswith("http://127.0.0.1:8025/r/")
    token = found[1].rsplit("/r/", 1)[1]
    assert read_token(KEY, token, date(2021, 6, 20)) == (env.unit_id("民族工作处"), "2021-06")
    html = str(parsed(message.data).get_body(("html",)).get_content())  # type: ignore[union-attr]
    assert f'href="{found[1]}"' in html
    with pytest.raises(LinkError):
        read_token(KEY, token, date(2021, 8, 1))


def test_it_leaves_the_link_out_without_a_secret(loaded: Cli, smtp: RecordingServer,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REMINDERS_WEB_SECRET", raising=False)
    assert library(loaded).config.web_secret() is None
    loaded("send", "--cycle", "2021-06", "--kind", "reminders")
    assert smtp.messages and all("/r/" not in text_of(m.data) for m in smtp.messages)


@pytest.mark.parametrize(("line", "key"), [
    ("port = 0", "web.port"), ('base_url = "ftp://x"', "web.base_url"), ('secret_env = "A B"', "web.secret_env"),
    ("link_days = 0", "web.link_days"), ('link_days = "45"', "web.link_days"), ("colour = 1", "web.colour"),
])
def test_it_names_the_web_key_that_is_wrong(tmp_path: Path, line: str, key: str) -> None:
    path = write_config(tmp_path / "r.toml", "sqlite:///x.sqlite3")
    path.write_text(path.read_text(encoding="utf-8") + f"\n[web]\n{line}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        config_module.load(str(path))
    assert caught.value.key == key


def test_it_reads_the_web_settings_and_the_chase_cron(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_config(tmp_path / "r.toml", "sqlite:///x.sqlite3", extra='chase = "0 10 27 * *"\n')
    path.write_text(path.read_text(encoding="utf-8")
                    + '\n[web]\nbase_url = "https://ducha.example.org"\nsecret_env = "MY_SECRET"\nlink_days = 45\n',
                    encoding="utf-8")
    config = config_module.load(str(path))
    assert config.schedule.chase == "0 10 27 * *" and config.web.link_days == 45 and config.web.port == 8025
    monkeypatch.delenv("MY_SECRET", raising=False)
    assert config.web_secret() is None
    monkeypatch.setenv("MY_SECRET", "k")
    assert config.web_secret() == b"k"
    bad = path.read_text(encoding="utf-8").replace('chase = "0 10 27 * *"', 'chase = "every day"')
    path.write_text(bad, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        config_module.load(str(path))
    assert caught.value.key == "schedule.chase"
