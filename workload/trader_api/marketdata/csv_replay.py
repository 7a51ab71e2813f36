"""CSV replay feeds of klines or ticks, refusing bad rows precisely."""

from __future__ import annotations

import asyncio
import csv
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TypeVar

from trader_api.domain import Interval, Kline, Tick
from trader_api.marketdata.feed import Clock, Sleep

KLINE_CSV_COLUMNS = ("symbol", "interval", "open_time", "open", "high", "low", "close", "volume")
"""The header a kline CSV starts with, in this order."""

TICK_CSV_COLUMNS = ("symbol", "ts", "price", "quantity")
"""The header a tick CSV starts with, in this order."""

_PRICE_COLUMNS = ("open", "high", "low", "close")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EventT = TypeVar("EventT")


class CsvFormatError(ValueError):
    """A row of a kline CSV cannot be a kline; says where and why."""

    def __init__(self, *, source: str, line: int, column: str | None, message: str) -> None:
        where = f"{source}:{line}" + (f": column {column!r}" if column else "")
        super().__init__(f"{where}: {message}")
        self.source = source
        self.line = line
        self.column = column
        self.message = message


def _parse_time(raw: str) -> datetime:
    """Accept ISO 8601 with a zone (``2025-01-28T10:30:00Z``) or epoch milliseconds."""
    if raw.isdigit():
        return _EPOCH + timedelta(milliseconds=int(raw))
    parsed = datetime.fromisoformat(raw)
    if parsed.tzinfo is None:
        raise ValueError("needs a time zone, e.g. a trailing Z for UTC")
    return parsed.astimezone(UTC)


def _parse_decimal(raw: str) -> Decimal:
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise ValueError(f"{raw!r} is not a number") from None
    if not value.is_finite():
        raise ValueError(f"{raw!r} is not a finite number")
    return value


class _RowReader:
    def __init__(self, source: str) -> None:
        self.source = source
        self.previous: dict[tuple[str, Interval], datetime] = {}
        self.previous_tick: dict[str, datetime] = {}

    def error(self, line: int, column: str | None, message: str) -> CsvFormatError:
        return CsvFormatError(source=self.source, line=line, column=column, message=message)

    def kline(self, line: int, row: list[str]) -> Kline:
        fields = dict(zip(KLINE_CSV_COLUMNS, (cell.strip() for cell in row), strict=True))
        symbol = fields["symbol"]
        if not symbol:
            raise self.error(line, "symbol", "is empty")
        try:
            interval = Interval(fields["interval"])
        except ValueError:
            known = ", ".join(i.value for i in Interval)
            raise self.error(
                line, "interval", f"{fields['interval']!r} is not one of {known}"
            ) from None
        try:
            open_time = _parse_time(fields["open_time"])
        except ValueError as error:
            raise self.error(line, "open_time", str(error)) from None
        if interval.floor(open_time) != open_time:
            raise self.error(
                line, "open_time", f"{open_time.isoformat()} is not the start of a {interval}"
            )
        values: dict[str, Decimal] = {}
        for column in (*_PRICE_COLUMNS, "volume"):
            try:
                values[column] = _parse_decimal(fields[column])
            except ValueError as error:
                raise self.error(line, column, str(error)) from None
            if values[column] < 0 or (column in _PRICE_COLUMNS and values[column] == 0):
                raise self.error(line, column, f"must be positive, got {fields[column]}")
        kline = Kline(symbol, interval, open_time, **values)
        self.check_shape(line, kline)
        return kline

    def tick(self, line: int, row: list[str]) -> Tick:
        fields = dict(zip(TICK_CSV_COLUMNS, (cell.strip() for cell in row), strict=True))
        symbol = fields["symbol"]
        if not symbol:
            raise self.error(line, "symbol", "is empty")
        try:
            ts = _parse_time(fields["ts"])
        except ValueError as error:
            raise self.error(line, "ts", str(error)) from None
        values: dict[str, Decimal] = {}
        for column in ("price", "quantity"):
            try:
                values[column] = _parse_decimal(fields[column])
            except ValueError as error:
                raise self.error(line, column, str(error)) from None
            if values[column] <= 0:
                raise self.error(line, column, f"must be positive, got {fields[column]}")
        previous = self.previous_tick.get(symbol)
        if previous is not None and ts < previous:
            raise self.error(
                line,
                "ts",
                f"{ts.isoformat()} is before the previous {symbol} tick ({previous.isoformat()})",
            )
        self.previous_tick[symbol] = ts
        return Tick(symbol, values["price"], values["quantity"], ts)

    def check_shape(self, line: int, kline: Kline) -> None:
        if kline.high < max(kline.open, kline.close, kline.low):
            raise self.error(line, "high", f"{kline.high} is below open, close or low")
        if kline.low > min(kline.open, kline.close):
            raise self.error(line, "low", f"{kline.low} is above open or close")
        key = (kline.symbol, kline.interval)
        previous = self.previous.get(key)
        if previous is not None and kline.open_time <= previous:
            raise self.error(
                line,
                "open_time",
                f"{kline.open_time.isoformat()} is not after the previous {kline.symbol} "
                f"{kline.interval} kline ({previous.isoformat()})",
            )
        self.previous[key] = kline.open_time


def _data_rows(
    lines: Iterable[str], *, columns: tuple[str, ...], rows: _RowReader
) -> Iterator[tuple[int, list[str]]]:
    """Check the header; yield (line number, cells) for each non-blank row after it."""
    reader = csv.reader(lines)
    header_seen = False
    for row in reader:
        line = reader.line_num
        if not row or all(not cell.strip() for cell in row):
            continue
        if not header_seen:
            header = tuple(cell.strip().lstrip("\ufeff") for cell in row)
            if header != columns:
                raise rows.error(
                    line, None, f"header must be {','.join(columns)}, got {','.join(row)}"
                )
            header_seen = True
            continue
        if len(row) != len(columns):
            raise rows.error(line, None, f"expected {len(columns)} columns, found {len(row)}")
        yield line, row
    if not header_seen:
        raise rows.error(0, None, "empty file: no header")


def read_kline_csv(lines: Iterable[str], *, source: str = "<csv>") -> Iterator[Kline]:
    """Parse kline CSV text lazily; raise ``CsvFormatError`` at the first bad row.

    Rules: the header is ``KLINE_CSV_COLUMNS``; ``open_time`` is ISO 8601 with
    a zone or epoch milliseconds, aligned to its interval; prices are positive
    and volume is not negative; high and low bound open and close; per
    (symbol, interval) open times strictly increase. Blank lines are skipped.
    """
    rows = _RowReader(source)
    for line, row in _data_rows(lines, columns=KLINE_CSV_COLUMNS, rows=rows):
        yield rows.kline(line, row)


def read_tick_csv(lines: Iterable[str], *, source: str = "<csv>") -> Iterator[Tick]:
    """Parse tick CSV text lazily; raise ``CsvFormatError`` at the first bad row.

    Rules: the header is ``TICK_CSV_COLUMNS``; ``ts`` is ISO 8601 with a zone
    or epoch milliseconds; price and quantity are positive; per symbol ``ts``
    never goes back (trades may share a timestamp). Blank lines are skipped.
    """
    rows = _RowReader(source)
    for line, row in _data_rows(lines, columns=TICK_CSV_COLUMNS, rows=rows):
        yield rows.tick(line, row)


async def _paced(
    events: Iterator[EventT],
    *,
    at: Callable[[EventT], datetime],
    speed: float | None,
    clock: Clock,
    sleep: Sleep,
) -> AsyncIterator[EventT]:
    began = clock()
    first: datetime | None = None
    for event in events:
        if speed is None:
            await sleep(0)
        else:
            first = first or at(event)
            due = began + (at(event) - first).total_seconds() / speed
            await sleep(max(0.0, due - clock()))
        yield event


class _CsvFeed:
    """Where to read and how fast to replay; shared by the kline and tick feeds."""

    def __init__(
        self,
        path: Path,
        *,
        speed: float | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if speed is not None and speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self.path = path
        self.speed = speed
        self._clock = clock
        self._sleep = sleep


class CsvReplayFeed(_CsvFeed):
    """Replay a kline CSV file: a ``MarketFeed[Kline]``.

    Without ``speed`` klines come as fast as the consumer takes them (the
    loop is given a turn between them); with it, a kline comes once
    ``(open_time - first open_time) / speed`` seconds have passed on ``clock``.
    The file is validated as it is read: a bad row raises ``CsvFormatError``
    after the good rows before it were yielded.

    NB: reading is buffered, line by line, on the event loop; fine for replay
    files, not meant for a network filesystem.
    """

    async def __aiter__(self) -> AsyncIterator[Kline]:
        with self.path.open(newline="", encoding="utf-8") as stream:
            async for kline in _paced(
                read_kline_csv(stream, source=str(self.path)),
                at=lambda kline: kline.open_time,
                speed=self.speed,
                clock=self._clock,
                sleep=self._sleep,
            ):
                yield kline


class CsvTickReplayFeed(_CsvFeed):
    """Replay a tick CSV file (``TICK_CSV_COLUMNS``): a ``MarketFeed[Tick]``.

    Pacing and validation work as in ``CsvReplayFeed``, by each tick's ``ts``.
    """

    async def __aiter__(self) -> AsyncIterator[Tick]:
        with self.path.open(newline="", encoding="utf-8") as stream:
            async for tick in _paced(
                read_tick_csv(stream, source=str(self.path)),
                at=lambda tick: tick.ts,
                speed=self.speed,
                clock=self._clock,
                sleep=self._sleep,
            ):
                yield tick
