"""The only module that talks to the bots' own APIs: one read of GET /api/v1/risk.

NB: the client is made once (at startup) and shared; every read has its own
short timeout, and every failure comes back as a ``TradingRead`` with the
error, never as an exception: the caller is a poller that must go on with the
other bots.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

import httpx
from pydantic import ValidationError

from traderbot_operator.trading import ReadTarget, RiskReading, TradingRead

RISK_PATH: Final = "/api/v1/risk"
API_KEY_HEADER: Final = "X-API-Key"


def client() -> httpx.AsyncClient:
    """Return the client the poller reads every bot with.

    NB: no redirects (a redirect could carry the key elsewhere) and no proxy from
    the environment (the bots are in-cluster Services).
    """
    return httpx.AsyncClient(follow_redirects=False, trust_env=False)


async def read_risk(http: httpx.AsyncClient, *, target: ReadTarget, within: float) -> TradingRead:
    """Read one bot's risk state with its read-only key, waiting at most ``within`` seconds.

    Never raises for a failed read: the failure is the read's ``error``.
    """
    url = target.url.rstrip("/") + RISK_PATH
    try:
        response = await http.get(
            url, headers={API_KEY_HEADER: target.key}, timeout=httpx.Timeout(within)
        )
    except httpx.TimeoutException:
        return _failed(f"GET {url}: no answer within {within:g}s")
    except (httpx.HTTPError, httpx.InvalidURL) as error:
        return _failed(f"GET {url}: {type(error).__name__}: {error}")
    if response.status_code != httpx.codes.OK:
        detail = response.text[:200].strip()
        return _failed(f"GET {url}: HTTP {response.status_code} {detail}".rstrip())
    try:
        reading = RiskReading.model_validate_json(response.content)
    except ValidationError as error:
        return _failed(f"GET {url}: unexpected answer ({error.error_count()} field error(s))")
    return TradingRead(at=datetime.now(UTC), reading=reading)


def _failed(error: str) -> TradingRead:
    return TradingRead(at=datetime.now(UTC), error=error)
