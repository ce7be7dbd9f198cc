"""Model store files: atomic, checksummed, refused when damaged."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ranker import ModelStore, StoreError


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    return ModelStore.open(tmp_path, "staged")


def tensors() -> dict[str, torch.Tensor]:
    return {"a.weight": torch.arange(12.0).view(3, 4), "b": torch.tensor([1, 2], dtype=torch.int64)}


def test_round_trip_and_layout(store: ModelStore, tmp_path: Path) -> None:
    path = store.write("deltas", 7, "0badcafe", tensors(), {"base": 3})
    assert path == tmp_path / "staged" / "deltas" / "000000000007-0badcafe.safetensors"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left
    (entry,) = store.entries("deltas")
    assert (entry.version, entry.run) == (7, "0badcafe")
    got, meta = store.read(entry, "deltas")
    assert meta["base"] == 3 and meta["version"] == 7 and meta["kind"] == "deltas"
    for name, value in tensors().items():
        assert torch.equal(got[name], value)


def test_listing_ignores_temporary_and_foreign_files(store: ModelStore) -> None:
    store.write("dense", 2, "00000001", tensors(), {})
    store.write("dense", 10, "00000001", tensors(), {})
    folder = store.folder("dense")
    (folder / ".000000000011-00000001.safetensors.123.tmp").write_bytes(b"half")
    (folder / "notes.txt").write_text("x")
    assert [e.version for e in store.entries("dense")] == [2, 10]


@pytest.mark.parametrize("where", [-1, -40, 200])
def test_a_flipped_byte_is_refused(store: ModelStore, where: int) -> None:
    path = store.write("snapshots", 1, "00000001", tensors(), {"note": "x" * 50})
    data = bytearray(path.read_bytes())
    data[where] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="damaged model store file"):
        store.read(store.entries("snapshots")[0])


def test_truncated_missing_and_foreign_files_are_refused(store: ModelStore, tmp_path: Path) -> None:
    path = store.write("deltas", 1, "00000001", tensors(), {})
    path.write_bytes(path.read_bytes()[:30])
    with pytest.raises(StoreError, match="unreadable"):
        store.read(path)
    with pytest.raises(StoreError, match="no such"):
        store.read(tmp_path / "nothing.safetensors")
    other = store.write("dense", 1, "00000001", tensors(), {})
    with pytest.raises(StoreError, match="expected 'deltas'"):
        store.read(other, "deltas")


def test_signature_changes_only_when_something_is_published(store: ModelStore) -> None:
    empty = store.signature()
    assert store.signature() == empty
    store.write("deltas", 1, "00000001", tensors(), {})
    assert store.signature() != empty


def test_intact_skips_damaged_files_and_names_them(
    store: ModelStore, caplog: pytest.LogCaptureFixture
) -> None:
    for version in (1, 2, 3):
        store.write("deltas", version, "00000001", tensors(), {})
    damaged = store.entries("deltas")[1].path
    damaged.write_bytes(b"")
    newest_first = list(reversed(store.entries("deltas")))
    got = [entry.version for entry, _, _ in store.intact(newest_first, "deltas")]
    assert got == [3, 1]
    assert f"skipping {damaged}: damaged model store file" in caplog.text


def test_the_live_run_is_the_marked_one_else_the_newest_snapshots(
    store: ModelStore, caplog: pytest.LogCaptureFixture
) -> None:
    assert store.live_run() is None
    store.write("snapshots", 40, "0000dead", tensors(), {})
    store.write("snapshots", 3, "00000f5e", tensors(), {})
    assert store.live_run() == "0000dead"  # no marker: a store from before it existed
    before = store.signature()
    store.mark_live("00000f5e")
    assert store.signature() != before  # servers notice the switch
    assert store.live_run() == "00000f5e"
    assert [e.version for e in store.recovery_points("00000f5e")] == [3, 40]
    (store.path / "live").write_bytes(b"\xff\xfe garbage")
    assert store.live_run() == "0000dead"
    assert "live is unreadable" in caplog.text
    (store.path / "live").write_text("not a run\n")
    assert store.live_run() == "0000dead"
    assert "names no run ('not a run')" in caplog.text
