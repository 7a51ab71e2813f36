"""Settings: the env-var contract the operator writes (docs/configuration.md)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from trader_api.config import DEFAULT_STRATEGIES, Settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "PORT", "LOG_LEVEL", "RUST_LOG", "DATABASE_URL", "DATABASE_HOST", "DATABASE_PASSWORD",
        "REDIS_URL", "REDIS_HOST", "REDIS_PASSWORD", "STRATEGIES", "SYMBOLS", "API_KEY",
        "TRADING_MODE",
    ):  # fmt: skip
        monkeypatch.delenv(name, raising=False)


def test_defaults_are_the_documented_embedded_paper_setup() -> None:
    settings = Settings()
    assert settings.port == 3000
    assert settings.log_level == "info"
    assert settings.trading_mode == "paper"
    assert settings.embedded
    assert settings.database_dsn is None
    assert settings.redis_dsn is None
    assert settings.api_key is None
    assert settings.strategies == DEFAULT_STRATEGIES
    assert settings.symbols == ("BTCUSDT", "ETHUSDT")
    assert settings.risk_max_order_notional == Decimal(10000)
    assert settings.shutdown_grace_seconds == 25


def test_rust_log_is_read_when_log_level_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUST_LOG", "debug,trader_api=trace")
    assert Settings().log_level == "debug,trader_api=trace"


def test_log_level_wins_over_rust_log(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUST_LOG", "debug")
    monkeypatch.setenv("LOG_LEVEL", "warn")
    assert Settings().log_level == "warn"


def test_a_typo_in_the_log_level_fails_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_LEVEL", "verbose")
    with pytest.raises(ValidationError, match="unknown log level 'verbose'"):
        Settings()


def test_database_dsn_is_built_from_parts_with_the_password_escaped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_HOST", "db.example")
    monkeypatch.setenv("DATABASE_PASSWORD", "p@ss/word")
    settings = Settings()
    assert settings.database_dsn == "postgresql://trader:p%40ss%2Fword@db.example:5432/trader"
    assert not settings.embedded


def test_database_url_wins_over_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://a:b@h:1/d")
    monkeypatch.setenv("DATABASE_HOST", "ignored")
    assert Settings().database_dsn == "postgresql://a:b@h:1/d"


def test_redis_dsn_from_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_HOST", "redis")
    monkeypatch.setenv("REDIS_PASSWORD", "s3cret")
    assert Settings().redis_dsn == "redis://:s3cret@redis:6379/0"


def test_secrets_do_not_leak_into_the_settings_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_KEY", "top-secret-key")
    monkeypatch.setenv("DATABASE_PASSWORD", "top-secret-pass")
    text = repr(Settings())
    assert "top-secret" not in text


def test_symbols_are_a_comma_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYMBOLS", "btcusdt, solusdt")
    monkeypatch.setenv("STRATEGIES", "[]")
    assert Settings().symbols == ("BTCUSDT", "SOLUSDT")


def test_strategies_are_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "STRATEGIES",
        '[{"name": "s1", "kind": "sma_crossover", "symbol": "BTCUSDT", "interval": "5m",'
        ' "params": {"fast": 3, "slow": 8, "quantity": "0.5"}}]',
    )
    (strategy,) = Settings().strategies
    assert strategy.name == "s1"
    assert strategy.interval == "5m"
    assert strategy.params == {"fast": 3, "slow": 8, "quantity": Decimal("0.5")}
    assert strategy.enabled


_SMA = (
    '{"name": "x", "kind": "sma_crossover", "symbol": "BTCUSDT", "interval": "1m",'
    ' "params": {"fast": 5, "slow": 10, "quantity": 1}}'
)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("not json", "STRATEGIES is not valid JSON"),
        ('[{"name": "x", "kind": "martingale", "symbol": "BTCUSDT"}]', "kind"),
        (f"[{_SMA}, {_SMA}]", "duplicate names"),
        (
            '[{"name": "x", "kind": "sma_crossover", "symbol": "BTCUSDT", "interval": "1m",'
            ' "params": {"fast": 9, "slow": 3, "quantity": 1}}]',
            "fast",
        ),
    ],
)
def test_bad_strategies_fail_with_a_precise_message(
    monkeypatch: pytest.MonkeyPatch, value: str, message: str
) -> None:
    monkeypatch.setenv("STRATEGIES", value)
    with pytest.raises(ValidationError, match=message):
        Settings()


def test_live_trading_is_refused_until_a_live_adapter_exists(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRADING_MODE", "live")
    with pytest.raises(ValidationError, match="live exchange adapter"):
        Settings()


def test_without_symbols_the_market_covers_every_strategy_symbol(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STRATEGIES", f"[{_SMA.replace('BTCUSDT', 'SOLUSDT')}]")
    assert Settings().symbols == ("BTCUSDT", "ETHUSDT", "SOLUSDT")


def test_explicit_symbols_must_cover_the_strategies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRATEGIES", f"[{_SMA.replace('BTCUSDT', 'SOLUSDT')}]")
    monkeypatch.setenv("SYMBOLS", "BTCUSDT")
    with pytest.raises(ValidationError, match=r"not in SYMBOLS: \['SOLUSDT'\]"):
        Settings()
