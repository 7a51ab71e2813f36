"""FakeKube: the few Kube calls a reconcile pass makes, kept in memory.

NB: a fake only for the unit tier (no API server there); it records writes so a
test can say "this pass wrote nothing". The cluster tier runs the real client.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any, cast

from traderbot_operator.handlers.converge import OperatorState
from traderbot_operator.kube import Kube
from traderbot_operator.reconcile import ObjectKey


class FakeKube:
    """Holds TraderBot bodies; every other object is absent."""

    def __init__(self, *bots: dict[str, Any]) -> None:
        self.bots = {(b["metadata"]["namespace"], b["metadata"]["name"]): b for b in bots}
        self.events: list[tuple[str, str, str]] = []
        self.status_writes: list[dict[str, Any]] = []

    async def get_bot(self, *, namespace: str, name: str) -> dict[str, Any] | None:
        found = self.bots.get((namespace, name))
        return None if found is None else copy.deepcopy(found)

    async def get(self, *, namespace: str, key: ObjectKey) -> dict[str, Any] | None:
        return None

    async def observe(
        self, *, namespace: str, keys: Iterable[ObjectKey], labels: Mapping[str, str] | None = None
    ) -> dict[ObjectKey, dict[str, Any] | None]:
        return dict.fromkeys(keys)

    async def patch_status(
        self, *, namespace: str, name: str, status: Mapping[str, Any], **_: Any
    ) -> None:
        self.status_writes.append(dict(status))
        self.bots[(namespace, name)]["status"] = copy.deepcopy(dict(status))

    async def event(self, *, bot: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        self.events.append((type_, reason, message))

    def state(self) -> OperatorState:
        """Return an operator state whose client is this fake."""
        return OperatorState(kube=cast("Kube", self))
