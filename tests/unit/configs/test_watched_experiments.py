"""The experiments file reloads on change and on SIGHUP; a bad file keeps the old config."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from configs import Settings, WatchedExperiments

GOOD = """experiments:
  - name: e
    salt: s
    variants:
      - {name: a, weight: 1}
      - {name: b, weight: 1, overrides: {ranker: {variant: lucid_only}}}
"""


def touch_later(path: Path, text: str) -> None:
    """Write ``text`` with a modification time that surely differs from the last one."""
    path.write_text(text)
    stamp = time.time() + 5
    os.utime(path, (stamp, stamp))


def test_change_is_picked_up_without_restart(tmp_path: Path) -> None:
    path = tmp_path / "e.yaml"
    path.write_text("experiments: []\n")
    watched = WatchedExperiments(path, Settings(), check_interval_s=0.0)
    assert watched.ranker_variants() == {"staged"}
    touch_later(path, GOOD)
    assert watched.ranker_variants() == {"staged", "lucid_only"}
    assert watched.generation == 2


def test_bad_file_keeps_the_previous_config_and_says_why(tmp_path: Path, caplog) -> None:
    path = tmp_path / "e.yaml"
    path.write_text(GOOD)
    watched = WatchedExperiments(path, Settings(), check_interval_s=0.0)
    touch_later(path, GOOD.replace("lucid_only", "nonsense"))
    watched.maybe_reload()
    assert watched.ranker_variants() == {"staged", "lucid_only"}
    assert watched.last_error is not None and "ranker.variant" in watched.last_error
    assert "keeping the previous one" in caplog.text


def test_sighup_reloads(tmp_path: Path) -> None:
    path = tmp_path / "e.yaml"
    path.write_text("experiments: []\n")
    watched = WatchedExperiments(path, Settings(), check_interval_s=3600)
    previous = signal.getsignal(signal.SIGHUP)
    try:
        watched.install_sighup()
        path.write_text(GOOD)
        os.kill(os.getpid(), signal.SIGHUP)
        assert watched.generation == 2 and len(watched.current.experiments) == 1
    finally:
        signal.signal(signal.SIGHUP, previous)
