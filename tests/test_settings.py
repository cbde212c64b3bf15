"""ticketd.yaml and TICKETD_* variables (PRODUCT.md, Files)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from ticketd.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_config_is_the_embedded_default():
    settings = load_settings(ROOT / "ticketd.yaml", environ={})
    assert settings.redis_url is None
    assert settings.smtp.host_port == ("127.0.0.1", 2525)
    assert settings.database_url == f"sqlite:///{ROOT / 'var' / 'ticketd.db'}"
    assert settings.data_dir == ROOT / "var" and settings.rules_file == ROOT / "rules.yaml"
    assert settings.imap == []


def test_the_shipped_configs_commented_examples_load_once_uncommented(tmp_path):
    """An admin uncomments an example section as shipped: it must be settings ticketd takes."""
    text = (ROOT / "ticketd.yaml").read_text()
    config = tmp_path / "ticketd.yaml"
    config.write_text(re.sub(r"(?m)^# ((?:[a-z_]+:|  [a-z_]+: ).*)$", r"\1", text))
    settings = load_settings(config, environ={})
    assert settings.retention.closed_tickets_days == 365 and settings.retention.raw_mail_days == 30
    assert settings.agent_auth.require_authentication_results
    assert settings.agent_auth.trusted_authserv_ids == ["mx.example.com"]
    assert settings.customer_auth.require_authentication_results


def test_every_key_can_come_from_the_environment_nested_with_double_underscore(tmp_path):
    config = tmp_path / "ticketd.yaml"
    config.write_text("support_address: help@example.net\nsmtp: {listen: 127.0.0.1:2525}\n")
    settings = load_settings(config, environ={
        "TICKETD_SMTP__LISTEN": "0.0.0.0:25",
        "TICKETD_SMTP__MAX_MESSAGE_BYTES": "1000",
        "TICKETD_REDIS_URL": "redis://127.0.0.1:6379/0",
        "TICKETD_OUTBOUND__STARTTLS": "true",
        "TICKETD_IMAP": '[{host: imap.example.net, username: u, password: p}]',
        "UNRELATED": "x",
    })
    assert settings.support_address == "help@example.net"
    assert settings.smtp.host_port == ("0.0.0.0", 25) and settings.smtp.max_message_bytes == 1000
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.outbound.starttls is True
    assert settings.imap[0].host == "imap.example.net" and settings.imap[0].folder == "INBOX"


def test_text_settings_from_the_environment_are_taken_as_written(tmp_path):
    settings = load_settings(None, environ={
        "TICKETD_SECRET_KEY": "123456",                 # YAML would make it a number
        "TICKETD_PREVIOUS_SECRET_KEYS": '["old #1"]',   # a list is YAML
        "TICKETD_OUTBOUND__PASSWORD": "#pw",            # YAML would make it a comment: None
        "TICKETD_OUTBOUND__USERNAME": "%user",          # YAML would refuse it
        "TICKETD_SUPPORT_ADDRESS": "help#desk@example.net",   # YAML would cut it at the #
        "TICKETD_REDIS_URL": "null",
        "TICKETD_SMTP__MAX_MESSAGE_BYTES": "1000",
        "TICKETD_OUTBOUND__STARTTLS": "yes",
    })
    assert settings.secret_key == "123456"
    assert settings.previous_secret_keys == ["old #1"]
    assert settings.outbound.password == "#pw" and settings.outbound.username == "%user"
    assert settings.support_address == "help#desk@example.net"
    assert settings.redis_url is None
    assert settings.smtp.max_message_bytes == 1000 and settings.outbound.starttls is True


def test_a_variable_that_names_no_setting_is_ignored_with_a_warning(caplog):
    # Kubernetes sets TICKETD_PORT, TICKETD_SERVICE_HOST, ... for a service named ticketd.
    settings = load_settings(None, environ={"TICKETD_PORT": "tcp://10.0.0.1:2525", "TICKETD_SMTP__LISTN": "x"})
    assert settings.smtp.listen == "127.0.0.1:2525"
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert "TICKETD_PORT is not a ticketd setting (port); ignored" in warnings
    assert ("TICKETD_SMTP__LISTN is not a ticketd setting (smtp.listn); ignored; did you mean TICKETD_SMTP__LISTEN?"
            in warnings)


def test_an_environment_value_that_cannot_be_read_names_its_variable():
    with pytest.raises(ValueError, match=r"TICKETD_SMTP__MAX_MESSAGE_BYTES: not a valid value"):
        load_settings(None, environ={"TICKETD_SMTP__MAX_MESSAGE_BYTES": "[1000"})
    with pytest.raises(ValueError, match=r"TICKETD_IMAP__0__PASSWORD: imap is a list; set all of it"):
        load_settings(None, environ={"TICKETD_IMAP__0__PASSWORD": "secret"})


def test_a_key_written_twice_in_ticketd_yaml_is_an_error(tmp_path):
    config = tmp_path / "ticketd.yaml"
    config.write_text("secret_key: first\nsmtp: {listen: 127.0.0.1:2525}\nsecret_key: second\n")
    with pytest.raises(ValueError, match=r"ticketd.yaml:3: not valid YAML: `secret_key` is written twice in one "
                                         r"mapping \(first on line 1\); keep one"):
        load_settings(config, environ={})


@pytest.mark.parametrize("content, error", [
    (b"support_address: support@example.com\nsecret_key: abc\x01def\n",
     "ticketd.yaml:2:16: character U+0001 is not allowed in YAML (a control character, which most editors do not "
     "show); delete it"),
    (b"support_address: support@example.com\n# J\xf6rg's desk\n",
     "ticketd.yaml:2:4: byte 0xf6 is not UTF-8; save the file as UTF-8"),
    # PyYAML's composer recurses once per level: RecursionError, a traceback.
    (b"secret_key: " + b"[" * 5000 + b"]" * 5000 + b"\n",
     "ticketd.yaml: not valid YAML: nested too deep to read (hundreds of levels of brackets or indentation); a "
     "file of settings or rules nests a few levels"),
])
def test_a_character_yaml_refuses_is_located_and_no_command_shows_a_traceback(tmp_path, content, error):
    """As in rules.yaml (found by mutating rules files at random): a control character (a NUL, an escape
    pasted with a password) gave every command YAML's reader error as a traceback; a Latin-1 byte was not
    located."""
    from tests.cli import run_cli

    config = tmp_path / "ticketd.yaml"
    config.write_bytes(content)
    with pytest.raises(ValueError) as raised:
        load_settings(config, environ={})
    assert str(raised.value) == f"{config.parent}/{error}"
    for command in (("tickets", "list"), ("run",)):
        done = run_cli(config, *command)
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        assert error in done.stderr
    status = run_cli(config, "status")
    assert status.returncode == 3 and error in status.stdout + status.stderr, (status.stdout, status.stderr)


def test_a_variable_nested_too_deep_is_refused_by_name():
    with pytest.raises(ValueError, match=r"^TICKETD_ACCEPT_WORDS: not a valid value \(nested too deep to read\)$"):
        load_settings(None, environ={"TICKETD_ACCEPT_WORDS": "[" * 5000})


def test_paths_are_relative_to_the_config_file(tmp_path):
    (tmp_path / "etc").mkdir()
    config = tmp_path / "etc" / "ticketd.yaml"
    config.write_text("database_url: sqlite:///db/t.db\ndata_dir: data\nrules_file: rules.yaml\n")
    settings = load_settings(config, environ={})
    assert settings.database_url == f"sqlite:///{tmp_path / 'etc' / 'db' / 't.db'}"
    assert settings.data_dir == tmp_path / "etc" / "data"
    assert settings.rules_file == tmp_path / "etc" / "rules.yaml"


def test_paths_left_at_their_defaults_are_beside_the_config_file_too(tmp_path, monkeypatch):
    """Started from another directory (a service manager's, cron's), the daemon once opened a second,
    empty desk there: `var/` and `rules.yaml` of the working directory."""
    (tmp_path / "etc").mkdir()
    (tmp_path / "elsewhere").mkdir()
    config = tmp_path / "etc" / "ticketd.yaml"
    config.write_text("support_address: help@example.com\n")
    monkeypatch.chdir(tmp_path / "elsewhere")
    settings = load_settings(config, environ={})
    assert settings.database_url == f"sqlite:///{tmp_path / 'etc' / 'var' / 'ticketd.db'}"
    assert settings.data_dir == tmp_path / "etc" / "var"
    assert settings.rules_file == tmp_path / "etc" / "rules.yaml"
    assert settings.templates_dir is None   # the shipped templates
    # Without a file they are the working directory's, as before.
    bare = load_settings(None, environ={})
    assert (bare.data_dir, bare.rules_file) == (Path("var"), Path("rules.yaml"))


def test_a_typo_in_a_key_is_an_error_not_a_silent_default(tmp_path):
    config = tmp_path / "ticketd.yaml"
    config.write_text("smtp: {listn: 127.0.0.1:2525}\n")
    with pytest.raises(ValidationError, match="listn"):
        load_settings(config, environ={})


def test_imap_takes_implicit_tls_or_starttls_not_both(tmp_path):
    config = tmp_path / "ticketd.yaml"
    config.write_text("imap: [{host: imap.example.net, port: 143, ssl: false, starttls: true, "
                      "username: u, password: p}]\n")
    assert load_settings(config, environ={}).imap[0].starttls is True
    config.write_text("imap: [{host: imap.example.net, starttls: true, username: u, password: p}]\n")
    with pytest.raises(ValidationError, match="not both"):
        load_settings(config, environ={})   # ssl defaults to true (port 993)


@pytest.mark.parametrize("boxes, error", [
    # Moved into the folder it is taken from, each mail came back under a new UID, again and again.
    ("[{host: imap.example.net, username: u, password: p, move_to: inbox}]", "is the folder polled"),
    ("[{host: imap.example.net, username: u, password: p, folder: Support, move_to: Support}]",
     "is the folder polled"),
    # Twice the same folder: two pollers, one cursor, every mail fetched twice.
    ("[{host: imap.example.net, username: u, password: p}, {host: imap.example.net, username: u, password: q, "
     "folder: Inbox}]", r"imap\[1\] is the same mailbox as imap\[0\]"),
])
def test_a_mailbox_that_would_take_its_mail_again_is_refused(tmp_path, boxes, error):
    config = tmp_path / "ticketd.yaml"
    config.write_text(f"imap: {boxes}\n")
    with pytest.raises(ValidationError, match=error):
        load_settings(config, environ={})
    # Another folder of the same account, or the same name in another case outside INBOX, is fine.
    config.write_text("imap: [{host: imap.example.net, username: u, password: p, move_to: Done},"
                      " {host: imap.example.net, username: u, password: p, folder: Done, move_to: done}]\n")
    assert [box.move_to for box in load_settings(config, environ={}).imap] == ["Done", "done"]


def test_cli_names_the_bad_key_and_exits_1(tmp_path):
    import subprocess
    import sys

    config = tmp_path / "ticketd.yaml"
    config.write_text("smtp: {listn: 127.0.0.1:2525}\n")
    done = subprocess.run([sys.executable, "-m", "ticketd.cli", "tickets", "list", "--config", str(config)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert f"{config} is not valid" in done.stderr
    assert f"{config}:1: smtp.listn: unknown key `smtp.listn`; did you mean `listen`?" in done.stderr


def test_cli_errors_in_ticketd_yaml_name_the_line_and_what_a_section_is(tmp_path):
    """As rules.yaml's errors do; `smtp: 5` said "Input should be a valid dictionary or instance of SmtpSettings"."""
    import os
    import subprocess
    import sys

    config = tmp_path / "ticketd.yaml"
    config.write_text("support_address: help@example.com\nsmtp: 5\nimap:\n  - host: imap.example.com\n"
                      "    usrname: u\n")

    def errors(**environ) -> list[str]:
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("TICKETD_")}, **environ}
        done = subprocess.run([sys.executable, "-m", "ticketd.cli", "tickets", "list", "--config", str(config)],
                              capture_output=True, text=True, timeout=60, env=env)
        assert done.returncode == 1
        return done.stderr.splitlines()

    said = errors()
    assert said[0] == f"Error: {config} is not valid:"
    assert f"  {config}:2: smtp: must be a section of settings (keys indented under it: listen, " in said[1]
    assert said[1].endswith("not 5")
    assert any(line.startswith(f"  {config}:5: imap.0.usrname: unknown key") for line in said)
    assert any(line.startswith(f"  {config}:4: imap.0.username: Field required") for line in said)
    config.write_text("support_address: help@example.com\n")
    said = errors(TICKETD_SMTP="garbage")
    assert said[0] == "Error: the settings from TICKETD_ variables are not valid:"
    assert said[1].startswith("  smtp: must be a section of settings") and said[1].endswith("(from TICKETD_SMTP)")


def test_a_file_the_cli_cannot_read_is_an_error_saying_why_and_exits_1(tmp_path):
    """PRODUCT.md: `rules check` exits 1 on error; a directory given as a file was click's usage error (2)."""
    import subprocess
    import sys

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "ticketd.cli", *args], capture_output=True, text=True,
                              timeout=60, cwd=tmp_path)

    (tmp_path / "rules.yaml").write_text("agents: []\n")
    for args, says in [
        (("rules", "check", str(tmp_path)), f"{tmp_path}: cannot read the rules file: Is a directory"),
        (("rules", "test", str(tmp_path), "mail.eml"), f"{tmp_path}: cannot read the rules file: Is a directory"),
        (("rules", "test", "rules.yaml", "missing.eml"), "cannot read the mail missing.eml: No such file"),
        (("tickets", "list", "--config", str(tmp_path)), f"cannot read settings {tmp_path}: Is a directory"),
        (("tickets", "list", "--config", "missing.yaml"), "cannot read settings missing.yaml: No such file"),
    ]:
        done = cli(*args)
        assert done.returncode == 1 and says in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr and "Errno" not in done.stderr


def test_cli_names_the_environment_variable_of_a_bad_value(tmp_path):
    import os
    import subprocess
    import sys

    config = tmp_path / "ticketd.yaml"
    config.write_text("database_url: sqlite:///t.db\n")
    env = dict(os.environ, TICKETD_SMTP__MAX_MESSAGE_BYTES="lots")
    done = subprocess.run([sys.executable, "-m", "ticketd.cli", "tickets", "list", "--config", str(config)],
                          capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "smtp.max_message_bytes: got 'lots'; write a whole number of bytes, e.g. 26214400" in done.stderr
    assert "(from TICKETD_SMTP__MAX_MESSAGE_BYTES)" in done.stderr


def test_cli_with_a_broken_rules_file_lists_every_error_and_exits_1(tmp_path):
    import subprocess
    import sys

    (tmp_path / "rules.yaml").write_text("agents:\n  - {emial: x@example.com}\n")
    config = tmp_path / "ticketd.yaml"
    config.write_text("rules_file: rules.yaml\ndatabase_url: sqlite:///t.db\n")
    done = subprocess.run([sys.executable, "-m", "ticketd.cli", "run", "--config", str(config)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "agents[0].email: this key is required" in done.stderr
    assert "unknown key `emial`; did you mean `email`?" in done.stderr


def test_the_cli_takes_ticketd_config_before_a_ticketd_yaml_in_the_working_directory(tmp_path):
    import os
    import subprocess
    import sys

    (tmp_path / "ticketd.yaml").write_text("smtp: {listn: wrong file}\n")   # would fail if read
    chosen = tmp_path / "etc" / "chosen.yaml"
    chosen.parent.mkdir()
    chosen.write_text("database_url: sqlite:///chosen.db\n")
    env = dict(os.environ, TICKETD_CONFIG=str(chosen))
    done = subprocess.run([sys.executable, "-m", "ticketd.cli", "tickets", "list", "--json"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60)
    # The chosen file's database, relative to it (reading commands create none).
    assert done.returncode == 1 and f"no database at {chosen.parent / 'chosen.db'}:" in done.stderr, done.stderr


def test_by_default_outbound_mail_outlasts_days_of_smarthost_outage():
    from outbound.delivery import backoff_seconds

    outbound = load_settings(None, environ={}).outbound
    waits = [backoff_seconds(outbound.retry_base_seconds, k) for k in range(1, outbound.max_attempts)]
    assert sum(waits) >= 4 * 86400   # mail servers keep trying for days; an hour's outage must lose nothing


def test_the_support_address_is_written_as_smtp_carries_it(tmp_path):
    config = tmp_path / "ticketd.yaml"
    config.write_text("support_address: Hilfe@Bücher.example\n")
    assert load_settings(config, environ={}).support_address == "hilfe@xn--bcher-kva.example"
    config.write_text("support_address: hilfe@straße.de\n")   # IDNA 2008: not strasse.de, another domain
    assert load_settings(config, environ={}).support_address == "hilfe@xn--strae-oqa.de"
    config.write_text("support_address: hjälp@example.se\n")
    with pytest.raises(ValidationError, match="ASCII local part.*smtp.extra_addresses"):
        load_settings(config, environ={})


@pytest.mark.parametrize("command", [("run",), ("worker",)])
def test_the_daemon_and_workers_refuse_to_start_without_a_rules_file(tmp_path, sqlite_url, command):
    """A mistyped rules_file would run a desk whose tickets wait for nobody; reading commands still work."""
    from tests.cli import run_cli
    from tests.conftest import write_config

    config = write_config(tmp_path, sqlite_url, extra="redis_url: redis://127.0.0.1:1/0\n")
    (tmp_path / "rules.yaml").unlink()
    done = run_cli(config, *command)
    assert done.returncode == 1
    assert f"no rules file at {tmp_path / 'rules.yaml'}" in done.stderr and "TICKETD_RULES_FILE" in done.stderr
    assert not (tmp_path / "ticketd.db").exists()   # refused before the database was touched
    status = run_cli(config, "status")
    assert status.returncode == 2 and "health   CRITICAL" in status.stdout, status.stderr   # no daemon, no Redis


def test_the_daemon_refused_for_a_broken_rules_file_leaves_no_database_behind(tmp_path, sqlite_url):
    from tests.cli import run_cli
    from tests.conftest import write_config

    config = write_config(tmp_path, sqlite_url)
    (tmp_path / "rules.yaml").write_text("agents: [{email: not-an-address}]\n")
    done = run_cli(config, "run")
    assert done.returncode == 1 and "rules.yaml is not valid" in done.stderr, done.stderr
    assert not (tmp_path / "ticketd.db").exists()


def test_a_database_an_older_version_put_in_the_working_directory_stops_the_start(tmp_path, monkeypatch):
    """ticketd.yaml without database_url once meant ./var/ticketd.db of the working directory (a service
    manager's), now the file's; started after the upgrade, the daemon would open a second, empty desk."""
    import os
    import subprocess
    import sys

    from ticketd.settings import moved_default_database

    (tmp_path / "etc").mkdir()
    (tmp_path / "srv" / "var").mkdir(parents=True)
    config = tmp_path / "etc" / "ticketd.yaml"
    config.write_text("secret_key: s3cret\nsmtp: {listen: 127.0.0.1:1}\n")
    (tmp_path / "etc" / "rules.yaml").write_text("agents: []\n")
    old = tmp_path / "srv" / "var" / "ticketd.db"
    old.write_bytes(b"")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKETD_")}
    done = subprocess.run([sys.executable, "-m", "ticketd.cli", "run", "--config", str(config)],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path / "srv", env=env)
    assert done.returncode == 1, done.stderr
    assert f"but {old} exists, where earlier versions put it" in done.stderr
    assert f"database_url: sqlite:///{old}" in done.stderr
    assert not (tmp_path / "etc" / "var").exists()   # no second desk begun
    # With database_url written in the file, nothing stands in the way.
    monkeypatch.chdir(tmp_path / "srv")
    assert moved_default_database(load_settings(config, environ={})) == old
    config.write_text(f"secret_key: s3cret\ndatabase_url: sqlite:///{old}\n")
    assert moved_default_database(load_settings(config, environ={})) is None
