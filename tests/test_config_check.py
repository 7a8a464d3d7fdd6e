"""`check-config` shows everything that shapes the mails, no config file means no guessing, and whatever
`check-config` accepts, `send` accepts (a real send to the recording SMTP server)."""

from __future__ import annotations

import email
import socket
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from click.testing import CliRunner

from reminders.cli.app import cli
from tests.conftest import Cli, write_config
from tests.smtpserver import RecordingServer


def _no_config_anywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REMINDERS_CONFIG", raising=False)
    return tmp_path / "reminders.toml"


def test_it_creates_no_database_without_a_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = _no_config_anywhere(tmp_path, monkeypatch)
    result = CliRunner().invoke(cli, ["init"])
    assert result.exit_code == 1
    assert result.output.startswith(
        f"Error: {missing}: 未找到配置文件：未指定 --config，环境变量 REMINDERS_CONFIG 未设置，{missing} 不存在；")
    assert list(tmp_path.iterdir()) == []


def test_it_reports_in_check_config_that_no_file_was_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = _no_config_anywhere(tmp_path, monkeypatch)
    result = CliRunner().invoke(cli, ["check-config"])
    assert result.exit_code == 1
    assert result.output == (
        "未找到配置文件 (no config file found). 查找过 (tried):\n"
        "  --config                未指定 (not given)\n"
        "  $REMINDERS_CONFIG       未设置 (not set)\n"
        f"  ./reminders.toml        {missing} 不存在 (does not exist)\n"
        "可复制 config.example.toml 为 reminders.toml 后修改 (copy config.example.toml to reminders.toml and edit it)\n"
    )
    assert list(tmp_path.iterdir()) == []


def _mail_lines(output: str) -> dict[str, str]:
    return {line.split(":", 1)[0].strip(): line.split(":", 1)[1].strip() for line in output.splitlines()
            if ":" in line and not line.startswith("警告")}


def test_it_shows_everything_that_shapes_the_mails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_LINK_SECRET", "s3cret-links-" + "k" * 32)
    extra = ('\n[web]\nbase_url = "https://ducha.bureau.example"\nsecret_env = "TEST_LINK_SECRET"\n'
             '[mail]\nlanguage = "en"\n')
    config = write_config(tmp_path / "r.toml", f"sqlite:///{tmp_path / 'r.sqlite3'}", transport="smtp", extra=extra)
    text = config.read_text(encoding="utf-8").replace(
        'email = "ducha@example.org"\n', 'email = "ducha@example.org"\ncontact = "王敏"\nphone = "0371-65500000"\n')
    config.write_text(text, encoding="utf-8")
    result = Cli(config)("check-config")
    lines = _mail_lines(result.output)
    assert lines["办公室 office"] == "督查室"
    assert lines["办公室邮箱 office email"] == "ducha@example.org"
    assert lines["联系人 contact"] == "王敏"
    assert lines["电话 phone"] == "0371-65500000"
    assert lines["发件人 From"] == "市民宗局督查室 <ducha@example.org>"
    assert lines["回复地址 Reply-To"] == "ducha@example.org"
    assert lines["邮件语言 language"] == "en"
    assert lines["发送方式 transport"] == "smtp → 127.0.0.1:25 (none)"
    assert lines["EHLO 主机名 helo_name"] == f"{socket.getfqdn()}（本机完整域名 this machine's fully qualified name）"
    assert lines["CA 证书 ca_file"] == "系统证书库 (the system's CA store)"
    assert lines["网址 base URL"] == "https://ducha.bureau.example"
    assert lines["填报链接 report links"] == (
        "已开启，密钥取自环境变量 TEST_LINK_SECRET (on: secret from $TEST_LINK_SECRET)")
    assert "警告" not in result.output
    assert "s3cret-links" not in result.output


def test_it_warns_of_a_localhost_link_with_real_smtp_and_of_links_being_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REMINDERS_WEB_SECRET", raising=False)
    config = write_config(tmp_path / "r.toml", f"sqlite:///{tmp_path / 'r.sqlite3'}", transport="smtp")
    result = Cli(config)("check-config")
    lines = _mail_lines(result.output)
    assert lines["网址 base URL"] == "http://127.0.0.1:8025"
    assert lines["填报链接 report links"] == (
        "未开启：环境变量 REMINDERS_WEB_SECRET 未设置，提醒邮件不带填报链接 "
        "(off: $REMINDERS_WEB_SECRET is not set; reminders carry no report link)")
    warnings = [line for line in result.output.splitlines() if line.startswith("警告")]
    assert warnings == [
        "警告：[web] base_url 指向本机 http://127.0.0.1:8025，各单位收到的填报链接在他们的电脑上打不开；"
        "请设为各单位能访问的地址 (warning: base_url points at this machine; units could not open their links)",
        "警告：填报链接未开启，请设置环境变量 REMINDERS_WEB_SECRET (warning: report links are off: "
        "set $REMINDERS_WEB_SECRET)",
    ]


def test_it_shows_what_a_maildir_config_without_addresses_writes(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMINDERS_WEB_SECRET", "x" * 32)
    config = tmp_path / "r.toml"
    config.write_text("", encoding="utf-8")
    result = Cli(config)("check-config")
    lines = _mail_lines(result.output)
    assert lines["办公室邮箱 office email"] == "未设置 (not set)"
    assert lines["发件人 From"] == ("督查室 <reminders@localhost>（未设置 [smtp] sender，仅可写入 Maildir "
                                 "(not set: Maildir only)）")
    assert lines["回复地址 Reply-To"] == "无 (none)"
    assert "警告" not in result.output  # a localhost link is fine while nothing leaves the machine


def test_it_refuses_in_check_config_a_template_folder_that_send_could_not_use(tmp_path: Path) -> None:
    config = write_config(tmp_path / "r.toml", f"sqlite:///{tmp_path / 'r.sqlite3'}",
                          extra='[mail]\ntemplates = "my-templates"\n')
    result = Cli(config)("check-config", ok=False)
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: {config}: mail.templates: 模板目录不存在 {tmp_path / 'my-templates'} ")


def _received(server: RecordingServer) -> list[tuple[str, EmailMessage]]:
    return [(m.sender, email.message_from_bytes(m.data, policy=policy.default)) for m in server.messages]


def test_it_sends_from_a_sender_written_as_name_and_address(loaded: Cli, smtp: RecordingServer) -> None:
    text = loaded.config.read_text(encoding="utf-8")
    text = text.replace('sender = "ducha@example.org"\nsender_name = "市民宗局督查室"\n',
                        'sender = "督查室 <duchashi@bureau.example>"\n')
    loaded.config.write_text(text, encoding="utf-8")
    loaded("check-config")
    loaded("send", "--cycle", "2021-06")  # exits 0: nothing failed
    received = _received(smtp)
    assert len(received) == 12  # 7 reminders, 1 督办通知, 4 digests
    for envelope_sender, msg in received:
        assert envelope_sender == "duchashi@bureau.example"
        assert [(a.display_name, a.addr_spec) for a in msg["From"].addresses] == [("督查室", "duchashi@bureau.example")]
        assert str(msg["Message-ID"]).endswith("@bureau.example>")
        assert msg["Auto-Submitted"] == "auto-generated"
        assert msg["X-Auto-Response-Suppress"] == "All"
        assert msg["Content-Language"] == "zh-CN"
        assert msg["Precedence"] is None
