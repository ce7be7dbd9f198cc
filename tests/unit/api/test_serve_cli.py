"""``lucidrec serve`` refuses what would serve wrong answers, before it starts anything."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from api.cli import cli


def test_several_api_processes_need_a_shared_state_store(tmp_path: Path) -> None:
    env = {"LUCIDREC_DATA_DIR": str(tmp_path), "LUCIDREC_API__SHARED_STATE_URL": ""}
    result = CliRunner().invoke(cli, ["serve", "--workers", "2", "--no-worker"], env=env)
    assert result.exit_code == 2
    assert "api.shared_state_url" in result.output
    assert not any(tmp_path.iterdir())  # nothing was started or written
