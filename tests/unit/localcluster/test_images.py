"""Image archives written without Docker, in the format `ctr images import` reads."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from traderbot_devtools.images import (
    ImageSpec,
    archives_by_ref,
    file,
    folder,
    images_sh_list,
    symlink,
    write_archive,
)

SPEC = ImageSpec(
    ref="traderbot.local/probe:1",
    entries={
        "bin": folder(),
        "bin/tool": file(b"#!/bin/sh\necho hi\n", mode=0o755),
        "bin/alias": symlink("tool"),
        "tmp": folder(0o1777),
    },
    entrypoint=["/bin/tool"],
    user="65534",
)


def members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        out = {}
        for member in tar.getmembers():
            handle = tar.extractfile(member)
            assert handle is not None
            out[member.name] = handle.read()
        return out


def test_the_archive_is_docker_save_format(tmp_path: Path) -> None:
    archive = members(write_archive(SPEC, tmp_path / "probe.tar"))
    (manifest,) = json.loads(archive["manifest.json"])
    assert manifest["RepoTags"] == ["traderbot.local/probe:1"]
    config = json.loads(archive[manifest["Config"]])
    layer = archive[manifest["Layers"][0]]
    assert config["rootfs"]["diff_ids"] == [f"sha256:{hashlib.sha256(layer).hexdigest()}"]
    assert config["config"]["Entrypoint"] == ["/bin/tool"]
    assert config["config"]["User"] == "65534"
    assert manifest["Config"] == hashlib.sha256(archive[manifest["Config"]]).hexdigest() + ".json"


def test_the_layer_holds_files_links_and_folders_with_their_modes(tmp_path: Path) -> None:
    archive = members(write_archive(SPEC, tmp_path / "probe.tar"))
    (manifest,) = json.loads(archive["manifest.json"])
    with tarfile.open(fileobj=io.BytesIO(archive[manifest["Layers"][0]])) as layer:
        entries = {m.name: m for m in layer.getmembers()}
    assert list(entries) == ["bin", "tmp", "bin/alias", "bin/tool"]
    assert entries["bin/tool"].mode == 0o755
    assert entries["bin/alias"].issym()
    assert entries["bin/alias"].linkname == "tool"
    assert entries["tmp"].mode == 0o1777
    assert {m.uid for m in entries.values()} == {0}
    assert {m.mtime for m in entries.values()} == {0}


def test_the_same_spec_gives_the_same_bytes(tmp_path: Path) -> None:
    first = write_archive(SPEC, tmp_path / "a.tar").read_bytes()
    assert write_archive(SPEC, tmp_path / "b.tar").read_bytes() == first


def test_hack_images_sh_list_gives_each_refs_archive() -> None:
    listing = (
        "name=pause ref=traderbot.local/pause:3.10 id=sha256:1 archive=/c/archives/pause.tar\n"
        "name=workload ref=traderbot.local/app:1 id=sha256:2 archive=/c/a/app.tar\n"
        "\n"
    )
    assert archives_by_ref(listing) == {
        "traderbot.local/pause:3.10": Path("/c/archives/pause.tar"),
        "traderbot.local/app:1": Path("/c/a/app.tar"),
    }


def test_the_list_is_where_hack_images_sh_writes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADERBOT_IMAGES_DIR", "/cache/images")
    assert images_sh_list() == Path("/cache/images/archives/images.txt")
