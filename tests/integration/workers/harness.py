"""Real worker processes for the tests: ``lucidrec worker`` in a subprocess, killable."""

from __future__ import annotations

import base64
import io
import os
import signal
import subprocess
import sys
from pathlib import Path

from celery.result import AsyncResult
from PIL import Image

from configs import Settings, load_settings
from workers.celery_app import create_celery


def worker_env(tmp: Path, broker: str, catalog_url: str, **extra: str) -> dict[str, str]:
    """Environment of a worker and its client: the test profile, this broker and catalog."""
    backend = f"{broker}/1" if broker.startswith("redis") else f"db+sqlite:///{tmp}/results.db"
    if broker == "sqlite":
        broker = f"sqla+sqlite:///{tmp}/broker.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUCIDREC_")}
    env.update(
        {
            "LUCIDREC_CONFIG": "test",
            "LUCIDREC_DATA_DIR": str(tmp),
            "LUCIDREC_CATALOG__URL": catalog_url,
            "LUCIDREC_WORKERS__BROKER_URL": broker,
            "LUCIDREC_WORKERS__RESULT_BACKEND": backend,
            "HF_HUB_OFFLINE": "1",
        }
        | extra
    )
    return env


def client(env: dict[str, str]):
    """A Celery app configured exactly as the worker is."""
    settings: Settings = load_settings(env=env)
    return create_celery(settings), settings


class Worker:
    """``lucidrec worker`` as a child process in its own process group."""

    def __init__(self, env: dict[str, str], queues: str, log: Path, *, beat: bool = False) -> None:
        self.log = log
        self._out = log.open("ab")
        argv = [sys.executable, "-m", "api.cli", "worker", "--queues", queues, "--loglevel", "INFO"]
        self.proc = subprocess.Popen(
            argv + (["--beat"] if beat else []),
            env=env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and pool children), as a crash would."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._out.close()

    def stop(self) -> None:
        """Warm shutdown: SIGTERM to the main process, which finishes and stops its pool.

        A worker that had already died prints its log's tail, which pytest shows
        beside the failure it most likely caused.
        """
        if self.proc.poll() is not None:
            tail = self.log.read_text(errors="replace").splitlines()[-40:]
            print(f"worker exited early ({self.proc.returncode}); {self.log}:", *tail, sep="\n")
        else:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._out.close()


TOPICS = [
    "cooking pasta with fresh tomatoes",
    "speedrun of a platform game",
    "acoustic guitar lesson for beginners",
]


def png(seed: int) -> str:
    """A small base64 PNG whose colour follows ``seed``."""
    image = Image.new("RGB", (16, 16), (seed * 40 % 255, 90, 160))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def slices(room: int, start: int, count: int) -> list[dict]:
    """``count`` encode-payload slices of ``room`` (one topic per room), one frame each."""
    return [
        {
            "slice_id": f"r{room}-{i:03d}",
            "ts": 1000.0 + i,
            "title": TOPICS[room % 3],
            "asr": f"{TOPICS[room % 3]} part {i} " * 8,
            "tags": ["live"],
            "frames": [{"data": png(i)}],
        }
        for i in range(start, start + count)
    ]


def wait_all(results: list[AsyncResult], timeout: float) -> list[dict]:
    """Every result, each within ``timeout``; a failed task raises its error."""
    return [r.get(timeout=timeout, interval=0.1) for r in results]
