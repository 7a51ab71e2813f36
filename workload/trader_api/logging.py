"""JSON logs with the seed's ``RUST_LOG``-style level directives.

The seed's operators set ``RUST_LOG=debug,trader_api=trace`` and grep the
output for ``Rate limit exceeded`` and ``circuit``; both keep working here:
one JSON object per line on stdout, levels error, warn, info, debug and trace.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final, TextIO
from urllib.parse import quote

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


REDACTED: Final = "[REDACTED]"
MIN_SECRET_LENGTH: Final = 4
"""Shorter values are not redacted: every ``a`` of every line would go with a password ``a``."""

# NB: no character class below takes a backslash: lines are JSON, and ``\"`` must stay whole.
_KEY_LIKE_QUERY: Final = re.compile(
    r"(?i)([?&;][\w.-]*(?:key|token|secret|passw(?:or)?d|pwd|auth|signature|credential)[\w.-]*=)"
    r"[^&;\s\"'#\\]*"
)
_SECRET_HEADER: Final = re.compile(
    r"(?i)((?:x-api-key|authorization|proxy-authorization|cookie)(?:\\?['\"])?\s*[:=]\s*(?:\\?['\"])?)"
    r"[^'\"\\\n]*"
)
_URL_PASSWORD: Final = re.compile(r"(://[^/\s:@\"'\\]*:)[^/\s@\"'\\]*@")


class RedactingFormatter(logging.Formatter):
    """Format with ``inner``, then replace secrets in the finished line, whatever logger wrote it.

    Redacted: each configured secret as written raw, JSON-escaped and
    percent-encoded; the value of any key-like query parameter (``?api_key=``,
    ``&token=``: a refused key may be another service's), of a credential
    header (``X-API-Key``, ``Authorization``, ``Cookie``); a URL's password.
    NB: the finished line, not the record: a secret can sit in the message,
    its arguments, an ``extra`` field or a traceback (uvicorn logs a
    WebSocket's full URL, query string included, at INFO).
    """

    def __init__(self, inner: logging.Formatter, *, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.inner = inner
        forms = {
            form
            for secret in secrets
            if len(secret) >= MIN_SECRET_LENGTH
            for form in (secret, json.dumps(secret)[1:-1], quote(secret, safe=""), quote(secret))
        }
        self._secrets = (
            re.compile("|".join(re.escape(form) for form in sorted(forms, key=len, reverse=True)))
            if forms
            else None
        )

    def format(self, record: logging.LogRecord) -> str:
        return self.redact(self.inner.format(record))

    def redact(self, line: str) -> str:
        if self._secrets is not None:
            line = self._secrets.sub(REDACTED, line)
        line = _KEY_LIKE_QUERY.sub(rf"\1{REDACTED}", line)
        line = _SECRET_HEADER.sub(rf"\1{REDACTED}", line)
        return _URL_PASSWORD.sub(rf"\1{REDACTED}@", line)


def configure_logging(
    spec: str, *, stream: TextIO | None = None, secrets: Iterable[str] = ()
) -> LogDirectives:
    """Send every log record as JSON to stdout (or ``stream``), at the levels ``spec`` asks.

    ``secrets`` never appear in a line (``RedactingFormatter``).

    NB: replaces the root logger's handlers, and resets the levels of loggers a
    previous call configured, so calling it twice (tests, reloads) is safe.
    """
    directives = parse_log_directives(spec)
    handler = logging.StreamHandler(stream if stream is not None else sys.stdout)
    handler.setFormatter(RedactingFormatter(json_formatter(), secrets=secrets))
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
