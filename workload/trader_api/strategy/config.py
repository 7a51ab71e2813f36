"""``StrategyConfig``: one strategy as the ``STRATEGIES`` env var and the API carry it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from trader_api.domain import Interval
from trader_api.strategy.registry import get_kind


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"])
        message = str(item["msg"]).removeprefix("Value error, ")
        parts.append(f"{location}: {message}" if location else message)
    return "; ".join(parts)


class StrategyConfig(BaseModel):
    """A strategy of a registered ``kind`` trading ``symbol`` on ``interval`` klines.

    ``params`` is checked against the kind's parameters model when the config
    is built, so a bad config fails at start (or at the API) with a message
    naming the parameter, never later inside the engine loop. After
    validation ``params`` holds the complete set, defaults filled in.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(
        pattern=r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$",
        description="unique name: lowercase letters, digits, '.', '_', '-'",
    )
    kind: str = Field(description="a registered strategy kind, e.g. sma_crossover")
    symbol: str = Field(pattern=r"^[A-Z0-9]{2,30}$", description="e.g. BTCUSDT")
    interval: Interval
    params: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True

    @field_validator("kind")
    @classmethod
    def _kind_is_registered(cls, kind: str) -> str:
        get_kind(kind)
        return kind

    @field_validator("params")
    @classmethod
    def _params_fit_the_kind(cls, params: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        kind_name = info.data.get("kind")
        if kind_name is None:  # the kind itself was invalid and is reported already
            return params
        kind = get_kind(kind_name)
        try:
            parsed: BaseModel = kind.params_model.model_validate(params)
        except ValidationError as error:
            raise ValueError(f"invalid params for {kind_name}: {_describe(error)}") from None
        return parsed.model_dump()

    def parsed_params(self) -> BaseModel:
        """Return ``params`` as the kind's parameters model."""
        parsed: BaseModel = get_kind(self.kind).params_model.model_validate(self.params)
        return parsed
