"""The signing key: never the example's public one; one key, kept in the database, shared by every process and host."""

from __future__ import annotations

import logging
import multiprocessing

import pytest
from sqlalchemy import func, select

from tests.conftest import write_config
from ticketd.app import build_app
from ticketd.domain.signing import Signer
from ticketd.settings import load_settings
from ticketd.signing_key import EXAMPLE_SECRET, DeskKeys, desk_keys
from ticketd.store.db import ensure_schema, make_engine
from ticketd.store.tables import desk_secrets


@pytest.fixture
def engine(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/desk.db")
    ensure_schema(engine)
    yield engine
    engine.dispose()


def _kept(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(desk_secrets)).scalar_one()


def test_a_configured_key_is_used_as_it_is(tmp_path, engine):
    assert desk_keys("s3cret-of-this-desk", tmp_path, engine) == DeskKeys("s3cret-of-this-desk")
    assert _kept(engine) == 0 and not (tmp_path / "secret_key").exists()


@pytest.mark.parametrize("configured", [EXAMPLE_SECRET, ""])
def test_the_example_key_or_none_is_replaced_by_one_kept_in_the_database(tmp_path, engine, configured, caplog):
    with caplog.at_level(logging.WARNING, logger="ticketd"):
        keys = desk_keys(configured, tmp_path / "var", engine)
        assert desk_keys(configured, tmp_path / "var", engine) == keys   # kept: a restart signs alike
    assert len(keys.signing) >= 40 and keys.signing not in (EXAMPLE_SECRET, "") and keys.also_verifying == ()
    assert _kept(engine) == 1 and not (tmp_path / "var" / "secret_key").exists()
    [made] = [r.getMessage() for r in caplog.records]
    assert "a key made now and kept in the database, for every host" in made, made


def test_a_read_only_look_makes_no_key(tmp_path, engine):
    assert desk_keys(EXAMPLE_SECRET, tmp_path, engine, create=False) == DeskKeys(None)
    assert desk_keys(EXAMPLE_SECRET, tmp_path, None, create=False) == DeskKeys(None)
    assert _kept(engine) == 0
    made = desk_keys(EXAMPLE_SECRET, tmp_path, engine)
    assert desk_keys(EXAMPLE_SECRET, tmp_path, engine, create=False) == made


def test_the_key_an_earlier_version_kept_under_data_dir_is_adopted_by_the_database(tmp_path, engine):
    (tmp_path / "secret_key").write_text("key-of-the-first-host\n")
    assert desk_keys(EXAMPLE_SECRET, tmp_path, engine) == DeskKeys("key-of-the-first-host")
    # A second host whose data_dir held a key of its own signs with the desk's; what it signed still verifies.
    other = tmp_path / "other-host"
    other.mkdir()
    (other / "secret_key").write_text("key-the-worker-made\n")
    assert desk_keys(EXAMPLE_SECRET, other, engine) == DeskKeys("key-of-the-first-host", ("key-the-worker-made",))


def test_a_daemon_and_a_worker_on_other_hosts_sign_alike_and_verify_what_the_other_signed(tmp_path, db_url):
    apps = []
    for host in ("daemon-host", "worker-host"):
        (tmp_path / host).mkdir()
        config = write_config(tmp_path / host, db_url, extra=f"secret_key: {EXAMPLE_SECRET}\n")
        apps.append(build_app(load_settings(config, environ={})))
    daemon, worker = apps
    try:
        assert daemon.settings.data_dir != worker.settings.data_dir
        token = worker.signer.sign("t7a0123abcd")
        assert daemon.signer.verify(token) == "t7a0123abcd" and token == daemon.signer.sign("t7a0123abcd")
    finally:
        for app in apps:
            app.engine.dispose()


def _key_in_a_process(url: str, data_dir: str, queue) -> None:
    from pathlib import Path

    engine = make_engine(url)
    queue.put(desk_keys(EXAMPLE_SECRET, Path(data_dir), engine).signing)
    engine.dispose()


def test_processes_starting_together_share_one_key(tmp_path, engine):
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    processes = [context.Process(target=_key_in_a_process, args=(str(engine.url), str(tmp_path / f"h{n}"), queue))
                 for n in range(6)]
    for process in processes:
        process.start()
    keys = {queue.get(timeout=30) for _ in processes}
    for process in processes:
        process.join(timeout=30)
    assert len(keys) == 1 and _kept(engine) == 1


def test_an_app_on_the_shipped_example_does_not_sign_with_the_public_key(tmp_path):
    config = write_config(tmp_path, f"sqlite:///{tmp_path}/t.db", extra=f"secret_key: {EXAMPLE_SECRET}\n")
    app = build_app(load_settings(config, environ={}))
    try:
        forged = Signer(EXAMPLE_SECRET).sign("t1a0123abcd")
        assert app.signer.verify(forged) is None
        assert app.signer.verify(app.signer.sign("t1a0123abcd")) == "t1a0123abcd"
    finally:
        app.engine.dispose()


def test_a_read_only_look_at_a_database_older_than_the_kept_key_takes_the_data_dirs(tmp_path, engine):
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE desk_secrets")   # as before schema step 13
    (tmp_path / "secret_key").write_text("key-of-this-host\n")
    assert desk_keys(EXAMPLE_SECRET, tmp_path, engine, create=False) == DeskKeys("key-of-this-host")
