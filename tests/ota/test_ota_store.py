"""The on-disk store (`edge.ota.store`): atomic links, commit, roll back, and recovery of an
update interrupted between swap and commit (boot-counter semantics)."""

from __future__ import annotations

import os
import shutil

from edge.model import load_model_directory
from edge.ota.store import OtaStore
import pytest


@pytest.fixture
def seeded(tmp_path, seed_dir):
    """A store seeded with the factory model (committed version 1)."""
    def make(path=tmp_path) -> OtaStore:
        store = OtaStore(path / "ota")
        store.seed(seed_dir)
        return store
    return make


def stage(store: OtaStore, bundle, version: int) -> None:
    shutil.copytree(bundle, store.staging_dir(version))
    store.install(version)


def test_seeding_installs_the_factory_model_as_committed_and_current(tmp_path, seeded):
    store = seeded()
    state = store.load()
    assert state.committed == 1 and state.pending is None
    assert os.readlink(store.current) == "bundles/1"
    assert load_model_directory(store.current).version == "1"


def test_a_swap_leaves_the_new_version_pending_with_previous_kept(tmp_path, bundles, seeded):
    store = seeded()
    stage(store, bundles["v2"], 2)
    store.begin_swap(2)
    state = store.load()
    assert (state.committed, state.pending, state.previous) == (1, 2, 1)
    assert os.readlink(store.current) == "bundles/2" and os.readlink(store.previous) == "bundles/1"


def test_commit_makes_the_pending_version_the_committed_one(tmp_path, bundles, seeded):
    store = seeded()
    stage(store, bundles["v2"], 2)
    store.begin_swap(2)
    store.commit(2)
    state = store.load()
    assert (state.committed, state.pending) == (2, None)


def test_roll_back_points_current_at_the_committed_model_and_deny_lists(tmp_path, bundles, seeded):
    store = seeded()
    stage(store, bundles["v2"], 2)
    store.begin_swap(2)
    assert store.roll_back(2, "health window failed") == 1
    state = store.load()
    assert os.readlink(store.current) == "bundles/1"
    assert state.pending is None and state.deny == {2: "health window failed"}


def test_an_uncommitted_current_found_at_start_is_treated_as_failed(tmp_path, bundles, seeded):
    store = seeded()
    stage(store, bundles["v2"], 2)
    store.begin_swap(2)
    restarted = OtaStore(tmp_path / "ota")  # as a new process would open it
    events = restarted.recover()
    assert [v for v, _ in events] == [2] and "never committed" in events[0][1]
    state = restarted.load()
    assert os.readlink(restarted.current) == "bundles/1" and state.pending is None and 2 in state.deny


def test_a_current_link_swapped_before_the_state_was_written_is_put_back(tmp_path, bundles, seeded):
    store = seeded()
    stage(store, bundles["v2"], 2)
    store.link("current", 2)  # as if a crash hit between the two writes in the other order
    assert store.recover() == []
    assert os.readlink(store.current) == "bundles/1"


def test_prune_keeps_current_previous_and_the_newest(tmp_path, bundles, seeded):
    store = seeded()
    for v, name in ((2, "v2"), (3, "v3")):
        stage(store, bundles[name], v)
        store.begin_swap(v)
        store.commit(v)
    (store.bundles / "0").mkdir()
    removed = store.prune(keep=2)
    assert sorted(removed) == [0, 1]
    assert sorted(int(p.name) for p in store.bundles.iterdir()) == [2, 3]


def test_ota_status_cli_reads_the_store_without_a_broker(tmp_path, bundles, capsys, seeded):
    from edge.cli import main

    store = seeded()
    stage(store, bundles["v2"], 2)
    store.begin_swap(2)
    store.roll_back(2, "self-test failed")
    assert main(["ota", "status", "--root", str(store.root)]) == 0
    out = capsys.readouterr().out
    assert "committed  1" in out and "2: self-test failed" in out
