"""Write small container images as archives ``ctr images import`` loads, without Docker.

The real node can never pull, so every image it runs is imported from an
archive: the project's own come from ``hack/images.sh``; tests that need a
tiny image of their own (a static busybox serving HTTP) build it here, in
Docker's ``save`` format: one layer, a config and ``manifest.json``.

NB: deterministic: the same files give the same image ID (mtime 0, root owner).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Entry:
    """One path of the image: a file (``data``), a symlink (``target``) or a folder."""

    data: bytes | None = None
    target: str | None = None
    mode: int = 0o644


def folder(mode: int = 0o755) -> Entry:
    return Entry(mode=mode)


def file(data: bytes, mode: int = 0o644) -> Entry:
    return Entry(data=data, mode=mode)


def symlink(target: str) -> Entry:
    return Entry(target=target, mode=0o777)


@dataclass(frozen=True)
class ImageSpec:
    """What an image holds and how it starts."""

    ref: str
    entries: Mapping[str, Entry]
    entrypoint: Sequence[str] = ()
    cmd: Sequence[str] = ()
    env: Sequence[str] = ("PATH=/bin",)
    user: str = ""
    workdir: str = "/"
    labels: Mapping[str, str] = field(default_factory=dict)


def layer_tar(entries: Mapping[str, Entry]) -> bytes:
    """The layer as an uncompressed tar, parents before children, reproducible."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(entries, key=lambda p: (p.count("/"), p)):
            entry = entries[path]
            info = tarfile.TarInfo(path.strip("/"))
            info.mode = entry.mode
            info.mtime = 0
            if entry.target is not None:
                info.type = tarfile.SYMTYPE
                info.linkname = entry.target
                tar.addfile(info)
            elif entry.data is not None:
                info.size = len(entry.data)
                tar.addfile(info, io.BytesIO(entry.data))
            else:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
    return out.getvalue()


def image_config(spec: ImageSpec, *, diff_id: str) -> dict[str, Any]:
    """The image config (OCI/Docker) of a one-layer image."""
    config: dict[str, Any] = {"Env": list(spec.env), "WorkingDir": spec.workdir}
    if spec.entrypoint:
        config["Entrypoint"] = list(spec.entrypoint)
    if spec.cmd:
        config["Cmd"] = list(spec.cmd)
    if spec.user:
        config["User"] = spec.user
    if spec.labels:
        config["Labels"] = dict(spec.labels)
    return {
        "architecture": "amd64",
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "traderbot_devtools.images"}],
    }


def write_archive(spec: ImageSpec, path: Path) -> Path:
    """Write ``spec`` as a ``docker save`` archive at ``path``; return it."""
    layer = layer_tar(spec.entries)
    layer_digest = hashlib.sha256(layer).hexdigest()
    config = json.dumps(image_config(spec, diff_id=f"sha256:{layer_digest}"), sort_keys=True)
    config_digest = hashlib.sha256(config.encode()).hexdigest()
    manifest = [
        {
            "Config": f"{config_digest}.json",
            "RepoTags": [spec.ref],
            "Layers": [f"{layer_digest}/layer.tar"],
        }
    ]
    members = {
        f"{layer_digest}/layer.tar": layer,
        f"{config_digest}.json": config.encode(),
        "manifest.json": json.dumps(manifest).encode(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return path


BUSYBOX = Path("/bin/busybox")  # Debian's busybox-static
BUSYBOX_TOOLS = ("sh", "cat", "echo", "hostname", "httpd", "nc", "nslookup", "sleep", "wget", "ls")


def busybox_image(
    ref: str,
    *,
    busybox: Path = BUSYBOX,
    extra: Mapping[str, Entry] | None = None,
    entrypoint: Sequence[str] = (),
    cmd: Sequence[str] = ("sh",),
    user: str = "",
) -> ImageSpec:
    """A static busybox with a few applets linked: a shell, httpd, wget, nslookup, nc.

    NB: needs a statically linked busybox (``apt-get install busybox-static``):
    the image has no libc.
    """
    entries: dict[str, Entry] = {
        "bin": folder(),
        "bin/busybox": file(busybox.read_bytes(), mode=0o755),
        "etc": folder(),
        "etc/passwd": file(b"root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n"),
        "etc/group": file(b"root:x:0:\nnogroup:x:65534:\n"),
        "tmp": folder(0o1777),
    }
    entries.update({f"bin/{tool}": symlink("busybox") for tool in BUSYBOX_TOOLS})
    entries.update(extra or {})
    return ImageSpec(ref=ref, entries=entries, entrypoint=entrypoint, cmd=cmd, user=user)


def images_sh_list() -> Path:
    """Where ``hack/images.sh`` lists the archives it saved (``images.txt``)."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    root = os.environ.get("TRADERBOT_IMAGES_DIR") or str(Path(cache) / "traderbot" / "images")
    return Path(root) / "archives" / "images.txt"


def image_list(listing: str) -> dict[str, dict[str, str]]:
    """hack/images.sh's list by image name: each line's ``key=value`` words.

    NB: the one reader of that list (the CLI, the demo and the e2e tier use it);
    a line without ``name`` and ``ref`` is not an image and is left out.
    """
    found: dict[str, dict[str, str]] = {}
    for line in listing.splitlines():
        words = dict(word.split("=", 1) for word in line.split() if "=" in word)
        if "name" in words and "ref" in words:
            found[words["name"]] = words
    return found


def archives_by_ref(listing: str) -> dict[str, Path]:
    """``ref -> archive`` from hack/images.sh's list (``name= ref= id= archive=`` lines)."""
    return {
        words["ref"]: Path(words["archive"])
        for words in image_list(listing).values()
        if "archive" in words
    }


def split_reference(ref: str) -> tuple[str, str]:
    """``registry[:port]/name:tag`` -> (repository, tag); a colon before a slash is a port.

    Raises ValueError for a reference without a tag (or pinned by digest only):
    a TraderBot names its image repository and its tag (spec.version) apart.
    """
    repository, colon, tag = ref.rpartition(":")
    if not colon or "/" in tag or "@" in ref:
        raise ValueError(f"image {ref!r} has no tag")
    return repository, tag
