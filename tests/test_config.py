from pathlib import Path

import pytest

from reminders import config
from reminders.config import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "reminders.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_it_loads_the_example_config() -> None:
    loaded = config.load(str(ROOT / "config.example.toml"))
    assert loaded.schedule.timezone == "Asia/Shanghai"
    assert loaded.delivery.transport == "maildir"


def test_it_defaults_to_a_sqlite_file_beside_the_config(tmp_path: Path) -> None:
    loaded = config.load(write(tmp_path, ""))
    assert loaded.database_url == f"sqlite:///{tmp_path / 'reminders.sqlite3'}"
    assert loaded.delivery.maildir == tmp_path / "maildir"


def test_it_invents_no_address_for_a_maildir_config_without_one(tmp_path: Path) -> None:
    loaded = config.load(write(tmp_path, ""))
    assert (loaded.office.email, loaded.smtp.sender) == ("", "")
    assert loaded.from_address() == "reminders@localhost"
    assert loaded.smtp.sender_name == "督查室"


def test_it_says_which_paths_it_tried_when_there_is_no_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REMINDERS_CONFIG", raising=False)
    with pytest.raises(ConfigError) as error:
        config.load()
    assert str(error.value) == (
        f"{tmp_path / 'reminders.toml'}: 未找到配置文件：未指定 --config，环境变量 REMINDERS_CONFIG 未设置，"
        f"{tmp_path / 'reminders.toml'} 不存在；可复制 config.example.toml 为 reminders.toml 后修改 "
        f"(no config file: no --config, $REMINDERS_CONFIG unset, {tmp_path / 'reminders.toml'} does not exist)"
    )
    assert list(tmp_path.iterdir()) == []


def test_it_reads_sender_as_name_and_address(tmp_path: Path) -> None:
    loaded = config.load(write(tmp_path, '[smtp]\nsender = "督查室 <duchashi@bureau.example>"\n'))
    assert (loaded.smtp.sender, loaded.smtp.sender_name) == ("duchashi@bureau.example", "督查室")
    quoted = config.load(write(tmp_path, '[smtp]\nsender = "\\"Office, Supervision\\" <a@b.example>"\n'))
    assert (quoted.smtp.sender, quoted.smtp.sender_name) == ("a@b.example", "Office, Supervision")
    named = config.load(write(tmp_path, '[smtp]\nsender = "督查室 <a@b.example>"\nsender_name = "市民宗局督查室"\n'))
    assert (named.smtp.sender, named.smtp.sender_name) == ("a@b.example", "市民宗局督查室")


def test_it_signs_with_the_office_name_when_the_sender_has_none(tmp_path: Path) -> None:
    loaded = config.load(write(tmp_path, '[office]\nname = "市民宗局督查室"\n[smtp]\nsender = "a@b.example"\n'))
    assert (loaded.smtp.sender, loaded.smtp.sender_name) == ("a@b.example", "市民宗局督查室")


def test_it_stores_an_internationalised_domain_as_punycode(tmp_path: Path) -> None:
    loaded = config.load(write(tmp_path, '[smtp]\nsender = "ducha@例子.中国"\n[office]\nemail = "ban@例子.中国"\n'))
    assert loaded.smtp.sender == "ducha@xn--fsqu00a.xn--fiqs8s"
    assert loaded.office.email == "ban@xn--fsqu00a.xn--fiqs8s"


def test_it_reads_the_office_contact_and_phone(tmp_path: Path) -> None:
    loaded = config.load(write(tmp_path, '[office]\ncontact = "王敏"\nphone = "0371-65500000"\n'))
    assert (loaded.office.contact, loaded.office.phone) == ("王敏", "0371-65500000")


def test_it_anchors_relative_sqlite_paths_at_the_config_folder(tmp_path: Path) -> None:
    loaded = config.load(write(tmp_path, '[database]\nurl = "sqlite:///var/db.sqlite3"\n'))
    assert loaded.database_url == f"sqlite:///{tmp_path / 'var/db.sqlite3'}"


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        ("[smtp]\nport = \"25\"\n", "smtp.port", "wrong type"),
        ("[smtp]\npasword_env = \"X\"\n", "smtp.pasword_env", "unknown key"),
        ("[smtpp]\nhost = \"x\"\n", "smtpp", "unknown section"),
        ("[smtp]\nsecurity = \"ssl\"\n", "smtp.security", "none / starttls / tls"),
        ("[schedule]\ntimezone = \"Asia/Beijing\"\n", "schedule.timezone", "unknown IANA time zone"),
        ("[schedule]\nreminders = \"0 9 * *\"\n", "schedule.reminders", "5 fields"),
        ("[schedule]\ndigests = \"0 25 1 * *\"\n", "schedule.digests", "无效的 cron"),
        ("[schedule]\nreport_day = 32\n", "schedule.report_day", "1–31"),
        ("[delivery]\ntransport = \"pigeon\"\n", "delivery.transport", "smtp / maildir"),
        ("[database]\nurl = \"nowhere\"\n", "database.url", "SQLAlchemy URL"),
        ("[smtp]\nsender = \"office\"\n", "smtp.sender", "not an email address"),
        ("[smtp]\nsender = \"督查室 <duchashi@bureau.example\"\n", "smtp.sender", "not an email address"),
        ("[smtp]\nsender = \"boss@ex\u0430mple.org\"\n", "smtp.sender", "look-alike"),
        ("[smtp]\nsender = \"督查@example.org\"\n", "smtp.sender", "ASCII"),
        ("[smtp]\nsender = \"a@[127.0.0.1]\"\n", "smtp.sender", "domain"),
        ("[office]\nemail = \"ducha@exa_mple.org\"\n", "office.email", "domain"),
        ("[office]\nemail = \"督查室 <ducha@example.org>\"\n", "office.email", "not an email address"),
        ("[office]\nemail = \"ducha@[\"\n", "office.email", "not an email address"),  # the email parser raised
        ("[mail]\nmessage_id_domain = \"bureau.example>\"\n", "mail.message_id_domain", "domain"),
        ("[mail]\nlanguage = \"fr\"\n", "mail.language", "zh_CN / en"),
        ("[digest]\nledger_max_mb = 0\n", "digest.ledger_max_mb", "more than 0"),
        ("[digest]\nledger_max_mb = nan\n", "digest.ledger_max_mb", "more than 0"),
        ("[digest]\nledger_max_mb = \"6MB\"\n", "digest.ledger_max_mb", "wrong type"),
        ("[smtp]\nsender_name = \"督查室\u2028Bcc: x@evil.example\"\n", "smtp.sender_name", "line break"),
        ("[delivery]\ntransport = \"smtp\"\n[office]\nemail = \"ducha@example.org\"\n", "smtp.sender",
         "transport = \"smtp\""),
        ("[delivery]\ntransport = \"smtp\"\n[smtp]\nsender = \"ducha@example.org\"\n", "office.email",
         "transport = \"smtp\""),
    ],
)
def test_it_names_the_file_and_key_of_a_bad_setting(tmp_path: Path, text: str, key: str, words: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as error:
        config.load(path)
    assert error.value.key == key
    assert str(error.value).startswith(f"{path}: {key}: ")
    assert words in str(error.value)


def test_it_refuses_invalid_toml_naming_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[smtp\nhost=")
    with pytest.raises(ConfigError, match="invalid TOML") as error:
        config.load(path)
    assert str(error.value).startswith(path)


def test_it_refuses_a_named_config_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        config.load(str(tmp_path / "missing.toml"))


def test_it_finds_the_config_through_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "[schedule]\nreport_day = 28\n")
    monkeypatch.setenv("REMINDERS_CONFIG", path)
    assert config.load().schedule.report_day == 28


def test_it_reads_the_password_from_the_named_variable_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = config.load(write(tmp_path, '[smtp]\nusername = "u"\npassword_env = "TEST_SMTP_SECRET"\n'))
    monkeypatch.delenv("TEST_SMTP_SECRET", raising=False)
    with pytest.raises(ConfigError) as error:
        loaded.smtp_password()
    assert error.value.key == "smtp.password_env" and "TEST_SMTP_SECRET" in str(error.value)
    monkeypatch.setenv("TEST_SMTP_SECRET", "s3cret")
    assert loaded.smtp_password() == "s3cret"
    assert "s3cret" not in repr(loaded)


def test_it_refuses_a_password_written_in_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        config.load(write(tmp_path, '[smtp]\npassword = "s3cret"\n'))
    assert error.value.key == "smtp.password"
    assert "s3cret" not in str(error.value)


def test_it_reads_the_misfire_grace_as_a_duration(tmp_path: Path) -> None:
    from datetime import timedelta

    assert config.load(write(tmp_path, '[schedule]\nmisfire_grace = "1d12h"\n')).schedule.grace == timedelta(hours=36)
    with pytest.raises(ConfigError) as error:
        config.load(write(tmp_path, '[schedule]\nmisfire_grace = "three days"\n'))
    assert error.value.key == "schedule.misfire_grace" and "3d" in str(error.value)


def test_it_refuses_a_negative_rate_limit(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        config.load(write(tmp_path, "[smtp]\nmax_per_minute = -1\n"))
    assert error.value.key == "smtp.max_per_minute"


def test_it_refuses_a_line_break_in_any_setting_that_reaches_a_header(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        config.load(write(tmp_path, '[smtp]\nsender_name = "督查室\\r\\nBcc: evil@example.org"\n'))
    assert error.value.key == "smtp.sender_name" and "line break" in str(error.value)


def test_it_documents_every_key_in_the_example_config() -> None:
    from dataclasses import fields

    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    sections = {name: body for name, body in
                (part.split("]\n", 1) for part in ("\n" + text).split("\n[")[1:])}
    from reminders.config_ladder import Ladder

    for name, cls in {**config._SECTIONS, "ladder": Ladder}.items():
        for key in (f.name for f in fields(cls) if f.name != "password"):
            assert f"\n{key} = " in "\n" + sections[name] or f"\n# {key} = " in "\n" + sections[name], (name, key)


def test_it_loads_the_example_config_as_written(monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = config.load(str(ROOT / "config.example.toml"))
    assert (loaded.smtp.sender, loaded.smtp.sender_name) == ("ducha@bureau.example", "督查室")
    assert (loaded.office.email, loaded.office.contact, loaded.office.phone) == (
        "ducha@bureau.example", "王敏", "0371-65500000")


def test_it_reads_helo_name_and_a_ca_file_relative_to_the_config(tmp_path: Path) -> None:
    from tests.smtpserver import self_signed_context

    if self_signed_context(tmp_path) is None:
        pytest.skip("openssl is needed to make a test certificate")
    loaded = config.load(write(tmp_path, '[smtp]\nhelo_name = "reminders.bureau.example"\nca_file = "cert.pem"\n'))
    assert loaded.smtp.helo_name == "reminders.bureau.example"
    assert loaded.smtp.ca_file == tmp_path / "cert.pem"


def test_it_defaults_to_no_helo_name_and_the_system_ca_store(tmp_path: Path) -> None:
    loaded = config.load(write(tmp_path, "[smtp]\n"))
    assert (loaded.smtp.helo_name, loaded.smtp.ca_file) == ("", None)


@pytest.mark.parametrize("name", ["bad name.example", "-lead.example", "under_score.example", "a..b", "中文.example"])
def test_it_refuses_a_helo_name_that_is_not_a_host_name(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError) as error:
        config.load(write(tmp_path, f'[smtp]\nhelo_name = "{name}"\n'))
    assert error.value.key == "smtp.helo_name" and "host name" in str(error.value)


@pytest.mark.parametrize("name", ["mail.bureau.example", "host", "[192.0.2.1]", "mail.bureau.example."])
def test_it_accepts_host_names_and_address_literals_as_helo_name(tmp_path: Path, name: str) -> None:
    assert config.load(write(tmp_path, f'[smtp]\nhelo_name = "{name}"\n')).smtp.helo_name == name


def test_it_refuses_a_missing_ca_file_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        config.load(write(tmp_path, '[smtp]\nca_file = "missing.pem"\n'))
    assert error.value.key == "smtp.ca_file" and "not found" in str(error.value)


def test_it_refuses_a_ca_file_that_is_not_pem(tmp_path: Path) -> None:
    (tmp_path / "notes.pem").write_text("not a certificate\n", encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        config.load(write(tmp_path, '[smtp]\nca_file = "notes.pem"\n'))
    assert error.value.key == "smtp.ca_file" and "PEM" in str(error.value)


def test_it_refuses_a_ca_file_that_is_a_folder(tmp_path: Path) -> None:
    (tmp_path / "certs").mkdir()
    with pytest.raises(ConfigError) as error:
        config.load(write(tmp_path, '[smtp]\nca_file = "certs"\n'))
    assert error.value.key == "smtp.ca_file"
