"""`ticketd rules test` on a mail the daemon would quarantine says so, with quarantine's own reason, and exits 0."""

from __future__ import annotations

from click.testing import CliRunner

from ingest.parse import dedupe_key
from tests.conftest import MINIMAL_RULES, write_config
from ticketd.cli import main
from ticketd.pipeline import process_raw
from ticketd.store.inbox import store_raw


def _nested(levels: int) -> bytes:
    """A mail whose MIME parts nest `levels` deep."""
    head = ["From: Cust <cust@example.org>", "To: support@example.com", "Subject: Deep",
            "Message-ID: <deep@client.example.org>", "MIME-Version: 1.0"]
    lines, closes = [], []
    for level in range(levels):
        boundary = f"b{level}"
        lines += [f'Content-Type: multipart/mixed; boundary="{boundary}"', "", f"--{boundary}"]
        closes.insert(0, f"--{boundary}--")
    lines += ["Content-Type: text/plain", "", "The printer is on fire.", *closes]
    return ("\r\n".join(head + lines) + "\r\n").encode()


def _many_parts(parts: int) -> bytes:
    head = ["From: Cust <cust@example.org>", "To: support@example.com", "Subject: Many",
            "Message-ID: <many@client.example.org>", "MIME-Version: 1.0",
            'Content-Type: multipart/mixed; boundary="b"', ""]
    body = [line for i in range(parts) for line in ("--b", "Content-Type: text/plain", "", f"part {i}")]
    return ("\r\n".join(head + body + ["--b--"]) + "\r\n").encode()


def _quarantined_by_the_daemon(make_app, url: str, raw: bytes) -> str:
    """The first line of the reason the daemon's pipeline quarantines `raw` with."""
    app = make_app(url)
    key, message_id = dedupe_key(raw)
    stored = store_raw(app.engine, raw, source="smtp", dedupe_key=key, message_id=message_id,
                       envelope_to=["support@example.com"])
    outcome = process_raw(app, stored.raw_id)
    assert outcome is not None and outcome.quarantined
    return outcome.quarantined.splitlines()[0]


def test_a_mail_past_the_mime_limits_would_be_quarantined_with_the_daemons_reason(tmp_path, monkeypatch,
                                                                                   make_app, sqlite_url):
    monkeypatch.chdir(tmp_path)   # no ticketd.yaml here: the default limits
    rules = tmp_path / "rules.yaml"
    rules.write_text(MINIMAL_RULES)
    for name, raw, why in (("deep.eml", _nested(40), "MIME nesting deeper than 20"),
                           ("many.eml", _many_parts(600), "more than 500 MIME parts")):
        (tmp_path / name).write_bytes(raw)
        result = CliRunner().invoke(main, ["rules", "test", str(rules), str(tmp_path / name)])
        assert result.exit_code == 0, result.output
        assert "Traceback" not in result.output and result.exception is None
        lines = result.output.splitlines()
        reason = _quarantined_by_the_daemon(make_app, sqlite_url.replace("ticketd.db", f"{name}.db"), raw)
        assert reason.endswith(why)
        assert lines[1:] == [f"would be quarantined: {reason}"]
        assert lines[0].startswith(f"mail: {dedupe_key(raw)[1]}")


def test_rules_test_with_a_config_uses_the_daemons_mime_limits(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = write_config(tmp_path, f"sqlite:///{tmp_path}/none.db", extra="max_mime_depth: 50\n")
    (tmp_path / "deep.eml").write_bytes(_nested(40))
    result = CliRunner().invoke(main, ["rules", "test", str(tmp_path / "rules.yaml"), str(tmp_path / "deep.eml"),
                                       "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "would be quarantined" not in result.output
    assert "route: 'everything else' matched because no conditions" in result.output
    config.write_text(config.read_text().replace("max_mime_depth: 50", "max_mime_depth: 5"))
    result = CliRunner().invoke(main, ["rules", "test", str(tmp_path / "rules.yaml"), str(tmp_path / "deep.eml"),
                                       "--config", str(config)])
    assert result.output.splitlines()[1:] == [
        "would be quarantined: MailTooComplex: mail refused by the MIME limits: MIME nesting deeper than 5"]


def test_rules_test_reads_the_settings_ticketd_config_names(tmp_path, monkeypatch):
    """Every command reads $TICKETD_CONFIG when --config is not given; the dry run too (docs/settings.md)."""
    monkeypatch.chdir(tmp_path)   # no ticketd.yaml here
    etc = tmp_path / "etc"
    etc.mkdir()
    config = write_config(etc, f"sqlite:///{tmp_path}/none.db", extra="max_mime_depth: 5\n")
    (tmp_path / "deep.eml").write_bytes(_nested(10))
    monkeypatch.setenv("TICKETD_CONFIG", str(config))
    result = CliRunner().invoke(main, ["rules", "test", str(etc / "rules.yaml"), str(tmp_path / "deep.eml")])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1:] == [
        "would be quarantined: MailTooComplex: mail refused by the MIME limits: MIME nesting deeper than 5"]
