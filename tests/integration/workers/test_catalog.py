"""The catalog on SQLite and PostgreSQL: idempotent writes, votes, atomic version switches."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from sqlalchemy import create_engine, inspect, text

from workers.catalog import Catalog, SliceRecord
from workers.catalog.schema import SCHEMA_VERSION, UPGRADES, SchemaVersion, stored_version


def vec(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(4).astype(np.float32)


@pytest.fixture
def catalog(catalog_url: str):
    cat = Catalog(catalog_url)
    cat.register_codebook("v1", "/cb/v1", levels=2, codes=8, dim=4)
    cat.activate("v1")
    yield cat
    cat.close()


def test_schema_is_created_at_the_current_version(catalog: Catalog) -> None:
    with catalog._writer.connect() as conn:
        assert stored_version(conn) == SCHEMA_VERSION
    Catalog(catalog.url).close()  # opening again upgrades nothing and fails nothing


def test_a_v1_catalog_is_upgraded_with_the_ledger_index(catalog_url: str) -> None:
    engine = create_engine(catalog_url)
    with engine.begin() as conn:  # a catalog as version 1 made it: no index on processed_at
        UPGRADES[0](conn)
        conn.execute(text("DROP INDEX ix_processed_at"))
        conn.execute(SchemaVersion.__table__.insert().values(id=1, version=1))
    Catalog(catalog_url).close()
    with engine.connect() as conn:
        assert stored_version(conn) == SCHEMA_VERSION
        assert "ix_processed_at" in {i["name"] for i in inspect(conn).get_indexes("processed")}
    engine.dispose()


def test_the_ledger_forgets_only_entries_older_than_the_cutoff(catalog: Catalog) -> None:
    catalog.mark_processed("event", ["old-1", "old-2"])
    cutoff = time.time() + 0.01
    time.sleep(0.02)
    catalog.mark_processed("event", ["new"])
    assert catalog.forget_processed(cutoff) == 2
    assert catalog.unprocessed("event", ["old-1", "old-2", "new"]) == ["old-1", "old-2"]
    assert catalog.forget_processed(cutoff) == 0


def test_store_is_idempotent_by_slice_id(catalog: Catalog) -> None:
    batch = [
        SliceRecord("s1", "r1", 10.0, vec(1), (1, 2)),
        SliceRecord("s2", "r1", 20.0, vec(2), (1, 3)),
    ]
    assert catalog.store_encoded(batch, "v1") == 2
    assert catalog.store_encoded(batch + batch, "v1") == 0
    room = catalog.room("r1")
    assert room is not None and room.n_slices == 2 and catalog.count_slices() == 2
    expected = (vec(1) + vec(2)) / np.linalg.norm(vec(1) + vec(2))
    np.testing.assert_allclose(room.embedding, expected, rtol=1e-6)
    assert room.room_lucid == (1, 3) and room.latest_slice_lucid == (1, 3)  # tie -> latest


def test_room_vote_follows_the_majority(catalog: Catalog) -> None:
    catalog.store_encoded(
        [
            SliceRecord(f"s{i}", "r", float(i), vec(i), code)
            for i, code in enumerate([(4, 1), (4, 1), (5, 2), (4, 7)])
        ],
        "v1",
    )
    room = catalog.room("r")
    assert room.room_lucid == (4, 1) and room.latest_slice_lucid == (4, 7)


def test_failed_slice_keeps_its_reason_and_is_not_stored_twice(catalog: Catalog) -> None:
    assert catalog.store_failed("bad", "r1", 1.0, "frame 0: not an image")
    assert not catalog.store_failed("bad", "r1", 1.0, "again")
    view = catalog.slice("bad")
    assert view.status == "failed" and view.failure_reason == "frame 0: not an image"
    assert catalog.store_encoded([SliceRecord("bad", "r1", 1.0, vec(0), (0, 0))], "v1") == 0


def test_slices_without_codebook_are_pending_until_coded(catalog_url: str) -> None:
    cat = Catalog(catalog_url)
    cat.store_encoded([SliceRecord("s1", "r1", 1.0, vec(1))], None)
    assert cat.room("r1").room_lucid is None
    cat.register_codebook("v1", "/cb", levels=2, codes=8, dim=4)
    cat.activate("v1")
    assert [i for i, _ in cat.uncoded_slices("v1")] == ["s1"]
    assert cat.store_codes("v1", [("s1", (3, 4))]) == 1
    assert cat.store_codes("v1", [("s1", (3, 4))]) == 0
    assert cat.uncoded_slices("v1") == [] and cat.room("r1").room_lucid == (3, 4)
    cat.close()


def test_version_switch_is_atomic_under_concurrent_reads(catalog: Catalog) -> None:
    n = 40
    catalog.store_encoded(
        [SliceRecord(f"s{i}", f"r{i}", 1.0, vec(i), (1, 1)) for i in range(n)], "v1"
    )
    catalog.register_codebook("v2", "/cb/v2", levels=2, codes=8, dim=4, parent_version="v1")
    catalog.store_codes("v2", [(f"s{i}", (2, 2)) for i in range(n)])
    seen: list[set] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            rooms = catalog.rooms()
            seen.append({(r.codebook_version, r.room_lucid) for r in rooms})

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for th in threads:
        th.start()
    time.sleep(0.2)
    catalog.activate("v2")
    time.sleep(0.2)
    stop.set()
    for th in threads:
        th.join()
    assert {("v1", (1, 1))} in seen and {("v2", (2, 2))} in seen
    assert all(len(snapshot) == 1 for snapshot in seen)  # never a mix of versions


def test_idle_rooms_end_and_ending_is_idempotent(catalog: Catalog) -> None:
    catalog.store_encoded(
        [
            SliceRecord("a", "old", 100.0, vec(1), (1, 1)),
            SliceRecord("b", "new", 1000.0, vec(2), (1, 1)),
        ],
        "v1",
    )
    assert catalog.end_idle_rooms(now=1100.0, idle_s=500) == ["old"]
    assert catalog.end_room("new") and catalog.end_room("new")
    assert not catalog.end_room("missing")
    assert {r.room_id for r in catalog.rooms(status="ended")} == {"old", "new"}


def test_processed_ledger_and_rooms_changed_since(catalog: Catalog) -> None:
    assert catalog.unprocessed("event", ["e1", "e2", "e1"]) == ["e1", "e2"]
    assert catalog.mark_processed("event", ["e1"]) == 1
    assert catalog.mark_processed("event", ["e1", "e3"]) == 1
    assert catalog.unprocessed("event", ["e1", "e2", "e3"]) == ["e2"]
    mark = time.time()
    catalog.store_encoded([SliceRecord("x", "rx", 1.0, vec(3), (2, 2))], "v1")
    assert [r.room_id for r in catalog.rooms(updated_since=mark)] == ["rx"]


def test_lease_admits_one_holder_at_a_time(catalog: Catalog) -> None:
    assert catalog.acquire_lease("trainer", "a", ttl_s=60) == (True, "a")
    assert catalog.acquire_lease("trainer", "b", ttl_s=60) == (False, "a")
    assert catalog.acquire_lease("trainer", "a", ttl_s=60)[0]
    catalog.release_lease("trainer", "a")
    assert catalog.acquire_lease("trainer", "b", ttl_s=0.01)[0]
    time.sleep(0.05)
    assert catalog.acquire_lease("trainer", "a", ttl_s=60)[0]  # b's lease expired


def test_iter_embeddings_pages_through_everything(catalog: Catalog) -> None:
    catalog.store_encoded(
        [SliceRecord(f"s{i:03d}", "r", float(i), vec(i), (1, 1)) for i in range(25)], "v1"
    )
    pages = list(catalog.iter_embeddings(batch_size=10))
    assert [len(ids) for ids, _ in pages] == [10, 10, 5]
    np.testing.assert_array_equal(pages[0][1][3], vec(3))
