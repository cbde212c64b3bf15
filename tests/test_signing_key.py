"""The signing key: never the example's public one; one key made once and shared by every process."""

from __future__ import annotations

import multiprocessing
import stat

import pytest

from tests.conftest import write_config
from ticketd.app import build_app
from ticketd.domain.signing import Signer
from ticketd.settings import load_settings
from ticketd.signing_key import EXAMPLE_SECRET, signing_key


def test_a_configured_key_is_used_as_it_is(tmp_path):
    assert signing_key("s3cret-of-this-desk", tmp_path) == "s3cret-of-this-desk"
    assert not (tmp_path / "secret_key").exists()


@pytest.mark.parametrize("configured", [EXAMPLE_SECRET, ""])
def test_the_example_key_or_none_is_replaced_by_one_kept_under_data_dir(tmp_path, configured):
    key = signing_key(configured, tmp_path / "var")
    path = tmp_path / "var" / "secret_key"
    assert len(key) >= 40 and key not in (EXAMPLE_SECRET, "")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert signing_key(configured, tmp_path / "var") == key      # kept: a restart signs alike
    assert [p.name for p in path.parent.iterdir()] == ["secret_key"]   # nothing left aside


def _key_in_a_process(data_dir: str, queue) -> None:
    from pathlib import Path
    queue.put(signing_key(EXAMPLE_SECRET, Path(data_dir)))


def test_processes_starting_together_share_one_key(tmp_path):
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    processes = [context.Process(target=_key_in_a_process, args=(str(tmp_path), queue)) for _ in range(6)]
    for process in processes:
        process.start()
    keys = {queue.get(timeout=30) for _ in processes}
    for process in processes:
        process.join(timeout=30)
    assert keys == {(tmp_path / "secret_key").read_text().strip()}


def test_an_app_on_the_shipped_example_does_not_sign_with_the_public_key(tmp_path):
    config = write_config(tmp_path, f"sqlite:///{tmp_path}/t.db", extra=f"secret_key: {EXAMPLE_SECRET}\n")
    app = build_app(load_settings(config, environ={}))
    try:
        forged = Signer(EXAMPLE_SECRET).sign("t1a0123abcd")
        assert app.signer.verify(forged) is None
        assert app.signer.verify(app.signer.sign("t1a0123abcd")) == "t1a0123abcd"
    finally:
        app.engine.dispose()
