"""Operator controls that must survive a restart: the kill switch and strategy switches.

NB: an SRE who engaged the kill switch must not see trading resume because a
pod restarted. With Redis the switches live in one hash shared by every
replica (``traderbot:control``); a replica reads it at start. Embedded mode
keeps them in memory only, like everything else there.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

from redis.asyncio import Redis
from redis.exceptions import RedisError

from trader_api.risk import HaltState
from trader_api.storage import StorageUnavailableError

logger = logging.getLogger(__name__)

CONTROL_KEY = "traderbot:control"
_KILL_SWITCH = "kill_switch"
_STRATEGY_PREFIX = "strategy:"


@dataclass(frozen=True, slots=True)
class SavedControls:
    """What the hash holds: the halt (reason, automatic) if engaged, and strategy switches."""

    halt: tuple[str, bool] | None = None
    strategies: dict[str, bool] = field(default_factory=dict)


class ControlState:
    """Read and write the controls in Redis; a no-op without Redis (embedded mode)."""

    def __init__(self, redis: Redis | None) -> None:
        self._redis = redis

    async def save_halt(self, state: HaltState | None) -> None:
        if self._redis is None:
            return
        try:
            if state is None:
                await self._redis.hdel(CONTROL_KEY, _KILL_SWITCH)
            else:
                value = json.dumps({"reason": state.reason, "automatic": state.automatic})
                await self._redis.hset(CONTROL_KEY, _KILL_SWITCH, value)
        except (RedisError, OSError) as exc:
            raise StorageUnavailableError(f"redis unreachable: {exc}") from exc

    async def save_strategy(self, name: str, *, enabled: bool) -> None:
        if self._redis is None:
            return
        try:
            await self._redis.hset(CONTROL_KEY, _STRATEGY_PREFIX + name, "1" if enabled else "0")
        except (RedisError, OSError) as exc:
            raise StorageUnavailableError(f"redis unreachable: {exc}") from exc

    async def load(self) -> SavedControls:
        if self._redis is None:
            return SavedControls()
        try:
            items = await self._redis.hgetall(CONTROL_KEY)
        except (RedisError, OSError) as exc:
            raise StorageUnavailableError(f"redis unreachable: {exc}") from exc
        raw = {_text(key): _text(value) for key, value in items.items()}
        halt: tuple[str, bool] | None = None
        if _KILL_SWITCH in raw:
            try:
                saved = json.loads(raw[_KILL_SWITCH])
                halt = (str(saved["reason"]), bool(saved.get("automatic", False)))
            except (ValueError, KeyError, TypeError):
                # NB: unreadable means someone engaged it: stay halted rather than trade.
                halt = ("kill switch state unreadable in redis", False)
        strategies = {
            key.removeprefix(_STRATEGY_PREFIX): value == "1"
            for key, value in raw.items()
            if key.startswith(_STRATEGY_PREFIX)
        }
        return SavedControls(halt=halt, strategies=strategies)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
