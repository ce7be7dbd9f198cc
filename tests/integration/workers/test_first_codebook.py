"""The first codebook, fitted by maintenance once enough slices are encoded: once, by one
process at a time (the catalog's codebook lease), never over an active codebook; a failed
fit is kept for ``/ready``. And what an encode result says about frames it ignored."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace

import msgspec
import pytest

from configs import load_settings
from quantizer import QuantizerError
from tests.conftest import clustered_vectors
from tests.integration.workers.harness import Worker, client, slices, wait_all, worker_env
from workers import codebooks
from workers.catalog import Catalog, SliceRecord
from workers.codebooks import (
    LEASE,
    CodebookLease,
    first_codebook_slices,
    fit_first_codebook,
    retrain_from_catalog,
)
from workers.tasks import maintenance


@pytest.fixture
def settings(catalog_url: str, tmp_path: Path):
    base = load_settings("test", env={"LUCIDREC_DATA_DIR": str(tmp_path)})
    return msgspec.structs.replace(
        base, catalog=msgspec.structs.replace(base.catalog, url=catalog_url)
    )


@pytest.fixture
def catalog(settings):
    catalog = Catalog(settings.catalog.url)
    yield catalog
    catalog.close()


def store(catalog: Catalog, start: int, count: int) -> None:
    x = clustered_vectors(start + count, 16, 4, seed=3)[start:]
    catalog.store_encoded(
        [
            SliceRecord(f"s{start + i:04d}", f"r{(start + i) % 3}", float(i), v)
            for i, v in enumerate(x)
        ],
        None,
    )


def test_it_waits_for_enough_slices_fits_once_and_codes_every_room(settings, catalog) -> None:
    need = first_codebook_slices(settings)
    assert need == settings.quantizer.codes == 8
    store(catalog, 0, need - 1)
    assert fit_first_codebook(settings, catalog) is None
    assert catalog.active_codebook() is None and catalog.codebooks() == []

    store(catalog, need - 1, 1)
    book = fit_first_codebook(settings, catalog)
    assert book is not None and catalog.active_codebook().version == book.version
    assert catalog.uncoded_slices(book.version) == []
    assert all(r.room_lucid is not None for r in catalog.rooms())
    assert catalog.get_state(f"lease:{LEASE}") is None  # given up after the fit

    store(catalog, need, 20)
    assert fit_first_codebook(settings, catalog) is None  # one is active: never a second
    assert [b.version for b in catalog.codebooks()] == [book.version]


def test_a_fit_in_progress_elsewhere_is_not_duplicated(settings, catalog) -> None:
    store(catalog, 0, 30)
    other = CodebookLease(Catalog(settings.catalog.url))
    assert other.try_acquire() is None
    try:
        assert fit_first_codebook(settings, catalog) is None
        assert catalog.codebooks() == []
    finally:
        other.release()
    assert fit_first_codebook(settings, catalog) is not None


def test_concurrent_first_fits_make_one_codebook(settings) -> None:
    seeding = Catalog(settings.catalog.url)
    store(seeding, 0, 40)
    seeding.close()
    start = threading.Barrier(3)
    fitted = []

    def fit() -> None:
        own = Catalog(settings.catalog.url)
        try:
            start.wait()
            fitted.append(fit_first_codebook(settings, own))
        finally:
            own.close()

    threads = [threading.Thread(target=fit) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    books = [b for b in fitted if b is not None]
    assert len(fitted) == 3 and len(books) == 1
    check = Catalog(settings.catalog.url)
    assert [b.version for b in check.codebooks()] == [books[0].version]
    check.close()


def test_a_retrain_by_hand_waits_for_a_fit_in_progress(settings, catalog) -> None:
    store(catalog, 0, 30)
    holder = CodebookLease(Catalog(settings.catalog.url), ttl_s=30.0)
    assert holder.try_acquire() is None
    done: list = []
    thread = threading.Thread(target=lambda: done.append(retrain_from_catalog(settings, None)))
    thread.start()
    time.sleep(1.5)
    assert not done and catalog.codebooks() == []
    holder.release()
    thread.join(timeout=120)
    assert done and catalog.active_codebook().version == done[0].version


def test_a_first_fit_that_waits_fits_nothing_once_the_holder_activated_one(
    settings, catalog
) -> None:
    """What ``serve --demo`` does: wait for the fit in progress, and keep what it made."""
    store(catalog, 0, 30)
    holder = CodebookLease(Catalog(settings.catalog.url), ttl_s=30.0)
    assert holder.try_acquire() is None
    waited: list = []
    thread = threading.Thread(
        target=lambda: waited.append(fit_first_codebook(settings, catalog, wait=True))
    )
    thread.start()
    time.sleep(1.5)
    assert not waited
    made = codebooks._fit_and_activate(catalog, settings, None, progress=False)
    holder.release()
    thread.join(timeout=120)
    assert waited == [None]
    assert [b.version for b in catalog.codebooks()] == [made.version]


def test_a_failed_fit_is_kept_for_ready_and_the_round_goes_on(
    settings, catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object) -> None:
        raise QuantizerError("8 vectors cannot fit 8 centroids (a test)")

    task = SimpleNamespace(settings=settings, catalog=catalog)
    assert maintenance.last_first_codebook_error(catalog) is None
    monkeypatch.setattr(maintenance, "fit_first_codebook", broken)
    assert maintenance.try_first_codebook(task) == {
        "first_codebook_error": "QuantizerError: 8 vectors cannot fit 8 centroids (a test)"
    }
    at, reason = maintenance.last_first_codebook_error(catalog)
    assert time.time() - at < 60 and reason.startswith("QuantizerError: 8 vectors")
    monkeypatch.setattr(maintenance, "fit_first_codebook", codebooks.fit_first_codebook)
    store(catalog, 0, 10)
    assert "first_codebook" in maintenance.try_first_codebook(task)


def test_maintenance_fits_the_first_codebook_and_encode_results_count_ignored_frames(
    catalog_url: str, tmp_path: Path
) -> None:
    """A real worker (encode and maintenance, the text-only default encoder): slices with a
    frame each; maintenance before and after the slices reach ``quantizer.codes`` (8)."""
    env = worker_env(tmp_path, "sqlite", catalog_url, LUCIDREC_WORKERS__ROOM_IDLE_S="600")
    app, settings = client(env)
    log = tmp_path / "worker.log"
    worker = Worker(env, "encode,maintenance", log)
    catalog = Catalog(settings.catalog.url)
    try:

        def maintain() -> dict:
            return app.send_task("lucidrec.maintenance.run").get(timeout=120, interval=0.1)

        [first] = wait_all(
            [app.send_task("lucidrec.encode.slices", ["room0", slices(0, 0, 5)])], 120
        )
        assert first["stored"] == 5 and first["codes_pending"]
        assert first["frames_ignored"] == 5  # one frame per slice, no vision tower
        assert "first_codebook" not in maintain()  # 5 of 8 slices
        assert catalog.active_codebook() is None

        [second] = wait_all(
            [app.send_task("lucidrec.encode.slices", ["room1", slices(1, 0, 3)])], 120
        )
        assert second["frames_ignored"] == 3
        done = maintain()
        version = done["first_codebook"]
        assert catalog.active_codebook().version == version
        assert done["coded_slices"] == 0  # the fit coded every stored slice itself
        assert all(r.room_lucid is not None for r in catalog.rooms())

        again = maintain()
        assert "first_codebook" not in again and "first_codebook_error" not in again
        assert [b.version for b in catalog.codebooks()] == [version]
        [third] = wait_all(
            [app.send_task("lucidrec.encode.slices", ["room2", slices(2, 0, 2)])], 120
        )
        assert third["codebook_version"] == version and third["frames_ignored"] == 2

        text = log.read_text(errors="replace")
        assert "encoder towers: text model all-MiniLM-L6-v2" in text  # at start-up
        assert "no vision tower: frames in slices are ignored" in text
        assert text.count("frames ignored: the encoder has no vision tower") == 1  # said once
    finally:
        catalog.close()
        worker.stop()
