"""JSON logs with the seed's ``RUST_LOG``-style level directives.

The seed's operators set ``RUST_LOG=debug,trader_api=trace`` and grep the
output for ``Rate limit exceeded`` and ``circuit``; both keep working here:
one JSON object per line on stdout, levels error, warn, info, debug and trace.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from typing import Final, TextIO

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

TRACE: Final = 5
"""Below DEBUG: per-message detail (each tick, each kline) nobody wants by default."""

logging.addLevelName(TRACE, "TRACE")

_LEVELS: Final[dict[str, int]] = {
    "off": logging.CRITICAL + 10,
    "error": logging.ERROR,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "trace": TRACE,
}


@dataclass(frozen=True, slots=True)
class LogDirectives:
    """A global level and per-logger overrides, e.g. ``debug,trader_api=trace``."""

    default: int = logging.INFO
    per_logger: dict[str, int] = field(default_factory=dict)


def parse_log_directives(spec: str) -> LogDirectives:
    """Parse ``LOG_LEVEL``/``RUST_LOG``: comma-separated ``level`` or ``target=level`` items.

    Rust module paths (``trader_api::api``) are accepted and mean the Python
    logger ``trader_api.api``. An unknown level is an error rather than a
    silent default: a typo in a pod's env should fail the rollout, not hide logs.
    """
    default = logging.INFO
    per_logger: dict[str, int] = {}
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            continue
        target, sep, level_name = item.partition("=")
        if not sep:
            target, level_name = "", item
        level = _LEVELS.get(level_name.strip().lower())
        if level is None:
            allowed = ", ".join(sorted(_LEVELS))
            raise ValueError(f"unknown log level {level_name.strip()!r} in {item!r} ({allowed})")
        name = target.strip().replace("::", ".")
        if sep and not name:
            raise ValueError(f"empty logger name in log directive {item!r}")
        if name:
            per_logger[name] = level
        else:
            default = level
    return LogDirectives(default=default, per_logger=per_logger)


def json_formatter() -> logging.Formatter:
    """Return the formatter every handler of the service uses: one JSON object a line."""
    return JsonFormatter(
        "{levelname}{name}{message}",
        style="{",
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp=True,
        # uvicorn adds an ANSI-coloured copy of its messages; JSON readers want one.
        reserved_attrs=[*RESERVED_ATTRS, "color_message"],
    )


def configure_logging(spec: str, *, stream: TextIO | None = None) -> LogDirectives:
    """Send every log record as JSON to stdout (or ``stream``), at the levels ``spec`` asks.

    NB: replaces the root logger's handlers, and resets the levels of loggers a
    previous call configured, so calling it twice (tests, reloads) is safe.
    """
    directives = parse_log_directives(spec)
    handler = logging.StreamHandler(stream if stream is not None else sys.stdout)
    handler.setFormatter(json_formatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(directives.default)
    for name in _configured_loggers:
        logging.getLogger(name).setLevel(logging.NOTSET)
    _configured_loggers.clear()
    for name, level in directives.per_logger.items():
        logging.getLogger(name).setLevel(level)
        _configured_loggers.add(name)
    for noisy in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        # uvicorn's loggers otherwise keep the handlers of its own default config.
        logging.getLogger(noisy).handlers.clear()
        logging.getLogger(noisy).propagate = True
    return directives


_configured_loggers: set[str] = set()
