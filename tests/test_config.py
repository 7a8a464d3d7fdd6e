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
