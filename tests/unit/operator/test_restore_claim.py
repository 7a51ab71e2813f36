"""Claiming a bot for a restore is atomic (issue 14, class 11).

Several TraderBotRestores sent at once could all pass the refusal check on the
same read of the bot; the hold annotation then flipped between them and several
restore Jobs ran. The claim now lands only on the bot as it was read, and never
over another restore's hold: the loser gets a conflict, and its retry is refused.
"""

from __future__ import annotations

from typing import Any

import pytest

from traderbot_operator.handlers import restores
from traderbot_operator.kube import ConflictError
from traderbot_operator.runs import HOLD_ANNOTATION
from unit.operator.bots import bot
from unit.operator.fake_kube import FakeKube


class _Bot(FakeKube):
    """One bot's annotations and resourceVersion, with the API server's precondition."""

    def __init__(self) -> None:
        super().__init__()
        self.annotations: dict[str, str] = {}
        self.resource_version = 1

    async def annotate_bot(
        self,
        *,
        namespace: str,
        name: str,
        key: str,
        value: str | None,
        resource_version: str | None = None,
    ) -> None:
        if resource_version is not None and resource_version != str(self.resource_version):
            raise ConflictError("HTTP 409: the object has been modified")
        if value is None:
            self.annotations.pop(key, None)
        else:
            self.annotations[key] = value
        self.resource_version += 1


@pytest.fixture(autouse=True)
def _no_bot_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bot's own pass after a claim is not what this tests."""

    async def nothing(*_: Any, **__: Any) -> None:
        return None

    monkeypatch.setattr(restores, "run_serialized", nothing)


async def test_two_restores_that_read_the_same_bot_cannot_both_claim_it() -> None:
    fake = _Bot()
    seen = dict(fake.annotations)  # both passes read the bot before either claimed it
    version = str(fake.resource_version)
    alpha = bot("alpha")
    await restores._set_hold(
        fake.state(), bot=alpha, annotations=seen, restore="first", hold=True,
        resource_version=version,
    )  # fmt: skip
    with pytest.raises(ConflictError):
        await restores._set_hold(
            fake.state(), bot=alpha, annotations=seen, restore="second", hold=True,
            resource_version=version,
        )  # fmt: skip
    assert fake.annotations == {HOLD_ANNOTATION: "first"}


async def test_a_restore_never_takes_over_another_restores_hold() -> None:
    fake = _Bot()
    fake.annotations[HOLD_ANNOTATION] = "first"
    with pytest.raises(ConflictError, match="held by TraderBotRestore first"):
        await restores._set_hold(
            fake.state(), bot=bot("alpha"), annotations=dict(fake.annotations),
            restore="second", hold=True, resource_version=str(fake.resource_version),
        )  # fmt: skip
    assert fake.annotations == {HOLD_ANNOTATION: "first"}


async def test_the_holder_releases_its_own_hold_without_a_precondition() -> None:
    fake = _Bot()
    fake.annotations[HOLD_ANNOTATION] = "first"
    fake.resource_version = 9  # the bot changed since (status writes): a release still lands
    await restores._set_hold(
        fake.state(), bot=bot("alpha"), annotations={HOLD_ANNOTATION: "first"},
        restore="first", hold=False,
    )  # fmt: skip
    assert fake.annotations == {}
