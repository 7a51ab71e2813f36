"""`traderbot-cluster up --real-node`: its options, before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from traderbot_devtools import cli
from traderbot_devtools.localcluster import DEFAULT_SANDBOX_IMAGE


def test_up_takes_a_real_node_and_repeatable_image_archives() -> None:
    args = cli.build_parser().parse_args(
        ["up", "--real-node", "--image-archive", "a.tar", "--image-archive", "b.tar"]
    )
    assert args.real_node is True
    assert args.image_archive == [Path("a.tar"), Path("b.tar")]
    assert args.sandbox_image == DEFAULT_SANDBOX_IMAGE
    assert args.nodes is None, "kwok nodes: 1 alone, 0 beside a real node, unless asked"


def test_image_archives_without_a_real_node_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["up", "--dir", str(tmp_path / "c"), "--image-archive", "a.tar"])
    assert code == 2
    assert "--image-archive needs --real-node" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


def test_the_pause_archive_comes_from_hack_images_sh_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archives = tmp_path / "archives"
    archives.mkdir()
    pause = archives / "pause.tar"
    pause.write_bytes(b"")
    (archives / "images.txt").write_text(
        f"name=pause ref={DEFAULT_SANDBOX_IMAGE} id=sha256:1 archive={pause}\n"
    )
    monkeypatch.setenv("TRADERBOT_IMAGES_DIR", str(tmp_path))
    assert cli._sandbox_archive(DEFAULT_SANDBOX_IMAGE, given=[]) == [pause]
    assert cli._sandbox_archive(DEFAULT_SANDBOX_IMAGE, given=[pause]) == []
    assert cli._sandbox_archive("traderbot.local/pause:other", given=[]) == []
