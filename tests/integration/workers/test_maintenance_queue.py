"""The periodic maintenance task through a real worker: idle rooms end, pending slices
get their codes once a codebook is active."""

from __future__ import annotations

from pathlib import Path

from quantizer import EmbeddingSource
from quantizer.offline import retrain
from tests.integration.workers.harness import Worker, client, slices, wait_all, worker_env
from workers.catalog import Catalog


def test_maintenance_ends_idle_rooms_and_codes_what_was_stored_before_a_codebook(
    broker: str, catalog_url: str, tmp_path: Path
) -> None:
    env = worker_env(tmp_path, broker, catalog_url, LUCIDREC_WORKERS__ROOM_IDLE_S="600")
    app, settings = client(env)
    worker = Worker(env, "encode,maintenance", tmp_path / "worker.log")
    catalog = Catalog(settings.catalog.url)
    try:
        sent = [
            app.send_task("lucidrec.encode.slices", args=[f"room{r}", slices(r, 0, 4)])
            for r in range(2)
        ]
        assert all(o["codes_pending"] for o in wait_all(sent, timeout=120))
        # a codebook activated by another process, without re-coding the catalog
        vectors = next(iter(catalog.iter_embeddings(1000)))[1]
        source = EmbeddingSource.from_array(vectors)
        book = retrain(source, tmp_path / "book", settings.quantizer, progress=False)
        catalog.register_codebook(
            book.version, str(tmp_path / "book"), levels=book.levels, codes=book.codes, dim=book.dim
        )
        catalog.activate(book.version)
        assert len(catalog.uncoded_slices(book.version, limit=100)) == 8

        done = app.send_task("lucidrec.maintenance.run").get(timeout=60, interval=0.1)

        # the slices carry ts 1000 s (1970): both rooms are long idle
        assert sorted(done["ended_rooms"]) == ["room0", "room1"]
        assert done["coded_slices"] == 8
        assert catalog.uncoded_slices(book.version, limit=100) == []
        for room_id in ("room0", "room1"):
            room = catalog.room(room_id)
            assert room.status == "ended" and room.room_lucid is not None
        again = app.send_task("lucidrec.maintenance.run").get(timeout=60, interval=0.1)
        assert again == {"ended_rooms": [], "coded_slices": 0, "forgotten_ids": 0}
    finally:
        catalog.close()
        worker.stop()
