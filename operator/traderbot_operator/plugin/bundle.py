"""The support bundle of ``kubectl traderbot report``: its files, built from what was read (pure).

``Collected`` holds what the client read (objects as dicts, log texts or why a
log could not be read); ``build_bundle`` turns it into ``{path: text}``;
``write_tarball`` and ``write_folder`` put that on disk.

NB: Secrets are redacted here, whatever the caller: every value of ``data`` and
``stringData`` becomes ``REDACTED`` (the keys stay: which keys exist is what
support needs), and so does ``kubectl apply``'s last-applied annotation, which
carries the whole object as it was applied, values included.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Final

import yaml

REDACTED: Final = "REDACTED"
LAST_APPLIED: Final = "kubectl.kubernetes.io/last-applied-configuration"


@dataclass(frozen=True)
class Log:
    """One container's log as read, or why it could not be read."""

    namespace: str
    pod: str
    container: str
    text: str | None = None
    error: str | None = None


@dataclass
class Collected:
    """Everything ``report`` read, grouped as the bundle lays it out."""

    namespace: str
    bot: str
    objects: list[dict[str, Any]] = field(default_factory=list)  # CRs and children
    events: list[dict[str, Any]] = field(default_factory=list)
    logs: list[Log] = field(default_factory=list)
    operator_logs: list[Log] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # what could not be read, and why


def redact(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``obj`` with every value a Secret holds replaced by ``REDACTED`` (a copy).

    Objects of any other kind are returned unchanged (copied).
    """
    copied: dict[str, Any] = json.loads(json.dumps(obj, default=str))
    if copied.get("kind") != "Secret":
        return copied
    for key in ("data", "stringData"):
        if isinstance(copied.get(key), dict):
            copied[key] = dict.fromkeys(copied[key], REDACTED)
    annotations = (copied.get("metadata") or {}).get("annotations") or {}
    if LAST_APPLIED in annotations:
        annotations[LAST_APPLIED] = REDACTED
    return copied


def _slug(value: str) -> str:
    return "".join(c if c.isalnum() or c in "-._" else "_" for c in value)


def _object_path(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"objects/{_slug(str(obj.get('kind', 'Unknown')))}/{_slug(str(meta.get('name')))}.yaml"


def _dump(value: Any) -> str:
    return yaml.safe_dump(value, sort_keys=False, default_flow_style=False)


def _log_files(folder: str, logs: Iterable[Log]) -> dict[str, str]:
    files: dict[str, str] = {}
    for log in logs:
        stem = f"{folder}/{_slug(log.pod)}.{_slug(log.container)}"
        if log.error is None:
            files[f"{stem}.log"] = log.text or ""
        else:
            files[f"{stem}.unavailable.txt"] = f"{log.error}\n"
    return files


def build_bundle(collected: Collected, *, created: str) -> dict[str, str]:
    """Return the bundle's files, ``{relative path: text}``, every Secret redacted.

    ``summary.yaml`` lists what is inside and what could not be read, so a
    missing file is explained instead of silently absent.
    """
    files: dict[str, str] = {}
    for obj in collected.objects:
        files[_object_path(obj)] = _dump(redact(obj))
    events = sorted(
        collected.events,
        key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""),
    )
    files["events.yaml"] = _dump([redact(e) for e in events])
    files.update(_log_files("logs", collected.logs))
    files.update(_log_files("operator", collected.operator_logs))
    summary = {
        "bot": collected.bot,
        "namespace": collected.namespace,
        "created": created,
        "secrets": f"every value replaced by {REDACTED}; names and keys kept",
        "objects": sorted(_object_path(o) for o in collected.objects),
        "events": len(collected.events),
        "logs": sorted(p for p in files if p.startswith(("logs/", "operator/"))),
        "problems": list(collected.problems),
    }
    files["summary.yaml"] = _dump(summary)
    return files


def write_tarball(files: Mapping[str, str], path: Path, *, root: str) -> None:
    """Write ``files`` under folder ``root`` into the gzipped tar ``path``."""
    now = time.time()
    with tarfile.open(path, "w:gz") as tar:
        for name, text in sorted(files.items()):
            data = text.encode()
            info = tarfile.TarInfo(str(PurePosixPath(root) / name))
            info.size, info.mtime, info.mode = len(data), now, 0o600
            tar.addfile(info, io.BytesIO(data))


def write_folder(files: Mapping[str, str], path: Path) -> None:
    """Write ``files`` below the folder ``path`` (created; owner-only, like the tarball)."""
    for name, text in files.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        target.write_text(text)
        target.chmod(0o600)
