"""The COPY text encoding of klines: the same text as ``isoformat``/``str``, however it is built."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from support.trading_data import T0, make_klines
from trader_api.domain import Interval, Kline
from trader_api.storage import postgres
from trader_api.storage.postgres import _copy_text

_whole_utc_seconds = st.integers(-(10**9), 10**9).map(lambda s: T0 + timedelta(seconds=s))
_any_time = st.datetimes(
    min_value=datetime(1900, 1, 1),  # noqa: DTZ001 - bounds of naive draws; zones come below
    max_value=datetime(2200, 1, 1),  # noqa: DTZ001 - same
    timezones=st.none() | st.sampled_from([UTC, timezone(timedelta(hours=-3, minutes=-30))]),
)


def _reference(klines: list[Kline]) -> bytes:
    """The obvious row-by-row encoding the fast one must reproduce byte for byte."""
    return "".join(
        f"{k.symbol}\t{k.interval.value}\t{k.open_time.isoformat()}\t"
        f"{k.open}\t{k.high}\t{k.low}\t{k.close}\t{k.volume}\n"
        for k in klines
    ).encode()


def _at(times: list[datetime]) -> list[Kline]:
    one = make_klines(1)[0]
    return [
        Kline(
            symbol=one.symbol,
            interval=Interval.M1,
            open_time=at,
            open=Decimal("1E+2"),
            high=Decimal("0.000000001"),
            low=Decimal("-0"),
            close=Decimal("123456789012345678901234567890.123456789"),
            volume=Decimal(i),
        )
        for i, at in enumerate(times)
    ]


@given(times=st.lists(_whole_utc_seconds, min_size=1, max_size=50))
def test_whole_utc_seconds_encode_as_isoformat(times: list[datetime]) -> None:
    klines = _at(times)
    assert _copy_text(klines) == _reference(klines)


@given(times=st.lists(_whole_utc_seconds | _any_time, min_size=1, max_size=50))
def test_any_times_encode_as_isoformat(times: list[datetime]) -> None:
    klines = _at(times)
    assert _copy_text(klines) == _reference(klines)


def test_time_text_caches_stay_bounded() -> None:
    limit = postgres._TIME_TEXT_CACHE_MAX
    for day in range(3):
        start = T0 + timedelta(days=day * 10)
        times = [start + timedelta(seconds=s) for s in range(limit)]
        klines = _at(times)
        assert _copy_text(klines) == _reference(klines)
        assert len(postgres._time_of_day_text) <= 2 * limit
        assert len(postgres._day_text) <= 2 * limit
