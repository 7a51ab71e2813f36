"""Pure logic of the trading state: a bot's risk reading -> status.trading, TradingHalted.

The operator reads each bot's ``GET /api/v1/risk`` outside any reconcile pass
(``handlers/traderbot.py`` polls, ``bot_api.py`` does the HTTP); what it read is
kept in ``TradingReads``, and a pass only copies the last read into the status.
So a slow or unreachable API never delays or fails a reconcile, and the reads
cost each bot at most one request per ``interval``.

Nothing here does I/O: the clock is passed in, so the rate limit and the
status rules are tested without a server.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict

from traderbot_operator.models import Condition, TradingStatus

CONDITION: Final = "TradingHalted"
ERROR_LENGTH: Final = 300
_TIME_FORMAT: Final = "%Y-%m-%dT%H:%M:%SZ"

BotKey = tuple[str, str]
"""(namespace, name) of a TraderBot."""

ConditionStatus = Literal["True", "False", "Unknown"]


class _Reading(BaseModel):
    """Base of the parsed answer: unknown fields ignored (a newer trader-api may add some)."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class KillSwitchReading(_Reading):
    engaged: bool
    reason: str | None = None
    since: datetime | None = None
    automatic: bool = False


class RiskReading(_Reading):
    """The fields of trader-api's ``GET /api/v1/risk`` the operator uses.

    NB: the operator may not import trader-api's API schemas (an import-linter
    contract keeps its I/O out of the operator image), so the HTTP answer is the
    contract; an integration test runs both against each other.
    """

    kill_switch: KillSwitchReading
    daily_loss_halt: bool = False
    open_orders: int
    realized_pnl_today: Decimal
    leader: str | None = None
    pod: str | None = None


@dataclass(frozen=True)
class TradingRead:
    """One read of a bot's risk state: the reading, or why there is none, and when."""

    at: datetime
    reading: RiskReading | None = None
    error: str | None = None


@dataclass(frozen=True)
class ReadTarget:
    """Where and with which key to read one bot (set by its reconcile pass)."""

    url: str
    key: str


@dataclass(frozen=True)
class Verdict:
    """What the TradingHalted condition says: status, reason, message."""

    status: ConditionStatus
    reason: str
    message: str


@dataclass(frozen=True)
class TradingPolicy:
    """How old a read may be before it says nothing (``stale_after``), and how often the
    numbers alone may rewrite the status (``refresh``)."""

    stale_after: timedelta = timedelta(seconds=120)
    refresh: timedelta = timedelta(seconds=300)


DEFAULT_TRADING_POLICY: Final = TradingPolicy()


@dataclass
class _Entry:
    target: ReadTarget | None = None
    last: TradingRead | None = None
    due_at: float = 0.0
    reading: bool = False


@dataclass
class TradingReads:
    """Every bot's read target, last read, and when it may be read next.

    The rate limit: a bot is due ``interval`` seconds (monotonic) after its last
    read started, whatever the answer, and never while a read of it is running.
    NB: a bot leaves when its pass says it is gone (``forget``), so deleted bots
    leave nothing behind.
    """

    interval: float
    _entries: dict[BotKey, _Entry] = field(default_factory=dict)

    def target(self, key: BotKey, target: ReadTarget | None) -> None:
        """Set (or clear, with None: no ready API pod) where to read ``key``."""
        entry = self._entries.setdefault(key, _Entry())
        if entry.target != target:
            entry.due_at = 0.0  # a new or moved API is read at the next tick
        entry.target = target

    def forget(self, key: BotKey) -> None:
        self._entries.pop(key, None)

    def due(self, now: float) -> list[tuple[BotKey, ReadTarget]]:
        """Return the bots to read now, and mark them being read."""
        found = []
        for key, entry in sorted(self._entries.items()):
            if entry.target is None or entry.reading or entry.due_at > now:
                continue
            entry.reading = True
            entry.due_at = now + self.interval
            found.append((key, entry.target))
        return found

    def record(self, key: BotKey, read: TradingRead) -> TradingRead | None:
        """Keep ``read`` as the bot's last one; return the one it replaces."""
        entry = self._entries.get(key)
        if entry is None:
            return None  # the bot went away while it was being read
        entry.reading = False
        previous, entry.last = entry.last, read
        return previous

    def where(self, key: BotKey) -> ReadTarget | None:
        """Return where ``key`` is read, None while it is not."""
        entry = self._entries.get(key)
        return None if entry is None else entry.target

    def last(self, key: BotKey) -> TradingRead | None:
        entry = self._entries.get(key)
        return None if entry is None else entry.last

    def keys(self) -> Iterable[BotKey]:
        return list(self._entries)


def _stamp(moment: datetime) -> str:
    return moment.strftime(_TIME_FORMAT)


def brief_error(error: str) -> str:
    """Return an error cut to what a condition message keeps."""
    return error if len(error) <= ERROR_LENGTH else error[: ERROR_LENGTH - 1] + "…"


def verdict(read: TradingRead | None, *, now: datetime, stale_after: timedelta) -> Verdict | None:
    """Return what TradingHalted says after ``read``; None when there was no read yet.

    NB: a read failure is Unknown, never False: an operator that cannot reach the
    API (a NetworkPolicy, a DNS failure) must not vouch that the bot trades.
    """
    if read is None:
        return None
    if now - read.at > stale_after:
        return Verdict(
            "Unknown",
            "Stale",
            f"last read at {_stamp(read.at)}: the API has had no ready pod to read since",
        )
    if read.reading is None:
        return Verdict(
            "Unknown",
            "ReadFailed",
            f"could not read GET /api/v1/risk: {brief_error(read.error or 'no answer')}",
        )
    switch = read.reading.kill_switch
    if not switch.engaged:
        return Verdict("False", "Trading", "the kill switch is released: new orders are accepted")
    since = f" since {_stamp(switch.since)}" if switch.since is not None else ""
    why = switch.reason or "no reason given"
    if read.reading.daily_loss_halt:
        return Verdict(
            "True",
            "DailyLossLimit",
            f"the daily loss limit halted trading{since}: {why}; a person releases it "
            "(POST /api/v1/risk/kill-switch)",
        )
    return Verdict("True", "KillSwitch", f"the kill switch is engaged{since}: {why}")


NOT_READ: Final = Verdict(
    "Unknown",
    "NotReadYet",
    "the operator has not read GET /api/v1/risk yet (it reads once the API has a ready pod)",
)


def trading_verdict(
    read: TradingRead | None,
    *,
    previous: Condition | None,
    now: datetime,
    stale_after: timedelta,
) -> Verdict:
    """Return TradingHalted for a pass: from the last read, else as the status had it.

    NB: after an operator restart nothing was read yet; keeping the condition as it
    was avoids flipping every bot to Unknown and back (two status writes and a lost
    lastTransitionTime each).
    """
    found = verdict(read, now=now, stale_after=stale_after)
    if found is not None:
        return found
    if previous is not None and previous.reason is not None:
        return Verdict(previous.status, previous.reason, previous.message or "")
    return NOT_READ


def trading_condition(
    found: Verdict, *, previous: Condition | None, generation: int, now: datetime
) -> dict[str, Any]:
    """Return the TradingHalted condition; its lastTransitionTime moves only on a flip."""
    stamp = _stamp(now)
    flipped = previous is None or previous.status != found.status
    return {
        "type": CONDITION,
        "status": found.status,
        "reason": found.reason,
        "message": found.message,
        "lastTransitionTime": (
            stamp if flipped or previous is None else previous.last_transition_time or stamp
        ),
        "observedGeneration": generation,
    }


# Fields whose change is written at once; the numbers wait for the refresh period.
_AT_ONCE: Final = ("kill_switch", "daily_loss_halt", "halt_reason", "halted_since", "leader")


def _from_reading(reading: RiskReading, *, at: datetime) -> TradingStatus:
    switch = reading.kill_switch
    return TradingStatus(
        kill_switch=switch.engaged,
        daily_loss_halt=reading.daily_loss_halt,
        halt_reason=switch.reason if switch.engaged else None,
        halted_since=_stamp(switch.since) if switch.engaged and switch.since else None,
        realized_pnl_today=format(reading.realized_pnl_today, "f"),
        open_orders=reading.open_orders,
        leader=reading.leader,
        pod=reading.pod,
        observed_at=_stamp(at),
    )


def _older_than(stamp: str | None, *, now: datetime, age: timedelta) -> bool:
    if stamp is None:
        return True
    try:
        seen = datetime.strptime(stamp, _TIME_FORMAT).replace(tzinfo=now.tzinfo)
    except ValueError:
        return True
    return now - seen >= age


def trading_status(
    read: TradingRead | None,
    *,
    previous: TradingStatus | None,
    now: datetime,
    refresh: timedelta,
) -> TradingStatus | None:
    """Return ``status.trading`` after ``read``, changing it only when it should be written.

    A halt, its reason, a new leader or a new read error is taken at once; realized
    PnL and open orders move all the time while the bot trades, so they are taken
    only once the shown ones are ``refresh`` old (the metrics carry every read): a
    trading bot costs one status write per ``refresh``, not one per read. Which pod
    answered never causes a write on its own (the Service picks any replica).
    """
    if read is None:
        return previous
    if read.reading is None:
        error = brief_error(read.error or "no answer")
        if previous is not None and previous.error == error:
            return previous
        return (previous or TradingStatus()).model_copy(update={"error": error})
    fresh = _from_reading(read.reading, at=read.at)
    if previous is None or previous.error is not None or previous.observed_at is None:
        return fresh
    at_once = any(getattr(fresh, name) != getattr(previous, name) for name in _AT_ONCE)
    numbers_moved = (fresh.realized_pnl_today, fresh.open_orders) != (
        previous.realized_pnl_today,
        previous.open_orders,
    )
    due = numbers_moved and _older_than(previous.observed_at, now=now, age=refresh)
    return fresh if at_once or due else previous


def halted(found: Verdict) -> bool:
    """Return whether the verdict stops the bot from reading as Ready."""
    return found.status == "True"


def status_field(status: TradingStatus | None) -> dict[str, Any] | None:
    """Return ``status.trading`` as written to the API (camelCase, unset fields left out)."""
    if status is None:
        return None
    return status.model_dump(by_alias=True, exclude_none=True)


def metric_values(read: TradingRead) -> Mapping[str, float] | None:
    """Return the gauges of one read (None after a failed read: no stale numbers)."""
    if read.reading is None:
        return None
    switch = read.reading.kill_switch
    return {
        "halted": float(switch.engaged),
        "kill_switch": float(switch.engaged and not read.reading.daily_loss_halt),
        "daily_loss_halt": float(switch.engaged and read.reading.daily_loss_halt),
        "realized_pnl_today": float(read.reading.realized_pnl_today),
        "open_orders": float(read.reading.open_orders),
    }
