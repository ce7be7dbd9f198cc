"""``lucidrec serve`` refuses what would serve wrong answers, before it starts anything."""

from __future__ import annotations

import socket
from pathlib import Path

from click.testing import CliRunner

from api.cli import cli


def test_several_api_processes_need_a_shared_state_store(tmp_path: Path) -> None:
    env = {"LUCIDREC_DATA_DIR": str(tmp_path), "LUCIDREC_API__SHARED_STATE_URL": ""}
    result = CliRunner().invoke(cli, ["serve", "--workers", "2", "--no-worker"], env=env)
    assert result.exit_code == 2
    assert "api.shared_state_url" in result.output
    assert not any(tmp_path.iterdir())  # nothing was started or written


def test_several_api_processes_on_a_taken_port_fail_once_with_the_port_named(
    tmp_path: Path,
) -> None:
    """The listener group is tried before any process starts: a port another socket
    holds is one clear error, not N processes failing in turn."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {
            "LUCIDREC_DATA_DIR": str(tmp_path),
            "LUCIDREC_API__SHARED_STATE_URL": "redis://127.0.0.1:1/0",  # never reached
        }
        args = ["serve", "--workers", "2", "--no-worker", "--port", str(port)]
        result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.output
    assert "--port" in result.output
