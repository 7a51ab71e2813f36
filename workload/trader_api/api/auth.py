"""API-key checks: mutations always need the key, reads when configured to.

NB: with no ``API_KEY`` configured every mutation is refused with 401: an
engine that trades money never accepts anonymous orders by accident. The
read-only key (``READ_API_KEY``) opens reads and nothing else, so a monitor
that holds it (the operator) cannot trade or release the kill switch.
"""

from __future__ import annotations

import hmac

from fastapi import HTTPException, status
from pydantic import SecretStr

API_KEY_HEADER = "X-API-Key"


def _matches(presented: str, configured: SecretStr | None) -> bool:
    """Compare in constant time; an unconfigured key matches nothing."""
    if configured is None:
        return False
    return hmac.compare_digest(
        presented.encode("utf-8", "surrogateescape"),
        configured.get_secret_value().encode("utf-8", "surrogateescape"),
    )


def _require_presented(presented: str | None) -> str:
    if not presented:
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail=f"missing {API_KEY_HEADER} header",
            headers={"WWW-Authenticate": API_KEY_HEADER},
        )
    return presented


def _closed() -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail="no API key is configured on the server (API_KEY), so this endpoint is closed",
        headers={"WWW-Authenticate": API_KEY_HEADER},
    )


def check_api_key(
    *, configured: SecretStr | None, presented: str | None, read_only: SecretStr | None = None
) -> None:
    """Raise 401/403 unless ``presented`` equals the configured (full) key.

    ``read_only`` is the read-only key: presented here it gets a 403 that says
    so, rather than a bare "invalid API key" that would send its holder looking
    for a typo.
    """
    if configured is None:
        raise _closed()
    presented = _require_presented(presented)
    # NB: both comparisons always run, so the answer's timing does not tell which key.
    full, reader = _matches(presented, configured), _matches(presented, read_only)
    if full:
        return
    if reader:
        raise HTTPException(
            status_code=status.HTTP_403_FORBIDDEN,
            detail="the read-only key (READ_API_KEY) cannot make changes; use API_KEY",
        )
    raise HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail="invalid API key")


def check_read_key(
    *, configured: SecretStr | None, read_only: SecretStr | None, presented: str | None
) -> None:
    """Raise 401/403 unless ``presented`` is the full key or the read-only key."""
    if configured is None and read_only is None:
        raise _closed()
    presented = _require_presented(presented)
    full, reader = _matches(presented, configured), _matches(presented, read_only)
    if not (full or reader):
        raise HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail="invalid API key")
