"""Settings of trader-api, read from the environment.

The variable names are the contract with the operator, which sets them on the
API Deployment (docs/configuration.md). Extend them; never rename one silently.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Annotated, Final, Literal
from urllib.parse import quote, unquote, urlsplit

from pydantic import (
    AliasChoices,
    Field,
    FilePath,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from trader_api.domain import Interval
from trader_api.logging import parse_log_directives
from trader_api.strategy import StrategyConfig

DEFAULT_STRATEGIES: tuple[StrategyConfig, ...] = (
    StrategyConfig(
        name="btc-sma",
        kind="sma_crossover",
        symbol="BTCUSDT",
        interval=Interval.M1,
        params={"fast": 5, "slow": 20, "quantity": "0.01"},
    ),
    StrategyConfig(
        name="eth-rsi",
        kind="rsi_mean_reversion",
        symbol="ETHUSDT",
        interval=Interval.M1,
        params={"period": 14, "oversold": 30, "overbought": 70, "quantity": "0.1"},
    ),
)


SECRET_VARIABLES: Final = ("API_KEY", "READ_API_KEY", "DATABASE_PASSWORD", "REDIS_PASSWORD")
URL_VARIABLES: Final = ("DATABASE_URL", "REDIS_URL")
"""Variables whose values never appear in a log line (URLs: their password)."""


def _secrets(plain: Iterable[str | None], urls: Iterable[str | None]) -> tuple[str, ...]:
    found = [value for value in plain if value]
    for url in urls:
        if url:
            try:
                password = urlsplit(url).password
            except ValueError:  # an unparsable URL: keep all of it out of the logs
                password = url
            if password:
                found.append(unquote(password))
    return tuple(dict.fromkeys(found))


def environment_secrets(environ: Mapping[str, str]) -> tuple[str, ...]:
    """Return the secrets set in ``environ``: for logging when the settings do not validate."""
    upper = {name.upper(): value for name, value in environ.items()}
    return _secrets(
        (upper.get(name) for name in SECRET_VARIABLES), (upper.get(name) for name in URL_VARIABLES)
    )


class Settings(BaseSettings):
    """Everything trader-api can be told from the outside.

    NB: with neither a database nor Redis configured the service runs
    *embedded* (in-process store, limiter, lease and event bus): good for a
    laptop, useless for money, and it says so loudly at start.
    """

    model_config = SettingsConfigDict(
        env_prefix="",
        case_sensitive=False,
        extra="ignore",
        populate_by_name=True,
    )

    host: str = "0.0.0.0"  # noqa: S104 - a pod listens on its own IP; the Service decides exposure
    port: int = Field(default=3000, ge=1, le=65535)
    log_level: str = Field(
        default="info", validation_alias=AliasChoices("LOG_LEVEL", "RUST_LOG", "log_level")
    )
    trading_mode: Literal["paper", "live"] = "paper"
    exchange: Literal["paper"] = "paper"

    api_key: SecretStr | None = None
    # NB: accepted on reads only, never on a mutation: what a monitor (the operator
    # reading GET /api/v1/risk) holds cannot place an order or release the kill switch.
    read_api_key: SecretStr | None = None
    reads_require_api_key: bool = False

    database_url: SecretStr | None = None
    database_host: str | None = None
    database_port: int = Field(default=5432, ge=1, le=65535)
    database_name: str = "trader"
    database_user: str = "trader"
    database_password: SecretStr | None = None
    database_connect_timeout_seconds: float = Field(default=60.0, ge=0, le=3600)
    # Opened in full at start-up: a connection opened on the order path costs
    # a TCP and auth handshake inside some order's latency.
    database_pool_size: int = Field(default=10, ge=1, le=200)

    redis_url: SecretStr | None = None
    redis_host: str | None = None
    redis_port: int = Field(default=6379, ge=1, le=65535)
    redis_password: SecretStr | None = None

    strategies: Annotated[tuple[StrategyConfig, ...], NoDecode] = DEFAULT_STRATEGIES
    symbols: Annotated[tuple[str, ...], NoDecode] = ("BTCUSDT", "ETHUSDT")
    market_seed: int = 42
    market_tick_seconds: float = Field(default=1.0, gt=0, le=60)
    market_speed: float = Field(default=1.0, gt=0, le=1_000_000)
    market_replay_csv: FilePath | None = None

    risk_max_order_notional: Decimal = Field(default=Decimal(10000), gt=0)
    risk_max_position_notional: Decimal = Field(default=Decimal(50000), gt=0)
    risk_max_open_orders: int = Field(default=20, ge=1)
    risk_daily_loss_limit: Decimal = Field(default=Decimal(5000), gt=0)

    rate_limit_per_second: float = Field(default=20.0, gt=0)
    rate_limit_burst: int = Field(default=40, ge=1)

    klines_retention_days: int = Field(default=90, ge=1)
    klines_compress_after_days: int = Field(default=7, ge=1)

    pod_name: str = Field(default_factory=socket.gethostname, min_length=1)
    leader_lease_seconds: float = Field(default=10.0, gt=1, le=300)
    shutdown_grace_seconds: float = Field(default=25.0, gt=0, le=300)
    access_log: bool = False

    # Limits at the edge (docs/api.md, "Limits"): an order is about 200 bytes.
    max_request_body_bytes: int = Field(default=64 * 1024, ge=1024, le=64 * 1024 * 1024)
    max_request_headers: int = Field(default=100, ge=16, le=1000)
    max_request_head_bytes: int = Field(default=16 * 1024, ge=4096, le=1024 * 1024)

    @field_validator("log_level")
    @classmethod
    def _log_level_parses(cls, value: str) -> str:
        parse_log_directives(value)  # raises ValueError with the offending directive
        return value

    @field_validator("symbols", mode="before")
    @classmethod
    def _split_symbols(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip().upper() for part in value.split(",") if part.strip())
        return value

    @field_validator("strategies", mode="before")
    @classmethod
    def _strategies_from_json(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"STRATEGIES is not valid JSON: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _check_consistency(self) -> Settings:
        if self.trading_mode == "live":
            raise ValueError(
                "TRADING_MODE=live needs a live exchange adapter; only EXCHANGE=paper exists"
            )
        if not self.symbols:
            raise ValueError("SYMBOLS must name at least one symbol")
        names = [strategy.name for strategy in self.strategies]
        if len(names) != len(set(names)):
            raise ValueError(f"STRATEGIES has duplicate names: {sorted(names)}")
        unknown = sorted({s.symbol for s in self.strategies} - set(self.symbols))
        if unknown and "symbols" in self.model_fields_set:
            raise ValueError(f"STRATEGIES trade symbols not in SYMBOLS: {unknown}")
        if unknown:
            # NB: with SYMBOLS unset, the market simulates every symbol a strategy
            # trades, so a TraderBot naming a new symbol needs no second setting.
            self.symbols = (*self.symbols, *unknown)
        return self

    @property
    def database_dsn(self) -> str | None:
        """Return the PostgreSQL DSN, or None when no database is configured."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        if self.database_host is None:
            return None
        password = self.database_password.get_secret_value() if self.database_password else ""
        auth = quote(self.database_user, safe="")
        if password:
            auth += ":" + quote(password, safe="")
        return (
            f"postgresql://{auth}@{self.database_host}:{self.database_port}/"
            f"{quote(self.database_name, safe='')}"
        )

    @property
    def redis_dsn(self) -> str | None:
        """Return the Redis URL, or None when no Redis is configured."""
        if self.redis_url is not None:
            return self.redis_url.get_secret_value()
        if self.redis_host is None:
            return None
        password = self.redis_password.get_secret_value() if self.redis_password else ""
        auth = f":{quote(password, safe='')}@" if password else ""
        return f"redis://{auth}{self.redis_host}:{self.redis_port}/0"

    @property
    def secrets(self) -> tuple[str, ...]:
        """Return every configured secret: both API keys, and database and Redis passwords."""
        values = (self.api_key, self.read_api_key, self.database_password, self.redis_password)
        urls = (self.database_url, self.redis_url)
        return _secrets(
            (value.get_secret_value() if value else None for value in values),
            (url.get_secret_value() if url else None for url in urls),
        )

    @property
    def embedded(self) -> bool:
        """True when neither a database nor Redis is configured: nothing is persisted."""
        return self.database_dsn is None and self.redis_dsn is None
