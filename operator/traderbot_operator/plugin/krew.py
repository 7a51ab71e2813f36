"""The archive krew installs for ``kubectl traderbot``: a shim, built byte for byte the same.

krew installs a binary from an archive whose SHA-256 the manifest
(``plugins/traderbot.yaml``) names. The plugin is a Python console script, not a
single binary, so the archive holds a shell shim that runs the plugin from the
installed ``traderbot-operator`` package; installing that package (pip or pipx)
stays the user's step, which the manifest's caveats say.

NB: reproducible (fixed mtimes, owners and modes; gzip without a timestamp), so a
unit test can rebuild it and check the manifest's digest without a release.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import sys
import tarfile
from pathlib import Path
from typing import Final

from traderbot_operator import __version__

BINARY: Final = "kubectl-traderbot"
SHIM: Final = """#!/bin/sh
# kubectl-traderbot as krew installs it: runs `kubectl traderbot` from the
# traderbot-operator Python package, which must be installed first:
#   pip install --user 'traderbot-operator[operator]'
# With pipx (or a virtualenv), point TRADERBOT_PYTHON at that environment's python.
exec "${TRADERBOT_PYTHON:-python3}" -m traderbot_operator.plugin "$@"
"""


def archive_name(version: str = __version__) -> str:
    """Return the release asset's file name for ``version``."""
    return f"{BINARY}-v{version}.tar.gz"


def archive() -> bytes:
    """Return the krew archive (``kubectl-traderbot`` at its root), the same bytes every time."""
    data = SHIM.encode()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(BINARY)
        info.size, info.mode, info.mtime = len(data), 0o755, 0
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), compresslevel=9, mtime=0)


def sha256() -> str:
    """Return the archive's SHA-256, as the krew manifest names it."""
    return hashlib.sha256(archive()).hexdigest()


def main() -> int:
    """Write the archive into the folder given (default ``dist``); print its path and digest."""
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "dist")
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / archive_name()
    target.write_bytes(archive())
    sys.stdout.write(f"{target} sha256:{sha256()}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
