"""``StrategyEngine``: rolling kline windows and the strategies that read them."""

from __future__ import annotations

import builtins
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import islice

from trader_api.domain import Interval, Kline, Signal
from trader_api.strategy.config import StrategyConfig
from trader_api.strategy.incremental import IncrementalStrategy
from trader_api.strategy.registry import MAX_WINDOW, get_kind


class UnknownStrategyError(LookupError):
    """No strategy has that name."""


class DuplicateStrategyError(ValueError):
    """A strategy with that name exists already."""


@dataclass(slots=True)
class _Entry:
    config: StrategyConfig
    window: int
    evaluator: IncrementalStrategy


WindowKey = tuple[str, Interval]


class StrategyEngine:
    """Feed closed klines in, get signals out.

    Each strategy has an incremental evaluator (``StrategyKind.evaluator``)
    that takes every closed kline of its (symbol, interval) in O(1) and gives
    the signals its pure function would give over the same klines. Disabled
    strategies keep evaluating and drop their signals, so enabling one acts on
    full history at once. The engine also keeps one window of the latest
    closed klines per (symbol, interval), as long as the longest window a
    strategy there needs (bounded by ``MAX_WINDOW``): a strategy added later
    starts its evaluator from it.

    NB: a kline that is not newer than the last one in its window (a replay
    or a late duplicate) is ignored: strategies signal on the cross bar only,
    and seeing a bar twice would signal twice.
    """

    def __init__(self, configs: Iterable[StrategyConfig] = ()) -> None:
        self._entries: dict[str, _Entry] = {}
        self._windows: dict[WindowKey, deque[Kline]] = {}
        self._readers: dict[WindowKey, builtins.list[_Entry]] = {}
        for config in configs:
            self.add(config)

    def add(self, config: StrategyConfig) -> None:
        """Add a strategy; its evaluator starts from the klines the engine already holds.

        NB: it is given the last ``window`` of them, as many as its pure
        function would have been shown.
        """
        if config.name in self._entries:
            raise DuplicateStrategyError(f"strategy {config.name!r} exists already")
        kind = get_kind(config.kind)
        params = config.parsed_params()
        window = kind.window(params)
        if window > MAX_WINDOW:
            raise ValueError(
                f"strategy {config.name!r} needs {window} klines, more than the {MAX_WINDOW} kept"
            )
        key = (config.symbol, config.interval)
        evaluator = kind.evaluator(params, config.name)
        held = self._windows.get(key, ())
        for kline in islice(held, max(0, len(held) - window), None):
            evaluator.step(kline)
        self._entries[config.name] = _Entry(config, window, evaluator)
        self._resize(key)

    def remove(self, name: str) -> StrategyConfig:
        """Remove a strategy; windows nobody reads any more are dropped."""
        entry = self._entries.pop(name, None)
        if entry is None:
            raise UnknownStrategyError(self._unknown(name))
        self._resize((entry.config.symbol, entry.config.interval))
        return entry.config

    def get(self, name: str) -> StrategyConfig:
        return self._entry(name).config

    def list(self) -> builtins.list[StrategyConfig]:
        """Return every strategy's config, by name."""
        return [self._entries[name].config for name in sorted(self._entries)]

    def enable(self, name: str) -> StrategyConfig:
        return self._set_enabled(name, enabled=True)

    def disable(self, name: str) -> StrategyConfig:
        return self._set_enabled(name, enabled=False)

    def window(self, symbol: str, interval: Interval) -> tuple[Kline, ...]:
        """Return the klines held for (symbol, interval), oldest first."""
        return tuple(self._windows.get((symbol, interval), ()))

    def on_kline(self, kline: Kline) -> builtins.list[Signal]:
        """Add a closed kline to its window; return the enabled strategies' signals.

        Signals come in strategy-name order, so a replay yields them in the
        same order.
        """
        key = (kline.symbol, kline.interval)
        window = self._windows.get(key)
        if window is None:
            return []
        if window and kline.open_time <= window[-1].open_time:
            return []
        window.append(kline)
        signals: builtins.list[Signal] = []
        for entry in self._readers[key]:
            signal = entry.evaluator.step(kline)
            if signal is not None and entry.config.enabled:
                signals.append(signal)
        return signals

    def _entry(self, name: str) -> _Entry:
        entry = self._entries.get(name)
        if entry is None:
            raise UnknownStrategyError(self._unknown(name))
        return entry

    def _unknown(self, name: str) -> str:
        known = ", ".join(sorted(self._entries)) or "none"
        return f"no strategy named {name!r}; configured: {known}"

    def _set_enabled(self, name: str, *, enabled: bool) -> StrategyConfig:
        entry = self._entry(name)
        entry.config = entry.config.model_copy(update={"enabled": enabled})
        return entry.config

    def _resize(self, key: WindowKey) -> None:
        """Recompute who reads the window of ``key`` and how long it must be."""
        readers = [
            self._entries[name]
            for name in sorted(self._entries)
            if (self._entries[name].config.symbol, self._entries[name].config.interval) == key
        ]
        current = self._windows.get(key)
        if not readers:
            self._windows.pop(key, None)
            self._readers.pop(key, None)
            return
        needed = max(entry.window for entry in readers)
        self._readers[key] = readers
        if current is None or current.maxlen != needed:
            self._windows[key] = deque(current or (), maxlen=needed)
