"""API-key checks: mutations always need the key, reads when configured to.

NB: with no ``API_KEY`` configured every mutation is refused with 401: an
engine that trades money never accepts anonymous orders by accident.
"""

from __future__ import annotations

import hmac

from fastapi import HTTPException, status
from pydantic import SecretStr

API_KEY_HEADER = "X-API-Key"


def check_api_key(*, configured: SecretStr | None, presented: str | None) -> None:
    """Raise 401/403 unless ``presented`` equals the configured key (constant time)."""
    if configured is None:
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="no API key is configured on the server (API_KEY), so this endpoint is closed",
            headers={"WWW-Authenticate": API_KEY_HEADER},
        )
    if not presented:
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail=f"missing {API_KEY_HEADER} header",
            headers={"WWW-Authenticate": API_KEY_HEADER},
        )
    if not hmac.compare_digest(
        presented.encode("utf-8", "surrogateescape"),
        configured.get_secret_value().encode("utf-8", "surrogateescape"),
    ):
        raise HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail="invalid API key")
