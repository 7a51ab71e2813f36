"""CSV replay yields exactly the klines (or ticks) in the file and points at the first bad cell."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from trader_api.domain import Interval, Kline, Tick
from trader_api.marketdata import (
    CsvFormatError,
    CsvReplayFeed,
    CsvTickReplayFeed,
    read_kline_csv,
    read_tick_csv,
)
from unit.workload.pacing_fakes import FakeClock

HEADER = "symbol,interval,open_time,open,high,low,close,volume\n"
GOOD = (
    HEADER
    + "BTCUSDT,1m,2025-01-28T10:00:00Z,100,110,95,105,12.5\n"
    + "\n"
    + "BTCUSDT,1m,1738058460000,105,106,104,104.5,3\n"
    + "ETHUSDT,5m,2025-01-28T19:00:00+09:00,3000,3010,2990,3005,7\n"
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "klines.csv"
    path.write_text(text, encoding="utf-8")
    return path


def error_for(text: str) -> CsvFormatError:
    with pytest.raises(CsvFormatError) as caught:
        list(read_kline_csv(text.splitlines(keepends=True), source="k.csv"))
    return caught.value


async def test_replay_yields_the_klines_of_the_file(tmp_path: Path) -> None:
    feed = CsvReplayFeed(write(tmp_path, GOOD))
    klines = [kline async for kline in feed]
    assert klines == [
        Kline(
            "BTCUSDT",
            Interval.M1,
            datetime(2025, 1, 28, 10, 0, tzinfo=UTC),
            Decimal(100),
            Decimal(110),
            Decimal(95),
            Decimal(105),
            Decimal("12.5"),
        ),
        Kline(
            "BTCUSDT",
            Interval.M1,
            datetime(2025, 1, 28, 10, 1, tzinfo=UTC),
            Decimal(105),
            Decimal(106),
            Decimal(104),
            Decimal("104.5"),
            Decimal(3),
        ),
        Kline(
            "ETHUSDT",
            Interval.M5,
            datetime(2025, 1, 28, 10, 0, tzinfo=UTC),
            Decimal(3000),
            Decimal(3010),
            Decimal(2990),
            Decimal(3005),
            Decimal(7),
        ),
    ]


async def test_a_paced_replay_spaces_klines_by_open_time(tmp_path: Path) -> None:
    rows = [f"BTCUSDT,1m,2025-01-28T10:0{m}:00Z,1,1,1,1,1\n" for m in range(4)]
    clock = FakeClock()
    feed = CsvReplayFeed(
        write(tmp_path, HEADER + "".join(rows)), speed=60, clock=clock, sleep=clock.sleep
    )
    assert len([k async for k in feed]) == 4
    assert clock.sleeps == [0.0, 1.0, 1.0, 1.0]


async def test_good_rows_before_a_bad_one_are_yielded_first(tmp_path: Path) -> None:
    feed = CsvReplayFeed(write(tmp_path, GOOD + "BTCUSDT,1m,oops,1,1,1,1,1\n"))
    seen: list[Kline] = []

    async def consume() -> None:
        async for kline in feed:
            seen.append(kline)

    with pytest.raises(CsvFormatError, match=r"klines\.csv:6: column 'open_time'"):
        await consume()
    assert len(seen) == 3


@pytest.mark.parametrize(
    ("row", "column", "message"),
    [
        ("BTCUSDT,7m,2025-01-28T10:00:00Z,1,1,1,1,1", "interval", "'7m' is not one of 1m, 5m"),
        (",1m,2025-01-28T10:00:00Z,1,1,1,1,1", "symbol", "is empty"),
        ("BTCUSDT,1m,2025-01-28T10:00:00,1,1,1,1,1", "open_time", "needs a time zone"),
        ("BTCUSDT,1m,2025-01-28T10:00:30Z,1,1,1,1,1", "open_time", "is not the start of a 1m"),
        ("BTCUSDT,1m,2025-01-28T10:00:00Z,1,abc,1,1,1", "high", "'abc' is not a number"),
        ("BTCUSDT,1m,2025-01-28T10:00:00Z,1,1,1,1,NaN", "volume", "is not a finite number"),
        ("BTCUSDT,1m,2025-01-28T10:00:00Z,0,1,0,1,1", "open", "must be positive, got 0"),
        ("BTCUSDT,1m,2025-01-28T10:00:00Z,1,1,1,1,-2", "volume", "must be positive, got -2"),
        ("BTCUSDT,1m,2025-01-28T10:00:00Z,5,4,1,3,1", "high", "4 is below open, close or low"),
        ("BTCUSDT,1m,2025-01-28T10:00:00Z,5,7,6,7,1", "low", "6 is above open or close"),
    ],
)
def test_a_bad_cell_is_named_by_line_and_column(row: str, column: str, message: str) -> None:
    error = error_for(HEADER + "BTCUSDT,1m,2025-01-28T09:59:00Z,1,1,1,1,1\n" + row + "\n")
    assert (error.line, error.column) == (3, column)
    assert message in error.message
    assert str(error).startswith(f"k.csv:3: column {column!r}: ")


def test_klines_must_move_forward_per_symbol_and_interval() -> None:
    error = error_for(GOOD + "BTCUSDT,1m,2025-01-28T10:01:00Z,1,1,1,1,1\n")
    assert (error.line, error.column) == (6, "open_time")
    assert "is not after the previous BTCUSDT 1m kline (2025-01-28T10:01:00+00:00)" in str(error)


def test_a_row_with_the_wrong_number_of_cells() -> None:
    error = error_for(HEADER + "BTCUSDT,1m,2025-01-28T10:00:00Z,1,1,1,1\n")
    assert str(error) == "k.csv:2: expected 8 columns, found 7"


def test_the_header_must_name_the_columns_in_order() -> None:
    error = error_for("symbol,open_time,interval,open,high,low,close,volume\n")
    assert error.line == 1
    assert "header must be symbol,interval,open_time,open,high,low,close,volume" in str(error)


def test_an_empty_file_says_so() -> None:
    assert str(error_for("")) == "k.csv:0: empty file: no header"


def test_a_byte_order_mark_before_the_header_is_fine() -> None:
    assert list(read_kline_csv(["\ufeff" + HEADER])) == []


TICK_HEADER = "symbol,ts,price,quantity\n"


async def test_tick_replay_yields_the_ticks_of_the_file(tmp_path: Path) -> None:
    text = (
        TICK_HEADER
        + "BTCUSDT,2025-01-28T10:00:00.250Z,100.5,0.01\n"
        + "BTCUSDT,2025-01-28T10:00:00.250Z,100.6,0.02\n"
        + "ETHUSDT,1738058400000,3000,1\n"
    )
    clock = FakeClock()
    feed = CsvTickReplayFeed(write(tmp_path, text), speed=1, clock=clock, sleep=clock.sleep)
    ticks = [tick async for tick in feed]
    t0 = datetime(2025, 1, 28, 10, 0, tzinfo=UTC)
    assert ticks == [
        Tick("BTCUSDT", Decimal("100.5"), Decimal("0.01"), t0 + timedelta(milliseconds=250)),
        Tick("BTCUSDT", Decimal("100.6"), Decimal("0.02"), t0 + timedelta(milliseconds=250)),
        Tick("ETHUSDT", Decimal(3000), Decimal(1), t0),
    ]
    assert clock.sleeps == [0.0, 0.0, 0.0]


@pytest.mark.parametrize(
    ("row", "column", "message"),
    [
        ("BTCUSDT,2025-01-28T09:59:59Z,1,1", "ts", "is before the previous BTCUSDT tick"),
        ("BTCUSDT,2025-01-28T10:00:01Z,0,1", "price", "must be positive, got 0"),
        ("BTCUSDT,2025-01-28T10:00:01Z,1,x", "quantity", "'x' is not a number"),
        ("BTCUSDT,yesterday,1,1", "ts", "Invalid isoformat string"),
    ],
)
def test_a_bad_tick_cell_is_named_by_line_and_column(row: str, column: str, message: str) -> None:
    text = TICK_HEADER + "BTCUSDT,2025-01-28T10:00:00Z,1,1\n" + row + "\n"
    with pytest.raises(CsvFormatError) as caught:
        list(read_tick_csv(text.splitlines(keepends=True), source="t.csv"))
    assert (caught.value.line, caught.value.column) == (3, column)
    assert message in caught.value.message
