"""``trader-backup``'s result line: on stdout, and in the pod's termination message."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from datetime import UTC, datetime
from pathlib import Path

import pytest

from trader_api.backup.cli import main
from trader_api.backup.manifest import MANIFEST_NAME, Manifest
from trader_api.backup.retention import backup_name


def _backup(dest: Path, *, created: datetime) -> str:
    name = backup_name("demo", created)
    (dest / name).mkdir(parents=True)
    manifest = Manifest(bot="demo", name=name, created_at=created, completed_at=created)
    (dest / name / MANIFEST_NAME).write_text(manifest.model_dump_json())
    return name


def test_prune_command_prints_one_json_line(tmp_path: Path) -> None:
    newest = _backup(tmp_path, created=datetime(2020, 1, 1, tzinfo=UTC))
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(["--dest", str(tmp_path), "--bot", "demo", "prune", "--retention-days", "7"])
    assert code == 0
    assert json.loads(out.getvalue()) == {
        "ok": True,
        "action": "prune",
        "bot": "demo",
        "deleted": [],
        "newest_successful": newest,
    }


def test_the_result_also_goes_to_the_pods_termination_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    termination_log = tmp_path / "termination-log"
    termination_log.write_text("")  # the kubelet creates it in a pod
    monkeypatch.setenv("TERMINATION_MESSAGE_PATH", str(termination_log))
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(["--dest", str(tmp_path / "none"), "--bot", "demo", "prune"])
    assert code == 0
    assert json.loads(termination_log.read_text()) == json.loads(out.getvalue())


def test_no_termination_message_file_is_created_outside_a_pod(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    absent = tmp_path / "termination-log"
    monkeypatch.setenv("TERMINATION_MESSAGE_PATH", str(absent))
    with redirect_stdout(io.StringIO()):
        main(["--dest", str(tmp_path), "--bot", "demo", "prune"])
    assert not absent.exists()


def test_a_long_result_still_fits_the_termination_message_as_json() -> None:
    from trader_api.backup.cli import termination_line

    result = {
        "ok": True,
        "action": "backup",
        "location": "/backups/demo-20260128T030000Z",
        "checksum": "sha256:" + "ab" * 32,
        "pruned": [f"demo-202512{day:02d}T030000Z" for day in range(1, 31)] * 5,
        "tables": {f"table_{i}": i for i in range(60)},
        "maintenance": {"backend": "postgresql", "jobs": []},
    }
    line = termination_line(result)
    assert len(line.encode()) <= 4096
    parsed = json.loads(line)
    assert (parsed["ok"], parsed["location"], parsed["checksum"]) == (
        True,
        result["location"],
        result["checksum"],
    )
    assert parsed["truncated"] == ["pruned"]
    assert parsed["maintenance"] == result["maintenance"]
    short = {"ok": True, "action": "prune", "deleted": []}
    assert json.loads(termination_line(short)) == short
