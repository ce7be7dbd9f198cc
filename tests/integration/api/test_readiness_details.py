"""What ``/ready`` and a rank's 503 say is missing, from the API's services on a real
catalog (no server): the codebook (with the slice count, the way to supply slices, and a
failed automatic fit), and a model (no train worker, or no first snapshot yet)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from api.services import Services
from configs import load_settings
from workers.catalog import Catalog, SliceRecord
from workers.codebooks import retrain_from_catalog
from workers.heartbeats import Heartbeats
from workers.identity import this_process
from workers.tasks.maintenance import FIRST_CODEBOOK_ERROR


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    settings = load_settings("test", env={"LUCIDREC_DATA_DIR": str(tmp_path)})
    threads = torch.get_num_threads()
    built = Services(settings)
    try:
        yield built
    finally:
        built.close()
        torch.set_num_threads(threads)


def store(catalog: Catalog, count: int, dim: int) -> None:
    x = np.random.default_rng(count).normal(size=(count, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    catalog.store_encoded(
        [
            SliceRecord(f"s{time.time_ns()}-{i}", f"r{i % 2}", time.time(), v)
            for i, v in enumerate(x)
        ],
        None,
    )


def test_no_codebook_names_the_count_the_route_and_a_failed_fit(services: Services) -> None:
    catalog, dim = services.catalog, services.settings.encoder.out_dim
    assert services.no_codebook() == (
        "no codebook yet, so no room has codes: 0 of 8 slices encoded; post slices to "
        "/v1/rooms/{room_id}/slices — the first codebook is fitted automatically at 8"
    )
    store(catalog, 8, dim)
    detail = services.no_codebook()
    assert detail.startswith("no codebook yet, so no room has codes: 8 slices encoded")
    assert "maintenance fits it within workers.maintenance_interval_s (30 s)" in detail
    assert "lucidrec quantizer retrain --from-catalog" in detail
    assert "failed" not in detail
    catalog.set_state(FIRST_CODEBOOK_ERROR, f"{time.time() - 12:.0f}|QuantizerError: broken")
    assert services.no_codebook().endswith(
        "; the last automatic fit failed 12 s ago: QuantizerError: broken"
    )
    retrain_from_catalog(services.settings, progress=False)
    assert services.no_codebook() is None


def test_a_higher_floor_says_a_fit_by_hand_works_sooner(tmp_path: Path) -> None:
    env = {"LUCIDREC_DATA_DIR": str(tmp_path), "LUCIDREC_WORKERS__BOOTSTRAP_MIN_SLICES": "20"}
    built = Services(load_settings("test", env=env))
    try:
        store(built.catalog, 5, built.settings.encoder.out_dim)
        assert built.no_codebook().endswith("fitted automatically at 20")
        store(built.catalog, 5, built.settings.encoder.out_dim)
        assert built.no_codebook().endswith(
            "10 of 20 slices encoded; post slices to /v1/rooms/{room_id}/slices — the first "
            "codebook is fitted automatically at 20; or fit one now: lucidrec quantizer "
            "retrain --from-catalog"
        )
    finally:
        built.close()


def test_no_model_names_the_missing_train_worker_or_its_first_snapshot(
    services: Services,
) -> None:
    missing = services.no_model("staged")
    assert missing.startswith(
        "ranker variant 'staged' has no model yet: no worker consumes the train queue(s): "
        "none has started"
    )
    assert "start a worker with the train queue" not in missing
    board = Heartbeats(services.settings.catalog.url)
    try:
        board.beat(this_process(), ["encode", "maintenance", "train"])  # alive: this process
        waiting = services.no_model("staged")
    finally:
        board.close()
    assert "the train worker writes its first snapshot (no events needed)" in waiting
    assert "no worker consumes" not in waiting
