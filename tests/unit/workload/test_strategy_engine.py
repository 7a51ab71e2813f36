"""Strategy configs are validated up front; the engine keeps bounded windows and
signals only for enabled strategies, once per closed bar."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from trader_api.domain import Interval, Side
from trader_api.strategy import (
    DuplicateStrategyError,
    StrategyConfig,
    StrategyEngine,
    UnknownStrategyError,
)
from unit.workload.engine_builders import klines_from_closes

SMA: dict[str, Any] = {
    "name": "btc-sma",
    "kind": "sma_crossover",
    "symbol": "BTCUSDT",
    "interval": "1m",
    "params": {"fast": 2, "slow": 4, "quantity": "0.5"},
}
RSI: dict[str, Any] = {
    "name": "btc-rsi",
    "kind": "rsi_mean_reversion",
    "symbol": "BTCUSDT",
    "interval": "1m",
    "params": {"period": 2, "quantity": "1"},
}
SMA_CROSS_CLOSES = [10, 10, 10, 10, 10, 12, 13, 11, 9, 8, 8, 8]  # buy on bar 5, sell on bar 8


def config(base: dict[str, Any], **changes: Any) -> StrategyConfig:
    return StrategyConfig.model_validate({**base, **changes})


def error_text(raw: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        StrategyConfig.model_validate(raw)
    return str(caught.value)


def test_config_fills_in_the_kind_defaults() -> None:
    rsi = config(RSI)
    assert rsi.interval is Interval.M1
    assert rsi.enabled is True
    assert rsi.params == {
        "period": 2,
        "oversold": Decimal(30),
        "overbought": Decimal(70),
        "quantity": Decimal(1),
    }


def test_config_list_parses_from_the_strategies_env_json() -> None:
    raw = '[{"name": "a", "kind": "sma_crossover", "symbol": "ETHUSDT", "interval": "5m",'
    raw += ' "params": {"fast": 5, "slow": 20, "quantity": "0.1"}, "enabled": false}]'
    (parsed,) = TypeAdapter(list[StrategyConfig]).validate_json(raw)
    assert parsed.interval is Interval.M5
    assert parsed.enabled is False
    assert parsed.params["quantity"] == Decimal("0.1")


def test_unknown_kind_names_the_known_ones() -> None:
    text = error_text({**SMA, "kind": "martingale"})
    assert "unknown strategy kind 'martingale'; known kinds: rsi_mean_reversion, sma_crossover" in (
        text
    )


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"fast": 20, "slow": 5, "quantity": "1"}, "fast (20) must be less than slow (5)"),
        ({"fast": 5, "slow": 5, "quantity": "1"}, "fast (5) must be less than slow (5)"),
        ({"fast": 2, "slow": 5}, "quantity: Field required"),
        ({"fast": 2, "slow": 5, "quantity": "-1"}, "quantity: Input should be greater than 0"),
        (
            {"fast": 2, "slow": 5, "quantity": "1", "fsat": 3},
            "fsat: Extra inputs are not permitted",
        ),
        ({"fast": 0, "slow": 5, "quantity": "1"}, "fast: Input should be greater than or equal"),
    ],
)
def test_bad_params_are_named(params: dict[str, Any], message: str) -> None:
    text = error_text({**SMA, "params": params})
    assert "invalid params for sma_crossover: " in text
    assert message in text


def test_rsi_thresholds_must_be_ordered() -> None:
    text = error_text({**RSI, "params": {"oversold": 80, "overbought": 20, "quantity": 1}})
    assert "oversold (80) must be less than overbought (20)" in text


@pytest.mark.parametrize(
    ("field", "value"),
    [("name", "Bad Name"), ("symbol", "btc/usdt"), ("interval", "7m"), ("extra", 1)],
)
def test_bad_fields_are_refused(field: str, value: object) -> None:
    assert field in error_text({**SMA, field: value})


def test_engine_signals_on_the_cross_bars() -> None:
    engine = StrategyEngine([config(SMA)])
    fired = []
    for index, kline in enumerate(klines_from_closes(SMA_CROSS_CLOSES)):
        fired += [(index, signal.side, signal.strategy) for signal in engine.on_kline(kline)]
    assert fired == [(5, Side.BUY, "btc-sma"), (8, Side.SELL, "btc-sma")]


def test_engine_windows_are_bounded_by_the_longest_strategy() -> None:
    engine = StrategyEngine([config(SMA), config(RSI)])  # windows: 2 * 4 + 1 and 10 * 2 + 1
    for kline in klines_from_closes(list(range(1, 101))):
        engine.on_kline(kline)
    window = engine.window("BTCUSDT", Interval.M1)
    assert len(window) == 21
    assert window[-1].close == Decimal(100)
    assert window[0].close == Decimal(80)


def test_disabled_strategies_stay_silent_but_keep_their_window() -> None:
    engine = StrategyEngine([config(SMA, enabled=False)])
    klines = klines_from_closes(SMA_CROSS_CLOSES)
    assert [engine.on_kline(kline) for kline in klines[:6]] == [[]] * 6
    assert engine.enable("btc-sma").enabled is True
    assert [s.side for k in klines[6:] for s in engine.on_kline(k)] == [Side.SELL]
    assert engine.disable("btc-sma").enabled is False
    assert [c.enabled for c in engine.list()] == [False]


def test_a_bar_seen_twice_signals_once() -> None:
    engine = StrategyEngine([config(SMA)])
    klines = klines_from_closes(SMA_CROSS_CLOSES[:6])
    for kline in klines[:5]:
        engine.on_kline(kline)
    assert len(engine.on_kline(klines[5])) == 1
    assert engine.on_kline(klines[5]) == []
    assert engine.on_kline(klines[4]) == []
    assert engine.window("BTCUSDT", Interval.M1) == tuple(klines)


def test_klines_of_other_symbols_and_intervals_are_not_kept() -> None:
    engine = StrategyEngine([config(SMA)])
    for kline in klines_from_closes(SMA_CROSS_CLOSES, symbol="ETHUSDT"):
        assert engine.on_kline(kline) == []
    for kline in klines_from_closes(SMA_CROSS_CLOSES, interval=Interval.M5):
        assert engine.on_kline(kline) == []
    assert engine.window("ETHUSDT", Interval.M1) == ()
    assert engine.window("BTCUSDT", Interval.M5) == ()


def test_each_strategy_signals_in_name_order_on_a_shared_window() -> None:
    engine = StrategyEngine([config(SMA, name="b-sma"), config(SMA, name="a-sma")])
    signals = [s for k in klines_from_closes(SMA_CROSS_CLOSES[:6]) for s in engine.on_kline(k)]
    assert [s.strategy for s in signals] == ["a-sma", "b-sma"]


def test_unknown_and_duplicate_names_are_refused() -> None:
    engine = StrategyEngine([config(SMA)])
    with pytest.raises(UnknownStrategyError, match="no strategy named 'nope'; configured: btc-sma"):
        engine.enable("nope")
    with pytest.raises(DuplicateStrategyError, match="'btc-sma' exists already"):
        engine.add(config(SMA))


def test_removing_the_last_strategy_drops_its_window() -> None:
    engine = StrategyEngine([config(SMA)])
    for kline in klines_from_closes(SMA_CROSS_CLOSES):
        engine.on_kline(kline)
    assert engine.remove("btc-sma").name == "btc-sma"
    assert engine.window("BTCUSDT", Interval.M1) == ()
    assert engine.list() == []
