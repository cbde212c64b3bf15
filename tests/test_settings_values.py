"""ticketd.yaml values: bounds, YAML 1.1 surprises, one-item lists and the messages for mistakes."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from pydantic import ValidationError

from tests.cli import run_cli
from ticketd.settings import load_settings


def _file(tmp_path, text: str):
    config = tmp_path / "ticketd.yaml"
    config.write_text(text)
    return config


def _refused(tmp_path, text: str, where: str, message: str) -> None:
    """`text` in ticketd.yaml is a ValidationError at `where` whose message matches `message`."""
    with pytest.raises(ValidationError) as caught:
        load_settings(_file(tmp_path, text), environ={})
    found = [(".".join(str(p) for p in e["loc"]), e["msg"]) for e in caught.value.errors()]
    assert any(loc == where and re.search(message, msg) for loc, msg in found), found


@pytest.mark.parametrize("text, where, message", [
    ("smtp: {listen: garbage}\n", "smtp.listen", r"host:port with a port from 1 to 65535.*'garbage'"),
    ("smtp: {listen: '127.0.0.1:99999'}\n", "smtp.listen", r"port from 1 to 65535"),
    ("smtp: {listen: '127.0.0.1:0'}\n", "smtp.listen", r"port from 1 to 65535"),
    ("smtp: {listen: '127.0.0.1:'}\n", "smtp.listen", r"port from 1 to 65535"),
    ("smtp: {max_message_bytes: 0}\n", "smtp.max_message_bytes", "greater than 0"),
    ("imap: [{host: h, username: u, password: p, max_message_bytes: -1}]\n", "imap.0.max_message_bytes",
     "greater than 0"),
    ("imap: [{host: h, username: u, password: p, port: 70000}]\n", "imap.0.port", "less than or equal to 65535"),
    ("imap: [{host: h, username: u, password: p, poll_seconds: 0}]\n", "imap.0.poll_seconds",
     "greater than or equal to 0.05"),
    ("outbound: {port: 0}\n", "outbound.port", "greater than or equal to 1"),
    ("outbound: {port: 65536}\n", "outbound.port", "less than or equal to 65535"),
    ("outbound: {max_attempts: 0}\n", "outbound.max_attempts", "greater than or equal to 1"),
    ("outbound: {timeout_seconds: 0}\n", "outbound.timeout_seconds", "greater than 0"),
    ("outbound: {retry_base_seconds: -1}\n", "outbound.retry_base_seconds", "greater than 0"),
    ("outbound: {max_attachment_bytes: -1}\n", "outbound.max_attachment_bytes", "greater than or equal to 0"),
    ("max_mime_depth: 0\n", "max_mime_depth", "greater than or equal to 1"),
    ("max_mime_parts: 0\n", "max_mime_parts", "greater than or equal to 1"),
    ("auto_mails_per_recipient_per_hour: -1\n", "auto_mails_per_recipient_per_hour", "greater than or equal to 0"),
    ("sweep_seconds: 0\n", "sweep_seconds", "greater than or equal to 0.05"),
    ("sweep_seconds: .inf\n", "sweep_seconds", "finite number"),
    ("prepare_processes: -1\n", "prepare_processes", "greater than or equal to 0"),
    ("retention: {closed_tickets_days: 0}\n", "retention.closed_tickets_days", "greater than 0"),
    ("log_level: verbose\n", "log_level", r"one of DEBUG, INFO, WARNING, ERROR, CRITICAL; got 'verbose'"),
    ("redis_url: localhost:6379\n", "redis_url", r"redis://, rediss:// or unix:// URL"),
    ("redis_url: http://localhost:6379\n", "redis_url", r"redis://, rediss:// or unix:// URL"),
])
def test_a_value_out_of_bounds_is_an_error_naming_its_key(tmp_path, text, where, message):
    _refused(tmp_path, text, where, message)


def test_values_at_the_bounds_are_taken(tmp_path):
    settings = load_settings(_file(tmp_path, (
        "smtp: {listen: '[::1]:65535', max_message_bytes: 1}\n"
        "outbound: {port: 1, max_attempts: 1, max_attachment_bytes: 0}\n"
        "auto_mails_per_recipient_per_hour: 0\n"   # no automatic mail to customers at all
        "max_mime_depth: 1\nmax_mime_parts: 1\nsweep_seconds: 0.05\nlog_level: debug\n"
        "redis_url: unix:///run/redis.sock\n")), environ={})
    assert settings.smtp.host_port == ("::1", 65535) and settings.outbound.port == 1
    assert settings.auto_mails_per_recipient_per_hour == 0 and settings.sweep_seconds == 0.05
    assert settings.log_level == "DEBUG" and settings.redis_url == "unix:///run/redis.sock"
    assert load_settings(None, environ={"TICKETD_REDIS_URL": "rediss://cache:6380/1"}).redis_url.startswith("rediss")


def _cli(tmp_path, **env: str) -> subprocess.CompletedProcess:
    """`ticketd tickets list` with ticketd.yaml in tmp_path and `env` on top of this environment, without the
    TICKETD_ variables of the test run (TICKETD_TEST_WORKERS would be warned of as no setting)."""
    config = _file(tmp_path, "database_url: sqlite:///t.db\n")
    own = {k: v for k, v in os.environ.items() if not k.startswith("TICKETD_")}
    return subprocess.run([sys.executable, "-m", "ticketd.cli", "tickets", "list", "--config", str(config)],
                          capture_output=True, text=True, timeout=60, env=dict(own, **env), check=False)


@pytest.mark.parametrize("variable, value, message", [
    ("TICKETD_SMTP__LISTEN", "garbage", "smtp.listen: smtp.listen must be host:port"),
    ("TICKETD_SMTP__LISTEN", "127.0.0.1:99999", "smtp.listen: smtp.listen must be host:port"),
    ("TICKETD_SWEEP_SECONDS", "0", "sweep_seconds: Input should be greater than or equal to 0.05"),
])
def test_cli_names_the_key_and_the_variable_of_a_value_out_of_bounds(tmp_path, variable, value, message):
    done = _cli(tmp_path, **{variable: value})
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert message in done.stderr and f"(from {variable})" in done.stderr


def test_yes_no_on_off_and_digits_are_text_where_a_setting_is_text(tmp_path):
    config = _file(tmp_path, (
        "accept_words: [yes, ok, on, Y]\n"
        "secret_key: test-secret\n"
        "previous_secret_keys: [123456, 0123, 1e5, 2024-01-01]\n"
        "outbound: {username: off, password: 123456}\n"
        "imap: [{host: imap.example.net, username: 42, password: 0777}]\n"
        "smtp: {extra_addresses: [no@example.com]}\n"))
    settings = load_settings(config, environ={})
    assert settings.accept_words == ["yes", "ok", "on", "Y"]
    assert settings.previous_secret_keys == ["123456", "0123", "1e5", "2024-01-01"]   # as written, not 83 or a date
    assert settings.outbound.username == "off" and settings.outbound.password == "123456"
    assert settings.imap[0].username == "42" and settings.imap[0].password == "0777"
    assert settings.smtp.extra_addresses == ["no@example.com"]


def test_yes_no_on_off_and_digits_are_text_from_the_environment_too():
    settings = load_settings(None, environ={
        "TICKETD_ACCEPT_WORDS": "[yes, ok, 1]",
        "TICKETD_PREVIOUS_SECRET_KEYS": "[123456, 0123]",
        "TICKETD_IMAP": "[{host: h, username: on, password: 0123}]",
    })
    assert settings.accept_words == ["yes", "ok", "1"]
    assert settings.previous_secret_keys == ["123456", "0123"]
    assert settings.imap[0].username == "on" and settings.imap[0].password == "0123"


def test_boolean_settings_still_take_true_false_and_yes_no(tmp_path):
    config = _file(tmp_path, "outbound: {starttls: true, ssl: False, verify_certificates: no}\n"
                             "agent_auth: {require_authentication_results: yes, trusted_authserv_ids: [mx.example.com]}\n")
    settings = load_settings(config, environ={"TICKETD_IMAP": "[{host: h, username: u, password: p, idle: off}]"})
    assert settings.outbound.starttls is True and settings.outbound.ssl is False
    assert settings.outbound.verify_certificates is False and settings.agent_auth.require_authentication_results
    assert settings.imap[0].idle is False
    numbers = load_settings(_file(tmp_path, "smtp: {max_message_bytes: 1_000}\nsweep_seconds: 0.5\n"), environ={})
    assert numbers.smtp.max_message_bytes == 1000 and type(numbers.smtp.max_message_bytes) is int
    assert numbers.sweep_seconds == 0.5 and type(numbers.sweep_seconds) is float


def test_one_plain_value_is_a_one_item_list():
    settings = load_settings(None, environ={
        "TICKETD_SMTP__EXTRA_ADDRESSES": "help@example.com",
        "TICKETD_PREVIOUS_SECRET_KEYS": "old #1",        # as written: YAML would drop "#1" as a comment
        "TICKETD_ACCEPT_WORDS": "yes",
        "TICKETD_AGENT_AUTH__TRUSTED_AUTHSERV_IDS": "[mx.example.com, mx2.example.com]",
    })
    assert settings.smtp.extra_addresses == ["help@example.com"]
    assert settings.previous_secret_keys == ["old #1"] and settings.accept_words == ["yes"]
    assert settings.agent_auth.trusted_authserv_ids == ["mx.example.com", "mx2.example.com"]
    assert load_settings(None, environ={"TICKETD_SMTP__EXTRA_ADDRESSES": ""}).smtp.extra_addresses == []


def test_one_plain_value_in_the_file_is_a_one_item_list(tmp_path):
    settings = load_settings(_file(tmp_path, "smtp: {extra_addresses: help@example.com}\n"), environ={})
    assert settings.smtp.extra_addresses == ["help@example.com"]


@pytest.mark.parametrize("text, where, message", [
    ("smtp: {listn: 127.0.0.1:2525}\n", "smtp.listn",
     ("unknown key `smtp.listn`; did you mean `listen`? valid keys under smtp: listen, max_message_bytes, "
      "extra_addresses")),
    ("sweep_second: 5\n", "sweep_second", ("unknown key `sweep_second`; did you mean `sweep_seconds`? "
                                           "valid keys at the top level: support_address, ")),
    ("imap: [{host: h, username: u, password: p, pol_seconds: 5}]\n", "imap.0.pol_seconds",
     "unknown key `imap.0.pol_seconds`; did you mean `poll_seconds`? valid keys under imap.0: host, port, "),
    ("outbound: {zzz: 1}\n", "outbound.zzz", "unknown key `outbound.zzz`; valid keys under outbound: host, port, "),
])
def test_an_unknown_key_names_the_likely_meant_one_and_the_valid_ones(tmp_path, text, where, message):
    with pytest.raises(ValidationError) as caught:
        load_settings(_file(tmp_path, text), environ={})
    assert [(".".join(str(p) for p in e["loc"]), e["msg"][:len(message)]) for e in caught.value.errors()] == [
        (where, message)]


def test_other_errors_keep_their_message_beside_an_unknown_key(tmp_path):
    with pytest.raises(ValidationError) as caught:
        load_settings(_file(tmp_path, "smtp: {listn: x, max_message_bytes: lots}\n"), environ={})
    messages = {".".join(str(p) for p in e["loc"]): e["msg"] for e in caught.value.errors()}
    assert messages["smtp.max_message_bytes"].startswith("Input should be a valid integer")
    assert messages["smtp.listn"].startswith("unknown key `smtp.listn`")


def test_a_variable_below_a_plain_setting_names_the_variable_to_set():
    with pytest.raises(ValueError, match=r"^TICKETD_SMTP__LISTEN__X: smtp.listen takes no nested keys; "
                                         r"set TICKETD_SMTP__LISTEN itself$"):
        load_settings(None, environ={"TICKETD_SMTP__LISTEN__X": "1"})
    with pytest.raises(ValueError, match=r"^TICKETD_SMTP__EXTRA_ADDRESSES__0: smtp.extra_addresses is a list; "
                                         r"set all of it, e.g. TICKETD_SMTP__EXTRA_ADDRESSES='\[...\]'$"):
        load_settings(None, environ={"TICKETD_SMTP__EXTRA_ADDRESSES__0": "a@example.com"})


@pytest.mark.parametrize("text, key", [
    ("smtp: {max_message_bytes: true}\n", "smtp.max_message_bytes"),   # would be a one-byte limit
    ("max_followers: false\n", "max_followers"),
    ("sweep_seconds: true\n", "sweep_seconds"),
    ("outbound: {port: false}\n", "outbound.port"),
    ("imap: [{host: h, username: u, password: p, port: true}]\n", "imap.0.port"),
])
def test_true_and_false_are_no_numbers(tmp_path, text, key):
    with pytest.raises(ValidationError) as caught:
        load_settings(_file(tmp_path, text), environ={})
    (error,) = caught.value.errors()
    assert ".".join(map(str, error["loc"])) == key and "a number is wanted here" in error["msg"]


def test_true_from_the_environment_is_no_number_either(tmp_path):
    done = _cli(tmp_path, TICKETD_SMTP__MAX_MESSAGE_BYTES="true")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert ("smtp.max_message_bytes: a number is wanted here, not true (from TICKETD_SMTP__MAX_MESSAGE_BYTES)"
            in done.stderr)


@pytest.mark.parametrize("written, why", [
    ("Support <support@example.com>", "write support@example.com alone"),
    ("'@example.com'", "needs one @ with a name before it"),
    ("'support@'", "has no domain after the @"),
    ("a@b@example.com", "needs one @ with a name before it"),
    ("support@exa mple.com", "' ' in"),
    ("'support@example.com, other@example.com'", "',' in"),
    ("support.example.com", "no @ in"),
])
def test_the_support_address_is_one_bare_address(tmp_path, written, why):
    # Written with a name, the daemon started and answered 550 to every mail to support@example.com.
    with pytest.raises(ValidationError, match=f"support_address must be an address like .*{re.escape(why)}"):
        load_settings(_file(tmp_path, f"support_address: {written}\n"), environ={})


def test_each_extra_address_is_one_address(tmp_path):
    with pytest.raises(ValidationError, match=r"smtp.extra_addresses\[1\] must be an address.*',' in"):
        load_settings(_file(tmp_path, "smtp: {extra_addresses: [help@example.com, 'a@example.com, b@x.org']}\n"),
                      environ={})
    with pytest.raises(ValidationError, match="smtp.extra_addresses"):
        load_settings(None, environ={"TICKETD_SMTP__EXTRA_ADDRESSES": "a@example.com, b@example.com"})
    kept = load_settings(_file(tmp_path, "smtp: {extra_addresses: [hjälp@example.se, Help@Example.COM]}\n"),
                         environ={})
    assert kept.smtp.extra_addresses == ["hjälp@example.se", "Help@Example.COM"]


@pytest.mark.parametrize("key", ["data_dir", "rules_file", "templates_dir"])
def test_an_empty_path_is_refused_not_taken_as_the_working_directory(tmp_path, key):
    with pytest.raises(ValidationError, match=f"{key}\n.*is empty: write a path"):
        load_settings(_file(tmp_path, f"{key}: ''\n"), environ={})
    if key != "templates_dir":   # a nullable setting's empty variable is null (docs/settings.md)
        with pytest.raises(ValidationError, match=f"{key}\n.*is empty"):
            load_settings(None, environ={f"TICKETD_{key.upper()}": ""})


def test_errors_in_the_file_ticketd_config_names_give_its_name_and_lines(tmp_path):
    config = tmp_path / "etc" / "desk.yaml"
    config.parent.mkdir()
    config.write_text("database_url: sqlite:///t.db\nsmtp:\n  listen: nowhere\nmax_followers: -1\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKETD_")}
    done = subprocess.run([sys.executable, "-m", "ticketd.cli", "tickets", "list"], cwd=tmp_path,
                          env=dict(env, TICKETD_CONFIG=str(config)), capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"{config} is not valid:" in done.stderr
    assert f"  {config}:3: smtp.listen: smtp.listen must be host:port" in done.stderr
    assert f"  {config}:4: max_followers: Input should be greater than or equal to 0" in done.stderr


def test_outbound_takes_one_kind_of_tls(tmp_path):
    """Both set, implicit TLS was used and starttls ignored without a word (imap refused the pair already)."""
    with pytest.raises(ValidationError, match="outbound: choose `ssl: true`.* or `starttls: true`.*not both"):
        load_settings(_file(tmp_path, "outbound: {ssl: true, starttls: true}\n"), environ={})
    assert load_settings(_file(tmp_path, "outbound: {port: 465, ssl: true}\n"), environ={}).outbound.ssl


@pytest.mark.parametrize("text", ["accept_words: yes, ok, sure\n", "accept_words: ['ok; sure']\n",
                                  "accept_words: [好的，谢谢]\n"])
def test_several_accept_words_in_one_item_are_refused_with_the_list_to_write(tmp_path, text):
    """One phrase a reply says only word for word: every plain "yes" would reopen the ticket instead."""
    _refused(tmp_path, text, "accept_words", r"of several words: write them as a list, accept_words: \[")


def test_a_list_of_accept_words_may_hold_a_phrase_with_a_comma(tmp_path):
    settings = load_settings(_file(tmp_path, "accept_words: [accept, 'yes, please']\n"), environ={})
    assert settings.accept_words == ["accept", "yes, please"]


def test_several_accept_words_in_one_variable_name_the_variable_and_its_list(tmp_path):
    done = _cli(tmp_path, TICKETD_ACCEPT_WORDS="yes, ok, sure")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "TICKETD_ACCEPT_WORDS='[yes, ok, sure]'" in done.stderr and "(from TICKETD_ACCEPT_WORDS)" in done.stderr


def test_a_duration_or_quoted_number_where_a_number_goes_says_what_to_write_in_file_order(tmp_path):
    config = _file(tmp_path, "sweep_seconds: 5s\nmax_followers: -1\noutbound: {timeout_seconds: 1m}\n"
                             "retention: {closed_tickets_days: '30'}\n")
    done = run_cli(config, "tickets", "list")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    said = [line.strip() for line in done.stderr.splitlines()[1:]]
    assert said == [
        f"{config}:1: sweep_seconds: got '5s'; write a number of seconds, e.g. 30 (rules.yaml's 5m and 4h are "
        "not read here)",
        f"{config}:2: max_followers: Input should be greater than or equal to 0",
        f"{config}:3: outbound.timeout_seconds: got '1m'; write a number of seconds, e.g. 30 (rules.yaml's 5m "
        "and 4h are not read here)",
        f"{config}:4: retention.closed_tickets_days: got '30', text in quotes; write the number without them"]
